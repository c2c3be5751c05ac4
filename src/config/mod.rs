//! The configuration file, `/etc/hapair/hapair.toml`: text in, a validated,
//! typed [`Config`] out (or every problem found, each with its key path and
//! line). Pure apart from [`load`], which reads the file; nothing here looks
//! at devices, interfaces, agents or the key file (that is `hapair
//! preflight`'s job), and nothing here starts anything.
//!
//! # The file
//!
//! One TOML file, the same on both nodes (the daemons compare a hash of its
//! bytes over the heartbeat and report a mismatch). Keys are `snake_case`.
//! Durations are strings in humantime units: `"200ms"`, `"10s"`, `"2min"`,
//! `"1h 30min"`; they count whole milliseconds. Paths must be absolute.
//! A key that is not listed below is an error, not silently ignored.
//!
//! ```toml
//! [cluster]
//! name = "pg-pair"                    # required; [A-Za-z0-9_.-]+; the cluster id on the wire
//! key_file = "/etc/hapair/authkey"    # heartbeat key file (hapair keygen)
//! state_dir = "/var/lib/hapair"       # fail counts, moves, audit log
//! socket = "/run/hapair/hapair.sock"  # operator control socket
//! admin_group = "haclient"            # group allowed on the control socket (besides root)
//!
//! [[node]]                            # exactly two
//! name = "alpha"                      # required; the node's `uname -n` unless `hapair run --node`
//! preferred = true                    # optional, default false; at most one node
//! [[node]]
//! name = "beta"
//!
//! [heartbeat]                         # optional; each key defaults as shown
//! keepalive = "100ms"                 # packet interval on each link (>= 10ms)
//! warntime = "500ms"                  # a link is "late" after this silence (keepalive..deadtime)
//! deadtime = "900ms"                  # a link is down after this silence (> 2 x keepalive)
//! initdead = "10s"                    # grace for a never-heard peer after start (>= deadtime)
//!
//! [[link]]                            # one or more (at most 8); two are strongly advised
//! name = "repl"                       # required, unique
//! alpha = "192.0.2.1:5405"            # one address:port per node, keyed by node name
//! beta = "192.0.2.2:5405"             # (both of the same family, IPv4 or IPv6)
//! interface = "eth1"                  # optional: bind to this device (SO_BINDTODEVICE)
//!
//! [lease]                             # the sfex lock on a small shared device
//! device = "/dev/disk/by-id/...-part1"  # required
//! index = 1                           # sfex lock index (>= 1), default 1
//! engine = "auto"                     # auto | uring | sync, default auto
//! monitor_interval = "2s"             # renewal period, default 2s
//! max_io = "1s"                       # slowest lease I/O planned for, default 1s
//! margin = "2s"                       # clock-rate drift margin, default 2s
//! collision_timeout = "2.5s"          # default 2 x max_io + max_io / 2 (must be > 2 x max_io)
//! lock_timeout = "20s"                # see below
//!
//! [policy]
//! migration_threshold = 3             # failures on a node before the stack moves away (>= 1), default 3
//! failure_timeout = "10min"           # optional: forget failures older than this; default never
//! start_delay = "5s"                  # the non-preferred node waits this long before starting, default 5s
//! retry_interval = "2s"               # pause after the lease could not be taken, default 2s
//! stop_budget = "30s"                 # time the whole stack needs to stop;
//!                                     # default: the sum of the resources' stop_timeout
//!
//! [self_fence]                        # how a primary that cannot stop in time reboots itself
//! mode = "auto"                       # auto (watchdog if watchdog_device exists, else reboot(2))
//!                                     # | watchdog | reboot | test-exit (tests only: the daemon
//!                                     # logs and exits with code 99; validate warns loudly)
//! watchdog_device = "/dev/watchdog"   # default /dev/watchdog
//! watchdog_timeout = "10s"            # whole seconds, default 10s
//!
//! [fencing]
//! delay = "6s"                        # how long the peer's lease counter must stand still
//!                                     # before we fence it; > monitor_interval + max_io;
//!                                     # default 2 x (monitor_interval + max_io)
//! [[fencing.device]]                  # zero or more
//! target = "beta"                     # required: the node this device powers off
//! level = 1                           # required: 1, 2, ... contiguous per target; level 1 is
//!                                     # tried first; devices of one target and level must all succeed
//! agent = "fence_ipmilan"             # required: a file name in /usr/sbin, or an absolute path
//! timeout = "20s"                     # default 20s
//! params = { ip = "198.51.100.12", username = "admin", password = "secret", lanplus = true }
//!                                     # fence-agents stdin parameters (strings, integers and
//!                                     # booleans; `action` is set by hapair)
//!
//! [metrics]                           # optional; no metrics endpoint when absent
//! listen = "127.0.0.1:9464"           # required; a wildcard address (0.0.0.0, ::) only with
//! allow_any = false                   # allow_any = true
//!
//! [[resource]]                        # one or more, bottom of the stack first
//! name = "data"                       # required, unique, [A-Za-z0-9_.-]+
//! type = "drbd"                       # required: drbd | filesystem | address (built in),
//!                                     # or an agent: ocf:PROVIDER:TYPE, lsb:NAME, systemd:UNIT
//! kind = "drbd"                       # optional: drbd | filesystem | address | service; default
//!                                     # from type (ocf:*:Filesystem -> filesystem,
//!                                     # ocf:*:IPaddr2 -> address, other agents -> service)
//! params = { resource = "r0" }        # agent parameters (OCF_RESKEY_*): strings, integers, booleans
//! start_timeout = "60s"               # defaults: 60s, 60s, 10s, 20s
//! stop_timeout = "60s"
//! monitor_interval = "10s"
//! monitor_timeout = "20s"
//! ```
//!
//! Parameters of the built-in types:
//! - `drbd`: `resource` (required; the DRBD resource name). It must be the
//!   bottom resource, and there is at most one.
//! - `filesystem`: `device`, `directory` (absolute), `fstype` (required);
//!   `options` (mount options), `fsck` = `"auto"` | `"always"` | `"never"`.
//! - `address`: `ip` (required), `cidr_netmask` (0..=32, or 0..=128 for
//!   IPv6), `nic`.
//!
//! # Rules checked besides syntax and types
//! - Exactly two nodes with distinct names; at most one `preferred`.
//! - Each link has an address for each node (and only those), the two of
//!   one family and different; link names are unique. One link only is a
//!   warning: a single cable cut then looks like a dead peer.
//! - Resource names are unique; `drbd` at most once and at the bottom.
//! - Fence device targets are node names; levels run 1, 2, ... per target.
//!   A node without a fence device is a warning: a failover away from it,
//!   when it is cut off but alive, waits for the lease to expire.
//! - Heartbeat timing follows `ha.cf`'s rules
//!   ([`membership::Timing::validate`]).
//! - **Lease timing** (architecture.md): `monitor_interval + max_io +
//!   stop_budget + margin < lock_timeout` and `collision_timeout > 2 x
//!   max_io` ([`EngineConfig::validate`]);
//!   `fencing.delay > monitor_interval + max_io` (a healthy primary's
//!   counter must never look stalled); and, when a watchdog may be used,
//!   `watchdog_timeout + monitor_interval + margin < lock_timeout` (a hung
//!   daemon's node is reset before the peer may take the lease). Without `lock_timeout`, the default is the
//!   smallest value keeping these rules plus one `monitor_interval`, rounded
//!   up to a second (a warning says so when that exceeds a minute: a
//!   takeover from a silent, unfenced peer waits `lock_timeout`).
//!
//! # Reporting
//! [`parse`] returns every problem, sorted by line; a syntax error stops the
//! checks after the syntax (one problem per line), since a half-read file
//! would only produce follow-on noise. Unknown keys get a "did you mean"
//! hint when a known key is close. [`render_problems`] formats them for
//! `hapair validate`:
//!
//! ```text
//! /etc/hapair/hapair.toml:31: lease.lock_timeout: expected a duration such as "10s", found integer 10 (a bare number has no unit)
//! /etc/hapair/hapair.toml:40: policy.monitor_interval: unknown key `monitor_interval`; it belongs in [lease] or [[resource]]
//! /etc/hapair/hapair.toml:52: resource[2].params.device: missing (the filesystem type needs device, directory and fstype)
//! ```

mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use crate::engine::Millis;
use crate::engine::{EngineConfig, NodeName, ResourceKind, ResourceSpec};
use crate::membership;
use crate::proto::{ClusterId, ConfigHash, NodeId};
use crate::runtime::heartbeat::{HeartbeatConfig, LinkConfig};

/// Where the daemon and `hapair validate` look unless told otherwise.
pub const DEFAULT_PATH: &str = "/etc/hapair/hapair.toml";

/// Exit code of the daemon in [`SelfFenceMode::TestExit`].
pub const TEST_EXIT_CODE: i32 = 99;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[cluster]`.
    pub cluster: Cluster,
    /// The two `[[node]]`s, in file order; links' addresses use the same order.
    pub nodes: [Node; 2],
    /// `[heartbeat]`.
    pub heartbeat: membership::Timing,
    /// `[[link]]`s.
    pub links: Vec<Link>,
    /// `[lease]`.
    pub lease: Lease,
    /// `[policy]`.
    pub policy: Policy,
    /// `[self_fence]`.
    pub self_fence: SelfFence,
    /// `[fencing]`.
    pub fencing: Fencing,
    /// `[metrics]`, when present.
    pub metrics: Option<Metrics>,
    /// `[[resource]]`s, bottom of the stack first.
    pub resources: Vec<Resource>,
    /// Hash of the file's bytes (compared with the peer's).
    pub hash: ConfigHash,
    /// The file it was read from.
    pub source: PathBuf,
}

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Cluster name ([`ClusterId::from_name`]).
    pub name: String,
    /// Heartbeat key file.
    pub key_file: PathBuf,
    /// Persisted state directory.
    pub state_dir: PathBuf,
    /// Control socket path.
    pub socket: PathBuf,
    /// Group allowed on the control socket.
    pub admin_group: String,
}

/// One `[[node]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Node name (`uname -n`).
    pub name: String,
    /// Preferred to run the stack when both could.
    pub preferred: bool,
}

/// One `[[link]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Link name, for logs.
    pub name: String,
    /// Each node's address on this link, indexed like [`Config::nodes`].
    pub addrs: [SocketAddr; 2],
    /// Bind to this interface (`SO_BINDTODEVICE`).
    pub interface: Option<String>,
}

/// How lease I/O is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseEngine {
    /// io_uring when the kernel allows it, else synchronous O_DIRECT.
    Auto,
    /// io_uring only.
    Uring,
    /// Synchronous O_DIRECT only.
    Sync,
}

/// `[lease]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The sfex device.
    pub device: PathBuf,
    /// sfex lock index (1-based).
    pub index: u32,
    /// I/O engine.
    pub engine: LeaseEngine,
    /// sfex `lock_timeout`.
    pub lock_timeout: Millis,
    /// sfex `collision_timeout`.
    pub collision_timeout: Millis,
    /// Renewal period.
    pub monitor_interval: Millis,
    /// Clock-drift margin.
    pub margin: Millis,
    /// Slowest lease I/O planned for.
    pub max_io: Millis,
}

/// `[policy]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Failures before the stack moves away.
    pub migration_threshold: u32,
    /// Failures older than this are forgotten.
    pub failure_timeout: Option<Millis>,
    /// Delay of the non-preferred node when both are idle.
    pub start_delay: Millis,
    /// Pause after the lease could not be taken.
    pub retry_interval: Millis,
    /// Time the whole stack needs to stop (explicit, or the sum of the
    /// resources' stop timeouts).
    pub stop_budget: Millis,
}

/// How a node reboots itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelfFenceMode {
    /// The watchdog if its device exists, else `reboot(2)`.
    Auto,
    /// The watchdog device.
    Watchdog,
    /// `reboot(2)`.
    Reboot,
    /// Tests only: log and exit with [`TEST_EXIT_CODE`].
    TestExit,
}

/// `[self_fence]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfFence {
    /// Mode.
    pub mode: SelfFenceMode,
    /// Watchdog device.
    pub watchdog_device: PathBuf,
    /// Watchdog timeout (whole seconds).
    pub watchdog_timeout: Millis,
}

/// `[fencing]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fencing {
    /// How long the peer's lease counter must stand still before we fence.
    pub delay: Millis,
    /// Devices, in file order.
    pub devices: Vec<FenceDevice>,
}

impl Fencing {
    /// The devices that fence `target`, by level: index 0 holds level 1.
    /// All devices of one level must succeed (Pacemaker topology).
    pub fn levels_for(&self, target: &str) -> Vec<Vec<&FenceDevice>> {
        let mut levels: Vec<Vec<&FenceDevice>> = Vec::new();
        for d in self.devices.iter().filter(|d| d.target == target) {
            let i = usize::from(d.level.max(1)) - 1;
            if levels.len() <= i {
                levels.resize_with(i + 1, Vec::new);
            }
            levels[i].push(d);
        }
        levels
    }
}

/// One `[[fencing.device]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceDevice {
    /// The node it fences.
    pub target: String,
    /// Level (1-based).
    pub level: u8,
    /// Agent: a name in `/usr/sbin` or an absolute path.
    pub agent: String,
    /// Timeout of one agent run.
    pub timeout: Millis,
    /// Stdin parameters.
    pub params: BTreeMap<String, String>,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    /// Listen address.
    pub listen: SocketAddr,
}

/// How a resource is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exec {
    /// Built-in DRBD (drbdadm).
    Drbd,
    /// Built-in mount.
    Filesystem,
    /// Built-in virtual IP.
    Address,
    /// A resource agent.
    Agent(ra::Agent),
}

/// One `[[resource]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Name.
    pub name: String,
    /// Kind (engine treatment).
    pub kind: ResourceKind,
    /// How it is run.
    pub exec: Exec,
    /// Parameters.
    pub params: BTreeMap<String, String>,
    /// Start (promote) timeout.
    pub start_timeout: Millis,
    /// Stop (demote) timeout.
    pub stop_timeout: Millis,
    /// Monitor period.
    pub monitor_interval: Millis,
    /// Monitor timeout.
    pub monitor_timeout: Millis,
    /// Line of its `[[resource]]` header.
    pub line: usize,
}

impl Resource {
    /// The engine's view of it.
    pub fn spec(&self) -> ResourceSpec {
        ResourceSpec {
            name: self.name.clone(),
            kind: self.kind,
            start_timeout: self.start_timeout,
            stop_timeout: self.stop_timeout,
            monitor_interval: self.monitor_interval,
            monitor_timeout: self.monitor_timeout,
        }
    }
}

/// One thing wrong (or worth a warning) in the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Key path (`lease.lock_timeout`, `resource[2].params.device`); empty
    /// for a syntax error.
    pub path: String,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// `FILE:LINE: PATH: MESSAGE` (the parts that exist).
    pub fn display_in<'a>(&'a self, file: &'a Path) -> impl fmt::Display + 'a {
        struct In<'a>(&'a Problem, &'a Path);
        impl fmt::Display for In<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:{}", self.1.display(), self.0)
            }
        }
        In(self, file)
    }
}

impl fmt::Display for Problem {
    /// `LINE: PATH: MESSAGE` (the parts that exist).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "{line}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem, one per line: `FILE:LINE: PATH: MESSAGE`.
pub fn render_problems(problems: &[Problem], file: &Path) -> String {
    let mut out = String::new();
    for p in problems {
        let _ = writeln!(out, "{}", p.display_in(file));
    }
    out
}

/// A valid configuration and the warnings it deserves.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Things that work but deserve attention (a single link, no fencing,
    /// test-only settings).
    pub warnings: Vec<Problem>,
}

impl Loaded {
    /// The warnings, one per line: `FILE:LINE: warning: PATH: MESSAGE`.
    pub fn render_warnings(&self) -> String {
        let mut out = String::new();
        for w in &self.warnings {
            let file = self.config.source.display();
            match w.line {
                Some(line) => {
                    let _ = write!(out, "{file}:{line}: warning: ");
                }
                None => {
                    let _ = write!(out, "{file}: warning: ");
                }
            }
            if !w.path.is_empty() {
                let _ = write!(out, "{}: ", w.path);
            }
            let _ = writeln!(out, "{}", w.message);
        }
        out
    }
}

/// Why [`load`] gave no configuration.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is invalid.
    #[error("{}", render_invalid(path, problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found, sorted by line.
        problems: Vec<Problem>,
    },
}

fn render_invalid(path: &Path, problems: &[Problem]) -> String {
    let n = problems.len();
    let mut out = format!(
        "{}: invalid configuration ({n} problem{}):\n",
        path.display(),
        if n == 1 { "" } else { "s" }
    );
    out.push_str(&render_problems(problems, path));
    out.truncate(out.trim_end().len());
    out
}

/// Reads and validates the file. Adds a warning when fence parameters
/// (passwords) sit in a file everyone may read.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    use std::os::unix::fs::PermissionsExt;

    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            return Err(LoadError::Invalid {
                path: path.to_path_buf(),
                problems: vec![Problem {
                    path: String::new(),
                    line: Some(line),
                    message: "the file is not valid UTF-8".into(),
                }],
            });
        }
    };
    let mut loaded = parse(&text, path).map_err(|problems| LoadError::Invalid {
        path: path.to_path_buf(),
        problems,
    })?;
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    let secrets = loaded
        .config
        .fencing
        .devices
        .iter()
        .any(|d| !d.params.is_empty());
    if secrets && mode & 0o004 != 0 {
        loaded.warnings.push(Problem {
            path: "fencing".into(),
            line: None,
            message: format!(
                "the file is readable by everyone (mode {:04o}) and holds fence device \
                 parameters, often passwords: chmod 0640 {}",
                mode & 0o7777,
                path.display()
            ),
        });
    }
    Ok(loaded)
}

/// Parses and validates `text`, read from `source` (for [`Config::source`]).
/// On failure, every problem found, sorted by line.
pub fn parse(text: &str, source: &Path) -> Result<Loaded, Vec<Problem>> {
    parse::parse(text, source)
}

impl Config {
    /// The index of the node called `name`.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The engine's configuration on node `me` (0 or 1).
    ///
    /// # Panics
    /// When `me` is not 0 or 1.
    pub fn engine_config(&self, me: usize) -> EngineConfig {
        let peer = 1 - me;
        let name = |i: usize| {
            NodeName::new(self.nodes[i].name.as_bytes())
                .expect("node names are checked by parse: no NUL, at most 255 bytes")
        };
        let fence_levels = self.fencing.levels_for(&self.nodes[peer].name).len();
        EngineConfig {
            me: name(me),
            peer: name(peer),
            preferred: self.nodes[me].preferred,
            lock_timeout: self.lease.lock_timeout,
            collision_timeout: self.lease.collision_timeout,
            monitor_interval: self.lease.monitor_interval,
            margin: self.lease.margin,
            max_io: self.lease.max_io,
            stop_budget: self.policy.stop_budget,
            resources: self.resources.iter().map(Resource::spec).collect(),
            migration_threshold: self.policy.migration_threshold,
            failure_timeout: self.policy.failure_timeout,
            fence_levels: u8::try_from(fence_levels).unwrap_or(u8::MAX),
            fence_delay: self.fencing.delay,
            start_delay: self.policy.start_delay,
            retry_interval: self.policy.retry_interval,
        }
    }

    /// The heartbeat's configuration on node `me` (0 or 1).
    ///
    /// # Panics
    /// When `me` is not 0 or 1.
    pub fn heartbeat_config(&self, me: usize) -> HeartbeatConfig {
        let peer = 1 - me;
        HeartbeatConfig {
            cluster: ClusterId::from_name(&self.cluster.name),
            local: NodeId::from_name(&self.nodes[me].name),
            peer: NodeId::from_name(&self.nodes[peer].name),
            timing: self.heartbeat,
            links: self
                .links
                .iter()
                .map(|l| LinkConfig {
                    name: l.name.clone(),
                    local: l.addrs[me],
                    peer: l.addrs[peer],
                    interface: l.interface.clone(),
                })
                .collect(),
        }
    }
}
