#!/bin/bash
# lab-power.sh : the lab's virtual power switch (what a fence device does to a real node).
#   lab-power.sh off|on|reboot|status <node>   host side: off = power cut (lab-kill.sh), on = boot (lab-up.sh, no DRBD
#                                             start: a booted node starts with DRBD down), status: rc 0 on, 2 off.
#                                             rc 1 = error (unknown node or action, boot failed).
#   lab-power.sh --watch [LAB_DIR]            host-side server, started by lab-up.sh, stopped by lab-down.sh (the lab dir
#                                             argument only makes it findable by command line). It exits by itself
#                                             when $LAB_DIR/power disappears.
# A guest (e.g. a fence agent running in nodeB) asks by writing "<action> <node>" to $LAB_DIR/power/<id>.tmp, renaming it
# to <id>.req, then waiting for $LAB_DIR/power/<id>.done, which holds the exit code as above (1 = error). Log: power/log
# ("<request seen epoch> <done epoch> <action> <node> rc=<rc>").
HERE=$(dirname "$(readlink -f "$0")")
[ "${1:-}" = --watch ] && [ -n "${2:-}" ] && export LAB_DIR=$2
# shellcheck source=SCRIPTDIR/lab-common.sh
. "$HERE/lab-common.sh"
power() {   # power ACTION NODE -> rc
  local act=$1 node=$2
  lab_host "$node" >/dev/null 2>&1 || { echo "unknown node '$node'" >&2; return 1; }
  case $act in
    off)    "$HERE/lab-kill.sh" "$node" >/dev/null ;;
    on)     lab_pid "$node" >/dev/null && return 0; LAB_DRBD=0 "$HERE/lab-up.sh" "$node" >/dev/null || return 1 ;;
    reboot) "$HERE/lab-kill.sh" "$node" >/dev/null; LAB_DRBD=0 "$HERE/lab-up.sh" "$node" >/dev/null || return 1 ;;
    status) if lab_pid "$node" >/dev/null; then return 0; else return 2; fi ;;
    *) echo "unknown action '$act'" >&2; return 1 ;;
  esac
}
if [ "${1:-}" != --watch ]; then
  [ $# = 2 ] || { echo "usage: $0 off|on|reboot|status <node> | --watch [LAB_DIR]" >&2; exit 1; }
  power "$1" "$2"; exit $?
fi
D=$LAB_DIR/power; mkdir -p "$D"
while [ -d "$D" ]; do
  for f in "$D"/*.req; do
    [ -e "$f" ] || continue
    t1=$(date +%s.%N); act="" node=""; read -r act node < "$f"; mv -f "$f" "$f.taken"
    power "$act" "$node"; rc=$?
    echo "$t1 $(date +%s.%N) $act $node rc=$rc" >> "$D/log"
    echo $rc > "${f%.req}.tmp" && mv "${f%.req}.tmp" "${f%.req}.done"
  done
  sleep 0.02
done
