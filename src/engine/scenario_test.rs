//! Failover stories as transcripts: `src/engine/testdata/*.txt`.
//!
//! Each file drives one engine (node `alpha`, peer `beta`, the simulator's
//! configuration: stack drbd(0), fs(1), ip(2), db(3); lock_timeout 20 s,
//! collision 2.5 s, monitor 2 s, margin 2 s, max_io 1 s, stop budget 12 s,
//! fence delay 8 s, 2 fence levels). Lines:
//!
//! ```text
//! # comment
//! config preferred=false          (before the first input)
//! @1000 lease-read l 5 beta       an input at t=1000 ms, then its actions:
//! -> read-lease                   every action, in order; none = no line
//! ```
//!
//! Inputs: `tick`, `peer alive|dead active|idle eligible|ineligible`,
//! `drbd LOCAL PEER`, `lease-read l|u COUNT NAME`, `lease-read err`,
//! `lease-written ok|err`, `agent RES OP ok|not-running|soft|hard|fatal`,
//! `fence LEVEL ok|fail`, `health ok|bad`, `standby on|off`,
//! `move me|peer [UNTIL]`, `unmove`, `cleanup`, `maintenance on|off`,
//! `fence-confirm`. Actions: `read-lease`, `write-lease l|u COUNT NAME`,
//! `run RES OP TIMEOUT`, `fence LEVEL`, `self-fence`, `log NOTE`.
//!
//! `HAPAIR_SCENARIO_BLESS=1` rewrites the files with the actions the engine
//! emits now: review the diff before committing it.

use std::fmt::Write as _;

use sfex::format::{LockBlock, NodeName, Status};

use super::*;

fn lock(status: &str, count: &str, name: &str) -> LockBlock {
    LockBlock {
        status: if status == "l" {
            Status::Locked
        } else {
            Status::Unlocked
        },
        count: count.parse().expect("count"),
        nodename: NodeName::new(name).expect("name"),
    }
}

fn op(s: &str) -> Op {
    match s {
        "start" => Op::Start,
        "stop" => Op::Stop,
        "monitor" => Op::Monitor,
        "promote" => Op::Promote,
        "demote" => Op::Demote,
        _ => panic!("unknown op {s}"),
    }
}

fn disk(s: &str) -> Disk {
    match s {
        "UpToDate" => Disk::UpToDate,
        "Consistent" => Disk::Consistent,
        "Outdated" => Disk::Outdated,
        "Inconsistent" => Disk::Inconsistent,
        _ => Disk::Unknown,
    }
}

fn parse_input(w: &[&str]) -> Input {
    match w {
        ["tick"] => Input::Tick,
        ["peer", a, b, c] => Input::Peer(PeerStatus {
            alive: *a == "alive",
            active: *b == "active",
            eligible: *c == "eligible",
        }),
        ["drbd", l, p] => Input::Drbd(DrbdView {
            local: disk(l),
            peer: disk(p),
        }),
        ["lease-read", "err"] => Input::LeaseRead(Err(IoFailure::io("EIO"))),
        ["lease-read", s, c, n] => Input::LeaseRead(Ok(lock(s, c, n))),
        ["lease-read", s, c] => Input::LeaseRead(Ok(lock(s, c, ""))),
        ["lease-written", "ok"] => Input::LeaseWritten(Ok(())),
        ["lease-written", "err"] => Input::LeaseWritten(Err(IoFailure::io("EIO"))),
        ["agent", r, o, res] => Input::AgentDone {
            res: r.parse().expect("res"),
            op: op(o),
            outcome: match *res {
                "ok" => Outcome::Ok,
                "not-running" => Outcome::NotRunning,
                "soft" => Outcome::Failed(FailClass::Soft),
                "hard" => Outcome::Failed(FailClass::Hard),
                "fatal" => Outcome::Failed(FailClass::Fatal),
                _ => panic!("outcome {res}"),
            },
        },
        ["fence", l, r] => Input::FenceDone {
            level: l.parse().expect("level"),
            ok: *r == "ok",
        },
        ["health", h] => Input::Health(*h == "ok"),
        ["standby", v] => Input::Operator(Request::Standby(*v == "on")),
        ["move", to] | ["move", to, _] => Input::Operator(Request::Move {
            to: if *to == "me" { Side::Me } else { Side::Peer },
            until: w.get(2).map(|u| Millis(u.parse().expect("until"))),
        }),
        ["unmove"] => Input::Operator(Request::Unmove),
        ["cleanup"] => Input::Operator(Request::Cleanup(None)),
        ["maintenance", v] => Input::Operator(Request::Maintenance(*v == "on")),
        ["fence-confirm"] => Input::Operator(Request::FenceConfirm),
        _ => panic!("unknown input {w:?}"),
    }
}

fn render(a: &Action) -> String {
    match a {
        Action::ReadLease => "read-lease".into(),
        Action::WriteLease(b) => format!(
            "write-lease {} {} {}",
            if b.status == Status::Locked { "l" } else { "u" },
            b.count,
            b.nodename
        )
        .trim_end()
        .to_string(),
        Action::RunAgent { res, op, timeout } => format!("run {res} {op} {}", timeout.0),
        Action::Fence { level } => format!("fence {level}"),
        Action::SelfFence => "self-fence".into(),
        Action::Log(n) => {
            let j = serde_json::to_value(n).expect("json");
            format!("log {}", j["event"].as_str().unwrap_or("?"))
        }
    }
}

/// Runs one transcript; returns the expected and the actual transcript (the
/// inputs with the actions that followed them), and the file rewritten with
/// the actual actions and its comments kept (for `HAPAIR_SCENARIO_BLESS=1`).
fn run(text: &str) -> (String, String, String) {
    let mut eng: Option<Engine> = None;
    let mut preferred = true;
    let mut expected = String::new();
    let mut actual = String::new();
    let mut blessed = String::new();
    for line in text.lines() {
        let t = line.trim();
        if !t.starts_with("->") {
            let _ = writeln!(blessed, "{line}");
        }
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(rest) = t.strip_prefix("->") {
            let _ = writeln!(expected, "-> {}", rest.trim());
            continue;
        }
        if let Some(rest) = t.strip_prefix("config ") {
            preferred = rest.trim() != "preferred=false";
            continue;
        }
        let (at, rest) = t.split_once(' ').expect("@T INPUT");
        let now = Millis(at.trim_start_matches('@').parse().expect("time"));
        let e = eng.get_or_insert_with(|| {
            Engine::new(crate::sim::config("alpha", "beta", preferred), Millis(0))
        });
        let words: Vec<&str> = rest.split_whitespace().collect();
        let _ = writeln!(expected, "{t}");
        let _ = writeln!(actual, "{t}");
        let tick = words == ["tick"];
        for a in e.step(now, parse_input(&words)) {
            let _ = writeln!(actual, "-> {}", render(&a));
            let _ = writeln!(blessed, "-> {}", render(&a));
        }
        // after a tick nothing may be due any more: the daemon sleeps until
        // next_wake, and a deadline left in the past makes it spin
        if tick {
            if let Some(w) = e.next_wake().filter(|w| *w <= now) {
                let _ = writeln!(
                    actual,
                    "!! next_wake {w:?} still due after the tick ({})",
                    e.debug_wakes()
                );
            }
        }
    }
    (expected, actual, blessed)
}

#[test]
fn scenarios() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/engine/testdata");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("testdata")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "expected the failover stories in {dir}");
    let mut failed = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        let (expected, actual, blessed) = run(&text);
        if std::env::var_os("HAPAIR_SCENARIO_BLESS").is_some() {
            std::fs::write(f, blessed).expect("bless");
            continue;
        }
        if expected != actual {
            failed.push(format!(
                "== {}\n-- expected\n{expected}-- actual\n{actual}",
                f.display()
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
