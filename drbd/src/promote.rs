//! The promotion rule, as a pure function of what the node knows.
//!
//! It never overrides DRBD: the refusal reasons mirror DRBD's own, and there
//! is no path that suggests `--force`.

use crate::events::{DiskState, Role};
use crate::model::{Cluster, Resource};

/// What the rule looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// The model saw `exists -` (initial dump complete).
    pub ready: bool,
    /// This node holds the sfex lease for the resource.
    pub lease_held: bool,
    /// Local role.
    pub local_role: Option<Role>,
    /// Worst local disk state over all volumes (`None`: no device seen).
    pub local_disk: Option<DiskState>,
    /// Role of the peer (`None`: no connection object).
    pub peer_role: Option<Role>,
    /// Worst peer disk state over all volumes.
    pub peer_disk: Option<DiskState>,
    /// The fence-peer handler confirmed the peer fenced (outdated or shot).
    pub peer_fenced: bool,
    /// DRBD 9 `may_promote` (`None` on 8.4).
    pub may_promote: Option<bool>,
    /// Quorum: `Some(false)` if any volume lost quorum (`None` on 8.4).
    pub quorum: Option<bool>,
}

impl View {
    /// Build a view of `resource` from the model plus the facts the model
    /// does not hold (lease, fencing). Unknown resource: every field empty.
    pub fn of(cluster: &Cluster, resource: &str, lease_held: bool, peer_fenced: bool) -> Self {
        let r = cluster.resource(resource);
        let empty = Resource::default();
        let r = r.unwrap_or(&empty);
        let worst = |it: &mut dyn Iterator<Item = Option<&DiskState>>| -> Option<DiskState> {
            let mut w: Option<DiskState> = None;
            let mut any = false;
            for d in it {
                any = true;
                let d = d.cloned().unwrap_or(DiskState::DUnknown);
                if w.as_ref().is_none_or(|x| d.rank() < x.rank()) {
                    w = Some(d);
                }
            }
            if any { w } else { None }
        };
        let local_disk = worst(&mut r.devices.values().map(|d| d.disk.as_ref()));
        let peer_disk = worst(
            &mut r
                .connections
                .values()
                .flat_map(|c| c.peer_devices.values())
                .map(|p| p.peer_disk.as_ref()),
        );
        let peer_role = r
            .connections
            .values()
            .filter_map(|c| c.peer_role.clone())
            .max_by_key(|role| matches!(role, Role::Primary));
        let quorum = r
            .devices
            .values()
            .filter_map(|d| d.quorum)
            .reduce(|a, b| a && b);
        View {
            ready: cluster.ready(),
            lease_held,
            local_role: r.role.clone(),
            local_disk,
            peer_role,
            peer_disk,
            peer_fenced,
            may_promote: r.may_promote,
            quorum,
        }
    }
}

/// Why promotion is refused. None of them is to be overridden with `--force`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The events2 initial dump has not ended.
    #[error("DRBD state not known yet (no `exists -` seen)")]
    NotReady,
    /// Already Primary: nothing to do.
    #[error("already Primary")]
    AlreadyPrimary,
    /// The lease is not held by this node.
    #[error("the lease is not held by this node")]
    NoLease,
    /// The peer is Primary.
    #[error("the peer is Primary")]
    PeerPrimary,
    /// DRBD 9 reports lost quorum.
    #[error("no quorum")]
    NoQuorum,
    /// DRBD 9 reports `may_promote:no`.
    #[error("DRBD says may_promote:no")]
    DrbdSaysNo,
    /// Local data is Consistent but the peer is neither Outdated nor fenced.
    #[error("local disk Consistent and the peer is neither Outdated nor fenced")]
    PeerNotOutdated,
    /// Local disk not good enough.
    #[error("local disk is {0}, need UpToDate")]
    DiskNotUpToDate(String),
}

/// Decide whether this node may promote.
pub fn check(v: &View) -> Result<(), Refusal> {
    if !v.ready {
        return Err(Refusal::NotReady);
    }
    if v.local_role == Some(Role::Primary) {
        return Err(Refusal::AlreadyPrimary);
    }
    if !v.lease_held {
        return Err(Refusal::NoLease);
    }
    if v.peer_role == Some(Role::Primary) {
        return Err(Refusal::PeerPrimary);
    }
    if v.quorum == Some(false) {
        return Err(Refusal::NoQuorum);
    }
    if v.may_promote == Some(false) {
        return Err(Refusal::DrbdSaysNo);
    }
    match &v.local_disk {
        Some(DiskState::UpToDate) => Ok(()),
        Some(DiskState::Consistent) => {
            if v.peer_fenced || v.peer_disk == Some(DiskState::Outdated) {
                Ok(())
            } else {
                Err(Refusal::PeerNotOutdated)
            }
        }
        Some(d) => Err(Refusal::DiskNotUpToDate(d.to_string())),
        None => Err(Refusal::DiskNotUpToDate("unknown".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> View {
        View {
            ready: true,
            lease_held: true,
            local_role: Some(Role::Secondary),
            local_disk: Some(DiskState::UpToDate),
            peer_role: Some(Role::Unknown),
            peer_disk: Some(DiskState::DUnknown),
            peer_fenced: false,
            may_promote: None,
            quorum: None,
        }
    }

    #[test]
    fn uptodate_with_lease_promotes() {
        assert_eq!(check(&good()), Ok(()));
        let v = View {
            may_promote: Some(true),
            quorum: Some(true),
            ..good()
        };
        assert_eq!(check(&v), Ok(()));
    }

    #[test]
    fn not_ready_refused() {
        assert_eq!(
            check(&View {
                ready: false,
                ..good()
            }),
            Err(Refusal::NotReady)
        );
    }

    #[test]
    fn already_primary() {
        let v = View {
            local_role: Some(Role::Primary),
            ..good()
        };
        assert_eq!(check(&v), Err(Refusal::AlreadyPrimary));
    }

    #[test]
    fn no_lease_refused() {
        assert_eq!(
            check(&View {
                lease_held: false,
                ..good()
            }),
            Err(Refusal::NoLease)
        );
    }

    #[test]
    fn peer_primary_refused_even_if_fenced() {
        let v = View {
            peer_role: Some(Role::Primary),
            peer_fenced: true,
            ..good()
        };
        assert_eq!(check(&v), Err(Refusal::PeerPrimary));
    }

    #[test]
    fn no_quorum_refused() {
        let v = View {
            quorum: Some(false),
            may_promote: Some(true),
            ..good()
        };
        assert_eq!(check(&v), Err(Refusal::NoQuorum));
    }

    #[test]
    fn may_promote_no_refused() {
        let v = View {
            may_promote: Some(false),
            ..good()
        };
        assert_eq!(check(&v), Err(Refusal::DrbdSaysNo));
    }

    #[test]
    fn consistent_needs_outdated_or_fenced_peer() {
        let c = View {
            local_disk: Some(DiskState::Consistent),
            ..good()
        };
        assert_eq!(check(&c), Err(Refusal::PeerNotOutdated));
        let out = View {
            peer_disk: Some(DiskState::Outdated),
            ..c.clone()
        };
        assert_eq!(check(&out), Ok(()));
        let fenced = View {
            peer_fenced: true,
            ..c
        };
        assert_eq!(check(&fenced), Ok(()));
    }

    #[test]
    fn lower_disks_refused() {
        for d in [
            DiskState::Outdated,
            DiskState::Inconsistent,
            DiskState::Diskless,
            DiskState::DUnknown,
            DiskState::Other("Weird".into()),
        ] {
            let v = View {
                local_disk: Some(d.clone()),
                peer_fenced: true,
                ..good()
            };
            assert_eq!(check(&v), Err(Refusal::DiskNotUpToDate(d.to_string())));
        }
        let v = View {
            local_disk: None,
            ..good()
        };
        assert!(matches!(check(&v), Err(Refusal::DiskNotUpToDate(_))));
    }
}
