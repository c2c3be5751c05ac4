//! Debian's `ocf:heartbeat:pgsql` managing a real PostgreSQL server (Debian
//! `postgresql`): a scratch cluster made with `initdb` in /var/tmp, owned by
//! `postgres`, listening on a Unix socket in its own directory only (no
//! TCP). Probe, start, monitor, double start, a table written, stop, the
//! server really gone, start again with the data kept, stop. Whatever
//! happens, the server is stopped on the way out.
//!
//! Needs root, the `postgresql` package (server, `initdb`, `pg_ctl`,
//! `psql`), util-linux (`runuser`) and resource-agents.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use ra::{Action, Observed, OcfExit, Recovery, Request, Verdict};
use tempfile::TempDir;

const PORT: &str = "5439";

/// The newest `/usr/lib/postgresql/N/bin`.
fn pg_bin() -> PathBuf {
    let mut versions: Vec<u32> = fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    versions.sort_unstable();
    let v = versions.last().unwrap_or_else(|| {
        panic!("no /usr/lib/postgresql/N: install the Debian package postgresql (the test script .ci/test does)")
    });
    let bin = PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"));
    for tool in ["initdb", "pg_ctl", "postgres", "psql"] {
        require_file(&bin.join(tool).display().to_string(), "postgresql");
    }
    bin
}

/// A scratch cluster; stopped (immediate) on drop if still running.
struct Cluster {
    dir: TempDir,
    bin: PathBuf,
}

impl Cluster {
    fn new() -> Cluster {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("ra-pgsql.")
            .tempdir_in("/var/tmp")
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let c = Cluster { dir, bin };
        for d in [c.data(), c.sockets()] {
            fs::create_dir(&d).unwrap();
            sh(Command::new("chown").arg("postgres:postgres").arg(&d));
        }
        fs::set_permissions(c.data(), fs::Permissions::from_mode(0o700)).unwrap();
        sh(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(c.bin.join("initdb"))
            .args(["--no-sync", "-A", "trust", "-U", "postgres", "-D"])
            .arg(c.data()));
        let conf = c.data().join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).unwrap();
        text.push_str(&format!(
            "\n# hapair ra test: Unix socket only, in the test's directory\n\
             listen_addresses = ''\nport = {PORT}\nunix_socket_directories = '{}'\n",
            c.sockets().display()
        ));
        fs::write(&conf, text).unwrap();
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn sockets(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn running(&self) -> bool {
        self.data().join("postmaster.pid").exists()
    }

    fn psql(&self, sql: &str) -> String {
        sh(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("psql"))
            .arg("-h")
            .arg(self.sockets())
            .args([
                "-p",
                PORT,
                "-d",
                "postgres",
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ]))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running() {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D"])
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .status();
        }
    }
}

fn server_processes(data: &Path) -> Vec<String> {
    live_processes_matching(&data.display().to_string())
}

#[tokio::test]
async fn pgsql_manages_a_real_postgresql() {
    require_root();
    require_heartbeat_agent("pgsql");
    require_file("/usr/sbin/runuser", "util-linux");
    let c = Cluster::new();
    let runner = system_runner();
    let agent: ra::Agent = "ocf:heartbeat:pgsql".parse().unwrap();
    let md = runner.meta_data(&agent).await.unwrap();
    let data = c.data().display().to_string();
    let log = c.dir.path().join("postgresql.log").display().to_string();
    let op = |action: Action, timeout: u64| {
        Request::new("db", agent.clone(), action, Duration::from_secs(timeout))
            .param("pgctl", &c.bin.join("pg_ctl").display().to_string())
            .param("psql", &c.bin.join("psql").display().to_string())
            .param("pgdata", &data)
            .param(
                "config",
                &c.data().join("postgresql.conf").display().to_string(),
            )
            .param("pgport", PORT)
            .param("socketdir", &c.sockets().display().to_string())
            .param("logfile", &log)
    };
    assert!(md.check_params(&op(Action::Start, 120).params).is_empty());
    let start_timeout = md.timeout_for(&Action::Start, None, None).unwrap();
    assert_eq!(start_timeout, Duration::from_secs(120));
    let run = |r: Request| {
        let runner = runner.clone();
        async move { runner.run(&r).await.unwrap() }
    };

    let r = run(op(Action::Monitor, 30)).await;
    assert_eq!(r.classification.observed, Some(Observed::Stopped), "{r:#?}");

    let r = run(op(Action::Start, 120)).await;
    assert!(r.is_success(), "{r:#?}");
    assert!(c.running());
    let r = run(op(Action::Monitor, 30).interval(Duration::from_secs(30))).await;
    assert_eq!(r.rc, OcfExit::Success, "{r:#?}");
    let r = run(op(Action::Start, 120)).await;
    assert!(r.is_success(), "double start: {r:#?}");

    c.psql("CREATE TABLE ha (k text PRIMARY KEY, v int); INSERT INTO ha VALUES ('kept', 42);");

    let r = run(op(Action::Stop, 120)).await;
    assert!(r.is_success(), "{r:#?}");
    assert!(!c.running());
    let left = server_processes(&c.data());
    assert!(
        left.is_empty(),
        "postgres still running after stop: {left:?}"
    );
    let r = run(op(Action::Monitor, 30).interval(Duration::from_secs(30))).await;
    assert_eq!(r.rc, OcfExit::NotRunning);
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Soft));
    let r = run(op(Action::Stop, 120)).await;
    assert!(r.is_success(), "double stop: {r:#?}");

    let r = run(op(Action::Start, 120)).await;
    assert!(r.is_success(), "{r:#?}");
    assert_eq!(
        c.psql("SELECT v FROM ha WHERE k = 'kept'").trim(),
        "42",
        "data kept"
    );
    let r = run(op(Action::Stop, 120)).await;
    assert!(r.is_success(), "{r:#?}");
    assert!(!c.running());
    assert!(server_processes(&c.data()).is_empty());
}

#[tokio::test]
async fn pgsql_with_a_missing_binary() {
    require_root();
    require_heartbeat_agent("pgsql");
    let runner = system_runner();
    let dir = tempfile::tempdir().unwrap();
    let r = runner
        .run(
            &Request::new(
                "db2",
                "ocf:heartbeat:pgsql".parse().unwrap(),
                Action::Start,
                Duration::from_secs(30),
            )
            .param("pgctl", "/nonexistent/pg_ctl")
            .param("pgdata", &dir.path().display().to_string()),
        )
        .await
        .unwrap();
    assert_eq!(r.rc, OcfExit::ErrInstalled, "{r:#?}");
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Hard));
}
