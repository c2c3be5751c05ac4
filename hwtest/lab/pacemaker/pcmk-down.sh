#!/bin/bash
# pcmk-down.sh [--kill] : stop Pacemaker and Corosync in the lab guests that run them (pacemakerd SIGTERM = clean stop of the
# resources, up to LAB_PCMK_STOP_TIMEOUT s, default 120; --kill = SIGKILL at once, for a lab that is torn down next), then
# remove /usr/sbin/fence_lab if pcmk-up.sh installed it (marker $LAB_DIR/pacemaker/fence_lab.installed), also when no guest
# runs any more. The lab stays up; lab-down.sh removes the rest. Adapted from shared/lab/pacemaker/pcmk-down.sh.
HERE=$(dirname "$(readlink -f "$0")"); LAB=$(dirname "$HERE")
# shellcheck source=SCRIPTDIR/../lab-common.sh
. "$LAB/lab-common.sh"
kill=0; [ "${1:-}" = --kill ] && kill=1; T=${LAB_PCMK_STOP_TIMEOUT:-120}
stop_cmd="pgrep -x pacemakerd >/dev/null || pgrep -x corosync >/dev/null || { echo \"\$(hostname): not running\"; exit 0; }
if [ $kill = 0 ] && p=\$(pgrep -x pacemakerd); then kill -TERM \$p
  for i in \$(seq $((T * 2))); do pgrep -x pacemakerd >/dev/null || break; sleep 0.5; done; fi
for p in \$(pgrep -f '^(/usr/sbin/)?pacemakerd|^/usr/lib/pacemaker/pacemaker-'); do kill -KILL \$p; done
if p=\$(pgrep -x corosync); then [ $kill = 0 ] && corosync-cfgtool -H --force >/dev/null 2>&1
  for i in \$(seq 20); do pgrep -x corosync >/dev/null || break; sleep 0.5; done
  p=\$(pgrep -x corosync) && kill -KILL \$p; fi
echo \"\$(hostname): pacemaker + corosync stopped\""
pids=()
for n in $LAB_NODES; do
  [ -f "$LAB_DIR/$n/ready" ] || { echo "$n: not running"; continue; }
  LAB_TIMEOUT=$((T + 30)) "$LAB/lab-run.sh" "$n" "$stop_cmd" & pids+=("$!")
done
rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done
if [ -f "$LAB_DIR/pacemaker/fence_lab.installed" ]; then
  rm -f /usr/sbin/fence_lab "$LAB_DIR/pacemaker/fence_lab.installed" && echo "removed /usr/sbin/fence_lab"
fi
exit "$rc"
