//! Issue 5, scenario 4: refused promotion. While the Primary is alive the
//! Secondary never promotes: DRBD refuses a manual `drbdadm primary` there
//! (exit 11), and an operator `hapair move` to the Secondary first stops
//! the stack on the Primary (service, address, unmount, demote, lease
//! released); only then does the Secondary take the lease and promote.
//! The order is checked on the daemons' logs (guests share the clock) and
//! the watchers prove that no moment had two Primaries.

use std::time::{Duration, Instant};

use hwtest::hapair_drbd::{HaPair, other};

/// The RFC 3339 timestamp of the first log line containing `what`.
fn when(log: &str, what: &str) -> Option<String> {
    log.lines()
        .find(|l| l.contains(what))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
}

#[test]
fn drbd_secondary_never_promotes_before_the_primary_demoted() {
    let t0 = Instant::now();
    let mut p = HaPair::setup().unwrap_or_else(|e| panic!("{e}"));
    p.start(hwtest::Node::A).unwrap();
    p.start(hwtest::Node::B).unwrap();
    let pri = p
        .wait_any_running(Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}"));
    let sec = other(pri);
    assert_eq!(p.check_safety().unwrap(), Some(pri));

    // DRBD itself refuses a second Primary
    let manual = p.lab.run(sec, "drbdadm primary r0").unwrap();
    assert_eq!(manual.rc, 11, "{manual:?}");
    assert!(
        manual.stdout.contains("Multiple primaries not allowed"),
        "{manual:?}"
    );
    assert_eq!(p.check_safety().unwrap(), Some(pri));

    // the operator moves the stack, asking on the Secondary
    let mv = Instant::now();
    let (rc, out) = p.cli(sec, &format!("move {}", sec.name())).unwrap();
    assert_eq!(rc, 0, "{out}");
    p.wait_log(
        sec,
        "the stack to move here",
        Duration::from_secs(90),
        |l| l.contains("stack running here"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    p.wait_running(sec, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("move -> running on {sec}: {:.1?}", mv.elapsed());
    assert_eq!(p.check_safety().unwrap(), Some(sec), "{}", p.dump());
    let (plog, slog) = (p.last_log(pri), p.last_log(sec));
    let demoted = when(&plog, "resource=drbd-r0 op=demote outcome=Ok")
        .unwrap_or_else(|| panic!("no demote on {pri}\n{}", p.dump()));
    let released = when(&plog, "lease released").unwrap_or_default();
    let promote = when(&slog, "running resource=drbd-r0 op=promote")
        .unwrap_or_else(|| panic!("no promote on {sec}\n{}", p.dump()));
    eprintln!("{pri} demoted {demoted}, {sec} promote began {promote}");
    assert!(demoted < promote, "{}", p.dump());
    assert!(!released.is_empty(), "{}", p.dump());
    assert!(
        p.lab.drbd_role(pri).unwrap() == "Secondary/Primary",
        "{}",
        p.dump()
    );
    let v = p.watch_violations();
    assert!(v.is_empty(), "{v:?}\n{}", p.dump());
    let (rc, out) = p.cli(sec, "unmove").unwrap();
    assert_eq!(rc, 0, "{out}");
    std::thread::sleep(Duration::from_secs(3));
    p.check_safety().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("total {:.1?}", t0.elapsed());
    p.lab.down().unwrap();
}
