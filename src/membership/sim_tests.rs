//! A two-node in-memory network for the membership machine (used by the
//! unit tests too), and property tests over random runs: loss, jitter,
//! reordering, crashes, restarts with clocks that start again from zero,
//! snapshot restores, and an attacker replaying every captured packet.
//!
//! Checked after every step of every run:
//! - **soundness**: a node that sees its peer alive at time t has received
//!   proof that the peer sent a packet after t - deadtime (whatever was
//!   replayed, reordered or delayed);
//! - **no false death** on a lossless network with jitter below the budget,
//!   replays or not;
//! - **no lockout**: a restarted node is accepted again within a few
//!   keepalives on a lossless network.

use proptest::prelude::*;

use super::*;
use crate::proto::{ConfigHash, Key, KeyId, Keyring, NodeView};

pub(super) const LINKS: usize = 2;
pub(super) const CLUSTER: ClusterId = ClusterId(77);
pub(super) const IDS: [NodeId; 2] = [NodeId(1), NodeId(2)];

pub(super) fn timing() -> Timing {
    Timing {
        keepalive: Millis(100),
        warntime: Millis(500),
        deadtime: Millis(900),
        initdead: Millis(3000),
    }
}

pub(super) fn keys() -> Keyring {
    let id = KeyId::new(1).unwrap();
    Keyring::new(id, &[(id, Key::new(vec![7; 32]).unwrap())]).unwrap()
}

pub(super) fn view(config: u8) -> NodeView {
    NodeView {
        config: ConfigHash([config; 32]),
        ..NodeView::default()
    }
}

pub(super) fn config(i: usize) -> Config {
    Config {
        cluster: CLUSTER,
        local: IDS[i],
        peer: IDS[1 - i],
        links: LINKS,
        timing: timing(),
    }
}

/// splitmix64: the harness's own seeded randomness.
#[derive(Debug, Clone)]
pub(super) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub fn incarnation(&mut self) -> Incarnation {
        Incarnation::new(self.next() | 1).unwrap()
    }
}

#[derive(Debug, Clone)]
pub(super) struct Flight {
    pub at: u64,
    pub to: usize,
    pub link: usize,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub m: Membership,
    /// Global time at which this process started.
    pub start: u64,
    /// Its clock's reading at start (a new process's clock starts near 0).
    pub base: u64,
}

impl Node {
    pub fn local(&self, global: u64) -> Millis {
        Millis(global - self.start + self.base)
    }
    pub fn global(&self, local: Millis) -> u64 {
        (local.0 + self.start).saturating_sub(self.base)
    }
}

/// Two nodes, two links, a clock, a wire with loss and jitter.
#[derive(Debug, Clone)]
pub(super) struct Net {
    pub t: u64,
    pub nodes: [Option<Node>; 2],
    pub flight: Vec<Flight>,
    pub rng: Rng,
    /// Loss in percent, per packet and link.
    pub loss: u64,
    /// Fixed one-way delay, ms.
    pub delay: u64,
    /// Plus a delay uniform in 0..=jitter ms.
    pub jitter: u64,
    /// `cut[from][link]`: packets from `from` on `link` are lost.
    pub cut: [[bool; LINKS]; 2],
    pub events: [Vec<(u64, Event)>; 2],
    /// Every datagram a node sent: (global time, link, bytes).
    pub captured: [Vec<(u64, usize, Vec<u8>)>; 2],
    /// Global time of each node's newest genuine send.
    pub last_send: [Option<u64>; 2],
    /// Check soundness after every step.
    pub check: bool,
}

impl Net {
    pub fn new(seed: u64) -> Net {
        Net {
            t: 0,
            nodes: [None, None],
            flight: Vec::new(),
            rng: Rng(seed),
            loss: 0,
            delay: 0,
            jitter: 0,
            cut: [[false; LINKS]; 2],
            events: [Vec::new(), Vec::new()],
            captured: [Vec::new(), Vec::new()],
            last_send: [None, None],
            check: true,
        }
    }

    /// Starts (or restarts) node `i` now with a fresh incarnation.
    pub fn start(&mut self, i: usize, view: NodeView) -> Incarnation {
        let inc = self.rng.incarnation();
        let base = self.rng.below(1000);
        let m = Membership::new(config(i), keys(), inc, view, Millis(base)).unwrap();
        self.nodes[i] = Some(Node {
            m,
            start: self.t,
            base,
        });
        self.step_node(i, Input::Tick);
        inc
    }

    pub fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    pub fn m(&self, i: usize) -> &Membership {
        &self.nodes[i].as_ref().expect("node is up").m
    }

    pub fn step_node(&mut self, i: usize, input: Input<'_>) {
        let Some(n) = self.nodes[i].as_mut() else {
            return;
        };
        let now = n.local(self.t);
        let out = n.m.handle(now, input);
        self.carry_out(i, out);
        if self.check {
            self.check_soundness(i);
        }
    }

    fn carry_out(&mut self, i: usize, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Send { link, packet } => {
                    self.last_send[i] = Some(self.t);
                    self.captured[i].push((self.t, link, packet.to_vec()));
                    let lost = self.cut[i][link] || self.rng.below(100) < self.loss;
                    if !lost {
                        let at = self.t + self.delay + self.rng.below(self.jitter + 1);
                        self.flight.push(Flight {
                            at,
                            to: 1 - i,
                            link,
                            bytes: packet.to_vec(),
                        });
                    }
                }
                Output::Event(e) => {
                    self.events[i].push((self.t, e.clone()));
                    if let Event::IncarnationConflict { .. } = e {
                        let inc = self.rng.incarnation();
                        self.step_node(i, Input::Reincarnate(inc));
                    }
                }
            }
        }
    }

    /// A node that sees its peer alive at t has proof of a peer send after
    /// t - deadtime.
    pub fn check_soundness(&self, i: usize) {
        let Some(n) = &self.nodes[i] else { return };
        if n.m.peer_state() == PeerState::Alive {
            let last = self.last_send[1 - i].expect("alive without the peer ever sending");
            assert!(
                self.t < last + timing().deadtime.0,
                "node {i} sees its peer alive at {} but the peer last sent at {last}",
                self.t
            );
        }
    }

    /// Delivers a datagram to node `to` right now.
    pub fn inject(&mut self, to: usize, link: usize, bytes: &[u8]) {
        self.step_node(to, Input::Datagram { link, bytes });
    }

    fn next_tick(&self) -> Option<(u64, usize)> {
        (0..2)
            .filter_map(|i| {
                self.nodes[i]
                    .as_ref()
                    .map(|n| (n.global(n.m.next_deadline()).max(self.t), i))
            })
            .min()
    }

    /// Runs until global time `end` (inclusive), calling `each` after every
    /// step.
    pub fn run_until_with(&mut self, end: u64, mut each: impl FnMut(&mut Net)) {
        loop {
            let next_flight = self.flight.iter().map(|f| f.at).min();
            let next_tick = self.next_tick().map(|(t, _)| t);
            let Some(t) = [next_flight, next_tick].into_iter().flatten().min() else {
                self.t = end;
                return;
            };
            if t > end {
                self.t = end;
                return;
            }
            self.t = t;
            if let Some(pos) = self.flight.iter().position(|f| f.at == t) {
                let f = self.flight.swap_remove(pos);
                self.inject(f.to, f.link, &f.bytes);
            } else if let Some((_, i)) = self.next_tick().filter(|(nt, _)| *nt == t) {
                self.step_node(i, Input::Tick);
            }
            each(self);
        }
    }

    pub fn run_until(&mut self, end: u64) {
        self.run_until_with(end, |_| {});
    }

    pub fn events_of(&self, i: usize) -> Vec<Event> {
        self.events[i].iter().map(|(_, e)| e.clone()).collect()
    }

    pub fn first_event(&self, i: usize, after: u64, f: impl Fn(&Event) -> bool) -> Option<u64> {
        self.events[i]
            .iter()
            .find(|(t, e)| *t >= after && f(e))
            .map(|(t, _)| *t)
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    seed: u64,
    loss: u64,
    jitter: u64,
    /// (node, crash at, restart after ms (None: stays down))
    crash: Option<(usize, u64, Option<u64>)>,
    /// Replay a random captured packet every this many ms.
    replay_every: Option<u64>,
    /// Restore node from a snapshot: (node, snapshot at, restore at).
    restore: Option<(usize, u64, u64)>,
}

fn scenario(lossless: bool) -> impl Strategy<Value = Scenario> {
    (
        any::<u64>(),
        if lossless {
            Just(0u64).boxed()
        } else {
            (0u64..=40).boxed()
        },
        0u64..=150,
        proptest::option::of((0usize..2, 2000u64..8000, proptest::option::of(0u64..3000))),
        proptest::option::of(1u64..60),
        proptest::option::of((0usize..2, 1500u64..4000, 100u64..3000)),
    )
        .prop_map(
            |(seed, loss, jitter, crash, replay_every, restore)| Scenario {
                seed,
                loss,
                jitter,
                crash,
                replay_every,
                // a restore only in runs without a crash (one story at a time)
                restore: restore
                    .filter(|_| crash.is_none())
                    .map(|(n, s, d)| (n, s, s + d)),
            },
        )
}

const END: u64 = 12_000;

/// Runs one scenario; soundness is checked at every step.
fn run(sc: &Scenario) -> Net {
    let mut net = Net::new(sc.seed);
    net.loss = sc.loss;
    net.jitter = sc.jitter;
    net.start(0, view(1));
    net.start(1, view(1));
    let mut snapshot: Option<(usize, Node, u64)> = None;
    let mut next_replay = sc.replay_every.unwrap_or(u64::MAX);
    let mut crashed = false;
    let mut restarted = false;
    let mut restored = false;
    // milestones, in time order, handled between runs
    loop {
        let mut marks = vec![END, next_replay];
        if let Some((_, at, _)) = sc.crash {
            if !crashed {
                marks.push(at);
            }
        }
        if let Some((_, at, Some(after))) = sc.crash {
            if crashed && !restarted {
                marks.push(at + after);
            }
        }
        if let Some((_, snap, rest)) = sc.restore {
            if snapshot.is_none() && !restored {
                marks.push(snap);
            }
            if snapshot.is_some() {
                marks.push(rest);
            }
        }
        let t = marks
            .into_iter()
            .filter(|&m| m >= net.t)
            .min()
            .unwrap_or(END);
        net.run_until(t);
        if t >= END {
            break;
        }
        if let Some((n, at, after)) = sc.crash {
            if !crashed && t == at {
                net.crash(n);
                crashed = true;
            } else if crashed && !restarted && after.is_some_and(|a| t == at + a) {
                net.start(n, view(1));
                restarted = true;
            }
        }
        if let Some((n, snap, rest)) = sc.restore {
            if snapshot.is_none() && !restored && t == snap {
                if let Some(node) = net.nodes[n].clone() {
                    snapshot = Some((n, node, t));
                } else {
                    restored = true;
                }
            } else if let Some((n2, node, snap_t)) = snapshot.take().filter(|_| t == rest) {
                debug_assert_eq!(n, n2);
                // a VM resumed from a memory snapshot: same state, same
                // incarnation, its clock continuing from the snapshot
                let _ = snap_t;
                let mut node = node;
                node.start = t;
                node.base = node.m.now.0;
                net.nodes[n] = Some(node);
                restored = true;
            }
        }
        if t == next_replay {
            let from = usize::try_from(net.rng.below(2)).unwrap();
            if !net.captured[from].is_empty() {
                let len = u64::try_from(net.captured[from].len()).unwrap();
                let k = usize::try_from(net.rng.below(len)).unwrap();
                let (_, link, bytes) = net.captured[from][k].clone();
                // to the peer, or reflected back to the sender
                let to = if net.rng.below(8) == 0 {
                    from
                } else {
                    1 - from
                };
                net.inject(to, link, &bytes);
            }
            next_replay = t + sc.replay_every.unwrap_or(u64::MAX / 2);
        }
    }
    net
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Soundness under everything at once (checked inside `run`), and a
    /// crashed node is declared dead within deadtime of its last packet.
    #[test]
    fn sound_under_loss_jitter_crashes_and_replays(sc in scenario(false)) {
        let net = run(&sc);
        if let Some((n, at, None)) = sc.crash {
            let watcher = 1 - n;
            if net.nodes[watcher].is_some() {
                let last = net.last_send[n].unwrap();
                prop_assert!(last <= at);
                let dead = net.first_event(watcher, at, |e| matches!(e, Event::PeerDead { .. }));
                prop_assert_eq!(net.m(watcher).peer_state(), PeerState::Dead, "crashed peer not dead at the end");
                if let Some(d) = dead {
                    prop_assert!(d <= last + timing().deadtime.0, "declared dead at {} > {} + deadtime", d, last);
                }
            }
        }
    }

    /// Lossless wire, jitter within budget: no false death, replays or not;
    /// restarts and restores are accepted again within a few keepalives.
    #[test]
    fn no_false_death_and_no_lockout(sc in scenario(true)) {
        let net = run(&sc);
        let k = timing().keepalive.0;
        let bound = 4 * k + 4 * sc.jitter + 10;
        for i in 0..2 {
            let peer = 1 - i;
            for (t, e) in &net.events[i] {
                if let Event::PeerDead { .. } = e {
                    // only allowed while the peer is really down
                    let (n, at, after) = sc.crash.expect("a death without a crash");
                    prop_assert_eq!(n, peer, "node {} declared its live peer dead at {}", i, t);
                    prop_assert!(*t >= at && after.is_none_or(|a| *t <= at + a + timing().deadtime.0),
                        "death at {} outside the crash window", t);
                }
            }
            // the first contact happens within the bound
            let first = net.first_event(i, 0, |e| matches!(e, Event::PeerAlive { .. }));
            prop_assert!(first.is_some_and(|t| t <= bound), "node {} first contact at {:?}", i, first);
        }
        if let Some((n, at, Some(after))) = sc.crash {
            let back = at + after;
            if back + bound < END && net.nodes[1 - n].is_some() {
                let t = net.first_event(1 - n, back, |e| matches!(e, Event::PeerAlive { .. }));
                prop_assert!(t.is_some_and(|t| t <= back + bound),
                    "restarted node {} (at {}) accepted at {:?}, bound {}", n, back, t, back + bound);
            }
        }
        if let Some((n, _, rest)) = sc.restore {
            if rest + bound < END && net.nodes.iter().all(Option::is_some) && sc.crash.is_none() {
                // both see each other alive at the end
                for i in 0..2 {
                    prop_assert_eq!(net.m(i).peer_state(), PeerState::Alive, "node {} after restoring node {}", i, n);
                }
            }
        }
    }
}
