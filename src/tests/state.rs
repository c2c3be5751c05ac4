//! Tests of `state.rs`: round trips, exhaustive corruption and truncation,
//! atomic replacement under a concurrent reader, quarantine, and (on an ext4
//! loop device) that the directory fsync is what makes the rename durable.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

fn sample() -> PersistedState {
    let mut s = PersistedState::default();
    s.fail_counts.insert(
        "pgsql".into(),
        FailCount {
            count: 3,
            last_failure_ms: 1_700_000_000_123,
            reason: "monitor: \"not running\" (rc=7)\n".into(),
        },
    );
    s.fail_counts.insert("fs".into(), FailCount::default());
    s.moves.push(Move {
        node: "b".into(),
        created_ms: 1_700_000_000_000,
        expires_ms: Some(1_700_000_600_000),
    });
    s.moves.push(Move {
        node: "a".into(),
        created_ms: 5,
        expires_ms: None,
    });
    s.standby = true;
    s.maintenance = false;
    s.lease = Some(LeaseView {
        holder: Some("nodé-a".into()),
        counter: u64::MAX - 1,
        seen_ms: 42,
    });
    for i in 0..3 {
        s.push_audit(AuditEntry {
            time_ms: i,
            uid: 0,
            request: format!("move b --for {i}m"),
        });
    }
    s
}

#[test]
fn round_trip_file_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let s = sample();
    save(&path, &s).unwrap();
    assert_eq!(load(&path).unwrap(), Some(s.clone()));
    assert_eq!(decode(&encode(&s).unwrap()).unwrap(), s);
    // default state too, and overwriting an existing file
    save(&path, &PersistedState::default()).unwrap();
    assert_eq!(load(&path).unwrap(), Some(PersistedState::default()));
    let bytes = fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"HAPAIR-STATE\nversion=1 length="));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // only the state file is left in the directory
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("state")]);
}

#[test]
fn missing_file_is_none() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load(&dir.path().join("nope")).unwrap(), None);
}

#[test]
fn every_single_byte_corruption_is_detected() {
    let good = encode(&sample()).unwrap();
    assert!(good.len() > 300, "sample too small to be interesting");
    let mut checked = 0u64;
    for pos in 0..good.len() {
        for v in 0..=255u8 {
            if v == good[pos] {
                continue;
            }
            let mut bad = good.clone();
            bad[pos] = v;
            let r = decode(&bad);
            assert!(
                r.is_err(),
                "byte {pos} {:#04x}->{v:#04x} not detected",
                good[pos]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, good.len() as u64 * 255);
}

#[test]
fn every_truncation_and_extension_is_detected() {
    let good = encode(&sample()).unwrap();
    for len in 0..good.len() {
        let r = decode(&good[..len]);
        assert!(r.is_err(), "truncation to {len} bytes not detected");
    }
    let payload_start = good
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .unwrap()
        .0
        + 1;
    assert!(matches!(
        decode(&good[..good.len() - 1]),
        Err(DecodeError::Corrupt(Corruption::Truncated { .. }))
    ));
    assert!(matches!(
        decode(&good[..payload_start]),
        Err(DecodeError::Corrupt(Corruption::Truncated { found: 0, .. }))
    ));
    let mut long = good.clone();
    long.extend_from_slice(b"junk");
    assert_eq!(
        decode(&long),
        Err(DecodeError::Corrupt(Corruption::TrailingJunk(4)))
    );
}

#[test]
fn file_level_corruption_names_file_and_fault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hapair.state");
    save(&path, &sample()).unwrap();
    let good = fs::read(&path).unwrap();
    // every truncation of the real file, through load()
    for len in 0..good.len() {
        fs::write(&path, &good[..len]).unwrap();
        let e = load(&path).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("hapair.state"), "{msg}");
        assert!(matches!(e, StateError::Corrupt { .. }), "{len}: {msg}");
    }
    // a flipped payload byte
    let mut bad = good.clone();
    let last = bad.len() - 5;
    bad[last] ^= 0x20;
    fs::write(&path, &bad).unwrap();
    let msg = load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("crc32 mismatch") && msg.contains("hapair.state"),
        "{msg}"
    );
    // junk appended
    let mut long = good.clone();
    long.push(b'\n');
    fs::write(&path, &long).unwrap();
    let msg = load(&path).unwrap_err().to_string();
    assert!(msg.contains("1 bytes of trailing junk"), "{msg}");
    // not a state file at all
    fs::write(&path, b"{\"standby\":true}\n").unwrap();
    let msg = load(&path).unwrap_err().to_string();
    assert!(msg.contains("bad magic"), "{msg}");
    // too large
    let f = File::create(&path).unwrap();
    f.set_len(MAX_FILE + 10).unwrap();
    let e = load(&path).unwrap_err();
    assert!(
        matches!(e, StateError::Corrupt { what: Corruption::TooLarge(n), .. } if n == MAX_FILE + 10),
        "{e}"
    );
}

#[test]
fn wrong_version_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let payload = b"{}\n";
    let crc = crc32fast::hash(payload);
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(format!("version=2 length=3 crc32={crc:08x}\n").as_bytes());
    bytes.extend_from_slice(payload);
    fs::write(&path, &bytes).unwrap();
    let e = load(&path).unwrap_err();
    assert!(matches!(e, StateError::Version { found: 2, .. }), "{e}");
    assert!(e.to_string().contains("format version 2"), "{e}");
    // the same file with version 1 is fine (and all defaults)
    bytes[MAGIC.len() + 8] = b'1';
    fs::write(&path, &bytes).unwrap();
    assert_eq!(load(&path).unwrap(), Some(PersistedState::default()));
    // a non-canonical version (leading zero) is corruption, not a version
    let mut odd = MAGIC.to_vec();
    odd.extend_from_slice(format!("version=01 length=3 crc32={crc:08x}\n{{}}\n").as_bytes());
    assert!(matches!(
        decode(&odd),
        Err(DecodeError::Corrupt(Corruption::BadHeader(_)))
    ));
}

#[test]
fn crc_matching_garbage_payload_is_corrupt() {
    let payload = b"[1,2]\n";
    let crc = crc32fast::hash(payload);
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(format!("version=1 length=6 crc32={crc:08x}\n").as_bytes());
    bytes.extend_from_slice(payload);
    assert!(matches!(
        decode(&bytes),
        Err(DecodeError::Corrupt(Corruption::Payload(_)))
    ));
}

#[test]
fn audit_tail_and_move_expiry() {
    let mut s = PersistedState::default();
    for i in 0..120u64 {
        s.push_audit(AuditEntry {
            time_ms: i,
            uid: 1000,
            request: "x".into(),
        });
    }
    assert_eq!(s.audit.len(), AUDIT_TAIL);
    assert_eq!(s.audit.front().unwrap().time_ms, 70);
    assert_eq!(s.audit.back().unwrap().time_ms, 119);
    s.push_audit(AuditEntry {
        time_ms: 0,
        uid: 0,
        request: "é".repeat(AUDIT_REQUEST_MAX), // 2 bytes each
    });
    let r = &s.audit.back().unwrap().request;
    assert!(r.len() <= AUDIT_REQUEST_MAX && r.len() >= AUDIT_REQUEST_MAX - 1);
    let mut s = sample();
    assert_eq!(s.prune_moves(1_700_000_599_999), 0);
    assert_eq!(s.prune_moves(1_700_000_600_000), 1);
    assert_eq!(s.moves.len(), 1);
    assert_eq!(s.moves[0].expires_ms, None);
}

#[test]
fn concurrent_reader_never_sees_a_half_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("state"));
    let small = PersistedState::default();
    let mut big = sample();
    for i in 0..AUDIT_TAIL as u64 {
        big.push_audit(AuditEntry {
            time_ms: i,
            uid: 7,
            request: "r".repeat(900),
        });
    }
    save(&path, &small).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (path, stop, small, big) = (path.clone(), stop.clone(), small.clone(), big.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            let mut seen_big = false;
            while !stop.load(Ordering::Relaxed) || reads < 100 {
                let s = load(&path)
                    .expect("reader saw a bad file")
                    .expect("file vanished");
                assert!(s == small || s == big, "reader saw a mixed state");
                seen_big |= s == big;
                reads += 1;
            }
            (reads, seen_big)
        })
    };
    for i in 0..100 {
        save(&path, if i % 2 == 0 { &big } else { &small }).unwrap();
    }
    save(&path, &big).unwrap();
    stop.store(true, Ordering::Relaxed);
    let (reads, _) = reader.join().unwrap();
    assert!(reads >= 100);
    assert_eq!(load(&path).unwrap(), Some(big));
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "temp files left behind: {left:?}");
}

#[test]
fn save_into_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/state");
    let e = save(&path, &sample()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("create temp file") && msg.contains("no/such/dir"),
        "{msg}"
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    let e = fsync_dir(&dir.path().join("absent")).unwrap_err();
    assert!(e.to_string().contains("absent"), "{e}");
    assert_eq!(parent_dir(Path::new("state")), Path::new("."));
    assert_eq!(
        parent_dir(Path::new("/var/lib/hapair/state")),
        Path::new("/var/lib/hapair")
    );
}

#[test]
fn quarantine_moves_bad_file_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    fs::write(&path, b"garbage").unwrap();
    assert!(load(&path).is_err());
    let q = quarantine(&path, 1_700_000_000).unwrap();
    assert_eq!(q, dir.path().join("state.corrupt-1700000000"));
    assert_eq!(fs::read(&q).unwrap(), b"garbage");
    assert_eq!(load(&path).unwrap(), None);
    // the daemon then starts from defaults and saves them
    save(&path, &PersistedState::default()).unwrap();
    // a second bad file in the same second does not overwrite the first
    fs::write(&path, b"more garbage").unwrap();
    let q2 = quarantine(&path, 1_700_000_000).unwrap();
    assert_eq!(q2, dir.path().join("state.corrupt-1700000000.1"));
    assert_eq!(fs::read(&q).unwrap(), b"garbage");
    assert_eq!(fs::read(&q2).unwrap(), b"more garbage");
    assert!(
        quarantine(&path, 1).is_err(),
        "quarantine of a missing file must fail"
    );
}

/// A scratch ext4 filesystem on a loop device, mounted with a 10-minute
/// journal commit interval so nothing reaches the disk unless fsynced.
struct ScratchExt4 {
    dir: tempfile::TempDir,
    image: std::path::PathBuf,
    mnt: std::path::PathBuf,
    dev: String,
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl ScratchExt4 {
    fn new() -> ScratchExt4 {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (loop device + mount)"
        );
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fs.img");
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        File::create(&image).unwrap().set_len(8 << 20).unwrap();
        sh(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
        let dev = sh(Command::new("losetup").args(["-f", "--show"]).arg(&image));
        let s = ScratchExt4 {
            dir,
            image,
            mnt,
            dev,
        };
        sh(Command::new("mount")
            .args(["-t", "ext4", "-o", "commit=600", &s.dev])
            .arg(&s.mnt));
        s
    }
    /// The image's bytes as the loop device has written them so far.
    fn on_disk(&self) -> Vec<u8> {
        fs::read(&self.image).unwrap()
    }
}

impl Drop for ScratchExt4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        let _ = &self.dir;
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let (first, rest) = needle.split_first().unwrap();
    let mut at = 0;
    while let Some(i) = hay[at..].iter().position(|b| b == first) {
        let start = at + i + 1;
        if hay[start..].starts_with(rest) {
            return true;
        }
        at = start;
    }
    false
}

#[test]
fn directory_fsync_makes_the_rename_durable() {
    let fs4 = ScratchExt4::new();
    // control: a rename with no directory fsync stays in the running journal
    // transaction, so the new name is not on the device...
    let nonce = std::process::id();
    let control = format!("ctl-renamed-{nonce}-zq");
    fs::write(fs4.mnt.join("ctl-tmp"), b"x").unwrap();
    fs::rename(fs4.mnt.join("ctl-tmp"), fs4.mnt.join(&control)).unwrap();
    assert!(
        !contains(&fs4.on_disk(), control.as_bytes()),
        "control name reached the disk without fsync; the test cannot tell"
    );
    // ...until the directory is fsynced
    fsync_dir(&fs4.mnt).unwrap();
    assert!(contains(&fs4.on_disk(), control.as_bytes()));

    // save(): both the payload and the final name are on the device on return
    let name = format!("state-{nonce}-kx");
    let mut s = sample();
    s.fail_counts
        .insert(format!("unique-resource-{nonce}-wv"), FailCount::default());
    save(&fs4.mnt.join(&name), &s).unwrap();
    let disk = fs4.on_disk();
    assert!(contains(&disk, name.as_bytes()), "final name not durable");
    assert!(
        contains(&disk, format!("unique-resource-{nonce}-wv").as_bytes()),
        "payload not durable"
    );
    assert_eq!(load(&fs4.mnt.join(&name)).unwrap(), Some(s));
}
