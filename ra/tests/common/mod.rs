//! Shared helpers for the `ra` integration tests: prerequisites that fail
//! loudly, a scratch OCF root holding the test agents of `tests/agents/`,
//! and process checks.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ra::{Agent, Runner, RunnerConfig};
use tempfile::TempDir;

/// The OCF root of Debian's resource-agents.
pub const SYSTEM_OCF_ROOT: &str = "/usr/lib/ocf";
/// The provider name of the test agents in a scratch root.
pub const TEST_PROVIDER: &str = "hapair-test";

/// Fails the test with a clear message unless running as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (mounts, loop devices, namespaces, service users); run it as root \
         (the test script .ci/test does)"
    );
}

/// Fails the test unless `path` exists, naming the Debian package to install.
pub fn require_file(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the Debian package {package} (the test script .ci/test does)"
    );
}

/// Fails the test unless the OCF agent heartbeat/`kind` is installed.
pub fn require_heartbeat_agent(kind: &str) {
    require_file(
        &format!("{SYSTEM_OCF_ROOT}/resource.d/heartbeat/{kind}"),
        "resource-agents",
    );
}

/// The directory of the test agents in the source tree.
pub fn agents_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("agents")
}

/// A scratch OCF root: `resource.d/hapair-test/` holds copies of the test
/// agents (mode 0755) plus `noexec` (a copy of `envdump` with mode 0644);
/// `lib` and `resource.d/heartbeat` link to the system's, so real agents
/// work under it too.
pub struct ScratchRoot {
    pub dir: TempDir,
}

impl ScratchRoot {
    pub fn new() -> ScratchRoot {
        let dir = tempfile::Builder::new()
            .prefix("ra-ocf-root.")
            .tempdir()
            .expect("create a scratch OCF root");
        let prov = dir.path().join("resource.d").join(TEST_PROVIDER);
        fs::create_dir_all(&prov).unwrap();
        for e in fs::read_dir(agents_dir()).unwrap() {
            let e = e.unwrap();
            let to = prov.join(e.file_name());
            fs::copy(e.path(), &to).unwrap();
            fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let noexec = prov.join("noexec");
        fs::copy(agents_dir().join("envdump"), &noexec).unwrap();
        fs::set_permissions(&noexec, fs::Permissions::from_mode(0o644)).unwrap();
        symlink(
            Path::new(SYSTEM_OCF_ROOT).join("lib"),
            dir.path().join("lib"),
        )
        .unwrap();
        symlink(
            Path::new(SYSTEM_OCF_ROOT).join("resource.d/heartbeat"),
            dir.path().join("resource.d/heartbeat"),
        )
        .unwrap();
        ScratchRoot { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A runner on this root, with a short grace period (1 s).
    pub fn runner(&self) -> Runner {
        Runner::new(RunnerConfig {
            ocf_root: self.path().to_path_buf(),
            kill_grace: Duration::from_secs(1),
            ..RunnerConfig::default()
        })
        .unwrap()
    }
}

/// `ocf:hapair-test:NAME`.
pub fn test_agent(name: &str) -> Agent {
    Agent::ocf(TEST_PROVIDER, name).unwrap()
}

/// A runner on the system's OCF root, node name `alpha`.
pub fn system_runner() -> Runner {
    Runner::new(RunnerConfig {
        node_name: "alpha".into(),
        ..RunnerConfig::default()
    })
    .unwrap()
}

/// Runs a command, panicking with its output if it fails; returns stdout.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Live (non-zombie) processes whose command line contains `needle`.
pub fn live_processes_matching(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == std::process::id().to_string() {
            continue;
        }
        let Ok(cmdline) = fs::read(format!("/proc/{name}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let state = fs::read_to_string(format!("/proc/{name}/stat"))
            .ok()
            .and_then(|s| {
                s.rfind(')')
                    .and_then(|i| s[i + 1..].split_whitespace().next().map(str::to_string))
            })
            .unwrap_or_default();
        if cmdline.contains(needle) && state != "Z" {
            found.push(format!("{name} {cmdline}"));
        }
    }
    found
}

/// A tokio runtime for a test that is not `#[tokio::test]`.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
