//! The `drbd` resource type: DRBD as the bottom of the stack, promoted on
//! the primary with `drbdadm primary` and demoted with `drbdadm secondary`
//! (never `--force`), monitored from a long-running `events2` stream rather
//! than by polling.
//!
//! The engine decides *whether* to promote (the lease, drbd.md's disk
//! rules); this module carries the decision out and reports DRBD's own
//! refusal, typed, when DRBD disagrees.

use std::time::Duration;

use drbd::admin::{Admin, AdminConfig, AdminError, ErrorKind};
use drbd::events::{DiskState, Role};
use drbd::monitor::StateView;
use tokio::sync::watch;

use crate::engine::{Disk, DrbdView, FailClass, Op, Outcome};

/// Tries of one promotion refused "while peer is not outdated" (see
/// [`DrbdResource::run`]).
pub const PROMOTE_TRIES: u32 = 3;

/// One DRBD resource under hapair.
#[derive(Debug)]
pub struct DrbdResource {
    /// The DRBD resource name (`r0`).
    pub name: String,
    admin: Admin,
    view: watch::Receiver<StateView>,
}

/// The engine's disk state for a DRBD one (`None`: not seen).
pub fn disk(d: Option<&DiskState>) -> Disk {
    match d {
        Some(DiskState::UpToDate) => Disk::UpToDate,
        Some(DiskState::Consistent) => Disk::Consistent,
        Some(DiskState::Outdated) => Disk::Outdated,
        Some(DiskState::Inconsistent | DiskState::Negotiating | DiskState::Attaching) => {
            Disk::Inconsistent
        }
        _ => Disk::Unknown,
    }
}

/// The engine's DRBD input, from the monitor's view of `resource`; `None`
/// while the view is not ready (the engine then promotes nothing).
pub fn engine_view(v: &StateView, resource: &str) -> Option<DrbdView> {
    let cluster = v.cluster()?;
    if !cluster.ready() {
        return None;
    }
    let pv = drbd::promote::View::of(cluster, resource, false, false);
    pv.local_disk.as_ref()?;
    Some(DrbdView {
        local: disk(pv.local_disk.as_ref()),
        peer: disk(pv.peer_disk.as_ref()),
    })
}

/// How a DRBD refusal counts for the engine.
pub fn failure_class(e: &AdminError) -> FailClass {
    match e.kind() {
        // the peer still holds the role, or DRBD is busy: may pass
        Some(
            ErrorKind::PeerIsPrimary | ErrorKind::TransientState | ErrorKind::ConcurrentStateChange,
        ) => FailClass::Soft,
        // this node's data is not good enough, or DRBD is not set up here
        Some(
            ErrorKind::NoUpToDateData
            | ErrorKind::PeerNotOutdated
            | ErrorKind::LowerThanOutdated
            | ErrorKind::UnknownResource
            | ErrorKind::NoResourcesDefined
            | ErrorKind::ModuleNotLoaded
            | ErrorKind::ConfigInvalid,
        ) => FailClass::Hard,
        _ => match e {
            AdminError::NotInstalled { .. } | AdminError::InvalidName(_) => FailClass::Hard,
            _ => FailClass::Soft,
        },
    }
}

impl DrbdResource {
    /// `name` under `drbdadm`/`drbdsetup` as configured, followed through `view`.
    pub fn new(name: &str, cfg: AdminConfig, view: watch::Receiver<StateView>) -> DrbdResource {
        DrbdResource {
            name: name.to_string(),
            admin: Admin::new(cfg),
            view,
        }
    }

    /// `drbdadm adjust`: brings the resource up (Secondary) or in line with
    /// its config; the daemon does this once at start.
    pub async fn adjust(&self) -> Result<(), AdminError> {
        self.admin.adjust(&self.name).await.map(|_| ())
    }

    /// The events2 view it follows.
    pub fn view(&self) -> watch::Receiver<StateView> {
        self.view.clone()
    }

    fn local_role(&self) -> Option<Role> {
        let v = self.view.borrow();
        let c = v.cluster()?;
        if !c.ready() {
            return None;
        }
        c.resource(&self.name).and_then(|r| r.role.clone())
    }

    /// `drbdadm primary`. DRBD 8.4 refuses a promotion "while peer is not
    /// outdated" when the attempt starts before DRBD has noticed that the
    /// peer is gone: the fence-peer handler then runs inside the failed
    /// attempt and its answer (peer fenced: Outdated) only counts for the
    /// next one. So when the events stream shows the peer Outdated within
    /// a moment of that refusal, the promotion is tried again, at most
    /// [`PROMOTE_TRIES`] times and within `timeout`; any other refusal is
    /// final. DRBD checks the rule itself on every try (never `--force`).
    async fn promote(&self, admin: &Admin, timeout: Duration) -> (Outcome, Option<String>) {
        let until = tokio::time::Instant::now() + timeout;
        let mut tries = 0;
        loop {
            tries += 1;
            let e = match admin.primary(&self.name).await {
                Ok(_) => return (Outcome::Ok, None),
                Err(e) => e,
            };
            let again = e.kind() == Some(ErrorKind::PeerNotOutdated)
                && tries < PROMOTE_TRIES
                && self.peer_becomes_outdated(until).await;
            if !again {
                return (Outcome::Failed(failure_class(&e)), Some(e.to_string()));
            }
            tracing::info!(
                resource = %self.name,
                "DRBD refused the promotion before its fence-peer handler's answer counted; \
                 the peer is Outdated now: trying again"
            );
        }
    }

    /// Waits (at most a second, and not past `until`) for the events
    /// stream to show the peer's disk Outdated.
    async fn peer_becomes_outdated(&self, until: tokio::time::Instant) -> bool {
        let until = until.min(tokio::time::Instant::now() + Duration::from_secs(1));
        let mut rx = self.view.clone();
        loop {
            let outdated = engine_view(&rx.borrow_and_update(), &self.name)
                .is_some_and(|v| v.peer == Disk::Outdated);
            if outdated {
                return true;
            }
            if !matches!(
                tokio::time::timeout_at(until, rx.changed()).await,
                Ok(Ok(()))
            ) {
                return false;
            }
        }
    }

    /// Runs `op`: promote/start = `primary`, demote/stop = `secondary`,
    /// monitor = the role from the events stream (a one-shot `events2
    /// --now` while the stream is restarting).
    pub async fn run(&self, op: Op, timeout: Duration) -> (Outcome, Option<String>) {
        let admin = self.admin.with_timeout(timeout);
        match op {
            Op::Promote | Op::Start => self.promote(&admin, timeout).await,
            Op::Demote | Op::Stop => match admin.secondary(&self.name).await {
                Ok(_) => (Outcome::Ok, None),
                Err(e) => (Outcome::Failed(FailClass::Soft), Some(e.to_string())),
            },
            Op::Monitor => {
                let role = match self.local_role() {
                    Some(r) => Some(r),
                    None => match admin.events_now(Some(&self.name)).await {
                        Ok(s) if s.cluster.ready() => {
                            s.cluster.resource(&self.name).and_then(|r| r.role.clone())
                        }
                        Ok(_) => {
                            return (
                                Outcome::Failed(FailClass::Soft),
                                Some("events2 --now: incomplete dump".into()),
                            );
                        }
                        Err(e) => return (Outcome::Failed(FailClass::Soft), Some(e.to_string())),
                    },
                };
                match role {
                    Some(Role::Primary) => (Outcome::Ok, None),
                    Some(r) => (
                        Outcome::NotRunning,
                        Some(format!("DRBD {} is {r}, not Primary", self.name)),
                    ),
                    None => (
                        Outcome::NotRunning,
                        Some(format!("DRBD resource {} is not up", self.name)),
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_states_map_conservatively() {
        assert_eq!(disk(Some(&DiskState::UpToDate)), Disk::UpToDate);
        assert_eq!(disk(Some(&DiskState::Consistent)), Disk::Consistent);
        assert_eq!(disk(Some(&DiskState::Outdated)), Disk::Outdated);
        assert_eq!(disk(Some(&DiskState::Inconsistent)), Disk::Inconsistent);
        assert_eq!(disk(Some(&DiskState::DUnknown)), Disk::Unknown);
        assert_eq!(disk(Some(&DiskState::Diskless)), Disk::Unknown);
        assert_eq!(disk(Some(&DiskState::Other("Weird".into()))), Disk::Unknown);
        assert_eq!(disk(None), Disk::Unknown);
    }

    fn view(text: &str) -> StateView {
        let snap = drbd::admin::snapshot_from_dump(text);
        StateView::Ready {
            generation: 1,
            cluster: std::sync::Arc::new(snap.cluster),
        }
    }

    /// The start of a real capture (drbd/tests/fixtures), then a disconnect.
    const DUMP: &str = "\
2026-11-24T21:31:45.351078+00:00 exists resource name:r0 role:Secondary suspended:no
2026-11-24T21:31:45.351078+00:00 exists connection name:r0 peer-node-id:0 conn-name:peer connection:Connected role:Secondary
2026-11-24T21:31:45.351078+00:00 exists device name:r0 volume:0 minor:0 disk:UpToDate
2026-11-24T21:31:45.351078+00:00 exists peer-device name:r0 peer-node-id:0 conn-name:peer volume:0 replication:Established peer-disk:UpToDate resync-suspended:no
2026-11-24T21:31:45.354151+00:00 exists -
";

    #[test]
    fn engine_view_from_a_real_dump() {
        let v = view(DUMP);
        assert_eq!(
            engine_view(&v, "r0"),
            Some(DrbdView {
                local: Disk::UpToDate,
                peer: Disk::UpToDate
            })
        );
        assert_eq!(engine_view(&v, "r1"), None, "unknown resource: no view");
        // an unfinished dump is no view at all
        let partial: String = DUMP.lines().take(4).map(|l| format!("{l}\n")).collect();
        assert_eq!(engine_view(&view(&partial), "r0"), None);
        let unknown = StateView::Unknown {
            generation: 2,
            reason: drbd::monitor::Stale::Loading,
        };
        assert_eq!(engine_view(&unknown, "r0"), None);
    }

    /// A `drbdadm` stand-in (a script) that refuses the first `primary`
    /// as DRBD 8.4 does before its fence-peer handler's answer counts, and
    /// takes the next; it counts its calls in `calls`.
    fn refusing_drbdadm(dir: &std::path::Path) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("drbdadm");
        let calls = dir.join("calls");
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"$*\" >> {c}\n                 if [ \"$(wc -l < {c})\" -gt 1 ]; then exit 0; fi\n                 echo '0: State change failed: (-7) Refusing to be Primary while peer is not outdated' >&2\n                 echo \"Command 'drbdsetup-84 primary 0' terminated with exit code 11\" >&2\n                 exit 11\n",
                c = calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn resource(dir: &std::path::Path, v: StateView) -> (DrbdResource, watch::Sender<StateView>) {
        let (tx, rx) = watch::channel(v);
        let cfg = AdminConfig {
            drbdadm: refusing_drbdadm(dir),
            drbdsetup: dir.join("drbdsetup-unused"),
            timeout: Duration::from_secs(10),
        };
        (DrbdResource::new("r0", cfg, rx), tx)
    }

    /// The lab's power-cut race: the first `primary` is refused "while peer
    /// is not outdated", the events stream then shows the peer Outdated
    /// (the handler's answer), and the second try is taken.
    #[tokio::test(flavor = "current_thread")]
    async fn a_promotion_refused_before_the_handlers_answer_counted_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let (r, tx) = resource(dir.path(), view(DUMP));
        let outdated = DUMP
            .replace("connection:Connected", "connection:Connecting")
            .replace("peer-disk:UpToDate", "peer-disk:Outdated");
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send_replace(view(&outdated));
            tx
        });
        let (outcome, reason) = r.run(Op::Promote, Duration::from_secs(10)).await;
        assert_eq!(outcome, Outcome::Ok, "{reason:?}");
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert_eq!(calls.lines().count(), 2, "{calls}");
        assert!(calls.lines().all(|l| l.contains("primary r0")), "{calls}");
        drop(later.await.unwrap());
    }

    /// Without the peer becoming Outdated the refusal is final (hard), after
    /// one try: DRBD's rule is never worked around.
    #[tokio::test(flavor = "current_thread")]
    async fn a_promotion_refused_while_the_peer_stays_up_to_date_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let (r, _tx) = resource(dir.path(), view(DUMP));
        let (outcome, reason) = r.run(Op::Promote, Duration::from_secs(10)).await;
        assert_eq!(outcome, Outcome::Failed(FailClass::Hard));
        assert!(
            reason.as_deref().unwrap_or("").contains("not outdated"),
            "{reason:?}"
        );
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert_eq!(calls.lines().count(), 1, "{calls}");
    }
}

/// Reads the kernel log (`/dev/kmsg`, every record still in the ring
/// buffer) for the last split-brain report about `resource` or its device
/// `drbd<minor>`: a split brain that happened before the daemon started
/// leaves the connection StandAlone and no event on the stream. Blocking
/// (a few reads): call it off the runtime's threads.
pub fn kernel_split_brain(
    resource: &str,
    minor: Option<u32>,
) -> std::io::Result<Option<drbd::monitor::SplitBrainLine>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open("/dev/kmsg")?;
    let mut records = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match f.read(&mut buf) {
            // one record per read
            Ok(0) => break,
            Ok(n) => records.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // a record was overwritten while we read: go on with the next
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EPIPE as i32) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(drbd::monitor::last_split_brain(
        records.iter().map(String::as_str),
        resource,
        minor,
    ))
}

#[cfg(test)]
mod kmsg_tests {
    /// Writes a DRBD-style split-brain line into the real kernel log (root)
    /// for a resource name no real DRBD uses, and finds it.
    #[test]
    fn a_split_brain_in_the_kernel_log_is_found() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "needs root to write /dev/kmsg"
        );
        let res = format!("hapairtest{}", std::process::id());
        assert_eq!(super::kernel_split_brain(&res, None).unwrap(), None);
        let line = format!(
            "<2>drbd {res}/0 drbd{} peer: Split-Brain detected but unresolved, dropping connection!\n",
            4000 + std::process::id() % 1000
        );
        std::fs::write("/dev/kmsg", line).expect("write /dev/kmsg");
        let found = super::kernel_split_brain(&res, None)
            .unwrap()
            .expect("the line just written");
        assert_eq!(found.split_brain, drbd::monitor::SplitBrain::Unresolved);
        assert!(found.object.contains(&res), "{found:?}");
        // and a manual resolution afterwards is the last word
        std::fs::write(
            "/dev/kmsg",
            format!("<4>drbd {res}/0 drbd9 peer: Split-Brain detected, manually solved. Sync from peer node\n"),
        )
        .expect("write /dev/kmsg");
        assert!(matches!(
            super::kernel_split_brain(&res, None)
                .unwrap()
                .map(|l| l.split_brain),
            Some(drbd::monitor::SplitBrain::ManuallySolved { .. })
        ));
    }
}
