//! Integration tests of the heartbeat runtime: two nodes in two network
//! namespaces joined by two veth pairs, links cut and thinned out with
//! nftables or taken down with `ip link`, packets forged, altered,
//! truncated and replayed from a real capture (AF_PACKET).
//!
//! Each test builds its own namespaces (unique names), so they run in
//! parallel; the [`Topology`] guard removes them even when a test fails.
//! Timing assertions allow `SLACK` for scheduling on a loaded 2-core machine
//! (the property tests run beside these); the benchmark measures the real
//! distribution.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::netns::{Node, PORT, Topology};
use crate::membership::{Contact, DropReason, Event, LinkState, Millis, PeerState, Timing};
use crate::proto::{self, ConfigHash, Key, KeyId, Keyring, NodeView};
use crate::runtime::heartbeat::{Clock, TimedEvent};

const SLACK: u64 = 150;
const T: Timing = Timing::DEFAULT;

fn keys() -> Keyring {
    let id = KeyId::new(1).unwrap();
    Keyring::new(id, &[(id, Key::new(vec![0x42; 32]).unwrap())]).unwrap()
}

fn view(config: u8) -> NodeView {
    NodeView {
        config: ConfigHash([config; 32]),
        ..NodeView::default()
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// `n` keepalives: a window that holds about `n` packets of each link.
fn keepalives(n: u64) -> Duration {
    Duration::from_millis(T.keepalive.0 * n)
}

fn is_alive(e: &Event) -> bool {
    matches!(e, Event::PeerAlive { .. })
}

fn is_dead(e: &Event) -> bool {
    matches!(e, Event::PeerDead { .. })
}

/// Starts both nodes and waits until each sees the other on both links.
fn start_pair(topo: &Topology, clock: Clock) -> [Node; 2] {
    let mut nodes =
        [0, 1].map(|s| Node::spawn(&topo.ns[s], topo.config(s, T), keys(), view(1), clock));
    for (s, n) in nodes.iter_mut().enumerate() {
        n.wait_for(secs(2.0), is_alive)
            .unwrap_or_else(|| panic!("node {s} never saw its peer: {:?}", n.history));
        for _ in 0..2 {
            let _ = n.wait_for(secs(1.0), |e| matches!(e, Event::LinkUp { .. }));
        }
        let st = n.status();
        assert!(
            st.links.iter().all(|l| l.state == LinkState::Up),
            "node {s}: {:?}",
            st.links
        );
    }
    nodes
}

#[test]
fn one_link_cut_or_down_keeps_the_peer_alive() {
    let topo = Topology::new(2);
    let clock = Clock::new();
    let mut n = start_pair(&topo, clock);

    // nftables drop on link 0, both directions
    let cut_at = clock.now();
    topo.cut_both_sides(&[0]);
    for (s, node) in n.iter_mut().enumerate() {
        let down = node
            .wait_for(secs(2.0), |e| matches!(e, Event::LinkDown { link: 0, .. }))
            .unwrap_or_else(|| panic!("node {s}: link 0 never down: {:?}", node.history));
        assert!(
            down.at.0 <= cut_at.0 + T.deadtime.0 + SLACK,
            "{down:?} cut at {cut_at}"
        );
    }
    std::thread::sleep(secs(1.5));
    for (s, node) in n.iter_mut().enumerate() {
        node.drain_for(Duration::ZERO);
        assert!(
            !node.history.iter().any(|e| is_dead(&e.event)),
            "node {s}: {:?}",
            node.history
        );
        let st = node.status();
        assert_eq!(st.peer.state, PeerState::Alive);
        assert_eq!(st.links[0].state, LinkState::Down);
        assert_eq!(st.links[1].state, LinkState::Up);
    }
    topo.heal(0, &[0]);
    topo.heal(1, &[0]);
    for node in &mut n {
        assert!(
            node.wait_for(secs(0.5), |e| *e == Event::LinkUp { link: 0 })
                .is_some()
        );
    }

    // link 1 taken down on A's side (carrier gone on both ends)
    let errors_before = n[0].status().links[1].counters.send_errors;
    topo.set_link(0, 1, false);
    for (s, node) in n.iter_mut().enumerate() {
        assert!(
            node.wait_for(secs(2.0), |e| matches!(e, Event::LinkDown { link: 1, .. }))
                .is_some(),
            "node {s}: {:?}",
            node.history
        );
    }
    std::thread::sleep(secs(1.0));
    for node in &mut n {
        node.drain_for(Duration::ZERO);
        assert!(!node.history.iter().any(|e| is_dead(&e.event)));
        assert_eq!(node.status().peer.state, PeerState::Alive);
    }
    assert!(
        n[0].status().links[1].counters.send_errors > errors_before,
        "sends on a downed link fail and are counted"
    );
    topo.set_link(0, 1, true);
    for node in &mut n {
        assert!(
            node.wait_for(secs(2.0), |e| *e == Event::LinkUp { link: 1 })
                .is_some()
        );
    }
}

#[test]
fn both_links_cut_the_peer_is_dead_within_deadtime_and_returns_on_heal() {
    let topo = Topology::new(2);
    let clock = Clock::new();
    let mut n = start_pair(&topo, clock);
    let mut cut = [Millis(0); 2];
    for (s, c) in cut.iter_mut().enumerate() {
        *c = clock.now();
        topo.cut(s, &[0, 1]);
    }
    for (s, node) in n.iter_mut().enumerate() {
        let dead = node
            .wait_for(secs(3.0), is_dead)
            .unwrap_or_else(|| panic!("node {s} never declared its peer dead"));
        let took = dead.at.0 - cut[s].0;
        assert!(
            took <= T.deadtime.0 + SLACK,
            "node {s}: dead {took} ms after the cut (deadtime {})",
            T.deadtime
        );
        assert!(
            took + T.keepalive.0 + SLACK >= T.deadtime.0,
            "node {s}: dead too early, {took} ms"
        );
        // every link went down first, at the same time or before
        let downs: Vec<&TimedEvent> = node
            .history
            .iter()
            .filter(|e| matches!(e.event, Event::LinkDown { .. }))
            .collect();
        assert_eq!(downs.len(), 2, "{:?}", node.history);
        assert!(downs.iter().all(|d| d.at <= dead.at));
        let Event::PeerDead {
            last_heard: Some(last),
        } = dead.event
        else {
            panic!("{dead:?}")
        };
        let after_evidence = dead.at.0 - last.0;
        assert!(
            (T.deadtime.0..=T.deadtime.0 + SLACK).contains(&after_evidence),
            "declared {after_evidence} ms after the newest evidence: deadtime plus the timer's wake-up"
        );
    }
    topo.heal(0, &[0, 1]);
    topo.heal(1, &[0, 1]);
    for (s, node) in n.iter_mut().enumerate() {
        let back = node
            .wait_for(secs(1.0), is_alive)
            .unwrap_or_else(|| panic!("node {s} not back"));
        assert!(
            matches!(
                back.event,
                Event::PeerAlive {
                    contact: Contact::Returned,
                    ..
                }
            ),
            "{back:?}"
        );
    }
}

/// Loss both links can take with no false death: the README's figure; the
/// benchmark runs it much longer.
const LOSS_PCT: u32 = 30;

#[test]
fn random_loss_on_both_links_causes_no_false_death() {
    let topo = Topology::new(2);
    let clock = Clock::new();
    let mut n = start_pair(&topo, clock);
    let sent_before = [0, 1].map(|s| n[s].status().totals.sent);
    for s in 0..2 {
        topo.loss(s, &[0, 1], LOSS_PCT);
    }
    std::thread::sleep(secs(8.0));
    for (s, node) in n.iter_mut().enumerate() {
        node.drain_for(Duration::ZERO);
        // one link may go down now and then (9 losses in a row on one
        // link: p ~ 2e-5 per packet at 30 %); the peer must not die
        assert!(
            !node.history.iter().any(|e| is_dead(&e.event)),
            "node {s} under {LOSS_PCT}% loss: {:?}",
            node.history
        );
        assert_eq!(node.status().peer.state, PeerState::Alive);
    }
    // the loss was real: what the rules dropped at each side is about
    // LOSS_PCT % of what the other side sent (~160 packets: +-15 points is
    // more than 4 standard deviations)
    for s in 0..2 {
        let sent = n[1 - s].status().totals.sent - sent_before[1 - s];
        let dropped = topo.dropped(s, 0) + topo.dropped(s, 1);
        let pct = dropped * 100 / sent;
        assert!(
            (u64::from(LOSS_PCT) - 15..=u64::from(LOSS_PCT) + 15).contains(&pct),
            "side {s}: {dropped} of {sent} dropped ({pct}%)"
        );
    }
}

/// Waits until `f(status)` holds (the status is published after each step).
fn wait_status(node: &Node, what: &str, f: impl Fn(&crate::membership::Status) -> bool) {
    let end = Instant::now() + secs(2.0);
    while Instant::now() < end {
        if f(&node.status()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what}: {:?}", node.status());
}

fn sealed(cluster: u32, keys: &Keyring) -> Vec<u8> {
    proto::seal(
        proto::ClusterId(cluster),
        &proto::Packet {
            sender: proto::NodeId(2),
            incarnation: proto::Incarnation::new(99).unwrap(),
            seq: 1,
            sent_at: 1,
            link: 0,
            sees_peer: false,
            echo: None,
            candidate: None,
            view: view(1),
        },
        keys,
    )
    .to_vec()
}

#[test]
fn forged_altered_truncated_replayed_and_foreign_packets_are_dropped_and_counted() {
    let topo = Topology::new(2);
    let clock = Clock::new();
    let mut n = start_pair(&topo, clock);
    let a_addr = SocketAddr::V4(SocketAddrV4::new(topo.links[0].addr[0], PORT));
    let b_ip = topo.links[0].addr[1];
    let cluster = topo.config(0, T).cluster.0;

    // a real capture of B's packets on link 0, taken in A's namespace
    let mut cap = topo.capture(0);
    let captured = cap.collect(keepalives(5), b_ip, PORT);
    assert!(captured.len() >= 3, "captured {}", captured.len());
    let genuine = captured[0].payload.clone();
    assert_eq!(genuine.len(), proto::PACKET_LEN);

    let inject = topo.udp_socket(1, SocketAddr::V4(SocketAddrV4::new(b_ip, 0)));
    let mut flipped = genuine.clone();
    flipped[77] ^= 0x04;
    let wrong_key = {
        let id = KeyId::new(1).unwrap();
        Keyring::new(id, &[(id, Key::new(vec![0x43; 32]).unwrap())]).unwrap()
    };
    let unknown_id = {
        let id = KeyId::new(9).unwrap();
        Keyring::new(id, &[(id, Key::new(vec![0x42; 32]).unwrap())]).unwrap()
    };
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (sealed(cluster, &wrong_key), DropReason::BadTag),
        (flipped, DropReason::BadTag),
        (
            genuine[..proto::PACKET_LEN - 1].to_vec(),
            DropReason::Truncated,
        ),
        (genuine[..10].to_vec(), DropReason::Truncated),
        (sealed(cluster + 1, &keys()), DropReason::WrongCluster),
        (sealed(cluster, &unknown_id), DropReason::UnknownKey),
        (
            b"not a heartbeat at all, just noise".to_vec(),
            DropReason::NotHapair,
        ),
    ];
    let before = n[0].status().links[0].counters.drops;
    for (bytes, _) in &cases {
        inject.send_to(bytes, a_addr).unwrap();
    }
    // the captured packets were all delivered already: replays
    for d in &captured {
        inject.send_to(&d.payload, a_addr).unwrap();
    }
    // from an address that is not the peer's on this link
    topo.add_addr(1, 0, Ipv4Addr::new(10, 201, 0, 3));
    let stranger = topo.udp_socket(
        1,
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 201, 0, 3), 0)),
    );
    stranger.send_to(&genuine, a_addr).unwrap();

    let mut expect = before;
    for (_, r) in &cases {
        match r {
            DropReason::BadTag => expect.bad_tag += 1,
            DropReason::Truncated => expect.truncated += 1,
            DropReason::WrongCluster => expect.wrong_cluster += 1,
            DropReason::UnknownKey => expect.unknown_key += 1,
            DropReason::NotHapair => expect.not_hapair += 1,
            _ => unreachable!(),
        }
    }
    expect.replay += captured.len() as u64;
    expect.wrong_source += 1;
    wait_status(&n[0], "every injected datagram counted", |st| {
        st.links[0].counters.drops == expect
    });
    std::thread::sleep(secs(0.3));
    assert_eq!(
        n[0].status().links[0].counters.drops,
        expect,
        "counted once each, nothing more"
    );
    n[0].drain_for(Duration::ZERO);
    assert!(
        n[0].history.iter().all(|e| !is_dead(&e.event)
            && !matches!(e.event, Event::LinkDown { .. } | Event::LinkWarn { .. })),
        "{:?}",
        n[0].history
    );
    assert_eq!(n[0].status().peer.state, PeerState::Alive);
}

#[test]
fn replayed_captures_never_revive_a_dead_peer_and_a_restart_is_never_locked_out() {
    let topo = Topology::new(2);
    let clock = Clock::new();
    let [mut a, b] = start_pair(&topo, clock);
    let old_inc = b.status().incarnation;
    let a_addrs: Vec<SocketAddr> = (0..2)
        .map(|l| SocketAddr::V4(SocketAddrV4::new(topo.links[l].addr[0], PORT)))
        .collect();

    // capture B's packets on both links
    let mut cap = topo.capture(0);
    let mut captured = Vec::new();
    for l in 0..2 {
        captured.push(cap.collect(keepalives(3), topo.links[l].addr[1], PORT));
        assert!(captured[l].len() >= 2);
    }
    // B crashes
    let stopped_at = clock.now();
    drop(b);
    let dead = a
        .wait_for(secs(2.0), is_dead)
        .expect("peer never declared dead");
    assert!(dead.at.0 <= stopped_at.0 + T.deadtime.0 + SLACK);

    // replay the captures from B's own addresses for 2 s
    let inj: Vec<_> = (0..2)
        .map(|l| {
            topo.udp_socket(
                1,
                SocketAddr::V4(SocketAddrV4::new(topo.links[l].addr[1], PORT)),
            )
        })
        .collect();
    let replay_before = a.status().totals.drops.replay;
    let mut sent = 0u64;
    let end = Instant::now() + secs(2.0);
    while Instant::now() < end {
        for l in 0..2 {
            for d in &captured[l] {
                inj[l].send_to(&d.payload, a_addrs[l]).unwrap();
                sent += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_status(&a, "replays counted", |st| {
        st.totals.drops.replay - replay_before == sent
    });
    a.drain_for(Duration::ZERO);
    assert!(
        !a.history
            .iter()
            .any(|e| e.at > dead.at && is_alive(&e.event)),
        "{:?}",
        a.history
    );
    assert_eq!(a.status().peer.state, PeerState::Dead);
    drop(inj);

    // B comes back as a new process (nothing persisted: as after a restore
    // from an old backup): accepted at once
    let restarted_at = clock.now();
    let mut b = Node::spawn(&topo.ns[1], topo.config(1, T), keys(), view(1), clock);
    let new_inc = b.status().incarnation;
    let back = a
        .wait_for(secs(2.0), is_alive)
        .expect("restarted peer locked out");
    assert_eq!(
        back.event,
        Event::PeerAlive {
            incarnation: new_inc,
            contact: Contact::Restarted { previous: old_inc }
        }
    );
    assert!(
        back.at.0 <= restarted_at.0 + 2 * T.keepalive.0 + SLACK,
        "{back:?} restarted at {restarted_at}"
    );
    assert!(b.wait_for(secs(1.0), is_alive).is_some());

    // the old incarnation's captures cannot take over again (B's socket
    // holds its port now: inject from B's address, another port)
    let stale_before = a.status().links[0].counters.drops.stale;
    let inj = topo.udp_socket(
        1,
        SocketAddr::V4(SocketAddrV4::new(topo.links[0].addr[1], 0)),
    );
    for d in &captured[0] {
        inj.send_to(&d.payload, a_addrs[0]).unwrap();
    }
    wait_status(&a, "old captures counted stale", |st| {
        st.links[0].counters.drops.stale - stale_before == captured[0].len() as u64
    });
    a.drain_for(secs(0.3));
    assert_eq!(a.status().peer.incarnation, Some(new_inc));
    assert_eq!(
        a.history
            .iter()
            .filter(|e| e.at > back.at && is_alive(&e.event))
            .count(),
        0
    );
}

#[test]
fn restarting_either_node_is_seen_at_once_never_as_a_death() {
    let topo = Topology::new(2);
    let clock = Clock::new();
    let mut n: Vec<Option<Node>> = start_pair(&topo, clock).map(Some).into();
    for round in 0..4 {
        let s = round % 2;
        let old = n[s].as_ref().unwrap().status().incarnation;
        n[s] = None; // stop
        let at = clock.now();
        let node = Node::spawn(&topo.ns[s], topo.config(s, T), keys(), view(1), clock);
        let new = node.status().incarnation;
        n[s] = Some(node);
        let watcher = n[1 - s].as_mut().unwrap();
        let e = watcher
            .wait_for(secs(2.0), is_alive)
            .unwrap_or_else(|| panic!("round {round}: restart of node {s} not seen"));
        assert_eq!(
            e.event,
            Event::PeerAlive {
                incarnation: new,
                contact: Contact::Restarted { previous: old }
            }
        );
        assert!(
            e.at.0 <= at.0 + 2 * T.keepalive.0 + SLACK,
            "round {round}: {e:?} restarted at {at}"
        );
        assert!(
            !watcher.history.iter().any(|e| is_dead(&e.event)),
            "{:?}",
            watcher.history
        );
        assert!(
            n[s].as_mut()
                .unwrap()
                .wait_for(secs(1.0), is_alive)
                .is_some()
        );
    }
}

#[test]
fn a_config_mismatch_is_reported() {
    let topo = Topology::new(2);
    let clock = Clock::new();
    let mut a = Node::spawn(&topo.ns[0], topo.config(0, T), keys(), view(1), clock);
    let _b = Node::spawn(&topo.ns[1], topo.config(1, T), keys(), view(2), clock);
    let e = a
        .wait_for(secs(2.0), |e| matches!(e, Event::ConfigMismatch { .. }))
        .expect("no mismatch reported");
    assert_eq!(
        e.event,
        Event::ConfigMismatch {
            ours: ConfigHash([1; 32]),
            theirs: ConfigHash([2; 32])
        }
    );
    assert_eq!(a.status().peer.config_match, Some(false));
}
