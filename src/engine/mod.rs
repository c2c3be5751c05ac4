//! The pair engine: every failover decision of one node, as a pure state
//! machine.
//!
//! ```text
//!            inputs                                   actions
//!  Tick, Peer, LeaseRead/Written,   ┌────────┐   ReadLease, WriteLease,
//!  Drbd, AgentDone, FenceDone,  ──► │ Engine │──► RunAgent, Fence, SelfFence,
//!  Health, Operator                 └────────┘   Log
//! ```
//!
//! `Engine::step(now, input) -> Vec<Action>` updates the state and returns what
//! the runtime must do; the runtime feeds each result back as an input. No
//! clock, sleep, socket, process or file in here (`.ci/test` checks it):
//! time is the `now` argument.
//!
//! The safety rules it keeps, whatever the inputs:
//! - It starts, promotes or mounts nothing without holding the sfex lease,
//!   and only while the lease is *fresh*: `now <= W + monitor_interval +
//!   max_io`, W being the submit time of the last confirmed renewal.
//! - When renewals stop succeeding it starts stopping the stack at
//!   `deadline - stop_budget` (deadline = `W + lock_timeout - margin`), and if
//!   the stack is not down by the deadline it self-fences.
//! - It takes the lease from a live-looking holder only after the holder's
//!   counter stood still for `lock_timeout` (the sfex protocol) or after the
//!   peer was confirmed fenced (by a fence device or the operator).
//! - DRBD is promoted only with an UpToDate local disk, or a Consistent one
//!   with the peer Outdated or fenced; never with `--force`.
//! - No fence race: the standby fences only when the peer is gone from every
//!   link *and* the lease counter has stood still for `fence_delay`, so a
//!   healthy primary behind a cut interconnect is never shot.
//!
//! It does not send heartbeats (membership does) and does not know how
//! agents, fence devices or the disk are reached (the runtime does).

mod types;

#[cfg(test)]
mod scenario_test;

use sfex::format::Status;
use sfex::lease::{self, AcquireError, Event as LeaseEvent, Lease};
pub use types::*;

/// Per-resource bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ResState {
    /// Started (promoted) here, as far as we know.
    pub started: bool,
    /// Failures counted on this node.
    pub fail_count: u32,
    /// Time of the newest failure.
    pub last_failure: Option<Millis>,
    /// A hard error: this node may not run it until cleanup.
    pub banned: bool,
}

/// Where the local stack is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Nothing runs, no lease; `retry` is the earliest next attempt.
    Idle,
    /// Taking the lease.
    Acquiring,
    /// Starting resource `next` (and those above it).
    Starting,
    /// Everything runs.
    Running,
    /// Stopping from the top down.
    Stopping,
    /// Releasing the lease.
    Releasing,
    /// Self-fenced: the node is rebooting.
    Fenced,
}

/// What to do once the stack is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Release the lease and go idle.
    Release,
    /// Start again from this resource (local restart).
    RestartFrom(ResId),
}

/// Fencing of the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FenceState {
    /// Not needed / not started.
    Idle,
    /// Level in flight.
    InFlight(u8),
    /// The peer is confirmed off.
    Done,
    /// Every level failed.
    Failed,
}

/// A summary for heartbeats and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// The phase.
    pub phase: Phase,
    /// Holds a lease believed valid.
    pub holds_lease: bool,
    /// Holds the lease or may have anything of the stack up.
    pub active: bool,
    /// Could run the stack.
    pub eligible: bool,
}

/// The engine of one node.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    phase: Phase,
    res: Vec<ResState>,
    /// Operation in flight: (resource, op).
    op: Option<(ResId, Op)>,
    /// Next resource to start (Starting).
    cursor: usize,
    /// Lowest resource to stop (Stopping).
    floor: usize,
    after: After,
    /// Release asked of an acquisition that lost its point.
    abort_sent: bool,
    /// Since when this node and the peer are both idle (start_delay).
    idle_since: Millis,
    /// When the engine started, and whether the peer was heard since: a
    /// non-preferred node that boots without hearing its peer gives the
    /// preferred one `start_delay` to show up (both booting at once).
    booted: Millis,
    heard_peer: bool,
    next_monitor: Vec<Millis>,
    lease: Option<Lease>,
    /// Earliest time to try the lease again.
    retry_at: Millis,
    /// When an idle node wants to look again (None: only an input can change
    /// its mind).
    idle_wake: Option<Millis>,
    peer: PeerStatus,
    /// When the peer was last seen alive (or the engine started).
    peer_since: Millis,
    peer_fenced: bool,
    /// The peer's counter when it was fenced (see `lease::Input::PeerFenced`).
    fenced_count: Option<i32>,
    fence: FenceState,
    /// Counter of the peer's lock as last read, and when it last changed.
    peer_counter: Option<(i32, Millis)>,
    /// A read submitted `fence_delay` after the last change still showed it.
    peer_stalled: bool,
    /// When the lease read in flight was submitted.
    read_submitted: Millis,
    drbd: Option<DrbdView>,
    standby: bool,
    maintenance: bool,
    healthy: bool,
    fatal: bool,
    moved: Option<(Side, Option<Millis>)>,
    self_fenced: bool,
}

const NO_PEER: PeerStatus = PeerStatus {
    alive: false,
    active: true,
    eligible: false,
};

impl Engine {
    /// A fresh engine, as at boot: nothing runs, the peer is unknown (and
    /// treated as possibly active until heard from).
    pub fn new(cfg: EngineConfig, now: Millis) -> Self {
        let n = cfg.resources.len();
        Self {
            res: vec![ResState::default(); n],
            next_monitor: vec![Millis(0); n],
            phase: Phase::Idle,
            op: None,
            cursor: 0,
            floor: 0,
            after: After::Release,
            abort_sent: false,
            idle_since: now,
            booted: now,
            heard_peer: false,
            lease: None,
            retry_at: now,
            idle_wake: Some(now),
            peer: NO_PEER,
            peer_since: now,
            peer_fenced: false,
            fenced_count: None,
            fence: FenceState::Idle,
            peer_counter: None,
            peer_stalled: false,
            read_submitted: now,
            drbd: None,
            standby: false,
            maintenance: false,
            healthy: true,
            fatal: false,
            moved: None,
            self_fenced: false,
            cfg,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Restores a fail count kept across a daemon restart (persisted state):
    /// `count` failures, the newest at `at` (engine time; failure-timeout
    /// counts from it). Only before anything ran; out of range is ignored.
    pub fn restore_fail_count(&mut self, res: ResId, count: u32, at: Millis) {
        if self.phase != Phase::Idle || self.op.is_some() {
            return;
        }
        if let Some(r) = self.res.get_mut(res) {
            r.fail_count = count;
            r.last_failure = (count > 0).then_some(at);
        }
    }

    /// Takes a new configuration while running (SIGHUP). Only what can
    /// change safely under a running stack may differ: resource timeouts
    /// and monitor intervals, migration threshold, failure timeout, fence
    /// levels and delay, start delay, retry interval. The nodes, the lease
    /// timing and the stack itself (names, kinds, order) need a restart;
    /// then nothing changes and the reason comes back.
    pub fn reconfigure(&mut self, cfg: EngineConfig) -> Result<(), String> {
        let old = &self.cfg;
        let mut fixed = Vec::new();
        if (&old.me, &old.peer, old.preferred) != (&cfg.me, &cfg.peer, cfg.preferred) {
            fixed.push("nodes");
        }
        if (
            old.lock_timeout,
            old.collision_timeout,
            old.monitor_interval,
            old.margin,
            old.max_io,
        ) != (
            cfg.lock_timeout,
            cfg.collision_timeout,
            cfg.monitor_interval,
            cfg.margin,
            cfg.max_io,
        ) || old.stop_budget != cfg.stop_budget
        {
            fixed.push("lease timing");
        }
        let shape = |c: &EngineConfig| {
            c.resources
                .iter()
                .map(|r| (r.name.clone(), r.kind))
                .collect::<Vec<_>>()
        };
        if shape(old) != shape(&cfg) {
            fixed.push("the resource stack (names, kinds, order)");
        }
        if !fixed.is_empty() {
            return Err(format!(
                "{} changed: restart hapair on this node to apply",
                fixed.join(", ")
            ));
        }
        cfg.validate().map_err(|e| e.to_string())?;
        self.cfg = cfg;
        Ok(())
    }

    /// The phase of the local stack.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Per-resource state.
    pub fn resources(&self) -> &[ResState] {
        &self.res
    }

    /// Fencing state.
    pub fn fence_state(&self) -> FenceState {
        self.fence
    }

    /// The end of the lease, while held.
    pub fn lease_valid_until(&self) -> Option<Millis> {
        self.lease.as_ref().and_then(Lease::valid_until)
    }

    /// The summary sent to the peer in heartbeats.
    pub fn summary(&self, now: Millis) -> Summary {
        Summary {
            phase: self.phase,
            holds_lease: self.lease_valid_until().is_some_and(|v| now < v),
            // Taking the lease does not count: two nodes trying at once are
            // sorted out by the lease itself, not by backing off each other.
            active: !matches!(self.phase, Phase::Idle | Phase::Fenced | Phase::Acquiring)
                || self.lease_valid_until().is_some_and(|v| now < v),
            eligible: self.eligible(now),
        }
    }

    /// The parts of [`Engine::next_wake`], for the simulator's messages.
    #[doc(hidden)]
    pub fn debug_wakes(&self) -> String {
        format!(
            "phase {:?} op {:?} lease_next {:?} valid_until {:?} idle_wake {:?} moved {:?} maint {}",
            self.phase,
            self.op,
            self.lease.as_ref().and_then(|l| l.next_wake()),
            self.lease.as_ref().and_then(|l| l.valid_until()),
            self.idle_wake,
            self.moved,
            self.maintenance
        )
    }

    /// When the engine next needs a `Tick`.
    pub fn next_wake(&self) -> Option<Millis> {
        if self.self_fenced {
            return None;
        }
        let mut w: Vec<Millis> = Vec::new();
        if let Some(l) = &self.lease {
            w.extend(l.next_wake());
            // the emergency-stop deadline, while it can still trigger one
            // (as `evaluate` tests it): once the stop runs it stays in the
            // past, and a daemon waking for it would spin
            if let Some(v) = l.valid_until().filter(|_| self.emergency_stop_armed()) {
                w.push(v.minus(self.cfg.stop_budget));
            }
        }
        // in maintenance an idle node decides nothing (evaluate returns
        // early), so its idle deadline would stay in the past: a daemon
        // waking for it would spin
        if self.phase == Phase::Idle && !self.maintenance {
            w.extend(self.idle_wake);
        }
        if self.phase == Phase::Running && self.op.is_none() && !self.maintenance {
            w.extend(self.next_monitor.iter().copied());
        }
        if let Some((_, Some(until))) = self.moved {
            w.push(until);
        }
        if let Some(t) = self.cfg.failure_timeout {
            w.extend(
                self.res
                    .iter()
                    .filter_map(|r| r.last_failure.map(|f| f.plus(t))),
            );
        }
        w.into_iter().min()
    }

    fn lease_fresh(&self, now: Millis) -> bool {
        // valid_until = W + lock_timeout - margin, so W + m + max_io is:
        self.lease_valid_until().is_some_and(|v| {
            let w = v.plus(self.cfg.margin).minus(self.cfg.lock_timeout);
            now <= w.plus(self.cfg.monitor_interval).plus(self.cfg.max_io) && now < v
        })
    }

    fn moved_away(&self, now: Millis) -> bool {
        matches!(self.moved, Some((Side::Peer, until)) if until.is_none_or(|u| now < u))
            && self.peer.alive
            && self.peer.eligible
    }

    fn moved_here(&self, now: Millis) -> bool {
        matches!(self.moved, Some((Side::Me, until)) if until.is_none_or(|u| now < u))
    }

    fn drbd_ok(&self) -> Result<(), String> {
        if !self
            .cfg
            .resources
            .iter()
            .any(|r| r.kind == ResourceKind::Drbd)
        {
            return Ok(());
        }
        match self.drbd {
            None => Err("no DRBD state seen yet".into()),
            Some(DrbdView {
                local: Disk::UpToDate,
                ..
            }) => Ok(()),
            Some(DrbdView {
                local: Disk::Consistent,
                peer,
            }) => {
                if peer == Disk::Outdated || self.peer_fenced {
                    Ok(())
                } else {
                    Err(format!(
                        "local disk Consistent and peer {peer:?} not outdated or fenced"
                    ))
                }
            }
            Some(DrbdView { local, .. }) => Err(format!("local disk {local:?}")),
        }
    }

    /// Could this node run the stack now (ignoring the peer's claims)?
    fn eligible(&self, now: Millis) -> bool {
        !self.standby
            && !self.fatal
            && !self.self_fenced
            && self.healthy
            && !self.moved_away(now)
            && self
                .res
                .iter()
                .all(|r| !r.banned && r.fail_count < self.cfg.migration_threshold)
            && self.drbd_ok().is_ok()
    }

    /// Advances the engine.
    pub fn step(&mut self, now: Millis, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.self_fenced {
            return out;
        }
        match input {
            Input::Tick => self.expire(now),
            Input::Peer(p) => {
                if !p.active && (self.peer.active || !self.peer.alive) {
                    self.idle_since = now;
                }
                if p.alive {
                    self.heard_peer = true;
                    self.peer_since = now;
                    // a peer heard from again is no longer "fenced"
                    self.peer_fenced = false;
                    self.fenced_count = None;
                    self.fence = FenceState::Idle;
                    self.peer_counter = None;
                    self.peer_stalled = false;
                }
                self.peer = p;
            }
            Input::LeaseRead(r) => {
                if let Ok(lb) = &r {
                    self.track_counter(now, lb);
                }
                self.lease_step(now, lease::Input::ReadDone(r), &mut out);
            }
            Input::LeaseWritten(r) => self.lease_step(now, lease::Input::WriteDone(r), &mut out),
            Input::Drbd(v) => self.drbd = Some(v),
            Input::AgentDone { res, op, outcome } => {
                self.agent_done(now, res, op, outcome, &mut out)
            }
            Input::FenceDone { level, ok } => self.fence_done(now, level, ok, &mut out),
            Input::Health(h) => self.healthy = h,
            Input::Operator(r) => self.operator(now, r, &mut out),
        }
        // the lease machine's own timers
        if self
            .lease
            .as_ref()
            .and_then(Lease::next_wake)
            .is_some_and(|w| now >= w)
        {
            self.lease_step(now, lease::Input::Timer, &mut out);
        }
        self.evaluate(now, &mut out);
        out
    }

    fn expire(&mut self, now: Millis) {
        if let Some((_, Some(until))) = self.moved {
            if now >= until {
                self.moved = None;
            }
        }
        if let Some(t) = self.cfg.failure_timeout {
            for r in &mut self.res {
                if r.last_failure.is_some_and(|f| now >= f.plus(t)) {
                    r.fail_count = 0;
                    r.last_failure = None;
                }
            }
        }
    }

    /// Follows the peer's counter in our lease reads. The peer counts as
    /// stalled only when a read *submitted* at least `fence_delay` after the
    /// last change still shows the same count: a slow read of ours proves
    /// nothing about the peer.
    fn track_counter(&mut self, now: Millis, lb: &LockBlock) {
        if lb.status != Status::Locked || lb.nodename != self.cfg.peer {
            self.peer_counter = None;
            self.peer_stalled = false;
            return;
        }
        match self.peer_counter {
            Some((c, changed)) if c == lb.count => {
                if self.read_submitted >= changed.plus(self.cfg.fence_delay) {
                    self.peer_stalled = true;
                }
            }
            _ => {
                self.peer_counter = Some((lb.count, now));
                self.peer_stalled = false;
            }
        }
    }

    fn lease_step(&mut self, now: Millis, input: lease::Input, out: &mut Vec<Action>) {
        let Some(l) = self.lease.as_mut() else { return };
        for a in l.step(now, input) {
            match a {
                lease::Action::Read => {
                    self.read_submitted = now;
                    out.push(Action::ReadLease);
                }
                lease::Action::Write(b) => out.push(Action::WriteLease(b)),
                lease::Action::Event(e) => self.lease_event(now, e, out),
            }
        }
    }

    fn lease_event(&mut self, now: Millis, e: LeaseEvent, out: &mut Vec<Action>) {
        match e {
            LeaseEvent::Acquired { .. } => {
                out.push(Action::Log(Note::LeaseAcquired));
                self.peer_counter = None;
                if self.phase == Phase::Acquiring {
                    self.phase = Phase::Starting;
                    self.cursor = 0;
                }
            }
            LeaseEvent::AcquireFailed(err) => {
                let why = match err {
                    AcquireError::HeldElsewhere { holder } => format!("held by live node {holder}"),
                    AcquireError::Collision { other } => format!("collision with {other}"),
                    AcquireError::Io { failure } => failure.message,
                };
                out.push(Action::Log(Note::LeaseRefused { why }));
                self.lease = None;
                self.become_idle(now);
            }
            LeaseEvent::Lost(reason) => {
                out.push(Action::Log(Note::LeaseLost {
                    why: format!("{reason:?}"),
                }));
                self.lease = None;
                if self.any_up() {
                    // The deadline passed with the stack (partly) up.
                    self.self_fence(out);
                } else {
                    self.become_idle(now);
                }
            }
            LeaseEvent::Released { .. } | LeaseEvent::NotHeld { .. } => {
                out.push(Action::Log(Note::LeaseReleased));
                self.lease = None;
                self.become_idle(now);
            }
            LeaseEvent::Watching { .. }
            | LeaseEvent::Stale { .. }
            | LeaseEvent::FencedTakeover { .. }
            | LeaseEvent::Renewed { .. }
            | LeaseEvent::RenewFailed { .. } => {}
        }
    }

    fn any_up(&self) -> bool {
        self.op.is_some() || self.res.iter().any(|r| r.started)
    }

    /// Whether the lease deadline minus `stop_budget` would still begin an
    /// emergency stop: something is up and no stop is under way yet.
    fn emergency_stop_armed(&self) -> bool {
        self.any_up() && !matches!(self.phase, Phase::Stopping | Phase::Releasing)
    }

    fn self_fence(&mut self, out: &mut Vec<Action>) {
        self.self_fenced = true;
        self.phase = Phase::Fenced;
        out.push(Action::SelfFence);
    }

    fn agent_done(
        &mut self,
        now: Millis,
        res: ResId,
        op: Op,
        outcome: Outcome,
        out: &mut Vec<Action>,
    ) {
        if self.op != Some((res, op)) {
            return; // stale or unknown completion
        }
        self.op = None;
        let spec_interval = self.cfg.resources[res].monitor_interval;
        match (op, outcome) {
            (Op::Start | Op::Promote, Outcome::Ok) => {
                self.res[res].started = true;
                self.next_monitor[res] = now.plus(spec_interval);
                self.cursor = res + 1;
            }
            (Op::Start | Op::Promote, _) => {
                // start-failure-is-fatal (Pacemaker's default): the node may
                // not run this resource until cleanup or failure-timeout.
                // It may be half-started: stop it too.
                self.res[res].started = true;
                self.fail(now, res, op, self.cfg.migration_threshold, out);
                self.begin_stop(After::Release);
            }
            (Op::Stop | Op::Demote, Outcome::Ok) => {
                self.res[res].started = false;
            }
            (Op::Stop | Op::Demote, _) => {
                // A stop that fails leaves the resource in an unknown state:
                // Pacemaker fences the node. We reboot ourselves; the lease
                // stays ours until it expires, so the peer cannot start early.
                self.fail(now, res, op, 1, out);
                self.self_fence(out);
            }
            (Op::Monitor, Outcome::Ok) => self.next_monitor[res] = now.plus(spec_interval),
            (Op::Monitor, other) => {
                let class = match other {
                    Outcome::Failed(c) => c,
                    _ => FailClass::Soft,
                };
                match class {
                    FailClass::Soft => self.fail(now, res, op, 1, out),
                    FailClass::Hard => {
                        self.res[res].banned = true;
                        self.fail(now, res, op, 1, out);
                    }
                    FailClass::Fatal => {
                        self.fatal = true;
                        self.fail(now, res, op, 1, out);
                    }
                }
                if self.eligible(now) {
                    // restart locally: stop from the top down to `res`, start again
                    self.begin_stop(After::RestartFrom(res));
                } else {
                    self.begin_stop(After::Release);
                }
            }
        }
    }

    fn fail(&mut self, now: Millis, res: ResId, op: Op, add: u32, out: &mut Vec<Action>) {
        let r = &mut self.res[res];
        r.fail_count = r
            .fail_count
            .saturating_add(add)
            .min(self.cfg.migration_threshold.max(1));
        r.last_failure = Some(now);
        out.push(Action::Log(Note::ResourceFailed {
            res,
            op,
            fail_count: r.fail_count,
        }));
    }
}

impl Engine {
    fn begin_stop(&mut self, after: After) {
        self.phase = Phase::Stopping;
        self.after = after;
        self.floor = match after {
            After::Release => 0,
            After::RestartFrom(k) => k,
        };
    }

    fn become_idle(&mut self, now: Millis) {
        self.phase = Phase::Idle;
        self.idle_since = now;
        self.retry_at = now.plus(self.cfg.retry_interval);
    }

    /// Conditions under which a running stack leaves this node.
    fn should_leave(&self, now: Millis) -> bool {
        let peer_can_take = self.peer.alive && self.peer.eligible;
        self.standby
            || self.fatal
            || self.moved_away(now)
            || self
                .res
                .iter()
                .any(|r| r.banned || r.fail_count >= self.cfg.migration_threshold)
            || (!self.healthy && peer_can_take)
    }

    fn preferred_here(&self, now: Millis) -> bool {
        if self.moved_here(now) {
            return true;
        }
        let moved_there = matches!(self.moved, Some((Side::Peer, u)) if u.is_none_or(|u| now < u));
        self.cfg.preferred && !moved_there
    }

    fn lease_config(&self, wait: bool) -> lease::Config {
        lease::Config {
            node: self.cfg.me.clone(),
            lock_timeout: self.cfg.lock_timeout,
            collision_timeout: self.cfg.collision_timeout,
            monitor_interval: self.cfg.monitor_interval,
            margin: self.cfg.margin,
            retry_interval: Millis((self.cfg.monitor_interval.0 / 4).max(1)),
            wait,
            max_io: Some(self.cfg.max_io),
        }
    }

    fn run(&mut self, res: ResId, op: Op, out: &mut Vec<Action>) {
        let spec = &self.cfg.resources[res];
        let timeout = match op {
            Op::Start | Op::Promote => spec.start_timeout,
            Op::Stop | Op::Demote => spec.stop_timeout,
            Op::Monitor => spec.monitor_timeout,
        };
        self.op = Some((res, op));
        out.push(Action::RunAgent { res, op, timeout });
    }

    fn evaluate(&mut self, now: Millis, out: &mut Vec<Action>) {
        if self.self_fenced {
            return;
        }
        // The lease deadline comes before everything else.
        if let Some(v) = self.lease_valid_until() {
            if now >= v.minus(self.cfg.stop_budget) && self.emergency_stop_armed() {
                out.push(Action::Log(Note::EmergencyStop));
                self.begin_stop(After::Release);
            }
        }
        if self.phase == Phase::Acquiring {
            self.fence_if_needed(out);
        }
        if self.maintenance {
            return;
        }
        match self.phase {
            Phase::Idle => self.idle(now, out),
            Phase::Acquiring => {
                if self.peer.alive && self.peer.active && !self.abort_sent {
                    // the peer runs the stack after all: give the attempt up
                    self.abort_sent = true;
                    self.lease_step(now, lease::Input::Release, out);
                }
            }
            Phase::Starting => self.starting(now, out),
            Phase::Running => {
                if self.should_leave(now) {
                    self.begin_stop(After::Release);
                    self.stopping(now, out);
                } else if self.op.is_none() {
                    if let Some(r) = (0..self.res.len()).find(|&r| now >= self.next_monitor[r]) {
                        self.run(r, Op::Monitor, out);
                    }
                }
            }
            Phase::Stopping => self.stopping(now, out),
            Phase::Releasing | Phase::Fenced => {}
        }
    }

    fn idle(&mut self, now: Millis, out: &mut Vec<Action>) {
        if now < self.retry_at {
            self.idle_wake = Some(self.retry_at);
            return;
        }
        self.idle_wake = None;
        if !self.eligible(now) {
            return;
        }
        if self.peer.alive {
            if self.peer.active {
                return;
            }
            let wait = self.peer.eligible && !self.preferred_here(now);
            let start = self.idle_since.plus(self.cfg.start_delay);
            if wait && now < start {
                self.idle_wake = Some(start);
                return;
            }
        } else if !self.heard_peer && !self.cfg.preferred && !self.moved_here(now) {
            // just booted and the peer not heard yet: if it is booting too,
            // the preferred node should win, so wait a start_delay for it
            let start = self.booted.plus(self.cfg.start_delay);
            if now < start {
                self.idle_wake = Some(start);
                return;
            }
        }
        self.lease = Some(Lease::new(self.lease_config(!self.peer.alive)));
        self.phase = Phase::Acquiring;
        self.abort_sent = false;
        self.peer_counter = None;
        self.peer_stalled = false;
        self.lease_step(now, lease::Input::Start, out);
        if let Some(count) = self.fenced_count {
            self.lease_step(now, lease::Input::PeerFenced { count }, out);
        }
    }

    fn fence_if_needed(&mut self, out: &mut Vec<Action>) {
        if self.peer.alive || self.cfg.fence_levels == 0 || self.fence != FenceState::Idle {
            return;
        }
        if self.peer_stalled && self.peer_counter.is_some() {
            self.fence = FenceState::InFlight(1);
            out.push(Action::Fence { level: 1 });
        }
    }

    fn fence_done(&mut self, now: Millis, level: u8, ok: bool, out: &mut Vec<Action>) {
        if self.fence != FenceState::InFlight(level) {
            return;
        }
        if ok {
            self.peer_confirmed_down(now, out);
        } else if level < self.cfg.fence_levels {
            self.fence = FenceState::InFlight(level + 1);
            out.push(Action::Fence { level: level + 1 });
        } else {
            self.fence = FenceState::Failed;
            out.push(Action::Log(Note::FenceFailed));
        }
    }

    fn peer_confirmed_down(&mut self, now: Millis, out: &mut Vec<Action>) {
        self.fence = FenceState::Done;
        self.peer_fenced = true;
        self.peer.active = false;
        out.push(Action::Log(Note::PeerFenced));
        if let Some((count, _)) = self.peer_counter {
            self.fenced_count = Some(count);
            self.lease_step(now, lease::Input::PeerFenced { count }, out);
        }
    }

    fn starting(&mut self, now: Millis, out: &mut Vec<Action>) {
        if self.op.is_some() {
            return;
        }
        while self.cursor < self.res.len() && self.res[self.cursor].started {
            self.cursor += 1;
        }
        if self.cursor >= self.res.len() {
            self.phase = Phase::Running;
            out.push(Action::Log(Note::StackRunning));
            return;
        }
        if self.should_leave(now) {
            self.begin_stop(After::Release);
            return self.stopping(now, out);
        }
        if !self.lease_fresh(now) {
            out.push(Action::Log(Note::PromoteRefused {
                why: "lease not renewed recently enough to start anything".into(),
            }));
            self.begin_stop(After::Release);
            return self.stopping(now, out);
        }
        let r = self.cursor;
        if self.cfg.resources[r].kind == ResourceKind::Drbd {
            if let Err(why) = self.drbd_ok() {
                out.push(Action::Log(Note::PromoteRefused { why }));
                self.begin_stop(After::Release);
                return self.stopping(now, out);
            }
            self.run(r, Op::Promote, out);
        } else {
            self.run(r, Op::Start, out);
        }
    }

    fn stopping(&mut self, now: Millis, out: &mut Vec<Action>) {
        if self.op.is_some() {
            return;
        }
        if let Some(r) = (self.floor..self.res.len())
            .rev()
            .find(|&r| self.res[r].started)
        {
            let op = if self.cfg.resources[r].kind == ResourceKind::Drbd {
                Op::Demote
            } else {
                Op::Stop
            };
            return self.run(r, op, out);
        }
        match self.after {
            After::RestartFrom(k) if self.eligible(now) => {
                self.phase = Phase::Starting;
                self.cursor = k;
                self.starting(now, out);
            }
            After::RestartFrom(_) => {
                // no longer allowed to restart here: stop the rest too
                self.begin_stop(After::Release);
                self.stopping(now, out);
            }
            After::Release => {
                out.push(Action::Log(Note::StackStopped));
                if self.lease.is_some() {
                    self.phase = Phase::Releasing;
                    self.lease_step(now, lease::Input::Release, out);
                } else {
                    self.become_idle(now);
                }
            }
        }
    }

    fn operator(&mut self, now: Millis, r: Request, out: &mut Vec<Action>) {
        match r {
            Request::Standby(on) => self.standby = on,
            Request::Move { to, until } => self.moved = Some((to, until)),
            Request::Unmove => self.moved = None,
            Request::Cleanup(which) => {
                for (i, r) in self.res.iter_mut().enumerate() {
                    if which.is_none_or(|w| w == i) {
                        r.fail_count = 0;
                        r.last_failure = None;
                        r.banned = false;
                    }
                }
                self.fatal = false;
                self.retry_at = now;
            }
            Request::Maintenance(on) => {
                self.maintenance = on;
                if !on {
                    // re-check every resource at once
                    for m in &mut self.next_monitor {
                        *m = now;
                    }
                }
            }
            Request::FenceConfirm => {
                if !self.peer.alive {
                    self.peer_confirmed_down(now, out);
                }
            }
        }
    }
}
