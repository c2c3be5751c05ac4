//! Issue 5, scenario 5: a real PostgreSQL 15 on the DRBD filesystem, run by
//! `ocf:heartbeat:pgsql` at the top of hapair's stack, and a client on nodeC
//! (`hapair-recordd pgclient`, see `hwtest::pgclient`) that inserts ids
//! through the service address and logs every acknowledged commit. The
//! Primary is power-cut; the survivor fences it, takes over and starts
//! PostgreSQL (crash recovery on the replicated data), and the client
//! commits again. With the client stopped, every id it saw acknowledged is
//! in the table. The old Primary is powered on and rejoins as Secondary,
//! the client runs again, and the new Primary is power-cut in turn: after
//! the second failover every acknowledged id of both runs is there.
//! Safety after every step and from the watchers throughout.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hwtest::Node;
use hwtest::hapair_drbd::{HaOptions, HaPair, PowerCut, SERVICE_IP, Service, other};
use hwtest::pgclient::{self, TABLE};
use hwtest::record::{self, Ack};

const CLIENT_PID: &str = "/run/pgclient.pid";

fn acks(log: &Path) -> Vec<Ack> {
    record::parse_acks(&std::fs::read_to_string(log).unwrap_or_default())
}

/// Starts the recorder on nodeC with ids from `start`; returns its log.
fn start_client(p: &HaPair, start: u64) -> PathBuf {
    let bin = p.recordd.as_ref().expect("hapair-recordd in the lab");
    p.lab
        .spawn(
            Node::C,
            &format!(
                "echo $$ > {CLIENT_PID}; exec {} pgclient --addr {SERVICE_IP}:{} \
                 --user postgres --db postgres --start {start}",
                bin.display(),
                pgclient::lab::PORT
            ),
        )
        .unwrap()
}

/// Stops the recorder (SIGTERM) and waits until it is gone: its log is
/// final then.
fn stop_client(p: &HaPair) {
    p.lab
        .run_ok(
            Node::C,
            &format!(
                "c=$(cat {CLIENT_PID}) && kill $c && for i in $(seq 100); do \
                 kill -0 $c 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
            ),
        )
        .unwrap();
}

/// Waits until the client log has `n` acks made after `after_ms`.
fn wait_acks_after(p: &HaPair, log: &Path, after_ms: u64, n: usize, timeout: Duration) {
    let t0 = Instant::now();
    loop {
        if acks(log).iter().filter(|a| a.at_ms > after_ms).count() >= n {
            return;
        }
        if t0.elapsed() > timeout {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            panic!(
                "fewer than {n} acks after {after_ms} within {timeout:?}; client log tail (newest first):\n{}\n{}",
                tail.join("\n"),
                p.dump()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The ids in the table, read with psql on `node` (the Primary).
fn table_ids(p: &HaPair, node: Node) -> Vec<u64> {
    let out = p
        .lab
        .run_ok(
            node,
            &pgclient::lab::psql(&format!("SELECT id FROM {TABLE}")),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", p.dump()));
    pgclient::parse_ids(&out)
}

/// Checks every acknowledged id (all client runs so far) is in the table on
/// `node`; prints the counts and the client's view of the failover `cut`.
/// Returns the largest id in the table.
fn check_commits(p: &HaPair, node: Node, all_acks: &[Ack], cut: PowerCut, round: u32) -> u64 {
    let ids = table_ids(p, node);
    let text: String = ids.iter().map(|i| format!("{i}\n")).collect();
    let lost = record::lost(all_acks, &text);
    let distinct: BTreeSet<u64> = ids.iter().copied().collect();
    let acked: BTreeSet<u64> = all_acks.iter().map(|a| a.n).collect();
    let unacked_present = distinct.difference(&acked).count();
    // the last ack before the node was dead, the first from the survivor
    let last_before = all_acks.iter().rev().find(|a| a.at_ms <= cut.done_ms);
    let first_after = all_acks.iter().find(|a| a.at_ms > cut.done_ms);
    let secs = |ms: u64| Duration::from_millis(ms).as_secs_f64();
    let gap = match (last_before, first_after) {
        (Some(b), Some(a)) => format!(
            "{:.1} s between the last ack from the old Primary and the first from the new one; \
             power cut -> first ack {:.1} s",
            secs(a.at_ms - b.at_ms),
            secs(a.at_ms.saturating_sub(cut.asked_ms))
        ),
        _ => "unknown".into(),
    };
    eprintln!(
        "failover {round}: acked {} (ids {}..={}), present {} rows / {} distinct ids \
         ({} ids twice: retried after a lost ack), present but never acked {unacked_present} \
         (in flight at a cut or at the client's stop), lost {}; time without service {gap}",
        acked.len(),
        acked.first().copied().unwrap_or(0),
        acked.last().copied().unwrap_or(0),
        ids.len(),
        distinct.len(),
        ids.len() - distinct.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "failover {round}: acknowledged commits missing on {node}: {lost:?}\n{}",
        p.dump()
    );
    assert!(acked.len() > 20, "too few commits to mean anything");
    // a duplicate or an unacked id can only be a commit in flight at a cut
    // or a failed attempt: at most one per client failure, never many
    assert!(
        ids.len() - acked.len() <= 50,
        "{} rows for {} acks",
        ids.len(),
        acked.len()
    );
    distinct.last().copied().unwrap_or(0)
}

#[test]
fn drbd_pgsql_every_acknowledged_commit_survives_each_failover() {
    let t0 = Instant::now();
    let mut p = HaPair::setup_with(HaOptions {
        service: Service::Pgsql,
        client_node: true,
        ..HaOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("setup (lab, mkfs, initdb on r0): {:.1?}", t0.elapsed());
    p.start(Node::A).unwrap();
    p.start(Node::B).unwrap();
    let mut pri = p
        .wait_any_running(Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "stack with PostgreSQL running on {pri}: {:.1?}",
        t0.elapsed()
    );
    assert_eq!(p.check_safety().unwrap(), Some(pri));

    let mut all_acks: Vec<Ack> = Vec::new();
    let mut client = start_client(&p, 1);
    wait_acks_after(&p, &client, 0, 30, Duration::from_secs(60));
    assert_eq!(p.check_safety().unwrap(), Some(pri));

    for round in 1..=2 {
        let cut = p.power_cut_takeover(pri).unwrap_or_else(|e| panic!("{e}"));
        let sec = other(pri);
        // the client commits again through the address, now on sec
        wait_acks_after(&p, &client, cut.done_ms, 20, Duration::from_secs(90));
        stop_client(&p);
        all_acks.extend(acks(&client));
        assert_eq!(p.check_safety().unwrap(), Some(sec));
        let max_id = check_commits(&p, sec, &all_acks, cut, round);
        assert_eq!(p.check_safety().unwrap(), Some(sec));
        if round == 2 {
            break;
        }

        // the old Primary comes back: powered on, DRBD down; hapair brings
        // it up, it resyncs as Secondary and does not take the stack
        p.power_on(pri).unwrap_or_else(|e| panic!("{e}"));
        p.start(pri).unwrap();
        p.wait_rejoined(pri, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{e}"));
        // the client again, with ids after everything in the table
        client = start_client(&p, max_id + 1);
        wait_acks_after(&p, &client, 0, 30, Duration::from_secs(60));
        assert_eq!(p.check_safety().unwrap(), Some(sec));
        pri = sec;
    }
    let v = p.watch_violations();
    assert!(v.is_empty(), "{v:?}\n{}", p.dump());
    assert!(p.watch_samples(Node::A) > 10 && p.watch_samples(Node::B) > 10);
    eprintln!("total {:.1?}", t0.elapsed());
    p.lab.down().unwrap();
}
