//! `sfex`: initialise, inspect, take and hold an sfex lock on a shared block
//! device, compatible with resource-agents' `sfex_init`, `sfex_stat` and
//! `sfex_daemon` (same on-disk bytes, same protocol, same exit codes).
#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use nix::sys::signal::{SigSet, Signal};
use serde::Serialize;
use sfex::dev::{BlockIo, EngineKind};
use sfex::format::{self, NodeName};
use sfex::holder::Holder;
use sfex::lease::{self, Event, Millis};
use sfex::ops::{self, OpError, exit};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (status: the lock is held by this node; lock: released on SIGTERM/SIGINT)
  1  bad metadata, I/O error, refused request, or (lock) the lease was lost
  2  the lock is not held by this node, is held by a live node, or a collision was detected
  3  the device cannot be opened
  4  usage error";

/// sfex shared-disk lock (byte-compatible with resource-agents' sfex tools).
#[derive(Debug, Parser)]
#[command(name = "sfex", version, after_help = EXIT_CODES)]
struct Cli {
    /// I/O engine: io-uring (falls back to sync with a warning) or plain O_DIRECT pread/pwrite.
    #[arg(long, global = true, env = "SFEX_ENGINE", default_value = "uring")]
    engine: Engine,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Engine {
    Uring,
    Sync,
}

impl From<Engine> for EngineKind {
    fn from(e: Engine) -> Self {
        match e {
            Engine::Uring => EngineKind::Uring,
            Engine::Sync => EngineKind::Sync,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnLoss {
    /// Exit 1 (the caller stops what relied on the lock).
    Exit,
    /// Write "b" to the sysrq trigger (immediate reboot), as sfex_daemon does.
    Reboot,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Format a device with NUMLOCKS lock blocks (like sfex_init).
    #[command(after_help = EXIT_CODES)]
    Init {
        /// Number of locks (1..999).
        #[arg(short = 'n', long = "numlocks", default_value_t = 1)]
        numlocks: u32,
        /// Re-initialise a device that already holds sfex metadata (never while a lock is held).
        #[arg(long)]
        force: bool,
        /// The shared block device.
        device: PathBuf,
    },
    /// Show the control block and one lock (like sfex_stat; same output and exit codes).
    #[command(alias = "stat", after_help = EXIT_CODES)]
    Status {
        #[command(flatten)]
        sel: Select,
        /// Print JSON instead of sfex_stat's text.
        #[arg(long)]
        json: bool,
    },
    /// Acquire the lock like sfex_daemon, then hold and renew it in the foreground.
    #[command(after_help = EXIT_CODES)]
    Lock(LockArgs),
    /// Release a lock held by this node (or, with --force, by any node).
    #[command(after_help = EXIT_CODES)]
    Unlock {
        #[command(flatten)]
        sel: Select,
        /// Release a lock held by another node (a live holder then gives up at its next renewal).
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Live view of a lock's holder and counter.
    #[command(after_help = EXIT_CODES)]
    Watch {
        #[command(flatten)]
        sel: Select,
        /// Time between reads (e.g. 1s, 200ms).
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
        /// Stop after this many reads.
        #[arg(long)]
        count: Option<u64>,
        /// Print one JSON object per read.
        #[arg(long)]
        json: bool,
    },
    /// Decoded fields and raw hex of the control block and the lock blocks.
    #[command(after_help = EXIT_CODES)]
    Dump {
        /// The device.
        device: PathBuf,
        /// Only this lock (default: all).
        #[arg(short = 'i', long = "index")]
        index: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct Select {
    /// Lock index (1..999).
    #[arg(short = 'i', long = "index", default_value_t = 1)]
    index: u32,
    /// This node's name (default: uname -n).
    #[arg(long)]
    node: Option<String>,
    /// The shared block device.
    device: PathBuf,
}

#[derive(Debug, Args)]
struct LockArgs {
    /// Lock index (1..999).
    #[arg(short = 'i', long = "index", default_value_t = 1)]
    index: u32,
    /// Collision timeout: wait after the claim before checking it (seconds, or 500ms, 2s...).
    #[arg(short = 'c', long = "collision-timeout", default_value = "1", value_parser = parse_duration)]
    collision_timeout: Duration,
    /// Lock timeout: a held lock whose counter stands still this long is stale.
    #[arg(short = 't', long = "lock-timeout", default_value = "60", value_parser = parse_duration)]
    lock_timeout: Duration,
    /// Monitor interval: renew the lock this often.
    #[arg(short = 'm', long = "monitor-interval", default_value = "10", value_parser = parse_duration)]
    monitor_interval: Duration,
    /// Safety margin taken off the lease for clock drift (default: lock_timeout/10, at most 2s).
    #[arg(long, value_parser = parse_duration)]
    margin: Option<Duration>,
    /// Treat a lease I/O slower than this as failed (needs -c > 2 x max-io; default: no bound, as sfex_daemon).
    #[arg(long, value_parser = parse_duration)]
    max_io: Option<Duration>,
    /// This node's name (sfex_daemon's -n; default: uname -n).
    #[arg(short = 'n', long)]
    node: Option<String>,
    /// Resource id (accepted for sfex_daemon compatibility, used in logs).
    #[arg(short = 'r', long = "rsc-id", default_value = "sfex")]
    rsc_id: String,
    /// Keep watching a live holder and take over once its counter stands still, instead of exiting 2.
    #[arg(long)]
    wait: bool,
    /// What to do when the lease is lost.
    #[arg(long, value_enum, default_value = "exit")]
    on_loss: OnLoss,
    /// The sysrq trigger written with --on-loss reboot.
    #[arg(long, default_value = "/proc/sysrq-trigger")]
    sysrq_path: PathBuf,
    /// Write our pid here once the lock is acquired (removed on exit).
    #[arg(long)]
    pidfile: Option<PathBuf>,
    /// The shared block device.
    device: PathBuf,
}

/// Seconds as a bare integer (as the original tools take them), or a number
/// with a unit: `ms`, `s`, `m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 10, 10s, 500ms)"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n * 60),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    if d.is_zero() {
        return Err(format!("{s:?}: must be greater than zero"));
    }
    Ok(d)
}

fn millis(d: Duration) -> Millis {
    Millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn node_name(given: Option<&str>) -> Result<NodeName, String> {
    let raw = match given {
        Some(n) => n.as_bytes().to_vec(),
        None => nix::unistd::gethostname()
            .map_err(|e| format!("can't get the node name: {e}"))?
            .into_encoded_bytes(),
    };
    NodeName::new(raw).map_err(|e| e.to_string())
}

fn fail(e: &OpError) -> ExitCode {
    eprintln!("sfex: {e}");
    ExitCode::from(e.exit_code())
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("sfex: {msg}");
    ExitCode::from(exit::USAGE)
}

fn json_line<T: Serialize>(v: &T) {
    println!(
        "{}",
        serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    );
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(exit::USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SFEX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let engine = EngineKind::from(cli.engine);
    match cli.cmd {
        Cmd::Init {
            numlocks,
            force,
            device,
        } => cmd_init(&device, numlocks, force, engine),
        Cmd::Status { sel, json } => cmd_status(&sel, json, engine),
        Cmd::Lock(args) => cmd_lock(args, engine),
        Cmd::Unlock { sel, force, json } => cmd_unlock(&sel, force, json, engine),
        Cmd::Watch {
            sel,
            interval,
            count,
            json,
        } => cmd_watch(&sel, interval, count, json, engine),
        Cmd::Dump {
            device,
            index,
            json,
        } => cmd_dump(&device, index, json, engine),
    }
}

fn cmd_init(device: &Path, numlocks: u32, force: bool, engine: EngineKind) -> ExitCode {
    // usage first, as sfex_init: exit 4 before any attempt to open (exit 3)
    if let Err(e) = ops::check_numlocks(numlocks) {
        return fail(&e);
    }
    let mut dev = match sfex::dev::Device::open(device, engine) {
        Ok(d) => d,
        Err(e) => return fail(&e.into()),
    };
    match ops::init(&mut dev, device, numlocks, force) {
        Ok(()) => {
            tracing::info!(device = %device.display(), numlocks, block = dev.sector_size(), "initialised");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn cmd_status(sel: &Select, json: bool, engine: EngineKind) -> ExitCode {
    let node = match node_name(sel.node.as_deref()) {
        Ok(n) => n,
        Err(e) => return usage(&e),
    };
    match ops::status(&sel.device, sel.index, &node, engine) {
        Ok(r) => {
            if let Some(e) = &r.lock_error {
                eprintln!("sfex: {}: lock #{}: {e}", sel.device.display(), sel.index);
            }
            if json {
                json_line(&r);
            } else {
                print!("{}", r.text());
            }
            ExitCode::from(r.exit_code())
        }
        Err(e) => fail(&e),
    }
}

fn cmd_unlock(sel: &Select, force: bool, json: bool, engine: EngineKind) -> ExitCode {
    let node = match node_name(sel.node.as_deref()) {
        Ok(n) => n,
        Err(e) => return usage(&e),
    };
    let run = || -> Result<ops::UnlockOutcome, OpError> {
        let (mut dev, _) = ops::open_checked(&sel.device, sel.index, engine, true)?;
        ops::unlock(&mut dev, &sel.device, sel.index, &node, force)
    };
    match run() {
        Ok(out) => {
            if json {
                json_line(&out);
            } else {
                match &out {
                    ops::UnlockOutcome::Released { holder, count } => {
                        println!(
                            "lock #{} released (holder {holder}, count {count})",
                            sel.index
                        );
                    }
                    ops::UnlockOutcome::AlreadyUnlocked => {
                        println!("lock #{} was not locked", sel.index);
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

#[derive(Serialize)]
struct WatchLine<'a> {
    elapsed_ms: u64,
    lock: Option<&'a format::LockBlock>,
    error: Option<&'a str>,
    unchanged_ms: u64,
    held_by_me: bool,
}

fn cmd_watch(
    sel: &Select,
    interval: Duration,
    count: Option<u64>,
    json: bool,
    engine: EngineKind,
) -> ExitCode {
    let node = match node_name(sel.node.as_deref()) {
        Ok(n) => n,
        Err(e) => return usage(&e),
    };
    let (mut dev, _) = match ops::open_checked(&sel.device, sel.index, engine, false) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let start = Instant::now();
    let mut last: Option<(i32, Instant)> = None;
    let mut n = 0u64;
    if !json {
        println!(
            "watching lock #{} of {} every {:?} ({} engine)",
            sel.index,
            sel.device.display(),
            interval,
            dev.engine()
        );
    }
    loop {
        let t = Instant::now();
        let read = ops::read_lock(&mut dev, sel.index);
        let since = match (&read, last) {
            (Ok(lb), Some((c, at))) if lb.count == c => at,
            (Ok(lb), _) => {
                last = Some((lb.count, t));
                t
            }
            (Err(_), Some((_, at))) => at,
            (Err(_), None) => t,
        };
        let unchanged_ms = u64::try_from(t.duration_since(since).as_millis()).unwrap_or(u64::MAX);
        let elapsed_ms = u64::try_from(t.duration_since(start).as_millis()).unwrap_or(u64::MAX);
        let held_by_me = read.as_ref().is_ok_and(|l| l.is_held_by(&node));
        if json {
            json_line(&WatchLine {
                elapsed_ms,
                lock: read.as_ref().ok(),
                error: read.as_ref().err().map(String::as_str),
                unchanged_ms,
                held_by_me,
            });
        } else {
            match &read {
                Ok(lb) => println!(
                    "{:>8.1}s  {:<8} holder={:<16} count={:<3}  unchanged {:.1}s{}",
                    elapsed_ms as f64 / 1000.0,
                    if lb.status == format::Status::Locked {
                        "locked"
                    } else {
                        "unlocked"
                    },
                    if lb.nodename.is_empty() {
                        "-".to_string()
                    } else {
                        lb.nodename.to_string()
                    },
                    lb.count,
                    unchanged_ms as f64 / 1000.0,
                    if held_by_me { "  (this node)" } else { "" },
                ),
                Err(e) => println!("{:>8.1}s  read error: {e}", elapsed_ms as f64 / 1000.0),
            }
        }
        let _ = std::io::stdout().flush();
        n += 1;
        if count.is_some_and(|c| n >= c) {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(interval.saturating_sub(t.elapsed()));
    }
}

#[derive(Serialize)]
struct DumpReport {
    device: String,
    sector_size: u32,
    size: u64,
    engine: EngineKind,
    control: Option<format::ControlBlock>,
    control_error: Option<String>,
    blocks: Vec<ops::DumpBlock>,
}

fn cmd_dump(device: &Path, index: Option<u32>, json: bool, engine: EngineKind) -> ExitCode {
    let mut dev = match sfex::dev::Device::open_read_only(device, engine) {
        Ok(d) => d,
        Err(e) => return fail(&e.into()),
    };
    let bs = dev.sector_size();
    let b0 = match dev.read_block(0) {
        Ok(b) => b,
        Err(e) => return fail(&e.into()),
    };
    let control = format::decode_control(&b0);
    let numlocks = control.as_ref().map_or(0, |c| c.numlocks.clamp(0, 999));
    let max_blocks = dev.size() / u64::from(bs);
    let indices: Vec<u64> = match index {
        Some(i) => vec![u64::from(i)],
        None => (1..=u64::try_from(numlocks).unwrap_or(0)).collect(),
    };
    let mut blocks = vec![ops::DumpBlock {
        index: 0,
        offset: 0,
        lock: None,
        error: control.as_ref().err().map(ToString::to_string),
        hex: ops::trimmed_hex(&b0),
        len: b0.len(),
    }];
    let mut raw = vec![b0.clone()];
    for i in indices {
        if i >= max_blocks {
            blocks.push(ops::DumpBlock {
                index: i,
                offset: i * u64::from(bs),
                lock: None,
                error: Some("past the end of the device".into()),
                hex: String::new(),
                len: 0,
            });
            raw.push(Vec::new());
            continue;
        }
        let (lock, error, bytes) = match dev.read_block(i) {
            Ok(b) => match format::decode_lock(&b) {
                Ok(l) => (Some(l), None, b),
                Err(e) => (None, Some(e.to_string()), b),
            },
            Err(e) => (None, Some(e.to_string()), Vec::new()),
        };
        blocks.push(ops::DumpBlock {
            index: i,
            offset: i * u64::from(bs),
            lock,
            error,
            hex: ops::trimmed_hex(&bytes),
            len: bytes.len(),
        });
        raw.push(bytes);
    }
    let report = DumpReport {
        device: device.display().to_string(),
        sector_size: bs,
        size: dev.size(),
        engine: dev.engine(),
        control: control.as_ref().ok().copied(),
        control_error: control.as_ref().err().map(ToString::to_string),
        blocks,
    };
    if json {
        json_line(&report);
    } else {
        println!(
            "device {}: {} bytes, logical sector {} ({} engine)",
            report.device, report.size, bs, report.engine
        );
        for (b, bytes) in report.blocks.iter().zip(&raw) {
            if b.index == 0 {
                match &report.control {
                    Some(c) => println!(
                        "block 0 (control): magic SFEX, version {}, revision {}, blocksize {}, numlocks {}",
                        c.version, c.revision, c.blocksize, c.numlocks
                    ),
                    None => println!("block 0 (control): {}", b.error.as_deref().unwrap_or("?")),
                }
            } else {
                match (&b.lock, &b.error) {
                    (Some(l), _) => println!(
                        "block {} (lock #{}): status {}, count {}, nodename {:?}",
                        b.index,
                        b.index,
                        if l.status == format::Status::Locked {
                            "l (locked)"
                        } else {
                            "u (unlocked)"
                        },
                        l.count,
                        l.nodename.to_string()
                    ),
                    (None, e) => println!(
                        "block {} (lock #{}): {}",
                        b.index,
                        b.index,
                        e.as_deref().unwrap_or("?")
                    ),
                }
            }
            for line in ops::hexdump(bytes, b.offset) {
                println!("  {line}");
            }
        }
    }
    if report.control.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::ERROR)
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP in every thread and forwards them to a
/// channel from one thread that waits for them (no async-signal-unsafe code).
fn signal_channel() -> Result<mpsc::Receiver<Signal>, String> {
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| format!("can't block signals: {e}"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("sfex-signals".into())
        .spawn(move || {
            while let Ok(sig) = set.wait() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("can't start the signal thread: {e}"))?;
    Ok(rx)
}

fn write_pidfile(path: &Path) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = File::create(&tmp)?;
    writeln!(f, "{}", std::process::id())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn cmd_lock(a: LockArgs, engine: EngineKind) -> ExitCode {
    // Signals first, before any thread exists, so every thread inherits the mask.
    let signals = match signal_channel() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sfex: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let node = match node_name(a.node.as_deref()) {
        Ok(n) => n,
        Err(e) => {
            // the daemon exits 1 for a name too long for the format
            eprintln!("sfex: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let lock_timeout = millis(a.lock_timeout);
    let cfg = lease::Config {
        node: node.clone(),
        lock_timeout,
        collision_timeout: millis(a.collision_timeout),
        monitor_interval: millis(a.monitor_interval),
        margin: a
            .margin
            .map_or_else(|| lease::Config::default_margin(lock_timeout), millis),
        retry_interval: Millis(millis(a.monitor_interval).0.div_ceil(4).clamp(100, 1000)),
        wait: a.wait,
        max_io: a.max_io.map(millis),
    };
    if let Err(e) = cfg.validate() {
        return usage(&e.to_string());
    }
    // Like sfex_daemon: the fence path must be usable before we take anything.
    let mut sysrq = match a.on_loss {
        OnLoss::Exit => None,
        OnLoss::Reboot => match OpenOptions::new().write(true).open(&a.sysrq_path) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("sfex: failed to open {} due to {e}", a.sysrq_path.display());
                return ExitCode::from(exit::ERROR);
            }
        },
    };
    let (dev, _cb) = match ops::open_checked(&a.device, a.index, engine, true) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    tracing::info!(
        device = %a.device.display(), index = a.index, node = %node, rsc = %a.rsc_id,
        engine = %dev.engine(), lock_timeout = %cfg.lock_timeout, monitor_interval = %cfg.monitor_interval,
        collision_timeout = %cfg.collision_timeout, margin = %cfg.margin, "acquiring lock"
    );
    let dev: Box<dyn BlockIo> = Box::new(dev);
    let holder = match Holder::new(dev, a.index, cfg) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("sfex: can't start the I/O thread: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let release = holder.release_handle();
    std::thread::spawn(move || {
        for sig in signals {
            tracing::info!(signal = %sig, "releasing lock");
            release.release();
        }
    });
    let pidfile = a.pidfile.clone();
    let mut pid_written = false;
    let end = holder.run(|ev, now| log_event(ev, now, &pidfile, &mut pid_written));
    if pid_written {
        if let Some(p) = &a.pidfile {
            let _ = std::fs::remove_file(p);
        }
    }
    match end {
        Event::Released { .. } => ExitCode::SUCCESS,
        Event::NotHeld { .. } => ExitCode::from(exit::ERROR),
        Event::AcquireFailed(lease::AcquireError::Io { .. }) => ExitCode::from(exit::ERROR),
        Event::AcquireFailed(_) => ExitCode::from(exit::NOT_MINE),
        Event::Lost(_) => {
            if let Some(f) = sysrq.as_mut() {
                tracing::error!(node = %node, "Force reboot node {node}");
                if let Err(e) = f.write_all(b"b\n") {
                    tracing::error!("writing to {} failed: {e}", a.sysrq_path.display());
                }
            }
            ExitCode::from(exit::ERROR)
        }
        _ => ExitCode::from(exit::ERROR),
    }
}

fn log_event(ev: &Event, now: Millis, pidfile: &Option<PathBuf>, pid_written: &mut bool) {
    match ev {
        Event::Watching {
            holder,
            count,
            until,
        } => tracing::info!(
            holder = %holder, count, at = %now, check_at = %until,
            "lock is held by {holder}; watching its counter"
        ),
        Event::Stale { holder, count } => {
            tracing::warn!(holder = %holder, count, at = %now, "lock of {holder} is stale; taking it over")
        }
        Event::FencedTakeover { holder } => {
            tracing::warn!(holder = %holder, at = %now, "{holder} is fenced; taking its lock")
        }
        Event::Acquired { count, valid_until } => {
            tracing::info!(count, at = %now, valid_until = %valid_until, "lock acquired");
            if let Some(p) = pidfile {
                match write_pidfile(p) {
                    Ok(()) => *pid_written = true,
                    Err(e) => tracing::error!("can't write pidfile {}: {e}", p.display()),
                }
            }
        }
        Event::Renewed { count, valid_until } => {
            tracing::debug!(count, at = %now, valid_until = %valid_until, "lock renewed")
        }
        Event::RenewFailed { failure, deadline } => {
            tracing::warn!(at = %now, deadline = %deadline, "renewal failed, retrying: {}", failure.message)
        }
        Event::AcquireFailed(lease::AcquireError::HeldElsewhere { holder }) => tracing::error!(
            at = %now, "can't acquire lock: the lock's already hold by some other node ({holder})."
        ),
        Event::AcquireFailed(lease::AcquireError::Collision { other }) => {
            tracing::error!(at = %now, "can't acquire lock: collision detected in the air ({other}).")
        }
        Event::AcquireFailed(lease::AcquireError::Io { failure }) => {
            tracing::error!(at = %now, "can't acquire lock: {}", failure.message)
        }
        Event::Lost(lease::LostReason::DeadlineMissed { deadline }) => tracing::error!(
            at = %now, deadline = %deadline, "lease lost: no renewal confirmed before the deadline"
        ),
        Event::Lost(lease::LostReason::Corrupt { message }) => tracing::error!(
            at = %now, "can't update lock: lease lost, the block no longer decodes: {message}"
        ),
        Event::Lost(lease::LostReason::TakenOver { found }) => tracing::error!(
            at = %now, "can't update lock: lease lost, block now shows {:?} {} count {}",
            found.status, found.nodename, found.count
        ),
        Event::Released { count } => tracing::info!(count, at = %now, "lock released"),
        Event::NotHeld { found } => tracing::info!(at = %now, ?found, "lock was already released."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
