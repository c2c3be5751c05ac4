//! Parser and model tests on captured real lines and the drbd.md examples.

use drbd::events::{ConnState, DiskState, Object, ParseError, ReplState, Role, Verb};
use drbd::model::Transition;
use drbd::{Cluster, parse_line};

const CAPTURE: &str = include_str!("fixtures/drbd-events-captured.txt");

fn capture_lines() -> impl Iterator<Item = (usize, &'static str)> {
    CAPTURE
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
}

/// The capture's line `n` (1-based, as in an editor).
fn line(n: usize) -> &'static str {
    CAPTURE.lines().nth(n - 1).unwrap()
}

#[test]
fn every_captured_line_parses() {
    let mut n = 0;
    for (no, l) in capture_lines() {
        let ev = parse_line(l).unwrap_or_else(|e| panic!("line {no}: {e}: {l}"));
        assert!(
            ev.timestamp
                .as_deref()
                .is_some_and(|t| t.starts_with("2026-11-24T21:"))
        );
        assert_eq!(
            ev.fields.name.as_deref(),
            Some("r0").filter(|_| ev.object != Object::Marker)
        );
        assert!(
            ev.fields.extra.is_empty(),
            "line {no}: {:?}",
            ev.fields.extra
        );
        // Display gives back the same event
        assert_eq!(parse_line(&ev.to_string()).unwrap(), ev, "line {no}");
        n += 1;
    }
    assert_eq!(n, 59);
}

#[test]
fn captured_lines_typed_fields() {
    let e = parse_line(line(6)).unwrap();
    assert_eq!(
        e.timestamp.as_deref(),
        Some("2026-11-24T21:31:45.351078+00:00")
    );
    assert_eq!(e.verb, Some(Verb::Exists));
    assert_eq!(e.object, Object::Resource);
    assert_eq!(e.fields.role, Some(Role::Secondary));
    assert_eq!(e.fields.suspended.as_deref(), Some("no"));
    assert_eq!(e.fields.may_promote, None, "8.4 has no may_promote");

    let e = parse_line(line(7)).unwrap();
    assert_eq!(e.object, Object::Connection);
    assert_eq!(e.fields.peer_node_id, Some(0));
    assert_eq!(e.fields.conn_name.as_deref(), Some("peer"));
    assert_eq!(e.fields.connection, Some(ConnState::Connected));
    assert_eq!(e.fields.role, Some(Role::Secondary));

    let e = parse_line(line(8)).unwrap();
    assert_eq!(
        (e.object, e.fields.volume, e.fields.minor),
        (Object::Device, Some(0), Some(0))
    );
    assert_eq!(e.fields.disk, Some(DiskState::UpToDate));

    let e = parse_line(line(9)).unwrap();
    assert_eq!(e.object, Object::PeerDevice);
    assert_eq!(e.fields.replication, Some(ReplState::Established));
    assert_eq!(e.fields.peer_disk, Some(DiskState::UpToDate));
    assert_eq!(e.fields.resync_suspended.as_deref(), Some("no"));

    let e = parse_line(line(10)).unwrap();
    assert_eq!((e.verb, e.object), (Some(Verb::Exists), Object::Marker));

    let e = parse_line(line(11)).unwrap();
    assert_eq!(e.verb, Some(Verb::Change));
    assert_eq!(e.fields.connection, Some(ConnState::TearDown));
    assert_eq!(e.fields.role, Some(Role::Unknown));

    // partial change: identity only
    let e = parse_line(line(13)).unwrap();
    assert_eq!(e.fields.connection, None);
    assert_eq!(e.fields.role, None);

    let e = parse_line(line(31)).unwrap();
    assert_eq!(e.verb, Some(Verb::Call));
    assert_eq!(e.object, Object::Helper);
    assert_eq!(e.fields.helper.as_deref(), Some("before-resync-source"));
    assert_eq!(e.fields.status, None);
    let e = parse_line(line(32)).unwrap();
    assert_eq!(e.verb, Some(Verb::Response));
    assert_eq!(e.fields.status, Some(0));
    assert_eq!(e.fields.minor, Some(0));

    let e = parse_line(line(33)).unwrap();
    assert_eq!(e.fields.replication, Some(ReplState::SyncSource));
    assert_eq!(e.fields.peer_disk, Some(DiskState::Inconsistent));

    let e = parse_line(line(53)).unwrap();
    assert_eq!(e.fields.connection, Some(ConnState::StandAlone));
    let e = parse_line(line(54)).unwrap();
    assert_eq!(
        (e.verb, e.object),
        (Some(Verb::Destroy), Object::PeerDevice)
    );
    let e = parse_line(line(56)).unwrap();
    assert_eq!((e.verb, e.object), (Some(Verb::Create), Object::Connection));
}

#[test]
fn capture_replay_final_state_and_transitions() {
    let mut m = Cluster::new();
    let mut all = Vec::new();
    for (no, l) in capture_lines() {
        let ev = parse_line(l).unwrap();
        let before = m.ready();
        let t = m.apply(&ev).unwrap_or_else(|e| panic!("line {no}: {e}"));
        if no < 10 {
            assert!(!m.ready(), "not ready before exists - (line {no})");
        }
        if no == 10 {
            assert!(!before && m.ready());
            assert_eq!(t, vec![Transition::Ready]);
        }
        all.extend(t.into_iter().map(|t| (no, t)));
    }
    assert!(m.ready());
    let r = m.resource("r0").unwrap();
    assert_eq!(r.role, Some(Role::Primary));
    assert_eq!(r.suspended.as_deref(), Some("no"));
    assert_eq!(r.may_promote, None);
    assert_eq!(r.devices.len(), 1);
    assert_eq!(r.devices[&0].disk, Some(DiskState::UpToDate));
    assert_eq!(r.devices[&0].minor, Some(0));
    let c = &r.connections[&0];
    assert_eq!(c.conn_name.as_deref(), Some("peer"));
    assert_eq!(c.state, Some(ConnState::Connected));
    assert_eq!(c.peer_role, Some(Role::Secondary));
    let p = &c.peer_devices[&0];
    assert_eq!(p.replication, Some(ReplState::Established));
    assert_eq!(p.peer_disk, Some(DiskState::UpToDate));
    assert_eq!(p.done, None);

    let role = |no| {
        all.iter()
            .find(|(n, _)| *n == no)
            .map(|(_, t)| t.clone())
            .unwrap()
    };
    assert_eq!(
        role(20),
        Transition::PeerRole {
            resource: "r0".into(),
            peer: 0,
            old: Some(Role::Secondary),
            new: Role::Primary
        }
    );
    assert_eq!(
        role(27),
        Transition::Role {
            resource: "r0".into(),
            old: Some(Role::Secondary),
            new: Role::Primary
        }
    );
    // split brain: helper surfaced, connection destroyed then re-created
    assert!(all.iter().any(|(n, t)| *n == 51
        && *t
            == Transition::Helper {
                resource: "r0".into(),
                helper: "split-brain".into(),
                status: Some(0)
            }));
    assert!(all.iter().any(|(n, t)| *n == 55
        && matches!(t, Transition::Destroyed { object, .. } if object == "connection")));
    assert!(all.iter().any(|(n, t)| *n == 56
        && *t
            == Transition::Connection {
                resource: "r0".into(),
                peer: 0,
                old: None,
                new: ConnState::StandAlone
            }));
    // local role: initial Secondary, promote, demote, promote in the split brain
    let roles: Vec<_> = all
        .iter()
        .filter(|(_, t)| matches!(t, Transition::Role { .. }))
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(roles, vec![6, 27, 35, 46]);
}

const DRBD9: &str = "\
exists resource name:r0 role:Secondary suspended:no force-io-failures:no may_promote:no promotion_score:10102
exists connection name:r0 peer-node-id:1 conn-name:bravo connection:Connected role:Primary
exists device name:r0 volume:0 minor:0 backing_dev:/dev/vg/r0 disk:UpToDate client:no open:no quorum:yes
exists peer-device name:r0 peer-node-id:1 conn-name:bravo volume:0 replication:Established peer-disk:UpToDate peer-client:no resync-suspended:no
exists path name:r0 peer-node-id:1 conn-name:bravo local:ipv4:10.0.0.1:7789 peer:ipv4:10.0.0.2:7789 established:yes
exists -
change connection name:r0 peer-node-id:1 conn-name:bravo connection:NetworkFailure role:Unknown
change peer-device name:r0 peer-node-id:1 conn-name:bravo volume:0 replication:Off peer-disk:DUnknown peer-client:no
change resource name:r0 suspended:fencing
call helper name:r0 peer-node-id:1 conn-name:bravo helper:fence-peer
response helper name:r0 peer-node-id:1 conn-name:bravo helper:fence-peer status:4
change peer-device name:r0 peer-node-id:1 conn-name:bravo volume:0 peer-disk:Outdated peer-client:no
change resource name:r0 suspended:no may_promote:yes promotion_score:10101
change connection name:r0 peer-node-id:1 conn-name:bravo connection:Connecting
";

#[test]
fn drbd9_doc_sequence() {
    let mut m = Cluster::new();
    for l in DRBD9.lines() {
        m.apply(&parse_line(l).unwrap()).unwrap();
        if l.starts_with("change resource name:r0 suspended:fencing") {
            assert!(m.resource("r0").unwrap().is_suspended());
        }
    }
    let r = m.resource("r0").unwrap();
    assert!(!r.is_suspended());
    assert_eq!(r.may_promote, Some(true));
    assert_eq!(r.promotion_score, Some(10101));
    assert_eq!(r.devices[&0].quorum, Some(true));
    assert_eq!(r.devices[&0].backing_dev.as_deref(), Some("/dev/vg/r0"));
    let c = &r.connections[&1];
    assert_eq!(c.state, Some(ConnState::Connecting));
    assert_eq!(c.peer_role, Some(Role::Unknown));
    assert_eq!(c.peer_devices[&0].peer_disk, Some(DiskState::Outdated));
    assert_eq!(c.paths["ipv4:10.0.0.1:7789 ipv4:10.0.0.2:7789"], Some(true));
    let v = drbd::View::of(&m, "r0", true, false);
    assert_eq!(v.peer_disk, Some(DiskState::Outdated));
    assert_eq!(drbd::check(&v), Ok(()));
    let v = drbd::View::of(&m, "r0", false, false);
    assert_eq!(drbd::check(&v), Err(drbd::Refusal::NoLease));

    // destroy resource drops everything
    m.apply(&parse_line("destroy resource name:r0").unwrap())
        .unwrap();
    assert!(m.resource("r0").is_none());
}

#[test]
fn path_value_keeps_colons() {
    let e = parse_line(DRBD9.lines().nth(4).unwrap()).unwrap();
    assert_eq!(e.object, Object::Path);
    assert_eq!(e.fields.local.as_deref(), Some("ipv4:10.0.0.1:7789"));
    assert_eq!(e.fields.peer.as_deref(), Some("ipv4:10.0.0.2:7789"));
    assert_eq!(e.fields.established, Some(true));
}

#[test]
fn drbd84_spellings() {
    // 8.4: peer-node-id 0, conn-name peer, volume+minor on devices, no quorum keys.
    let e = parse_line("change peer-device name:r0 peer-node-id:0 conn-name:peer volume:0 minor:0 replication:SyncTarget peer-disk:UpToDate").unwrap();
    assert_eq!(e.fields.minor, Some(0));
    assert_eq!(e.fields.replication, Some(ReplState::SyncTarget));
    let e = parse_line(
        "change connection name:r0 peer-node-id:0 conn-name:peer connection:WFConnection",
    )
    .unwrap();
    assert_eq!(e.fields.connection, Some(ConnState::WFConnection));
    let e = parse_line("- skipped 12").unwrap();
    assert_eq!((e.verb.clone(), e.skipped), (None, Some(12)));
    let mut m = Cluster::new();
    assert_eq!(
        m.apply(&e).unwrap(),
        vec![Transition::Skipped { count: 12 }]
    );
    assert_eq!(parse_line(&e.to_string()).unwrap(), e);
    // old `minor` object spelling treated as a device
    let e = parse_line("exists minor name:r0 volume:0 minor:3 disk:Outdated").unwrap();
    assert_eq!(e.object, Object::Minor);
    m.apply(&e).unwrap();
    assert_eq!(
        m.resource("r0").unwrap().devices[&0].disk,
        Some(DiskState::Outdated)
    );
}

#[test]
fn timestamps_statistics_diff() {
    let e = parse_line("2024-05-02T10:11:12.401234+02:00 response helper name:some-resource peer-node-id:1 conn-name:some-peer volume:0 helper:before-resync-target status:1").unwrap();
    assert_eq!(
        e.timestamp.as_deref(),
        Some("2024-05-02T10:11:12.401234+02:00")
    );
    assert_eq!(e.fields.status, Some(1));
    let e = parse_line("create device name:some-resource volume:0 minor:1000 backing_dev:none disk:Diskless client:no open:no quorum:yes size:5 read:10 written:15 al-writes:40 bm-writes:50 upper-pending:60 lower-pending:70 al-suspended:no blocked:no").unwrap();
    assert_eq!(e.fields.minor, Some(1000));
    assert_eq!(e.fields.disk, Some(DiskState::Diskless));
    assert_eq!(e.fields.extra.len(), 9);
    assert_eq!(e.fields.extra[0], ("size".into(), "5".into()));
    assert_eq!(e.fields.extra[8], ("blocked".into(), "no".into()));
    let e = parse_line("change peer-device name:r0 peer-node-id:1 conn-name:bravo volume:0 replication:SyncSource peer-disk:Inconsistent peer-client:no done:42.17 received:0 sent:1048576 out-of-sync:1437696 pending:0 unacked:0 dbdt1:98.30 eta:14").unwrap();
    assert_eq!(e.fields.done, Some(42.17));
    assert_eq!(e.fields.out_of_sync, Some(1_437_696));
    assert!(e.fields.extra.iter().any(|(k, v)| k == "eta" && v == "14"));
    let mut m = Cluster::new();
    m.apply(&e).unwrap();
    assert_eq!(
        m.resource("r0").unwrap().connections[&1].peer_devices[&0].done,
        Some(42.17)
    );
    let e = parse_line("change resource name:some-resource role:Secondary->Primary may_promote:yes->no promotion_score:10102->10102").unwrap();
    assert_eq!(e.fields.role, Some(Role::Primary));
    assert_eq!(e.fields.may_promote, Some(false));
}

#[test]
fn unknown_keys_and_values_kept() {
    let e = parse_line("change resource name:r0 role:Tertiary tls:yes may_promote:maybe").unwrap();
    assert_eq!(e.fields.role, Some(Role::Other("Tertiary".into())));
    assert_eq!(e.fields.role.as_ref().unwrap().to_string(), "Tertiary");
    assert_eq!(
        e.fields.extra,
        vec![
            ("tls".into(), "yes".into()),
            ("may_promote".into(), "maybe".into())
        ]
    );
    assert_eq!(e.fields.may_promote, None);
}

#[test]
fn bad_lines_name_the_problem() {
    assert_eq!(parse_line(""), Err(ParseError::Empty));
    assert_eq!(parse_line("   "), Err(ParseError::Empty));
    assert_eq!(
        parse_line("2024-05-02T10:11:12+02:00"),
        Err(ParseError::MissingVerb)
    );
    assert_eq!(
        parse_line("frobnicate resource"),
        Err(ParseError::UnknownVerb("frobnicate".into()))
    );
    assert_eq!(
        parse_line("change"),
        Err(ParseError::MissingObject("change".into()))
    );
    assert_eq!(
        parse_line("change widget"),
        Err(ParseError::UnknownObject("widget".into()))
    );
    assert_eq!(
        parse_line("change resource name:r0 roleSecondary"),
        Err(ParseError::MalformedToken("roleSecondary".into()))
    );
    assert_eq!(
        parse_line("change resource :x"),
        Err(ParseError::MalformedToken(":x".into()))
    );
    let e = parse_line("change device name:r0 volume:zero").unwrap_err();
    assert_eq!(e.to_string(), "key \"volume\": bad value \"zero\"");
    assert!(matches!(
        parse_line("- skipped many"),
        Err(ParseError::BadSkipped(_))
    ));
    // model: missing identity
    let mut m = Cluster::new();
    let e = m
        .apply(&parse_line("change device name:r0 disk:UpToDate").unwrap())
        .unwrap_err();
    assert_eq!(e.to_string(), "device line without volume:");
}
