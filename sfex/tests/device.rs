//! The device engines and the holder on real loop devices (512 and 4096-byte
//! sectors), every case on both engines. Needs root and loop devices; fails
//! loudly without them.

// Test data arithmetic on small numbers; casts are checked by the assertions.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use sfex::dev::{BlockIo, DevError, Device, EngineKind};
use sfex::format::{self, LockBlock, NodeName, Status};
use sfex::holder::Holder;
use sfex::lease::{self, Event, Millis};
use sfex::ops;

#[path = "support/scratch_loop.rs"]
mod scratch_loop;
use scratch_loop::Loop;

const ENGINES: [EngineKind; 2] = [EngineKind::Sync, EngineKind::Uring];

fn pattern(block: usize, seed: u8) -> Vec<u8> {
    (0..block)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn blocks_round_trip_on_both_engines_and_sector_sizes() {
    for sector in [512u32, 4096] {
        let lo = Loop::new(sector, 1 << 20, false);
        for engine in ENGINES {
            let mut d = Device::open(lo.path(), engine).unwrap();
            assert_eq!(
                d.engine(),
                engine,
                "{engine} engine must run here (no fallback)"
            );
            assert_eq!(d.sector_size(), sector);
            assert_eq!(d.block_size(), sector);
            assert_eq!(d.size(), 1 << 20);
            let last = (1u64 << 20) / u64::from(sector) - 1;
            for (i, idx) in [0, 1, 7, last].into_iter().enumerate() {
                let data = pattern(sector as usize, i as u8 + engine as u8);
                d.write_block(idx, &data).unwrap();
                assert_eq!(d.read_block(idx).unwrap(), data, "{engine} block {idx}");
            }
            // what one engine wrote, the other reads
            let other = if engine == EngineKind::Sync {
                EngineKind::Uring
            } else {
                EngineKind::Sync
            };
            let mut d2 = Device::open_read_only(lo.path(), other).unwrap();
            assert_eq!(d2.read_block(7).unwrap(), d.read_block(7).unwrap());
            // past the end, wrong length, read-only handle: errors, nothing written
            let err = d.read_block(last + 1).unwrap_err();
            assert!(matches!(err, DevError::PastEnd { .. }), "{err}");
            let err = d.write_block(1, &[0u8; 100]).unwrap_err();
            assert!(matches!(err, DevError::BadLength { .. }), "{err}");
            let err = d2.write_block(1, &pattern(sector as usize, 9)).unwrap_err();
            assert!(matches!(err, DevError::ReadOnly { .. }), "{err}");
            assert_ne!(d.read_block(1).unwrap(), pattern(sector as usize, 9));
        }
    }
}

#[test]
fn read_only_loop_device_cannot_be_opened_for_writing() {
    let lo = Loop::new(512, 1 << 16, true);
    for engine in ENGINES {
        let err = Device::open(lo.path(), engine).unwrap_err();
        assert!(matches!(err, DevError::ReadOnlyDevice { .. }), "{err}");
        assert!(err.to_string().contains(&lo.path().display().to_string()));
        // but it can be inspected
        let mut d = Device::open_read_only(lo.path(), engine).unwrap();
        assert_eq!(d.read_block(0).unwrap(), vec![0u8; 512]);
    }
}

#[test]
fn sector_size_mismatch_is_refused() {
    // an image made on 512-byte sectors, seen through a 4096-byte loop device
    let lo = Loop::new(512, 1 << 16, false);
    let mut d = Device::open(lo.path(), EngineKind::Sync).unwrap();
    ops::init(&mut d, lo.path(), 1, false).unwrap();
    drop(d);
    let file = Command::new("losetup")
        .args(["-n", "-O", "BACK-FILE"])
        .arg(lo.path())
        .output()
        .unwrap();
    let back = String::from_utf8_lossy(&file.stdout).trim().to_string();
    let out = Command::new("losetup")
        .args(["--find", "--show", "--sector-size", "4096", &back])
        .output()
        .unwrap();
    let dev4k = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    for engine in ENGINES {
        let err = ops::open_checked(&dev4k, 1, engine, false).unwrap_err();
        assert!(
            err.to_string()
                .contains("sector_size is not the same as the blocksize"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 1);
    }
    let _ = Command::new("losetup").arg("-d").arg(&dev4k).status();
}

fn cfg(node: &str) -> lease::Config {
    lease::Config {
        node: NodeName::new(node).unwrap(),
        lock_timeout: Millis(1500),
        collision_timeout: Millis(100),
        monitor_interval: Millis(200),
        margin: Millis(150),
        retry_interval: Millis(50),
        wait: false,
        max_io: None,
    }
}

#[test]
fn holder_acquires_renews_and_releases_on_a_real_device() {
    for sector in [512u32, 4096] {
        let lo = Loop::new(sector, 1 << 20, false);
        let mut d = Device::open(lo.path(), EngineKind::Sync).unwrap();
        ops::init(&mut d, lo.path(), 2, false).unwrap();
        drop(d);
        for engine in ENGINES {
            let (dev, _) = ops::open_checked(lo.path(), 2, engine, true).unwrap();
            let h = Holder::new(Box::new(dev), 2, cfg("node-a")).unwrap();
            let rel = h.release_handle();
            let mut renewed = 0;
            let mut seen = Vec::new();
            let end = h.run(|ev, _| {
                seen.push(format!("{ev:?}"));
                if matches!(ev, Event::Renewed { .. }) {
                    renewed += 1;
                    // another reader sees our lock with the count just written
                    let mut r = Device::open_read_only(lo.path(), EngineKind::Sync).unwrap();
                    let lb = format::decode_lock(&r.read_block(2).unwrap()).unwrap();
                    if let Event::Renewed { count, .. } = ev {
                        assert_eq!(lb.count, *count);
                    }
                    assert!(lb.is_held_by(&NodeName::new("node-a").unwrap()));
                    if renewed == 3 {
                        rel.release();
                    }
                }
            });
            assert!(
                matches!(end, Event::Released { .. }),
                "{engine}: {end:?} after {seen:?}"
            );
            let mut r = Device::open_read_only(lo.path(), EngineKind::Sync).unwrap();
            let lb = format::decode_lock(&r.read_block(2).unwrap()).unwrap();
            assert_eq!(lb.status, Status::Unlocked);
            assert_eq!(lb.nodename.to_string(), "node-a");
            // lock 1 untouched
            assert_eq!(
                format::decode_lock(&r.read_block(1).unwrap()).unwrap(),
                LockBlock::fresh()
            );
        }
    }
}

#[test]
fn holder_loses_the_lease_when_another_node_overwrites_it() {
    let lo = Loop::new(512, 1 << 16, false);
    let mut d = Device::open(lo.path(), EngineKind::Sync).unwrap();
    ops::init(&mut d, lo.path(), 1, false).unwrap();
    drop(d);
    for engine in ENGINES {
        let (dev, _) = ops::open_checked(lo.path(), 1, engine, true).unwrap();
        let h = Holder::new(Box::new(dev), 1, cfg("node-a")).unwrap();
        let path = lo.path().to_owned();
        let start = Instant::now();
        let end = h.run(move |ev, _| {
            if matches!(ev, Event::Acquired { .. }) {
                let mut w = Device::open(&path, EngineKind::Sync).unwrap();
                let b = LockBlock {
                    status: Status::Locked,
                    count: 50,
                    nodename: NodeName::new("b").unwrap(),
                };
                w.write_block(1, &format::encode_lock(&b, 512)).unwrap();
            }
        });
        match end {
            Event::Lost(lease::LostReason::TakenOver { found }) => {
                assert_eq!(found.nodename.to_string(), "b");
                assert_eq!(found.count, 50);
            }
            other => panic!("{engine}: expected the lease lost, got {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(3));
        // re-init lock 1 for the next engine
        let mut w = Device::open(lo.path(), EngineKind::Sync).unwrap();
        w.write_block(1, &format::encode_lock(&LockBlock::fresh(), 512))
            .unwrap();
    }
}

/// Run by `.ci/test` on its own (`--ignored --test-threads=1`): it switches
/// io_uring off for the whole machine with `kernel.io_uring_disabled=2` and
/// checks that the uring engine falls back to sync with a warning and still
/// works, then restores the setting.
#[test]
#[ignore = "changes a machine-wide sysctl; .ci/test runs it alone"]
fn uring_refused_by_the_kernel_falls_back_to_sync() {
    const KNOB: &str = "/proc/sys/kernel/io_uring_disabled";
    let old = std::fs::read_to_string(KNOB).expect("kernel.io_uring_disabled must exist");
    struct Restore(String);
    impl Drop for Restore {
        fn drop(&mut self) {
            std::fs::write(KNOB, self.0.trim()).expect("restore io_uring_disabled");
        }
    }
    let _restore = Restore(old);
    let lo = Loop::new(512, 1 << 16, false);
    std::fs::write(KNOB, "2").expect("set io_uring_disabled=2");
    let mut d = Device::open(lo.path(), EngineKind::Uring).unwrap();
    assert_eq!(d.engine(), EngineKind::Sync, "must fall back");
    let why = d.fallback_reason().expect("a reason is recorded");
    assert!(why.contains("io_uring unavailable"), "{why}");
    d.write_block(1, &pattern(512, 3)).unwrap();
    assert_eq!(d.read_block(1).unwrap(), pattern(512, 3));
    // the CLI says so on stderr and still works
    ops::init(&mut d, lo.path(), 1, true).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sfex"))
        .args(["--engine", "uring", "status", "--node", "x"])
        .arg(lo.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("status is UNLOCKED."));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("falling back to O_DIRECT pread/pwrite"),
        "stderr: {err}"
    );
}
