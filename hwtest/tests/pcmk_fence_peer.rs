//! Issue 10: `hapair fence-peer --pacemaker` as DRBD's fence-peer handler
//! inside a real Pacemaker + Corosync cluster (`fencing
//! resource-and-stonith`, the reference stack of
//! `hwtest/lab/pacemaker/example-drbd-fs-ip.xml`, tuned token, STONITH
//! through `fence_lab`), where no hapair daemon runs:
//!
//! 1. Only the replication link is cut, Corosync stays up over lan: the
//!    Primary's DRBD calls the handler, which sees the peer online, places
//!    `drbd-fence-by-handler-r0-drbd-r0-clone` (the clone may be promoted
//!    only on the Primary) and exits 4 (`peer was fenced`, drbd.md 3.3);
//!    the Primary keeps its I/O, no STONITH. The Secondary is never
//!    promotable: Pacemaker's constraint bans it, and `drbdadm primary` on
//!    it runs the handler there, which finds the Primary's constraint
//!    under its id and exits 1, so DRBD refuses.
//! 2. The link heals: the Secondary resyncs, `after-resync-target` runs
//!    `--unfence` there and the constraint is gone.
//! 3. A power cut of the Primary: Pacemaker fences it, the survivor's
//!    promotion runs the handler, which waits until the peer is fenced and
//!    exits 7 (`peer was stonithed`) with the constraint now naming the
//!    survivor; the service runs there.
//!
//! After every step: at most one DRBD Primary, at most one rw mount of r0.
//! On the way, `hapair import-cib` reads the live cluster's CIB and its
//! output passes `hapair validate`.

use std::time::{Duration, Instant};

use hwtest::hapair_drbd::{Bins, other};
use hwtest::pcmk::{self, EXAMPLE_DRBD_FS_IP, Pacemaker, Token};
use hwtest::{Lab, LabOptions, Link, NetOp, Node};

const PAGE: &str = "hello from drbd r0, fenced by hapair";
const CONSTRAINT: &str = "drbd-fence-by-handler-r0-drbd-r0-clone";

fn say(t0: Instant, what: &str) {
    eprintln!("[{:6.1}s] {what}", t0.elapsed().as_secs_f64());
}

/// At most one Primary and one rw mount of /dev/drbd0 among live nodes;
/// returns the Primaries.
fn check(lab: &Lab) -> Vec<Node> {
    let mut primaries = Vec::new();
    let mut mounts = Vec::new();
    for n in [Node::A, Node::B] {
        if !lab.is_up(n) {
            continue;
        }
        let out = match lab.run(n, "cat /proc/drbd; echo @@; cat /proc/self/mountinfo") {
            Ok(o) => o.stdout,
            Err(hwtest::LabError::NodeDown { .. }) => continue,
            Err(e) => panic!("{e}"),
        };
        let (drbd, mi) = out.split_once("@@").unwrap_or((&out, ""));
        if drbd.contains("ro:Primary/") {
            primaries.push(n);
        }
        if hwtest::pair::rw_mounted(mi, "/dev/drbd0") {
            mounts.push(n);
        }
    }
    assert!(primaries.len() <= 1, "two DRBD Primaries: {primaries:?}");
    assert!(mounts.len() <= 1, "/dev/drbd0 mounted rw twice: {mounts:?}");
    primaries
}

/// The fence constraint in the live CIB (its XML), if any.
fn constraint(lab: &Lab, on: Node) -> Option<String> {
    let out = lab
        .run_ok(on, &format!("cibadmin -Q -o constraints -A \"//rsc_location[@id='{CONSTRAINT}']\" 2>/dev/null || true"))
        .unwrap_or_else(|e| panic!("{e}"));
    out.contains(CONSTRAINT).then_some(out)
}

/// The handler's exit codes in `node`'s kernel log, in order (8.4's
/// usermode-helper line `helper command: /sbin/drbdadm fence-peer minor-0
/// exit code 4 (0x400)`: also there for the codes DRBD calls broken).
fn handler_codes(lab: &Lab, node: Node) -> Vec<u32> {
    let log = lab
        .run_ok(node, "dmesg | grep 'drbdadm fence-peer.*exit code' || true")
        .unwrap_or_else(|e| panic!("{e}"));
    log.lines()
        .filter_map(|l| {
            l.split("exit code ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn wait_until(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> bool,
    show: impl Fn() -> String,
) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < timeout,
            "{what}: not within {timeout:?}\n{}",
            show()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `hapair import-cib` reads the running cluster's whole CIB (`cibadmin
/// -Q`, status section included) and its output passes `hapair validate`.
fn import_live_cib(lab: &Lab, hapair: &std::path::Path, on: Node) {
    let cib = lab.dir().join("pacemaker/live-cib.xml");
    lab.run_ok(on, &format!("cibadmin -Q > {}", cib.display()))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(hapair)
        .arg("import-cib")
        .arg(&cib)
        .args([
            "--node",
            "nodeA=10.88.0.1,10.88.1.1",
            "--node",
            "nodeB=10.88.0.2,10.88.1.2",
        ])
        .output()
        .expect("hapair import-cib");
    let toml = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "import-cib of the live CIB: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "type = \"drbd\"",
        "ocf:heartbeat:Filesystem",
        "ocf:heartbeat:IPaddr2",
        "ocf:heartbeat:anything",
        "agent = \"fence_lab\"",
        "10.88.1.2:5405",
    ] {
        assert!(
            toml.contains(want),
            "import-cib output lacks {want}:\n{toml}"
        );
    }
    let file = lab.dir().join("pacemaker/imported.toml");
    std::fs::write(&file, &toml).unwrap();
    let v = std::process::Command::new(hapair)
        .arg("validate")
        .arg(&file)
        .output()
        .expect("hapair validate");
    assert!(
        v.status.success(),
        "hapair validate of the imported CIB: {}{}\n{toml}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}

#[test]
fn fence_peer_in_pacemaker() {
    let t0 = Instant::now();
    let bins = Bins::find().unwrap_or_else(|e| panic!("{e}"));
    let lab = Lab::up_with(LabOptions {
        mem: pcmk::MEM.into(),
        run_timeout: Duration::from_secs(120),
        ..LabOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    say(t0, &format!("lab up ({:.1?})", lab.up_time()));
    // the handler where the guests see it (a build dir under /tmp is not)
    let bin = lab.dir().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let hapair = bin.join("hapair");
    std::fs::copy(&bins.hapair, &hapair).unwrap();
    let h = hapair.display();
    // DRBD 8.4: policy in disk {}, unfence on after-resync-target
    let res = lab.dir().join("drbd.d/r0.res");
    let text = std::fs::read_to_string(&res).unwrap();
    let text = text
        .replacen("disk {", "disk { fencing resource-and-stonith;", 1)
        .replacen(
            "resource r0 {",
            &format!(
                "resource r0 {{\n  handlers {{ fence-peer \"{h} fence-peer --pacemaker --timeout 60s\"; \
                 after-resync-target \"{h} fence-peer --pacemaker --unfence\"; }}"
            ),
            1,
        );
    std::fs::write(&res, text).unwrap();
    for n in [Node::A, Node::B] {
        lab.run_ok(n, "drbdadm adjust r0").unwrap();
    }
    let shown = lab
        .run_ok(Node::A, "drbdsetup show r0; drbdadm dump r0")
        .unwrap();
    assert!(
        shown.contains("resource-and-stonith") && shown.contains("fence-peer --pacemaker"),
        "DRBD did not take the fencing config:\n{shown}"
    );
    lab.run_ok(
        Node::A,
        &format!(
            "drbdadm primary r0 && mkfs.ext4 -q /dev/drbd0 && mkdir -p /mnt/r0 && mount /dev/drbd0 /mnt/r0 && \
             mkdir /mnt/r0/www && echo '{PAGE}' > /mnt/r0/www/index.html && umount /mnt/r0 && drbdadm secondary r0"
        ),
    )
    .unwrap();
    let pcmk = Pacemaker::up(&lab, Token::Tuned).unwrap_or_else(|e| panic!("{e}"));
    say(t0, &format!("pacemaker up ({:.1?})", pcmk.up_time()));
    pcmk.load(EXAMPLE_DRBD_FS_IP)
        .unwrap_or_else(|e| panic!("{e}"));
    let pri = pcmk
        .wait_started("web", None, Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("{e}"));
    let sec = other(pri);
    assert_eq!(check(&lab), vec![pri]);
    assert!(
        constraint(&lab, pri).is_none(),
        "a fence constraint before any fencing"
    );
    say(t0, &format!("stack running on {pri}"));
    import_live_cib(&lab, &bins.hapair, pri);

    // 1. replication link cut: the Primary's handler outdates the peer
    // through the CIB (exit 4), no STONITH
    let offs_before = lab.power_log().matches(" off ").count();
    let t = Instant::now();
    lab.net(pri, Link::Repl, NetOp::Cut).unwrap();
    wait_until(
        "the Primary's fence-peer handler returned",
        Duration::from_secs(60),
        || !handler_codes(&lab, pri).is_empty(),
        || {
            lab.run(pri, "dmesg | grep -i fence | tail")
                .map(|o| o.stdout)
                .unwrap_or_default()
        },
    );
    let codes = handler_codes(&lab, pri);
    say(
        t0,
        &format!(
            "repl cut -> {pri}'s handler returned {codes:?} after {:.1?}",
            t.elapsed()
        ),
    );
    assert_eq!(
        codes,
        vec![4],
        "exit 4: peer online, outdated through the CIB"
    );
    let c = constraint(&lab, pri).expect("the fence constraint after exit 4");
    assert!(
        c.contains(&format!("value=\"{}\"", pri.name())) && c.contains("-INFINITY"),
        "the constraint must allow promotion only on {pri}:\n{c}"
    );
    // I/O resumed on the Primary; the service still answers there
    lab.run_ok(
        pri,
        "timeout 10 sh -c 'date > /mnt/r0/www/after-cut && sync'",
    )
    .unwrap_or_else(|e| panic!("I/O frozen on {pri} after the handler: {e}"));
    lab.run_ok(sec, "true").unwrap();
    assert_eq!(check(&lab), vec![pri]);
    assert_eq!(
        lab.power_log().matches(" off ").count(),
        offs_before,
        "a repl cut must not fence"
    );
    let st = pcmk.status().unwrap();
    assert_eq!(st.online.len(), 2, "Corosync stays up over lan");
    assert_eq!(st.promoted_on("drbd-r0"), vec![pri]);
    // the Secondary is not promotable: DRBD asks its handler, which finds
    // the Primary's constraint under its id and refuses (1)
    let out = lab.run(sec, "drbdadm primary r0").unwrap();
    assert_ne!(
        out.rc, 0,
        "{sec} promoted while cut off: {}{}",
        out.stdout, out.stderr
    );
    // (drbdsetup primary asks up to four times; every answer is 1)
    let refused = handler_codes(&lab, sec);
    assert!(
        !refused.is_empty() && refused.iter().all(|&c| c == 1),
        "{sec}'s handler must refuse every time: {refused:?}"
    );
    assert_eq!(check(&lab), vec![pri]);
    say(
        t0,
        &format!(
            "{sec}: drbdadm primary refused (handler 1): {}",
            out.stderr.trim()
        ),
    );

    // 2. heal: the Secondary resyncs, after-resync-target unfences
    let t = Instant::now();
    lab.net(pri, Link::Repl, NetOp::Heal).unwrap();
    wait_until(
        "resync and unfence after the heal",
        Duration::from_secs(120),
        || {
            lab.drbd_dstate(pri)
                .is_ok_and(|d| d.trim() == "UpToDate/UpToDate")
                && constraint(&lab, pri).is_none()
        },
        || format!("{:?} {:?}", lab.drbd_dstate(pri), constraint(&lab, pri)),
    );
    say(
        t0,
        &format!(
            "healed: resynced, constraint removed in {:.1?}",
            t.elapsed()
        ),
    );
    assert_eq!(check(&lab), vec![pri]);

    // 3. power cut of the Primary: the survivor's handler waits for the
    // STONITH and answers 7
    let before = handler_codes(&lab, sec).len();
    let t = Instant::now();
    lab.kill(pri).unwrap();
    pcmk.wait_started("web", Some(sec), Duration::from_secs(150))
        .unwrap_or_else(|e| panic!("{e}"));
    say(
        t0,
        &format!(
            "power cut of {pri} -> stack on {sec} in {:.1?}",
            t.elapsed()
        ),
    );
    assert!(
        lab.power_log()
            .contains(&format!(" off {} rc=0", pri.name())),
        "{pri} not fenced through fence_lab:\n{}",
        lab.power_log()
    );
    let codes = handler_codes(&lab, sec);
    assert_eq!(
        &codes[before..],
        &[7],
        "exit 7 after the STONITH: {codes:?}"
    );
    let c = constraint(&lab, sec).expect("the fence constraint after exit 7");
    assert!(c.contains(&format!("value=\"{}\"", sec.name())), "{c}");
    assert_eq!(check(&lab), vec![sec]);
    let page = lab
        .run_ok(sec, "cat /mnt/r0/www/index.html /mnt/r0/www/after-cut")
        .unwrap();
    assert!(page.contains(PAGE), "{page}");
    pcmk.kill().unwrap_or_else(|e| panic!("{e}"));
    lab.down().unwrap_or_else(|e| panic!("{e}"));
    say(t0, "done");
}
