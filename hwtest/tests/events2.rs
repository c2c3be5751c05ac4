//! (c) The drbd crate's events2 parser reads the lab's real
//! `drbdsetup events2 --timestamps --statistics all` output through a
//! failover: every line parses. The streams are saved under
//! `$CARGO_TARGET_TMPDIR/lab-events2-*.txt` (fixtures for drbd's tests).

use std::time::{Duration, Instant};

use drbd::events::{ConnState, Object, ReplState, Role};
use drbd::parse_line;
use hwtest::{Lab, Node, PowerAction};

fn save(name: &str, what: &str, lines: &[String]) {
    let path = format!("{}/lab-events2-{name}.txt", env!("CARGO_TARGET_TMPDIR"));
    let mut text = format!(
        "# Real output of 'drbdsetup events2 --timestamps --statistics all' in UML lab guest {what}\n\
         # (DRBD 8.4.11 module, drbd-utils 9.22.0 emulating events2), captured by hwtest/tests/events2.rs.\n"
    );
    for l in lines {
        text += l;
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    eprintln!("saved {} lines to {path}", lines.len());
}

fn parse_all(name: &str, lines: &[String]) -> Vec<drbd::Event> {
    assert!(!lines.is_empty(), "{name}: no events2 output");
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| parse_line(l).unwrap_or_else(|e| panic!("{name} line {}: {e}: {l:?}", i + 1)))
        .collect()
}

#[test]
fn events2_parser_reads_a_real_failover() {
    let t0 = Instant::now();
    let lab = Lab::up(&[Node::A, Node::B]).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("lab up in {:.1?}", lab.up_time());
    let s = Duration::from_secs(30);
    let ev_b = lab.events2(Node::B).unwrap();
    let ev_a = lab.events2(Node::A).unwrap();
    for ev in [&ev_b, &ev_a] {
        ev.wait_line(|l| l.ends_with(" exists -"), s)
            .expect("end of the initial dump");
    }

    // nodeA Primary and writing, then power-cut
    lab.run_ok(
        Node::A,
        "drbdadm primary r0 && dd if=/dev/urandom of=/dev/drbd0 bs=1M count=4 oflag=direct status=none",
    )
    .unwrap();
    ev_b.wait_line(
        |l| l.contains("connection") && l.contains(" role:Primary"),
        s,
    )
    .expect("nodeB sees nodeA Primary");
    lab.kill(Node::A).unwrap();
    // the stream died with nodeA; its output file goes when nodeA boots again
    let a = ev_a.stop(&lab);
    let lost = ev_b
        .wait_line(|l| l.contains(" connection:NetworkFailure"), s)
        .expect("nodeB sees NetworkFailure");
    eprintln!("nodeB: {lost}");

    // failover to nodeB, which writes
    lab.run_ok(
        Node::B,
        "drbdadm primary r0 && dd if=/dev/urandom of=/dev/drbd0 bs=1M count=4 oflag=direct status=none",
    )
    .unwrap();

    // nodeA powered on (DRBD down), its stream started before drbdadm up: it
    // sees its own SyncTarget side
    assert_eq!(lab.power(PowerAction::On, Node::A).unwrap(), 0);
    let ev_a2 = lab.events2(Node::A).unwrap();
    ev_a2
        .wait_line(|l| l.ends_with(" exists -"), s)
        .expect("initial dump on nodeA");
    lab.run_ok(Node::A, "drbdadm up r0").unwrap();
    for n in [Node::A, Node::B] {
        lab.wait_for(
            n,
            "drbdadm dstate r0 | grep -qx UpToDate/UpToDate",
            "drbdadm cstate r0; drbdadm dstate r0",
            Duration::from_secs(60),
        )
        .unwrap();
    }
    lab.run_ok(Node::B, "drbdadm secondary r0").unwrap();
    ev_b.wait_line(
        |l| l.contains("resource") && l.contains(" role:Secondary"),
        s,
    )
    .expect("nodeB demoted");
    ev_a2
        .wait_line(
            |l| l.contains("connection") && l.contains(" role:Secondary"),
            s,
        )
        .expect("nodeA sees nodeB demoted");

    let b = ev_b.stop(&lab);
    let a2 = ev_a2.stop(&lab);
    save(
        "nodeB-failover",
        "nodeB (survivor: peer nodeA Primary, power-cut; nodeB promoted; nodeA back, resync as SyncSource; demote)",
        &b,
    );
    save(
        "nodeA-until-powercut",
        "nodeA (Primary, until its power cut)",
        &a,
    );
    save(
        "nodeA-rejoin",
        "nodeA (powered on, drbdadm up, SyncTarget, peer demoted)",
        &a2,
    );

    let eb = parse_all("nodeB", &b);
    let ea = parse_all("nodeA", &a);
    let ea2 = parse_all("nodeA-rejoin", &a2);
    let has = |evs: &[drbd::Event], f: &dyn Fn(&drbd::Event) -> bool| evs.iter().any(f);
    assert!(has(&eb, &|e| e.fields.connection
        == Some(ConnState::NetworkFailure)));
    assert!(has(&eb, &|e| e.object == Object::Resource
        && e.fields.role == Some(Role::Primary)));
    assert!(has(&eb, &|e| e.fields.replication
        == Some(ReplState::SyncSource)));
    assert!(has(&ea, &|e| e.object == Object::Resource
        && e.fields.role == Some(Role::Primary)));
    assert!(has(&ea2, &|e| e.fields.replication
        == Some(ReplState::SyncTarget)));
    // --statistics: counters on device and peer-device lines
    assert!(has(&eb, &|e| e.object == Object::PeerDevice
        && e.fields.out_of_sync.is_some()));
    assert!(has(&ea2, &|e| e.object == Object::Device
        && e.fields.extra.iter().any(|(k, _)| k == "written")));
    assert!(
        [&eb, &ea, &ea2]
            .iter()
            .all(|evs| evs.iter().all(|e| e.timestamp.is_some())),
        "--timestamps: every line has one"
    );
    eprintln!(
        "parsed {} + {} + {} lines; test (c) total {:.1?}",
        eb.len(),
        ea.len(),
        ea2.len(),
        t0.elapsed()
    );
    lab.down().unwrap();
}
