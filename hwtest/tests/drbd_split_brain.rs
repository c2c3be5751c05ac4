//! Issue 5, scenario 8: a split brain provoked by hand with hapair's
//! protection out of the way (maintenance mode, a forced promote of the
//! outdated Secondary while the replication link is cut, writes on both).
//! When the link heals DRBD detects the split brain; both daemons report it
//! (log and `hapair status`, with the manual recovery commands), discard
//! nothing, and the Secondary refuses to run the stack even when the
//! Primary's daemon goes away. A daemon restarted then finds the split
//! brain in the kernel log (/dev/kmsg) and refuses too. Running the advised
//! recovery by hand reconnects DRBD and clears the report.

use std::time::{Duration, Instant};

use hwtest::hapair_drbd::{HaPair, MNT, other};
use hwtest::{Link, NetOp, Node};

/// For `dur`, with its peer's daemon gone: `node` never becomes Primary
/// (safety checked every 2 s), its latest daemon neither promotes nor takes
/// the lease, and nobody is fenced.
fn refuses_for(p: &HaPair, node: Node, dur: Duration) {
    let quiet = Instant::now();
    while quiet.elapsed() < dur {
        let primary = p.check_safety().unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(primary, Some(node), "{}", p.dump());
        std::thread::sleep(Duration::from_secs(2));
    }
    let log = p.last_log(node);
    assert!(!log.contains("op=promote"), "{}", p.dump());
    assert!(!log.contains("lease acquired"), "{}", p.dump());
    let power = p.lab.power_log();
    assert!(!power.contains(" off "), "nobody fenced: {power}");
}

#[test]
fn drbd_split_brain_detected_reported_refused() {
    let t0 = Instant::now();
    let mut p = HaPair::setup().unwrap_or_else(|e| panic!("{e}"));
    p.start(hwtest::Node::A).unwrap();
    p.start(hwtest::Node::B).unwrap();
    let pri = p
        .wait_any_running(Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}"));
    let sec = other(pri);
    let (rc, out) = p.cli(pri, "maintenance on").unwrap();
    assert_eq!(rc, 0, "{out}");
    p.wait_log(sec, "maintenance forwarded", Duration::from_secs(10), |l| {
        l.contains("Maintenance(true)")
    })
    .unwrap_or_else(|e| panic!("{e}"));

    // cut: the Primary fences the Secondary (outdated); then the operator
    // forces the Secondary Primary anyway and both write
    p.lab.net(pri, Link::Repl, NetOp::Cut).unwrap();
    p.lab
        .wait_for(
            sec,
            "drbdadm dstate r0 | grep -q ^Outdated/",
            "drbdadm cstate r0; drbdadm dstate r0",
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", p.dump()));
    // and the Primary's fence-peer handler has its answer (DRBD there marks
    // the peer Outdated and resumes I/O). Forcing before that, inside the
    // Secondary's check that its Outdated state holds, makes the Secondary
    // answer "not outdated" (true by then): the handler fails and the
    // Primary's DRBD keeps I/O frozen, the safe outcome but not this test's
    p.lab
        .wait_for(
            pri,
            "drbdadm dstate r0 | grep -q /Outdated$",
            "drbdadm cstate r0; drbdadm dstate r0",
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", p.dump()));
    p.lab
        .run_ok(
            sec,
            &format!(
                "drbdadm primary --force r0 && mount /dev/drbd0 {MNT} && echo forced > {MNT}/victim && sync"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    p.lab
        .run_ok(pri, &format!("echo kept > {MNT}/survivor && sync"))
        .unwrap_or_else(|e| panic!("{e}\n{}", p.dump()));
    eprintln!("both Primary by hand (the safety rule is broken on purpose here)");
    // the victim's side gives up its role by hand, as an operator would
    p.lab
        .run_ok(sec, &format!("umount {MNT} && drbdadm secondary r0"))
        .unwrap();
    assert_eq!(p.check_safety().unwrap(), Some(pri));

    // heal: DRBD sees diverged data
    p.lab.net(pri, Link::Repl, NetOp::Heal).unwrap();
    for n in [pri, sec] {
        p.wait_log(n, "the split brain report", Duration::from_secs(60), |l| {
            l.contains("DRBD SPLIT BRAIN on r0")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let dm = p.lab.run_ok(pri, "dmesg | grep -i split-brain").unwrap();
    eprintln!("{pri} kernel:\n{dm}");
    assert!(dm.contains("Split-Brain detected"), "{dm}");
    for n in [pri, sec] {
        assert_eq!(p.lab.drbd_cstate(n).unwrap(), "StandAlone", "{n}");
        let st = p.status(n).unwrap();
        assert!(st.contains("DRBD SPLIT BRAIN on r0"), "{st}");
        assert!(st.contains("--discard-my-data"), "{st}");
        let (_, human) = p.cli(n, "status").unwrap();
        assert!(human.contains("SPLIT BRAIN"), "{human}");
    }
    // nothing was discarded: both files still on their sides
    assert_eq!(
        p.lab
            .run_ok(pri, &format!("cat {MNT}/survivor"))
            .unwrap()
            .trim(),
        "kept"
    );

    // the Primary's daemon goes (it stops its stack and releases the
    // lease): the Secondary must not take over with split data
    let (rc, out) = p.cli(pri, "maintenance off").unwrap();
    assert_eq!(rc, 0, "{out}");
    p.lab
        .run_ok(pri, "pkill -TERM -x hapair; for i in $(seq 300); do pgrep -x hapair >/dev/null || exit 0; sleep 0.1; done; exit 1")
        .unwrap_or_else(|e| panic!("{e}\n{}", p.dump()));
    refuses_for(&p, sec, Duration::from_secs(20));

    // a daemon started after the fact never saw the split brain in events2:
    // it finds DRBD StandAlone and the kernel log's "Split-Brain detected
    // but unresolved" (/dev/kmsg), reports it and refuses all the same,
    // even with the peer's daemon gone and the lease free
    p.restart(sec)
        .unwrap_or_else(|e| panic!("{e}\n{}", p.dump()));
    p.wait_log(
        sec,
        "the kernel-log split brain report",
        Duration::from_secs(30),
        |l| l.contains("DRBD SPLIT BRAIN on r0: the kernel log says"),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", p.dump()));
    let st = p.status(sec).unwrap();
    assert!(st.contains("the kernel log says"), "{st}");
    refuses_for(&p, sec, Duration::from_secs(15));

    // the advised recovery, by hand: sec is the victim
    p.lab
        .run_ok(
            sec,
            "drbdadm disconnect r0; drbdadm secondary r0; drbdadm -- --discard-my-data connect r0",
        )
        .unwrap();
    p.lab
        .run_ok(pri, "drbdadm disconnect r0; drbdadm connect r0")
        .unwrap();
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
    p.wait_log(sec, "the report to clear", Duration::from_secs(20), |l| {
        l.contains("split brain resolved")
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let v = p.watch_violations();
    // the forced double Primary above is the one overlap allowed
    assert!(v.iter().all(|x| x.contains("both")), "{v:?}");
    eprintln!("watchers saw the provoked overlap at {} samples", v.len());
    eprintln!("total {:.1?}", t0.elapsed());
    p.lab.down().unwrap();
}
