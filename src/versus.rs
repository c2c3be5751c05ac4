//! `hapair demo --versus-pacemaker`: the side-by-side benchmark (issue 10).
//!
//! One lab, one DRBD resource r0, one ext4 filesystem on it, one address,
//! one record service and one client on nodeC: first hapair runs the stack
//! (its `drbd` resource, the built-in filesystem and address, or the OCF
//! agents with `--ocf`, the record service's OCF agent) and is power-cut
//! `--runs` times; then it is stopped cleanly and Pacemaker + Corosync
//! (token 1000 ms, the lab's `tuned`) run the same stack (`ocf:linbit:drbd`,
//! `Filesystem`, `IPaddr2`, the same record agent, fencing through the same
//! power switch, DRBD fencing through `crm-fence-peer.sh`) and are
//! power-cut as often. Every step of both is checked for two read-write
//! mounts and two DRBD Primaries, and every acknowledged record must be on
//! the final primary.
//!
//! For each stack it prints p50/p99 of power cut -> peer declared lost ->
//! fencing confirmed -> promoted -> client served, and per node the
//! manager's process count, RSS and CPU over an idle stretch (the client
//! paused), then the ratios.

use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use hwtest::Node;
use hwtest::pair::{Failover, Pair, acks, other, percentiles};
use hwtest::pcmk::{Pacemaker, Token};
use hwtest::versus::{Footprint, Manager, PROC_SNAPSHOT, cpu_percent, footprint, parse_snapshot};

/// Seconds of the idle CPU measurement.
const IDLE_SECS: u64 = 30;

/// One stack's results.
struct StackRuns {
    manager: Manager,
    /// (lost, fenced, promoted, served) per run, ms after the power cut.
    runs: Vec<[Option<u64>; 4]>,
    /// Per node: the footprint at the start and CPU % over the idle window.
    idle: Vec<(Node, Footprint, f64)>,
}

/// Runs the benchmark on a pair that is up with DRBD (daemons not started).
pub fn run(pair: &Pair, runs: u32, ocf: bool) -> Result<()> {
    let client = pair.start_client()?;
    println!("nodeC client started: {}", client.display());
    let h = hapair_stack(pair, &client, runs, ocf)?;
    let p = pacemaker_stack(pair, &client, runs).map_err(|e| {
        let logs: String = [Node::A, Node::B]
            .iter()
            .map(|n| {
                let d = pair.lab.dir().join(n.name()).join("log/pacemaker");
                let tail = |f: &str| {
                    hwtest::pair::tail(&std::fs::read_to_string(d.join(f)).unwrap_or_default(), 15)
                };
                format!(
                    "--- {n} pacemakerd.out\n{}\n--- {n} pacemaker.log\n{}\n",
                    tail("pacemakerd.out"),
                    tail("pacemaker.log")
                )
            })
            .collect();
        e.context(format!(
            "under Pacemaker\n{logs}--- consoles\n{}",
            pair.lab.console_tails(20)
        ))
    })?;
    let primary = [Node::A, Node::B]
        .into_iter()
        .find(|n| {
            pair.lab
                .mountinfo(*n)
                .is_ok_and(|m| hwtest::pair::rw_mounted(&m, hwtest::pair::DRBD_DEV))
        })
        .context("no node has r0 mounted at the end")?;
    let (acked, lost) = pair.verify_records(&client, primary)?;
    print_table(&h, &p, ocf);
    println!(
        "{acked} records acknowledged across both stacks, {} lost",
        lost.len()
    );
    ensure!(lost.is_empty(), "acknowledged records lost: {lost:?}");
    Ok(())
}

fn hapair_stack(pair: &Pair, client: &std::path::Path, runs: u32, ocf: bool) -> Result<StackRuns> {
    println!(
        "=== hapair ({}): {runs} power cuts",
        if ocf {
            "OCF Filesystem + IPaddr2"
        } else {
            "built-ins"
        }
    );
    pair.start_daemons()?;
    let mut primary = pair.wait_primary(Duration::from_secs(90))?;
    pair.wait_acks(client, 20, Duration::from_secs(60))?;
    println!("{primary} runs the stack; client served");
    let idle = measure_idle(pair, Manager::Hapair)?;
    let mut out = StackRuns {
        manager: Manager::Hapair,
        runs: Vec::new(),
        idle,
    };
    for run in 1..=runs {
        println!("--- hapair run {run}/{runs}: power cut of {primary}");
        let f: Failover = pair.power_cut(primary, client, Duration::from_secs(60), false)?;
        let survivor = other(primary);
        let s = pair.check_safety()?;
        ensure!(s.rw_mounts == vec![survivor], "after the failover: {s:?}");
        let step = |n: &str| f.steps.iter().find(|(s, _)| s == n).map(|s| s.1);
        let r = [
            step("detect"),
            step("fence"),
            step("promote"),
            Some(f.served_ms),
        ];
        println!("    {}", row_text(&r));
        out.runs.push(r);
        pair.wait_acks(client, 5, Duration::from_secs(30))?;
        crate::demo::rejoin(pair, primary, survivor, true)?;
        primary = survivor;
    }
    // a clean stop: each daemon stops its stack (demote included) and
    // releases the lease on SIGTERM; the standby first, or it would start
    // to take over from the primary it sees leave
    for n in [other(primary), primary] {
        pair.lab.run_ok(
            n,
            "p=$(cat /run/hapair/daemon.pid) && kill -TERM $p && \
             for i in $(seq 600); do kill -0 $p 2>/dev/null || exit 0; sleep 0.1; done; exit 1",
        )?;
    }
    for n in [Node::A, Node::B] {
        ensure!(
            pair.lab.drbd_role(n)?.starts_with("Secondary"),
            "{n} is still DRBD Primary after hapair stopped"
        );
    }
    pair.check_safety_without_lease()?;
    println!("hapair stopped on both nodes (stack stopped, r0 Secondary on both)");
    Ok(out)
}

fn pacemaker_stack(pair: &Pair, client: &std::path::Path, runs: u32) -> Result<StackRuns> {
    println!("=== Pacemaker + Corosync (token 1000 ms): {runs} power cuts");
    set_drbd_handlers(
        pair,
        "/usr/lib/drbd/crm-fence-peer.sh",
        "/usr/lib/drbd/crm-unfence-peer.sh",
    )?;
    let t = Instant::now();
    let pcmk = Pacemaker::up(&pair.lab, Token::Tuned)?;
    println!("cluster formed in {:.1}s", t.elapsed().as_secs_f64());
    pcmk.load(&hwtest::versus::pacemaker_stack(&pair.record_cmd()))?;
    let mut primary = wait_pcmk_serving(pair, &pcmk, client, Duration::from_secs(180))?;
    println!(
        "{primary} runs the stack under Pacemaker ({:.1}s after the load)",
        t.elapsed().as_secs_f64()
    );
    let idle = measure_idle(pair, Manager::Pacemaker)?;
    let mut out = StackRuns {
        manager: Manager::Pacemaker,
        runs: Vec::new(),
        idle,
    };
    let year = year_now();
    for run in 1..=runs {
        println!("--- Pacemaker run {run}/{runs}: power cut of {primary}");
        let survivor = other(primary);
        let log_path = pair
            .lab
            .dir()
            .join(survivor.name())
            .join("log/pacemaker/pacemaker.log");
        let log_len = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        let power_len = pair.lab.power_log().len();
        let conn_before = acks(client).last().map_or(0, |a| a.conn);
        let t0 = hwtest::record::unix_ms();
        let rc = pair.lab.power(hwtest::PowerAction::Off, primary)?;
        ensure!(rc == 0, "power off {primary}: rc {rc}");
        let served = pair.wait_served(
            client,
            conn_before,
            t0,
            Duration::from_secs(180),
            Some(false),
        )?;
        pair.check_safety_without_lease()?;
        let log = std::fs::read(&log_path).unwrap_or_default();
        let log = String::from_utf8_lossy(
            log.get(usize::try_from(log_len).unwrap_or(0)..)
                .unwrap_or(&[]),
        );
        let tl = hwtest::versus::pcmk_timeline(&log, primary.name(), t0, year);
        let plog = pair.lab.power_log();
        ensure!(
            plog[power_len.min(plog.len())..].contains(&format!(" off {} rc=0", primary.name())),
            "Pacemaker's fencing did not reach the power switch:\n{plog}"
        );
        let r = [tl.lost_ms, tl.fenced_ms, tl.promoted_ms, Some(served)];
        println!("    {}", row_text(&r));
        out.runs.push(r);
        pair.wait_acks(client, 5, Duration::from_secs(30))?;
        // the victim stays off (stonith-action=off): boot it, DRBD down;
        // Pacemaker's drbd start brings r0 up and it resyncs
        let t = Instant::now();
        let rc = pair.lab.power(hwtest::PowerAction::On, primary)?;
        ensure!(rc == 0, "power on {primary}: rc {rc}");
        pair.prepare(primary)?;
        pcmk.rejoin()?;
        wait_resynced(pair, survivor)?;
        println!(
            "{primary} rejoined and resynced in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        primary = survivor;
    }
    // at once: the lab is torn down next (this also removes the
    // /usr/sbin/fence_lab that pcmk-up.sh installed)
    pcmk.kill()?;
    Ok(out)
}

/// The DRBD handlers in r0.res (drbdadm reads them when the kernel calls
/// it: no adjust needed).
fn set_drbd_handlers(pair: &Pair, fence: &str, unfence: &str) -> Result<()> {
    let res = pair.lab.dir().join("drbd.d/r0.res");
    let text = std::fs::read_to_string(&res).with_context(|| format!("{}", res.display()))?;
    let start = text.find("handlers {").context("r0.res has no handlers")?;
    let end = start
        + text[start..]
            .find('}')
            .context("r0.res: handlers not closed")?;
    let text = format!(
        "{}handlers {{ fence-peer \"{fence}\"; after-resync-target \"{unfence}\"; {}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&res, text).with_context(|| format!("{}", res.display()))?;
    let shown = pair.lab.run_ok(Node::A, "drbdadm dump r0")?;
    ensure!(
        shown.contains(fence),
        "drbdadm does not see the new fence-peer handler:\n{shown}"
    );
    Ok(())
}

fn wait_pcmk_serving(
    pair: &Pair,
    pcmk: &Pacemaker,
    client: &std::path::Path,
    timeout: Duration,
) -> Result<Node> {
    let t = Instant::now();
    let base = acks(client).len();
    loop {
        pair.check_safety_without_lease()?;
        if acks(client).len() >= base + 20 {
            if let [n] = pcmk.status()?.running_on("records")[..] {
                return Ok(n);
            }
        }
        ensure!(
            t.elapsed() < timeout,
            "Pacemaker did not serve the client within {timeout:?}:\n{}",
            pcmk.crm_mon_text()
        );
        sleep(Duration::from_secs(1));
    }
}

/// Pauses the client until r0 is UpToDate on both nodes again (a resync
/// under its synchronous writes crawls in the guests), then resumes it.
fn wait_resynced(pair: &Pair, survivor: Node) -> Result<()> {
    pair.lab.run_ok(Node::C, "pkill -STOP -f ' client --to '")?;
    let t = Instant::now();
    let res = loop {
        let st = pair.lab.run_ok(survivor, "cat /proc/drbd")?;
        if st.contains("cs:Connected") && st.contains("ds:UpToDate/UpToDate") {
            break Ok(());
        }
        if t.elapsed() > Duration::from_secs(240) {
            break Err(anyhow::anyhow!(
                "r0 not UpToDate on both nodes within 240 s:\n{st}"
            ));
        }
        sleep(Duration::from_secs(2));
    };
    pair.lab.run_ok(Node::C, "pkill -CONT -f ' client --to '")?;
    res
}

/// Each node's footprint of `m`, and its CPU over [`IDLE_SECS`] with the
/// client paused.
fn measure_idle(pair: &Pair, m: Manager) -> Result<Vec<(Node, Footprint, f64)>> {
    pair.lab.run_ok(Node::C, "pkill -STOP -f ' client --to '")?;
    let snap = |n: Node| -> Result<Footprint> {
        Ok(footprint(
            &parse_snapshot(&pair.lab.run_ok(n, PROC_SNAPSHOT)?),
            m,
        ))
    };
    sleep(Duration::from_secs(3));
    let before: Vec<(Node, Footprint, Instant)> = [Node::A, Node::B]
        .into_iter()
        .map(|n| Ok((n, snap(n)?, Instant::now())))
        .collect::<Result<_>>()?;
    sleep(Duration::from_secs(IDLE_SECS));
    let mut out = Vec::new();
    for (n, b, t) in before {
        let a = snap(n)?;
        let cpu = cpu_percent(&b, &a, t.elapsed().as_secs_f64(), 100);
        ensure!(b.processes > 0, "no {} process found on {n}", m.name());
        println!(
            "  {n}: {} processes, RSS {:.1} MiB, CPU {cpu:.2} % over {IDLE_SECS} s idle",
            b.processes,
            kib_to_mib(b.rss_kb)
        );
        out.push((n, b, cpu));
    }
    pair.lab.run_ok(Node::C, "pkill -CONT -f ' client --to '")?;
    Ok(out)
}

#[allow(clippy::cast_precision_loss)]
fn kib_to_mib(k: u64) -> f64 {
    k as f64 / 1024.0
}

fn year_now() -> i32 {
    // the guests log UTC without a year; the benchmark runs within a year
    let days = hwtest::record::unix_ms() / 86_400_000;
    let mut y = 1970;
    let mut d = days;
    loop {
        let len = if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
            366
        } else {
            365
        };
        if d < len {
            return y;
        }
        d -= len;
        y += 1;
    }
}

fn row_text(r: &[Option<u64>; 4]) -> String {
    let f = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| format!("{v} ms"));
    format!(
        "peer lost {}, fencing confirmed {}, promoted {}, client served {}",
        f(r[0]),
        f(r[1]),
        f(r[2]),
        f(r[3])
    )
}

fn p50_p99(s: &StackRuns, i: usize) -> Option<(u64, u64)> {
    let mut v: Vec<u64> = s.runs.iter().filter_map(|r| r[i]).collect();
    percentiles(&mut v)
}

fn print_table(h: &StackRuns, p: &StackRuns, ocf: bool) {
    let n = h.runs.len();
    println!(
        "=== side by side, {n} power cuts each, same lab, DRBD r0 + ext4 + address + record service \
         (hapair: {}; Pacemaker: Filesystem + IPaddr2)",
        if ocf {
            "Filesystem + IPaddr2"
        } else {
            "built-ins"
        }
    );
    println!(
        "{:<22} {:>17} {:>17} {:>8}",
        "ms after the power cut",
        p.manager.name().split(' ').next().unwrap_or(""),
        h.manager.name(),
        "ratio"
    );
    for (i, name) in [
        "peer declared lost",
        "fencing confirmed",
        "promoted",
        "client served",
    ]
    .iter()
    .enumerate()
    {
        let c =
            |s: &StackRuns| p50_p99(s, i).map_or_else(|| "-".into(), |(a, b)| format!("{a} / {b}"));
        #[allow(clippy::cast_precision_loss)]
        let ratio = match (p50_p99(p, i), p50_p99(h, i)) {
            (Some((a, _)), Some((b, _))) if b > 0 => format!("{:.1}x", a as f64 / b as f64),
            _ => "-".into(),
        };
        println!("{name:<22} {:>17} {:>17} {ratio:>8}", c(p), c(h));
    }
    println!("(p50 / p99; ratio = Pacemaker p50 / hapair p50)");
    for node in [Node::A, Node::B] {
        let get = |s: &StackRuns| s.idle.iter().find(|(n, _, _)| *n == node).copied();
        if let (Some((_, pf, pc)), Some((_, hf, hc))) = (get(p), get(h)) {
            #[allow(clippy::cast_precision_loss)]
            let mem_ratio = pf.rss_kb as f64 / hf.rss_kb.max(1) as f64;
            println!(
                "{node}: processes {} vs {}, RSS {:.1} vs {:.1} MiB ({mem_ratio:.1}x), idle CPU {pc:.2} vs {hc:.2} %",
                pf.processes,
                hf.processes,
                kib_to_mib(pf.rss_kb),
                kib_to_mib(hf.rss_kb)
            );
        }
    }
}
