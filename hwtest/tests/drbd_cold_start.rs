//! Issue 5, scenario 1: cold start. Both daemons start on a fresh pair
//! (DRBD Connected UpToDate/UpToDate, both Secondary): exactly one node
//! takes the lease (which one is not asserted: see the comment below), promotes DRBD, mounts the filesystem, adds the address
//! and starts the service; the other stays Secondary. Safety is checked
//! after every step and by the watchers throughout.

use std::time::{Duration, Instant};

use hwtest::Node;
use hwtest::hapair_drbd::{HaPair, MNT, believes_holder, other};

#[test]
fn drbd_cold_start_one_primary() {
    let t0 = Instant::now();
    let mut p = HaPair::setup().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("lab + pair setup {:.1?}", t0.elapsed());
    assert_eq!(
        p.check_safety().unwrap(),
        None,
        "nobody Primary before the daemons"
    );
    p.start(Node::A).unwrap();
    p.start(Node::B).unwrap();
    let t1 = Instant::now();
    // exactly one node runs it (the preferred nodeA should, but which
    // one wins a simultaneous start is the engine's business, not safety)
    let pri = p
        .wait_any_running(Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "daemons started -> stack running on {pri} {:.1?}",
        t1.elapsed()
    );
    let primary = p.check_safety().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(primary, Some(pri), "{}", p.dump());
    let sec = other(pri);
    assert_eq!(p.lab.drbd_role(pri).unwrap(), "Primary/Secondary");
    assert_eq!(p.lab.drbd_role(sec).unwrap(), "Secondary/Primary");
    assert_eq!(p.lab.drbd_dstate(pri).unwrap(), "UpToDate/UpToDate");
    let mi = p.lab.mountinfo(pri).unwrap();
    assert!(
        mi.lines()
            .any(|l| l.contains(&format!(" {MNT} ")) && l.contains(" - ext4 /dev/drbd0 ")),
        "{mi}"
    );
    assert!(!p.lab.mountinfo(sec).unwrap().contains("/dev/drbd0"));
    // the Primary's daemon holds the lease; the other one sees it as the
    // running primary (it does not read the lease while the peer is
    // active) and runs nothing
    let st = p.status(pri).unwrap();
    assert!(believes_holder(&st, pri.name()), "{st}");
    let st = p.status(sec).unwrap();
    assert!(!believes_holder(&st, sec.name()), "{st}");
    assert!(
        st.contains(&format!(
            "\"name\":\"{}\",\"state\":\"online\",\"role\":\"primary\"",
            pri.name()
        )),
        "{st}"
    );
    assert!(
        !p.last_log(sec).contains("stack running here"),
        "{}",
        p.dump()
    );
    // a few seconds of steady state: still exactly one
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(p.check_safety().unwrap(), Some(pri));
    let v = p.watch_violations();
    assert!(v.is_empty(), "{v:?}\n{}", p.dump());
    assert!(p.watch_samples(Node::A) > 10 && p.watch_samples(Node::B) > 10);
    eprintln!("total {:.1?}", t0.elapsed());
    p.lab.down().unwrap();
}
