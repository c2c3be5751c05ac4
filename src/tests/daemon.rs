//! `hapair run` as a real process on this host: a single node (its peer
//! never answers) with the lease on a scratch loop device and a stack of
//! `ocf:heartbeat:Dummy` resources, driven through start, a monitor
//! failure and local restart, SIGHUP with a bad and a good file, and
//! SIGTERM, which must stop the stack and release the lease.
//!
//! Needs root, loop devices and the resource-agents package (`.ci/test`
//! installs it). Heartbeats go to 127.0.0.1 only.
#![allow(clippy::cast_possible_truncation)]

#[path = "daemon_support.rs"]
mod support;

use std::time::Duration;

use sfex::format::Status;
use support::{Daemon, Setup};

fn running(s: &Setup, names: &[&str]) -> bool {
    names.iter().all(|n| s.path(&format!("{n}.state")).exists())
}

#[test]
fn single_node_dummy_stack_start_fail_restart_reload_stop() {
    let s = Setup::new();
    let cfg = s.write_config(&s.config(&s.stack()));
    let mut d = Daemon::start(&s, &cfg);

    // start: the peer never answers, the lease is free: alpha takes it and
    // starts the stack bottom up
    d.wait_for("the stack to run", Duration::from_secs(30), |log| {
        log.contains("stack running here")
    });
    assert!(
        running(&s, &["db", "fs", "ip"]),
        "every Dummy state file exists"
    );
    let lock = s.lock();
    assert_eq!(lock.status, Status::Locked);
    assert_eq!(lock.nodename.as_bytes(), b"alpha");
    let log = d.log();
    let order: Vec<usize> = ["db", "fs", "ip"]
        .iter()
        .map(|n| {
            log.find(&format!("resource={n} op=start"))
                .unwrap_or_else(|| panic!("no start of {n} in the log:\n{log}"))
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "bottom up: {order:?}"
    );

    // the operator's view through the control socket
    let st = s.status();
    assert_eq!(st["node"], "alpha");
    assert_eq!(st["lease"]["holder"], "alpha", "{st:#}");
    let states: Vec<&str> = st["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r["state"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(states, ["running", "running", "running"], "{st:#}");
    assert_eq!(st["nodes"][1]["state"], "offline", "{st:#}");
    let (rc, human) = s.cli(&["status"]);
    assert_eq!(rc, 0, "{human}");
    assert!(
        human.lines().all(|l| l.chars().count() <= 80),
        "80 columns:\n{human}"
    );
    assert!(human.contains("beta"), "{human}");

    // monitor failure: the middle resource vanishes; the engine stops what
    // is above it and restarts from it, fail count 1
    std::fs::remove_file(s.path("fs.state")).expect("remove fs state");
    d.wait_for("fs to fail and restart", Duration::from_secs(20), |log| {
        log.contains("fs monitor failed (fail count 1)")
            && log.matches("stack running here").count() >= 2
    });
    assert!(running(&s, &["db", "fs", "ip"]));

    let st = s.status();
    assert_eq!(st["resources"][1]["fail_counts"]["alpha"], 1, "{st:#}");
    assert!(
        st["resources"][1]["last_failure"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("state file")),
        "{st:#}"
    );
    // cleanup through the socket clears it
    let (rc, out) = s.cli(&["cleanup", "fs"]);
    assert_eq!(rc, 0, "{out}");
    let st = s.status();
    assert!(
        st["resources"][1]["fail_counts"]["alpha"].is_null(),
        "{st:#}"
    );
    // maintenance: resources are left alone, the lease is kept
    let (rc, out) = s.cli(&["maintenance", "on"]);
    assert_eq!(rc, 0, "{out}");
    assert_eq!(s.status()["maintenance"], true);
    let (rc, out) = s.cli(&["maintenance", "off"]);
    assert_eq!(rc, 0, "{out}");
    // confirming a node that is not a node is refused with exit 1
    let (rc, out) = s.cli(&["fence", "confirm", "gamma", "--yes"]);
    assert_eq!(rc, 1, "{out}");

    // SIGHUP with a broken file: keeps running on the old config
    let good = std::fs::read_to_string(&cfg).expect("read config");
    std::fs::write(
        &cfg,
        good.replace("lock_timeout = \"6s\"", "lock_timeout = \"soon\""),
    )
    .expect("break config");
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for(
        "the bad reload to be refused",
        Duration::from_secs(10),
        |log| log.contains("reload refused") && log.contains("lease.lock_timeout"),
    );
    // and with a good one
    std::fs::write(&cfg, &good).expect("restore config");
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for("the good reload", Duration::from_secs(10), |log| {
        log.contains("reload: config unchanged")
    });
    // a change that is safe live (a monitor timeout) is applied...
    std::fs::write(
        &cfg,
        good.replace("monitor_timeout = \"5s\"", "monitor_timeout = \"6s\""),
    )
    .expect("edit config");
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for("the live reload", Duration::from_secs(10), |log| {
        log.contains("reload: new config applied")
    });
    // ...one that needs a restart (the lease timing) is refused whole
    std::fs::write(
        &cfg,
        good.replace("lock_timeout = \"6s\"", "lock_timeout = \"7s\""),
    )
    .expect("edit config");
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for(
        "the restart-only change refused",
        Duration::from_secs(10),
        |log| log.contains("reload refused: [lease] changed"),
    );
    std::fs::write(&cfg, &good).expect("restore config");
    assert!(
        running(&s, &["db", "fs", "ip"]),
        "reloads do not touch the stack"
    );

    // SIGTERM: stack down top first, lease released, exit 0
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let st = d.wait_exit(Duration::from_secs(30));
    let log = d.log();
    assert!(st.success(), "exit status {st}; log:\n{log}");
    assert!(
        !running(&s, &["db"]) && !running(&s, &["fs"]) && !running(&s, &["ip"]),
        "every Dummy stopped; log:\n{log}"
    );
    let lock = s.lock();
    assert_eq!(lock.status, Status::Unlocked, "lease released; log:\n{log}");
    let stop_order: Vec<usize> = ["ip", "fs", "db"]
        .iter()
        .map(|n| {
            log.rfind(&format!("resource={n} op=stop"))
                .unwrap_or_else(|| panic!("no stop of {n}:\n{log}"))
        })
        .collect();
    assert!(
        stop_order.windows(2).all(|w| w[0] < w[1]),
        "top down: {stop_order:?}"
    );
    if std::env::var_os("HAPAIR_TEST_SHOW_LOG").is_some() {
        eprintln!("{log}");
    }
}

fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let mut out = String::new();
    c.read_to_string(&mut out).expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// The value of the first sample of `name` with all of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn persisted_state_survives_a_restart_corruption_is_refused_metrics_move() {
    let s = Setup::new();
    let mport = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let text = s.config(&s.stack()).replace(
        "[fencing]",
        &format!("[metrics]\nlisten = \"127.0.0.1:{mport}\"\n\n[fencing]"),
    );
    let cfg = s.write_config(&text);
    let mut d = Daemon::start(&s, &cfg);
    d.wait_for("the stack to run", Duration::from_secs(30), |log| {
        log.contains("stack running here")
    });

    // metrics: monitors run every second, so the call counter moves
    let m1 = scrape(mport);
    let calls = |t: &str| {
        sample(
            t,
            "hapair_agent_calls_total",
            &["resource=\"db\"", "op=\"monitor\""],
        )
        .unwrap_or(0.0)
    };
    std::thread::sleep(Duration::from_millis(2500));
    let m2 = scrape(mport);
    assert!(
        calls(&m2) > calls(&m1),
        "monitor calls move:\n{m1}\n---\n{m2}"
    );
    assert!(
        sample(&m2, "hapair_lease_renewal_seconds_count", &[]).unwrap_or(0.0) >= 1.0,
        "lease renewals are timed:\n{m2}"
    );

    // state worth keeping: a fail count and a move with an expiry
    std::fs::remove_file(s.path("db.state")).expect("fail db");
    d.wait_for("db to fail and restart", Duration::from_secs(20), |log| {
        log.contains("db monitor failed (fail count 1)")
            && log.matches("stack running here").count() >= 2
    });
    let (rc, out) = s.cli(&["move", "beta", "--for", "10m"]);
    assert_eq!(rc, 0, "{out}");
    // beta is dead: a move never keeps the stack off the only node that can run it
    std::thread::sleep(Duration::from_millis(1500));
    assert!(running(&s, &["db", "fs", "ip"]));
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(30)).success());
    let state = s.path("state/state");
    assert!(state.exists(), "the state file is written");

    // restart: the fail count and the move come back
    let mut d = Daemon::start(&s, &cfg);
    d.wait_for("the stack to run again", Duration::from_secs(30), |log| {
        log.contains("restored:") && log.contains("stack running here")
    });
    let st = s.status();
    assert_eq!(st["resources"][0]["fail_counts"]["alpha"], 1, "{st:#}");
    assert_eq!(st["moves"][0]["to"], "beta", "{st:#}");
    let left = st["moves"][0]["remaining_ms"]
        .as_u64()
        .expect("expiry kept");
    assert!(left > 9 * 60 * 1000 && left <= 10 * 60 * 1000, "{left}");
    let (rc, out) = s.cli(&["unmove"]);
    assert_eq!(rc, 0, "{out}");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(30)).success());

    // a damaged file is reported, moved aside and not trusted
    let mut bytes = std::fs::read(&state).expect("read state");
    let n = bytes.len();
    bytes[n - 3] ^= 0x20;
    std::fs::write(&state, &bytes).expect("corrupt state");
    let mut d = Daemon::start(&s, &cfg);
    d.wait_for(
        "the stack to run on defaults",
        Duration::from_secs(30),
        |log| log.contains("persisted state not trusted") && log.contains("stack running here"),
    );
    let st = s.status();
    assert!(
        st["resources"][0]["fail_counts"]["alpha"].is_null(),
        "{st:#}"
    );
    let quarantined = std::fs::read_dir(s.path("state"))
        .expect("state dir")
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.corrupt-")
        });
    assert!(quarantined, "the bad file is kept aside for a look");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(30)).success());
}

#[test]
fn preflight_checks_what_the_daemon_needs() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new();
    let cfg = s.write_config(&s.config(&s.stack()));
    let run = || {
        let out = std::process::Command::new(support::BIN)
            .args(["preflight", "--node", "alpha", "--json", "--config"])
            .arg(&cfg)
            .output()
            .expect("hapair preflight");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        (out.status.code(), v)
    };
    let (rc, v) = run();
    let failed: Vec<&serde_json::Value> = v
        .as_array()
        .expect("a list of checks")
        .iter()
        .filter(|c| c["ok"] != true)
        .collect();
    // only the test-exit self-fence mode is flagged (it must never be used
    // in production)
    assert_eq!(failed.len(), 1, "{v:#}");
    assert_eq!(failed[0]["what"], "self-fence", "{v:#}");
    assert_eq!(rc, Some(1));
    for what in ["key file", "link lo", "lease device", "resource db"] {
        assert!(
            v.as_array()
                .expect("list")
                .iter()
                .any(|c| c["what"] == what && c["ok"] == true),
            "{what} checked and fine: {v:#}"
        );
    }
    // a key file others can read is a problem, named as such
    std::fs::set_permissions(s.path("authkey"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let (_, v) = run();
    let key = v
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["what"] == "key file")
        .expect("key file check");
    assert_eq!(key["ok"], false, "{v:#}");
    // and a lease device that is not sfex-formatted
    let text = s
        .config(&s.stack())
        .replace(&s.lease.path().display().to_string(), "/dev/null");
    let cfg2 = s.write_config(&text);
    let out = std::process::Command::new(support::BIN)
        .args(["preflight", "--node", "alpha", "--config"])
        .arg(&cfg2)
        .output()
        .expect("hapair preflight");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("lease device")),
        "{text}"
    );
}

/// Writes lock 1 as held by `node` with counter `count` (a peer that died
/// holding the lease).
fn hold_lock(s: &Setup, node: &str, count: i32) {
    let mut dev = sfex::dev::Device::open(s.lease.path(), sfex::dev::EngineKind::Sync)
        .expect("open lease device");
    let block = sfex::format::LockBlock {
        status: Status::Locked,
        count,
        nodename: sfex::format::NodeName::new(node).expect("name"),
    };
    let bs = usize::try_from(dev.sector_size()).expect("sector size");
    sfex::dev::BlockIo::write_block(&mut dev, 1, &sfex::format::encode_lock(&block, bs))
        .expect("write lock");
}

fn fence_config(s: &Setup, mode: &str) -> String {
    let agent = concat!(env!("CARGO_MANIFEST_DIR"), "/src/tests/agents/fence_test");
    s.config(&s.stack())
        .replace("lock_timeout = \"6s\"", "lock_timeout = \"30s\"")
        .replace(
            "[fencing]\ndelay = \"3s\"\n",
            &format!(
                "[fencing]\ndelay = \"3s\"\n[[fencing.device]]\ntarget = \"beta\"\nlevel = 1\n\
                 agent = \"{agent}\"\ntimeout = \"5s\"\n\
                 params = {{ statedir = \"{}\", mode = \"{mode}\" }}\n",
                s.path("fence").display()
            ),
        )
}

#[test]
fn dead_lease_holder_is_fenced_then_the_lease_taken_without_waiting_for_expiry() {
    let s = Setup::new();
    std::fs::create_dir_all(s.path("fence")).expect("fence statedir");
    hold_lock(&s, "beta", 41);
    let cfg = s.write_config(&fence_config(&s, "ok"));
    let t0 = std::time::Instant::now();
    let mut d = Daemon::start(&s, &cfg);
    d.wait_for("fencing and takeover", Duration::from_secs(25), |log| {
        log.contains("stack running here")
    });
    let took = t0.elapsed();
    let log = d.log();
    // the counter stood still for the fence delay, then level 1 confirmed
    // beta off (off, then status), then the lease was taken at once rather
    // than after lock_timeout (30 s)
    assert!(log.contains("fencing beta: level 1"), "{log}");
    assert!(log.contains("fence level 1: confirmed off"), "{log}");
    assert!(
        took < Duration::from_secs(20),
        "took {took:?}: waited for expiry?\n{log}"
    );
    let calls = std::fs::read_to_string(s.path("fence/log")).expect("fence agent log");
    let actions: Vec<&str> = calls
        .lines()
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("action=")))
        .collect();
    assert_eq!(actions, ["off", "status"], "{calls}");
    assert!(calls.contains("plug=beta"), "{calls}");
    assert!(
        calls.contains("argc=0"),
        "parameters on stdin only: {calls}"
    );
    assert_eq!(s.lock().nodename.as_bytes(), b"alpha");
    let st = s.status();
    assert_eq!(st["fencing"]["state"], "peer-fenced", "{st:#}");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(30)).success());
}

/// SIGHUP replacing the fence device's parameters (a failing device fixed
/// by the operator) is applied live: the next fencing uses the new ones.
#[test]
fn a_fence_device_changed_by_sighup_is_used_by_the_next_fencing() {
    let s = Setup::new();
    std::fs::create_dir_all(s.path("fence")).expect("fence statedir");
    hold_lock(&s, "beta", 12);
    // the counter must stand still for 6 s before fencing: room for the
    // reload
    let failing = fence_config(&s, "fail").replace("delay = \"3s\"", "delay = \"6s\"");
    let cfg = s.write_config(&failing);
    let mut d = Daemon::start(&s, &cfg);
    // the signal handlers are in place once this is logged
    d.wait_for("the daemon to start", Duration::from_secs(10), |log| {
        log.contains("hapair started on alpha")
    });
    std::fs::write(&cfg, failing.replace("mode = \"fail\"", "mode = \"ok\"")).expect("edit config");
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for("the live reload", Duration::from_secs(5), |log| {
        log.contains("reload: new config applied")
    });
    let before = d.log();
    assert!(
        !before.contains("fencing beta"),
        "fenced before the reload was applied:\n{before}"
    );
    d.wait_for("fencing and takeover", Duration::from_secs(25), |log| {
        log.contains("stack running here")
    });
    let log = d.log();
    assert!(log.contains("fence level 1: confirmed off"), "{log}");
    let calls = std::fs::read_to_string(s.path("fence/log")).expect("fence agent log");
    let modes: Vec<&str> = calls
        .lines()
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("mode=")))
        .collect();
    assert_eq!(
        modes,
        ["ok", "ok"],
        "off and status, both with the new parameters: {calls}"
    );
    assert_eq!(s.lock().nodename.as_bytes(), b"alpha");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(30)).success());
}

#[test]
fn every_fence_level_failing_waits_for_the_operator() {
    let s = Setup::new();
    std::fs::create_dir_all(s.path("fence")).expect("fence statedir");
    hold_lock(&s, "beta", 7);
    let cfg = s.write_config(&fence_config(&s, "fail"));
    let mut d = Daemon::start(&s, &cfg);
    d.wait_for("fencing to fail", Duration::from_secs(20), |log| {
        log.contains("every fence level failed for beta")
    });
    // nothing runs, the lease is beta's still
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !s.path("db.state").exists(),
        "nothing started without fencing"
    );
    assert_eq!(s.lock().nodename.as_bytes(), b"beta");
    let st = s.status();
    assert_eq!(st["fencing"]["state"], "failed-waiting-confirm", "{st:#}");
    let (rc, human) = s.cli(&["status"]);
    assert_eq!(rc, 0);
    assert!(human.contains("hapair fence confirm beta"), "{human}");
    // the operator has checked beta is off
    let (rc, out) = s.cli(&["fence", "confirm", "beta", "--yes"]);
    assert_eq!(rc, 0, "{out}");
    d.wait_for(
        "takeover after the confirmation",
        Duration::from_secs(20),
        |log| log.contains("stack running here"),
    );
    assert_eq!(s.lock().nodename.as_bytes(), b"alpha");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(30)).success());
}
