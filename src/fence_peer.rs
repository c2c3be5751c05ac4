//! `hapair fence-peer`: the handler DRBD runs when it needs the peer's data
//! fenced (drbd.md 3.3), and, with `--unfence`, after the peer resynced.
//!
//! ```text
//! resource r0 {
//!   disk     { fencing resource-and-stonith; }            # 8.4; DRBD 9: net { fencing ...; }
//!   handlers { fence-peer "/usr/sbin/hapair fence-peer";
//!              after-resync-target "/usr/sbin/hapair fence-peer --unfence";   # 8.4
//!              unfence-peer "/usr/sbin/hapair fence-peer --unfence"; }        # DRBD 9
//! }
//! ```
//!
//! The handler decides nothing on its own: it asks the local daemon over the
//! control socket (`{"cmd":"fence-peer","resource":"r0"}`) for the [`Facts`]
//! and feeds them to the pure [`decide`]. The daemon, asked the first time,
//! forwards an *outdate* request to the peer in its heartbeats; the peer runs
//! `drbdadm outdate` and forwards the answer back. The handler asks again
//! every [`POLL`] until [`decide`] gives an exit code or its time is up.
//! With no daemon reachable it falls back to the lease on the shared disk and
//! the configured fence devices ([`decide_offline`]).
//!
//! `--pacemaker` selects the other mode, for a Pacemaker cluster with no
//! hapair daemon and no hapair.toml: the contract of crm-fence-peer.9.sh
//! (a `-INFINITY` location rule on the promotable clone's promoted role for
//! every node but this one, exit codes from the peer's state in the CIB).
//! See [`pacemaker`].
//!
//! Exit codes (the kernel's `conn_try_outdate_peer`):
//!
//! | code | meaning | returned when |
//! |---|---|---|
//! | 4 | peer Outdated | the peer ran `drbdadm outdate` and said so |
//! | 5 | peer down, not fenced | silent on every heartbeat link while this node holds a valid lease |
//! | 6 | peer is Primary: outdate myself | the peer runs the stack or holds the lease, and this node does not |
//! | 7 | peer fenced (STONITH) | a fence device confirmed the peer off and it was not heard since |
//! | 1 | "broken": DRBD changes nothing (I/O stays frozen with resource-and-stonith) | anything else: no evidence |
//!
//! 3 (peer Inconsistent) is never returned: the heartbeat does not carry the
//! peer's disk state, and guessing it would be the one thing a handler must
//! not do. 4 and 7 are only returned on evidence; 5 makes DRBD mark the peer
//! Outdated when the local disk is UpToDate, so it needs the lease as well.

use std::time::{Duration, Instant};

pub mod pacemaker;

use serde::{Deserialize, Serialize};

/// How often the handler asks the daemon again while it waits.
pub const POLL: Duration = Duration::from_millis(200);
/// Default time the handler waits for the peer to outdate itself.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// The fence-peer exit codes hapair uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// 1: no decision; DRBD keeps its state (`fence-peer helper broken`).
    Refused = 1,
    /// 3: the peer's disk is Inconsistent (never returned, see the module doc).
    PeerInconsistent = 3,
    /// 4: the peer's disk is Outdated.
    PeerOutdated = 4,
    /// 5: the peer is unreachable, assumed dead, not fenced.
    PeerDown = 5,
    /// 6: the peer is Primary: DRBD outdates the local disk.
    PeerPrimary = 6,
    /// 7: the peer was fenced (powered off).
    PeerFenced = 7,
}

impl Code {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        self as u8
    }
}

/// The peer's liveness on the heartbeat links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Liveness {
    /// Heard on at least one link.
    Alive,
    /// Silent on every link for longer than `deadtime`.
    Dead,
    /// Not heard since this daemon started (no evidence either way).
    #[default]
    Unknown,
}

/// Where the outdate request to the peer stands in this fencing episode.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "state", content = "detail", rename_all = "kebab-case")]
pub enum Outdate {
    /// Not asked (the peer is not alive, or this node has no business asking).
    #[default]
    NotAsked,
    /// Forwarded to the peer, no answer yet.
    Pending,
    /// The peer ran `drbdadm outdate` successfully.
    Done,
    /// The peer refused or `drbdadm outdate` failed there.
    Refused(String),
}

/// What the local daemon knows, as it answers `fence-peer`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Facts {
    /// The peer's node name.
    pub peer: String,
    /// Heartbeat liveness of the peer.
    pub peer_liveness: Liveness,
    /// The peer runs (or starts, or stops) the stack, holds the lease, or
    /// is alive without telling us its state: treat it as active.
    pub peer_active: bool,
    /// This node holds the lease (renewed in time).
    pub lease_held_here: bool,
    /// A fence device confirmed the peer off and it was not heard since.
    pub peer_fenced: bool,
    /// The outdate request of this episode.
    pub outdate: Outdate,
}

/// What the handler does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Exit with this code; the reason is logged.
    Exit(Code, String),
    /// Ask again after [`POLL`].
    Wait(String),
}

/// The decision, from the daemon's facts; `timed_out` once the handler's
/// time is up (a pending outdate then becomes a refusal). Pure.
pub fn decide(f: &Facts, timed_out: bool) -> Verdict {
    let peer = if f.peer.is_empty() {
        "the peer"
    } else {
        &f.peer
    };
    let exit = |c: Code, why: String| Verdict::Exit(c, why);
    if f.peer_fenced && f.peer_liveness != Liveness::Alive {
        return exit(
            Code::PeerFenced,
            format!("{peer} was powered off by a fence device and has not been heard since"),
        );
    }
    if f.outdate == Outdate::Done {
        return exit(
            Code::PeerOutdated,
            format!("{peer} ran `drbdadm outdate` and confirmed it"),
        );
    }
    if !f.lease_held_here {
        if f.peer_liveness == Liveness::Alive && f.peer_active {
            return exit(
                Code::PeerPrimary,
                format!("{peer} is alive and runs the stack, this node does not hold the lease"),
            );
        }
        return exit(
            Code::Refused,
            format!(
                "this node does not hold the lease and {peer} is not known to be active, \
                 outdated or fenced: no evidence, no verdict"
            ),
        );
    }
    match f.peer_liveness {
        Liveness::Dead => exit(
            Code::PeerDown,
            format!("{peer} is silent on every heartbeat link and this node holds the lease"),
        ),
        Liveness::Unknown => exit(
            Code::Refused,
            format!("{peer} has not been heard since hapair started: its state is unknown"),
        ),
        Liveness::Alive => match &f.outdate {
            Outdate::Refused(why) => exit(
                Code::Refused,
                format!("{peer} is alive but did not outdate itself: {why}"),
            ),
            Outdate::NotAsked | Outdate::Pending if timed_out => exit(
                Code::Refused,
                format!("{peer} is alive but did not confirm `drbdadm outdate` in time"),
            ),
            Outdate::NotAsked | Outdate::Pending => {
                Verdict::Wait(format!("waiting for {peer} to outdate itself"))
            }
            Outdate::Done => unreachable!("handled above"),
        },
    }
}

/// What the lease block on the shared disk says, read by the handler
/// itself when no daemon answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseSays {
    /// Locked by this node (possibly stale: our daemon is not running).
    Me,
    /// Locked by the peer.
    Peer,
    /// Unlocked, or locked by a name that is neither node.
    Other,
    /// Unreadable.
    Unknown,
}

/// Whether the handler, with no daemon, may run the fence devices against
/// the peer: only when the lease names this node (it was the legitimate
/// primary when its daemon died).
pub fn may_fence_offline(lease: LeaseSays) -> bool {
    lease == LeaseSays::Me
}

/// The decision with no daemon reachable: `fenced` is whether a fence
/// device confirmed the peer off (`None`: none was run). Pure.
pub fn decide_offline(lease: LeaseSays, fenced: Option<bool>) -> (Code, String) {
    match (lease, fenced) {
        (_, Some(true)) => (
            Code::PeerFenced,
            "no daemon; the lease names this node and a fence device confirmed the peer off".into(),
        ),
        (LeaseSays::Peer, _) => (
            Code::PeerPrimary,
            "no daemon; the lease on the shared disk is held by the peer".into(),
        ),
        (LeaseSays::Me, Some(false)) => (
            Code::Refused,
            "no daemon; every fence device failed to confirm the peer off".into(),
        ),
        (LeaseSays::Me, None) => (
            Code::Refused,
            "no daemon and no fence device configured for the peer".into(),
        ),
        (LeaseSays::Other | LeaseSays::Unknown, _) => (
            Code::Refused,
            "no daemon and the lease does not name this node: no evidence".into(),
        ),
    }
}

/// DRBD's environment for the handler (drbd.md 3.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DrbdEnv {
    /// `DRBD_RESOURCE` (or `argv[1]`).
    pub resource: Option<String>,
    /// `DRBD_PEER` / `DRBD_PEERS` (8.4 host names), for the log.
    pub peers: Option<String>,
    /// `DRBD_PEER_ADDRESS`.
    pub peer_address: Option<String>,
    /// `DRBD_MINOR` (or the first `DRBD_MINOR_<vol>`).
    pub minor: Option<String>,
}

impl DrbdEnv {
    /// Reads the variables through `get`.
    pub fn from_fn(get: impl Fn(&str) -> Option<String>) -> DrbdEnv {
        let nonempty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        DrbdEnv {
            resource: nonempty("DRBD_RESOURCE"),
            peers: nonempty("DRBD_PEER").or_else(|| nonempty("DRBD_PEERS")),
            peer_address: nonempty("DRBD_PEER_ADDRESS"),
            minor: nonempty("DRBD_MINOR").or_else(|| nonempty("DRBD_MINOR_0")),
        }
    }

    /// From the process environment.
    pub fn from_process() -> DrbdEnv {
        DrbdEnv::from_fn(|k| std::env::var(k).ok())
    }
}

/// The handler's options (`hapair fence-peer`).
#[derive(Debug, Clone)]
pub struct HandlerOptions {
    /// The config file (for the socket, the lease and the fence devices).
    pub config: std::path::PathBuf,
    /// This node's name (default: the host name).
    pub node: Option<String>,
    /// The resource, when DRBD did not set `DRBD_RESOURCE`.
    pub resource: Option<String>,
    /// `--unfence`: the peer resynced; forget the fencing record.
    pub unfence: bool,
    /// How long to wait for the peer's outdate.
    pub timeout: Duration,
}

/// Why the handler could not even ask.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// No resource in the environment or on the command line.
    #[error("no DRBD resource: DRBD_RESOURCE is not set and none was given")]
    NoResource,
    /// The config could not be read.
    #[error("{0}")]
    Config(#[from] crate::config::LoadError),
    /// This host is not a node of the config.
    #[error("{0}")]
    Node(#[from] crate::runtime::daemon::DaemonError),
}

fn log(msg: &str) {
    // DRBD discards the handler's output on 8.4; the kernel logs only the
    // exit code. stderr still reaches an operator running it by hand, and
    // the daemon logs its side of every call.
    eprintln!("hapair fence-peer: {msg}");
}

/// Runs the handler; returns the exit code for DRBD.
pub fn run(opts: &HandlerOptions) -> Result<u8, HandlerError> {
    use crate::cli::client::Client;
    use crate::cli::proto::ControlRequest;

    let env = DrbdEnv::from_process();
    let resource = env
        .resource
        .clone()
        .or_else(|| opts.resource.clone())
        .ok_or(HandlerError::NoResource)?;
    let loaded = crate::config::load(&opts.config)?;
    let cfg = loaded.config;
    let me = crate::runtime::daemon::local_node(&cfg, opts.node.as_deref())?;
    log(&format!(
        "{} resource {resource} (peer {}, address {}, minor {})",
        if opts.unfence { "unfence" } else { "fence" },
        env.peers.as_deref().unwrap_or("?"),
        env.peer_address.as_deref().unwrap_or("?"),
        env.minor.as_deref().unwrap_or("?"),
    ));
    let req = ControlRequest::FencePeer {
        resource: resource.clone(),
        unfence: opts.unfence,
    };
    let start = Instant::now();
    let mut client = Client::connect(&cfg.cluster.socket).ok();
    if client.is_none() {
        if opts.unfence {
            log("no daemon: nothing recorded to clear");
            return Ok(0);
        }
        return Ok(offline(&cfg, me));
    }
    loop {
        let resp = match client.as_mut().map(|c| c.request(&req)) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                log(&format!("control socket: {e}; reconnecting"));
                std::thread::sleep(POLL);
                client = Client::connect(&cfg.cluster.socket).ok();
                if start.elapsed() >= opts.timeout {
                    log("timed out talking to the daemon: no verdict (1)");
                    return Ok(Code::Refused.exit_code());
                }
                continue;
            }
            None => {
                std::thread::sleep(POLL);
                client = Client::connect(&cfg.cluster.socket).ok();
                if start.elapsed() >= opts.timeout {
                    log("daemon gone: no verdict (1)");
                    return Ok(Code::Refused.exit_code());
                }
                continue;
            }
        };
        if !resp.ok {
            log(&format!(
                "the daemon refused: {}",
                resp.error.as_deref().unwrap_or("?")
            ));
            return Ok(Code::Refused.exit_code());
        }
        if opts.unfence {
            log(resp.message.as_deref().unwrap_or("unfenced"));
            return Ok(0);
        }
        let Some(facts) = resp.fence else {
            log("the daemon sent no facts: no verdict (1)");
            return Ok(Code::Refused.exit_code());
        };
        match decide(&facts, start.elapsed() >= opts.timeout) {
            Verdict::Exit(code, why) => {
                log(&format!("exit {} ({why})", code.exit_code()));
                return Ok(code.exit_code());
            }
            Verdict::Wait(_) => std::thread::sleep(POLL),
        }
    }
}

/// No daemon: the lease block and, when it names this node, the fence
/// devices.
fn offline(cfg: &crate::config::Config, me: usize) -> u8 {
    let peer = &cfg.nodes[1 - me].name;
    let lease = match sfex::ops::open_checked(
        &cfg.lease.device,
        cfg.lease.index,
        sfex::dev::EngineKind::Sync,
        false,
    ) {
        Err(e) => {
            log(&format!("lease {}: {e}", cfg.lease.device.display()));
            LeaseSays::Unknown
        }
        Ok((mut dev, _)) => match sfex::ops::read_lock(&mut dev, cfg.lease.index) {
            Err(e) => {
                log(&format!("lease read: {e}"));
                LeaseSays::Unknown
            }
            Ok(b) if b.status != sfex::format::Status::Locked => LeaseSays::Other,
            Ok(b) if b.nodename.as_bytes() == cfg.nodes[me].name.as_bytes() => LeaseSays::Me,
            Ok(b) if b.nodename.as_bytes() == peer.as_bytes() => LeaseSays::Peer,
            Ok(_) => LeaseSays::Other,
        },
    };
    let fenced = if may_fence_offline(lease) {
        crate::runtime::daemon::fencer_for(cfg, peer).map(|f| {
            log(&format!("no daemon: fencing {peer}"));
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(f.fence_through()).0.is_some(),
                Err(e) => {
                    log(&format!("tokio: {e}"));
                    false
                }
            }
        })
    } else {
        None
    };
    let (code, why) = decide_offline(lease, fenced);
    log(&format!("exit {} ({why})", code.exit_code()));
    code.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            peer: "beta".into(),
            peer_liveness: Liveness::Alive,
            peer_active: false,
            lease_held_here: true,
            peer_fenced: false,
            outdate: Outdate::NotAsked,
        }
    }

    fn code(v: Verdict) -> Option<Code> {
        match v {
            Verdict::Exit(c, _) => Some(c),
            Verdict::Wait(_) => None,
        }
    }

    #[test]
    fn alive_peer_is_outdated_only_when_it_says_so() {
        let mut f = facts();
        assert_eq!(code(decide(&f, false)), None, "not asked yet: wait");
        f.outdate = Outdate::Pending;
        assert_eq!(code(decide(&f, false)), None);
        assert_eq!(code(decide(&f, true)), Some(Code::Refused), "timeout");
        f.outdate = Outdate::Refused("Secondary is Connected".into());
        assert_eq!(code(decide(&f, false)), Some(Code::Refused));
        f.outdate = Outdate::Done;
        assert_eq!(code(decide(&f, false)), Some(Code::PeerOutdated));
    }

    #[test]
    fn dead_peer() {
        let mut f = facts();
        f.peer_liveness = Liveness::Dead;
        assert_eq!(code(decide(&f, false)), Some(Code::PeerDown));
        f.peer_fenced = true;
        assert_eq!(code(decide(&f, false)), Some(Code::PeerFenced));
        // without the lease: fenced is still evidence, merely dead is not
        f.lease_held_here = false;
        assert_eq!(code(decide(&f, false)), Some(Code::PeerFenced));
        f.peer_fenced = false;
        assert_eq!(code(decide(&f, false)), Some(Code::Refused));
    }

    #[test]
    fn never_heard_peer_gets_no_verdict() {
        let mut f = facts();
        f.peer_liveness = Liveness::Unknown;
        assert_eq!(code(decide(&f, true)), Some(Code::Refused));
        assert_eq!(code(decide(&f, false)), Some(Code::Refused));
    }

    #[test]
    fn fenced_but_heard_again_is_not_fenced() {
        let mut f = facts();
        f.peer_fenced = true;
        assert_eq!(code(decide(&f, false)), None, "alive: ask it to outdate");
    }

    #[test]
    fn active_peer_without_our_lease_outdates_us() {
        let mut f = facts();
        f.lease_held_here = false;
        f.peer_active = true;
        assert_eq!(code(decide(&f, false)), Some(Code::PeerPrimary));
        f.peer_active = false;
        assert_eq!(code(decide(&f, false)), Some(Code::Refused));
        // the lease holder never outdates itself on the peer's word
        f.lease_held_here = true;
        f.peer_active = true;
        assert_eq!(code(decide(&f, true)), Some(Code::Refused));
    }

    /// Exhaustive: 4 needs the peer's confirmation, 7 a confirmed fence of
    /// a peer not heard since, 5 the lease and a dead peer, 3 never.
    #[test]
    fn no_verdict_without_evidence_exhaustive() {
        let outdates = [
            Outdate::NotAsked,
            Outdate::Pending,
            Outdate::Done,
            Outdate::Refused("x".into()),
        ];
        for live in [Liveness::Alive, Liveness::Dead, Liveness::Unknown] {
            for active in [false, true] {
                for lease in [false, true] {
                    for fenced in [false, true] {
                        for o in &outdates {
                            for to in [false, true] {
                                let f = Facts {
                                    peer: "beta".into(),
                                    peer_liveness: live,
                                    peer_active: active,
                                    lease_held_here: lease,
                                    peer_fenced: fenced,
                                    outdate: o.clone(),
                                };
                                let c = code(decide(&f, to));
                                match c {
                                    Some(Code::PeerOutdated) => assert_eq!(*o, Outdate::Done),
                                    Some(Code::PeerFenced) => {
                                        assert!(fenced && live != Liveness::Alive, "{f:?}");
                                    }
                                    Some(Code::PeerDown) => {
                                        assert!(lease && live == Liveness::Dead, "{f:?}");
                                    }
                                    Some(Code::PeerPrimary) => {
                                        assert!(!lease && active && live == Liveness::Alive);
                                    }
                                    Some(Code::PeerInconsistent) => panic!("3 for {f:?}"),
                                    Some(Code::Refused) => {}
                                    None => assert!(!to && lease && live == Liveness::Alive),
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn offline_decisions() {
        assert!(may_fence_offline(LeaseSays::Me));
        for l in [LeaseSays::Peer, LeaseSays::Other, LeaseSays::Unknown] {
            assert!(!may_fence_offline(l));
        }
        assert_eq!(
            decide_offline(LeaseSays::Me, Some(true)).0,
            Code::PeerFenced
        );
        assert_eq!(decide_offline(LeaseSays::Me, Some(false)).0, Code::Refused);
        assert_eq!(decide_offline(LeaseSays::Me, None).0, Code::Refused);
        assert_eq!(decide_offline(LeaseSays::Peer, None).0, Code::PeerPrimary);
        assert_eq!(decide_offline(LeaseSays::Other, None).0, Code::Refused);
        assert_eq!(decide_offline(LeaseSays::Unknown, None).0, Code::Refused);
    }

    #[test]
    fn drbd_env() {
        let e = DrbdEnv::from_fn(|k| match k {
            "DRBD_RESOURCE" => Some("r0".into()),
            "DRBD_PEERS" => Some("nodeB".into()),
            "DRBD_PEER" => Some(String::new()),
            "DRBD_PEER_ADDRESS" => Some("10.88.1.2".into()),
            "DRBD_MINOR_0" => Some("0".into()),
            _ => None,
        });
        assert_eq!(e.resource.as_deref(), Some("r0"));
        assert_eq!(e.peers.as_deref(), Some("nodeB"));
        assert_eq!(e.peer_address.as_deref(), Some("10.88.1.2"));
        assert_eq!(e.minor.as_deref(), Some("0"));
        assert_eq!(DrbdEnv::from_fn(|_| None), DrbdEnv::default());
    }

    #[test]
    fn facts_round_trip_json() {
        let mut f = facts();
        f.outdate = Outdate::Refused("connected".into());
        let s = serde_json::to_string(&f).expect("json");
        assert_eq!(serde_json::from_str::<Facts>(&s).expect("parse"), f);
    }
}
