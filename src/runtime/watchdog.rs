//! Self-fencing: the watchdog keeper and the ways a node kills itself.
//!
//! The lease is the last line of defence (architecture.md, "Fencing"): a
//! primary that cannot renew in time stops its stack and, if that does not
//! finish, reboots itself. This module carries out that reboot and guards
//! against the daemon itself freezing.
//!
//! # The keeper
//!
//! [`Watchdog`] kicks a watchdog device (`/dev/watchdog`, softdog in the lab)
//! from its own OS thread every `kick_interval`, but only while the daemon's
//! main loop proves it is alive by bumping a [`Liveness`] counter. When the
//! counter has not moved for longer than `stall_after`, the keeper stops
//! kicking for good (the stall is latched: a loop that wakes up later does
//! not re-arm it, because the peer may already have taken over) and carries
//! out its [`OnStall`] action. With [`OnStall::StopKicking`] the device
//! resets the machine when its own timeout runs out; [`OnStall::Reboot`]
//! reboots at once. This is the daemon-freeze protection the simulator
//! assumes: freeze-to-reset is at most `stall_after + kick_interval` plus
//! either the device timeout or the reboot.
//!
//! The device timeout cannot be set from here (`WDIOC_SETTIMEOUT` is an
//! ioctl, and this crate forbids unsafe); configure it outside (softdog's
//! `soft_margin=` module parameter, or the driver's `timeout=`/`heartbeat=`),
//! and keep it above `kick_interval` plus scheduling slack.
//!
//! On a clean shutdown [`Watchdog::close`] writes the magic close character
//! `V` before closing, so the device is disarmed (unless the driver was built
//! or loaded with `nowayout`). Any other close leaves it running.
//!
//! # Firing
//!
//! [`SelfFence::fire`] never returns. Its modes:
//! - [`SelfFenceMode::Watchdog`]: stop kicking (no magic close) and call
//!   `reboot(2)` at once; if that fails the device still fires.
//! - [`SelfFenceMode::Reboot`]: `reboot(2)` with `RB_AUTOBOOT`, falling back
//!   to `b` on `/proc/sysrq-trigger`, then to aborting the process.
//! - [`SelfFenceMode::TestExit`]: log at error level and exit with status 99.
//!   For tests only.
//!
//! No mode calls `sync(2)` first, on purpose. A node that self-fences may
//! already have lost the lease; the peer may own the data by now. Its dirty
//! page cache holds writes to that data (the mounted filesystem, the DRBD or
//! shared-LUN device) that must not reach the disk after the peer took over:
//! on a shared LUN that is a second writer corrupting a filesystem mounted
//! elsewhere. `sync` can also block for as long as a sick device keeps it
//! (the very fault that often causes a self-fence), and the deadline is
//! what keeps the pair safe. What was not yet on disk when the lease was
//! lost is not acknowledged data the pair promised to keep (an application
//! that needs durability fsyncs and waits). `reboot(2)` itself does not sync;
//! the `reboot` command does, which is why we never run it.
//!
//! If every way fails (no `CAP_SYS_BOOT`, no procfs), the process aborts; the
//! unit file should then have `FailureAction=reboot-immediate` or a systemd
//! watchdog so the service manager finishes the job.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tracing::{error, warn};

/// The byte written to keep the device alive (anything but `V` works).
pub const KICK: &[u8] = b"\0";
/// The magic close character: written just before a clean close.
pub const MAGIC_CLOSE: &[u8] = b"V";
/// Exit status of [`SelfFenceMode::TestExit`].
pub const TEST_EXIT_STATUS: i32 = 99;

/// Errors of the watchdog keeper.
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    /// Opening the device failed.
    #[error("watchdog device {}: open: {source}", path.display())]
    Open {
        /// The device.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Starting the keeper thread failed.
    #[error("watchdog keeper thread: {0}")]
    Spawn(io::Error),
    /// The magic close could not be written: the device stays armed.
    #[error("watchdog magic close: {0} (the device stays armed)")]
    Close(io::Error),
    /// `close` after the keeper stopped kicking (stall or self-fence): no
    /// magic close was written and the device will fire, as intended.
    #[error("watchdog keeper had stopped kicking ({0}); the device stays armed")]
    Halted(&'static str),
    /// The configuration makes no sense.
    #[error("watchdog config: {0}")]
    Config(String),
    /// The keeper thread panicked.
    #[error("watchdog keeper thread panicked")]
    Panicked,
}

/// How the node kills itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfFenceMode {
    /// Stop kicking the watchdog device, then `reboot(2)` at once.
    Watchdog,
    /// `reboot(2)` (`RB_AUTOBOOT`), then sysrq `b`, then abort.
    Reboot,
    /// Log at error level and `exit(99)`: tests only.
    TestExit,
}

/// What the keeper does when the liveness counter stalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStall {
    /// Stop kicking only; the device resets the machine after its timeout.
    StopKicking,
    /// Stop kicking and reboot at once (the fast path; also the only
    /// protection when there is no device).
    Reboot,
    /// Stop kicking and exit(99): tests only.
    TestExit,
}

/// Timing of the keeper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogConfig {
    /// How often the keeper kicks (and looks at the liveness counter).
    pub kick_interval: Duration,
    /// How long the counter may stand still before the keeper gives up.
    pub stall_after: Duration,
}

impl WatchdogConfig {
    fn check(&self) -> Result<(), WatchdogError> {
        if self.kick_interval.is_zero() || self.stall_after < self.kick_interval {
            return Err(WatchdogError::Config(format!(
                "need 0 < kick_interval ({:?}) <= stall_after ({:?})",
                self.kick_interval, self.stall_after
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Shared {
    beat: AtomicU64,
    kicks: AtomicU64,
    halted: AtomicBool,
    stalled: AtomicBool,
    stop: AtomicBool,
}

/// The handle the daemon's main loop bumps to prove it is alive. Cheap to
/// clone; [`Liveness::bump`] is one atomic add.
#[derive(Debug, Clone)]
pub struct Liveness(Arc<Shared>);

impl Liveness {
    /// Proves liveness: call from the main loop every tick.
    pub fn bump(&self) {
        self.0.beat.fetch_add(1, Ordering::Relaxed);
    }
}

/// One observation of the keeper's pure decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeeperStep {
    /// The loop is alive: kick.
    Kick,
    /// The counter just stalled past the threshold: stop for good.
    Stall,
    /// Stalled before: keep not kicking.
    Stalled,
}

/// The keeper's decision, apart from threads and devices: the counter must
/// move at least every `stall_after`; once it has not, the answer stays no.
#[derive(Debug, Clone)]
pub struct KeeperLogic {
    stall_after: Duration,
    last_beat: u64,
    last_change: Instant,
    stalled: bool,
}

impl KeeperLogic {
    /// Starts watching at `now` with the counter at `beat`.
    pub fn new(stall_after: Duration, now: Instant, beat: u64) -> KeeperLogic {
        KeeperLogic {
            stall_after,
            last_beat: beat,
            last_change: now,
            stalled: false,
        }
    }

    /// Looks at the counter at `now`.
    pub fn step(&mut self, now: Instant, beat: u64) -> KeeperStep {
        if self.stalled {
            return KeeperStep::Stalled;
        }
        if beat != self.last_beat {
            self.last_beat = beat;
            self.last_change = now;
        }
        if now.saturating_duration_since(self.last_change) > self.stall_after {
            self.stalled = true;
            return KeeperStep::Stall;
        }
        KeeperStep::Kick
    }
}

/// The watchdog keeper: a thread that kicks the device while the main loop
/// bumps its [`Liveness`].
#[derive(Debug)]
pub struct Watchdog {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Option<File>>>,
}

impl Watchdog {
    /// Opens `path` (write-only; opening arms the device) and starts kicking.
    pub fn open(
        path: &Path,
        cfg: WatchdogConfig,
        on_stall: OnStall,
    ) -> Result<Watchdog, WatchdogError> {
        cfg.check()?;
        let dev = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| WatchdogError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Watchdog::start(Some(dev), cfg, on_stall)
    }

    /// Starts the keeper on an open device, or with none (`None`: liveness
    /// monitoring only, which makes sense with [`OnStall::Reboot`]).
    pub fn start(
        device: Option<File>,
        cfg: WatchdogConfig,
        on_stall: OnStall,
    ) -> Result<Watchdog, WatchdogError> {
        cfg.check()?;
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        let thread = thread::Builder::new()
            .name("hapair-watchdog".into())
            .spawn(move || keeper(device, cfg, on_stall, &sh))
            .map_err(WatchdogError::Spawn)?;
        Ok(Watchdog {
            shared,
            thread: Some(thread),
        })
    }

    /// The handle the main loop bumps.
    pub fn liveness(&self) -> Liveness {
        Liveness(self.shared.clone())
    }

    /// Kicks written so far.
    pub fn kicks(&self) -> u64 {
        self.shared.kicks.load(Ordering::Relaxed)
    }

    /// The keeper has stopped kicking (stall or [`Watchdog::halt`]).
    pub fn is_halted(&self) -> bool {
        self.shared.halted.load(Ordering::SeqCst)
    }

    /// The keeper stopped because the liveness counter stalled.
    pub fn is_stalled(&self) -> bool {
        self.shared.stalled.load(Ordering::SeqCst)
    }

    /// Stops kicking for good, without magic close: the device will fire.
    pub fn halt(&self) {
        self.shared.halted.store(true, Ordering::SeqCst);
    }

    /// A self-fence in [`SelfFenceMode::Watchdog`] mode tied to this keeper.
    pub fn self_fence(&self) -> SelfFence {
        SelfFence {
            mode: SelfFenceMode::Watchdog,
            keeper: Some(self.shared.clone()),
        }
    }

    /// Clean shutdown: stops the thread, writes the magic close and closes
    /// the device. If the keeper had halted, writes nothing and says so.
    pub fn close(mut self) -> Result<(), WatchdogError> {
        self.shared.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take().expect("close runs once");
        thread.thread().unpark();
        let dev = thread.join().map_err(|_| WatchdogError::Panicked)?;
        if self.is_halted() {
            let why = if self.is_stalled() {
                "the main loop stalled"
            } else {
                "halted for self-fence"
            };
            // keep the device open without magic close until we exit
            std::mem::forget(dev);
            return Err(WatchdogError::Halted(why));
        }
        if let Some(mut dev) = dev {
            dev.write_all(MAGIC_CLOSE).map_err(WatchdogError::Close)?;
        }
        Ok(())
    }
}

impl Drop for Watchdog {
    /// Dropped without `close`: stop the thread but write no magic close, so
    /// the device stays armed (a daemon that forgot to close cleanly is not
    /// known to be safe).
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.shared.stop.store(true, Ordering::SeqCst);
            t.thread().unpark();
            if let Ok(dev) = t.join() {
                std::mem::forget(dev);
            }
        }
    }
}

fn keeper(
    mut device: Option<File>,
    cfg: WatchdogConfig,
    on_stall: OnStall,
    sh: &Shared,
) -> Option<File> {
    let mut logic = KeeperLogic::new(
        cfg.stall_after,
        Instant::now(),
        sh.beat.load(Ordering::Relaxed),
    );
    let mut write_errors = 0u64;
    while !sh.stop.load(Ordering::SeqCst) {
        let step = logic.step(Instant::now(), sh.beat.load(Ordering::Relaxed));
        match step {
            KeeperStep::Kick if !sh.halted.load(Ordering::SeqCst) => {
                if let Some(dev) = device.as_mut() {
                    match dev.write_all(KICK) {
                        Ok(()) => {
                            sh.kicks.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            write_errors += 1;
                            if write_errors.is_power_of_two() {
                                warn!(cause = %e, errors = write_errors, "watchdog kick failed");
                            }
                        }
                    }
                } else {
                    sh.kicks.fetch_add(1, Ordering::Relaxed);
                }
            }
            KeeperStep::Kick | KeeperStep::Stalled => {}
            KeeperStep::Stall => {
                sh.stalled.store(true, Ordering::SeqCst);
                sh.halted.store(true, Ordering::SeqCst);
                error!(
                    stall_after = ?cfg.stall_after,
                    "main loop stopped proving liveness: watchdog kicks stopped"
                );
                match on_stall {
                    OnStall::StopKicking => {}
                    OnStall::Reboot => fire(SelfFenceMode::Reboot, "main loop stalled"),
                    OnStall::TestExit => fire(SelfFenceMode::TestExit, "main loop stalled"),
                }
            }
        }
        thread::park_timeout(cfg.kick_interval);
    }
    device
}

/// The self-fence the engine's `SelfFence` action triggers.
#[derive(Debug, Clone)]
pub struct SelfFence {
    mode: SelfFenceMode,
    keeper: Option<Arc<Shared>>,
}

impl SelfFence {
    /// `reboot(2)` without a watchdog device.
    pub fn reboot() -> SelfFence {
        SelfFence {
            mode: SelfFenceMode::Reboot,
            keeper: None,
        }
    }

    /// exit(99) instead of a reboot: tests only.
    pub fn test_exit() -> SelfFence {
        SelfFence {
            mode: SelfFenceMode::TestExit,
            keeper: None,
        }
    }

    /// The mode.
    pub fn mode(&self) -> SelfFenceMode {
        self.mode
    }

    /// Kills this node now. Never returns.
    pub fn fire(&self, reason: &str) -> ! {
        if let Some(k) = &self.keeper {
            k.halted.store(true, Ordering::SeqCst);
        }
        fire(self.mode, reason)
    }
}

fn fire(mode: SelfFenceMode, reason: &str) -> ! {
    match mode {
        SelfFenceMode::TestExit => {
            error!(reason, "SELF-FENCE (test mode): exiting with status 99");
            std::process::exit(TEST_EXIT_STATUS)
        }
        SelfFenceMode::Watchdog | SelfFenceMode::Reboot => {
            error!(reason, ?mode, "SELF-FENCE: rebooting now, without sync");
            // no sync: see the module documentation
            let e = match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT) {
                Err(e) => e,
                Ok(never) => match never {},
            };
            error!(cause = %e, "reboot(2) failed; trying sysrq-trigger");
            let sysrq = OpenOptions::new()
                .write(true)
                .open("/proc/sysrq-trigger")
                .and_then(|mut f| f.write_all(b"b"));
            if let Err(e) = sysrq {
                error!(cause = %e, "sysrq-trigger failed");
            }
            // sysrq `b` does not return on success; if we are still here,
            // give a watchdog device time to fire before aborting.
            if mode == SelfFenceMode::Watchdog {
                thread::sleep(Duration::from_secs(3600));
            }
            error!("every self-fence method failed: aborting");
            std::process::abort()
        }
    }
}

/// Whether the watchdog device `dev` (e.g. `/dev/watchdog1`) has
/// `nowayout` set, from `<sysfs>/class/watchdog/<name>/nowayout` (`sysfs`
/// is `/sys` outside tests): `None` when the kernel does not say (no such
/// file, or a device path that is a symlink to another name).
///
/// With `nowayout` the magic close of a clean stop cannot disarm the
/// device: the node resets one device timeout after hapair stops. Kernels
/// built with `CONFIG_WATCHDOG_NOWAYOUT=y` default every driver to it;
/// softdog takes `nowayout=0` as a module parameter.
pub fn nowayout(dev: &Path, sysfs: &Path) -> Option<bool> {
    let name = dev.file_name()?;
    let text =
        std::fs::read_to_string(sysfs.join("class/watchdog").join(name).join("nowayout")).ok()?;
    match text.trim() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// The words an operator needs when [`nowayout`] is set on `dev`.
pub fn nowayout_note(dev: &Path) -> String {
    format!(
        "{} has nowayout set: a clean stop of hapair cannot disarm it and the node resets one \
         watchdog timeout after hapair stops (load the driver with nowayout=0, e.g. \
         `modprobe softdog nowayout=0`, unless that is wanted)",
        dev.display()
    )
}

#[cfg(test)]
#[path = "../tests/watchdog.rs"]
mod tests;

#[test]
fn nowayout_from_sysfs() {
    let d = tempfile::tempdir().unwrap();
    let class = d.path().join("class/watchdog");
    for (name, v) in [
        ("watchdog0", "1\n"),
        ("watchdog1", "0\n"),
        ("watchdog2", "x"),
    ] {
        std::fs::create_dir_all(class.join(name)).unwrap();
        std::fs::write(class.join(name).join("nowayout"), v).unwrap();
    }
    let at = |n: &str| nowayout(&Path::new("/dev").join(n), d.path());
    assert_eq!(at("watchdog0"), Some(true));
    assert_eq!(at("watchdog1"), Some(false));
    assert_eq!(at("watchdog2"), None);
    assert_eq!(at("watchdog9"), None);
    assert_eq!(nowayout(Path::new("/"), d.path()), None);
    assert!(nowayout_note(Path::new("/dev/watchdog0")).contains("/dev/watchdog0 has nowayout set"));
}
