//! drbdadm/drbdsetup driver: command lines and error classification (pure),
//! and the runner against fake binaries printing DRBD's real messages.
//!
//! The messages are DRBD's own strings (drbd-headers `drbd_strings.c`,
//! drbd-utils `drbdsetup.c` `check_error`, `shared_main.c`,
//! `drbdadm_main.c`) in the format drbdsetup prints them
//! (`<obj>: State change failed: (<code>) <text>`), plus drbdadm's trailer;
//! the `(-1)` one with exit 11 was seen in the lab (drbd.md 1.5).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use drbd::admin::{
    Admin, AdminConfig, AdminError, CHILD_PATH, Command, ErrorKind, Force, Tool, classify,
    snapshot_from_dump,
};
use drbd::events::{ConnState, DiskState, Role};

const CAPTURE: &str = include_str!("fixtures/drbd-events-captured.txt");

fn argv(c: Command) -> (Tool, Vec<String>) {
    c.argv().unwrap()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn command_lines() {
    assert_eq!(
        argv(Command::Adjust("r0".into())),
        (Tool::Drbdadm, s(&["adjust", "r0"]))
    );
    assert_eq!(argv(Command::Up("r0".into())).1, s(&["up", "r0"]));
    assert_eq!(argv(Command::Down("r0".into())).1, s(&["down", "r0"]));
    assert_eq!(
        argv(Command::Secondary("r0".into())).1,
        s(&["secondary", "r0"])
    );
    assert_eq!(argv(Command::Outdate("r0".into())).1, s(&["outdate", "r0"]));
    assert_eq!(
        argv(Command::Connect {
            resource: "r0".into(),
            peer: Some("bravo".into())
        })
        .1,
        s(&["connect", "r0:bravo"])
    );
    assert_eq!(
        argv(Command::Disconnect {
            resource: "r0".into(),
            peer: None
        })
        .1,
        s(&["disconnect", "r0"])
    );
    assert_eq!(argv(Command::Status(None)).1, s(&["status"]));
    assert_eq!(
        argv(Command::Status(Some("r0".into()))).1,
        s(&["status", "r0"])
    );
    assert_eq!(
        argv(Command::EventsNow(None)),
        (Tool::Drbdsetup, s(&["events2", "--now", "all"]))
    );
    assert_eq!(
        argv(Command::EventsNow(Some("r0".into()))).1,
        s(&["events2", "--now", "r0"])
    );
}

#[test]
fn primary_forces_only_with_the_operator_token() {
    assert_eq!(
        argv(Command::Primary {
            resource: "r0".into(),
            force: None
        }),
        (Tool::Drbdadm, s(&["primary", "r0"]))
    );
    assert_eq!(
        argv(Command::Primary {
            resource: "r0".into(),
            force: Some(Force::OperatorRequested)
        })
        .1,
        s(&["primary", "--force", "r0"])
    );
}

#[test]
fn names_that_could_become_options_are_refused() {
    for bad in ["", "-r0", "--force", "r0 r1", "r0;x", "a/b", "r0:x", "r\n0"] {
        let e = Command::Primary {
            resource: bad.into(),
            force: None,
        }
        .argv()
        .unwrap_err();
        assert_eq!(e.what, "resource", "{bad:?}");
    }
    let e = Command::Connect {
        resource: "r0".into(),
        peer: Some("--discard-my-data".into()),
    }
    .argv()
    .unwrap_err();
    assert_eq!(e.what, "peer");
    assert!(Command::Up("web_data-1.2+x".into()).argv().is_ok());
}

/// drbdsetup's line plus drbdadm's trailer, as drbdadm's stderr shows them.
fn adm_stderr(obj: &str, line: &str, cmd: &str, code: i32) -> String {
    format!("{obj}: {line}\nCommand '{cmd}' terminated with exit code {code}\n")
}

#[test]
fn state_change_refusals_are_classified_by_code() {
    let cases: &[(i32, &str, i32, ErrorKind)] = &[
        (
            -1,
            "Multiple primaries not allowed by config",
            11,
            ErrorKind::PeerIsPrimary,
        ),
        (
            -2,
            "Need access to UpToDate data",
            17,
            ErrorKind::NoUpToDateData,
        ),
        (
            -6,
            "Refusing to be Outdated while Connected",
            11,
            ErrorKind::OutdateWhileConnected,
        ),
        (
            -7,
            "Refusing to be Primary while peer is not outdated",
            11,
            ErrorKind::PeerNotOutdated,
        ),
        (
            -9,
            "Can not disconnect a StandAlone device",
            11,
            ErrorKind::AlreadyStandAlone,
        ),
        (
            -10,
            "State change was refused by peer node",
            11,
            ErrorKind::RefusedByPeer,
        ),
        (
            -12,
            "Device is held open by someone",
            11,
            ErrorKind::DeviceHeldOpen,
        ),
        (
            -16,
            "Disk state is lower than outdated",
            5,
            ErrorKind::LowerThanOutdated,
        ),
        (
            -18,
            "In transient state, retry after next state change",
            11,
            ErrorKind::TransientState,
        ),
        (
            -19,
            "Concurrent state changes detected and aborted",
            11,
            ErrorKind::ConcurrentStateChange,
        ),
        (
            -23,
            "Timeout in operation",
            11,
            ErrorKind::StateChangeTimeout,
        ),
        (-25, "No quorum", 11, ErrorKind::NoQuorum),
        (
            -20,
            "Other vol primary on peer not allowed by config",
            11,
            ErrorKind::StateChange,
        ),
    ];
    for &(code, text, exit, kind) in cases {
        let line = format!("State change failed: ({code}) {text}");
        let err = adm_stderr("r0", &line, "drbdsetup primary r0", exit);
        let c = classify(Some(exit), &err);
        assert_eq!(c.kind, kind, "{text}");
        assert_eq!(c.code, Some(code), "{text}");
        assert_eq!(c.message, format!("r0: {line}"));
        assert_eq!(
            kind.retry_may_help(),
            matches!(code, -1 | -18 | -19),
            "{text}"
        );
    }
}

#[test]
fn the_lab_dual_primary_refusal_on_84() {
    // drbd.md 1.5: 8.4.11 module, drbd-utils 9.22; drbdsetup-84 names the minor.
    let err = "0: State change failed: (-1) Multiple primaries not allowed by config\n\
               Command 'drbdsetup-84 primary 0' terminated with exit code 11\n";
    let c = classify(Some(11), err);
    assert_eq!(c.kind, ErrorKind::PeerIsPrimary);
    assert_eq!(
        c.message,
        "0: State change failed: (-1) Multiple primaries not allowed by config"
    );
}

#[test]
fn kernel_info_after_the_refusal_does_not_hide_it() {
    let err = "r0: State change failed: (-12) Device is held open by someone\n\
               additional info from kernel:\n\
               failed to demote\n\
               Command 'drbdsetup secondary r0' terminated with exit code 11\n";
    let c = classify(Some(11), err);
    assert_eq!(c.kind, ErrorKind::DeviceHeldOpen);
    assert_eq!(c.code, Some(-12));
}

#[test]
fn unknown_error_zero_has_no_space() {
    // check_error: "State change failed: (%d)unknown error."
    let c = classify(Some(11), "r0: State change failed: (0)unknown error.\n");
    assert_eq!((c.kind, c.code), (ErrorKind::StateChange, Some(0)));
}

#[test]
fn other_failures() {
    let cases: &[(Option<i32>, &str, ErrorKind, Option<i32>)] = &[
        (
            Some(10),
            "r9: Failure: (158) Unknown resource\n",
            ErrorKind::UnknownResource,
            Some(158),
        ),
        (
            Some(10),
            "r0: Failure: (152) Permission denied. CAP_SYS_ADMIN necessary\n",
            ErrorKind::KernelConfig,
            Some(152),
        ),
        (
            Some(10),
            "r9: No such resource\n",
            ErrorKind::UnknownResource,
            None,
        ),
        (
            Some(1),
            "'r9' not defined in your config (for this host).\n",
            ErrorKind::UnknownResource,
            None,
        ),
        (
            Some(1),
            "no resources defined!\n",
            ErrorKind::NoResourcesDefined,
            None,
        ),
        (
            Some(20),
            "Could not connect to 'drbd' generic netlink family\n\
             Command 'drbdsetup new-resource r0 1' terminated with exit code 20\n",
            ErrorKind::ModuleNotLoaded,
            None,
        ),
        (
            Some(20),
            "Command 'drbdsetup primary r0' did not terminate within 121 seconds\n",
            ErrorKind::ToolTimeout,
            None,
        ),
        (Some(17), "", ErrorKind::NoUpToDateData, None),
        (Some(5), "", ErrorKind::LowerThanOutdated, None),
        (Some(121), "", ErrorKind::ModuleUnloaded, None),
        (
            Some(1),
            "USAGE: drbdadm COMMAND [OPTION...]\n",
            ErrorKind::Usage,
            None,
        ),
        (
            Some(10),
            "drbd.conf:3: parse error\n",
            ErrorKind::ConfigInvalid,
            None,
        ),
        (Some(42), "something new\n", ErrorKind::Other, None),
        (None, "", ErrorKind::Other, None),
    ];
    for &(exit, err, kind, code) in cases {
        let c = classify(exit, err);
        assert_eq!((c.kind, c.code), (kind, code), "{err:?}");
    }
    // The fallback message is the last line that is not drbdadm's trailer.
    let c = classify(
        Some(42),
        "first\nreal reason\nCommand 'drbdsetup x r0' terminated with exit code 42\n",
    );
    assert_eq!(c.message, "real reason");
}

#[test]
fn dump_to_snapshot() {
    let dump: String = CAPTURE
        .lines()
        .skip(5)
        .take(5)
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(dump.ends_with("exists -\n"));
    let snap = snapshot_from_dump(&dump);
    assert!(snap.bad_lines.is_empty());
    assert!(snap.cluster.ready());
    let r = snap.cluster.resource("r0").unwrap();
    assert_eq!(r.role, Some(Role::Secondary));
    assert_eq!(r.devices[&0].disk, Some(DiskState::UpToDate));
    assert_eq!(r.connections[&0].state, Some(ConnState::Connected));
    // Cut before `exists -`: not ready.
    let cut: String = dump.lines().take(4).map(|l| format!("{l}\n")).collect();
    assert!(!snapshot_from_dump(&cut).cluster.ready());
    // A truncated capture yields an empty, not-ready model.
    let trunc = format!("{}[... 10 bytes omitted ...]\nexists -\n", &cut);
    let t = snapshot_from_dump(&trunc);
    assert!(!t.cluster.ready() && t.cluster.resources.is_empty());
    assert_eq!(t.bad_lines.len(), 1);
}

// ---- the runner, with fake binaries ----

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

struct Fake {
    dir: tempfile::TempDir,
    admin: Admin,
}

impl Fake {
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A fake drbdadm and drbdsetup in a temp dir, answering like DRBD does.
fn fake() -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let dump: String = CAPTURE
        .lines()
        .skip(5)
        .take(5)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("dump.txt"), dump).unwrap();
    write_script(
        &dir.path().join("drbdadm"),
        &format!(
            r#"d={d}
echo "$*" >> $d/calls
env | sort > $d/env
pwd > $d/cwd
case "$*" in
"adjust r0") exit 0 ;;
"primary r0")
  echo "r0: State change failed: (-1) Multiple primaries not allowed by config" >&2
  echo "Command 'drbdsetup primary r0' terminated with exit code 11" >&2
  exit 11 ;;
"primary r1")
  echo "r1: State change failed: (-2) Need access to UpToDate data" >&2
  echo "Command 'drbdsetup primary r1' terminated with exit code 17" >&2
  exit 17 ;;
"primary --force r1") exit 0 ;;
"primary r2")
  echo "r2: State change failed: (-7) Refusing to be Primary while peer is not outdated" >&2
  echo "Command 'drbdsetup primary r2' terminated with exit code 11" >&2
  exit 11 ;;
"primary r3")
  echo "r3: State change failed: (-10) State change was refused by peer node" >&2
  echo "Command 'drbdsetup primary r3' terminated with exit code 11" >&2
  exit 11 ;;
"secondary r0")
  echo "r0: State change failed: (-12) Device is held open by someone" >&2
  echo "additional info from kernel:" >&2
  echo "failed to demote" >&2
  echo "Command 'drbdsetup secondary r0' terminated with exit code 11" >&2
  exit 11 ;;
"up r9")
  echo "'r9' not defined in your config (for this host)." >&2
  exit 1 ;;
"connect r0:bravo")
  echo "Could not connect to 'drbd' generic netlink family" >&2
  echo "Command 'drbdsetup connect r0 1' terminated with exit code 20" >&2
  exit 20 ;;
"status r0") echo "r0 role:Secondary"; echo "  disk:UpToDate"; exit 0 ;;
"down hang")
  echo $$ > $d/pid
  sleep 1000 &
  echo $! > $d/bg
  echo "going to hang" >&2
  sleep 1000 ;;
"outdate loud") head -c 200000 /dev/zero | tr '\0' x; exit 0 ;;
*) echo "fake drbdadm: unexpected $*" >&2; exit 42 ;;
esac
"#
        ),
    );
    write_script(
        &dir.path().join("drbdsetup"),
        &format!(
            r#"d={d}
echo "$*" >> $d/calls
case "$*" in
"events2 --now all") cat $d/dump.txt ;;
"events2 --now r9") echo "r9: No such resource" >&2; exit 10 ;;
*) exit 42 ;;
esac
"#
        ),
    );
    let admin = Admin::new(AdminConfig {
        drbdadm: dir.path().join("drbdadm"),
        drbdsetup: dir.path().join("drbdsetup"),
        timeout: Duration::from_secs(10),
    });
    Fake { dir, admin }
}

fn drbd_err(e: AdminError) -> (Option<i32>, ErrorKind, Option<i32>, String) {
    match e {
        AdminError::Drbd {
            exit_code,
            kind,
            code,
            message,
            ..
        } => (exit_code, kind, code, message),
        other => panic!("expected a DRBD error, got {other:?}"),
    }
}

#[tokio::test]
async fn runner_success_env_and_calls() {
    let f = fake();
    let out = f.admin.adjust("r0").await.unwrap();
    assert!(
        out.command.ends_with("/drbdadm adjust r0"),
        "{}",
        out.command
    );
    assert!(out.stdout.is_empty());
    let env = std::fs::read_to_string(f.p("env")).unwrap();
    let mut keys: Vec<&str> = env
        .lines()
        .map(|l| l.split('=').next().unwrap())
        .filter(|k| *k != "PWD" && *k != "SHLVL" && *k != "_" && *k != "OLDPWD")
        .collect();
    keys.sort();
    assert_eq!(keys, ["LC_ALL", "PATH"], "{env}");
    assert!(env.contains(&format!("PATH={CHILD_PATH}\n")));
    assert!(env.contains("LC_ALL=C\n"));
    assert_eq!(std::fs::read_to_string(f.p("cwd")).unwrap(), "/\n");
    let st = f.admin.status(Some("r0")).await.unwrap();
    assert_eq!(st, "r0 role:Secondary\n  disk:UpToDate\n");
    // The operator's forced promotion is the only way to --force.
    f.admin
        .primary_forced("r1", Force::OperatorRequested)
        .await
        .unwrap();
    let calls = std::fs::read_to_string(f.p("calls")).unwrap();
    assert_eq!(calls, "adjust r0\nstatus r0\nprimary --force r1\n");
}

#[tokio::test]
async fn runner_classifies_real_refusals() {
    let f = fake();
    let (exit, kind, code, msg) = drbd_err(f.admin.primary("r0").await.unwrap_err());
    assert_eq!(
        (exit, kind, code),
        (Some(11), ErrorKind::PeerIsPrimary, Some(-1))
    );
    assert_eq!(
        msg,
        "r0: State change failed: (-1) Multiple primaries not allowed by config"
    );
    let (exit, kind, code, _) = drbd_err(f.admin.primary("r1").await.unwrap_err());
    assert_eq!(
        (exit, kind, code),
        (Some(17), ErrorKind::NoUpToDateData, Some(-2))
    );
    let (exit, kind, _, _) = drbd_err(f.admin.primary("r2").await.unwrap_err());
    assert_eq!((exit, kind), (Some(11), ErrorKind::PeerNotOutdated));
    let (exit, kind, _, _) = drbd_err(f.admin.primary("r3").await.unwrap_err());
    assert_eq!((exit, kind), (Some(11), ErrorKind::RefusedByPeer));
    let e = f.admin.secondary("r0").await.unwrap_err();
    assert_eq!(e.kind(), Some(ErrorKind::DeviceHeldOpen));
    let shown = e.to_string();
    assert!(
        shown.contains("Device is held open by someone") && shown.ends_with("(exit 11)"),
        "{shown}"
    );
    let (exit, kind, _, _) = drbd_err(f.admin.up("r9").await.unwrap_err());
    assert_eq!((exit, kind), (Some(1), ErrorKind::UnknownResource));
    let (exit, kind, _, _) = drbd_err(f.admin.connect("r0", Some("bravo")).await.unwrap_err());
    assert_eq!((exit, kind), (Some(20), ErrorKind::ModuleNotLoaded));
    let (exit, kind, _, _) = drbd_err(f.admin.events_now(Some("r9")).await.unwrap_err());
    assert_eq!((exit, kind), (Some(10), ErrorKind::UnknownResource));
    // A name that could be an option never reaches the binary.
    assert!(matches!(
        f.admin.primary("--force").await,
        Err(AdminError::InvalidName(_))
    ));
    let calls = std::fs::read_to_string(f.p("calls")).unwrap();
    assert!(!calls.contains("--force"), "{calls}");
}

#[tokio::test]
async fn events_now_gives_a_ready_model() {
    let f = fake();
    let snap = f.admin.events_now(None).await.unwrap();
    assert!(snap.cluster.ready());
    assert!(snap.bad_lines.is_empty());
    assert_eq!(
        snap.cluster.resource("r0").unwrap().connections[&0].peer_role,
        Some(Role::Secondary)
    );
}

#[tokio::test]
async fn output_is_bounded() {
    let f = fake();
    let out = f.admin.outdate("loud").await.unwrap();
    assert_eq!(out.stdout.total, 200_000);
    assert_eq!(out.stdout.head.len() + out.stdout.tail.len(), 64 << 10);
}

#[tokio::test]
async fn missing_binary() {
    let f = fake();
    let a = Admin::new(AdminConfig {
        drbdadm: f.p("no-such-drbdadm"),
        ..f.admin.config().clone()
    });
    match a.adjust("r0").await {
        Err(AdminError::NotInstalled { path, .. }) => assert_eq!(path, f.p("no-such-drbdadm")),
        other => panic!("{other:?}"),
    }
}

fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && let Ok(p) = s.trim().parse()
        {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn pid_alive(pid: u32) -> bool {
    // Zombies (not reaped where PID 1 does not reap) count as dead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(st) => {
            let state = st.rsplit(')').next().unwrap().split_whitespace().next();
            !matches!(state, Some("Z" | "X"))
        }
    }
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let f = fake();
    let a = f.admin.with_timeout(Duration::from_millis(500));
    let t0 = Instant::now();
    let e = a.down("hang").await.unwrap_err();
    let took = t0.elapsed();
    match &e {
        AdminError::Timeout {
            command,
            timeout,
            stderr,
        } => {
            assert!(command.ends_with("drbdadm down hang"));
            assert_eq!(*timeout, Duration::from_millis(500));
            assert_eq!(stderr, "going to hang\n");
        }
        other => panic!("{other:?}"),
    }
    assert!(took >= Duration::from_millis(500), "{took:?}");
    let pid = read_pid(&f.p("pid"));
    let bg = read_pid(&f.p("bg"));
    // The runner reaped the leader itself; the background sleep must be
    // dead too (SIGKILL to the group).
    let deadline = Instant::now() + Duration::from_secs(5);
    while (pid_alive(pid) || pid_alive(bg) || ra::process_group_alive(pid))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!pid_alive(pid), "drbdadm {pid} survived");
    assert!(!pid_alive(bg), "its child {bg} survived");
    assert!(!ra::process_group_alive(pid));
}

#[tokio::test]
async fn dropping_the_future_kills_the_group() {
    let f = fake();
    let admin = f.admin.clone();
    let fut = tokio::spawn(async move { admin.down("hang").await });
    let bg = tokio::task::spawn_blocking({
        let p = f.p("bg");
        move || read_pid(&p)
    })
    .await
    .unwrap();
    let pid = read_pid(&f.p("pid"));
    assert!(pid_alive(bg));
    fut.abort();
    let _ = fut.await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while ra::process_group_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!ra::process_group_alive(pid), "group {pid} survived");
    assert!(!pid_alive(bg));
}
