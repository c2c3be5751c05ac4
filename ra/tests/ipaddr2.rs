//! Debian's `ocf:heartbeat:IPaddr2` run by the runner inside a network
//! namespace made for the test (`Request::netns`, i.e. `ip netns exec NS
//! AGENT ACTION` with the same environment and process handling). The
//! namespace holds a veth pair (both ends inside it; this kernel has no
//! dummy interfaces) with 10.213.7.1/24; the agent adds and removes
//! 10.213.7.50/24. Nothing touches the root namespace's interfaces, and
//! the gratuitous ARPs the agent sends stay on the pair.
//!
//! Needs root and iproute2 (`ip netns`).

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use ra::{Action, Observed, OcfExit, Recovery, Request, Verdict};

const VIP: &str = "10.213.7.50";

/// A network namespace with a veth pair, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("hapair-ra-{}-{n}", std::process::id());
        sh(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns(name);
        let ip = |args: &[&str]| sh(Command::new("ip").arg("-n").arg(&ns.0).args(args));
        ip(&["link", "set", "lo", "up"]);
        ip(&[
            "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
        ]);
        ip(&["link", "set", "veth0", "up"]);
        ip(&["link", "set", "veth1", "up"]);
        ip(&["addr", "add", "10.213.7.1/24", "dev", "veth0"]);
        ns
    }

    fn addresses(&self) -> String {
        sh(Command::new("ip").args(["-n", &self.0, "-4", "-o", "addr", "show", "dev", "veth0"]))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[tokio::test]
async fn ipaddr2_in_a_network_namespace() {
    require_root();
    require_heartbeat_agent("IPaddr2");
    require_file("/usr/bin/ip", "iproute2");
    let ns = Netns::new();
    let runner = system_runner();
    let agent: ra::Agent = "ocf:heartbeat:IPaddr2".parse().unwrap();
    let md = runner.meta_data(&agent).await.unwrap();
    let op = |action: Action| {
        Request::new("vip", agent.clone(), action, Duration::from_secs(20))
            .param("ip", VIP)
            .param("cidr_netmask", "24")
            .param("nic", "veth0")
            .netns(&ns.0)
    };
    assert!(md.check_params(&op(Action::Start).params).is_empty());
    let run = |r: Request| {
        let runner = runner.clone();
        async move { runner.run(&r).await.unwrap() }
    };

    let r = run(op(Action::ValidateAll)).await;
    assert!(r.is_success(), "{r:#?}");
    assert_eq!(&r.argv[..4], ["ip", "netns", "exec", ns.0.as_str()]);
    let r = run(op(Action::Monitor)).await;
    assert_eq!(r.classification.observed, Some(Observed::Stopped), "{r:#?}");

    let r = run(op(Action::Start)).await;
    assert!(r.is_success(), "{r:#?}");
    assert!(
        ns.addresses().contains(&format!("{VIP}/24")),
        "{}",
        ns.addresses()
    );
    let root_ns = sh(Command::new("ip").args(["-4", "-o", "addr", "show"]));
    assert!(
        !root_ns.contains(VIP),
        "the address leaked into the root namespace"
    );
    let r = run(op(Action::Start)).await;
    assert!(r.is_success(), "double start: {r:#?}");
    let r = run(op(Action::Monitor).interval(Duration::from_secs(10))).await;
    assert_eq!(r.rc, OcfExit::Success, "{r:#?}");
    assert!(r.is_success());

    let r = run(op(Action::Stop)).await;
    assert!(r.is_success(), "{r:#?}");
    assert!(!ns.addresses().contains(VIP));
    let r = run(op(Action::Stop)).await;
    assert!(r.is_success(), "double stop: {r:#?}");
    let r = run(op(Action::Monitor).interval(Duration::from_secs(10))).await;
    assert_eq!(r.rc, OcfExit::NotRunning);
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Soft));

    // An interface that does not exist in the namespace: the agent refuses
    // the configuration.
    let r = run(op(Action::Start).param("nic", "eth-none")).await;
    assert!(!r.is_success());
    assert_eq!(r.rc, OcfExit::ErrConfigured, "{r:#?}");
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Fatal));
    assert!(r.exit_reason.is_some());
}

#[tokio::test]
async fn netns_keeps_the_environment_rules() {
    require_root();
    let ns = Netns::new();
    let root = ScratchRoot::new();
    let runner = root.runner();
    let plain = Request::new(
        "r1",
        test_agent("envdump"),
        Action::Start,
        Duration::from_secs(10),
    )
    .param("p", "v");
    let a = runner.run(&plain).await.unwrap();
    let b = runner.run(&plain.clone().netns(&ns.0)).await.unwrap();
    assert!(
        a.is_success(),
        "without netns: {a:#?}\nstderr: {}",
        a.stderr.text()
    );
    assert!(
        b.is_success(),
        "with netns: {b:#?}\nstderr: {}",
        b.stderr.text()
    );
    assert_eq!(
        a.stdout.text(),
        b.stdout.text(),
        "same environment with and without netns"
    );
    // Missing namespace: ip fails, the agent never runs.
    let r = runner.run(&plain.netns("hapair-no-such-ns")).await.unwrap();
    assert!(!r.is_success());
    assert!(
        r.stderr.text().contains("hapair-no-such-ns"),
        "{}",
        r.stderr.text()
    );
}
