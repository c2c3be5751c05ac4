//! Tests of the OCF agent `ocf:hapair:sfex` (`sfex/ocf/sfex`) driving our
//! `sfex` binary, on loop devices.
//!
//! - `ocf-tester` passes with `on_loss=exit` and with `on_loss=reboot` and a
//!   file as `sysrq_path`.
//! - Mutual exclusion with the original `ocf:heartbeat:sfex` in both
//!   directions; the original runs with its `sfex_daemon` in the sandbox of
//!   sfex-format.md section 8 (a private `/proc` holding a `sysrq-trigger`
//!   file), each node with its own hostname (`unshare -u`).
//! - Failure handling: a SIGKILLed holder, a lost lease, an abandoned start,
//!   idempotent start and stop, bad parameters.
//!
//! They need root, loop devices, util-linux (`losetup`, `unshare`) and, for
//! some, Debian's `resource-agents` (`ocf-tester`, the original agent and
//! daemon). A test that cannot run here fails and says why: nothing is skipped.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const SFEX: &str = env!("CARGO_BIN_EXE_sfex");
const OCF_ROOT: &str = "/usr/lib/ocf";
const OCF_TESTER: &str = "/usr/sbin/ocf-tester";
const ORIGINAL_AGENT: &str = "/usr/lib/ocf/resource.d/heartbeat/sfex";
const ORIGINAL_DAEMON: &str = "/usr/libexec/heartbeat/sfex_daemon";

const OCF_SUCCESS: i32 = 0;
const OCF_ERR_GENERIC: i32 = 1;
const OCF_ERR_ARGS: i32 = 2;
const OCF_ERR_UNIMPLEMENTED: i32 = 3;
const OCF_ERR_INSTALLED: i32 = 5;
const OCF_ERR_CONFIGURED: i32 = 6;
const OCF_NOT_RUNNING: i32 = 7;

/// Upper bound for one agent action in these tests; the agent's own start
/// has no limit (the cluster's op timeout plays that part).
const ACTION_LIMIT: Duration = Duration::from_secs(90);

fn our_agent() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("ocf")
        .join("sfex")
}

// ---------------------------------------------------------------------------
// Prerequisites

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|uids| uids.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn in_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|dir| dir.join(tool).is_file())
}

/// Why this machine cannot run a test, if it cannot.
fn missing(files: &[&str]) -> Option<String> {
    if !is_root() {
        return Some("needs root (loop devices, unshare)".into());
    }
    for tool in ["losetup", "unshare", "setsid", "hostname", "dd", "bash"] {
        if !in_path(tool) {
            return Some(format!("{tool} not found"));
        }
    }
    files
        .iter()
        .find(|f| !Path::new(f).exists())
        .map(|f| format!("{f} not installed (Debian package resource-agents)"))
}

macro_rules! require {
    ($($file:expr),* $(,)?) => {
        if let Some(why) = missing(&[OCF_ROOT $(, $file)*]) {
            panic!("this machine cannot run the test: {why} (`.ci/test` installs what it needs)");
        }
    };
}

// ---------------------------------------------------------------------------
// Loop device

/// A loop device over a 1 MiB sparse temp file, detached on drop.
struct LoopDev {
    dev: String,
    _image: tempfile::NamedTempFile,
}

impl LoopDev {
    fn new(sector_size: u32) -> LoopDev {
        let image = tempfile::Builder::new()
            .prefix("ocf-agent-")
            .suffix(".img")
            .tempfile()
            .expect("create image file");
        image.as_file().set_len(1 << 20).expect("size image file");
        let mut last_err = String::new();
        // Parallel tests race for free devices; losetup may lose and fail.
        for _ in 0..10 {
            let out = Command::new("losetup")
                .args(["--find", "--show", "--direct-io=off", "--sector-size"])
                .arg(sector_size.to_string())
                .arg(image.path())
                .output()
                .expect("run losetup");
            if out.status.success() {
                let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
                return LoopDev { dev, _image: image };
            }
            last_err = String::from_utf8_lossy(&out.stderr).into_owned();
            sleep(Duration::from_millis(200));
        }
        panic!("losetup failed: {last_err}");
    }

    /// A loop device with 512-byte sectors, formatted by our `sfex init`.
    fn formatted() -> LoopDev {
        let dev = LoopDev::new(512);
        let out = Command::new(SFEX)
            .args(["init", &dev.dev])
            .output()
            .expect("run sfex init");
        assert!(
            out.status.success(),
            "sfex init {} failed: {}",
            dev.dev,
            String::from_utf8_lossy(&out.stderr)
        );
        dev
    }

    fn path(&self) -> &str {
        &self.dev
    }

    /// Lock block 1 (512-byte sectors), read with O_DIRECT.
    fn lock_block(&self) -> Vec<u8> {
        let out = Command::new("dd")
            .arg(format!("if={}", self.dev))
            .args(["bs=512", "skip=1", "count=1", "iflag=direct", "status=none"])
            .output()
            .expect("run dd");
        assert!(out.status.success(), "dd read failed");
        assert_eq!(out.stdout.len(), 512);
        out.stdout
    }

    /// Overwrite lock block 1 with O_DIRECT.
    fn write_lock_block(&self, block: &[u8]) {
        assert_eq!(block.len(), 512);
        let mut child = Command::new("dd")
            .arg(format!("of={}", self.dev))
            .args([
                "bs=512",
                "seek=1",
                "count=1",
                "oflag=direct",
                "conv=notrunc",
                "status=none",
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run dd");
        child
            .stdin
            .take()
            .expect("dd stdin")
            .write_all(block)
            .expect("feed dd");
        assert!(child.wait().expect("wait dd").success(), "dd write failed");
    }

    /// `sfex status --node NODE`: 0 when NODE holds lock 1.
    fn status_for(&self, node: &str) -> i32 {
        Command::new(SFEX)
            .args(["status", "--node", node, &self.dev])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run sfex status")
            .code()
            .unwrap_or(-1)
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// A lock block as the original writes it: status, count, node name.
fn lock_block(status: u8, count: u32, node: &str) -> Vec<u8> {
    let mut block = vec![0u8; 512];
    block[0] = status;
    let count = count.to_string();
    block[1..1 + count.len()].copy_from_slice(count.as_bytes());
    block[5..5 + node.len()].copy_from_slice(node.as_bytes());
    block
}

// ---------------------------------------------------------------------------
// Running agents

/// One resource instance of an agent, as Pacemaker would run it.
#[derive(Clone)]
struct Rsc {
    agent: PathBuf,
    instance: String,
    params: Vec<(String, String)>,
    env: Vec<(String, String)>,
    /// Run the action under `unshare -u` with this hostname (the lock's node
    /// name is `uname -n`, the agents take no node parameter).
    node: Option<String>,
}

struct Outcome {
    action: String,
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Outcome {
    fn exit_reason(&self) -> Option<&str> {
        self.stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("ocf-exit-reason:"))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> rc {} after {:.1?}\n--- stdout\n{}--- stderr\n{}---",
            self.action, self.code, self.took, self.stdout, self.stderr
        )
    }
}

impl Rsc {
    /// Our agent with our binary; the state files go to `rsctmp`.
    fn ours(instance: &str, rsctmp: &Path, dev: &str) -> Rsc {
        Rsc {
            agent: our_agent(),
            instance: instance.into(),
            params: vec![
                ("device".into(), dev.into()),
                ("binary".into(), SFEX.into()),
            ],
            env: vec![("HA_RSCTMP".into(), rsctmp.display().to_string())],
            node: None,
        }
    }

    /// The original agent, its daemon in the sandbox of `shim`.
    fn original(instance: &str, shim: &OriginalShim, dev: &str) -> Rsc {
        Rsc {
            agent: ORIGINAL_AGENT.into(),
            instance: instance.into(),
            params: vec![("device".into(), dev.into())],
            env: vec![
                ("HA_BIN".into(), shim.ha_bin.display().to_string()),
                ("HA_RSCTMP".into(), shim.dir.path().display().to_string()),
            ],
            node: None,
        }
    }

    fn param(mut self, name: &str, value: &str) -> Rsc {
        self.params.retain(|(n, _)| n != name);
        self.params.push((name.into(), value.into()));
        self
    }

    fn on(mut self, node: &str) -> Rsc {
        self.node = Some(node.into());
        self
    }

    fn pidfile(&self) -> PathBuf {
        let rsctmp = self
            .env
            .iter()
            .find(|(k, _)| k == "HA_RSCTMP")
            .map(|(_, v)| v.as_str())
            .expect("HA_RSCTMP");
        Path::new(rsctmp).join(format!("sfex-{}.pid", self.instance))
    }

    fn command(&self, action: &str, extra_env: &[(&str, &str)]) -> Command {
        let mut cmd = match &self.node {
            Some(node) => {
                let mut c = Command::new("unshare");
                c.args([
                    "-u",
                    "sh",
                    "-c",
                    r#"hostname "$1" && shift && exec "$@""#,
                    "sh",
                ])
                .arg(node)
                .arg(&self.agent);
                c
            }
            None => Command::new(&self.agent),
        };
        cmd.arg(action);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("OCF_") || k.starts_with("HA_") || k.starts_with("PCMK_") {
                cmd.env_remove(&key);
            }
        }
        let timeout_ms = if action == "start" { "120000" } else { "20000" };
        let interval_ms = if action == "monitor" { "10000" } else { "0" };
        cmd.env("OCF_ROOT", OCF_ROOT)
            .env("OCF_RA_VERSION_MAJOR", "1")
            .env("OCF_RA_VERSION_MINOR", "1")
            .env("OCF_RESOURCE_INSTANCE", &self.instance)
            .env("OCF_RESOURCE_TYPE", "sfex")
            .env("OCF_RESKEY_CRM_meta_timeout", timeout_ms)
            .env("OCF_RESKEY_CRM_meta_interval", interval_ms);
        for (name, value) in &self.params {
            cmd.env(format!("OCF_RESKEY_{name}"), value);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    fn try_run(&self, action: &str, extra_env: &[(&str, &str)]) -> Result<Outcome, String> {
        // Files, not pipes: sfex_daemon keeps the agent's stdout and stderr
        // open after it daemonises, so a pipe would never reach EOF.
        let mut out = tempfile::tempfile().map_err(|e| e.to_string())?;
        let mut err = tempfile::tempfile().map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut child = self
            .command(action, extra_env)
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(|e| e.to_string())?)
            .stderr(err.try_clone().map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.agent.display()))?;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if started.elapsed() > ACTION_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{action} of {} did not finish in {ACTION_LIMIT:?}",
                    self.instance
                ));
            }
            sleep(Duration::from_millis(20));
        };
        let took = started.elapsed();
        let read = |f: &mut File| {
            let mut s = String::new();
            f.seek(SeekFrom::Start(0)).ok();
            f.read_to_string(&mut s).ok();
            s
        };
        Ok(Outcome {
            action: format!("{} {action}", self.instance),
            code: status.code().unwrap_or(-1),
            stdout: read(&mut out),
            stderr: read(&mut err),
            took,
        })
    }

    fn run(&self, action: &str) -> Outcome {
        self.try_run(action, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn run_env(&self, action: &str, extra_env: &[(&str, &str)]) -> Outcome {
        self.try_run(action, extra_env)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Run `action` and insist on `code`.
    fn expect(&self, action: &str, code: i32) -> Outcome {
        let outcome = self.run(action);
        assert_eq!(outcome.code, code, "unexpected exit code:\n{outcome}");
        outcome
    }
}

/// Stops a resource when the test ends, also when it fails, so that no lock
/// holder outlives its loop device.
struct StopOnDrop(Rsc);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.try_run("stop", &[]);
    }
}

/// The sandbox for the original sfex_daemon (sfex-format.md section 8): it
/// opens `/proc/sysrq-trigger` at start, which these machines lack. The
/// original agent runs `$HA_BIN/sfex_daemon`; ours is a wrapper that runs the
/// real daemon in a private mount namespace with a directory holding a
/// plain `sysrq-trigger` file bind-mounted over `/proc`, and with argv[0]
/// kept as the wrapper's path so that the agent's `pgrep -f` finds it.
struct OriginalShim {
    dir: TempDir,
    ha_bin: PathBuf,
    sysrq: PathBuf,
}

impl OriginalShim {
    fn new() -> OriginalShim {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake_proc = dir.path().join("proc");
        let ha_bin = dir.path().join("bin");
        fs::create_dir(&fake_proc).expect("mkdir proc");
        fs::create_dir(&ha_bin).expect("mkdir bin");
        let sysrq = fake_proc.join("sysrq-trigger");
        File::create(&sysrq).expect("create sysrq-trigger");
        let wrapper = ha_bin.join("sfex_daemon");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/bash\n\
                 exec unshare -m bash -c 'fake=$1; shift; mount --bind \"$fake\" /proc && exec -a \"$0\" {ORIGINAL_DAEMON} \"$@\"' \"$0\" '{}' \"$@\"\n",
                fake_proc.display()
            ),
        )
        .expect("write wrapper");
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
        OriginalShim { dir, ha_bin, sysrq }
    }
}

// ---------------------------------------------------------------------------
// Processes

/// Whether `pid` has exited (gone, or a zombie nobody reaped yet).
fn exited(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
            state.starts_with('Z') || state.starts_with('X')
        }
    }
}

/// Live `sfex lock` processes that use `pidfile`.
fn lock_processes(pidfile: &Path) -> Vec<u32> {
    let want = pidfile.as_os_str();
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&OsStr> = cmdline.split(|b| *b == 0).map(OsStr::from_bytes).collect();
        let is_lock = args.get(1).is_some_and(|a| *a == "lock");
        let has_pidfile = args.windows(2).any(|w| w[0] == "--pidfile" && w[1] == want);
        if is_lock && has_pidfile && !exited(pid) {
            pids.push(pid);
        }
    }
    pids
}

fn read_pid(pidfile: &Path) -> u32 {
    fs::read_to_string(pidfile)
        .unwrap_or_else(|e| panic!("read {}: {e}", pidfile.display()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("pid in {}: {e}", pidfile.display()))
}

fn kill(signal: &str, pid: u32) {
    let ok = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -s {signal} {pid} failed");
}

fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        sleep(Duration::from_millis(100));
    }
}

fn rsctmp() -> TempDir {
    tempfile::Builder::new()
        .prefix("ocf-rsctmp-")
        .tempdir()
        .expect("tempdir")
}

// ---------------------------------------------------------------------------
// 1. ocf-tester

/// Run ocf-tester on a copy of our agent in a world-readable directory
/// (ocf-tester runs meta-data as `nobody`, and the checkout may sit in a
/// directory `nobody` cannot enter).
fn ocf_tester(instance: &str, dev: &LoopDev, rsctmp: &Path, extra: &[String]) -> Outcome {
    let mode = fs::metadata(our_agent())
        .expect("agent")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o755,
        "sfex/ocf/sfex must have mode 0755, has {mode:o}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let agent = dir.path().join("sfex");
    fs::copy(our_agent(), &agent).expect("copy agent");
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o755)).expect("chmod");

    let mut cmd = Command::new(OCF_TESTER);
    cmd.args(["-n", instance])
        .arg("-o")
        .arg(format!("device={}", dev.path()))
        .arg("-o")
        .arg(format!("binary={SFEX}"));
    for opt in extra {
        cmd.arg("-o").arg(opt);
    }
    cmd.arg(&agent)
        .env("OCF_ROOT", OCF_ROOT)
        .env("HA_RSCTMP", rsctmp)
        .stdin(Stdio::null());
    let started = Instant::now();
    let out = cmd.output().expect("run ocf-tester");
    Outcome {
        action: format!("ocf-tester {instance}"),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

fn assert_ocf_tester_passed(outcome: &Outcome) {
    assert_eq!(outcome.code, 0, "ocf-tester failed:\n{outcome}");
    assert!(
        outcome.stdout.contains("passed all tests"),
        "ocf-tester did not pass:\n{outcome}"
    );
    // Every failed check prints "* rc=N: ..."; the optional-action notes
    // ("* Your agent does not support ...") are fine.
    assert!(
        !outcome.stdout.lines().any(|l| l.starts_with("* rc=")),
        "ocf-tester reported failures:\n{outcome}"
    );
}

#[test]
fn ocf_tester_passes_with_on_loss_exit() {
    require!(OCF_TESTER);
    let dev = LoopDev::formatted();
    let tmp = rsctmp();
    let outcome = ocf_tester(
        "test_sfex_exit",
        &dev,
        tmp.path(),
        &[
            "on_loss=exit".into(),
            "lock_timeout=6".into(),
            "monitor_interval=2".into(),
        ],
    );
    eprintln!("{outcome}");
    let leftovers = lock_processes(&tmp.path().join("sfex-test_sfex_exit.pid"));
    assert_ocf_tester_passed(&outcome);
    assert!(
        leftovers.is_empty(),
        "sfex lock left running: {leftovers:?}"
    );
    assert_eq!(dev.lock_block()[0], b'u', "the lock was not released");
}

#[test]
fn ocf_tester_passes_with_on_loss_reboot_and_a_sysrq_file() {
    require!(OCF_TESTER);
    let dev = LoopDev::formatted();
    let tmp = rsctmp();
    let sysrq = tmp.path().join("sysrq-trigger");
    File::create(&sysrq).expect("create sysrq file");
    let outcome = ocf_tester(
        "test_sfex_reboot",
        &dev,
        tmp.path(),
        &[
            "on_loss=reboot".into(),
            format!("sysrq_path={}", sysrq.display()),
            "lock_timeout=6".into(),
            "monitor_interval=2".into(),
        ],
    );
    eprintln!("{outcome}");
    assert_ocf_tester_passed(&outcome);
    assert_eq!(
        fs::read(&sysrq).expect("read sysrq file"),
        b"",
        "sysrq was triggered"
    );
    assert_eq!(dev.lock_block()[0], b'u', "the lock was not released");
}

// ---------------------------------------------------------------------------
// 2. Mutual exclusion with ocf:heartbeat:sfex

#[test]
fn original_agent_cannot_start_while_ours_holds_the_lock() {
    require!(ORIGINAL_AGENT, ORIGINAL_DAEMON);
    let dev = LoopDev::formatted();
    let tmp = rsctmp();
    let shim = OriginalShim::new();

    let ours = Rsc::ours("excl_ours_a", tmp.path(), dev.path())
        .param("on_loss", "exit")
        .param("lock_timeout", "4")
        .param("monitor_interval", "1")
        .on("node-a");
    let _stop_ours = StopOnDrop(ours.clone());
    let theirs = Rsc::original("excl_theirs_b", &shim, dev.path())
        .param("lock_timeout", "4")
        .param("monitor_interval", "1")
        .on("node-b");
    let _stop_theirs = StopOnDrop(theirs.clone());

    ours.expect("start", OCF_SUCCESS);
    assert_eq!(dev.status_for("node-a"), 0, "node-a does not hold the lock");

    // sfex_daemon waits lock_timeout, sees our count move, exits 2; the
    // original agent turns that into OCF_ERR_GENERIC.
    let failed = theirs.run("start");
    eprintln!("{failed}");
    assert_eq!(
        failed.code, OCF_ERR_GENERIC,
        "original start should fail:\n{failed}"
    );
    assert!(
        failed.took >= Duration::from_secs(4),
        "it did not wait lock_timeout:\n{failed}"
    );
    theirs.expect("monitor", OCF_NOT_RUNNING);

    ours.expect("monitor", OCF_SUCCESS);
    assert_eq!(dev.status_for("node-a"), 0, "node-a lost the lock");
    assert_eq!(
        fs::read(&shim.sysrq).expect("sysrq"),
        b"",
        "the original fenced"
    );

    ours.expect("stop", OCF_SUCCESS);
    let block = dev.lock_block();
    assert_eq!(block[0], b'u', "stop did not release the lock");
    assert_eq!(
        &block[5..12],
        b"node-a\0",
        "release must keep the holder's name"
    );
}

#[test]
fn our_agent_cannot_start_while_the_original_holds_the_lock() {
    require!(ORIGINAL_AGENT, ORIGINAL_DAEMON);
    let dev = LoopDev::formatted();
    let tmp = rsctmp();
    let shim = OriginalShim::new();

    let theirs = Rsc::original("excl2_theirs_b", &shim, dev.path())
        .param("lock_timeout", "4")
        .param("monitor_interval", "1")
        .on("node-b");
    let _stop_theirs = StopOnDrop(theirs.clone());
    let ours = Rsc::ours("excl2_ours_a", tmp.path(), dev.path())
        .param("on_loss", "exit")
        .param("lock_timeout", "4")
        .param("monitor_interval", "1")
        .on("node-a");
    let _stop_ours = StopOnDrop(ours.clone());

    theirs.expect("start", OCF_SUCCESS);
    theirs.expect("monitor", OCF_SUCCESS);
    assert_eq!(dev.status_for("node-b"), 0, "node-b does not hold the lock");

    let failed = ours.run("start");
    eprintln!("{failed}");
    assert_eq!(
        failed.code, OCF_ERR_GENERIC,
        "our start should fail:\n{failed}"
    );
    assert!(
        failed.took >= Duration::from_secs(4),
        "it did not wait lock_timeout:\n{failed}"
    );
    let reason = failed
        .exit_reason()
        .unwrap_or_else(|| panic!("no exit reason:\n{failed}"));
    assert!(
        reason.contains("held by another node"),
        "unclear exit reason: {reason}"
    );
    assert!(
        lock_processes(&ours.pidfile()).is_empty(),
        "sfex lock still running"
    );
    ours.expect("monitor", OCF_NOT_RUNNING);
    ours.expect("stop", OCF_SUCCESS);
    assert_eq!(dev.status_for("node-b"), 0, "node-b lost the lock");

    // Once the original releases, ours takes the lock without waiting
    // lock_timeout: the release bytes are understood.
    theirs.expect("stop", OCF_SUCCESS);
    assert_eq!(dev.lock_block()[0], b'u', "the original did not release");
    let started = ours.expect("start", OCF_SUCCESS);
    assert!(
        started.took < Duration::from_secs(4),
        "start waited for a released lock:\n{started}"
    );
    assert_eq!(dev.status_for("node-a"), 0, "node-a does not hold the lock");
    ours.expect("stop", OCF_SUCCESS);
    assert_eq!(
        fs::read(&shim.sysrq).expect("sysrq"),
        b"",
        "the original fenced"
    );
}

// ---------------------------------------------------------------------------
// 3. Failures, idempotency, parameters

#[test]
fn monitor_reports_a_killed_holder_and_stop_start_are_idempotent() {
    require!();
    let dev = LoopDev::formatted();
    let tmp = rsctmp();
    let rsc = Rsc::ours("killed", tmp.path(), dev.path())
        .param("on_loss", "exit")
        .param("lock_timeout", "4")
        .param("monitor_interval", "1");
    let _stop = StopOnDrop(rsc.clone());

    // Stopping and monitoring a resource that never ran.
    rsc.expect("monitor", OCF_NOT_RUNNING);
    let probe = rsc.run_env("monitor", &[("OCF_RESKEY_CRM_meta_interval", "0")]);
    assert_eq!(probe.code, OCF_NOT_RUNNING, "probe:\n{probe}");
    rsc.expect("stop", OCF_SUCCESS);

    rsc.expect("start", OCF_SUCCESS);
    let again = rsc.expect("start", OCF_SUCCESS);
    assert!(
        again.took < Duration::from_secs(1),
        "second start did work:\n{again}"
    );
    rsc.expect("monitor", OCF_SUCCESS);
    let probe = rsc.run_env("monitor", &[("OCF_RESKEY_CRM_meta_interval", "0")]);
    assert_eq!(probe.code, OCF_SUCCESS, "probe:\n{probe}");

    let pid = read_pid(&rsc.pidfile());
    assert_eq!(lock_processes(&rsc.pidfile()), vec![pid]);
    kill("KILL", pid);
    wait_until(Duration::from_secs(5), "the holder to die", || exited(pid));

    // The pidfile stays behind: the lock was held and never released.
    let dead = rsc.expect("monitor", OCF_ERR_GENERIC);
    let reason = dead
        .exit_reason()
        .unwrap_or_else(|| panic!("no exit reason:\n{dead}"));
    assert!(reason.contains("died"), "unclear exit reason: {reason}");
    let probe = rsc.run_env("monitor", &[("OCF_RESKEY_CRM_meta_interval", "0")]);
    assert_eq!(
        probe.code, OCF_ERR_GENERIC,
        "a probe must not call this stopped:\n{probe}"
    );
    assert_eq!(dev.lock_block()[0], b'l', "SIGKILL leaves the lock on disk");

    rsc.expect("stop", OCF_SUCCESS);
    assert!(!rsc.pidfile().exists(), "stop left the pidfile");
    rsc.expect("monitor", OCF_NOT_RUNNING);
    rsc.expect("stop", OCF_SUCCESS);
    rsc.expect("monitor", OCF_NOT_RUNNING);

    // Our own stale lock is taken back without waiting lock_timeout.
    let restarted = rsc.expect("start", OCF_SUCCESS);
    assert!(
        restarted.took < Duration::from_secs(4),
        "restart waited:\n{restarted}"
    );
    rsc.expect("start", OCF_SUCCESS);
    rsc.expect("monitor", OCF_SUCCESS);
    rsc.expect("stop", OCF_SUCCESS);
    rsc.expect("monitor", OCF_NOT_RUNNING);
    assert_eq!(dev.lock_block()[0], b'u', "stop did not release the lock");
    assert!(lock_processes(&rsc.pidfile()).is_empty());
}

#[test]
fn on_loss_reboot_without_a_writable_sysrq_path_fails_start() {
    require!();
    let dev = LoopDev::formatted();
    let tmp = rsctmp();
    let missing = tmp.path().join("no-such-dir").join("sysrq-trigger");
    let rsc = Rsc::ours("nosysrq", tmp.path(), dev.path())
        .param("on_loss", "reboot")
        .param("sysrq_path", &missing.display().to_string());
    let _stop = StopOnDrop(rsc.clone());

    let failed = rsc.expect("start", OCF_ERR_INSTALLED);
    let reason = failed
        .exit_reason()
        .unwrap_or_else(|| panic!("no exit reason:\n{failed}"));
    assert!(
        reason.contains("sysrq") && reason.contains("on_loss"),
        "unclear exit reason: {reason}"
    );
    rsc.expect("validate-all", OCF_ERR_INSTALLED);
    rsc.expect("monitor", OCF_NOT_RUNNING);
    assert!(lock_processes(&rsc.pidfile()).is_empty());
    assert_eq!(dev.lock_block()[0], b'u', "the lock was touched");
}

#[test]
fn a_lost_lease_fences_and_monitor_reports_it() {
    require!();
    let dev = LoopDev::formatted();
    let tmp = rsctmp();
    let sysrq = tmp.path().join("sysrq-trigger");
    File::create(&sysrq).expect("create sysrq file");
    let rsc = Rsc::ours("lost", tmp.path(), dev.path())
        .param("on_loss", "reboot")
        .param("sysrq_path", &sysrq.display().to_string())
        .param("lock_timeout", "3")
        .param("monitor_interval", "1")
        .on("node-a");
    let _stop = StopOnDrop(rsc.clone());

    rsc.expect("start", OCF_SUCCESS);
    let pid = read_pid(&rsc.pidfile());

    // Another node takes the lock over, as after a wrong takeover.
    dev.write_lock_block(&lock_block(b'l', 500, "intruder"));
    wait_until(Duration::from_secs(10), "the holder to fence", || {
        fs::read(&sysrq).is_ok_and(|b| !b.is_empty())
    });
    assert_eq!(fs::read(&sysrq).expect("sysrq"), b"b\n");
    wait_until(Duration::from_secs(5), "the holder to exit", || exited(pid));

    let lost = rsc.expect("monitor", OCF_ERR_GENERIC);
    assert!(lost.exit_reason().is_some(), "no exit reason:\n{lost}");
    rsc.expect("stop", OCF_SUCCESS);
    rsc.expect("monitor", OCF_NOT_RUNNING);
    assert_eq!(
        dev.status_for("intruder"),
        0,
        "the holder must not touch a lock it lost"
    );
}

#[test]
fn stop_ends_a_holder_left_over_from_an_abandoned_start() {
    require!();
    let dev = LoopDev::formatted();
    let tmp_b = rsctmp();
    let tmp_a = rsctmp();
    let holder = Rsc::ours("leftover_holder", tmp_b.path(), dev.path())
        .param("on_loss", "exit")
        .param("lock_timeout", "30")
        .param("monitor_interval", "1")
        .on("node-b");
    let _stop_holder = StopOnDrop(holder.clone());
    let waiter = Rsc::ours("leftover_waiter", tmp_a.path(), dev.path())
        .param("on_loss", "exit")
        .param("lock_timeout", "30")
        .param("monitor_interval", "1")
        .on("node-a");
    let _stop_waiter = StopOnDrop(waiter.clone());

    holder.expect("start", OCF_SUCCESS);

    // A start that the cluster gives up on (op timeout): the agent is
    // killed while `sfex lock` waits lock_timeout, in its own session.
    let mut agent = waiter
        .command("start", &[])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn start");
    wait_until(
        Duration::from_secs(10),
        "sfex lock to start waiting",
        || !lock_processes(&waiter.pidfile()).is_empty(),
    );
    sleep(Duration::from_secs(1));
    agent.kill().expect("kill agent");
    agent.wait().expect("reap agent");
    let left = lock_processes(&waiter.pidfile());
    assert_eq!(
        left.len(),
        1,
        "expected one sfex lock left over, found {left:?}"
    );

    let monitor = waiter.expect("monitor", OCF_ERR_GENERIC);
    assert!(
        monitor.exit_reason().is_some(),
        "no exit reason:\n{monitor}"
    );
    let stop = waiter.expect("stop", OCF_SUCCESS);
    assert!(
        lock_processes(&waiter.pidfile()).is_empty(),
        "stop left it running:\n{stop}"
    );
    // SIGTERM must end `sfex lock` while it waits, not only after the wait.
    assert!(
        stop.took < Duration::from_secs(5),
        "stop needed SIGKILL:\n{stop}"
    );
    waiter.expect("monitor", OCF_NOT_RUNNING);

    assert_eq!(dev.status_for("node-b"), 0, "node-b lost the lock");
    holder.expect("stop", OCF_SUCCESS);
}

#[test]
fn validate_all_and_other_actions() {
    require!();
    let dev = LoopDev::new(512);
    let tmp = rsctmp();
    let base = Rsc::ours("validate", tmp.path(), dev.path()).param("on_loss", "exit");

    base.expect("validate-all", OCF_SUCCESS);
    let cases: &[(&str, &str, i32)] = &[
        ("device", "", OCF_ERR_CONFIGURED),
        ("index", "0", OCF_ERR_CONFIGURED),
        ("index", "1000", OCF_ERR_CONFIGURED),
        ("index", "one", OCF_ERR_CONFIGURED),
        ("collision_timeout", "0", OCF_ERR_CONFIGURED),
        ("monitor_interval", "-1", OCF_ERR_CONFIGURED),
        ("lock_timeout", "10", OCF_ERR_CONFIGURED), // not > monitor_interval
        ("lock_timeout", "99999999999", OCF_ERR_CONFIGURED),
        ("on_loss", "halt", OCF_ERR_CONFIGURED),
        ("device", "/dev/no-such-device", OCF_ERR_ARGS),
        ("device", "/dev/null", OCF_ERR_ARGS), // not a block device
        ("binary", "/no/such/sfex", OCF_ERR_INSTALLED),
    ];
    for (name, value, code) in cases {
        let outcome = base.clone().param(name, value).run("validate-all");
        assert_eq!(outcome.code, *code, "{name}={value:?}:\n{outcome}");
        assert!(
            outcome.exit_reason().is_some(),
            "{name}={value:?}: no exit reason:\n{outcome}"
        );
        // A bad configuration never starts anything.
        if *code != OCF_SUCCESS {
            let start = base.clone().param(name, value).run("start");
            assert_eq!(start.code, *code, "start with {name}={value:?}:\n{start}");
        }
    }

    let clone = base.run_env("validate-all", &[("OCF_RESKEY_CRM_meta_clone", "0")]);
    assert_eq!(clone.code, OCF_ERR_CONFIGURED, "clone:\n{clone}");
    let clone_stop = base.run_env("stop", &[("OCF_RESKEY_CRM_meta_clone", "0")]);
    assert_eq!(
        clone_stop.code, OCF_SUCCESS,
        "stop must always clean up:\n{clone_stop}"
    );

    let meta = base.expect("meta-data", OCF_SUCCESS);
    for needle in [
        r#"<parameter name="device" unique="0" required="1">"#,
        r#"<content type="integer" default="100" />"#,
        r#"<content type="string" default="reboot" />"#,
        r#"<content type="string" default="/proc/sysrq-trigger" />"#,
        r#"<content type="string" default="/usr/sbin/sfex" />"#,
        r#"<action name="start" timeout="120s" />"#,
        r#"<action name="stop" timeout="20s" />"#,
        r#"<action name="monitor" depth="0" timeout="10s" interval="10s" />"#,
    ] {
        assert!(
            meta.stdout.contains(needle),
            "meta-data lacks {needle}:\n{meta}"
        );
    }
    for action in ["usage", "help"] {
        base.expect(action, OCF_SUCCESS);
    }
    for action in [
        "promote",
        "demote",
        "notify",
        "reload",
        "migrate_to",
        "frobnicate",
    ] {
        base.expect(action, OCF_ERR_UNIMPLEMENTED);
    }
}
