//! Issue 5, scenario 6: a kernel NFSv4 server on the DRBD filesystem, run
//! by hapair as `ocf:lab:nfs` at the top of the stack (see `hwtest::nfs`),
//! and a client on nodeC that mounts the export through the service
//! address (hard mount) and appends records with `fdatasync` after each
//! (`hapair-recordd nfswriter`). The Primary is power-cut; the survivor
//! fences it, takes over and starts nfsd with the dead node's client
//! records (they live on the DRBD filesystem), and the writer, blocked in
//! the meantime, goes on by itself on the same mount. With the writer
//! stopped, every record it saw acknowledged is in the file on the new
//! Primary. The old Primary is powered on and rejoins as Secondary, the
//! writer runs again, and the new Primary is power-cut in turn: after the
//! second failover every acknowledged record of both runs is there.
//! Safety after every step and from the watchers throughout.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hwtest::Node;
use hwtest::hapair_drbd::{HaOptions, HaPair, MNT, PowerCut, SERVICE_IP, Service, other};
use hwtest::nfs::lab::{CLIENT_MNT, RECORDS, export_dir, mount_script};
use hwtest::record::{self, Ack};

const WRITER_PID: &str = "/run/nfswriter.pid";

fn acks(log: &Path) -> Vec<Ack> {
    record::parse_acks(&std::fs::read_to_string(log).unwrap_or_default())
}

/// Starts the writer on nodeC with records from `start`; returns its log.
fn start_writer(p: &HaPair, start: u64) -> PathBuf {
    let bin = p.recordd.as_ref().expect("hapair-recordd in the lab");
    p.lab
        .spawn(
            Node::C,
            &format!(
                "echo $$ > {WRITER_PID}; exec {} nfswriter --file {CLIENT_MNT}/{RECORDS} --start {start}",
                bin.display()
            ),
        )
        .unwrap()
}

/// Stops the writer (SIGTERM, fatal also in a hard-mount wait) and waits
/// until it is gone: its log is final then.
fn stop_writer(p: &HaPair) {
    p.lab
        .run_ok(
            Node::C,
            &format!(
                "c=$(cat {WRITER_PID}) && kill $c && for i in $(seq 100); do \
                 kill -0 $c 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", p.dump()));
}

/// Waits until the writer log has `n` acks made after `after_ms`.
fn wait_acks_after(p: &HaPair, log: &Path, after_ms: u64, n: usize, timeout: Duration) {
    let t0 = Instant::now();
    loop {
        if acks(log).iter().filter(|a| a.at_ms > after_ms).count() >= n {
            return;
        }
        if t0.elapsed() > timeout {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            let client = p
                .lab
                .run(Node::C, "grep nfs /proc/mounts; dmesg | tail -20")
                .map(|o| o.stdout)
                .unwrap_or_default();
            panic!(
                "fewer than {n} acks after {after_ms} within {timeout:?}; writer log tail (newest first):\n{}\n--- nodeC\n{client}\n{}",
                tail.join("\n"),
                p.dump()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Checks every acknowledged record (all writer runs so far) is in the
/// file on `node`'s export; prints the counts and how long the writer was
/// blocked by the failover `cut`. Returns the largest record in the file.
fn check_records(p: &HaPair, node: Node, all_acks: &[Ack], cut: PowerCut, round: u32) -> u64 {
    let text = p
        .lab
        .run_ok(node, &format!("cat {}/{RECORDS}", export_dir(MNT)))
        .unwrap_or_else(|e| panic!("{e}\n{}", p.dump()));
    let lines: Vec<u64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let lost = record::lost(all_acks, &text);
    let distinct: BTreeSet<u64> = lines.iter().copied().collect();
    let acked: BTreeSet<u64> = all_acks.iter().map(|a| a.n).collect();
    let unacked_present = distinct.difference(&acked).count();
    let last_before = all_acks.iter().rev().find(|a| a.at_ms <= cut.done_ms);
    let first_after = all_acks.iter().find(|a| a.at_ms > cut.done_ms);
    let secs = |ms: u64| Duration::from_millis(ms).as_secs_f64();
    let gap = match (last_before, first_after) {
        (Some(b), Some(a)) => format!(
            "the writer was blocked {:.1} s (last ack before the cut -> first ack after); \
             power cut -> first ack {:.1} s",
            secs(a.at_ms - b.at_ms),
            secs(a.at_ms.saturating_sub(cut.asked_ms))
        ),
        _ => "unknown".into(),
    };
    eprintln!(
        "failover {round}: acked {} (records {}..={}), file has {} lines / {} distinct \
         ({} twice), present but never acked {unacked_present}, lost {}; {gap}",
        acked.len(),
        acked.first().copied().unwrap_or(0),
        acked.last().copied().unwrap_or(0),
        lines.len(),
        distinct.len(),
        lines.len() - distinct.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "failover {round}: acknowledged records missing on {node}: {lost:?}\n{}",
        p.dump()
    );
    assert!(acked.len() > 20, "too few records to mean anything");
    assert!(
        lines.len() <= acked.len() + 50,
        "{} lines for {} acks",
        lines.len(),
        acked.len()
    );
    assert!(
        first_after.is_some(),
        "no ack after the cut: the writer never resumed"
    );
    distinct.last().copied().unwrap_or(0)
}

#[test]
fn drbd_nfs_every_acknowledged_write_survives_each_failover() {
    let t0 = Instant::now();
    let mut p = HaPair::setup_with(HaOptions {
        service: Service::Nfs,
        client_node: true,
        ..HaOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("setup (lab, mkfs, export on r0): {:.1?}", t0.elapsed());
    p.start(Node::A).unwrap();
    p.start(Node::B).unwrap();
    let mut pri = p
        .wait_any_running(Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("stack with nfsd running on {pri}: {:.1?}", t0.elapsed());
    assert_eq!(p.check_safety().unwrap(), Some(pri));

    let m = Instant::now();
    p.lab
        .run_ok(Node::C, &mount_script(SERVICE_IP))
        .unwrap_or_else(|e| panic!("nodeC mount: {e}\n{}", p.dump()));
    eprintln!("nodeC mounted {SERVICE_IP}:/ in {:.1?}", m.elapsed());
    let mut all_acks: Vec<Ack> = Vec::new();
    let mut writer = start_writer(&p, 1);
    wait_acks_after(&p, &writer, 0, 30, Duration::from_secs(60));
    assert_eq!(p.check_safety().unwrap(), Some(pri));

    for round in 1..=2 {
        let cut = p.power_cut_takeover(pri).unwrap_or_else(|e| panic!("{e}"));
        let sec = other(pri);
        // the same writer on the same mount goes on, now served by sec
        wait_acks_after(&p, &writer, cut.done_ms, 20, Duration::from_secs(120));
        stop_writer(&p);
        all_acks.extend(acks(&writer));
        // how the writer lived through it: errors it saw, reopens it needed
        let text = std::fs::read_to_string(&writer).unwrap_or_default();
        let errs: Vec<&str> = text.lines().filter(|l| l.starts_with("err ")).collect();
        let opens = text.lines().filter(|l| l.starts_with("open ")).count();
        eprintln!(
            "failover {round}: the writer opened the file {opens} time(s) and saw {} error(s){}",
            errs.len(),
            errs.first()
                .map(|e| format!(", first: {e}"))
                .unwrap_or_default()
        );
        assert_eq!(p.check_safety().unwrap(), Some(sec));
        let max = check_records(&p, sec, &all_acks, cut, round);
        // the client sees the same file through the mount
        let seen = p
            .lab
            .run_ok(Node::C, &format!("tail -n 1 {CLIENT_MNT}/{RECORDS}"))
            .unwrap_or_else(|e| panic!("{e}\n{}", p.dump()));
        assert_eq!(seen.trim().parse::<u64>().ok(), Some(max), "{seen}");
        assert_eq!(p.check_safety().unwrap(), Some(sec));
        if round == 2 {
            break;
        }

        // the old Primary comes back as Secondary and does not take the stack
        p.power_on(pri).unwrap_or_else(|e| panic!("{e}"));
        p.start(pri).unwrap();
        p.wait_rejoined(pri, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{e}"));
        writer = start_writer(&p, max + 1);
        wait_acks_after(&p, &writer, 0, 30, Duration::from_secs(60));
        assert_eq!(p.check_safety().unwrap(), Some(sec));
        pri = sec;
    }
    let v = p.watch_violations();
    assert!(v.is_empty(), "{v:?}\n{}", p.dump());
    assert!(p.watch_samples(Node::A) > 10 && p.watch_samples(Node::B) > 10);
    eprintln!("total {:.1?}", t0.elapsed());
    p.lab.down().unwrap();
}
