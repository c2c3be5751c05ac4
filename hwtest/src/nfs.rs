//! Lab scenario 6 (issue 5): a kernel NFSv4 server on the DRBD filesystem,
//! run by hapair as `ocf:lab:nfs`, and a writer on a client guest that
//! appends records through an NFS mount of the service address.
//!
//! The server is NFSv4 only (`rpc.nfsd -N 3`, `rpc.mountd -N 3`): no
//! rpcbind, statd or lockd. The guests' root is the host's `/` read-only,
//! so the agent bind-mounts a state directory of the DRBD filesystem over
//! `/var/lib/nfs` (the export table and the v4 client records, which
//! `nfsdcltrack` keeps in `nfsdcltrack/main.sqlite`): the node that takes
//! over knows the clients of the dead one and lets them reclaim their
//! state in its grace period. The v4 lease and grace times are set to
//! [`lab::GRACE_SECS`] before nfsd starts (the kernel default is 90 s).
//!
//! The writer ([`write_records`], `hapair-recordd nfswriter`) appends
//! `N\n` with `O_APPEND` and `fdatasync`s after each record; only then it
//! logs `ack N UNIX_MS OPEN` ([`crate::record::parse_acks`] reads it). On a
//! hard mount `fdatasync` returns once the server has committed the data
//! (a COMMIT whose write verifier matches, or the client resends), so an
//! acknowledged record must be in the file on whichever node serves next.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::thread;
use std::time::Duration;

use crate::record::unix_ms;

/// Appends records `start`, `start + 1`, ... to `path` (until `count` are
/// acknowledged, forever if `None`), logging to `log`: `open K UNIX_MS`
/// per open of the file, `ack N UNIX_MS K` after the record's
/// `fdatasync` returned, `err N UNIX_MS MESSAGE` on a failed open, write or
/// sync (then it reopens after 100 ms and writes the same record again, so
/// a record may be in the file twice, never acknowledged twice).
pub fn write_records(
    path: &Path,
    start: u64,
    count: Option<u64>,
    log: &mut dyn Write,
) -> io::Result<()> {
    let mut n = start;
    let mut opens = 0u64;
    let mut file: Option<File> = None;
    loop {
        if count.is_some_and(|c| n >= start.saturating_add(c)) {
            return Ok(());
        }
        let f = match file.take() {
            Some(f) => f,
            None => match OpenOptions::new().create(true).append(true).open(path) {
                Ok(f) => {
                    opens += 1;
                    writeln!(log, "open {opens} {}", unix_ms())?;
                    log.flush()?;
                    f
                }
                Err(e) => {
                    writeln!(log, "err {n} {} open: {e}", unix_ms())?;
                    log.flush()?;
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            },
        };
        let res = (&f)
            .write_all(format!("{n}\n").as_bytes())
            .and_then(|()| f.sync_data());
        match res {
            Ok(()) => {
                writeln!(log, "ack {n} {} {opens}", unix_ms())?;
                log.flush()?;
                n += 1;
                file = Some(f);
            }
            Err(e) => {
                writeln!(log, "err {n} {} {e}", unix_ms())?;
                log.flush()?;
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// `hapair-recordd nfswriter --file PATH [--start N] [--count N]`: runs
/// [`write_records`] with the log on stdout. Returns the exit code.
pub fn main_args(args: &[String]) -> i32 {
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let Some(file) = flag("--file") else {
        eprintln!("usage: nfswriter --file PATH [--start N] [--count N]");
        return 2;
    };
    let Ok(start) = flag("--start").map_or(Ok(1), |s| s.parse::<u64>()) else {
        eprintln!("bad --start");
        return 2;
    };
    let Ok(count) = flag("--count").map(|s| s.parse::<u64>()).transpose() else {
        eprintln!("bad --count");
        return 2;
    };
    let mut out = io::stdout().lock();
    match write_records(Path::new(&file), start, count, &mut out) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("nfswriter: {e}");
            1
        }
    }
}

/// What the lab needs for the NFS server and its client.
pub mod lab {
    /// The v4 lease and grace time of the lab server, seconds (the
    /// kernel's minimum lease is 10 s).
    pub const GRACE_SECS: u32 = 10;
    /// Where nodeC mounts the export.
    pub const CLIENT_MNT: &str = "/mnt/nfs";
    /// The records file, relative to the export (and to [`CLIENT_MNT`]).
    pub const RECORDS: &str = "records.log";
    /// The agent's file name in the lab's `bin` dir; it is installed as
    /// the OCF provider `lab`, type `nfs`.
    pub const AGENT_FILE: &str = "nfs-agent";

    /// The exported directory (the NFSv4 root) on the filesystem at `mnt`.
    pub fn export_dir(mnt: &str) -> String {
        format!("{mnt}/export")
    }

    /// The server's state directory (bind-mounted on `/var/lib/nfs`).
    pub fn state_dir(mnt: &str) -> String {
        format!("{mnt}/nfsstate")
    }

    /// The OCF agent `ocf:lab:nfs` (bash): start loads nfsd, mounts the
    /// nfsd fs, bind-mounts `state` on `/var/lib/nfs`, sets lease and grace
    /// time, exports `export` to `clients` (`rw,sync,no_subtree_check,
    /// no_root_squash,fsid=0`), starts `rpc.mountd -N 3` and
    /// `rpc.nfsd -N 3 -U 4`; stop runs `rpc.nfsd 0`, `exportfs -ua`, stops
    /// mountd and unmounts the bind, so the filesystem can be unmounted;
    /// monitor is "nfsd has threads".
    pub const AGENT: &str = r##"#!/bin/bash
# ocf:lab:nfs - an NFSv4-only kernel NFS server for the hapair lab (no rpcbind, no statd, no lockd)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
ex=${OCF_RESKEY_export:-/mnt/r0/export}
st=${OCF_RESKEY_state:-/mnt/r0/nfsstate}
cl=${OCF_RESKEY_clients:-10.88.0.0/24}
gr=${OCF_RESKEY_grace:-10}
pidf=/run/lab-nfs-mountd.pid
running() { local t; t=$(cat /proc/fs/nfsd/threads 2>/dev/null) && [ "${t:-0}" -gt 0 ]; }
mountd_pid() { local p; p=$(cat $pidf 2>/dev/null) && [ -n "$p" ] && [ -d "/proc/$p" ] && echo "$p"; }
case $1 in
meta-data)
  cat <<'XML'
<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="nfs" version="1.0">
<version>1.0</version>
<longdesc lang="en">NFSv4-only kernel NFS server exporting one directory, its state (v4 client records, etab) on the same filesystem.</longdesc>
<shortdesc lang="en">hapair lab NFSv4 server</shortdesc>
<parameters>
<parameter name="export"><shortdesc lang="en">exported directory (the NFSv4 root)</shortdesc><content type="string" default="/mnt/r0/export"/></parameter>
<parameter name="state"><shortdesc lang="en">directory bind-mounted on /var/lib/nfs</shortdesc><content type="string" default="/mnt/r0/nfsstate"/></parameter>
<parameter name="clients"><shortdesc lang="en">clients allowed</shortdesc><content type="string" default="10.88.0.0/24"/></parameter>
<parameter name="grace"><shortdesc lang="en">v4 lease and grace time, seconds</shortdesc><content type="string" default="10"/></parameter>
</parameters>
<actions>
<action name="start" timeout="30s"/><action name="stop" timeout="10s"/>
<action name="monitor" timeout="10s" interval="10s"/><action name="meta-data" timeout="5s"/>
<action name="validate-all" timeout="5s"/>
</actions>
</resource-agent>
XML
  exit 0;;
validate-all) exit 0;;
monitor|status) running && exit 0; exit 7;;
start)
  running && exit 0
  [ -d "$ex" ] || { echo "nfs: $ex is not a directory" >&2; exit 5; }
  mkdir -p "$st/v4recovery" "$st/rpc_pipefs" || exit 1
  # the lab's modules are under /run/modroot (guest-init.sh); the agent's environment is clean
  mp=(); [ -d /run/modroot ] && mp=(-d /run/modroot)
  modprobe "${mp[@]}" nfsd || { echo "nfs: modprobe nfsd failed" >&2; exit 1; }
  grep -q ' /proc/fs/nfsd nfsd ' /proc/mounts || mount -t nfsd nfsd /proc/fs/nfsd || { echo "nfs: cannot mount the nfsd fs" >&2; exit 1; }
  grep -q ' /var/lib/nfs ' /proc/mounts || mount --bind "$st" /var/lib/nfs || { echo "nfs: cannot bind $st on /var/lib/nfs" >&2; exit 1; }
  echo "$gr" > /proc/fs/nfsd/nfsv4leasetime || { echo "nfs: cannot set the lease time" >&2; exit 1; }
  echo "$gr" > /proc/fs/nfsd/nfsv4gracetime || { echo "nfs: cannot set the grace time" >&2; exit 1; }
  : > /var/lib/nfs/etab
  exportfs -o rw,sync,no_subtree_check,no_root_squash,fsid=0 "$cl:$ex" || { echo "nfs: exportfs failed" >&2; exit 1; }
  if ! mountd_pid >/dev/null; then
    rpc.mountd -N 3 -F >/var/log/lab-nfs-mountd.log 2>&1 &
    echo $! > $pidf
  fi
  rpc.nfsd -N 3 -U 4 || { echo "nfs: rpc.nfsd failed" >&2; exit 1; }
  running || { echo "nfs: nfsd has no threads" >&2; exit 1; }
  exit 0;;
stop)
  rpc.nfsd 0 2>/dev/null
  exportfs -ua 2>/dev/null
  p=$(mountd_pid) && kill "$p" 2>/dev/null
  for _ in $(seq 50); do mountd_pid >/dev/null || break; sleep 0.1; done
  rm -f $pidf
  if grep -q ' /var/lib/nfs ' /proc/mounts; then umount /var/lib/nfs || umount -l /var/lib/nfs; fi
  running && exit 1
  exit 0;;
*) exit 3;;
esac
"##;

    /// A guest script that makes `ocf:lab:nfs` available: a tmpfs over
    /// `/usr/lib/ocf/resource.d` linking the host's providers back, plus
    /// the provider `lab` with the agent at `agent` (idempotent; per boot).
    pub fn install_provider_script(agent: &str) -> String {
        format!(
            "set -e
if ! grep -q ' /usr/lib/ocf/resource.d ' /proc/self/mountinfo; then
  mkdir -p /run/ocf-host && mount --bind /usr/lib/ocf/resource.d /run/ocf-host
  mount -t tmpfs ocf /usr/lib/ocf/resource.d
  for d in /run/ocf-host/*; do ln -s \"$d\" /usr/lib/ocf/resource.d/; done
fi
mkdir -p /usr/lib/ocf/resource.d/lab
ln -sf {agent} /usr/lib/ocf/resource.d/lab/nfs
test -x /usr/lib/ocf/resource.d/lab/nfs"
        )
    }

    /// The hapair `[[resource]]` of the server. The stop gets 10 s (the
    /// lab pair's `lock_timeout` leaves room for no more; it takes < 1 s).
    pub fn resource_toml(mnt: &str) -> String {
        format!(
            r#"[[resource]]
name = "svc"
type = "ocf:lab:nfs"
params = {{ export = "{}", state = "{}", clients = "10.88.0.0/24", grace = "{GRACE_SECS}" }}
start_timeout = "30s"
stop_timeout = "10s"
monitor_interval = "10s"
monitor_timeout = "20s"
"#,
            export_dir(mnt),
            state_dir(mnt)
        )
    }

    /// A shell condition that holds where the server runs.
    pub fn running_check() -> &'static str {
        "[ \"$(cat /proc/fs/nfsd/threads 2>/dev/null)\" -gt 0 ] 2>/dev/null"
    }

    /// A guest script that mounts `server:/` on [`CLIENT_MNT`] (NFS 4.2,
    /// hard, 1 s RPC timeout, TCP).
    pub fn mount_script(server: &str) -> String {
        format!(
            "modprobe nfsv4 && mkdir -p {CLIENT_MNT} && \
             {{ mountpoint -q {CLIENT_MNT} || mount -t nfs4 -o vers=4.2,hard,proto=tcp,timeo=10,retrans=3 {server}:/ {CLIENT_MNT}; }}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{lost, parse_acks};

    #[test]
    fn writer_acks_every_record_it_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(lab::RECORDS);
        let mut log = Vec::new();
        write_records(&path, 5, Some(40), &mut log).unwrap();
        let log = String::from_utf8(log).unwrap();
        assert!(log.starts_with("open 1 "), "{log}");
        let acks = parse_acks(&log);
        assert_eq!(
            acks.iter().map(|a| a.n).collect::<Vec<_>>(),
            (5..45).collect::<Vec<_>>()
        );
        assert!(acks.iter().all(|a| a.conn == 1));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(lost(&acks, &text).is_empty());
        assert_eq!(text.lines().count(), 40);
        // a second run appends
        let mut log2 = Vec::new();
        write_records(&path, 45, Some(3), &mut log2).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().last(), Some("47"));
    }

    #[test]
    fn writer_retries_a_record_it_could_not_open_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join(lab::RECORDS);
        let p2 = path.clone();
        let t = thread::spawn(move || {
            let mut log = Vec::new();
            write_records(&p2, 1, Some(2), &mut log).unwrap();
            String::from_utf8(log).unwrap()
        });
        thread::sleep(Duration::from_millis(250));
        std::fs::create_dir(path.parent().unwrap()).unwrap();
        let log = t.join().unwrap();
        assert!(log.starts_with("err 1 "), "{log}");
        assert_eq!(parse_acks(&log).len(), 2, "{log}");
    }

    #[test]
    fn resource_and_agent_agree() {
        let r = lab::resource_toml("/mnt/r0");
        assert!(r.contains("type = \"ocf:lab:nfs\""));
        assert!(r.contains("export = \"/mnt/r0/export\""));
        for p in ["export", "state", "clients", "grace"] {
            assert!(lab::AGENT.contains(&format!("OCF_RESKEY_{p}")), "{p}");
            assert!(
                lab::AGENT.contains(&format!("<parameter name=\"{p}\">")),
                "{p}"
            );
        }
        assert!(lab::AGENT.starts_with("#!/bin/bash\n"));
    }
}
