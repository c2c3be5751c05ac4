//! Built-in `address` versus `ocf:heartbeat:IPaddr2` (`cargo bench --bench
//! address`, as root): the time of one start plus one stop of the same
//! virtual IP, `--rounds N` times each (default 20), in one run, inside a
//! network namespace made for it (`netns::Topology`, veth 10.201.0.1/24;
//! the VIP is 10.201.0.100/24 on the veth, nothing touches the root
//! namespace).
//!
//! - The built-in runs as the daemon runs it: `Address::run` on a thread
//!   (here, one that entered the namespace), with its defaults (5 ARPs at
//!   200 ms, the first before start returns, the rest in the background;
//!   a 200 ms duplicate check), and once more with `dad_timeout=0`, which
//!   is what IPaddr2 does by default (no IPv4 duplicate check).
//! - IPaddr2 once at its defaults and once with `run_arping=true`, its own
//!   IPv4 duplicate check (`arping -c 2 -w 3 -D`, iputils-arping): the job
//!   the built-in's default check does, like for like.
//! - IPaddr2 runs through the `ra` crate's `Runner` exactly as the daemon
//!   would, behind `ip netns exec NS` (`Request::netns`), which adds one
//!   fork+exec per operation. Its own gratuitous ARPs (`send_arp`) are
//!   backgrounded by the agent, so they are not in its figure either.
//!
//! Prints p50, p99 and the ratios.

pub use hapair::{membership, proto, runtime};

#[path = "netns.rs"]
#[allow(dead_code)]
mod netns;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hapair::engine::{Op, Outcome};
use hapair::runtime::builtin::address::Address;
use netns::Topology;
use ra::{Action, Request, Runner, RunnerConfig};

const VIP: &str = "10.201.0.100";

/// Nearest-rank percentile, `p` in whole percent.
fn pct(v: &[Duration], p: usize) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    let rank = (p * s.len()).div_ceil(100).max(1);
    s[rank.min(s.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn builtin_rounds(
    topo: &Topology,
    nic: &str,
    extra: &[(&str, &str)],
    rounds: usize,
) -> Vec<Duration> {
    let mut p: BTreeMap<String, String> = [("ip", VIP), ("cidr_netmask", "24"), ("nic", nic)]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    p.retain(|_, v| !v.is_empty());
    let a = Address::from_params(&p).expect("params");
    topo.in_ns(0, move || {
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                let r = a.run(Op::Start);
                assert_eq!(r.outcome, Outcome::Ok, "start: {r:?}");
                let r = a.run(Op::Stop);
                assert_eq!(r.outcome, Outcome::Ok, "stop: {r:?}");
                t.elapsed()
            })
            .collect()
    })
}

fn ipaddr2_rounds(
    topo: &Topology,
    nic: &str,
    extra: &[(&str, &str)],
    rounds: usize,
) -> Vec<Duration> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let runner = Runner::new(RunnerConfig::default()).expect("runner");
        let agent: ra::Agent = "ocf:heartbeat:IPaddr2".parse().unwrap();
        assert!(
            runner.agent_path(&agent).is_some(),
            "ocf:heartbeat:IPaddr2 not found: install resource-agents"
        );
        let op = |action: Action| {
            extra.iter().fold(
                Request::new("vip", agent.clone(), action, Duration::from_secs(20))
                    .param("ip", VIP)
                    .param("cidr_netmask", "24")
                    .param("nic", nic)
                    .netns(&topo.ns[0]),
                |r, (k, v)| r.param(k, v),
            )
        };
        let mut out = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            let r = runner.run(&op(Action::Start)).await.unwrap();
            assert!(r.is_success(), "IPaddr2 start: {r:#?}");
            let r = runner.run(&op(Action::Stop)).await.unwrap();
            assert!(r.is_success(), "IPaddr2 stop: {r:#?}");
            out.push(t.elapsed());
        }
        out
    })
}

fn main() {
    let mut rounds = 20;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--rounds N")
            }
            "--bench" => {}
            other => panic!("unknown option {other} (use --rounds N)"),
        }
    }
    let topo = Topology::new(1);
    let nic = topo.links[0].ifname[0].clone();

    // one warm-up each (page cache for the agent's shell and tools)
    let _ = builtin_rounds(&topo, &nic, &[], 1);
    let _ = ipaddr2_rounds(&topo, &nic, &[], 1);
    assert!(
        std::path::Path::new("/usr/bin/arping").exists(),
        "IPaddr2's run_arping needs iputils-arping (the test command installs it)"
    );

    let builtin = builtin_rounds(&topo, &nic, &[], rounds);
    let builtin_nodad = builtin_rounds(&topo, &nic, &[("dad_timeout", "0")], rounds);
    let ipaddr2 = ipaddr2_rounds(&topo, &nic, &[], rounds);
    let ipaddr2_arping = ipaddr2_rounds(&topo, &nic, &[("run_arping", "true")], rounds);

    println!("start+stop of {VIP}/24 on a veth in a network namespace, {rounds} rounds each");
    println!("{:<44} {:>10} {:>10}", "", "p50 ms", "p99 ms");
    for (name, v) in [
        ("built-in (defaults: 200ms duplicate check)", &builtin),
        ("built-in, dad_timeout=0 (as IPaddr2)", &builtin_nodad),
        ("IPaddr2 via ra::Runner (ip netns exec)", &ipaddr2),
        ("IPaddr2, run_arping=true (its DAD check)", &ipaddr2_arping),
    ] {
        println!(
            "{name:<44} {:>10.2} {:>10.2}",
            ms(pct(v, 50)),
            ms(pct(v, 99))
        );
    }
    let ratio = |a: &[Duration], b: &[Duration], p: usize| ms(pct(a, p)) / ms(pct(b, p));
    println!(
        "IPaddr2 / built-in (defaults):       p50 {:.1}x, p99 {:.1}x",
        ratio(&ipaddr2, &builtin, 50),
        ratio(&ipaddr2, &builtin, 99)
    );
    println!(
        "both checking for a duplicate, IPaddr2 run_arping=true / built-in (defaults): p50 {:.1}x, p99 {:.1}x",
        ratio(&ipaddr2_arping, &builtin, 50),
        ratio(&ipaddr2_arping, &builtin, 99)
    );
    println!(
        "IPaddr2 / built-in (dad_timeout=0):  p50 {:.1}x, p99 {:.1}x",
        ratio(&ipaddr2, &builtin_nodad, 50),
        ratio(&ipaddr2, &builtin_nodad, 99)
    );
    println!(
        "(both send their later gratuitous ARPs in the background; the built-in sends its first before start returns)"
    );
}
