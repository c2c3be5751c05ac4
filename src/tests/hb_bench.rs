//! Heartbeat benchmark on the host (`cargo bench --bench heartbeat`): two
//! nodes in two network namespaces joined by two veth pairs.
//!
//! 1. **Detection**: `--runs` times, at a random phase of the keepalive,
//!    cut both links with nftables (on each side's input) and time the
//!    peer-dead event of each node from the moment its own cut started
//!    (`nft` spawn included, so an upper bound) and from when it returned
//!    (a lower bound). Heal, wait for both to see each other, repeat.
//! 2. **Stress**: for each `--loss` level, random loss on both links in
//!    both directions (`numgen random mod 100 < N drop`) with `--busy`
//!    threads spinning (default one, pinned to the last CPU: "the other
//!    core busy"), for `--stress-secs`; counts false deaths (peer-dead
//!    events), links declared down and late, and the gaps between
//!    successive evidence of life, whose tail is the margin left to
//!    deadtime.
//!
//! Delay and jitter need netem, which the host kernel lacks: those runs
//! belong to the lab (lab.md). Options: `--runs N`, `--stress-secs S`,
//! `--loss P,P,...`, `--busy N`, `--keepalive D`, `--warntime D`,
//! `--deadtime D` (humantime), `--skip-detection`, `--skip-stress`.

pub use hapair::{membership, proto, runtime};

#[path = "netns.rs"]
#[allow(dead_code)]
mod netns;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hapair::membership::{Event, Millis, PeerState, Timing};
use hapair::proto::{Key, KeyId, Keyring, NodeView};
use hapair::runtime::heartbeat::Clock;
use netns::{Node, Topology};

struct Opts {
    runs: usize,
    stress_secs: u64,
    loss: Vec<u32>,
    busy: usize,
    timing: Timing,
    detection: bool,
    stress: bool,
}

fn ms(s: &str) -> Millis {
    let d = humantime::parse_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    Millis(u64::try_from(d.as_millis()).unwrap())
}

fn opts() -> Opts {
    let mut o = Opts {
        runs: 200,
        stress_secs: 120,
        loss: vec![20, 30, 40],
        busy: 1,
        timing: Timing::DEFAULT,
        detection: true,
        stress: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--bench" => {}
            "--runs" => o.runs = val().parse().unwrap(),
            "--stress-secs" => o.stress_secs = val().parse().unwrap(),
            "--loss" => o.loss = val().split(',').map(|p| p.parse().unwrap()).collect(),
            "--busy" => o.busy = val().parse().unwrap(),
            "--keepalive" => o.timing.keepalive = ms(&val()),
            "--warntime" => o.timing.warntime = ms(&val()),
            "--deadtime" => o.timing.deadtime = ms(&val()),
            "--skip-detection" => o.detection = false,
            "--skip-stress" => o.stress = false,
            other => panic!("unknown option {other}"),
        }
    }
    o.timing.validate().expect("timing");
    o
}

fn keys() -> Keyring {
    let id = KeyId::new(1).unwrap();
    Keyring::new(id, &[(id, Key::new(vec![0x42; 32]).unwrap())]).unwrap()
}

/// The `per_mille`-th per-mille of a sorted series (nearest rank).
fn pct(sorted: &[u64], per_mille: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (per_mille * sorted.len()).div_ceil(1000);
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(name: &str, v: &mut [u64]) {
    v.sort_unstable();
    println!(
        "| {name} | {} | {} | {} | {} | {} | {} |",
        v.len(),
        pct(v, 500),
        pct(v, 900),
        pct(v, 990),
        v.last().copied().unwrap_or(0),
        v.first().copied().unwrap_or(0),
    );
}

fn start(topo: &Topology, t: Timing, clock: Clock) -> [Node; 2] {
    let mut n = [0, 1].map(|s| {
        Node::spawn(
            &topo.ns[s],
            topo.config(s, t),
            keys(),
            NodeView::default(),
            clock,
        )
    });
    for node in &mut n {
        node.wait_for(Duration::from_secs(3), |e| {
            matches!(e, Event::PeerAlive { .. })
        })
        .expect("pair never formed");
    }
    n
}

/// A small xorshift for the cut phase (the bench may use real randomness;
/// this keeps runs reproducible).
struct Xs(u64);
impl Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn detection(o: &Opts) {
    let t = o.timing;
    println!(
        "\n## Detection: cut both links (nftables), {} runs, keepalive {} warntime {} deadtime {}\n",
        o.runs, t.keepalive, t.warntime, t.deadtime
    );
    let topo = Topology::new(2);
    let clock = Clock::new();
    let mut n = start(&topo, t, clock);
    let mut upper = Vec::new();
    let mut lower = Vec::new();
    let mut wake = Vec::new();
    let mut nft = Vec::new();
    let mut rng = Xs(0x9e37_79b9_7f4a_7c15);
    let began = Instant::now();
    for run in 0..o.runs {
        // both alive on both links
        for node in &mut n {
            let end = Instant::now() + Duration::from_secs(3);
            loop {
                let st = node.status();
                if st.peer.state == PeerState::Alive
                    && st
                        .links
                        .iter()
                        .all(|l| l.state == membership::LinkState::Up)
                {
                    break;
                }
                assert!(
                    Instant::now() < end,
                    "run {run}: pair did not re-form: {st:?}"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            node.history.clear();
            node.drain_for(Duration::ZERO);
            node.history.clear();
        }
        std::thread::sleep(Duration::from_millis(200 + rng.next() % t.keepalive.0));
        let mut t0 = [Millis(0); 2];
        let mut t1 = [Millis(0); 2];
        for s in 0..2 {
            t0[s] = clock.now();
            topo.cut(s, &[0, 1]);
            t1[s] = clock.now();
            nft.push(t1[s].0 - t0[s].0);
        }
        for (s, node) in n.iter_mut().enumerate() {
            let dead = node
                .wait_for(Duration::from_secs(5), |e| {
                    matches!(e, Event::PeerDead { .. })
                })
                .unwrap_or_else(|| panic!("run {run}: node {s} never declared the peer dead"));
            assert!(
                !node.history[..node.history.len() - 1]
                    .iter()
                    .any(|e| matches!(e.event, Event::PeerDead { .. })),
                "a death before the cut"
            );
            upper.push(dead.at.0.saturating_sub(t0[s].0));
            lower.push(dead.at.0.saturating_sub(t1[s].0));
            if let Event::PeerDead {
                last_heard: Some(l),
            } = dead.event
            {
                wake.push(dead.at.0 - l.0 - t.deadtime.0);
            }
        }
        topo.heal(0, &[0, 1]);
        topo.heal(1, &[0, 1]);
    }
    println!("| series (ms) | n | p50 | p90 | p99 | max | min |\n|---|---|---|---|---|---|---|");
    summary("cut start → peer dead", &mut upper);
    summary("cut done → peer dead", &mut lower);
    summary(
        "timer lateness (dead − newest evidence − deadtime)",
        &mut wake,
    );
    summary("nft cut command", &mut nft);
    println!("\n({:.0} s)", began.elapsed().as_secs_f64());
}

/// Spins on `n` threads until dropped; with one thread, pinned to the last CPU.
struct Busy(Arc<AtomicBool>, Vec<std::thread::JoinHandle<u64>>);

impl Busy {
    fn new(n: usize) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
        let threads = (0..n)
            .map(|i| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    if n == 1 {
                        let mut set = nix::sched::CpuSet::new();
                        set.set(cpus - 1).unwrap();
                        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
                    }
                    let mut x = i as u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = std::hint::black_box(
                                x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
                            );
                        }
                    }
                    x
                })
            })
            .collect();
        Busy(stop, threads)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for t in self.1.drain(..) {
            let _ = t.join();
        }
    }
}

fn stress(o: &Opts) {
    let t = o.timing;
    println!(
        "\n## Stress: random loss on both links, both directions, {} busy thread(s), {} s per level, keepalive {} deadtime {}\n",
        o.busy, o.stress_secs, t.keepalive, t.deadtime
    );
    println!(
        "| loss set | loss measured | false deaths | links down | links late | evidence gap p99 / p99.9 / max (ms) | longest silence (ms) |\n|---|---|---|---|---|---|---|"
    );
    for &loss in &o.loss {
        let topo = Topology::new(2);
        let clock = Clock::new();
        let mut n = start(&topo, t, clock);
        std::thread::sleep(Duration::from_millis(500));
        for node in &mut n {
            node.drain_for(Duration::ZERO);
            node.history.clear();
        }
        let sent0 = [0, 1].map(|s| n[s].status().totals.sent);
        for s in 0..2 {
            topo.loss(s, &[0, 1], loss);
        }
        let busy = Busy::new(o.busy);
        let end = Instant::now() + Duration::from_secs(o.stress_secs);
        let mut gaps = Vec::new();
        let mut last = [None::<Millis>; 2];
        let mut silence = 0u64;
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
            let now = clock.now();
            for s in 0..2 {
                let lh = n[s].status().peer.last_heard;
                if let (Some(prev), Some(cur)) = (last[s], lh) {
                    if cur > prev {
                        gaps.push(cur.0 - prev.0);
                    }
                }
                if let Some(cur) = lh {
                    silence = silence.max(now.0.saturating_sub(cur.0));
                }
                last[s] = lh.or(last[s]);
            }
        }
        drop(busy);
        let mut deaths = 0;
        let mut downs = 0;
        let mut warns = 0;
        for node in &mut n {
            node.drain_for(Duration::ZERO);
            for e in &node.history {
                match e.event {
                    Event::PeerDead { .. } => deaths += 1,
                    Event::LinkDown { .. } => downs += 1,
                    Event::LinkWarn { .. } => warns += 1,
                    _ => {}
                }
            }
        }
        let sent: u64 = (0..2).map(|s| n[s].status().totals.sent - sent0[s]).sum();
        let dropped: u64 = (0..2)
            .map(|s| topo.dropped(s, 0) + topo.dropped(s, 1))
            .sum();
        gaps.sort_unstable();
        println!(
            "| {loss} % | {:.1} % | {deaths} | {downs} | {warns} | {} / {} / {} | {silence} |",
            dropped as f64 * 100.0 / sent.max(1) as f64,
            pct(&gaps, 990),
            pct(&gaps, 999),
            gaps.last().copied().unwrap_or(0),
        );
    }
}

fn main() {
    let o = opts();
    netns::require();
    println!(
        "heartbeat benchmark: {} CPUs, timing keepalive {} warntime {} deadtime {}",
        std::thread::available_parallelism().map_or(0, |c| c.get()),
        o.timing.keepalive,
        o.timing.warntime,
        o.timing.deadtime
    );
    if o.detection {
        detection(&o);
    }
    if o.stress {
        stress(&o);
    }
}
