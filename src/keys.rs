//! The heartbeat key file: parse, check, write, generate.
//!
//! ```text
//! # hapair heartbeat keys ...
//! active 1
//! key 1 5f0c...(64 to 128 hex digits: 32 to 64 bytes)
//! key 2 9a41...
//! ```
//!
//! Blank lines and `#` comments are ignored. One `active` line names the key
//! packets are sent with; one or two `key` lines give the keys accepted
//! (ids 1..=255, as in Heartbeat's authkeys). Rotation without downtime,
//! as with knet's two crypto configs:
//! 1. add the new key on both nodes (`hapair keygen --add`, copy the file);
//!    both accept both keys and still send with the old one;
//! 2. switch `active` to the new key on both (`hapair keygen --activate 2`);
//! 3. retire the old key (`hapair keygen --retire 1`).
//!
//! The daemon refuses a key file that is not a regular file, is not owned
//! by root, or grants any permission to group or others (it must be 0600,
//! or stricter). The checks are made on the opened file (`fstat`), so a
//! symlink swapped in between check and open gains nothing.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::proto::{Key, KeyId, Keyring, KeyringError, MAX_KEYS};

/// Where the daemon looks for its key file unless told otherwise.
pub const DEFAULT_PATH: &str = "/etc/hapair/authkey";

/// Bytes in a generated key (HMAC-SHA256: 256 bits).
pub const GENERATED_LEN: usize = 32;

/// A key file that cannot be used, with the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// open/read/write failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not a regular file.
    #[error("{path}: not a regular file")]
    NotRegular {
        /// The file.
        path: PathBuf,
    },
    /// Group or other may access it.
    #[error(
        "{path}: mode {mode:04o} lets group or others access the heartbeat key; it must be 0600 \
         (run: chmod 0600 {path})"
    )]
    Mode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Owned by the wrong user.
    #[error(
        "{path}: owned by uid {uid}; the heartbeat key must be owned by root (run: chown root: {path})"
    )]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// Syntax error.
    #[error("{path}:{line}: {msg}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// The keys do not form a usable set.
    #[error("{path}: {source}")]
    Keys {
        /// The file.
        path: PathBuf,
        /// Why.
        source: KeyringError,
    },
    /// The file exists and `--force` was not given.
    #[error("{path} exists; use --force to replace it (both nodes must then get the new file)")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A request that does not fit the file (add a third key, retire the active one, ...).
    #[error("{path}: {msg}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        msg: String,
    },
    /// The system's random source failed.
    #[error("cannot read random bytes: {0}")]
    Random(String),
}

/// The contents of a key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// The id packets are sent with.
    pub active: KeyId,
    /// The keys accepted, in file order.
    pub keys: Vec<(KeyId, Key)>,
}

impl KeyFile {
    /// Parses the text of a key file (`path` is only for messages).
    pub fn parse(path: &Path, text: &str) -> Result<KeyFile, KeyFileError> {
        let syntax = |line: usize, msg: String| KeyFileError::Syntax {
            path: path.to_owned(),
            line,
            msg,
        };
        let mut active = None;
        let mut keys: Vec<(KeyId, Key)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["active", id] => {
                    if active.is_some() {
                        return Err(syntax(n, "a second `active` line".into()));
                    }
                    active = Some(parse_id(id).map_err(|m| syntax(n, m))?);
                }
                ["key", id, hex] => {
                    let id = parse_id(id).map_err(|m| syntax(n, m))?;
                    let bytes = parse_hex(hex).map_err(|m| syntax(n, m))?;
                    let key = Key::new(bytes).map_err(|e| syntax(n, e.to_string()))?;
                    keys.push((id, key));
                }
                _ => {
                    return Err(syntax(
                        n,
                        "expected `active ID` or `key ID HEX` (the line is not shown: it may hold a key)"
                            .into(),
                    ));
                }
            }
        }
        let active = active.ok_or_else(|| syntax(0, "no `active ID` line".into()))?;
        let f = KeyFile { active, keys };
        f.keyring().map_err(|source| KeyFileError::Keys {
            path: path.to_owned(),
            source,
        })?;
        Ok(f)
    }

    /// The text of the file.
    pub fn to_text(&self) -> String {
        let mut s = String::from(
            "# hapair heartbeat keys (written by `hapair keygen`).\n\
             # Keep this file identical on both nodes, mode 0600, owned by root.\n\
             # `active` is the key packets are sent with; every `key` is accepted.\n",
        );
        let _ = writeln!(s, "active {}", self.active);
        for (id, key) in &self.keys {
            let _ = write!(s, "key {id} ");
            for b in key.bytes() {
                let _ = write!(s, "{b:02x}");
            }
            s.push('\n');
        }
        s
    }

    /// The keyring for [`crate::proto`].
    pub fn keyring(&self) -> Result<Keyring, KeyringError> {
        Keyring::new(self.active, &self.keys)
    }

    /// The smallest id not in use.
    fn free_id(&self) -> Option<KeyId> {
        (1..=u8::MAX)
            .filter_map(KeyId::new)
            .find(|id| !self.keys.iter().any(|(k, _)| k == id))
    }
}

fn parse_id(s: &str) -> Result<KeyId, String> {
    s.parse::<u8>()
        .ok()
        .and_then(KeyId::new)
        .ok_or_else(|| format!("key id `{s}` is not between 1 and 255"))
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err("the key must be an even number of hex digits".into());
    }
    Ok((0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("checked hex digits"))
        .collect())
}

/// Reads the key file at `path`, refusing it unless it is a regular file
/// owned by `owner_uid` with no group or other permissions.
pub fn load_owned_by(path: &Path, owner_uid: u32) -> Result<KeyFile, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let md = f.metadata().map_err(io)?;
    if !md.file_type().is_file() {
        return Err(KeyFileError::NotRegular {
            path: path.to_owned(),
        });
    }
    if md.uid() != owner_uid {
        return Err(KeyFileError::Owner {
            path: path.to_owned(),
            uid: md.uid(),
        });
    }
    let mode = md.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Mode {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(io)?;
    KeyFile::parse(path, &text)
}

/// Reads the key file at `path` as the daemon does: it must be owned by root.
pub fn load(path: &Path) -> Result<KeyFile, KeyFileError> {
    load_owned_by(path, 0)
}

/// A new random key.
pub fn generate() -> Result<Key, KeyFileError> {
    let mut b = vec![0u8; GENERATED_LEN];
    getrandom::fill(&mut b).map_err(|e| KeyFileError::Random(e.to_string()))?;
    Ok(Key::new(b).expect("GENERATED_LEN is a valid key length"))
}

/// Writes `f` to `path` atomically (a 0600 temporary file in the same
/// directory, fsync, rename, fsync of the directory).
pub fn write(path: &Path, f: &KeyFile) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io(std::io::Error::other("not a file name")))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        out.write_all(f.to_text().as_bytes())?;
        out.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// What `hapair keygen` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeygenOp {
    /// Write a new file with one new key (id given or 1).
    Create {
        /// Key id.
        id: Option<KeyId>,
        /// Replace an existing file.
        force: bool,
    },
    /// Add a new key to the file, not active (rotation step 1).
    Add {
        /// Key id (default: the smallest free one).
        id: Option<KeyId>,
    },
    /// Send with this key from now on (rotation step 2).
    Activate(KeyId),
    /// Remove this key (rotation step 3); refused for the active key.
    Retire(KeyId),
}

/// Carries out `op` on the key file at `path` (which, for every op but
/// `Create`, must pass the same checks as for the daemon, with `owner_uid`).
/// Returns the new contents.
pub fn keygen(path: &Path, op: KeygenOp, owner_uid: u32) -> Result<KeyFile, KeyFileError> {
    let refused = |msg: String| KeyFileError::Refused {
        path: path.to_owned(),
        msg,
    };
    let new = match op {
        KeygenOp::Create { id, force } => {
            if !force && fs::symlink_metadata(path).is_ok() {
                return Err(KeyFileError::Exists {
                    path: path.to_owned(),
                });
            }
            let id = id.unwrap_or(KeyId::new(1).expect("1 is a valid id"));
            KeyFile {
                active: id,
                keys: vec![(id, generate()?)],
            }
        }
        KeygenOp::Add { id } => {
            let mut f = load_owned_by(path, owner_uid)?;
            if f.keys.len() >= MAX_KEYS {
                return Err(refused(format!(
                    "already holds {MAX_KEYS} keys; retire the old one first (--retire ID)"
                )));
            }
            let id = match id {
                Some(id) if f.keys.iter().any(|(k, _)| *k == id) => {
                    return Err(refused(format!("key id {id} is already in use")));
                }
                Some(id) => id,
                None => f.free_id().expect("fewer than MAX_KEYS ids are in use"),
            };
            f.keys.push((id, generate()?));
            f
        }
        KeygenOp::Activate(id) => {
            let mut f = load_owned_by(path, owner_uid)?;
            if !f.keys.iter().any(|(k, _)| *k == id) {
                return Err(refused(format!("has no key {id}")));
            }
            f.active = id;
            f
        }
        KeygenOp::Retire(id) => {
            let mut f = load_owned_by(path, owner_uid)?;
            if f.active == id {
                return Err(refused(format!(
                    "key {id} is the active key; activate another one first"
                )));
            }
            let before = f.keys.len();
            f.keys.retain(|(k, _)| *k != id);
            if f.keys.len() == before {
                return Err(refused(format!("has no key {id}")));
            }
            f
        }
    };
    write(path, &new)?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn id(n: u8) -> KeyId {
        KeyId::new(n).unwrap()
    }

    #[test]
    fn parse_and_print_roundtrip() {
        let text = format!(
            "# c\n\nactive 2\nkey 1 {}\n  key 2 {}  \n",
            "ab".repeat(32),
            "01".repeat(64)
        );
        let f = KeyFile::parse(Path::new("k"), &text).unwrap();
        assert_eq!(f.active, id(2));
        assert_eq!(f.keys.len(), 2);
        assert_eq!(f.keys[0].1.bytes(), &[0xab; 32]);
        assert_eq!(f.keys[1].1.bytes(), &[0x01; 64]);
        assert_eq!(KeyFile::parse(Path::new("k"), &f.to_text()).unwrap(), f);
    }

    #[test]
    fn parse_errors_name_the_line() {
        let k = "ab".repeat(32);
        let cases = [
            (format!("key 1 {k}\n"), "k:0: no `active ID` line"),
            (
                format!("active 1\nactive 1\nkey 1 {k}"),
                "k:2: a second `active` line",
            ),
            (
                format!("active 0\nkey 1 {k}"),
                "k:1: key id `0` is not between 1 and 255",
            ),
            (
                "active 1\nkey 1 abc\n".to_string(),
                "k:2: the key must be an even number of hex digits",
            ),
            (
                "active 1\nkey 1 zz\n".to_string(),
                "k:2: the key must be an even number of hex digits",
            ),
            (
                "active 1\nkey 1 abab\n".to_string(),
                "k:2: a key must be 32 to 64 bytes, this one has 2",
            ),
            (
                format!("active 1\nkey 1 {k} extra\n"),
                "k:2: expected `active ID` or `key ID HEX` (the line is not shown: it may hold a key)",
            ),
            (
                format!("active 3\nkey 1 {k}\n"),
                "k: the active key id 3 is not among the keys",
            ),
            (
                format!("active 1\nkey 1 {k}\nkey 2 {k}\nkey 3 {k}\n"),
                "k: 3 keys: at most 2 may be active at once (the old and the new)",
            ),
            (
                format!("active 1\nkey 1 {k}\nkey 1 {k}\n"),
                "k: key id 1 appears twice",
            ),
        ];
        for (text, msg) in cases {
            let e = KeyFile::parse(Path::new("k"), &text).unwrap_err();
            assert_eq!(e.to_string(), msg, "{text:?}");
            assert!(!e.to_string().contains(&k), "a message leaks the key");
        }
    }

    #[test]
    fn load_checks_mode_owner_and_type() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("authkey");
        let f = keygen(
            &p,
            KeygenOp::Create {
                id: None,
                force: false,
            },
            0,
        )
        .unwrap();
        let md = fs::metadata(&p).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o600, "keygen writes 0600");
        let me = md.uid();
        assert_eq!(load_owned_by(&p, me).unwrap(), f);
        assert_eq!(f.keys[0].1.bytes().len(), 32);

        for mode in [0o640, 0o604, 0o644, 0o660] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            let e = load_owned_by(&p, me).unwrap_err();
            assert!(
                matches!(e, KeyFileError::Mode { mode: m, .. } if m == mode),
                "{e}"
            );
            assert!(e.to_string().contains("it must be 0600"), "{e}");
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(load_owned_by(&p, me).is_ok(), "0400 is stricter than 0600");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();

        let e = load_owned_by(&p, me + 1).unwrap_err();
        assert!(
            matches!(e, KeyFileError::Owner { uid, .. } if uid == me),
            "{e}"
        );
        assert!(e.to_string().contains("must be owned by root"), "{e}");

        let e = load_owned_by(dir.path(), me).unwrap_err();
        assert!(matches!(e, KeyFileError::NotRegular { .. }), "{e}");
        let e = load_owned_by(&dir.path().join("missing"), me).unwrap_err();
        assert!(matches!(e, KeyFileError::Io { .. }), "{e}");
    }

    #[test]
    fn root_ownership_is_required_by_load() {
        // The tests run as root (the CI script checks that), so a file we
        // create is root's; chown it away and the daemon's loader refuses it.
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "this test needs root"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("authkey");
        keygen(
            &p,
            KeygenOp::Create {
                id: None,
                force: false,
            },
            0,
        )
        .unwrap();
        assert!(load(&p).is_ok());
        nix::unistd::chown(&p, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let e = load(&p).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{0}: owned by uid 65534; the heartbeat key must be owned by root (run: chown root: {0})",
                p.display()
            )
        );
    }

    #[test]
    fn rotation_steps() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("authkey");
        let me = nix::unistd::Uid::effective().as_raw();
        let f1 = keygen(
            &p,
            KeygenOp::Create {
                id: None,
                force: false,
            },
            me,
        )
        .unwrap();
        assert!(matches!(
            keygen(
                &p,
                KeygenOp::Create {
                    id: None,
                    force: false
                },
                me
            ),
            Err(KeyFileError::Exists { .. })
        ));
        let f2 = keygen(&p, KeygenOp::Add { id: None }, me).unwrap();
        assert_eq!(f2.active, id(1));
        assert_eq!(f2.keys[0], f1.keys[0]);
        assert_eq!(f2.keys[1].0, id(2));
        assert_ne!(f2.keys[1].1, f1.keys[0].1, "a new random key");
        let e = keygen(&p, KeygenOp::Add { id: None }, me).unwrap_err();
        assert!(e.to_string().contains("retire the old one first"), "{e}");
        let e = keygen(&p, KeygenOp::Retire(id(1)), me).unwrap_err();
        assert!(e.to_string().contains("is the active key"), "{e}");
        let f3 = keygen(&p, KeygenOp::Activate(id(2)), me).unwrap();
        assert_eq!(f3.active, id(2));
        let f4 = keygen(&p, KeygenOp::Retire(id(1)), me).unwrap();
        assert_eq!(f4.keys, vec![f2.keys[1].clone()]);
        assert_eq!(load_owned_by(&p, me).unwrap(), f4);
        let e = keygen(&p, KeygenOp::Activate(id(9)), me).unwrap_err();
        assert!(e.to_string().contains("has no key 9"), "{e}");
        // no temporary files left behind
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("authkey")]);
    }
}
