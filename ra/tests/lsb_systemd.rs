//! LSB init scripts and systemd units.
//!
//! - LSB: a test init script (`tests/agents/lsb-test`) in a scratch init
//!   directory: start/stop/status, Pacemaker's status mapping (0 running;
//!   1, 2, 3 stopped; 150 not installed; 151 no privilege; others error),
//!   header-derived meta-data, missing script, actions LSB has not got.
//! - systemd: where systemd is PID 1, a unit written to its runtime
//!   directory is started, monitored and stopped, and a failing one reports
//!   the unit's result; elsewhere (this machine, a container) every systemd
//!   request is refused with `Error::SystemdUnavailable` and a message that
//!   says why, and `list` says so too.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use ra::{Action, Agent, Observed, OcfExit, Recovery, Request, Runner, RunnerConfig, Verdict};

fn lsb_runner(dir: &Path) -> Runner {
    Runner::new(RunnerConfig {
        lsb_dir: dir.to_path_buf(),
        ..RunnerConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn lsb_script_with_pacemakers_status_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("lsb-test");
    fs::copy(agents_dir().join("lsb-test"), &script).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let runner = lsb_runner(dir.path());
    let agent: Agent = "lsb:lsb-test".parse().unwrap();
    let op = |action: Action| Request::new("svc", agent.clone(), action, Duration::from_secs(10));
    let run = |r: Request| {
        let runner = runner.clone();
        async move { runner.run(&r).await.unwrap() }
    };

    let r = run(op(Action::Monitor)).await;
    assert_eq!(r.argv[1], "status", "monitor runs `status`");
    assert_eq!(r.exec, ra::ExecStatus::Exited { code: 3 });
    assert_eq!(r.rc, OcfExit::NotRunning);
    assert_eq!(r.classification.observed, Some(Observed::Stopped));
    let r = run(op(Action::Start)).await;
    assert!(r.is_success());
    let r = run(op(Action::Monitor).interval(Duration::from_secs(15))).await;
    assert_eq!(r.rc, OcfExit::Success);
    assert!(r.is_success());
    let r = run(op(Action::Stop)).await;
    assert!(r.is_success());
    let r = run(op(Action::Monitor).interval(Duration::from_secs(15))).await;
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Soft));

    let forced = script.with_file_name("lsb-test.status-code");
    for (code, rc) in [(1, 7), (2, 7), (4, 1), (150, 5), (151, 4), (200, 1)] {
        fs::write(&forced, format!("{code}\n")).unwrap();
        let r = run(op(Action::Monitor)).await;
        assert_eq!(r.exec, ra::ExecStatus::Exited { code });
        assert_eq!(r.rc.code(), rc, "status {code}");
    }
    fs::remove_file(&forced).unwrap();
    // Other LSB actions pass through by name.
    let r = run(op(Action::Other("restart".into()))).await;
    assert!(r.is_success());
    // No OCF variables for LSB scripts, and no exit-reason parsing.
    assert!(r.exit_reason.is_none());

    for action in [
        Action::Promote,
        Action::Notify,
        Action::ValidateAll,
        Action::MetaData,
    ] {
        let e = runner.run(&op(action)).await.unwrap_err();
        assert!(
            matches!(e, ra::Error::Unsupported { class: "lsb", .. }),
            "{e}"
        );
    }

    let md = runner.meta_data(&agent).await.unwrap();
    assert_eq!(md.shortdesc, "hapair LSB test service");
    assert!(md.longdesc.starts_with("A fake service whose state"));
    assert_eq!(
        md.timeout_for(&Action::Start, None, None),
        Some(Duration::from_secs(15))
    );

    let missing: Agent = "lsb:no-such-script".parse().unwrap();
    let r = runner
        .run(&Request::new(
            "x",
            missing.clone(),
            Action::Monitor,
            Duration::from_secs(5),
        ))
        .await
        .unwrap();
    assert_eq!(
        r.classification.observed,
        Some(Observed::Stopped),
        "probe of a missing script"
    );
    assert!(matches!(
        runner.meta_data(&missing).await,
        Err(ra::Error::NotInstalled { .. })
    ));
    let list = runner.list().await.unwrap();
    assert_eq!(list.lsb, [agent]);
}

#[tokio::test]
async fn systemd_units() {
    let runner = system_runner();
    let unit = format!("hapair-ra-test-{}.service", std::process::id());
    let agent: Agent = format!("systemd:{unit}").parse().unwrap();
    let op = |action: Action| Request::new("unit", agent.clone(), action, Duration::from_secs(30));
    if !Path::new("/run/systemd/system").is_dir() {
        // systemd is not PID 1 here: every request is refused, clearly.
        for action in [Action::Start, Action::Stop, Action::Monitor] {
            let e = runner.run(&op(action)).await.unwrap_err();
            assert!(matches!(e, ra::Error::SystemdUnavailable(_)), "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains("not running as the init system (PID 1)")
                    && msg.contains("/run/systemd/system"),
                "{msg}"
            );
        }
        assert!(matches!(
            runner.meta_data(&agent).await,
            Err(ra::Error::SystemdUnavailable(_))
        ));
        let list = runner.list().await.unwrap();
        assert!(list.systemd.is_empty());
        assert!(list.systemd_unavailable.unwrap().contains("PID 1"));
        let e = runner.run(&op(Action::Start).netns("x")).await.unwrap_err();
        assert!(matches!(e, ra::Error::InvalidParam { .. }), "{e}");
        // Actions systemd units do not have are refused before that.
        let e = runner.run(&op(Action::Promote)).await.unwrap_err();
        assert!(
            matches!(
                e,
                ra::Error::Unsupported {
                    class: "systemd",
                    ..
                }
            ),
            "{e}"
        );
        return;
    }
    // systemd is PID 1: a real unit in the runtime directory.
    require_root();
    let path = Path::new("/run/systemd/system").join(&unit);
    fs::write(&path, "[Service]\nExecStart=/bin/sleep 600\n").unwrap();
    struct Cleanup(std::path::PathBuf, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("systemctl").args(["stop", &self.1]).status();
            let _ = fs::remove_file(&self.0);
            let _ = Command::new("systemctl").arg("daemon-reload").status();
        }
    }
    let _cleanup = Cleanup(path.clone(), unit.clone());
    sh(Command::new("systemctl").arg("daemon-reload"));
    let r = runner.run(&op(Action::Monitor)).await.unwrap();
    assert_eq!(r.classification.observed, Some(Observed::Stopped), "{r:#?}");
    let r = runner.run(&op(Action::Start)).await.unwrap();
    assert!(r.is_success(), "{r:#?}");
    let r = runner
        .run(&op(Action::Monitor).interval(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(r.rc, OcfExit::Success);
    let r = runner.run(&op(Action::Stop)).await.unwrap();
    assert!(r.is_success(), "{r:#?}");
    let r = runner.run(&op(Action::Monitor)).await.unwrap();
    assert_eq!(r.classification.observed, Some(Observed::Stopped));
    // A unit that fails to start reports its result.
    fs::write(
        &path,
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/false\n",
    )
    .unwrap();
    sh(Command::new("systemctl").arg("daemon-reload"));
    let r = runner.run(&op(Action::Start)).await.unwrap();
    assert!(!r.is_success(), "{r:#?}");
    assert!(
        r.exit_reason
            .as_deref()
            .unwrap_or("")
            .contains("Result=exit-code"),
        "{:?}",
        r.exit_reason
    );
}
