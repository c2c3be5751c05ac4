//! `hapair run`: the daemon. One event loop carries out the engine's actions
//! and feeds every result back:
//!
//! ```text
//!   heartbeat task ──events──►┐                       ┌──► lease I/O thread
//!   lease thread ──results──► │                       ├──► agent / built-in tasks
//!   agent tasks ──results───► │  Engine::step(now, …) ├──► fence tasks
//!   fence tasks ──results───► │ ─────────────────────►├──► self-fence
//!   DRBD monitor ──views────► │                       └──► log, status, metrics
//!   control socket ─requests─►┘
//! ```
//!
//! The loop never blocks: disk I/O runs on the lease thread, agents are
//! child processes, built-ins run on the blocking pool. Time is the
//! heartbeat [`Clock`] so membership events and engine inputs share one
//! base.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::config::{self, Config, Exec, SelfFenceMode};
use crate::engine::{
    Action, DrbdView, Input, Millis, Note, Op, Outcome, PeerStatus, Request, ResId, Side,
};
use crate::engine::{Engine, Phase, Summary};
use crate::membership::{Event, PeerState};
use crate::proto::{
    Incarnation, LeaseHolder, LeaseView, NodeView, PeerRequest, RequestKind, Role, StackState,
    StackSummary,
};
use crate::runtime::exec::{Executor, OpResult};
use crate::runtime::heartbeat::{Clock, Heartbeat, TimedEvent};
use crate::runtime::lease_io::{LeaseDone, LeaseIo};
use sfex::format::{LockBlock, Status as LockStatus};

/// How `hapair run` was started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file.
    pub config: PathBuf,
    /// This node's name (default: the host name).
    pub node: Option<String>,
}

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config is invalid or unreadable.
    #[error("{0}")]
    Config(#[from] config::LoadError),
    /// This host is not one of the two nodes.
    #[error(
        "this host is {host:?}, which is neither node of {file} ({a:?}, {b:?}); \
         use --node NAME"
    )]
    NotANode {
        /// uname -n
        host: String,
        /// The config file.
        file: String,
        /// Node 1.
        a: String,
        /// Node 2.
        b: String,
    },
    /// Something the daemon needs could not be set up.
    #[error("{what}: {message}")]
    Setup {
        /// Which part.
        what: &'static str,
        /// Why.
        message: String,
    },
}

fn setup(what: &'static str, e: impl std::fmt::Display) -> DaemonError {
    DaemonError::Setup {
        what,
        message: e.to_string(),
    }
}

/// The host name (`uname -n`), as the nodes are named by default.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// Picks this node in `cfg`.
pub fn local_node(cfg: &Config, node: Option<&str>) -> Result<usize, DaemonError> {
    let host = node.map_or_else(hostname, str::to_string);
    cfg.node_index(&host).ok_or_else(|| DaemonError::NotANode {
        host,
        file: cfg.source.display().to_string(),
        a: cfg.nodes[0].name.clone(),
        b: cfg.nodes[1].name.clone(),
    })
}

/// What the daemon knows about one resource beyond the engine's counts.
#[derive(Debug, Clone, Default)]
pub struct ResInfo {
    /// The operation in flight.
    pub running_op: Option<Op>,
    /// The last failure's reason and when (unix ms).
    pub last_failure: Option<(String, u64)>,
    /// The last completed operation and its duration.
    pub last_op: Option<(Op, Duration)>,
    /// The operation of the last failure.
    pub last_failed_op: Option<Op>,
}

/// One line of the recent transitions.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Transition {
    /// Unix time in ms.
    pub at_unix_ms: u64,
    /// What happened.
    pub text: String,
}

/// Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

enum Done {
    Agent {
        res: ResId,
        op: Op,
        result: OpResult,
    },
    Fence {
        level: u8,
        ok: bool,
        detail: String,
    },
    /// `drbdadm outdate` asked for by the peer's fence-peer handler.
    Outdate {
        ok: bool,
        detail: String,
    },
}

/// One fencing episode of DRBD's fence-peer handler on this node.
#[derive(Debug, Clone)]
struct FenceEpisode {
    since: Millis,
    outdate: crate::fence_peer::Outdate,
}

/// How long an unanswered or refused outdate request stays the answer:
/// after that a new handler call asks the peer again.
const FENCE_EPISODE_RETRY: Millis = Millis(30_000);
/// How long the peer keeps trying `drbdadm outdate` (DRBD refuses while it
/// still sees the connection, which it may for a ping-timeout).
const OUTDATE_TRYING: Duration = Duration::from_secs(12);

/// The daemon's state outside the engine.
pub struct Daemon {
    cfg: Arc<Config>,
    me: usize,
    engine: Engine,
    clock: Clock,
    execs: Vec<Executor>,
    runner: Arc<ra::Runner>,
    lease: LeaseIo,
    fencer: Option<Arc<crate::runtime::fence::Fencer>>,
    done_tx: mpsc::UnboundedSender<Done>,
    /// Peer membership, as the heartbeat reported it.
    peer_state: PeerState,
    peer_view: Option<NodeView>,
    peer_sees_us: bool,
    config_mismatch: bool,
    /// The last lock block read.
    last_lock: Option<LockBlock>,
    res_info: Vec<ResInfo>,
    transitions: VecDeque<Transition>,
    drbd_view: Option<DrbdView>,
    shutting_down: bool,
    /// The watchdog keeper (when a watchdog device is used) and how this
    /// node kills itself.
    watchdog: Option<crate::runtime::watchdog::Watchdog>,
    liveness: Option<crate::runtime::watchdog::Liveness>,
    fence_self: crate::runtime::watchdog::SelfFence,
    /// Requests to forward to the peer, oldest first.
    fwd_queue: VecDeque<RequestKind>,
    /// The request in our packets now, and since when.
    fwd_current: Option<(PeerRequest, Millis)>,
    /// The peer's incarnation and the last request sequence seen from it
    /// (`None` until its first view: what it repeats then is old news).
    peer_incarnation: Option<Incarnation>,
    peer_req_seen: Option<Option<u8>>,
    /// Expiry of a move this node's operator asked for (then forwarded).
    own_move_until: Option<Millis>,
    /// Mirrors of the engine's operator state, for status and persistence.
    standby: bool,
    maintenance: bool,
    moved: Option<(String, Option<Millis>)>,
    /// When the last lock block was read.
    last_lock_at: Option<Millis>,
    /// The DRBD resource name, when the stack has one.
    drbd_name: Option<String>,
    /// The takeover in progress, step by step.
    timeline: Option<Timeline>,
    metrics: Arc<crate::runtime::metrics::Metrics>,
    /// When the lease write in flight was submitted (renewal latency).
    write_submitted: Option<std::time::Instant>,
    /// The lock block of the lease write in flight.
    write_block: Option<LockBlock>,
    /// Dropped-packet totals already counted in the metrics.
    drops_counted: BTreeMap<String, u64>,
    /// Per link: accepted packets at the last look, and the loss ratio
    /// over the last second (expected: one packet per keepalive).
    link_accepted: BTreeMap<String, u64>,
    link_loss: BTreeMap<String, f64>,
    notifier: Option<crate::runtime::notify::Notifier>,
    /// Persisted state: the newest snapshot goes to the writer thread.
    persisted: crate::state::PersistedState,
    state_tx: Option<std::sync::mpsc::Sender<crate::state::PersistedState>>,
    state_writer: Option<std::thread::JoinHandle<()>>,
    /// DRBD's fence-peer handler episode in progress (`hapair fence-peer`).
    fence_episode: Option<FenceEpisode>,
    /// An unresolved DRBD split brain, when one was seen: what was seen.
    split_brain: Option<String>,
    /// The kernel log was searched for a split brain from before we started.
    kernel_log_checked: bool,
}

/// A failover seen from the node taking over: when each step finished,
/// from the moment the peer was declared lost (or the takeover began).
#[derive(Debug, Clone)]
pub struct Timeline {
    start: Millis,
    steps: Vec<(&'static str, Millis)>,
}

impl Timeline {
    fn step(&mut self, name: &'static str, at: Millis) {
        if !self.steps.iter().any(|(n, _)| *n == name) {
            self.steps.push((name, at));
        }
    }

    /// "detect +0 ms, fence +812 ms, ..." (each step's time since the start).
    pub fn render(&self) -> String {
        self.steps
            .iter()
            .map(|(n, t)| format!("{n} +{} ms", t.0.saturating_sub(self.start.0)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("me", &self.cfg.nodes[self.me].name)
            .field("phase", &self.engine.phase())
            .finish_non_exhaustive()
    }
}

const MAX_TRANSITIONS: usize = 50;

/// The main loop's longest sleep: the watchdog keeper needs a liveness bump
/// well within its 3 s stall limit, and the status report and link figures
/// stay at most this old.
const MAX_SLEEP: Duration = Duration::from_secs(1);

impl Daemon {
    fn peer(&self) -> usize {
        1 - self.me
    }

    fn note(&mut self, text: String) {
        tracing::info!(target: "hapair::transition", "{text}");
        if self.transitions.len() == MAX_TRANSITIONS {
            self.transitions.pop_front();
        }
        self.transitions.push_back(Transition {
            at_unix_ms: unix_ms(),
            text,
        });
    }

    /// The engine's input for the peer, from membership and the peer's view.
    fn peer_status(&self) -> PeerStatus {
        match (self.peer_state, self.peer_view) {
            (PeerState::Alive, Some(v)) => PeerStatus {
                alive: true,
                active: matches!(
                    v.stack.state,
                    StackState::Starting
                        | StackState::Running
                        | StackState::Stopping
                        | StackState::Partial
                        | StackState::Failed
                        | StackState::Unknown
                ) || v.lease.holder == LeaseHolder::Sender,
                eligible: matches!(v.role, Role::Secondary | Role::Primary | Role::Promoting),
            },
            // alive but silent about itself: assume the worst
            (PeerState::Alive, None) => PeerStatus {
                alive: true,
                active: true,
                eligible: false,
            },
            _ => PeerStatus {
                alive: false,
                active: true,
                eligible: false,
            },
        }
    }

    /// What we tell the peer about ourselves.
    fn node_view(&self, now: Millis) -> NodeView {
        let s: Summary = self.engine.summary(now);
        let role = if self.shutting_down {
            Role::Stopping
        } else {
            match s.phase {
                Phase::Fenced => Role::Failed,
                Phase::Running if s.eligible => Role::Primary,
                Phase::Running | Phase::Stopping | Phase::Releasing => Role::Demoting,
                Phase::Acquiring | Phase::Starting => Role::Promoting,
                Phase::Idle if s.eligible => Role::Secondary,
                Phase::Idle => Role::Standby,
            }
        };
        let started = self.engine.resources().iter().filter(|r| r.started).count();
        let failed = self
            .engine
            .resources()
            .iter()
            .filter(|r| r.banned || r.fail_count >= self.engine.config().migration_threshold)
            .count();
        let state = match s.phase {
            Phase::Idle | Phase::Acquiring if started == 0 => StackState::Stopped,
            Phase::Starting => StackState::Starting,
            Phase::Running => StackState::Running,
            Phase::Stopping | Phase::Releasing => StackState::Stopping,
            Phase::Fenced => StackState::Failed,
            _ => StackState::Partial,
        };
        let holder = match &self.last_lock {
            None => LeaseHolder::Unknown,
            Some(b) if b.status == LockStatus::Unlocked => LeaseHolder::Free,
            Some(b) if b.nodename.as_bytes() == self.cfg.nodes[self.me].name.as_bytes() => {
                LeaseHolder::Sender
            }
            Some(b) if b.nodename.as_bytes() == self.cfg.nodes[self.peer()].name.as_bytes() => {
                LeaseHolder::Receiver
            }
            Some(_) => LeaseHolder::Other,
        };
        let n = |x: usize| u16::try_from(x).unwrap_or(u16::MAX);
        NodeView {
            role,
            lease: LeaseView {
                holder: match holder {
                    _ if s.holds_lease => LeaseHolder::Sender,
                    // the block names us but the engine does not hold the
                    // lease (released, lost, or unreadable since): telling
                    // the peer "Sender" would keep it from ever taking over
                    LeaseHolder::Sender => LeaseHolder::Unknown,
                    h => h,
                },
                counter: self
                    .last_lock
                    .as_ref()
                    .map_or(0, |b| u64::try_from(b.count).unwrap_or(0)),
            },
            stack: StackSummary {
                state,
                resources: n(self.execs.len()),
                running: n(started),
                failed: n(failed),
            },
            config: self.cfg.hash,
            request: self.fwd_current.map(|(r, _)| r),
        }
    }

    /// How long one forwarded request stays alone in our packets before the
    /// next queued one replaces it: long enough for the peer to see it
    /// through a few lost packets.
    fn fwd_hold(&self) -> Millis {
        Millis(self.cfg.heartbeat.keepalive.0.saturating_mul(5).max(1000))
    }

    /// Queues `kind` for the peer.
    fn forward(&mut self, kind: RequestKind) {
        self.fwd_queue.push_back(kind);
        self.advance_forward(self.clock.now());
    }

    fn advance_forward(&mut self, now: Millis) {
        let free = self
            .fwd_current
            .is_none_or(|(_, since)| now >= since.plus(self.fwd_hold()));
        if !free {
            return;
        }
        if let Some(kind) = self.fwd_queue.pop_front() {
            let seq = self.fwd_current.map_or(1, |(r, _)| r.seq % 15 + 1);
            self.fwd_current = PeerRequest::new(kind, seq).map(|r| (r, now));
        }
    }

    /// When the forwarding queue next needs a look.
    fn forward_wake(&self) -> Option<Millis> {
        if self.fwd_queue.is_empty() {
            return None;
        }
        self.fwd_current
            .map(|(_, since)| since.plus(self.fwd_hold()))
    }

    /// A request the peer forwarded: act once per new sequence number.
    fn on_peer_request(&mut self, r: Option<PeerRequest>) {
        let seq = r.map(|r| r.seq);
        let Some(last) = self.peer_req_seen else {
            // the first view of this incarnation: whatever it repeats was
            // meant for an earlier run of ours
            self.peer_req_seen = Some(seq);
            return;
        };
        if last == seq {
            return;
        }
        self.peer_req_seen = Some(seq);
        let Some(r) = r else { return };
        let peer = self.cfg.nodes[self.peer()].name.clone();
        let req = match r.kind {
            RequestKind::None => return,
            RequestKind::Outdate => return self.outdate_for_peer(),
            RequestKind::Outdated | RequestKind::OutdateRefused => {
                return self.peer_outdate_answer(r.kind == RequestKind::Outdated);
            }
            RequestKind::Standby => Request::Standby(true),
            RequestKind::Online => Request::Standby(false),
            RequestKind::MoveToSender => Request::Move {
                to: Side::Peer,
                until: None,
            },
            RequestKind::MoveToReceiver => Request::Move {
                to: Side::Me,
                until: None,
            },
            RequestKind::Unmove => Request::Unmove,
            RequestKind::MaintenanceOn => Request::Maintenance(true),
            RequestKind::MaintenanceOff => Request::Maintenance(false),
            RequestKind::Cleanup => Request::Cleanup(None),
        };
        self.note(format!("request from {peer}: {req:?}"));
        self.operator(req);
    }

    fn step(&mut self, input: Input) {
        let now = self.clock.now();
        let actions = self.engine.step(now, input);
        for a in actions {
            self.act(now, a);
        }
    }

    fn act(&mut self, now: Millis, a: Action) {
        match a {
            Action::ReadLease => {
                if !self.lease.read() {
                    tracing::error!("the lease I/O thread is gone");
                }
            }
            Action::WriteLease(b) => {
                self.write_submitted = Some(std::time::Instant::now());
                self.write_block = Some(b.clone());
                if !self.lease.write(b) {
                    tracing::error!("the lease I/O thread is gone");
                }
            }
            Action::RunAgent { res, op, timeout } => self.run_op(res, op, timeout),
            Action::Fence { level } => self.fence(level),
            Action::SelfFence => self.self_fence(),
            Action::Log(n) => {
                self.timeline_note(now, &n);
                let text = self.describe(&n);
                self.note(text);
            }
        }
        let _ = now;
    }

    fn describe(&self, n: &Note) -> String {
        let name = |r: ResId| {
            self.cfg
                .resources
                .get(r)
                .map_or_else(|| format!("#{r}"), |x| x.name.clone())
        };
        match n {
            Note::LeaseAcquired => "lease acquired".into(),
            Note::LeaseLost { why } => format!("lease lost: {why}"),
            Note::LeaseReleased => "lease released".into(),
            Note::LeaseRefused { why } => format!("lease not taken: {why}"),
            Note::PromoteRefused { why } => format!("promotion refused: {why}"),
            Note::ResourceFailed {
                res,
                op,
                fail_count,
            } => {
                let why = self.res_info[*res]
                    .last_failure
                    .as_ref()
                    .map_or(String::new(), |(w, _)| format!(": {w}"));
                format!("{} {op} failed (fail count {fail_count}){why}", name(*res))
            }
            Note::StackRunning => "stack running here".into(),
            Note::StackStopped => "stack stopped here".into(),
            Note::PeerFenced => format!("{} fenced", self.cfg.nodes[self.peer()].name),
            Note::FenceFailed => format!(
                "every fence level failed for {}: waiting for lease expiry or \
                 `hapair fence confirm {}`",
                self.cfg.nodes[self.peer()].name,
                self.cfg.nodes[self.peer()].name
            ),
            Note::EmergencyStop => "lease deadline near: emergency stop".into(),
        }
    }

    /// Follows a takeover: the steps are the engine's notes and the
    /// completed starts; the line is logged when the stack runs.
    fn timeline_note(&mut self, now: Millis, n: &Note) {
        use crate::runtime::metrics::FailoverStep;
        match n {
            Note::PeerFenced => {
                if let Some(t) = &mut self.timeline {
                    t.step("fence", now);
                }
            }
            Note::LeaseAcquired => {
                let t = self.timeline.get_or_insert(Timeline {
                    start: now,
                    steps: Vec::new(),
                });
                t.step("lease", now);
            }
            Note::StackRunning => {
                if let Some(t) = self.timeline.take() {
                    let mut prev = t.start;
                    for (name, at) in &t.steps {
                        let step = match *name {
                            "detect" => Some(FailoverStep::Detect),
                            "fence" => Some(FailoverStep::Fence),
                            "lease" => Some(FailoverStep::Lease),
                            "promote" => Some(FailoverStep::Promote),
                            "mount" => Some(FailoverStep::Mount),
                            "address" => Some(FailoverStep::Address),
                            "service" => Some(FailoverStep::Service),
                            _ => None,
                        };
                        if let Some(step) = step {
                            self.metrics.failover_step(
                                step,
                                Duration::from_millis(at.0.saturating_sub(prev.0)),
                            );
                        }
                        prev = *at;
                    }
                    if t.steps.iter().any(|(n, _)| *n == "detect") {
                        self.metrics.failover();
                    }
                    self.note(format!("takeover timeline: {}", t.render()));
                }
            }
            Note::StackStopped => self.timeline = None,
            _ => {}
        }
    }

    fn run_op(&mut self, res: ResId, op: Op, timeout: Millis) {
        let exec = self.execs[res].clone();
        let runner = Arc::clone(&self.runner);
        let r = &self.cfg.resources[res];
        let name = r.name.clone();
        let interval = Duration::from_millis(r.monitor_interval.0);
        let tx = self.done_tx.clone();
        self.res_info[res].running_op = Some(op);
        if op != Op::Monitor {
            tracing::info!(resource = %name, %op, "running");
        }
        tokio::spawn(async move {
            let result = exec
                .run(
                    &runner,
                    &name,
                    op,
                    Duration::from_millis(timeout.0.max(1)),
                    interval,
                )
                .await;
            let _ = tx.send(Done::Agent { res, op, result });
        });
    }

    fn fence(&mut self, level: u8) {
        let target = self.cfg.nodes[self.peer()].name.clone();
        self.note(format!("fencing {target}: level {level}"));
        let tx = self.done_tx.clone();
        match &self.fencer {
            None => {
                let _ = tx.send(Done::Fence {
                    level,
                    ok: false,
                    detail: "no fence device configured".into(),
                });
            }
            Some(f) => {
                let f = Arc::clone(f);
                tokio::spawn(async move {
                    let o = f.fence(level).await;
                    let detail = o
                        .attempts
                        .iter()
                        .map(|a| format!("{} {}: {}", a.device, a.action, a.message))
                        .collect::<Vec<_>>()
                        .join("; ");
                    let _ = tx.send(Done::Fence {
                        level,
                        ok: o.confirmed_off,
                        detail,
                    });
                });
            }
        }
    }

    fn self_fence(&mut self) {
        // the engine's note just before says which: a stop or demote that
        // failed, or the lease lost with the stack (partly) up
        let why = "the stack cannot be brought down safely (a failed stop, or the lease lost \
                   with resources up; see the previous line)";
        self.note(format!("SELF-FENCE: {why}"));
        self.fence_self.fire(why);
    }

    fn on_done(&mut self, d: Done) {
        match d {
            Done::Agent { res, op, result } => {
                let now = self.clock.now();
                self.metrics.agent_call(
                    &self.cfg.resources[res].name,
                    &op.to_string(),
                    match result.outcome {
                        Outcome::Ok => "ok",
                        Outcome::NotRunning => "not-running",
                        Outcome::Failed(_) => "failed",
                    },
                    result.elapsed,
                );
                if result.outcome == Outcome::Ok && matches!(op, Op::Start | Op::Promote) {
                    if let Some(t) = &mut self.timeline {
                        t.step(
                            match self.cfg.resources[res].kind {
                                crate::engine::ResourceKind::Drbd => "promote",
                                crate::engine::ResourceKind::Filesystem => "mount",
                                crate::engine::ResourceKind::Address => "address",
                                crate::engine::ResourceKind::Service => "service",
                            },
                            now,
                        );
                    }
                }
                let info = &mut self.res_info[res];
                info.running_op = None;
                info.last_op = Some((op, result.elapsed));
                if let (Outcome::Failed(_) | Outcome::NotRunning, Some(why)) =
                    (result.outcome, &result.reason)
                {
                    info.last_failure = Some((why.clone(), unix_ms()));
                    info.last_failed_op = Some(op);
                } else if let Outcome::NotRunning = result.outcome {
                    info.last_failure = Some((format!("{op}: not running"), unix_ms()));
                    info.last_failed_op = Some(op);
                }
                if op != Op::Monitor || result.outcome != Outcome::Ok {
                    tracing::info!(
                        resource = %self.cfg.resources[res].name,
                        %op,
                        outcome = ?result.outcome,
                        elapsed_ms = result.elapsed.as_millis(),
                        reason = result.reason.as_deref().unwrap_or(""),
                        "done"
                    );
                }
                self.step(Input::AgentDone {
                    res,
                    op,
                    outcome: result.outcome,
                });
            }
            Done::Fence { level, ok, detail } => {
                self.metrics.fence_attempt(
                    u32::from(level),
                    if ok { "confirmed-off" } else { "failed" },
                );
                self.note(format!(
                    "fence level {level}: {} ({detail})",
                    if ok { "confirmed off" } else { "FAILED" }
                ));
                self.step(Input::FenceDone { level, ok });
            }
            Done::Outdate { ok, detail } => {
                let peer = self.cfg.nodes[self.peer()].name.clone();
                if ok {
                    self.note(format!("DRBD data outdated here at {peer}'s request"));
                    self.forward(RequestKind::Outdated);
                } else {
                    self.note(format!("DRBD outdate at {peer}'s request failed: {detail}"));
                    self.forward(RequestKind::OutdateRefused);
                }
            }
        }
    }

    fn on_lease(&mut self, d: LeaseDone) {
        match d {
            LeaseDone::Read(r) => {
                if let Ok(b) = &r {
                    self.last_lock = Some(b.clone());
                    self.last_lock_at = Some(self.clock.now());
                }
                self.step(Input::LeaseRead(r));
            }
            LeaseDone::Wrote(r) => {
                if let (Ok(()), Some(at)) = (&r, self.write_submitted.take()) {
                    self.metrics
                        .lease_renewed(std::time::Instant::now(), at.elapsed());
                }
                if let (Err(e), _) = (&r, ()) {
                    tracing::warn!("lease write failed: {}", e.message);
                }
                // what is on the disk now: after a release the last *read*
                // block still names this node, and the peer would be told
                // forever that we hold the lease
                if let (Ok(()), Some(b)) = (&r, self.write_block.take()) {
                    self.last_lock = Some(b);
                    self.last_lock_at = Some(self.clock.now());
                }
                self.step(Input::LeaseWritten(r));
            }
        }
    }

    fn on_membership(&mut self, ev: TimedEvent) {
        let before = self.peer_status();
        let peer = self.cfg.nodes[self.peer()].name.clone();
        match ev.event {
            Event::PeerAlive { incarnation, .. } => {
                if self.peer_incarnation != Some(incarnation) {
                    self.peer_incarnation = Some(incarnation);
                    self.peer_req_seen = None;
                }
                self.peer_state = PeerState::Alive;
                // the peer came back before we took the lease: no takeover
                if self
                    .timeline
                    .as_ref()
                    .is_some_and(|t| !t.steps.iter().any(|(n, _)| *n == "lease"))
                {
                    self.timeline = None;
                }
                self.note(format!("{peer} is alive"));
            }
            Event::PeerDead { .. } => {
                let now = self.clock.now();
                // a takeover can follow only on an idle node that may run
                // the stack (not in standby, not banned)
                if self.engine.phase() == Phase::Idle && self.engine.summary(now).eligible {
                    let mut t = Timeline {
                        start: now,
                        steps: Vec::new(),
                    };
                    t.step("detect", now);
                    self.timeline = Some(t);
                }
                self.peer_state = PeerState::Dead;
                self.peer_view = None;
                self.note(format!("{peer} is dead (no heartbeat on any link)"));
            }
            Event::PeerView { view, sees_us } => {
                self.peer_view = Some(view);
                self.peer_sees_us = sees_us;
                self.on_peer_request(view.request);
            }
            Event::LinkUp { link } => {
                let name = self.cfg.links[link].name.clone();
                self.note(format!("link {name} up"));
            }
            Event::LinkDown { link, .. } => {
                let name = self.cfg.links[link].name.clone();
                self.note(format!("link {name} down"));
            }
            Event::LinkWarn { .. } => {}
            Event::ConfigMismatch { ours, theirs } => {
                self.config_mismatch = true;
                self.note(format!(
                    "CONFIG MISMATCH: ours {ours:?}, {peer}'s {theirs:?}: make /etc/hapair/hapair.toml \
                     the same on both nodes"
                ));
            }
            Event::ConfigMatch => self.config_mismatch = false,
            Event::IncarnationConflict { incarnation } => {
                tracing::error!(?incarnation, "incarnation conflict");
            }
        }
        let after = self.peer_status();
        if after != before {
            self.step(Input::Peer(after));
        }
    }

    fn operator(&mut self, req: Request) {
        match &req {
            Request::Standby(on) => self.standby = *on,
            Request::Maintenance(on) => self.maintenance = *on,
            Request::Move { to, until } => {
                let node = match to {
                    Side::Me => self.cfg.nodes[self.me].name.clone(),
                    Side::Peer => self.cfg.nodes[self.peer()].name.clone(),
                };
                self.moved = Some((node, *until));
            }
            Request::Unmove => self.moved = None,
            Request::Cleanup(_) | Request::FenceConfirm => {}
        }
        self.step(Input::Operator(req));
    }

    /// Maps an operator command naming a node to the engine's side.
    pub fn side_of(&self, node: &str) -> Option<Side> {
        match self.cfg.node_index(node) {
            Some(i) if i == self.me => Some(Side::Me),
            Some(_) => Some(Side::Peer),
            None => None,
        }
    }
}

/// Starts the daemon and runs it until SIGTERM/SIGINT has stopped the stack
/// and released the lease.
pub fn main(opts: Options) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(opts))
}

async fn run(opts: Options) -> anyhow::Result<()> {
    let loaded = config::load(&opts.config)?;
    for w in loaded.render_warnings().lines() {
        tracing::warn!("{w}");
    }
    let cfg = Arc::new(loaded.config);
    let me = local_node(&cfg, opts.node.as_deref())?;
    let peer = 1 - me;
    let clock = Clock::new();
    tracing::info!(
        node = %cfg.nodes[me].name,
        peer = %cfg.nodes[peer].name,
        config = %cfg.source.display(),
        "starting"
    );

    // Everything that can fail is set up before anything is touched.
    let key_file = crate::keys::load(&cfg.cluster.key_file).map_err(|e| setup("key file", e))?;
    let keyring = key_file.keyring().map_err(|e| setup("key file", e))?;
    let runner = Arc::new(
        ra::Runner::new(ra::RunnerConfig {
            node_name: cfg.nodes[me].name.clone(),
            ..ra::RunnerConfig::default()
        })
        .map_err(|e| setup("agent runner", e))?,
    );
    // DRBD: one events2 stream for the daemon, started before anything acts
    let drbd_res = cfg
        .resources
        .iter()
        .find(|r| matches!(r.exec, Exec::Drbd))
        .and_then(|r| r.params.get("resource").cloned());
    let (drbd_monitor, mut drbd_events, mut drbd_view) = match &drbd_res {
        Some(_) => {
            let (m, ev) = drbd::monitor::Monitor::spawn(drbd::monitor::MonitorConfig::default());
            let view = m.subscribe();
            (Some(m), Some(ev), Some(view))
        }
        None => (None, None, None),
    };
    let execs = build_executors(&cfg, drbd_view.as_ref()).map_err(|e| setup("resources", e))?;
    for e in &execs {
        if let Executor::Drbd(r) = e {
            // up (Secondary) or in line with its config; never promotes
            if let Err(err) = r.adjust().await {
                tracing::error!("drbdadm adjust {}: {err}", r.name);
            }
        }
    }
    let (lease_tx, mut lease_rx) = mpsc::unbounded_channel();
    let engine_kind = match cfg.lease.engine {
        config::LeaseEngine::Sync => sfex::dev::EngineKind::Sync,
        config::LeaseEngine::Uring | config::LeaseEngine::Auto => sfex::dev::EngineKind::Uring,
    };
    let lease = LeaseIo::open(&cfg.lease.device, cfg.lease.index, engine_kind, lease_tx)
        .map_err(|e| setup("lease", e))?;
    if let Some(why) = lease.fallback_reason() {
        tracing::warn!("lease device: io_uring refused ({why}); using pread/pwrite");
    }
    let fencer = fencer_for(&cfg, &cfg.nodes[peer].name);

    // the watchdog: armed before anything runs, so a daemon that freezes
    // from here on is reset by the device
    let wd_present = std::fs::metadata(&cfg.self_fence.watchdog_device).is_ok();
    let watchdog = match cfg.self_fence.mode {
        SelfFenceMode::Watchdog | SelfFenceMode::Auto
            if wd_present || cfg.self_fence.mode == SelfFenceMode::Watchdog =>
        {
            Some(
                crate::runtime::watchdog::Watchdog::open(
                    &cfg.self_fence.watchdog_device,
                    crate::runtime::watchdog::WatchdogConfig {
                        kick_interval: Duration::from_millis(500),
                        stall_after: Duration::from_secs(3),
                    },
                    crate::runtime::watchdog::OnStall::StopKicking,
                )
                .map_err(|e| setup("watchdog", e))?,
            )
        }
        _ => None,
    };
    if watchdog.is_some()
        && crate::runtime::watchdog::nowayout(
            &cfg.self_fence.watchdog_device,
            std::path::Path::new("/sys"),
        ) == Some(true)
    {
        tracing::warn!(
            "{}",
            crate::runtime::watchdog::nowayout_note(&cfg.self_fence.watchdog_device)
        );
    }
    if cfg.self_fence.mode == SelfFenceMode::TestExit {
        tracing::warn!(
            "self_fence.mode = test-exit: this node exits instead of rebooting (tests only)"
        );
    }
    // what this node kept across restarts: reported and ignored when damaged
    let state_path = cfg.cluster.state_dir.join("state");
    let restored = {
        let p = state_path.clone();
        let dir = cfg.cluster.state_dir.clone();
        tokio::task::spawn_blocking(
            move || -> Result<Option<crate::state::PersistedState>, String> {
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                match crate::state::load(&p) {
                    Ok(s) => Ok(s),
                    Err(e) => {
                        tracing::error!("persisted state not trusted: {e}");
                        match crate::state::quarantine(&p, unix_ms() / 1000) {
                            Ok(q) => tracing::error!(
                                "moved it to {}; starting from defaults",
                                q.display()
                            ),
                            Err(e) => tracing::error!("could not move it aside: {e}"),
                        }
                        Ok(None)
                    }
                }
            },
        )
        .await
        .map_err(|e| setup("state", e))?
        .map_err(|e| setup("state", e))?
    };
    let writer = spawn_state_writer(state_path)?;
    let metrics = Arc::new(crate::runtime::metrics::Metrics::new());
    let notifier =
        crate::runtime::notify::Notifier::from_env().map_err(|e| setup("sd_notify", e))?;
    let engine = Engine::new(cfg.engine_config(me), clock.now());
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let n = cfg.resources.len();
    let mut d = Daemon {
        engine,
        clock,
        execs,
        runner,
        lease,
        fencer,
        done_tx,
        peer_state: PeerState::Unknown,
        peer_view: None,
        peer_sees_us: false,
        config_mismatch: false,
        last_lock: None,
        res_info: vec![ResInfo::default(); n],
        transitions: VecDeque::new(),
        drbd_view: None,
        shutting_down: false,
        liveness: watchdog
            .as_ref()
            .map(crate::runtime::watchdog::Watchdog::liveness),
        fence_self: match (&watchdog, cfg.self_fence.mode) {
            (Some(w), _) => w.self_fence(),
            (None, SelfFenceMode::TestExit) => crate::runtime::watchdog::SelfFence::test_exit(),
            (None, _) => crate::runtime::watchdog::SelfFence::reboot(),
        },
        watchdog,
        fwd_queue: VecDeque::new(),
        fwd_current: None,
        peer_incarnation: None,
        peer_req_seen: None,
        own_move_until: None,
        standby: false,
        maintenance: false,
        moved: None,
        last_lock_at: None,
        drbd_name: drbd_res.clone(),
        timeline: None,
        metrics: Arc::clone(&metrics),
        write_submitted: None,
        write_block: None,
        drops_counted: BTreeMap::new(),
        link_accepted: BTreeMap::new(),
        link_loss: BTreeMap::new(),
        notifier,
        persisted: restored.clone().unwrap_or_default(),
        state_tx: Some(writer.0),
        state_writer: Some(writer.1),
        fence_episode: None,
        split_brain: None,
        kernel_log_checked: false,
        me,
        cfg: Arc::clone(&cfg),
    };
    let view = d.node_view(clock.now());
    let (hb, mut hb_handle) = Heartbeat::new(cfg.heartbeat_config(me), keyring, view, clock)
        .map_err(|e| setup("heartbeat", e))?;
    let (hb_stop_tx, hb_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let hb_task = tokio::spawn(hb.run(async move {
        let _ = hb_stop_rx.await;
    }));

    // the control socket: status and watch are answered from `status_tx`,
    // everything else comes here as a Call
    let gid = nix::unistd::Group::from_name(&cfg.cluster.admin_group)
        .ok()
        .flatten()
        .map(|g| g.gid);
    if gid.is_none() {
        tracing::warn!(
            "group {} does not exist: the control socket is for root only",
            cfg.cluster.admin_group
        );
    }
    let listener = crate::runtime::control::bind(&cfg.cluster.socket, gid).map_err(|e| {
        setup(
            "control socket",
            format!("{}: {e}", cfg.cluster.socket.display()),
        )
    })?;
    let (status_tx, status_rx) = watch::channel(d.report(&hb_handle.status.borrow(), None));
    let (call_tx, mut call_rx) = mpsc::channel(16);
    let control = tokio::spawn(crate::runtime::control::serve(
        listener,
        crate::runtime::control::AccessPolicy::group(cfg.cluster.admin_group.clone()),
        status_rx,
        call_tx,
    ));
    // the optional Prometheus endpoint
    let metrics_task = match &cfg.metrics {
        Some(m) => {
            let l = tokio::net::TcpListener::bind(m.listen)
                .await
                .map_err(|e| setup("metrics", format!("{}: {e}", m.listen)))?;
            tracing::info!("metrics on http://{}/metrics", m.listen);
            Some(tokio::spawn(crate::runtime::metrics::serve(
                l,
                Arc::clone(&metrics),
                std::future::pending::<()>(),
            )))
        }
        None => None,
    };
    let wd_ping = crate::runtime::notify::watchdog_interval()
        .unwrap_or(Duration::from_secs(3600))
        .max(Duration::from_millis(50));
    let mut sd_watchdog = tokio::time::interval(wd_ping);
    sd_watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // the loop's own deadlines (engine, forwarded requests, moves) on one
    // timerfd; it wakes at least once a second (liveness for the watchdog
    // keeper, the link figures, a fresh status report)
    let timer = crate::runtime::wake::WakeTimer::new().map_err(|e| setup("timerfd", e))?;
    let mut last_link_metrics = tokio::time::Instant::now();
    // turns in a row whose deadline had already passed (a busy loop)
    let mut past_wakes = 0u32;

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    d.note(format!("hapair started on {}", cfg.nodes[me].name));
    if let Some(st) = &restored {
        d.restore(st);
    }
    // the first look at the world
    d.step(Input::Tick);
    if let Some(n) = &d.notifier {
        let _ = n.ready(&format!("{}: starting", cfg.nodes[me].name));
    }
    let mut last_status = String::new();
    loop {
        if let Some(l) = &d.liveness {
            l.bump();
        }
        let wake = [d.engine.next_wake(), d.forward_wake(), d.own_move_until]
            .into_iter()
            .flatten()
            .min()
            .map(|w| clock.instant(w));
        let now_i = tokio::time::Instant::now();
        let wake = wake.map_or(MAX_SLEEP, |w| {
            w.saturating_duration_since(now_i).min(MAX_SLEEP)
        });
        if wake.is_zero() {
            past_wakes += 1;
            if past_wakes == 1000 {
                tracing::warn!(
                    engine = ?d.engine.next_wake(),
                    forward = ?d.forward_wake(),
                    own_move = ?d.own_move_until,
                    now = ?clock.now(),
                    "the main loop's next deadline has been in the past for 1000 turns"
                );
            }
        } else {
            past_wakes = 0;
        }
        // a timerfd that fails (it should not) falls back to tokio's timer:
        // leaving the loop would leave the stack running unsupervised
        let armed = match timer.arm(wake) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("timerfd: {e}; this wakeup uses tokio's timer");
                false
            }
        };
        tokio::select! {
            r = timer.fired(), if armed => {
                if let Err(e) = r {
                    tracing::error!("timerfd: {e}");
                }
                d.step(Input::Tick);
            }
            () = tokio::time::sleep(wake), if !armed => d.step(Input::Tick),
            Some(ev) = hb_handle.events.recv() => d.on_membership(ev),
            Some(l) = lease_rx.recv() => d.on_lease(l),
            Some(x) = done_rx.recv() => d.on_done(x),
            _ = term.recv() => d.begin_shutdown("SIGTERM"),
            _ = int.recv() => d.begin_shutdown("SIGINT"),
            _ = hup.recv() => d.reload(&opts),
            _ = sd_watchdog.tick() => {
                if let Some(n) = &d.notifier {
                    let _ = n.watchdog();
                }
            }
            Some(call) = call_rx.recv() => {
                let resp = d.on_call(&call.request, call.caller.uid);
                let _ = call.reply.send(resp);
            }
            Some(ev) = recv_opt(&mut drbd_events) => {
                if let drbd::monitor::MonitorEvent::Stale { reason, .. } = &ev {
                    tracing::warn!("DRBD events2 stream: {reason:?}");
                }
                if let drbd::monitor::MonitorEvent::Transition {
                    transition: drbd::model::Transition::Helper { resource, helper, status: None },
                    ..
                } = &ev
                {
                    if helper == "split-brain" && Some(resource) == drbd_res.as_ref() {
                        d.on_split_brain("DRBD called its split-brain handler (unresolved split brain)");
                    }
                }
                tracing::debug!(?ev, "drbd");
            }
            Ok(()) = changed_opt(&mut drbd_view) => {
                if let (Some(rx), Some(res)) = (&drbd_view, &drbd_res) {
                    let v = crate::runtime::drbd::engine_view(&rx.borrow(), res);
                    if let Some(v) = v {
                        if d.drbd_view != Some(v) {
                            d.note(format!("DRBD {res}: local {:?}, peer {:?}", v.local, v.peer));
                            d.drbd_view = Some(v);
                            d.step(Input::Drbd(v));
                        }
                        let connected = drbd_connected(&rx.borrow(), res);
                        d.on_drbd_connected(connected);
                        if !d.kernel_log_checked {
                            d.kernel_log_checked = true;
                            if !connected {
                                let minor = drbd_minor(&rx.borrow(), res);
                                d.check_kernel_log(res, minor).await;
                            }
                        }
                    }
                }
            }
        }
        let since = last_link_metrics.elapsed();
        if since >= MAX_SLEEP {
            last_link_metrics = tokio::time::Instant::now();
            let st = hb_handle.status.borrow().clone();
            d.link_metrics(&st, since);
        }
        let now = clock.now();
        d.advance_forward(now);
        if d.own_move_until.is_some_and(|u| now >= u) {
            // our move expired here (the engine forgets it itself): the
            // peer got it without an expiry, so tell it
            d.own_move_until = None;
            d.forward(RequestKind::Unmove);
        }
        if d.moved
            .as_ref()
            .is_some_and(|(_, u)| u.is_some_and(|u| now >= u))
        {
            d.moved = None;
        }
        let report = d.report(
            &hb_handle.status.borrow(),
            drbd_view.as_ref().map(|r| r.borrow().clone()).as_ref(),
        );
        status_tx.send_replace(report);
        d.persist();
        if let Some(n) = &d.notifier {
            let st = d.status_line(now);
            if st != last_status {
                let _ = n.status(&st);
                last_status = st;
            }
        }
        let view = d.node_view(now);
        hb_handle.view.send_if_modified(|v| {
            let changed = *v != view;
            *v = view;
            changed
        });
        if d.shutting_down && d.engine.phase() == Phase::Idle && !d.engine.summary(now).holds_lease
        {
            break;
        }
        if d.engine.phase() == Phase::Fenced {
            // self_fence() did not return a dead node (test mode): stop here
            break;
        }
    }
    d.note("hapair stopped: stack down, lease released".into());
    d.persist();
    // the writer finishes the last snapshot before the process exits
    if let Some(tx) = d.state_tx.take() {
        drop(tx);
    }
    if let Some(h) = d.state_writer.take() {
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    if let Some(m) = drbd_monitor {
        m.shutdown().await;
    }
    let _ = hb_stop_tx.send(());
    let _ = hb_task.await;
    control.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    if let Some(w) = d.watchdog.take() {
        if let Err(e) = w.close() {
            tracing::error!("watchdog close: {e}");
        }
    }
    let _ = std::fs::remove_file(&cfg.cluster.socket);
    Ok(())
}

impl Daemon {
    /// About once a second: heartbeat round trip and loss per link over
    /// the last `window`, for the metrics and status.
    #[allow(clippy::cast_precision_loss)]
    fn link_metrics(&mut self, hb: &crate::membership::Status, window: Duration) {
        let expected = window.as_secs_f64() * 1000.0 / self.cfg.heartbeat.keepalive.0.max(1) as f64;
        for (l, st) in self.cfg.links.iter().zip(&hb.links) {
            if let Some(rtt) = st.rtt {
                self.metrics
                    .heartbeat_rtt(&l.name, Duration::from_millis(rtt.0));
            }
            let now = st.counters.accepted;
            let before = self.link_accepted.insert(l.name.clone(), now);
            if let (Some(before), PeerState::Alive) = (before, self.peer_state) {
                let got = now.saturating_sub(before) as f64;
                let loss = (1.0 - got / expected).clamp(0.0, 1.0);
                self.metrics.heartbeat_loss(&l.name, loss);
                self.link_loss.insert(l.name.clone(), loss);
            } else {
                self.link_loss.remove(&l.name);
            }
        }
        self.count_drops(hb);
    }

    fn count_drops(&mut self, hb: &crate::membership::Status) {
        for r in crate::membership::DropReason::ALL {
            let total = hb.totals.drops.get(*r);
            let seen = self.drops_counted.entry(r.name().to_string()).or_insert(0);
            if total > *seen {
                #[allow(clippy::cast_precision_loss)]
                self.metrics.counter_add(
                    crate::runtime::metrics::names::PACKETS_DROPPED,
                    &[("reason", r.name())],
                    (total - *seen) as f64,
                );
            }
            *seen = total;
        }
    }

    /// One line for systemd's STATUS=.
    fn status_line(&self, now: Millis) -> String {
        let s = self.engine.summary(now);
        let peer = &self.cfg.nodes[self.peer()].name;
        format!(
            "{:?}{}; peer {} {}",
            s.phase,
            if s.holds_lease { ", lease held" } else { "" },
            peer,
            match self.peer_state {
                PeerState::Alive => "alive",
                PeerState::Dead => "dead",
                PeerState::Unknown => "not heard yet",
            }
        )
    }

    fn begin_shutdown(&mut self, why: &str) {
        if let Some(n) = &self.notifier {
            let _ = n.stopping();
        }
        if self.shutting_down {
            tracing::warn!("{why} again: still stopping the stack");
            return;
        }
        self.shutting_down = true;
        if self.maintenance {
            // resources are not ours to stop, and the lease must stay while
            // they may run: hapair exits once maintenance is turned off
            self.note(format!(
                "{why} in maintenance: the stack is left alone and the lease kept; hapair stops \
                 when `hapair maintenance off` lets it stop the stack"
            ));
        }
        self.note(format!("{why}: stopping the stack and releasing the lease"));
        // not the operator's standby: it is neither shown nor kept for the
        // next start
        self.step(Input::Operator(Request::Standby(true)));
    }

    fn reload(&mut self, opts: &Options) {
        if let Some(n) = &self.notifier {
            let _ = n.reloading();
        }
        match config::load(&opts.config) {
            Err(e) => {
                tracing::error!("SIGHUP: keeping the running config: {e}");
                self.note(format!("reload refused: {}", first_line(&e.to_string())));
            }
            Ok(l) if l.config.hash == self.cfg.hash => {
                self.note("reload: config unchanged".into());
            }
            Ok(l) => match self.apply(l.config) {
                Ok(()) => self.note(format!(
                    "reload: new config applied (hash {:?})",
                    self.cfg.hash
                )),
                Err(why) => {
                    tracing::error!("SIGHUP: keeping the running config: {why}");
                    self.note(format!("reload refused: {why}"));
                }
            },
        }
        if let Some(n) = &self.notifier {
            let _ = n.ready("reloaded");
        }
    }
}

impl Daemon {
    /// Applies a valid new config while running: resource parameters and
    /// timeouts, policy, fencing. What needs a restart (nodes, links,
    /// heartbeat timing, the lease, self-fence, metrics, the control socket,
    /// the stack's shape) refuses the whole file and says which part.
    fn apply(&mut self, new: Config) -> Result<(), String> {
        let old = &self.cfg;
        let mut fixed = Vec::new();
        if old.cluster != new.cluster {
            fixed.push("[cluster]");
        }
        if old.nodes != new.nodes {
            fixed.push("[[node]]");
        }
        if old.links != new.links || old.heartbeat != new.heartbeat {
            fixed.push("[[link]]/[heartbeat]");
        }
        if old.lease != new.lease {
            fixed.push("[lease]");
        }
        if old.self_fence != new.self_fence {
            fixed.push("[self_fence]");
        }
        if old.metrics != new.metrics {
            fixed.push("[metrics]");
        }
        let shape = |c: &Config| {
            c.resources
                .iter()
                .map(|r| (r.name.clone(), r.exec.clone()))
                .collect::<Vec<_>>()
        };
        if shape(old) != shape(&new) {
            fixed.push("the resources' names, types or order");
        }
        if !fixed.is_empty() {
            return Err(format!(
                "{} changed: these need a restart of hapair on this node",
                fixed.join(", ")
            ));
        }
        let drbd_view = self.execs.iter().find_map(|e| match e {
            Executor::Drbd(d) => Some(d.view()),
            _ => None,
        });
        let execs = build_executors(&new, drbd_view.as_ref())?;
        self.engine.reconfigure(new.engine_config(self.me))?;
        let peer = &new.nodes[self.peer()].name;
        self.fencer = fencer_for(&new, peer);
        self.execs = execs;
        self.cfg = Arc::new(new);
        Ok(())
    }
}

/// The fencer for `target` from the config's levels (`None`: no device).
pub(crate) fn fencer_for(cfg: &Config, target: &str) -> Option<Arc<crate::runtime::fence::Fencer>> {
    let levels = cfg.fencing.levels_for(target);
    (!levels.is_empty()).then(|| {
        Arc::new(crate::runtime::fence::Fencer::new(
            target,
            levels
                .iter()
                .map(|devs| crate::runtime::fence::FenceLevel {
                    devices: devs
                        .iter()
                        .map(|d| {
                            crate::runtime::fence::FenceDevice::new(
                                &d.agent,
                                d.params.clone(),
                                Duration::from_millis(d.timeout.0),
                            )
                        })
                        .collect(),
                })
                .collect(),
        ))
    })
}

/// The thread that writes persisted state (atomic write + fsync, off the
/// event loop). It always writes the newest snapshot it has.
type StateWriter = (
    std::sync::mpsc::Sender<crate::state::PersistedState>,
    std::thread::JoinHandle<()>,
);

fn spawn_state_writer(path: PathBuf) -> Result<StateWriter, DaemonError> {
    let (tx, rx) = std::sync::mpsc::channel::<crate::state::PersistedState>();
    let h = std::thread::Builder::new()
        .name("hapair-state".into())
        .spawn(move || {
            while let Ok(mut s) = rx.recv() {
                while let Ok(newer) = rx.try_recv() {
                    s = newer;
                }
                if let Err(e) = crate::state::save(&path, &s) {
                    tracing::error!("persisted state: {e}");
                }
            }
        })
        .map_err(|e| setup("state writer", e))?;
    Ok((tx, h))
}

impl Daemon {
    /// Applies what the last run kept: standby, maintenance, moves not yet
    /// expired, fail counts not yet expired.
    fn restore(&mut self, st: &crate::state::PersistedState) {
        let now = self.clock.now();
        let unix = unix_ms();
        let ago = |t: u64| Millis(now.0.saturating_sub(unix.saturating_sub(t)));
        for (name, fc) in &st.fail_counts {
            if let Some(i) = self.cfg.resources.iter().position(|r| &r.name == name) {
                let expired = self
                    .engine
                    .config()
                    .failure_timeout
                    .is_some_and(|t| unix.saturating_sub(fc.last_failure_ms) >= t.0);
                if fc.count > 0 && !expired {
                    self.engine
                        .restore_fail_count(i, fc.count, ago(fc.last_failure_ms));
                    self.res_info[i].last_failure = Some((fc.reason.clone(), fc.last_failure_ms));
                }
            }
        }
        if st.standby {
            self.operator(Request::Standby(true));
        }
        if st.maintenance {
            self.operator(Request::Maintenance(true));
        }
        for m in &st.moves {
            if m.expires_ms.is_some_and(|e| e <= unix) {
                continue;
            }
            if let Some(to) = self.side_of(&m.node) {
                let until = m
                    .expires_ms
                    .map(|e| now.plus(Millis(e.saturating_sub(unix))));
                self.operator(Request::Move { to, until });
            }
        }
        self.persisted.audit = st.audit.clone();
        self.note(format!(
            "restored: standby {}, maintenance {}, {} move(s), {} fail count(s)",
            st.standby,
            st.maintenance,
            st.moves.len(),
            st.fail_counts.values().filter(|f| f.count > 0).count()
        ));
    }

    /// The state worth keeping, now.
    fn snapshot(&self) -> crate::state::PersistedState {
        let now = self.clock.now();
        let unix = unix_ms();
        let mut fail_counts = BTreeMap::new();
        for ((c, st), info) in self
            .cfg
            .resources
            .iter()
            .zip(self.engine.resources())
            .zip(&self.res_info)
        {
            if st.fail_count > 0 {
                fail_counts.insert(
                    c.name.clone(),
                    crate::state::FailCount {
                        count: st.fail_count,
                        last_failure_ms: st
                            .last_failure
                            .map_or(unix, |f| unix.saturating_sub(now.0.saturating_sub(f.0))),
                        reason: info
                            .last_failure
                            .as_ref()
                            .map_or(String::new(), |(r, _)| r.clone()),
                    },
                );
            }
        }
        let moves = self
            .moved
            .iter()
            .map(|(node, until)| crate::state::Move {
                node: node.clone(),
                created_ms: self.persisted.moves.first().map_or(unix, |m| m.created_ms),
                expires_ms: until.map(|u| unix + u.0.saturating_sub(now.0)),
            })
            .collect();
        // the lease view is kept when its holder changes (not every renewal)
        let lease = match (&self.last_lock, &self.persisted.lease) {
            (Some(b), old) => {
                let holder = (b.status == LockStatus::Locked)
                    .then(|| String::from_utf8_lossy(b.nodename.as_bytes()).into_owned());
                match old {
                    Some(o) if o.holder == holder => Some(o.clone()),
                    _ => Some(crate::state::LeaseView {
                        holder,
                        counter: u64::try_from(b.count).unwrap_or(0),
                        seen_ms: unix,
                    }),
                }
            }
            (None, old) => old.clone(),
        };
        crate::state::PersistedState {
            fail_counts,
            moves,
            standby: self.standby,
            maintenance: self.maintenance,
            lease,
            audit: self.persisted.audit.clone(),
        }
    }

    /// Hands a changed snapshot to the writer thread.
    fn persist(&mut self) {
        let mut snap = self.snapshot();
        // a move's creation time and expiry do not change on their own
        if snap.moves.len() == self.persisted.moves.len() {
            for (n, o) in snap.moves.iter_mut().zip(&self.persisted.moves) {
                if n.node == o.node && n.expires_ms.is_some() == o.expires_ms.is_some() {
                    n.created_ms = o.created_ms;
                    if n.expires_ms
                        .zip(o.expires_ms)
                        .is_some_and(|(a, b)| a.abs_diff(b) < 1000)
                    {
                        n.expires_ms = o.expires_ms;
                    }
                }
            }
        }
        if snap != self.persisted {
            if let Some(tx) = &self.state_tx {
                let _ = tx.send(snap.clone());
            }
            self.persisted = snap;
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn build_executors(
    cfg: &Config,
    drbd_view: Option<&watch::Receiver<drbd::monitor::StateView>>,
) -> Result<Vec<Executor>, String> {
    use crate::runtime::builtin::{address::Address, filesystem::Filesystem};
    cfg.resources
        .iter()
        .map(|r| {
            let errs = |v: Vec<crate::runtime::builtin::ParamError>| {
                format!(
                    "resource {}: {}",
                    r.name,
                    v.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            };
            Ok(match &r.exec {
                Exec::Agent(a) => Executor::Agent {
                    agent: a.clone(),
                    params: r.params.clone(),
                },
                Exec::Filesystem => Executor::Filesystem(Arc::new(
                    Filesystem::from_params(&r.params).map_err(errs)?,
                )),
                Exec::Address => {
                    Executor::Address(Arc::new(Address::from_params(&r.params).map_err(errs)?))
                }
                Exec::Drbd => {
                    let view = drbd_view
                        .ok_or_else(|| format!("resource {}: no DRBD monitor", r.name))?
                        .clone();
                    let name = r
                        .params
                        .get("resource")
                        .ok_or_else(|| format!("resource {}: params.resource missing", r.name))?;
                    Executor::Drbd(Arc::new(crate::runtime::drbd::DrbdResource::new(
                        name,
                        drbd::admin::AdminConfig::default(),
                        view,
                    )))
                }
            })
        })
        .collect()
}

/// An operator request as the control socket hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorRequest {
    /// `standby NODE`
    Standby(String),
    /// `online NODE`
    Online(String),
    /// `move NODE [--for]`
    Move {
        /// Target node.
        node: String,
        /// Expiry.
        for_ms: Option<u64>,
    },
    /// `unmove`
    Unmove,
    /// `cleanup [RESOURCE]`
    Cleanup(Option<String>),
    /// `maintenance on|off`
    Maintenance(bool),
    /// `fence confirm NODE`
    FenceConfirm(String),
}

impl Daemon {
    fn on_call(
        &mut self,
        req: &crate::cli::proto::ControlRequest,
        uid: u32,
    ) -> crate::cli::proto::ControlResponse {
        use crate::cli::proto::{ControlRequest as C, ControlResponse};
        let r = match req.clone() {
            C::Status | C::Watch => {
                return ControlResponse::error("status is answered by the socket server");
            }
            C::Standby { node } => OperatorRequest::Standby(node),
            C::Online { node } => OperatorRequest::Online(node),
            C::Move { to, for_ms } => OperatorRequest::Move { node: to, for_ms },
            C::Unmove => OperatorRequest::Unmove,
            C::Cleanup { resource } => OperatorRequest::Cleanup(resource),
            C::Maintenance { on } => OperatorRequest::Maintenance(on),
            C::FenceConfirm { node } => OperatorRequest::FenceConfirm(node),
            C::FencePeer { resource, unfence } => return self.on_fence_peer(&resource, unfence),
        };
        if self.shutting_down {
            return ControlResponse::error("hapair is shutting down on this node");
        }
        match self.handle_operator(r, uid) {
            Ok(m) => ControlResponse::ok(m),
            Err(e) => ControlResponse::error(e),
        }
    }

    fn side(&self, node: &str) -> Result<Side, String> {
        self.side_of(node).ok_or_else(|| {
            format!(
                "no node {node:?} in this pair (nodes: {}, {})",
                self.cfg.nodes[0].name, self.cfg.nodes[1].name
            )
        })
    }

    /// Carries out an operator request: the local part goes to the engine,
    /// the peer's part is forwarded in our heartbeats. Returns what was done.
    pub fn handle_operator(&mut self, r: OperatorRequest, uid: u32) -> Result<String, String> {
        let peer = self.cfg.nodes[self.peer()].name.clone();
        let me = self.cfg.nodes[self.me].name.clone();
        let done = match r {
            OperatorRequest::Standby(n) => match self.side(&n)? {
                Side::Me => {
                    self.operator(Request::Standby(true));
                    format!("{me} is in standby: its stack stops and it will not take over")
                }
                Side::Peer => {
                    self.forward(RequestKind::Standby);
                    format!("asked {peer} to go to standby")
                }
            },
            OperatorRequest::Online(n) => match self.side(&n)? {
                Side::Me => {
                    self.operator(Request::Standby(false));
                    format!("{me} is online")
                }
                Side::Peer => {
                    self.forward(RequestKind::Online);
                    format!("asked {peer} to come online")
                }
            },
            OperatorRequest::Move { node, for_ms } => {
                let to = self.side(&node)?;
                let now = self.clock.now();
                let until = for_ms.map(|ms| now.plus(Millis(ms)));
                self.operator(Request::Move { to, until });
                self.own_move_until = until;
                self.forward(match to {
                    Side::Me => RequestKind::MoveToSender,
                    Side::Peer => RequestKind::MoveToReceiver,
                });
                match for_ms {
                    Some(ms) => format!(
                        "the stack moves to {node} for {}",
                        humantime::format_duration(Duration::from_millis(ms))
                    ),
                    None => format!("the stack moves to {node} until `hapair unmove`"),
                }
            }
            OperatorRequest::Unmove => {
                self.operator(Request::Unmove);
                self.own_move_until = None;
                self.forward(RequestKind::Unmove);
                "move cleared on both nodes".into()
            }
            OperatorRequest::Cleanup(res) => {
                let id = match &res {
                    None => None,
                    Some(name) => Some(
                        self.cfg
                            .resources
                            .iter()
                            .position(|r| &r.name == name)
                            .ok_or_else(|| format!("no resource {name:?}"))?,
                    ),
                };
                if let Some(i) = id {
                    self.res_info[i].last_failure = None;
                } else {
                    for r in &mut self.res_info {
                        r.last_failure = None;
                    }
                }
                self.operator(Request::Cleanup(id));
                self.forward(RequestKind::Cleanup);
                match res {
                    Some(n) => format!("fail counts of {n} cleared here; {peer}'s cleared too"),
                    None => "every fail count cleared on both nodes".into(),
                }
            }
            OperatorRequest::Maintenance(on) => {
                self.operator(Request::Maintenance(on));
                self.forward(if on {
                    RequestKind::MaintenanceOn
                } else {
                    RequestKind::MaintenanceOff
                });
                if on {
                    "maintenance on: resources are neither started, stopped nor monitored; the \
                     lease is still renewed"
                        .into()
                } else {
                    "maintenance off".into()
                }
            }
            OperatorRequest::FenceConfirm(n) => match self.side(&n)? {
                Side::Me => return Err(format!("{n} is this node: confirm from {peer}")),
                Side::Peer => {
                    if self.peer_state == PeerState::Alive {
                        return Err(format!(
                            "{peer} is alive on a heartbeat link: refusing to confirm it off"
                        ));
                    }
                    self.operator(Request::FenceConfirm);
                    format!("{peer} confirmed off by the operator")
                }
            },
        };
        self.note(format!("operator (uid {uid}): {done}"));
        self.persisted.push_audit(crate::state::AuditEntry {
            time_ms: unix_ms(),
            uid,
            request: done.clone(),
        });
        Ok(done)
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

async fn changed_opt<T>(
    rx: &mut Option<watch::Receiver<T>>,
) -> Result<(), watch::error::RecvError> {
    match rx {
        Some(r) => r.changed().await,
        None => std::future::pending().await,
    }
}

mod report {
    //! The daemon's state as the control socket's [`StatusReport`].
    use super::*;
    use crate::cli::proto::{
        ConfigReport, DrbdReport, FailureReport, FenceState as RFence, FencingReport, LeaseReport,
        LinkReport, LinkState as RLink, MoveReport, NodeReport, NodeRole, NodeState,
        ResourceReport, ResourceState, StatusReport, Transition as RTransition,
    };
    use crate::engine::FenceState;
    use crate::membership::{DropReason, LinkState, Status as HbStatus};

    fn drops(d: &crate::membership::Drops) -> BTreeMap<String, u64> {
        DropReason::ALL
            .iter()
            .filter(|r| d.get(**r) > 0)
            .map(|r| (r.name().to_string(), d.get(*r)))
            .collect()
    }

    fn role_of(role: Role) -> NodeRole {
        match role {
            Role::Primary => NodeRole::Primary,
            Role::Secondary | Role::Standby | Role::Maintenance => NodeRole::Secondary,
            Role::Promoting | Role::Starting => NodeRole::Starting,
            Role::Demoting | Role::Stopping => NodeRole::Stopping,
            Role::Failed => NodeRole::Fenced,
            Role::Unknown => NodeRole::Unknown,
        }
    }

    impl Daemon {
        /// The full status, as `hapair status` shows it.
        pub fn report(
            &self,
            hb: &HbStatus,
            drbd: Option<&drbd::monitor::StateView>,
        ) -> StatusReport {
            let now = self.clock.now();
            let unix = unix_ms();
            let age = |t: Millis| now.0.saturating_sub(t.0);
            let me = &self.cfg.nodes[self.me].name;
            let peer = &self.cfg.nodes[self.peer()].name;
            let view = self.node_view(now);
            let my_state = if self.standby {
                NodeState::Standby
            } else {
                NodeState::Online
            };
            let peer_state = match (hb.peer.state, self.peer_view) {
                (PeerState::Alive, Some(v)) if v.role == Role::Standby => NodeState::Standby,
                (PeerState::Alive, _) => NodeState::Online,
                (PeerState::Dead, _) => NodeState::Offline,
                (PeerState::Unknown, _) => NodeState::Unknown,
            };
            let nodes = vec![
                NodeReport {
                    name: me.clone(),
                    state: my_state,
                    role: role_of(view.role),
                    last_seen_ms: Some(0),
                    incarnation: Some(format!("{:016x}", hb.incarnation.get())),
                },
                NodeReport {
                    name: peer.clone(),
                    state: peer_state,
                    role: match (hb.peer.state, self.peer_view) {
                        (PeerState::Alive, Some(v)) => role_of(v.role),
                        _ => NodeRole::Unknown,
                    },
                    last_seen_ms: hb.peer.last_heard.map(age),
                    incarnation: hb.peer.incarnation.map(|i| format!("{:016x}", i.get())),
                },
            ];
            let links = self
                .cfg
                .links
                .iter()
                .zip(&hb.links)
                .map(|(l, s)| {
                    let c = &s.counters;
                    LinkReport {
                        name: l.name.clone(),
                        state: match s.state {
                            LinkState::Up => RLink::Up,
                            LinkState::Warn => RLink::Warn,
                            LinkState::Down => RLink::Down,
                            LinkState::Unknown => RLink::Unknown,
                        },
                        last_seen_ms: s.last_heard.map(age),
                        rtt_us: s.rtt.map(|r| r.0.saturating_mul(1000)),
                        loss_pct: self.link_loss.get(l.name.as_str()).map(|x| x * 100.0),
                        packets_in: c.accepted,
                        packets_out: c.sent,
                        dropped: drops(&c.drops),
                    }
                })
                .collect();
            let lease = self.last_lock.as_ref().map(|b| LeaseReport {
                device: self.cfg.lease.device.display().to_string(),
                holder: (b.status == LockStatus::Locked)
                    .then(|| String::from_utf8_lossy(b.nodename.as_bytes()).into_owned()),
                counter: u64::try_from(b.count).unwrap_or(0),
                remaining_ms: self.engine.lease_valid_until().map(|v| {
                    i64::try_from(v.0).unwrap_or(i64::MAX) - i64::try_from(now.0).unwrap_or(0)
                }),
                age_ms: self.last_lock_at.map(age),
            });
            let drbd = self.drbd_name.as_ref().map(|res| {
                let mut r = DrbdReport {
                    resource: res.clone(),
                    role: "Unknown".into(),
                    disk: "Unknown".into(),
                    peer_disk: "Unknown".into(),
                    connection: "Unknown".into(),
                    sync_pct: None,
                    split_brain: self
                        .split_brain
                        .as_ref()
                        .map(|seen| split_brain_advice(res, seen)),
                };
                if let Some(c) = drbd.and_then(|v| v.cluster()).filter(|c| c.ready()) {
                    if let Some(x) = c.resource(res) {
                        r.role = x
                            .role
                            .as_ref()
                            .map_or("Unknown".into(), ToString::to_string);
                        if let Some(d) = x.devices.values().next() {
                            r.disk = d
                                .disk
                                .as_ref()
                                .map_or("Unknown".into(), ToString::to_string);
                        }
                        if let Some(conn) = x.connections.values().next() {
                            r.connection = conn
                                .state
                                .as_ref()
                                .map_or("Unknown".into(), ToString::to_string);
                            if let Some(pd) = conn.peer_devices.values().next() {
                                r.peer_disk = pd
                                    .peer_disk
                                    .as_ref()
                                    .map_or("Unknown".into(), ToString::to_string);
                                r.sync_pct = pd.done;
                            }
                        }
                    }
                }
                r
            });
            let resources = self
                .cfg
                .resources
                .iter()
                .zip(self.engine.resources())
                .zip(&self.res_info)
                .zip(&self.execs)
                .map(|(((c, st), info), exec)| ResourceReport {
                    name: c.name.clone(),
                    agent: exec.type_name(),
                    kind: format!("{:?}", c.kind).to_lowercase(),
                    state: if self.maintenance {
                        ResourceState::Unmanaged
                    } else {
                        match (info.running_op, st.started) {
                            (Some(Op::Start | Op::Promote), _) => ResourceState::Starting,
                            (Some(Op::Stop | Op::Demote), _) => ResourceState::Stopping,
                            _ if st.banned => ResourceState::Blocked,
                            (_, true) => ResourceState::Running,
                            _ if st.fail_count >= self.engine.config().migration_threshold => {
                                ResourceState::Failed
                            }
                            _ => ResourceState::Stopped,
                        }
                    },
                    node: st.started.then(|| me.clone()),
                    fail_counts: if st.fail_count > 0 {
                        [(me.clone(), st.fail_count)].into_iter().collect()
                    } else {
                        BTreeMap::new()
                    },
                    last_failure: info.last_failure.as_ref().map(|(why, at)| FailureReport {
                        node: me.clone(),
                        op: info.last_failed_op.map_or(String::new(), |o| o.to_string()),
                        reason: why.clone(),
                        age_ms: unix.saturating_sub(*at),
                    }),
                    monitor_interval_ms: Some(c.monitor_interval.0),
                })
                .collect();
            let moves = self
                .moved
                .as_ref()
                .map(|(to, until)| MoveReport {
                    to: to.clone(),
                    remaining_ms: until.map(|u| u.0.saturating_sub(now.0)),
                })
                .into_iter()
                .collect();
            let fencing = FencingReport {
                state: match self.engine.fence_state() {
                    FenceState::Idle => RFence::Idle,
                    FenceState::InFlight(_) => RFence::Fencing,
                    FenceState::Done => RFence::PeerFenced,
                    FenceState::Failed => RFence::FailedWaitingConfirm,
                },
                target: Some(peer.clone()),
                level: match self.engine.fence_state() {
                    FenceState::InFlight(l) => Some(l),
                    _ => None,
                },
                age_ms: None,
            };
            let transitions = self
                .transitions
                .iter()
                .rev()
                .take(crate::cli::proto::MAX_TRANSITIONS)
                .rev()
                .map(|t| RTransition {
                    unix_ms: t.at_unix_ms,
                    text: t.text.clone(),
                })
                .collect();
            StatusReport {
                cluster: self.cfg.cluster.name.clone(),
                node: me.clone(),
                generated_unix_ms: unix,
                version: env!("CARGO_PKG_VERSION").to_string(),
                nodes,
                links,
                lease,
                drbd,
                resources,
                migration_threshold: self.engine.config().migration_threshold,
                attributes: BTreeMap::new(),
                maintenance: self.maintenance,
                moves,
                fencing,
                config: ConfigReport {
                    hash: self.cfg.hash.to_string(),
                    peer_hash: self.peer_view.map(|v| v.config.to_string()),
                },
                dropped: drops(&hb.totals.drops),
                transitions,
            }
        }
    }
}

/// DRBD fencing (`hapair fence-peer`) and split brain.
impl Daemon {
    fn peer_liveness(&self) -> crate::fence_peer::Liveness {
        use crate::fence_peer::Liveness;
        match self.peer_state {
            PeerState::Alive => Liveness::Alive,
            PeerState::Dead => Liveness::Dead,
            PeerState::Unknown => Liveness::Unknown,
        }
    }

    /// The handler's call: the facts for its verdict. The first call of an
    /// episode, on the lease holder with the peer alive, forwards an
    /// outdate request to the peer.
    fn on_fence_peer(
        &mut self,
        resource: &str,
        unfence: bool,
    ) -> crate::cli::proto::ControlResponse {
        use crate::cli::proto::ControlResponse;
        use crate::fence_peer::{Facts, Liveness, Outdate};
        if self.drbd_name.as_deref() != Some(resource) {
            return ControlResponse::error(format!(
                "hapair does not manage DRBD resource {resource:?}"
            ));
        }
        let peer = self.cfg.nodes[self.peer()].name.clone();
        if unfence {
            if self.fence_episode.take().is_some() {
                self.note(format!(
                    "DRBD {resource}: unfence: {peer}'s fencing record cleared"
                ));
            }
            return ControlResponse::ok(format!("fencing record of {peer} cleared"));
        }
        let now = self.clock.now();
        let stale = self.fence_episode.as_ref().is_some_and(|e| {
            e.outdate != Outdate::Done && now >= e.since.plus(FENCE_EPISODE_RETRY)
        });
        if stale {
            self.fence_episode = None;
        }
        if self.fence_episode.is_none() {
            self.note(format!(
                "DRBD {resource}: fence-peer handler called: DRBD lost {peer}"
            ));
            self.fence_episode = Some(FenceEpisode {
                since: now,
                outdate: Outdate::NotAsked,
            });
        }
        let lease_held_here = self.engine.summary(now).holds_lease;
        let liveness = self.peer_liveness();
        if liveness == Liveness::Alive
            && lease_held_here
            && self
                .fence_episode
                .as_ref()
                .is_some_and(|e| e.outdate == Outdate::NotAsked)
        {
            if let Some(e) = &mut self.fence_episode {
                e.outdate = Outdate::Pending;
            }
            self.forward(RequestKind::Outdate);
            self.note(format!(
                "DRBD {resource}: {peer} is alive on the heartbeat: asking it to outdate itself"
            ));
        }
        let facts = Facts {
            peer: peer.clone(),
            peer_liveness: liveness,
            peer_active: self.peer_status().active,
            lease_held_here,
            peer_fenced: self.engine.fence_state() == crate::engine::FenceState::Done,
            outdate: self
                .fence_episode
                .as_ref()
                .map(|e| e.outdate.clone())
                .unwrap_or_default(),
        };
        if let crate::fence_peer::Verdict::Exit(code, why) =
            crate::fence_peer::decide(&facts, false)
        {
            tracing::info!(resource, code = code.exit_code(), "fence-peer: {why}");
        }
        ControlResponse {
            ok: true,
            fence: Some(facts),
            ..ControlResponse::default()
        }
    }

    /// The peer's handler asked us to outdate our DRBD data: only while
    /// this node runs nothing and does not hold the lease; DRBD itself
    /// refuses while connected (retried for a while: it may not have seen
    /// the cut yet) or while Primary.
    fn outdate_for_peer(&mut self) {
        let peer = self.cfg.nodes[self.peer()].name.clone();
        let Some(res) = self.drbd_name.clone() else {
            self.note(format!(
                "{peer} asked to outdate DRBD, but there is no DRBD here"
            ));
            self.forward(RequestKind::OutdateRefused);
            return;
        };
        let now = self.clock.now();
        let s = self.engine.summary(now);
        if s.phase != Phase::Idle || s.holds_lease {
            self.note(format!(
                "{peer} asked to outdate DRBD {res}: refused, this node is {:?}{}",
                s.phase,
                if s.holds_lease {
                    " and holds the lease"
                } else {
                    ""
                }
            ));
            self.forward(RequestKind::OutdateRefused);
            return;
        }
        self.note(format!(
            "{peer} asks to outdate DRBD {res}: drbdadm outdate {res}"
        ));
        let tx = self.done_tx.clone();
        let view = self.execs.iter().find_map(|e| match e {
            Executor::Drbd(d) => Some(d.view()),
            _ => None,
        });
        tokio::spawn(async move {
            let admin = drbd::admin::Admin::new(drbd::admin::AdminConfig::default())
                .with_timeout(Duration::from_secs(10));
            let until = tokio::time::Instant::now() + OUTDATE_TRYING;
            // first let DRBD here see the cut too: an outdate while still
            // Connected is refused, or (8.4) taken and dropped again
            if let Some(v) = &view {
                let mut rx = v.clone();
                while drbd_connected(&rx.borrow_and_update(), &res) {
                    if !matches!(
                        tokio::time::timeout_at(until, rx.changed()).await,
                        Ok(Ok(()))
                    ) {
                        break;
                    }
                }
            }
            let result = loop {
                let done = match admin.outdate(&res).await {
                    // DRBD 8.4 may accept the outdate in the moment before
                    // it notices the cut and drop it again: the answer is
                    // what the events stream shows afterwards
                    Ok(_) => match &view {
                        Some(v) => local_disk_becomes_outdated(v.clone(), &res).await,
                        None => false,
                    },
                    Err(e) => {
                        tracing::info!("drbdadm outdate {res}: {e}");
                        false
                    }
                };
                match done {
                    true => break Ok(()),
                    false if tokio::time::Instant::now() >= until => {
                        break Err(format!(
                            "drbdadm outdate {res}: the local disk did not stay Outdated"
                        ));
                    }
                    false => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            };
            let _ = tx.send(match result {
                Ok(()) => Done::Outdate {
                    ok: true,
                    detail: String::new(),
                },
                Err(detail) => Done::Outdate { ok: false, detail },
            });
        });
    }

    fn peer_outdate_answer(&mut self, outdated: bool) {
        use crate::fence_peer::Outdate;
        let peer = self.cfg.nodes[self.peer()].name.clone();
        match &mut self.fence_episode {
            Some(e) if e.outdate == Outdate::Pending => {
                e.outdate = if outdated {
                    Outdate::Done
                } else {
                    Outdate::Refused(format!(
                        "{peer} refused or its `drbdadm outdate` failed (see its log)"
                    ))
                };
                self.note(format!(
                    "{peer} {}",
                    if outdated {
                        "outdated its DRBD data"
                    } else {
                        "did NOT outdate its DRBD data"
                    }
                ));
            }
            _ => self.note(format!(
                "{peer} answered an outdate request this node no longer waits for"
            )),
        }
    }

    /// The DRBD connection is back: the fencing episode is over, and so
    /// is a split brain.
    fn on_drbd_connected(&mut self, connected: bool) {
        if !connected {
            return;
        }
        if self.fence_episode.take().is_some() {
            self.note("DRBD reconnected: fencing episode over".into());
        }
        if self.split_brain.take().is_some() {
            self.note("DRBD reconnected: split brain resolved".into());
            self.step(Input::Health(true));
        }
    }

    /// At start, DRBD not connected: a split brain that happened before we
    /// started left no event on our stream, only kernel messages. An
    /// unresolved one found there is treated as one seen live.
    async fn check_kernel_log(&mut self, res: &str, minor: Option<u32>) {
        let r = res.to_owned();
        let found = tokio::task::spawn_blocking(move || {
            crate::runtime::drbd::kernel_split_brain(&r, minor)
        })
        .await;
        match found {
            Ok(Ok(Some(l))) if l.split_brain == drbd::monitor::SplitBrain::Unresolved => {
                self.on_split_brain(&format!(
                    "the kernel log says \"{}: Split-Brain detected but unresolved\" (before \
                     hapair started) and DRBD is not connected",
                    l.object
                ));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(
                "cannot read the kernel log (/dev/kmsg) for a past DRBD split brain: {e}"
            ),
            Err(e) => tracing::warn!("kernel log check failed: {e}"),
        }
    }

    /// An unresolved split brain: said loudly with the manual recovery
    /// (drbd.md 4.3), and this node refuses to start the stack until DRBD
    /// has reconnected. Nothing is discarded automatically.
    fn on_split_brain(&mut self, seen: &str) {
        let Some(res) = self.drbd_name.clone() else {
            return;
        };
        if self.split_brain.is_some() {
            return;
        }
        self.split_brain = Some(seen.to_string());
        let msg = split_brain_advice(&res, seen);
        tracing::error!("{msg}");
        self.note(msg);
        self.step(Input::Health(false));
    }
}

/// The split-brain message with drbd.md's manual recovery commands.
pub fn split_brain_advice(res: &str, seen: &str) -> String {
    format!(
        "DRBD SPLIT BRAIN on {res}: {seen}. hapair will not start the stack here and discards \
         nothing. Pick the victim (the node whose changes since the split are thrown away) and \
         run there: `drbdadm disconnect {res}; drbdadm secondary {res}; drbdadm -- \
         --discard-my-data connect {res}` (DRBD 9: `drbdadm connect --discard-my-data {res}`), \
         after stopping what uses the device; on the survivor, if StandAlone: `drbdadm \
         disconnect {res}; drbdadm connect {res}`"
    )
}

/// Whether some connection of `res` is Connected in the monitor's view.
/// The minor of `res`'s first volume, once seen.
fn drbd_minor(v: &drbd::monitor::StateView, res: &str) -> Option<u32> {
    v.cluster()
        .and_then(|c| c.resource(res))
        .and_then(|r| r.devices.values().find_map(|d| d.minor))
}

fn drbd_connected(v: &drbd::monitor::StateView, res: &str) -> bool {
    v.cluster()
        .filter(|c| c.ready())
        .and_then(|c| c.resource(res))
        .is_some_and(|r| {
            r.connections
                .values()
                .any(|c| c.state == Some(drbd::events::ConnState::Connected))
        })
}

/// Waits up to 2 s for the events stream to show `res`'s local disk
/// Outdated, and true if it does and is not Connected at that moment.
async fn local_disk_becomes_outdated(
    mut rx: watch::Receiver<drbd::monitor::StateView>,
    res: &str,
) -> bool {
    let check = |v: &drbd::monitor::StateView| {
        v.cluster().filter(|c| c.ready()).is_some_and(|c| {
            drbd::promote::View::of(c, res, false, false).local_disk
                == Some(drbd::events::DiskState::Outdated)
        }) && !drbd_connected(v, res)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        if check(&rx.borrow_and_update()) {
            // stable for a moment (8.4 may flip it back at once)
            tokio::time::sleep(Duration::from_millis(300)).await;
            return check(&rx.borrow());
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            _ => return false,
        }
    }
}
