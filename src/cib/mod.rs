//! `hapair import-cib`: a Pacemaker CIB's resources as a hapair.toml.
//!
//! Input: either a `<configuration>` fragment (as loaded with `cibadmin
//! --replace -o configuration`) or a whole `<cib>` (as `cibadmin -Q`
//! prints it). Output: the equivalent [`crate::config`] file as text, with
//! comments at the top listing every placeholder, every mapping and every
//! attribute that was not carried over. [`import`] is pure (no I/O); the
//! text it returns always passes [`crate::config::parse`].
//!
//! # The shape hapair can express
//! One stack: an optional promotable clone of `ocf:*:drbd` (becomes the
//! built-in `drbd` resource, bottom of the stack), then one `<group>` (or a
//! single primitive) whose members become the `[[resource]]`s in order.
//! When the group's first member is `ocf:heartbeat:sfex` or
//! `ocf:hapair:sfex`, it becomes `[lease]` (device, index, and the sfex
//! timing: `lock_timeout`, `monitor_interval`, `collision_timeout`, whole
//! seconds, the agents' defaults 100, 10 and 1 where unset). With the
//! clone, the constraints must say exactly "the group with the Promoted
//! role" (`rsc_colocation`, score INFINITY) and "promote, then start the
//! group" (`rsc_order`, Mandatory): that is what hapair always does.
//!
//! - `ocf`, `lsb` and `systemd` primitives become agent resources with the
//!   same agent (`ocf:PROVIDER:TYPE`, `lsb:NAME`, `systemd:UNIT`);
//!   `instance_attributes` become `params`; the `start`/`stop` op timeouts
//!   and the first `monitor` op's interval and timeout become
//!   `start_timeout`, `stop_timeout`, `monitor_interval`, `monitor_timeout`
//!   (for the DRBD clone: `promote`/`demote` and the Promoted-role monitor,
//!   since hapair's `drbd` type promotes a resource that is already up).
//!   Where the CIB gives no timeout, `op_defaults`' `timeout` applies, else
//!   hapair's defaults.
//! - `stonith` primitives become `[[fencing.device]]`s, one per node they
//!   can fence (`pcmk_host_list`, `pcmk_host_map`, or both nodes when
//!   neither is set), each with `plug` set to the node (or its
//!   `pcmk_host_map` value; `pcmk_host_argument` renames or disables it)
//!   as Pacemaker passes it; `pcmk_off_timeout`/`pcmk_reboot_timeout` (or
//!   the `stonith-timeout` property) become `timeout`;
//!   `<fencing-topology>` levels become `level` (renumbered 1, 2, ... per
//!   node when the CIB's indexes have gaps).
//! - Nodes come from `<nodes>`, else from `--node` options, else from the
//!   names in fence host lists and location constraints; more than two is
//!   refused. A positive location score for the stack makes that node
//!   `preferred`.
//! - `migration-threshold` and `failure-timeout` (resource meta attributes
//!   or `rsc_defaults`) become `[policy]`; `cluster-name` becomes
//!   `cluster.name`.
//!
//! Everything else (other meta attributes, op attributes such as
//! `on-fail`, cluster properties, alerts) is listed in a comment, never
//! dropped silently. What would change meaning is refused with a
//! [`CibError`] naming the element, its id and line: more than two nodes,
//! other clones, other constraints, resources outside the stack, primitive
//! classes hapair does not run, rules, templates, bundles, `id-ref`s.
//!
//! A CIB holds no heartbeat addresses: `--node NAME=ADDR[,ADDR...]` gives
//! each node's address on each link (port 5405 unless given); without them
//! the output carries marked placeholders. Without an sfex primitive, the
//! lease device is a placeholder too: hapair always needs one.

mod xml;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::str::FromStr;

use xml::Element;

/// Port used for `--node` addresses given without one.
pub const DEFAULT_PORT: u16 = 5405;

/// Where an element sits in the input: tag, `id` (may be empty) and line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct At {
    /// Tag name (`primitive`, `rsc_colocation`, ...).
    pub element: String,
    /// Its `id` attribute, or empty.
    pub id: String,
    /// 1-based line of its start tag.
    pub line: usize,
}

impl At {
    fn of(e: &Element) -> At {
        At {
            element: e.name.clone(),
            id: e.id().to_string(),
            line: e.line,
        }
    }
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.id.is_empty() {
            write!(f, "line {}: <{}>", self.line, self.element)
        } else {
            write!(
                f,
                "line {}: <{} id=\"{}\">",
                self.line, self.element, self.id
            )
        }
    }
}

/// Why a CIB was not imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CibError {
    /// Not well-formed XML.
    #[error("malformed XML at line {line}, column {column}: {message}")]
    Malformed {
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        column: usize,
        /// What the parser found.
        message: String,
    },
    /// The root element is neither `<cib>` nor `<configuration>`.
    #[error("line {line}: the root element is <{found}>: expected <cib> or <configuration>")]
    NotCib {
        /// The root's tag.
        found: String,
        /// Its line.
        line: usize,
    },
    /// A third node.
    #[error("{at}: a third node ({name:?}, after {known}): hapair runs exactly two")]
    TooManyNodes {
        /// Where the third node appears.
        at: At,
        /// Its name.
        name: String,
        /// The two nodes known before it, quoted: `"a" and "b"`.
        known: String,
    },
    /// A clone other than one promotable DRBD clone.
    #[error("{at}: {reason}")]
    UnsupportedClone {
        /// The clone.
        at: At,
        /// Why.
        reason: String,
    },
    /// A constraint that is not part of hapair's fixed stack shape.
    #[error("{at}: {reason}")]
    UnsupportedConstraint {
        /// The constraint.
        at: At,
        /// Why.
        reason: String,
    },
    /// A resource that is not in the single stack.
    #[error("{at}: {reason}")]
    OutsideStack {
        /// The resource.
        at: At,
        /// Why.
        reason: String,
    },
    /// A primitive class hapair does not run.
    #[error(
        "{at}: class {class:?}: hapair runs ocf, lsb and systemd agents (and stonith as fence devices){hint}"
    )]
    UnsupportedClass {
        /// The primitive.
        at: At,
        /// Its class.
        class: String,
        /// A hint, starting with "; ", or empty.
        hint: String,
    },
    /// The sfex lease's timing cannot meet hapair's lease rule.
    #[error("{at}: the sfex lease cannot meet hapair's lease rule: {reason}")]
    LeaseRule {
        /// The sfex primitive.
        at: At,
        /// The rule and the numbers.
        reason: String,
    },
    /// Another construct hapair cannot express (rules, templates,
    /// bundles, id-refs, ...).
    #[error("{at}: {reason}")]
    Unsupported {
        /// The element.
        at: At,
        /// Why.
        reason: String,
    },
    /// `--node` options that contradict the CIB's nodes.
    #[error("--node {name}: {reason}")]
    NodeOption {
        /// The option's node name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The generated file failed hapair's validator (a value the CIB
    /// holds that hapair does not accept, such as a resource id with
    /// characters outside `[A-Za-z0-9_.-]`).
    #[error("the imported configuration is not valid:\n{}", crate::config::render_problems(.problems, Path::new("hapair.toml")).trim_end())]
    Invalid {
        /// The validator's problems (lines of the generated text).
        problems: Vec<crate::config::Problem>,
    },
}

impl CibError {
    /// The element the error names, when it names one.
    pub fn at(&self) -> Option<&At> {
        match self {
            CibError::TooManyNodes { at, .. }
            | CibError::UnsupportedClone { at, .. }
            | CibError::UnsupportedConstraint { at, .. }
            | CibError::OutsideStack { at, .. }
            | CibError::UnsupportedClass { at, .. }
            | CibError::LeaseRule { at, .. }
            | CibError::Unsupported { at, .. } => Some(at),
            CibError::Malformed { .. }
            | CibError::NotCib { .. }
            | CibError::NodeOption { .. }
            | CibError::Invalid { .. } => None,
        }
    }

    /// The input line the error is about, when it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            CibError::Malformed { line, .. } | CibError::NotCib { line, .. } => Some(*line),
            e => e.at().map(|a| a.line),
        }
    }
}

/// `--node NAME=ADDR[,ADDR...]`: a node's heartbeat address on each link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddrs {
    /// Node name.
    pub name: String,
    /// One address per link, in link order.
    pub addrs: Vec<SocketAddr>,
}

/// A `--node` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NodeAddrsError(String);

impl FromStr for NodeAddrs {
    type Err = NodeAddrsError;

    /// `NAME=ADDR[,ADDR...]`, each ADDR an IP address with an optional
    /// port (`192.0.2.1`, `192.0.2.1:5405`, `[2001:db8::1]:5405`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, rest) = s
            .split_once('=')
            .ok_or_else(|| NodeAddrsError(format!("{s:?}: expected NAME=ADDR[,ADDR...]")))?;
        if name.is_empty() {
            return Err(NodeAddrsError(format!("{s:?}: the node name is empty")));
        }
        let addrs = rest
            .split(',')
            .map(|a| {
                let a = a.trim();
                SocketAddr::from_str(a)
                    .or_else(|_| IpAddr::from_str(a).map(|ip| SocketAddr::new(ip, DEFAULT_PORT)))
                    .map_err(|_| {
                        NodeAddrsError(format!(
                            "{a:?} is not an IP address (with an optional :port)"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NodeAddrs {
            name: name.to_string(),
            addrs,
        })
    }
}

/// What the CIB does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--node` options, in order.
    pub nodes: Vec<NodeAddrs>,
}

/// One comment about the input: where, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Note {
    /// The element's id (or the nvpair's name when it has no id).
    pub id: String,
    /// Its line in the input.
    pub line: usize,
    /// What happened to it.
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.id, self.message)
        } else {
            write!(f, "line {}, {}: {}", self.line, self.id, self.message)
        }
    }
}

/// A successful import.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    /// The hapair.toml text (comments at the top repeat the lists below).
    pub toml: String,
    /// Values the CIB does not hold, filled with marked placeholders.
    pub placeholders: Vec<String>,
    /// What was not carried over, or carried over with another meaning.
    pub warnings: Vec<Note>,
    /// What was mapped where.
    pub mapped: Vec<Note>,
}

/// [`import_with`] without options.
pub fn import(xml: &str) -> Result<Imported, CibError> {
    import_with(xml, &Options::default())
}

/// Imports the CIB (or `<configuration>` fragment) `xml`.
pub fn import_with(xml: &str, opts: &Options) -> Result<Imported, CibError> {
    let root = xml::parse(xml)?;
    let conf = match root.name.as_str() {
        "configuration" => &root,
        "cib" => root
            .kids("configuration")
            .next()
            .ok_or_else(|| CibError::Unsupported {
                at: At::of(&root),
                reason: "a <cib> without <configuration>".into(),
            })?,
        other => {
            return Err(CibError::NotCib {
                found: other.to_string(),
                line: root.line,
            });
        }
    };
    let mut cx = Cx::default();
    Importer::new(&mut cx, conf, opts)?.run()
}

// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Cx {
    warnings: Vec<Note>,
    mapped: Vec<Note>,
    placeholders: Vec<String>,
}

fn note(e: &Element, message: String) -> Note {
    let id = match e.attr("id") {
        Some(id) => id.to_string(),
        None => e
            .attr("name")
            .map_or_else(|| e.name.clone(), str::to_string),
    };
    Note {
        id,
        line: e.line,
        message,
    }
}

impl Cx {
    fn warn(&mut self, e: &Element, message: impl Into<String>) {
        self.warnings.push(note(e, message.into()));
    }
    fn mapped(&mut self, e: &Element, message: impl Into<String>) {
        self.mapped.push(note(e, message.into()));
    }
}

fn unsupported(e: &Element, reason: impl Into<String>) -> CibError {
    CibError::Unsupported {
        at: At::of(e),
        reason: reason.into(),
    }
}

/// One name/value pair of an attribute set.
#[derive(Debug, Clone)]
struct Nv<'a> {
    name: String,
    value: String,
    el: &'a Element,
}

/// The nvpairs of `parent`'s `set` children (`instance_attributes`,
/// `meta_attributes`, `cluster_property_set`); rules and id-refs refused.
fn nvpairs<'a>(cx: &mut Cx, parent: &'a Element, set: &str) -> Result<Vec<Nv<'a>>, CibError> {
    let mut out: Vec<Nv<'a>> = Vec::new();
    for s in parent.kids(set) {
        if s.attr("id-ref").is_some() {
            return Err(unsupported(
                s,
                format!("<{set}> by id-ref: write the attributes out"),
            ));
        }
        for c in &s.children {
            match c.name.as_str() {
                "nvpair" => {
                    if c.attr("id-ref").is_some() {
                        return Err(unsupported(c, "an nvpair by id-ref: write the value out"));
                    }
                    let Some(name) = c.attr("name") else {
                        return Err(unsupported(c, "an nvpair without a name"));
                    };
                    let Some(value) = c.attr("value") else {
                        cx.warn(
                            c,
                            format!("{name} has no value (unset in Pacemaker): ignored"),
                        );
                        continue;
                    };
                    if out.iter().any(|n| n.name == name) {
                        cx.warn(
                            c,
                            format!("{name} set a second time: the first value is used"),
                        );
                        continue;
                    }
                    out.push(Nv {
                        name: name.to_string(),
                        value: value.to_string(),
                        el: c,
                    });
                }
                "rule" => {
                    return Err(unsupported(
                        c,
                        format!(
                            "a rule in <{set}>: hapair's settings are the same at all times and on both nodes"
                        ),
                    ));
                }
                _ => {
                    return Err(unsupported(
                        c,
                        format!("unexpected <{}> in <{set}>", c.name),
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// Pacemaker durations: an integer with an optional unit (ms, msec, us,
/// usec, s, sec, m, min, h, hr); no unit means seconds. Milliseconds.
fn pcmk_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let unit = s[digits..].trim().to_ascii_lowercase();
    let ms = match unit.as_str() {
        "" | "s" | "sec" | "secs" => n.checked_mul(1_000)?,
        "ms" | "msec" | "msecs" => n,
        "us" | "usec" | "usecs" => n.div_ceil(1_000),
        "m" | "min" | "mins" => n.checked_mul(60_000)?,
        "h" | "hr" | "hrs" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(ms)
}

fn duration_of(e: &Element, what: &str, s: &str) -> Result<u64, CibError> {
    pcmk_duration(s).ok_or_else(|| {
        unsupported(
            e,
            format!(
                "{what} {s:?} is not a duration hapair reads (an integer with ms, s, min or h)"
            ),
        )
    })
}

/// A duration in humantime units.
fn fmt_ms(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A Pacemaker score: `None` for INFINITY magnitudes (with their sign).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Score {
    MinusInf,
    N(i64),
    Inf,
}

fn score(e: &Element, s: &str) -> Result<Score, CibError> {
    match s.trim() {
        "INFINITY" | "+INFINITY" | "infinity" | "+infinity" => Ok(Score::Inf),
        "-INFINITY" | "-infinity" => Ok(Score::MinusInf),
        t => t
            .parse::<i64>()
            .map(Score::N)
            .map_err(|_| unsupported(e, format!("score {s:?} is not a number or INFINITY"))),
    }
}

fn is_true(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "y" | "1"
    )
}

/// A TOML basic string.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when it can be.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        s.to_string()
    } else {
        q(s)
    }
}

fn inline_table(params: &[(String, String)]) -> String {
    let items: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{} = {}", key(k), q(v)))
        .collect();
    format!("{{ {} }}", items.join(", "))
}

/// A comment line's text on one line.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

// ---------------------------------------------------------------------------

/// A resource of the stack, ready to print.
#[derive(Debug)]
struct Res {
    name: String,
    type_: String,
    params: Vec<(String, String)>,
    start_timeout: Option<u64>,
    stop_timeout: Option<u64>,
    monitor_interval: Option<u64>,
    monitor_timeout: Option<u64>,
    comment: String,
}

/// One fence device entry.
#[derive(Debug)]
struct Fence {
    target: String,
    level: usize,
    agent: String,
    timeout: Option<u64>,
    params: Vec<(String, String)>,
    comment: String,
}

/// A stonith primitive, read.
#[derive(Debug)]
struct Stonith<'a> {
    el: &'a Element,
    agent: String,
    params: Vec<(String, String)>,
    /// (node, plug value), in the order the CIB names them; empty: any node.
    targets: Vec<(String, String, &'a Element)>,
    host_argument: Option<String>,
    timeout: Option<u64>,
}

/// One `<fencing-level>`: index, device ids, the element.
type Level<'a> = (u32, Vec<String>, &'a Element);

/// The sfex lease, read.
#[derive(Debug)]
struct LeaseIn<'a> {
    el: &'a Element,
    device: String,
    index: Option<String>,
    lock_timeout: u64,
    monitor_interval: u64,
    collision_timeout: u64,
}

/// Pacemaker's `migration-threshold` / `failure-timeout` as seen on one
/// stack resource.
#[derive(Debug, Default, Clone)]
struct PolicyMeta<'a> {
    threshold: Option<(String, &'a Element)>,
    failure_timeout: Option<(String, &'a Element)>,
}

struct Importer<'a, 'c> {
    cx: &'c mut Cx,
    conf: &'a Element,
    opts: &'a Options,
    /// Known node names (from `<nodes>`), or inferred, with where.
    nodes: Vec<String>,
    nodes_fixed: bool,
    op_timeout: Option<u64>,
    cluster_name: Option<String>,
    stonith_timeout: Option<u64>,
    /// Some operation took Pacemaker's default timeout.
    default_timeout_used: bool,
}

/// Pacemaker's timeout of an operation that sets none (without op_defaults).
const PCMK_OP_TIMEOUT: u64 = 20_000;

impl<'a, 'c> Importer<'a, 'c> {
    fn new(cx: &'c mut Cx, conf: &'a Element, opts: &'a Options) -> Result<Self, CibError> {
        Ok(Importer {
            cx,
            conf,
            opts,
            nodes: Vec::new(),
            nodes_fixed: false,
            op_timeout: None,
            cluster_name: None,
            stonith_timeout: None,
            default_timeout_used: false,
        })
    }

    /// Adds `name` to the inferred nodes (or checks it against the fixed
    /// ones); `e` is where it appears.
    fn node_seen(&mut self, name: &str, e: &Element) -> Result<(), CibError> {
        if self.nodes.iter().any(|n| n == name) {
            return Ok(());
        }
        if self.nodes.len() >= 2 || self.nodes_fixed {
            return Err(CibError::TooManyNodes {
                at: At::of(e),
                name: name.to_string(),
                known: quoted_and(&self.nodes),
            });
        }
        self.nodes.push(name.to_string());
        Ok(())
    }

    fn run(mut self) -> Result<Imported, CibError> {
        let conf = self.conf;
        for c in &conf.children {
            match c.name.as_str() {
                "crm_config" | "nodes" | "resources" | "constraints" | "rsc_defaults"
                | "op_defaults" | "fencing-topology" => {}
                "alerts" | "acls" | "tags" => {
                    self.cx.warn(
                        c,
                        format!("<{}> is not carried over: hapair has no equivalent", c.name),
                    );
                }
                other => {
                    return Err(unsupported(
                        c,
                        format!("unexpected <{other}> in <configuration>"),
                    ));
                }
            }
        }
        self.crm_config()?;
        self.nodes()?;
        self.op_defaults()?;
        let rsc_defaults = self.rsc_defaults()?;
        let Some(resources) = conf.kids("resources").next() else {
            return Err(unsupported(conf, "no <resources>: nothing to import"));
        };
        let stack = self.stack(resources)?;
        if self.default_timeout_used {
            let msg = match self.op_timeout {
                Some(t) => format!(
                    "operations without a timeout -> {} (op_defaults timeout)",
                    fmt_ms(t)
                ),
                None => format!(
                    "operations without a timeout -> {}, Pacemaker's default (hapair's own defaults are longer)",
                    fmt_ms(PCMK_OP_TIMEOUT)
                ),
            };
            self.cx.mapped.push(Note {
                id: "op timeouts".into(),
                line: 0,
                message: msg,
            });
        }
        let preferred = self.constraints(&stack)?;
        let devs = self.fencing(&stack.stonith)?;
        // nodes: the CIB's, else --node's, else inferred, else placeholders
        let mut placeholder_nodes = false;
        if !self.nodes_fixed {
            for o in &self.opts.nodes {
                if !self.nodes.contains(&o.name) {
                    if self.nodes.len() >= 2 {
                        return Err(CibError::NodeOption {
                            name: o.name.clone(),
                            reason: format!(
                                "the CIB already names two nodes, {:?} and {:?}",
                                self.nodes[0], self.nodes[1]
                            ),
                        });
                    }
                    self.nodes.push(o.name.clone());
                }
            }
        }
        while self.nodes.len() < 2 {
            let mut i = self.nodes.len() + 1;
            while self.nodes.contains(&format!("node{i}")) {
                i += 1;
            }
            self.nodes.push(format!("node{i}"));
            placeholder_nodes = true;
        }
        if placeholder_nodes {
            self.cx.placeholders.push(
                "node names: the CIB names fewer than two nodes; node1/node2 stand in (use each node's `uname -n`)"
                    .into(),
            );
        }
        for o in &self.opts.nodes {
            if !self.nodes.contains(&o.name) {
                return Err(CibError::NodeOption {
                    name: o.name.clone(),
                    reason: format!(
                        "not a node of the CIB ({} and {})",
                        self.nodes[0], self.nodes[1]
                    ),
                });
            }
        }
        let fence = self.expand_fence(&devs)?;
        let policy = self.policy(&stack, &rsc_defaults)?;
        let outline = self.outline(&stack);
        let text = self.render(&stack, preferred.as_deref(), &fence, &policy, &outline);
        // the result must validate; lease rule failures belong to the sfex primitive
        match crate::config::parse(&text, Path::new("hapair.toml")) {
            Ok(loaded) => {
                for w in loaded.warnings {
                    self.cx.warnings.push(Note {
                        id: format!("hapair validate: {}", w.path),
                        line: 0,
                        message: one_line(&w.message),
                    });
                }
            }
            Err(problems) => {
                if let Some(lease) = &stack.lease {
                    let lease_problems: Vec<String> = problems
                        .iter()
                        .filter(|p| p.path.starts_with("lease."))
                        .map(|p| p.message.clone())
                        .collect();
                    if !lease_problems.is_empty() {
                        return Err(CibError::LeaseRule {
                            at: At::of(lease.el),
                            reason: lease_problems.join("; "),
                        });
                    }
                }
                return Err(CibError::Invalid { problems });
            }
        }
        // render again: the header lists the validator's warnings too
        let text = self.render(&stack, preferred.as_deref(), &fence, &policy, &outline);
        Ok(Imported {
            toml: text,
            placeholders: std::mem::take(&mut self.cx.placeholders),
            warnings: std::mem::take(&mut self.cx.warnings),
            mapped: std::mem::take(&mut self.cx.mapped),
        })
    }

    fn crm_config(&mut self) -> Result<(), CibError> {
        for cc in self.conf.kids("crm_config") {
            for nv in nvpairs(self.cx, cc, "cluster_property_set")? {
                let v = nv.value.as_str();
                match nv.name.as_str() {
                    "cluster-name" => {
                        self.cluster_name = Some(v.to_string());
                        self.cx.mapped(nv.el, "cluster-name -> cluster.name");
                    }
                    "stonith-timeout" => {
                        self.stonith_timeout = Some(duration_of(nv.el, "stonith-timeout", v)?);
                        self.cx.mapped(
                            nv.el,
                            "stonith-timeout -> fencing.device timeout (where the device sets no pcmk_off_timeout)",
                        );
                    }
                    "stonith-enabled" if !is_true(v) => self.cx.warn(
                        nv.el,
                        "stonith-enabled=false: hapair fences with the devices below whenever a takeover needs it; \
                         without devices it waits for the lease to expire",
                    ),
                    "no-quorum-policy" => self.cx.warn(
                        nv.el,
                        format!("no-quorum-policy={v}: not carried over (a pair has no quorum; the lease decides)"),
                    ),
                    "dc-version" | "cluster-infrastructure" | "have-watchdog" | "last-lrm-refresh" => {
                        self.cx.warn(nv.el, format!("{}={v}: Pacemaker's own record, not carried over", nv.name));
                    }
                    other => self.cx.warn(
                        nv.el,
                        format!("cluster property {other}={v}: no hapair equivalent, not carried over"),
                    ),
                }
            }
        }
        Ok(())
    }

    fn nodes(&mut self) -> Result<(), CibError> {
        for ns in self.conf.kids("nodes") {
            for n in &ns.children {
                if n.name != "node" {
                    return Err(unsupported(
                        n,
                        format!("unexpected <{}> in <nodes>", n.name),
                    ));
                }
                match n.attr("type") {
                    None | Some("member" | "normal") => {}
                    Some(t) => {
                        return Err(unsupported(
                            n,
                            format!("a node of type {t}: hapair runs two full cluster nodes only"),
                        ));
                    }
                }
                let Some(name) = n.attr("uname").or(n.attr("id")) else {
                    return Err(unsupported(n, "a node without uname"));
                };
                self.node_seen(name, n)?;
                for nv in nvpairs(self.cx, n, "instance_attributes")? {
                    let msg = if nv.name == "standby" {
                        format!(
                            "node attribute standby={}: not carried over (use `hapair standby {name}`)",
                            nv.value
                        )
                    } else {
                        format!("node attribute {}={}: not carried over", nv.name, nv.value)
                    };
                    self.cx.warn(nv.el, msg);
                }
                for nv in nvpairs(self.cx, n, "utilization")? {
                    self.cx.warn(
                        nv.el,
                        format!("utilization {}={}: not carried over", nv.name, nv.value),
                    );
                }
                if let Some(c) = n
                    .children
                    .iter()
                    .find(|c| c.name != "instance_attributes" && c.name != "utilization")
                {
                    return Err(unsupported(c, format!("unexpected <{}> in <node>", c.name)));
                }
            }
            self.nodes_fixed = !self.nodes.is_empty();
        }
        if self.nodes_fixed {
            for o in &self.opts.nodes {
                if !self.nodes.contains(&o.name) {
                    return Err(CibError::NodeOption {
                        name: o.name.clone(),
                        reason: format!("the CIB's nodes are {}", self.nodes.join(" and ")),
                    });
                }
            }
        }
        Ok(())
    }

    fn op_defaults(&mut self) -> Result<(), CibError> {
        for od in self.conf.kids("op_defaults") {
            for nv in nvpairs(self.cx, od, "meta_attributes")? {
                if nv.name == "timeout" {
                    self.op_timeout = Some(duration_of(nv.el, "op_defaults timeout", &nv.value)?);
                    self.cx.mapped(
                        nv.el,
                        "op_defaults timeout -> the timeouts the resources' operations do not set",
                    );
                } else {
                    self.cx.warn(
                        nv.el,
                        format!(
                            "op_defaults {}={}: no hapair equivalent, not carried over",
                            nv.name, nv.value
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    fn rsc_defaults(&mut self) -> Result<PolicyMeta<'a>, CibError> {
        let mut pm = PolicyMeta::default();
        for rd in self.conf.kids("rsc_defaults") {
            for nv in nvpairs(self.cx, rd, "meta_attributes")? {
                self.meta(&nv, "rsc_defaults", &mut pm);
            }
        }
        Ok(pm)
    }

    /// One meta attribute of a stack resource (or rsc_defaults): mapped,
    /// or noted.
    fn meta(&mut self, nv: &Nv<'a>, owner: &str, pm: &mut PolicyMeta<'a>) {
        let v = nv.value.as_str();
        match nv.name.as_str() {
            "migration-threshold" => pm.threshold = Some((v.to_string(), nv.el)),
            "failure-timeout" => pm.failure_timeout = Some((v.to_string(), nv.el)),
            "resource-stickiness" => self.cx.warn(
                nv.el,
                format!(
                    "{owner} resource-stickiness={v}: hapair never moves a running stack back on its own \
                     (a preferred node only wins when both nodes start together)"
                ),
            ),
            "target-role" if matches!(v, "Started" | "Promoted" | "Master" | "Unpromoted" | "Slave") => {
                self.cx.warn(nv.el, format!("{owner} target-role={v}: the default, not carried over"));
            }
            "target-role" => self.cx.warn(
                nv.el,
                format!("{owner} target-role={v}: not carried over: hapair starts the stack (stop the daemon to keep it down)"),
            ),
            "is-managed" | "maintenance" => self.cx.warn(
                nv.el,
                format!("{owner} {}={v}: not carried over (use `hapair maintenance on`)", nv.name),
            ),
            other => self.cx.warn(
                nv.el,
                format!("{owner} meta attribute {other}={v}: no hapair equivalent, not carried over"),
            ),
        }
    }

    // -- resources ------------------------------------------------------

    fn stack(&mut self, resources: &'a Element) -> Result<Stack<'a>, CibError> {
        let mut group: Option<&'a Element> = None;
        let mut clone: Option<&'a Element> = None;
        let mut singles: Vec<&'a Element> = Vec::new();
        let mut stonith: Vec<&'a Element> = Vec::new();
        for r in &resources.children {
            match r.name.as_str() {
                "primitive" if r.attr("class") == Some("stonith") => stonith.push(r),
                "primitive" => singles.push(r),
                "group" => {
                    if let Some(g) = group {
                        return Err(CibError::OutsideStack {
                            at: At::of(r),
                            reason: format!(
                                "a second group (the stack is group {:?}): hapair runs one stack",
                                g.id()
                            ),
                        });
                    }
                    group = Some(r);
                }
                "clone" => {
                    if let Some(c) = clone {
                        return Err(CibError::UnsupportedClone {
                            at: At::of(r),
                            reason: format!(
                                "a second clone (after {:?}): hapair runs one promotable DRBD clone at most",
                                c.id()
                            ),
                        });
                    }
                    clone = Some(r);
                }
                "master" => {
                    return Err(CibError::UnsupportedClone {
                        at: At::of(r),
                        reason: "<master> (the Pacemaker 1.x form): convert it to <clone> with promotable=true \
                                 (cibadmin --upgrade) and import again"
                            .into(),
                    });
                }
                "bundle" | "template" => {
                    return Err(unsupported(
                        r,
                        format!("a <{}>: hapair runs plain agents only", r.name),
                    ));
                }
                other => {
                    return Err(unsupported(
                        r,
                        format!("unexpected <{other}> in <resources>"),
                    ));
                }
            }
        }
        let drbd = match clone {
            Some(c) => Some(self.drbd_clone(c)?),
            None => None,
        };
        let members: Vec<&'a Element> = match (group, singles.as_slice()) {
            (Some(_), [extra, ..]) => {
                return Err(CibError::OutsideStack {
                    at: At::of(extra),
                    reason: format!(
                        "a primitive outside group {:?}: hapair runs one stack (put it in the group)",
                        group.map_or("", |g| g.id())
                    ),
                });
            }
            (Some(g), []) => {
                let mut m = Vec::new();
                for c in &g.children {
                    match c.name.as_str() {
                        "primitive" => m.push(c),
                        "meta_attributes" | "instance_attributes" | "utilization" => {}
                        other => {
                            return Err(unsupported(c, format!("unexpected <{other}> in <group>")));
                        }
                    }
                }
                if m.is_empty() {
                    return Err(unsupported(g, "an empty group"));
                }
                m
            }
            (None, [one]) => vec![*one],
            (None, [_, second, ..]) => {
                return Err(CibError::OutsideStack {
                    at: At::of(second),
                    reason:
                        "a second primitive outside any group: hapair runs one stack, in order; \
                             put the primitives in one group"
                            .into(),
                });
            }
            (None, []) => {
                if let Some((c, _)) = &drbd {
                    return Err(CibError::UnsupportedClone {
                        at: At::of(c),
                        reason: "a DRBD clone with nothing on top: hapair needs a group of resources using it".into(),
                    });
                }
                return Err(unsupported(
                    resources,
                    "no resources besides fence devices: nothing to import",
                ));
            }
        };
        let mut group_meta = PolicyMeta::default();
        if let Some(g) = group {
            for nv in nvpairs(self.cx, g, "instance_attributes")? {
                self.cx.warn(
                    nv.el,
                    format!("group instance attribute {}: not carried over", nv.name),
                );
            }
            for nv in nvpairs(self.cx, g, "utilization")? {
                self.cx
                    .warn(nv.el, format!("utilization {}: not carried over", nv.name));
            }
            for nv in nvpairs(self.cx, g, "meta_attributes")? {
                self.meta(&nv, "group", &mut group_meta);
            }
            self.cx.mapped(
                g,
                format!(
                    "group members, in order -> the [[resource]] stack{}",
                    if drbd.is_some() { ", above DRBD" } else { "" }
                ),
            );
        }
        let mut lease = None;
        let mut res = Vec::new();
        let mut metas = Vec::new();
        for (i, p) in members.iter().enumerate() {
            if is_sfex(p) {
                if i != 0 {
                    return Err(CibError::OutsideStack {
                        at: At::of(p),
                        reason:
                            "an sfex lease that is not the group's first member: hapair's lease is \
                                 held below the whole stack"
                                .into(),
                    });
                }
                lease = Some(self.sfex(p)?);
                continue;
            }
            let (r, mut pm) = self.primitive(p, false)?;
            if pm.threshold.is_none() {
                pm.threshold = group_meta.threshold.clone();
            }
            if pm.failure_timeout.is_none() {
                pm.failure_timeout = group_meta.failure_timeout.clone();
            }
            res.push(r);
            metas.push(pm);
        }
        if res.is_empty() {
            return Err(unsupported(
                group.unwrap_or(members[0]),
                "only an sfex lease: no resource to run",
            ));
        }
        let mut ids: Vec<String> = members.iter().map(|m| m.id().to_string()).collect();
        let top = group.unwrap_or(members[0]).id().to_string();
        ids.push(top.clone());
        let mut out_res = Vec::new();
        let mut out_meta = Vec::new();
        if let Some((c, (r, pm))) = drbd {
            ids.push(c.id().to_string());
            ids.push(r.name.clone());
            out_res.push(r);
            out_meta.push(pm);
            return Ok(Stack {
                clone: Some(c),
                top,
                ids,
                resources: out_res.into_iter().chain(res).collect(),
                metas: out_meta.into_iter().chain(metas).collect(),
                lease,
                stonith,
            });
        }
        Ok(Stack {
            clone: None,
            top,
            ids,
            resources: res,
            metas,
            lease,
            stonith,
        })
    }

    #[allow(clippy::type_complexity)]
    fn drbd_clone(
        &mut self,
        c: &'a Element,
    ) -> Result<(&'a Element, (Res, PolicyMeta<'a>)), CibError> {
        let refuse = |reason: String| CibError::UnsupportedClone {
            at: At::of(c),
            reason,
        };
        let prims: Vec<&Element> = c.kids("primitive").collect();
        if let Some(o) = c.children.iter().find(|k| {
            !matches!(
                k.name.as_str(),
                "primitive" | "meta_attributes" | "instance_attributes"
            )
        }) {
            return Err(refuse(format!(
                "a clone of a <{}>: hapair's only clone is a promotable DRBD clone of one primitive",
                o.name
            )));
        }
        let [p] = prims.as_slice() else {
            return Err(refuse("a clone without a primitive".into()));
        };
        let p: &'a Element = p;
        if p.attr("class") != Some("ocf") || p.attr("type") != Some("drbd") {
            return Err(refuse(format!(
                "a clone of {}: hapair's only clone is a promotable clone of ocf:linbit:drbd",
                agent_name(p)
            )));
        }
        let metas = nvpairs(self.cx, c, "meta_attributes")?;
        let get = |n: &[&str]| metas.iter().find(|m| n.contains(&m.name.as_str()));
        if !get(&["promotable"]).is_some_and(|m| is_true(&m.value)) {
            return Err(refuse(
                "a clone that is not promotable: hapair runs the stack on one node; only a promotable \
                 DRBD clone (promotable=true) maps onto it"
                    .into(),
            ));
        }
        let mut pm = PolicyMeta::default();
        for m in &metas {
            let v = m.value.as_str();
            let want = match m.name.as_str() {
                "promotable" => Some("true"),
                "promoted-max" | "master-max" | "promoted-node-max" | "master-node-max"
                | "clone-node-max" => Some("1"),
                "clone-max" => Some("2"),
                "globally-unique" => Some("false"),
                _ => None,
            };
            match want {
                Some(w) if m.name == "promotable" || m.name == "globally-unique" => {
                    if is_true(v) != is_true(w) {
                        return Err(refuse(format!("{}={v}: hapair's DRBD is {}={w}", m.name, m.name)));
                    }
                    self.cx.mapped(m.el, format!("clone {}={v} -> hapair's drbd type (one Primary)", m.name));
                }
                Some(w) => {
                    if v.trim() != w {
                        return Err(refuse(format!(
                            "{}={v}: hapair's DRBD runs on two nodes, promoted on one ({}={w})",
                            m.name, m.name
                        )));
                    }
                    self.cx.mapped(m.el, format!("clone {}={v} -> hapair's drbd type (one Primary)", m.name));
                }
                None => match m.name.as_str() {
                    "notify" | "interleave" | "ordered" => self.cx.mapped(
                        m.el,
                        format!("clone {}={v}: hapair drives DRBD itself (drbdadm, events2); no notifications needed", m.name),
                    ),
                    _ => self.meta(m, "clone", &mut pm),
                },
            }
        }
        for nv in nvpairs(self.cx, c, "instance_attributes")? {
            self.cx.warn(
                nv.el,
                format!("clone instance attribute {}: not carried over", nv.name),
            );
        }
        let (r, ppm) = self.primitive(p, true)?;
        if ppm.threshold.is_some() {
            pm.threshold = ppm.threshold;
        }
        if ppm.failure_timeout.is_some() {
            pm.failure_timeout = ppm.failure_timeout;
        }
        self.cx.mapped(
            c,
            format!(
                "promotable clone of {} -> resource {:?}, type drbd, bottom of the stack",
                agent_name(p),
                r.name
            ),
        );
        Ok((c, (r, pm)))
    }

    /// A primitive of the stack (the DRBD one when `drbd`).
    fn primitive(&mut self, p: &'a Element, drbd: bool) -> Result<(Res, PolicyMeta<'a>), CibError> {
        if p.attr("template").is_some() {
            return Err(unsupported(p, "a primitive from a template: write it out"));
        }
        let class = p.attr("class").unwrap_or("");
        let kind = p.attr("type").unwrap_or("");
        if kind.is_empty() {
            return Err(unsupported(p, "a primitive without type"));
        }
        let type_ = match class {
            "ocf" => match p.attr("provider") {
                Some(prov) => format!("ocf:{prov}:{kind}"),
                None => return Err(unsupported(p, "an ocf primitive without provider")),
            },
            "lsb" => format!("lsb:{kind}"),
            "systemd" => format!("systemd:{kind}"),
            "stonith" => {
                return Err(CibError::OutsideStack {
                    at: At::of(p),
                    reason: "a stonith primitive inside the stack: fence devices stand at the top level of <resources>".into(),
                });
            }
            "service" => {
                return Err(CibError::UnsupportedClass {
                    at: At::of(p),
                    class: class.into(),
                    hint: "; say which: lsb or systemd".into(),
                });
            }
            other => {
                return Err(CibError::UnsupportedClass {
                    at: At::of(p),
                    class: other.into(),
                    hint: String::new(),
                });
            }
        };
        for c in &p.children {
            if !matches!(
                c.name.as_str(),
                "instance_attributes" | "meta_attributes" | "operations" | "utilization"
            ) {
                return Err(unsupported(
                    c,
                    format!("unexpected <{}> in <primitive>", c.name),
                ));
            }
        }
        let id = p.id().to_string();
        let mut params = Vec::new();
        let mut comment = String::new();
        for nv in nvpairs(self.cx, p, "instance_attributes")? {
            if drbd {
                if nv.name == "drbd_resource" {
                    params.push(("resource".to_string(), nv.value.clone()));
                    self.cx.mapped(nv.el, "drbd_resource -> params.resource");
                } else {
                    self.cx.warn(
                        nv.el,
                        format!("ocf:linbit:drbd parameter {}={}: hapair's drbd type has no such setting, not carried over", nv.name, nv.value),
                    );
                }
            } else if class == "ocf" {
                params.push((nv.name.clone(), nv.value.clone()));
            } else {
                self.cx.warn(
                    nv.el,
                    format!(
                        "parameter {}={}: {class} agents take no parameters, not carried over",
                        nv.name, nv.value
                    ),
                );
            }
        }
        if drbd && params.is_empty() {
            return Err(unsupported(
                p,
                "an ocf:linbit:drbd primitive without drbd_resource",
            ));
        }
        for nv in nvpairs(self.cx, p, "utilization")? {
            self.cx
                .warn(nv.el, format!("utilization {}: not carried over", nv.name));
        }
        let mut pm = PolicyMeta::default();
        for nv in nvpairs(self.cx, p, "meta_attributes")? {
            self.meta(&nv, "resource", &mut pm);
        }
        // operations
        let (start_op, stop_op) = if drbd {
            ("promote", "demote")
        } else {
            ("start", "stop")
        };
        let mut start_timeout = None;
        let mut stop_timeout = None;
        let mut monitor: Option<(&Element, u64, Option<u64>)> = None;
        for ops in p.kids("operations") {
            if ops.attr("id-ref").is_some() {
                return Err(unsupported(ops, "<operations> by id-ref: write them out"));
            }
            for op in &ops.children {
                if op.name != "op" {
                    return Err(unsupported(
                        op,
                        format!("unexpected <{}> in <operations>", op.name),
                    ));
                }
                let name = op.attr("name").unwrap_or("");
                let timeout = match op.attr("timeout") {
                    Some(t) => Some(duration_of(op, "timeout", t)?),
                    None => None,
                };
                let interval = match op.attr("interval") {
                    Some(t) => duration_of(op, "interval", t)?,
                    None => 0,
                };
                let role = op.attr("role").unwrap_or("");
                for (k, v) in &op.attrs {
                    if !matches!(k.as_str(), "id" | "name" | "interval" | "timeout" | "role") {
                        self.cx.warn(op, format!("op {name} attribute {k}={v}: no hapair equivalent, not carried over"));
                    }
                }
                for c in &op.children {
                    for nv in nvpairs(self.cx, op, &c.name)? {
                        self.cx.warn(
                            nv.el,
                            format!(
                                "op {name} {} {}={}: not carried over",
                                c.name, nv.name, nv.value
                            ),
                        );
                    }
                }
                let n = name.to_string();
                match n.as_str() {
                    _ if n == start_op => {
                        start_timeout = timeout.or(start_timeout);
                        self.cx.mapped(op, format!("op {name} timeout -> {id}.start_timeout"));
                    }
                    _ if n == stop_op => {
                        stop_timeout = timeout.or(stop_timeout);
                        self.cx.mapped(op, format!("op {name} timeout -> {id}.stop_timeout"));
                    }
                    "monitor" => {
                        let wanted_role = if drbd {
                            matches!(role, "Promoted" | "Master")
                        } else {
                            matches!(role, "" | "Started")
                        };
                        if interval == 0 {
                            self.cx.warn(op, "a monitor op with interval 0 (a probe setting): not carried over");
                        } else if wanted_role && monitor.is_none() {
                            monitor = Some((op, interval, timeout));
                            self.cx.mapped(
                                op,
                                format!("op monitor{} interval/timeout -> {id}.monitor_interval/monitor_timeout",
                                    if role.is_empty() { String::new() } else { format!(" role={role}") }),
                            );
                        } else {
                            self.cx.warn(
                                op,
                                format!(
                                    "op monitor interval={} role={}: hapair runs one monitor per resource, on the primary; not carried over",
                                    fmt_ms(interval),
                                    if role.is_empty() { "Started" } else { role }
                                ),
                            );
                        }
                    }
                    "start" | "stop" if drbd => self.cx.warn(
                        op,
                        format!("op {name} (drbdadm up/down): hapair's drbd type promotes and demotes a resource that is already up; not carried over"),
                    ),
                    _ => self.cx.warn(op, format!("op {name}: hapair runs no such operation, not carried over")),
                }
            }
        }
        // Pacemaker's timeout where the CIB sets none: op_defaults, else 20s
        let dflt = self.op_timeout.unwrap_or(PCMK_OP_TIMEOUT);
        if start_timeout.is_none()
            || stop_timeout.is_none()
            || monitor.is_some_and(|m| m.2.is_none())
        {
            self.default_timeout_used = true;
        }
        let start_timeout = start_timeout.or(Some(dflt));
        let stop_timeout = stop_timeout.or(Some(dflt));
        let (monitor_interval, monitor_timeout) = match monitor {
            Some((_, i, t)) => (Some(i), Some(t.unwrap_or(dflt))),
            None => {
                self.cx.warn(
                    p,
                    format!("no monitor op: Pacemaker does not monitor {id}; hapair does, every 10s (its default)"),
                );
                (None, None)
            }
        };
        let _ = write!(
            comment,
            "from primitive {:?} ({}), line {}",
            id,
            agent_name(p),
            p.line
        );
        let type_ = if drbd { "drbd".to_string() } else { type_ };
        if !drbd {
            self.cx.mapped(
                p,
                format!("{} -> [[resource]] {id:?}, type {type_}", agent_name(p)),
            );
        }
        Ok((
            Res {
                name: id,
                type_,
                params,
                start_timeout,
                stop_timeout,
                monitor_interval,
                monitor_timeout,
                comment,
            },
            pm,
        ))
    }

    fn sfex(&mut self, p: &'a Element) -> Result<LeaseIn<'a>, CibError> {
        let mut device = None;
        let mut index = None;
        let mut lock_timeout = 100_000;
        let mut monitor_interval = 10_000;
        let mut collision_timeout = 1_000;
        let secs = |nv: &Nv<'_>| -> Result<u64, CibError> {
            nv.value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0 && *n < 1 << 32)
                .map(|n| n * 1000)
                .ok_or_else(|| CibError::LeaseRule {
                    at: At::of(p),
                    reason: format!("{}={:?} is not a positive whole number of seconds (as the sfex agents read it)", nv.name, nv.value),
                })
        };
        for nv in nvpairs(self.cx, p, "instance_attributes")? {
            match nv.name.as_str() {
                "device" => {
                    device = Some(nv.value.clone());
                    self.cx.mapped(nv.el, "sfex device -> lease.device");
                }
                "index" => {
                    index = Some(nv.value.clone());
                    self.cx.mapped(nv.el, "sfex index -> lease.index");
                }
                "lock_timeout" => {
                    lock_timeout = secs(&nv)?;
                    self.cx.mapped(nv.el, "sfex lock_timeout -> lease.lock_timeout");
                }
                "monitor_interval" => {
                    monitor_interval = secs(&nv)?;
                    self.cx.mapped(nv.el, "sfex monitor_interval (lock renewal period) -> lease.monitor_interval");
                }
                "collision_timeout" => {
                    collision_timeout = secs(&nv)?;
                    self.cx.mapped(nv.el, "sfex collision_timeout -> lease.collision_timeout");
                }
                other => self.cx.warn(
                    nv.el,
                    format!("sfex parameter {other}={}: hapair's lease has no such setting, not carried over", nv.value),
                ),
            }
        }
        for nv in nvpairs(self.cx, p, "meta_attributes")? {
            self.cx.warn(
                nv.el,
                format!("sfex meta attribute {}={}: not carried over (the lease is not a resource in hapair)", nv.name, nv.value),
            );
        }
        for ops in p.kids("operations") {
            for op in &ops.children {
                self.cx.warn(
                    op,
                    format!(
                        "sfex op {}: not carried over (hapair renews the lease on its own thread)",
                        op.attr("name").unwrap_or("")
                    ),
                );
            }
        }
        let Some(device) = device else {
            return Err(unsupported(p, "an sfex primitive without device"));
        };
        self.cx.mapped(
            p,
            format!("{} -> [lease] (held below the whole stack)", agent_name(p)),
        );
        Ok(LeaseIn {
            el: p,
            device,
            index,
            lock_timeout,
            monitor_interval,
            collision_timeout,
        })
    }

    // -- constraints ------------------------------------------------------

    /// Checks the constraints; the preferred node, if any.
    fn constraints(&mut self, stack: &Stack<'a>) -> Result<Option<String>, CibError> {
        let mut colocated = false;
        let mut ordered = false;
        let mut prefer: Vec<(Score, String, &'a Element)> = Vec::new();
        let stonith_ids: Vec<&str> = stack.stonith.iter().map(|s| s.id()).collect();
        for cs in self.conf.kids("constraints") {
            for c in &cs.children {
                let refuse = |reason: String| CibError::UnsupportedConstraint {
                    at: At::of(c),
                    reason,
                };
                if c.kids("resource_set").next().is_some() {
                    return Err(refuse("resource sets: hapair's stack order is fixed; write the stack as one group".into()));
                }
                if let Some(r) = c.kids("rule").next() {
                    return Err(CibError::UnsupportedConstraint {
                        at: At::of(r),
                        reason: format!(
                            "a rule in constraint {:?}: hapair cannot express rules",
                            c.id()
                        ),
                    });
                }
                if let Some(k) = c.children.first() {
                    return Err(unsupported(
                        k,
                        format!("unexpected <{}> in <{}>", k.name, c.name),
                    ));
                }
                let a = |k: &str| c.attr(k).unwrap_or("");
                match c.name.as_str() {
                    "rsc_location" => {
                        for k in ["rsc-pattern", "score-attribute", "score-attribute-mangle"] {
                            if c.attr(k).is_some() {
                                return Err(refuse(format!("{k}: hapair cannot express it")));
                            }
                        }
                        let rsc = a("rsc");
                        let node = a("node");
                        if node.is_empty() {
                            return Err(refuse("a location without node".into()));
                        }
                        let sc = score(c, c.attr("score").unwrap_or("0"))?;
                        if stonith_ids.contains(&rsc) {
                            self.node_seen(node, c)?;
                            self.cx.warn(
                                c,
                                format!("where fence device {rsc:?} runs: not carried over (hapair runs a fence agent on the node that fences)"),
                            );
                            continue;
                        }
                        if !stack.ids.iter().any(|i| i == rsc) {
                            return Err(refuse(format!(
                                "location of {rsc:?}, which is not in the stack"
                            )));
                        }
                        if !matches!(
                            c.attr("role"),
                            None | Some("Started" | "Promoted" | "Master")
                        ) {
                            return Err(refuse(format!(
                                "role {}: hapair cannot express it",
                                a("role")
                            )));
                        }
                        if let Some(d) = c.attr("resource-discovery") {
                            self.cx
                                .warn(c, format!("resource-discovery={d}: not carried over"));
                        }
                        self.node_seen(node, c)?;
                        match sc {
                            Score::MinusInf | Score::N(i64::MIN..=-1) => {
                                let hint = if c.id().starts_with("cli-ban-") {
                                    " (left by crm_resource --ban: clear it with crm_resource --clear)"
                                } else {
                                    ""
                                };
                                return Err(refuse(format!(
                                    "a negative score for node {node:?}: hapair runs the stack on either node{hint}"
                                )));
                            }
                            Score::N(0) => self.cx.warn(c, "score 0: no effect, not carried over"),
                            s => prefer.push((s, node.to_string(), c)),
                        }
                    }
                    "rsc_colocation" => {
                        let ok_score =
                            matches!(score(c, c.attr("score").unwrap_or("0"))?, Score::Inf);
                        let ok = stack.clone.is_some_and(|cl| a("with-rsc") == cl.id())
                            && a("rsc") == stack.top
                            && matches!(a("with-rsc-role"), "Promoted" | "Master")
                            && matches!(a("rsc-role"), "" | "Started")
                            && ok_score
                            && c.attrs.iter().all(|(k, _)| {
                                matches!(
                                    k.as_str(),
                                    "id" | "rsc"
                                        | "with-rsc"
                                        | "with-rsc-role"
                                        | "rsc-role"
                                        | "score"
                                )
                            });
                        if !ok {
                            return Err(refuse(format!(
                                "hapair's only colocation is \"{} with the Promoted role of the DRBD clone\" (score INFINITY)",
                                stack.top
                            )));
                        }
                        colocated = true;
                        self.cx.mapped(
                            c,
                            "group with Promoted DRBD -> hapair's stack (DRBD promoted below it)",
                        );
                    }
                    "rsc_order" => {
                        let kind_ok = match (c.attr("kind"), c.attr("score")) {
                            (Some("Mandatory") | None, None) => true,
                            (None, Some(s)) => matches!(score(c, s)?, Score::Inf | Score::N(1..)),
                            _ => false,
                        };
                        let ok = stack.clone.is_some_and(|cl| a("first") == cl.id())
                            && a("first-action") == "promote"
                            && a("then") == stack.top
                            && matches!(a("then-action"), "" | "start")
                            && matches!(c.attr("symmetrical"), None | Some("true"))
                            && kind_ok
                            && c.attrs.iter().all(|(k, _)| {
                                matches!(
                                    k.as_str(),
                                    "id" | "first"
                                        | "first-action"
                                        | "then"
                                        | "then-action"
                                        | "kind"
                                        | "score"
                                        | "symmetrical"
                                )
                            });
                        if !ok {
                            return Err(refuse(format!(
                                "hapair's only order is \"promote the DRBD clone, then start {}\" (Mandatory)",
                                stack.top
                            )));
                        }
                        ordered = true;
                        self.cx
                            .mapped(c, "promote, then start -> hapair's stack order");
                    }
                    other => {
                        return Err(refuse(format!("<{other}>: hapair cannot express it")));
                    }
                }
            }
        }
        if let Some(cl) = stack.clone {
            let missing = match (colocated, ordered) {
                (true, true) => None,
                (false, _) => Some(format!(
                    "rsc_colocation of {} with the Promoted role",
                    stack.top
                )),
                (true, false) => Some(format!("rsc_order promote, then start {}", stack.top)),
            };
            if let Some(m) = missing {
                return Err(CibError::UnsupportedClone {
                    at: At::of(cl),
                    reason: format!(
                        "no {m}: without it Pacemaker runs the group apart from the Primary, which hapair cannot express"
                    ),
                });
            }
        }
        prefer.sort_by_key(|p| std::cmp::Reverse(p.0));
        match prefer.as_slice() {
            [] => Ok(None),
            [(s, n, c), rest @ ..] => {
                if let Some((s2, n2, c2)) = rest.iter().find(|(_, n2, _)| n2 != n) {
                    if s2 == s {
                        return Err(CibError::UnsupportedConstraint {
                            at: At::of(c2),
                            reason: format!(
                                "the same score for {n2:?} as for {n:?} (line {}): which node is preferred?",
                                c.line
                            ),
                        });
                    }
                    self.cx.warn(c2, format!("a lower score for {n2:?}: only the preferred node {n:?} is carried over"));
                }
                self.cx.mapped(
                    c,
                    format!("the highest location score -> node {n:?} preferred = true"),
                );
                Ok(Some(n.clone()))
            }
        }
    }

    // -- fencing ----------------------------------------------------------

    fn fencing(&mut self, stonith: &[&'a Element]) -> Result<Vec<Stonith<'a>>, CibError> {
        let mut out = Vec::new();
        for p in stonith {
            let s = self.stonith(p)?;
            for (node, _, el) in &s.targets {
                self.node_seen(node, el)?;
            }
            out.push(s);
        }
        Ok(out)
    }

    fn stonith(&mut self, p: &'a Element) -> Result<Stonith<'a>, CibError> {
        let agent = p.attr("type").unwrap_or("").to_string();
        if agent.is_empty() {
            return Err(unsupported(p, "a stonith primitive without type"));
        }
        if agent.contains('/') || agent.starts_with('.') {
            return Err(unsupported(
                p,
                "a stonith type that is not a fence agent name",
            ));
        }
        let mut params = Vec::new();
        let mut targets: Vec<(String, String, &'a Element)> = Vec::new();
        let mut host_argument = None;
        let mut timeout = None;
        let mut reboot_timeout = None;
        for nv in nvpairs(self.cx, p, "instance_attributes")? {
            let v = nv.value.as_str();
            match nv.name.as_str() {
                "pcmk_host_list" => {
                    for h in v.split([' ', ',', ';', '\t', '\n']).filter(|h| !h.is_empty()) {
                        if !targets.iter().any(|t| t.0 == h) {
                            targets.push((h.to_string(), h.to_string(), nv.el));
                        }
                    }
                    self.cx.mapped(nv.el, "pcmk_host_list -> the fence devices' targets");
                }
                "pcmk_host_map" => {
                    for item in v.split([' ', ',', ';', '\t', '\n']).filter(|h| !h.is_empty()) {
                        let Some((h, port)) = item.split_once([':', '=']) else {
                            return Err(unsupported(nv.el, format!("pcmk_host_map entry {item:?} is not NODE:PORT")));
                        };
                        match targets.iter_mut().find(|t| t.0 == h) {
                            Some(t) => t.1 = port.to_string(),
                            None => targets.push((h.to_string(), port.to_string(), nv.el)),
                        }
                    }
                    self.cx.mapped(nv.el, "pcmk_host_map -> the fence devices' targets and plug values");
                }
                "pcmk_host_argument" => {
                    host_argument = Some(v.to_string());
                    self.cx.mapped(nv.el, format!("pcmk_host_argument={v} -> the parameter naming the node"));
                }
                "pcmk_off_timeout" => {
                    timeout = Some(duration_of(nv.el, "pcmk_off_timeout", v)?);
                    self.cx.mapped(nv.el, "pcmk_off_timeout -> fencing.device timeout");
                }
                "pcmk_reboot_timeout" => {
                    reboot_timeout = Some(duration_of(nv.el, "pcmk_reboot_timeout", v)?);
                    self.cx.mapped(nv.el, "pcmk_reboot_timeout -> fencing.device timeout (when no pcmk_off_timeout; hapair powers off)");
                }
                "action" => self.cx.warn(nv.el, format!("action={v}: not carried over (hapair sets the action: off, then status)")),
                n if n.starts_with("pcmk_") => self.cx.warn(
                    nv.el,
                    format!("{n}={v}: Pacemaker's fencer setting, no hapair equivalent, not carried over"),
                ),
                n => params.push((n.to_string(), v.to_string())),
            }
        }
        for nv in nvpairs(self.cx, p, "meta_attributes")? {
            self.cx.warn(
                nv.el,
                format!(
                    "fence device meta attribute {}={}: not carried over",
                    nv.name, nv.value
                ),
            );
        }
        for ops in p.kids("operations") {
            for op in &ops.children {
                self.cx.warn(
                    op,
                    format!("fence device op {}: not carried over (hapair checks fence agents with `hapair preflight`)", op.attr("name").unwrap_or("")),
                );
            }
        }
        Ok(Stonith {
            el: p,
            agent,
            params,
            targets,
            host_argument,
            timeout: timeout.or(reboot_timeout).or(self.stonith_timeout),
        })
    }

    /// One device per (stonith primitive, node it fences), with levels
    /// from the topology (or 1).
    fn expand_fence(&mut self, devs: &[Stonith<'a>]) -> Result<Vec<Fence>, CibError> {
        // topology: node -> [(index, [device ids], element)]
        let mut topo: BTreeMap<String, Vec<Level<'a>>> = BTreeMap::new();
        for ft in self.conf.kids("fencing-topology") {
            for l in &ft.children {
                if l.name != "fencing-level" {
                    return Err(unsupported(
                        l,
                        format!("unexpected <{}> in <fencing-topology>", l.name),
                    ));
                }
                for k in ["target-pattern", "target-attribute", "target-value"] {
                    if l.attr(k).is_some() {
                        return Err(unsupported(
                            l,
                            format!("{k}: hapair's levels name their node"),
                        ));
                    }
                }
                let Some(target) = l.attr("target") else {
                    return Err(unsupported(l, "a fencing-level without target"));
                };
                if !self.nodes.iter().any(|n| n == target) {
                    return Err(CibError::TooManyNodes {
                        at: At::of(l),
                        name: target.to_string(),
                        known: quoted_and(&self.nodes),
                    });
                }
                let index: u32 = l
                    .attr("index")
                    .and_then(|i| i.trim().parse().ok())
                    .ok_or_else(|| unsupported(l, "a fencing-level without a numeric index"))?;
                let ids: Vec<String> = l
                    .attr("devices")
                    .unwrap_or("")
                    .split(',')
                    .map(|d| d.trim().to_string())
                    .filter(|d| !d.is_empty())
                    .collect();
                for d in &ids {
                    if !devs.iter().any(|s| s.el.id() == d) {
                        return Err(unsupported(
                            l,
                            format!("device {d:?} is not a stonith primitive of this CIB"),
                        ));
                    }
                }
                if ids.is_empty() {
                    return Err(unsupported(l, "a fencing-level without devices"));
                }
                topo.entry(target.to_string())
                    .or_default()
                    .push((index, ids, l));
            }
        }
        let mut out = Vec::new();
        for node in self.nodes.clone() {
            let capable =
                |s: &Stonith<'_>| s.targets.is_empty() || s.targets.iter().any(|t| t.0 == node);
            let entry = |s: &Stonith<'_>, level: usize| -> Fence {
                let plug = s
                    .targets
                    .iter()
                    .find(|t| t.0 == node)
                    .map_or(node.clone(), |t| t.1.clone());
                let mut params = s.params.clone();
                let arg = s.host_argument.as_deref().unwrap_or("plug");
                if arg != "none"
                    && !params
                        .iter()
                        .any(|(k, _)| k == arg || (arg == "plug" && k == "port"))
                {
                    params.push((arg.to_string(), plug));
                }
                Fence {
                    target: node.clone(),
                    level,
                    agent: s.agent.clone(),
                    timeout: s.timeout,
                    params,
                    comment: format!("from stonith primitive {:?}, line {}", s.el.id(), s.el.line),
                }
            };
            match topo.get_mut(&node) {
                Some(levels) => {
                    levels.sort_by_key(|l| l.0);
                    for (i, (index, ids, l)) in levels.iter().enumerate() {
                        let level = i + 1;
                        if usize::try_from(*index).ok() != Some(level) {
                            self.cx.warn(l, format!("fencing-level index {index} for {node:?} -> level {level} (hapair's levels run 1, 2, ...)"));
                        } else {
                            self.cx
                                .mapped(l, format!("fencing-level -> level {level} for {node:?}"));
                        }
                        for id in ids {
                            if let Some(s) = devs.iter().find(|s| s.el.id() == id) {
                                out.push(entry(s, level));
                            }
                        }
                    }
                }
                None => {
                    for s in devs.iter().filter(|s| capable(s)) {
                        if s.targets.is_empty() {
                            self.cx.warn(
                                s.el,
                                format!("no pcmk_host_list or pcmk_host_map: assumed to fence {node:?} (Pacemaker would ask the agent)"),
                            );
                        }
                        out.push(entry(s, 1));
                    }
                }
            }
        }
        for s in devs {
            if !out
                .iter()
                .any(|f| f.comment.contains(&format!("{:?}", s.el.id())))
            {
                self.cx.warn(s.el, "fences neither node: not carried over");
            }
        }
        Ok(out)
    }

    // -- policy and output ---------------------------------------------------

    fn policy(&mut self, stack: &Stack<'a>, defaults: &PolicyMeta<'a>) -> Result<Policy, CibError> {
        let mut thresholds: Vec<(Option<u32>, Option<&'a Element>)> = Vec::new();
        let mut timeouts: Vec<(Option<u64>, Option<&'a Element>)> = Vec::new();
        for pm in &stack.metas {
            let t = pm.threshold.as_ref().or(defaults.threshold.as_ref());
            let v = match t {
                None => None,
                Some((v, el)) => match v.trim() {
                    "INFINITY" | "+INFINITY" | "0" => None,
                    s => Some(s.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        unsupported(
                            el,
                            format!(
                                "migration-threshold {s:?} is not a positive number or INFINITY"
                            ),
                        )
                    })?),
                },
            };
            thresholds.push((v, t.map(|t| t.1)));
            let f = pm
                .failure_timeout
                .as_ref()
                .or(defaults.failure_timeout.as_ref());
            let fv = match f {
                None => None,
                Some((v, el)) => Some(duration_of(el, "failure-timeout", v)?).filter(|ms| *ms > 0),
            };
            timeouts.push((fv, f.map(|f| f.1)));
        }
        let mut seen: Vec<&Element> = Vec::new();
        let mut mark = |cx: &mut Cx, el: Option<&'a Element>, msg: &str| {
            if let Some(el) = el {
                if !seen.iter().any(|s| std::ptr::eq(*s, el)) {
                    seen.push(el);
                    cx.mapped(el, msg.to_string());
                }
            }
        };
        let finite: Vec<u32> = thresholds.iter().filter_map(|t| t.0).collect();
        let migration_threshold = finite.iter().min().copied();
        for (_, el) in &thresholds {
            mark(
                self.cx,
                *el,
                "migration-threshold -> policy.migration_threshold (the smallest of the stack's)",
            );
        }
        if thresholds.iter().any(|t| t.0.is_none()) {
            self.cx.warnings.push(Note {
                id: "migration-threshold".into(),
                line: 0,
                message: match migration_threshold {
                    Some(n) => format!("some resources have Pacemaker's INFINITY (restart in place forever): hapair moves the whole stack after {n} failures"),
                    None => "INFINITY (Pacemaker's default: restart in place forever) has no hapair equivalent: hapair's default (3 failures, then move) applies".into(),
                },
            });
        } else if finite.iter().any(|n| Some(*n) != migration_threshold) {
            self.cx.warnings.push(Note {
                id: "migration-threshold".into(),
                line: 0,
                message: "the resources differ: hapair has one threshold for the stack, the smallest is used".into(),
            });
        }
        let ft: Vec<u64> = timeouts.iter().filter_map(|t| t.0).collect();
        let failure_timeout = if ft.len() == timeouts.len() {
            ft.iter().max().copied()
        } else {
            None
        };
        for (_, el) in &timeouts {
            mark(self.cx, *el, "failure-timeout -> policy.failure_timeout");
        }
        if !ft.is_empty()
            && (failure_timeout.is_none() || ft.iter().any(|m| Some(*m) != failure_timeout))
        {
            self.cx.warnings.push(Note {
                id: "failure-timeout".into(),
                line: 0,
                message: format!(
                    "the resources differ: hapair forgets failures of the whole stack at once; using {}",
                    failure_timeout.map_or("never".into(), fmt_ms)
                ),
            });
        }
        Ok(Policy {
            migration_threshold,
            failure_timeout,
        })
    }

    /// The values the CIB may lack, placeholders noted.
    fn outline(&mut self, stack: &Stack<'a>) -> Outline {
        let cluster_name = match &self.cluster_name {
            Some(n) => n.clone(),
            None => {
                self.cx.placeholders.push(
                    "cluster.name: the CIB has no cluster-name property; \"CHANGE-ME\" stands in"
                        .into(),
                );
                "CHANGE-ME".into()
            }
        };
        let per_node: Vec<Option<&NodeAddrs>> = self
            .nodes
            .iter()
            .map(|n| self.opts.nodes.iter().find(|o| &o.name == n))
            .collect();
        let links: Vec<Vec<SocketAddr>> = match (per_node[0], per_node[1]) {
            (Some(a), Some(b)) => a
                .addrs
                .iter()
                .zip(&b.addrs)
                .map(|(x, y)| vec![*x, *y])
                .collect(),
            _ => Vec::new(),
        };
        if links.is_empty() {
            self.cx.placeholders.push(
                "[[link]] addresses: a CIB holds no heartbeat addresses; 192.0.2.1/192.0.2.2 stand in \
                 (give them with --node NAME=ADDR[,ADDR...] for both nodes; two links are advised)"
                    .into(),
            );
        }
        if stack.lease.is_none() {
            self.cx.placeholders.push(
                "lease.device: the CIB has no sfex primitive; hapair always needs a lease on a small shared \
                 device (sfex init it once)"
                    .into(),
            );
        }
        Outline {
            cluster_name,
            links,
        }
    }

    fn render(
        &self,
        stack: &Stack<'a>,
        preferred: Option<&str>,
        fence: &[Fence],
        policy: &Policy,
        out: &Outline,
    ) -> String {
        let mut o = String::new();
        let placeholders = &self.cx.placeholders;
        let (cluster_name, links) = (&out.cluster_name, &out.links);
        let _ = writeln!(
            o,
            "# hapair.toml imported from a Pacemaker CIB by `hapair import-cib`."
        );
        let _ = writeln!(
            o,
            "# Check it with `hapair validate` and `hapair preflight`; the same file goes on both nodes."
        );
        let _ = writeln!(
            o,
            "# The heartbeat key file is /etc/hapair/authkey: create it with `hapair keygen` and copy it."
        );
        let _ = writeln!(o, "# \"line N\" below is a line of the CIB.");
        if !placeholders.is_empty() {
            let _ = writeln!(
                o,
                "#\n# PLACEHOLDERS (the CIB does not hold these; replace every CHANGE-ME / 192.0.2.x):"
            );
            for p in placeholders {
                let _ = writeln!(o, "# - {}", one_line(p));
            }
        }
        if !self.cx.warnings.is_empty() {
            let _ = writeln!(
                o,
                "#\n# NOT CARRIED OVER, or carried over with another meaning:"
            );
            for w in &self.cx.warnings {
                let _ = writeln!(o, "# - {}", one_line(&w.to_string()));
            }
        }
        if !self.cx.mapped.is_empty() {
            let _ = writeln!(o, "#\n# MAPPED:");
            for m in &self.cx.mapped {
                let _ = writeln!(o, "# - {}", one_line(&m.to_string()));
            }
        }
        let _ = writeln!(o, "\n[cluster]\nname = {}", q(cluster_name));
        for n in &self.nodes {
            let _ = writeln!(o, "\n[[node]]\nname = {}", q(n));
            if preferred == Some(n.as_str()) {
                let _ = writeln!(o, "preferred = true");
            }
        }
        if links.is_empty() {
            let _ = writeln!(
                o,
                "\n[[link]]\nname = \"link1\"                         # CHANGE-ME: placeholder addresses"
            );
            for (i, n) in self.nodes.iter().enumerate() {
                let _ = writeln!(o, "{} = \"192.0.2.{}:{DEFAULT_PORT}\"", key(n), i + 1);
            }
        } else {
            for (i, l) in links.iter().enumerate() {
                let _ = writeln!(o, "\n[[link]]\nname = \"link{}\"", i + 1);
                for (n, a) in self.nodes.iter().zip(l) {
                    let _ = writeln!(o, "{} = {}", key(n), q(&a.to_string()));
                }
            }
        }
        let _ = writeln!(o, "\n[lease]");
        match &stack.lease {
            Some(l) => {
                let _ = writeln!(o, "# from primitive {:?}, line {}", l.el.id(), l.el.line);
                let _ = writeln!(o, "device = {}", q(&l.device));
                if let Some(i) = &l.index {
                    match i.trim().parse::<u32>() {
                        Ok(n) => {
                            let _ = writeln!(o, "index = {n}");
                        }
                        Err(_) => {
                            let _ = writeln!(o, "index = {}", q(i));
                        }
                    }
                }
                let _ = writeln!(o, "lock_timeout = {}", q(&fmt_ms(l.lock_timeout)));
                let _ = writeln!(o, "monitor_interval = {}", q(&fmt_ms(l.monitor_interval)));
                let _ = writeln!(o, "collision_timeout = {}", q(&fmt_ms(l.collision_timeout)));
                // collision_timeout > 2 x max_io: plan for faster I/O when
                // the sfex value is small (the agents' default is 1 s)
                if l.collision_timeout <= 2_000 {
                    let max_io = (l.collision_timeout * 2 / 5).max(1);
                    let _ = writeln!(
                        o,
                        "max_io = {}                        # collision_timeout must exceed 2 x max_io: the sfex value plans for lease I/O under {}",
                        q(&fmt_ms(max_io)),
                        fmt_ms(max_io)
                    );
                }
            }
            None => {
                let _ = writeln!(
                    o,
                    "device = \"/dev/disk/by-id/CHANGE-ME-sfex-lease\"   # CHANGE-ME: the CIB has no sfex lease"
                );
            }
        }
        if policy.migration_threshold.is_some() || policy.failure_timeout.is_some() {
            let _ = writeln!(o, "\n[policy]");
            if let Some(n) = policy.migration_threshold {
                let _ = writeln!(o, "migration_threshold = {n}");
            }
            if let Some(f) = policy.failure_timeout {
                let _ = writeln!(o, "failure_timeout = {}", q(&fmt_ms(f)));
            }
        }
        for f in fence {
            let _ = writeln!(o, "\n[[fencing.device]]\n# {}", f.comment);
            let _ = writeln!(
                o,
                "target = {}\nlevel = {}\nagent = {}",
                q(&f.target),
                f.level,
                q(&f.agent)
            );
            if let Some(t) = f.timeout {
                let _ = writeln!(o, "timeout = {}", q(&fmt_ms(t)));
            }
            if !f.params.is_empty() {
                let _ = writeln!(o, "params = {}", inline_table(&f.params));
            }
        }
        for r in &stack.resources {
            let _ = writeln!(o, "\n[[resource]]\n# {}", r.comment);
            let _ = writeln!(o, "name = {}\ntype = {}", q(&r.name), q(&r.type_));
            if !r.params.is_empty() {
                let _ = writeln!(o, "params = {}", inline_table(&r.params));
            }
            for (k, v) in [
                ("start_timeout", r.start_timeout),
                ("stop_timeout", r.stop_timeout),
                ("monitor_interval", r.monitor_interval),
                ("monitor_timeout", r.monitor_timeout),
            ] {
                if let Some(v) = v {
                    let _ = writeln!(o, "{k} = {}", q(&fmt_ms(v)));
                }
            }
        }
        o
    }
}

/// The stack as read.
#[derive(Debug)]
struct Stack<'a> {
    clone: Option<&'a Element>,
    /// The id constraints name for the stack (the group, or the single primitive).
    top: String,
    /// Every id that belongs to the stack.
    ids: Vec<String>,
    resources: Vec<Res>,
    /// Policy meta attributes per resource, like `resources`.
    metas: Vec<PolicyMeta<'a>>,
    lease: Option<LeaseIn<'a>>,
    stonith: Vec<&'a Element>,
}

/// What the file needs and the CIB may lack.
#[derive(Debug)]
struct Outline {
    cluster_name: String,
    links: Vec<Vec<SocketAddr>>,
}

#[derive(Debug)]
struct Policy {
    migration_threshold: Option<u32>,
    failure_timeout: Option<u64>,
}

/// `"a" and "b"`.
fn quoted_and(names: &[String]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    q.join(" and ")
}

fn is_sfex(p: &Element) -> bool {
    p.attr("class") == Some("ocf")
        && p.attr("type") == Some("sfex")
        && matches!(p.attr("provider"), Some("heartbeat" | "hapair"))
}

fn agent_name(p: &Element) -> String {
    match p.attr("provider") {
        Some(prov) => format!(
            "{}:{prov}:{}",
            p.attr("class").unwrap_or(""),
            p.attr("type").unwrap_or("")
        ),
        None => format!(
            "{}:{}",
            p.attr("class").unwrap_or(""),
            p.attr("type").unwrap_or("")
        ),
    }
}
