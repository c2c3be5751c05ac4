//! Issue 5, scenario 2: power loss of the Primary. The survivor declares
//! the peer dead, fences it through `fence_lab`, takes the lease, promotes
//! DRBD, mounts, adds the address and starts the service; the data written
//! before the cut is there. The old Primary is powered on (DRBD down, as a
//! real power-on), its daemon's `drbdadm adjust` brings DRBD up, it rejoins
//! as Secondary and resyncs what the survivor wrote, without manual steps.
//! Safety after every step and from the watchers throughout.

use std::time::{Duration, Instant};

use hwtest::hapair_drbd::{HaPair, MNT, other};

#[test]
fn drbd_power_loss_of_the_primary() {
    let t0 = Instant::now();
    let mut p = HaPair::setup().unwrap_or_else(|e| panic!("{e}"));
    p.start(hwtest::Node::A).unwrap();
    p.start(hwtest::Node::B).unwrap();
    let pri = p
        .wait_any_running(Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}"));
    let sec = other(pri);
    assert_eq!(p.check_safety().unwrap(), Some(pri));
    p.lab
        .run_ok(
            pri,
            &format!("echo before-{} > {MNT}/before && sync", pri.name()),
        )
        .unwrap();

    // power cut
    let cut = Instant::now();
    p.lab.kill(pri).unwrap();
    assert_eq!(p.check_safety().unwrap(), None, "survivor not Primary yet");
    p.wait_log(
        sec,
        "takeover after the power cut",
        Duration::from_secs(90),
        |l| l.contains("stack running here"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    p.wait_running(sec, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("power cut -> stack running on {sec}: {:.1?}", cut.elapsed());
    assert_eq!(p.check_safety().unwrap(), Some(sec), "{}", p.dump());
    let log = p.last_log(sec);
    assert!(
        log.contains(&format!("{} is dead", pri.name())),
        "{}",
        p.dump()
    );
    assert!(log.contains("fence level 1: confirmed off"), "{}", p.dump());
    let timeline = log
        .lines()
        .find(|l| l.contains("takeover timeline"))
        .unwrap_or("")
        .to_string();
    eprintln!("{timeline}");
    assert!(timeline.contains("fence +"), "{timeline}");
    let power = p.lab.power_log();
    assert!(
        power.contains(&format!(" off {} rc=0", pri.name())),
        "{power}"
    );
    // DRBD, promoting with the peer's disk unknown, asks hapair fence-peer:
    // the peer is confirmed off, so 7
    let helper = p
        .lab
        .run_ok(sec, "dmesg | grep -i 'fence-peer' || true")
        .unwrap();
    eprintln!("{sec} kernel on fence-peer:\n{helper}");
    if helper.contains("helper command") {
        assert!(
            helper.contains("exit code 7") || helper.contains("returned 7"),
            "{helper}"
        );
    }
    let data = p.lab.run_ok(sec, &format!("cat {MNT}/before")).unwrap();
    assert_eq!(data.trim(), format!("before-{}", pri.name()));
    p.lab
        .run_ok(
            sec,
            &format!("dd if=/dev/urandom of={MNT}/after bs=1M count=4 status=none && sync"),
        )
        .unwrap();
    let sum = p.lab.run_ok(sec, &format!("md5sum < {MNT}/after")).unwrap();

    // the old Primary comes back: powered on, DRBD down; hapair brings it up
    p.power_on(pri).unwrap_or_else(|e| panic!("{e}"));
    p.start(pri).unwrap();
    p.wait_rejoined(pri, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(p.check_safety().unwrap(), Some(sec), "{}", p.dump());
    assert!(
        !p.last_log(pri).contains("stack running here"),
        "{}",
        p.dump()
    );
    // it resynced the survivor's writes: with the filesystem frozen on the
    // Primary, both backing disks hold the same bytes
    p.lab
        .run_ok(sec, &format!("sync && fsfreeze -f {MNT}"))
        .unwrap();
    let blocks = |n| p.lab.run_ok(n, "head -c 64M /dev/ubda | md5sum").unwrap();
    let (a, b) = (blocks(pri), blocks(sec));
    p.lab.run_ok(sec, &format!("fsfreeze -u {MNT}")).unwrap();
    assert_eq!(a, b, "backing disks differ after the resync");
    assert!(!sum.is_empty());
    let v = p.watch_violations();
    assert!(v.is_empty(), "{v:?}\n{}", p.dump());
    eprintln!("total {:.1?}", t0.elapsed());
    p.lab.down().unwrap();
}
