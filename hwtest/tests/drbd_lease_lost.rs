//! Issue 5, scenario 7 (first part): the lease device becomes unreadable
//! on the Primary only (device-mapper `error` table in the guest). The
//! Primary must give the stack up (stop it, or self-fence if the stop does
//! not finish before its lease deadline), and the other node takes over
//! only after that: no moment with two Primaries, two rw mounts or two
//! lease holders. (The hung-stop + softdog variant is not covered here.)

use std::time::{Duration, Instant};

use hwtest::hapair_drbd::{HaPair, other};

#[test]
fn drbd_lease_unreadable_on_the_primary() {
    let t0 = Instant::now();
    let mut p = HaPair::setup_dm_lease().unwrap_or_else(|e| panic!("{e}"));
    p.start(hwtest::Node::A).unwrap();
    p.start(hwtest::Node::B).unwrap();
    let pri = p
        .wait_any_running(Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}"));
    let sec = other(pri);
    assert_eq!(p.check_safety().unwrap(), Some(pri));

    let cut = Instant::now();
    p.break_lease(pri).unwrap_or_else(|e| panic!("{e}"));
    // until the other node runs the stack: the safety rule every 2 s
    let deadline = Duration::from_secs(150);
    while !p.last_log(sec).contains("stack running here") {
        assert!(cut.elapsed() < deadline, "no takeover\n{}", p.dump());
        p.check_safety().unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_secs(2));
    }
    p.wait_running(sec, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "lease broken on {pri} -> running on {sec}: {:.1?}",
        cut.elapsed()
    );
    let plog = p.last_log(pri);
    let self_fenced = plog.contains("SELF-FENCE");
    eprintln!(
        "{pri}: {}",
        if self_fenced {
            "self-fenced"
        } else {
            "stopped its stack"
        }
    );
    assert!(
        self_fenced || plog.contains("stack stopped here"),
        "{}",
        p.dump()
    );
    if p.lab.is_up(pri) {
        assert_ne!(p.lab.drbd_role(pri).unwrap(), "Primary/Secondary");
    }
    assert_eq!(p.check_safety().unwrap(), Some(sec), "{}", p.dump());
    let v = p.watch_violations();
    assert!(v.is_empty(), "{v:?}\n{}", p.dump());
    eprintln!("total {:.1?}", t0.elapsed());
    p.lab.down().unwrap();
}
