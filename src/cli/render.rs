//! The human rendering of a [`StatusReport`]: like `crm_mon -fA -1`, shorter,
//! at most 80 columns, ending with a "Problems:" section that says in words
//! what is wrong and the one command that fixes it.
//!
//! Every string from the daemon is cleaned of control characters (an agent's
//! exit reason must not be able to move the operator's cursor) and long names
//! are cut with `…`. The `--json` rendering is just `serde_json` of the report.

use std::fmt::Write as _;

use super::proto::{FenceState, LinkState, NodeRole, NodeState, ResourceState, StatusReport};

/// Widest line the renderer produces.
pub const WIDTH: usize = 80;

/// Longest name shown in prose (commands carry the whole name).
const NAME: usize = 32;

/// Renders the report for a terminal.
pub fn status(r: &StatusReport) -> String {
    let mut out = Lines::default();

    let cluster = if r.cluster.is_empty() {
        "?"
    } else {
        &r.cluster
    };
    let node = if r.node.is_empty() { "?" } else { &r.node };
    let mut head = format!("Cluster {}, node {}", fit(cluster, 24), fit(node, 16));
    if !r.version.is_empty() {
        head.push_str(&format!(", hapair {}", fit(&r.version, 12)));
    }
    match r.config.matches() {
        Some(true) => head.push_str(", config in sync"),
        Some(false) => head.push_str(", CONFIG DIFFERS"),
        None => {}
    }
    if r.maintenance {
        head.push_str(", MAINTENANCE");
    }
    out.line(head);

    out.line("Nodes:");
    if r.nodes.is_empty() {
        out.line("  (none known)");
    }
    for n in &r.nodes {
        let mut l = format!(
            "  {:<16} {:<8} {:<10}",
            fit(&n.name, 16),
            node_state(n.state),
            node_role(n.role)
        );
        if let Some(ms) = n.last_seen_ms {
            l.push_str(&format!(" seen {} ago", age(ms)));
        }
        if let Some(inc) = &n.incarnation {
            l.push_str(&format!(" inc {}", fit(inc, 8)));
        }
        out.line(l.trim_end());
    }

    if !r.links.is_empty() {
        out.line("Links:");
    }
    for k in &r.links {
        let mut l = format!("  {:<12} {:<5}", fit(&k.name, 12), link_state(k.state));
        match k.last_seen_ms {
            Some(ms) => l.push_str(&format!(" seen {} ago", age(ms))),
            None => l.push_str(" never seen"),
        }
        if let Some(us) = k.rtt_us {
            l.push_str(&format!(" rtt {}", rtt(us)));
        }
        if let Some(p) = k.loss_pct {
            l.push_str(&format!(" loss {p:.0}%"));
        }
        l.push_str(&format!(" rx {} tx {}", k.packets_in, k.packets_out));
        out.line(l);
        let dropped = counters(&k.dropped);
        if !dropped.is_empty() {
            out.wrapped("    dropped: ", &dropped);
        }
    }

    match &r.lease {
        Some(lease) => {
            let mut l = match &lease.holder {
                Some(h) => format!("Lease: held by {}, counter {}", fit(h, 16), lease.counter),
                None => format!("Lease: free, counter {}", lease.counter),
            };
            if let Some(rem) = lease.remaining_ms {
                if rem >= 0 {
                    l.push_str(&format!(", {} left", age(rem.unsigned_abs())));
                } else {
                    l.push_str(&format!(", ran out {} ago", age(rem.unsigned_abs())));
                }
            }
            if let Some(a) = lease.age_ms {
                l.push_str(&format!(", read {} ago", age(a)));
            }
            out.line(l);
            if !lease.device.is_empty() {
                out.line(format!("  on {}", fit(&lease.device, WIDTH - 5)));
            }
        }
        None => out.line("Lease: not read yet"),
    }

    if let Some(d) = &r.drbd {
        let mut l = format!(
            "DRBD {}: {} {}, peer {}, {}",
            fit(&d.resource, 16),
            fit(&d.role, 12),
            fit(&d.disk, 14),
            fit(&d.peer_disk, 14),
            fit(&d.connection, 16)
        );
        if let Some(p) = d.sync_pct {
            l.push_str(&format!(", sync {p:.1}%"));
        }
        out.line(l);
    }

    out.line(if r.maintenance {
        "Resources (maintenance: not managed):"
    } else {
        "Resources:"
    });
    if r.resources.is_empty() {
        out.line("  (none)");
    }
    for res in &r.resources {
        let on = res.node.as_deref().unwrap_or("-");
        let l = format!(
            "  {:<12} {:<9} {:<10} {:<10} {}",
            fit(&res.name, 12),
            res_state(res.state),
            fit(on, 10),
            fit(&res.kind, 10),
            fit(&res.agent, 33)
        );
        out.line(l.trim_end());
        let fails: Vec<String> = res
            .fail_counts
            .iter()
            .filter(|(_, c)| **c > 0)
            .map(|(n, c)| format!("{} on {}", plural(*c, "failure"), clean(n)))
            .collect();
        let mut detail = fails.join(", ");
        if let Some(f) = &res.last_failure {
            if !detail.is_empty() {
                detail.push_str("; ");
            }
            detail.push_str(&format!(
                "last: {} on {} {} ago: {}",
                clean(&f.op),
                clean(&f.node),
                age(f.age_ms),
                clean(&f.reason)
            ));
        }
        if !detail.is_empty() {
            out.wrapped("    ", &detail);
        }
    }

    let attrs: Vec<_> = r.attributes.iter().filter(|(_, a)| !a.is_empty()).collect();
    if !attrs.is_empty() {
        out.line("Attributes:");
        for (node, a) in attrs {
            let list: Vec<String> = a
                .iter()
                .map(|(k, v)| format!("{}={}", clean(k), clean(v)))
                .collect();
            out.wrapped(&format!("  {}: ", fit(node, 16)), &list.join(" "));
        }
    }

    for m in &r.moves {
        out.line(format!(
            "Move: to {}, {}",
            fit(&m.to, 16),
            move_expiry(m.remaining_ms)
        ));
    }

    let f = &r.fencing;
    if f.state != FenceState::Idle {
        let mut l = format!("Fencing: {}", fence_state(f.state));
        if let Some(t) = &f.target {
            l.push_str(&format!(" {}", fit(t, 16)));
        }
        if let Some(lv) = f.level {
            l.push_str(&format!(", level {lv}"));
        }
        if let Some(a) = f.age_ms {
            l.push_str(&format!(", {} ago", age(a)));
        }
        out.line(l);
    }

    let dropped = counters(&r.dropped);
    if !dropped.is_empty() {
        out.wrapped("Dropped packets: ", &dropped);
    }

    if !r.transitions.is_empty() {
        out.line("Transitions:");
        for t in &r.transitions {
            let when = if r.generated_unix_ms >= t.unix_ms {
                format!("{} ago", age(r.generated_unix_ms - t.unix_ms))
            } else {
                "just now".to_owned()
            };
            out.wrapped(&format!("  {when:>11}  "), &t.text);
        }
    }

    let problems = problems(r);
    if problems.is_empty() {
        out.line("Problems: none");
    } else {
        out.line("Problems:");
        for p in &problems {
            out.wrapped("  * ", p);
        }
    }
    out.0
}

/// What is wrong, in words, each with the one command that fixes it (most
/// urgent first). Empty when all is well.
pub fn problems(r: &StatusReport) -> Vec<String> {
    let mut p = Vec::new();
    let f = &r.fencing;
    if f.state == FenceState::FailedWaitingConfirm {
        let t = f.target.as_deref().map_or("NODE".to_owned(), clean);
        let short = f
            .target
            .as_deref()
            .map_or("the peer".to_owned(), |t| fit(t, NAME));
        p.push(format!(
            "fencing {short} failed at every level and the stack waits: \
             `hapair fence confirm {t}` once you have checked {short} is powered off"
        ));
    }
    if r.config.matches() == Some(false) {
        p.push(format!(
            "the nodes run different configs ({} here, {} on the peer): copy the \
             right /etc/hapair/hapair.toml to both nodes and restart hapair where it changed",
            fit(&r.config.hash, 12),
            fit(r.config.peer_hash.as_deref().unwrap_or(""), 12)
        ));
    }
    for n in r.nodes.iter().filter(|n| n.name != r.node) {
        let name = fit(&n.name, NAME);
        match n.state {
            NodeState::Offline => p.push(format!(
                "{name} is offline{}: check it is up and `systemctl start hapair` there",
                n.last_seen_ms
                    .map(|ms| format!(" (last seen {} ago)", age(ms)))
                    .unwrap_or_default()
            )),
            NodeState::Unknown => p.push(format!(
                "{name} has not been heard yet: check it is up and `systemctl start hapair` there"
            )),
            _ => {}
        }
    }
    for k in r.links.iter().filter(|k| k.state == LinkState::Down) {
        p.push(format!(
            "link {} is down{}: check its cable and interface (`ip link`); it comes back by itself",
            fit(&k.name, NAME),
            k.last_seen_ms
                .map(|ms| format!(" (last packet {} ago)", age(ms)))
                .unwrap_or_default()
        ));
    }
    if r.maintenance {
        p.push("maintenance is on, resources are not managed: `hapair maintenance off`".into());
    }
    for n in r.nodes.iter().filter(|n| n.state == NodeState::Standby) {
        p.push(format!(
            "{} is in standby: `hapair online {}`",
            fit(&n.name, NAME),
            clean(&n.name)
        ));
    }
    for res in &r.resources {
        let name = clean(&res.name);
        let short = fit(&res.name, NAME);
        let mut told = false;
        for (node, &count) in &res.fail_counts {
            if r.migration_threshold > 0 && count >= r.migration_threshold {
                p.push(format!(
                    "{short} failed {} on {} (threshold {}): `hapair cleanup {name}`",
                    times(count),
                    fit(node, NAME),
                    r.migration_threshold
                ));
                told = true;
            }
        }
        if told {
            continue;
        }
        match res.state {
            ResourceState::Blocked => p.push(format!(
                "{short} is blocked{} after a hard error: fix the cause, then `hapair cleanup {name}`",
                res.node.as_deref().map(|n| format!(" on {}", fit(n, NAME))).unwrap_or_default()
            )),
            ResourceState::Failed => p.push(format!(
                "{short} has failed{}: fix the cause, then `hapair cleanup {name}`",
                res.node.as_deref().map(|n| format!(" on {}", fit(n, NAME))).unwrap_or_default()
            )),
            _ => {}
        }
    }
    for m in &r.moves {
        let to = fit(&m.to, NAME);
        p.push(match m.remaining_ms {
            Some(ms) => format!("move to {to} active for {}: `hapair unmove`", age(ms)),
            None => format!("move to {to} active until cleared: `hapair unmove`"),
        });
    }
    let drbd_down = r
        .drbd
        .as_ref()
        .filter(|d| !d.connection.is_empty() && d.connection != "Connected");
    if let Some(sb) = r.drbd.as_ref().and_then(|d| d.split_brain.as_ref()) {
        p.push(clean(sb));
    }
    if let Some(d) = drbd_down {
        let res = clean(&d.resource);
        p.push(format!(
            "DRBD {} is {} (peer disk {}): see `drbdadm status {res}`",
            fit(&d.resource, NAME),
            fit(&d.connection, NAME),
            fit(&d.peer_disk, NAME)
        ));
    }
    p
}

/// Accumulates output lines, none wider than [`WIDTH`].
#[derive(Default)]
struct Lines(String);

impl Lines {
    fn line(&mut self, l: impl AsRef<str>) {
        let l = l.as_ref();
        let _ = writeln!(self.0, "{}", fit(l, WIDTH));
    }

    /// `text` after `prefix`, word-wrapped with continuation lines indented
    /// to the prefix's width.
    fn wrapped(&mut self, prefix: &str, text: &str) {
        let indent = prefix.chars().count().min(WIDTH / 2);
        let room = WIDTH - indent;
        let mut first = true;
        let mut cur = String::new();
        let flush = |this: &mut Self, cur: &mut String, first: &mut bool| {
            let lead = if *first {
                prefix.to_owned()
            } else {
                " ".repeat(indent)
            };
            this.line(format!("{lead}{cur}"));
            cur.clear();
            *first = false;
        };
        for word in tokens(&clean(text), room) {
            let mut word = word;
            loop {
                let need = cur.chars().count() + usize::from(!cur.is_empty());
                if need + word.chars().count() <= room {
                    if !cur.is_empty() {
                        cur.push(' ');
                    }
                    cur.push_str(&word);
                    break;
                }
                if !cur.is_empty() {
                    flush(self, &mut cur, &mut first);
                    continue;
                }
                // A word longer than a line: split it.
                let head: String = word.chars().take(room).collect();
                let rest: String = word.chars().skip(room).collect();
                cur = head;
                flush(self, &mut cur, &mut first);
                if rest.is_empty() {
                    break;
                }
                word = rest;
            }
        }
        if !cur.is_empty() || first {
            flush(self, &mut cur, &mut first);
        }
    }
}

/// Words, with a `quoted command` kept in one piece when it fits on a line.
fn tokens(text: &str, room: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open: Option<String> = None;
    for w in text.split(' ').filter(|w| !w.is_empty()) {
        match open.take() {
            Some(mut span) => {
                span.push(' ');
                span.push_str(w);
                if w.ends_with('`') {
                    out.push(span);
                } else {
                    open = Some(span);
                }
            }
            None if w.starts_with('`') && !(w.len() > 1 && w.ends_with('`')) => {
                open = Some(w.to_owned())
            }
            None => out.push(w.to_owned()),
        }
    }
    out.extend(open);
    // A span too long for a line is broken into its words again.
    out.into_iter()
        .flat_map(|t| {
            if t.chars().count() <= room {
                vec![t]
            } else {
                t.split(' ').map(str::to_owned).collect()
            }
        })
        .collect()
}

/// Control characters replaced, so daemon-supplied text cannot drive the terminal.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Cleaned and cut to `width` characters, ending in `…` when cut.
fn fit(s: &str, width: usize) -> String {
    let s = clean(s);
    if s.chars().count() <= width {
        return s;
    }
    let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// A compact duration: `850ms`, `12s`, `9m`, `9m5s`, `2h3m`, `4d2h`.
pub fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms}ms"),
        0..60 => format!("{s}s"),
        60..3600 if s % 60 == 0 => format!("{}m", s / 60),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 if s % 3600 / 60 == 0 => format!("{}h", s / 3600),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ if s % 86400 / 3600 == 0 => format!("{}d", s / 86400),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

fn rtt(us: u64) -> String {
    if us < 1000 {
        format!("{us}us")
    } else if us < 10_000 {
        format!("{}.{}ms", us / 1000, us % 1000 / 100)
    } else {
        format!("{}ms", us / 1000)
    }
}

fn times(n: u32) -> String {
    if n == 1 {
        "once".into()
    } else {
        format!("{n} times")
    }
}

fn plural(n: u32, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn counters(map: &std::collections::BTreeMap<String, u64>) -> String {
    map.iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{} {n}", clean(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn move_expiry(rem: Option<u64>) -> String {
    rem.map_or_else(
        || "until unmove".to_owned(),
        |ms| format!("{} left", age(ms)),
    )
}

fn node_state(s: NodeState) -> &'static str {
    match s {
        NodeState::Online => "online",
        NodeState::Standby => "standby",
        NodeState::Offline => "offline",
        NodeState::Unknown => "unknown",
    }
}

fn node_role(r: NodeRole) -> &'static str {
    match r {
        NodeRole::Primary => "primary",
        NodeRole::Secondary => "secondary",
        NodeRole::Starting => "starting",
        NodeRole::Stopping => "stopping",
        NodeRole::Stopped => "stopped",
        NodeRole::Fenced => "fenced",
        NodeRole::Unknown => "unknown",
    }
}

fn link_state(s: LinkState) -> &'static str {
    match s {
        LinkState::Up => "up",
        LinkState::Warn => "WARN",
        LinkState::Down => "DOWN",
        LinkState::Unknown => "?",
    }
}

fn res_state(s: ResourceState) -> &'static str {
    match s {
        ResourceState::Running => "running",
        ResourceState::Stopped => "stopped",
        ResourceState::Starting => "starting",
        ResourceState::Stopping => "stopping",
        ResourceState::Failed => "FAILED",
        ResourceState::Blocked => "BLOCKED",
        ResourceState::Unmanaged => "unmanaged",
        ResourceState::Unknown => "unknown",
    }
}

fn fence_state(s: FenceState) -> &'static str {
    match s {
        FenceState::Idle => "idle",
        FenceState::Fencing => "fencing",
        FenceState::FailedWaitingConfirm => "FAILED, waiting for confirmation of",
        FenceState::PeerFenced => "done, fenced",
        FenceState::Unknown => "unknown",
    }
}
