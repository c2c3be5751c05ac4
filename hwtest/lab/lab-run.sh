#!/bin/bash
# lab-run.sh [-d] <node> <command...> : run a shell command (bash) as root inside a lab guest; prints its output, exits with its rc.
# -d : detach - print the guest output file path and return at once (tail it; for drbdsetup events etc.); the caller
#      stops it (e.g. lab-run.sh <node> 'pkill -x drbdsetup') and may delete cmd/<id>.sh, out/<id>.*.
# Env: see lab-common.sh; LAB_TIMEOUT seconds (default 300; on expiry rc=124, the guest command keeps running).
# rc 125: the node is not running (or went down while the command ran).
# shellcheck source=SCRIPTDIR/lab-common.sh
. "$(dirname "$(readlink -f "$0")")/lab-common.sh"
detach=0; [ "${1:-}" = -d ] && { detach=1; shift; }
node=${1:-}; shift
if [ -z "$node" ] || [ $# -eq 0 ]; then echo "usage: $0 [-d] <node> <command...>" >&2; exit 2; fi
[ -f "$LAB_DIR/$node/ready" ] || { echo "$node not running/ready" >&2; exit 125; }
id=$(date +%s%N)-$$-$RANDOM
C=$LAB_DIR/$node/cmd O=$LAB_DIR/$node/out
printf '%s\n' "$*" > "$C/$id.tmp" && mv "$C/$id.tmp" "$C/$id.sh" || exit 125
if [ $detach = 1 ]; then echo "$O/$id.out"; exit 0; fi
end=$(( $(date +%s) + ${LAB_TIMEOUT:-300} ))
while [ ! -s "$O/$id.rc" ]; do
  [ "$(date +%s)" -ge "$end" ] && { cat "$O/$id.out" 2>/dev/null; echo "lab-run: timeout" >&2; exit 124; }
  [ -f "$LAB_DIR/$node/ready" ] || { cat "$O/$id.out" 2>/dev/null; echo "lab-run: $node went down" >&2; exit 125; }
  sleep 0.02
done
cat "$O/$id.out"; rc=$(cat "$O/$id.rc"); rm -f "$C/$id.sh" "$O/$id.out" "$O/$id.rc"; exit "$rc"
