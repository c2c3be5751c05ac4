//! Issue 8: Ctrl-C during `hapair demo` tears the whole lab down. The demo
//! runs as a child (the release or debug `hapair` next to this test's
//! target dir, like the other lab tests); once its pair serves records it
//! gets SIGINT, and must exit 130 leaving no guest, namespace or lab dir.
//!
//! `cargo build -p hapair -p sfex -p hwtest --bins && cargo test -p hwtest --test demo_interrupt`

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(needle) {
                found.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn ctrl_c_during_the_demo_tears_the_lab_down() {
    let hapair = hwtest::hapair_drbd::Bins::find()
        .unwrap_or_else(|e| panic!("{e}"))
        .hapair;
    let mut child = Command::new(&hapair)
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hapair demo");
    let lab = format!("hapair-lab-{}-0", child.id());
    let (tx, rx) = mpsc::channel::<String>();
    let out = child.stdout.take().expect("stdout");
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx2.send(l);
        }
    });
    let err = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(format!("stderr: {l}"));
        }
    });
    // wait until the pair serves records (the lab fully up, daemons running)
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let l = rx
            .recv_timeout(Duration::from_secs(300).saturating_sub(start.elapsed()))
            .unwrap_or_else(|_| panic!("the demo never served records:\n{}", seen.join("\n")));
        let serving = l.contains("records acknowledged before the cut");
        seen.push(l);
        if serving {
            break;
        }
    }
    assert!(
        Path::new(&format!("/tmp/{lab}")).is_dir(),
        "the demo's lab is not {lab}:\n{}",
        seen.join("\n")
    );
    assert!(
        !processes_with(&format!("/tmp/{lab}/uml")).is_empty(),
        "no guests of {lab} running"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the demo did not exit within 120 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    while let Ok(l) = rx.try_recv() {
        seen.push(l);
    }
    eprintln!("demo exited {status} {:.1?} after SIGINT", t.elapsed());
    assert_eq!(status.code(), Some(130), "{}", seen.join("\n"));
    assert!(
        seen.iter()
            .any(|l| l.contains("interrupted: tearing the lab down")),
        "{}",
        seen.join("\n")
    );
    // nothing of the lab is left: guests, power switch, namespace, dir
    let left = processes_with(&format!("/tmp/{lab}"));
    assert!(left.is_empty(), "processes left: {left:?}");
    let ns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns");
    assert!(
        !String::from_utf8_lossy(&ns.stdout).contains(&lab),
        "namespace {lab} left"
    );
    assert!(
        !Path::new(&format!("/tmp/{lab}")).exists(),
        "/tmp/{lab} left"
    );
}
