#!/bin/bash
# lab-demo.sh : end-to-end smoke test of a running lab (after lab-up.sh): events capture, promote+mkfs+write on nodeA,
# refused dual-primary on nodeB, power-cut nodeA, promote+mount nodeB, reboot nodeA -> Secondary + resync, demote.
# Prints every command with timing; events2 output of nodeB ends up in $LAB_DIR/events-nodeB.txt. Env: see lab-common.sh.
HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source=SCRIPTDIR/lab-common.sh
. "$HERE/lab-common.sh"
R="$HERE/lab-run.sh"; t0=$(date +%s.%N)
el() { echo "$(date +%s.%N) - $t0" | bc | xargs printf '%6.2f'; }
run() { local n=$1; shift; echo "[$(el)s] $n# $*"; "$R" "$n" "$@" 2>&1 | sed 's/^/    /'; local rc=${PIPESTATUS[0]}; echo "    -> rc=$rc"; return "$rc"; }
waitfor() { local n=$1 what=$2; "$R" "$n" "for i in \$(seq 600); do $what && exit 0; sleep 0.05; done; exit 1"; echo "[$(el)s] $n: reached: $what (rc=$?)"; }
ev=$("$R" -d nodeB "exec drbdsetup events2 --timestamps all")
evA=$("$R" -d nodeA "exec drbdsetup events2 --timestamps all")
sleep 0.5
echo "== 1. reconnect (disconnect/connect on nodeA)"
run nodeA "drbdadm disconnect $LAB_RES"
run nodeA "drbdadm connect $LAB_RES"
waitfor nodeA "drbdadm cstate $LAB_RES | grep -q Connected"
echo "== 2. promote nodeA, mkfs, write"
run nodeA "drbdadm primary $LAB_RES && mkfs.ext4 -q -F /dev/drbd0 && mkdir -p /mnt/r0 && mount /dev/drbd0 /mnt/r0 && for i in 1 2 3; do echo hello-\$i > /mnt/r0/file\$i; done && dd if=/dev/urandom of=/mnt/r0/blob bs=1M count=8 status=none && sync && md5sum /mnt/r0/file* /mnt/r0/blob && drbdadm status $LAB_RES"
echo "== 3. dual primary must be refused on nodeB"
run nodeB "drbdadm primary $LAB_RES"
echo "== 4. power-cut nodeA (SIGKILL of its UML process group)"
tk=$(date +%s.%N); echo "    kill issued at $(date -u +%T.%N)"; "$HERE/lab-kill.sh" nodeA; echo "[$(el)s] nodeA killed"
waitfor nodeB "! drbdadm cstate $LAB_RES | grep -q '^Connected'"
echo "    peer loss noticed by nodeB $(echo "$(date +%s.%N) - $tk" | bc | xargs printf '%.2f')s after the kill"
run nodeB "drbdadm cstate $LAB_RES; drbdadm role $LAB_RES; drbdadm dstate $LAB_RES"
echo "== 5. promote nodeB, mount, verify, write more"
run nodeB "drbdadm primary $LAB_RES && mkdir -p /mnt/r0 && mount /dev/drbd0 /mnt/r0 && cat /mnt/r0/file* && md5sum /mnt/r0/file* /mnt/r0/blob && echo written-on-B > /mnt/r0/fileB && sync && drbdadm status $LAB_RES"
echo "== 6. reboot nodeA: it must come back Secondary and resync from nodeB"
cp "$evA" "$LAB_DIR/events-nodeA-until-kill.txt"
tb=$(date +%s.%N); LAB_WAIT_CONNECTED=0 "$HERE/lab-up.sh" nodeA | sed 's/^/    /'
waitfor nodeA "drbdadm dstate $LAB_RES | grep -q '^UpToDate/UpToDate'"
echo "    nodeA boot -> UpToDate/UpToDate in $(echo "$(date +%s.%N) - $tb" | bc | xargs printf '%.2f')s"
run nodeA "drbdadm status $LAB_RES; cat /proc/drbd"
echo "== 7. demote nodeB"
run nodeB "umount /mnt/r0 && drbdadm secondary $LAB_RES && drbdadm status $LAB_RES"
sleep 1
echo "== events2 on nodeB"
cp "$ev" "$LAB_DIR/events-nodeB.txt"
cat "$LAB_DIR/events-nodeB.txt"
"$R" nodeB "pkill -x drbdsetup; true" >/dev/null; echo "== demo done"
