//! The daemon's control socket: JSON lines over a Unix stream socket
//! (protocol in [`crate::cli::proto`]).
//!
//! [`bind`] makes the socket (parent dir 0750, socket 0660, group = the admin
//! group; a stale socket is replaced only when nobody answers on it).
//! [`serve`] accepts connections, checks each peer with `SO_PEERCRED`, answers
//! `status` and `watch` itself from the `watch::Receiver<StatusReport>` the
//! daemon keeps current, and hands every other request to the daemon as a
//! [`Call`] whose `reply` carries the answer back.
//!
//! Access: uid 0, or a peer whose gid or any supplementary group (read from
//! `/proc/<pid>/status`) is the admin group's gid. When the admin group does
//! not exist, only root. Refusals and every accepted mutating request are
//! logged with uid and pid. Lines are bounded ([`Limits::max_line`]), idle
//! connections closed ([`Limits::idle_timeout`]), malformed lines answered
//! with an error that says what is wrong.
//!
//! It decides nothing: what a request does is the daemon's business.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::{Gid, Group};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{debug, info, warn};

use crate::cli::proto::{ControlRequest, ControlResponse, MAX_LINE, StatusReport};

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Peer uid (`SO_PEERCRED`).
    pub uid: u32,
    /// Peer primary gid.
    pub gid: u32,
    /// Peer pid, when the kernel gave one.
    pub pid: Option<i32>,
    /// Supplementary groups, from `/proc/<pid>/status` (empty if unreadable).
    pub groups: Vec<u32>,
}

/// A mutating request for the daemon to carry out. Answer on `reply`; a
/// dropped `reply` is reported to the client as an error.
#[derive(Debug)]
pub struct Call {
    /// The request (never `status` or `watch`: the server answers those).
    pub request: ControlRequest,
    /// Who sent it (already allowed).
    pub caller: Caller,
    /// Where the answer goes.
    pub reply: oneshot::Sender<ControlResponse>,
}

/// Who may use the socket besides root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Name of the admin group (`haclient`); `None` = root only.
    pub admin_group: Option<String>,
}

impl AccessPolicy {
    /// Root and members of `group`.
    pub fn group(group: impl Into<String>) -> Self {
        AccessPolicy {
            admin_group: Some(group.into()),
        }
    }

    /// Whether `caller` may use the socket, and if not, why (the line the
    /// client gets). Looks the group up each time, so a group made after the
    /// daemon started counts. Blocking (reads /etc/group).
    pub fn check(&self, caller: &Caller) -> Result<(), String> {
        if caller.uid == 0 {
            return Ok(());
        }
        let Some(name) = &self.admin_group else {
            return Err(format!("permission denied: uid {} is not root", caller.uid));
        };
        let denied = || {
            format!(
                "permission denied: uid {} is not root or in group {name}",
                caller.uid
            )
        };
        let gid = match Group::from_name(name) {
            Ok(Some(g)) => g.gid.as_raw(),
            Ok(None) => return Err(format!("{} (the group does not exist)", denied())),
            Err(e) => return Err(format!("{} (group lookup failed: {e})", denied())),
        };
        if caller.gid == gid || caller.groups.contains(&gid) {
            Ok(())
        } else {
            Err(denied())
        }
    }
}

/// Connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line.
    pub max_line: usize,
    /// A connection with no complete request for this long is closed; also
    /// the longest a write to a client may block.
    pub idle_timeout: Duration,
    /// How long the daemon has to answer a [`Call`].
    pub reply_timeout: Duration,
    /// `watch` sends at most one status per this interval.
    pub watch_interval: Duration,
    /// Connections served at once; more are refused.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: MAX_LINE,
            idle_timeout: Duration::from_secs(60),
            reply_timeout: Duration::from_secs(30),
            watch_interval: Duration::from_secs(1),
            max_connections: 32,
        }
    }
}

/// Creates the control socket at `path`: the parent directory (mode 0750,
/// group `group`) when missing, replaces a stale socket (one nobody answers
/// on; a live one is refused with `AddrInUse`, anything that is not a socket
/// is left alone with `AlreadyExists`), binds, chmod 0660, chgrp `group`.
/// Call inside a tokio runtime.
pub fn bind(path: &Path, group: Option<Gid>) -> io::Result<UnixListener> {
    let annotate = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(dir)
                .map_err(|e| annotate(&format!("creating {}", dir.display()), e))?;
            // The mode passed to mkdir is masked by the umask.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
            if let Some(g) = group {
                std::os::unix::fs::chown(dir, None, Some(g.as_raw()))
                    .map_err(|e| annotate(&format!("chgrp {}", dir.display()), e))?;
            }
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!(
                            "{}: another hapair daemon is listening there; stop it first",
                            path.display()
                        ),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    info!(socket = %path.display(), "removing stale control socket");
                    std::fs::remove_file(path)
                        .map_err(|e| annotate(&format!("removing {}", path.display()), e))?;
                }
                Err(e) => {
                    return Err(annotate(
                        &format!("{}: checking whether it is in use", path.display()),
                        e,
                    ));
                }
            }
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{}: exists and is not a socket; not touching it",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(annotate(&path.display().to_string(), e)),
    }
    let std_listener = std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| annotate(&format!("binding {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Some(g) = group {
        std::os::unix::fs::chown(path, None, Some(g.as_raw()))
            .map_err(|e| annotate(&format!("chgrp {}", path.display()), e))?;
    }
    std_listener.set_nonblocking(true)?;
    UnixListener::from_std(std_listener)
}

/// Serves the control socket with default [`Limits`] until the daemon drops
/// the receiving end of `handler`.
pub async fn serve(
    listener: UnixListener,
    policy: AccessPolicy,
    status: watch::Receiver<StatusReport>,
    handler: mpsc::Sender<Call>,
) {
    serve_with(listener, policy, Limits::default(), status, handler).await
}

/// [`serve`] with explicit limits.
pub async fn serve_with(
    listener: UnixListener,
    policy: AccessPolicy,
    limits: Limits,
    status: watch::Receiver<StatusReport>,
    handler: mpsc::Sender<Call>,
) {
    let policy = Arc::new(policy);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let stream = tokio::select! {
            _ = handler.closed() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends: do not spin.
                    warn!(cause = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            warn!("control socket: too many connections, refusing one");
            let conn = Conn::new(stream, limits);
            let _ = conn
                .write(&ControlResponse::error(
                    "too many control connections; try again",
                ))
                .await;
            continue;
        };
        let (policy, status, handler) = (policy.clone(), status.clone(), handler.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(stream, &policy, limits, status, handler).await {
                debug!(cause = %e, "control connection ended");
            }
        });
    }
}

/// Reads the peer's credentials and supplementary groups.
async fn caller_of(stream: &UnixStream) -> io::Result<Caller> {
    let cred = stream.peer_cred()?;
    let pid = cred.pid();
    let groups = match pid {
        Some(pid) => tokio::task::spawn_blocking(move || proc_groups(pid))
            .await
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Caller {
        uid: cred.uid(),
        gid: cred.gid(),
        pid,
        groups,
    })
}

/// Supplementary groups of `pid` from `/proc/<pid>/status` (empty when unreadable).
fn proc_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| parse_groups(&s))
        .unwrap_or_default()
}

/// The `Groups:` line of a `/proc/<pid>/status` text.
pub fn parse_groups(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

async fn connection(
    stream: UnixStream,
    policy: &Arc<AccessPolicy>,
    limits: Limits,
    status: watch::Receiver<StatusReport>,
    handler: mpsc::Sender<Call>,
) -> io::Result<()> {
    let caller = caller_of(&stream).await?;
    let mut conn = Conn::new(stream, limits);
    let verdict = {
        let (policy, c) = (policy.clone(), caller.clone());
        tokio::task::spawn_blocking(move || policy.check(&c))
            .await
            .unwrap_or_else(|e| Err(format!("permission check failed: {e}")))
    };
    if let Err(why) = verdict {
        warn!(uid = caller.uid, gid = caller.gid, pid = ?caller.pid, reason = %why,
            "control socket: refused");
        conn.write(&ControlResponse::error(why)).await?;
        // Take in what the client already sent before closing: closing a
        // Unix socket with unread data resets it, and the client could lose
        // the refusal it has not read yet.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), conn.read_line()).await;
        return Ok(());
    }
    debug!(uid = caller.uid, pid = ?caller.pid, "control connection");
    loop {
        let line = match conn.read_line().await? {
            Line::Eof => return Ok(()),
            Line::Idle => {
                debug!(uid = caller.uid, pid = ?caller.pid, "control connection idle, closing");
                return Ok(());
            }
            Line::TooLong => {
                let msg = format!(
                    "request line longer than {} bytes; closing the connection",
                    limits.max_line
                );
                return conn.write(&ControlResponse::error(msg)).await;
            }
            Line::Text(l) => l,
        };
        if line.trim().is_empty() {
            continue;
        }
        let request: ControlRequest = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                conn.write(&ControlResponse::error(malformed(&e))).await?;
                continue;
            }
        };
        match request {
            ControlRequest::Status => {
                let report = status.borrow().clone();
                conn.write(&ControlResponse::status(report)).await?;
            }
            ControlRequest::Watch => return conn.stream_status(status).await,
            request => {
                info!(uid = caller.uid, gid = caller.gid, pid = ?caller.pid,
                    request = %serde_json::to_string(&request).unwrap_or_default(),
                    "operator request");
                let resp = call(&handler, request, &caller, limits.reply_timeout).await;
                if resp.ok {
                    info!(uid = caller.uid, pid = ?caller.pid,
                        answer = resp.message.as_deref().unwrap_or(""), "operator request done");
                } else {
                    warn!(uid = caller.uid, pid = ?caller.pid,
                        error = resp.error.as_deref().unwrap_or(""), "operator request refused");
                }
                conn.write(&resp).await?;
            }
        }
    }
}

fn malformed(e: &serde_json::Error) -> String {
    format!(
        "malformed request: {e}; send one JSON object per line, e.g. {{\"cmd\":\"status\"}} \
         (commands: status, watch, standby, online, move, unmove, cleanup, maintenance, \
         fence-confirm)"
    )
}

async fn call(
    handler: &mpsc::Sender<Call>,
    request: ControlRequest,
    caller: &Caller,
    within: Duration,
) -> ControlResponse {
    let (reply, answer) = oneshot::channel();
    let c = Call {
        request,
        caller: caller.clone(),
        reply,
    };
    if handler.send(c).await.is_err() {
        return ControlResponse::error("the daemon is shutting down");
    }
    match timeout(within, answer).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(_)) => ControlResponse::error("the daemon dropped the request without an answer"),
        Err(_) => ControlResponse::error(format!(
            "no answer from the daemon within {}",
            humantime::format_duration(within)
        )),
    }
}

enum Line {
    Text(String),
    Eof,
    Idle,
    TooLong,
}

/// A connection with a bounded line reader (tokio's `net` feature only:
/// `readable` + `try_read`).
struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    limits: Limits,
}

impl Conn {
    fn new(stream: UnixStream, limits: Limits) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
            limits,
        }
    }

    async fn read_line(&mut self) -> io::Result<Line> {
        let deadline = Instant::now() + self.limits.idle_timeout;
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos;
                let rest = self.buf.split_off(end + 1);
                let mut line = std::mem::replace(&mut self.buf, rest);
                line.truncate(end);
                return Ok(Line::Text(String::from_utf8_lossy(&line).into_owned()));
            }
            scanned = self.buf.len();
            if self.buf.len() >= self.limits.max_line {
                return Ok(Line::TooLong);
            }
            match timeout(deadline - Instant::now(), self.stream.readable()).await {
                Err(_) => return Ok(Line::Idle),
                Ok(r) => r?,
            }
            let mut chunk = [0u8; 4096];
            match self.stream.try_read(&mut chunk) {
                Ok(0) => {
                    if self.buf.is_empty() {
                        return Ok(Line::Eof);
                    }
                    // A last line without a newline.
                    let line = std::mem::take(&mut self.buf);
                    return Ok(Line::Text(String::from_utf8_lossy(&line).into_owned()));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    async fn write(&self, resp: &ControlResponse) -> io::Result<()> {
        let mut line = serde_json::to_vec(resp).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut off = 0;
        let deadline = Instant::now() + self.limits.idle_timeout;
        while off < line.len() {
            match timeout(deadline - Instant::now(), self.stream.writable()).await {
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client does not read its answers",
                    ));
                }
                Ok(r) => r?,
            }
            match self.stream.try_write(&line[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `watch`: the current status now, then on each change, at most one per
    /// `watch_interval`, until the client closes or the daemon drops the sender.
    async fn stream_status(&mut self, mut status: watch::Receiver<StatusReport>) -> io::Result<()> {
        loop {
            let report = status.borrow_and_update().clone();
            self.write(&ControlResponse::status(report)).await?;
            let next = Instant::now() + self.limits.watch_interval;
            let (mut changed, mut waited) = (false, false);
            while !(changed && waited) {
                tokio::select! {
                    r = status.changed(), if !changed => {
                        if r.is_err() {
                            return Ok(());
                        }
                        changed = true;
                    }
                    () = sleep_until(next), if !waited => waited = true,
                    r = self.stream.readable() => {
                        r?;
                        let mut chunk = [0u8; 1024];
                        match self.stream.try_read(&mut chunk) {
                            Ok(0) => return Ok(()),
                            Ok(_) => {} // anything sent during a watch is ignored
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "../tests/control.rs"]
mod tests;
