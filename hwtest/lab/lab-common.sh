# shellcheck shell=bash
# Shared settings for the UML DRBD lab scripts (sourced, not executed). Every value can be overridden by env var.
# Nodes: nodeA (.1) and nodeB (.2) form the pair; nodeC (.3) is an optional client guest (lab-up.sh nodeC).
# Two links per node, like a real pair: link 0 "lan" = vec0 on $LAB_NET.x (bridge br-lab0), link 1 "repl" = vec1 on
# $LAB_NET1.x (bridge br-lab1, the back-to-back replication/heartbeat link; DRBD replicates over it).
# Bridges and taps live in the network namespace $LAB_NETNS, so lab traffic never touches the host's own network stack;
# the bridges have no address.
# One lab instance = one LAB_NETNS + one LAB_DIR. LAB_DIR defaults to /tmp/$LAB_NETNS, so setting LAB_NETNS alone
# selects a separate instance (the Rust hwtest::Lab uses hapair-lab-<pid>-<n> for both), and two instances never
# share taps, bridges, disks or a power switch.
# Per-node state lives in $LAB_DIR/<node>/ (disk, console.log, pid, ready, cmd/, out/).
LAB_NETNS=${LAB_NETNS:-hapair-lab}
LAB_DIR=${LAB_DIR:-/tmp/$LAB_NETNS}
LAB_BRIDGE=${LAB_BRIDGE:-br-lab}      # bridges are ${LAB_BRIDGE}0 and ${LAB_BRIDGE}1
LAB_NET=${LAB_NET:-10.88.0}           # link 0 (lan)
LAB_NET1=${LAB_NET1:-10.88.1}         # link 1 (repl)
LAB_MEM=${LAB_MEM:-256M}
LAB_DISK_SIZE=${LAB_DISK_SIZE:-256M}       # private DRBD backing disk per node (sparse file)
LAB_SHARED_SIZE=${LAB_SHARED_SIZE:-64M}    # shared disk seen by both nodes (/dev/ubdb)
LAB_UML=${LAB_UML:-/usr/bin/linux.uml}
LAB_RES=${LAB_RES:-r0}
# LAB_FENCE_AGENT: the program lab-up.sh installs as $LAB_DIR/bin/fence_lab (hwtest sets it; unset: none installed)
# shellcheck disable=SC2034  # used by the scripts that source this file
LAB_NODES="nodeA nodeB"
# shellcheck disable=SC2034
LAB_ALL_NODES="nodeA nodeB nodeC"
export LAB_NETNS LAB_DIR
lab_host() { case $1 in nodeA) echo 1;; nodeB) echo 2;; nodeC) echo 3;; *) echo "unknown node $1" >&2; return 1;; esac; }
lab_ip()  { local h; h=$(lab_host "$1") || return 1; if [ "${2:-0}" = 1 ]; then echo "$LAB_NET1.$h"; else echo "$LAB_NET.$h"; fi; }  # lab_ip NODE [LINK]
lab_tap() { echo "tap${2:-0}$1"; }         # lab_tap NODE [LINK]; <= 15 chars
lab_pid() { local p; p=$(cat "$LAB_DIR/$1/pid" 2>/dev/null) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"; }
lab_ns()  { ip netns exec "$LAB_NETNS" "$@"; }   # run a host-side command inside the lab's network namespace
# lab_uml_pgids NODE: process groups of this lab's UML guest NODE found by command line (umid + lab_dir), for cleanup
# when the pid file is lost (an interrupted lab-up.sh, a deleted LAB_DIR).
lab_uml_pgids() {
  local pid
  for pid in $(pgrep -f -- "^$LAB_UML umid=$1 uml_dir=$LAB_DIR/uml " 2>/dev/null); do
    ps -o pgid= -p "$pid" 2>/dev/null
  done | tr -d ' ' | sort -u
}
