//! Tests of the fencer against real agent processes: our test agent
//! `src/tests/agents/fence_test` (power states in files, every call
//! logged, told to fail, hang or lie) and Debian's `fence_dummy` from
//! fence-agents.
//!
//! Each test has its own state directory, so they run in parallel.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// Debian's dummy agent (package fence-agents).
const FENCE_DUMMY: &str = "/usr/sbin/fence_dummy";

fn test_agent() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tests/agents/fence_test");
    let mode = std::fs::metadata(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode();
    assert!(mode & 0o111 != 0, "{} is not executable", p.display());
    p
}

/// A state directory for `fence_test`, and readers for what it leaves.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        Lab {
            dir: tempfile::Builder::new()
                .prefix("hapair-fence.")
                .tempdir()
                .unwrap(),
        }
    }

    fn statedir(&self) -> String {
        self.dir.path().to_str().unwrap().to_string()
    }

    /// A `fence_test` device with `statedir` and these parameters.
    fn dev(&self, params: &[(&str, &str)], timeout: Duration) -> FenceDevice {
        let mut p: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        p.insert("statedir".into(), self.statedir());
        FenceDevice {
            agent: test_agent(),
            params: p,
            timeout,
        }
    }

    fn ok(&self) -> FenceDevice {
        self.dev(&[], Duration::from_secs(20))
    }

    fn with_mode(&self, mode: &str) -> FenceDevice {
        self.dev(&[("mode", mode)], Duration::from_secs(20))
    }

    /// Every call the agent logged, as name -> value maps.
    fn log(&self) -> Vec<BTreeMap<String, String>> {
        let Ok(text) = std::fs::read_to_string(self.dir.path().join("log")) else {
            return Vec::new();
        };
        text.lines()
            .map(|l| {
                l.split(' ')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    /// The (action, plug) of every logged call.
    fn calls(&self) -> Vec<(String, String)> {
        self.log()
            .iter()
            .map(|e| (e["action"].clone(), e["plug"].clone()))
            .collect()
    }

    /// A plug's power file, if the agent wrote one.
    fn power(&self, plug: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("power").join(plug))
            .ok()
            .map(|s| s.trim().to_string())
    }
}

fn one_level(devices: Vec<FenceDevice>) -> Vec<FenceLevel> {
    vec![FenceLevel { devices }]
}

fn calls(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, p)| (a.to_string(), p.to_string()))
        .collect()
}

/// Whether `pid` is gone (or a zombie nobody reaps: dead all the same).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// Waits (up to 20 s) for the agent's log to have a line, and returns it.
async fn first_log_line(lab: &Lab) -> BTreeMap<String, String> {
    let t = Instant::now();
    loop {
        if let Some(e) = lab.log().into_iter().next() {
            return e;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the agent never logged its call"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn off_then_status_off_confirms() {
    let lab = Lab::new();
    let f = Fencer::new("nodeb", one_level(vec![lab.ok()]));
    assert_eq!(f.levels(), 1);
    assert_eq!(f.target(), "nodeb");
    let o = f.fence(1).await;
    assert!(o.confirmed_off, "{o:#?}");
    assert_eq!(o.level, 1);
    let a: Vec<_> = o
        .attempts
        .iter()
        .map(|a| (a.action.as_str(), a.ok, a.rc, a.message.as_str()))
        .collect();
    assert_eq!(
        a,
        [
            ("off", true, Some(0), "Success: Powered OFF"),
            ("status", true, Some(2), "Status: OFF"),
        ]
    );
    assert!(o.attempts.iter().all(|a| a.device == "fence_test"));
    assert_eq!(lab.power("nodeb").as_deref(), Some("off"));
    // The target went as plug (no plug/port given) and as nodename.
    let log = lab.log();
    assert_eq!(lab.calls(), calls(&[("off", "nodeb"), ("status", "nodeb")]));
    assert!(log.iter().all(|e| e["nodename"] == "nodeb"));
    // JSON shape for status output and the audit log.
    let json = serde_json::to_value(&o).unwrap();
    assert_eq!(json["attempts"][0]["action"], "off");
    assert!(json["attempts"][0]["elapsed_ms"].is_u64());
}

#[tokio::test]
async fn a_failing_off_fails_the_level_without_a_status() {
    let lab = Lab::new();
    let f = Fencer::new("nodeb", one_level(vec![lab.with_mode("fail")]));
    let o = f.fence(1).await;
    assert!(!o.confirmed_off);
    assert_eq!(o.attempts.len(), 1, "{o:#?}");
    let a = &o.attempts[0];
    assert_eq!((a.action.as_str(), a.ok, a.rc), ("off", false, Some(1)));
    assert_eq!(a.message, "fence_test: failing as told (mode fail)");
    assert_eq!(lab.power("nodeb"), None);
}

#[tokio::test]
async fn a_hanging_agent_is_killed_at_its_timeout_with_its_child() {
    let lab = Lab::new();
    let timeout = Duration::from_millis(500);
    let f = Fencer::new(
        "nodeb",
        one_level(vec![lab.dev(&[("mode", "hang")], timeout)]),
    );
    let t = Instant::now();
    let o = f.fence(1).await;
    let took = t.elapsed();
    assert!(!o.confirmed_off);
    assert_eq!(o.attempts.len(), 1);
    let a = &o.attempts[0];
    assert_eq!((a.ok, a.rc), (false, None));
    assert_eq!(a.message, "timed out after 500ms");
    // Both ignore SIGTERM: the group got SIGKILL after the grace period.
    assert!(
        took >= timeout + KILL_GRACE && took < timeout + KILL_GRACE + Duration::from_secs(5),
        "took {took:?}"
    );
    let log = lab.log();
    assert_eq!(log.len(), 1);
    let pid: i32 = log[0]["pid"].parse().unwrap();
    let child: i32 = log[0]["child"].parse().unwrap();
    assert!(gone(pid), "the agent {pid} survived");
    assert!(gone(child), "the agent's forked child {child} survived");
    assert!(!ra::process_group_alive(u32::try_from(pid).unwrap()));
}

#[tokio::test]
async fn status_still_on_after_a_successful_off_fails_the_level() {
    let lab = Lab::new();
    let f = Fencer::new("nodeb", one_level(vec![lab.with_mode("lie")]));
    let o = f.fence(1).await;
    assert!(!o.confirmed_off, "{o:#?}");
    let a: Vec<_> = o
        .attempts
        .iter()
        .map(|a| (a.action.as_str(), a.ok, a.rc))
        .collect();
    assert_eq!(a, [("off", true, Some(0)), ("status", false, Some(0))]);
    assert_eq!(
        o.attempts[1].message,
        "status still ON after off: Status: ON"
    );
    assert_eq!(lab.power("nodeb"), None, "the lying device did nothing");
}

#[tokio::test]
async fn a_failed_level_escalates_to_the_next() {
    let lab = Lab::new();
    let levels = vec![
        FenceLevel {
            devices: vec![lab.dev(
                &[("mode", "fail"), ("plug", "hv-b")],
                Duration::from_secs(20),
            )],
        },
        FenceLevel {
            devices: vec![lab.dev(&[("plug", "ipmi-b")], Duration::from_secs(20))],
        },
    ];
    let f = Fencer::new("nodeb", levels);
    assert_eq!(f.levels(), 2);
    let (level, outcomes) = f.fence_through().await;
    assert_eq!(level, Some(2));
    assert_eq!(outcomes.len(), 2);
    assert_eq!((outcomes[0].level, outcomes[0].confirmed_off), (1, false));
    assert_eq!((outcomes[1].level, outcomes[1].confirmed_off), (2, true));
    assert!(outcomes[1].attempts.iter().all(|a| a.level == 2));
    assert_eq!(
        lab.calls(),
        calls(&[("off", "hv-b"), ("off", "ipmi-b"), ("status", "ipmi-b")])
    );
    assert_eq!(lab.power("ipmi-b").as_deref(), Some("off"));

    // Level by level, as the daemon calls it.
    assert!(!f.fence(1).await.confirmed_off);
    assert!(f.fence(2).await.confirmed_off);
}

#[tokio::test]
async fn escalation_stops_at_the_first_confirming_level() {
    let lab = Lab::new();
    let levels = vec![
        FenceLevel {
            devices: vec![lab.dev(&[("plug", "one")], Duration::from_secs(20))],
        },
        FenceLevel {
            devices: vec![lab.dev(&[("plug", "two")], Duration::from_secs(20))],
        },
    ];
    let (level, outcomes) = Fencer::new("nodeb", levels).fence_through().await;
    assert_eq!(level, Some(1));
    assert_eq!(outcomes.len(), 1);
    assert_eq!(lab.calls(), calls(&[("off", "one"), ("status", "one")]));
}

#[tokio::test]
async fn every_level_failing_leaves_it_to_the_operator() {
    let lab = Lab::new();
    let levels = vec![
        FenceLevel {
            devices: vec![lab.with_mode("fail")],
        },
        FenceLevel {
            devices: vec![lab.with_mode("lie")],
        },
    ];
    let f = Fencer::new("nodeb", levels);
    let (level, outcomes) = f.fence_through().await;
    assert_eq!(level, None);
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(|o| !o.confirmed_off));
    let m = f.manual_confirmation("root (uid 0)");
    assert_eq!((m.level, m.confirmed_off), (MANUAL_LEVEL, true));
    assert_eq!(m.attempts[0].action, "confirm");
    assert_eq!(
        m.attempts[0].message,
        "nodeb confirmed down by root (uid 0)"
    );
}

#[tokio::test]
async fn a_manual_confirmation_ends_a_running_escalation() {
    let lab = Lab::new();
    let f = Fencer::new(
        "nodeb",
        one_level(vec![lab.dev(&[("mode", "hang")], Duration::from_secs(60))]),
    );
    let t = Instant::now();
    let (level, outcomes) = f
        .fence_through_or_confirmed(async {
            first_log_line(&lab).await;
            "root".to_string()
        })
        .await;
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(level, Some(MANUAL_LEVEL));
    assert_eq!(outcomes.len(), 1, "the interrupted level is left out");
    assert!(outcomes[0].confirmed_off);
    assert_eq!(
        outcomes[0].attempts[0].message,
        "nodeb confirmed down by root"
    );
    // The hanging agent was killed (SIGKILL to its group on drop).
    let e = &lab.log()[0];
    let pid: i32 = e["pid"].parse().unwrap();
    let child: i32 = e["child"].parse().unwrap();
    let t = Instant::now();
    while !(gone(pid) && gone(child)) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "agent {pid} or its child {child} survived the dropped run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_failing_device_fails_its_level() {
    // Second of two fails: the first was switched off, no status is run.
    let lab = Lab::new();
    let f = Fencer::new(
        "nodeb",
        one_level(vec![
            lab.dev(&[("plug", "psu1")], Duration::from_secs(20)),
            lab.dev(
                &[("plug", "psu2"), ("mode", "fail")],
                Duration::from_secs(20),
            ),
        ]),
    );
    let o = f.fence(1).await;
    assert!(!o.confirmed_off);
    let a: Vec<_> = o
        .attempts
        .iter()
        .map(|a| (a.device.as_str(), a.action.as_str(), a.ok))
        .collect();
    assert_eq!(
        a,
        [
            ("fence_test#1", "off", true),
            ("fence_test#2", "off", false)
        ]
    );
    assert_eq!(lab.calls(), calls(&[("off", "psu1"), ("off", "psu2")]));

    // First of two fails: the second is never called.
    let lab = Lab::new();
    let f = Fencer::new(
        "nodeb",
        one_level(vec![
            lab.dev(
                &[("plug", "psu1"), ("mode", "fail")],
                Duration::from_secs(20),
            ),
            lab.dev(&[("plug", "psu2")], Duration::from_secs(20)),
        ]),
    );
    assert!(!f.fence(1).await.confirmed_off);
    assert_eq!(lab.calls(), calls(&[("off", "psu1")]));

    // One of two still ON at the status check.
    let lab = Lab::new();
    let f = Fencer::new(
        "nodeb",
        one_level(vec![
            lab.dev(&[("plug", "psu1")], Duration::from_secs(20)),
            lab.dev(
                &[("plug", "psu2"), ("mode", "lie")],
                Duration::from_secs(20),
            ),
        ]),
    );
    let o = f.fence(1).await;
    assert!(!o.confirmed_off);
    let status: Vec<_> = o
        .attempts
        .iter()
        .filter(|a| a.action == "status")
        .map(|a| (a.device.as_str(), a.ok))
        .collect();
    assert_eq!(status, [("fence_test#1", true), ("fence_test#2", false)]);
}

#[tokio::test]
async fn two_devices_that_both_work_confirm_the_level() {
    let lab = Lab::new();
    let f = Fencer::new(
        "nodeb",
        one_level(vec![
            lab.dev(&[("plug", "psu1")], Duration::from_secs(20)),
            lab.dev(&[("port", "psu2")], Duration::from_secs(20)),
        ]),
    );
    let o = f.fence(1).await;
    assert!(o.confirmed_off, "{o:#?}");
    assert_eq!(
        lab.calls(),
        calls(&[
            ("off", "psu1"),
            ("off", "psu2"),
            ("status", "psu1"),
            ("status", "psu2")
        ])
    );
    assert_eq!(lab.power("psu1").as_deref(), Some("off"));
    assert_eq!(lab.power("psu2").as_deref(), Some("off"));
}

#[tokio::test]
async fn parameters_go_on_stdin_never_on_the_command_line() {
    const SECRET: &str = "hunter2-not-in-ps";
    let lab = Lab::new();
    let dev = lab.dev(
        &[
            ("mode", "hang"),
            ("ip", "192.0.2.7"),
            ("username", "admin"),
            ("password", SECRET),
            // reserved names are the fencer's: these are dropped
            ("action", "reboot"),
            ("nodename", "someone-else"),
        ],
        Duration::from_secs(20),
    );
    // Never printed by Debug either.
    let shown = format!("{dev:?}");
    assert!(!shown.contains(SECRET) && shown.contains("***"), "{shown}");
    let f = Fencer::new("nodeb", one_level(vec![dev]));
    // While the agent hangs, look at it from outside, as `ps` would.
    let (o, (cmdline, environ, entry)) = tokio::join!(f.fence(1), async {
        let e = first_log_line(&lab).await;
        let pid = &e["pid"];
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        // End the hang now instead of waiting for the timeout.
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid.parse().unwrap()),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        (cmdline, environ, e)
    });
    assert!(!o.confirmed_off);
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("fence_test"), "{cmdline}");
    for leaked in [SECRET, "password", "192.0.2.7", "admin", "nodeb"] {
        assert!(!cmdline.contains(leaked), "{leaked} in argv: {cmdline}");
    }
    let mut env: Vec<String> = environ
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    env.sort();
    assert_eq!(
        env,
        [
            "LC_ALL=C",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ],
        "a clean environment, no secret in it"
    );
    // The agent read everything from stdin, and got no arguments.
    assert_eq!(entry["argc"], "0");
    assert_eq!(entry["action"], "off");
    assert_eq!(entry["nodename"], "nodeb");
    assert_eq!(entry["plug"], "nodeb");
    let mut keys: Vec<&str> = entry["keys"].split(',').collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "action", "ip", "mode", "nodename", "password", "plug", "statedir", "username"
        ]
    );
}

#[tokio::test]
async fn a_missing_agent_is_named() {
    let dev = FenceDevice::new(
        "fence_hapair_does_not_exist",
        BTreeMap::new(),
        Duration::from_secs(5),
    );
    assert_eq!(
        dev.agent,
        Path::new("/usr/sbin/fence_hapair_does_not_exist")
    );
    let f = Fencer::new("nodeb", one_level(vec![dev]));
    let o = f.fence(1).await;
    assert!(!o.confirmed_off);
    assert_eq!(o.attempts.len(), 1);
    let a = &o.attempts[0];
    assert_eq!((a.ok, a.rc), (false, None));
    assert!(
        a.message
            .starts_with("cannot run /usr/sbin/fence_hapair_does_not_exist: "),
        "{}",
        a.message
    );
    assert!(a.message.contains("No such file"), "{}", a.message);
    let c = f.check().await;
    assert_eq!(c.len(), 1);
    assert!(!c[0].ok && c[0].message.contains("fence_hapair_does_not_exist"));
}

#[tokio::test]
async fn levels_out_of_range_and_empty_levels_fail_clearly() {
    let lab = Lab::new();
    let f = Fencer::new(
        "nodeb",
        vec![
            FenceLevel {
                devices: vec![lab.ok()],
            },
            FenceLevel { devices: vec![] },
        ],
    );
    for (level, want) in [
        (0, "no fence level 0 for nodeb (2 configured)"),
        (3, "no fence level 3 for nodeb (2 configured)"),
        (2, "fence level 2 has no devices"),
    ] {
        let o = f.fence(level).await;
        assert!(!o.confirmed_off);
        assert_eq!(o.attempts.len(), 1);
        assert_eq!(o.attempts[0].message, want);
    }
    assert!(lab.log().is_empty());
    let (level, outcomes) = Fencer::new("nodeb", vec![]).fence_through().await;
    assert_eq!((level, outcomes.len()), (None, 0));
}

#[tokio::test]
async fn a_parameter_with_a_line_break_is_refused_before_running() {
    let lab = Lab::new();
    let f = Fencer::new(
        "nodeb",
        one_level(vec![
            lab.dev(&[("password", "x\naction=on")], Duration::from_secs(20)),
        ]),
    );
    let o = f.fence(1).await;
    assert!(!o.confirmed_off);
    assert_eq!(
        o.attempts[0].message,
        "parameter password contains a line break"
    );
    assert!(lab.log().is_empty(), "the agent must not have run");
}

#[tokio::test]
async fn check_runs_monitor_on_every_device() {
    let lab = Lab::new();
    let f = Fencer::new(
        "nodeb",
        vec![
            FenceLevel {
                devices: vec![lab.ok()],
            },
            FenceLevel {
                devices: vec![lab.ok(), lab.with_mode("fail")],
            },
        ],
    );
    let c = f.check().await;
    let got: Vec<_> = c
        .iter()
        .map(|a| (a.level, a.device.as_str(), a.action.as_str(), a.ok))
        .collect();
    assert_eq!(
        got,
        [
            (1, "fence_test", "monitor", true),
            (2, "fence_test#1", "monitor", true),
            (2, "fence_test#2", "monitor", false),
        ]
    );
    assert!(lab.log().iter().all(|e| e["action"] == "monitor"));
    assert_eq!(lab.power("nodeb"), None, "monitor powers nothing");
}

/// Runs the test agent directly with `input` on stdin.
fn agent_output(input: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(test_agent())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn the_test_agent_answers_metadata_and_list() {
    let (rc, xml) = agent_output("action=metadata\n");
    assert_eq!(rc, 0);
    let md = ra::MetaData::parse(&xml).expect("valid resource-agent XML");
    assert_eq!(md.name, "fence_test");
    let names: Vec<&str> = md.parameters.iter().map(|p| p.name.as_str()).collect();
    for n in ["action", "plug", "nodename", "statedir", "mode", "delay"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let lab = Lab::new();
    let dir = lab.statedir();
    for plug in ["nodea", "nodeb"] {
        assert_eq!(
            agent_output(&format!("action=off\nplug={plug}\nstatedir={dir}\n")).0,
            0
        );
    }
    assert_eq!(
        agent_output(&format!("action=list\nstatedir={dir}\n")),
        (0, "nodea,nodea\nnodeb,nodeb\n".to_string())
    );
    // `on` brings a plug back; status follows it (0 = ON).
    let on = format!("action=on\nport=nodea\nstatedir={dir}\n");
    assert_eq!(agent_output(&on).0, 0);
    let st = format!("action=status\nplug=nodea\nstatedir={dir}\n");
    assert_eq!(agent_output(&st), (0, "Status: ON\n".to_string()));
    // Without a state directory, power actions fail (exit 1).
    assert_eq!(agent_output("action=status\nplug=nodea\n").0, 1);
}

#[test]
fn bare_agent_names_are_looked_up() {
    assert_eq!(resolve_agent("/opt/x/fence_y"), Path::new("/opt/x/fence_y"));
    assert_eq!(resolve_agent("sh"), Path::new("/usr/bin/sh"));
    assert_eq!(
        resolve_agent("fence_hapair_nowhere"),
        Path::new("/usr/sbin/fence_hapair_nowhere")
    );
}

fn require_fence_dummy() {
    assert!(
        Path::new(FENCE_DUMMY).exists(),
        "{FENCE_DUMMY} is missing: install the Debian package fence-agents \
         (apt-get install --no-install-recommends fence-agents; the test script .ci/test does)"
    );
}

#[tokio::test]
async fn debian_fence_dummy_is_fenced_and_confirmed() {
    require_fence_dummy();
    let lab = Lab::new();
    let status_file = lab.dir.path().join("dummy.status");
    std::fs::write(&status_file, "on").unwrap();
    let params: BTreeMap<String, String> = [
        ("type", "file"),
        ("status_file", status_file.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let dev = FenceDevice::new("fence_dummy", params.clone(), Duration::from_secs(60));
    assert_eq!(dev.agent, Path::new(FENCE_DUMMY));
    let f = Fencer::new("nodeb", one_level(vec![dev]));
    let c = f.check().await;
    assert!(c.len() == 1 && c[0].ok, "monitor: {c:#?}");
    let o = f.fence(1).await;
    assert!(o.confirmed_off, "{o:#?}");
    let a: Vec<_> = o
        .attempts
        .iter()
        .map(|a| (a.action.as_str(), a.rc, a.message.as_str()))
        .collect();
    assert_eq!(
        a,
        [
            ("off", Some(0), "Success: Powered OFF"),
            ("status", Some(2), "Status: OFF")
        ]
    );
    assert_eq!(std::fs::read_to_string(&status_file).unwrap(), "off");

    // Its "fail" type fails the level.
    let mut failing = params;
    failing.insert("type".into(), "fail".into());
    // It waits this long (default 20 s) for a power state that never comes.
    failing.insert("power_timeout".into(), "1".into());
    let f = Fencer::new(
        "nodeb",
        vec![
            FenceLevel {
                devices: vec![FenceDevice::new(
                    "fence_dummy",
                    failing,
                    Duration::from_secs(60),
                )],
            },
            FenceLevel {
                devices: vec![lab.ok()],
            },
        ],
    );
    let (level, outcomes) = f.fence_through().await;
    assert_eq!(level, Some(2), "{outcomes:#?}");
    let first = &outcomes[0].attempts[0];
    assert_eq!((first.ok, first.rc), (false, Some(1)));
    assert!(
        first.message.contains("Timed out waiting to power OFF"),
        "{}",
        first.message
    );
}
