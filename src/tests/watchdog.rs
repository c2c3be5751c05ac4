//! Tests of `runtime/watchdog.rs`. The host has no watchdog device, so a
//! FIFO stands in for it: the test reads every byte the keeper writes (kicks,
//! then `V` on a clean close, then end of file). The exit paths run in a
//! child process (this test binary, re-run on one ignored test).

use std::io::Read;
use std::process::Command;
use std::sync::mpsc;

use super::*;

fn cfg(kick_ms: u64, stall_ms: u64) -> WatchdogConfig {
    WatchdogConfig {
        kick_interval: Duration::from_millis(kick_ms),
        stall_after: Duration::from_millis(stall_ms),
    }
}

/// A FIFO device stand-in: every byte read arrives on the channel; the
/// channel closes at end of file (the keeper closed its end).
struct FakeDevice {
    _dir: tempfile::TempDir,
    path: PathBuf,
    bytes: mpsc::Receiver<u8>,
}

fn fake_device() -> FakeDevice {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watchdog");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (tx, rx) = mpsc::channel();
    let p = path.clone();
    thread::spawn(move || {
        let mut f = File::open(&p).unwrap(); // blocks until the keeper opens
        let mut buf = [0u8; 256];
        loop {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    for &b in &buf[..n] {
                        if tx.send(b).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    FakeDevice {
        _dir: dir,
        path,
        bytes: rx,
    }
}

impl FakeDevice {
    /// Bytes that arrived so far.
    fn drain(&self) -> Vec<u8> {
        self.bytes.try_iter().collect()
    }
    /// Everything up to end of file (the keeper side closed).
    fn to_eof(&self) -> Vec<u8> {
        let mut v = Vec::new();
        loop {
            match self.bytes.recv_timeout(Duration::from_secs(10)) {
                Ok(b) => v.push(b),
                Err(mpsc::RecvTimeoutError::Disconnected) => return v,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("device never closed"),
            }
        }
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Bumps `live` every 5 ms until `stop` is set.
fn bumper(live: Liveness, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            live.bump();
            thread::sleep(Duration::from_millis(5));
        }
    })
}

#[test]
fn logic_kicks_while_counter_moves_and_latches_a_stall() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let mut l = KeeperLogic::new(Duration::from_millis(100), t0, 7);
    assert_eq!(l.step(ms(50), 7), KeeperStep::Kick);
    assert_eq!(l.step(ms(100), 7), KeeperStep::Kick); // exactly at the limit
    assert_eq!(l.step(ms(101), 8), KeeperStep::Kick); // moved just in time
    assert_eq!(l.step(ms(201), 8), KeeperStep::Kick);
    assert_eq!(l.step(ms(202), 8), KeeperStep::Stall);
    // latched: a counter that moves again does not re-arm
    assert_eq!(l.step(ms(203), 9), KeeperStep::Stalled);
    assert_eq!(l.step(ms(400), 10), KeeperStep::Stalled);
    // a counter that wraps still counts as moving
    let mut l = KeeperLogic::new(Duration::from_millis(10), t0, u64::MAX);
    assert_eq!(l.step(ms(10), 0), KeeperStep::Kick);
    assert_eq!(l.step(ms(20), 0), KeeperStep::Kick);
    assert_eq!(l.step(ms(21), 0), KeeperStep::Stall);
}

#[test]
fn clean_close_kicks_then_writes_magic_close() {
    let dev = fake_device();
    let wd = Watchdog::open(&dev.path, cfg(10, 2000), OnStall::StopKicking).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let b = bumper(wd.liveness(), stop.clone());
    wait_for("5 kicks", || wd.kicks() >= 5);
    assert!(!wd.is_halted());
    wd.close().unwrap();
    stop.store(true, Ordering::SeqCst);
    b.join().unwrap();
    let bytes = dev.to_eof();
    assert!(bytes.len() >= 6, "{bytes:?}");
    let (last, kicks) = bytes.split_last().unwrap();
    assert_eq!(*last, b'V', "magic close must be the last byte");
    assert!(kicks.iter().all(|&b| b == KICK[0]), "{kicks:?}");
}

#[test]
fn kicks_stop_when_the_main_loop_stalls() {
    let dev = fake_device();
    let wd = Watchdog::open(&dev.path, cfg(10, 400), OnStall::StopKicking).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let b = bumper(wd.liveness(), stop.clone());
    // alive: kicks keep coming, well past the stall threshold
    thread::sleep(Duration::from_millis(1000));
    assert!(!wd.is_halted(), "stalled while the loop was bumping");
    let alive_kicks = dev.drain().len();
    assert!(alive_kicks >= 5, "only {alive_kicks} kicks in 1 s");
    // the loop freezes
    stop.store(true, Ordering::SeqCst);
    b.join().unwrap();
    wait_for("the stall", || wd.is_halted());
    assert!(wd.is_stalled());
    let at_stall = wd.kicks();
    // after the stall: no more kicks, also when the loop comes back
    wd.liveness().bump();
    thread::sleep(Duration::from_millis(300));
    wd.liveness().bump();
    thread::sleep(Duration::from_millis(100));
    assert_eq!(wd.kicks(), at_stall, "kicked after the stall");
    // close writes no magic close: the device stays armed
    let e = wd.close().unwrap_err();
    assert!(matches!(e, WatchdogError::Halted(_)), "{e}");
    let after = dev.drain();
    assert_eq!(
        (alive_kicks + after.len()) as u64,
        at_stall,
        "bytes on the device differ from kicks counted"
    );
    assert!(!after.contains(&b'V'), "magic close written after a stall");
}

#[test]
fn halt_for_self_fence_stops_kicks_without_magic_close() {
    let dev = fake_device();
    let wd = Watchdog::open(&dev.path, cfg(10, 5000), OnStall::StopKicking).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let b = bumper(wd.liveness(), stop.clone());
    wait_for("3 kicks", || wd.kicks() >= 3);
    assert_eq!(wd.self_fence().mode(), SelfFenceMode::Watchdog);
    wd.halt();
    thread::sleep(Duration::from_millis(50)); // a kick in flight may land
    let k = wd.kicks();
    thread::sleep(Duration::from_millis(200));
    assert_eq!(wd.kicks(), k, "kicked after halt");
    assert!(!wd.is_stalled());
    let e = wd.close().unwrap_err();
    assert!(e.to_string().contains("halted for self-fence"), "{e}");
    stop.store(true, Ordering::SeqCst);
    b.join().unwrap();
    assert!(!dev.drain().contains(&b'V'));
}

#[test]
fn regular_file_device_and_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wd");
    File::create(&path).unwrap();
    let wd = Watchdog::open(&path, cfg(5, 1000), OnStall::StopKicking).unwrap();
    let live = wd.liveness();
    wait_for("kicks", || {
        live.bump();
        wd.kicks() >= 10
    });
    wd.close().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.last(), Some(&b'V'));
    assert!(bytes.len() >= 11);
    let e = Watchdog::open(
        &dir.path().join("absent"),
        cfg(5, 1000),
        OnStall::StopKicking,
    )
    .unwrap_err();
    assert!(e.to_string().contains("absent"), "{e}");
    assert!(matches!(
        Watchdog::start(None, cfg(100, 50), OnStall::StopKicking),
        Err(WatchdogError::Config(_))
    ));
    assert!(matches!(
        Watchdog::start(None, cfg(0, 50), OnStall::StopKicking),
        Err(WatchdogError::Config(_))
    ));
}

/// Re-runs this test binary on one ignored test; returns its exit status
/// and output.
fn run_child(test: &str) -> (Option<i32>, String) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HAPAIR_WATCHDOG_CHILD", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

fn child_guard() {
    assert_eq!(
        std::env::var("HAPAIR_WATCHDOG_CHILD").as_deref(),
        Ok("1"),
        "only run as a child of its parent test"
    );
}

#[test]
#[ignore = "child process of stall_with_test_exit_ends_the_process"]
fn child_stall_exit() {
    child_guard();
    let wd = Watchdog::start(None, cfg(5, 50), OnStall::TestExit).unwrap();
    wd.liveness().bump();
    thread::sleep(Duration::from_secs(20));
    panic!("the keeper did not end the process");
}

#[test]
#[ignore = "child process of self_fence_test_exit_ends_the_process"]
fn child_fire_exit() {
    child_guard();
    SelfFence::test_exit().fire("lease lost");
}

#[test]
fn stall_with_test_exit_ends_the_process() {
    let (code, out) = run_child("runtime::watchdog::tests::child_stall_exit");
    assert_eq!(code, Some(TEST_EXIT_STATUS), "{out}");
}

#[test]
fn self_fence_test_exit_ends_the_process() {
    let (code, out) = run_child("runtime::watchdog::tests::child_fire_exit");
    assert_eq!(code, Some(TEST_EXIT_STATUS), "{out}");
    assert_eq!(SelfFence::reboot().mode(), SelfFenceMode::Reboot);
}
