//! A scratch loop device over a sparse file in /var/tmp, detached on drop;
//! shared by the device and CLI tests (`#[path]`-included, not a test crate).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A loop device over a sparse file, detached on drop.
pub struct Loop {
    dev: PathBuf,
    _dir: tempfile::TempDir,
}

impl Loop {
    /// Attaches a new `size`-byte loop device with `sector`-byte logical
    /// sectors (read-only when asked). Needs root: fails loudly otherwise.
    pub fn new(sector: u32, size: u64, read_only: bool) -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests need root (loop devices)"
        );
        let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
        let file = dir.path().join("img");
        std::fs::File::create(&file).unwrap().set_len(size).unwrap();
        let mut cmd = Command::new("losetup");
        cmd.args(["--find", "--show", "--sector-size", &sector.to_string()]);
        if read_only {
            cmd.arg("--read-only");
        }
        let out = cmd.arg(&file).output().expect("losetup");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Self { dev, _dir: dir }
    }

    /// The device node.
    pub fn path(&self) -> &Path {
        &self.dev
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        for _ in 0..20 {
            let detached = Command::new("losetup").arg("-d").arg(&self.dev).status();
            if detached.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
