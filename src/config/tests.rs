use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::engine::ResourceKind;

/// A small valid file; the line numbers matter to the tests below.
const MIN: &str = r#"[cluster]
name = "c"
[[node]]
name = "a"
[[node]]
name = "b"
[[link]]
name = "l"
a = "127.0.0.1:5405"
b = "127.0.0.2:5405"
[lease]
device = "/dev/sdx1"
[[resource]]
name = "svc"
type = "systemd:foo"
"#;

fn ok(text: &str) -> Loaded {
    match parse(text, Path::new("hapair.toml")) {
        Ok(l) => l,
        Err(p) => panic!(
            "unexpected problems:\n{}",
            render_problems(&p, Path::new("t"))
        ),
    }
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, Path::new("hapair.toml")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(p) => p,
    }
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/examples")
}

#[test]
fn examples_parse() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        let loaded = match load(&path) {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        let c = &loaded.config;
        // Each example is a complete, fenced, two-link setup: no warning
        // but the world-readable-passwords one load() adds for a checkout.
        for w in &loaded.warnings {
            assert!(
                w.message.contains("readable by everyone"),
                "{}",
                loaded.render_warnings()
            );
        }
        assert_eq!(c.links.len(), 2, "{}", path.display());
        for me in 0..2 {
            c.engine_config(me).validate().unwrap();
            assert!(c.engine_config(me).fence_levels >= 1);
            let hb = c.heartbeat_config(me);
            hb.membership();
            assert_eq!(hb.links[0].local, c.links[0].addrs[me]);
            assert_eq!(hb.links[0].peer, c.links[0].addrs[1 - me]);
        }
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    seen.sort();
    assert_eq!(
        seen,
        ["mysql-drbd.toml", "nfs-shared-lun.toml", "pgsql-drbd.toml"]
    );
}

#[test]
fn pgsql_example_content() {
    let text = std::fs::read_to_string(examples_dir().join("pgsql-drbd.toml")).unwrap();
    let c = ok(&text).config;
    assert_eq!(c.cluster.name, "pg-pair");
    assert_eq!(
        c.nodes[0],
        Node {
            name: "pg-a".into(),
            preferred: true
        }
    );
    assert_eq!(c.node_index("pg-b"), Some(1));
    assert_eq!(c.node_index("pg-c"), None);
    let kinds: Vec<_> = c.resources.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            ResourceKind::Drbd,
            ResourceKind::Filesystem,
            ResourceKind::Address,
            ResourceKind::Service
        ]
    );
    assert_eq!(c.resources[0].exec, Exec::Drbd);
    assert_eq!(
        c.resources[3].exec,
        Exec::Agent("ocf:heartbeat:pgsql".parse().unwrap())
    );
    assert_eq!(c.resources[2].params["cidr_netmask"], "24");
    assert_eq!(
        c.resources[3].line,
        text.lines()
            .position(|l| l.contains("name = \"pgsql\""))
            .unwrap()
    );
    assert_eq!(c.lease.lock_timeout, Millis(40_000));
    assert_eq!(c.policy.stop_budget, Millis(30_000));
    assert_eq!(c.fencing.devices[0].params["lanplus"], "1");
    assert_eq!(c.links[0].interface.as_deref(), Some("eth1"));
    assert_eq!(
        c.metrics,
        Some(Metrics {
            listen: "127.0.0.1:9464".parse().unwrap()
        })
    );
    assert_eq!(c.hash, crate::proto::ConfigHash::of(text.as_bytes()));
    let e = c.engine_config(1);
    assert_eq!(
        (e.me.to_string(), e.peer.to_string(), e.preferred),
        ("pg-b".into(), "pg-a".into(), false)
    );
    assert_eq!(e.fence_delay, Millis(8_000));
}

#[test]
fn nfs_example_has_no_drbd_and_agents() {
    let text = std::fs::read_to_string(examples_dir().join("nfs-shared-lun.toml")).unwrap();
    let c = ok(&text).config;
    assert!(c.resources.iter().all(|r| r.kind != ResourceKind::Drbd));
    let agents: Vec<String> = c
        .resources
        .iter()
        .filter_map(|r| match &r.exec {
            Exec::Agent(a) => Some(a.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        agents,
        ["ocf:heartbeat:nfsserver", "ocf:heartbeat:exportfs"]
    );
}

#[test]
fn defaults() {
    let loaded = ok(MIN);
    let c = &loaded.config;
    assert_eq!(
        c.cluster,
        Cluster {
            name: "c".into(),
            key_file: "/etc/hapair/authkey".into(),
            state_dir: "/var/lib/hapair".into(),
            socket: "/run/hapair/hapair.sock".into(),
            admin_group: "haclient".into(),
        }
    );
    assert_eq!(c.heartbeat, membership::Timing::default());
    assert_eq!(c.links[0].interface, None);
    let r = &c.resources[0];
    assert_eq!(r.kind, ResourceKind::Service);
    assert_eq!(r.line, 13);
    assert_eq!(
        (
            r.start_timeout,
            r.stop_timeout,
            r.monitor_interval,
            r.monitor_timeout
        ),
        (
            Millis(60_000),
            Millis(60_000),
            Millis(10_000),
            Millis(20_000)
        )
    );
    assert_eq!(
        c.policy,
        Policy {
            migration_threshold: 3,
            failure_timeout: None,
            start_delay: Millis(5_000),
            retry_interval: Millis(2_000),
            stop_budget: Millis(60_000),
        }
    );
    // lock_timeout: monitor 2s + max_io 1s + stop budget 60s + margin 2s,
    // plus one monitor interval = 67s.
    assert_eq!(
        c.lease,
        Lease {
            device: "/dev/sdx1".into(),
            index: 1,
            engine: LeaseEngine::Auto,
            lock_timeout: Millis(67_000),
            collision_timeout: Millis(2_500),
            monitor_interval: Millis(2_000),
            margin: Millis(2_000),
            max_io: Millis(1_000),
        }
    );
    c.engine_config(0).validate().unwrap();
    assert_eq!(
        c.self_fence,
        SelfFence {
            mode: SelfFenceMode::Auto,
            watchdog_device: "/dev/watchdog".into(),
            watchdog_timeout: Millis(10_000),
        }
    );
    // 2 x (monitor_interval + max_io)
    assert_eq!(
        c.fencing,
        Fencing {
            delay: Millis(6_000),
            devices: vec![]
        }
    );
    assert_eq!(c.metrics, None);
    assert_eq!(c.engine_config(0).fence_levels, 0);
    let w: Vec<_> = loaded
        .warnings
        .iter()
        .map(|w| (w.path.as_str(), w.line))
        .collect();
    assert_eq!(
        w,
        [
            ("link", Some(7)),
            ("lease.lock_timeout", Some(11)),
            ("fencing", None),
            ("fencing", None)
        ]
    );
    assert!(
        loaded.warnings[1].message.contains("1m 7s"),
        "{}",
        loaded.warnings[1].message
    );
}

#[test]
fn default_lock_timeout_covers_the_watchdog() {
    let text = MIN.replace(
        "type = \"systemd:foo\"",
        "type = \"systemd:foo\"\nstop_timeout = \"1s\"",
    ) + "[self_fence]\nwatchdog_timeout = \"30s\"\n";
    let c = ok(&text).config;
    // max(2+1+1+2, 30+2+2) + 2 = 36s
    assert_eq!(c.lease.lock_timeout, Millis(36_000));
    let text = text.replace(
        "watchdog_timeout = \"30s\"",
        "watchdog_timeout = \"30s\"\nmode = \"reboot\"",
    );
    // 2+1+1+2 + 2 = 8s
    assert_eq!(ok(&text).config.lease.lock_timeout, Millis(8_000));
}

/// One bad file per row: the exact (path, line) of every problem, and a
/// piece of the first message.
#[test]
fn bad_configs() {
    let add_res = |extra: &str| format!("{MIN}[[resource]]\n{extra}");
    type Case = (String, Vec<(&'static str, Option<usize>)>, &'static str);
    let cases: Vec<Case> = vec![
        // 16: [[resource]]  17.. extra lines
        (
            MIN.replace(
                "device = \"/dev/sdx1\"",
                "device = \"/dev/sdx1\"\nlock_timeout = 10",
            ),
            vec![("lease.lock_timeout", Some(13))],
            "a bare number has no unit",
        ),
        (
            MIN.replace(
                "device = \"/dev/sdx1\"",
                "device = \"/dev/sdx1\"\nlock_timout = \"70s\"",
            ),
            vec![("lease.lock_timout", Some(13))],
            "unknown key `lock_timout`; did you mean `lock_timeout`?",
        ),
        (
            MIN.replace(
                "device = \"/dev/sdx1\"",
                "device = \"/dev/sdx1\"\nmax-io = \"1s\"",
            ),
            vec![("lease.max-io", Some(13))],
            "did you mean `max_io`?",
        ),
        (
            format!("{MIN}[leas]\nx = 1\n"),
            vec![("leas", Some(16))],
            "unknown section `leas`; did you mean `lease`?",
        ),
        (
            format!("{MIN}[frobnicate]\n"),
            vec![("frobnicate", Some(16))],
            "unknown section `frobnicate` (expected one of `cluster`",
        ),
        (
            format!("{MIN}[policy]\nlock_timeout = \"70s\"\nmonitor_interval = \"1s\"\n"),
            vec![
                ("policy.lock_timeout", Some(17)),
                ("policy.monitor_interval", Some(18)),
            ],
            "unknown key `lock_timeout`; it belongs in [lease]",
        ),
        (
            MIN.replace("device = \"/dev/sdx1\"", "device = \"sdx1\""),
            vec![("lease.device", Some(12))],
            "\"sdx1\" is not an absolute path",
        ),
        (
            MIN.replace("device = \"/dev/sdx1\"", "index = 0"),
            vec![("lease.device", Some(11)), ("lease.index", Some(12))],
            "missing in [lease]",
        ),
        (
            MIN.replace("[lease]\ndevice = \"/dev/sdx1\"\n", ""),
            vec![("lease", None)],
            "missing section [lease]",
        ),
        (
            MIN.replace("[cluster]\nname = \"c\"", "cluster = 3\n"),
            vec![("cluster", Some(1))],
            "expected a table, found integer 3",
        ),
        (
            MIN.replace("name = \"c\"", "name = \"my pair\""),
            vec![("cluster.name", Some(2))],
            "is not a valid name",
        ),
        // nodes
        (
            MIN.replace("name = \"b\"", "name = \"a\""),
            vec![("node[1].name", Some(5))],
            "both nodes are called \"a\"",
        ),
        (
            MIN.replace("name = \"a\"", "name = \"a\"\npreferred = true")
                .replace("name = \"b\"", "name = \"b\"\npreferred = true"),
            vec![("node[1].preferred", Some(6))],
            "at most one node can be preferred",
        ),
        (
            MIN.replace("[[link]]", "[[node]]\nname = \"c\"\n[[link]]"),
            vec![("node", Some(7))],
            "exactly two [[node]] sections are needed, found 3",
        ),
        (
            MIN.replace("name = \"b\"", "nmae = \"b\""),
            vec![("node[1].name", Some(5)), ("node[1].nmae", Some(6))],
            "missing in [node[1]]",
        ),
        // links
        (
            MIN.replace("b = \"127.0.0.2:5405\"", "c = \"127.0.0.2:5405\""),
            vec![("link[0].b", Some(7)), ("link[0].c", Some(10))],
            "missing in [link[0]] (the address of node \"b\" on this link)",
        ),
        (
            MIN.replace("b = \"127.0.0.2:5405\"", "b = \"[::1]:5405\""),
            vec![("link[0].b", Some(10))],
            "are not of the same address family",
        ),
        (
            MIN.replace("b = \"127.0.0.2:5405\"", "b = \"127.0.0.2\""),
            vec![("link[0].b", Some(10))],
            "is not an address:port",
        ),
        (
            MIN.replace(
                "[lease]",
                "[[link]]\nname = \"l\"\na = \"10.0.0.1:1\"\nb = \"10.0.0.2:1\"\n[lease]",
            ),
            vec![("link[1].name", Some(12))],
            "link name \"l\" is already used by link[0]",
        ),
        (
            MIN.replace(
                "[[link]]\nname = \"l\"\na = \"127.0.0.1:5405\"\nb = \"127.0.0.2:5405\"\n",
                "",
            ),
            vec![("link", None)],
            "at least one [[link]]",
        ),
        // heartbeat
        (
            format!("{MIN}[heartbeat]\nkeepalive = \"500ms\"\n"),
            vec![("heartbeat.deadtime", Some(16))],
            "deadtime 0.900s must be more than twice keepalive 0.500s",
        ),
        (
            format!("{MIN}[heartbeat]\nwarntime = \"2s\"\n"),
            vec![("heartbeat.warntime", Some(17))],
            "warntime 2.000s must be at least keepalive",
        ),
        // durations
        (
            format!(
                "{MIN}[policy]\nstart_delay = \"10 parsecs\"\nretry_interval = \"1500us\"\nfailure_timeout = \"0s\"\n"
            ),
            vec![
                ("policy.start_delay", Some(17)),
                ("policy.retry_interval", Some(18)),
                ("policy.failure_timeout", Some(19)),
            ],
            "\"10 parsecs\" is not a duration",
        ),
        (
            format!("{MIN}[policy]\nmigration_threshold = 0\n"),
            vec![("policy.migration_threshold", Some(17))],
            "0 is out of range (1..=4294967295)",
        ),
        // lease timing
        (
            MIN.replace(
                "device = \"/dev/sdx1\"",
                "device = \"/dev/sdx1\"\nlock_timeout = \"30s\"",
            ),
            vec![("lease.lock_timeout", Some(13))],
            "monitor_interval (2.000s) + max_io (1.000s) + stop_budget (60.000s) + margin (2.000s) \
             must be less than lock_timeout (30.000s)",
        ),
        (
            MIN.replace(
                "device = \"/dev/sdx1\"",
                "device = \"/dev/sdx1\"\ncollision_timeout = \"2s\"",
            ),
            vec![("lease.collision_timeout", Some(13))],
            "collision_timeout (2.000s) must be more than twice max_io (1.000s)",
        ),
        (
            MIN.replace(
                "type = \"systemd:foo\"",
                "type = \"systemd:foo\"\nstop_timeout = \"1s\"",
            )
            .replace(
                "device = \"/dev/sdx1\"",
                "device = \"/dev/sdx1\"\nlock_timeout = \"12s\"",
            ),
            vec![("lease.lock_timeout", Some(13))],
            "self_fence.watchdog_timeout (10.000s) + monitor_interval (2.000s) + margin (2.000s) \
             must be less than lock_timeout (12.000s)",
        ),
        (
            format!("{MIN}[fencing]\ndelay = \"3s\"\n"),
            vec![("fencing.delay", Some(17))],
            "3.000s must be more than lease.monitor_interval + lease.max_io (3.000s)",
        ),
        (
            format!("{MIN}[self_fence]\nwatchdog_timeout = \"1500ms\"\nmode = \"panic\"\n"),
            vec![
                ("self_fence.watchdog_timeout", Some(17)),
                ("self_fence.mode", Some(18)),
            ],
            "the watchdog counts whole seconds",
        ),
        // fencing
        (
            format!("{MIN}[[fencing.device]]\ntarget = \"b\"\nlevel = 2\nagent = \"fence_x\"\n"),
            vec![("fencing.device[0].level", Some(18))],
            "level 2 for \"b\", but no level 1",
        ),
        (
            format!(
                "{MIN}[[fencing.device]]\ntarget = \"c\"\nlevel = 1\nagent = \"fence/x\"\nparams = {{ action = \"off\", pw = 1.5 }}\n"
            ),
            vec![
                ("fencing.device[0].target", Some(17)),
                ("fencing.device[0].agent", Some(19)),
                ("fencing.device[0].params.action", Some(20)),
                ("fencing.device[0].params.pw", Some(20)),
            ],
            "\"c\" is not a node (the nodes are [\"a\", \"b\"])",
        ),
        (
            format!("{MIN}[[fencing.device]]\ntarget = \"b\"\n"),
            vec![
                ("fencing.device[0].level", Some(16)),
                ("fencing.device[0].agent", Some(16)),
            ],
            "missing in [fencing.device[0]] (1 for the first device tried)",
        ),
        // metrics
        (
            format!("{MIN}[metrics]\nlisten = \"0.0.0.0:9464\"\n"),
            vec![("metrics.listen", Some(17))],
            "listens on every address",
        ),
        // resources
        (
            add_res(
                "name = \"fs\"\ntype = \"filesystem\"\nparams = { device = \"/dev/x\", fstype = \"ext4\", fsck = \"yes\", opts = \"ro\" }\n",
            ),
            vec![
                ("resource[1].params.directory", Some(19)),
                ("resource[1].params.fsck", Some(19)),
                ("resource[1].params.opts", Some(19)),
            ],
            "missing (the filesystem type needs device, directory and fstype)",
        ),
        (
            add_res("name = \"ip\"\ntype = \"address\"\n"),
            vec![("resource[1].params.ip", Some(16))],
            "missing (the address type needs ip)",
        ),
        (
            add_res(
                "name = \"ip\"\ntype = \"address\"\nparams = { ip = \"192.0.2.300\", cidr_netmask = 33 }\n",
            ),
            vec![
                ("resource[1].params.ip", Some(19)),
                ("resource[1].params.cidr_netmask", Some(19)),
            ],
            "\"192.0.2.300\" is not an IP address",
        ),
        (
            add_res("name = \"d\"\ntype = \"drbd\"\nparams = { resource = \"r0\" }\n"),
            vec![("resource[1].type", Some(18))],
            "the drbd resource must be the first [[resource]]",
        ),
        (
            add_res("name = \"svc\"\ntype = \"lsb:x\"\n"),
            vec![("resource[1].name", Some(17))],
            "resource name \"svc\" is already used by resource[0]",
        ),
        (
            add_res("name = \"x y\"\ntype = \"ocf:heartbeat\"\n"),
            vec![
                ("resource[1].name", Some(17)),
                ("resource[1].type", Some(18)),
            ],
            "\"x y\" is not a valid name",
        ),
        (
            add_res("name = \"x\"\ntype = \"filesytem\"\n"),
            vec![("resource[1].type", Some(18))],
            "did you mean \"filesystem\"?",
        ),
        (
            add_res(
                "name = \"x\"\ntype = \"address\"\nkind = \"service\"\nparams = { ip = \"192.0.2.1\" }\n",
            ),
            vec![("resource[1].kind", Some(19))],
            "a built-in type has a fixed kind",
        ),
        (
            add_res(
                "name = \"x\"\ntype = \"ocf:heartbeat:Dummy\"\nkind = \"servce\"\nparams = { a = [1] }\nstop_timeout = 5\n",
            ),
            vec![
                ("resource[1].kind", Some(19)),
                ("resource[1].params.a", Some(20)),
                ("resource[1].stop_timeout", Some(21)),
            ],
            "\"servce\" is not a kind",
        ),
        (
            add_res(
                "name = \"x\"\ntype = \"ocf:heartbeat:Dummy\"\nparams = { \"state-file\" = \"/tmp/x\", ok_1 = 1 }\n",
            ),
            vec![("resource[1].params.state-file", Some(19))],
            "\"state-file\" cannot be an OCF parameter",
        ),
        // a bad value is reported once, not again by the rules it feeds
        (
            format!("{MIN}[heartbeat]\nkeepalive = \"500ms\"\ndeadtime = 2\n"),
            vec![("heartbeat.deadtime", Some(18))],
            "a bare number has no unit",
        ),
        (
            MIN.replace(
                "device = \"/dev/sdx1\"",
                "device = \"/dev/sdx1\"\nmax_io = \"1 fortnight\"\nlock_timeout = \"5s\"",
            ),
            vec![("lease.max_io", Some(13))],
            "is not a duration",
        ),
        (
            MIN.replace("b = \"127.0.0.2:5405\"", "b = \"127.0.0.1:5405\""),
            vec![("link[0].b", Some(10))],
            "both nodes have the address 127.0.0.1:5405",
        ),
        // syntax: one problem per line, nothing else checked
        (
            format!("{MIN}[policy]\nstart_delay = 5s\n"),
            vec![("", Some(17))],
            "string values must be quoted",
        ),
        (
            MIN.replace("name = \"svc\"", "name = \"svc\"\nname = \"again\""),
            vec![("", Some(15))],
            "duplicate key",
        ),
    ];
    for (text, want, msg) in cases {
        let got = problems(&text);
        let got_places: Vec<(&str, Option<usize>)> =
            got.iter().map(|p| (p.path.as_str(), p.line)).collect();
        assert_eq!(
            got_places,
            want,
            "in:\n{text}\ngot:\n{}",
            render_problems(&got, Path::new("t"))
        );
        assert!(
            got[0].message.contains(msg),
            "{:?} lacks {msg:?}",
            got[0].message
        );
    }
}

#[test]
fn every_problem_is_reported_in_line_order() {
    let text = r#"[cluster]
name = "c"
colour = "blue"
[[node]]
name = "a"
[[node]]
name = "b"
[heartbeat]
keepalive = "1ms"
[[link]]
name = "l"
a = "127.0.0.1:5405"
b = "nowhere"
[lease]
device = "/dev/sdx1"
engine = "turbo"
lock_timeout = "5s"
[policy]
stop_budget = "10s"
[[fencing.device]]
target = "b"
level = 1
agent = "fence_ipmilan"
timeout = "soon"
[[resource]]
name = "fs"
type = "filesystem"
params = { device = "/dev/drbd0" }
[[resource]]
name = "web"
type = "nginx"
"#;
    let got = problems(text);
    let places: Vec<_> = got.iter().map(|p| (p.path.as_str(), p.line)).collect();
    assert_eq!(
        places,
        [
            ("cluster.colour", Some(3)),
            ("heartbeat.keepalive", Some(9)),
            ("link[0].b", Some(13)),
            ("lease.engine", Some(16)),
            // two rules broken: the watchdog's and the stop budget's
            ("lease.lock_timeout", Some(17)),
            ("lease.lock_timeout", Some(17)),
            ("fencing.device[0].timeout", Some(24)),
            ("resource[0].params.directory", Some(28)),
            ("resource[0].params.fstype", Some(28)),
            ("resource[1].type", Some(31)),
        ]
    );
    assert!(
        got[4].message.contains("self_fence.watchdog_timeout"),
        "{}",
        got[4].message
    );
    assert!(
        got[5].message.contains("stop_budget (10.000s)"),
        "{}",
        got[5].message
    );
    let out = render_problems(&got, Path::new("/etc/hapair/hapair.toml"));
    assert_eq!(out.lines().count(), 10);
    assert!(
        got[0].message.ends_with(
            "(expected one of `name`, `key_file`, `state_dir`, `socket`, `admin_group`)"
        )
    );
    assert!(out.starts_with(
        "/etc/hapair/hapair.toml:3: cluster.colour: unknown key `colour` (expected one of `name`"
    ));
    assert!(out.contains(
        "/etc/hapair/hapair.toml:16: lease.engine: \"turbo\" is not one of \"auto\", \"uring\", \"sync\"\n"
    ));
}

#[test]
fn hints() {
    use super::parse::{test_distance, test_suggest};
    assert_eq!(test_distance("kitten", "sitting"), 3);
    assert_eq!(test_distance("", "abc"), 3);
    let keys = ["lock_timeout", "collision_timeout", "max_io", "margin"];
    assert_eq!(test_suggest("lock_timout", &keys), Some("lock_timeout"));
    assert_eq!(test_suggest("Lock-Timeout", &keys), Some("lock_timeout"));
    assert_eq!(test_suggest("maxio", &keys), Some("max_io"));
    assert_eq!(test_suggest("colour", &keys), None);
}

#[test]
fn fence_levels_and_engine_config() {
    let text = format!(
        "{MIN}[fencing]\ndelay = \"5s\"\n\
         [[fencing.device]]\ntarget = \"b\"\nlevel = 2\nagent = \"fence_ipmilan\"\n\
         [[fencing.device]]\ntarget = \"b\"\nlevel = 1\nagent = \"/opt/fence/fence_a\"\nparams = {{ port = 7, ssl = false }}\n\
         [[fencing.device]]\ntarget = \"b\"\nlevel = 1\nagent = \"fence_b\"\n\
         [[fencing.device]]\ntarget = \"a\"\nlevel = 1\nagent = \"fence_c\"\n"
    );
    let loaded = ok(&text);
    let c = &loaded.config;
    let names = |t: &str| -> Vec<Vec<&str>> {
        c.fencing
            .levels_for(t)
            .iter()
            .map(|l| l.iter().map(|d| d.agent.as_str()).collect())
            .collect()
    };
    assert_eq!(
        names("b"),
        [vec!["/opt/fence/fence_a", "fence_b"], vec!["fence_ipmilan"]]
    );
    assert_eq!(names("a"), [vec!["fence_c"]]);
    assert!(names("z").is_empty());
    assert_eq!(c.fencing.devices[1].params["port"], "7");
    assert_eq!(c.fencing.devices[1].params["ssl"], "false");
    assert_eq!(c.fencing.devices[0].timeout, Millis(20_000));
    // node 0 (a) fences b: two levels; node 1 fences a: one.
    assert_eq!(c.engine_config(0).fence_levels, 2);
    assert_eq!(c.engine_config(1).fence_levels, 1);
    assert_eq!(c.engine_config(0).fence_delay, Millis(5_000));
    assert!(loaded.warnings.iter().all(|w| w.path != "fencing"));
}

#[test]
fn kinds_from_agent_types() {
    let text = format!(
        "{MIN}[[resource]]\nname = \"fs\"\ntype = \"ocf:heartbeat:Filesystem\"\n\
         [[resource]]\nname = \"ip\"\ntype = \"ocf:heartbeat:IPaddr2\"\n\
         [[resource]]\nname = \"drbd2\"\ntype = \"ocf:linbit:drbd\"\nkind = \"service\"\n\
         [[resource]]\nname = \"n\"\ntype = \"lsb:nfs\"\n"
    );
    let c = ok(&text).config;
    let kinds: Vec<_> = c.resources.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            ResourceKind::Service,
            ResourceKind::Filesystem,
            ResourceKind::Address,
            ResourceKind::Service,
            ResourceKind::Service
        ]
    );
    assert_eq!(
        c.resources[4].exec,
        Exec::Agent(ra::Agent::Lsb { name: "nfs".into() })
    );
}

#[test]
fn test_exit_mode_warns_loudly() {
    let text = format!("{MIN}[self_fence]\nmode = \"test-exit\"\n");
    let loaded = ok(&text);
    assert_eq!(loaded.config.self_fence.mode, SelfFenceMode::TestExit);
    let w = loaded
        .warnings
        .iter()
        .find(|w| w.path == "self_fence.mode")
        .unwrap();
    assert_eq!(w.line, Some(17));
    assert!(w.message.contains("NEVER USE THIS OUTSIDE TESTS"));
    assert!(
        loaded
            .render_warnings()
            .contains("hapair.toml:17: warning: self_fence.mode: TEST-EXIT")
    );
}

#[test]
fn one_host_two_ports_and_agent_params() {
    // Two daemons on one host (tests) differ by port only.
    let text = MIN.replace("b = \"127.0.0.2:5405\"", "b = \"127.0.0.1:5406\"")
        + "[[resource]]\nname = \"u\"\ntype = \"systemd:x\"\nparams = { a = 1 }\n";
    let loaded = ok(&text);
    assert_eq!(
        loaded.config.links[0].addrs[1],
        "127.0.0.1:5406".parse().unwrap()
    );
    let w = loaded
        .warnings
        .iter()
        .find(|w| w.path == "resource[1].params")
        .unwrap();
    assert_eq!(w.line, Some(19));
    assert!(
        w.message.contains("systemd:x.service takes no parameters"),
        "{}",
        w.message
    );
}

#[test]
fn metrics_any_address_needs_allow_any() {
    let text = format!("{MIN}[metrics]\nlisten = \"[::]:9464\"\nallow_any = true\n");
    assert_eq!(
        ok(&text).config.metrics,
        Some(Metrics {
            listen: "[::]:9464".parse().unwrap()
        })
    );
}

#[test]
fn low_stop_budget_warns() {
    let text = format!("{MIN}[policy]\nstop_budget = \"10s\"\n");
    let loaded = ok(&text);
    assert_eq!(loaded.config.policy.stop_budget, Millis(10_000));
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.path == "policy.stop_budget" && w.line == Some(17))
    );
}

#[test]
fn load_reports_io_utf8_and_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let e = load(&missing).unwrap_err();
    assert!(matches!(e, LoadError::Io { .. }));
    assert!(
        e.to_string()
            .starts_with(&format!("{}: ", missing.display()))
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"[cluster]\nname = \"\xff\"\n").unwrap();
    match load(&bad).unwrap_err() {
        LoadError::Invalid { problems, .. } => {
            assert_eq!(problems[0].line, Some(2));
            assert!(problems[0].message.contains("UTF-8"));
        }
        e => panic!("{e}"),
    }

    let invalid = dir.path().join("invalid.toml");
    std::fs::write(
        &invalid,
        format!("{MIN}[policy]\nstart_delay = 5\nretry_interval = 2\n"),
    )
    .unwrap();
    let e = load(&invalid).unwrap_err().to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 3, "{e}");
    assert_eq!(
        lines[0],
        format!("{}: invalid configuration (2 problems):", invalid.display())
    );
    assert!(lines[1].starts_with(&format!("{}:17: policy.start_delay: ", invalid.display())));
    assert!(lines[2].starts_with(&format!(
        "{}:18: policy.retry_interval: ",
        invalid.display()
    )));

    let secret = dir.path().join("secret.toml");
    let text = format!(
        "{MIN}[[fencing.device]]\ntarget = \"b\"\nlevel = 1\nagent = \"f\"\nparams = {{ password = \"x\" }}\n"
    );
    std::fs::write(&secret, &text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let l = load(&secret).unwrap();
    assert!(l.warnings.iter().any(|w| w.message.contains("chmod 0640")));
    assert_eq!(l.config.source, secret);
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
    let l = load(&secret).unwrap();
    assert!(!l.warnings.iter().any(|w| w.message.contains("chmod 0640")));
}

#[test]
fn problem_display() {
    let p = Problem {
        path: "lease.lock_timeout".into(),
        line: Some(12),
        message: "too short".into(),
    };
    assert_eq!(p.to_string(), "12: lease.lock_timeout: too short");
    assert_eq!(
        p.display_in(Path::new("hapair.toml")).to_string(),
        "hapair.toml:12: lease.lock_timeout: too short"
    );
    let q = Problem {
        path: "lease".into(),
        line: None,
        message: "missing".into(),
    };
    assert_eq!(
        render_problems(&[p, q], Path::new("f")),
        "f:12: lease.lock_timeout: too short\nf:lease: missing\n"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary text: never a panic, and any rejection says something.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        if let Err(p) = parse(&text, Path::new("x")) {
            prop_assert!(!p.is_empty());
        }
    }

    /// TOML-ish text built from the config's own vocabulary, which gets past
    /// the syntax check far more often than random characters.
    #[test]
    fn toml_like_text_never_panics(lines in prop::collection::vec(toml_line(), 0..40)) {
        let text = lines.join("\n");
        if let Err(p) = parse(&text, Path::new("x")) {
            prop_assert!(!p.is_empty());
            let n = text.lines().count().max(1);
            prop_assert!(p.iter().all(|p| p.line.is_none_or(|l| l >= 1 && l <= n + 1)));
        }
    }

    /// The examples with one line dropped: never a panic.
    #[test]
    fn example_with_a_line_dropped(which in 0usize..3, drop in 0usize..200) {
        let name = ["pgsql-drbd.toml", "mysql-drbd.toml", "nfs-shared-lun.toml"][which];
        let text = std::fs::read_to_string(examples_dir().join(name)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let drop = drop % lines.len();
        let cut: Vec<&str> = lines.iter().enumerate().filter(|(i, _)| *i != drop).map(|(_, l)| *l).collect();
        let _ = parse(&cut.join("\n"), Path::new("x"));
    }
}

fn toml_line() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "name",
        "type",
        "kind",
        "params",
        "device",
        "lock_timeout",
        "level",
        "target",
        "agent",
        "a",
        "b",
        "keepalive",
        "deadtime",
        "listen",
        "mode",
        "index",
        "preferred",
        "x",
    ]);
    let values = prop::sample::select(vec![
        "\"a\"",
        "\"b\"",
        "\"10s\"",
        "\"0s\"",
        "1",
        "0",
        "-5",
        "99999999999999999999",
        "true",
        "1.5",
        "[1, 2]",
        "{ ip = \"192.0.2.1\" }",
        "\"127.0.0.1:1\"",
        "\"/dev/x\"",
        "\"drbd\"",
        "\"filesystem\"",
        "\"address\"",
        "\"ocf:a:b\"",
        "{ resource = 1 }",
        "\"0.0.0.0:1\"",
    ]);
    let headers = prop::sample::select(vec![
        "[cluster]",
        "[[node]]",
        "[[link]]",
        "[lease]",
        "[policy]",
        "[heartbeat]",
        "[fencing]",
        "[[fencing.device]]",
        "[metrics]",
        "[[resource]]",
        "[self_fence]",
        "[[lease]]",
        "[node]",
    ]);
    prop_oneof![
        (keys, values).prop_map(|(k, v)| format!("{k} = {v}")),
        headers.prop_map(str::to_string),
    ]
}

/// The whole rendering of a messy file, as `hapair validate` prints it.
#[test]
fn rendering_golden() {
    let text = "[cluster]\nname = \"c\"\ncolour = 1\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n\
                [[link]]\nname = \"l\"\na = \"127.0.0.1:1\"\n[lease]\ndevice = \"/dev/x\"\nlock_timeout = \"5s\"\n\
                [policy]\nmonitor_interval = \"1s\"\n[[resource]]\nname = \"fs\"\ntype = \"filesystem\"\n\
                params = { device = \"/dev/drbd0\" }\n[[resource]]\nname = \"w\"\ntype = \"nginx\"\n";
    let want = r#"/etc/hapair/hapair.toml:3: cluster.colour: unknown key `colour` (expected one of `name`, `key_file`, `state_dir`, `socket`, `admin_group`)
/etc/hapair/hapair.toml:8: link[0].b: missing in [link[0]] (the address of node "b" on this link)
/etc/hapair/hapair.toml:13: lease.lock_timeout: self_fence.watchdog_timeout (10.000s) + monitor_interval (2.000s) + margin (2.000s) must be less than lock_timeout (5.000s): a hung node must be reset before the peer may take the lease
/etc/hapair/hapair.toml:15: policy.monitor_interval: unknown key `monitor_interval`; it belongs in [lease] or [[resource]]
/etc/hapair/hapair.toml:19: resource[0].params.directory: missing (the filesystem type needs device, directory and fstype)
/etc/hapair/hapair.toml:19: resource[0].params.fstype: missing (the filesystem type needs device, directory and fstype)
/etc/hapair/hapair.toml:22: resource[1].type: "nginx" is not a type: drbd, filesystem, address (built in), or an agent: ocf:PROVIDER:TYPE, lsb:NAME, systemd:UNIT
"#;
    assert_eq!(
        render_problems(&problems(text), Path::new("/etc/hapair/hapair.toml")),
        want
    );
    let want = "hapair.toml:7: warning: link: only one link: if it fails, each node sees the other \
                as dead; add a second [[link]] over another network\n";
    assert!(ok(MIN).render_warnings().starts_with(want));
}
