//! A deterministic two-node simulator of the pair engine, with fault
//! injection, checking the safety invariants after every event.
//!
//! Two [`Engine`]s, a shared lease disk (one lock block, per-node latency,
//! slow, failing or unreachable windows), a membership model (the peer is
//! seen dead `deadtime` after its last packet, alive again after a packet),
//! agents (success, failure, hang until timeout, a resource dying under its
//! monitor, a stop that fails), fence devices (working, broken, slow),
//! crashes and restarts, per-node clock rates, daemon freezes (its timers
//! fire late: a clock jump as the engine sees it; the watchdog reboots the
//! node when the freeze lasts too long), DRBD replication cuts and resyncs,
//! and operator requests, all drawn from one seed. Time jumps from event to event.
//!
//! After every event it checks, against the ground truth of what is really
//! promoted, mounted and started:
//! - never both nodes with any resource of the stack up;
//! - a node with anything up holds the lease, valid on the real clock;
//! - never both nodes holding a valid lease;
//! - start and promote are issued only while the lease is fresh.
//!
//! After the faults stop, the pair must converge: exactly one node runs the
//! whole stack (liveness).

use std::fmt::Write as _;

use crate::engine::*;
use sfex::format::LockBlock;

/// xorshift64*: deterministic, no crate.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo).max(1))
    }
}

const DEADTIME: u64 = 1_000;
const HB_DELAY: u64 = 30;
/// The node's watchdog (systemd WatchdogSec / a hardware watchdog): it must
/// fire well before a peer may take the lease (lock_timeout - margin -
/// monitor_interval = 16 s here).
const WATCHDOG: u64 = 5_000;

fn spec(name: &str, kind: ResourceKind) -> ResourceSpec {
    ResourceSpec {
        name: name.into(),
        kind,
        start_timeout: Millis(5_000),
        stop_timeout: Millis(5_000),
        monitor_interval: Millis(2_000),
        monitor_timeout: Millis(2_000),
    }
}

/// The configuration used by the simulator and the scenario tests.
pub(crate) fn config(me: &str, peer: &str, preferred: bool) -> EngineConfig {
    EngineConfig {
        me: NodeName::new(me).unwrap(),
        peer: NodeName::new(peer).unwrap(),
        preferred,
        lock_timeout: Millis(20_000),
        collision_timeout: Millis(2_500),
        monitor_interval: Millis(2_000),
        margin: Millis(2_000),
        max_io: Millis(1_000),
        stop_budget: Millis(12_000),
        resources: vec![
            spec("drbd", ResourceKind::Drbd),
            spec("fs", ResourceKind::Filesystem),
            spec("ip", ResourceKind::Address),
            spec("db", ResourceKind::Service),
        ],
        migration_threshold: 3,
        failure_timeout: Some(Millis(60_000)),
        fence_levels: 2,
        fence_delay: Millis(8_000),
        start_delay: Millis(2_000),
        retry_interval: Millis(3_000),
    }
}

#[derive(Debug, Clone)]
enum LeaseIo {
    Read {
        sample: u64,
        done: u64,
        seen: Option<LockBlock>,
        fail: bool,
    },
    Write {
        land: u64,
        done: u64,
        block: LockBlock,
        fail: bool,
    },
}

#[derive(Debug, Clone)]
struct AgentCall {
    res: ResId,
    op: Op,
    done: u64,
    outcome: Outcome,
}

#[derive(Debug, Clone, Copy)]
struct FenceCall {
    level: u8,
    done: u64,
    ok: bool,
}

#[derive(Debug)]
struct Node {
    eng: Engine,
    up: bool,
    restart_at: u64,
    /// ground truth: resource really up (pessimistic: set when a start is
    /// issued, cleared when a stop completes or the node loses power)
    started: Vec<bool>,
    /// a resource that died under its monitor
    dead_res: Vec<bool>,
    /// the daemon is frozen (SIGSTOP, starvation) until then
    paused_until: u64,
    /// DRBD model: the newest acknowledged write this node's disk holds,
    /// its disk state, and whether it knows its peer to be outdated
    data: u64,
    disk: Disk,
    knows_peer_outdated: bool,
    /// a resync in progress ends then
    sync_until: Option<u64>,
    drbd_sent: Option<DrbdView>,
    lease_io: Option<LeaseIo>,
    agent: Option<AgentCall>,
    fence: Option<FenceCall>,
    /// local clock = offset + real * rate_ppm / 1e6
    offset: u64,
    rate_ppm: u64,
    /// last peer status delivered, and the pending one
    view: PeerStatus,
    pending_view: Option<(u64, PeerStatus)>,
    /// last time a packet from the peer arrived
    heard: Option<u64>,
}

/// Fault windows and one-shot faults of a run.
#[derive(Debug, Clone, Default)]
struct Faults {
    /// (from, to): interconnect cut
    cuts: Vec<(u64, u64, usize)>,
    /// heartbeat loss percentage per link (0..=30)
    loss: [u64; 2],
    /// (node, at): the node's DRBD backing disk fails (until it is replaced
    /// at its next boot, then resynced)
    disk_failures: Vec<(usize, u64)>,
    /// percentage of fence calls that hang until the fence timeout
    fence_hang_pct: u64,
    /// (from, to): DRBD replication link cut (the heartbeat links stay up)
    repl_cuts: Vec<(u64, u64)>,
    /// (node, from, to, kind): 0 slow, 1 failing, 2 hung (very slow)
    disk: Vec<(usize, u64, u64, u8)>,
    /// (node, at): power loss
    crashes: Vec<(usize, u64)>,
    /// (node, at, duration): the daemon freezes; its timers fire late when it
    /// resumes (a clock jump as the engine sees it). The watchdog reboots the
    /// node when the freeze outlasts WATCHDOG.
    pauses: Vec<(usize, u64, u64)>,
    /// node whose fence device (of the *other* node) is broken: levels broken
    fence_broken: [u8; 2],
    /// percentage of agent ops that fail / hang
    agent_fail_pct: u64,
    agent_hang_pct: u64,
    stop_fail_pct: u64,
    /// (node, at, res): a resource dies
    res_deaths: Vec<(usize, u64, ResId)>,
    /// (node, at, request)
    requests: Vec<(usize, u64, Request)>,
    /// last fault time
    quiet_at: u64,
}

/// Figures of one run.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RunStats {
    pub(crate) events: u64,
    pub(crate) failovers: u64,
    pub(crate) faults: u64,
    pub(crate) fences: u64,
    pub(crate) self_fences: u64,
}

pub(crate) struct Sim {
    rng: Rng,
    t: u64,
    nodes: Vec<Node>,
    disk: LockBlock,
    faults: Faults,
    pub(crate) stats: RunStats,
    last_runner: Option<usize>,
    /// newest acknowledged write (DRBD model)
    acked: u64,
    /// when the watchdog reboots a frozen node
    watchdog_at: [Option<u64>; 2],
    /// an invariant broken inside an action, reported by the next check
    violation: Option<String>,
    trace: Vec<String>,
    keep_trace: bool,
}

impl Sim {
    pub(crate) fn new(seed: u64, keep_trace: bool) -> Self {
        Self::with_faults(seed, keep_trace, None)
    }

    /// As `new`, with the seed's faults replaced (to shrink a failure).
    fn with_faults(seed: u64, keep_trace: bool, faults: Option<Faults>) -> Self {
        let mut rng = Rng::new(seed);
        let mk = |rng: &mut Rng, me: &str, peer: &str, pref: bool| Node {
            eng: Engine::new(config(me, peer, pref), Millis(0)),
            up: true,
            restart_at: 0,
            started: vec![false; 4],
            dead_res: vec![false; 4],
            paused_until: 0,
            data: 0,
            disk: Disk::UpToDate,
            knows_peer_outdated: false,
            sync_until: None,
            drbd_sent: None,
            lease_io: None,
            agent: None,
            fence: None,
            offset: rng.below(10_000),
            rate_ppm: rng.range(990_000, 1_010_001),
            view: PeerStatus {
                alive: false,
                active: true,
                eligible: false,
            },
            pending_view: None,
            heard: None,
        };
        let a = mk(&mut rng, "alpha", "beta", true);
        let b = mk(&mut rng, "beta", "alpha", false);
        let drawn = Self::draw_faults(&mut rng);
        let faults = faults.unwrap_or(drawn);
        let mut s = Self {
            rng,
            t: 0,
            nodes: vec![a, b],
            disk: LockBlock::fresh(),
            stats: RunStats {
                faults: faults.count(),
                ..RunStats::default()
            },
            faults,
            last_runner: None,
            acked: 0,
            watchdog_at: [None; 2],
            violation: None,
            trace: Vec::new(),
            keep_trace,
        };
        s.drbd_tick();
        s
    }

    fn draw_faults(rng: &mut Rng) -> Faults {
        let horizon = 240_000;
        let mut f = Faults::default();
        // interconnect: two links, each cut on its own (link 2 = both)
        for _ in 0..rng.below(4) {
            let a = rng.below(horizon);
            let which = usize::try_from(rng.below(3)).unwrap_or(2);
            f.cuts.push((a, a + rng.range(500, 60_000), which));
        }
        for l in &mut f.loss {
            *l = if rng.chance(30) { rng.below(31) } else { 0 };
        }
        if rng.chance(15) {
            f.disk_failures
                .push((usize::from(rng.chance(50)), rng.below(horizon)));
        }
        f.fence_hang_pct = if rng.chance(10) { rng.range(10, 60) } else { 0 };
        for _ in 0..rng.below(3) {
            let a = rng.below(horizon);
            let kind = u8::try_from(rng.below(3)).unwrap_or(0);
            let node = usize::from(rng.chance(50));
            f.disk.push((node, a, a + rng.range(1_000, 40_000), kind));
            if rng.chance(25) {
                f.disk
                    .push((1 - node, a, a + rng.range(1_000, 40_000), kind));
            }
        }
        for _ in 0..rng.below(3) {
            f.crashes
                .push((usize::from(rng.chance(50)), rng.below(horizon)));
        }
        for n in 0..2 {
            f.fence_broken[n] = if rng.chance(20) {
                u8::try_from(rng.range(1, 3)).unwrap_or(1)
            } else {
                0
            };
        }
        f.agent_fail_pct = if rng.chance(30) { rng.below(8) } else { 0 };
        f.agent_hang_pct = if rng.chance(20) { rng.below(4) } else { 0 };
        f.stop_fail_pct = if rng.chance(15) { rng.below(5) } else { 0 };
        for _ in 0..rng.below(3) {
            f.res_deaths.push((
                usize::from(rng.chance(50)),
                rng.below(horizon),
                usize::try_from(rng.below(4)).unwrap_or(0),
            ));
        }
        for _ in 0..rng.below(4) {
            let node = usize::from(rng.chance(50));
            let at = rng.below(horizon);
            let req = match rng.below(6) {
                0 => Request::Standby(true),
                1 => Request::Standby(false),
                2 => Request::Move {
                    to: Side::Peer,
                    until: Some(Millis(at + rng.range(5_000, 60_000))),
                },
                3 => Request::Move {
                    to: Side::Me,
                    until: None,
                },
                4 => Request::Unmove,
                _ => Request::Cleanup(None),
            };
            f.requests.push((node, at, req));
        }
        for _ in 0..rng.below(3) {
            let a = rng.below(horizon);
            f.repl_cuts.push((a, a + rng.range(1_000, 60_000)));
        }
        for _ in 0..rng.below(2) {
            let node = usize::from(rng.chance(50));
            f.pauses
                .push((node, rng.below(horizon), rng.range(100, 15_000)));
        }
        let ends = f
            .cuts
            .iter()
            .map(|c| c.1)
            .chain(f.repl_cuts.iter().map(|c| c.1))
            .chain(f.disk_failures.iter().map(|d| d.1 + 60_000))
            .chain(f.pauses.iter().map(|p| p.1 + p.2 + 30_000))
            .chain(f.disk.iter().map(|d| d.2))
            .chain(f.crashes.iter().map(|c| c.1 + 30_000))
            .chain(f.res_deaths.iter().map(|d| d.1))
            .chain(f.requests.iter().map(|r| r.1));
        f.quiet_at = ends.max().unwrap_or(0);
        f
    }

    fn local(&self, i: usize) -> Millis {
        let n = &self.nodes[i];
        Millis(n.offset + self.t * n.rate_ppm / 1_000_000)
    }

    /// Real time at which node `i`'s local clock reads `l` (rounded down).
    fn real_of(&self, i: usize, l: Millis) -> u64 {
        let n = &self.nodes[i];
        l.0.saturating_sub(n.offset) * 1_000_000 / n.rate_ppm
    }

    /// Is heartbeat link `l` (0 or 1) up?
    fn link_up(&self, l: usize) -> bool {
        !self
            .faults
            .cuts
            .iter()
            .filter(|c| c.2 == l || c.2 == 2)
            .any(|&(a, b, _)| self.t >= a && self.t < b)
    }

    fn disk_fault(&self, i: usize) -> Option<u8> {
        self.faults
            .disk
            .iter()
            .find(|d| d.0 == i && self.t >= d.1 && self.t < d.2)
            .map(|d| d.3)
    }

    fn log(&mut self, s: String) {
        if self.keep_trace {
            self.trace.push(format!("{:>7} {s}", self.t));
        }
    }

    fn paused(&self, i: usize) -> bool {
        self.t < self.nodes[i].paused_until
    }

    fn input(&mut self, i: usize, inp: Input) {
        if !self.nodes[i].up || self.paused(i) {
            return;
        }
        let now = self.local(i);
        self.log(format!("n{i} <- {inp:?}"));
        self.stats.events += 1;
        let acts = self.nodes[i].eng.step(now, inp);
        for a in acts {
            self.action(i, a);
        }
    }

    fn io_latency(&mut self, i: usize) -> (u64, bool) {
        match self.disk_fault(i) {
            Some(0) => (self.rng.range(100, 3_000), false),
            Some(1) => (self.rng.range(1, 50), true),
            Some(_) => (self.rng.range(5_000, 30_000), false),
            None => (self.rng.range(1, 40), false),
        }
    }

    fn action(&mut self, i: usize, a: Action) {
        self.log(format!("n{i} -> {a:?}"));
        match a {
            Action::ReadLease => {
                let (lat, fail) = self.io_latency(i);
                let sample = self.t + self.rng.below(lat);
                self.nodes[i].lease_io = Some(LeaseIo::Read {
                    sample,
                    done: self.t + lat,
                    seen: None,
                    fail,
                });
            }
            Action::WriteLease(block) => {
                let (lat, fail) = self.io_latency(i);
                let land = self.t + self.rng.below(lat);
                self.nodes[i].lease_io = Some(LeaseIo::Write {
                    land,
                    done: self.t + lat,
                    block,
                    fail,
                });
            }
            Action::RunAgent { res, op, timeout } => {
                let n_fail = self.faults.agent_fail_pct;
                let n_hang = self.faults.agent_hang_pct;
                let (lat, outcome) = match op {
                    Op::Stop | Op::Demote if self.rng.chance(self.faults.stop_fail_pct) => {
                        (self.rng.range(10, 500), Outcome::Failed(FailClass::Soft))
                    }
                    Op::Stop | Op::Demote => (self.rng.range(10, 2_000), Outcome::Ok),
                    _ if self.rng.chance(n_hang) => (timeout.0, Outcome::Failed(FailClass::Soft)),
                    _ if self.rng.chance(n_fail) => {
                        let class = if self.rng.chance(80) {
                            FailClass::Soft
                        } else {
                            FailClass::Hard
                        };
                        (self.rng.range(10, 1_000), Outcome::Failed(class))
                    }
                    Op::Monitor if self.nodes[i].dead_res[res] => {
                        (self.rng.range(5, 200), Outcome::NotRunning)
                    }
                    _ => (self.rng.range(10, 1_500), Outcome::Ok),
                };
                if matches!(op, Op::Start | Op::Promote) {
                    // invariant 4: start only with a fresh lease (checked in check())
                    let e = &self.nodes[i].eng;
                    let now = self.local(i);
                    let v = e.lease_valid_until();
                    let cfg = e.config();
                    let fresh = v.is_some_and(|v| {
                        let w = v.plus(cfg.margin).minus(cfg.lock_timeout);
                        now <= w.plus(cfg.monitor_interval).plus(cfg.max_io) && now < v
                    });
                    if !fresh {
                        self.violation.get_or_insert(format!(
                            "n{i} starts {op} of {res} without a fresh lease (valid_until {v:?}, now {now:?})"
                        ));
                    }
                    self.nodes[i].started[res] = true;
                    self.nodes[i].dead_res[res] = false;
                    // invariant 5: every acknowledged write survives a failover
                    if self.nodes[i].data < self.acked {
                        let n = &self.nodes[i];
                        let msg = format!(
                            "n{i} runs {op} of {res} on a disk missing acknowledged writes \
                             (has {}, acked {}, disk {:?})",
                            n.data, self.acked, n.disk
                        );
                        self.violation.get_or_insert(msg);
                    }
                }
                self.nodes[i].agent = Some(AgentCall {
                    res,
                    op,
                    done: self.t + lat,
                    outcome,
                });
            }
            Action::Fence { level } => {
                self.stats.fences += 1;
                let mut broken = self.faults.fence_broken[i] >= level;
                let mut lat = self.rng.range(200, 3_000);
                if self.rng.chance(self.faults.fence_hang_pct) {
                    // the device does not answer: the call times out, failed
                    lat = 60_000;
                    broken = true;
                }
                self.nodes[i].fence = Some(FenceCall {
                    level,
                    done: self.t + lat,
                    ok: !broken,
                });
            }
            Action::SelfFence => {
                self.stats.self_fences += 1;
                let d = self.rng.range(5_000, 30_000);
                self.power_off(i, d);
            }
            Action::Log(_) => {}
        }
    }

    fn power_off(&mut self, i: usize, down_for: u64) {
        self.log(format!("n{i} POWER OFF"));
        let n = &mut self.nodes[i];
        n.up = false;
        n.restart_at = self.t + down_for;
        n.started.iter_mut().for_each(|s| *s = false);
        n.agent = None;
        n.fence = None;
        // a write already submitted may still land; reads are gone
        if matches!(n.lease_io, Some(LeaseIo::Read { .. })) {
            n.lease_io = None;
        }
        n.pending_view = None;
    }

    fn power_on(&mut self, i: usize) {
        self.log(format!("n{i} POWER ON"));
        let now = self.local(i);
        let (me, peer, pref) = if i == 0 {
            ("alpha", "beta", true)
        } else {
            ("beta", "alpha", false)
        };
        let n = &mut self.nodes[i];
        n.up = true;
        n.eng = Engine::new(config(me, peer, pref), now);
        n.view = PeerStatus {
            alive: false,
            active: true,
            eligible: false,
        };
        n.heard = None;
        n.dead_res.iter_mut().for_each(|d| *d = false);
        // DRBD attaches: Outdated stays Outdated; otherwise Consistent, or
        // UpToDate when its metadata says the peer is outdated
        n.disk = match n.disk {
            Disk::Unknown => {
                // the failed backing disk was replaced: empty, needs a full sync
                n.data = 0;
                Disk::Inconsistent
            }
            Disk::Outdated | Disk::Inconsistent => n.disk,
            _ if n.knows_peer_outdated => Disk::UpToDate,
            _ => Disk::Consistent,
        };
        n.sync_until = None;
        n.drbd_sent = None;
        self.drbd_tick();
    }

    /// The next time something happens.
    fn next_time(&self) -> Option<u64> {
        let now = self.t;
        let mut best: Option<u64> = None;
        let mut at = |x: u64| {
            if x > now && best.is_none_or(|b| x < b) {
                best = Some(x);
            }
        };
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.up {
                at(n.restart_at);
            } else if let Some(w) = n.eng.next_wake() {
                at(self.real_of(i, w) + 1);
            }
            match &n.lease_io {
                Some(LeaseIo::Read {
                    sample, done, seen, ..
                }) => {
                    if seen.is_none() {
                        at(*sample);
                    }
                    at(*done);
                }
                Some(LeaseIo::Write { land, done, .. }) => {
                    if *land != u64::MAX {
                        at(*land);
                    }
                    at(*done);
                }
                None => {}
            }
            n.agent
                .as_ref()
                .map(|a| a.done)
                .into_iter()
                .for_each(&mut at);
            n.fence.map(|f| f.done).into_iter().for_each(&mut at);
            n.pending_view.map(|p| p.0).into_iter().for_each(&mut at);
            if let Some(h) = n.heard {
                at(h + DEADTIME);
            }
        }
        for f in &self.faults.cuts {
            at(f.0);
            at(f.1);
        }
        self.faults
            .disk_failures
            .iter()
            .map(|d| d.1)
            .for_each(&mut at);
        for d in &self.faults.disk {
            at(d.1);
            at(d.2);
        }
        self.faults.crashes.iter().map(|c| c.1).for_each(&mut at);
        for p in &self.faults.pauses {
            at(p.1);
            at(p.1 + p.2);
        }
        self.watchdog_at.iter().flatten().copied().for_each(&mut at);
        self.faults.res_deaths.iter().map(|d| d.1).for_each(&mut at);
        self.faults.requests.iter().map(|r| r.1).for_each(&mut at);
        // heartbeats: while the link is up, each node hears the other periodically
        at((self.t / 200 + 1) * 200);
        best
    }

    fn run_until(&mut self, end: u64) -> Result<(), String> {
        while self.t < end {
            let Some(next) = self.next_time() else { break };
            self.t = next.min(end);
            self.tick()?;
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), String> {
        let t = self.t;
        // scheduled faults
        for i in due(&self.faults.crashes, t) {
            if self.nodes[i].up {
                let d = self.rng.range(2_000, 30_000);
                self.power_off(i, d);
            }
        }
        let deaths: Vec<(usize, ResId)> = self
            .faults
            .res_deaths
            .iter()
            .filter(|d| d.1 == t)
            .map(|d| (d.0, d.2))
            .collect();
        for (i, r) in deaths {
            if self.nodes[i].started[r] {
                self.nodes[i].dead_res[r] = true;
            }
        }
        let reqs: Vec<(usize, Request)> = self
            .faults
            .requests
            .iter()
            .filter(|r| r.1 == t)
            .map(|r| (r.0, r.2.clone()))
            .collect();
        for (i, mut r) in reqs {
            if let Request::Move { until: Some(u), to } = r {
                r = Request::Move {
                    to,
                    until: Some(Millis(self.local(i).0 + (u.0 - t))),
                };
            }
            self.input(i, Input::Operator(r));
        }
        for i in 0..2 {
            if !self.nodes[i].up && self.nodes[i].restart_at <= t {
                self.power_on(i);
            }
        }
        // daemon freezes; the watchdog reboots a node frozen too long
        let pauses: Vec<(usize, u64)> = self
            .faults
            .pauses
            .iter()
            .filter(|p| p.1 == t)
            .map(|p| (p.0, p.2))
            .collect();
        for (i, d) in pauses {
            if self.nodes[i].up {
                self.log(format!("n{i} FROZEN for {d} ms"));
                self.nodes[i].paused_until = t + d;
                if d > WATCHDOG {
                    self.watchdog_at[i] = Some(t + WATCHDOG);
                }
            }
        }
        for i in 0..2 {
            if self.watchdog_at[i].is_some_and(|w| t >= w) {
                self.watchdog_at[i] = None;
                if self.nodes[i].up {
                    self.log(format!("n{i} WATCHDOG"));
                    let d = self.rng.range(5_000, 30_000);
                    self.power_off(i, d);
                    self.nodes[i].paused_until = 0;
                }
            }
        }
        // lease I/O (a frozen daemon collects completions when it resumes)
        for i in 0..2 {
            let frozen = self.paused(i);
            let mut done_input = None;
            let disk = self.disk.clone();
            match &mut self.nodes[i].lease_io {
                Some(LeaseIo::Read {
                    sample,
                    done,
                    seen,
                    fail,
                }) => {
                    if seen.is_none() && t >= *sample {
                        *seen = Some(disk.clone());
                    }
                    if t >= *done && !frozen {
                        done_input = Some(Input::LeaseRead(if *fail {
                            Err(IoFailure::io("EIO"))
                        } else {
                            Ok(seen.clone().unwrap_or(disk))
                        }));
                    }
                }
                Some(LeaseIo::Write {
                    land,
                    done,
                    block,
                    fail,
                }) => {
                    if *land != u64::MAX && t >= *land {
                        if !*fail {
                            self.disk = block.clone();
                        }
                        *land = u64::MAX;
                    }
                    if t >= *done && !frozen {
                        done_input = Some(Input::LeaseWritten(if *fail {
                            Err(IoFailure::io("EIO"))
                        } else {
                            Ok(())
                        }));
                    }
                }
                None => {}
            }
            if let Some(inp) = done_input {
                self.nodes[i].lease_io = None;
                self.input(i, inp);
            }
        }
        // agents and fencing
        for i in 0..2 {
            if self.paused(i) {
                continue;
            }
            if let Some(a) = self.nodes[i].agent.clone() {
                if t >= a.done && self.nodes[i].up {
                    self.nodes[i].agent = None;
                    if matches!(a.op, Op::Stop | Op::Demote) && a.outcome == Outcome::Ok {
                        self.nodes[i].started[a.res] = false;
                    }
                    self.input(
                        i,
                        Input::AgentDone {
                            res: a.res,
                            op: a.op,
                            outcome: a.outcome,
                        },
                    );
                }
            }
            if let Some(f) = self.nodes[i].fence {
                if t >= f.done && self.nodes[i].up {
                    self.nodes[i].fence = None;
                    if f.ok && self.nodes[1 - i].up {
                        let d = self.rng.range(5_000, 40_000);
                        self.power_off(1 - i, d);
                    }
                    self.input(
                        i,
                        Input::FenceDone {
                            level: f.level,
                            ok: f.ok,
                        },
                    );
                }
            }
        }
        self.drbd_tick();
        // membership and summaries
        for i in 0..2 {
            let p = 1 - i;
            if !self.nodes[i].up {
                continue;
            }
            // a heartbeat every 200 ms on each link, lost on a cut link or at
            // the link's loss rate; one packet on any link keeps the peer alive
            let mut got = false;
            if self.nodes[p].up && !self.paused(p) && t % 200 == 0 {
                for l in 0..2 {
                    let lost = self.rng.chance(self.faults.loss[l]);
                    got |= self.link_up(l) && !lost;
                }
            }
            if got {
                self.nodes[i].heard = Some(t);
                let s = self.nodes[p].eng.summary(self.local(p));
                let st = PeerStatus {
                    alive: true,
                    active: s.active,
                    eligible: s.eligible,
                };
                if st != self.nodes[i].view && self.nodes[i].pending_view.is_none() {
                    let at = t + self.rng.range(1, HB_DELAY);
                    self.nodes[i].pending_view = Some((at, st));
                }
            }
            if let Some((at, st)) = self.nodes[i].pending_view {
                if t >= at && !self.paused(i) {
                    self.nodes[i].pending_view = None;
                    self.nodes[i].view = st;
                    self.input(i, Input::Peer(st));
                }
            }
            if let Some(h) = self.nodes[i].heard {
                if t >= h + DEADTIME && self.nodes[i].view.alive {
                    let st = PeerStatus {
                        alive: false,
                        ..self.nodes[i].view
                    };
                    self.nodes[i].view = st;
                    self.nodes[i].heard = None;
                    self.nodes[i].pending_view = None;
                    self.input(i, Input::Peer(st));
                }
            }
        }
        // timers
        for i in 0..2 {
            if self.nodes[i].up && !self.paused(i) {
                if let Some(w) = self.nodes[i].eng.next_wake() {
                    if self.local(i) >= w {
                        self.input(i, Input::Tick);
                        // a deadline still due after its tick would make
                        // the daemon's loop spin (it wakes at once again)
                        if let Some(w2) = self.nodes[i].eng.next_wake() {
                            if self.local(i) >= w2 {
                                return Err(format!(
                                    "node {i}: next_wake {w2:?} is still due at local {} after a tick ({})",
                                    self.local(i),
                                    self.nodes[i].eng.debug_wakes()
                                ));
                            }
                        }
                    }
                }
            }
        }
        self.check()
    }

    fn repl_up(&self) -> bool {
        self.nodes[0].up
            && self.nodes[1].up
            && !self
                .faults
                .repl_cuts
                .iter()
                .any(|&(a, b)| self.t >= a && self.t < b)
    }

    /// DRBD, as a model: the node running the stack acknowledges writes;
    /// a connected UpToDate peer gets each one (protocol C), a disconnected
    /// peer is marked Outdated first (fence-peer); a reconnected peer resyncs.
    fn drbd_tick(&mut self) {
        let t = self.t;
        for i in due(&self.faults.disk_failures, t) {
            // only a single fault: the peer must hold a current copy, or the
            // acknowledged writes would be gone with the disk whatever we do
            let p = 1 - i;
            let peer_current = self.repl_up() && self.nodes[p].disk == Disk::UpToDate;
            if self.nodes[i].up && peer_current {
                self.log(format!("n{i} DRBD BACKING DISK FAILED"));
                self.nodes[i].disk = Disk::Unknown; // detached: Diskless
                self.nodes[i].sync_until = None;
            }
        }
        let repl = self.repl_up();
        for i in 0..2 {
            let p = 1 - i;
            let n = &self.nodes[i];
            if n.up && !self.paused(i) && n.started.iter().all(|&s| s) && self.rng.chance(30) {
                let diskless = n.disk == Disk::Unknown;
                let peer_ok = repl && self.nodes[p].disk == Disk::UpToDate;
                if diskless && !peer_ok {
                    continue; // no access to data: the write fails, not acknowledged
                }
                self.acked += 1;
                if !diskless {
                    self.nodes[i].data = self.acked;
                }
                if peer_ok {
                    self.nodes[p].data = self.acked;
                } else if self.nodes[p].data < self.acked && self.nodes[p].disk != Disk::Unknown {
                    // (a diskless peer has no disk to mark)
                    self.nodes[p].disk = Disk::Outdated;
                    self.nodes[i].knows_peer_outdated = true;
                }
            }
        }
        let diskless = self.nodes.iter().any(|n| n.disk == Disk::Unknown);
        if repl && diskless {
            // connected to a diskless peer, a Consistent disk is the only copy
            // of the data: DRBD makes it UpToDate
            for n in &mut self.nodes {
                if n.disk == Disk::Consistent {
                    n.disk = Disk::UpToDate;
                }
            }
        } else if repl {
            let (hi, lo) = if self.nodes[0].data >= self.nodes[1].data {
                (0, 1)
            } else {
                (1, 0)
            };
            let behind = self.nodes[lo].data < self.nodes[hi].data;
            let good = |d: Disk| matches!(d, Disk::UpToDate | Disk::Consistent);
            if !good(self.nodes[hi].disk) {
                // no node has good data to sync from: stays as is (operator)
            } else if behind || !good(self.nodes[lo].disk) {
                match self.nodes[lo].sync_until {
                    None => {
                        self.nodes[lo].disk = Disk::Inconsistent;
                        self.nodes[lo].sync_until = Some(self.t + 2_000);
                    }
                    Some(u) if self.t >= u => {
                        self.nodes[lo].data = self.nodes[hi].data;
                        for k in [lo, hi] {
                            self.nodes[k].disk = Disk::UpToDate;
                            self.nodes[k].sync_until = None;
                            self.nodes[k].knows_peer_outdated = false;
                        }
                    }
                    Some(_) => {}
                }
            } else {
                for k in [lo, hi] {
                    self.nodes[k].disk = Disk::UpToDate;
                }
            }
        } else {
            // a sync cut short leaves its target Inconsistent until it resumes
            for n in &mut self.nodes {
                n.sync_until = None;
            }
        }
        for i in 0..2 {
            if !self.nodes[i].up || self.paused(i) {
                continue; // sent once the daemon can take it
            }
            let peer = if repl {
                self.nodes[1 - i].disk
            } else if self.nodes[i].knows_peer_outdated {
                Disk::Outdated
            } else {
                Disk::Unknown
            };
            let v = DrbdView {
                local: self.nodes[i].disk,
                peer,
            };
            if self.nodes[i].drbd_sent != Some(v) {
                self.nodes[i].drbd_sent = Some(v);
                self.input(i, Input::Drbd(v));
            }
        }
    }

    fn check(&mut self) -> Result<(), String> {
        if let Some(v) = self.violation.take() {
            return Err(v);
        }
        let up: Vec<bool> = self
            .nodes
            .iter()
            .map(|n| n.started.iter().any(|&s| s))
            .collect();
        if up[0] && up[1] {
            return Err(format!(
                "both nodes have resources up: {:?} / {:?}",
                self.nodes[0].started, self.nodes[1].started
            ));
        }
        let mut holds = [false; 2];
        for i in 0..2 {
            let n = &self.nodes[i];
            if !n.up {
                continue;
            }
            let valid = n.eng.lease_valid_until().map(|v| self.real_of(i, v));
            holds[i] = valid.is_some_and(|v| self.t < v);
            if up[i] && !holds[i] {
                return Err(format!(
                    "n{i} has {:?} up without a valid lease (valid until {valid:?})",
                    n.started
                ));
            }
        }
        if holds[0] && holds[1] {
            return Err(format!("both nodes hold the lease; disk {:?}", self.disk));
        }
        for i in 0..2 {
            if self.nodes[i].started.iter().all(|&s| s) && self.last_runner != Some(i) {
                if self.last_runner.is_some() {
                    self.stats.failovers += 1;
                }
                self.last_runner = Some(i);
            }
        }
        Ok(())
    }

    /// Runs the fault phase, then a quiet phase that must converge.
    pub(crate) fn run(&mut self) -> Result<(), String> {
        let quiet = self.faults.quiet_at;
        self.run_until(quiet + 1)?;
        // faults over; operations already under way finish with the outcome
        // they were given (the longest timeout is 5 s, a hung fence 60 s)
        self.faults.agent_fail_pct = 0;
        self.faults.agent_hang_pct = 0;
        self.faults.stop_fail_pct = 0;
        self.faults.fence_hang_pct = 0;
        self.run_until(quiet + 61_000)?;
        // the operator cleans up after the incident: failures, standby,
        // moves, and a failed DRBD backing disk is replaced (node rebooted)
        for i in 0..2 {
            self.input(i, Input::Operator(Request::Cleanup(None)));
            self.input(i, Input::Operator(Request::Standby(false)));
            self.input(i, Input::Operator(Request::Unmove));
            if self.nodes[i].up && self.nodes[i].disk == Disk::Unknown {
                self.power_off(i, 3_000);
            }
        }
        // converged: one node runs everything, and stays so for 20 s
        let deadline = self.t + 150_000;
        let mut stable = 0;
        let mut running = Vec::new();
        while self.t < deadline && stable < 4 {
            let step_end = self.t + 5_000;
            self.run_until(step_end)?;
            let now: Vec<usize> = (0..2)
                .filter(|&i| self.nodes[i].up && self.nodes[i].started.iter().all(|&s| s))
                .collect();
            stable = if now.len() == 1 && now == running {
                stable + 1
            } else {
                0
            };
            running = now;
        }
        if stable < 4 {
            return Err(format!(
                "no convergence 150 s after the last fault: phases {:?} / {:?}, up {:?} / {:?}",
                self.nodes[0].eng.phase(),
                self.nodes[1].eng.phase(),
                self.nodes[0].started,
                self.nodes[1].started
            ));
        }
        Ok(())
    }

    pub(crate) fn trace_tail(&self, n: usize) -> String {
        let mut s = String::new();
        for l in self.trace.iter().rev().take(n).rev() {
            let _ = writeln!(s, "{l}");
        }
        s
    }
}

impl Faults {
    /// Every fault set with one fault less.
    fn smaller(&self) -> Vec<Faults> {
        let mut out = Vec::new();
        macro_rules! drop_each {
            ($field:ident) => {
                for i in 0..self.$field.len() {
                    let mut f = self.clone();
                    f.$field.remove(i);
                    out.push(f);
                }
            };
        }
        drop_each!(cuts);
        drop_each!(disk_failures);
        for l in 0..2 {
            if self.loss[l] > 0 {
                let mut f = self.clone();
                f.loss[l] = 0;
                out.push(f);
            }
        }
        if self.fence_hang_pct > 0 {
            let mut f = self.clone();
            f.fence_hang_pct = 0;
            out.push(f);
        }
        drop_each!(repl_cuts);
        drop_each!(disk);
        drop_each!(crashes);
        drop_each!(pauses);
        drop_each!(res_deaths);
        drop_each!(requests);
        for n in 0..2 {
            if self.fence_broken[n] > 0 {
                let mut f = self.clone();
                f.fence_broken[n] = 0;
                out.push(f);
            }
        }
        for pick in 0..3 {
            let mut f = self.clone();
            let pct = match pick {
                0 => &mut f.agent_fail_pct,
                1 => &mut f.agent_hang_pct,
                _ => &mut f.stop_fail_pct,
            };
            if *pct > 0 {
                *pct = 0;
                out.push(f);
            }
        }
        out
    }

    fn count(&self) -> u64 {
        (self.cuts.len()
            + self.repl_cuts.len()
            + self.disk.len()
            + self.crashes.len()
            + self.disk_failures.len()
            + usize::from(self.loss.iter().any(|&l| l > 0))
            + usize::from(self.fence_hang_pct > 0)
            + self.pauses.len()
            + self.res_deaths.len()
            + self.requests.len()) as u64
            + u64::from(self.fence_broken[0] + self.fence_broken[1])
            + u64::from(self.agent_fail_pct + self.agent_hang_pct + self.stop_fail_pct > 0)
    }
}

/// The nodes of the (node, time) faults that happen at `t`.
fn due(faults: &[(usize, u64)], t: u64) -> Vec<usize> {
    faults.iter().filter(|f| f.1 == t).map(|f| f.0).collect()
}

/// Runs one schedule, turning a panic (a failed assertion) into an error.
fn attempt(seed: u64, faults: Option<Faults>, trace: bool) -> (Sim, Faults, Result<(), String>) {
    let mut sim = Sim::with_faults(seed, trace, faults);
    let drawn = sim.faults.clone(); // run() clears some of them for its quiet phase
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    let r = match r {
        Ok(r) => r,
        Err(p) => Err(format!(
            "panic: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default()
        )),
    };
    (sim, drawn, r)
}

/// The kind of a failure: its words without numbers or node names, so a
/// shrunk schedule must fail the same way.
fn kind(e: &str) -> String {
    e.split_whitespace()
        .take(8)
        .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Removes faults one at a time while the schedule still fails: what is
/// left is a minimal set of faults that reproduces the failure.
fn shrink(seed: u64, faults: Faults, error: &str) -> Faults {
    let want = kind(error);
    let mut best = faults;
    loop {
        let mut progressed = false;
        for cand in best.smaller() {
            let same = attempt(seed, Some(cand.clone()), false)
                .2
                .err()
                .is_some_and(|e| kind(&e) == want);
            if same {
                best = cand;
                progressed = true;
                break;
            }
        }
        if !progressed {
            return best;
        }
    }
}

fn run_one(seed: u64) -> Result<RunStats, String> {
    let (sim, drawn, r) = attempt(seed, None, false);
    let Err(e) = r else { return Ok(sim.stats) };
    let minimal = shrink(seed, drawn, &e);
    let (again, _, r2) = attempt(seed, Some(minimal.clone()), true);
    Err(format!(
        "seed {seed}: {e}\nminimal faults that still fail ({}): {minimal:#?}\n\
         reproduce: HAPAIR_SIM_SEED={seed} cargo test -p hapair --lib sim::tests::one_seed \
         -- --nocapture\nlast events of the minimal schedule:\n{}",
        r2.err().unwrap_or_default(),
        again.trace_tail(80)
    ))
}

/// Runs `count` seeds from `first` on every core; returns the totals, or the
/// failure of the lowest failing seed with a trace of its last events.
pub(crate) fn run_seeds(first: u64, count: u64) -> Result<RunStats, String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let results: Vec<Result<RunStats, (u64, String)>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                sc.spawn(move || {
                    let mut total = RunStats::default();
                    let mut seed = first + k;
                    while seed < first + count {
                        match run_one(seed) {
                            Ok(s) => {
                                total.events += s.events;
                                total.failovers += s.failovers;
                                total.faults += s.faults;
                                total.fences += s.fences;
                                total.self_fences += s.self_fences;
                            }
                            Err(e) => return Err((seed, e)),
                        }
                        seed += threads;
                    }
                    Ok(total)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err((0, "thread panicked".into())))
            })
            .collect()
    });
    let mut total = RunStats::default();
    let mut worst: Option<(u64, String)> = None;
    for r in results {
        match r {
            Ok(s) => {
                total.events += s.events;
                total.failovers += s.failovers;
                total.faults += s.faults;
                total.fences += s.fences;
                total.self_fences += s.self_fences;
            }
            Err((seed, e)) => {
                if worst.as_ref().is_none_or(|w| seed < w.0) {
                    worst = Some((seed, e));
                }
            }
        }
    }
    match worst {
        Some((_, e)) => Err(e),
        None => Ok(total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_u64(name: &str, default: u64) -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    #[test]
    fn many_schedules_keep_the_invariants_and_converge() {
        let count = env_u64("HAPAIR_SIM_SCHEDULES", 500);
        let first = env_u64("HAPAIR_SIM_FIRST_SEED", 1);
        let start = std::time::Instant::now();
        match run_seeds(first, count) {
            Ok(s) => {
                println!(
                    "simulated {count} schedules (seeds {first}..{}) in {:.1}s: {} events, {} faults, {} failovers, {} fencings, {} self-fences, 0 invariant violations",
                    first + count,
                    start.elapsed().as_secs_f64(),
                    s.events,
                    s.faults,
                    s.failovers,
                    s.fences,
                    s.self_fences
                );
                assert!(
                    s.failovers > count / 20,
                    "too few failovers exercised: {}",
                    s.failovers
                );
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn one_seed() {
        let seed = env_u64("HAPAIR_SIM_SEED", 42);
        let mut sim = Sim::new(seed, true);
        let r = sim.run();
        if std::env::var("HAPAIR_SIM_SEED").is_ok() {
            println!("{}", sim.trace_tail(400));
        }
        r.unwrap();
    }
}
