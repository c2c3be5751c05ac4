//! (b) fence_lab, run inside nodeA, powers nodeB off and on through the
//! host's power switch; list, monitor, metadata; bad input fails cleanly.

use std::time::{Duration, Instant};

use hwtest::{Lab, Node, Output, PowerAction, live_in_group};

fn fence(lab: &Lab, stdin: &str) -> Output {
    let agent = lab.fence_agent();
    lab.run(Node::A, &format!("printf '{stdin}' | {}", agent.display()))
        .unwrap()
}

#[test]
fn fence_lab_from_a_guest() {
    let t0 = Instant::now();
    let lab = Lab::up(&[Node::A, Node::B]).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("lab up in {:.1?}", lab.up_time());

    let list = fence(&lab, "action=list\\n");
    assert_eq!(list.rc, 0, "{list:?}");
    assert_eq!(list.stdout, "nodeA,\nnodeB,\nnodeC,\n");
    let mon = fence(&lab, "action=monitor\\n");
    assert_eq!(mon.rc, 0, "{mon:?}");
    let meta = fence(&lab, "action=metadata\\n");
    assert_eq!(meta.rc, 0);
    assert!(meta.stdout.contains("<resource-agent name=\"fence_lab\""));
    let st = fence(&lab, "action=status\\nplug=nodeB\\n");
    assert_eq!((st.rc, st.stdout.as_str()), (0, "Status: ON\n"), "{st:?}");

    // wrong input: rc 1, a reason, nothing asked of the switch
    let log_before = lab.power_log();
    for bad in [
        "action=off\\nplug=nodeX\\n",
        "action=off\\n",
        "action=status\\nport=\\n",
        "action=dance\\nplug=nodeB\\n",
    ] {
        let o = fence(&lab, bad);
        assert_eq!(o.rc, 1, "{bad}: {o:?}");
        assert!(o.stdout.contains("fence_lab: "), "{bad}: {o:?}");
    }
    assert_eq!(lab.power_log(), log_before);
    assert!(lab.is_up(Node::B));

    // off from inside nodeA, by the port= alias
    let pgid = lab.pgid(Node::B).expect("nodeB pgid");
    assert!(!live_in_group(pgid).is_empty());
    let t_off = Instant::now();
    let off = fence(&lab, "action=off\\nport=nodeB\\n");
    assert_eq!(off.rc, 0, "{off:?}");
    eprintln!("fence off round trip {:.2?}", t_off.elapsed());
    let left = live_in_group(pgid);
    assert!(left.is_empty(), "nodeB processes still alive: {left:?}");
    assert!(!lab.is_up(Node::B));
    assert!(lab.is_up(Node::A));
    for alias in ["plug", "port", "nodename"] {
        let st = fence(&lab, &format!("action=status\\n{alias}=nodeB\\n"));
        assert_eq!((st.rc, st.stdout.as_str()), (2, "Status: OFF\n"), "{alias}");
    }
    assert_eq!(lab.power(PowerAction::Status, Node::B).unwrap(), 2);
    lab.wait_for(
        Node::A,
        "! drbdadm cstate r0 | grep -q ^Connected",
        "drbdadm cstate r0",
        Duration::from_secs(30),
    )
    .unwrap();

    // nodeA writes while nodeB is off, so nodeB must resync when it is back
    lab.run_ok(
        Node::A,
        "drbdadm primary r0 && dd if=/dev/urandom of=/dev/drbd0 bs=1M count=8 oflag=direct status=none",
    )
    .unwrap();
    let sum_a = lab
        .run_ok(Node::A, "head -c 8M /dev/drbd0 | md5sum")
        .unwrap();

    let t_on = Instant::now();
    let on = fence(&lab, "action=on\\nplug=nodeB\\n");
    assert_eq!(on.rc, 0, "{on:?}");
    eprintln!("fence on (boot, DRBD down) {:.2?}", t_on.elapsed());
    assert!(lab.is_up(Node::B));
    assert_ne!(lab.pgid(Node::B), Some(pgid));
    let st = fence(&lab, "action=status\\nplug=nodeB\\n");
    assert_eq!(st.rc, 0);

    // powered on with DRBD down, as a real node: bring it up, it resyncs
    lab.run_ok(Node::B, "drbdadm up r0").unwrap();
    for n in [Node::A, Node::B] {
        lab.wait_for(
            n,
            "drbdadm dstate r0 | grep -qx UpToDate/UpToDate",
            "drbdadm cstate r0; drbdadm dstate r0",
            Duration::from_secs(60),
        )
        .unwrap();
    }
    eprintln!("on -> UpToDate/UpToDate {:.2?}", t_on.elapsed());
    lab.run_ok(Node::A, "drbdadm secondary r0").unwrap();
    lab.run_ok(Node::B, "drbdadm primary r0").unwrap();
    let sum_b = lab
        .run_ok(Node::B, "head -c 8M /dev/drbd0 | md5sum")
        .unwrap();
    assert_eq!(sum_a, sum_b, "nodeB did not resync nodeA's writes");

    let log = lab.power_log();
    assert!(log.contains(" off nodeB rc=0\n"), "{log}");
    assert!(log.contains(" on nodeB rc=0\n"), "{log}");
    lab.down().unwrap();
    eprintln!("test (b) total {:.1?}", t0.elapsed());
}
