#!/bin/bash
# PID 1 of a UML lab guest. Root is the HOST's / via hostfs, read-only; writable: tmpfs on /run /tmp /var/* /mnt, plus the host lab dir.
# Kernel cmdline gives lab_node=<name> lab_ip=<addr/cidr> lab_dir=<host lab dir>. Then it runs a command agent: the host drops
# <lab_dir>/<node>/cmd/<id>.sh, the guest runs it with bash (concurrently) and writes out/<id>.out, then out/<id>.rc.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C
mount -t proc proc /proc
mount -t sysfs sys /sys
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs shm /dev/shm
lab_node="" lab_ip="" lab_ip1="" lab_dir="" lab_offload=off
read -r -a cmdline < /proc/cmdline
for kv in "${cmdline[@]}"; do
  case "$kv" in
    lab_node=*) lab_node=${kv#*=};; lab_ip=*) lab_ip=${kv#*=};; lab_ip1=*) lab_ip1=${kv#*=};;
    lab_dir=*) lab_dir=${kv#*=};; lab_offload=*) lab_offload=${kv#*=};;
  esac
done
for d in /run /tmp /var/tmp /var/log /var/lib/drbd /mnt; do [ -d "$d" ] && mount -t tmpfs -o mode=0755 guest-tmp $d; done
chmod 1777 /tmp /var/tmp
mkdir -p /run/lock /run/drbd "$lab_dir"
mount -t hostfs -o "$lab_dir" hostlab "$lab_dir"          # writable view of the host lab dir
[ -d "$lab_dir/drbd.d" ] && mount --bind "$lab_dir/drbd.d" /etc/drbd.d   # lab DRBD config (host file stays untouched)
hostname "$lab_node"
# UML kernel modules live in /usr/lib/uml/modules/<ver>; host has no /lib/modules -> modprobe -d via a wrapper
K=$(uname -r)
mkdir -p /run/modroot/lib/modules && ln -sfn "/usr/lib/uml/modules/$K" "/run/modroot/lib/modules/$K"
printf '#!/bin/sh\nexec /sbin/modprobe -d /run/modroot "$@"\n' > /run/modprobe && chmod 755 /run/modprobe
echo /run/modprobe > /proc/sys/kernel/modprobe            # kernel request_module() uses it too
export MODPROBE_OPTIONS="-d /run/modroot"
modprobe drbd 2>/dev/null
ip link set lo up
ip link set vec0 up && ip addr add "$lab_ip" dev vec0
[ -n "$lab_ip1" ] && ip link set vec1 up && ip addr add "$lab_ip1" dev vec1
# vec0 offloads (TSO/GSO/GRO/SG via tap vnet headers) OFF by default: with them ON bulk one-way writes are faster, but
# DRBD resync and mkfs-style traffic intermittently stall at ~200 KB/s (measured). lab_offload=on keeps them.
[ "$lab_offload" = off ] && for i in vec0 vec1; do ethtool -K "$i" tso off gso off gro off sg off >/dev/null 2>&1; done
N=$lab_dir/$lab_node
mkdir -p "$N/cmd" "$N/out"
echo "LAB-READY $lab_node $K uptime=$(cut -d' ' -f1 /proc/uptime)" > /dev/console
read -r up _ < /proc/uptime; echo "$up" > "$N/ready"
# Command agent. Each command runs in a fresh bash, concurrently; the rc file is written in one write (host tests -s).
# bash as PID 1 reaps finished and orphaned children from its SIGCHLD handler, so no zombies pile up (busybox ash would not).
# No per-poll fork: process creation costs ~40-100 ms in UML, so the idle wait is a bash 'read -t' on a private fifo.
declare -A seen
mkfifo /run/lab-agent.tick; exec 9<>/run/lab-agent.tick
while :; do
  for f in "$N"/cmd/*.sh; do
    [ -e "$f" ] || continue
    id=${f##*/}; id=${id%.sh}
    [ -n "${seen[$id]}" ] && continue
    seen[$id]=1
    ( cd /; exec 9>&-; bash "$f" > "$N/out/$id.out" 2>&1 < /dev/null; echo $? > "$N/out/$id.rc" ) &
  done
  read -r -t 0.02 -u 9 _
done
