//! Issue 5, scenario 3: the replication link is cut while both nodes live
//! (the heartbeat still runs over lan). DRBD on the Primary freezes I/O
//! (`resource-and-stonith`) and calls `hapair fence-peer`; the daemon asks
//! the peer over the heartbeat to `drbdadm outdate`, the peer does and
//! says so, the handler returns 4 and I/O resumes. No second Primary at
//! any time; the Secondary's disk is Outdated; healing the link resyncs.

use std::time::{Duration, Instant};

use hwtest::hapair_drbd::{HaPair, MNT, other};
use hwtest::{Link, NetOp};

#[test]
fn drbd_replication_cut_outdates_the_secondary() {
    let t0 = Instant::now();
    let mut p = HaPair::setup().unwrap_or_else(|e| panic!("{e}"));
    p.start(hwtest::Node::A).unwrap();
    p.start(hwtest::Node::B).unwrap();
    let pri = p
        .wait_any_running(Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}"));
    let sec = other(pri);
    assert_eq!(p.check_safety().unwrap(), Some(pri));

    let cut = Instant::now();
    p.lab.net(pri, Link::Repl, NetOp::Cut).unwrap();
    p.lab
        .wait_for(
            pri,
            "dmesg | grep -q 'fence-peer.*\\(exit code\\|returned\\) [0-9]'",
            "dmesg | grep -i fence",
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", p.dump()));
    let helper = p.lab.run_ok(pri, "dmesg | grep -i 'fence-peer'").unwrap();
    eprintln!(
        "repl cut -> fence-peer returned: {:.1?}\n{helper}",
        cut.elapsed()
    );
    assert!(
        helper.contains("exit code 4") || helper.contains("returned 4"),
        "{helper}\n{}",
        p.dump()
    );
    assert_eq!(p.check_safety().unwrap(), Some(pri), "{}", p.dump());
    assert_eq!(p.lab.drbd_dstate(sec).unwrap(), "Outdated/DUnknown");
    assert_eq!(p.lab.drbd_dstate(pri).unwrap(), "UpToDate/Outdated");
    assert_eq!(p.lab.drbd_role(pri).unwrap(), "Primary/Unknown");
    // I/O on the Primary is no longer frozen
    let w = p
        .lab
        .run_timeout(
            pri,
            &format!("echo during-cut > {MNT}/during && sync && cat {MNT}/during"),
            Duration::from_secs(20),
        )
        .unwrap();
    assert_eq!((w.rc, w.stdout.trim()), (0, "during-cut"), "{w:?}");
    let plog = p.last_log(pri);
    let slog = p.last_log(sec);
    assert!(plog.contains("asking it to outdate itself"), "{}", p.dump());
    assert!(plog.contains("outdated its DRBD data"), "{}", p.dump());
    assert!(slog.contains("DRBD data outdated here"), "{}", p.dump());
    // the Secondary neither promotes nor runs anything; the engine sees its
    // disk Outdated
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(p.check_safety().unwrap(), Some(pri));
    assert!(!slog.contains("stack running here"));
    // an Outdated Secondary refuses a manual promote too (DRBD's own rule)
    let manual = p.lab.run(sec, "drbdadm primary r0").unwrap();
    assert_ne!(manual.rc, 0, "{manual:?}");
    assert_eq!(p.check_safety().unwrap(), Some(pri));

    // heal: it reconnects and resyncs; the fencing episode ends
    let heal = Instant::now();
    p.lab.net(pri, Link::Repl, NetOp::Heal).unwrap();
    for n in [pri, sec] {
        p.lab
            .wait_for(
                n,
                "drbdadm dstate r0 | grep -qx UpToDate/UpToDate",
                "drbdadm cstate r0; drbdadm dstate r0",
                Duration::from_secs(60),
            )
            .unwrap_or_else(|e| panic!("{e}\n{}", p.dump()));
    }
    eprintln!("heal -> UpToDate/UpToDate {:.1?}", heal.elapsed());
    p.wait_log(pri, "the episode to end", Duration::from_secs(10), |l| {
        l.contains("fencing episode over")
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.check_safety().unwrap(), Some(pri));
    let v = p.watch_violations();
    assert!(v.is_empty(), "{v:?}\n{}", p.dump());
    eprintln!("total {:.1?}", t0.elapsed());
    p.lab.down().unwrap();
}
