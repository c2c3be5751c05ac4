//! Debian's `ocf:heartbeat:Dummy` through the runner: meta-data, the
//! ocf-tester sequence (validate, probe, start, monitor, double start,
//! stop, double stop), exit reasons, unsupported actions, meta attributes
//! reaching the agent (migrate_to), and the captured meta-data fixtures of
//! every agent these tests use.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use ra::{Action, Agent, MetaData, Observed, OcfExit, ParamProblem, Recovery, Request, Verdict};

fn dummy() -> Agent {
    "ocf:heartbeat:Dummy".parse().unwrap()
}

#[tokio::test]
async fn dummy_lifecycle() {
    require_heartbeat_agent("Dummy");
    let runner = system_runner();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("r1.state");
    let state_s = state.display().to_string();
    let md = runner.meta_data(&dummy()).await.unwrap();
    assert_eq!(md.name, "Dummy");
    assert!(md.parameter("state").is_some() && md.parameter("fake").is_some());
    assert_eq!(
        md.timeout_for(&Action::Start, None, None),
        Some(Duration::from_secs(20))
    );
    let monitor = md.hint_for(&Action::Monitor, None, None).unwrap();
    assert_eq!(monitor.interval, Some(Duration::from_secs(10)));
    assert!(
        md.check_params(&[("state".to_string(), state_s.clone())].into())
            .is_empty()
    );

    let op = |action: Action| {
        Request::new("r1", dummy(), action, Duration::from_secs(20)).param("state", &state_s)
    };
    let run = |r: Request| {
        let runner = runner.clone();
        async move { runner.run(&r).await.unwrap() }
    };

    let r = run(op(Action::ValidateAll)).await;
    assert!(r.is_success(), "{r:#?}");

    // Probe on a stopped resource: 7, not a failure, no exit reason.
    let r = run(op(Action::Monitor)).await;
    assert_eq!(r.rc, OcfExit::NotRunning);
    assert_eq!(r.classification.verdict, Verdict::Success);
    assert_eq!(r.classification.observed, Some(Observed::Stopped));
    assert_eq!(r.exit_reason, None);

    // A recurring monitor on a stopped resource: it died; Dummy says why.
    let r = run(op(Action::Monitor).interval(Duration::from_secs(10))).await;
    assert_eq!(r.rc, OcfExit::NotRunning);
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Soft));
    assert_eq!(
        r.exit_reason.as_deref(),
        Some("No process state file found")
    );

    let r = run(op(Action::Start)).await;
    assert!(r.is_success(), "{r:#?}");
    assert!(state.exists());
    for _ in 0..2 {
        let r = run(op(Action::Monitor).interval(Duration::from_secs(10))).await;
        assert_eq!(r.rc, OcfExit::Success);
        assert!(r.is_success());
        assert_eq!(r.classification.observed, Some(Observed::Started));
    }
    let r = run(op(Action::Start)).await;
    assert!(r.is_success(), "start on started must succeed");

    // Meta attributes reach the agent: Dummy logs the migration target.
    let r = run(op(Action::MigrateTo).meta("migrate_target", "beta")).await;
    assert!(r.is_success());
    assert!(
        r.stderr.text().contains("Migrating r1 to beta."),
        "{}",
        r.stderr.text()
    );
    assert!(!state.exists(), "migrate_to stops Dummy");
    let r = run(op(Action::Start)).await;
    assert!(r.is_success());

    let r = run(op(Action::Stop)).await;
    assert!(r.is_success());
    assert!(!r.classification.is_failed_stop());
    assert!(!state.exists());
    let r = run(op(Action::Stop)).await;
    assert!(r.is_success(), "stop on stopped must succeed");
    let r = run(op(Action::Monitor)).await;
    assert_eq!(r.classification.observed, Some(Observed::Stopped));

    // Unsupported actions: 3 is hard for one-shot actions, ignored for notify.
    let r = run(op(Action::Other("frobnicate".into()))).await;
    assert_eq!(r.rc, OcfExit::ErrUnimplemented);
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Hard));
    let r = run(op(Action::Notify)).await;
    assert_eq!(r.rc, OcfExit::ErrUnimplemented);
    assert_eq!(r.classification.verdict, Verdict::Ignored);
}

#[tokio::test]
async fn dummy_invalid_state_directory() {
    require_heartbeat_agent("Dummy");
    let runner = system_runner();
    let r = runner
        .run(
            &Request::new("r2", dummy(), Action::ValidateAll, Duration::from_secs(20))
                .param("state", "/nonexistent/hapair/dir/r2.state"),
        )
        .await
        .unwrap();
    assert_eq!(r.rc, OcfExit::ErrArgs);
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Hard));
    assert_eq!(
        r.exit_reason.as_deref(),
        Some("State file \"/nonexistent/hapair/dir/r2.state\" is not writable")
    );
}

#[tokio::test]
async fn meta_data_errors() {
    let root = ScratchRoot::new();
    let runner = root.runner();
    let err = runner
        .meta_data(&test_agent("no-such-agent"))
        .await
        .unwrap_err();
    assert!(matches!(err, ra::Error::NotInstalled { .. }), "{err}");
    // envdump prints its environment, not XML.
    let err = runner.meta_data(&test_agent("envdump")).await.unwrap_err();
    assert!(matches!(err, ra::Error::MetaData { .. }), "{err}");
    // A failing meta-data action reports its exit reason.
    let err = runner.meta_data(&test_agent("suicide")).await.unwrap_err();
    assert!(err.to_string().contains("killed by SIGKILL"), "{err}");
}

/// The meta-data the agents printed on this system (captured into
/// `tests/fixtures/`) parses into what the tests and the daemon rely on.
#[test]
fn captured_meta_data_fixtures() {
    let fixture = |name: &str| {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("{name}.xml"));
        MetaData::parse(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let s = Duration::from_secs;

    let fs = fixture("Filesystem");
    assert_eq!(fs.name, "Filesystem");
    let required: Vec<&str> = fs
        .parameters
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(required, ["device", "directory", "fstype"]);
    assert_eq!(fs.timeout_for(&Action::Start, None, None), Some(s(60)));
    assert_eq!(
        fs.timeout_for(&Action::Monitor, None, Some(20)),
        Some(s(40))
    );
    assert_eq!(
        fs.check_params(&[("device".to_string(), "/dev/sdb1".to_string())].into()),
        [
            ParamProblem::MissingRequired {
                name: "directory".into()
            },
            ParamProblem::MissingRequired {
                name: "fstype".into()
            },
        ]
    );

    let ip = fixture("IPaddr2");
    assert!(ip.parameter("ip").unwrap().required);
    assert_eq!(ip.parameter("cidr_netmask").unwrap().default, None);
    let arp = ip.parameter("arp_interval").unwrap();
    assert_eq!(arp.content, ra::metadata::ContentType::Integer);
    assert_eq!(arp.default.as_deref(), Some("200"));
    assert_eq!(ip.timeout_for(&Action::Monitor, None, None), Some(s(20)));
    assert!(
        ip.check_params(
            &[
                ("ip".to_string(), "10.1.1.1".to_string()),
                ("arp_interval".to_string(), "often".to_string())
            ]
            .into()
        )
        .contains(&ParamProblem::NotInteger {
            name: "arp_interval".into(),
            value: "often".into()
        })
    );

    let pg = fixture("pgsql");
    assert_eq!(
        pg.parameter("pgport").unwrap().default.as_deref(),
        Some("5432")
    );
    assert_eq!(pg.timeout_for(&Action::Start, None, None), Some(s(120)));
    let promoted = pg
        .hint_for(&Action::Monitor, Some(ra::Role::Promoted), None)
        .unwrap();
    assert_eq!(promoted.interval, Some(s(29)));
    assert_eq!(
        pg.hint_for(&Action::Monitor, None, None).unwrap().interval,
        Some(s(30))
    );
    assert!(pg.supports(&Action::Promote) && pg.supports(&Action::Notify));

    let my = fixture("mysql");
    assert_eq!(
        my.parameter("binary").unwrap().default.as_deref(),
        Some("/usr/bin/mysqld_safe")
    );
    assert_eq!(
        my.hint_for(&Action::Monitor, Some(ra::Role::Promoted), None)
            .unwrap()
            .interval,
        Some(s(10))
    );
    assert_eq!(
        my.hint_for(&Action::Monitor, Some(ra::Role::Started), None)
            .unwrap()
            .interval,
        Some(s(30)),
        "Unpromoted"
    );

    let d = fixture("Dummy");
    assert_eq!(d.defaults()["fake"], "dummy");
    let effective = ra::with_defaults(&d, &[("fake".to_string(), "changed".to_string())].into());
    assert_eq!(effective["fake"], "changed");
    assert_eq!(
        effective["state"],
        "/run/resource-agents/Dummy-RESOURCE_ID.state"
    );
}
