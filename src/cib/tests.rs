use std::path::PathBuf;
use std::process::Command;

use proptest::prelude::*;

use super::*;
use crate::config::{Exec, LeaseEngine};
use crate::engine::ResourceKind;

fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cib/testdata")
}

fn testdata(name: &str) -> String {
    let path = testdata_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const EXAMPLE: &str = "example-drbd-fs-ip.xml";
const SFEX: &str = "sfex-shared-lun.xml";
const WHOLE: &str = "whole-cib-hapair-sfex.xml";

fn ok(xml: &str, opts: &Options) -> (Imported, crate::config::Config) {
    let i = match import_with(xml, opts) {
        Ok(i) => i,
        Err(e) => panic!("refused: {e}"),
    };
    let loaded = match crate::config::parse(&i.toml, Path::new("hapair.toml")) {
        Ok(l) => l,
        Err(p) => panic!(
            "the output does not validate:\n{}\n{}",
            crate::config::render_problems(&p, Path::new("hapair.toml")),
            i.toml
        ),
    };
    (i, loaded.config)
}

fn refused(xml: &str) -> CibError {
    match import(xml) {
        Ok(i) => panic!("imported:\n{}", i.toml),
        Err(e) => e,
    }
}

/// 1-based line of the first occurrence of `needle`.
fn line_of(xml: &str, needle: &str) -> usize {
    let at = xml
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the input"));
    xml[..at].matches('\n').count() + 1
}

fn ms(n: u64) -> crate::config::Millis {
    crate::config::Millis(n)
}

fn has_note(notes: &[Note], id: &str, text: &str) -> bool {
    notes.iter().any(|n| n.id == id && n.message.contains(text))
}

#[test]
fn lab_example() {
    let xml = testdata(EXAMPLE);
    let (i, c) = ok(&xml, &Options::default());
    let names: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["nodeA", "nodeB"]);
    assert!(c.nodes.iter().all(|n| !n.preferred));
    let stack: Vec<(&str, ResourceKind)> = c
        .resources
        .iter()
        .map(|r| (r.name.as_str(), r.kind))
        .collect();
    assert_eq!(
        stack,
        [
            ("drbd-r0", ResourceKind::Drbd),
            ("fs-r0", ResourceKind::Filesystem),
            ("ip-svc", ResourceKind::Address),
            ("web", ResourceKind::Service),
        ]
    );
    let drbd = &c.resources[0];
    assert_eq!(drbd.exec, Exec::Drbd);
    assert_eq!(drbd.params.get("resource").map(String::as_str), Some("r0"));
    // promote/demote and the Promoted monitor; the monitor sets no timeout: Pacemaker's 20s
    assert_eq!(
        (
            drbd.start_timeout,
            drbd.stop_timeout,
            drbd.monitor_interval,
            drbd.monitor_timeout
        ),
        (ms(90_000), ms(90_000), ms(29_000), ms(20_000))
    );
    let fs = &c.resources[1];
    assert_eq!(fs.exec.to_string_for_test(), "ocf:heartbeat:Filesystem");
    assert_eq!(
        fs.params.get("directory").map(String::as_str),
        Some("/mnt/r0")
    );
    assert_eq!(
        (
            fs.start_timeout,
            fs.stop_timeout,
            fs.monitor_interval,
            fs.monitor_timeout
        ),
        (ms(60_000), ms(60_000), ms(20_000), ms(40_000))
    );
    let ip = &c.resources[2];
    assert_eq!(
        ip.params.get("cidr_netmask").map(String::as_str),
        Some("24")
    );
    // no start/stop ops: Pacemaker's 20s default
    assert_eq!(
        (ip.start_timeout, ip.stop_timeout),
        (ms(20_000), ms(20_000))
    );
    let web = &c.resources[3];
    assert_eq!(
        web.params.get("cmdline_options").map(String::as_str),
        Some("httpd -f -p 10.88.0.100:80 -h /mnt/r0/www")
    );
    // one fence_lab device per node, each told which node to power off
    let devs: Vec<(&str, u8, &str, Option<&str>)> = c
        .fencing
        .devices
        .iter()
        .map(|d| {
            (
                d.target.as_str(),
                d.level,
                d.agent.as_str(),
                d.params.get("plug").map(String::as_str),
            )
        })
        .collect();
    assert_eq!(
        devs,
        [
            ("nodeA", 1, "fence_lab", Some("nodeA")),
            ("nodeB", 1, "fence_lab", Some("nodeB"))
        ]
    );
    // placeholders: cluster name, link addresses, lease device; each marked in the text
    assert_eq!(i.placeholders.len(), 3, "{:?}", i.placeholders);
    assert_eq!(c.cluster.name, "CHANGE-ME");
    assert_eq!(
        c.lease.device,
        Path::new("/dev/disk/by-id/CHANGE-ME-sfex-lease")
    );
    assert!(i.toml.contains("# PLACEHOLDERS"));
    assert!(i.toml.contains("192.0.2.1:5405"));
    // stickiness: no hapair equivalent, said so
    assert!(has_note(
        &i.warnings,
        "rsc-options-stickiness",
        "resource-stickiness=100"
    ));
    assert!(has_note(&i.warnings, "drbd-r0-mon-u", "role=Unpromoted"));
    assert!(has_note(&i.mapped, "col-svc-on-promoted", "Promoted"));
    assert!(has_note(
        &i.mapped,
        "ord-promote-then-svc",
        "promote, then start"
    ));
}

/// Every meta attribute, op, cluster property and fence setting of a
/// fixture is named in the output's comments: nothing is dropped silently.
#[test]
fn nothing_dropped_silently() {
    for name in [EXAMPLE, SFEX, WHOLE] {
        let xml = testdata(name);
        let (i, _) = ok(&xml, &Options::default());
        let root = xml::parse(&xml).unwrap();
        let mut stack = vec![(&root, "")];
        let mut missing = Vec::new();
        while let Some((e, parent)) = stack.pop() {
            let listed = matches!(
                parent,
                "meta_attributes" | "cluster_property_set" | "operations"
            ) || (parent == "instance_attributes"
                && e.attr("name")
                    .is_some_and(|n| n.starts_with("pcmk_") || n == "drbd_resource"));
            if listed && !i.toml.contains(&format!(", {}: ", e.id())) {
                missing.push(e.id().to_string());
            }
            for c in &e.children {
                stack.push((c, e.name.as_str()));
            }
        }
        assert!(
            missing.is_empty(),
            "{name}: not named in the comments: {missing:?}\n{}",
            i.toml
        );
    }
}

#[test]
fn classic_sfex_shared_lun() {
    let xml = testdata(SFEX);
    let (i, c) = ok(&xml, &Options::default());
    assert_eq!(c.cluster.name, "pg-pair");
    assert_eq!(c.nodes[0].name, "db1");
    assert!(c.nodes[0].preferred && !c.nodes[1].preferred);
    // the sfex primitive became the lease, in its own units (seconds)
    assert_eq!(
        c.lease.device,
        Path::new("/dev/disk/by-id/wwn-0x600a0b8000114d2a0000cafe00000001-part1")
    );
    assert_eq!(c.lease.index, 1);
    assert_eq!(c.lease.engine, LeaseEngine::Auto);
    assert_eq!(
        (
            c.lease.lock_timeout,
            c.lease.monitor_interval,
            c.lease.collision_timeout,
            c.lease.max_io
        ),
        (ms(60_000), ms(2_000), ms(3_000), ms(1_000))
    );
    let names: Vec<&str> = c.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["fs-pg", "ip-pg", "pgsql"],
        "the lease is not a resource"
    );
    // op_defaults timeout 45s where the ops set none
    let ip = &c.resources[1];
    assert_eq!(
        (ip.start_timeout, ip.stop_timeout, ip.monitor_timeout),
        (ms(45_000), ms(5_000), ms(45_000))
    );
    // group meta migration-threshold and failure-timeout (rsc_defaults and pgsql's own)
    assert_eq!(c.policy.migration_threshold, 2);
    assert_eq!(c.policy.failure_timeout, Some(ms(600_000)));
    // topology: virsh first (plug from pcmk_host_map), IPMI second
    // (pcmk_host_argument=none: no plug), db2's index 3 renumbered to 2
    type Dev<'a> = (&'a str, u8, &'a str, Option<&'a str>, Option<u64>);
    let devs: Vec<Dev<'_>> = c
        .fencing
        .devices
        .iter()
        .map(|d| {
            (
                d.target.as_str(),
                d.level,
                d.agent.as_str(),
                d.params.get("plug").map(String::as_str),
                Some(d.timeout.0),
            )
        })
        .collect();
    assert_eq!(
        devs,
        [
            ("db1", 1, "fence_virsh", Some("vm-db1"), Some(20_000)),
            ("db1", 2, "fence_ipmilan", None, Some(30_000)),
            ("db2", 1, "fence_virsh", Some("vm-db2"), Some(20_000)),
            ("db2", 2, "fence_ipmilan", None, Some(30_000)),
        ]
    );
    assert_eq!(
        c.fencing.devices[1]
            .params
            .get("password")
            .map(String::as_str),
        Some("change-me")
    );
    assert!(has_note(&i.warnings, "fl-db2-3", "index 3"));
    assert!(has_note(&i.warnings, "ipmi-db1-delay", "pcmk_delay_max"));
    assert!(has_note(&i.warnings, "fs-pg-mon", "on-fail=restart"));
    assert!(has_note(&i.warnings, "pgsql-prio", "priority=10"));
    assert!(has_note(&i.warnings, "op-options-rp", "record-pending"));
    assert!(has_note(&i.warnings, "opt-quorum", "no-quorum-policy"));
    assert!(has_note(&i.warnings, "nodes-2-standby", "standby"));
    assert!(has_note(&i.warnings, "loc-ipmi-db1", "fence device"));
    assert!(has_note(&i.mapped, "loc-pg-db1", "preferred"));
    // only the link addresses are placeholders here
    assert_eq!(i.placeholders.len(), 1, "{:?}", i.placeholders);
}

#[test]
fn whole_cib_with_hapair_sfex_and_drbd() {
    let xml = testdata(WHOLE);
    let (i, c) = ok(&xml, &Options::default());
    assert_eq!(c.cluster.name, "lab");
    assert_eq!(c.lease.device, Path::new("/dev/vdc"));
    // sfex's defaults (monitor 10 s, collision 1 s): max_io planned below collision/2
    assert_eq!(
        (
            c.lease.lock_timeout,
            c.lease.monitor_interval,
            c.lease.collision_timeout,
            c.lease.max_io
        ),
        (ms(100_000), ms(10_000), ms(1_000), ms(400))
    );
    let names: Vec<(&str, String)> = c
        .resources
        .iter()
        .map(|r| (r.name.as_str(), r.exec.to_string_for_test()))
        .collect();
    assert_eq!(
        names,
        [
            ("drbd-r0", "drbd".to_string()),
            ("fs-r0", "ocf:heartbeat:Filesystem".to_string()),
            ("web", "systemd:nginx.service".to_string())
        ]
    );
    assert_eq!(c.fencing.devices.len(), 2);
    assert!(
        c.fencing.devices.iter().all(|d| d.timeout == ms(40_000)),
        "stonith-timeout"
    );
    assert!(has_note(&i.warnings, "lease-onloss", "on_loss"));
    assert!(has_note(
        &i.warnings,
        "cib-bootstrap-options-dc-version",
        "Pacemaker's own record"
    ));
    assert!(!has_note(&i.warnings, "web", "no monitor op"));
    // the same, given as a fragment: the same output
    let start = xml.find("<configuration>").unwrap();
    let end = xml.find("</configuration>").unwrap() + "</configuration>".len();
    let (j, _) = ok(&xml[start..end], &Options::default());
    assert_eq!(
        i.toml
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        j.toml
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
    );
}

trait ExecName {
    fn to_string_for_test(&self) -> String;
}
impl ExecName for Exec {
    fn to_string_for_test(&self) -> String {
        match self {
            Exec::Drbd => "drbd".into(),
            Exec::Filesystem => "filesystem".into(),
            Exec::Address => "address".into(),
            Exec::Agent(a) => a.to_string(),
        }
    }
}

#[test]
fn node_addresses_from_options() {
    let xml = testdata(EXAMPLE);
    let opts = Options {
        nodes: vec![
            "nodeA=10.0.0.1,192.168.1.1:7000".parse().unwrap(),
            "nodeB=10.0.0.2,192.168.1.2:7000".parse().unwrap(),
        ],
    };
    let (i, c) = ok(&xml, &opts);
    assert_eq!(c.links.len(), 2);
    assert_eq!(
        c.links[0].addrs,
        [
            "10.0.0.1:5405".parse().unwrap(),
            "10.0.0.2:5405".parse().unwrap()
        ]
    );
    assert_eq!(
        c.links[1].addrs,
        [
            "192.168.1.1:7000".parse().unwrap(),
            "192.168.1.2:7000".parse().unwrap()
        ]
    );
    assert!(!i.placeholders.iter().any(|p| p.contains("[[link]]")));
    // a name the CIB does not know
    let opts = Options {
        nodes: vec!["nodeC=10.0.0.3".parse().unwrap()],
    };
    assert_eq!(
        import_with(&xml, &opts).unwrap_err().to_string(),
        "--node nodeC: the CIB already names two nodes, \"nodeA\" and \"nodeB\""
    );
    assert!("nodeA".parse::<NodeAddrs>().is_err());
    assert!("nodeA=nowhere".parse::<NodeAddrs>().is_err());
    assert_eq!(
        "n=[2001:db8::1]:9".parse::<NodeAddrs>().unwrap().addrs,
        ["[2001:db8::1]:9".parse().unwrap()]
    );
}

#[test]
fn output_passes_hapair_validate_from_a_file() {
    // as `hapair validate FILE` reads it (load: file, mode, parse)
    for name in [EXAMPLE, SFEX, WHOLE] {
        let i = import(&testdata(name)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hapair.toml");
        std::fs::write(&path, &i.toml).unwrap();
        if let Err(e) = crate::config::load(&path) {
            panic!("{name}: {e}\n{}", i.toml);
        }
    }
}

/// The refusal cases: (name, input, exact error).
fn refusals() -> Vec<(&'static str, String, String)> {
    let ex = testdata(EXAMPLE);
    let sfex = testdata(SFEX);
    let mut out = Vec::new();
    let mut case = |name: &'static str, xml: String, expect: &dyn Fn(&str) -> String| {
        let e = expect(&xml);
        out.push((name, xml, e));
    };
    case(
        "three nodes",
        ex.replace(
            "<configuration>",
            "<configuration>\n<nodes>\n<node id=\"1\" uname=\"nodeA\"/>\n<node id=\"2\" uname=\"nodeB\"/>\n<node id=\"3\" uname=\"nodeC\"/>\n</nodes>",
        ),
        &|x| {
            format!(
                "line {}: <node id=\"3\">: a third node (\"nodeC\", after \"nodeA\" and \"nodeB\"): hapair runs exactly two",
                line_of(x, "uname=\"nodeC\"")
            )
        },
    );
    case(
        "third node in a host list",
        ex.replace("value=\"nodeA nodeB\"", "value=\"nodeA nodeB nodeC\""),
        &|x| {
            format!(
                "line {}: <nvpair id=\"fence-lab-hl\">: a third node (\"nodeC\", after \"nodeA\" and \"nodeB\"): hapair runs exactly two",
                line_of(x, "id=\"fence-lab-hl\"")
            )
        },
    );
    case(
        "clone not promotable",
        ex.replace(
            "name=\"promotable\" value=\"true\"",
            "name=\"promotable\" value=\"false\"",
        ),
        &|x| {
            format!(
                "line {}: <clone id=\"drbd-r0-clone\">: a clone that is not promotable: hapair runs the stack on one node; \
                 only a promotable DRBD clone (promotable=true) maps onto it",
                line_of(x, "<clone")
            )
        },
    );
    case(
        "promotable clone of another agent",
        ex.replace(
            "provider=\"linbit\" type=\"drbd\"",
            "provider=\"pacemaker\" type=\"Stateful\"",
        ),
        &|x| {
            format!(
                "line {}: <clone id=\"drbd-r0-clone\">: a clone of ocf:pacemaker:Stateful: hapair's only clone is a \
                 promotable clone of ocf:linbit:drbd",
                line_of(x, "<clone")
            )
        },
    );
    case(
        "dual primary",
        ex.replace(
            "name=\"promoted-max\" value=\"1\"",
            "name=\"promoted-max\" value=\"2\"",
        ),
        &|x| {
            format!(
                "line {}: <clone id=\"drbd-r0-clone\">: promoted-max=2: hapair's DRBD runs on two nodes, promoted on one (promoted-max=1)",
                line_of(x, "<clone")
            )
        },
    );
    case(
        "master element",
        ex.replace(
            "<clone id=\"drbd-r0-clone\">",
            "<master id=\"drbd-r0-clone\">",
        )
        .replace("</clone>", "</master>")
        .replace(
            "<nvpair id=\"d-prom\" name=\"promotable\" value=\"true\"/>",
            "",
        ),
        &|x| {
            format!(
                "line {}: <master id=\"drbd-r0-clone\">: <master> (the Pacemaker 1.x form): convert it to <clone> with \
                 promotable=true (cibadmin --upgrade) and import again",
                line_of(x, "<master")
            )
        },
    );
    case(
        "location rule",
        ex.replace(
            "</constraints>",
            "<rsc_location id=\"loc-rule\" rsc=\"g-svc\">\n<rule id=\"loc-rule-r\" score=\"100\"><expression id=\"loc-rule-e\" attribute=\"#uname\" operation=\"eq\" value=\"nodeA\"/></rule>\n</rsc_location>\n</constraints>",
        ),
        &|x| {
            format!(
                "line {}: <rule id=\"loc-rule-r\">: a rule in constraint \"loc-rule\": hapair cannot express rules",
                line_of(x, "<rule")
            )
        },
    );
    case(
        "location ban",
        ex.replace(
            "</constraints>",
            "<rsc_location id=\"cli-ban-g-svc-on-nodeB\" rsc=\"g-svc\" node=\"nodeB\" score=\"-INFINITY\"/>\n</constraints>",
        ),
        &|x| {
            format!(
                "line {}: <rsc_location id=\"cli-ban-g-svc-on-nodeB\">: a negative score for node \"nodeB\": hapair runs the \
                 stack on either node (left by crm_resource --ban: clear it with crm_resource --clear)",
                line_of(x, "cli-ban")
            )
        },
    );
    case(
        "equal location scores",
        ex.replace(
            "</constraints>",
            "<rsc_location id=\"l1\" rsc=\"g-svc\" node=\"nodeA\" score=\"100\"/>\n<rsc_location id=\"l2\" rsc=\"g-svc\" node=\"nodeB\" score=\"100\"/>\n</constraints>",
        ),
        &|x| {
            format!(
                "line {}: <rsc_location id=\"l2\">: the same score for \"nodeB\" as for \"nodeA\" (line {}): which node is preferred?",
                line_of(x, "id=\"l2\""),
                line_of(x, "id=\"l1\"")
            )
        },
    );
    case(
        "colocation with Unpromoted",
        ex.replace("with-rsc-role=\"Promoted\"", "with-rsc-role=\"Unpromoted\""),
        &|x| {
            format!(
                "line {}: <rsc_colocation id=\"col-svc-on-promoted\">: hapair's only colocation is \"g-svc with the Promoted \
                 role of the DRBD clone\" (score INFINITY)",
                line_of(x, "<rsc_colocation")
            )
        },
    );
    case(
        "order start then start",
        ex.replace("first-action=\"promote\"", "first-action=\"start\""),
        &|x| {
            format!(
                "line {}: <rsc_order id=\"ord-promote-then-svc\">: hapair's only order is \"promote the DRBD clone, then start g-svc\" (Mandatory)",
                line_of(x, "<rsc_order")
            )
        },
    );
    case(
        "no order",
        ex.replace(
            "<rsc_order id=\"ord-promote-then-svc\" kind=\"Mandatory\" first=\"drbd-r0-clone\" first-action=\"promote\" then=\"g-svc\" then-action=\"start\"/>",
            "",
        ),
        &|x| {
            format!(
                "line {}: <clone id=\"drbd-r0-clone\">: no rsc_order promote, then start g-svc: without it Pacemaker runs the \
                 group apart from the Primary, which hapair cannot express",
                line_of(x, "<clone")
            )
        },
    );
    case(
        "ticket",
        ex.replace(
            "</constraints>",
            "<rsc_ticket id=\"t1\" rsc=\"g-svc\" ticket=\"T\"/>\n</constraints>",
        ),
        &|x| {
            format!(
                "line {}: <rsc_ticket id=\"t1\">: <rsc_ticket>: hapair cannot express it",
                line_of(x, "<rsc_ticket")
            )
        },
    );
    case(
        "primitive outside the group",
        ex.replace(
            "</resources>",
            "<primitive id=\"extra\" class=\"ocf\" provider=\"heartbeat\" type=\"Dummy\"/>\n</resources>",
        ),
        &|x| {
            format!(
                "line {}: <primitive id=\"extra\">: a primitive outside group \"g-svc\": hapair runs one stack (put it in the group)",
                line_of(x, "id=\"extra\"")
            )
        },
    );
    case(
        "second group",
        ex.replace(
            "</resources>",
            "<group id=\"g2\"><primitive id=\"extra\" class=\"ocf\" provider=\"heartbeat\" type=\"Dummy\"/></group>\n</resources>",
        ),
        &|x| {
            format!(
                "line {}: <group id=\"g2\">: a second group (the stack is group \"g-svc\"): hapair runs one stack",
                line_of(x, "id=\"g2\"")
            )
        },
    );
    case(
        "nagios class",
        ex.replace(
            "class=\"ocf\" provider=\"heartbeat\" type=\"anything\"",
            "class=\"nagios\" type=\"check_http\"",
        ),
        &|x| {
            format!(
                "line {}: <primitive id=\"web\">: class \"nagios\": hapair runs ocf, lsb and systemd agents (and stonith as fence devices)",
                line_of(x, "id=\"web\"")
            )
        },
    );
    case(
        "service class",
        ex.replace(
            "class=\"ocf\" provider=\"heartbeat\" type=\"anything\"",
            "class=\"service\" type=\"httpd\"",
        ),
        &|x| {
            format!(
                "line {}: <primitive id=\"web\">: class \"service\": hapair runs ocf, lsb and systemd agents (and stonith as \
                 fence devices); say which: lsb or systemd",
                line_of(x, "id=\"web\"")
            )
        },
    );
    case(
        "sfex lease rule",
        sfex.replace(
            "name=\"lock_timeout\" value=\"60\"",
            "name=\"lock_timeout\" value=\"20\"",
        ),
        &|x| {
            format!(
                "line {}: <primitive id=\"lease\">: the sfex lease cannot meet hapair's lease rule: monitor_interval (2.000s) + \
                 max_io (1.000s) + stop_budget (25.000s) + margin (2.000s) must be less than lock_timeout (20.000s): the \
                 primary could not stop before a peer may take the lease",
                line_of(x, "id=\"lease\"")
            )
        },
    );
    case(
        "sfex not first",
        sfex.replace(
            "<primitive id=\"lease\" class=\"ocf\" provider=\"heartbeat\" type=\"sfex\">",
            "<primitive id=\"x\" class=\"ocf\" provider=\"heartbeat\" type=\"Dummy\"/>\n<primitive id=\"lease\" class=\"ocf\" provider=\"heartbeat\" type=\"sfex\">",
        ),
        &|x| {
            format!(
                "line {}: <primitive id=\"lease\">: an sfex lease that is not the group's first member: hapair's lease is \
                 held below the whole stack",
                line_of(x, "id=\"lease\"")
            )
        },
    );
    case(
        "rule in meta attributes",
        ex.replace(
            "<meta_attributes id=\"rsc-options\">",
            "<meta_attributes id=\"rsc-options\">\n<rule id=\"r-night\" score=\"0\"><date_expression id=\"r-night-d\" operation=\"gt\" start=\"2026-01-01\"/></rule>",
        ),
        &|x| {
            format!(
                "line {}: <rule id=\"r-night\">: a rule in <meta_attributes>: hapair's settings are the same at all times and on both nodes",
                line_of(x, "id=\"r-night\"")
            )
        },
    );
    out
}

#[test]
fn every_refusal_names_the_id_and_line() {
    for (name, xml, expect) in refusals() {
        let e = refused(&xml);
        assert_eq!(e.to_string(), expect, "case {name}");
    }
}

#[test]
fn refusals_are_typed() {
    let cases = refusals();
    let kind = |n: &str| {
        let (_, xml, _) = cases.iter().find(|c| c.0 == n).unwrap();
        refused(xml)
    };
    assert!(matches!(kind("three nodes"), CibError::TooManyNodes { .. }));
    assert!(matches!(
        kind("clone not promotable"),
        CibError::UnsupportedClone { .. }
    ));
    assert!(matches!(
        kind("location rule"),
        CibError::UnsupportedConstraint { .. }
    ));
    assert!(matches!(
        kind("primitive outside the group"),
        CibError::OutsideStack { .. }
    ));
    assert!(matches!(
        kind("nagios class"),
        CibError::UnsupportedClass { .. }
    ));
    assert!(
        matches!(kind("sfex lease rule"), CibError::LeaseRule { ref at, .. } if at.id == "lease")
    );
    assert!(matches!(
        kind("rule in meta attributes"),
        CibError::Unsupported { .. }
    ));
}

#[test]
fn malformed_xml_has_line_and_column() {
    let cases: &[(&str, &str)] = &[
        (
            "<configuration>\n  <resources>\n  </resourcs>\n</configuration>",
            "malformed XML at line 3, column 3: ill-formed document: expected `</resources>`, but `</resourcs>` was found",
        ),
        (
            "<configuration>\n<resources>\n<primitive id=x/>\n</resources></configuration>",
            "malformed XML at line 3, column 1: in <primitive>: position 13: attribute value must be enclosed in `\"` or `'`",
        ),
        (
            "<configuration>\n<resources>\n",
            "malformed XML at line 3, column 1: the document ends inside <resources> (opened on line 2)",
        ),
        ("", "malformed XML at line 1, column 1: no root element"),
        (
            "<a/><b/>",
            "malformed XML at line 1, column 5: a second root element <b> after the document's end",
        ),
        (
            "<!DOCTYPE cib [<!ENTITY x \"y\">]>\n<cib/>",
            "malformed XML at line 1, column 1: a DOCTYPE declaration (a CIB has none; entities are not expanded)",
        ),
        (
            "<configuration>\n<nodes><node id=\"1\" uname=\"a&b\"/></nodes></configuration>",
            "malformed XML at line 2, column 8: in <node> attribute uname: Error while escaping character at range 1..3: Cannot find ';' after '&'",
        ),
    ];
    for (xml, expect) in cases {
        let e = refused(xml);
        assert!(matches!(e, CibError::Malformed { .. }), "{xml:?}: {e:?}");
        assert_eq!(e.to_string(), *expect, "{xml:?}");
    }
    assert_eq!(
        refused("<status/>").to_string(),
        "line 1: the root element is <status>: expected <cib> or <configuration>"
    );
}

#[test]
fn durations_and_scores() {
    assert_eq!(pcmk_duration("0"), Some(0));
    assert_eq!(pcmk_duration("100"), Some(100_000));
    assert_eq!(pcmk_duration("29s"), Some(29_000));
    assert_eq!(pcmk_duration("1500ms"), Some(1_500));
    assert_eq!(pcmk_duration("2min"), Some(120_000));
    assert_eq!(pcmk_duration("1h"), Some(3_600_000));
    assert_eq!(pcmk_duration("10 s"), Some(10_000));
    assert_eq!(pcmk_duration("PT5M"), None);
    assert_eq!(pcmk_duration("s"), None);
    assert_eq!(pcmk_duration("99999999999999999999"), None);
    assert_eq!(fmt_ms(1_500), "1500ms");
    assert_eq!(fmt_ms(60_000), "60s");
    assert_eq!(q("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    assert_eq!(key("node.a"), "\"node.a\"");
    assert_eq!(key("nodeA"), "nodeA");
}

/// Wraps a fixture the way `cibadmin -Q` would show it: a fragment gets a
/// `<cib>` with the attributes the schema requires, an empty crm_config
/// and nodes where it has none, and a status with every node online (so
/// crm_verify does not schedule fencing of unknown nodes).
fn as_full_cib(xml: &str) -> String {
    if xml.contains("<cib ") {
        return xml.to_string();
    }
    let mut t = xml.to_string();
    let at = t
        .find("<configuration>")
        .expect("a fragment has <configuration>")
        + "<configuration>".len();
    if !t.contains("<crm_config") {
        t.insert_str(at, "<crm_config/>");
    }
    if !t.contains("<nodes") {
        t.insert_str(at, "<nodes/>");
    }
    let root = xml::parse(&t).unwrap();
    let mut status = String::from("<status>");
    for n in root.kids("nodes").flat_map(|ns| ns.kids("node")) {
        let _ = write!(
            status,
            "<node_state id=\"{}\" uname=\"{}\" in_ccm=\"true\" crmd=\"online\" join=\"member\" expected=\"member\"/>",
            n.id(),
            n.attr("uname").unwrap_or("")
        );
    }
    status.push_str("</status>");
    let start = t.find("<configuration>").unwrap();
    t.insert_str(
        start,
        "<cib validate-with=\"pacemaker-3.9\" admin_epoch=\"0\" epoch=\"1\" num_updates=\"0\">\n",
    );
    t.push_str(&status);
    t.push_str("</cib>\n");
    t
}

/// Real Pacemaker accepts every fixture this module imports or refuses:
/// `crm_verify --xml-file` (schema and the scheduler's checks, offline)
/// exits 0 on each. The refusals are hapair's limits, not broken input.
#[test]
fn crm_verify_accepts_every_fixture() {
    let crm_verify = ["/usr/sbin/crm_verify", "/usr/bin/crm_verify"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("crm_verify is missing: install pacemaker-cli-utils (.ci/test does)");
    let mut fixtures: Vec<(String, String)> = Vec::new();
    for entry in std::fs::read_dir(testdata_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "xml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            fixtures.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    assert!(fixtures.len() >= 3, "{fixtures:?}");
    for (name, xml, _) in refusals() {
        fixtures.push((format!("refusal: {name}"), xml));
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, xml) in &fixtures {
        let path = dir.path().join("cib.xml");
        std::fs::write(&path, as_full_cib(xml)).unwrap();
        let out = Command::new(crm_verify)
            .arg("--xml-file")
            .arg(&path)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "crm_verify rejects {name}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Cut, spliced or corrupted input gives an error or a valid file, never a panic.
    #[test]
    fn mutated_input_never_panics(
        which in 0usize..3,
        cut in any::<prop::sample::Index>(),
        len in 0usize..40,
        insert in "[<>/=\"a-z0-9 &;!?-]{0,12}",
    ) {
        let xml = testdata([EXAMPLE, SFEX, WHOLE][which]);
        let mut at = cut.index(xml.len());
        while !xml.is_char_boundary(at) { at -= 1; }
        let mut end = (at + len).min(xml.len());
        while !xml.is_char_boundary(end) { end -= 1; }
        let mutated = format!("{}{insert}{}", &xml[..at], &xml[end..]);
        if let Ok(i) = import(&mutated) {
            prop_assert!(crate::config::parse(&i.toml, Path::new("t")).is_ok());
        }
    }

    #[test]
    fn arbitrary_input_never_panics(s in "\\PC{0,200}") {
        let _ = import(&s);
    }

    #[test]
    fn attribute_values_never_break_the_output(v in "\\PC{0,30}") {
        // any parameter value: either refused or quoted into valid TOML
        let xml = testdata(EXAMPLE).replace("value=\"/mnt/r0\"", &format!("value=\"{}\"", v.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;")));
        if let Ok(i) = import(&xml) {
            let c = crate::config::parse(&i.toml, Path::new("t")).unwrap().config;
            prop_assert_eq!(c.resources[1].params.get("directory").map(String::as_str), Some(v.as_str()));
        }
    }
}
