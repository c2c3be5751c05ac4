//! `hapair drbd ...`: offline tools over the `drbd` crate. For now
//! `events --replay FILE`, which feeds a saved `drbdsetup events2` stream
//! through the parser and the state model.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

/// DRBD tools.
#[derive(Debug, Subcommand)]
pub enum DrbdCmd {
    /// Replay a saved `drbdsetup events2` output: print the transitions and
    /// each resource's final state. Bad lines are reported and skipped.
    Events {
        /// File holding events2 lines (`#` lines and blank lines are skipped).
        #[arg(long)]
        replay: PathBuf,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Entry point from `main`.
pub fn main(cmd: DrbdCmd) -> ExitCode {
    match cmd {
        DrbdCmd::Events { replay, json } => {
            let out = std::io::stdout();
            let err = std::io::stderr();
            match replay_file(&replay, json, &mut out.lock(), &mut err.lock()) {
                Ok(n) if n > 0 => ExitCode::SUCCESS,
                Ok(_) => {
                    eprintln!("hapair: {}: no events2 line parsed", replay.display());
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("hapair: {}: {e}", replay.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Replay `path`; returns how many lines parsed.
fn replay_file(
    path: &Path,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<usize> {
    let text = std::fs::read_to_string(path)?;
    replay(&text, json, out, err)
}

fn replay(
    text: &str,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<usize> {
    let mut model = drbd::Cluster::new();
    let mut parsed = 0usize;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let ev = match drbd::parse_line(line) {
            Ok(ev) => ev,
            Err(e) => {
                writeln!(err, "line {lineno}: {e}")?;
                continue;
            }
        };
        parsed += 1;
        let ts = ev.timestamp.as_deref().unwrap_or("-");
        match model.apply(&ev) {
            Ok(ts_list) => {
                for t in ts_list {
                    if json {
                        let v = serde_json::json!({"line": lineno, "time": ts, "transition": t});
                        writeln!(out, "{v}")?;
                    } else {
                        writeln!(out, "{lineno:>5} {ts} {}", describe(&t))?;
                    }
                }
            }
            Err(e) => writeln!(err, "line {lineno}: {e}")?,
        }
    }
    if json {
        let v =
            serde_json::json!({"final": {"ready": model.ready(), "resources": model.resources}});
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "final state (ready: {}):", model.ready())?;
        for (name, r) in &model.resources {
            writeln!(out, "{}", describe_resource(name, r))?;
        }
    }
    Ok(parsed)
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "?".to_owned(), ToString::to_string)
}

fn describe(t: &drbd::Transition) -> String {
    use drbd::Transition as T;
    match t {
        T::Ready => "initial dump complete".to_owned(),
        T::Role { resource, old, new } => format!("{resource} role {} -> {new}", opt(old)),
        T::Disk {
            resource,
            volume,
            old,
            new,
        } => {
            format!("{resource}/{volume} disk {} -> {new}", opt(old))
        }
        T::Connection {
            resource,
            peer,
            old,
            new,
        } => {
            format!("{resource} peer {peer} connection {} -> {new}", opt(old))
        }
        T::PeerRole {
            resource,
            peer,
            old,
            new,
        } => {
            format!("{resource} peer {peer} role {} -> {new}", opt(old))
        }
        T::PeerDisk {
            resource,
            peer,
            volume,
            old,
            new,
        } => {
            format!(
                "{resource}/{volume} peer {peer} peer-disk {} -> {new}",
                opt(old)
            )
        }
        T::Replication {
            resource,
            peer,
            volume,
            old,
            new,
        } => {
            format!(
                "{resource}/{volume} peer {peer} replication {} -> {new}",
                opt(old)
            )
        }
        T::Helper {
            resource,
            helper,
            status: None,
        } => format!("{resource} call helper {helper}"),
        T::Helper {
            resource,
            helper,
            status: Some(s),
        } => {
            format!("{resource} helper {helper} returned {s}")
        }
        T::Destroyed { resource, object } => format!("{resource} {object} destroyed"),
        T::Skipped { count } => format!("{count} events lost: re-read the full state"),
    }
}

fn describe_resource(name: &str, r: &drbd::model::Resource) -> String {
    let mut s = format!(
        "  resource {name}: role {} suspended {} may_promote {} promotion_score {}",
        opt(&r.role),
        opt(&r.suspended),
        opt(&r.may_promote),
        opt(&r.promotion_score)
    );
    for (vol, d) in &r.devices {
        s += &format!(
            "\n    volume {vol}: minor {} disk {} quorum {}",
            opt(&d.minor),
            opt(&d.disk),
            opt(&d.quorum)
        );
    }
    for (peer, c) in &r.connections {
        s += &format!(
            "\n    peer {peer} ({}): connection {} role {}",
            opt(&c.conn_name),
            opt(&c.state),
            opt(&c.peer_role)
        );
        for (vol, p) in &c.peer_devices {
            s += &format!(
                "\n      volume {vol}: replication {} peer-disk {} done {}",
                opt(&p.replication),
                opt(&p.peer_disk),
                opt(&p.done)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/drbd/tests/fixtures/drbd-events-captured.txt"
    );

    #[test]
    fn replays_the_capture() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let n = replay_file(Path::new(FIXTURE), false, &mut out, &mut err).unwrap();
        assert_eq!(n, 68 - 9, "every non-comment line parses");
        assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("initial dump complete"), "{out}");
        assert!(out.contains("r0 role Secondary -> Primary"), "{out}");
        assert!(
            out.contains("r0 peer 0 connection Connected -> TearDown"),
            "{out}"
        );
        assert!(out.contains("r0 helper split-brain returned 0"), "{out}");
        assert!(out.contains("resource r0: role Primary"), "{out}");
        assert!(
            out.contains("replication Established peer-disk UpToDate"),
            "{out}"
        );
    }

    #[test]
    fn bad_lines_reported_with_number_and_skipped() {
        let text = "exists resource name:r0 role:Secondary\nbogus line\nexists -\nchange device name:r0 volume:x\n";
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let n = replay(text, true, &mut out, &mut err).unwrap();
        assert_eq!(n, 2);
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("line 2: unknown verb \"bogus\""), "{err}");
        assert!(
            err.contains("line 4: key \"volume\": bad value \"x\""),
            "{err}"
        );
        let out = String::from_utf8(out).unwrap();
        let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        assert_eq!(last["final"]["ready"], true);
        assert_eq!(last["final"]["resources"]["r0"]["role"], "Secondary");
    }
}
