//! The socket side of the heartbeat: one UDP socket per link, bound to its
//! own local address (and, optionally, interface), driving a pure
//! [`Membership`] machine on tokio.
//!
//! One task owns the machine. It sleeps until [`Membership::next_deadline`]
//! or until a datagram, a new local view, a new key set or the shutdown
//! future arrives; it then hands the input to the machine and carries out its
//! outputs: packets go out with a non-blocking `send_to` (a failure is
//! counted, never waited on), events go to the engine's channel, and a
//! [`Status`] snapshot is published on a `watch` channel. One small reader
//! task per socket stamps each datagram with the receive time and checks its
//! source address against the link's peer address (knet's per-link source
//! ACL); everything else is the machine's business.
//!
//! Sockets set `IP_FREEBIND`, so a link whose address is not configured yet
//! (interface down at boot) binds anyway and starts working when the address
//! appears, and DSCP CS6 (network control) so switches that honour it
//! prioritise heartbeats.
//!
//! The incarnation is drawn here with `getrandom`, once per [`Heartbeat::new`]
//! and again whenever the machine reports a conflict (a restored snapshot).

#![allow(clippy::module_name_repetitions)]

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::task::Poll;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::membership::{
    self, DropReason, Event, Input, Membership, Millis, Output, Status, Timing,
};
use crate::proto::{ClusterId, Incarnation, Keyring, NodeId, NodeView};

/// The monotonic clock the heartbeat runs on: milliseconds since `base`.
/// Two nodes in one process (tests, benchmark) share a base so their event
/// times compare.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock {
            base: Instant::now(),
        }
    }
    /// A clock counting from `base`.
    pub fn with_base(base: std::time::Instant) -> Clock {
        Clock {
            base: Instant::from_std(base),
        }
    }
    /// Now, in ms since the base.
    pub fn now(&self) -> Millis {
        Millis(u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
    /// The instant of `t`.
    pub fn instant(&self, t: Millis) -> Instant {
        self.base
            .checked_add(Duration::from_millis(t.0))
            .unwrap_or_else(|| self.base + Duration::from_secs(10 * 365 * 86_400))
    }
}

/// One link: a local address to bind and the peer's address on that link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// A name for logs ("lan", "repl").
    pub name: String,
    /// Our address and port on this link.
    pub local: SocketAddr,
    /// The peer's address and port on this link.
    pub peer: SocketAddr,
    /// Bind to this interface too (`SO_BINDTODEVICE`).
    pub interface: Option<String>,
}

/// Everything the heartbeat needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// Our cluster id.
    pub cluster: ClusterId,
    /// Our node id.
    pub local: NodeId,
    /// The peer's node id.
    pub peer: NodeId,
    /// Timing.
    pub timing: Timing,
    /// The links, two or more in production.
    pub links: Vec<LinkConfig>,
}

impl HeartbeatConfig {
    /// The pure machine's configuration.
    pub fn membership(&self) -> membership::Config {
        membership::Config {
            cluster: self.cluster,
            local: self.local,
            peer: self.peer,
            links: self.links.len(),
            timing: self.timing,
        }
    }
}

/// Why the heartbeat cannot run.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    /// The configuration is refused.
    #[error(transparent)]
    Config(#[from] membership::ConfigError),
    /// A link's local and peer addresses are of different families.
    #[error(
        "link {name}: local address {local} and peer address {peer} are not of the same family"
    )]
    Family {
        /// Link name.
        name: String,
        /// Local address.
        local: SocketAddr,
        /// Peer address.
        peer: SocketAddr,
    },
    /// A socket could not be set up.
    #[error("link {name}: cannot bind {local}{}: {source}", .interface.as_ref().map(|i| format!(" on {i}")).unwrap_or_default())]
    Bind {
        /// Link name.
        name: String,
        /// Local address.
        local: SocketAddr,
        /// Interface.
        interface: Option<String>,
        /// Cause.
        source: std::io::Error,
    },
    /// The send timer (a timerfd) could not be created.
    #[error("cannot create the heartbeat timer: {0}")]
    Timer(std::io::Error),
    /// The random source failed.
    #[error("cannot draw a random incarnation: {0}")]
    Random(String),
}

/// An event with the time the machine produced it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TimedEvent {
    /// Time on the heartbeat's [`Clock`].
    pub at: Millis,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// The other end of a running [`Heartbeat`]: feed it, read it.
#[derive(Debug)]
pub struct Handle {
    /// Our state, sent in every packet (and at once when it changes).
    pub view: watch::Sender<NodeView>,
    /// The key set; replace it to rotate keys.
    pub keys: watch::Sender<Keyring>,
    /// Membership events, in order.
    pub events: mpsc::UnboundedReceiver<TimedEvent>,
    /// The latest status (counters, states).
    pub status: watch::Receiver<Status>,
}

/// A heartbeat node, bound and ready to [`run`](Heartbeat::run).
#[derive(Debug)]
pub struct Heartbeat {
    cfg: HeartbeatConfig,
    machine: Membership,
    clock: Clock,
    sockets: Vec<LinkSocket>,
    timer: SendTimer,
    view_rx: watch::Receiver<NodeView>,
    keys_rx: watch::Receiver<Keyring>,
    events_tx: mpsc::UnboundedSender<TimedEvent>,
    status_tx: watch::Sender<Status>,
}

/// Draws a random non-zero incarnation.
pub fn random_incarnation() -> Result<Incarnation, HeartbeatError> {
    loop {
        let v = getrandom::u64().map_err(|e| HeartbeatError::Random(e.to_string()))?;
        if let Some(i) = Incarnation::new(v) {
            return Ok(i);
        }
    }
}

/// Waits for readability of a non-blocking descriptor: tokio's
/// [`pipe::Receiver`] over a duplicate of it, which registers for reading
/// only and assumes nothing else of the descriptor (here a UDP socket or a
/// timerfd). A `tokio::net::UdpSocket` would also register for writing and
/// wake the thread once more after every packet, when the NIC frees it;
/// our sends never wait (a full buffer is a failed send, counted).
fn read_readiness(fd: &impl AsFd) -> std::io::Result<pipe::Receiver> {
    pipe::Receiver::from_owned_fd_unchecked(fd.as_fd().try_clone_to_owned()?)
}

/// One link's socket and its readiness.
#[derive(Debug)]
pub struct LinkSocket {
    sock: UdpSocket,
    ready: pipe::Receiver,
}

impl LinkSocket {
    /// The address the socket is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.sock.local_addr()
    }
}

/// Creates and binds the UDP socket of one link, non-blocking (call inside
/// a tokio runtime).
pub fn bind_link(l: &LinkConfig) -> Result<LinkSocket, HeartbeatError> {
    if l.local.is_ipv4() != l.peer.is_ipv4() {
        return Err(HeartbeatError::Family {
            name: l.name.clone(),
            local: l.local,
            peer: l.peer,
        });
    }
    let bind_err = |source| HeartbeatError::Bind {
        name: l.name.clone(),
        local: l.local,
        interface: l.interface.clone(),
        source,
    };
    let s = Socket::new(
        Domain::for_address(l.local),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(bind_err)?;
    if let Some(ifname) = &l.interface {
        s.bind_device(Some(ifname.as_bytes())).map_err(bind_err)?;
    }
    if l.local.is_ipv4() {
        s.set_freebind_v4(true).map_err(bind_err)?;
        // DSCP CS6; best effort, some environments refuse it
        if let Err(e) = s.set_tos_v4(0xc0) {
            debug!(link = %l.name, cause = %e, "cannot set IP_TOS");
        }
    } else {
        s.set_only_v6(true).map_err(bind_err)?;
        s.set_freebind_v6(true).map_err(bind_err)?;
    }
    s.set_nonblocking(true).map_err(bind_err)?;
    s.bind(&l.local.into()).map_err(bind_err)?;
    let sock = UdpSocket::from(s);
    let ready = read_readiness(&sock).map_err(bind_err)?;
    Ok(LinkSocket { sock, ready })
}

struct Received<'a> {
    link: usize,
    from: SocketAddr,
    at: Millis,
    bytes: &'a [u8],
}

/// The send timer: a one-shot `timerfd` on `CLOCK_MONOTONIC`, armed for
/// the machine's next deadline. tokio's timer wheel would wake the thread
/// twice for each 100 ms keepalive (once to move the entry down a level of
/// the wheel, once to fire it); the timerfd wakes it once.
struct SendTimer {
    timer: TimerFd,
    ready: pipe::Receiver,
}

impl std::fmt::Debug for SendTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendTimer").finish_non_exhaustive()
    }
}

impl SendTimer {
    fn new() -> std::io::Result<SendTimer> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        let ready = read_readiness(&timer)?;
        Ok(SendTimer { timer, ready })
    }

    /// Arms the timer to fire `after` from now (at least 1 µs: a zero
    /// value would disarm it).
    fn arm(&self, after: Duration) -> std::io::Result<()> {
        let after = after.max(Duration::from_micros(1));
        self.timer.set(
            Expiration::OneShot(TimeSpec::from_duration(after)),
            TimerSetTimeFlags::empty(),
        )?;
        Ok(())
    }

    /// Waits until the armed timer fires, and consumes the expiry.
    async fn fired(&self) -> std::io::Result<()> {
        loop {
            self.ready.readable().await?;
            let r = self.ready.try_io(|| {
                let mut buf = [0u8; 8];
                nix::unistd::read(self.timer.as_fd(), &mut buf).map_err(std::io::Error::from)
            });
            match r {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// At most this many datagrams are read from one socket per wakeup.
const DRAIN_BATCH: usize = 64;

/// Waits until one of the sockets is readable; returns its index. Polls
/// them in turn from `start` so one busy link cannot starve another.
/// The readiness stays set until a read finds the socket empty.
async fn any_readable(sockets: &[LinkSocket], start: usize) -> usize {
    std::future::poll_fn(|cx| {
        let n = sockets.len();
        for k in 0..n {
            let i = (start + k) % n;
            if sockets[i].ready.poll_read_ready(cx).is_ready() {
                return Poll::Ready(i);
            }
        }
        Poll::Pending
    })
    .await
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl Heartbeat {
    /// Binds every link and builds the machine with a fresh random
    /// incarnation. Must be called inside a tokio runtime.
    pub fn new(
        cfg: HeartbeatConfig,
        keys: Keyring,
        view: NodeView,
        clock: Clock,
    ) -> Result<(Heartbeat, Handle), HeartbeatError> {
        Self::with_incarnation(cfg, keys, view, clock, random_incarnation()?)
    }

    /// As [`Heartbeat::new`] with a given incarnation (tests).
    pub fn with_incarnation(
        cfg: HeartbeatConfig,
        keys: Keyring,
        view: NodeView,
        clock: Clock,
        incarnation: Incarnation,
    ) -> Result<(Heartbeat, Handle), HeartbeatError> {
        let machine = Membership::new(
            cfg.membership(),
            keys.clone(),
            incarnation,
            view,
            clock.now(),
        )?;
        let sockets = cfg
            .links
            .iter()
            .map(bind_link)
            .collect::<Result<Vec<_>, _>>()?;
        let timer = SendTimer::new().map_err(HeartbeatError::Timer)?;
        let (view_tx, view_rx) = watch::channel(view);
        let (keys_tx, keys_rx) = watch::channel(keys);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (status_tx, status_rx) = watch::channel(machine.status());
        Ok((
            Heartbeat {
                cfg,
                machine,
                clock,
                sockets,
                timer,
                view_rx,
                keys_rx,
                events_tx,
                status_tx,
            },
            Handle {
                view: view_tx,
                keys: keys_tx,
                events: events_rx,
                status: status_rx,
            },
        ))
    }

    /// Our incarnation.
    pub fn incarnation(&self) -> Incarnation {
        self.machine.incarnation()
    }

    /// The local address each link's socket is bound to.
    pub fn local_addrs(&self) -> Vec<std::io::Result<SocketAddr>> {
        self.sockets.iter().map(LinkSocket::local_addr).collect()
    }

    /// Runs until `shutdown` completes; returns the final status.
    ///
    /// Everything happens on this one task: it wakes for a datagram on any
    /// link, the send timer, a new view or key set, and goes back to sleep;
    /// an idle pair costs one wakeup per keepalive for sending (all links'
    /// packets go out together) plus one per received packet.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Status {
        info!(
            incarnation = %self.machine.incarnation(),
            links = self.cfg.links.len(),
            "heartbeat started"
        );
        // the first packets go out now
        let first = self.machine.handle(self.clock.now(), Input::Tick);
        self.carry_out(first);

        let mut shutdown = std::pin::pin!(shutdown);
        let mut armed: Option<Millis> = None;
        let mut next_link = 0;
        let mut buf = vec![0u8; 2048];
        loop {
            let deadline = self.machine.next_deadline();
            if armed != Some(deadline) {
                let after = self
                    .clock
                    .instant(deadline)
                    .saturating_duration_since(Instant::now());
                if let Err(e) = self.timer.arm(after) {
                    // cannot happen with a valid timerfd; never spin on it
                    error!(cause = %e, "cannot arm the heartbeat timer");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                armed = Some(deadline);
            }
            let outputs = tokio::select! {
                biased;
                () = &mut shutdown => break,
                // the timer first: a flood of packets must not delay our own
                r = self.timer.fired() => {
                    if let Err(e) = r {
                        error!(cause = %e, "heartbeat timer failed");
                    }
                    armed = None;
                    self.machine.handle(self.clock.now(), Input::Tick)
                }
                link = any_readable(&self.sockets, next_link) => {
                    next_link = (link + 1) % self.sockets.len();
                    self.drain(link, &mut buf)
                }
                Ok(()) = self.view_rx.changed() => {
                    let v = *self.view_rx.borrow_and_update();
                    self.machine.handle(self.clock.now(), Input::View(v))
                }
                Ok(()) = self.keys_rx.changed() => {
                    let k = self.keys_rx.borrow_and_update().clone();
                    info!(active = %k.active(), "heartbeat keys replaced");
                    self.machine.handle(self.clock.now(), Input::Keys(k))
                }
            };
            self.carry_out(outputs);
        }
        let status = self.machine.status();
        info!(
            sent = status.totals.sent,
            accepted = status.totals.accepted,
            dropped = status.totals.drops.total(),
            "heartbeat stopped"
        );
        status
    }

    /// Reads the datagrams waiting on `link`'s socket (at most
    /// [`DRAIN_BATCH`]; the rest wait for the next turn, after the timer),
    /// each stamped with its receive time, and hands them to the machine in
    /// order.
    fn drain(&mut self, link: usize, buf: &mut [u8]) -> Vec<Output> {
        let mut out = Vec::new();
        for _ in 0..DRAIN_BATCH {
            let s = &self.sockets[link];
            match s.ready.try_io(|| s.sock.recv_from(buf)) {
                Ok((n, from)) => {
                    let at = self.clock.now();
                    out.extend(self.on_received(Received {
                        link,
                        from,
                        at,
                        bytes: &buf[..n],
                    }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // a pending socket error (reported once by the read)
                    warn!(link = %self.cfg.links[link].name, cause = %e, "heartbeat receive failed");
                    break;
                }
            }
        }
        out
    }

    fn on_received(&mut self, r: Received<'_>) -> Vec<Output> {
        let expected = self.cfg.links[r.link].peer.ip();
        if canonical(r.from.ip()) != canonical(expected) {
            debug!(link = %self.cfg.links[r.link].name, from = %r.from, "heartbeat from a foreign address");
            return self.machine.handle(
                r.at,
                Input::Rejected {
                    link: r.link,
                    reason: DropReason::WrongSource,
                },
            );
        }
        self.machine.handle(
            r.at,
            Input::Datagram {
                link: r.link,
                bytes: r.bytes,
            },
        )
    }

    fn carry_out(&mut self, outputs: Vec<Output>) {
        let mut queue = std::collections::VecDeque::from(outputs);
        while let Some(o) = queue.pop_front() {
            match o {
                Output::Send { link, packet } => {
                    let peer = self.cfg.links[link].peer;
                    if let Err(e) = self.sockets[link].sock.send_to(&packet, peer) {
                        debug!(link = %self.cfg.links[link].name, cause = %e, "heartbeat send failed");
                        let more = self
                            .machine
                            .handle(self.clock.now(), Input::SendFailed { link });
                        queue.extend(more);
                    }
                }
                Output::Event(event) => {
                    let at = self.clock.now();
                    self.log(&event);
                    if let Event::IncarnationConflict { incarnation } = event {
                        match random_incarnation() {
                            Ok(new) => {
                                warn!(old = %incarnation, new = %new,
                                    "the peer echoed packets this process never sent (restored \
                                     from a snapshot or cloned?): new incarnation");
                                queue.extend(self.machine.handle(at, Input::Reincarnate(new)));
                            }
                            Err(e) => error!(cause = %e, "cannot draw a new incarnation"),
                        }
                    }
                    // the receiver may be gone (nobody listens): that is fine
                    let _ = self.events_tx.send(TimedEvent { at, event });
                }
            }
        }
        self.status_tx.send_replace(self.machine.status());
    }

    fn log(&self, event: &Event) {
        let name = |i: usize| self.cfg.links.get(i).map_or("?", |l| l.name.as_str());
        match event {
            Event::LinkUp { link } => info!(link = name(*link), "link up"),
            Event::LinkWarn { link, silent } => {
                warn!(link = name(*link), silent = %silent, "late heartbeat")
            }
            Event::LinkDown { link, silent } => {
                let silent = silent.map_or_else(|| "never heard".to_owned(), |s| s.to_string());
                warn!(link = name(*link), silent = %silent, "link down")
            }
            Event::PeerAlive {
                incarnation,
                contact,
            } => info!(peer_incarnation = %incarnation, contact = ?contact, "peer alive"),
            Event::PeerDead { last_heard } => {
                let last = last_heard.map_or_else(|| "never".to_owned(), |s| s.to_string());
                warn!(last_heard = %last, "peer dead on every link")
            }
            Event::PeerView { view, sees_us } => {
                debug!(role = ?view.role, sees_us, "peer view")
            }
            Event::ConfigMismatch { ours, theirs } => {
                error!(ours = %ours, theirs = %theirs, "the peer runs another configuration")
            }
            Event::ConfigMatch => info!("configurations agree again"),
            Event::IncarnationConflict { .. } => {}
        }
    }
}

#[cfg(test)]
#[path = "../tests/netns.rs"]
#[allow(dead_code)]
mod netns;

#[cfg(test)]
#[path = "../tests/heartbeat_netns.rs"]
mod netns_tests;
