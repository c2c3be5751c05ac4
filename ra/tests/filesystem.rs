//! Debian's `ocf:heartbeat:Filesystem` mounting ext4 on a loop device:
//! probe, start, monitor at check levels 0/10/20, double start, stop while
//! a process holds a file open (killed with `force_unmount=true`, a failed
//! stop with `force_unmount=false`), double stop, and a missing device.
//!
//! Needs root, util-linux (`losetup`), e2fsprogs (`mkfs.ext4`), psmisc
//! (`fuser`) and kmod (`modprobe`), both used by the agent, and
//! resource-agents.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ra::{Action, ExecStatus, Observed, OcfExit, Recovery, Request, Verdict};
use tempfile::TempDir;

/// A loop device with an ext4 filesystem over a file in /var/tmp, and a
/// mount point; unmounted and detached on drop.
struct Scratch {
    dir: TempDir,
    dev: String,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("ra-fs.")
            .tempdir_in("/var/tmp")
            .unwrap();
        let img = dir.path().join("fs.img");
        fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
        let dev = sh(Command::new("losetup").args(["--find", "--show"]).arg(&img))
            .trim()
            .to_string();
        let s = Scratch { dir, dev };
        sh(Command::new("mkfs.ext4").args(["-q", "-F", &s.dev]));
        fs::create_dir(s.mnt()).unwrap();
        s
    }

    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    fn mounted(&self) -> bool {
        let mnt = self.mnt().display().to_string();
        fs::read_to_string("/proc/mounts")
            .unwrap()
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(mnt.as_str()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.mounted() {
            let _ = Command::new("umount").arg("-l").arg(self.mnt()).status();
        }
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// A process holding a file on the mount open (as its stdin), which keeps
/// the filesystem busy; killed on drop if still alive.
struct Holder(Child);

impl Holder {
    fn new(dir: &Path) -> Holder {
        let file = dir.join("held");
        fs::write(&file, "x").unwrap();
        let child = Command::new("sleep")
            .arg("600")
            .current_dir("/")
            .stdin(Stdio::from(fs::File::open(&file).unwrap()))
            .spawn()
            .unwrap();
        Holder(child)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn filesystem_on_a_loop_device() {
    require_root();
    require_heartbeat_agent("Filesystem");
    require_file("/usr/sbin/mkfs.ext4", "e2fsprogs");
    require_file("/usr/sbin/losetup", "util-linux");
    require_file("/usr/bin/fuser", "psmisc");
    require_file("/sbin/modprobe", "kmod");
    let s = Scratch::new();
    let runner = system_runner();
    let agent: ra::Agent = "ocf:heartbeat:Filesystem".parse().unwrap();
    let mnt = s.mnt().display().to_string();
    let md = runner.meta_data(&agent).await.unwrap();
    let op = |action: Action, timeout: u64| {
        Request::new("fs1", agent.clone(), action, Duration::from_secs(timeout))
            .param("device", &s.dev)
            .param("directory", &mnt)
            .param("fstype", "ext4")
    };
    assert!(
        md.check_params(&op(Action::Start, 60).params).is_empty(),
        "configured parameters pass the meta-data checks"
    );
    let run = |r: Request| {
        let runner = runner.clone();
        async move { runner.run(&r).await.unwrap() }
    };

    let r = run(op(Action::ValidateAll, 5)).await;
    assert!(r.is_success(), "{r:#?}");
    let r = run(op(Action::Monitor, 40)).await;
    assert_eq!(r.classification.observed, Some(Observed::Stopped), "{r:#?}");
    assert!(r.is_success());

    let r = run(op(Action::Start, 60)).await;
    assert!(r.is_success(), "{r:#?}");
    assert!(s.mounted());
    let r = run(op(Action::Start, 60)).await;
    assert!(r.is_success(), "double start: {r:#?}");

    for level in [0, 10, 20] {
        let r = run(op(Action::Monitor, 40)
            .interval(Duration::from_secs(20))
            .check_level(level))
        .await;
        assert_eq!(r.rc, OcfExit::Success, "level {level}: {r:#?}");
        assert!(r.is_success());
    }
    // Level 20 wrote its status file on the filesystem.
    let status: Vec<String> = fs::read_dir(s.mnt().join(".Filesystem_status"))
        .expect("the level-20 monitor's status directory")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(status.iter().any(|n| n.starts_with("fs1_")), "{status:?}");
    // Unsupported level: the agent says so, and it is fatal by the OCF codes.
    let r = run(op(Action::Monitor, 40)
        .interval(Duration::from_secs(20))
        .check_level(30))
    .await;
    assert_eq!(r.rc, OcfExit::ErrConfigured);
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Fatal));
    assert_eq!(
        r.exit_reason.as_deref(),
        Some("unsupported monitor level 30")
    );

    // A process keeps the mount busy and force_unmount=false: stop cannot
    // finish; it fails (or runs into its timeout) and the mount stays.
    let holder = Holder::new(&s.mnt());
    let t = Instant::now();
    let r = run(op(Action::Stop, 4).param("force_unmount", "false")).await;
    println!(
        "busy stop, force_unmount=false: {} after {:?}",
        r.exec,
        t.elapsed()
    );
    assert!(r.classification.is_failed_stop(), "{r:#?}");
    assert!(
        matches!(
            r.exec,
            ExecStatus::TimedOut { .. } | ExecStatus::Exited { code: 1 }
        ),
        "{:?}",
        r.exec
    );
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(s.mounted(), "the busy filesystem must still be mounted");
    assert!(!ra::process_group_alive(r.pid.unwrap()));

    // With the default force_unmount=true the agent kills the holder.
    let mut holder = holder;
    let r = run(op(Action::Stop, 60)).await;
    assert!(r.is_success(), "{r:#?}");
    assert!(!s.mounted());
    let t = Instant::now();
    let st = loop {
        if let Some(st) = holder.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the holder survived the stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!st.success(), "the holder was killed: {st:?}");
    assert!(
        r.stderr.text().contains("sending signal"),
        "{}",
        r.stderr.text()
    );

    let r = run(op(Action::Stop, 60)).await;
    assert!(r.is_success(), "double stop: {r:#?}");
    let r = run(op(Action::Monitor, 40)).await;
    assert_eq!(r.classification.observed, Some(Observed::Stopped));

    // Data written while mounted is there after a remount.
    let r = run(op(Action::Start, 60)).await;
    assert!(r.is_success());
    assert_eq!(fs::read_to_string(s.mnt().join("held")).unwrap(), "x");
    let r = run(op(Action::Stop, 60)).await;
    assert!(r.is_success());
    assert!(!s.mounted());
}

#[tokio::test]
async fn filesystem_missing_device() {
    require_root();
    require_heartbeat_agent("Filesystem");
    require_file("/sbin/modprobe", "kmod");
    let runner = system_runner();
    let dir = tempfile::tempdir().unwrap();
    let r = runner
        .run(
            &Request::new(
                "fs2",
                "ocf:heartbeat:Filesystem".parse().unwrap(),
                Action::Start,
                Duration::from_secs(60),
            )
            .param("device", "/dev/hapair-no-such-device")
            .param("directory", &dir.path().display().to_string())
            .param("fstype", "ext4"),
        )
        .await
        .unwrap();
    assert_eq!(r.rc, OcfExit::ErrInstalled);
    assert_eq!(r.classification.verdict, Verdict::Failed(Recovery::Hard));
    assert_eq!(
        r.exit_reason.as_deref(),
        Some("Couldn't find device [/dev/hapair-no-such-device]. Expected /dev/??? to exist")
    );
}
