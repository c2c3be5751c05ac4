//! sd_notify without libsystemd: datagrams to `$NOTIFY_SOCKET`.
//!
//! The protocol (sd_notify(3)): one datagram per notification, newline
//! separated `KEY=VALUE` lines, sent to the socket named in `NOTIFY_SOCKET`,
//! a path (`/run/systemd/notify`) or an abstract name written `@name`.
//! `WATCHDOG_USEC` (and optionally `WATCHDOG_PID`) say whether the service
//! manager expects `WATCHDOG=1` and how often.
//!
//! What this does not do: it never changes our own environment (edition 2024
//! makes `remove_var` unsafe, and the library forbids unsafe). Children must
//! not see `NOTIFY_SOCKET`: every child we spawn gets a cleared environment
//! (the `ra` runner's `env_clear`), so strip it per `Command` if one does not.
//!
//! Sending is non-blocking: a full socket queue drops the notification with
//! an error rather than stalling the caller, so it may run on a tokio worker.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Errors of the notifier.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` is neither an absolute path nor `@abstract`.
    #[error("NOTIFY_SOCKET={0:?} is neither an absolute path nor an @abstract name")]
    BadAddress(OsString),
    /// Creating the socket or sending failed.
    #[error("sd_notify to {addr}: {source}")]
    Io {
        /// The socket, as written in `NOTIFY_SOCKET`.
        addr: String,
        /// The error.
        source: io::Error,
    },
}

/// A handle that sends notifications to the service manager.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
    name: String,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names; `Ok(None)` when it is unset or
    /// empty (not started by systemd with `Type=notify`).
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => Notifier::new(&v).map(Some),
        }
    }

    /// A notifier for the socket written as `NOTIFY_SOCKET` writes it: an
    /// absolute path, or `@name` for an abstract socket.
    pub fn new(socket: &OsStr) -> Result<Notifier, NotifyError> {
        let bytes = socket.as_bytes();
        let name = socket.to_string_lossy().into_owned();
        let io = |source| NotifyError::Io {
            addr: name.clone(),
            source,
        };
        let addr = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]).map_err(io)?,
            Some(b'/') => SocketAddr::from_pathname(socket).map_err(io)?,
            _ => return Err(NotifyError::BadAddress(socket.to_owned())),
        };
        let sock = UnixDatagram::unbound().map_err(io)?;
        sock.set_nonblocking(true).map_err(io)?;
        Ok(Notifier { sock, addr, name })
    }

    /// Sends one raw notification (newline-separated `KEY=VALUE` lines).
    pub fn send(&self, msg: &str) -> Result<(), NotifyError> {
        self.sock
            .send_to_addr(msg.as_bytes(), &self.addr)
            .map(drop)
            .map_err(|source| NotifyError::Io {
                addr: self.name.clone(),
                source,
            })
    }

    /// `READY=1`, with a status line.
    pub fn ready(&self, status: &str) -> Result<(), NotifyError> {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)))
    }

    /// `STATUS=…` (newlines become spaces: the protocol is line based).
    pub fn status(&self, status: &str) -> Result<(), NotifyError> {
        self.send(&format!("STATUS={}", one_line(status)))
    }

    /// `WATCHDOG=1`: the keep-alive ping.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.send("WATCHDOG=1")
    }

    /// `STOPPING=1`: the daemon has begun shutting down.
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.send("STOPPING=1")
    }

    /// `RELOADING=1` with `MONOTONIC_USEC` (as `Type=notify-reload` wants);
    /// send [`Notifier::ready`] when the reload is done.
    pub fn reloading(&self) -> Result<(), NotifyError> {
        let usec = monotonic_usec().map_err(|source| NotifyError::Io {
            addr: self.name.clone(),
            source,
        })?;
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"))
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// CLOCK_MONOTONIC in microseconds, the clock `MONOTONIC_USEC` is read on.
pub fn monotonic_usec() -> io::Result<u64> {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
    let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
    let nsec = u64::try_from(ts.tv_nsec()).unwrap_or(0);
    Ok(secs * 1_000_000 + nsec / 1000)
}

/// How often to send `WATCHDOG=1`, from `$WATCHDOG_USEC`/`$WATCHDOG_PID`:
/// half the manager's timeout, `None` when no watchdog is asked for us.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var_os("WATCHDOG_USEC").as_deref(),
        std::env::var_os("WATCHDOG_PID").as_deref(),
        std::process::id(),
    )
}

/// The rule behind [`watchdog_interval`], on given values: `usec` must be a
/// positive integer; `pid`, when set, must be `our_pid` (the variables are
/// meant for the main process only, and children may inherit them).
pub fn watchdog_interval_from(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    our_pid: u32,
) -> Option<Duration> {
    let usec: u64 = usec?.to_str()?.parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(pid) = pid {
        let pid: u32 = pid.to_str()?.parse().ok()?;
        if pid != our_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("no notification arrived");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn exercise(n: &Notifier, rx: &UnixDatagram) {
        n.ready("up: 2 links\nlease held").unwrap();
        assert_eq!(recv(rx), "READY=1\nSTATUS=up: 2 links lease held");
        n.status("primary").unwrap();
        assert_eq!(recv(rx), "STATUS=primary");
        n.watchdog().unwrap();
        assert_eq!(recv(rx), "WATCHDOG=1");
        n.stopping().unwrap();
        assert_eq!(recv(rx), "STOPPING=1");
        let before = monotonic_usec().unwrap();
        n.reloading().unwrap();
        let msg = recv(rx);
        let after = monotonic_usec().unwrap();
        let usec: u64 = msg
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .unwrap_or_else(|| panic!("{msg:?}"))
            .parse()
            .unwrap();
        assert!(before <= usec && usec <= after, "{before} {usec} {after}");
    }

    #[test]
    fn path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(path.as_os_str()).unwrap();
        exercise(&n, &rx);
    }

    #[test]
    fn abstract_socket() {
        let name = format!("hapair-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::new(OsStr::new(&format!("@{name}"))).unwrap();
        exercise(&n, &rx);
    }

    #[test]
    fn bad_addresses_and_absent_receiver() {
        for bad in ["", "relative/path", "notify"] {
            assert!(
                matches!(
                    Notifier::new(OsStr::new(bad)),
                    Err(NotifyError::BadAddress(_))
                ),
                "{bad:?}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let n = Notifier::new(dir.path().join("nobody").as_os_str()).unwrap();
        let e = n.watchdog().unwrap_err();
        assert!(e.to_string().contains("nobody"), "{e}");
    }

    #[test]
    fn full_queue_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let _rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(path.as_os_str()).unwrap();
        // nobody reads: the queue fills and send reports WouldBlock
        let mut sent = 0;
        let err = loop {
            match n.status(&"x".repeat(1000)) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 1_000_000, "queue never filled");
        };
        assert!(sent > 0);
        assert!(
            matches!(&err, NotifyError::Io { source, .. } if source.kind() == io::ErrorKind::WouldBlock),
            "{err}"
        );
    }

    #[test]
    fn watchdog_interval_rules() {
        let s = |v: &'static str| Some(OsStr::new(v));
        assert_eq!(
            watchdog_interval_from(s("10000000"), None, 42),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            watchdog_interval_from(s("3000"), s("42"), 42),
            Some(Duration::from_micros(1500))
        );
        assert_eq!(watchdog_interval_from(s("3000"), s("43"), 42), None);
        assert_eq!(watchdog_interval_from(s("3000"), s("x"), 42), None);
        assert_eq!(watchdog_interval_from(s("0"), None, 42), None);
        assert_eq!(watchdog_interval_from(s("-5"), None, 42), None);
        assert_eq!(watchdog_interval_from(None, s("42"), 42), None);
    }
}
