//! The runner against agents written to misbehave (`tests/agents/`), each
//! in a scratch OCF root:
//!
//! - `hang` (sleeps forever): times out, SIGTERM ends the group, nothing left;
//! - `stubborn` (ignores SIGTERM, forks a child that ignores it and keeps
//!   stdout open): SIGKILL after the grace period, nothing left, output
//!   printed before the timeout kept;
//! - `leaky` (exits 0 at once, leaving a "daemon" holding stdout): the
//!   result comes back after the linger time, and the daemon is left alone;
//! - `flood` (tens of MiB on both streams): every byte counted, both ends
//!   kept, the last exit reason found (memory: see `tests/memory.rs`);
//! - `suicide` (killed by a signal): signal reported, rc 1, soft failure;
//! - a missing agent and a non-executable one: rc 5 / rc 4, hard, and a
//!   probe of a missing agent finds the resource stopped;
//! - `envdump`: the exact environment (no `NOTIFY_SOCKET` even when ours
//!   has one), every exit code's class, exit reasons;
//! - several agents at once, and a run whose future is dropped halfway.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ra::{
    Action, CloneMeta, ExecStatus, Instance, Notify, NotifyOp, NotifyType, Observed, OcfExit,
    Recovery, Request, Verdict,
};

fn req(agent: &str, action: Action, timeout: Duration) -> Request {
    Request::new("r1", test_agent(agent), action, timeout)
}

fn env_of(stdout: &ra::Captured) -> BTreeMap<String, String> {
    assert!(stdout.is_complete());
    let mut all = stdout.head.clone();
    all.extend_from_slice(&stdout.tail);
    all.split(|&b| b == 0)
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=').expect("NAME=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[tokio::test]
async fn hanging_agent_times_out_and_its_group_dies_on_sigterm() {
    let root = ScratchRoot::new();
    let runner = root.runner();
    let t = Instant::now();
    let r = runner
        .run(&req("hang", Action::Start, Duration::from_millis(500)))
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(
        r.exec,
        ExecStatus::TimedOut {
            killed: false,
            unreaped: false
        }
    );
    assert_eq!(r.rc, OcfExit::ErrGeneric);
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Soft));
    assert!(took >= Duration::from_millis(500), "{took:?}");
    // SIGTERM ended it (no SIGKILL: `killed` is false); loose bound for
    // loaded machines.
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(r.stdout.text(), "hang: start started\n");
    let pid = r.pid.expect("pid");
    assert!(!ra::process_group_alive(pid), "group {pid} still alive");
}

#[tokio::test]
async fn stubborn_agent_gets_sigkill_and_leaves_nothing() {
    let root = ScratchRoot::new();
    let runner = root.runner();
    let t = Instant::now();
    let r = runner
        .run(&req("stubborn", Action::Stop, Duration::from_millis(500)))
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(
        r.exec,
        ExecStatus::TimedOut {
            killed: true,
            unreaped: false
        }
    );
    // 0.5 s timeout + 1 s grace, then SIGKILL.
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(r.classification.is_failed_stop());
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Soft));
    let out = r.stdout.text();
    assert!(
        out.starts_with("stubborn: stop started\nstubborn: child "),
        "{out}"
    );
    assert_eq!(r.stderr.text(), "stubborn: on stderr\n");
    let pid = r.pid.unwrap();
    assert!(!ra::process_group_alive(pid), "group {pid} still alive");
}

#[tokio::test]
async fn leftover_daemon_holding_stdout_neither_blocks_nor_dies() {
    let root = ScratchRoot::new();
    let runner = root.runner();
    let t = Instant::now();
    let r = runner
        .run(&req("leaky", Action::Start, Duration::from_secs(20)))
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(r.exec, ExecStatus::Exited { code: 0 });
    assert!(r.is_success());
    assert!(
        took < Duration::from_secs(2),
        "waited for the daemon: {took:?}"
    );
    assert!(
        r.timing.drain >= Duration::from_millis(90),
        "pipes read for the linger time: {:?}",
        r.timing.drain
    );
    assert!(r.stdout.text().starts_with("leaky: start\n"));
    // The daemon is the service: a successful action's group is not killed.
    let pid = r.pid.unwrap();
    assert!(ra::process_group_alive(pid), "the daemon was killed");
    let pgid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
    nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let t = Instant::now();
    while ra::process_group_alive(pid) && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!ra::process_group_alive(pid));
}

#[tokio::test]
async fn flood_is_counted_and_bounded() {
    let root = ScratchRoot::new();
    let runner = root.runner();
    let r = runner
        .run(
            &req("flood", Action::Monitor, Duration::from_secs(60))
                .param("out_mb", "24")
                .param("err_mb", "4"),
        )
        .await
        .unwrap();
    assert_eq!(r.exec, ExecStatus::Exited { code: 0 });
    let limits = runner.config().capture;
    assert_eq!(
        r.stdout.total,
        24 * 1048576 + "FLOOD-BEGIN\nFLOOD-END\n".len() as u64
    );
    assert_eq!(r.stdout.head.len(), limits.head);
    assert_eq!(r.stdout.tail.len(), limits.tail);
    assert!(r.stdout.head.starts_with(b"FLOOD-BEGIN\nflood stdout"));
    assert!(r.stdout.tail.ends_with(b"FLOOD-END\n"));
    assert!(r.stdout.omitted() > 20 * 1048576);
    assert!(r.stderr.total > 4 * 1048576);
    assert_eq!(
        r.stderr.head.len() + r.stderr.tail.len(),
        limits.head + limits.tail
    );
    // The last reason wins, though the first one is in the kept head and the
    // middle was dropped.
    assert_eq!(r.exit_reason.as_deref(), Some("printed a lot"));
    assert!(r.stdout.text().contains("bytes omitted ...]"));
}

#[tokio::test]
async fn agent_killed_by_a_signal() {
    let root = ScratchRoot::new();
    let runner = root.runner();
    for (sig, num) in [("KILL", 9), ("SEGV", 11)] {
        let r = runner
            .run(&req("suicide", Action::Start, Duration::from_secs(10)).param("signal", sig))
            .await
            .unwrap();
        assert!(
            matches!(r.exec, ExecStatus::Signaled { signal, .. } if signal == num),
            "{:?}",
            r.exec
        );
        assert_eq!(r.rc, OcfExit::ErrGeneric);
        assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Soft));
        assert!(!ra::process_group_alive(r.pid.unwrap()));
    }
}

#[tokio::test]
async fn missing_and_non_executable_agents() {
    let root = ScratchRoot::new();
    let runner = root.runner();
    let t = Duration::from_secs(5);

    let r = runner
        .run(&req("no-such-agent", Action::Start, t))
        .await
        .unwrap();
    assert_eq!(r.exec, ExecStatus::NotInstalled);
    assert_eq!(r.rc, OcfExit::ErrInstalled);
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Hard));
    assert!(r.pid.is_none());
    assert!(
        r.exit_reason.as_deref().unwrap().contains("No such file"),
        "{:?}",
        r.exit_reason
    );

    // A probe on a node without the agent: the resource is stopped here.
    let r = runner
        .run(&req("no-such-agent", Action::Monitor, t))
        .await
        .unwrap();
    assert_eq!(r.rc, OcfExit::ErrInstalled);
    assert_eq!(r.classification.verdict, Verdict::Success);
    assert_eq!(r.classification.observed, Some(Observed::Stopped));

    let r = runner.run(&req("noexec", Action::Start, t)).await.unwrap();
    assert_eq!(r.exec, ExecStatus::NotExecutable);
    assert_eq!(r.rc, OcfExit::ErrPerm);
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Hard));
    assert!(r.exit_reason.as_deref().unwrap().contains("not executable"));

    // A directory is not an agent.
    fs::create_dir(
        root.path()
            .join("resource.d")
            .join(TEST_PROVIDER)
            .join("adir"),
    )
    .unwrap();
    let r = runner.run(&req("adir", Action::Start, t)).await.unwrap();
    assert_eq!(r.exec, ExecStatus::NotInstalled);
}

#[test]
fn environment_is_exactly_what_the_runner_builds() {
    const NAME: &str = "environment_is_exactly_what_the_runner_builds";
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        // Run this same test again in a child whose own environment has
        // NOTIFY_SOCKET and a stray variable: neither may reach the agent.
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
            .env("NOTIFY_SOCKET", "/run/systemd/notify")
            .env("HAPAIR_STRAY_VARIABLE", "leaked")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the re-run with NOTIFY_SOCKET set failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let root = ScratchRoot::new();
    let runner = root.runner();
    let request = req("envdump", Action::Monitor, Duration::from_secs(10))
        .interval(Duration::from_secs(30))
        .check_level(20)
        .param("ip", "10.0.0.1")
        .param("with_space", "a b  c")
        .meta("target-role", "Started");
    let r = common::rt().block_on(runner.run(&request)).unwrap();
    assert!(r.is_success(), "{r:?}");
    let env = env_of(&r.stdout);
    let node = runner.config().node_name.clone();
    let root_s = root.path().display().to_string();
    let expected: BTreeMap<String, String> = [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("LC_ALL", "C"),
        ("OCF_ROOT", root_s.as_str()),
        ("OCF_RA_VERSION_MAJOR", "1"),
        ("OCF_RA_VERSION_MINOR", "1"),
        ("OCF_RESOURCE_INSTANCE", "r1"),
        ("OCF_RESOURCE_TYPE", "envdump"),
        ("OCF_RESOURCE_PROVIDER", TEST_PROVIDER),
        ("OCF_EXIT_REASON_PREFIX", "ocf-exit-reason:"),
        ("OCF_CHECK_LEVEL", "20"),
        ("OCF_RESKEY_ip", "10.0.0.1"),
        ("OCF_RESKEY_with_space", "a b  c"),
        ("OCF_RESKEY_CRM_meta_target_role", "Started"),
        ("OCF_RESKEY_CRM_meta_interval", "30000"),
        ("OCF_RESKEY_CRM_meta_timeout", "10000"),
        ("OCF_RESKEY_CRM_meta_name", "monitor"),
        ("OCF_RESKEY_CRM_meta_on_node", node.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(env, expected);
    assert!(!env.contains_key("NOTIFY_SOCKET"));
}

#[tokio::test]
async fn notify_and_clone_variables_reach_the_agent() {
    let root = ScratchRoot::new();
    let runner = root.runner();
    let mut n = Notify::new(NotifyType::Pre, NotifyOp::Demote);
    n.demote = vec![Instance::new("drbd0:0", "alpha")];
    n.promoted = vec![Instance::new("drbd0:0", "alpha")];
    n.unpromoted = vec![Instance::new("drbd0:1", "beta")];
    n.all_unames = vec!["alpha".into(), "beta".into()];
    let request = Request::new(
        "drbd0",
        test_agent("envdump"),
        Action::Notify,
        Duration::from_secs(10),
    )
    .clone_meta(CloneMeta::promotable_pair(0))
    .notify(n);
    let r = runner.run(&request).await.unwrap();
    assert!(r.is_success());
    let env = env_of(&r.stdout);
    let m = |k: &str| {
        env.get(&format!("OCF_RESKEY_CRM_meta_{k}"))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(m("notify_type"), "pre");
    assert_eq!(m("notify_operation"), "demote");
    assert_eq!(m("notify_demote_uname"), "alpha");
    assert_eq!(m("notify_master_resource"), "drbd0:0");
    assert_eq!(m("notify_promoted_resource"), "drbd0:0");
    assert_eq!(m("notify_slave_uname"), "beta");
    assert_eq!(m("notify_unpromoted_uname"), "beta");
    assert_eq!(m("notify_start_resource"), " ");
    assert_eq!(m("notify_all_uname"), "alpha beta");
    assert_eq!(m("clone"), "0");
    assert_eq!(m("promotable"), "true");
    assert_eq!(m("master_max"), "1");
    assert_eq!(m("promoted_max"), "1");
    assert_eq!(m("name"), "notify");

    // reload-agent is passed through by name.
    let r = runner
        .run(&req(
            "envdump",
            Action::ReloadAgent,
            Duration::from_secs(10),
        ))
        .await
        .unwrap();
    assert_eq!(
        env_of(&r.stdout)["OCF_RESKEY_CRM_meta_name"],
        "reload-agent"
    );
}

#[tokio::test]
async fn exit_codes_become_typed_results() {
    let root = ScratchRoot::new();
    let runner = root.runner();
    let t = Duration::from_secs(10);
    let run = |action: Action, rc: u8| {
        let r = req("envdump", action, t).param("rc", &rc.to_string());
        let runner = runner.clone();
        async move { runner.run(&r).await.unwrap() }
    };
    use Recovery::*;
    use Verdict::*;
    let cases: &[(Action, u8, Verdict, Option<Observed>, bool)] = &[
        (Action::Start, 0, Success, None, false),
        (Action::Start, 1, Failed(Soft), None, false),
        (Action::Start, 2, Failed(Hard), None, false),
        (Action::Start, 5, Failed(Hard), None, false),
        (Action::Start, 6, Failed(Fatal), None, false),
        (Action::Start, 7, Failed(Soft), None, false),
        (Action::Stop, 7, Failed(Soft), None, false),
        (Action::Stop, 0, Success, None, false),
        (Action::Monitor, 7, Success, Some(Observed::Stopped), false),
        (Action::Monitor, 8, Success, Some(Observed::Promoted), false),
        (Action::Monitor, 190, Success, Some(Observed::Started), true),
        (
            Action::Monitor,
            191,
            Success,
            Some(Observed::Promoted),
            true,
        ),
        (
            Action::Monitor,
            9,
            Failed(Soft),
            Some(Observed::FailedPromoted),
            false,
        ),
        (Action::Notify, 1, Ignored, None, false),
        (Action::ValidateAll, 3, Ignored, None, false),
        (Action::ValidateAll, 6, Failed(Fatal), None, false),
        (Action::Promote, 42, Failed(Soft), None, false),
    ];
    for (action, rc, verdict, observed, degraded) in cases {
        let r = run(action.clone(), *rc).await;
        assert_eq!(
            r.exec,
            ExecStatus::Exited {
                code: i32::from(*rc)
            }
        );
        assert_eq!(r.rc.code(), *rc);
        assert_eq!(r.classification.verdict, *verdict, "{action} rc {rc}");
        assert_eq!(r.classification.observed, *observed, "{action} rc {rc}");
        assert_eq!(r.classification.degraded, *degraded, "{action} rc {rc}");
        assert_eq!(
            r.classification.is_failed_stop(),
            *action == Action::Stop && *rc != 0
        );
    }
    // A recurring monitor finding the resource stopped: it died.
    let r = runner
        .run(
            &req("envdump", Action::Monitor, t)
                .interval(Duration::from_secs(10))
                .param("rc", "7")
                .param("reason", "the state file is gone"),
        )
        .await
        .unwrap();
    assert_eq!(r.classification.verdict, Failed(Soft));
    assert_eq!(r.exit_reason.as_deref(), Some("the state file is gone"));
    assert_eq!(r.key.to_string(), "r1_monitor_10000");
    let done = r.done();
    assert_eq!(done.key, r.key);
    assert_eq!(done.rc, OcfExit::NotRunning);
    assert_eq!(done.classification, r.classification);
    assert_eq!(done.elapsed, r.timing.elapsed);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["rc"]["code"], 7);
    assert_eq!(json["rc"]["name"], "OCF_NOT_RUNNING");
    assert_eq!(json["classification"]["verdict"]["verdict"], "failed");
    assert_eq!(json["classification"]["verdict"]["recovery"], "soft");
    assert_eq!(json["exit_reason"], "the state file is gone");
    assert_eq!(json["agent"], "ocf:hapair-test:envdump");
    assert!(json["timing"]["elapsed_us"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_agents_run_at_once() {
    let root = ScratchRoot::new();
    let runner = root.runner();
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..6 {
        let runner = runner.clone();
        set.spawn(async move {
            let mut r = req("envdump", Action::Start, Duration::from_secs(10)).param("sleep", "1");
            r.resource = format!("r{i}");
            runner.run(&r).await.unwrap()
        });
    }
    let mut seen = Vec::new();
    while let Some(r) = set.join_next().await {
        let r = r.unwrap();
        assert!(r.is_success());
        assert!(r.timing.run >= Duration::from_secs(1));
        seen.push(r.key.resource);
    }
    seen.sort();
    assert_eq!(seen, ["r0", "r1", "r2", "r3", "r4", "r5"]);
    // Six one-second agents, run together.
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[tokio::test]
async fn dropping_a_run_kills_its_group() {
    let root = ScratchRoot::new();
    let runner = root.runner();
    let pidfile = root.path().join("hang.pid");
    let request = req("hang", Action::Start, Duration::from_secs(60))
        .param("pidfile", &pidfile.display().to_string());
    let outer = tokio::time::timeout(Duration::from_millis(500), runner.run(&request)).await;
    assert!(outer.is_err(), "the agent should still have been running");
    let pid: u32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t = Instant::now();
    while ra::process_group_alive(pid) && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !ra::process_group_alive(pid),
        "group {pid} survived the dropped run"
    );
}
