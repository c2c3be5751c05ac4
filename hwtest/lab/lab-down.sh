#!/bin/bash
# lab-down.sh : kill the lab guests (SIGKILL, by recorded pgid and by command line), stop the power switch, delete the
# taps, bridges and the lab's network namespace (by name) and the lab dir. LAB_KEEP=1 keeps $LAB_DIR (disk images, DRBD
# metadata, logs) so a later lab-up.sh reuses them. Idempotent: safe to run after a failed lab-up.sh, twice, or on a
# lab that never existed; it exits 0 unless something of the lab is still there afterwards. Env: see lab-common.sh.
HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source=SCRIPTDIR/lab-common.sh
. "$HERE/lab-common.sh"
# the power switch first, so it does not boot a guest again while we kill them
for p in $(cat "$LAB_DIR/power/watcher.pid" 2>/dev/null) $(pgrep -f -- "lab-power.sh --watch $LAB_DIR\$" 2>/dev/null); do
  kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null
done
rm -f "$LAB_DIR/power/watcher.pid"
# shellcheck disable=SC2086  # word list
"$HERE/lab-kill.sh" $LAB_ALL_NODES >/dev/null
if ip netns list | awk '{print $1}' | grep -qxF -- "$LAB_NETNS"; then
  for node in $LAB_ALL_NODES; do for l in 0 1; do lab_ns ip link del "$(lab_tap "$node" $l)" 2>/dev/null; done; done
  for l in 0 1; do lab_ns ip link del "$LAB_BRIDGE$l" 2>/dev/null; done
  ip netns del "$LAB_NETNS"
fi
# Pacemaker's stonith agent, if this lab's pcmk-up.sh installed it (a run interrupted before pcmk-down.sh)
if [ -f "$LAB_DIR/pacemaker/fence_lab.installed" ]; then
  rm -f /usr/sbin/fence_lab "$LAB_DIR/pacemaker/fence_lab.installed"
fi
if [ "${LAB_KEEP:-0}" = 1 ]; then rm -rf "${LAB_DIR:?}/uml"; else rm -rf "${LAB_DIR:?}"; fi
left=""
for node in $LAB_ALL_NODES; do [ -n "$(lab_uml_pgids "$node")" ] && left="$left $node"; done
ip netns list | awk '{print $1}' | grep -qxF -- "$LAB_NETNS" && left="$left netns:$LAB_NETNS"
if [ -n "$left" ]; then echo "lab-down: still there:$left" >&2; exit 1; fi
echo "lab down"
