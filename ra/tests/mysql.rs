//! Debian's `ocf:heartbeat:mysql` managing a real MariaDB server (Debian
//! `mariadb-server`): a scratch data directory made with
//! `mariadb-install-db` in /var/tmp, owned by `mysql`, its own config file
//! (`skip-networking`: Unix socket only), pid file and socket in the test's
//! directory. Probe, start, monitor at check levels 0 and 10 (a query
//! through the client), double start, data written, stop, the server
//! really gone, start again with the data kept, stop. Whatever happens,
//! the server is stopped on the way out.
//!
//! The agent starts `mysqld_safe` in the background inside its own process
//! group; the runner must leave it running after a successful start.
//!
//! Needs root, `mariadb-server` and `mariadb-client`, and resource-agents.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ra::{Action, Observed, OcfExit, Recovery, Request, Verdict};
use tempfile::TempDir;

/// A scratch MariaDB instance; shut down on drop if still running.
struct Instance {
    dir: TempDir,
}

impl Instance {
    fn new() -> Instance {
        let dir = tempfile::Builder::new()
            .prefix("ra-mysql.")
            .tempdir_in("/var/tmp")
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let i = Instance { dir };
        for d in [i.data(), i.run_dir()] {
            fs::create_dir(&d).unwrap();
            sh(Command::new("chown").arg("mysql:mysql").arg(&d));
        }
        fs::write(
            i.config(),
            "# hapair ra test: Unix socket only\n[mysqld]\nskip-networking\n\
             innodb_buffer_pool_size = 16M\n\n[client]\n",
        )
        .unwrap();
        sh(Command::new("mariadb-install-db")
            .arg(format!("--defaults-file={}", i.config().display()))
            .args([
                "--user=mysql",
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
            ])
            .arg(format!("--datadir={}", i.data().display())));
        i
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("my.cnf")
    }

    fn socket(&self) -> PathBuf {
        self.run_dir().join("mysqld.sock")
    }

    fn pid_file(&self) -> PathBuf {
        self.run_dir().join("mysqld.pid")
    }

    fn sql(&self, sql: &str) -> String {
        sh(Command::new("mariadb")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["--user=root", "--batch", "--skip-column-names", "-e", sql]))
    }

    fn processes(&self) -> Vec<String> {
        live_processes_matching(&self.data().display().to_string())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.processes().is_empty() {
            return;
        }
        let _ = Command::new("mariadb-admin")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["--user=root", "shutdown"])
            .status();
        let t = Instant::now();
        while !self.processes().is_empty() && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(100));
        }
        for p in self.processes() {
            if let Some(pid) = p
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

#[tokio::test]
async fn mysql_manages_a_real_mariadb() {
    require_root();
    require_heartbeat_agent("mysql");
    require_file("/usr/sbin/mariadbd", "mariadb-server");
    require_file("/usr/bin/mysqld_safe", "mariadb-server");
    require_file("/usr/bin/mariadb-install-db", "mariadb-server");
    require_file("/usr/bin/mysql", "mariadb-client");
    let inst = Instance::new();
    let runner = system_runner();
    let agent: ra::Agent = "ocf:heartbeat:mysql".parse().unwrap();
    let md = runner.meta_data(&agent).await.unwrap();
    let s = |p: PathBuf| p.display().to_string();
    let op = |action: Action, timeout: u64| {
        Request::new(
            "mariadb",
            agent.clone(),
            action,
            Duration::from_secs(timeout),
        )
        .param("config", &s(inst.config()))
        .param("datadir", &s(inst.data()))
        .param("pid", &s(inst.pid_file()))
        .param("socket", &s(inst.socket()))
        .param("log", &s(inst.dir.path().join("error.log")))
        .param("user", "mysql")
        .param("group", "mysql")
    };
    assert!(md.check_params(&op(Action::Start, 120).params).is_empty());
    let run = |r: Request| {
        let runner = runner.clone();
        async move { runner.run(&r).await.unwrap() }
    };

    let r = run(op(Action::ValidateAll, 5)).await;
    assert!(r.is_success(), "{r:#?}");
    let r = run(op(Action::Monitor, 30)).await;
    assert_eq!(r.classification.observed, Some(Observed::Stopped), "{r:#?}");

    let r = run(op(Action::Start, 120)).await;
    assert!(r.is_success(), "{r:#?}");
    // The server lives on in the agent's process group, untouched.
    assert!(ra::process_group_alive(r.pid.unwrap()));
    assert!(!inst.processes().is_empty());
    for level in [0, 10] {
        let r = run(op(Action::Monitor, 30)
            .interval(Duration::from_secs(20))
            .check_level(level))
        .await;
        assert_eq!(r.rc, OcfExit::Success, "level {level}: {r:#?}");
    }
    let r = run(op(Action::Start, 120)).await;
    assert!(r.is_success(), "double start: {r:#?}");

    inst.sql("CREATE DATABASE ha; CREATE TABLE ha.t (k VARCHAR(8) PRIMARY KEY, v INT); INSERT INTO ha.t VALUES ('kept', 42);");

    let r = run(op(Action::Stop, 120)).await;
    assert!(r.is_success(), "{r:#?}");
    let left = inst.processes();
    assert!(
        left.is_empty(),
        "MariaDB still running after stop: {left:?}"
    );
    let r = run(op(Action::Monitor, 30).interval(Duration::from_secs(20))).await;
    assert_eq!(r.rc, OcfExit::NotRunning);
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Soft));
    let r = run(op(Action::Stop, 120)).await;
    assert!(r.is_success(), "double stop: {r:#?}");

    let r = run(op(Action::Start, 120)).await;
    assert!(r.is_success(), "{r:#?}");
    assert_eq!(
        inst.sql("SELECT v FROM ha.t WHERE k = 'kept'").trim(),
        "42",
        "data kept"
    );
    let r = run(op(Action::Stop, 120)).await;
    assert!(r.is_success(), "{r:#?}");
    assert!(inst.processes().is_empty());
}

#[tokio::test]
async fn mysql_with_a_missing_config() {
    require_root();
    require_heartbeat_agent("mysql");
    let runner = system_runner();
    let r = runner
        .run(
            &Request::new(
                "mariadb2",
                "ocf:heartbeat:mysql".parse().unwrap(),
                Action::Start,
                Duration::from_secs(30),
            )
            .param("config", "/nonexistent/my.cnf"),
        )
        .await
        .unwrap();
    assert_eq!(r.rc, OcfExit::ErrInstalled, "{r:#?}");
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Hard));
    assert_eq!(
        r.exit_reason.as_deref(),
        Some("Config /nonexistent/my.cnf doesn't exist")
    );
}
