//! (a) The lab boots, DRBD connects UpToDate/UpToDate, one Primary, and a
//! second Primary is refused by DRBD.

use std::time::Instant;

use hwtest::{Lab, Node};

#[test]
fn drbd_pair_connects_and_refuses_dual_primary() {
    let t0 = Instant::now();
    let lab = Lab::up(&[Node::A, Node::B]).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("lab up in {:.1?}", lab.up_time());
    for n in [Node::A, Node::B] {
        assert_eq!(lab.drbd_cstate(n).unwrap(), "Connected", "{n}");
        assert_eq!(lab.drbd_dstate(n).unwrap(), "UpToDate/UpToDate", "{n}");
        assert_eq!(lab.drbd_role(n).unwrap(), "Secondary/Secondary", "{n}");
    }

    lab.run_ok(Node::A, "drbdadm primary r0").unwrap();
    assert_eq!(lab.drbd_role(Node::A).unwrap(), "Primary/Secondary");
    lab.wait_for(
        Node::B,
        "drbdadm role r0 | grep -qx Secondary/Primary",
        "drbdadm role r0",
        std::time::Duration::from_secs(10),
    )
    .unwrap();

    let second = lab.run(Node::B, "drbdadm primary r0").unwrap();
    assert_eq!(second.rc, 11, "second primary: {second:?}");
    assert!(
        second
            .stdout
            .contains("Multiple primaries not allowed by config"),
        "{second:?}"
    );
    assert_eq!(lab.drbd_role(Node::A).unwrap(), "Primary/Secondary");
    assert_eq!(lab.drbd_role(Node::B).unwrap(), "Secondary/Primary");

    // the Primary can use the device; mountinfo shows it
    lab.run_ok(
        Node::A,
        "mkfs.ext4 -q /dev/drbd0 && mkdir -p /mnt/r0 && mount /dev/drbd0 /mnt/r0",
    )
    .unwrap();
    let mi = lab.mountinfo(Node::A).unwrap();
    assert!(
        mi.lines()
            .any(|l| l.contains(" /mnt/r0 ") && l.contains(" - ext4 /dev/drbd0 ")),
        "{mi}"
    );
    assert!(!lab.mountinfo(Node::B).unwrap().contains("/dev/drbd0"));

    lab.down().unwrap();
    eprintln!("test (a) total {:.1?}", t0.elapsed());
}
