//! The control socket against real sockets, real peer credentials and real
//! groups: root allowed, another uid refused, a member of the admin group
//! (primary or supplementary) allowed, a missing group meaning root only;
//! malformed and overlong lines; stale and live sockets; `watch`; idle
//! connections; and the operator CLI end to end.
//!
//! Needs root (to switch a client to uid 65534 with `setpriv` and to make a
//! scratch group with `groupadd`) and `socat` as the unprivileged client;
//! fails with the reason when either is missing.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::unistd::Gid;
use tokio::sync::{mpsc, watch};

use super::*;
use crate::cli::proto::{ControlRequest, ControlResponse, NodeState, StatusReport};
use crate::cli::{self, OperatorCmd};

const NOBODY: u32 = 65534;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the control socket tests switch a client to another uid and create a group: run them as root"
    );
    for tool in ["setpriv", "socat", "groupadd", "groupdel"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
            .unwrap_or(false);
        assert!(
            found,
            "{tool} is needed by the control socket tests (util-linux, socat, passwd)"
        );
    }
}

/// A scratch group, removed on drop.
struct TempGroup {
    name: String,
    gid: u32,
}

impl TempGroup {
    fn new() -> TempGroup {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "hpt{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new("groupadd")
            .arg(&name)
            .output()
            .expect("groupadd");
        assert!(
            out.status.success(),
            "groupadd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let gid = nix::unistd::Group::from_name(&name)
            .unwrap()
            .expect("the group just made")
            .gid
            .as_raw();
        TempGroup { name, gid }
    }
}

impl Drop for TempGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// What the fake daemon saw.
#[derive(Debug, Clone)]
struct Seen {
    request: ControlRequest,
    caller: Caller,
}

/// A server on a scratch socket, a status channel and a fake daemon that
/// answers every call (and refuses requests about node "gamma").
struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    status: watch::Sender<StatusReport>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn report(node: &str) -> StatusReport {
    StatusReport {
        cluster: "test".into(),
        node: node.into(),
        migration_threshold: 3,
        ..Default::default()
    }
}

impl Fixture {
    /// `open`: make the directory and socket reachable for any uid, so the
    /// SO_PEERCRED check (not the file mode) is what refuses.
    fn start(policy: AccessPolicy, limits: Limits, group: Option<u32>, open: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/hapair.sock");
        let listener = bind(&path, group.map(Gid::from_raw)).unwrap();
        if open {
            for p in [dir.path(), path.parent().unwrap()] {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
        let (status, status_rx) = watch::channel(report("alpha"));
        let (handler_tx, mut handler_rx) = mpsc::channel::<Call>(8);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            while let Some(call) = handler_rx.recv().await {
                seen2.lock().unwrap().push(Seen {
                    request: call.request.clone(),
                    caller: call.caller.clone(),
                });
                let resp = match &call.request {
                    ControlRequest::Standby { node } if node == "gamma" => {
                        ControlResponse::error("no such node: gamma")
                    }
                    r => {
                        ControlResponse::ok(format!("done: {}", serde_json::to_string(r).unwrap()))
                    }
                };
                let _ = call.reply.send(resp);
            }
        });
        tokio::spawn(serve_with(listener, policy, limits, status_rx, handler_tx));
        Fixture {
            _dir: dir,
            path,
            status,
            seen,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Sends `lines` from a blocking client and reads `answers` lines back.
async fn exchange(path: &Path, lines: &[&str], answers: usize) -> Vec<String> {
    let path = path.to_owned();
    let lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut s = StdStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut out = Vec::new();
        for l in &lines {
            s.write_all(l.as_bytes()).unwrap();
            s.write_all(b"\n").unwrap();
        }
        for _ in 0..answers {
            let mut a = String::new();
            r.read_line(&mut a).unwrap();
            out.push(a.trim_end().to_owned());
        }
        out
    })
    .await
    .unwrap()
}

/// Runs `socat` as uid 65534 with `setpriv_args` for its groups, sends
/// `line`, returns what came back.
async fn as_nobody(path: &Path, setpriv_args: &[String], line: &str) -> String {
    let path = path.to_owned();
    let args = setpriv_args.to_vec();
    let line = line.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new("setpriv")
            .arg(format!("--reuid={NOBODY}"))
            .args(&args)
            .args(["socat", "-t", "5", "-"])
            .arg(format!("UNIX-CONNECT:{}", path.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("setpriv");
        // A refused client may find the socket closed before it writes.
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{line}\n").as_bytes());
        let out = child.wait_with_output().unwrap();
        assert!(
            !out.stdout.is_empty(),
            "socat as nobody got no answer ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
    .await
    .unwrap()
}

fn response(line: &str) -> ControlResponse {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

#[tokio::test]
async fn root_is_allowed_and_requests_reach_the_daemon_with_the_caller() {
    require_root();
    let fx = Fixture::start(
        AccessPolicy::group("haclient"),
        Limits::default(),
        None,
        false,
    );
    let got = exchange(
        &fx.path,
        &[
            r#"{"cmd":"status"}"#,
            r#"{"cmd":"standby","node":"alpha"}"#,
            r#"{"cmd":"standby","node":"gamma"}"#,
            r#"{"cmd":"move","to":"beta","for_ms":600000}"#,
        ],
        4,
    )
    .await;
    let status = response(&got[0]);
    assert!(status.ok);
    assert_eq!(*status.status.unwrap(), report("alpha"));
    assert_eq!(
        got[1],
        r#"{"ok":true,"message":"done: {\"cmd\":\"standby\",\"node\":\"alpha\"}"}"#
    );
    assert_eq!(got[2], r#"{"ok":false,"error":"no such node: gamma"}"#);
    assert!(response(&got[3]).ok);
    let seen = fx.seen();
    assert_eq!(
        seen.len(),
        3,
        "status is answered by the server, not the daemon: {seen:?}"
    );
    assert_eq!(
        seen[2].request,
        ControlRequest::Move {
            to: "beta".into(),
            for_ms: Some(600_000)
        }
    );
    assert_eq!(seen[0].caller.uid, 0);
    assert_eq!(
        seen[0].caller.pid,
        Some(i32::try_from(std::process::id()).unwrap())
    );
}

#[tokio::test]
async fn another_uid_is_refused_with_one_line() {
    require_root();
    let group = TempGroup::new();
    let fx = Fixture::start(
        AccessPolicy::group(&group.name),
        Limits::default(),
        None,
        true,
    );
    let out = as_nobody(
        &fx.path,
        &[format!("--regid={NOBODY}"), "--clear-groups".into()],
        r#"{"cmd":"maintenance","on":true}"#,
    )
    .await;
    assert_eq!(
        out,
        format!(
            "{{\"ok\":false,\"error\":\"permission denied: uid {NOBODY} is not root or in group {}\"}}\n",
            group.name
        )
    );
    assert!(fx.seen().is_empty(), "a refused request reached the daemon");
}

#[tokio::test]
async fn members_of_the_admin_group_are_allowed() {
    require_root();
    let group = TempGroup::new();
    let fx = Fixture::start(
        AccessPolicy::group(&group.name),
        Limits::default(),
        None,
        true,
    );
    // A supplementary group...
    let out = as_nobody(
        &fx.path,
        &[
            format!("--regid={NOBODY}"),
            format!("--groups={}", group.gid),
        ],
        r#"{"cmd":"cleanup","resource":"db"}"#,
    )
    .await;
    assert!(response(out.trim_end()).ok, "{out}");
    // ... or the primary one.
    let out = as_nobody(
        &fx.path,
        &[format!("--regid={}", group.gid), "--clear-groups".into()],
        r#"{"cmd":"unmove"}"#,
    )
    .await;
    assert!(response(out.trim_end()).ok, "{out}");
    let seen = fx.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].caller.uid, NOBODY);
    assert_eq!(seen[0].caller.gid, NOBODY);
    assert!(
        seen[0].caller.groups.contains(&group.gid),
        "{:?}",
        seen[0].caller
    );
    assert_eq!(
        seen[0].request,
        ControlRequest::Cleanup {
            resource: Some("db".into())
        }
    );
    assert_eq!(seen[1].caller.gid, group.gid);
    assert_eq!(seen[1].request, ControlRequest::Unmove);
}

#[tokio::test]
async fn without_the_group_only_root_gets_in() {
    require_root();
    let missing = format!("hpt-none-{}", std::process::id());
    let fx = Fixture::start(AccessPolicy::group(&missing), Limits::default(), None, true);
    let out = as_nobody(
        &fx.path,
        &[format!("--regid={NOBODY}"), "--clear-groups".into()],
        r#"{"cmd":"status"}"#,
    )
    .await;
    let resp = response(out.trim_end());
    assert!(!resp.ok);
    assert_eq!(
        resp.error.unwrap(),
        format!(
            "permission denied: uid {NOBODY} is not root or in group {missing} (the group does not exist)"
        )
    );
    let got = exchange(&fx.path, &[r#"{"cmd":"status"}"#], 1).await;
    assert!(response(&got[0]).ok);
}

#[test]
fn access_policy_rules() {
    let root = Caller {
        uid: 0,
        gid: 0,
        pid: None,
        groups: vec![],
    };
    let user = Caller {
        uid: 1000,
        gid: 1000,
        pid: None,
        groups: vec![4, 27],
    };
    let root_only = AccessPolicy { admin_group: None };
    assert!(root_only.check(&root).is_ok());
    assert_eq!(
        root_only.check(&user).unwrap_err(),
        "permission denied: uid 1000 is not root"
    );
    assert_eq!(
        parse_groups("Name:\tbash\nUid:\t0\t0\t0\t0\nGroups:\t4 27 1001 \nNgid:\t0\n"),
        [4, 27, 1001]
    );
    assert_eq!(parse_groups("Groups:\t\n"), Vec::<u32>::new());
    assert_eq!(parse_groups("Name: x\n"), Vec::<u32>::new());
}

#[tokio::test]
async fn malformed_lines_get_an_error_and_the_connection_lives_on() {
    require_root();
    let fx = Fixture::start(
        AccessPolicy::group("haclient"),
        Limits::default(),
        None,
        false,
    );
    let got = exchange(
        &fx.path,
        &[
            "{nope",
            r#"{"cmd":"reboot"}"#,
            r#"{"cmd":"standby"}"#,
            "",
            r#"{"cmd":"status"}"#,
        ],
        4,
    )
    .await;
    let errors: Vec<String> = got[..3]
        .iter()
        .map(|l| response(l).error.unwrap())
        .collect();
    assert!(
        errors[0].starts_with("malformed request: key must be a string"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("unknown variant `reboot`"),
        "{}",
        errors[1]
    );
    assert!(errors[2].contains("missing field `node`"), "{}", errors[2]);
    for e in &errors {
        assert!(
            e.contains(r#"{"cmd":"status"}"#),
            "the error shows the form: {e}"
        );
    }
    assert!(
        response(&got[3]).ok,
        "the blank line is skipped, status still answered"
    );
    assert!(fx.seen().is_empty());
}

#[tokio::test]
async fn an_overlong_line_is_refused_and_the_connection_closed() {
    require_root();
    let limits = Limits {
        max_line: 1024,
        ..Limits::default()
    };
    let fx = Fixture::start(AccessPolicy::group("haclient"), limits, None, false);
    let path = fx.path.clone();
    let (answer, rest) = tokio::task::spawn_blocking(move || {
        let mut s = StdStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // No newline, ever: the server must not wait for one.
        let _ = s.write_all(&[b'x'; 4096]);
        let mut r = BufReader::new(s);
        let mut a = String::new();
        r.read_line(&mut a).unwrap();
        let mut rest = String::new();
        let n = r.read_line(&mut rest).unwrap_or(0);
        (a, n)
    })
    .await
    .unwrap();
    assert_eq!(
        response(answer.trim_end()).error.unwrap(),
        "request line longer than 1024 bytes; closing the connection"
    );
    assert_eq!(rest, 0, "the connection was not closed");
}

#[tokio::test]
async fn idle_connections_are_closed() {
    require_root();
    let limits = Limits {
        idle_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let fx = Fixture::start(AccessPolicy::group("haclient"), limits, None, false);
    let path = fx.path.clone();
    let (n, waited) = tokio::task::spawn_blocking(move || {
        let s = StdStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let t = std::time::Instant::now();
        let mut line = String::new();
        let n = BufReader::new(s).read_line(&mut line).unwrap();
        (n, t.elapsed())
    })
    .await
    .unwrap();
    assert_eq!(n, 0, "expected the server to close the idle connection");
    assert!(
        waited < Duration::from_secs(5),
        "closed only after {waited:?}"
    );
}

#[tokio::test]
async fn bind_sets_modes_replaces_stale_sockets_and_refuses_live_ones() {
    require_root();
    let group = TempGroup::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/hapair/hapair.sock");
    let first = bind(&path, Some(Gid::from_raw(group.gid))).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), group.gid);
    let pmeta = std::fs::metadata(path.parent().unwrap()).unwrap();
    assert_eq!(pmeta.mode() & 0o777, 0o750);
    assert_eq!(pmeta.gid(), group.gid);

    // A live daemon is there: refused, and its socket still works.
    let e = bind(&path, None).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    assert!(e.to_string().contains("another hapair daemon"), "{e}");
    assert!(std::fs::symlink_metadata(&path).is_ok());
    let accept = tokio::spawn(async move { first.accept().await.map(|_| first) });
    let probe = tokio::task::spawn_blocking({
        let p = path.clone();
        move || StdStream::connect(p)
    });
    probe.await.unwrap().unwrap();
    let first = accept.await.unwrap().unwrap();

    // The daemon died and left its socket: replaced.
    drop(first);
    assert!(
        std::fs::symlink_metadata(&path).is_ok(),
        "the stale socket file is left behind"
    );
    let second = bind(&path, Some(Gid::from_raw(group.gid))).unwrap();
    let p = path.clone();
    let connect = tokio::task::spawn_blocking(move || StdStream::connect(p));
    second.accept().await.unwrap();
    connect.await.unwrap().unwrap();

    // Not a socket: left alone.
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"precious").unwrap();
    let e = bind(&file, None).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
}

#[tokio::test]
async fn watch_streams_each_change() {
    require_root();
    let limits = Limits {
        watch_interval: Duration::from_millis(50),
        ..Limits::default()
    };
    let fx = Fixture::start(AccessPolicy::group("haclient"), limits, None, false);
    let path = fx.path.clone();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let client = tokio::task::spawn_blocking(move || {
        let mut c = cli::client::Client::connect(&path).unwrap();
        c.watch(|s| {
            tx.send(s.clone()).unwrap();
            s.node != "gamma"
        })
        .unwrap()
    });
    let first = rx.recv().await.unwrap();
    assert_eq!(first.node, "alpha");
    fx.status.send_modify(|s| s.node = "beta".into());
    let second = rx.recv().await.unwrap();
    assert_eq!(second.node, "beta");
    fx.status.send_modify(|s| {
        s.node = "gamma".into();
        s.maintenance = true;
    });
    let third = rx.recv().await.unwrap();
    assert_eq!(third.node, "gamma");
    assert!(third.maintenance);
    assert_eq!(
        client.await.unwrap(),
        None,
        "the client ended the watch itself"
    );
}

#[tokio::test]
async fn watch_ends_when_the_daemon_drops_its_status() {
    require_root();
    let limits = Limits {
        watch_interval: Duration::from_millis(10),
        ..Limits::default()
    };
    let fx = Fixture::start(AccessPolicy::group("haclient"), limits, None, false);
    let got = exchange(&fx.path, &[r#"{"cmd":"watch"}"#], 1).await;
    assert!(response(&got[0]).ok);
    let path = fx.path.clone();
    let client = tokio::task::spawn_blocking(move || {
        let mut c = cli::client::Client::connect(&path).unwrap();
        let mut n = 0;
        c.watch(|_| {
            n += 1;
            true
        })
        .unwrap();
        n
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(fx.status);
    assert_eq!(client.await.unwrap(), 1, "one status, then end of stream");
}

#[tokio::test]
async fn the_server_stops_when_the_daemon_drops_its_handler() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let listener = bind(&dir.path().join("s.sock"), None).unwrap();
    let (_status, status_rx) = watch::channel(StatusReport::default());
    let (tx, rx) = mpsc::channel(1);
    let server = tokio::spawn(serve(
        listener,
        AccessPolicy::group("haclient"),
        status_rx,
        tx,
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!server.is_finished());
    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve did not return after the handler was dropped")
        .unwrap();
}

fn run_cli(args: Vec<String>) -> tokio::task::JoinHandle<(ExitCode, String, String)> {
    tokio::task::spawn_blocking(move || {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(subcommand)]
            cmd: OperatorCmd,
        }
        let cmd = T::try_parse_from(std::iter::once("hapair".to_owned()).chain(args))
            .unwrap()
            .cmd;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = cli::run_with(cmd, &mut std::io::empty(), false, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    })
}

#[tokio::test]
async fn operator_commands_end_to_end() {
    require_root();
    let fx = Fixture::start(
        AccessPolicy::group("haclient"),
        Limits::default(),
        None,
        false,
    );
    let sock = fx.path.to_str().unwrap().to_owned();
    let args = |a: &[&str]| -> Vec<String> {
        a.iter()
            .map(|s| (*s).to_owned())
            .chain(["--socket".to_owned(), sock.clone()])
            .collect()
    };

    let (code, out, err) = run_cli(args(&["move", "beta", "--for", "10m"]))
        .await
        .unwrap();
    assert_eq!(code, ExitCode::SUCCESS, "{err}");
    assert_eq!(
        out,
        "done: {\"cmd\":\"move\",\"to\":\"beta\",\"for_ms\":600000}\n"
    );

    let (code, out, err) = run_cli(args(&["standby", "gamma"])).await.unwrap();
    assert_eq!(code, ExitCode::from(cli::EXIT_REFUSED));
    assert!(out.is_empty());
    assert_eq!(err, "hapair: the daemon refused: no such node: gamma\n");

    let (code, out, _) = run_cli(args(&["standby", "gamma", "--json"]))
        .await
        .unwrap();
    assert_eq!(code, ExitCode::from(cli::EXIT_REFUSED));
    assert_eq!(out, "{\"ok\":false,\"error\":\"no such node: gamma\"}\n");

    let (code, out, _) = run_cli(args(&["fence", "confirm", "beta", "--yes"]))
        .await
        .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(out.contains("fence-confirm"), "{out}");

    fx.status.send_modify(|s| {
        s.nodes = vec![crate::cli::proto::NodeReport {
            name: "alpha".into(),
            state: NodeState::Standby,
            ..Default::default()
        }]
    });
    let (code, out, _) = run_cli(args(&["status", "--json"])).await.unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let got: StatusReport = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!(got, *fx.status.borrow());
    let (code, out, _) = run_cli(args(&["status"])).await.unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(
        out.ends_with("Problems:\n  * alpha is in standby: `hapair online alpha`\n"),
        "{out}"
    );

    let seen: Vec<ControlRequest> = fx.seen().into_iter().map(|s| s.request).collect();
    assert_eq!(
        seen,
        [
            ControlRequest::Move {
                to: "beta".into(),
                for_ms: Some(600_000)
            },
            ControlRequest::Standby {
                node: "gamma".into()
            },
            ControlRequest::Standby {
                node: "gamma".into()
            },
            ControlRequest::FenceConfirm {
                node: "beta".into()
            },
        ]
    );
}
