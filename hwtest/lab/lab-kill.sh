#!/bin/bash
# lab-kill.sh <node>... : power-cut a lab guest (SIGKILL to its whole UML process group) - the fencing/crash simulation.
# Disk images, tap and bridge stay, so lab-up.sh <node> boots it again. Guest page cache is lost, completed block I/O is not.
# Also kills a guest of this lab whose pid file was lost (found by its command line). Idempotent: a node that is already
# off is fine. Env: see lab-common.sh.
# shellcheck source=SCRIPTDIR/lab-common.sh
. "$(dirname "$(readlink -f "$0")")/lab-common.sh"
for node in "$@"; do
  lab_host "$node" >/dev/null || exit 2
  rm -f "$LAB_DIR/$node/ready"
  pgids=$(lab_uml_pgids "$node")
  p=$(lab_pid "$node") && pgids="$p $pgids"
  for g in $pgids; do
    kill -9 -- "-$g" 2>/dev/null
    # shellcheck disable=SC2009  # pgrep cannot tell zombies apart
    # wait until no live (non-zombie) process is left; reaping the zombies is up to the host's init (can take ~2 s)
    for _ in $(seq 100); do ps -o stat= -g "$g" 2>/dev/null | grep -qv '^Z' || break; sleep 0.02; done
  done
  rm -f "$LAB_DIR/$node/pid" "$LAB_DIR/$node/cmd/"*; rm -rf "${LAB_DIR:?}/uml/$node"
  echo "$node killed${p:+ (pgid $p)}"
done
