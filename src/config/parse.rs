//! The walk over the spanned TOML tree: every key is checked against the
//! keys its table may hold, every value against its type, and each problem
//! is recorded with its key path and line; the walk goes on after a problem
//! (with a default in place of the bad value) so one run reports them all.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{
    Cluster, Config, Exec, FenceDevice, Fencing, Lease, LeaseEngine, Link, Loaded, Metrics, Node,
    Policy, Problem, Resource, SelfFence, SelfFenceMode,
};
use crate::engine::{EngineConfig, Millis, NodeName, ResourceKind};
use crate::membership::{self, MAX_LINKS, Timing};
use crate::proto::{ConfigHash, NodeId};

type Sv<'i> = Spanned<DeValue<'i>>;
type Span = Range<usize>;

/// Problems and warnings (each with its byte offset, for sorting), and the
/// line table to place them.
struct Cx {
    starts: Vec<usize>,
    problems: Vec<(usize, Problem)>,
    warnings: Vec<(usize, Problem)>,
}

impl Cx {
    fn new(text: &str) -> Cx {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Cx {
            starts,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn line(&self, span: &Span) -> usize {
        match self.starts.binary_search(&span.start) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    fn problem(&self, path: &str, span: Option<&Span>, message: String) -> (usize, Problem) {
        let p = Problem {
            path: path.to_string(),
            line: span.map(|s| self.line(s)),
            message,
        };
        (span.map_or(usize::MAX, |s| s.start), p)
    }

    fn err(&mut self, path: &str, span: Option<&Span>, message: impl Into<String>) {
        let p = self.problem(path, span, message.into());
        self.problems.push(p);
    }

    fn warn(&mut self, path: &str, span: Option<&Span>, message: impl Into<String>) {
        let p = self.problem(path, span, message.into());
        self.warnings.push(p);
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Levenshtein distance (small strings only).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known key closest to `key`, if it is close enough to be a typo.
fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let norm = key.to_ascii_lowercase().replace('-', "_");
    if let Some(k) = known.iter().find(|k| **k == norm) {
        return Some(k);
    }
    let (d, k) = known
        .iter()
        .map(|k| (distance(&norm, k), *k))
        .min_by_key(|(d, _)| *d)?;
    let limit = match k.chars().count() {
        0..=3 => 1,
        4..=7 => 2,
        _ => 3,
    };
    (d <= limit).then_some(k)
}

fn unknown_key(key: &str, known: &[&str], what: &str) -> String {
    let mut msg = format!("unknown {what} `{key}`");
    let elsewhere: Vec<String> = SECTIONS
        .iter()
        .filter(|(_, keys)| keys.contains(&key) && !known.contains(&key))
        .map(|(section, _)| format!("[{section}]"))
        .collect();
    if let Some(k) = suggest(key, known) {
        msg.push_str(&format!("; did you mean `{k}`?"));
    } else if !elsewhere.is_empty() {
        msg.push_str(&format!("; it belongs in {}", elsewhere.join(" or ")));
    } else if !known.is_empty() {
        let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        msg.push_str(&format!(" (expected one of {})", list.join(", ")));
    }
    msg
}

fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("string {:?}", s.as_ref()),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(f) => format!("float {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(d) => format!("datetime {d}"),
        DeValue::Array(_) => "an array".into(),
        DeValue::Table(_) => "a table".into(),
    }
}

fn integer(v: &DeValue<'_>) -> Option<i128> {
    match v {
        DeValue::Integer(i) => i128::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok(),
        _ => None,
    }
}

/// One table being read: its path, where it starts and its entries.
struct Tab<'a, 'i> {
    path: String,
    span: Span,
    t: &'a DeTable<'i>,
}

/// Opens `v` as a table whose keys must be among `known` (each other key is
/// reported). `None` (reported) when `v` is not a table.
fn open<'a, 'i>(cx: &mut Cx, path: &str, v: &'a Sv<'i>, known: &[&str]) -> Option<Tab<'a, 'i>> {
    let tab = open_any(cx, path, v)?;
    let what = if path.is_empty() { "section" } else { "key" };
    for (k, _) in tab.t.iter() {
        if !known.contains(&k.get_ref().as_ref()) {
            cx.err(
                &join(path, k.get_ref()),
                Some(&k.span()),
                unknown_key(k.get_ref(), known, what),
            );
        }
    }
    Some(tab)
}

/// Opens `v` as a table with any keys; `None` (reported) when it is not one.
fn open_any<'a, 'i>(cx: &mut Cx, path: &str, v: &'a Sv<'i>) -> Option<Tab<'a, 'i>> {
    let Some(t) = v.get_ref().as_table() else {
        cx.err(
            path,
            Some(&v.span()),
            format!("expected a table, found {}", describe(v.get_ref())),
        );
        return None;
    };
    Some(Tab {
        path: path.to_string(),
        span: v.span(),
        t,
    })
}

/// Opens `v` as an array of tables (`[[x]]`); `None` (reported) otherwise.
fn array<'a, 'i>(cx: &mut Cx, path: &str, v: &'a Sv<'i>) -> Option<&'a [Sv<'i>]> {
    match v.get_ref() {
        DeValue::Array(a) => Some(a),
        other => {
            cx.err(
                path,
                Some(&v.span()),
                format!(
                    "expected an array of tables ([[{path}]]), found {}",
                    describe(other)
                ),
            );
            None
        }
    }
}

impl<'a, 'i> Tab<'a, 'i> {
    fn key(&self, k: &str) -> String {
        join(&self.path, k)
    }

    fn get(&self, k: &str) -> Option<&'a Sv<'i>> {
        self.t.get(k)
    }

    fn missing(&self, cx: &mut Cx, k: &str, why: &str) {
        let where_ = if self.path.is_empty() {
            String::new()
        } else {
            format!(" in [{}]", self.path)
        };
        cx.err(
            &self.key(k),
            Some(&self.span),
            format!("missing{where_}{why}"),
        );
    }

    /// A value parsed by `f`, which says what it expected on failure.
    fn value<T>(
        &self,
        cx: &mut Cx,
        k: &str,
        f: impl FnOnce(&DeValue<'i>) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.get(k)?;
        match f(v.get_ref()) {
            Ok(t) => Some(t),
            Err(msg) => {
                cx.err(&self.key(k), Some(&v.span()), msg);
                None
            }
        }
    }

    fn string(&self, cx: &mut Cx, k: &str) -> Option<String> {
        self.value(cx, k, |v| match v {
            DeValue::String(s) => Ok(s.to_string()),
            o => Err(format!("expected a string, found {}", describe(o))),
        })
    }

    fn req_string(&self, cx: &mut Cx, k: &str) -> Option<String> {
        if self.get(k).is_none() {
            self.missing(cx, k, "");
            return None;
        }
        self.string(cx, k)
    }

    /// A string matching `[A-Za-z0-9_.-]+`.
    fn name(&self, cx: &mut Cx, k: &str) -> Option<String> {
        if self.get(k).is_none() {
            self.missing(cx, k, "");
            return None;
        }
        self.value(cx, k, |v| match v {
            DeValue::String(s) if is_name(s) => Ok(s.to_string()),
            DeValue::String(s) => Err(format!(
                "{s:?} is not a valid name: use 1 to 255 of A-Z a-z 0-9 _ . -"
            )),
            o => Err(format!("expected a string, found {}", describe(o))),
        })
    }

    fn path_or(&self, cx: &mut Cx, k: &str, default: &str) -> PathBuf {
        self.path(cx, k).unwrap_or_else(|| PathBuf::from(default))
    }

    fn path(&self, cx: &mut Cx, k: &str) -> Option<PathBuf> {
        self.value(cx, k, |v| match v {
            DeValue::String(s) if s.starts_with('/') && !s.contains('\0') => {
                Ok(PathBuf::from(s.as_ref()))
            }
            DeValue::String(s) => Err(format!("{s:?} is not an absolute path")),
            o => Err(format!("expected an absolute path, found {}", describe(o))),
        })
    }

    fn bool_or(&self, cx: &mut Cx, k: &str, default: bool) -> bool {
        self.value(cx, k, |v| match v {
            DeValue::Boolean(b) => Ok(*b),
            o => Err(format!("expected true or false, found {}", describe(o))),
        })
        .unwrap_or(default)
    }

    fn int(&self, cx: &mut Cx, k: &str, range: std::ops::RangeInclusive<i128>) -> Option<i128> {
        self.value(cx, k, |v| match integer(v) {
            Some(n) if range.contains(&n) => Ok(n),
            Some(n) => Err(format!(
                "{n} is out of range ({}..={})",
                range.start(),
                range.end()
            )),
            None => Err(format!("expected an integer, found {}", describe(v))),
        })
    }

    fn duration(&self, cx: &mut Cx, k: &str) -> Option<Millis> {
        self.value(cx, k, duration)
    }

    fn duration_or(&self, cx: &mut Cx, k: &str, default: Millis) -> Millis {
        self.duration(cx, k).unwrap_or(default)
    }

    fn choice<T: Copy>(&self, cx: &mut Cx, k: &str, choices: &[(&str, T)], default: T) -> T {
        self.value(cx, k, |v| {
            let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
            match v {
                DeValue::String(s) => choices
                    .iter()
                    .find(|(n, _)| *n == s.as_ref())
                    .map(|(_, t)| *t)
                    .ok_or_else(|| format!("{s:?} is not one of {}", names.join(", "))),
                o => Err(format!(
                    "expected one of {}, found {}",
                    names.join(", "),
                    describe(o)
                )),
            }
        })
        .unwrap_or(default)
    }

    /// A table of scalar parameters, converted to strings.
    fn params(&self, cx: &mut Cx, k: &str) -> (BTreeMap<String, String>, Option<Tab<'a, 'i>>) {
        let mut out = BTreeMap::new();
        let Some(v) = self.get(k) else {
            return (out, None);
        };
        let path = self.key(k);
        // Parameters are free-form here; the callers check the names they know.
        let Some(tab) = open_any(cx, &path, v) else {
            return (out, None);
        };
        for (name, val) in tab.t.iter() {
            let s = match val.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Boolean(b) => b.to_string(),
                DeValue::Integer(_) => match integer(val.get_ref()) {
                    Some(n) => n.to_string(),
                    None => {
                        cx.err(
                            &join(&path, name.get_ref()),
                            Some(&val.span()),
                            "integer too large",
                        );
                        continue;
                    }
                },
                o => {
                    cx.err(
                        &join(&path, name.get_ref()),
                        Some(&val.span()),
                        format!(
                            "expected a string, integer or boolean, found {}",
                            describe(o)
                        ),
                    );
                    continue;
                }
            };
            if s.contains('\0') || s.contains('\n') {
                cx.err(
                    &join(&path, name.get_ref()),
                    Some(&val.span()),
                    "a parameter value cannot contain a NUL byte or a newline",
                );
                continue;
            }
            out.insert(name.get_ref().to_string(), s);
        }
        (out, Some(tab))
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn duration(v: &DeValue<'_>) -> Result<Millis, String> {
    match v {
        DeValue::String(s) => {
            let d = humantime::parse_duration(s).map_err(|e| {
                format!("{s:?} is not a duration ({e}); write e.g. \"500ms\", \"10s\", \"2min\"")
            })?;
            if d.subsec_nanos() % 1_000_000 != 0 {
                return Err(format!("{s:?}: durations count whole milliseconds"));
            }
            let ms = u64::try_from(d.as_millis()).map_err(|_| format!("{s:?} is too long"))?;
            if ms == 0 {
                return Err(format!("{s:?}: the duration must be more than zero"));
            }
            Ok(Millis(ms))
        }
        DeValue::Integer(_) | DeValue::Float(_) => Err(format!(
            "expected a duration such as \"10s\", found {} (a bare number has no unit)",
            describe(v)
        )),
        o => Err(format!(
            "expected a duration such as \"10s\", found {}",
            describe(o)
        )),
    }
}

const CLUSTER_KEYS: &[&str] = &["name", "key_file", "state_dir", "socket", "admin_group"];
const NODE_KEYS: &[&str] = &["name", "preferred"];
const HEARTBEAT_KEYS: &[&str] = &["keepalive", "warntime", "deadtime", "initdead"];
const LEASE_KEYS: &[&str] = &[
    "device",
    "index",
    "engine",
    "lock_timeout",
    "collision_timeout",
    "monitor_interval",
    "margin",
    "max_io",
];
const POLICY_KEYS: &[&str] = &[
    "migration_threshold",
    "failure_timeout",
    "start_delay",
    "retry_interval",
    "stop_budget",
];
const SELF_FENCE_KEYS: &[&str] = &["mode", "watchdog_device", "watchdog_timeout"];
const FENCING_KEYS: &[&str] = &["delay", "device"];
const DEVICE_KEYS: &[&str] = &["target", "level", "agent", "timeout", "params"];
const METRICS_KEYS: &[&str] = &["listen", "allow_any"];

/// Where each key may be written, for "it belongs in" hints.
const SECTIONS: &[(&str, &[&str])] = &[
    ("cluster", CLUSTER_KEYS),
    ("[node]", NODE_KEYS),
    ("heartbeat", HEARTBEAT_KEYS),
    ("[link]", &["name", "interface"]),
    ("lease", LEASE_KEYS),
    ("policy", POLICY_KEYS),
    ("self_fence", SELF_FENCE_KEYS),
    ("fencing", &["delay"]),
    ("[fencing.device]", DEVICE_KEYS),
    ("metrics", METRICS_KEYS),
    ("[resource]", RESOURCE_KEYS),
];

const ROOT: &[&str] = &[
    "cluster",
    "node",
    "heartbeat",
    "link",
    "lease",
    "policy",
    "self_fence",
    "fencing",
    "metrics",
    "resource",
];

/// See [`super::parse`].
pub(super) fn parse(text: &str, source: &Path) -> Result<Loaded, Vec<Problem>> {
    let mut cx = Cx::new(text);
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let mut lines = BTreeSet::new();
        for e in errors {
            let line = e.span().map(|s| cx.line(&s));
            if lines.insert(line) {
                let p = Problem {
                    path: String::new(),
                    line,
                    message: e.message().trim_end().to_string(),
                };
                cx.problems
                    .push((e.span().map_or(usize::MAX, |s| s.start), p));
            }
        }
        return Err(finish(cx.problems));
    }
    let span = doc.span();
    let root = Spanned::new(span, DeValue::Table(doc.into_inner()));
    let config = walk(&mut cx, &root, text, source);
    match config {
        Some(config) if cx.problems.is_empty() => Ok(Loaded {
            config,
            warnings: finish(cx.warnings),
        }),
        _ => {
            if cx.problems.is_empty() {
                // walk() gives up only after reporting; keep that promise visible.
                cx.err("", None, "invalid configuration");
            }
            Err(finish(cx.problems))
        }
    }
}

/// Sorted by place in the file (problems without one last), duplicates
/// dropped.
fn finish(mut problems: Vec<(usize, Problem)>) -> Vec<Problem> {
    problems.sort_by_key(|(offset, _)| *offset);
    problems.dedup();
    problems.into_iter().map(|(_, p)| p).collect()
}

fn walk(cx: &mut Cx, root: &Sv<'_>, text: &str, source: &Path) -> Option<Config> {
    let root = open(cx, "", root, ROOT)?;
    let section = |k: &str| root.get(k);

    let cluster = match section("cluster") {
        Some(v) => cluster(cx, v),
        None => {
            cx.err(
                "cluster",
                None,
                "missing section [cluster] (with at least name = \"...\")",
            );
            None
        }
    };
    let nodes = nodes(cx, section("node"));
    let heartbeat = heartbeat(cx, section("heartbeat"));
    let links = links(cx, section("link"), nodes.as_ref());
    let resources = resources(cx, section("resource"));
    let policy_raw = policy(cx, section("policy"));
    let self_fence = self_fence(cx, section("self_fence"));
    let fencing_raw = fencing(cx, section("fencing"), nodes.as_ref());
    let metrics = match section("metrics") {
        Some(v) => metrics(cx, v),
        None => Some(None),
    };
    let lease_raw = match section("lease") {
        Some(v) => lease(cx, v),
        None => {
            cx.err(
                "lease",
                None,
                "missing section [lease] (with at least device = \"...\")",
            );
            None
        }
    };

    // The timing rules read these keys; a bad one was replaced by its
    // default, and must not cause follow-on errors.
    let bad = |key: &str| cx.problems.iter().any(|(_, p)| p.path == key);
    let stop_timeouts_bad = cx
        .problems
        .iter()
        .any(|(_, p)| p.path.starts_with("resource[") && p.path.ends_with("].stop_timeout"));
    let lease_clean = ![
        "lock_timeout",
        "collision_timeout",
        "monitor_interval",
        "margin",
        "max_io",
    ]
    .iter()
    .any(|k| bad(&format!("lease.{k}")));
    let policy_clean = !bad("policy.stop_budget")
        && (policy_raw.as_ref().is_some_and(|p| p.stop_budget.is_some()) || !stop_timeouts_bad);

    // Cross-section rules, each checked when the values it needs were read
    // cleanly (a bad value replaced by its default must not cause more).
    let stop_budget = policy_raw.as_ref().and_then(|p| p.stop_budget).or_else(|| {
        resources
            .as_ref()
            .map(|rs| rs.iter().fold(Millis(0), |acc, r| acc.plus(r.stop_timeout)))
    });
    if let (Some(explicit), Some(rs)) = (
        policy_raw.as_ref().and_then(|p| p.stop_budget),
        resources.as_ref(),
    ) {
        let sum = rs.iter().fold(Millis(0), |acc, r| acc.plus(r.stop_timeout));
        if explicit < sum {
            let span = root
                .get("policy")
                .and_then(|v| v.get_ref().as_table()?.get("stop_budget").map(|v| v.span()));
            cx.warn(
                "policy.stop_budget",
                span.as_ref(),
                format!(
                    "{explicit} is less than the sum of the resources' stop_timeout ({sum}): a \
                     primary whose stack stops that slowly while its lease runs out reboots itself"
                ),
            );
        }
    }
    let lease_v = root.get("lease");
    let rules = lease_clean && policy_clean;
    let lease = lease_raw.map(|l| {
        let self_fence = self_fence.as_ref().filter(|_| rules);
        lease_rules(cx, lease_v, l, stop_budget.unwrap_or_default(), self_fence)
    });
    if let (Some(lease), Some(stop_budget), true) = (&lease, stop_budget, rules) {
        engine_rule(cx, lease_v, lease, stop_budget);
    }
    let fencing = match (fencing_raw, &lease) {
        (Some(f), Some(lease)) => Some(fencing_rules(
            cx,
            root.get("fencing"),
            f,
            lease,
            lease_clean,
        )),
        _ => None,
    };
    let policy = match (policy_raw, stop_budget) {
        (Some(p), Some(stop_budget)) => Some(Policy {
            migration_threshold: p.migration_threshold,
            failure_timeout: p.failure_timeout,
            start_delay: p.start_delay,
            retry_interval: p.retry_interval,
            stop_budget,
        }),
        _ => None,
    };

    let config = Config {
        cluster: cluster?,
        nodes: nodes?,
        heartbeat: heartbeat?,
        links: links?,
        lease: lease?,
        policy: policy?,
        self_fence: self_fence?,
        fencing: fencing?,
        metrics: metrics?,
        resources: resources?,
        hash: ConfigHash::of(text.as_bytes()),
        source: source.to_path_buf(),
    };
    Some(config)
}

fn cluster(cx: &mut Cx, v: &Sv<'_>) -> Option<Cluster> {
    let t = open(cx, "cluster", v, CLUSTER_KEYS)?;
    let name = t.name(cx, "name");
    let key_file = t.path_or(cx, "key_file", crate::keys::DEFAULT_PATH);
    let state_dir = t.path_or(cx, "state_dir", "/var/lib/hapair");
    let socket = t.path_or(cx, "socket", "/run/hapair/hapair.sock");
    let admin_group = match t.get("admin_group") {
        Some(_) => t.value(cx, "admin_group", |v| match v {
            DeValue::String(s) if is_name(s) => Ok(s.to_string()),
            DeValue::String(s) => Err(format!("{s:?} is not a valid group name")),
            o => Err(format!("expected a group name, found {}", describe(o))),
        }),
        None => Some("haclient".to_string()),
    };
    Some(Cluster {
        name: name?,
        key_file,
        state_dir,
        socket,
        admin_group: admin_group?,
    })
}

fn nodes(cx: &mut Cx, v: Option<&Sv<'_>>) -> Option<[Node; 2]> {
    let Some(v) = v else {
        cx.err(
            "node",
            None,
            "missing: two [[node]] sections, each with name = \"...\"",
        );
        return None;
    };
    let items = array(cx, "node", v)?;
    let mut nodes = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("node[{i}]");
        let Some(t) = open(cx, &path, item, NODE_KEYS) else {
            ok = false;
            continue;
        };
        let name = t.name(cx, "name");
        if let Some(n) = &name {
            if ["name", "interface"].contains(&n.as_str()) {
                cx.err(
                    &t.key("name"),
                    t.get("name").map(|v| v.span()).as_ref(),
                    format!("{n:?} cannot be a node name (it is a key of [[link]])"),
                );
            }
        }
        let preferred = t.bool_or(cx, "preferred", false);
        match name {
            Some(name) => nodes.push((Node { name, preferred }, t.span.clone())),
            None => ok = false,
        }
    }
    if items.len() != 2 {
        let span = items.get(2).map(|i| i.span()).unwrap_or_else(|| v.span());
        cx.err(
            "node",
            Some(&span),
            format!(
                "exactly two [[node]] sections are needed, found {}",
                items.len()
            ),
        );
        return None;
    }
    if !ok {
        return None;
    }
    let [(a, _), (b, span_b)] = <[_; 2]>::try_from(nodes).ok()?;
    if a.name == b.name {
        cx.err(
            "node[1].name",
            Some(&span_b),
            format!("both nodes are called {:?}", a.name),
        );
        return None;
    }
    if NodeId::from_name(&a.name) == NodeId::from_name(&b.name) {
        cx.err(
            "node[1].name",
            Some(&span_b),
            "the two node names hash to the same node id: rename one",
        );
        return None;
    }
    if a.preferred && b.preferred {
        cx.err(
            "node[1].preferred",
            Some(&span_b),
            "at most one node can be preferred",
        );
        return None;
    }
    Some([a, b])
}

fn heartbeat(cx: &mut Cx, v: Option<&Sv<'_>>) -> Option<Timing> {
    let d = Timing::default();
    let Some(v) = v else {
        return Some(d);
    };
    let t = open(cx, "heartbeat", v, HEARTBEAT_KEYS)?;
    let before = cx.problems.len();
    let timing = Timing {
        keepalive: t.duration_or(cx, "keepalive", d.keepalive),
        warntime: t.duration_or(cx, "warntime", d.warntime),
        deadtime: t.duration_or(cx, "deadtime", d.deadtime),
        initdead: t.duration_or(cx, "initdead", d.initdead),
    };
    if cx.problems.len() != before {
        return None;
    }
    if let Err(e) = timing.validate() {
        let (key, which) = match e {
            membership::TimingError::KeepaliveTooShort(_) => ("keepalive", "keepalive"),
            membership::TimingError::DeadtimeTooShort { .. } => ("deadtime", "deadtime"),
            membership::TimingError::Warntime { .. } => ("warntime", "warntime"),
            membership::TimingError::Initdead { .. } => ("initdead", "initdead"),
        };
        let span = t.get(key).map(|v| v.span()).unwrap_or(t.span.clone());
        cx.err(&t.key(which), Some(&span), e.to_string());
        return None;
    }
    Some(timing)
}

fn links(cx: &mut Cx, v: Option<&Sv<'_>>, nodes: Option<&[Node; 2]>) -> Option<Vec<Link>> {
    let Some(v) = v else {
        cx.err(
            "link",
            None,
            "missing: at least one [[link]] (two are advised)",
        );
        return None;
    };
    let items = array(cx, "link", v)?;
    let mut known = vec!["name", "interface"];
    if let Some(n) = nodes {
        known.extend(n.iter().map(|n| n.name.as_str()));
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("link[{i}]");
        // Without the node names the keys cannot be checked.
        let t = match nodes {
            Some(_) => open(cx, &path, item, &known),
            None => open_any(cx, &path, item),
        };
        let Some(t) = t else {
            ok = false;
            continue;
        };
        let name = t.name(cx, "name");
        if let Some(n) = &name {
            if let Some(first) = names.insert(n.clone(), i) {
                let span = t.get("name").map(|v| v.span());
                cx.err(
                    &t.key("name"),
                    span.as_ref(),
                    format!("link name {n:?} is already used by link[{first}]"),
                );
                ok = false;
            }
        }
        let interface = match t.get("interface") {
            None => Some(None),
            Some(_) => t
                .value(cx, "interface", |v| match v {
                    DeValue::String(s)
                        if !s.is_empty()
                            && s.len() < 16
                            && !s.contains(['/', ' ', '\0', '\t', '\n']) =>
                    {
                        Ok(s.to_string())
                    }
                    DeValue::String(s) => Err(format!("{s:?} is not an interface name")),
                    o => Err(format!("expected an interface name, found {}", describe(o))),
                })
                .map(Some),
        };
        let Some(nodes) = nodes else {
            ok = false;
            continue;
        };
        let mut addrs = Vec::new();
        for n in nodes {
            let Some(v) = t.get(&n.name) else {
                t.missing(
                    cx,
                    &n.name,
                    &format!(" (the address of node {:?} on this link)", n.name),
                );
                continue;
            };
            let a = t.value(cx, &n.name, |v| match v {
                DeValue::String(s) => SocketAddr::from_str(s).map_err(|_| {
                    format!("{s:?} is not an address:port (e.g. \"192.0.2.1:5405\", \"[2001:db8::1]:5405\")")
                }),
                o => Err(format!("expected \"address:port\", found {}", describe(o))),
            });
            if let Some(a) = a {
                if a.port() == 0 || a.ip().is_unspecified() || a.ip().is_multicast() {
                    cx.err(
                        &t.key(&n.name),
                        Some(&v.span()),
                        format!("{a} is not a unicast address with a port"),
                    );
                } else {
                    addrs.push((a, v.span()));
                }
            }
        }
        let (Some(name), Some(interface), [(a, _), (b, span_b)]) =
            (name, interface, addrs.as_slice())
        else {
            ok = false;
            continue;
        };
        let key_b = t.key(&nodes[1].name);
        if a.is_ipv4() != b.is_ipv4() {
            cx.err(
                &key_b,
                Some(span_b),
                format!("{b} and {a} are not of the same address family"),
            );
            ok = false;
            continue;
        }
        if a == b {
            cx.err(
                &key_b,
                Some(span_b),
                format!("both nodes have the address {a}"),
            );
            ok = false;
            continue;
        }
        out.push(Link {
            name,
            addrs: [*a, *b],
            interface,
        });
    }
    if items.len() > MAX_LINKS {
        cx.err(
            "link",
            Some(&items[MAX_LINKS].span()),
            format!("{} links: at most {MAX_LINKS} are supported", items.len()),
        );
        return None;
    }
    if items.is_empty() {
        cx.err("link", Some(&v.span()), "at least one [[link]] is needed");
        return None;
    }
    if !ok {
        return None;
    }
    if out.len() == 1 {
        cx.warn(
            "link",
            Some(&items[0].span()),
            "only one link: if it fails, each node sees the other as dead; add a second \
             [[link]] over another network",
        );
    }
    Some(out)
}

/// `[lease]` as written, before the defaults that depend on other sections.
struct LeaseRaw {
    lease: Lease,
    lock_timeout: Option<Millis>,
}

fn lease(cx: &mut Cx, v: &Sv<'_>) -> Option<LeaseRaw> {
    let t = open(cx, "lease", v, LEASE_KEYS)?;
    let device = match t.get("device") {
        Some(_) => t.path(cx, "device"),
        None => {
            t.missing(
                cx,
                "device",
                " (the shared block device holding the sfex lock)",
            );
            None
        }
    };
    let index = t
        .int(cx, "index", 1..=i128::from(u32::MAX))
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1);
    let engine = t.choice(
        cx,
        "engine",
        &[
            ("auto", LeaseEngine::Auto),
            ("uring", LeaseEngine::Uring),
            ("sync", LeaseEngine::Sync),
        ],
        LeaseEngine::Auto,
    );
    let monitor_interval = t.duration_or(cx, "monitor_interval", Millis(2_000));
    let max_io = t.duration_or(cx, "max_io", Millis(1_000));
    let margin = t.duration_or(cx, "margin", Millis(2_000));
    let collision_timeout = t
        .duration(cx, "collision_timeout")
        .unwrap_or(max_io.plus(max_io).plus(Millis(max_io.0 / 2)));
    let lock_timeout = t.duration(cx, "lock_timeout");
    Some(LeaseRaw {
        lease: Lease {
            device: device?,
            index,
            engine,
            lock_timeout: lock_timeout.unwrap_or_default(),
            collision_timeout,
            monitor_interval,
            margin,
            max_io,
        },
        lock_timeout,
    })
}

/// Fills in the default lock_timeout and checks the watchdog relation.
fn lease_rules(
    cx: &mut Cx,
    v: Option<&Sv<'_>>,
    raw: LeaseRaw,
    stop_budget: Millis,
    self_fence: Option<&SelfFence>,
) -> Lease {
    let mut lease = raw.lease;
    let table_span = v.map(|v| v.span());
    let watchdog = self_fence
        .filter(|s| matches!(s.mode, SelfFenceMode::Auto | SelfFenceMode::Watchdog))
        .map(|s| s.watchdog_timeout);
    match raw.lock_timeout {
        Some(_) => {
            if let Some(w) = watchdog {
                let need = w.plus(lease.monitor_interval).plus(lease.margin);
                if need >= lease.lock_timeout {
                    let span = lock_timeout_span(v).or(table_span);
                    cx.err(
                        "lease.lock_timeout",
                        span.as_ref(),
                        format!(
                            "self_fence.watchdog_timeout ({w}) + monitor_interval ({}) + margin ({}) \
                             must be less than lock_timeout ({}): a hung node must be reset \
                             before the peer may take the lease",
                            lease.monitor_interval, lease.margin, lease.lock_timeout
                        ),
                    );
                }
            }
        }
        None => {
            let rule = lease
                .monitor_interval
                .plus(lease.max_io)
                .plus(stop_budget)
                .plus(lease.margin);
            let wd = watchdog
                .map(|w| w.plus(lease.monitor_interval).plus(lease.margin))
                .unwrap_or_default();
            let need = rule.max(wd).plus(lease.monitor_interval);
            let secs = need.0.div_ceil(1000).max(1);
            lease.lock_timeout = Millis::from_secs(secs);
            if lease.lock_timeout.0 > 60_000 {
                cx.warn(
                    "lease.lock_timeout",
                    table_span.as_ref(),
                    format!(
                        "not set: using {} (monitor_interval + max_io + stop_budget + margin + \
                         monitor_interval, with stop_budget {stop_budget}); a takeover from a \
                         silent, unfenced peer waits this long: set policy.stop_budget or \
                         shorter stop timeouts",
                        humantime::format_duration(std::time::Duration::from_millis(
                            lease.lock_timeout.0
                        ))
                    ),
                );
            }
        }
    }
    lease
}

fn lock_timeout_span(v: Option<&Sv<'_>>) -> Option<Span> {
    v?.get_ref()
        .as_table()?
        .get("lock_timeout")
        .map(|v| v.span())
}

/// The engine's own lease timing check, reported where the values are.
fn engine_rule(cx: &mut Cx, v: Option<&Sv<'_>>, lease: &Lease, stop_budget: Millis) {
    let e = EngineConfig {
        me: NodeName::default(),
        peer: NodeName::default(),
        preferred: false,
        lock_timeout: lease.lock_timeout,
        collision_timeout: lease.collision_timeout,
        monitor_interval: lease.monitor_interval,
        margin: lease.margin,
        max_io: lease.max_io,
        stop_budget,
        resources: Vec::new(),
        migration_threshold: 1,
        failure_timeout: None,
        fence_levels: 0,
        fence_delay: Millis(0),
        start_delay: Millis(0),
        retry_interval: Millis(0),
    };
    if let Err(err) = e.validate() {
        let key = match err {
            crate::engine::TimingError::Collision { .. } => "collision_timeout",
            crate::engine::TimingError::Stop { .. } => "lock_timeout",
        };
        let span = v
            .and_then(|v| v.get_ref().as_table()?.get(key).map(|v| v.span()))
            .or(v.map(|v| v.span()));
        cx.err(&format!("lease.{key}"), span.as_ref(), err.to_string());
    }
}

/// `[policy]` as written (stop_budget may still need its default).
struct PolicyRaw {
    migration_threshold: u32,
    failure_timeout: Option<Millis>,
    start_delay: Millis,
    retry_interval: Millis,
    stop_budget: Option<Millis>,
}

fn policy(cx: &mut Cx, v: Option<&Sv<'_>>) -> Option<PolicyRaw> {
    let mut p = PolicyRaw {
        migration_threshold: 3,
        failure_timeout: None,
        start_delay: Millis(5_000),
        retry_interval: Millis(2_000),
        stop_budget: None,
    };
    let Some(v) = v else {
        return Some(p);
    };
    let t = open(cx, "policy", v, POLICY_KEYS)?;
    if let Some(n) = t
        .int(cx, "migration_threshold", 1..=i128::from(u32::MAX))
        .and_then(|n| u32::try_from(n).ok())
    {
        p.migration_threshold = n;
    }
    p.failure_timeout = t.duration(cx, "failure_timeout");
    p.start_delay = t.duration_or(cx, "start_delay", p.start_delay);
    p.retry_interval = t.duration_or(cx, "retry_interval", p.retry_interval);
    p.stop_budget = t.duration(cx, "stop_budget");
    Some(p)
}

fn self_fence(cx: &mut Cx, v: Option<&Sv<'_>>) -> Option<SelfFence> {
    let mut s = SelfFence {
        mode: SelfFenceMode::Auto,
        watchdog_device: PathBuf::from("/dev/watchdog"),
        watchdog_timeout: Millis(10_000),
    };
    let Some(v) = v else {
        return Some(s);
    };
    let t = open(cx, "self_fence", v, SELF_FENCE_KEYS)?;
    s.mode = t.choice(
        cx,
        "mode",
        &[
            ("auto", SelfFenceMode::Auto),
            ("watchdog", SelfFenceMode::Watchdog),
            ("reboot", SelfFenceMode::Reboot),
            ("test-exit", SelfFenceMode::TestExit),
        ],
        SelfFenceMode::Auto,
    );
    if s.mode == SelfFenceMode::TestExit {
        cx.warn(
            "self_fence.mode",
            t.get("mode").map(|v| v.span()).as_ref(),
            format!(
                "TEST-EXIT MODE: A NODE THAT MUST FENCE ITSELF ONLY EXITS (CODE {}) AND DOES NOT \
                 REBOOT; NEVER USE THIS OUTSIDE TESTS",
                super::TEST_EXIT_CODE
            ),
        );
    }
    s.watchdog_device = t.path_or(cx, "watchdog_device", "/dev/watchdog");
    if let Some(w) = t.duration(cx, "watchdog_timeout") {
        if w.0 % 1000 != 0 || w.0 > 3_600_000 {
            cx.err(
                "self_fence.watchdog_timeout",
                t.get("watchdog_timeout").map(|v| v.span()).as_ref(),
                format!("{w}: the watchdog counts whole seconds, 1s to 1h"),
            );
            return None;
        }
        s.watchdog_timeout = w;
    }
    Some(s)
}

/// `[fencing]` as written (the delay default depends on `[lease]`).
struct FencingRaw {
    delay: Option<Millis>,
    devices: Vec<FenceDevice>,
}

fn fencing(cx: &mut Cx, v: Option<&Sv<'_>>, nodes: Option<&[Node; 2]>) -> Option<FencingRaw> {
    let mut out = FencingRaw {
        delay: None,
        devices: Vec::new(),
    };
    if let Some(v) = v {
        let t = open(cx, "fencing", v, FENCING_KEYS)?;
        out.delay = t.duration(cx, "delay");
        let mut ok = true;
        if let Some(dv) = t.get("device") {
            let items = array(cx, "fencing.device", dv)?;
            for (i, item) in items.iter().enumerate() {
                match fence_device(cx, &format!("fencing.device[{i}]"), item, nodes) {
                    Some(d) => out.devices.push(d),
                    None => ok = false,
                }
            }
        }
        if !ok {
            return None;
        }
        // Levels contiguous from 1, per target.
        let mut levels: BTreeMap<&str, BTreeSet<u8>> = BTreeMap::new();
        for d in &out.devices {
            levels.entry(&d.target).or_default().insert(d.level);
        }
        for (target, set) in &levels {
            let mut expect = 1u8;
            for l in set {
                if *l != expect {
                    let i = out
                        .devices
                        .iter()
                        .position(|d| d.target == *target && d.level == *l)
                        .unwrap_or(0);
                    let span = dv_item_span(t.get("device"), i, "level");
                    cx.err(
                        &format!("fencing.device[{i}].level"),
                        span.as_ref(),
                        format!(
                            "level {l} for {target:?}, but no level {expect}: levels run 1, 2, ... \
                             per target"
                        ),
                    );
                    return None;
                }
                expect = expect.saturating_add(1);
            }
        }
    }
    if let Some(nodes) = nodes {
        for n in nodes {
            if !out.devices.iter().any(|d| d.target == n.name) {
                cx.warn(
                    "fencing",
                    v.map(|v| v.span()).as_ref(),
                    format!(
                        "no fence device for node {:?}: when it is cut off but alive, the \
                         peer takes over only after the lease expires (lock_timeout)",
                        n.name
                    ),
                );
            }
        }
    }
    Some(out)
}

fn dv_item_span(devices: Option<&Sv<'_>>, i: usize, key: &str) -> Option<Span> {
    let item = devices?.get_ref().as_array()?.get(i)?;
    Some(
        item.get_ref()
            .as_table()
            .and_then(|t| t.get(key))
            .unwrap_or(item)
            .span(),
    )
}

fn fence_device(
    cx: &mut Cx,
    path: &str,
    v: &Sv<'_>,
    nodes: Option<&[Node; 2]>,
) -> Option<FenceDevice> {
    let t = open(cx, path, v, DEVICE_KEYS)?;
    let target = t.req_string(cx, "target");
    if let (Some(target), Some(nodes)) = (&target, nodes) {
        if !nodes.iter().any(|n| n.name == *target) {
            let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
            cx.err(
                &t.key("target"),
                t.get("target").map(|v| v.span()).as_ref(),
                format!("{target:?} is not a node (the nodes are {names:?})"),
            );
        }
    }
    let level = match t.get("level") {
        Some(_) => t
            .int(cx, "level", 1..=i128::from(u8::MAX))
            .and_then(|n| u8::try_from(n).ok()),
        None => {
            t.missing(cx, "level", " (1 for the first device tried)");
            None
        }
    };
    let agent = match t.get("agent") {
        Some(_) => t.value(cx, "agent", |v| match v {
            DeValue::String(s) if s.starts_with('/') && !s.ends_with('/') && !s.contains('\0') => {
                Ok(s.to_string())
            }
            DeValue::String(s) if is_name(s) && !s.starts_with('.') => Ok(s.to_string()),
            DeValue::String(s) => Err(format!(
                "{s:?}: give a fence agent's file name (as in /usr/sbin) or an absolute path"
            )),
            o => Err(format!(
                "expected a fence agent name, found {}",
                describe(o)
            )),
        }),
        None => {
            t.missing(cx, "agent", " (e.g. \"fence_ipmilan\")");
            None
        }
    };
    let timeout = t.duration_or(cx, "timeout", Millis(20_000));
    let (params, ptab) = t.params(cx, "params");
    if let Some(p) = &ptab {
        if let Some(v) = p.get("action") {
            cx.err(
                &p.key("action"),
                Some(&v.span()),
                "hapair sets the action itself",
            );
        }
        for (k, v) in p.t.iter() {
            if !is_name(k.get_ref()) {
                cx.err(
                    &p.key(k.get_ref()),
                    Some(&v.span()),
                    "a fence parameter name is made of A-Z a-z 0-9 _ . -",
                );
            }
        }
    }
    Some(FenceDevice {
        target: target?,
        level: level?,
        agent: agent?,
        timeout,
        params,
    })
}

fn fencing_rules(
    cx: &mut Cx,
    v: Option<&Sv<'_>>,
    raw: FencingRaw,
    lease: &Lease,
    check: bool,
) -> Fencing {
    let floor = lease.monitor_interval.plus(lease.max_io);
    let delay = match raw.delay {
        Some(d) => {
            if check && d <= floor {
                let span = v
                    .and_then(|v| v.get_ref().as_table()?.get("delay").map(|v| v.span()))
                    .or(v.map(|v| v.span()));
                cx.err(
                    "fencing.delay",
                    span.as_ref(),
                    format!(
                        "{d} must be more than lease.monitor_interval + lease.max_io ({floor}): \
                         a healthy primary's lease counter may stand still that long"
                    ),
                );
            }
            d
        }
        None => floor.plus(floor),
    };
    Fencing {
        delay,
        devices: raw.devices,
    }
}

fn metrics(cx: &mut Cx, v: &Sv<'_>) -> Option<Option<Metrics>> {
    let t = open(cx, "metrics", v, METRICS_KEYS)?;
    let allow_any = t.bool_or(cx, "allow_any", false);
    let Some(lv) = t.get("listen") else {
        t.missing(
            cx,
            "listen",
            " (e.g. \"127.0.0.1:9464\"; remove [metrics] to turn them off)",
        );
        return None;
    };
    let listen = t.value(cx, "listen", |v| match v {
        DeValue::String(s) => SocketAddr::from_str(s)
            .map_err(|_| format!("{s:?} is not an address:port (e.g. \"127.0.0.1:9464\")")),
        o => Err(format!("expected \"address:port\", found {}", describe(o))),
    })?;
    if listen.ip().is_unspecified() && !allow_any {
        cx.err(
            "metrics.listen",
            Some(&lv.span()),
            format!(
                "{listen} listens on every address: give a loopback or local address, or set \
                 allow_any = true"
            ),
        );
        return None;
    }
    Some(Some(Metrics { listen }))
}

fn resources(cx: &mut Cx, v: Option<&Sv<'_>>) -> Option<Vec<Resource>> {
    let Some(v) = v else {
        cx.err(
            "resource",
            None,
            "missing: at least one [[resource]] (bottom of the stack first)",
        );
        return None;
    };
    let items = array(cx, "resource", v)?;
    if items.is_empty() {
        cx.err(
            "resource",
            Some(&v.span()),
            "at least one [[resource]] is needed",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut drbd_at: Option<usize> = None;
    for (i, item) in items.iter().enumerate() {
        let path = format!("resource[{i}]");
        let Some(r) = resource(cx, &path, item) else {
            ok = false;
            continue;
        };
        let name_span = item
            .get_ref()
            .as_table()
            .and_then(|t| t.get("name"))
            .map(|v| v.span());
        if let Some(first) = names.insert(r.name.clone(), i) {
            cx.err(
                &format!("{path}.name"),
                name_span.as_ref(),
                format!(
                    "resource name {:?} is already used by resource[{first}]",
                    r.name
                ),
            );
            ok = false;
        }
        if r.kind == ResourceKind::Drbd {
            let kind_span = item
                .get_ref()
                .as_table()
                .and_then(|t| t.get("kind").or(t.get("type")))
                .map(|v| v.span());
            if let Some(first) = drbd_at {
                cx.err(
                    &format!("{path}.type"),
                    kind_span.as_ref(),
                    format!("a second drbd resource (the first is resource[{first}]): at most one"),
                );
                ok = false;
            } else if i != 0 {
                cx.err(
                    &format!("{path}.type"),
                    kind_span.as_ref(),
                    "the drbd resource must be the first [[resource]] (the bottom of the stack)",
                );
                ok = false;
            }
            drbd_at.get_or_insert(i);
        }
        out.push(r);
    }
    ok.then_some(out)
}

const RESOURCE_KEYS: &[&str] = &[
    "name",
    "type",
    "kind",
    "params",
    "start_timeout",
    "stop_timeout",
    "monitor_interval",
    "monitor_timeout",
];

fn resource(cx: &mut Cx, path: &str, v: &Sv<'_>) -> Option<Resource> {
    let t = open(cx, path, v, RESOURCE_KEYS)?;
    let line = cx.line(&t.span);
    let name = t.name(cx, "name");
    let exec = match t.get("type") {
        None => {
            t.missing(cx, "type", " (drbd, filesystem, address, or an agent: ocf:PROVIDER:TYPE, lsb:NAME, systemd:UNIT)");
            None
        }
        Some(_) => t.value(cx, "type", |v| match v {
            DeValue::String(s) => match s.as_ref() {
                "drbd" => Ok(Exec::Drbd),
                "filesystem" => Ok(Exec::Filesystem),
                "address" => Ok(Exec::Address),
                spec if spec.contains(':') => ra::Agent::from_str(spec)
                    .map(Exec::Agent)
                    .map_err(|e| e.to_string()),
                other => Err(format!(
                    "{other:?} is not a type: drbd, filesystem, address (built in), or an agent: \
                     ocf:PROVIDER:TYPE, lsb:NAME, systemd:UNIT{}",
                    suggest(other, &["drbd", "filesystem", "address"])
                        .map(|s| format!("; did you mean {s:?}?"))
                        .unwrap_or_default()
                )),
            },
            o => Err(format!("expected a type name, found {}", describe(o))),
        }),
    };
    let default_kind = exec.as_ref().map(|e| match e {
        Exec::Drbd => ResourceKind::Drbd,
        Exec::Filesystem => ResourceKind::Filesystem,
        Exec::Address => ResourceKind::Address,
        Exec::Agent(ra::Agent::Ocf { kind, .. }) if kind == "Filesystem" => {
            ResourceKind::Filesystem
        }
        Exec::Agent(ra::Agent::Ocf { kind, .. }) if kind == "IPaddr2" || kind == "IPaddr" => {
            ResourceKind::Address
        }
        Exec::Agent(_) => ResourceKind::Service,
    });
    let kind = match (t.get("kind"), &exec, default_kind) {
        (None, _, k) => k,
        (Some(kv), exec, default) => {
            let k = t.value(cx, "kind", |v| match v {
                DeValue::String(s) => match s.as_ref() {
                    "drbd" => Ok(ResourceKind::Drbd),
                    "filesystem" => Ok(ResourceKind::Filesystem),
                    "address" => Ok(ResourceKind::Address),
                    "service" => Ok(ResourceKind::Service),
                    o => Err(format!(
                        "{o:?} is not a kind: drbd, filesystem, address or service"
                    )),
                },
                o => Err(format!("expected a kind, found {}", describe(o))),
            });
            match (k, exec) {
                (Some(k), Some(Exec::Drbd | Exec::Filesystem | Exec::Address))
                    if Some(k) != default =>
                {
                    cx.err(
                        &t.key("kind"),
                        Some(&kv.span()),
                        "a built-in type has a fixed kind: remove `kind`, or give an agent as `type`",
                    );
                    None
                }
                (k, _) => k,
            }
        }
    };
    let (params, ptab) = t.params(cx, "params");
    if let Some(exec) = &exec {
        builtin_params(cx, &t, exec, ptab.as_ref());
    }
    let start_timeout = t.duration_or(cx, "start_timeout", Millis(60_000));
    let stop_timeout = t.duration_or(cx, "stop_timeout", Millis(60_000));
    let monitor_interval = t.duration_or(cx, "monitor_interval", Millis(10_000));
    let monitor_timeout = t.duration_or(cx, "monitor_timeout", Millis(20_000));
    Some(Resource {
        name: name?,
        kind: kind?,
        exec: exec?,
        params,
        start_timeout,
        stop_timeout,
        monitor_interval,
        monitor_timeout,
        line,
    })
}

/// Presence and shape of the built-in types' parameters.
fn builtin_params(cx: &mut Cx, res: &Tab<'_, '_>, exec: &Exec, p: Option<&Tab<'_, '_>>) {
    let (type_name, required, optional): (&str, &[&str], &[&str]) = match exec {
        Exec::Drbd => ("drbd", &["resource"], &[]),
        Exec::Filesystem => (
            "filesystem",
            &["device", "directory", "fstype"],
            &["options", "fsck"],
        ),
        Exec::Address => ("address", &["ip"], &["cidr_netmask", "nic"]),
        Exec::Agent(agent) => {
            agent_params(cx, res, agent, p);
            return;
        }
    };
    let all: Vec<&str> = required.iter().chain(optional).copied().collect();
    let ppath = res.key("params");
    let need = format!(" (the {type_name} type needs {})", list(required));
    let Some(p) = p else {
        if res.get("params").is_none() {
            for k in required {
                cx.err(&join(&ppath, k), Some(&res.span), format!("missing{need}"));
            }
        }
        return;
    };
    for (k, _) in p.t.iter() {
        if !all.contains(&k.get_ref().as_ref()) {
            cx.err(
                &p.key(k.get_ref()),
                Some(&k.span()),
                unknown_key(k.get_ref(), &all, &format!("{type_name} parameter")),
            );
        }
    }
    for k in required {
        if p.get(k).is_none() {
            cx.err(&p.key(k), Some(&p.span), format!("missing{need}"));
        }
    }
    let str_of = |k: &str| {
        p.get(k)
            .and_then(|v| v.get_ref().as_str().map(|s| (s, v.span())))
    };
    match exec {
        Exec::Filesystem => {
            if let Some((d, span)) = str_of("directory") {
                if !d.starts_with('/') {
                    cx.err(
                        &p.key("directory"),
                        Some(&span),
                        format!("{d:?} is not an absolute path"),
                    );
                }
            }
            if let Some((d, span)) = str_of("device") {
                if d.is_empty() {
                    cx.err(&p.key("device"), Some(&span), "the device is empty");
                }
            }
            if let Some(v) = p.get("fsck") {
                if !matches!(v.get_ref().as_str(), Some("auto" | "always" | "never")) {
                    cx.err(
                        &p.key("fsck"),
                        Some(&v.span()),
                        format!(
                            "expected \"auto\", \"always\" or \"never\", found {}",
                            describe(v.get_ref())
                        ),
                    );
                }
            }
        }
        Exec::Address => {
            let ip = match str_of("ip") {
                Some((s, span)) => match IpAddr::from_str(s) {
                    Ok(ip) => Some(ip),
                    Err(_) => {
                        cx.err(
                            &p.key("ip"),
                            Some(&span),
                            format!("{s:?} is not an IP address"),
                        );
                        None
                    }
                },
                None => {
                    if let Some(v) = p.get("ip") {
                        cx.err(
                            &p.key("ip"),
                            Some(&v.span()),
                            format!("expected an IP address, found {}", describe(v.get_ref())),
                        );
                    }
                    None
                }
            };
            if let Some(v) = p.get("cidr_netmask") {
                let max = if matches!(ip, Some(IpAddr::V6(_))) {
                    128
                } else {
                    32
                };
                let n = integer(v.get_ref())
                    .or_else(|| v.get_ref().as_str().and_then(|s| s.parse::<i128>().ok()));
                if !n.is_some_and(|n| (0..=max).contains(&n)) {
                    cx.err(
                        &p.key("cidr_netmask"),
                        Some(&v.span()),
                        format!(
                            "expected a prefix length 0..={max}, found {}",
                            describe(v.get_ref())
                        ),
                    );
                }
            }
        }
        Exec::Drbd => {
            if let Some((s, span)) = str_of("resource") {
                if !is_name(s) {
                    cx.err(
                        &p.key("resource"),
                        Some(&span),
                        format!("{s:?} is not a DRBD resource name"),
                    );
                }
            }
        }
        Exec::Agent(_) => {}
    }
}

/// OCF parameters become `OCF_RESKEY_<name>`: shell variable names only.
/// LSB scripts and systemd units take no parameters.
fn agent_params(cx: &mut Cx, res: &Tab<'_, '_>, agent: &ra::Agent, p: Option<&Tab<'_, '_>>) {
    let Some(p) = p else {
        return;
    };
    if !matches!(agent, ra::Agent::Ocf { .. }) {
        if !p.t.is_empty() {
            cx.warn(
                &res.key("params"),
                Some(&p.span),
                format!("{agent} takes no parameters (only OCF agents do): these are ignored"),
            );
        }
        return;
    }
    for (k, _) in p.t.iter() {
        let name = k.get_ref();
        let mut b = name.bytes();
        let ok = matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
            && b.all(|c| c.is_ascii_alphanumeric() || c == b'_');
        if !ok {
            cx.err(
                &p.key(name),
                Some(&k.span()),
                format!(
                    "{name:?} cannot be an OCF parameter (it becomes OCF_RESKEY_{name}): use \
                     letters, digits and _"
                ),
            );
        }
    }
}

fn list(keys: &[&str]) -> String {
    match keys {
        [] => String::new(),
        [a] => a.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
pub(super) fn test_distance(a: &str, b: &str) -> usize {
    distance(a, b)
}

#[cfg(test)]
pub(super) fn test_suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    suggest(key, known)
}
