#!/usr/bin/env bash
# Heartbeat measurements in the UML lab (../shared/docs/lab.md): the profiles
# that need netem (delay, jitter), which only the guests' kernels have.
#
#   src/tests/lab_heartbeat.sh [RUNS] [STRESS_SECONDS]
#
# Boots nodeA and nodeB without DRBD (LAB_DRBD=0) in their own lab instance
# (LAB_DIR=/tmp/hblab, LAB_NETNS=hblab unless set), runs `hapair heartbeat`
# in each guest on both links (lan 10.88.0.x, repl 10.88.1.x) with the
# default timings (or HB_ARGS), and measures:
#   1. detection, clean links: RUNS times cut both links of nodeA
#      (lab-net.sh nodeA all cut: a full partition) and time each node's
#      peer-dead event from the moment the cut started (host and guests share
#      one clock);
#   2. the stress profile: netem "delay 50ms 50ms loss 20%" on both links of
#      both nodes (so both directions), one host core kept busy, for
#      STRESS_SECONDS: false deaths, links down/late;
#   3. detection under the stress profile (RUNS/2 cuts).
# Prints a summary and exits non-zero when a target is missed (detection p99
# above 1 s, or any false death under stress); raw event logs stay in $LAB_DIR/node?/hb.jsonl until the
# lab is torn down (at exit, unless LAB_KEEP_UP=1).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-100}
STRESS=${2:-600}
L=${LAB_SCRIPTS:-$(readlink -f ../shared/lab)}
export LAB_DIR=${LAB_DIR:-/tmp/hblab} LAB_NETNS=${LAB_NETNS:-hblab} LAB_DRBD=0
HB_ARGS=${HB_ARGS:-}
[ -x "$L/lab-up.sh" ] || { echo "lab scripts not found at $L (set LAB_SCRIPTS)" >&2; exit 1; }
[ -x target/release/hapair ] || { echo "build first: cargo build --release" >&2; exit 1; }

busy=
cleanup() {
  if [ -n "$busy" ]; then kill "$busy" 2>/dev/null || true; fi
  if [ "${LAB_KEEP_UP:-0}" != 1 ]; then "$L/lab-down.sh" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

"$L/lab-up.sh" >/dev/null
mkdir -p "$LAB_DIR/bin"
install -m 755 target/release/hapair "$LAB_DIR/bin/hapair"
rm -f "$LAB_DIR/authkey"
"$LAB_DIR/bin/hapair" keygen --file "$LAB_DIR/authkey" >/dev/null

start_node() { # node peer ip0 ip1 peer0 peer1
  "$L/lab-run.sh" "$1" "pkill -x hapair; true" >/dev/null
  : > "$LAB_DIR/$1/hb.jsonl"
  "$L/lab-run.sh" -d "$1" "exec $LAB_DIR/bin/hapair heartbeat --key-file $LAB_DIR/authkey --cluster lab \
    --node $1 --peer $2 --link $3:5407,$5:5407 --link $4:5407,$6:5407 $HB_ARGS \
    > $LAB_DIR/$1/hb.jsonl 2> $LAB_DIR/$1/hb.err" >/dev/null
}
start_node nodeA nodeB 10.88.0.1 10.88.1.1 10.88.0.2 10.88.1.2
start_node nodeB nodeA 10.88.0.2 10.88.1.2 10.88.0.1 10.88.1.1

now_ms() { date +%s%3N; }
count() { grep -c "\"event\":\"$2\"" "$LAB_DIR/$1/hb.jsonl" 2>/dev/null || true; }
# waits until both nodes have logged more $1 events than $2/$3 (timeout $4 s)
wait_both() {
  local end=$(( $(now_ms) + $4 * 1000 ))
  while [ "$(count nodeA "$1")" -le "$2" ] || [ "$(count nodeB "$1")" -le "$3" ]; do
    [ "$(now_ms)" -lt "$end" ] || return 1
    sleep 0.02
  done
}
wait_both peer-alive 0 0 10 || { echo "the pair never formed" >&2; tail "$LAB_DIR"/node?/hb.err >&2; exit 1; }

cuts=$LAB_DIR/cuts
: > "$cuts"
detect() { # runs label
  local i a b
  for ((i = 0; i < $1; i++)); do
    sleep "$(printf '1.%03d' $((RANDOM % 1000)))"
    a=$(count nodeA peer-dead); b=$(count nodeB peer-dead)
    echo "$2 $(now_ms)" >> "$cuts"
    "$L/lab-net.sh" nodeA all cut
    wait_both peer-dead "$a" "$b" 10 || echo "run $i: no peer-dead on both within 10 s" >&2
    a=$(count nodeA peer-alive); b=$(count nodeB peer-alive)
    for l in 0 1; do
      ip netns exec "$LAB_NETNS" ip link set "tap${l}nodeA" master "br-lab$l"
      ip netns exec "$LAB_NETNS" ip link set "tap${l}nodeA" up
    done
    wait_both peer-alive "$a" "$b" 10 || echo "run $i: the pair did not re-form within 10 s" >&2
  done
}

echo "== detection, clean links: $RUNS cuts"
detect "$RUNS" clean

echo "== stress: netem delay 50ms 50ms loss 20% on both links of both nodes, one host core busy, ${STRESS} s"
for n in nodeA nodeB; do "$L/lab-net.sh" "$n" all netem delay 50ms 50ms loss 20% >/dev/null; done
taskset -c "$(( $(nproc) - 1 ))" bash -c 'while :; do :; done' &
busy=$!
echo "window $(now_ms)" >> "$cuts"
sleep "$STRESS"
echo "window-end $(now_ms)" >> "$cuts"

echo "== detection under the stress profile: $((RUNS / 2)) cuts"
detect $((RUNS / 2)) stress
kill "$busy"; busy=

python3 - "$LAB_DIR" "$cuts" <<'PY'
import json, sys
lab, cuts_file = sys.argv[1], sys.argv[2]
cuts = [l.split() for l in open(cuts_file)]
ev = {}
for n in ("nodeA", "nodeB"):
    ev[n] = [json.loads(l) for l in open(f"{lab}/{n}/hb.jsonl") if l.startswith("{\"at\"")]
def pct(v, p):
    v = sorted(v)
    return v[max(1, -(-len(v) * p // 100)) - 1] if v else None
failed = []
stress = [int(t) for k, t in cuts if k == "window"]
stress_end = [int(t) for k, t in cuts if k == "window-end"]
for label in ("clean", "stress"):
    det = []
    for k, t in cuts:
        if k != label:
            continue
        t = int(t)
        for n in ("nodeA", "nodeB"):
            d = [e["unix_ms"] for e in ev[n] if e["event"] == "peer-dead" and e["unix_ms"] >= t]
            if d:
                det.append(d[0] - t)
    print(f"detection ({label}): n={len(det)} p50={pct(det, 50)} p90={pct(det, 90)} p99={pct(det, 99)} max={max(det) if det else None} ms")
    if not det or pct(det, 99) > 1000:
        failed.append(f"detection p99 ({label}) above 1 s or not measured")
if stress and stress_end:
    s, e = stress[0], stress_end[0]
    for n in ("nodeA", "nodeB"):
        win = [x for x in ev[n] if s <= x["unix_ms"] <= e]
        kinds = {}
        for x in win:
            kinds[x["event"]] = kinds.get(x["event"], 0) + 1
        print(f"stress {n}: {(e - s) / 1000:.0f} s, false deaths {kinds.get('peer-dead', 0)}, "
              f"links down {kinds.get('link-down', 0)}, links late {kinds.get('link-warn', 0)}")
        if kinds.get("peer-dead", 0):
            failed.append(f"{n}: false deaths under the stress profile")
else:
    failed.append("the stress window was not recorded")
# the targets of the heartbeat issue: detection p99 <= 1 s, no false death
for f in failed:
    print("FAIL:", f)
print("lab heartbeat: " + ("FAILED" if failed else "all targets met"))
sys.exit(1 if failed else 0)
PY
