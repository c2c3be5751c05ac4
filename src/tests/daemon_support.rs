//! Shared by the daemon tests and the idle benchmark (`#[path]`-included):
//! a scratch setup (lease on a loop device, key file, config) and the
//! daemon as a child process, killed on drop.
#![allow(dead_code)]

#[path = "../../sfex/tests/support/scratch_loop.rs"]
mod scratch_loop;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scratch_loop::Loop;

pub const BIN: &str = env!("CARGO_BIN_EXE_hapair");

pub fn require() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the daemon tests need root (loop devices, the lease, agents)"
    );
    assert!(
        Path::new("/usr/lib/ocf/resource.d/heartbeat/Dummy").exists(),
        "ocf:heartbeat:Dummy is missing: install the resource-agents package (bash .ci/test does)"
    );
}

/// A scratch directory with config, key file, state files and the log.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub lease: Loop,
    pub port: u16,
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port on 127.0.0.1")
}

impl Setup {
    pub fn new() -> Setup {
        require();
        let lease = Loop::new(512, 1 << 20, false);
        let mut dev = sfex::dev::Device::open(lease.path(), sfex::dev::EngineKind::Sync)
            .expect("open the scratch lease device");
        sfex::ops::init(&mut dev, lease.path(), 1, false).expect("sfex init");
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("authkey");
        let st = Command::new(BIN)
            .args(["keygen", "--file"])
            .arg(&key)
            .status()
            .expect("hapair keygen");
        assert!(st.success(), "hapair keygen failed");
        Setup {
            dir,
            lease,
            port: free_udp_port(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The config: `extra` is appended (resources).
    pub fn config(&self, resources: &str) -> String {
        let d = self.dir.path().display();
        format!(
            r#"
[cluster]
name = "daemon-test"
key_file = "{d}/authkey"
state_dir = "{d}/state"
socket = "{d}/hapair.sock"

[[node]]
name = "alpha"
preferred = true
[[node]]
name = "beta"

[heartbeat]
keepalive = "100ms"
warntime = "300ms"
deadtime = "500ms"
initdead = "1s"

[[link]]
name = "lo"
alpha = "127.0.0.1:{p1}"
beta = "127.0.0.1:{p2}"

[lease]
device = "{lease}"
index = 1
engine = "sync"
lock_timeout = "6s"
collision_timeout = "1s"
monitor_interval = "1s"
margin = "500ms"
max_io = "400ms"

[policy]
migration_threshold = 3
start_delay = "1s"
retry_interval = "1s"
stop_budget = "3s"

[self_fence]
mode = "test-exit"

[fencing]
delay = "3s"

{resources}
"#,
            p1 = self.port,
            p2 = self.port + 1,
            lease = self.lease.path().display(),
        )
    }

    pub fn dummy(&self, name: &str) -> String {
        format!(
            r#"
[[resource]]
name = "{name}"
type = "ocf:heartbeat:Dummy"
params = {{ state = "{}" }}
start_timeout = "10s"
stop_timeout = "1s"
monitor_interval = "1s"
monitor_timeout = "5s"
"#,
            self.path(&format!("{name}.state")).display()
        )
    }

    pub fn stack(&self) -> String {
        ["db", "fs", "ip"].iter().map(|n| self.dummy(n)).collect()
    }

    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.path("hapair.toml");
        std::fs::write(&p, text).expect("write config");
        p
    }

    pub fn lock(&self) -> sfex::format::LockBlock {
        let (mut dev, _) =
            sfex::ops::open_checked(self.lease.path(), 1, sfex::dev::EngineKind::Sync, false)
                .expect("open lease");
        sfex::ops::read_lock(&mut dev, 1).expect("read lock")
    }
}

impl Setup {
    /// `hapair ARGS --socket S`: (exit code, stdout).
    pub fn cli(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(self.path("hapair.sock"))
            .output()
            .expect("run the hapair CLI");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// `hapair status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let (rc, out) = self.cli(&["status", "--json"]);
        assert_eq!(rc, 0, "hapair status --json: {out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status JSON {e}: {out}"))
    }
}

/// The daemon process; killed (and its log shown) if a test fails.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    pub fn start(s: &Setup, config: &Path) -> Daemon {
        let log = s.path("daemon.log");
        let f = std::fs::File::create(&log).expect("log file");
        let child = Command::new(BIN)
            .args(["run", "--node", "alpha", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("dup"))
            .stderr(f)
            .spawn()
            .expect("spawn hapair run");
        Daemon {
            child: Some(child),
            log,
        }
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        let c = self.child.as_ref().expect("running");
        nix::unistd::Pid::from_raw(i32::try_from(c.id()).expect("pid"))
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), sig).expect("signal the daemon");
    }

    /// Waits for `what` to hold, with the daemon's log in the failure message.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, mut f: impl FnMut(&str) -> bool) {
        let t0 = Instant::now();
        loop {
            let log = self.log();
            if f(&log) {
                return;
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("daemon exited ({st}) while waiting for {what}; log:\n{log}");
            }
            assert!(
                t0.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return st;
            }
            assert!(
                t0.elapsed() < timeout,
                "daemon did not exit within {timeout:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            eprintln!("daemon log:\n{}", self.log());
        }
    }
}
