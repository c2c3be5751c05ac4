#!/bin/bash
# lab-net.sh <node> [lan|repl|all] cut|heal : partition one or both links of a node (detach/re-attach its tap from the
#   link's bridge inside the lab namespace: full partition, both directions; the tap stays UP).
# lab-net.sh <node> [lan|repl|all] netem <args...>|clear|show : tc netem on the guest's egress of that link (default lan),
#   e.g. 'netem delay 200ms 50ms loss 30%'. The host kernel has no netem; the guests have it.
# Do NOT use 'ip link set tapX down/up': the UML vector NIC stays dead afterwards (needs vecN down/up in the guest).
HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source=SCRIPTDIR/lab-common.sh
. "$HERE/lab-common.sh"
usage() { echo "usage: $0 <node> [lan|repl|all] cut|heal|netem <args>|clear|show" >&2; exit 2; }
node=${1:-}; shift || usage
lab_host "$node" >/dev/null || usage
case ${1:-} in lan) links="0"; shift;; repl) links="1"; shift;; all) links="0 1"; shift;; *) links="0";; esac
op=${1:-}; shift || usage
rc=0
for l in $links; do
  tap=$(lab_tap "$node" "$l")
  case $op in
    cut)   lab_ns ip link set "$tap" nomaster || rc=1 ;;
    heal)  { lab_ns ip link set "$tap" master "$LAB_BRIDGE$l" && lab_ns ip link set "$tap" up; } || rc=1
           "$HERE/lab-run.sh" "$node" "tc qdisc del dev vec$l root 2>/dev/null; true" || rc=1 ;;
    netem) "$HERE/lab-run.sh" "$node" "tc qdisc replace dev vec$l root netem $*" || rc=1 ;;
    clear) "$HERE/lab-run.sh" "$node" "tc qdisc del dev vec$l root 2>/dev/null; true" || rc=1 ;;
    show)  lab_ns bridge link show dev "$tap"; "$HERE/lab-run.sh" "$node" "tc qdisc show dev vec$l" ;;
    *) usage ;;
  esac
done
exit $rc
