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

    /// Runs `op`: promote/start = `primary`, demote/stop = `secondary`,
    /// monitor = the role from the events stream (a one-shot `events2
    /// --now` while the stream is restarting).
    pub async fn run(&self, op: Op, timeout: Duration) -> (Outcome, Option<String>) {
        let admin = self.admin.with_timeout(timeout);
        match op {
            Op::Promote | Op::Start => match admin.primary(&self.name).await {
                Ok(_) => (Outcome::Ok, None),
                Err(e) => (Outcome::Failed(failure_class(&e)), Some(e.to_string())),
            },
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
