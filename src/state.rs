//! Persisted state: the little a node keeps across restarts.
//!
//! Fail counts per resource, operator moves with their expiry, the standby
//! and maintenance flags, the last lease view and the tail of the audit log
//! (architecture.md, "Persisted state"). Everything else is rebuilt from the
//! peer, the lease device and DRBD after a restart.
//!
//! # File format
//!
//! ```text
//! HAPAIR-STATE\n                                  magic line
//! version=1 length=<n> crc32=<8 lowercase hex>\n  header line (canonical form)
//! <n bytes of payload: JSON + "\n">               crc32 (crc32fast) over these
//! ```
//!
//! Nothing may follow the payload. The header is parsed and then formatted
//! again; anything not byte-identical to the canonical form is rejected, so
//! every single-byte change in the header is caught (a changed digit changes
//! a value, anything else breaks the form), and the crc32 catches every
//! single-byte change (indeed every burst of up to 32 bits) in the payload.
//! A truncation shortens the payload below `length` or cuts the header.
//!
//! # Writing
//!
//! [`save`] writes a temp file in the same directory, fsyncs it, renames it
//! over the target and fsyncs the directory, so a reader sees either the old
//! file or the new one, never half of one, and the new one survives a power
//! loss once `save` returns.
//!
//! # Reading
//!
//! [`load`] returns `Ok(None)` for a missing file and a [`StateError`]
//! naming the file and the fault for anything it does not trust. The daemon
//! logs that, moves the bad file aside with [`quarantine`] and starts from
//! [`PersistedState::default`]: a corrupted file is reported, never trusted.
//!
//! All I/O here is blocking: call it from `spawn_blocking` or a thread.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The first line of every state file.
pub const MAGIC: &[u8] = b"HAPAIR-STATE\n";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// How many audit entries are kept (the newest ones).
pub const AUDIT_TAIL: usize = 50;
/// Longest request text kept per audit entry, in bytes (cut at a char boundary).
pub const AUDIT_REQUEST_MAX: usize = 1024;
/// Largest state file `load` reads; anything bigger is corrupt by definition.
pub const MAX_FILE: u64 = 4 << 20;

/// Everything a node persists. `Default` is the state of a fresh node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PersistedState {
    /// Fail counts per resource name.
    pub fail_counts: BTreeMap<String, FailCount>,
    /// Operator moves (`hapair move`), each with its optional expiry.
    pub moves: Vec<Move>,
    /// This node is in standby (`hapair standby`).
    pub standby: bool,
    /// The pair is in maintenance (`hapair maintenance on`).
    pub maintenance: bool,
    /// The last lease view this node had.
    pub lease: Option<LeaseView>,
    /// The newest [`AUDIT_TAIL`] operator requests, oldest first.
    pub audit: VecDeque<AuditEntry>,
}

/// A resource's fail count.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FailCount {
    /// Failures since the last cleanup or expiry.
    pub count: u32,
    /// Wall-clock time of the last failure, ms since the Unix epoch.
    pub last_failure_ms: u64,
    /// Why it last failed (agent exit reason or our own words).
    pub reason: String,
}

/// An operator move: run the stack on `node`, until `expires_ms` if set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// Node the stack should run on.
    pub node: String,
    /// Wall-clock time the move was requested, ms since the Unix epoch.
    pub created_ms: u64,
    /// Wall-clock expiry, ms since the Unix epoch; `None` lasts until `unmove`.
    pub expires_ms: Option<u64>,
}

/// The lease as this node last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    /// Node name in the lock, `None` when unlocked.
    pub holder: Option<String>,
    /// The lock's counter.
    pub counter: u64,
    /// Wall-clock time of the read, ms since the Unix epoch.
    pub seen_ms: u64,
}

/// One operator request, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Wall-clock time, ms since the Unix epoch.
    pub time_ms: u64,
    /// The requester's uid (SO_PEERCRED).
    pub uid: u32,
    /// The effective request, as text.
    pub request: String,
}

impl PersistedState {
    /// Appends an audit entry, keeping the newest [`AUDIT_TAIL`] and cutting
    /// the request text to [`AUDIT_REQUEST_MAX`] bytes.
    pub fn push_audit(&mut self, mut entry: AuditEntry) {
        if entry.request.len() > AUDIT_REQUEST_MAX {
            let mut cut = AUDIT_REQUEST_MAX;
            while !entry.request.is_char_boundary(cut) {
                cut -= 1;
            }
            entry.request.truncate(cut);
        }
        self.audit.push_back(entry);
        while self.audit.len() > AUDIT_TAIL {
            self.audit.pop_front();
        }
    }

    /// Drops moves whose expiry is at or before `now_ms`; returns how many.
    pub fn prune_moves(&mut self, now_ms: u64) -> usize {
        let before = self.moves.len();
        self.moves
            .retain(|m| m.expires_ms.is_none_or(|e| e > now_ms));
        before - self.moves.len()
    }
}

/// What is wrong with a state file's contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// The file does not start with [`MAGIC`].
    #[error("bad magic (not a hapair state file, or its first line is damaged)")]
    BadMagic,
    /// The header line is missing, cut or not in canonical form.
    #[error("bad header line: {0}")]
    BadHeader(String),
    /// Fewer payload bytes than the header's length.
    #[error("truncated: header says {expected} payload bytes, file has {found}")]
    Truncated {
        /// Length from the header.
        expected: u64,
        /// Payload bytes present.
        found: u64,
    },
    /// Bytes after the payload.
    #[error("{0} bytes of trailing junk after the payload")]
    TrailingJunk(u64),
    /// The payload's crc32 differs from the header's.
    #[error("crc32 mismatch: header says {stored:08x}, payload has {computed:08x}")]
    Crc {
        /// From the header.
        stored: u32,
        /// Over the payload read.
        computed: u32,
    },
    /// The crc matched but the payload is not a valid state (a writer bug).
    #[error("payload does not decode: {0}")]
    Payload(String),
    /// The file is larger than [`MAX_FILE`].
    #[error("file too large ({0} bytes, limit {MAX_FILE})")]
    TooLarge(u64),
}

/// Errors reading or writing a state file. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A system call failed.
    #[error("state file {}: {op}: {source}", path.display())]
    Io {
        /// The file (or directory) concerned.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The contents are damaged; the file must not be trusted.
    #[error("state file {} is corrupt: {what}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: Corruption,
    },
    /// Written by a build with another format version.
    #[error(
        "state file {} has format version {found}, this build reads version {VERSION}",
        path.display()
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in its header.
        found: u32,
    },
    /// The state could not be serialized (cannot happen with these types).
    #[error("state file {}: encode: {source}", path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn header_line(len: u64, crc: u32) -> String {
    format!("version={VERSION} length={len} crc32={crc:08x}\n")
}

/// Encodes a state into the framed file format.
pub fn encode(state: &PersistedState) -> Result<Vec<u8>, serde_json::Error> {
    let mut payload = serde_json::to_vec(state)?;
    payload.push(b'\n');
    let crc = crc32fast::hash(&payload);
    let mut out = Vec::with_capacity(MAGIC.len() + 48 + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(header_line(payload.len() as u64, crc).as_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Why [`decode`] refused a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Damaged contents.
    Corrupt(Corruption),
    /// Another format version (header otherwise well formed).
    Version(u32),
}

fn parse_field<'a>(field: Option<&'a str>, key: &str) -> Result<&'a str, Corruption> {
    field
        .and_then(|f| f.strip_prefix(key))
        .and_then(|f| f.strip_prefix('='))
        .ok_or_else(|| Corruption::BadHeader(format!("expected `{key}=`")))
}

/// Decodes a whole file's bytes (pure; [`load`] adds the I/O and the path).
pub fn decode(bytes: &[u8]) -> Result<PersistedState, DecodeError> {
    let bad = |c| DecodeError::Corrupt(c);
    let rest = bytes.strip_prefix(MAGIC).ok_or(bad(Corruption::BadMagic))?;
    let nl = rest
        .iter()
        .take(128)
        .position(|&b| b == b'\n')
        .ok_or_else(|| bad(Corruption::BadHeader("no end of line".into())))?;
    let (line, payload) = (&rest[..nl], &rest[nl + 1..]);
    let line =
        std::str::from_utf8(line).map_err(|_| bad(Corruption::BadHeader("not UTF-8".into())))?;
    let mut fields = line.split(' ');
    let version = parse_field(fields.next(), "version").map_err(bad)?;
    let length = parse_field(fields.next(), "length").map_err(bad)?;
    let crc = parse_field(fields.next(), "crc32").map_err(bad)?;
    if fields.next().is_some() {
        return Err(bad(Corruption::BadHeader("extra fields".into())));
    }
    let num = |s: &str, what: &str| {
        s.parse::<u64>()
            .map_err(|_| bad(Corruption::BadHeader(format!("bad {what} `{s}`"))))
    };
    let version = num(version, "version")?;
    let length = num(length, "length")?;
    let crc = u32::from_str_radix(crc, 16)
        .map_err(|_| bad(Corruption::BadHeader(format!("bad crc32 `{crc}`"))))?;
    // The version is judged before the canonical check (a future version may
    // print its header differently, and "wrong version" is the useful message),
    // but only when its digits are canonical, so a damaged digit is corruption.
    let version_canonical = line.starts_with(&format!("version={version} "));
    let version = u32::try_from(version).unwrap_or(u32::MAX);
    if version != VERSION && version_canonical {
        return Err(DecodeError::Version(version));
    }
    if header_line(length, crc).as_bytes() != [line.as_bytes(), b"\n"].concat() {
        return Err(bad(Corruption::BadHeader(format!(
            "`{}` is not in canonical form",
            line.escape_debug()
        ))));
    }
    let found = payload.len() as u64;
    if found < length {
        return Err(bad(Corruption::Truncated {
            expected: length,
            found,
        }));
    }
    if found > length {
        return Err(bad(Corruption::TrailingJunk(found - length)));
    }
    let computed = crc32fast::hash(payload);
    if computed != crc {
        return Err(bad(Corruption::Crc {
            stored: crc,
            computed,
        }));
    }
    serde_json::from_slice(payload).map_err(|e| bad(Corruption::Payload(e.to_string())))
}

/// Reads and checks a state file. A missing file is `Ok(None)`; anything
/// damaged is an error naming the file and the fault.
pub fn load(path: &Path) -> Result<Option<PersistedState>, StateError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, "open")(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path, "read"))?;
    if bytes.len() as u64 > MAX_FILE {
        let size = fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(StateError::Corrupt {
            path: path.to_path_buf(),
            what: Corruption::TooLarge(size),
        });
    }
    match decode(&bytes) {
        Ok(s) => Ok(Some(s)),
        Err(DecodeError::Corrupt(what)) => Err(StateError::Corrupt {
            path: path.to_path_buf(),
            what,
        }),
        Err(DecodeError::Version(found)) => Err(StateError::Version {
            path: path.to_path_buf(),
            found,
        }),
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsyncs a directory, making renames and creations in it durable.
pub fn fsync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .map_err(io_err(dir, "open directory"))?
        .sync_all()
        .map_err(io_err(dir, "fsync directory"))
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `state` to `path` atomically and durably: temp file in the same
/// directory (mode 0600), write, fsync, rename over `path`, fsync the
/// directory. On error the temp file is removed and `path` is untouched.
pub fn save(path: &Path, state: &PersistedState) -> Result<(), StateError> {
    let bytes = encode(state).map_err(|source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = parent_dir(path);
    let name = path.file_name().ok_or_else(|| StateError::Io {
        path: path.to_path_buf(),
        op: "file name",
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    // Temp names never contain the target's name, so a name seen on disk is
    // either a finished file or an obvious temp file.
    let tmp = dir.join(format!(
        ".hapair-tmp.{}.{}",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> Result<(), StateError> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp, "create temp file"))?;
        f.write_all(&bytes).map_err(io_err(&tmp, "write"))?;
        f.sync_all().map_err(io_err(&tmp, "fsync"))?;
        fs::rename(&tmp, dir.join(name)).map_err(io_err(path, "rename temp file over"))
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fsync_dir(dir)
}

/// Moves a bad state file aside to `<name>.corrupt-<epoch_secs>` (with a
/// `.N` suffix if that exists) in the same directory, fsyncs the directory
/// and returns the new path.
pub fn quarantine(path: &Path, epoch_secs: u64) -> Result<PathBuf, StateError> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| StateError::Io {
            path: path.to_path_buf(),
            op: "file name",
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })?
        .to_string_lossy()
        .into_owned();
    let base = format!("{name}.corrupt-{epoch_secs}");
    let mut target = dir.join(&base);
    let mut n = 1u32;
    while target.symlink_metadata().is_ok() {
        target = dir.join(format!("{base}.{n}"));
        n += 1;
    }
    fs::rename(path, &target).map_err(io_err(path, "rename to quarantine"))?;
    fsync_dir(dir)?;
    Ok(target)
}

#[cfg(test)]
#[path = "tests/state.rs"]
mod tests;
