//! Protocol round-trips, renderer golden tests and the 80-column property,
//! command-line parsing, and the CLI's exit codes without a daemon.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use proptest::prelude::*;

use super::proto::*;
use super::*;

/// A pair in trouble: every section filled, several problems.
pub(crate) fn troubled_report() -> StatusReport {
    let now = 1_700_000_000_000;
    StatusReport {
        cluster: "pg-pair".into(),
        node: "alpha".into(),
        generated_unix_ms: now,
        version: "0.1.0".into(),
        nodes: vec![
            NodeReport {
                name: "alpha".into(),
                state: NodeState::Standby,
                role: NodeRole::Stopped,
                last_seen_ms: None,
                incarnation: Some("3f2a91c0d4e5f607".into()),
            },
            NodeReport {
                name: "beta".into(),
                state: NodeState::Offline,
                role: NodeRole::Unknown,
                last_seen_ms: Some(312_000),
                incarnation: None,
            },
        ],
        links: vec![
            LinkReport {
                name: "ring0".into(),
                state: LinkState::Down,
                last_seen_ms: Some(312_000),
                rtt_us: Some(350),
                loss_pct: Some(100.0),
                packets_in: 120_344,
                packets_out: 121_900,
                dropped: BTreeMap::from([("bad-tag".into(), 3), ("replay".into(), 1)]),
            },
            LinkReport {
                name: "lan".into(),
                state: LinkState::Warn,
                last_seen_ms: Some(640),
                rtt_us: Some(12_400),
                loss_pct: Some(4.0),
                packets_in: 5,
                packets_out: 9,
                dropped: BTreeMap::new(),
            },
        ],
        lease: Some(LeaseReport {
            device: "/dev/disk/by-id/scsi-lease".into(),
            holder: Some("alpha".into()),
            counter: 4711,
            remaining_ms: Some(-2_500),
            age_ms: Some(900),
        }),
        drbd: Some(DrbdReport {
            resource: "r0".into(),
            role: "Secondary".into(),
            disk: "UpToDate".into(),
            peer_disk: "DUnknown".into(),
            connection: "StandAlone".into(),
            sync_pct: None,
            split_brain: None,
        }),
        resources: vec![
            ResourceReport {
                name: "drbd".into(),
                agent: "ocf:linbit:drbd".into(),
                kind: "drbd".into(),
                state: ResourceState::Stopped,
                node: None,
                fail_counts: BTreeMap::new(),
                last_failure: None,
                monitor_interval_ms: Some(15_000),
            },
            ResourceReport {
                name: "db".into(),
                agent: "ocf:heartbeat:pgsql".into(),
                kind: "service".into(),
                state: ResourceState::Failed,
                node: Some("alpha".into()),
                fail_counts: BTreeMap::from([("alpha".into(), 3)]),
                last_failure: Some(FailureReport {
                    node: "alpha".into(),
                    op: "monitor".into(),
                    reason: "not running (7): postmaster.pid missing".into(),
                    age_ms: 125_000,
                }),
                monitor_interval_ms: Some(10_000),
            },
        ],
        migration_threshold: 3,
        attributes: BTreeMap::from([(
            "alpha".into(),
            BTreeMap::from([
                ("ping".into(), "100".into()),
                ("health".into(), "green".into()),
            ]),
        )]),
        maintenance: true,
        moves: vec![MoveReport {
            to: "beta".into(),
            remaining_ms: Some(540_000),
        }],
        fencing: FencingReport {
            state: FenceState::FailedWaitingConfirm,
            target: Some("beta".into()),
            level: Some(2),
            age_ms: Some(180_000),
        },
        config: ConfigReport {
            hash: "a1b2c3d4e5f6a7b8".into(),
            peer_hash: Some("ffee000011112222".into()),
        },
        dropped: BTreeMap::from([("bad-tag".into(), 3), ("replay".into(), 1)]),
        transitions: vec![
            Transition {
                unix_ms: now - 312_000,
                text: "beta lost on every link".into(),
            },
            Transition {
                unix_ms: now - 180_000,
                text: "fencing beta: level 2 (fence_ipmilan) failed: connection timed out".into(),
            },
        ],
    }
}

/// A healthy pair.
pub(crate) fn healthy_report() -> StatusReport {
    StatusReport {
        cluster: "nfs".into(),
        node: "alpha".into(),
        generated_unix_ms: 10_000_000,
        version: "0.1.0".into(),
        nodes: vec![
            NodeReport {
                name: "alpha".into(),
                state: NodeState::Online,
                role: NodeRole::Primary,
                last_seen_ms: None,
                incarnation: Some("0123456789abcdef".into()),
            },
            NodeReport {
                name: "beta".into(),
                state: NodeState::Online,
                role: NodeRole::Secondary,
                last_seen_ms: Some(120),
                incarnation: Some("fedcba9876543210".into()),
            },
        ],
        links: vec![LinkReport {
            name: "ring0".into(),
            state: LinkState::Up,
            last_seen_ms: Some(150),
            rtt_us: Some(2_300),
            loss_pct: Some(0.0),
            packets_in: 100,
            packets_out: 101,
            dropped: BTreeMap::new(),
        }],
        lease: Some(LeaseReport {
            device: "/dev/sdb1".into(),
            holder: Some("alpha".into()),
            counter: 12,
            remaining_ms: Some(8_000),
            age_ms: Some(200),
        }),
        drbd: None,
        resources: vec![ResourceReport {
            name: "export".into(),
            agent: "systemd:nfs-server".into(),
            kind: "service".into(),
            state: ResourceState::Running,
            node: Some("alpha".into()),
            fail_counts: BTreeMap::from([("alpha".into(), 1)]),
            last_failure: None,
            monitor_interval_ms: Some(10_000),
        }],
        migration_threshold: 3,
        config: ConfigReport {
            hash: "abc".into(),
            peer_hash: Some("abc".into()),
        },
        transitions: vec![Transition {
            unix_ms: 10_000_000 - 3_725_000,
            text: "alpha: stack running".into(),
        }],
        ..Default::default()
    }
}

#[test]
fn requests_from_the_protocol_description_parse_and_round_trip() {
    let cases = [
        (r#"{"cmd":"status"}"#, ControlRequest::Status),
        (r#"{"cmd":"watch"}"#, ControlRequest::Watch),
        (
            r#"{"cmd":"standby","node":"alpha"}"#,
            ControlRequest::Standby {
                node: "alpha".into(),
            },
        ),
        (
            r#"{"cmd":"online","node":"alpha"}"#,
            ControlRequest::Online {
                node: "alpha".into(),
            },
        ),
        (
            r#"{"cmd":"move","to":"beta","for_ms":600000}"#,
            ControlRequest::Move {
                to: "beta".into(),
                for_ms: Some(600_000),
            },
        ),
        (
            r#"{"cmd":"move","to":"beta"}"#,
            ControlRequest::Move {
                to: "beta".into(),
                for_ms: None,
            },
        ),
        (r#"{"cmd":"unmove"}"#, ControlRequest::Unmove),
        (
            r#"{"cmd":"cleanup","resource":"db"}"#,
            ControlRequest::Cleanup {
                resource: Some("db".into()),
            },
        ),
        (
            r#"{"cmd":"cleanup"}"#,
            ControlRequest::Cleanup { resource: None },
        ),
        (
            r#"{"cmd":"maintenance","on":true}"#,
            ControlRequest::Maintenance { on: true },
        ),
        (
            r#"{"cmd":"fence-confirm","node":"beta"}"#,
            ControlRequest::FenceConfirm {
                node: "beta".into(),
            },
        ),
    ];
    for (text, want) in cases {
        let got: ControlRequest = serde_json::from_str(text).unwrap();
        assert_eq!(got, want, "{text}");
        assert_eq!(serde_json::to_string(&got).unwrap(), text);
    }
}

#[test]
fn bad_requests_are_errors_that_say_what_is_wrong() {
    let e = serde_json::from_str::<ControlRequest>(r#"{"cmd":"reboot"}"#).unwrap_err();
    assert!(e.to_string().contains("unknown variant `reboot`"), "{e}");
    let e = serde_json::from_str::<ControlRequest>(r#"{"cmd":"standby","nod":"a"}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field `nod`"), "{e}");
    let e = serde_json::from_str::<ControlRequest>(r#"{"cmd":"standby"}"#).unwrap_err();
    assert!(e.to_string().contains("missing field `node`"), "{e}");
    let e = serde_json::from_str::<ControlRequest>(r#"{"node":"a"}"#).unwrap_err();
    assert!(e.to_string().contains("missing field `cmd`"), "{e}");
}

#[test]
fn responses_round_trip_and_match_the_wire_shape() {
    let ok = ControlResponse::ok("alpha is in standby");
    assert_eq!(
        serde_json::to_string(&ok).unwrap(),
        r#"{"ok":true,"message":"alpha is in standby"}"#
    );
    let err = ControlResponse::error("no such node: gamma");
    assert_eq!(
        serde_json::to_string(&err).unwrap(),
        r#"{"ok":false,"error":"no such node: gamma"}"#
    );
    for r in [ok, err, ControlResponse::status(troubled_report())] {
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<ControlResponse>(&text).unwrap(), r);
    }
}

#[test]
fn status_report_round_trips_and_reads_what_a_newer_daemon_sends() {
    let r = troubled_report();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["fencing"]["state"], "failed-waiting-confirm");
    assert_eq!(v["nodes"][1]["state"], "offline");
    assert_eq!(v["resources"][1]["last_failure"]["op"], "monitor");
    assert_eq!(serde_json::from_value::<StatusReport>(v).unwrap(), r);
    // An empty object is a report with nothing known; unknown states and
    // fields from a newer daemon do not break an older client.
    assert_eq!(
        serde_json::from_str::<StatusReport>("{}").unwrap(),
        StatusReport::default()
    );
    let newer: StatusReport = serde_json::from_str(
        r#"{"node":"a","quorum":"yes","nodes":[{"name":"a","state":"drained","role":"witness"}],
            "fencing":{"state":"sleeping"}}"#,
    )
    .unwrap();
    assert_eq!(newer.nodes[0].state, NodeState::Unknown);
    assert_eq!(newer.nodes[0].role, NodeRole::Unknown);
    assert_eq!(newer.fencing.state, FenceState::Unknown);
}

const TROUBLED: &str = "\
Cluster pg-pair, node alpha, hapair 0.1.0, CONFIG DIFFERS, MAINTENANCE
Nodes:
  alpha            standby  stopped    inc 3f2a91c…
  beta             offline  unknown    seen 5m12s ago
Links:
  ring0        DOWN  seen 5m12s ago rtt 350us loss 100% rx 120344 tx 121900
    dropped: bad-tag 3, replay 1
  lan          WARN  seen 640ms ago rtt 12ms loss 4% rx 5 tx 9
Lease: held by alpha, counter 4711, ran out 2s ago, read 900ms ago
  on /dev/disk/by-id/scsi-lease
DRBD r0: Secondary UpToDate, peer DUnknown, StandAlone
Resources (maintenance: not managed):
  drbd         stopped   -          drbd       ocf:linbit:drbd
  db           FAILED    alpha      service    ocf:heartbeat:pgsql
    3 failures on alpha; last: monitor on alpha 2m5s ago: not running (7):
    postmaster.pid missing
Attributes:
  alpha: health=green ping=100
Move: to beta, 9m left
Fencing: FAILED, waiting for confirmation of beta, level 2, 3m ago
Dropped packets: bad-tag 3, replay 1
Transitions:
    5m12s ago  beta lost on every link
       3m ago  fencing beta: level 2 (fence_ipmilan) failed: connection timed
               out
Problems:
  * fencing beta failed at every level and the stack waits:
    `hapair fence confirm beta` once you have checked beta is powered off
  * the nodes run different configs (a1b2c3d4e5f… here, ffee0000111… on the
    peer): copy the right /etc/hapair/hapair.toml to both nodes and restart
    hapair where it changed
  * beta is offline (last seen 5m12s ago): check it is up and
    `systemctl start hapair` there
  * link ring0 is down (last packet 5m12s ago): check its cable and interface
    (`ip link`); it comes back by itself
  * maintenance is on, resources are not managed: `hapair maintenance off`
  * alpha is in standby: `hapair online alpha`
  * db failed 3 times on alpha (threshold 3): `hapair cleanup db`
  * move to beta active for 9m: `hapair unmove`
  * DRBD r0 is StandAlone (peer disk DUnknown): see `drbdadm status r0`
";

const HEALTHY: &str = "\
Cluster nfs, node alpha, hapair 0.1.0, config in sync
Nodes:
  alpha            online   primary    inc 0123456…
  beta             online   secondary  seen 120ms ago inc fedcba9…
Links:
  ring0        up    seen 150ms ago rtt 2.3ms loss 0% rx 100 tx 101
Lease: held by alpha, counter 12, 8s left, read 200ms ago
  on /dev/sdb1
Resources:
  export       running   alpha      service    systemd:nfs-server
    1 failure on alpha
Transitions:
     1h2m ago  alpha: stack running
Problems: none
";

const EMPTY: &str = "\
Cluster ?, node ?
Nodes:
  (none known)
Lease: not read yet
Resources:
  (none)
Problems: none
";

#[test]
fn golden_troubled_pair() {
    assert_eq!(render::status(&troubled_report()), TROUBLED);
}

#[test]
fn golden_healthy_pair() {
    assert_eq!(render::status(&healthy_report()), HEALTHY);
}

#[test]
fn golden_empty_report() {
    assert_eq!(render::status(&StatusReport::default()), EMPTY);
}

#[test]
fn problems_name_the_one_command_that_fixes_each() {
    let mut r = healthy_report();
    r.nodes[1].state = NodeState::Unknown;
    r.resources[0].state = ResourceState::Blocked;
    r.moves.push(MoveReport {
        to: "beta".into(),
        remaining_ms: None,
    });
    assert_eq!(
        render::problems(&r),
        [
            "beta has not been heard yet: check it is up and `systemctl start hapair` there",
            "export is blocked on alpha after a hard error: fix the cause, then `hapair cleanup export`",
            "move to beta active until cleared: `hapair unmove`",
        ]
    );
    // Below the threshold, a count alone is not a problem; at it, it is.
    r = healthy_report();
    assert!(render::problems(&r).is_empty());
    r.resources[0].fail_counts.insert("beta".into(), 3);
    assert_eq!(
        render::problems(&r),
        ["export failed 3 times on beta (threshold 3): `hapair cleanup export`"]
    );
}

fn assert_fits(text: &str) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= render::WIDTH,
            "line of {} columns:\n{line}\nin:\n{text}",
            line.chars().count()
        );
        assert!(
            !line.chars().any(char::is_control),
            "control character in {line:?}"
        );
    }
}

#[test]
fn long_names_are_cut_to_80_columns() {
    let long = "x".repeat(200);
    let mut r = troubled_report();
    r.cluster = long.clone();
    r.node = long.clone();
    r.version = long.clone();
    for n in &mut r.nodes {
        n.name = format!("{long}-{}", n.name);
        n.incarnation = Some(long.clone());
        n.last_seen_ms = Some(u64::MAX);
    }
    for k in &mut r.links {
        k.name = long.clone();
        k.last_seen_ms = Some(u64::MAX);
        k.rtt_us = Some(u64::MAX);
        k.packets_in = u64::MAX;
        k.packets_out = u64::MAX;
        k.loss_pct = Some(1e300);
        k.dropped.insert(long.clone(), u64::MAX);
    }
    let lease = r.lease.as_mut().unwrap();
    lease.holder = Some(long.clone());
    lease.device = long.clone();
    lease.counter = u64::MAX;
    lease.remaining_ms = Some(i64::MIN);
    let d = r.drbd.as_mut().unwrap();
    (d.resource, d.role, d.disk, d.peer_disk, d.connection) = (
        long.clone(),
        long.clone(),
        long.clone(),
        long.clone(),
        long.clone(),
    );
    d.sync_pct = Some(1e300);
    for res in &mut r.resources {
        res.name = long.clone();
        res.agent = long.clone();
        res.kind = long.clone();
        res.node = Some(long.clone());
        res.fail_counts.insert(long.clone(), u32::MAX);
        res.last_failure = Some(FailureReport {
            node: long.clone(),
            op: long.clone(),
            reason: format!("{long} \x1b[2J{long}"),
            age_ms: u64::MAX,
        });
    }
    r.attributes
        .insert(long.clone(), BTreeMap::from([(long.clone(), long.clone())]));
    r.moves[0].to = long.clone();
    r.fencing.target = Some(long.clone());
    r.config.peer_hash = Some(long.clone());
    r.transitions.push(Transition {
        unix_ms: 0,
        text: format!("{long}\n{long} and so on"),
    });
    let text = render::status(&r);
    assert_fits(&text);
    // Cut, not dropped: the problems still name the commands.
    assert!(text.contains("`hapair unmove`"), "{text}");
    assert!(text.contains("`hapair maintenance off`"), "{text}");
}

proptest! {
    #[test]
    fn any_names_fit_80_columns(
        name in "\\PC{0,120}",
        text in "[ -~\u{e9}\u{2192}\t\n]{0,300}",
        n in any::<u64>(),
    ) {
        let mut r = troubled_report();
        r.nodes[0].name = name.clone();
        r.resources[1].name = name.clone();
        r.resources[1].agent = text.clone();
        r.links[0].name = name.clone();
        r.links[0].last_seen_ms = Some(n);
        r.moves[0].to = name.clone();
        r.transitions[0].text = text.clone();
        r.resources[1].last_failure.as_mut().unwrap().reason = text;
        assert_fits(&render::status(&r));
    }
}

#[test]
fn ages_are_compact() {
    let cases = [
        (0, "0ms"),
        (999, "999ms"),
        (1_000, "1s"),
        (59_999, "59s"),
        (60_000, "1m"),
        (545_000, "9m5s"),
        (3_600_000, "1h"),
        (3_725_000, "1h2m"),
        (86_400_000, "1d"),
        (90_000_000, "1d1h"),
    ];
    for (ms, want) in cases {
        assert_eq!(render::age(ms), want, "{ms}");
    }
}

/// The commands as main.rs will nest them.
#[derive(Debug, Parser)]
#[command(name = "hapair")]
struct TestCli {
    #[command(subcommand)]
    cmd: OperatorCmd,
}

fn parse(args: &[&str]) -> Result<OperatorCmd, clap::Error> {
    TestCli::try_parse_from(std::iter::once("hapair").chain(args.iter().copied())).map(|c| c.cmd)
}

#[test]
fn command_lines_become_requests() {
    let cases: [(&[&str], ControlRequest); 10] = [
        (&["status"], ControlRequest::Status),
        (&["status", "--watch", "--json"], ControlRequest::Watch),
        (
            &["standby", "alpha"],
            ControlRequest::Standby {
                node: "alpha".into(),
            },
        ),
        (
            &["online", "alpha"],
            ControlRequest::Online {
                node: "alpha".into(),
            },
        ),
        (
            &["move", "beta", "--for", "10m"],
            ControlRequest::Move {
                to: "beta".into(),
                for_ms: Some(600_000),
            },
        ),
        (
            &["move", "beta"],
            ControlRequest::Move {
                to: "beta".into(),
                for_ms: None,
            },
        ),
        (&["unmove"], ControlRequest::Unmove),
        (&["cleanup"], ControlRequest::Cleanup { resource: None }),
        (
            &["maintenance", "off"],
            ControlRequest::Maintenance { on: false },
        ),
        (
            &["fence", "confirm", "beta", "--yes"],
            ControlRequest::FenceConfirm {
                node: "beta".into(),
            },
        ),
    ];
    for (args, want) in cases {
        assert_eq!(parse(args).unwrap().request(), want, "{args:?}");
    }
    let c = parse(&["cleanup", "db", "--socket", "/tmp/x.sock", "--json"]).unwrap();
    assert_eq!(
        c.request(),
        ControlRequest::Cleanup {
            resource: Some("db".into())
        }
    );
    assert_eq!(c.common().socket, std::path::Path::new("/tmp/x.sock"));
    assert!(c.common().json);
    assert_eq!(
        parse(&["unmove"]).unwrap().common().socket,
        std::path::Path::new(DEFAULT_SOCKET)
    );
}

#[test]
fn usage_errors_are_exit_code_2() {
    for args in [
        &["maintenance", "maybe"][..],
        &["move", "beta", "--for", "soon"],
        &["move", "beta", "--for", "0s"],
        &["standby"],
        &["fence", "confirm"],
    ] {
        let e = parse(args).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{args:?}");
    }
    let e = parse(&["move", "beta", "--for", "soon"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("10m"), "{e}");
}

fn run_capture(args: &[&str], stdin: &str, interactive: bool) -> (ExitCode, String, String) {
    let cmd = parse(args).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(
        cmd,
        &mut Cursor::new(stdin.as_bytes()),
        interactive,
        &mut out,
        &mut err,
    );
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn unreachable_daemon_is_exit_code_3_naming_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nobody-here.sock");
    let s = sock.to_str().unwrap();
    let (code, out, err) = run_capture(&["status", "--socket", s], "", false);
    assert_eq!(code, ExitCode::from(EXIT_UNREACHABLE));
    assert!(out.is_empty());
    assert!(err.contains(s), "{err}");
    assert!(err.contains("start hapair"), "{err}");
    assert!(err.contains("--socket"), "{err}");
}

#[test]
fn fence_confirm_wants_the_node_name_typed() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("x.sock");
    let s = sock.to_str().unwrap();
    // Wrong name: nothing sent (exit 1, and not 3: it never connected).
    let (code, _, err) = run_capture(
        &["fence", "confirm", "beta", "--socket", s],
        "alpha\n",
        true,
    );
    assert_eq!(code, ExitCode::from(EXIT_REFUSED));
    assert!(err.contains("split brain"), "{err}");
    assert!(err.contains("type the node name"), "{err}");
    assert!(err.contains("nothing done"), "{err}");
    // No answer at all (a script without --yes): usage.
    let (code, _, err) = run_capture(&["fence", "confirm", "beta", "--socket", s], "", false);
    assert_eq!(code, ExitCode::from(EXIT_USAGE));
    assert!(err.contains("--yes"), "{err}");
    // The right name goes on to the daemon (unreachable here: exit 3).
    let (code, _, _) = run_capture(&["fence", "confirm", "beta", "--socket", s], "beta\n", true);
    assert_eq!(code, ExitCode::from(EXIT_UNREACHABLE));
}

#[test]
fn man_pages_one_per_subcommand_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = TestCli::command();
    man_pages(&cmd, dir.path()).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "hapair-cleanup.8",
            "hapair-fence-confirm.8",
            "hapair-fence.8",
            "hapair-maintenance.8",
            "hapair-move.8",
            "hapair-online.8",
            "hapair-standby.8",
            "hapair-status.8",
            "hapair-unmove.8",
            "hapair.8",
        ]
    );
    let page = std::fs::read_to_string(dir.path().join("hapair-fence-confirm.8")).unwrap();
    assert!(page.contains("split brain"), "{page}");

    let mut out = Vec::new();
    completions(
        clap_complete::Shell::Bash,
        &mut TestCli::command(),
        &mut out,
    );
    let script = String::from_utf8(out).unwrap();
    for word in ["standby", "maintenance", "--socket", "confirm"] {
        assert!(
            script.contains(word),
            "{word} missing from the bash completions"
        );
    }
}

#[test]
fn help_does_not_show_the_flatten_doc_comment() {
    let help = TestCli::command()
        .find_subcommand_mut("unmove")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(!help.contains("Socket and output options"), "{help}");
    assert!(help.contains("--socket <PATH>"), "{help}");
}

/// main.rs flattens the operator commands beside its own.
#[derive(Debug, Parser)]
#[command(name = "hapair")]
struct MainLike {
    #[command(subcommand)]
    cmd: MainCmd,
}

#[derive(Debug, clap::Subcommand)]
enum MainCmd {
    /// The daemon.
    Run,
    #[command(flatten)]
    Operator(OperatorCmd),
}

#[test]
fn operator_commands_flatten_into_the_main_command() {
    let c = MainLike::try_parse_from(["hapair", "maintenance", "on"]).unwrap();
    match c.cmd {
        MainCmd::Operator(op) => assert_eq!(op.request(), ControlRequest::Maintenance { on: true }),
        MainCmd::Run => panic!("parsed as run"),
    }
    assert!(matches!(
        MainLike::try_parse_from(["hapair", "run"]).unwrap().cmd,
        MainCmd::Run
    ));
    MainLike::command().debug_assert();
}
