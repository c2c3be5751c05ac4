//! Bad input to the `sfex` CLI on real loop devices: a clear error naming the
//! problem, the documented exit code, and no write.

// Test data arithmetic on small numbers; casts are checked by the assertions.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::path::Path;
use std::process::{Command, Output};

#[path = "support/scratch_loop.rs"]
mod scratch_loop;
use scratch_loop::Loop;

/// Raw access for the assertions (dd and buffered writes, not our code).
impl Loop {
    fn bytes(&self, len: usize) -> Vec<u8> {
        let out = Command::new("dd")
            .arg(format!("if={}", self.path().display()))
            .args([
                "iflag=direct",
                "bs=512",
                &format!("count={}", len / 512),
                "status=none",
            ])
            .output()
            .unwrap();
        out.stdout
    }
    fn poke(&self, offset: u64, data: &[u8]) {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.path())
            .unwrap();
        f.write_all_at(data, offset).unwrap();
        f.sync_all().unwrap();
        // drop the page cache so O_DIRECT readers and buffered writes agree
        let _ = Command::new("blockdev")
            .arg("--flushbufs")
            .arg(self.path())
            .status();
    }
}

fn sfex(args: &[&str], dev: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfex"))
        .args(args)
        .arg(dev)
        .output()
        .unwrap()
}

fn check(out: &Output, code: i32, stderr_has: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(
        err.contains(stderr_has),
        "expected {stderr_has:?} in stderr: {err}"
    );
}

#[test]
fn not_an_sfex_device() {
    let lo = Loop::new(512, 1 << 16, false);
    let before = lo.bytes(2048);
    for cmd in [
        &["status"][..],
        &["lock", "-t", "3", "-m", "1"],
        &["unlock"],
        &["watch", "--count", "1"],
    ] {
        check(&sfex(cmd, lo.path()), 1, "magic number mismatched");
    }
    let out = sfex(&["dump"], lo.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("magic number mismatched"));
    assert_eq!(lo.bytes(2048), before, "nothing written");
}

#[test]
fn device_too_small_for_the_locks_is_refused_before_any_write() {
    let lo = Loop::new(4096, 1 << 20, false); // 256 blocks
    let before = lo.bytes(8192);
    check(
        &sfex(&["init", "-n", "999"], lo.path()),
        1,
        "too small for 999 locks",
    );
    assert_eq!(lo.bytes(8192), before, "nothing written");
    assert!(before.iter().all(|&b| b == 0));
    check(&sfex(&["init", "-n", "255"], lo.path()), 0, "");
}

#[test]
fn out_of_range_numbers_are_usage_errors() {
    let lo = Loop::new(512, 1 << 16, false);
    check(
        &sfex(&["init", "-n", "0"], lo.path()),
        4,
        "numlocks 0 is out of range",
    );
    check(
        &sfex(&["init", "-n", "1000"], lo.path()),
        4,
        "numlocks 1000 is out of range",
    );
    check(&sfex(&["init", "-n", "x"], lo.path()), 4, "invalid value");
    check(&sfex(&["init", "-n", "2"], lo.path()), 0, "");
    check(
        &sfex(&["status", "-i", "0"], lo.path()),
        4,
        "index 0 is out of range",
    );
    check(
        &sfex(&["status", "-i", "1000"], lo.path()),
        4,
        "index 1000 is out of range",
    );
    check(
        &sfex(&["status", "-i", "3"], lo.path()),
        1,
        "index 3 is too large. 2 locks are stored.",
    );
    check(
        &sfex(&["lock", "-t", "0"], lo.path()),
        4,
        "must be greater than zero",
    );
    check(
        &sfex(&["lock", "-t", "5", "-m", "5"], lo.path()),
        4,
        "must be shorter than lock_timeout",
    );
    check(&sfex(&["bogus"], lo.path()), 4, "unrecognized subcommand");
    check(
        &sfex(&["status", "--bogus"], lo.path()),
        4,
        "unexpected argument",
    );
}

#[test]
fn corrupted_fields_are_reported_and_not_overwritten() {
    let lo = Loop::new(512, 1 << 16, false);
    check(&sfex(&["init"], lo.path()), 0, "");
    // lock block status 'x'
    lo.poke(512, b"x");
    let before = lo.bytes(1024);
    let out = sfex(&["status", "--node", "a"], lo.path());
    check(&out, 2, "lock data format error");
    check(
        &sfex(&["lock", "-t", "3", "-m", "1", "--node", "a"], lo.path()),
        1,
        "lock data format error",
    );
    check(
        &sfex(&["unlock", "--node", "a"], lo.path()),
        1,
        "lock data format error",
    );
    assert_eq!(lo.bytes(1024), before, "nothing written");
    // control block: version 2, then a blocksize slot without its NUL
    lo.poke(4, b"2");
    check(
        &sfex(&["status"], lo.path()),
        1,
        "version number mismatched. program is 1, data is 2.",
    );
    lo.poke(4, b"1");
    lo.poke(12, b"12345678");
    check(
        &sfex(&["status"], lo.path()),
        1,
        "control data format error",
    );
    // init refuses to overwrite a device it cannot read as sfex without --force
    check(&sfex(&["init"], lo.path()), 1, "use --force");
}

#[test]
fn read_only_device_and_missing_device() {
    let lo = Loop::new(512, 1 << 16, true);
    check(&sfex(&["init"], lo.path()), 3, "read-only");
    check(
        &sfex(&["lock", "-t", "3", "-m", "1"], lo.path()),
        3,
        "read-only",
    );
    check(
        &sfex(&["status"], Path::new("/dev/no-such-sfex-device")),
        3,
        "can't open device /dev/no-such-sfex-device",
    );
    // a regular file is not a block device: exit 1, like the original
    let f = tempfile::NamedTempFile::new_in("/var/tmp").unwrap();
    f.as_file().set_len(1 << 16).unwrap();
    check(&sfex(&["status"], f.path()), 1, "not a block device");
}

#[test]
fn node_name_too_long_for_the_format() {
    let lo = Loop::new(512, 1 << 16, false);
    check(&sfex(&["init"], lo.path()), 0, "");
    let long = "x".repeat(256);
    check(
        &sfex(&["lock", "-t", "3", "-m", "1", "--node", &long], lo.path()),
        1,
        "at most 255",
    );
    check(
        &sfex(&["status", "--node", &long], lo.path()),
        4,
        "at most 255",
    );
    let ok = "x".repeat(255);
    let out = sfex(&["status", "--node", &ok], lo.path());
    assert_eq!(out.status.code(), Some(2));
}
