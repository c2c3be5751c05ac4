//! Membership of the pair: is the peer alive, over which links, and what does
//! it say about itself. A pure state machine: [`Membership::handle`] takes the
//! time and one [`Input`] (a timer tick, a datagram from a link, a new local
//! view or key set) and returns [`Output`]s (packets to send on a link,
//! [`Event`]s for the pair engine). It never reads a clock, sleeps, touches a
//! socket or draws random numbers: time is [`Millis`] from the caller's
//! monotonic clock, and the random incarnation is given to it.
//!
//! ```text
//!   runtime (tokio, sockets, clock, getrandom)         pair engine
//!      |  Tick / Datagram{link, bytes} / View / Keys      ^
//!      v                                                  | Event
//!   Membership::handle(now, input) ---> Output::Send{link, packet} ---> socket
//!                                  \--> Output::Event(..) ------------/
//!   Membership::next_deadline(): when to call handle(now, Tick) at the latest
//! ```
//!
//! **Liveness without a persisted generation.** Each daemon start picks a
//! random 64-bit [`Incarnation`]; each packet has a sequence number and the
//! sender's send time on its own clock. A packet echoes the last packet its
//! sender accepted from us (our incarnation, sequence, send time, and how
//! long the sender held it before replying). From an echo of *our current*
//! incarnation we compute the packet's *evidence time*: `echo.sent_at +
//! echo.hold`, a time on our own clock at which the peer provably still ran
//! (it is the reply's send time minus the echoed packet's one-way delay, so
//! it trails the arrival by a round trip). A packet counts only if its
//! evidence is younger than `deadtime`; a link is up while its newest
//! evidence is younger than `deadtime`; the peer is alive while any link is.
//! So:
//! - a replayed capture carries an evidence time from when it was made, and
//!   cannot make a dead peer look alive, however it is timed or reordered;
//! - a restarted (or restored-from-backup) node just has a new incarnation:
//!   nothing is compared with a stored generation, so nothing can lock it
//!   out (the Heartbeat `hb_generation` trap). A peer's new incarnation is
//!   accepted once one of its packets echoes our current incarnation with an
//!   evidence time newer than anything accepted before (so an older
//!   incarnation's captures cannot take over again);
//! - within one incarnation a [`window::ReplayWindow`] drops duplicates, and
//!   only the newest packet is echoed, so replays cannot age our echo;
//! - a packet that echoes our incarnation with a sequence we have not sent
//!   yet means we were restored from a memory snapshot (or cloned): we ask
//!   for a new incarnation ([`Event::IncarnationConflict`]) instead of being
//!   ignored as a replayer.
//!
//! Before the peer has heard our incarnation its packets prove nothing; we
//! keep the newest one as a *candidate* and echo it in a second slot, which
//! is how a restarted peer (or both, restarted together) gets its
//! incarnation echoed and accepted within a round trip or two.
//!
//! Every datagram that is not accepted is counted by [`DropReason`], per link.

pub mod window;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::proto::{
    self, ClusterId, DecodeError, Echo, Incarnation, Keyring, NodeId, NodeView, PACKET_LEN, Packet,
};
pub use sfex::lease::Millis;
use window::{ReplayWindow, Verdict};

/// Most links the machine handles.
pub const MAX_LINKS: usize = 8;

/// Heartbeat timing, as in Heartbeat's `ha.cf` (in milliseconds here; the
/// config and CLI take humantime strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timing {
    /// Interval between packets on each link.
    pub keepalive: Millis,
    /// Silence after which a link is reported late ([`Event::LinkWarn`]).
    pub warntime: Millis,
    /// Silence after which a link is down; the peer is dead when every link is.
    pub deadtime: Millis,
    /// After start, how long a never-heard peer (or link) is given before it
    /// is declared dead (down).
    pub initdead: Millis,
}

impl Timing {
    /// The defaults, chosen from the benchmark (README, "Heartbeat"): cutting
    /// both links is detected at p99 904 ms on the host (400 samples) and
    /// 920 ms in the UML lab (200), 857 ms there under the stress profile;
    /// the stress profile (50 ± 50 ms jitter and 20 % loss on both links in
    /// both directions, one core busy) ran 600 s without a false death or a
    /// link declared down, and the host ran 120 s at 40 % loss without a
    /// false death. Heartbeat's `ha.cf` rules hold: deadtime > 2 x
    /// keepalive, warntime < deadtime, initdead well above deadtime (boot
    /// and switch ports may take seconds to come up).
    pub const DEFAULT: Timing = Timing {
        keepalive: Millis(100),
        warntime: Millis(500),
        deadtime: Millis(900),
        initdead: Millis(10_000),
    };

    /// Checks the relations `ha.cf` demands, and a floor on keepalive.
    pub fn validate(&self) -> Result<(), TimingError> {
        if self.keepalive.0 < 10 {
            return Err(TimingError::KeepaliveTooShort(self.keepalive));
        }
        if self.deadtime.0 <= self.keepalive.0.saturating_mul(2) {
            return Err(TimingError::DeadtimeTooShort {
                deadtime: self.deadtime,
                keepalive: self.keepalive,
            });
        }
        if self.warntime < self.keepalive || self.warntime >= self.deadtime {
            return Err(TimingError::Warntime {
                warntime: self.warntime,
                keepalive: self.keepalive,
                deadtime: self.deadtime,
            });
        }
        if self.initdead < self.deadtime {
            return Err(TimingError::Initdead {
                initdead: self.initdead,
                deadtime: self.deadtime,
            });
        }
        Ok(())
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing::DEFAULT
    }
}

/// Timing that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// keepalive below 10 ms.
    #[error("keepalive {0} is shorter than 10ms")]
    KeepaliveTooShort(Millis),
    /// deadtime not above 2 x keepalive.
    #[error("deadtime {deadtime} must be more than twice keepalive {keepalive}")]
    DeadtimeTooShort {
        /// deadtime
        deadtime: Millis,
        /// keepalive
        keepalive: Millis,
    },
    /// warntime outside keepalive..deadtime.
    #[error(
        "warntime {warntime} must be at least keepalive {keepalive} and less than deadtime {deadtime}"
    )]
    Warntime {
        /// warntime
        warntime: Millis,
        /// keepalive
        keepalive: Millis,
        /// deadtime
        deadtime: Millis,
    },
    /// initdead below deadtime.
    #[error("initdead {initdead} must be at least deadtime {deadtime}")]
    Initdead {
        /// initdead
        initdead: Millis,
        /// deadtime
        deadtime: Millis,
    },
}

/// Who we are and whom we watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our cluster.
    pub cluster: ClusterId,
    /// Our node id.
    pub local: NodeId,
    /// The peer's node id.
    pub peer: NodeId,
    /// Number of links (indices 0..links).
    pub links: usize,
    /// Timing.
    pub timing: Timing,
}

/// A configuration the machine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Bad timing.
    #[error(transparent)]
    Timing(#[from] TimingError),
    /// Link count out of range.
    #[error("{0} links: between 1 and {MAX_LINKS} are supported")]
    Links(usize),
    /// Local and peer ids equal.
    #[error("the local and the peer node id are the same ({0:?})")]
    SameNode(NodeId),
}

impl Config {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.timing.validate()?;
        if self.links == 0 || self.links > MAX_LINKS {
            return Err(ConfigError::Links(self.links));
        }
        if self.local == self.peer {
            return Err(ConfigError::SameNode(self.local));
        }
        Ok(())
    }
}

/// What happened, for [`Membership::handle`].
#[derive(Debug, Clone)]
pub enum Input<'a> {
    /// Time passed (call at [`Membership::next_deadline`] at the latest).
    Tick,
    /// A datagram arrived on a link from the peer's configured address.
    Datagram {
        /// Link index.
        link: usize,
        /// The datagram.
        bytes: &'a [u8],
    },
    /// The runtime dropped a datagram before decoding (e.g. wrong source).
    Rejected {
        /// Link index.
        link: usize,
        /// Why.
        reason: DropReason,
    },
    /// Sending on a link failed.
    SendFailed {
        /// Link index.
        link: usize,
    },
    /// Our own state changed; it is sent at once.
    View(NodeView),
    /// A new key set (rotation, SIGHUP).
    Keys(Keyring),
    /// A fresh random incarnation, answering [`Event::IncarnationConflict`].
    Reincarnate(Incarnation),
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this datagram on a link, to the peer's address.
    Send {
        /// Link index.
        link: usize,
        /// The sealed packet.
        packet: [u8; PACKET_LEN],
    },
    /// Tell the engine.
    Event(Event),
}

/// How a peer came (back) to life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Contact {
    /// First contact since we started.
    First,
    /// The same incarnation as before it was declared dead: the pair was
    /// partitioned and healed (both sides may have acted meanwhile).
    Returned,
    /// A new incarnation: the peer's daemon restarted.
    Restarted {
        /// The incarnation it had before.
        previous: Incarnation,
    },
}

/// State of one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkState {
    /// Not heard since start, still within initdead.
    Unknown,
    /// Fresh packets within warntime.
    Up,
    /// Silent for warntime or more.
    Warn,
    /// Silent for deadtime or more (or never heard within initdead).
    Down,
}

/// State of the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerState {
    /// Not heard since start, still within initdead.
    Unknown,
    /// At least one link is up or late.
    Alive,
    /// Every link is down.
    Dead,
}

/// What the engine is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum Event {
    /// A link carries fresh packets again (or for the first time).
    LinkUp {
        /// Link index.
        link: usize,
    },
    /// A link has been silent for warntime ("late heartbeat").
    LinkWarn {
        /// Link index.
        link: usize,
        /// Time since its newest evidence.
        silent: Millis,
    },
    /// A link has been silent for deadtime (or was never heard within initdead).
    LinkDown {
        /// Link index.
        link: usize,
        /// Time since its newest evidence; `None`: never heard.
        silent: Option<Millis>,
    },
    /// The peer is alive.
    PeerAlive {
        /// Its incarnation.
        incarnation: Incarnation,
        /// How it came.
        contact: Contact,
    },
    /// Every link is down.
    PeerDead {
        /// Newest evidence of life; `None`: never heard since we started.
        last_heard: Option<Millis>,
    },
    /// The peer reports a new state.
    PeerView {
        /// What it says about itself.
        view: NodeView,
        /// Whether it sees us alive.
        sees_us: bool,
    },
    /// The peer runs another configuration than we do.
    ConfigMismatch {
        /// Our config hash.
        ours: proto::ConfigHash,
        /// Its config hash.
        theirs: proto::ConfigHash,
    },
    /// The configurations agree again.
    ConfigMatch,
    /// The peer echoed our incarnation with a sequence or time we never
    /// sent: this process was restored from a snapshot or cloned. Answer
    /// with [`Input::Reincarnate`] and a fresh random incarnation.
    IncarnationConflict {
        /// The incarnation in conflict.
        incarnation: Incarnation,
    },
}

macro_rules! drop_reasons {
    ($($(#[$m:meta])* $v:ident => $f:ident,)+) => {
        /// Why a datagram was not accepted. One counter each.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum DropReason {
            $($(#[$m])* $v,)+
        }

        /// Dropped datagrams by reason.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
        pub struct Drops {
            $(#[allow(missing_docs)] pub $f: u64,)+
        }

        impl DropReason {
            /// Every reason.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$v,)+];
            /// The counter's name.
            pub fn name(self) -> &'static str {
                match self { $(DropReason::$v => stringify!($f),)+ }
            }
        }

        impl Drops {
            /// The counter for `r`.
            pub fn get(&self, r: DropReason) -> u64 {
                match r { $(DropReason::$v => self.$f,)+ }
            }
            fn bump(&mut self, r: DropReason) {
                match r { $(DropReason::$v => self.$f += 1,)+ }
            }
            /// Sum of all counters.
            pub fn total(&self) -> u64 {
                0 $(+ self.$f)+
            }
            fn add(&mut self, o: &Drops) {
                $(self.$f += o.$f;)+
            }
        }
    };
}

drop_reasons! {
    /// Shorter than the header or than its declared length.
    Truncated => truncated,
    /// Not a hapair heartbeat (magic).
    NotHapair => not_hapair,
    /// Unsupported protocol version.
    BadVersion => bad_version,
    /// Declared length wrong, or trailing bytes.
    BadLength => bad_length,
    /// Another cluster's id.
    WrongCluster => wrong_cluster,
    /// Key id not in our key file.
    UnknownKey => unknown_key,
    /// Tag does not verify: wrong key, forged or altered.
    BadTag => bad_tag,
    /// Authentic but malformed body.
    Malformed => malformed,
    /// From an address other than the peer's on that link (runtime check).
    WrongSource => wrong_source,
    /// Sent on another link than it arrived on (crossed configuration).
    WrongLink => wrong_link,
    /// Our own packet came back.
    OwnPacket => own_packet,
    /// From a node id that is not our peer.
    UnknownSender => unknown_sender,
    /// A sequence already seen (or below the replay window) in the peer's
    /// current incarnation.
    Replay => replay,
    /// Authentic and not a replay, but no proof of recent life: it does not
    /// echo our current incarnation (an old capture, or the first packet or
    /// two after either node restarted), or its evidence is older than
    /// deadtime, or it comes from an older incarnation of the peer.
    Stale => stale,
}

impl From<DecodeError> for DropReason {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Truncated { .. } => DropReason::Truncated,
            DecodeError::NotHapair => DropReason::NotHapair,
            DecodeError::BadVersion(_) => DropReason::BadVersion,
            DecodeError::BadLength { .. } => DropReason::BadLength,
            DecodeError::WrongCluster(_) => DropReason::WrongCluster,
            DecodeError::UnknownKey(_) => DropReason::UnknownKey,
            DecodeError::BadTag => DropReason::BadTag,
            DecodeError::Malformed(_) => DropReason::Malformed,
        }
    }
}

/// Counters of one link (or, summed, of all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LinkCounters {
    /// Datagrams received.
    pub received: u64,
    /// Packets accepted as evidence of life.
    pub accepted: u64,
    /// Packets sent.
    pub sent: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Datagrams dropped, by reason.
    pub drops: Drops,
}

impl LinkCounters {
    fn add(&mut self, o: &LinkCounters) {
        self.received += o.received;
        self.accepted += o.accepted;
        self.sent += o.sent;
        self.send_errors += o.send_errors;
        self.drops.add(&o.drops);
    }
}

/// A snapshot for `hapair status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Our incarnation.
    pub incarnation: Incarnation,
    /// The peer.
    pub peer: PeerStatus,
    /// Each link.
    pub links: Vec<LinkStatus>,
    /// All links summed.
    pub totals: LinkCounters,
}

/// The peer in a [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// Alive, dead, unknown.
    pub state: PeerState,
    /// Its accepted incarnation.
    pub incarnation: Option<Incarnation>,
    /// Newest evidence of life (our clock).
    pub last_heard: Option<Millis>,
    /// What it last said about itself.
    pub view: Option<NodeView>,
    /// Whether it sees us alive.
    pub sees_us: Option<bool>,
    /// Whether its config hash equals ours.
    pub config_match: Option<bool>,
}

/// One link in a [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkStatus {
    /// Up, late, down.
    pub state: LinkState,
    /// Newest evidence of life on it (our clock).
    pub last_heard: Option<Millis>,
    /// Counters.
    pub counters: LinkCounters,
    /// Round trip of the newest accepted packet on this link: our clock now
    /// minus its evidence time (the echoed send time plus the peer's hold),
    /// in whole milliseconds.
    pub rtt: Option<Millis>,
}

#[derive(Debug, Clone)]
struct Link {
    state: LinkState,
    last: Option<Millis>,
    rtt: Option<Millis>,
    next_send: Millis,
    last_send: Option<Millis>,
    counters: LinkCounters,
}

/// A packet we received and may echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    incarnation: Incarnation,
    seq: u64,
    sent_at: u64,
    received: Millis,
}

impl Slot {
    fn of(p: &Packet, received: Millis) -> Slot {
        Slot {
            incarnation: p.incarnation,
            seq: p.seq,
            sent_at: p.sent_at,
            received,
        }
    }
    fn echo(&self, now: Millis) -> Echo {
        Echo {
            incarnation: self.incarnation,
            seq: self.seq,
            sent_at: self.sent_at,
            hold_ms: u32::try_from(now.0.saturating_sub(self.received.0)).unwrap_or(u32::MAX),
        }
    }
}

#[derive(Debug, Clone)]
struct Current {
    incarnation: Incarnation,
    window: ReplayWindow,
    newest: Option<Slot>,
}

#[derive(Debug, Clone)]
struct Peer {
    state: PeerState,
    current: Option<Current>,
    candidate: Option<Slot>,
    max_evidence: Option<Millis>,
    view: Option<(NodeView, bool)>,
    config_match: Option<bool>,
}

/// The membership state machine of one node. See the module docs.
#[derive(Debug, Clone)]
pub struct Membership {
    cfg: Config,
    keys: Keyring,
    incarnation: Incarnation,
    next_seq: u64,
    conflict_reported: bool,
    view: NodeView,
    started: Millis,
    now: Millis,
    links: Vec<Link>,
    peer: Peer,
}

impl Membership {
    /// A machine started at `now` with a random `incarnation`. The first
    /// packets go out on the first [`Membership::handle`] call, on every
    /// link at once (see `send_due`).
    pub fn new(
        cfg: Config,
        keys: Keyring,
        incarnation: Incarnation,
        view: NodeView,
        now: Millis,
    ) -> Result<Membership, ConfigError> {
        cfg.validate()?;
        let links = (0..cfg.links)
            .map(|_| Link {
                state: LinkState::Unknown,
                last: None,
                rtt: None,
                next_send: now,
                last_send: None,
                counters: LinkCounters::default(),
            })
            .collect();
        Ok(Membership {
            cfg,
            keys,
            incarnation,
            next_seq: 1,
            conflict_reported: false,
            view,
            started: now,
            now,
            links,
            peer: Peer {
                state: PeerState::Unknown,
                current: None,
                candidate: None,
                max_evidence: None,
                view: None,
                config_match: None,
            },
        })
    }

    /// Our incarnation.
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The peer's state.
    pub fn peer_state(&self) -> PeerState {
        self.peer.state
    }

    /// A link's state.
    pub fn link_state(&self, link: usize) -> Option<LinkState> {
        self.links.get(link).map(|l| l.state)
    }

    /// The latest time at which [`Input::Tick`] must be handled: the next
    /// send, or the next state change if nothing arrives.
    pub fn next_deadline(&self) -> Millis {
        let t = self.cfg.timing;
        let initdead = self.started.plus(t.initdead);
        let mut d = self
            .links
            .iter()
            .map(|l| l.next_send)
            .min()
            .unwrap_or(initdead);
        for l in &self.links {
            let due = match (l.state, l.last) {
                (LinkState::Unknown, _) => Some(initdead),
                (LinkState::Up, Some(last)) => Some(last.plus(t.warntime)),
                (LinkState::Warn, Some(last)) => Some(last.plus(t.deadtime)),
                _ => None,
            };
            if let Some(due) = due {
                d = d.min(due);
            }
        }
        if self.peer.state == PeerState::Unknown {
            d = d.min(initdead);
        }
        d
    }

    /// Handles one input at `now` (earlier times than a previous call are
    /// treated as that time). Timers due by `now` fire first.
    pub fn handle(&mut self, now: Millis, input: Input<'_>) -> Vec<Output> {
        let now = now.max(self.now);
        self.now = now;
        let mut out = Vec::new();
        self.advance(now, &mut out);
        match input {
            Input::Tick => {}
            Input::Datagram { link, bytes } => self.on_datagram(now, link, bytes, &mut out),
            Input::Rejected { link, reason } => {
                if let Some(l) = self.links.get_mut(link) {
                    l.counters.received += 1;
                    l.counters.drops.bump(reason);
                }
            }
            Input::SendFailed { link } => {
                if let Some(l) = self.links.get_mut(link) {
                    l.counters.send_errors += 1;
                }
            }
            Input::View(v) => {
                if v != self.view {
                    // a renewal only moves the lease counter: the next
                    // regular packet carries it (within a keepalive); any
                    // other change (role, holder, stack, config, request)
                    // goes out at once
                    let mut same = v;
                    same.lease.counter = self.view.lease.counter;
                    let prompt = same != self.view;
                    self.view = v;
                    if prompt {
                        self.check_config(&mut out);
                        // local and rare: no rate limit, every link at once
                        for l in &mut self.links {
                            l.next_send = now;
                        }
                    }
                }
            }
            Input::Keys(k) => self.keys = k,
            Input::Reincarnate(inc) => {
                self.incarnation = inc;
                self.next_seq = 1;
                self.conflict_reported = false;
                for i in 0..self.links.len() {
                    self.prompt(now, i);
                }
            }
        }
        self.send_due(now, &mut out);
        out
    }

    /// A snapshot of states and counters.
    pub fn status(&self) -> Status {
        let mut totals = LinkCounters::default();
        for l in &self.links {
            totals.add(&l.counters);
        }
        Status {
            incarnation: self.incarnation,
            peer: PeerStatus {
                state: self.peer.state,
                incarnation: self.peer.current.as_ref().map(|c| c.incarnation),
                last_heard: self.peer.max_evidence,
                view: self.peer.view.map(|v| v.0),
                sees_us: self.peer.view.map(|v| v.1),
                config_match: self.peer.config_match,
            },
            links: self
                .links
                .iter()
                .map(|l| LinkStatus {
                    state: l.state,
                    last_heard: l.last,
                    counters: l.counters,
                    rtt: l.rtt,
                })
                .collect(),
            totals,
        }
    }

    fn link_state_at(&self, now: Millis, l: &Link) -> LinkState {
        let t = self.cfg.timing;
        match l.last {
            None if now >= self.started.plus(t.initdead) => LinkState::Down,
            None => LinkState::Unknown,
            Some(last) => {
                let age = now.minus(last);
                if age < t.warntime {
                    LinkState::Up
                } else if age < t.deadtime {
                    LinkState::Warn
                } else {
                    LinkState::Down
                }
            }
        }
    }

    /// Re-evaluates link and peer states at `now`.
    fn advance(&mut self, now: Millis, out: &mut Vec<Output>) {
        for i in 0..self.links.len() {
            self.update_link(now, i, out);
        }
        let t = self.cfg.timing;
        match self.peer.state {
            PeerState::Alive => {
                // alive while some link is up or late; a link never heard
                // (still unknown within initdead) does not keep it alive
                if !self
                    .links
                    .iter()
                    .any(|l| matches!(l.state, LinkState::Up | LinkState::Warn))
                {
                    self.peer.state = PeerState::Dead;
                    out.push(Output::Event(Event::PeerDead {
                        last_heard: self.peer.max_evidence,
                    }));
                }
            }
            PeerState::Unknown if now >= self.started.plus(t.initdead) => {
                self.peer.state = PeerState::Dead;
                out.push(Output::Event(Event::PeerDead { last_heard: None }));
            }
            PeerState::Unknown | PeerState::Dead => {}
        }
    }

    fn update_link(&mut self, now: Millis, i: usize, out: &mut Vec<Output>) {
        let new = self.link_state_at(now, &self.links[i]);
        let l = &mut self.links[i];
        if new == l.state {
            return;
        }
        l.state = new;
        let silent = l.last.map(|t| now.minus(t));
        out.push(Output::Event(match new {
            LinkState::Up => Event::LinkUp { link: i },
            LinkState::Warn => Event::LinkWarn {
                link: i,
                silent: silent.unwrap_or_default(),
            },
            LinkState::Down => Event::LinkDown { link: i, silent },
            LinkState::Unknown => unreachable!("a link never returns to unknown"),
        }));
    }

    fn count_drop(&mut self, link: usize, r: DropReason) {
        self.links[link].counters.drops.bump(r);
    }

    fn on_datagram(&mut self, now: Millis, link: usize, bytes: &[u8], out: &mut Vec<Output>) {
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        l.counters.received += 1;
        let p = match proto::open(bytes, self.cfg.cluster, &self.keys) {
            Ok(o) => o.packet,
            Err(e) => return self.count_drop(link, e.into()),
        };
        if p.sender == self.cfg.local {
            return self.count_drop(link, DropReason::OwnPacket);
        }
        if p.sender != self.cfg.peer {
            return self.count_drop(link, DropReason::UnknownSender);
        }
        if usize::from(p.link) != link {
            return self.count_drop(link, DropReason::WrongLink);
        }
        let evidence = match self.evidence(now, &p) {
            Ok(e) => e,
            Err(()) => {
                if !self.conflict_reported {
                    self.conflict_reported = true;
                    out.push(Output::Event(Event::IncarnationConflict {
                        incarnation: self.incarnation,
                    }));
                }
                return self.count_drop(link, DropReason::Stale);
            }
        };
        let deadtime = self.cfg.timing.deadtime;
        let fresh = evidence.filter(|e| now.minus(*e) < deadtime);

        let same = self
            .peer
            .current
            .as_ref()
            .is_some_and(|c| c.incarnation == p.incarnation);
        if same {
            let cur = self.peer.current.as_mut().expect("checked above");
            match cur.window.accept(p.seq) {
                Verdict::Replay | Verdict::TooOld => self.count_drop(link, DropReason::Replay),
                Verdict::New { newest } => match fresh {
                    Some(ev) => self.accept(now, link, &p, ev, newest, None, out),
                    None => {
                        // the peer has not heard our current incarnation (we
                        // reincarnated): answer soon
                        self.count_drop(link, DropReason::Stale);
                        self.prompt(now, link);
                    }
                },
            }
            return;
        }
        match fresh {
            Some(ev) if self.peer.max_evidence.is_none_or(|m| ev > m) => {
                let previous = self.peer.current.take().map(|c| c.incarnation);
                let mut window = ReplayWindow::new();
                window.accept(p.seq);
                self.peer.current = Some(Current {
                    incarnation: p.incarnation,
                    window,
                    newest: None,
                });
                if self
                    .peer
                    .candidate
                    .is_some_and(|c| c.incarnation == p.incarnation)
                {
                    self.peer.candidate = None;
                }
                let contact = match previous {
                    Some(previous) => Contact::Restarted { previous },
                    None => Contact::First,
                };
                self.accept(now, link, &p, ev, true, Some(contact), out);
                // let the new incarnation see itself accepted soon
                self.prompt(now, link);
            }
            _ => {
                // Proves nothing (yet). Keep the newest such packet as the
                // candidate our packets echo: that is how a restarted peer
                // gets its incarnation echoed. A replayed capture lands here
                // too; it can delay a handshake but not fake liveness.
                // Another incarnation replaces the candidate only once it
                // has been held for a keepalive, so it is echoed on every
                // link; replays of older incarnations cannot keep the real
                // one out.
                let newer = match self.peer.candidate {
                    Some(c) if c.incarnation == p.incarnation => p.seq > c.seq,
                    Some(c) => now.minus(c.received) >= self.cfg.timing.keepalive,
                    None => true,
                };
                if newer {
                    self.peer.candidate = Some(Slot::of(&p, now));
                }
                self.count_drop(link, DropReason::Stale);
                self.prompt(now, link);
            }
        }
    }

    /// Evidence time of a packet: the newest `sent_at + hold` among its
    /// echoes of our current incarnation (capped at `now`). `Err` when an
    /// echo names a sequence we have not sent or a time in our future.
    fn evidence(&self, now: Millis, p: &Packet) -> Result<Option<Millis>, ()> {
        let mut best: Option<Millis> = None;
        for e in [p.echo, p.candidate].into_iter().flatten() {
            if e.incarnation != self.incarnation {
                continue;
            }
            if e.seq >= self.next_seq || e.sent_at > now.0 {
                return Err(());
            }
            let ev = Millis(e.sent_at.saturating_add(u64::from(e.hold_ms)).min(now.0));
            best = best.max(Some(ev));
        }
        Ok(best)
    }

    #[allow(clippy::too_many_arguments)]
    fn accept(
        &mut self,
        now: Millis,
        link: usize,
        p: &Packet,
        evidence: Millis,
        newest: bool,
        contact: Option<Contact>,
        out: &mut Vec<Output>,
    ) {
        let l = &mut self.links[link];
        l.counters.accepted += 1;
        l.last = l.last.max(Some(evidence));
        l.rtt = Some(now.minus(evidence));
        self.peer.max_evidence = self.peer.max_evidence.max(Some(evidence));
        self.update_link(now, link, out);

        let cur = self
            .peer
            .current
            .as_mut()
            .expect("accept() is only called with a current incarnation");
        match (self.peer.state, contact) {
            (PeerState::Alive, None) => {}
            (PeerState::Alive, Some(contact)) => out.push(Output::Event(Event::PeerAlive {
                incarnation: cur.incarnation,
                contact,
            })),
            (PeerState::Unknown | PeerState::Dead, contact) => {
                self.peer.state = PeerState::Alive;
                out.push(Output::Event(Event::PeerAlive {
                    incarnation: cur.incarnation,
                    contact: contact.unwrap_or(Contact::Returned),
                }));
            }
        }
        if newest {
            cur.newest = Some(Slot::of(p, now));
            let v = (p.view, p.sees_peer);
            if self.peer.view != Some(v) {
                self.peer.view = Some(v);
                out.push(Output::Event(Event::PeerView {
                    view: p.view,
                    sees_us: p.sees_peer,
                }));
            }
            self.check_config(out);
        }
    }

    fn check_config(&mut self, out: &mut Vec<Output>) {
        let Some((theirs, _)) = self.peer.view else {
            return;
        };
        let ok = theirs.config == self.view.config;
        if self.peer.config_match == Some(ok) {
            return;
        }
        let first = self.peer.config_match.is_none();
        self.peer.config_match = Some(ok);
        if !ok {
            out.push(Output::Event(Event::ConfigMismatch {
                ours: self.view.config,
                theirs: theirs.config,
            }));
        } else if !first {
            out.push(Output::Event(Event::ConfigMatch));
        }
    }

    /// Sends on `link` now instead of at its next keepalive, unless it sent
    /// less than keepalive / 4 ago (so no input can make us flood).
    fn prompt(&mut self, now: Millis, link: usize) {
        let gap = Millis((self.cfg.timing.keepalive.0 / 4).max(1));
        let l = &mut self.links[link];
        if l.last_send.is_none_or(|t| now.minus(t) >= gap) && l.next_send > now {
            l.next_send = now;
        }
    }

    /// Sends on every link that is due, and then also on every link due
    /// within the next keepalive / 2: the links' packets leave together,
    /// one wakeup of the sender per keepalive rather than one per link and
    /// keepalive (an idle daemon's CPU is mostly its wakeups). Each link
    /// still sends at least once per keepalive, and a prompt reply on one
    /// link pulls the others back into step at the next keepalive.
    fn send_due(&mut self, now: Millis, out: &mut Vec<Output>) {
        let keepalive = self.cfg.timing.keepalive;
        if self.links.iter().all(|l| l.next_send > now) {
            return;
        }
        let horizon = now.plus(Millis(keepalive.0 / 2));
        for i in 0..self.links.len() {
            if self.links[i].next_send > horizon {
                continue;
            }
            let packet = Packet {
                sender: self.cfg.local,
                incarnation: self.incarnation,
                seq: self.next_seq,
                sent_at: now.0,
                link: u8::try_from(i).expect("at most MAX_LINKS links"),
                sees_peer: self.peer.state == PeerState::Alive,
                echo: self
                    .peer
                    .current
                    .as_ref()
                    .and_then(|c| c.newest)
                    .map(|s| s.echo(now)),
                candidate: self
                    .peer
                    .candidate
                    .filter(|s| now.minus(s.received) < self.cfg.timing.deadtime)
                    .map(|s| s.echo(now)),
                view: self.view,
            };
            self.next_seq += 1;
            let l = &mut self.links[i];
            l.last_send = Some(now);
            l.counters.sent += 1;
            // a due link keeps its cadence; one sent early re-aligns
            l.next_send = if l.next_send <= now {
                l.next_send.plus(keepalive)
            } else {
                now.plus(keepalive)
            };
            if l.next_send <= now {
                l.next_send = now.plus(keepalive);
            }
            out.push(Output::Send {
                link: i,
                packet: proto::seal(self.cfg.cluster, &packet, &self.keys),
            });
        }
    }
}
