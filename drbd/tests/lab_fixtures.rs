//! The model and the promotion rule on events2 streams captured in the UML
//! lab (DRBD 8.4.11 under drbd-utils 9.22, by hwtest/tests/events2.rs): the
//! Primary until its power cut, the survivor's failover, and the old
//! Primary's rejoin and resync. Each stream is replayed line by line; the
//! final model, the transitions and the rule's answer at key moments are
//! asserted exactly.

use drbd::events::{ConnState, DiskState, ReplState, Role};
use drbd::model::Transition;
use drbd::promote::{Refusal, View, check};
use drbd::{Cluster, parse_line};

const UNTIL_CUT: &str = include_str!("fixtures/lab-events2-nodeA-until-powercut.txt");
const FAILOVER: &str = include_str!("fixtures/lab-events2-nodeB-failover.txt");
const REJOIN: &str = include_str!("fixtures/lab-events2-nodeA-rejoin.txt");

/// The statistics keys of drbd.md section 1.5, kept untyped.
const STATISTICS: &[&str] = &[
    "write-ordering",
    "size",
    "read",
    "written",
    "al-writes",
    "bm-writes",
    "upper-pending",
    "lower-pending",
    "al-suspended",
    "blocked",
    "congested",
    "ap-in-flight",
    "rs-in-flight",
    "received",
    "sent",
    "pending",
    "unacked",
    "dbdt1",
    "eta",
];

/// Replays `text`, calling `each` after every line with the model and that
/// line's transitions; returns the model and every transition.
fn replay(
    text: &str,
    mut each: impl FnMut(&Cluster, &str, &[Transition]),
) -> (Cluster, Vec<Transition>) {
    let mut m = Cluster::new();
    let mut all = Vec::new();
    for (no, l) in text.lines().enumerate() {
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let ev = parse_line(l).unwrap_or_else(|e| panic!("line {}: {e}: {l}", no + 1));
        // `--statistics` counters are kept as they came (drbd.md 1.5);
        // anything else would be a key the parser should know
        for (k, _) in &ev.fields.extra {
            assert!(
                STATISTICS.contains(&k.as_str()),
                "line {}: unexpected key {k}",
                no + 1
            );
        }
        let t = m
            .apply(&ev)
            .unwrap_or_else(|e| panic!("line {}: {e}", no + 1));
        each(&m, l, &t);
        all.extend(t);
    }
    (m, all)
}

fn roles(t: &[Transition]) -> Vec<(Option<Role>, Role)> {
    t.iter()
        .filter_map(|t| match t {
            Transition::Role { old, new, .. } => Some((old.clone(), new.clone())),
            _ => None,
        })
        .collect()
}

fn conns(t: &[Transition]) -> Vec<ConnState> {
    t.iter()
        .filter_map(|t| match t {
            Transition::Connection { new, .. } => Some(new.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_primary_until_its_power_cut() {
    let mut ready_at_promotion = None;
    let (m, t) = replay(UNTIL_CUT, |m, l, _| {
        if l.ends_with("role:Primary") {
            ready_at_promotion = Some(m.ready());
        }
    });
    assert_eq!(
        ready_at_promotion,
        Some(true),
        "promoted after the initial dump"
    );
    let r = m.resource("r0").expect("r0");
    assert_eq!(r.role, Some(Role::Primary));
    assert_eq!(r.devices[&0].disk, Some(DiskState::UpToDate));
    let c = &r.connections[&0];
    assert_eq!(c.state, Some(ConnState::Connected));
    assert_eq!(c.peer_role, Some(Role::Secondary));
    assert_eq!(c.peer_devices[&0].replication, Some(ReplState::Established));
    assert_eq!(c.peer_devices[&0].peer_disk, Some(DiskState::UpToDate));
    // the initial dump's state comes as transitions from nothing
    assert_eq!(
        roles(&t),
        vec![
            (None, Role::Secondary),
            (Some(Role::Secondary), Role::Primary)
        ]
    );
    // already Primary: the rule says so rather than promoting twice
    assert_eq!(
        check(&View::of(&m, "r0", true, false)),
        Err(Refusal::AlreadyPrimary)
    );
}

#[test]
fn the_survivor_sees_the_primary_vanish_promotes_then_resyncs_the_old_one() {
    let mut before_promotion = None;
    let (m, t) = replay(FAILOVER, |m, l, _| {
        // the moment the survivor may promote: the peer is gone, our data
        // UpToDate, and we hold the lease (the daemon's fact, given here)
        if l.contains("connection:Connecting") && before_promotion.is_none() {
            before_promotion = Some((
                check(&View::of(m, "r0", true, false)),
                check(&View::of(m, "r0", false, false)),
            ));
        }
    });
    let (with_lease, without) = before_promotion.expect("a Connecting line");
    assert_eq!(
        with_lease,
        Ok(()),
        "UpToDate, peer unknown, lease held: promote"
    );
    assert_eq!(without, Err(Refusal::NoLease), "never without the lease");
    assert_eq!(
        conns(&t),
        vec![
            ConnState::Connected,
            ConnState::NetworkFailure,
            ConnState::Unconnected,
            ConnState::Connecting,
            ConnState::Connected
        ]
    );
    assert_eq!(
        roles(&t),
        vec![
            (None, Role::Secondary),
            (Some(Role::Secondary), Role::Primary),
            (Some(Role::Primary), Role::Secondary)
        ]
    );
    let repl: Vec<ReplState> = t
        .iter()
        .filter_map(|t| match t {
            Transition::Replication { new, .. } => Some(new.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        repl,
        vec![
            ReplState::Established,
            ReplState::Off,
            ReplState::WFBitMapS,
            ReplState::SyncSource,
            ReplState::Established
        ]
    );
    let helpers: Vec<(&str, Option<i32>)> = t
        .iter()
        .filter_map(|t| match t {
            Transition::Helper { helper, status, .. } => Some((helper.as_str(), *status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        helpers,
        vec![
            ("before-resync-source", None),
            ("before-resync-source", Some(0))
        ]
    );
    // the end: demoted, connected, peer UpToDate again
    let r = m.resource("r0").expect("r0");
    assert_eq!(r.role, Some(Role::Secondary));
    let c = &r.connections[&0];
    assert_eq!(
        (c.state.clone(), c.peer_role.clone()),
        (Some(ConnState::Connected), Some(Role::Secondary))
    );
    assert_eq!(c.peer_devices[&0].peer_disk, Some(DiskState::UpToDate));
    assert_eq!(c.peer_devices[&0].out_of_sync, Some(0));
}

#[test]
fn the_old_primary_rejoins_as_sync_target_and_may_not_promote_meanwhile() {
    let mut during_sync = Vec::new();
    let (m, t) = replay(REJOIN, |m, _, _| {
        let r = m.resource("r0");
        let syncing = r
            .and_then(|r| r.connections.get(&0))
            .and_then(|c| c.peer_devices.get(&0))
            .is_some_and(|p| p.replication == Some(ReplState::SyncTarget));
        if syncing {
            during_sync.push(check(&View::of(m, "r0", true, false)));
        }
    });
    // while the peer is Primary and we are SyncTarget, never promotable,
    // even with the lease
    assert!(!during_sync.is_empty());
    assert!(during_sync.iter().all(Result::is_err), "{during_sync:?}");
    let disks: Vec<DiskState> = t
        .iter()
        .filter_map(|t| match t {
            Transition::Disk { new, .. } => Some(new.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        disks,
        vec![
            DiskState::Diskless,
            DiskState::Attaching,
            DiskState::UpToDate,
            DiskState::Outdated,
            DiskState::Inconsistent,
            DiskState::UpToDate
        ]
    );
    let r = m.resource("r0").expect("r0");
    assert_eq!(r.role, Some(Role::Secondary));
    assert_eq!(r.devices[&0].disk, Some(DiskState::UpToDate));
    let c = &r.connections[&0];
    assert_eq!(c.state, Some(ConnState::Connected));
    assert_eq!(c.peer_role, Some(Role::Secondary));
    assert_eq!(c.peer_devices[&0].replication, Some(ReplState::Established));
}
