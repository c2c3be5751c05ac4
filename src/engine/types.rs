//! The engine's inputs, actions and configuration.

use std::fmt;

use serde::Serialize;
pub use sfex::format::{LockBlock, NodeName};
pub use sfex::lease::{IoFailure, Millis};

/// A resource of the stack, by position (0 = bottom, started first).
pub type ResId = usize;

/// What a resource is; only DRBD gets special treatment (promotion rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    /// DRBD promoted on the primary: started by `promote`, stopped by `demote`.
    Drbd,
    /// A filesystem mount.
    Filesystem,
    /// A virtual IP address.
    Address,
    /// The service (database, NFS...).
    Service,
}

/// One resource of the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSpec {
    /// Name, for logs.
    pub name: String,
    /// Kind.
    pub kind: ResourceKind,
    /// Start (promote for DRBD) timeout.
    pub start_timeout: Millis,
    /// Stop (demote for DRBD) timeout.
    pub stop_timeout: Millis,
    /// Monitor period.
    pub monitor_interval: Millis,
    /// Monitor timeout.
    pub monitor_timeout: Millis,
}

/// Timing and policy of the engine. `validate` checks the lease timing rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// This node.
    pub me: NodeName,
    /// The peer.
    pub peer: NodeName,
    /// This node is the preferred one when both could run the stack.
    pub preferred: bool,
    /// sfex `lock_timeout`.
    pub lock_timeout: Millis,
    /// sfex `collision_timeout`.
    pub collision_timeout: Millis,
    /// Lease renewal period.
    pub monitor_interval: Millis,
    /// Clock-drift margin taken off the lease.
    pub margin: Millis,
    /// Worst lease I/O time we plan for.
    pub max_io: Millis,
    /// Time the whole stack needs to stop.
    pub stop_budget: Millis,
    /// Resources, bottom first.
    pub resources: Vec<ResourceSpec>,
    /// Failures of a resource on this node before it is moved away.
    pub migration_threshold: u32,
    /// Failures older than this are forgotten (all of a resource together).
    pub failure_timeout: Option<Millis>,
    /// Number of fence levels configured for the peer (0: none).
    pub fence_levels: u8,
    /// How long the peer's lease counter must stand still before we fence it.
    pub fence_delay: Millis,
    /// How long the non-preferred node waits before starting when both are idle.
    pub start_delay: Millis,
    /// Pause before trying again after the lease could not be taken.
    pub retry_interval: Millis,
}

/// A configuration that breaks a lease timing rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// The primary could not stop before a peer may take the lease.
    #[error(
        "monitor_interval ({monitor}) + max_io ({max_io}) + stop_budget ({stop}) + margin \
         ({margin}) must be less than lock_timeout ({lock}): the primary could not stop \
         before a peer may take the lease"
    )]
    Stop {
        /// monitor_interval
        monitor: Millis,
        /// max_io
        max_io: Millis,
        /// stop_budget
        stop: Millis,
        /// margin
        margin: Millis,
        /// lock_timeout
        lock: Millis,
    },
    /// Collision detection could miss a concurrent claim.
    #[error("collision_timeout ({collision}) must be more than twice max_io ({max_io})")]
    Collision {
        /// collision_timeout
        collision: Millis,
        /// max_io
        max_io: Millis,
    },
}

impl EngineConfig {
    /// `collision_timeout > 2 * max_io`: collision detection must see any
    /// concurrent claim (sfex lease, `max_io`).
    fn lease_config_check(&self) -> Result<(), TimingError> {
        if self.collision_timeout <= self.max_io.plus(self.max_io) {
            return Err(TimingError::Collision {
                collision: self.collision_timeout,
                max_io: self.max_io,
            });
        }
        Ok(())
    }

    /// `monitor_interval + max_io + stop_budget + margin < lock_timeout`
    /// (architecture.md, "Lease timing").
    pub fn validate(&self) -> Result<(), TimingError> {
        self.lease_config_check()?;
        let sum = self
            .monitor_interval
            .plus(self.max_io)
            .plus(self.stop_budget)
            .plus(self.margin);
        if sum >= self.lock_timeout {
            return Err(TimingError::Stop {
                monitor: self.monitor_interval,
                max_io: self.max_io,
                stop: self.stop_budget,
                margin: self.margin,
                lock: self.lock_timeout,
            });
        }
        Ok(())
    }
}

/// An agent operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// start
    Start,
    /// stop
    Stop,
    /// monitor
    Monitor,
    /// promote (DRBD)
    Promote,
    /// demote (DRBD)
    Demote,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Monitor => "monitor",
            Op::Promote => "promote",
            Op::Demote => "demote",
        })
    }
}

/// Pacemaker's recovery classes for a failed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailClass {
    /// Restart locally (up to migration-threshold).
    Soft,
    /// This node cannot run the resource: move it away.
    Hard,
    /// No node can run it: stop, stay stopped until cleanup.
    Fatal,
}

/// The result of an agent operation (timeouts arrive as `Failed(Soft)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Success.
    Ok,
    /// Monitor: the resource is not running.
    NotRunning,
    /// Failure.
    Failed(FailClass),
}

/// DRBD disk states that matter for promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disk {
    /// Up to date.
    UpToDate,
    /// Consistent, freshness unknown.
    Consistent,
    /// Known stale.
    Outdated,
    /// Being synced or worse.
    Inconsistent,
    /// No disk / unknown.
    Unknown,
}

/// The DRBD view of this node (from `events2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DrbdView {
    /// Local disk.
    pub local: Disk,
    /// Peer's disk as seen from here.
    pub peer: Disk,
}

/// What we know of the peer (membership plus its heartbeat summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// Heard from on at least one link.
    pub alive: bool,
    /// The peer runs (or is starting/stopping) the stack or holds the lease.
    pub active: bool,
    /// The peer could run the stack (online, healthy, below its fail limits).
    pub eligible: bool,
}

/// Which node an operator request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// This node.
    Me,
    /// The peer.
    Peer,
}

/// Operator requests, as delivered to this node's engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Request {
    /// Put this node in standby (`true`) or online (`false`).
    Standby(bool),
    /// Prefer `to` until `until` (or for good). A move never keeps the stack
    /// off the only node that can run it.
    Move {
        /// Target.
        to: Side,
        /// Expiry.
        until: Option<Millis>,
    },
    /// Clear the move.
    Unmove,
    /// Clear fail counts (of one resource, or all).
    Cleanup(Option<ResId>),
    /// Stop managing resources (the lease is still renewed).
    Maintenance(bool),
    /// The operator confirms the peer is down (every fence device failed).
    FenceConfirm,
}

/// Inputs of [`super::Engine::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Time passed (call at least at [`super::Engine::next_wake`]).
    Tick,
    /// Membership or the peer's summary changed.
    Peer(PeerStatus),
    /// The lease read finished.
    LeaseRead(Result<LockBlock, IoFailure>),
    /// The lease write finished.
    LeaseWritten(Result<(), IoFailure>),
    /// New DRBD view.
    Drbd(DrbdView),
    /// An agent operation finished.
    AgentDone {
        /// Resource.
        res: ResId,
        /// Operation.
        op: Op,
        /// Result.
        outcome: Outcome,
    },
    /// A fence operation finished; `ok` means off and confirmed by status.
    FenceDone {
        /// Level used.
        level: u8,
        /// Confirmed off.
        ok: bool,
    },
    /// Node health (ping connectivity, disk check).
    Health(bool),
    /// An operator request.
    Operator(Request),
}

/// Actions for the runtime to carry out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Read the lock block; answer with `LeaseRead`.
    ReadLease,
    /// Write this lock block; answer with `LeaseWritten`.
    WriteLease(LockBlock),
    /// Run an agent operation; answer with `AgentDone`.
    RunAgent {
        /// Resource.
        res: ResId,
        /// Operation.
        op: Op,
        /// Timeout.
        timeout: Millis,
    },
    /// Fence the peer at this level; answer with `FenceDone`.
    Fence {
        /// Level (1-based).
        level: u8,
    },
    /// Reboot this node now: the stack could not be stopped in time.
    SelfFence,
    /// Something worth a log line / status entry.
    Log(Note),
}

/// Notable events, for logs and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Note {
    /// The lease was acquired.
    LeaseAcquired,
    /// The lease was lost.
    LeaseLost {
        /// Why.
        why: String,
    },
    /// The lease was released.
    LeaseReleased,
    /// The lease could not be taken.
    LeaseRefused {
        /// Why.
        why: String,
    },
    /// Promotion refused by the safety rules.
    PromoteRefused {
        /// Why.
        why: String,
    },
    /// A resource failed.
    ResourceFailed {
        /// Resource.
        res: ResId,
        /// Operation.
        op: Op,
        /// Fail count now.
        fail_count: u32,
    },
    /// The stack runs here.
    StackRunning,
    /// The stack is stopped here.
    StackStopped,
    /// The peer was fenced.
    PeerFenced,
    /// Every fence level failed: waiting for lease expiry or `fence confirm`.
    FenceFailed,
    /// The lease deadline is near and the stack is not down: stopping now.
    EmergencyStop,
}
