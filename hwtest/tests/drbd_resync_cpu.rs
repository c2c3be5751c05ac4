//! Issue 5's benchmark, the monitor's part: CPU of each hapair daemon and
//! of its `drbdsetup events2` child while DRBD resyncs the whole device
//! (`drbdadm invalidate` on the Secondary), against the same figures over
//! an idle stretch of the same length. A benchmark, not a test of the
//! suite: `cargo test -p hwtest --test drbd_resync_cpu -- --ignored
//! --nocapture` (root, the UML lab; binaries built first, as for the lab
//! tests). CPU is the guests' own accounting (utime + stime of the
//! processes, 10 ms ticks) over the guests' uptime clock; each guest has
//! one virtual CPU.

use std::time::{Duration, Instant};

use hwtest::Node;
use hwtest::hapair_drbd::{HaPair, other};

/// `<uptime s> <daemon ticks> <events2 ticks>` of `node`'s daemon.
const SAMPLE: &str = "d=$(pgrep -o -x hapair); \
    e=$(pgrep -f 'drbdsetup.* events2' | head -1); \
    t() { [ -n \"$1\" ] && read -r -a f < /proc/$1/stat && echo $(( ${f[13]} + ${f[14]} )) || echo 0; }; \
    read -r up _ < /proc/uptime; echo \"$up $(t $d) $(t $e)\"";

#[derive(Debug, Clone, Copy)]
struct Sample {
    up: f64,
    daemon: u64,
    events2: u64,
}

fn sample(p: &HaPair, n: Node) -> Sample {
    let out = p.lab.run_ok(n, SAMPLE).unwrap_or_else(|e| panic!("{e}"));
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f.len(), 3, "sample on {n}: {out:?}");
    Sample {
        up: f[0].parse().expect("uptime"),
        daemon: f[1].parse().expect("daemon ticks"),
        events2: f[2].parse().expect("events2 ticks"),
    }
}

/// (daemon %, events2 %) of one CPU between two samples.
#[allow(clippy::cast_precision_loss)]
fn pct(a: Sample, b: Sample) -> (f64, f64) {
    let secs = (b.up - a.up).max(0.01);
    (
        (b.daemon - a.daemon) as f64 / 100.0 / secs * 100.0,
        (b.events2 - a.events2) as f64 / 100.0 / secs * 100.0,
    )
}

#[test]
#[ignore = "a benchmark: run it with --ignored --nocapture"]
fn drbd_monitor_cpu_during_a_full_resync() {
    let mut p = HaPair::setup().unwrap_or_else(|e| panic!("{e}"));
    p.start(Node::A).unwrap();
    p.start(Node::B).unwrap();
    let pri = p
        .wait_any_running(Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}"));
    let sec = other(pri);
    std::thread::sleep(Duration::from_secs(3));

    // the resync first, then an idle stretch as long as it took
    let before = [sample(&p, pri), sample(&p, sec)];
    let t0 = Instant::now();
    p.lab
        .run_ok(sec, "drbdadm invalidate r0")
        .unwrap_or_else(|e| panic!("{e}"));
    p.lab
        .wait_for(
            sec,
            "grep -q 'ds:UpToDate/UpToDate' /proc/drbd",
            "cat /proc/drbd",
            Duration::from_secs(300),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", p.dump()));
    let resync = t0.elapsed();
    let after = [sample(&p, pri), sample(&p, sec)];
    assert_eq!(p.check_safety().unwrap(), Some(pri));
    // settle (the after-resync handler, the status), then idle
    std::thread::sleep(Duration::from_secs(5));
    let quiet = [sample(&p, pri), sample(&p, sec)];
    std::thread::sleep(resync);
    let idle = [sample(&p, pri), sample(&p, sec)];

    println!(
        "full resync of r0 (256 MiB, {sec} the target) took {:.1} s; CPU in % of the guest's one CPU:",
        resync.as_secs_f64()
    );
    println!("node    role       resync: daemon  events2   idle (5 s later): daemon  events2");
    for (i, n) in [pri, sec].into_iter().enumerate() {
        let (rd, re) = pct(before[i], after[i]);
        let (id, ie) = pct(quiet[i], idle[i]);
        println!(
            "{n}   {:9}  {rd:14.2}  {re:7.2}  {id:24.2}  {ie:7.2}",
            if n == pri { "Primary" } else { "Secondary" }
        );
    }
    let log = p.last_log(sec);
    assert!(
        !log.contains("ERROR"),
        "the Secondary's daemon logged an error during the resync:\n{log}"
    );
}
