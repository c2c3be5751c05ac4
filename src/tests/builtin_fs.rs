//! The built-in `filesystem` type against real filesystems on scratch loop
//! devices: start/monitor/stop cycles (ext4, xfs, ext2 with fsck), double
//! start and stop, symlinked devices, paths with spaces, processes holding
//! the mount (open file, working directory, one ignoring SIGTERM) killed on
//! stop, a mount kept busy by the kernel (stop fails, no lazy unmount), a
//! superblock remounted read-only by errors=remount-ro, a shut-down ext4, foreign mounts at
//! or below the directory, the device mounted elsewhere, a missing device.
//!
//! Included by path from `runtime/builtin/mod.rs` (library unit tests, so
//! they see the crate's private items). Needs root, util-linux
//! (`losetup`), e2fsprogs (`mkfs.ext4`, `mkfs.ext2`, `fsck.ext2`) and
//! xfsprogs (`mkfs.xfs`, `xfs_io`); fails with the reason when one is missing.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags};

use super::filesystem::Filesystem;
use super::mountinfo;
use super::{BuiltinResult, FailClass, Op, Outcome};

fn require(tool: &str, package: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the built-in filesystem tests need root (loop devices, mount)"
    );
    let found = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(tool).exists());
    assert!(found, "`{tool}` not found: install the `{package}` package");
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loop device over a sparse file in /var/tmp (optionally with a
/// filesystem), and a work directory for mount points; everything mounted
/// below the work directory is unmounted and the device detached on drop.
struct Scratch {
    dir: tempfile::TempDir,
    dev: PathBuf,
}

impl Scratch {
    fn new(size_mib: u64, mkfs: Option<&[&str]>) -> Scratch {
        require("losetup", "util-linux");
        let dir = tempfile::Builder::new()
            .prefix("hapair-bfs.")
            .tempdir_in("/var/tmp")
            .unwrap();
        let img = dir.path().join("img");
        fs::File::create(&img)
            .unwrap()
            .set_len(size_mib << 20)
            .unwrap();
        let dev = sh(Command::new("losetup").args(["--find", "--show"]).arg(&img));
        let s = Scratch {
            dir,
            dev: PathBuf::from(dev.trim()),
        };
        if let Some(cmd) = mkfs {
            require(
                cmd[0],
                if cmd[0].contains("xfs") {
                    "xfsprogs"
                } else {
                    "e2fsprogs"
                },
            );
            sh(Command::new(cmd[0]).args(&cmd[1..]).arg(&s.dev));
        }
        s
    }

    fn ext4() -> Scratch {
        Scratch::new(64, Some(&["mkfs.ext4", "-q", "-F"]))
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn fs(&self, rel: &str, extra: &[(&str, &str)]) -> Filesystem {
        self.fs_on(&self.dev.display().to_string(), rel, "ext4", extra)
    }

    fn fs_on(&self, dev: &str, rel: &str, fstype: &str, extra: &[(&str, &str)]) -> Filesystem {
        let mut p: BTreeMap<String, String> = [
            ("device", dev.to_string()),
            ("directory", self.path(rel).display().to_string()),
            ("fstype", fstype.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in extra {
            p.insert(k.to_string(), v.to_string());
        }
        Filesystem::from_params(&p).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let base = fs::canonicalize(self.dir.path()).unwrap_or_else(|_| self.dir.path().into());
        if let Ok(ms) = mountinfo::read() {
            for m in ms.iter().rev().filter(|m| m.mount_point.starts_with(&base)) {
                let _ = nix::mount::umount2(&m.mount_point, MntFlags::MNT_DETACH);
            }
        }
        for _ in 0..20 {
            let st = Command::new("losetup").arg("-d").arg(&self.dev).status();
            if st.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A child process killed and reaped on drop.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Kid {
    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }

    /// Waits (bounded) for the child's end; returns the signal that ended it.
    fn ended_by(&mut self) -> Option<i32> {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.0.try_wait().unwrap() {
                return st.signal();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "child {} still alive",
                self.0.id()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn sleeper(cwd: &Path, stdin: Stdio, ignore_term: bool) -> Kid {
    let script = if ignore_term {
        "trap '' TERM; exec sleep 600"
    } else {
        "exec sleep 600"
    };
    let kid = Kid(Command::new("sh")
        .args(["-c", script])
        .current_dir(cwd)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    // let the shell exec (and install its trap) before the test goes on
    let t0 = Instant::now();
    while fs::read_link(format!("/proc/{}/exe", kid.0.id()))
        .map(|p| !p.ends_with("sleep"))
        .unwrap_or(true)
    {
        assert!(t0.elapsed() < Duration::from_secs(5), "sleep did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    kid
}

fn mounted_at(dir: &Path) -> Vec<mountinfo::MountInfo> {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.into());
    mountinfo::read()
        .unwrap()
        .into_iter()
        .filter(|m| m.mount_point == dir)
        .collect()
}

#[track_caller]
fn assert_outcome(r: &BuiltinResult, want: Outcome, reason_has: &str) {
    assert_eq!(r.outcome, want, "{r:?}");
    if !reason_has.is_empty() {
        let reason = r.reason.as_deref().unwrap_or("");
        assert!(
            reason.contains(reason_has),
            "reason {reason:?} lacks {reason_has:?}"
        );
    }
}

#[test]
fn ext4_start_monitor_stop_cycle() {
    let s = Scratch::ext4();
    let fs = s.fs("mnt", &[]);
    let mnt = s.path("mnt");
    assert_outcome(&fs.run(Op::Monitor), Outcome::NotRunning, "not mounted");
    assert_outcome(&fs.run(Op::Stop), Outcome::Ok, "was not mounted");

    let r = fs.run(Op::Start);
    assert_eq!(
        r,
        BuiltinResult {
            outcome: Outcome::Ok,
            reason: None
        }
    );
    let here = mounted_at(&mnt);
    assert_eq!(here.len(), 1, "{here:?}");
    assert_eq!(here[0].fstype, "ext4");
    assert_eq!(Path::new(&here[0].source), s.dev);
    assert!(!here[0].read_only());
    fs::write(mnt.join("data"), "payload").unwrap();
    assert_eq!(
        fs.run(Op::Monitor),
        BuiltinResult {
            outcome: Outcome::Ok,
            reason: None
        }
    );

    // start again: idempotent, no second mount
    assert_outcome(&fs.run(Op::Start), Outcome::Ok, "already mounted");
    assert_eq!(mounted_at(&mnt).len(), 1);

    assert_eq!(
        fs.run(Op::Stop),
        BuiltinResult {
            outcome: Outcome::Ok,
            reason: None
        }
    );
    assert!(mounted_at(&mnt).is_empty());
    assert!(
        !mnt.join("data").exists(),
        "the file lives on the unmounted filesystem"
    );
    assert_outcome(&fs.run(Op::Monitor), Outcome::NotRunning, "");
    assert_outcome(&fs.run(Op::Stop), Outcome::Ok, "was not mounted");

    // and again, with options: flags reach the mount, data reaches ext4
    let fs = s.fs(
        "mnt",
        &[
            ("options", "noatime,nodev,nosuid,noexec,data=journal"),
            ("check_io", "true"),
        ],
    );
    assert_outcome(&fs.run(Op::Start), Outcome::Ok, "");
    let m = &mounted_at(&mnt)[0];
    for o in ["noatime", "nodev", "nosuid", "noexec"] {
        assert!(
            m.mount_options.iter().any(|x| x == o),
            "{o} missing in {m:?}"
        );
    }
    assert!(m.super_options.iter().any(|x| x == "data=journal"), "{m:?}");
    assert_eq!(fs::read_to_string(mnt.join("data")).unwrap(), "payload");
    assert_outcome(&fs.run(Op::Monitor), Outcome::Ok, "");
    assert_outcome(&fs.run(Op::Stop), Outcome::Ok, "");
}

#[test]
fn creates_directory_with_odd_names_and_follows_device_symlinks() {
    let s = Scratch::ext4();
    let link = s.path("by-id-link");
    std::os::unix::fs::symlink(&s.dev, &link).unwrap();
    let rel = "deep/mnt dir\twith tab";
    let fs = s.fs_on(&link.display().to_string(), rel, "ext4", &[]);
    assert_outcome(&fs.run(Op::Start), Outcome::Ok, "");
    // the kernel escaped space and tab; the parser undid it
    let m = mounted_at(&s.path(rel));
    assert_eq!(m.len(), 1);
    assert_eq!(
        Path::new(&m[0].source),
        s.dev,
        "mount(2) got the resolved device"
    );
    let raw = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        raw.contains("mnt\\040dir\\011with\\040tab"),
        "escaped in mountinfo"
    );
    // the same device named directly is the same resource
    let direct = s.fs(rel, &[]);
    assert_outcome(&direct.run(Op::Monitor), Outcome::Ok, "");
    assert_outcome(&fs.run(Op::Stop), Outcome::Ok, "");
    assert!(mounted_at(&s.path(rel)).is_empty());

    // without create_directory a missing mount point is a hard failure
    let fs = s.fs("missing", &[("create_directory", "false")]);
    assert_outcome(
        &fs.run(Op::Start),
        Outcome::Failed(FailClass::Hard),
        "missing",
    );
    assert!(!s.path("missing").exists());
}

#[test]
fn stop_kills_processes_holding_the_mount() {
    let s = Scratch::ext4();
    let fs = s.fs("mnt", &[("kill_timeout", "3s")]);
    let mnt = s.path("mnt");
    assert_outcome(&fs.run(Op::Start), Outcome::Ok, "");
    fs::create_dir(mnt.join("work")).unwrap();
    fs::write(mnt.join("held"), "x").unwrap();
    let mut open_file = sleeper(
        Path::new("/"),
        Stdio::from(fs::File::open(mnt.join("held")).unwrap()),
        false,
    );
    let mut in_cwd = sleeper(&mnt.join("work"), Stdio::null(), false);
    let mut bystander = sleeper(Path::new("/"), Stdio::null(), false);

    let holders = super::filesystem::holders(&fs::canonicalize(&mnt).unwrap());
    assert!(holders.contains_key(&open_file.pid()), "{holders:?}");
    assert!(holders.contains_key(&in_cwd.pid()), "{holders:?}");
    assert!(!holders.contains_key(&bystander.pid()));

    let t0 = Instant::now();
    assert_outcome(&fs.run(Op::Stop), Outcome::Ok, "");
    let took = t0.elapsed();
    assert!(mounted_at(&mnt).is_empty());
    assert_eq!(
        open_file.ended_by(),
        Some(nix::sys::signal::Signal::SIGTERM as i32)
    );
    assert_eq!(
        in_cwd.ended_by(),
        Some(nix::sys::signal::Signal::SIGTERM as i32)
    );
    assert!(
        took < Duration::from_secs(3),
        "SIGTERM sufficed, no wait for SIGKILL: {took:?}"
    );
    assert!(
        bystander.0.try_wait().unwrap().is_none(),
        "a process outside the mount is left alone"
    );
}

#[test]
fn stop_kills_a_process_ignoring_sigterm() {
    let s = Scratch::ext4();
    let fs = s.fs("mnt", &[("kill_timeout", "1s")]);
    let mnt = s.path("mnt");
    assert_outcome(&fs.run(Op::Start), Outcome::Ok, "");
    let mut stubborn = sleeper(&mnt, Stdio::null(), true);
    let t0 = Instant::now();
    assert_outcome(&fs.run(Op::Stop), Outcome::Ok, "");
    let took = t0.elapsed();
    assert_eq!(
        stubborn.ended_by(),
        Some(nix::sys::signal::Signal::SIGKILL as i32)
    );
    assert!(
        took >= Duration::from_secs(1),
        "SIGKILL only after kill_timeout: {took:?}"
    );
    assert!(mounted_at(&mnt).is_empty());
}

#[test]
fn stop_fails_without_lazy_unmount_when_the_kernel_holds_the_mount() {
    let s = Scratch::ext4();
    let fs = s.fs("mnt", &[("kill_timeout", "1s")]);
    let mnt = s.path("mnt");
    assert_outcome(&fs.run(Op::Start), Outcome::Ok, "");
    // a loop device backed by a file on the mount: busy, and no process to blame
    let img = mnt.join("inner.img");
    fs::File::create(&img).unwrap().set_len(1 << 20).unwrap();
    let inner = sh(Command::new("losetup").args(["--find", "--show"]).arg(&img));
    let inner = inner.trim().to_string();
    let r = fs.run(Op::Stop);
    let _ = Command::new("losetup").args(["-d", &inner]).status();
    assert_outcome(&r, Outcome::Failed(FailClass::Soft), "no process was found");
    assert_eq!(
        mounted_at(&mnt).len(),
        1,
        "still mounted, not lazily detached"
    );
    // once the loop device is gone (detach is asynchronous), stop succeeds
    let t0 = Instant::now();
    loop {
        let r = fs.run(Op::Stop);
        if r.outcome == Outcome::Ok {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{r:?}");
    }
    assert!(mounted_at(&mnt).is_empty());
}

#[test]
fn read_only_mounts() {
    let s = Scratch::new(64, Some(&["mkfs.ext4", "-q", "-F"]));
    let mnt = s.path("mnt");
    let rw = s.fs("mnt", &[("options", "errors=remount-ro")]);
    let ro = s.fs("mnt", &[("options", "ro")]);
    assert_outcome(&ro.run(Op::Start), Outcome::Ok, "");
    assert!(mounted_at(&mnt)[0].read_only());
    assert_outcome(&ro.run(Op::Monitor), Outcome::Ok, "");
    assert_outcome(
        &rw.run(Op::Monitor),
        Outcome::Failed(FailClass::Soft),
        "read-only",
    );
    assert_outcome(
        &rw.run(Op::Start),
        Outcome::Failed(FailClass::Soft),
        "read-only",
    );
    assert_outcome(&ro.run(Op::Stop), Outcome::Ok, "");

    // an error on an errors=remount-ro filesystem: ext4's `abort` option
    // fakes one, and the superblock (not the mount) turns read-only
    assert_outcome(&rw.run(Op::Start), Outcome::Ok, "");
    assert_outcome(
        &ro.run(Op::Monitor),
        Outcome::Failed(FailClass::Soft),
        "read-write but options say ro",
    );
    nix::mount::mount(
        None::<&str>,
        &mnt,
        None::<&str>,
        MsFlags::MS_REMOUNT,
        Some("abort"),
    )
    .expect("remount,abort");
    let m = &mounted_at(&mnt)[0];
    // Linux 6.x says `emergency_ro`, older kernels `ro`
    assert!(
        m.super_options
            .iter()
            .any(|o| o == "ro" || o == "emergency_ro"),
        "{m:?}"
    );
    assert!(
        fs::write(mnt.join("after-error"), "x").is_err(),
        "writes fail"
    );
    assert_outcome(
        &rw.run(Op::Monitor),
        Outcome::Failed(FailClass::Soft),
        "superblock",
    );
    assert_outcome(&rw.run(Op::Stop), Outcome::Ok, "");
    assert!(mounted_at(&mnt).is_empty());

    // a filesystem shut down (FS_IOC_SHUTDOWN, as on a fatal error)
    require("xfs_io", "xfsprogs");
    assert_outcome(&rw.run(Op::Start), Outcome::Ok, "");
    sh(Command::new("xfs_io")
        .args(["-x", "-c", "shutdown"])
        .arg(&mnt));
    assert_outcome(
        &rw.run(Op::Monitor),
        Outcome::Failed(FailClass::Soft),
        "shut down",
    );
    assert_outcome(&rw.run(Op::Stop), Outcome::Ok, "");
    assert!(mounted_at(&mnt).is_empty());
}

#[test]
fn foreign_mounts_are_left_alone() {
    let s = Scratch::ext4();
    let mnt = s.path("mnt");
    let fs = s.fs("mnt", &[]);
    fs::create_dir(&mnt).unwrap();
    // another filesystem at the directory
    nix::mount::mount(
        Some("hbt-tmp"),
        &mnt,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    assert_outcome(
        &fs.run(Op::Start),
        Outcome::Failed(FailClass::Hard),
        "already holds tmpfs",
    );
    assert_outcome(&fs.run(Op::Monitor), Outcome::NotRunning, "holds tmpfs");
    assert_outcome(&fs.run(Op::Stop), Outcome::Ok, "");
    assert_eq!(
        mounted_at(&mnt)[0].fstype,
        "tmpfs",
        "not ours: still mounted"
    );
    nix::mount::umount2(&mnt, MntFlags::empty()).unwrap();

    // a mount below the directory would be hidden: refuse
    fs::create_dir(mnt.join("sub")).unwrap();
    nix::mount::mount(
        Some("hbt-tmp"),
        &mnt.join("sub"),
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    assert_outcome(
        &fs.run(Op::Start),
        Outcome::Failed(FailClass::Hard),
        "would be hidden",
    );
    nix::mount::umount2(&mnt.join("sub"), MntFlags::empty()).unwrap();

    // mounted below *our* mount: stop unmounts it first
    assert_outcome(&fs.run(Op::Start), Outcome::Ok, "");
    fs::create_dir(mnt.join("sub")).unwrap();
    nix::mount::mount(
        Some("hbt-tmp"),
        &mnt.join("sub"),
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    assert_outcome(&fs.run(Op::Stop), Outcome::Ok, "");
    assert!(mounted_at(&mnt).is_empty() && mounted_at(&mnt.join("sub")).is_empty());

    // the device mounted somewhere else: no second mount, stop reports it live
    let other = s.path("other");
    fs::create_dir(&other).unwrap();
    nix::mount::mount(
        Some(&s.dev),
        &other,
        Some("ext4"),
        MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    assert_outcome(
        &fs.run(Op::Start),
        Outcome::Failed(FailClass::Hard),
        "already mounted at",
    );
    assert_outcome(
        &fs.run(Op::Monitor),
        Outcome::Failed(FailClass::Soft),
        "not at",
    );
    assert_outcome(
        &fs.run(Op::Stop),
        Outcome::Failed(FailClass::Soft),
        "stays live",
    );
    assert_eq!(
        mounted_at(&other).len(),
        1,
        "never unmounts what it did not mount"
    );
    nix::mount::umount2(&other, MntFlags::empty()).unwrap();
}

#[test]
fn missing_device_and_wrong_types() {
    let s = Scratch::ext4();
    let fs = s.fs_on("/dev/hapair-no-such-device", "mnt", "ext4", &[]);
    assert_outcome(
        &fs.run(Op::Start),
        Outcome::Failed(FailClass::Hard),
        "no-such-device",
    );
    assert_outcome(&fs.run(Op::Monitor), Outcome::NotRunning, "");
    assert_outcome(&fs.run(Op::Stop), Outcome::Ok, "");
    // a regular file is not a block device
    let file = s.path("img").display().to_string();
    let fs = s.fs_on(&file, "mnt", "ext4", &[]);
    assert_outcome(
        &fs.run(Op::Start),
        Outcome::Failed(FailClass::Hard),
        "not a block device",
    );
    // a type the kernel does not know
    let dev = s.dev.display().to_string();
    let fs = s.fs_on(&dev, "mnt", "hapairfs", &[("fsck", "never")]);
    assert_outcome(
        &fs.run(Op::Start),
        Outcome::Failed(FailClass::Hard),
        "unknown to the kernel",
    );
    assert!(mounted_at(&s.path("mnt")).is_empty());
}

#[test]
fn fsck_runs_for_ext2_under_auto_and_failures_stop_the_start() {
    require("fsck.ext2", "e2fsprogs");
    // a blank device: fsck.ext2 finds no superblock and fails (exit 8)
    let blank = Scratch::new(16, None);
    let dev = blank.dev.display().to_string();
    let auto = blank.fs_on(&dev, "mnt", "ext2", &[]);
    assert_outcome(
        &auto.run(Op::Start),
        Outcome::Failed(FailClass::Hard),
        "fsck -a",
    );
    // never: straight to mount(2), which fails on its own
    let never = blank.fs_on(&dev, "mnt", "ext2", &[("fsck", "never")]);
    let r = never.run(Op::Start);
    assert_eq!(r.outcome, Outcome::Failed(FailClass::Soft), "{r:?}");
    assert!(r.reason.as_deref().unwrap().starts_with("mount "), "{r:?}");
    // ext4 under auto: no fsck, so the same blank device fails at mount(2)
    let ext4 = blank.fs_on(&dev, "mnt", "ext4", &[]);
    assert!(ext4.run(Op::Start).reason.unwrap().starts_with("mount "));

    // a real ext2: fsck -a passes, the mount follows
    let s = Scratch::new(32, Some(&["mkfs.ext2", "-q", "-F"]));
    let fs = s.fs_on(&s.dev.display().to_string(), "mnt", "ext2", &[]);
    assert!(fs.fsck_needed());
    assert_outcome(&fs.run(Op::Start), Outcome::Ok, "");
    assert_eq!(mounted_at(&s.path("mnt"))[0].fstype, "ext2");
    assert_outcome(&fs.run(Op::Stop), Outcome::Ok, "");
    // always, on ext4
    let s = Scratch::ext4();
    let fs = s.fs("mnt", &[("fsck", "always")]);
    assert_outcome(&fs.run(Op::Start), Outcome::Ok, "");
    assert_outcome(&fs.run(Op::Stop), Outcome::Ok, "");
}

#[test]
fn xfs_cycle() {
    // mkfs.xfs wants at least 300 MiB (sparse: little real space)
    let s = Scratch::new(320, Some(&["mkfs.xfs", "-q", "-f"]));
    let fs = s.fs_on(
        &s.dev.display().to_string(),
        "mnt",
        "xfs",
        &[("options", "noatime,inode64")],
    );
    let mnt = s.path("mnt");
    assert_outcome(&fs.run(Op::Start), Outcome::Ok, "");
    assert_eq!(mounted_at(&mnt)[0].fstype, "xfs");
    fs::write(mnt.join("f"), "x").unwrap();
    assert_outcome(&fs.run(Op::Monitor), Outcome::Ok, "");
    assert_outcome(&fs.run(Op::Start), Outcome::Ok, "already mounted");
    let mut holder = sleeper(&mnt, Stdio::null(), false);
    assert_outcome(&fs.run(Op::Stop), Outcome::Ok, "");
    assert_eq!(
        holder.ended_by(),
        Some(nix::sys::signal::Signal::SIGTERM as i32)
    );
    assert_outcome(&fs.run(Op::Monitor), Outcome::NotRunning, "");
}
