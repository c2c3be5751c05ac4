//! The state source: a long-running `drbdsetup events2` child, its lines fed
//! to [`crate::events::parse_line`] and a [`Cluster`] model, published
//! through a `watch` channel ([`StateView`]) and a stream of
//! [`MonitorEvent`]s.
//!
//! The view never shows a state the monitor did not see from the current
//! child: it is [`StateView::Unknown`] from the start of each child until its
//! initial `exists` dump ends with `exists -`, and again as soon as the child
//! is gone. Each child builds its model from scratch (drbd.md 1.1: the new
//! dump is authoritative). A dead child is restarted after a backoff
//! ([`Backoff`]: 100 ms doubling to 5 s, back to 100 ms after a child that
//! was ready for a minute). An 8.4 `- skipped N` line (lost netlink
//! messages) ends the child too, so the state is read afresh.
//!
//! Bad lines (unparsable, not applicable, too long, not UTF-8) are counted
//! ([`MonitorStats::bad_lines`]) and logged, never fatal. The child is spawned
//! like [`crate::admin`] spawns commands (clean environment, own process
//! group); dropping the [`Monitor`] or calling [`Monitor::shutdown`] kills
//! its group.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::admin::{GroupGuard, child_command, kill_group, pgid_of};
use crate::events::parse_line;
use crate::model::{Cluster, Transition};
use crate::promote::View;

/// The `events2` arguments: `events2 --timestamps --statistics [--full]
/// all`. `--full` (every field on every `change` line) needs DRBD 9 utils
/// with a DRBD 9 kernel; leave it out for 8.4 kernels (`drbdsetup-84`).
pub fn events2_args(full: bool) -> Vec<String> {
    let mut v: Vec<String> = ["events2", "--timestamps", "--statistics"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if full {
        v.push("--full".into());
    }
    v.push("all".into());
    v
}

/// How the monitor runs its child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    /// The program (normally `drbdsetup`).
    pub program: PathBuf,
    /// Its arguments ([`events2_args`]).
    pub args: Vec<String>,
    /// First restart delay.
    pub backoff_initial: Duration,
    /// Longest restart delay.
    pub backoff_max: Duration,
    /// A child that was ready this long before it died counts as healthy:
    /// the next delay is `backoff_initial` again.
    pub healthy_after: Duration,
    /// Longest accepted line; longer ones are dropped and counted as bad.
    pub max_line: usize,
    /// Capacity of the event channel; events that do not fit are dropped
    /// and counted ([`MonitorStats::dropped_events`]), the view stays exact.
    pub event_capacity: usize,
}

impl MonitorConfig {
    /// `/usr/sbin/drbdsetup events2 --timestamps --statistics all`
    /// (DRBD 8.4 and 9), default backoff.
    pub fn new(drbdsetup: impl Into<PathBuf>, full: bool) -> MonitorConfig {
        MonitorConfig {
            program: drbdsetup.into(),
            args: events2_args(full),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            healthy_after: Duration::from_secs(60),
            max_line: 64 << 10,
            event_capacity: 1024,
        }
    }
}

impl Default for MonitorConfig {
    /// `/usr/sbin/drbdsetup`, without `--full` (works on 8.4 and 9).
    fn default() -> Self {
        MonitorConfig::new("/usr/sbin/drbdsetup", false)
    }
}

/// Restart delays: `initial`, doubling to `max`; back to `initial` after a
/// child that was healthy for `healthy_after`. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    healthy_after: Duration,
    next: Duration,
}

impl Backoff {
    /// A fresh schedule.
    pub fn new(initial: Duration, max: Duration, healthy_after: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            healthy_after,
            next: initial,
        }
    }

    /// The delay before the next start, given how long the child that just
    /// ended was healthy (ready).
    pub fn after_exit(&mut self, healthy_for: Duration) -> Duration {
        if healthy_for >= self.healthy_after {
            self.next = self.initial;
        }
        let d = self.next.min(self.max);
        self.next = self.next.saturating_mul(2).min(self.max);
        d
    }
}

/// Why a line was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadLine {
    /// Longer than the limit (the rest up to the newline is skipped).
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    /// Not UTF-8.
    #[error("line is not UTF-8")]
    NotUtf8,
}

/// Splits a byte stream into bounded lines. Pure.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
    skipping: bool,
}

impl LineSplitter {
    /// Lines up to `max` bytes (without the newline).
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            buf: Vec::new(),
            max,
            skipping: false,
        }
    }

    /// Feeds bytes; returns the lines they complete (without `\n`/`\r\n`).
    pub fn push(&mut self, mut data: &[u8]) -> Vec<Result<String, BadLine>> {
        let mut out = Vec::new();
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    if self.skipping {
                        self.skipping = false;
                    } else if self.buf.len() + i > self.max {
                        self.buf.clear();
                        out.push(Err(BadLine::TooLong(self.max)));
                    } else {
                        self.buf.extend_from_slice(&data[..i]);
                        if self.buf.last() == Some(&b'\r') {
                            self.buf.pop();
                        }
                        let line = std::mem::take(&mut self.buf);
                        out.push(String::from_utf8(line).map_err(|_| BadLine::NotUtf8));
                    }
                    data = &data[i + 1..];
                }
                None => {
                    if !self.skipping {
                        if self.buf.len() + data.len() > self.max {
                            self.buf.clear();
                            self.skipping = true;
                            out.push(Err(BadLine::TooLong(self.max)));
                        } else {
                            self.buf.extend_from_slice(data);
                        }
                    }
                    data = &[];
                }
            }
        }
        out
    }

    /// Bytes of an unfinished line held (dropped at EOF: a line cut by a
    /// dying child is not trusted).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Why the view is [`StateView::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", content = "detail", rename_all = "kebab-case")]
pub enum Stale {
    /// The child is running but its initial dump has not ended yet.
    Loading,
    /// The child ended (exit status and its last stderr line).
    Exited(String),
    /// The child could not be started.
    SpawnFailed(String),
    /// The child reported lost messages (`- skipped N`); restarted.
    Skipped(u64),
    /// The monitor was shut down.
    ShutDown,
}

/// What the monitor publishes.
#[derive(Debug, Clone, PartialEq)]
pub enum StateView {
    /// No complete state: nothing of a model is shown.
    Unknown {
        /// The child (1, 2, …) this refers to.
        generation: u64,
        /// Why.
        reason: Stale,
    },
    /// The model of child `generation`, complete since its `exists -`.
    Ready {
        /// The child (1, 2, …) whose stream built this model.
        generation: u64,
        /// The model.
        cluster: Arc<Cluster>,
    },
}

impl StateView {
    /// The model, if complete.
    pub fn cluster(&self) -> Option<&Cluster> {
        match self {
            StateView::Ready { cluster, .. } => Some(cluster),
            StateView::Unknown { .. } => None,
        }
    }

    /// The child generation.
    pub fn generation(&self) -> u64 {
        match self {
            StateView::Ready { generation, .. } | StateView::Unknown { generation, .. } => {
                *generation
            }
        }
    }

    /// The promotion rule's view of `resource`; an unknown state gives a
    /// view that is not ready, with every DRBD field empty.
    pub fn promote_view(&self, resource: &str, lease_held: bool, peer_fenced: bool) -> View {
        match self {
            StateView::Ready { cluster, .. } => {
                View::of(cluster, resource, lease_held, peer_fenced)
            }
            StateView::Unknown { .. } => {
                View::of(&Cluster::new(), resource, lease_held, peer_fenced)
            }
        }
    }
}

/// What happened, in order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum MonitorEvent {
    /// Child `generation` was started (or its start was tried) after
    /// waiting `delay`.
    Started {
        /// 1 for the first child.
        generation: u64,
        /// The backoff waited before this start (zero for the first).
        delay: Duration,
        /// Its PID (also its process group), `None` if the spawn failed.
        pid: Option<u32>,
    },
    /// A change of the model. Transitions of the initial dump are not sent
    /// (the view carries that state); [`Transition::Ready`] is.
    Transition {
        /// The child whose stream it came from.
        generation: u64,
        /// The line's `--timestamps` prefix.
        timestamp: Option<String>,
        /// The change.
        transition: Transition,
    },
    /// The child is gone; the view is Unknown until the next dump ends.
    Stale {
        /// The child that ended.
        generation: u64,
        /// Why.
        reason: Stale,
    },
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MonitorStats {
    /// Children started (or tried).
    pub generation: u64,
    /// Restarts (children after the first).
    pub restarts: u64,
    /// Lines that were refused.
    pub bad_lines: u64,
    /// Events dropped because the channel was full.
    pub dropped_events: u64,
}

#[derive(Debug, Default)]
struct Counters {
    generation: AtomicU64,
    restarts: AtomicU64,
    bad_lines: AtomicU64,
    dropped_events: AtomicU64,
}

/// A running monitor. Dropping it stops the task and kills the child's
/// process group.
#[derive(Debug)]
pub struct Monitor {
    view: watch::Receiver<StateView>,
    counters: Arc<Counters>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Starts the monitor task on the current tokio runtime.
    pub fn spawn(cfg: MonitorConfig) -> (Monitor, mpsc::Receiver<MonitorEvent>) {
        let (vtx, vrx) = watch::channel(StateView::Unknown {
            generation: 0,
            reason: Stale::Loading,
        });
        let (etx, erx) = mpsc::channel(cfg.event_capacity.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(cfg, vtx, etx, counters.clone(), stop_rx));
        (
            Monitor {
                view: vrx,
                counters,
                stop: Some(stop_tx),
                task: Some(task),
            },
            erx,
        )
    }

    /// A receiver of the view.
    pub fn subscribe(&self) -> watch::Receiver<StateView> {
        self.view.clone()
    }

    /// The view now.
    pub fn current(&self) -> StateView {
        self.view.borrow().clone()
    }

    /// The counters now.
    pub fn stats(&self) -> MonitorStats {
        let c = &self.counters;
        MonitorStats {
            generation: c.generation.load(Ordering::Relaxed),
            restarts: c.restarts.load(Ordering::Relaxed),
            bad_lines: c.bad_lines.load(Ordering::Relaxed),
            dropped_events: c.dropped_events.load(Ordering::Relaxed),
        }
    }

    /// Stops the task: the child's group is killed and reaped, and the view
    /// becomes `Unknown { reason: ShutDown }`.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // Dropping the sender wakes the task, which kills the group; abort
        // covers a task that is not polled again before the runtime ends
        // (dropping its future kills the group too).
        self.stop.take();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

fn emit(events: &mpsc::Sender<MonitorEvent>, counters: &Counters, ev: MonitorEvent) {
    match events.try_send(ev) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            let n = counters.dropped_events.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                dropped = n,
                "DRBD monitor event channel full; event dropped"
            );
        }
    }
}

async fn run(
    cfg: MonitorConfig,
    view: watch::Sender<StateView>,
    events: mpsc::Sender<MonitorEvent>,
    counters: Arc<Counters>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max, cfg.healthy_after);
    let mut delay = Duration::ZERO;
    let mut generation = 0u64;
    loop {
        if !delay.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = &mut stop => break,
            }
        }
        generation += 1;
        counters.generation.store(generation, Ordering::Relaxed);
        if generation > 1 {
            counters.restarts.fetch_add(1, Ordering::Relaxed);
        }
        view.send_replace(StateView::Unknown {
            generation,
            reason: Stale::Loading,
        });
        let spawned = child_command(&cfg.program, &cfg.args).spawn();
        let (reason, healthy_for) = match spawned {
            Err(e) => {
                emit(
                    &events,
                    &counters,
                    MonitorEvent::Started {
                        generation,
                        delay,
                        pid: None,
                    },
                );
                let why = format!("{}: {e}", cfg.program.display());
                tracing::warn!(generation, error = %why, "cannot start drbdsetup events2");
                (Stale::SpawnFailed(why), Duration::ZERO)
            }
            Ok(child) => {
                emit(
                    &events,
                    &counters,
                    MonitorEvent::Started {
                        generation,
                        delay,
                        pid: child.id(),
                    },
                );
                tracing::info!(generation, pid = ?child.id(), "drbdsetup events2 started");
                let mut ready_at = None;
                let fut = follow(
                    &cfg,
                    child,
                    generation,
                    &view,
                    &events,
                    &counters,
                    &mut ready_at,
                );
                tokio::select! {
                    r = fut => (r, ready_at.map_or(Duration::ZERO, |t: Instant| t.elapsed())),
                    _ = &mut stop => break,
                }
            }
        };
        view.send_replace(StateView::Unknown {
            generation,
            reason: reason.clone(),
        });
        tracing::warn!(
            generation,
            ?reason,
            "DRBD state unknown: events2 child gone"
        );
        emit(
            &events,
            &counters,
            MonitorEvent::Stale { generation, reason },
        );
        delay = backoff.after_exit(healthy_for);
    }
    view.send_replace(StateView::Unknown {
        generation,
        reason: Stale::ShutDown,
    });
}

/// Reads the next chunk; `None` at EOF or error; pends forever on `None`.
async fn read_some<R: AsyncRead + Unpin>(r: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    match r {
        Some(r) => match r.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

/// Follows one child until its stdout ends (or it reports lost messages).
/// The child's group is killed when this returns or is dropped.
async fn follow(
    cfg: &MonitorConfig,
    mut child: tokio::process::Child,
    generation: u64,
    view: &watch::Sender<StateView>,
    events: &mpsc::Sender<MonitorEvent>,
    counters: &Counters,
    ready_at: &mut Option<Instant>,
) -> Stale {
    let pgid = pgid_of(child.id());
    let _guard = GroupGuard { pgid, armed: true };
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let mut lines = LineSplitter::new(cfg.max_line);
    let mut elines = LineSplitter::new(cfg.max_line);
    let mut last_err = String::new();
    let mut obuf = vec![0u8; 16 << 10];
    let mut ebuf = vec![0u8; 4 << 10];
    let mut cluster = Cluster::new();
    let mut skipped = None;
    while out.is_some() && skipped.is_none() {
        tokio::select! {
            r = read_some(&mut out, &mut obuf) => match r {
                None => out = None,
                Some(n) => {
                    for line in lines.push(&obuf[..n]) {
                        if let Some(s) = handle_line(line, generation, &mut cluster, view, events, counters, ready_at) {
                            skipped = Some(s);
                            break;
                        }
                    }
                }
            },
            r = read_some(&mut err, &mut ebuf) => match r {
                None => err = None,
                Some(n) => {
                    for l in elines.push(&ebuf[..n]).into_iter().flatten() {
                        tracing::warn!(generation, stderr = %l, "drbdsetup events2");
                        last_err = l;
                    }
                }
            },
        }
    }
    // The child's last words may still be in the stderr pipe: read them
    // (briefly: a leftover holding the pipe open is not waited for).
    if skipped.is_none() {
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            while let Some(n) = read_some(&mut err, &mut ebuf).await {
                for l in elines.push(&ebuf[..n]).into_iter().flatten() {
                    tracing::warn!(generation, stderr = %l, "drbdsetup events2");
                    last_err = l;
                }
            }
        })
        .await;
    }
    if lines.pending() > 0 {
        counters.bad_lines.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(generation, "unterminated last events2 line dropped");
    }
    kill_group(pgid);
    if let Some(n) = skipped {
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        return Stale::Skipped(n);
    }
    let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(st)) => st.to_string(),
        Ok(Err(e)) => format!("wait failed: {e}"),
        Err(_) => "not reaped after SIGKILL".to_owned(),
    };
    if last_err.is_empty() {
        Stale::Exited(status)
    } else {
        Stale::Exited(format!("{status}: {last_err}"))
    }
}

/// Applies one line; returns `Some` when the child must be restarted.
fn handle_line(
    line: Result<String, BadLine>,
    generation: u64,
    cluster: &mut Cluster,
    view: &watch::Sender<StateView>,
    events: &mpsc::Sender<MonitorEvent>,
    counters: &Counters,
    ready_at: &mut Option<Instant>,
) -> Option<u64> {
    let bad = |what: &dyn std::fmt::Display, line: &str| {
        let n = counters.bad_lines.fetch_add(1, Ordering::Relaxed) + 1;
        let shown: String = line.chars().take(200).collect();
        tracing::warn!(generation, bad_lines = n, error = %what, line = %shown, "bad events2 line");
    };
    let line = match line {
        Ok(l) => l,
        Err(e) => {
            bad(&e, "");
            return None;
        }
    };
    let ev = match parse_line(&line) {
        Ok(ev) => ev,
        Err(e) => {
            bad(&e, &line);
            return None;
        }
    };
    let was_ready = cluster.ready();
    let transitions = match cluster.apply(&ev) {
        Ok(t) => t,
        Err(e) => {
            bad(&e, &line);
            return None;
        }
    };
    if let Some(n) = ev.skipped {
        tracing::warn!(
            generation,
            count = n,
            "events2 lost messages; re-reading state"
        );
        return Some(n);
    }
    if !cluster.ready() {
        return None;
    }
    if !was_ready {
        *ready_at = Some(Instant::now());
    }
    view.send_if_modified(|v| {
        let same = matches!(v, StateView::Ready { generation: g, cluster: c } if *g == generation && **c == *cluster);
        if !same {
            *v = StateView::Ready {
                generation,
                cluster: Arc::new(cluster.clone()),
            };
        }
        !same
    });
    for t in transitions {
        if was_ready || t == Transition::Ready {
            emit(
                events,
                counters,
                MonitorEvent::Transition {
                    generation,
                    timestamp: ev.timestamp.clone(),
                    transition: t,
                },
            );
        }
    }
    None
}

/// Which side a resolved split brain syncs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncFrom {
    /// `Sync from peer node`: this node's changes are discarded.
    Peer,
    /// `Sync from this node`: the peer's changes are discarded.
    This,
}

/// A split brain the kernel logged (drbd.md 4.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SplitBrain {
    /// `Split-Brain detected, N primaries, automatically solved. Sync from
    /// {peer|this} node` (an after-sb policy chose).
    AutoSolved {
        /// Primaries at detection (0, 1 or 2).
        primaries: u32,
        /// Sync direction.
        sync_from: SyncFrom,
    },
    /// `Split-Brain detected, manually solved. Sync from … node`
    /// (after `--discard-my-data`).
    ManuallySolved {
        /// Sync direction.
        sync_from: SyncFrom,
    },
    /// `Split-Brain detected but unresolved, dropping connection!`: the
    /// connection goes StandAlone; an operator must pick a victim.
    Unresolved,
}

/// A kernel log line reporting a split brain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SplitBrainLine {
    /// What the kernel prefixed (e.g. `drbd r0/0 drbd0 bravo` on 9,
    /// `block drbd0` on 8.4), without a dmesg timestamp.
    pub object: String,
    /// What it says.
    pub split_brain: SplitBrain,
}

/// The message of a `/dev/kmsg` record (`PRI,SEQ,USEC,FLAGS[,…];MESSAGE`
/// followed by continuation lines); a line that is not such a record is
/// returned whole.
pub fn kmsg_message(record: &str) -> &str {
    let first = record.lines().next().unwrap_or("");
    match first.split_once(';') {
        Some((head, msg))
            if head.split(',').count() >= 4
                && head
                    .split(',')
                    .take(3)
                    .all(|f| f.chars().all(|c| c.is_ascii_digit())) =>
        {
            msg
        }
        _ => first,
    }
}

/// Whether a kernel line's object (see [`SplitBrainLine::object`]) is about
/// `resource` or its device `drbd<minor>`: `block drbd0` (8.4), `drbd r0/0
/// drbd0 peer` or `drbd r0 peer` (9).
pub fn object_is(object: &str, resource: &str, minor: Option<u32>) -> bool {
    let dev = minor.map(|m| format!("drbd{m}"));
    object.split_whitespace().any(|t| {
        t == resource
            || t.strip_prefix(resource).is_some_and(|r| r.starts_with('/'))
            || dev.as_deref() == Some(t)
    })
}

/// The last split-brain report about `resource` (or device `drbd<minor>`)
/// in kernel log lines (dmesg, journal or `/dev/kmsg` records), oldest
/// first. An `Unresolved` answer means DRBD dropped the connection and
/// nothing since then said it was solved.
pub fn last_split_brain<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    resource: &str,
    minor: Option<u32>,
) -> Option<SplitBrainLine> {
    lines
        .into_iter()
        .filter_map(|l| split_brain_from_kernel_line(kmsg_message(l)))
        .filter(|l| object_is(&l.object, resource, minor))
        .last()
}

/// Recognises DRBD's `Split-Brain detected…` kernel messages in a dmesg,
/// journal or syslog line. Pure; `None` for any other line.
pub fn split_brain_from_kernel_line(line: &str) -> Option<SplitBrainLine> {
    const MARK: &str = "Split-Brain detected";
    let at = line.find(MARK)?;
    let head = line[..at].trim_end();
    let head = head.strip_suffix(':').unwrap_or(head).trim();
    // Drop a "[ 1234.567890] " dmesg stamp.
    let object = match head.strip_prefix('[').and_then(|h| h.split_once(']')) {
        Some((_, rest)) => rest.trim(),
        None => head,
    };
    let rest = line[at + MARK.len()..].trim_end();
    let sync_from = |s: &str| -> Option<SyncFrom> {
        let s = s.trim().strip_prefix("Sync from ")?;
        match s.trim_end_matches('.').trim() {
            "peer node" => Some(SyncFrom::Peer),
            "this node" => Some(SyncFrom::This),
            _ => None,
        }
    };
    let split_brain = if rest.starts_with(" but unresolved") {
        SplitBrain::Unresolved
    } else if let Some(r) = rest.strip_prefix(", manually solved.") {
        SplitBrain::ManuallySolved {
            sync_from: sync_from(r)?,
        }
    } else if let Some(r) = rest.strip_prefix(", ") {
        let (n, r) = r.split_once(" primaries, automatically solved.")?;
        SplitBrain::AutoSolved {
            primaries: n.trim().parse().ok()?,
            sync_from: sync_from(r)?,
        }
    } else {
        return None;
    };
    Some(SplitBrainLine {
        object: object.to_owned(),
        split_brain,
    })
}
