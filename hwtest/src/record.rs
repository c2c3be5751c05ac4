//! The demo's record service: a tiny TCP server that acknowledges a record
//! only once it is durable on the shared filesystem, a client that sends
//! records without pause and logs every ack, and an OCF agent wrapper so the
//! daemon can start, stop and monitor the server like any other service.
//!
//! Protocol (one line each way): the client sends `rec N\n`; the server
//! appends `N\n` to `DIR/records.log` (`O_APPEND`), calls `fdatasync` and
//! only then answers `ack N\n`. A record the client saw acknowledged must
//! therefore be in the file on whichever node mounts the filesystem next.
//!
//! The client logs `ack N UNIX_MS CONN` per acknowledged record (stdout,
//! flushed per line), `conn CONN UNIX_MS` when a connection is made; on any
//! error it reconnects every 20 ms and sends the same record again, so a
//! record may be in the file twice (never acknowledged twice).

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The file the server appends to, under its directory.
pub const RECORDS_FILE: &str = "records.log";
/// OCF exit codes used by the agent.
const OCF_SUCCESS: i32 = 0;
const OCF_ERR_GENERIC: i32 = 1;
const OCF_ERR_ARGS: i32 = 2;
const OCF_ERR_UNIMPLEMENTED: i32 = 3;
const OCF_NOT_RUNNING: i32 = 7;

/// Milliseconds since the Unix epoch (guests share the host's clock).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Serves records on `listen`, appending to `dir/records.log`. Runs until
/// killed; a connection's error only ends that connection.
pub fn serve(listen: SocketAddr, dir: &Path) -> io::Result<()> {
    let path = dir.join(RECORDS_FILE);
    let listener = TcpListener::bind(listen)?;
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let path = path.clone();
        thread::spawn(move || {
            let _ = serve_conn(conn, &path);
        });
    }
    Ok(())
}

fn serve_conn(conn: TcpStream, path: &Path) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut out = conn.try_clone()?;
    let mut lines = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let Some(n) = line.trim().strip_prefix("rec ") else {
            out.write_all(b"err expected `rec N`\n")?;
            continue;
        };
        let n: u64 = n
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad record number"))?;
        (&file).write_all(format!("{n}\n").as_bytes())?;
        file.sync_data()?;
        out.write_all(format!("ack {n}\n").as_bytes())?;
    }
}

/// Sends records 1, 2, ... to `to` until `count` are acknowledged (forever
/// if `None`), logging to `log` as described in the module docs.
pub fn client(to: SocketAddr, count: Option<u64>, log: &mut dyn Write) -> io::Result<()> {
    let mut n = 1u64;
    let mut conn_id = 0u64;
    loop {
        let Ok(stream) = TcpStream::connect_timeout(&to, Duration::from_millis(200)) else {
            thread::sleep(Duration::from_millis(20));
            continue;
        };
        conn_id += 1;
        writeln!(log, "conn {conn_id} {}", unix_ms())?;
        log.flush()?;
        let _ = stream.set_nodelay(true);
        // a power-cut server never answers: do not wait on it for long
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let Ok(mut out) = stream.try_clone() else {
            continue;
        };
        let mut lines = BufReader::new(stream);
        let mut line = String::new();
        loop {
            if count.is_some_and(|c| n > c) {
                return Ok(());
            }
            if out.write_all(format!("rec {n}\n").as_bytes()).is_err() {
                break;
            }
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if line.trim() == format!("ack {n}") {
                writeln!(log, "ack {n} {} {conn_id}", unix_ms())?;
                log.flush()?;
                n += 1;
            } else {
                break;
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// One acknowledged record from a client log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Record number.
    pub n: u64,
    /// When the client got the ack (ms since the epoch).
    pub at_ms: u64,
    /// The client's connection number.
    pub conn: u64,
}

/// Parses a client log into its acks (other lines ignored; a torn last
/// line too).
pub fn parse_acks(log: &str) -> Vec<Ack> {
    let complete = log.rfind('\n').map_or("", |i| &log[..i]);
    complete
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            if w.next()? != "ack" {
                return None;
            }
            Some(Ack {
                n: w.next()?.parse().ok()?,
                at_ms: w.next()?.parse().ok()?,
                conn: w.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// The acknowledged records missing from a records file's text.
pub fn lost(acks: &[Ack], records: &str) -> Vec<u64> {
    let have: std::collections::HashSet<u64> = records
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    acks.iter()
        .map(|a| a.n)
        .filter(|n| !have.contains(n))
        .collect()
}

/// Parameters of the OCF agent, from `OCF_RESKEY_*`.
#[derive(Debug, Clone)]
struct AgentParams {
    listen: SocketAddr,
    dir: PathBuf,
    pidfile: PathBuf,
    /// The server command: program and arguments before `serve`'s own.
    serve_cmd: Vec<String>,
}

fn agent_params() -> Result<AgentParams, String> {
    let get = |k: &str| std::env::var(format!("OCF_RESKEY_{k}")).ok();
    let listen = get("listen")
        .ok_or("listen is required")?
        .parse()
        .map_err(|e| format!("listen: {e}"))?;
    let dir = PathBuf::from(get("directory").ok_or("directory is required")?);
    let pidfile = PathBuf::from(get("pidfile").unwrap_or_else(|| "/run/recordd.pid".into()));
    let serve_cmd = get("serve_cmd")
        .ok_or("serve_cmd is required")?
        .split_whitespace()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    if serve_cmd.is_empty() {
        return Err("serve_cmd is empty".into());
    }
    Ok(AgentParams {
        listen,
        dir,
        pidfile,
        serve_cmd,
    })
}

fn running_pid(p: &AgentParams) -> Option<Pid> {
    let pid: i32 = fs::read_to_string(&p.pidfile).ok()?.trim().parse().ok()?;
    let pid = Pid::from_raw(pid);
    // a zombie or a recycled pid of something else does not count
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    (state != Some("Z") && String::from_utf8_lossy(&cmdline).contains("serve")).then_some(pid)
}

const META_DATA: &str = r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="recordd" version="1.0">
<version>1.0</version>
<longdesc lang="en">The hapair demo record service: acknowledges a record once it is fdatasync'ed under directory.</longdesc>
<shortdesc lang="en">hapair demo record service</shortdesc>
<parameters>
<parameter name="listen" required="1"><shortdesc lang="en">address:port</shortdesc><content type="string"/></parameter>
<parameter name="directory" required="1"><shortdesc lang="en">where records.log lives</shortdesc><content type="string"/></parameter>
<parameter name="serve_cmd" required="1"><shortdesc lang="en">the server command (program and leading arguments)</shortdesc><content type="string"/></parameter>
<parameter name="pidfile"><shortdesc lang="en">pid file</shortdesc><content type="string" default="/run/recordd.pid"/></parameter>
</parameters>
<actions>
<action name="start" timeout="10s"/><action name="stop" timeout="10s"/>
<action name="monitor" timeout="10s" interval="10s"/><action name="meta-data" timeout="5s"/>
<action name="validate-all" timeout="5s"/>
</actions>
</resource-agent>
"#;

/// The OCF agent: `action` is `start`, `stop`, `monitor`, `meta-data` or
/// `validate-all`; parameters come from `OCF_RESKEY_listen`, `_directory`,
/// `_serve_cmd` and `_pidfile`. Returns the OCF exit code.
pub fn agent(action: &str) -> i32 {
    if action == "meta-data" {
        print!("{META_DATA}");
        return OCF_SUCCESS;
    }
    let p = match agent_params() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("recordd: {e}");
            return if action == "stop" || action == "monitor" {
                OCF_NOT_RUNNING
            } else {
                OCF_ERR_ARGS
            };
        }
    };
    match action {
        "validate-all" => OCF_SUCCESS,
        "monitor" | "status" => {
            if running_pid(&p).is_some() {
                OCF_SUCCESS
            } else {
                OCF_NOT_RUNNING
            }
        }
        "start" => agent_start(&p),
        "stop" => agent_stop(&p),
        _ => OCF_ERR_UNIMPLEMENTED,
    }
}

fn agent_start(p: &AgentParams) -> i32 {
    if running_pid(p).is_some() {
        return OCF_SUCCESS;
    }
    if !p.dir.is_dir() {
        eprintln!("recordd: {} is not a directory", p.dir.display());
        return OCF_ERR_GENERIC;
    }
    let mut cmd = Command::new(&p.serve_cmd[0]);
    cmd.args(&p.serve_cmd[1..])
        .args(["serve", "--listen", &p.listen.to_string(), "--dir"])
        .arg(&p.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/")
        // its own session: the agent's process group is killed when the
        // agent ends, the server must outlive it
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("recordd: cannot start {}: {e}", p.serve_cmd[0]);
            return OCF_ERR_GENERIC;
        }
    };
    let pid = child.id();
    if let Err(e) = fs::write(&p.pidfile, format!("{pid}\n")) {
        eprintln!("recordd: {}: {e}", p.pidfile.display());
        return OCF_ERR_GENERIC;
    }
    // ready when it accepts connections
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        if TcpStream::connect_timeout(&p.listen, Duration::from_millis(100)).is_ok() {
            return OCF_SUCCESS;
        }
        // (not running_pid: right after fork the child's cmdline is ours)
        if let Ok(Some(st)) = child.try_wait() {
            eprintln!("recordd: the server exited at once ({st})");
            return OCF_ERR_GENERIC;
        }
        thread::sleep(Duration::from_millis(10));
    }
    eprintln!("recordd: not listening on {} after 8 s", p.listen);
    OCF_ERR_GENERIC
}

fn agent_stop(p: &AgentParams) -> i32 {
    let Some(pid) = running_pid(p) else {
        let _ = fs::remove_file(&p.pidfile);
        return OCF_SUCCESS;
    };
    let _ = kill(pid, Signal::SIGKILL);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if running_pid(p).is_none() {
            let _ = fs::remove_file(&p.pidfile);
            return OCF_SUCCESS;
        }
        thread::sleep(Duration::from_millis(10));
    }
    OCF_ERR_GENERIC
}

/// Command-line entry shared by `hapair-recordd` and `hapair demo`'s
/// hidden service mode: `serve --listen A --dir D`, `client --to A
/// [--count N]`, `agent ACTION` (also the OCF agent's own argv: a bare
/// `start`, `stop`, `monitor`, `meta-data`, `validate-all`). Returns the
/// exit code.
pub fn main_args(args: &[String]) -> i32 {
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match args.first().map(String::as_str) {
        Some("serve") => {
            let (Some(listen), Some(dir)) = (flag("--listen"), flag("--dir")) else {
                eprintln!("usage: serve --listen ADDR:PORT --dir DIR");
                return 2;
            };
            let Ok(listen) = listen.parse() else {
                eprintln!("bad --listen {listen}");
                return 2;
            };
            match serve(listen, Path::new(&dir)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("serve: {e}");
                    1
                }
            }
        }
        Some("client") => {
            let Some(Ok(to)) = flag("--to").map(|t| t.parse()) else {
                eprintln!("usage: client --to ADDR:PORT [--count N]");
                return 2;
            };
            let count = flag("--count").and_then(|c| c.parse().ok());
            let mut out = io::stdout().lock();
            match client(to, count, &mut out) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("client: {e}");
                    1
                }
            }
        }
        Some("agent") => agent(args.get(1).map_or("", String::as_str)),
        Some(a @ ("start" | "stop" | "monitor" | "status" | "meta-data" | "validate-all")) => {
            agent(a)
        }
        _ => {
            eprintln!(
                "usage: serve --listen ADDR:PORT --dir DIR | client --to ADDR:PORT [--count N] | agent ACTION"
            );
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_and_client_on_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let d = dir.path().to_owned();
        thread::spawn(move || serve(addr, &d));
        let mut log = Vec::new();
        client(addr, Some(50), &mut log).unwrap();
        let log = String::from_utf8(log).unwrap();
        let acks = parse_acks(&log);
        assert_eq!(acks.len(), 50);
        assert_eq!(
            acks.iter().map(|a| a.n).collect::<Vec<_>>(),
            (1..=50).collect::<Vec<_>>()
        );
        let records = fs::read_to_string(dir.path().join(RECORDS_FILE)).unwrap();
        assert!(lost(&acks, &records).is_empty());
        assert_eq!(lost(&acks, "1\n2\n"), (3..=50).collect::<Vec<_>>());
    }
}
