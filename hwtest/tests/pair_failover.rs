//! End-to-end scenarios of the lab pair (issue 8): `hapair run` on nodeA and
//! nodeB over the shared LUN, the record client on nodeC. After every step:
//! never two lease holders / rw mounts ([`Pair::check_safety`]), and no
//! acknowledged record lost.
//!
//! Needs the binaries built first (root, the lab):
//! `cargo build -p hapair -p sfex -p hwtest --bins && cargo test -p hwtest --test pair_failover -- --test-threads=1`

use std::path::{Path, PathBuf};
use std::time::Duration;

use hwtest::pair::{Pair, PairOptions, other};
use hwtest::{Link, NetOp, Node};

fn pair() -> Pair {
    let p = PairOptions::for_tests(PathBuf::from(env!("CARGO_BIN_EXE_hapair-recordd")))
        .and_then(Pair::up)
        .unwrap_or_else(|e| panic!("{e}"));
    p.start_daemons().unwrap();
    p
}

const START: Duration = Duration::from_secs(60);
const FAILOVER: Duration = Duration::from_secs(30);

fn no_loss(p: &Pair, client: &Path, primary: Node) -> usize {
    let (acked, lost) = p.verify_records(client, primary).unwrap();
    assert!(acked > 0, "no record acknowledged");
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost: {lost:?}",
        lost.len()
    );
    acked
}

#[test]
fn power_cut_of_the_primary() {
    let p = pair();
    let primary = p.wait_primary(START).unwrap();
    // nodeA is preferred, but with both daemons starting within a second
    // nodeB sometimes takes the stack first (seen in 2 of 6 starts): not
    // asserted here, reported in issue 8.
    eprintln!("first primary: {primary}");
    let client = p.start_client().unwrap();
    p.wait_acks(&client, 20, Duration::from_secs(20)).unwrap();
    p.check_safety().unwrap();
    let f = p.power_cut(primary, &client, FAILOVER, true).unwrap();
    eprintln!("failover: {f:?}");
    let survivor = other(primary);
    let s = p.check_safety().unwrap();
    assert_eq!(s.rw_mounts, vec![survivor]);
    assert_eq!(s.holder.as_deref(), Some(survivor.name()));
    assert!(
        p.lab.power_log().contains(&format!(" off {primary} rc=0")),
        "the survivor did not fence {primary}: {}",
        p.lab.power_log()
    );
    p.wait_acks(&client, 10, Duration::from_secs(10)).unwrap();
    let n = no_loss(&p, &client, survivor);
    eprintln!("{n} records acknowledged, 0 lost");
    p.lab.down().unwrap();
}

#[test]
fn kill_9_of_the_primary_daemon() {
    let p = pair();
    let primary = p.wait_primary(START).unwrap();
    let client = p.start_client().unwrap();
    p.wait_acks(&client, 20, Duration::from_secs(20)).unwrap();
    let survivor = other(primary);
    p.kill_daemon(primary).unwrap();
    // the survivor fences the node whose daemon is gone, then takes over
    let start = std::time::Instant::now();
    loop {
        let s = p.check_safety().unwrap();
        if s.rw_mounts == vec![survivor] {
            break;
        }
        assert!(
            start.elapsed() < FAILOVER,
            "no takeover: {s:?}\n{}",
            p.log(survivor)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(p.wait_primary(FAILOVER).unwrap(), survivor);
    assert!(
        !p.lab.is_up(primary),
        "{primary} still runs after its daemon died"
    );
    p.wait_acks(&client, 10, Duration::from_secs(20)).unwrap();
    no_loss(&p, &client, survivor);
    p.lab.down().unwrap();
}

#[test]
fn lan_cut_changes_nothing_and_both_cut_keeps_the_holder() {
    let p = pair();
    let primary = p.wait_primary(START).unwrap();
    let client = p.start_client().unwrap();
    p.wait_acks(&client, 20, Duration::from_secs(20)).unwrap();
    let secondary = other(primary);

    // lan cut on the secondary: the repl link carries the heartbeat
    p.lab.net(secondary, Link::Lan, NetOp::Cut).unwrap();
    for _ in 0..10 {
        let s = p.check_safety().unwrap();
        assert_eq!(s.rw_mounts, vec![primary]);
        std::thread::sleep(Duration::from_millis(300));
    }
    p.wait_acks(&client, 10, Duration::from_secs(10)).unwrap();
    assert!(p.lab.is_up(primary) && p.lab.is_up(secondary));
    assert!(
        !p.lab.power_log().contains(" off "),
        "{}",
        p.lab.power_log()
    );
    p.lab.net(secondary, Link::Lan, NetOp::Heal).unwrap();

    // both links cut: no heartbeat at all. The lease holder keeps renewing,
    // so its counter never stands still and nobody is fenced.
    p.lab.net(secondary, Link::All, NetOp::Cut).unwrap();
    for _ in 0..20 {
        let s = p.check_safety().unwrap();
        assert_eq!(s.rw_mounts, vec![primary], "{s:?}");
        assert_eq!(s.holder.as_deref(), Some(primary.name()));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(p.lab.is_up(primary) && p.lab.is_up(secondary));
    assert!(
        !p.lab.power_log().contains(" off "),
        "mutual fencing: {}",
        p.lab.power_log()
    );
    p.wait_acks(&client, 10, Duration::from_secs(10)).unwrap();
    let log = p.log(secondary);
    assert!(
        log.contains("is dead"),
        "{secondary} never saw the peer die:\n{log}"
    );
    p.lab.net(secondary, Link::All, NetOp::Heal).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let s = p.check_safety().unwrap();
    assert_eq!(s.rw_mounts, vec![primary]);
    no_loss(&p, &client, primary);
    p.lab.down().unwrap();
}
