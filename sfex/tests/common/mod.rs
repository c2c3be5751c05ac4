//! Shared harness for the sfex integration tests: loop devices, the original
//! Debian tools (`sfex_init`, `sfex_stat`, `sfex_daemon`) and our `sfex`
//! binary, each behind an RAII guard so that a failing test never leaves a
//! daemon running or a loop device attached.
//!
//! Invariants:
//! - Everything here needs root. [`require_root`] panics when that (or an
//!   original tool) is missing: tests never skip silently.
//! - Every child process is waited on with a deadline; a hung child fails the
//!   test instead of hanging it.
//! - No `unsafe`: raw block I/O goes through `dd` with `iflag/oflag=direct`, and
//!   the fast poller uses an `O_DIRECT` [`File`] with an aligned window into a
//!   plain `Vec<u8>`.
//!
//! What it does not do: decode sfex blocks (the tests carry their own tiny,
//! independent encoder so they do not trust the code under test).
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tempfile::TempDir;

/// The original tools (Debian `resource-agents`).
pub const SFEX_INIT: &str = "/usr/sbin/sfex_init";
/// See [`SFEX_INIT`].
pub const SFEX_STAT: &str = "/usr/sbin/sfex_stat";
/// See [`SFEX_INIT`].
pub const SFEX_DAEMON: &str = "/usr/libexec/heartbeat/sfex_daemon";

/// Upper bound for any single helper command (dd, losetup, stat, init).
const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// The I/O engines every test of our device code must run with.
pub fn both_engines() -> [&'static str; 2] {
    ["sync", "uring"]
}

/// Sector sizes the compatibility tests run on.
pub const SECTORS: [u32; 2] = [512, 4096];

static INIT: Once = Once::new();

/// Panics with a clear message unless we run as root with the original tools
/// installed. Also makes this test process a child subreaper, so that the
/// original daemon, once it has daemonised, is re-parented to us and its exit
/// status can be collected with `waitpid`.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the sfex compat tests need root (loop devices, unshare -m, O_DIRECT); \
         run them as root: they are never skipped"
    );
    for tool in [SFEX_INIT, SFEX_STAT, SFEX_DAEMON] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: install Debian's resource-agents package"
        );
    }
    INIT.call_once(|| {
        nix::sys::prctl::set_child_subreaper(true).expect("prctl(PR_SET_CHILD_SUBREAPER)");
    });
}

/// Exit code of a finished process; a death by signal N maps to 128+N as in a shell.
pub fn exit_code(st: ExitStatus) -> i32 {
    match (st.code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => -1,
    }
}

/// Result of a finished command.
#[derive(Debug, Clone)]
pub struct Run {
    /// Exit code (128+signal when killed).
    pub code: i32,
    /// Captured stdout (lossy UTF-8).
    pub stdout: String,
    /// Captured stderr (lossy UTF-8).
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

fn spawn_reader<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// Waits for `child` with a deadline; kills it (SIGKILL) and returns `None` on timeout.
pub fn wait_child_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() >= end {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` with optional stdin data, capturing output, with a deadline.
/// Panics (after killing the child) if the deadline passes.
pub fn run_with(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Run {
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    if let Some(data) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        w.write_all(data)
            .unwrap_or_else(|e| panic!("write stdin of {what}: {e}"));
    }
    let out = spawn_reader(child.stdout.take().expect("stdout"));
    let err = spawn_reader(child.stderr.take().expect("stderr"));
    let Some(st) = wait_child_timeout(&mut child, timeout) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish within {timeout:?}");
    };
    let elapsed = start.elapsed();
    Run {
        code: exit_code(st),
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        elapsed,
    }
}

/// [`run_with`] without stdin and with the default deadline.
pub fn run(cmd: &mut Command) -> Run {
    run_with(cmd, None, CMD_TIMEOUT)
}

/// Runs a command that must succeed; returns its stdout as bytes.
fn run_ok_bytes(cmd: &mut Command, stdin: Option<&[u8]>) -> Vec<u8> {
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let writer = stdin.map(|d| {
        let mut w = child.stdin.take().expect("stdin");
        let d = d.to_vec();
        thread::spawn(move || w.write_all(&d))
    });
    let out = spawn_reader(child.stdout.take().expect("stdout"));
    let err = spawn_reader(child.stderr.take().expect("stderr"));
    let Some(st) = wait_child_timeout(&mut child, CMD_TIMEOUT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish within {CMD_TIMEOUT:?}");
    };
    if let Some(w) = writer {
        w.join()
            .unwrap()
            .unwrap_or_else(|e| panic!("write stdin of {what}: {e}"));
    }
    let err = err.join().unwrap();
    assert!(
        st.success(),
        "{what} failed ({st}): {}",
        String::from_utf8_lossy(&err)
    );
    out.join().unwrap()
}

// ---------------------------------------------------------------------------
// Loop devices
// ---------------------------------------------------------------------------

/// A loop device over a sparse backing file in a private temp dir, detached
/// on drop. Declare it *before* any daemon or lock guard that uses it, so
/// that it is dropped after them.
#[derive(Debug)]
pub struct LoopDev {
    path: PathBuf,
    sector: u32,
    size: u64,
    _dir: TempDir,
}

impl LoopDev {
    /// Creates a loop device of `size` bytes with logical sector `sector`.
    pub fn new(sector: u32, size: u64) -> LoopDev {
        require_root();
        assert!(
            size % u64::from(sector) == 0,
            "size must be a multiple of the sector"
        );
        let dir = tempfile::Builder::new()
            .prefix("sfex-loop.")
            .tempdir()
            .expect("tempdir");
        let img = dir.path().join("backing.img");
        File::create(&img)
            .and_then(|f| f.set_len(size))
            .expect("create backing file");
        // Parallel tests race for the first free loop device: retry.
        let mut last = String::new();
        for attempt in 0..20 {
            let r = run(Command::new("losetup")
                .args(["--find", "--show", "--sector-size", &sector.to_string()])
                .arg("--direct-io=off")
                .arg(&img));
            if r.code == 0 {
                // Own it first, so a failed check below still detaches it.
                let dev = LoopDev {
                    path: PathBuf::from(r.stdout.trim()),
                    sector,
                    size,
                    _dir: dir,
                };
                assert!(
                    r.stdout.starts_with("/dev/loop"),
                    "losetup printed {:?}",
                    r.stdout
                );
                return dev;
            }
            last = r.stderr;
            thread::sleep(Duration::from_millis(50 + 20 * attempt));
        }
        panic!("losetup --find failed 20 times: {last}");
    }

    /// A 1 MiB device, enough for any test with up to 255 locks on 4096.
    pub fn small(sector: u32) -> LoopDev {
        LoopDev::new(sector, 1 << 20)
    }

    /// The device node, e.g. `/dev/loop3`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device node as a `&str` (for argv building).
    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("utf-8 loop path")
    }

    /// Logical sector size in bytes.
    pub fn sector(&self) -> u32 {
        self.sector
    }

    /// Logical sector size as `usize`.
    pub fn bs(&self) -> usize {
        self.sector as usize
    }

    /// Device size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads `count` blocks starting at block `first` with `dd iflag=direct`.
    pub fn read_blocks(&self, first: u64, count: u64) -> Vec<u8> {
        let v = run_ok_bytes(
            Command::new("dd")
                .arg(format!("if={}", self.path.display()))
                .arg("iflag=direct")
                .arg(format!("bs={}", self.sector))
                .arg(format!("skip={first}"))
                .arg(format!("count={count}"))
                .arg("status=none"),
            None,
        );
        assert_eq!(
            v.len() as u64,
            count * u64::from(self.sector),
            "short dd read"
        );
        v
    }

    /// Reads block `k` (one sector).
    pub fn read_block(&self, k: u64) -> Vec<u8> {
        self.read_blocks(k, 1)
    }

    /// Writes `data` (a whole number of sectors) at block `first` with
    /// `dd oflag=direct conv=notrunc`.
    pub fn write_blocks(&self, first: u64, data: &[u8]) {
        let bs = self.bs();
        assert!(
            !data.is_empty() && data.len() % bs == 0,
            "write_blocks wants whole sectors, got {} bytes",
            data.len()
        );
        run_ok_bytes(
            Command::new("dd")
                .arg(format!("of={}", self.path.display()))
                .args([
                    "oflag=direct",
                    "conv=notrunc",
                    "iflag=fullblock",
                    "status=none",
                ])
                .arg(format!("bs={bs}"))
                .arg(format!("seek={first}"))
                .arg(format!("count={}", data.len() / bs)),
            Some(data),
        );
    }

    /// Writes one block; `data` shorter than a sector is zero-padded.
    pub fn write_block(&self, k: u64, data: &[u8]) {
        assert!(data.len() <= self.bs(), "block data longer than a sector");
        let mut b = data.to_vec();
        b.resize(self.bs(), 0);
        self.write_blocks(k, &b);
    }

    /// Zero-fills `count` blocks from `first`.
    pub fn zero(&self, first: u64, count: u64) {
        let n = usize::try_from(count).expect("block count");
        self.write_blocks(first, &vec![0u8; self.bs() * n]);
    }

    /// An `O_DIRECT` reader for fast polling (no process spawn per read).
    pub fn reader(&self) -> BlockReader {
        BlockReader::open(&self.path, self.bs())
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        for _ in 0..10 {
            let ok = Command::new("losetup")
                .arg("-d")
                .arg(&self.path)
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            thread::sleep(Duration::from_millis(200));
        }
        eprintln!("warning: could not detach {}", self.path.display());
    }
}

/// Reads single blocks with `O_DIRECT` through a 4096-aligned window of a
/// plain `Vec` (alignment found in safe code; no `unsafe`).
#[derive(Debug)]
pub struct BlockReader {
    file: File,
    bs: usize,
    buf: Vec<u8>,
    off: usize,
}

impl BlockReader {
    fn open(path: &Path, bs: usize) -> BlockReader {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .unwrap_or_else(|e| panic!("open {} O_DIRECT: {e}", path.display()));
        let buf = vec![0u8; bs + 4096];
        let off = (4096 - (buf.as_ptr() as usize % 4096)) % 4096;
        BlockReader { file, bs, buf, off }
    }

    /// Reads block `k`.
    pub fn read(&mut self, k: u64) -> Vec<u8> {
        let w = &mut self.buf[self.off..self.off + self.bs];
        self.file
            .read_exact_at(w, k * self.bs as u64)
            .expect("O_DIRECT read");
        w.to_vec()
    }

    /// Reads block `k`, returning the instants just before and after the read.
    pub fn sample(&mut self, k: u64) -> Sample {
        let t0 = Instant::now();
        let block = self.read(k);
        Sample {
            t0,
            t1: Instant::now(),
            block,
        }
    }
}

/// One poll of a block: the read happened somewhere in `[t0, t1]`.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Just before the read was issued.
    pub t0: Instant,
    /// Just after it completed.
    pub t1: Instant,
    /// The block contents.
    pub block: Vec<u8>,
}

/// Polls block `k` every `every` until `pred` holds or `timeout` passes.
/// On success returns `(prev, hit)`: the last sample that did not match and
/// the first that did, so the change happened in `(prev.t0, hit.t1]`.
pub fn poll_until(
    rd: &mut BlockReader,
    k: u64,
    every: Duration,
    timeout: Duration,
    mut pred: impl FnMut(&[u8]) -> bool,
) -> Option<(Sample, Sample)> {
    let end = Instant::now() + timeout;
    let mut prev = rd.sample(k);
    if pred(&prev.block) {
        return Some((prev.clone(), prev));
    }
    while Instant::now() < end {
        thread::sleep(every);
        let s = rd.sample(k);
        if pred(&s.block) {
            return Some((prev, s));
        }
        prev = s;
    }
    None
}

/// Background poller recording every sample of one block until stopped.
#[derive(Debug)]
pub struct Recorder {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Sample>>>,
}

impl Recorder {
    /// Starts polling block `k` of `dev` every `every`.
    pub fn start(dev: &LoopDev, k: u64, every: Duration) -> Recorder {
        let mut rd = dev.reader();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let handle = thread::spawn(move || {
            let mut v = Vec::new();
            while !s2.load(Ordering::Relaxed) {
                v.push(rd.sample(k));
                thread::sleep(every);
            }
            v.push(rd.sample(k));
            v
        });
        Recorder {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops and returns all samples, oldest first.
    pub fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().expect("recorder thread")
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------------------
// The original tools
// ---------------------------------------------------------------------------

/// `sfex_init [-n n] DEV`.
pub fn orig_init(dev: &LoopDev, n: u32) -> Run {
    require_root();
    run(Command::new(SFEX_INIT)
        .args(["-n", &n.to_string()])
        .arg(dev.path()))
}

/// `sfex_init -n n DEV`, which must succeed.
pub fn orig_init_ok(dev: &LoopDev, n: u32) {
    let r = orig_init(dev, n);
    assert_eq!(r.code, 0, "sfex_init -n {n} failed: {r:?}");
}

/// `sfex_stat -i idx DEV` with `uname -n` = `hostname` (private UTS
/// namespace). Returns (exit code, stdout, stderr).
pub fn orig_stat(dev: &LoopDev, idx: u32, hostname: &str) -> (i32, String, String) {
    orig_stat_args(dev, &["-i", &idx.to_string()], hostname)
}

/// `sfex_stat ARGS DEV` under `hostname`.
pub fn orig_stat_args(dev: &LoopDev, args: &[&str], hostname: &str) -> (i32, String, String) {
    require_root();
    let r = run(Command::new("unshare")
        .args([
            "-u",
            "sh",
            "-c",
            "hostname \"$0\" && exec \"$@\"",
            hostname,
            SFEX_STAT,
        ])
        .args(args)
        .arg(dev.path()));
    (r.code, r.stdout, r.stderr)
}

static DAEMON_SEQ: AtomicU32 = AtomicU32::new(0);

/// Timing and index options of `sfex_daemon` (and of our `sfex lock`).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// `-i`
    pub index: u32,
    /// `-c` collision timeout, seconds.
    pub c: u32,
    /// `-t` lock timeout, seconds.
    pub t: u32,
    /// `-m` monitor interval, seconds.
    pub m: u32,
}

impl Timing {
    /// Lock 1 with the given `-c -t -m`.
    pub const fn new(c: u32, t: u32, m: u32) -> Timing {
        Timing { index: 1, c, t, m }
    }
}

/// The original `sfex_daemon`, run in a private mount+UTS namespace where a
/// temp dir holding a plain file `sysrq-trigger` is bind-mounted over
/// `/proc` (sfex-format.md s. 8). Killed with SIGKILL on drop.
#[derive(Debug)]
pub struct OrigDaemon {
    /// The foreground process (`unshare` exec'd into the daemon) until it returns.
    fg: Option<Child>,
    fg_code: Option<i32>,
    fg_elapsed: Option<Duration>,
    spawned: Instant,
    /// The daemonised process, once found.
    pid: Option<Pid>,
    exit: Option<i32>,
    argv: Vec<String>,
    sysrq_dir: TempDir,
}

impl OrigDaemon {
    /// Spawns the daemon without waiting for it; see [`OrigDaemon::wait_started`].
    pub fn spawn(dev: &LoopDev, node: &str, tm: Timing) -> OrigDaemon {
        require_root();
        let sysrq_dir = tempfile::Builder::new()
            .prefix("sfex-sysrq.")
            .tempdir()
            .expect("tempdir");
        File::create(sysrq_dir.path().join("sysrq-trigger")).expect("create sysrq-trigger");
        // A unique -r (only used by the daemon for crm_resource on I/O errors)
        // makes the argv unique, so pgrep finds exactly this daemon.
        let rsc = format!(
            "hapairtest{}x{}",
            std::process::id(),
            DAEMON_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let argv: Vec<String> = vec![
            SFEX_DAEMON.into(),
            "-i".into(),
            tm.index.to_string(),
            "-c".into(),
            tm.c.to_string(),
            "-t".into(),
            tm.t.to_string(),
            "-m".into(),
            tm.m.to_string(),
            "-n".into(),
            node.into(),
            "-r".into(),
            rsc,
            dev.path_str().into(),
        ];
        let dir = sysrq_dir
            .path()
            .to_str()
            .expect("utf-8 tempdir")
            .to_string();
        // The daemon keeps stdout/stderr open after daemon(0, 1): give it files,
        // not pipes.
        let log = File::create(sysrq_dir.path().join("daemon.log")).expect("daemon log");
        let fg = Command::new("unshare")
            .args([
                "-m",
                "-u",
                "sh",
                "-c",
                "mount --bind \"$0\" /proc && exec \"$@\"",
                &dir,
            ])
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn unshare sfex_daemon");
        OrigDaemon {
            fg: Some(fg),
            fg_code: None,
            fg_elapsed: None,
            spawned: Instant::now(),
            pid: None,
            exit: None,
            argv,
            sysrq_dir,
        }
    }

    /// Starts the daemon and waits (up to `t + c + 10` s) until its
    /// foreground process returns: 0 = lock acquired and daemonised,
    /// 2 = held elsewhere / collision, 1 = error.
    pub fn start(dev: &LoopDev, node: &str, tm: Timing) -> OrigDaemon {
        let mut d = OrigDaemon::spawn(dev, node, tm);
        d.wait_started(Duration::from_secs(u64::from(tm.t + tm.c) + 10));
        d
    }

    /// Waits for the foreground process to return; returns its exit code.
    /// On 0 it also finds the daemonised pid. Panics on timeout.
    pub fn wait_started(&mut self, timeout: Duration) -> i32 {
        if let Some(c) = self.fg_code {
            return c;
        }
        let mut fg = self.fg.take().expect("foreground child");
        let Some(st) = wait_child_timeout(&mut fg, timeout) else {
            let _ = fg.kill();
            let _ = fg.wait();
            panic!(
                "sfex_daemon did not return within {timeout:?}: {:?}",
                self.argv
            );
        };
        let code = exit_code(st);
        self.fg_code = Some(code);
        self.fg_elapsed = Some(self.spawned.elapsed());
        if code == 0 {
            self.pid = Some(self.find_pid());
        }
        code
    }

    /// Like [`OrigDaemon::wait_started`] but returns `None` while it is still
    /// in the foreground.
    pub fn try_started(&mut self) -> Option<i32> {
        if self.fg_code.is_none() {
            let st = self
                .fg
                .as_mut()
                .expect("fg")
                .try_wait()
                .expect("try_wait")?;
            self.fg_code = Some(exit_code(st));
            self.fg_elapsed = Some(self.spawned.elapsed());
            self.fg = None;
            if self.fg_code == Some(0) {
                self.pid = Some(self.find_pid());
            }
        }
        self.fg_code
    }

    fn find_pid(&self) -> Pid {
        let pattern = format!(
            "^{}$",
            self.argv
                .iter()
                .map(|a| regex_escape(a))
                .collect::<Vec<_>>()
                .join(" ")
        );
        for _ in 0..100 {
            let r = run(Command::new("pgrep").args(["-f", &pattern]));
            let pids: Vec<i32> = r
                .stdout
                .split_whitespace()
                .map(|s| s.parse().expect("pgrep pid"))
                .collect();
            match pids.as_slice() {
                [p] => return Pid::from_raw(*p),
                [] => thread::sleep(Duration::from_millis(10)),
                _ => panic!("several daemons match {pattern}: {pids:?}"),
            }
        }
        panic!("daemonised sfex_daemon not found: {}", self.argv.join(" "));
    }

    /// Exit code of the foreground process, if it returned.
    pub fn code(&self) -> Option<i32> {
        self.fg_code
    }

    /// Time from spawn until the foreground process returned.
    pub fn elapsed(&self) -> Duration {
        self.fg_elapsed.expect("daemon foreground still running")
    }

    /// The daemonised pid (only after a 0 start).
    pub fn pid(&self) -> Option<Pid> {
        self.pid
    }

    /// What the daemon wrote to its (fake) `/proc/sysrq-trigger`.
    pub fn sysrq_file(&self) -> String {
        std::fs::read_to_string(self.sysrq_dir.path().join("sysrq-trigger")).expect("read sysrq")
    }

    /// The daemon's stdout/stderr (normally empty; it logs to syslog).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.sysrq_dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn signal(&self, sig: Signal) {
        if let Some(fg) = &self.fg {
            let _ = kill(pid_of(fg), sig);
        }
        if let (Some(p), None) = (self.pid, self.exit) {
            let _ = kill(p, sig);
        }
    }

    /// SIGTERM (release).
    pub fn term(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// SIGKILL (leaves the lock stale on disk); waits until it is gone.
    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        if let Some(mut fg) = self.fg.take() {
            let _ = fg.wait();
        }
        if self.pid.is_some() {
            let c = self.wait_exit(Duration::from_secs(10));
            assert!(c.is_some(), "sfex_daemon survived SIGKILL");
        }
    }

    /// Whether the daemonised process is still running (reaps it if not).
    pub fn alive(&mut self) -> bool {
        self.poll_exit();
        self.pid.is_some() && self.exit.is_none()
    }

    fn poll_exit(&mut self) {
        let (Some(p), None) = (self.pid, self.exit) else {
            return;
        };
        match waitpid(p, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(WaitStatus::Exited(_, c)) => self.exit = Some(c),
            Ok(WaitStatus::Signaled(_, s, _)) => self.exit = Some(128 + s as i32),
            Ok(_) => {}
            // Not our child (subreaper not effective): fall back to kill(0).
            Err(_) => {
                if kill(p, None).is_err() {
                    self.exit = Some(-1);
                }
            }
        }
    }

    /// Waits up to `timeout` for the daemonised process to exit; returns
    /// its exit code (128+N for signal N), or `None` if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        loop {
            self.poll_exit();
            if self.exit.is_some() || self.pid.is_none() {
                return self.exit;
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for OrigDaemon {
    fn drop(&mut self) {
        if let Some(mut fg) = self.fg.take() {
            let _ = fg.kill();
            let _ = fg.wait();
        }
        if let (Some(p), None) = (self.pid, self.exit) {
            let _ = kill(p, Signal::SIGKILL);
            let _ = self.wait_exit(Duration::from_secs(5));
        }
    }
}

fn pid_of(c: &Child) -> Pid {
    Pid::from_raw(i32::try_from(c.id()).expect("pid fits in pid_t"))
}

fn regex_escape(s: &str) -> String {
    let mut o = String::new();
    for ch in s.chars() {
        if "\\.+*?()|[]{}^$".contains(ch) {
            o.push('\\');
        }
        o.push(ch);
    }
    o
}

// ---------------------------------------------------------------------------
// Our binary
// ---------------------------------------------------------------------------

/// Path of our `sfex` binary.
pub fn ours() -> &'static str {
    env!("CARGO_BIN_EXE_sfex")
}

/// Runs `sfex ARGS` to completion (60 s deadline).
pub fn ours_run(args: &[&str]) -> Run {
    require_root();
    let r = run(Command::new(ours()).args(args));
    let uring = args.windows(2).any(|w| w == ["--engine", "uring"]);
    assert_no_fallback(uring, &r.stderr, &args);
    r
}

/// With `--engine uring`, our binary must really use io_uring: a fallback
/// to the sync engine (it warns "falling back") would make the uring half of
/// every engine loop a silent duplicate of the sync half.
#[track_caller]
pub fn assert_no_fallback(uring: bool, stderr: &str, what: &dyn std::fmt::Debug) {
    assert!(
        !(uring && stderr.contains("falling back")),
        "--engine uring fell back to sync for {what:?}: {stderr}"
    );
}

/// `sfex status --engine E --node NODE -i IDX DEV`.
pub fn ours_stat(dev: &LoopDev, engine: &str, idx: u32, node: &str) -> Run {
    ours_run(&[
        "status",
        "--engine",
        engine,
        "--node",
        node,
        "-i",
        &idx.to_string(),
        dev.path_str(),
    ])
}

/// Arguments of `sfex lock` beyond device, engine and node.
#[derive(Debug, Clone)]
pub struct LockArgs {
    /// `--engine`
    pub engine: String,
    /// `--node`
    pub node: String,
    /// `-i -c -t -m`
    pub tm: Timing,
    /// `--wait`
    pub wait: bool,
    /// `--on-loss` (always passed; `exit` unless set)
    pub on_loss: String,
    /// Extra raw arguments placed before the device.
    pub extra: Vec<String>,
}

impl LockArgs {
    /// Lock 1 with `-c -t -m` from `tm`, `--on-loss exit`.
    pub fn new(engine: &str, node: &str, tm: Timing) -> LockArgs {
        LockArgs {
            engine: engine.into(),
            node: node.into(),
            tm,
            wait: false,
            on_loss: "exit".into(),
            extra: Vec::new(),
        }
    }

    /// Adds `--wait`.
    pub fn wait(mut self) -> LockArgs {
        self.wait = true;
        self
    }

    /// Sets `--on-loss`.
    pub fn on_loss(mut self, v: &str) -> LockArgs {
        self.on_loss = v.into();
        self
    }
}

/// A running `sfex lock` (foreground holder). Killed with SIGKILL on drop.
#[derive(Debug)]
pub struct OurLock {
    child: Child,
    exit: Option<i32>,
    spawned: Instant,
    exited_after: Option<Duration>,
    acquired_after: Option<Duration>,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    dir: TempDir,
    /// The exact argv (for messages).
    pub argv: Vec<String>,
}

impl OurLock {
    /// Spawns `sfex lock` with `--sysrq-path` and `--pidfile` pointing into a
    /// private temp dir.
    pub fn spawn(dev: &LoopDev, a: &LockArgs) -> OurLock {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("sfex-ours.")
            .tempdir()
            .expect("tempdir");
        let sysrq = dir.path().join("sysrq-trigger");
        File::create(&sysrq).expect("sysrq file");
        let pidfile = dir.path().join("sfex.pid");
        let mut argv: Vec<String> = vec![
            "lock".into(),
            "--engine".into(),
            a.engine.clone(),
            "--node".into(),
            a.node.clone(),
            "-i".into(),
            a.tm.index.to_string(),
            "-c".into(),
            a.tm.c.to_string(),
            "-t".into(),
            a.tm.t.to_string(),
            "-m".into(),
            a.tm.m.to_string(),
            "--on-loss".into(),
            a.on_loss.clone(),
            "--sysrq-path".into(),
            sysrq.to_str().unwrap().into(),
            "--pidfile".into(),
            pidfile.to_str().unwrap().into(),
        ];
        if a.wait {
            argv.push("--wait".into());
        }
        argv.extend(a.extra.iter().cloned());
        argv.push(dev.path_str().into());
        let mut child = Command::new(ours())
            .args(&argv)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sfex lock");
        let spawned = Instant::now();
        let stderr = Arc::new(Mutex::new(String::new()));
        let buf = stderr.clone();
        let pipe = child.stderr.take().expect("stderr");
        let reader = thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut b = buf.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        });
        OurLock {
            child,
            exit: None,
            spawned,
            exited_after: None,
            acquired_after: None,
            stderr,
            reader: Some(reader),
            dir,
            argv,
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Content of its `--sysrq-path` file.
    pub fn sysrq_file(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sysrq-trigger")).unwrap_or_default()
    }

    /// Content of its `--pidfile`, if it exists.
    pub fn pidfile(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("sfex.pid")).ok()
    }

    /// Exit code if it has exited (non-blocking).
    pub fn try_exit(&mut self) -> Option<i32> {
        if self.exit.is_none() {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                self.exit = Some(exit_code(st));
                self.exited_after = Some(self.spawned.elapsed());
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
            }
        }
        self.exit
    }

    /// Waits up to `timeout` for exit; `None` if still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(c) = self.try_exit() {
                return Some(c);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Time from spawn to exit (after it exited).
    pub fn exit_elapsed(&self) -> Duration {
        self.exited_after.expect("sfex lock still running")
    }

    /// Time from spawn until "lock acquired" was seen on stderr.
    pub fn acquired_elapsed(&self) -> Duration {
        self.acquired_after.expect("not acquired")
    }

    /// Whether "lock acquired" has appeared on stderr.
    pub fn is_acquired(&mut self) -> bool {
        let err = self.stderr();
        assert_no_fallback(self.argv[2] == "uring", &err, &self.argv);
        if self.acquired_after.is_none() && err.contains("lock acquired") {
            self.acquired_after = Some(self.spawned.elapsed());
        }
        self.acquired_after.is_some()
    }

    /// Waits until it logs "lock acquired" (Ok(time since spawn)) or exits
    /// (Err(code)). Panics if neither happens within `timeout`.
    pub fn wait_acquired(&mut self, timeout: Duration) -> Result<Duration, i32> {
        let end = Instant::now() + timeout;
        loop {
            if self.is_acquired() {
                return Ok(self.acquired_elapsed());
            }
            if let Some(c) = self.try_exit() {
                // It may have logged and exited between the two checks.
                if self.is_acquired() {
                    return Ok(self.acquired_elapsed());
                }
                return Err(c);
            }
            assert!(
                Instant::now() < end,
                "sfex lock neither acquired nor exited within {timeout:?}: {:?}\nstderr:\n{}",
                self.argv,
                self.stderr()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Like [`OurLock::wait_acquired`] but panics unless acquired.
    pub fn expect_acquired(&mut self, timeout: Duration) -> Duration {
        match self.wait_acquired(timeout) {
            Ok(d) => d,
            Err(c) => panic!(
                "sfex lock exited {c} instead of acquiring: {:?}\nstderr:\n{}",
                self.argv,
                self.stderr()
            ),
        }
    }

    /// SIGTERM (release).
    pub fn kill_term(&self) {
        if self.exit.is_none() {
            let _ = kill(pid_of(&self.child), Signal::SIGTERM);
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let st = self.child.wait().expect("wait");
            self.exit = Some(exit_code(st));
            self.exited_after = Some(self.spawned.elapsed());
        }
    }

    /// SIGTERM, then wait up to `timeout`; returns the exit code. Panics if it
    /// does not exit.
    pub fn term_and_wait(&mut self, timeout: Duration) -> i32 {
        self.kill_term();
        match self.wait_timeout(timeout) {
            Some(c) => c,
            None => panic!(
                "sfex lock ignored SIGTERM for {timeout:?}\nstderr:\n{}",
                self.stderr()
            ),
        }
    }
}

impl Drop for OurLock {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Reference encoding (independent of the code under test)
// ---------------------------------------------------------------------------

/// A lock block as the original writes it: zero-filled, status byte, count
/// as `%d` in a 4-byte NUL-padded slot, name truncated to 255 bytes.
pub fn lock_block(bs: usize, status: u8, count: i64, name: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; bs];
    b[0] = status;
    let c = count.to_string();
    let n = c.len().min(3);
    b[1..1 + n].copy_from_slice(&c.as_bytes()[..n]);
    let n = name.len().min(255);
    b[5..5 + n].copy_from_slice(&name[..n]);
    b
}

/// A control block: fields given as raw strings, each written into its slot
/// (truncated to the slot width, no terminator forced).
pub fn ctrl_block(
    bs: usize,
    magic: &[u8],
    version: &str,
    revision: &str,
    blocksize: &str,
    numlocks: &str,
) -> Vec<u8> {
    let mut b = vec![0u8; bs];
    let mut put = |off: usize, len: usize, v: &[u8]| {
        let n = v.len().min(len);
        b[off..off + n].copy_from_slice(&v[..n]);
    };
    put(0, 4, magic);
    put(4, 4, version.as_bytes());
    put(8, 4, revision.as_bytes());
    put(12, 8, blocksize.as_bytes());
    put(20, 4, numlocks.as_bytes());
    b
}

/// C `atoi` on a NUL-terminated slot.
pub fn atoi(slot: &[u8]) -> i64 {
    let s: Vec<u8> = slot.iter().copied().take_while(|&c| c != 0).collect();
    let mut i = 0;
    while i < s.len() && (s[i] == b' ' || (b'\t'..=b'\r').contains(&s[i])) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
        neg = s[i] == b'-';
        i += 1;
    }
    let mut v: i64 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = v * 10 + i64::from(s[i] - b'0');
        i += 1;
    }
    if neg { -v } else { v }
}

/// Decoded view of a lock block, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockView {
    /// Status byte (`u`/`l`).
    pub status: u8,
    /// Count, atoi of bytes 1..5.
    pub count: i64,
    /// Name bytes up to the first NUL (max 256).
    pub name: Vec<u8>,
}

impl LockView {
    /// Decodes `b` (at least 261 bytes).
    pub fn of(b: &[u8]) -> LockView {
        LockView {
            status: b[0],
            count: atoi(&b[1..5]),
            name: b[5..261].iter().copied().take_while(|&c| c != 0).collect(),
        }
    }

    /// Name as a string (lossy).
    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

impl std::fmt::Display for LockView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{} {}",
            self.status as char,
            self.count,
            self.name_str()
        )
    }
}

/// Counter step of the protocol: 999 wraps to 0.
pub fn next_count(c: i64) -> i64 {
    if c >= 999 { c - 999 } else { c + 1 }
}

/// Panics with the first differing offset and a hex context if `a != b`.
#[track_caller]
pub fn assert_bytes_eq(a: &[u8], b: &[u8], what: &str) {
    if a == b {
        return;
    }
    let n = a.len().min(b.len());
    let i = (0..n).find(|&i| a[i] != b[i]).unwrap_or(n);
    let lo = i.saturating_sub(8);
    let hex = |v: &[u8]| {
        v[lo.min(v.len())..(i + 24).min(v.len())]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    panic!(
        "{what}: bytes differ (len {} vs {}), first difference at offset {i:#x}\n  left  @{lo:#x}: {}\n  right @{lo:#x}: {}",
        a.len(),
        b.len(),
        hex(a),
        hex(b)
    );
}

/// Reads a golden fixture from `tests/fixtures/`.
pub fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read fixture {}: {e}", p.display()))
}

/// Seconds as `f64` for messages.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Signed difference `a - b` in seconds.
pub fn diff_secs(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64()
    } else {
        -(b - a).as_secs_f64()
    }
}
