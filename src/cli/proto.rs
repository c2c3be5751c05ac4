//! The control-socket protocol: JSON lines over a Unix stream socket.
//!
//! One request per line, one response per line; a connection may carry
//! several requests. `watch` turns the connection into a stream of status
//! responses (one per change, at most one a second) until the client closes.
//!
//! ```text
//! → {"cmd":"status"}
//! ← {"ok":true,"status":{...}}
//! → {"cmd":"move","to":"beta","for_ms":600000}
//! ← {"ok":true,"message":"move to beta for 10m"}
//! → {"cmd":"nope"}
//! ← {"ok":false,"error":"malformed request: unknown variant `nope`, ..."}
//! ```
//!
//! The [`StatusReport`] is plain data with `Default` everywhere: the daemon
//! fills what it knows and leaves the rest empty (`None`, empty lists). Ages
//! and remaining times are milliseconds relative to
//! [`StatusReport::generated_unix_ms`], so a client needs no clock of its own.
//! Enums read unknown values as `Unknown`, so an older client still shows a
//! newer daemon's report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Default path of the daemon's control socket.
pub const DEFAULT_SOCKET: &str = "/run/hapair/hapair.sock";

/// Longest request or response line accepted, newline included.
pub const MAX_LINE: usize = 64 * 1024;

/// A request, one JSON object per line, tagged by `cmd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ControlRequest {
    /// The current status, once.
    Status,
    /// Status objects as they change, until the client closes.
    Watch,
    /// Put a node in standby: it runs nothing.
    Standby {
        /// Node name.
        node: String,
    },
    /// Take a node out of standby.
    Online {
        /// Node name.
        node: String,
    },
    /// Prefer `to` for the stack, for `for_ms` milliseconds or until `unmove`.
    Move {
        /// Target node.
        to: String,
        /// Expiry; `None` = until `unmove`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_ms: Option<u64>,
    },
    /// Clear a move.
    Unmove,
    /// Clear fail counts and failure bans of one resource, or of all.
    Cleanup {
        /// Resource name; `None` = all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
    },
    /// Stop (`true`) or resume (`false`) managing resources.
    Maintenance {
        /// On or off.
        on: bool,
    },
    /// The operator confirms `node` is powered off (every fence device failed).
    FenceConfirm {
        /// The node that is off.
        node: String,
    },
    /// DRBD's fence-peer handler (`hapair fence-peer`): the facts for its
    /// verdict; the first call of an episode asks the peer to outdate
    /// itself. With `unfence`, the episode's record is cleared.
    FencePeer {
        /// The DRBD resource.
        resource: String,
        /// `--unfence` (after-resync-target / unfence-peer).
        #[serde(default)]
        unfence: bool,
    },
}

impl ControlRequest {
    /// Whether the request changes anything (it is then logged with who sent it).
    pub fn is_mutating(&self) -> bool {
        !matches!(self, ControlRequest::Status | ControlRequest::Watch)
    }
}

/// A response line: `{"ok":true,...}` or `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ControlResponse {
    /// Whether the request was accepted.
    pub ok: bool,
    /// Why not, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the daemon did, in words, for a human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The status, for `status` and each `watch` line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Box<StatusReport>>,
    /// The facts for `fence-peer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<crate::fence_peer::Facts>,
}

impl ControlResponse {
    /// An accepted request, with what was done.
    pub fn ok(message: impl Into<String>) -> Self {
        ControlResponse {
            ok: true,
            message: Some(message.into()),
            ..Default::default()
        }
    }

    /// A refused request or an error.
    pub fn error(error: impl Into<String>) -> Self {
        ControlResponse {
            ok: false,
            error: Some(error.into()),
            ..Default::default()
        }
    }

    /// A status answer.
    pub fn status(report: StatusReport) -> Self {
        ControlResponse {
            ok: true,
            status: Some(Box::new(report)),
            ..Default::default()
        }
    }
}

/// Everything `hapair status` shows: what `crm_mon -fA -1` would.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusReport {
    /// Cluster name from the config.
    pub cluster: String,
    /// The node that answered.
    pub node: String,
    /// Wall-clock time the report was made (ms since the Unix epoch).
    pub generated_unix_ms: u64,
    /// Daemon version.
    pub version: String,
    /// Both nodes (this one first).
    pub nodes: Vec<NodeReport>,
    /// Heartbeat links.
    pub links: Vec<LinkReport>,
    /// The sfex lease, if the daemon has read it.
    pub lease: Option<LeaseReport>,
    /// DRBD, or `None` when the stack has no DRBD.
    pub drbd: Option<DrbdReport>,
    /// The stack, bottom first.
    pub resources: Vec<ResourceReport>,
    /// Failures on one node before the stack leaves it (`migration-threshold`).
    pub migration_threshold: u32,
    /// Node attributes (health, ping connectivity...): node → name → value.
    pub attributes: BTreeMap<String, BTreeMap<String, String>>,
    /// Resources are not managed (the lease is still renewed).
    pub maintenance: bool,
    /// Active operator moves.
    pub moves: Vec<MoveReport>,
    /// Fencing of the peer.
    pub fencing: FencingReport,
    /// The config hashes of both nodes.
    pub config: ConfigReport,
    /// Dropped heartbeat packets by reason, all links together.
    pub dropped: BTreeMap<String, u64>,
    /// The last transitions (newest last, at most [`MAX_TRANSITIONS`]).
    pub transitions: Vec<Transition>,
}

/// How many transitions a report carries.
pub const MAX_TRANSITIONS: usize = 20;

/// Membership state of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeState {
    /// Alive and allowed to run the stack.
    Online,
    /// Alive, but put in standby by the operator.
    Standby,
    /// Not heard on any link.
    Offline,
    /// Not known (yet), or a value this client does not know.
    #[default]
    #[serde(other)]
    Unknown,
}

/// What a node does for the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// Runs the stack and holds the lease.
    Primary,
    /// Stands by, ready to take over.
    Secondary,
    /// Taking the lease or starting the stack.
    Starting,
    /// Stopping the stack.
    Stopping,
    /// Runs nothing and will not (standby, banned, no lease access).
    Stopped,
    /// Fenced, or rebooting itself.
    Fenced,
    /// Not known.
    #[default]
    #[serde(other)]
    Unknown,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeReport {
    /// Node name.
    pub name: String,
    /// Membership state.
    pub state: NodeState,
    /// Role in the stack.
    pub role: NodeRole,
    /// Time since the last authentic packet from it (`None` for this node, or never).
    pub last_seen_ms: Option<u64>,
    /// Its current incarnation (hex), if known.
    pub incarnation: Option<String>,
}

/// State of a heartbeat link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkState {
    /// Packets arrive within `warntime`.
    Up,
    /// Late packets (past `warntime`, within `deadtime`) or heavy loss.
    Warn,
    /// Nothing within `deadtime`.
    Down,
    /// Not known.
    #[default]
    #[serde(other)]
    Unknown,
}

/// One heartbeat link.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LinkReport {
    /// Link name from the config.
    pub name: String,
    /// State.
    pub state: LinkState,
    /// Time since the last authentic packet on it.
    pub last_seen_ms: Option<u64>,
    /// Round-trip time, microseconds.
    pub rtt_us: Option<u64>,
    /// Recent loss, percent.
    pub loss_pct: Option<f64>,
    /// Packets received.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Packets dropped on this link, by reason (bad tag, replay, ...).
    pub dropped: BTreeMap<String, u64>,
}

/// The sfex lease as last read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaseReport {
    /// The lease device.
    pub device: String,
    /// Holder, `None` when unlocked.
    pub holder: Option<String>,
    /// The holder's counter.
    pub counter: u64,
    /// Time left before the lease runs out (negative: ran out that long ago).
    pub remaining_ms: Option<i64>,
    /// Time since the last read or renewal.
    pub age_ms: Option<u64>,
}

/// DRBD as seen from this node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DrbdReport {
    /// Resource name.
    pub resource: String,
    /// Local role (Primary/Secondary), as DRBD spells it.
    pub role: String,
    /// Local disk state (UpToDate, ...).
    pub disk: String,
    /// Peer's disk state.
    pub peer_disk: String,
    /// Connection state (Connected, StandAlone, ...).
    pub connection: String,
    /// Resync progress, when syncing.
    pub sync_pct: Option<f64>,
    /// An unresolved split brain, with the manual recovery commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_brain: Option<String>,
}

/// State of a resource on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceState {
    /// Running (promoted, for DRBD).
    Running,
    /// Stopped.
    Stopped,
    /// Start in flight.
    Starting,
    /// Stop in flight.
    Stopping,
    /// Failed; recovery pending or impossible here.
    Failed,
    /// Banned here until cleanup (hard/fatal error).
    Blocked,
    /// Not managed (maintenance).
    Unmanaged,
    /// Not known.
    #[default]
    #[serde(other)]
    Unknown,
}

/// The newest failure of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FailureReport {
    /// Node it failed on.
    pub node: String,
    /// Operation (start, monitor, stop...).
    pub op: String,
    /// Reason: the agent's exit code in words and its exit reason.
    pub reason: String,
    /// Time since the failure.
    pub age_ms: u64,
}

/// One resource of the stack.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceReport {
    /// Name.
    pub name: String,
    /// Agent (`ocf:heartbeat:pgsql`, `systemd:nfs-server`, `builtin:fs`...).
    pub agent: String,
    /// Kind: drbd, filesystem, address, service.
    pub kind: String,
    /// State on the node that runs the stack (or this node).
    pub state: ResourceState,
    /// Node it runs on, if anywhere.
    pub node: Option<String>,
    /// Fail counts by node.
    pub fail_counts: BTreeMap<String, u32>,
    /// Newest failure.
    pub last_failure: Option<FailureReport>,
    /// Monitor period.
    pub monitor_interval_ms: Option<u64>,
}

/// An operator move.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MoveReport {
    /// Preferred node.
    pub to: String,
    /// Time left, `None` = until `unmove`.
    pub remaining_ms: Option<u64>,
}

/// Fencing state of the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FenceState {
    /// Nothing to do.
    #[default]
    Idle,
    /// A fence level is in flight ([`FencingReport::level`]).
    Fencing,
    /// Every level failed; waiting for `hapair fence confirm`.
    FailedWaitingConfirm,
    /// The peer is confirmed off.
    PeerFenced,
    /// Not known.
    #[serde(other)]
    Unknown,
}

/// Fencing of the peer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FencingReport {
    /// State.
    pub state: FenceState,
    /// The node being (or that was) fenced.
    pub target: Option<String>,
    /// Level in flight, or the last tried.
    pub level: Option<u8>,
    /// Time since the state was entered.
    pub age_ms: Option<u64>,
}

/// Config hashes; a mismatch means the nodes run different configs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigReport {
    /// This node's config hash (hex).
    pub hash: String,
    /// The peer's, as its heartbeats carry it.
    pub peer_hash: Option<String>,
}

impl ConfigReport {
    /// `Some(true)` when both hashes are known and equal.
    pub fn matches(&self) -> Option<bool> {
        self.peer_hash.as_ref().map(|p| *p == self.hash)
    }
}

/// A state change, for the log tail in the status.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Transition {
    /// Wall-clock time (ms since the Unix epoch).
    pub unix_ms: u64,
    /// What happened, in words.
    pub text: String,
}
