//! Metrics: a small registry and an optional Prometheus text endpoint.
//!
//! [`Metrics`] holds counters, gauges and histograms (fixed buckets), each
//! series keyed by a small sorted label list, behind one `Mutex` held only
//! for a map update or a render (never across an await). The daemon calls
//! the named methods ([`Metrics::heartbeat_rtt`], [`Metrics::failover_step`],
//! …); the generic ones ([`Metrics::counter_add`], [`Metrics::observe`], …)
//! are there for metrics added later.
//!
//! [`serve`] answers `GET /metrics` with the text exposition format 0.0.4 on
//! a listener the caller binds. It is a minimal HTTP/1.1 server: one request
//! per connection, `Connection: close`, request head limited to
//! [`ServeOptions::max_request`] bytes and [`ServeOptions::read_timeout`],
//! at most [`ServeOptions::max_connections`] at once; 404 for other paths,
//! 405 for other methods. It decides nothing and reads no state but the
//! registry, so a scrape can never disturb the pair.
//!
//! Metric names (all prefixed `hapair_`):
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `hapair_heartbeat_rtt_seconds` | histogram | `link` |
//! | `hapair_heartbeat_loss_ratio` | gauge | `link` |
//! | `hapair_packets_dropped_total` | counter | `reason` |
//! | `hapair_lease_renewal_seconds` | histogram | |
//! | `hapair_lease_renewal_age_seconds` | gauge (computed at scrape) | |
//! | `hapair_failovers_total` | counter | |
//! | `hapair_failover_step_seconds` | histogram | `step` |
//! | `hapair_agent_call_seconds` | histogram | `resource`, `op` |
//! | `hapair_agent_calls_total` | counter | `resource`, `op`, `outcome` |
//! | `hapair_self_fences_total` | counter | `reason` |
//! | `hapair_fence_attempts_total` | counter | `level`, `outcome` |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{debug, warn};

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted into fixed buckets, with a sum and a count.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A series' labels: (name, value) pairs sorted by name.
pub type LabelSet = Vec<(&'static str, String)>;

#[derive(Debug, Clone)]
enum Value {
    Scalar(f64),
    Hist {
        /// per-bucket (non-cumulative) counts; the last is +Inf
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: Kind,
    buckets: &'static [f64],
    series: BTreeMap<LabelSet, Value>,
}

/// The steps of a failover, as the `step` label of
/// `hapair_failover_step_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverStep {
    /// Noticing the peer is gone.
    Detect,
    /// Fencing the peer.
    Fence,
    /// Taking the lease.
    Lease,
    /// Promoting DRBD.
    Promote,
    /// Mounting the filesystem.
    Mount,
    /// Bringing up the address.
    Address,
    /// Starting the service.
    Service,
}

impl FailoverStep {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverStep::Detect => "detect",
            FailoverStep::Fence => "fence",
            FailoverStep::Lease => "lease",
            FailoverStep::Promote => "promote",
            FailoverStep::Mount => "mount",
            FailoverStep::Address => "address",
            FailoverStep::Service => "service",
        }
    }
}

/// Buckets for heartbeat round trips (seconds).
pub const RTT_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Buckets for lease renewals (seconds).
pub const LEASE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for failover steps and agent calls (seconds).
pub const SLOW_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Metric names.
pub mod names {
    /// Heartbeat round trip per link.
    pub const HEARTBEAT_RTT: &str = "hapair_heartbeat_rtt_seconds";
    /// Heartbeat loss per link.
    pub const HEARTBEAT_LOSS: &str = "hapair_heartbeat_loss_ratio";
    /// Packets dropped by reason.
    pub const PACKETS_DROPPED: &str = "hapair_packets_dropped_total";
    /// Lease renewal latency.
    pub const LEASE_RENEWAL: &str = "hapair_lease_renewal_seconds";
    /// Time since the last lease renewal.
    pub const LEASE_RENEWAL_AGE: &str = "hapair_lease_renewal_age_seconds";
    /// Failovers.
    pub const FAILOVERS: &str = "hapair_failovers_total";
    /// Failover step durations.
    pub const FAILOVER_STEP: &str = "hapair_failover_step_seconds";
    /// Agent call durations.
    pub const AGENT_CALL: &str = "hapair_agent_call_seconds";
    /// Agent call outcomes.
    pub const AGENT_CALLS: &str = "hapair_agent_calls_total";
    /// Self-fences.
    pub const SELF_FENCES: &str = "hapair_self_fences_total";
    /// Fence attempts.
    pub const FENCE_ATTEMPTS: &str = "hapair_fence_attempts_total";
}

#[derive(Debug, Default)]
struct Inner {
    families: BTreeMap<&'static str, Family>,
    last_renewal: Option<Instant>,
}

/// The registry. Thread-safe; share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn labels(l: &[(&'static str, &str)]) -> LabelSet {
    let mut v: LabelSet = l.iter().map(|&(k, v)| (k, v.to_owned())).collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

impl Metrics {
    /// A registry with every hapair family described.
    pub fn new() -> Metrics {
        use names::*;
        let m = Metrics {
            inner: Mutex::new(Inner::default()),
        };
        let h = |n, help, b| m.describe(n, help, Kind::Histogram, b);
        h(
            HEARTBEAT_RTT,
            "Heartbeat round trip time per link.",
            RTT_BUCKETS,
        );
        h(
            LEASE_RENEWAL,
            "Lease renewal latency (write confirmed).",
            LEASE_BUCKETS,
        );
        h(
            FAILOVER_STEP,
            "Duration of each failover step.",
            SLOW_BUCKETS,
        );
        h(AGENT_CALL, "Resource agent call duration.", SLOW_BUCKETS);
        let g = |n, help| m.describe(n, help, Kind::Gauge, &[]);
        g(HEARTBEAT_LOSS, "Heartbeat loss ratio per link (0..1).");
        g(
            LEASE_RENEWAL_AGE,
            "Seconds since the last successful lease renewal.",
        );
        let c = |n, help| m.describe(n, help, Kind::Counter, &[]);
        c(PACKETS_DROPPED, "Heartbeat packets dropped, by reason.");
        c(FAILOVERS, "Failovers this node took part in.");
        c(AGENT_CALLS, "Resource agent calls, by outcome.");
        c(SELF_FENCES, "Self-fences, by reason.");
        c(
            FENCE_ATTEMPTS,
            "Fence attempts against the peer, by level and outcome.",
        );
        m.counter_add(FAILOVERS, &[], 0.0);
        m
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Describes a family (`buckets` only for histograms, ascending). A
    /// second description of the same name replaces help and buckets.
    pub fn describe(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        buckets: &'static [f64],
    ) {
        debug_assert!(buckets.windows(2).all(|w| w[0] < w[1]), "{name}: buckets");
        self.lock().families.insert(
            name,
            Family {
                help,
                kind,
                buckets,
                series: BTreeMap::new(),
            },
        );
    }

    fn with_series(
        &self,
        name: &str,
        kind: Kind,
        l: &[(&'static str, &str)],
        f: impl FnOnce(&mut Value),
    ) {
        let mut inner = self.lock();
        let Some(fam) = inner.families.get_mut(name) else {
            debug_assert!(false, "metric {name} not described");
            return;
        };
        if fam.kind != kind {
            debug_assert!(false, "metric {name} is a {:?}, not a {kind:?}", fam.kind);
            return;
        }
        let n = fam.buckets.len() + 1;
        let v = fam.series.entry(labels(l)).or_insert_with(|| match kind {
            Kind::Histogram => Value::Hist {
                counts: vec![0; n],
                sum: 0.0,
                count: 0,
            },
            _ => Value::Scalar(0.0),
        });
        f(v);
    }

    /// Adds `by` (≥ 0) to a counter.
    pub fn counter_add(&self, name: &str, labels: &[(&'static str, &str)], by: f64) {
        self.with_series(name, Kind::Counter, labels, |v| {
            if let Value::Scalar(x) = v {
                *x += by.max(0.0);
            }
        });
    }

    /// Sets a gauge.
    pub fn gauge_set(&self, name: &str, labels: &[(&'static str, &str)], value: f64) {
        self.with_series(name, Kind::Gauge, labels, |v| {
            if let Value::Scalar(x) = v {
                *x = value;
            }
        });
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, name: &str, labels: &[(&'static str, &str)], value: f64) {
        let buckets = match self.lock().families.get(name) {
            Some(f) => f.buckets,
            None => &[],
        };
        let i = buckets
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(buckets.len());
        self.with_series(name, Kind::Histogram, labels, |v| {
            if let Value::Hist { counts, sum, count } = v {
                if let Some(c) = counts.get_mut(i) {
                    *c += 1;
                }
                *sum += value;
                *count += 1;
            }
        });
    }

    /// The value of a counter or gauge series (tests, status output).
    pub fn value(&self, name: &str, l: &[(&'static str, &str)]) -> Option<f64> {
        match self.lock().families.get(name)?.series.get(&labels(l))? {
            Value::Scalar(x) => Some(*x),
            Value::Hist { .. } => None,
        }
    }

    /// A heartbeat round trip on `link`.
    pub fn heartbeat_rtt(&self, link: &str, rtt: Duration) {
        self.observe(names::HEARTBEAT_RTT, &[("link", link)], rtt.as_secs_f64());
    }

    /// The loss ratio (0..1) on `link`.
    pub fn heartbeat_loss(&self, link: &str, ratio: f64) {
        self.gauge_set(names::HEARTBEAT_LOSS, &[("link", link)], ratio);
    }

    /// A packet dropped, for `reason` (e.g. "auth", "replay", "short").
    pub fn packet_dropped(&self, reason: &str) {
        self.counter_add(names::PACKETS_DROPPED, &[("reason", reason)], 1.0);
    }

    /// A successful lease renewal confirmed at `at` after `latency`; the
    /// age gauge counts from `at`.
    pub fn lease_renewed(&self, at: Instant, latency: Duration) {
        self.observe(names::LEASE_RENEWAL, &[], latency.as_secs_f64());
        let mut inner = self.lock();
        if inner.last_renewal.is_none_or(|t| t < at) {
            inner.last_renewal = Some(at);
        }
    }

    /// A failover began.
    pub fn failover(&self) {
        self.counter_add(names::FAILOVERS, &[], 1.0);
    }

    /// One failover step took `took`.
    pub fn failover_step(&self, step: FailoverStep, took: Duration) {
        self.observe(
            names::FAILOVER_STEP,
            &[("step", step.as_str())],
            took.as_secs_f64(),
        );
    }

    /// An agent call (`op` on `resource`) ended with `outcome` (e.g.
    /// "success", "failed", "timeout") after `took`.
    pub fn agent_call(&self, resource: &str, op: &str, outcome: &str, took: Duration) {
        let l = [("resource", resource), ("op", op)];
        self.observe(names::AGENT_CALL, &l, took.as_secs_f64());
        let l = [("resource", resource), ("op", op), ("outcome", outcome)];
        self.counter_add(names::AGENT_CALLS, &l, 1.0);
    }

    /// This node self-fenced (or began to), for `reason`.
    pub fn self_fence(&self, reason: &str) {
        self.counter_add(names::SELF_FENCES, &[("reason", reason)], 1.0);
    }

    /// A fence attempt at `level` ended with `outcome` (e.g. "off", "failed").
    pub fn fence_attempt(&self, level: u32, outcome: &str) {
        let level = level.to_string();
        self.counter_add(
            names::FENCE_ATTEMPTS,
            &[("level", &level), ("outcome", outcome)],
            1.0,
        );
    }

    /// The text exposition (format 0.0.4) as of now.
    pub fn render(&self) -> String {
        self.render_at(Instant::now())
    }

    /// The text exposition, computing scrape-time gauges at `now`.
    pub fn render_at(&self, now: Instant) -> String {
        let inner = self.lock();
        let mut out = String::with_capacity(4096);
        for (name, fam) in &inner.families {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(fam.help));
            let _ = writeln!(out, "# TYPE {name} {}", fam.kind.as_str());
            if *name == names::LEASE_RENEWAL_AGE {
                if let Some(t) = inner.last_renewal {
                    let age = now.saturating_duration_since(t).as_secs_f64();
                    sample(&mut out, name, "", &[], None, age);
                }
            }
            for (labels, v) in &fam.series {
                match v {
                    Value::Scalar(x) => sample(&mut out, name, "", labels, None, *x),
                    Value::Hist { counts, sum, count } => {
                        let mut cum = 0u64;
                        for (i, c) in counts.iter().enumerate() {
                            cum += c;
                            let le = fam.buckets.get(i).map_or(f64::INFINITY, |&b| b);
                            sample(&mut out, name, "_bucket", labels, Some(le), cum as f64);
                        }
                        sample(&mut out, name, "_sum", labels, None, *sum);
                        sample(&mut out, name, "_count", labels, None, *count as f64);
                    }
                }
            }
        }
        out
    }
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&'static str, String)],
    le: Option<f64>,
    v: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (k, val) in labels {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{k}=\"{}\"", escape_label(val));
        }
        if let Some(le) = le {
            if !first {
                out.push(',');
            }
            let _ = write!(out, "le=\"{}\"", fmt_f64(le));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", fmt_f64(v));
}

/// A float as the exposition format writes it (`+Inf`, `-Inf`, `NaN`).
pub fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Escapes a label value: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// Escapes help text: `\` → `\\`, newline → `\n`.
pub fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Limits of the endpoint.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Longest request head accepted (bytes); longer gets 431.
    pub max_request: usize,
    /// Time allowed to receive the request head; then 408 and close.
    pub read_timeout: Duration,
    /// Time allowed to send the response.
    pub write_timeout: Duration,
    /// Connections handled at once; more are closed at once.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_request: 8192,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_connections: 16,
        }
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes, with
/// the default [`ServeOptions`].
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_with(listener, metrics, shutdown, ServeOptions::default()).await
}

/// [`serve`] with explicit limits. Returns when `shutdown` completes;
/// connections in progress are dropped.
pub async fn serve_with(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
    opts: ServeOptions,
) -> io::Result<()> {
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    if conns.len() >= opts.max_connections {
                        debug!(%peer, "metrics: too many connections, closing");
                        continue;
                    }
                    let m = metrics.clone();
                    conns.spawn(async move { handle(stream, &m, opts).await });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning
                    warn!(cause = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    conns.shutdown().await;
    Ok(())
}

/// A response: status line, extra headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// Extra headers (name, value).
    pub headers: Vec<(&'static str, &'static str)>,
    /// Body.
    pub body: String,
}

fn simple(status: u16, reason: &'static str) -> Response {
    Response {
        status,
        reason,
        headers: vec![("Content-Type", "text/plain; charset=utf-8")],
        body: format!("{status} {reason}\n"),
    }
}

/// The response to a request head (pure; `render` makes the body).
pub fn respond(head: &[u8], render: impl FnOnce() -> String) -> Response {
    let Ok(head) = std::str::from_utf8(head) else {
        return simple(400, "Bad Request");
    };
    let line = head.split("\r\n").next().unwrap_or("");
    let line = line.split('\n').next().unwrap_or("");
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return simple(400, "Bad Request");
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") || !target.starts_with('/') || method.is_empty()
    {
        return simple(400, "Bad Request");
    }
    if method != "GET" {
        let mut r = simple(405, "Method Not Allowed");
        r.headers.push(("Allow", "GET"));
        return r;
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return simple(404, "Not Found");
    }
    Response {
        status: 200,
        reason: "OK",
        headers: vec![("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
        body: render(),
    }
}

enum ReadHead {
    Done(Vec<u8>),
    TooLarge,
    Closed,
}

async fn read_head(stream: &TcpStream, max: usize) -> io::Result<ReadHead> {
    let mut buf = vec![0u8; max];
    let mut len = 0;
    loop {
        stream.readable().await?;
        match stream.try_read(&mut buf[len..]) {
            Ok(0) => return Ok(ReadHead::Closed),
            Ok(n) => {
                let from = len.saturating_sub(3);
                len += n;
                let hay = &buf[from..len];
                if hay.windows(4).any(|w| w == b"\r\n\r\n") || hay.windows(2).any(|w| w == b"\n\n")
                {
                    buf.truncate(len);
                    return Ok(ReadHead::Done(buf));
                }
                if len == max {
                    return Ok(ReadHead::TooLarge);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

async fn write_all(stream: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        stream.writable().await?;
        match stream.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn handle(stream: TcpStream, metrics: &Metrics, opts: ServeOptions) {
    let resp =
        match tokio::time::timeout(opts.read_timeout, read_head(&stream, opts.max_request)).await {
            Err(_) => simple(408, "Request Timeout"),
            Ok(Err(e)) => {
                debug!(cause = %e, "metrics: read failed");
                return;
            }
            Ok(Ok(ReadHead::Closed)) => return,
            Ok(Ok(ReadHead::TooLarge)) => simple(431, "Request Header Fields Too Large"),
            Ok(Ok(ReadHead::Done(head))) => respond(&head, || metrics.render()),
        };
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, resp.reason);
    for (k, v) in &resp.headers {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    let _ = write!(
        out,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        resp.body.len()
    );
    out.push_str(&resp.body);
    match tokio::time::timeout(opts.write_timeout, write_all(&stream, out.as_bytes())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(cause = %e, "metrics: write failed"),
        Err(_) => debug!("metrics: write timed out"),
    }
}

#[cfg(test)]
#[path = "../tests/metrics.rs"]
mod tests;
