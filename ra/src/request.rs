//! What the caller asks for: one action of one agent for one resource.
//! Pure data, checked when the environment is built ([`crate::env`]).
//!
//! This is the runtime's half of the engine's `RunAgent{res, op, timeout}`;
//! the answer is [`crate::AgentResult`] (`AgentDone{res, op, rc, elapsed}`),
//! keyed by the same [`OpKey`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::agent::{Action, Agent};
use crate::exit::{OpKind, Role};

/// Identifies an operation the way Pacemaker keys its history: resource,
/// action, interval (`db_monitor_10000`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct OpKey {
    /// The resource name (`OCF_RESOURCE_INSTANCE`).
    pub resource: String,
    /// The action.
    pub action: Action,
    /// The interval in milliseconds (0: one-shot, or a probe).
    pub interval_ms: u64,
}

impl fmt::Display for OpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}_{}", self.resource, self.action, self.interval_ms)
    }
}

/// One clone instance in a notification list: the instance name and the
/// node it is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// Resource instance name, e.g. `drbd0:1`.
    pub resource: String,
    /// Node name (`uname`).
    pub uname: String,
}

impl Instance {
    /// An instance of `resource` on node `uname`.
    pub fn new(resource: &str, uname: &str) -> Instance {
        Instance {
            resource: resource.to_string(),
            uname: uname.to_string(),
        }
    }
}

/// `pre` or `post`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyType {
    /// Before the operation.
    Pre,
    /// After the operation.
    Post,
}

/// The clone operation being notified about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyOp {
    /// Instances are being started.
    Start,
    /// Instances are being stopped.
    Stop,
    /// An instance is being promoted.
    Promote,
    /// An instance is being demoted.
    Demote,
}

/// The notification variables for a `notify` action (ocf.md 2.4). The
/// lists describe the transition, as the caller computed it; they are
/// passed in the given order. Promoted/unpromoted lists are also passed
/// under the legacy master/slave names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notify {
    /// `pre` or `post`.
    pub kind: NotifyType,
    /// `start`, `stop`, `promote` or `demote`.
    pub operation: NotifyOp,
    /// Instances being started.
    pub start: Vec<Instance>,
    /// Instances being stopped.
    pub stop: Vec<Instance>,
    /// Active instances.
    pub active: Vec<Instance>,
    /// Instances being promoted.
    pub promote: Vec<Instance>,
    /// Instances being demoted.
    pub demote: Vec<Instance>,
    /// Promoted instances (also `notify_master_*`).
    pub promoted: Vec<Instance>,
    /// Unpromoted instances (also `notify_slave_*`).
    pub unpromoted: Vec<Instance>,
    /// Inactive instance names (no uname list).
    pub inactive: Vec<String>,
    /// Nodes that could run an instance.
    pub available_unames: Vec<String>,
    /// All nodes.
    pub all_unames: Vec<String>,
    /// All hosts (for guest/remote nodes, the host under each node).
    pub all_hosts: Vec<String>,
}

impl Notify {
    /// A notification with every list empty.
    pub fn new(kind: NotifyType, operation: NotifyOp) -> Notify {
        Notify {
            kind,
            operation,
            start: Vec::new(),
            stop: Vec::new(),
            active: Vec::new(),
            promote: Vec::new(),
            demote: Vec::new(),
            promoted: Vec::new(),
            unpromoted: Vec::new(),
            inactive: Vec::new(),
            available_unames: Vec::new(),
            all_unames: Vec::new(),
            all_hosts: Vec::new(),
        }
    }
}

/// Clone meta attributes, passed as `OCF_RESKEY_CRM_meta_*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloneMeta {
    /// This instance's number (`clone`).
    pub instance: u32,
    /// `clone_max`.
    pub clone_max: u32,
    /// `clone_node_max`.
    pub clone_node_max: u32,
    /// `globally_unique`.
    pub globally_unique: bool,
    /// `notify`: the clone wants notifications.
    pub notify: bool,
    /// `Some((promoted_max, promoted_node_max))` for a promotable clone:
    /// passes `promotable=true`, and both the new `promoted_*` and the
    /// legacy `master_*` names.
    pub promotable: Option<(u32, u32)>,
}

impl CloneMeta {
    /// A two-node promotable clone instance as DRBD-style agents expect:
    /// `clone_max=2 clone_node_max=1 promoted_max=1 promoted_node_max=1
    /// notify=true`.
    pub fn promotable_pair(instance: u32) -> CloneMeta {
        CloneMeta {
            instance,
            clone_max: 2,
            clone_node_max: 1,
            globally_unique: false,
            notify: true,
            promotable: Some((1, 1)),
        }
    }
}

/// One action to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    /// The resource name (`OCF_RESOURCE_INSTANCE`).
    pub resource: String,
    /// The agent.
    pub agent: Agent,
    /// The action.
    pub action: Action,
    /// Interval of a recurring operation (a monitor with zero is a probe).
    pub interval: Duration,
    /// How long the agent may run before its process group is killed.
    pub timeout: Duration,
    /// Instance parameters (`OCF_RESKEY_<name>`).
    pub params: BTreeMap<String, String>,
    /// Meta attributes (`OCF_RESKEY_CRM_meta_<name>`, `-` becoming `_`).
    /// `interval`, `timeout`, `name`, `on_node`, the clone and notify
    /// attributes are computed from the request and win over these.
    pub meta: BTreeMap<String, String>,
    /// `OCF_CHECK_LEVEL` (0, 10, 20) for `monitor` and `validate-all`.
    pub check_level: Option<u32>,
    /// Clone meta attributes, for a clone instance.
    pub clone: Option<CloneMeta>,
    /// Notification variables, for `notify`.
    pub notify: Option<Notify>,
    /// The role a recurring monitor expects (how its rc is read).
    pub expect: Role,
    /// Run the agent inside this network namespace (`ip netns exec NS`),
    /// with the same environment and process handling.
    pub netns: Option<String>,
}

impl Request {
    /// A request with no parameters, interval 0, no check level.
    pub fn new(resource: &str, agent: Agent, action: Action, timeout: Duration) -> Request {
        Request {
            resource: resource.to_string(),
            agent,
            action,
            interval: Duration::ZERO,
            timeout,
            params: BTreeMap::new(),
            meta: BTreeMap::new(),
            check_level: None,
            clone: None,
            notify: None,
            expect: Role::Started,
            netns: None,
        }
    }

    /// Adds an instance parameter.
    pub fn param(mut self, name: &str, value: &str) -> Request {
        self.params.insert(name.to_string(), value.to_string());
        self
    }

    /// Adds a meta attribute.
    pub fn meta(mut self, name: &str, value: &str) -> Request {
        self.meta.insert(name.to_string(), value.to_string());
        self
    }

    /// Sets the interval (recurring operation).
    pub fn interval(mut self, interval: Duration) -> Request {
        self.interval = interval;
        self
    }

    /// Sets `OCF_CHECK_LEVEL`.
    pub fn check_level(mut self, level: u32) -> Request {
        self.check_level = Some(level);
        self
    }

    /// Sets the role a recurring monitor expects.
    pub fn expect(mut self, role: Role) -> Request {
        self.expect = role;
        self
    }

    /// Sets the clone meta attributes.
    pub fn clone_meta(mut self, clone: CloneMeta) -> Request {
        self.clone = Some(clone);
        self
    }

    /// Sets the notification variables.
    pub fn notify(mut self, notify: Notify) -> Request {
        self.notify = Some(notify);
        self
    }

    /// Runs the agent inside a network namespace.
    pub fn netns(mut self, ns: &str) -> Request {
        self.netns = Some(ns.to_string());
        self
    }

    /// A `monitor` with interval 0.
    pub fn is_probe(&self) -> bool {
        self.action == Action::Monitor && self.interval.is_zero()
    }

    /// The operation key.
    pub fn key(&self) -> OpKey {
        OpKey {
            resource: self.resource.clone(),
            action: self.action.clone(),
            interval_ms: millis(self.interval),
        }
    }

    /// How the result is to be read.
    pub fn op_kind(&self) -> OpKind {
        match &self.action {
            Action::Monitor if self.is_probe() => OpKind::Probe,
            Action::Monitor => OpKind::Monitor(self.expect),
            Action::Start => OpKind::Start,
            Action::Stop => OpKind::Stop,
            Action::Promote => OpKind::Promote,
            Action::Demote => OpKind::Demote,
            Action::Notify => OpKind::Notify,
            Action::ValidateAll => OpKind::ValidateAll,
            _ => OpKind::Other,
        }
    }
}

/// Whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_kinds() {
        let a: Agent = "ocf:heartbeat:Dummy".parse().unwrap();
        let r = Request::new("db", a, Action::Monitor, Duration::from_secs(20));
        assert!(r.is_probe());
        assert_eq!(r.op_kind(), OpKind::Probe);
        assert_eq!(r.key().to_string(), "db_monitor_0");
        let r = r.interval(Duration::from_secs(10)).expect(Role::Promoted);
        assert_eq!(r.op_kind(), OpKind::Monitor(Role::Promoted));
        assert_eq!(r.key().to_string(), "db_monitor_10000");
        let mut s = r.clone();
        s.action = Action::Stop;
        assert_eq!(s.op_kind(), OpKind::Stop);
    }
}
