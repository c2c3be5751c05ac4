//! The socket side of the heartbeat: one UDP socket per link, bound to its
//! own local address (and, optionally, interface), driving a pure
//! [`Membership`] machine on a thread of its own.
//!
//! One thread owns the machine and the sockets. It sleeps in `ppoll` until
//! [`Membership::next_deadline`], a datagram on any link, or a wakeup from
//! the async side (a new local view, a new key set, shutdown); it then
//! hands the input to the machine and carries out its outputs: packets go
//! out with a non-blocking `send_to` (a failure is counted, never waited
//! on), events go to the engine's channel, and a [`Status`] snapshot is
//! published on a `watch` channel. Each datagram is stamped with its
//! receive time and its source address checked against the link's peer
//! address (knet's per-link source ACL); everything else is the machine's
//! business.
//!
//! Why a thread rather than a task of the daemon's runtime: an idle pair's
//! cost is this loop's cost (a send on every link every keepalive), and a
//! thread that wakes from `ppoll` and sends costs little more than the
//! sends, where the runtime added an `epoll_wait`, a timer re-arm and a
//! second read per keepalive (issue 9's idle target). And a busy or slow
//! main loop cannot delay a heartbeat. A main loop that hangs is the
//! watchdog's business (`runtime::watchdog`): the heartbeat going on alone
//! never lets the peer take the lease, which stops being renewed.
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
use std::net::UdpSocket;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::time::TimeSpec;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{mpsc, oneshot, watch};
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
    /// The thread's wakeup descriptor (an eventfd) or the thread itself
    /// could not be created.
    #[error("cannot start the heartbeat thread: {0}")]
    Thread(std::io::Error),
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

/// One link's socket (non-blocking).
#[derive(Debug)]
pub struct LinkSocket {
    sock: UdpSocket,
}

impl LinkSocket {
    /// The address the socket is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.sock.local_addr()
    }
}

/// Creates and binds the UDP socket of one link, non-blocking.
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
    Ok(LinkSocket {
        sock: UdpSocket::from(s),
    })
}

struct Received<'a> {
    link: usize,
    from: SocketAddr,
    at: Millis,
    bytes: &'a [u8],
}

/// At most this many datagrams are read from one socket per wakeup.
const DRAIN_BATCH: usize = 64;

/// Wakes the heartbeat thread from the async side and tells it to stop;
/// dropping it stops the thread too (a cancelled [`Heartbeat::run`] must
/// not leave a thread heartbeating for a daemon that is gone).
struct Waker {
    fd: Arc<EventFd>,
    stop: Arc<AtomicBool>,
}

impl Waker {
    fn wake(&self) {
        if let Err(e) = self.fd.write(1) {
            // only a counter overflow can fail: the thread is awake anyway
            debug!(cause = %e, "heartbeat wakeup");
        }
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl Heartbeat {
    /// Binds every link and builds the machine with a fresh random
    /// incarnation.
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
    /// The machine and the sockets go to a thread of their own (see the
    /// module doc); this future only forwards new views, new key sets and
    /// the shutdown to it, and wakes for nothing else. Dropping the future
    /// stops the thread.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Status {
        let fd = match EventFd::from_value_and_flags(
            0,
            EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK,
        ) {
            Ok(fd) => Arc::new(fd),
            Err(e) => {
                error!("{}", HeartbeatError::Thread(e.into()));
                return self.machine.status();
            }
        };
        let waker = Waker {
            fd: Arc::clone(&fd),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let stop = Arc::clone(&waker.stop);
        let mut view_rx = self.view_rx.clone();
        let mut keys_rx = self.keys_rx.clone();
        let (done_tx, done_rx) = oneshot::channel();
        let fallback = self.machine.status();
        let spawned = std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                let mut hb = self;
                let status = hb.run_blocking(&fd, &stop);
                let _ = done_tx.send(status);
            });
        if let Err(e) = spawned {
            error!("{}", HeartbeatError::Thread(e));
            return fallback;
        }
        let mut shutdown = std::pin::pin!(shutdown);
        let (mut views, mut keys) = (true, true);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                r = view_rx.changed(), if views => match r {
                    Ok(()) => waker.wake(),
                    Err(_) => views = false,
                },
                r = keys_rx.changed(), if keys => match r {
                    Ok(()) => waker.wake(),
                    Err(_) => keys = false,
                },
            }
        }
        drop(waker);
        done_rx.await.unwrap_or(fallback)
    }

    /// The heartbeat thread's loop, until `stop` is set (and `wake`
    /// signalled).
    fn run_blocking(&mut self, wake: &EventFd, stop: &AtomicBool) -> Status {
        info!(
            incarnation = %self.machine.incarnation(),
            links = self.cfg.links.len(),
            "heartbeat started"
        );
        // the first packets go out now
        let first = self.machine.handle(self.clock.now(), Input::Tick);
        self.carry_out(first);

        let mut next_link = 0;
        let mut buf = vec![0u8; 2048];
        let n = self.sockets.len();
        while !stop.load(Ordering::SeqCst) {
            let deadline = self.machine.next_deadline();
            let after = self
                .clock
                .instant(deadline)
                .saturating_duration_since(Instant::now());
            let mut readable = vec![false; n];
            let woken;
            {
                let mut fds: Vec<PollFd<'_>> = self
                    .sockets
                    .iter()
                    .map(|s| PollFd::new(s.sock.as_fd(), PollFlags::POLLIN))
                    .collect();
                fds.push(PollFd::new(wake.as_fd(), PollFlags::POLLIN));
                match ppoll(&mut fds, Some(TimeSpec::from_duration(after)), None) {
                    Ok(_) => {
                        let ready = |f: &PollFd<'_>| f.any().unwrap_or(false);
                        for (r, f) in readable.iter_mut().zip(&fds) {
                            *r = ready(f);
                        }
                        woken = ready(&fds[n]);
                    }
                    Err(Errno::EINTR) => continue,
                    Err(e) => {
                        // cannot happen with valid descriptors; never spin on it
                        error!(cause = %e, "heartbeat poll failed");
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                }
            }
            // the timer first: a flood of packets must not delay our own
            if self.clock.now() >= deadline {
                let out = self.machine.handle(self.clock.now(), Input::Tick);
                self.carry_out(out);
            }
            if woken {
                // the counter only says "look": reading resets it
                let _ = wake.read();
                if self.view_rx.has_changed().unwrap_or(false) {
                    let v = *self.view_rx.borrow_and_update();
                    let out = self.machine.handle(self.clock.now(), Input::View(v));
                    self.carry_out(out);
                }
                if self.keys_rx.has_changed().unwrap_or(false) {
                    let k = self.keys_rx.borrow_and_update().clone();
                    info!(active = %k.active(), "heartbeat keys replaced");
                    let out = self.machine.handle(self.clock.now(), Input::Keys(k));
                    self.carry_out(out);
                }
            }
            // every readable link in turn, from a rotating start, so one
            // busy link cannot starve another
            for k in 0..n {
                let link = (next_link + k) % n;
                if readable[link] {
                    let out = self.drain(link, &mut buf);
                    self.carry_out(out);
                }
            }
            next_link = (next_link + 1) % n.max(1);
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
            match self.sockets[link].sock.recv_from(buf) {
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
