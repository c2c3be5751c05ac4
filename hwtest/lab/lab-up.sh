#!/bin/bash
# lab-up.sh [node...] : start the 2-node UML DRBD lab (nodeA, nodeB; or only the named nodes, e.g. to reboot a killed one).
# Installs missing packages, creates bridge/taps/disks/DRBD config, boots the guests and (LAB_DRBD=1, default) brings DRBD
# resource $LAB_RES up: first boot = create-md + up + skip initial sync (LAB_INITIAL_SYNC=full: full sync from nodeA instead).
# Env: see lab-common.sh (LAB_NETNS default hapair-lab, LAB_DIR default /tmp/$LAB_NETNS); LAB_DRBD=0 boots guests only;
# LAB_WAIT_CONNECTED=0 don't wait for Connected. On failure the lab is left as it is: lab-down.sh cleans up.
set -eu
HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source=SCRIPTDIR/lab-common.sh
. "$HERE/lab-common.sh"
t0=$(date +%s.%N); ts() { printf '[%5.1fs] ' "$(echo "$(date +%s.%N) - $t0" | bc)"; echo "$@"; }
read -r -a nodes <<< "${*:-$LAB_NODES}"
for node in "${nodes[@]}"; do lab_host "$node" >/dev/null || exit 2; done
# --- packages ---------------------------------------------------------------------------------------------------------
need=()
for p in user-mode-linux drbd-utils kmod busybox ethtool iproute2 e2fsprogs bc util-linux procps netcat-openbsd nfs-kernel-server nfs-common; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
# nothing the packages bring (rpcbind, nfs-server) may start on the host: without a policy-rc.d of the machine's own,
# one that refuses every start is in place for the install only
apt_install() {
  local own=1 rc
  [ -e /usr/sbin/policy-rc.d ] || { own=0; printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; }
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "$@" >/dev/null; rc=$?
  [ "$own" = 1 ] || rm -f /usr/sbin/policy-rc.d
  return "$rc"
}
if [ ${#need[@]} -gt 0 ]; then
  ts "installing: ${need[*]}"
  apt_install "${need[@]}" || { apt-get update >/dev/null; apt_install "${need[@]}"; }
fi
# --- files ------------------------------------------------------------------------------------------------------------
mkdir -p "$LAB_DIR/drbd.d" "$LAB_DIR/uml"
cmp -s "$HERE/guest-init.sh" "$LAB_DIR/guest-init.sh" || install -m 755 "$HERE/guest-init.sh" "$LAB_DIR/guest-init.sh"  # running guests keep the old inode
[ -f "$LAB_DIR/shared.img" ] || truncate -s "$LAB_SHARED_SIZE" "$LAB_DIR/shared.img"
cat > "$LAB_DIR/drbd.d/global_common.conf" <<GC
global { usage-count no; }
common { }
GC
[ -f "$LAB_DIR/drbd.d/$LAB_RES.res" ] || cat > "$LAB_DIR/drbd.d/$LAB_RES.res" <<RES
resource $LAB_RES {
  net {
    protocol C;
    ping-int 2; ping-timeout 5; connect-int 2; timeout 30; ko-count 3;   # fast peer-loss detection (~2-3 s)
    after-sb-0pri disconnect; after-sb-1pri disconnect; after-sb-2pri disconnect;
  }
  disk { on-io-error detach; c-plan-ahead 0; resync-rate 200M; }   # static resync rate: 256 MiB in ~8 s (dynamic: ~29 s)
  on nodeA { device /dev/drbd0; disk /dev/ubda; address $(lab_ip nodeA 1):7789; meta-disk internal; }
  on nodeB { device /dev/drbd0; disk /dev/ubda; address $(lab_ip nodeB 1):7789; meta-disk internal; }
}
RES
# the fence agent, where every guest sees it (a checkout under /tmp is invisible in the guests): LAB_FENCE_AGENT is a
# program that acts as fence_lab when called by that name (hwtest's fence_lab binary, or hapair)
if [ -n "${LAB_FENCE_AGENT:-}" ]; then
  [ -f "$LAB_FENCE_AGENT" ] || { echo "lab-up: LAB_FENCE_AGENT=$LAB_FENCE_AGENT does not exist" >&2; exit 1; }
  mkdir -p "$LAB_DIR/bin"
  cmp -s "$LAB_FENCE_AGENT" "$LAB_DIR/bin/fence_lab" || install -m 755 "$LAB_FENCE_AGENT" "$LAB_DIR/bin/fence_lab"
fi
# --- network ----------------------------------------------------------------------------------------------------------
ip netns list | awk '{print $1}' | grep -qxF -- "$LAB_NETNS" || ip netns add "$LAB_NETNS"
for l in 0 1; do
  lab_ns ip link show "$LAB_BRIDGE$l" >/dev/null 2>&1 || lab_ns ip link add "$LAB_BRIDGE$l" type bridge
  lab_ns ip link set "$LAB_BRIDGE$l" up
done
for node in "${nodes[@]}"; do
  for l in 0 1; do t=$(lab_tap "$node" $l)
    lab_ns ip link show "$t" >/dev/null 2>&1 || lab_ns ip tuntap add "$t" mode tap
    lab_ns ip link set "$t" master "$LAB_BRIDGE$l"; lab_ns ip link set "$t" up
  done
done
# --- boot -------------------------------------------------------------------------------------------------------------
started=()
for node in "${nodes[@]}"; do
  N=$LAB_DIR/$node; mkdir -p "$N/cmd" "$N/out"
  if lab_pid "$node" >/dev/null; then ts "$node already running (pid $(lab_pid "$node"))"; continue; fi
  # a guest of this lab whose pid file was lost (interrupted lab-up.sh) would hold the umid: power it off first
  for g in $(lab_uml_pgids "$node"); do kill -9 -- "-$g" 2>/dev/null || true; done
  rm -f "$N/ready" "$N/cmd/"* "$N/out/"*; rm -rf "${LAB_DIR:?}/uml/$node"
  [ -f "$N/drbd.img" ] || truncate -s "$LAB_DISK_SIZE" "$N/drbd.img"
  # setsid => UML process tree = one process group (pgid written to pid) so lab-kill can SIGKILL all of it at once.
  # Console goes through a pipe (UML cannot epoll a regular file). ubd1c = shared disk, no host-side file locking.
  # shellcheck disable=SC2016  # $$ and $0/$@ belong to the inner bash
  setsid ip netns exec "$LAB_NETNS" bash -c 'echo $$ > "$0"; exec "$@"' "$N/pid" "$LAB_UML" umid="$node" uml_dir="$LAB_DIR/uml" \
    mem="$LAB_MEM" root=/dev/root rootfstype=hostfs rootflags=/ ro init="$LAB_DIR/guest-init.sh" \
    lab_node="$node" lab_ip="$(lab_ip "$node")/24" lab_ip1="$(lab_ip "$node" 1)/24" lab_dir="$LAB_DIR" \
    lab_offload="${LAB_OFFLOAD:-off}" ubd0="$N/drbd.img" ubd1c="$LAB_DIR/shared.img" \
    "vec0:transport=tap,ifname=$(lab_tap "$node" 0)" "vec1:transport=tap,ifname=$(lab_tap "$node" 1)" \
    con0=null,fd:1 con=null ssl=null < /dev/null 2>&1 | cat >> "$N/console.log" 2>&1 &
  started+=("$node")
done
for node in "${started[@]}"; do
  for _ in $(seq 600); do [ -f "$LAB_DIR/$node/ready" ] && break; sleep 0.05; done
  [ -f "$LAB_DIR/$node/ready" ] || { echo "$node did not boot, see $LAB_DIR/$node/console.log" >&2; exit 1; }
  ts "$node booted (pid $(cat "$LAB_DIR/$node/pid"), guest uptime $(cat "$LAB_DIR/$node/ready")s)"
done
# --- virtual power switch: guests ask for off/on/reboot/status of a node through $LAB_DIR/power (see lab-power.sh) ---
if ! { p=$(cat "$LAB_DIR/power/watcher.pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }; then
  mkdir -p "$LAB_DIR/power"; chmod 777 "$LAB_DIR/power"
  setsid "$HERE/lab-power.sh" --watch "$LAB_DIR" > "$LAB_DIR/power/watcher.log" 2>&1 < /dev/null &
  echo $! > "$LAB_DIR/power/watcher.pid"
fi
pair=(); started_pair=()                      # nodeC has no DRBD
for node in "${nodes[@]}"; do case $node in nodeA|nodeB) pair+=("$node");; esac; done
for node in "${started[@]}"; do case $node in nodeA|nodeB) started_pair+=("$node");; esac; done
[ "${LAB_DRBD:-1}" = 1 ] && [ ${#pair[@]} -gt 0 ] || exit 0
# --- DRBD -------------------------------------------------------------------------------------------------------------
R="$HERE/lab-run.sh"; fresh=""
for node in "${started_pair[@]}"; do
  if [ ! -f "$LAB_DIR/$node/md-created" ]; then
    "$R" "$node" "drbdadm -- --force create-md $LAB_RES" >/dev/null && touch "$LAB_DIR/$node/md-created"; fresh="$fresh $node"
  fi
  "$R" "$node" "drbdadm up $LAB_RES"
done
ts "drbd up on: ${started_pair[*]} (fresh metadata on:${fresh:- none})"
[ "${LAB_WAIT_CONNECTED:-1}" = 1 ] || exit 0
for node in "${pair[@]}"; do
  "$R" "$node" "for i in \$(seq 300); do drbdadm cstate $LAB_RES | grep -qE 'Connected|Sync|Established' && exit 0; sleep 0.1; done; exit 1" ||
    { echo "$node: not connected: $("$R" "$node" "drbdadm cstate $LAB_RES")" >&2; exit 1; }
done
ts "connected"
if [ -n "$fresh" ] && "$R" nodeA "drbdadm dstate $LAB_RES" | grep -q '^Inconsistent/Inconsistent'; then
  if [ "${LAB_INITIAL_SYNC:-skip}" = full ]; then
    "$R" nodeA "drbdadm primary --force $LAB_RES && drbdadm secondary $LAB_RES"   # full initial sync nodeA -> nodeB
  else
    "$R" nodeA "drbdadm -- --clear-bitmap new-current-uuid $LAB_RES"             # both disks are all-zero: skip sync
  fi
fi
for node in "${pair[@]}"; do
  "$R" "$node" "for i in \$(seq 6000); do drbdadm dstate $LAB_RES | grep -q '^UpToDate/UpToDate' && exit 0; sleep 0.1; done; exit 1" ||
    { echo "$node: not UpToDate: $("$R" "$node" "drbdadm dstate $LAB_RES")" >&2; exit 1; }
done
ts "UpToDate/UpToDate: $("$R" nodeA "drbdadm role $LAB_RES; drbdadm cstate $LAB_RES" | tr '\n' ' ')"
