//! The built-in `filesystem` type: mounts a block-device filesystem (ext4,
//! xfs, ... on `/dev/drbdN` or a shared LUN) with mount(2), unmounts it with
//! umount2(2), and checks it in `/proc/self/mountinfo`. A start/stop costs a
//! few system calls, where `ocf:heartbeat:Filesystem` forks dozens of
//! processes; that agent stays usable for the same job.
//!
//! # Parameters
//! | name | default | meaning |
//! | --- | --- | --- |
//! | `device` | required | absolute path (symlinks such as `/dev/disk/by-id/…` are resolved), or `UUID=…` / `LABEL=…` |
//! | `directory` | required | absolute mount point, not `/` |
//! | `fstype` | required | `ext4`, `xfs`, ... (mount(2) does not probe) |
//! | `options` | empty | comma list as for `mount -o`: flags (`ro`, `noatime`, `nodev`, `nosuid`, `noexec`, `sync`, `dirsync`, `lazytime`, ...) become mount(2) flags, mount(8)-only words (`defaults`, `noauto`, `nofail`, `_netdev`, `x-*`, ...) are dropped, the rest goes to the filesystem as its data string |
//! | `fsck` | `auto` | `auto`, `always` or `never` (the agent's `force`/`no` are accepted) |
//! | `fsck_timeout` | `10min` | kill a `fsck` still running after this |
//! | `kill_timeout` | `5s` | on a busy stop, grace between SIGTERM and SIGKILL for the processes holding the mount |
//! | `create_directory` | `true` | create a missing mount point (`mkdir -p`) |
//! | `check_io` | `false` | monitor also reads the mounted directory |
//!
//! # fsck policy
//! As the OCF agent's `run_fsck=auto`: before a mount, `fsck -t TYPE -a
//! DEVICE` runs only for filesystems without a journal or their own
//! recovery (ext2, and types not in the agent's list); ext3/ext4/xfs, jfs,
//! btrfs, network and virtual filesystems replay their log at mount
//! instead. `always` runs it for every type, `never` for none. Exit codes
//! 0-3 (clean, corrected) go on to mount; 4 and up (errors left, operational
//! error) fail the start with `Failed(Hard)`: with DRBD the peer has its
//! own copy of the data, so moving is the useful recovery.
//!
//! # Outcomes
//! - **start**: `Ok` when mounted and verified in mountinfo (also when it
//!   already was). `Failed(Hard)` when this node cannot do it: device
//!   missing or not a block device, filesystem type unknown to the kernel,
//!   the directory holding another mount or mounts below it, the device
//!   already mounted elsewhere (stop would leave it live), no `fsck`, or fsck
//!   failing. `Failed(Soft)` for other mount(2) errors (e.g. a DRBD device
//!   still Secondary) and a mount that does not show up.
//! - **stop**: `Ok` once nothing of the device is mounted at the directory
//!   *and* the device is mounted nowhere else (a bind mount of it elsewhere
//!   would keep the filesystem live while the peer mounts it). Mounts below
//!   the directory are unmounted first. When the directory is busy, the
//!   processes holding it (found through `/proc/*/{cwd,root,exe,fd/*,maps}`
//!   paths under the directory) get SIGTERM, then after `kill_timeout`
//!   SIGKILL. A lazy unmount is never used: it would hide a filesystem that
//!   is still live. If it stays busy, `Failed(Soft)` names the remaining
//!   PIDs so the engine escalates. Processes in another mount namespace
//!   see other paths and are not found; the reason then says so.
//! - **monitor**: `Ok` when the device is the mount at the directory, `rw`
//!   unless `options` has `ro` (an ext4 remounted read-only by
//!   `errors=remount-ro` is `Failed(Soft)`), and with `check_io` the
//!   directory can be read. `NotRunning` when the device is not mounted
//!   (also when the directory holds something else). `Failed(Soft)` when
//!   mounted wrongly: read-only, covered by another mount, or at another
//!   directory.
//! - **promote/demote**: `Failed(Fatal)`: not a promotable type.
//!
//! It never touches anything but its device, its directory and mounts
//! below the directory, and the processes using them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::mountinfo::{self, MountInfo};
use super::{BuiltinResult, FailClass, Op, Outcome, ParamError};

/// The parameter names the type knows.
pub const PARAMS: &[&str] = &[
    "device",
    "directory",
    "fstype",
    "options",
    "fsck",
    "fsck_timeout",
    "kill_timeout",
    "create_directory",
    "check_io",
];

/// Whether and when to run `fsck -a` before mounting (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsck {
    /// Only for filesystems without a journal (the OCF agent's rule).
    Auto,
    /// Before every mount.
    Always,
    /// Never.
    Never,
}

/// Filesystem types that need no fsck before mounting (the OCF agent's
/// list, plus btrfs and f2fs, whose fsck is a no-op or not for boot use).
const NO_FSCK: &[&str] = &[
    "ext4",
    "ext4dev",
    "ext3",
    "reiserfs",
    "reiser4",
    "nss",
    "xfs",
    "jfs",
    "vfat",
    "fat",
    "nfs4",
    "nfs",
    "efs",
    "cifs",
    "smbfs",
    "ocfs2",
    "gfs2",
    "none",
    "lustre",
    "glusterfs",
    "ceph",
    "tmpfs",
    "overlay",
    "overlayfs",
    "rozofs",
    "zfs",
    "cvfs",
    "btrfs",
    "f2fs",
];

/// How long SIGKILLed holders get to die before stop gives up.
const KILL_WAIT: Duration = Duration::from_secs(2);
/// Pause between unmount attempts while the mount is busy.
const RETRY: Duration = Duration::from_millis(50);

/// A configured filesystem resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    device: String,
    directory: PathBuf,
    fstype: String,
    options: String,
    flags: MsFlags,
    data: Option<String>,
    read_only: bool,
    fsck: Fsck,
    fsck_timeout: Duration,
    kill_timeout: Duration,
    create_directory: bool,
    check_io: bool,
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" | "y" => Some(true),
        "false" | "no" | "off" | "0" | "n" => Some(false),
        _ => None,
    }
}

/// `options` (as for `mount -o`) → mount(2) flags, filesystem data, read-only.
fn parse_options(s: &str) -> Result<(MsFlags, Option<String>, bool), String> {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in s.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let (set, clear) = match o {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "iversion" => (MsFlags::MS_I_VERSION, MsFlags::empty()),
            "noiversion" => (MsFlags::empty(), MsFlags::MS_I_VERSION),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            // mount(8)'s own words, meaningless to the kernel
            "defaults" | "auto" | "noauto" | "user" | "nouser" | "users" | "owner" | "group"
            | "nofail" | "_netdev" => continue,
            _ if o.starts_with("x-") || o.starts_with("comment=") => continue,
            "bind" | "rbind" | "move" | "remount" | "shared" | "rshared" | "private"
            | "rprivate" | "slave" | "rslave" | "unbindable" | "runbindable" | "loop" => {
                return Err(format!(
                    "`{o}` is not supported by the built-in type (use ocf:heartbeat:Filesystem)"
                ));
            }
            _ if o.starts_with("loop=") || o.starts_with("offset=") => {
                return Err(format!(
                    "`{o}` needs mount(8)'s loop setup: not supported by the built-in type"
                ));
            }
            _ => {
                data.push(o);
                continue;
            }
        };
        flags = (flags | set) & !clear;
    }
    let ro = flags.contains(MsFlags::MS_RDONLY);
    Ok((flags, (!data.is_empty()).then(|| data.join(",")), ro))
}

/// Whether `p` is `dir` or below it, component-wise.
fn under(p: &Path, dir: &Path) -> bool {
    p.starts_with(dir)
}

/// How the device and directory stand in mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// The device is the visible mount at the directory.
    Mounted(MountInfo),
    /// The device is mounted at the directory, under another mount.
    Covered { top: MountInfo },
    /// The device is not at the directory; `at_dir` is what is there
    /// instead, `elsewhere` where the device is mounted.
    NotHere {
        at_dir: Option<MountInfo>,
        elsewhere: Vec<PathBuf>,
    },
}

/// What identifies the device's mounts: its device number when the node
/// exists, else the source string as configured or resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DevId {
    numbers: Option<(u32, u32)>,
    names: Vec<String>,
}

impl DevId {
    fn matches(&self, m: &MountInfo) -> bool {
        match self.numbers {
            Some(n) => m.dev() == n,
            None => self.names.contains(&m.source),
        }
    }
}

fn classify(mounts: &[MountInfo], dir: &Path, id: &DevId) -> State {
    let top = mountinfo::top_at(mounts, dir);
    if let Some(top) = top {
        if id.matches(top) {
            return State::Mounted(top.clone());
        }
        if mounts.iter().any(|m| m.mount_point == dir && id.matches(m)) {
            return State::Covered { top: top.clone() };
        }
    }
    let mut elsewhere: Vec<PathBuf> = mounts
        .iter()
        .filter(|m| id.matches(m) && m.mount_point != dir)
        .map(|m| m.mount_point.clone())
        .collect();
    elsewhere.dedup();
    State::NotHere {
        at_dir: top.cloned(),
        elsewhere,
    }
}

fn show(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn ok(reason: Option<String>) -> BuiltinResult {
    BuiltinResult {
        outcome: Outcome::Ok,
        reason,
    }
}

fn failed(class: FailClass, reason: impl Into<String>) -> BuiltinResult {
    BuiltinResult {
        outcome: Outcome::Failed(class),
        reason: Some(reason.into()),
    }
}

fn not_running(reason: impl Into<String>) -> BuiltinResult {
    BuiltinResult {
        outcome: Outcome::NotRunning,
        reason: Some(reason.into()),
    }
}

fn read_mounts() -> Result<Vec<MountInfo>, BuiltinResult> {
    mountinfo::read().map_err(|e| failed(FailClass::Soft, e.to_string()))
}

impl Filesystem {
    /// Validates the parameters; every problem is reported, each naming its
    /// parameter (unknown names too, so a typo does not silently fall back
    /// to a default).
    pub fn from_params(params: &BTreeMap<String, String>) -> Result<Filesystem, Vec<ParamError>> {
        let mut errs = Vec::new();
        let mut err = |p: &str, m: String| {
            errs.push(ParamError {
                param: p.into(),
                message: m,
            })
        };
        for k in params.keys() {
            if !PARAMS.contains(&k.as_str()) {
                err(
                    k,
                    format!("unknown parameter (known: {})", PARAMS.join(", ")),
                );
            }
        }
        let get = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());

        let device = match get("device") {
            None => {
                err("device", "required".into());
                String::new()
            }
            Some(d) => {
                let tagged = ["UUID=", "LABEL="].iter().any(|t| {
                    d.strip_prefix(t)
                        .is_some_and(|r| !r.is_empty() && !r.contains('/'))
                });
                if !tagged && !d.starts_with('/') {
                    err(
                        "device",
                        format!("`{d}` is neither an absolute path nor UUID=/LABEL="),
                    );
                }
                d.to_string()
            }
        };
        let directory = match get("directory") {
            None => {
                err("directory", "required".into());
                PathBuf::new()
            }
            Some(d) => {
                let p = Path::new(d);
                let clean: PathBuf = p.components().collect();
                if !p.is_absolute() {
                    err("directory", format!("`{d}` is not an absolute path"));
                } else if clean == Path::new("/") {
                    err("directory", "`/` cannot be a mount point here".into());
                } else if p.components().any(|c| matches!(c, Component::ParentDir)) {
                    err("directory", format!("`{d}` contains `..`"));
                }
                clean
            }
        };
        let fstype = match get("fstype") {
            None => {
                err(
                    "fstype",
                    "required (mount(2) does not probe the type)".into(),
                );
                String::new()
            }
            Some(t) if t.contains(|c: char| c.is_whitespace() || c == ',' || c == '/') => {
                err("fstype", format!("`{t}` is not a filesystem type name"));
                String::new()
            }
            Some(t) => t.to_string(),
        };
        let options = get("options").unwrap_or("").to_string();
        let (flags, data, read_only) = parse_options(&options).unwrap_or_else(|m| {
            err("options", m);
            (MsFlags::empty(), None, false)
        });
        let fsck = match get("fsck").unwrap_or("auto") {
            "auto" => Fsck::Auto,
            "always" | "force" => Fsck::Always,
            "never" | "no" => Fsck::Never,
            v => {
                err("fsck", format!("`{v}`: want auto, always or never"));
                Fsck::Auto
            }
        };
        let mut duration = |k: &str, default: Duration| match get(k) {
            None => default,
            Some(v) => match humantime::parse_duration(v) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    err(k, "must be more than zero".into());
                    default
                }
                Err(e) => {
                    err(k, format!("`{v}`: {e} (a duration such as \"5s\")"));
                    default
                }
            },
        };
        let fsck_timeout = duration("fsck_timeout", Duration::from_secs(600));
        let kill_timeout = duration("kill_timeout", Duration::from_secs(5));
        let mut boolean = |k: &str, default: bool| match get(k) {
            None => default,
            Some(v) => parse_bool(v).unwrap_or_else(|| {
                err(k, format!("`{v}` is not a boolean (true/false)"));
                default
            }),
        };
        let create_directory = boolean("create_directory", true);
        let check_io = boolean("check_io", false);
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Filesystem {
            device,
            directory,
            fstype,
            options,
            flags,
            data,
            read_only,
            fsck,
            fsck_timeout,
            kill_timeout,
            create_directory,
            check_io,
        })
    }

    /// The device as configured.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The mount point as configured.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The filesystem type.
    pub fn fstype(&self) -> &str {
        &self.fstype
    }

    /// The fsck policy.
    pub fn fsck(&self) -> Fsck {
        self.fsck
    }

    /// Grace between SIGTERM and SIGKILL for holders on stop.
    pub fn kill_timeout(&self) -> Duration {
        self.kill_timeout
    }

    /// Whether fsck runs before a mount of this type under this policy.
    pub fn fsck_needed(&self) -> bool {
        match self.fsck {
            Fsck::Always => true,
            Fsck::Never => false,
            Fsck::Auto => !NO_FSCK.contains(&self.fstype.as_str()),
        }
    }

    /// Runs one operation. Blocking: the daemon calls it on a blocking
    /// thread with its own timeout.
    pub fn run(&self, op: Op) -> BuiltinResult {
        match op {
            Op::Start => self.start(),
            Op::Stop => self.stop(),
            Op::Monitor => self.monitor(),
            Op::Promote | Op::Demote => failed(
                FailClass::Fatal,
                format!("{op} is not supported by the built-in filesystem type"),
            ),
        }
    }

    /// `UUID=`/`LABEL=` → the udev link.
    fn device_path(&self) -> PathBuf {
        if let Some(u) = self.device.strip_prefix("UUID=") {
            Path::new("/dev/disk/by-uuid").join(u)
        } else if let Some(l) = self.device.strip_prefix("LABEL=") {
            Path::new("/dev/disk/by-label").join(l)
        } else {
            PathBuf::from(&self.device)
        }
    }

    /// The block device node with symlinks resolved, and its numbers.
    fn resolve(&self) -> Result<(PathBuf, (u32, u32)), String> {
        let p = self.device_path();
        let real = std::fs::canonicalize(&p).map_err(|e| format!("device {}: {e}", p.display()))?;
        let md = std::fs::metadata(&real).map_err(|e| format!("device {}: {e}", real.display()))?;
        if !md.file_type().is_block_device() {
            return Err(format!("device {} is not a block device", real.display()));
        }
        let rdev = md.rdev();
        let n = (
            u32::try_from(nix::sys::stat::major(rdev)).unwrap_or(u32::MAX),
            u32::try_from(nix::sys::stat::minor(rdev)).unwrap_or(u32::MAX),
        );
        Ok((real, n))
    }

    /// The device identity for matching mounts, even when the node is gone.
    fn dev_id(&self) -> DevId {
        match self.resolve() {
            Ok((real, n)) => DevId {
                numbers: Some(n),
                names: vec![self.device.clone(), real.display().to_string()],
            },
            Err(_) => DevId {
                numbers: None,
                names: vec![
                    self.device.clone(),
                    self.device_path().display().to_string(),
                ],
            },
        }
    }

    /// The mount point as the kernel shows it: symlinks resolved when it
    /// exists.
    fn real_dir(&self) -> PathBuf {
        std::fs::canonicalize(&self.directory).unwrap_or_else(|_| self.directory.clone())
    }

    /// Judges a mount of our device at the directory.
    fn judge(&self, m: &MountInfo, dir: &Path, note: Option<String>) -> BuiltinResult {
        if m.shut_down() {
            return failed(
                FailClass::Soft,
                format!(
                    "the filesystem at {} was shut down (I/O fails)",
                    dir.display()
                ),
            );
        }
        if !self.read_only && m.read_only() {
            let why = if m.mount_options.iter().any(|o| o == "ro") {
                "the mount"
            } else {
                "the superblock: emergency read-only after an error, errors=remount-ro"
            };
            return failed(
                FailClass::Soft,
                format!(
                    "{} is read-only ({why}) but should be read-write",
                    dir.display()
                ),
            );
        }
        if self.read_only && !m.read_only() {
            return failed(
                FailClass::Soft,
                format!("{} is read-write but options say ro", dir.display()),
            );
        }
        if self.check_io {
            let read = std::fs::read_dir(dir).and_then(|mut d| d.next().transpose());
            if let Err(e) = read {
                return failed(FailClass::Soft, format!("reading {}: {e}", dir.display()));
            }
        }
        ok(note)
    }

    fn monitor(&self) -> BuiltinResult {
        let mounts = match read_mounts() {
            Ok(m) => m,
            Err(r) => return r,
        };
        let dir = self.real_dir();
        match classify(&mounts, &dir, &self.dev_id()) {
            State::Mounted(m) => self.judge(&m, &dir, None),
            State::Covered { top } => failed(
                FailClass::Soft,
                format!(
                    "{} is covered by another mount of {} ({})",
                    dir.display(),
                    top.source,
                    top.fstype
                ),
            ),
            State::NotHere { elsewhere, .. } if !elsewhere.is_empty() => failed(
                FailClass::Soft,
                format!(
                    "{} is mounted at {}, not at {}",
                    self.device,
                    show(&elsewhere),
                    dir.display()
                ),
            ),
            State::NotHere {
                at_dir: Some(other),
                ..
            } => not_running(format!(
                "{} is not mounted ({} holds {} from {})",
                self.device,
                dir.display(),
                other.fstype,
                other.source
            )),
            State::NotHere { at_dir: None, .. } => not_running(format!(
                "{} is not mounted at {}",
                self.device,
                dir.display()
            )),
        }
    }

    fn start(&self) -> BuiltinResult {
        let (dev, numbers) = match self.resolve() {
            Ok(r) => r,
            Err(e) => return failed(FailClass::Hard, e),
        };
        let id = DevId {
            numbers: Some(numbers),
            names: vec![],
        };
        let mounts = match read_mounts() {
            Ok(m) => m,
            Err(r) => return r,
        };
        let mut dir = self.real_dir();
        match classify(&mounts, &dir, &id) {
            State::Mounted(m) => {
                return self.judge(
                    &m,
                    &dir,
                    Some(format!("already mounted at {}", dir.display())),
                );
            }
            State::Covered { top } => {
                return failed(
                    FailClass::Hard,
                    format!(
                        "{} is mounted at {} under {}",
                        self.device,
                        dir.display(),
                        top.source
                    ),
                );
            }
            State::NotHere {
                at_dir: Some(other),
                ..
            } => {
                return failed(
                    FailClass::Hard,
                    format!(
                        "{} already holds {} from {}",
                        dir.display(),
                        other.fstype,
                        other.source
                    ),
                );
            }
            State::NotHere { elsewhere, .. } if !elsewhere.is_empty() => {
                return failed(
                    FailClass::Hard,
                    format!(
                        "{} is already mounted at {}: refusing a second mount",
                        self.device,
                        show(&elsewhere)
                    ),
                );
            }
            State::NotHere { .. } => {}
        }
        let below: Vec<PathBuf> = mounts
            .iter()
            .filter(|m| under(&m.mount_point, &dir) && m.mount_point != dir)
            .map(|m| m.mount_point.clone())
            .collect();
        if !below.is_empty() {
            return failed(
                FailClass::Hard,
                format!(
                    "mounts below {} would be hidden: {}",
                    dir.display(),
                    show(&below)
                ),
            );
        }
        match std::fs::metadata(&dir) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                return failed(
                    FailClass::Hard,
                    format!("{} is not a directory", dir.display()),
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.create_directory => {
                if let Err(e) = std::fs::create_dir_all(&dir) {
                    return failed(FailClass::Hard, format!("creating {}: {e}", dir.display()));
                }
                dir = self.real_dir();
            }
            Err(e) => return failed(FailClass::Hard, format!("{}: {e}", dir.display())),
        }
        if self.fsck_needed() {
            if let Err(r) = self.run_fsck(&dev) {
                return r;
            }
        }
        let mounted = nix::mount::mount(
            Some(&dev),
            &dir,
            Some(self.fstype.as_str()),
            self.flags,
            self.data.as_deref(),
        );
        if let Err(e) = mounted {
            let class = match e {
                Errno::ENODEV | Errno::ENOTBLK | Errno::ENXIO | Errno::ENOENT | Errno::EBUSY => {
                    FailClass::Hard
                }
                _ => FailClass::Soft,
            };
            let hint = match e {
                Errno::ENODEV => " (filesystem type unknown to the kernel)",
                Errno::EINVAL => " (bad superblock or options)",
                Errno::EMEDIUMTYPE | Errno::EROFS | Errno::EACCES => {
                    " (device read-only: DRBD Secondary?)"
                }
                Errno::EBUSY => " (device in use)",
                _ => "",
            };
            return failed(
                class,
                format!(
                    "mount {} on {} ({}{}): {e}{hint}",
                    dev.display(),
                    dir.display(),
                    self.fstype,
                    if self.options.is_empty() {
                        String::new()
                    } else {
                        format!(", {}", self.options)
                    }
                ),
            );
        }
        let mounts = match read_mounts() {
            Ok(m) => m,
            Err(r) => return r,
        };
        match classify(&mounts, &dir, &id) {
            State::Mounted(m) => self.judge(&m, &dir, None),
            other => failed(
                FailClass::Soft,
                format!(
                    "mount(2) succeeded but mountinfo shows {other:?} at {}",
                    dir.display()
                ),
            ),
        }
    }

    /// `fsck -t TYPE -a DEVICE` in its own process group with a clean
    /// environment and captured output, killed after `fsck_timeout`.
    fn run_fsck(&self, dev: &Path) -> Result<(), BuiltinResult> {
        let mut child = Command::new("fsck")
            .args(["-t", &self.fstype, "-a"])
            .arg(dev)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| failed(FailClass::Hard, format!("cannot run fsck: {e}")))?;
        let readers: Vec<_> = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .map(|mut r| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                buf
            })
        })
        .collect();
        let t0 = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if t0.elapsed() >= self.fsck_timeout => {
                    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
                    let _ = nix::sys::signal::killpg(pgid, Signal::SIGKILL);
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    return Err(failed(FailClass::Soft, format!("waiting for fsck: {e}")));
                }
            }
        };
        let mut out = Vec::new();
        for r in readers {
            out.extend(r.join().unwrap_or_default());
        }
        let text = String::from_utf8_lossy(&out);
        let tail: String = {
            let t = text.trim();
            let start = t.char_indices().rev().nth(400).map_or(0, |(i, _)| i);
            t[start..].replace('\n', " | ")
        };
        match status.map(|s| s.code()) {
            None => Err(failed(
                FailClass::Hard,
                format!(
                    "fsck of {} still running after {:?}: killed",
                    dev.display(),
                    self.fsck_timeout
                ),
            )),
            Some(Some(c)) if c < 4 => Ok(()),
            Some(c) => Err(failed(
                FailClass::Hard,
                format!(
                    "fsck -a {} failed (exit {}): {tail}",
                    dev.display(),
                    c.map_or("by signal".to_string(), |c| c.to_string())
                ),
            )),
        }
    }

    fn stop(&self) -> BuiltinResult {
        let id = self.dev_id();
        let dir = self.real_dir();
        let mut signalled: BTreeSet<i32> = BTreeSet::new();
        let mut term_at: Option<Instant> = None;
        let mut kill_at: Option<Instant> = None;
        let mut unmounted = 0u32;
        let mut einval = 0u32;
        loop {
            if unmounted > 16 || einval > 3 {
                return failed(
                    FailClass::Soft,
                    format!(
                        "{} does not go away after {unmounted} unmounts",
                        dir.display()
                    ),
                );
            }
            let mounts = match read_mounts() {
                Ok(m) => m,
                Err(r) => return r,
            };
            match classify(&mounts, &dir, &id) {
                State::NotHere { elsewhere, .. } => {
                    if !elsewhere.is_empty() {
                        return failed(
                            FailClass::Soft,
                            format!(
                                "{} is still mounted at {}: the filesystem stays live on this node",
                                self.device,
                                show(&elsewhere)
                            ),
                        );
                    }
                    return ok(
                        (unmounted == 0).then(|| format!("{} was not mounted", dir.display()))
                    );
                }
                State::Covered { top } => {
                    return failed(
                        FailClass::Soft,
                        format!(
                            "{} is covered by a mount of {}: not unmounting what is not ours",
                            dir.display(),
                            top.source
                        ),
                    );
                }
                State::Mounted(_) => {}
            }
            // mounts below the directory first, deepest first
            let mut below: Vec<&MountInfo> = mounts
                .iter()
                .filter(|m| under(&m.mount_point, &dir) && m.mount_point != dir)
                .collect();
            below.sort_by_key(|m| std::cmp::Reverse(m.mount_point.components().count()));
            for m in below {
                let _ = nix::mount::umount2(&m.mount_point, MntFlags::UMOUNT_NOFOLLOW);
            }
            match nix::mount::umount2(&dir, MntFlags::UMOUNT_NOFOLLOW) {
                Ok(()) => {
                    unmounted += 1;
                    continue; // verify (and unmount a stacked second mount, if any)
                }
                Err(Errno::EBUSY) => {}
                Err(Errno::EINVAL) => {
                    // raced with someone else's unmount: re-read
                    einval += 1;
                    continue;
                }
                Err(e) => {
                    return failed(FailClass::Soft, format!("umount {}: {e}", dir.display()));
                }
            }
            // busy: find who holds it
            let holders = holders(&dir);
            let now = Instant::now();
            if term_at.is_none() {
                term_at = Some(now);
            }
            let since_term = now - term_at.unwrap_or(now);
            if kill_at.is_none() && since_term >= self.kill_timeout {
                kill_at = Some(now);
            }
            let sig = if kill_at.is_some() {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            };
            for &pid in holders.keys() {
                // SIGTERM once per process; SIGKILL on every round
                if sig == Signal::SIGKILL || signalled.insert(pid) {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
                }
            }
            if kill_at.is_some_and(|k| now - k >= KILL_WAIT) {
                let reason = if holders.is_empty() {
                    format!(
                        "{} stays busy and no process was found holding it (a loop device or swap \
                         file on it, an NFS export, or a process in another mount namespace?)",
                        dir.display()
                    )
                } else {
                    let list: Vec<String> = holders
                        .iter()
                        .map(|(p, what)| format!("{p} ({what})"))
                        .collect();
                    format!(
                        "{} stays busy after SIGTERM and SIGKILL; still held by PID {}",
                        dir.display(),
                        list.join(", ")
                    )
                };
                return failed(FailClass::Soft, reason);
            }
            std::thread::sleep(RETRY);
        }
    }
}

/// The processes (other than this one) using paths at or under `dir`:
/// working directory, root, executable, open files and mapped files, with
/// what they hold. A process in another mount namespace sees other paths
/// and is not found here.
pub fn holders(dir: &Path) -> BTreeMap<i32, String> {
    let me = std::process::id();
    let mut found = BTreeMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let base = e.path();
        let mut what: Option<String> = None;
        for link in ["cwd", "root", "exe"] {
            if std::fs::read_link(base.join(link)).is_ok_and(|p| under(&p, dir)) {
                what = Some(link.to_string());
                break;
            }
        }
        if what.is_none() {
            if let Ok(fds) = std::fs::read_dir(base.join("fd")) {
                what = fds.flatten().find_map(|fd| {
                    std::fs::read_link(fd.path())
                        .ok()
                        .filter(|p| under(p, dir))
                        .map(|p| format!("fd {}", p.display()))
                });
            }
        }
        if what.is_none() {
            if let Ok(maps) = std::fs::read_to_string(base.join("maps")) {
                what = maps.lines().find_map(|l| {
                    // address perms offset dev inode path (path may hold spaces)
                    let path = l.splitn(6, ' ').nth(5)?.trim_start();
                    under(Path::new(path), dir).then(|| format!("maps {path}"))
                });
            }
        }
        if let (Some(w), Ok(pid)) = (what, i32::try_from(pid)) {
            found.insert(pid, w);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("device", "/dev/drbd0"),
            ("directory", "/srv/data/"),
            ("fstype", "ext4"),
        ]
    }

    #[test]
    fn defaults() {
        let fs = Filesystem::from_params(&params(&base())).unwrap();
        assert_eq!(fs.directory(), Path::new("/srv/data"));
        assert_eq!(fs.fsck(), Fsck::Auto);
        assert!(
            !fs.fsck_needed(),
            "ext4 replays its journal: no fsck under auto"
        );
        assert_eq!(fs.kill_timeout(), Duration::from_secs(5));
        assert!(fs.create_directory);
        assert!(!fs.check_io);
        assert_eq!(fs.flags, MsFlags::empty());
        assert_eq!(fs.data, None);
    }

    #[test]
    fn fsck_policy_follows_the_agent() {
        let with = |t: &str, p: &str| {
            let mut kv = base();
            kv.retain(|(k, _)| *k != "fstype");
            kv.push(("fstype", t));
            kv.push(("fsck", p));
            Filesystem::from_params(&params(&kv)).unwrap().fsck_needed()
        };
        assert!(with("ext2", "auto"));
        assert!(!with("ext3", "auto"));
        assert!(!with("xfs", "auto"));
        assert!(with("xfs", "always"));
        assert!(with("ext4", "force"));
        assert!(!with("ext2", "never"));
        assert!(!with("ext2", "no"));
    }

    #[test]
    fn options_become_flags_and_data() {
        let (f, d, ro) =
            parse_options("defaults,ro,noatime,nodev,nosuid,noexec,sync,errors=remount-ro,_netdev,x-systemd.foo,data=ordered")
                .unwrap();
        assert!(ro);
        assert_eq!(
            f,
            MsFlags::MS_RDONLY
                | MsFlags::MS_NOATIME
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NOEXEC
                | MsFlags::MS_SYNCHRONOUS
        );
        assert_eq!(d.as_deref(), Some("errors=remount-ro,data=ordered"));
        // later words win, like mount(8)
        let (f, d, ro) = parse_options("ro,rw,noexec,exec,,").unwrap();
        assert!(!ro);
        assert_eq!(f, MsFlags::empty());
        assert_eq!(d, None);
        assert!(parse_options("bind").unwrap_err().contains("bind"));
        assert!(
            parse_options("loop=/dev/loop0")
                .unwrap_err()
                .contains("loop")
        );
    }

    #[test]
    fn bad_params_name_the_param() {
        let e = Filesystem::from_params(&params(&[
            ("device", "drbd0"),
            ("directory", "/"),
            ("options", "remount"),
            ("fsck", "sometimes"),
            ("kill_timeout", "5"),
            ("fsck_timeout", "0s"),
            ("create_directory", "perhaps"),
            ("check_io", "x"),
            ("fs_type", "ext4"),
        ]))
        .unwrap_err();
        let named: BTreeSet<&str> = e.iter().map(|e| e.param.as_str()).collect();
        assert_eq!(
            named,
            [
                "device",
                "directory",
                "fstype",
                "options",
                "fsck",
                "kill_timeout",
                "fsck_timeout",
                "create_directory",
                "check_io",
                "fs_type"
            ]
            .into_iter()
            .collect(),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|e| e.to_string().starts_with("fstype: required"))
        );
        assert!(
            e.iter()
                .any(|e| e.to_string().starts_with("fs_type: unknown parameter"))
        );
        // missing device and directory; a relative directory; `..`
        let e = Filesystem::from_params(&params(&[("fstype", "ext4")])).unwrap_err();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].to_string(), "device: required");
        let mut kv = base();
        kv[1] = ("directory", "srv");
        assert_eq!(
            Filesystem::from_params(&params(&kv)).unwrap_err()[0].param,
            "directory"
        );
        kv[1] = ("directory", "/srv/../etc");
        assert_eq!(
            Filesystem::from_params(&params(&kv)).unwrap_err()[0].param,
            "directory"
        );
        // tags are accepted
        kv[1] = ("directory", "/srv");
        kv[0] = ("device", "UUID=0f3c-11");
        assert!(Filesystem::from_params(&params(&kv)).is_ok());
        kv[0] = ("device", "LABEL=");
        assert_eq!(
            Filesystem::from_params(&params(&kv)).unwrap_err()[0].param,
            "device"
        );
    }

    #[test]
    fn promote_and_demote_are_fatal() {
        let fs = Filesystem::from_params(&params(&base())).unwrap();
        for op in [Op::Promote, Op::Demote] {
            let r = fs.run(op);
            assert_eq!(r.outcome, Outcome::Failed(FailClass::Fatal));
            assert!(r.reason.unwrap().contains(&op.to_string()));
        }
    }

    #[test]
    fn classify_by_device_numbers() {
        let ms = mountinfo::parse(
            "\
27 1 254:0 / / rw - ext4 /dev/vda rw
40 27 147:0 / /srv/data rw - ext4 /dev/drbd0 rw
41 27 147:0 /x /export/x rw - ext4 /dev/drbd0 rw
42 27 147:1 / /srv/other rw - ext4 /dev/drbd1 rw
",
        )
        .unwrap();
        let id = DevId {
            numbers: Some((147, 0)),
            names: vec![],
        };
        assert!(matches!(
            classify(&ms, Path::new("/srv/data"), &id),
            State::Mounted(_)
        ));
        match classify(&ms, Path::new("/srv/other"), &id) {
            State::NotHere {
                at_dir: Some(m),
                elsewhere,
            } => {
                assert_eq!(m.source, "/dev/drbd1");
                assert_eq!(
                    elsewhere,
                    vec![PathBuf::from("/srv/data"), PathBuf::from("/export/x")]
                );
            }
            s => panic!("{s:?}"),
        }
        // by name when the device node is gone
        let id = DevId {
            numbers: None,
            names: vec!["/dev/drbd1".into()],
        };
        assert!(matches!(
            classify(&ms, Path::new("/srv/other"), &id),
            State::Mounted(_)
        ));
    }
}
