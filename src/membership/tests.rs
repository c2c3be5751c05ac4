//! Exact-output tests of the membership machine, driven through the
//! in-memory network of `sim_tests`.

use super::sim_tests::{CLUSTER, IDS, LINKS, Net, config, keys, timing, view};
use super::*;
use crate::proto::{self, ConfigHash, Key, KeyId, Keyring, Role};

const A: usize = 0;
const B: usize = 1;

/// Both nodes started at 0 on a wire without delay, run to `until`.
fn pair(until: u64) -> Net {
    let mut net = Net::new(42);
    net.start(A, view(1));
    net.start(B, view(1));
    net.run_until(until);
    net
}

fn drops(net: &Net, i: usize) -> Drops {
    net.m(i).status().totals.drops
}

/// Events of node i after time `after` (inclusive).
fn events_after(net: &Net, i: usize, after: u64) -> Vec<(u64, Event)> {
    net.events[i]
        .iter()
        .filter(|(t, _)| *t >= after)
        .cloned()
        .collect()
}

fn is_alive(e: &Event) -> bool {
    matches!(e, Event::PeerAlive { .. })
}

fn is_dead(e: &Event) -> bool {
    matches!(e, Event::PeerDead { .. })
}

/// The newest packet node `i` sent, decoded.
fn last_packet(net: &Net, i: usize) -> (usize, Vec<u8>, proto::Packet) {
    let (_, link, bytes) = net.captured[i].last().unwrap().clone();
    let p = proto::open(&bytes, CLUSTER, &keys()).unwrap().packet;
    (link, bytes, p)
}

#[test]
fn handshake_then_steady_state() {
    let net = pair(3000);
    for i in [A, B] {
        let ev: Vec<Event> = net.events_of(i);
        // contact on the first link that carried an echo, then the second
        // link; the peer's view first without, then with "sees you"
        let alive: Vec<_> = ev.iter().filter(|e| is_alive(e)).collect();
        assert_eq!(alive.len(), 1, "node {i}: {ev:?}");
        assert!(matches!(
            alive[0],
            Event::PeerAlive {
                contact: Contact::First,
                ..
            }
        ));
        let ups: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::LinkUp { link } => Some(*link),
                _ => None,
            })
            .collect();
        assert_eq!(ups.len(), 2, "node {i}: {ev:?}");
        assert!(ev.iter().all(|e| matches!(
            e,
            Event::LinkUp { .. } | Event::PeerAlive { .. } | Event::PeerView { .. }
        )));
        assert!(matches!(
            ev.last().unwrap(),
            Event::PeerView { sees_us: true, .. } | Event::LinkUp { .. }
        ));
        let first = net.first_event(i, 0, is_alive).unwrap();
        assert!(first <= 100, "node {i} saw its peer at {first}");
        let st = net.m(i).status();
        assert_eq!(st.peer.state, PeerState::Alive);
        assert_eq!(st.peer.sees_us, Some(true));
        assert_eq!(st.peer.config_match, Some(true));
        assert!(st.links.iter().all(|l| l.state == LinkState::Up));
        // 10 packets per second per link, for 3 s
        assert!((60..=62).contains(&st.totals.sent), "{}", st.totals.sent);
        // everything the peer sent was accepted but the handshake packets
        let d = st.totals.drops;
        assert_eq!(d.total(), d.stale, "{d:?}");
        assert!(d.stale <= 2, "{d:?}");
        assert_eq!(st.totals.accepted + d.stale, st.totals.received);
    }
}

#[test]
fn death_is_declared_exactly_deadtime_after_the_newest_evidence() {
    let mut net = pair(2000);
    net.cut = [[true; LINKS]; 2];
    net.run_until(4000);
    let ev = events_after(&net, A, 2000);
    let kinds: Vec<_> = ev.iter().map(|(_, e)| std::mem::discriminant(e)).collect();
    let warn = std::mem::discriminant(&Event::LinkWarn {
        link: 0,
        silent: Millis(0),
    });
    let down = std::mem::discriminant(&Event::LinkDown {
        link: 0,
        silent: None,
    });
    let dead = std::mem::discriminant(&Event::PeerDead { last_heard: None });
    assert_eq!(kinds, vec![warn, warn, down, down, dead], "{ev:?}");
    let st = net.m(A).status();
    let node = net.nodes[A].as_ref().unwrap();
    let last = node.global(st.peer.last_heard.unwrap());
    // no delay: the evidence is the peer's own send time, which is within
    // the last keepalive before the cut (both links send together)
    assert!((1900..=2000).contains(&last), "last evidence {last}");
    let (t_dead, _) = ev[4];
    assert_eq!(t_dead, last + 900);
    for (t, e) in &ev {
        match e {
            Event::LinkWarn { link, silent } => {
                assert_eq!(*silent, Millis(500));
                assert_eq!(*t, node.global(st.links[*link].last_heard.unwrap()) + 500);
            }
            Event::LinkDown { link, silent } => {
                assert_eq!(*silent, Some(Millis(900)));
                assert_eq!(*t, node.global(st.links[*link].last_heard.unwrap()) + 900);
            }
            _ => {}
        }
    }
    assert_eq!(
        ev[4].1,
        Event::PeerDead {
            last_heard: st.peer.last_heard
        }
    );
}

#[test]
fn evidence_trails_arrival_by_the_round_trip() {
    // 100 ms each way: a packet proves life only as of its echo's send time
    // plus the hold, i.e. its own send time minus the forward delay.
    let mut net = Net::new(7);
    net.delay = 100;
    net.start(A, view(1));
    net.start(B, view(1));
    net.run_until(3000);
    // the round trip each link reports: 100 ms there, 100 ms back
    for l in net.m(A).status().links {
        assert_eq!(l.rtt, Some(Millis(200)));
    }
    net.crash(B);
    let last_send = net.last_send[B].unwrap();
    net.run_until(5000);
    let dead = net.first_event(A, 3000, is_dead).unwrap();
    assert_eq!(dead, last_send - 100 + 900);
}

#[test]
fn one_link_cut_keeps_the_peer_alive() {
    let mut net = pair(2000);
    net.cut[A][0] = true;
    net.cut[B][0] = true;
    net.run_until(5000);
    for i in [A, B] {
        let ev: Vec<_> = events_after(&net, i, 2000)
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        assert_eq!(
            ev,
            vec![
                Event::LinkWarn {
                    link: 0,
                    silent: Millis(500)
                },
                Event::LinkDown {
                    link: 0,
                    silent: Some(Millis(900))
                },
            ],
            "node {i}"
        );
        assert_eq!(net.m(i).peer_state(), PeerState::Alive);
        assert_eq!(net.m(i).link_state(1), Some(LinkState::Up));
    }
    net.cut = [[false; LINKS]; 2];
    net.run_until(5200);
    for i in [A, B] {
        let ev: Vec<_> = events_after(&net, i, 5000);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(ev[0].1, Event::LinkUp { link: 0 });
        assert!(ev[0].0 <= 5100);
    }
}

#[test]
fn replayed_or_withheld_captures_never_revive_a_dead_peer() {
    let mut net = pair(2000);
    // packets B sends in its last 200 ms are captured but never delivered
    net.cut[B] = [true; LINKS];
    let withheld_from = net.captured[B].len();
    net.run_until(2200);
    let withheld: Vec<_> = net.captured[B][withheld_from..].to_vec();
    assert_eq!(withheld.len(), 4);
    net.crash(B);
    net.run_until(3500);
    assert_eq!(net.m(A).peer_state(), PeerState::Dead);
    let before = drops(&net, A);

    // replay everything B ever sent, several times, spread over 2 s
    let all = net.captured[B].clone();
    let delivered = all.len() - withheld.len();
    for round in 0..4u64 {
        for (_, link, bytes) in &all[..delivered] {
            net.inject(A, *link, bytes);
        }
        net.run_until(3500 + 500 * (round + 1));
    }
    for (_, link, bytes) in &withheld {
        net.inject(A, *link, bytes);
    }
    net.run_until(6000);

    assert_eq!(net.m(A).peer_state(), PeerState::Dead);
    assert_eq!(net.first_event(A, 3500, is_alive), None);
    let after = drops(&net, A);
    // Every replay is dropped: as a replay when the window has seen it, as
    // stale when it had not (the handshake packets B sent before A echoed it,
    // which A dropped as stale the first time, and the withheld ones: new to
    // the window, but their evidence is too old).
    let handshake = before.stale;
    assert!(handshake <= 2, "{before:?}");
    assert_eq!(
        after.replay - before.replay,
        4 * delivered as u64 - handshake
    );
    assert_eq!(
        after.stale - before.stale,
        withheld.len() as u64 + handshake
    );
    assert_eq!(
        after.total() - before.total(),
        4 * delivered as u64 + withheld.len() as u64
    );
}

#[test]
fn a_restarted_peer_is_accepted_at_once_within_deadtime() {
    let mut net = pair(2000);
    let old = net.m(B).incarnation();
    net.crash(B);
    net.run_until(2100);
    // a new process: new incarnation, its clock starting again near zero,
    // no state kept (as after a restore from an old backup)
    let new = net.start(B, view(1));
    net.run_until(3000);
    let ev: Vec<_> = events_after(&net, A, 2000);
    assert!(!ev.iter().any(|(_, e)| is_dead(e)), "{ev:?}");
    let (t, e) = ev.iter().find(|(_, e)| is_alive(e)).unwrap();
    assert_eq!(
        *e,
        Event::PeerAlive {
            incarnation: new,
            contact: Contact::Restarted { previous: old }
        }
    );
    assert!(*t <= 2100 + 100, "accepted at {t}");
    assert_eq!(net.m(B).peer_state(), PeerState::Alive);
    assert_eq!(net.m(A).status().peer.incarnation, Some(new));
}

#[test]
fn a_peer_restarted_after_death_comes_back_and_old_captures_stay_out() {
    let mut net = pair(2000);
    let old = net.m(B).incarnation();
    let old_captures = net.captured[B].clone();
    net.crash(B);
    net.run_until(4000);
    assert_eq!(net.m(A).peer_state(), PeerState::Dead);
    let new = net.start(B, view(1));
    net.run_until(4200);
    let alive = net.first_event(A, 4000, is_alive).unwrap();
    assert!(alive <= 4100, "{alive}");
    assert_eq!(
        net.events[A]
            .iter()
            .find(|(t, e)| *t == alive && is_alive(e))
            .unwrap()
            .1,
        Event::PeerAlive {
            incarnation: new,
            contact: Contact::Restarted { previous: old }
        }
    );
    // replay the old incarnation's packets: they cannot take over again
    let before = drops(&net, A);
    for (_, link, bytes) in &old_captures {
        net.inject(A, *link, bytes);
    }
    net.run_until(5000);
    assert_eq!(net.m(A).status().peer.incarnation, Some(new));
    assert_eq!(net.events[A].iter().filter(|(_, e)| is_alive(e)).count(), 2);
    assert_eq!(
        drops(&net, A).stale - before.stale,
        old_captures.len() as u64
    );
}

#[test]
fn a_restarted_watcher_is_not_fooled_by_captures_from_before() {
    let mut net = pair(2000);
    let captures = net.captured[B].clone();
    net.crash(B);
    net.crash(A);
    net.run_until(2500);
    net.start(A, view(1));
    for (_, link, bytes) in &captures {
        net.inject(A, *link, bytes);
    }
    net.run_until(6000);
    // never alive; dead at initdead; every capture counted as stale
    assert_eq!(net.first_event(A, 2500, is_alive), None);
    assert_eq!(net.first_event(A, 2500, is_dead), Some(2500 + 3000));
    assert_eq!(drops(&net, A).stale, captures.len() as u64);
}

#[test]
fn a_node_restored_from_a_memory_snapshot_takes_a_new_incarnation() {
    let mut net = pair(2000);
    let snapshot = net.nodes[B].clone().unwrap();
    let old = snapshot.m.incarnation();
    net.run_until(3000);
    // B resumes from the snapshot: same incarnation, older sequence numbers
    let mut node = snapshot;
    node.start = 3000;
    node.base = node.m.now.0;
    net.nodes[B] = Some(node);
    let replays_before = drops(&net, A).replay;
    net.run_until(4000);
    let conflict: Vec<_> = net.events[B]
        .iter()
        .filter(|(_, e)| matches!(e, Event::IncarnationConflict { .. }))
        .collect();
    assert_eq!(conflict.len(), 1, "{:?}", net.events[B]);
    assert_eq!(
        conflict[0].1,
        Event::IncarnationConflict { incarnation: old }
    );
    assert!(conflict[0].0 <= 3100);
    let new = net.m(B).incarnation();
    assert_ne!(new, old);
    // A saw replays of the old sequence numbers, then the new incarnation,
    // and never declared B dead
    assert!(drops(&net, A).replay > replays_before);
    assert!(!events_after(&net, A, 2000).iter().any(|(_, e)| is_dead(e)));
    let alive = events_after(&net, A, 3000);
    assert!(alive.iter().any(|(_, e)| *e
        == Event::PeerAlive {
            incarnation: new,
            contact: Contact::Restarted { previous: old }
        }));
    assert_eq!(net.m(A).peer_state(), PeerState::Alive);
    assert_eq!(net.m(B).peer_state(), PeerState::Alive);
}

fn seal_as(
    sender: NodeId,
    incarnation: u64,
    seq: u64,
    cluster: ClusterId,
    keys: &Keyring,
) -> [u8; proto::PACKET_LEN] {
    proto::seal(
        cluster,
        &proto::Packet {
            sender,
            incarnation: proto::Incarnation::new(incarnation).unwrap(),
            seq,
            sent_at: 1,
            link: 0,
            sees_peer: false,
            echo: None,
            candidate: None,
            view: view(1),
        },
        keys,
    )
}

fn ring(id: u8, byte: u8) -> Keyring {
    let id = KeyId::new(id).unwrap();
    Keyring::new(id, &[(id, Key::new(vec![byte; 32]).unwrap())]).unwrap()
}

#[test]
fn every_dropped_datagram_is_counted_by_reason() {
    let mut net = pair(1000);
    // B's last packet on link 0: the forged ones below claim link 0 too
    let (link, genuine) = net.captured[B]
        .iter()
        .rev()
        .find(|(_, l, _)| *l == 0)
        .map(|(_, l, b)| (*l, b.clone()))
        .unwrap();
    let (_, own, _) = last_packet(&net, A);
    let mut flipped = genuine.clone();
    flipped[100] ^= 0x10;
    let mut bad_version = genuine.clone();
    bad_version[4] = 9;
    let mut bad_length = genuine.clone();
    bad_length.push(0);
    let mut malformed = genuine.clone();
    malformed[42] = 200; // role
    let key = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&[7; 32]).unwrap();
    let tag = hmac::Mac::finalize(hmac::Mac::chain_update(key, &malformed[..148])).into_bytes();
    malformed[148..].copy_from_slice(&tag);
    let other_link = 1 - link;

    let cases: Vec<(usize, Vec<u8>, DropReason)> = vec![
        (link, genuine[..60].to_vec(), DropReason::Truncated),
        (
            link,
            b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            DropReason::NotHapair,
        ),
        (link, bad_version, DropReason::BadVersion),
        (link, bad_length, DropReason::BadLength),
        (
            link,
            seal_as(IDS[B], 9, 1, ClusterId(78), &keys()).to_vec(),
            DropReason::WrongCluster,
        ),
        (
            link,
            seal_as(IDS[B], 9, 1, CLUSTER, &ring(2, 7)).to_vec(),
            DropReason::UnknownKey,
        ),
        (
            link,
            seal_as(IDS[B], 9, 1, CLUSTER, &ring(1, 8)).to_vec(),
            DropReason::BadTag,
        ),
        (link, flipped, DropReason::BadTag),
        (link, malformed, DropReason::Malformed),
        (link, own, DropReason::OwnPacket),
        (
            link,
            seal_as(NodeId(3), 9, 1, CLUSTER, &keys()).to_vec(),
            DropReason::UnknownSender,
        ),
        (other_link, genuine.clone(), DropReason::WrongLink),
        (link, genuine.clone(), DropReason::Replay),
        (
            link,
            seal_as(IDS[B], 9, 1, CLUSTER, &keys()).to_vec(),
            DropReason::Stale,
        ),
    ];
    for (l, bytes, reason) in cases {
        let before = net.m(A).status();
        let events_before = net.events[A].len();
        net.inject(A, l, &bytes);
        let after = net.m(A).status();
        let c0 = &before.links[l].counters;
        let c1 = &after.links[l].counters;
        assert_eq!(c1.received, c0.received + 1, "{reason:?}");
        assert_eq!(c1.drops.get(reason), c0.drops.get(reason) + 1, "{reason:?}");
        assert_eq!(
            c1.drops.total(),
            c0.drops.total() + 1,
            "{reason:?}: only one counter"
        );
        assert_eq!(c1.accepted, c0.accepted, "{reason:?}");
        assert_eq!(
            net.events[A].len(),
            events_before,
            "{reason:?} caused an event"
        );
        assert_eq!(after.peer.state, PeerState::Alive);
    }
    // the runtime's own drops are counted the same way
    let before = net.m(A).status().links[0].counters.drops.wrong_source;
    net.step_node(
        A,
        Input::Rejected {
            link: 0,
            reason: DropReason::WrongSource,
        },
    );
    assert_eq!(
        net.m(A).status().links[0].counters.drops.wrong_source,
        before + 1
    );
    assert_eq!(DropReason::ALL.len(), 14);
    assert_eq!(DropReason::BadTag.name(), "bad_tag");
}

#[test]
fn a_config_mismatch_is_reported_once_and_its_end_too() {
    let mut net = Net::new(3);
    net.start(A, view(1));
    net.start(B, view(2));
    net.run_until(1000);
    let mismatches: Vec<_> = net.events[A]
        .iter()
        .filter(|(_, e)| matches!(e, Event::ConfigMismatch { .. }))
        .collect();
    assert_eq!(mismatches.len(), 1);
    assert_eq!(
        mismatches[0].1,
        Event::ConfigMismatch {
            ours: ConfigHash([1; 32]),
            theirs: ConfigHash([2; 32])
        }
    );
    assert_eq!(net.m(A).status().peer.config_match, Some(false));
    // B is reconfigured: it tells A at once, on every link
    let sent_before = net.captured[B].len();
    let mut v = view(1);
    v.role = Role::Secondary;
    net.step_node(B, Input::View(v));
    assert_eq!(
        net.captured[B].len(),
        sent_before + LINKS,
        "sent at once on each link"
    );
    net.run_until(1001);
    let ev: Vec<_> = events_after(&net, A, 1000)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(
        ev,
        vec![
            Event::PeerView {
                view: v,
                sees_us: true
            },
            Event::ConfigMatch
        ]
    );
}

#[test]
fn a_silent_peer_is_dead_at_initdead() {
    let mut net = Net::new(5);
    net.start(A, view(1));
    net.run_until(2999);
    assert!(net.events[A].is_empty());
    assert_eq!(net.m(A).peer_state(), PeerState::Unknown);
    assert_eq!(net.m(A).link_state(0), Some(LinkState::Unknown));
    net.run_until(3000);
    assert_eq!(
        net.events_of(A),
        vec![
            Event::LinkDown {
                link: 0,
                silent: None
            },
            Event::LinkDown {
                link: 1,
                silent: None
            },
            Event::PeerDead { last_heard: None },
        ]
    );
    // and a late peer is welcomed as a first contact
    net.start(B, view(1));
    net.run_until(3200);
    assert!(net.events_of(A).iter().any(|e| matches!(
        e,
        Event::PeerAlive {
            contact: Contact::First,
            ..
        }
    )));
}

#[test]
fn a_partition_heals_as_the_same_incarnation_returning() {
    let mut net = pair(1000);
    let inc = net.m(B).incarnation();
    net.cut = [[true; LINKS]; 2];
    net.run_until(3000);
    assert_eq!(net.m(A).peer_state(), PeerState::Dead);
    net.cut = [[false; LINKS]; 2];
    net.run_until(3200);
    let back = events_after(&net, A, 3000);
    assert!(back.iter().any(|(_, e)| *e
        == Event::PeerAlive {
            incarnation: inc,
            contact: Contact::Returned
        }));
}

#[test]
fn keys_rotate_without_a_gap() {
    let mut net = pair(1000);
    let k1 = KeyId::new(1).unwrap();
    let k2 = KeyId::new(2).unwrap();
    let key1 = Key::new(vec![7; 32]).unwrap();
    let key2 = Key::new(vec![9; 32]).unwrap();
    let both_1 = Keyring::new(k1, &[(k1, key1.clone()), (k2, key2.clone())]).unwrap();
    let both_2 = Keyring::new(k2, &[(k1, key1), (k2, key2.clone())]).unwrap();
    let only_2 = Keyring::new(k2, &[(k2, key2)]).unwrap();
    net.step_node(A, Input::Keys(both_1.clone()));
    net.run_until(1500);
    net.step_node(B, Input::Keys(both_1));
    net.run_until(2000);
    net.step_node(A, Input::Keys(both_2.clone()));
    net.run_until(2500);
    net.step_node(B, Input::Keys(both_2));
    net.run_until(3000);
    net.step_node(A, Input::Keys(only_2.clone()));
    net.step_node(B, Input::Keys(only_2));
    net.run_until(4000);
    for i in [A, B] {
        assert_eq!(net.events[i].iter().filter(|(_, e)| is_alive(e)).count(), 1);
        assert!(
            !net.events[i]
                .iter()
                .any(|(_, e)| is_dead(e) || matches!(e, Event::LinkWarn { .. }))
        );
        assert_eq!(drops(&net, i).total(), drops(&net, i).stale);
    }
    // a node still on the old key alone is not heard
    net.step_node(B, Input::Keys(ring(1, 7)));
    net.run_until(6000);
    assert_eq!(net.m(A).peer_state(), PeerState::Dead);
    assert!(drops(&net, A).unknown_key > 30);
}

#[test]
fn timing_rules() {
    let ok = timing();
    assert_eq!(ok.validate(), Ok(()));
    assert_eq!(Timing::DEFAULT.validate(), Ok(()));
    let t = |k, w, d, i| Timing {
        keepalive: Millis(k),
        warntime: Millis(w),
        deadtime: Millis(d),
        initdead: Millis(i),
    };
    assert_eq!(
        t(5, 50, 100, 100).validate(),
        Err(TimingError::KeepaliveTooShort(Millis(5)))
    );
    assert!(matches!(
        t(100, 150, 200, 1000).validate(),
        Err(TimingError::DeadtimeTooShort { .. })
    ));
    assert!(matches!(
        t(100, 900, 900, 1000).validate(),
        Err(TimingError::Warntime { .. })
    ));
    assert!(matches!(
        t(100, 50, 900, 1000).validate(),
        Err(TimingError::Warntime { .. })
    ));
    assert!(matches!(
        t(100, 500, 900, 800).validate(),
        Err(TimingError::Initdead { .. })
    ));
    let mut c = config(0);
    c.links = 0;
    assert_eq!(c.validate(), Err(ConfigError::Links(0)));
    c.links = 9;
    assert_eq!(c.validate(), Err(ConfigError::Links(9)));
    let mut c = config(0);
    c.peer = c.local;
    assert_eq!(c.validate(), Err(ConfigError::SameNode(IDS[0])));
    assert_eq!(
        TimingError::DeadtimeTooShort {
            deadtime: Millis(200),
            keepalive: Millis(100)
        }
        .to_string(),
        "deadtime 0.200s must be more than twice keepalive 0.100s"
    );
}

#[test]
fn sends_go_out_together_and_regular() {
    let mut net = Net::new(9);
    net.start(A, view(1));
    net.run_until(1000);
    let times: Vec<(u64, usize)> = net.captured[A].iter().map(|(t, l, _)| (*t, *l)).collect();
    // both links in the same step, once per keepalive: one wakeup each
    let expect: Vec<(u64, usize)> = (0..=10)
        .flat_map(|k| [(k * 100, 0), (k * 100, 1)])
        .collect();
    assert_eq!(times, expect);
    // sequence numbers run across links
    let seqs: Vec<u64> = net.captured[A]
        .iter()
        .map(|(_, _, b)| proto::open(b, CLUSTER, &keys()).unwrap().packet.seq)
        .collect();
    assert_eq!(seqs, (1..=22).collect::<Vec<_>>());
    // the deadline is always the next send while nothing else is due
    assert_eq!(
        net.nodes[A]
            .as_ref()
            .unwrap()
            .global(net.m(A).next_deadline()),
        1100
    );
}

#[test]
fn nothing_floods_however_many_datagrams_arrive() {
    // prompt replies are rate limited to one per keepalive / 4 per link
    let mut net = pair(1000);
    let bogus = seal_as(IDS[B], 12345, 1, CLUSTER, &keys());
    let sent_before = net.captured[A].len();
    for _ in 0..1000 {
        net.inject(A, 0, &bogus);
    }
    assert!(net.captured[A].len() - sent_before <= 1);
    let mut t = 1000;
    for _ in 0..100 {
        t += 1;
        net.run_until(t);
        net.inject(A, 0, &bogus);
    }
    // 100 ms: at most 4 prompt sends on link 0 plus the regular ones
    let sent = net.captured[A].len() - sent_before;
    assert!(sent <= 2 + 4 + 1, "{sent}");
}

/// Found by the fuzzer: a peer heard on one link only, whose other link is
/// still unknown (within initdead), must die when that one link goes silent.
#[test]
fn a_peer_heard_on_one_link_only_dies_with_it_even_within_initdead() {
    let mut net = Net::new(11);
    net.cut[A][1] = true;
    net.cut[B][1] = true;
    net.start(A, view(1));
    net.start(B, view(1));
    net.run_until(1000);
    assert_eq!(net.m(A).peer_state(), PeerState::Alive);
    assert_eq!(net.m(A).link_state(1), Some(LinkState::Unknown));
    net.cut[B][0] = true;
    net.run_until(2500);
    // initdead is 3000: link 1 is still unknown, the peer is dead anyway
    assert_eq!(net.m(A).link_state(1), Some(LinkState::Unknown));
    assert_eq!(net.m(A).peer_state(), PeerState::Dead);
    let node = net.nodes[A].as_ref().unwrap();
    let last = node.global(net.m(A).status().peer.last_heard.unwrap());
    assert_eq!(net.first_event(A, 1000, is_dead), Some(last + 900));
}

#[test]
fn a_lease_renewal_waits_for_the_next_packet_other_view_changes_go_at_once() {
    let mut net = pair(1000);
    let before = net.captured[A].len();
    // only the lease counter moves (a renewal): nothing is sent now
    let mut v = view(1);
    v.lease.counter += 1;
    net.step_node(A, Input::View(v));
    assert_eq!(
        net.captured[A].len(),
        before,
        "a renewal is not sent at once"
    );
    // the next regular packet carries it, within one keepalive
    net.run_until(1000 + timing().keepalive.0);
    let (_, _, p) = last_packet(&net, A);
    assert_eq!(p.view.lease.counter, v.lease.counter);
    // a role change goes out at once, on every link
    let sent = net.captured[A].len();
    v.role = Role::Secondary;
    net.step_node(A, Input::View(v));
    assert_eq!(
        net.captured[A].len(),
        sent + LINKS,
        "sent at once on each link"
    );
}
