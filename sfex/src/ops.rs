//! The operations of the `sfex` CLI over a [`BlockIo`]: initialise, read the
//! status, unlock, dump. Each checks before it writes, so a refused request
//! leaves the device untouched, and each error maps to the exit code of the
//! original tool it replaces ([`OpError::exit_code`]).

use std::path::Path;

use serde::Serialize;

use crate::dev::{BlockIo, DevError, Device, EngineKind};
use crate::format::{
    self, ControlBlock, FormatError, GeometryError, LockBlock, MAX_NUMLOCKS, NodeName, Status,
};

/// Exit codes of the `sfex` CLI (the original tools' where they overlap).
pub mod exit {
    /// Success; for `status`, the lock is held by this node.
    pub const OK: u8 = 0;
    /// Bad metadata, I/O error, refused request, or the lease was lost.
    pub const ERROR: u8 = 1;
    /// The lock is not held by this node / held elsewhere / collision.
    pub const NOT_MINE: u8 = 2;
    /// The device cannot be opened.
    pub const OPEN: u8 = 3;
    /// Usage error.
    pub const USAGE: u8 = 4;
}

/// Why an operation failed; nothing was written in any of these cases
/// (except `Dev` errors raised by a write itself).
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Device access.
    #[error(transparent)]
    Dev(#[from] DevError),
    /// The control block does not decode.
    #[error("{path}: {source}")]
    Format {
        /// The device.
        path: String,
        /// What is wrong.
        source: FormatError,
    },
    /// Index or block size does not fit the device.
    #[error("{path}: {source}")]
    Geometry {
        /// The device.
        path: String,
        /// What is wrong.
        source: GeometryError,
    },
    /// `init` on a device that is too small.
    #[error(
        "{path} is too small for {numlocks} locks: needs {need} bytes \
         ({blocks} blocks of {block}), has {size}"
    )]
    TooSmall {
        /// The device.
        path: String,
        /// Locks requested.
        numlocks: u32,
        /// Bytes needed.
        need: u64,
        /// Blocks needed.
        blocks: u64,
        /// Block size.
        block: u32,
        /// Device size.
        size: u64,
    },
    /// `init` on a device that already holds sfex metadata, without --force.
    #[error(
        "{path} already holds an sfex control block ({numlocks} locks); \
         use --force to re-initialise it"
    )]
    AlreadyInitialised {
        /// The device.
        path: String,
        /// numlocks found.
        numlocks: i32,
    },
    /// `init` or `unlock` refused because a lock is held.
    #[error("{path}: lock #{index} is held by {holder} (count {count})")]
    Held {
        /// The device.
        path: String,
        /// Which lock.
        index: u32,
        /// Its holder.
        holder: NodeName,
        /// Its count.
        count: i32,
    },
    /// A lock block that cannot be read or decoded.
    #[error("{path}: lock #{index}: {error}")]
    Lock {
        /// The device.
        path: String,
        /// Which lock.
        index: u32,
        /// What went wrong.
        error: String,
    },
    /// A number outside the accepted range.
    #[error(
        "{what} {value} is out of range or invalid. it must be integer value between 1 and {max}."
    )]
    Range {
        /// Which argument.
        what: &'static str,
        /// Given value.
        value: u64,
        /// Upper bound.
        max: u32,
    },
}

impl OpError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            OpError::Dev(DevError::Open { .. } | DevError::ReadOnlyDevice { .. }) => exit::OPEN,
            OpError::Held { .. } => exit::NOT_MINE,
            OpError::Range { .. } => exit::USAGE,
            _ => exit::ERROR,
        }
    }
}

/// Reads and decodes the control block (block 0, one device sector long).
pub fn read_control(dev: &mut dyn BlockIo, path: &Path) -> Result<ControlBlock, OpError> {
    let b = dev.read_block(0)?;
    format::decode_control(&b).map_err(|source| OpError::Format {
        path: path.display().to_string(),
        source,
    })
}

/// Checks an index against the command-line range (1..=999).
pub fn check_index(index: u32) -> Result<(), OpError> {
    if index == 0 || index > format::MAX_INDEX {
        return Err(OpError::Range {
            what: "index",
            value: u64::from(index),
            max: format::MAX_INDEX,
        });
    }
    Ok(())
}

/// Checks a lock count against `sfex_init`'s range (1..=999).
pub fn check_numlocks(numlocks: u32) -> Result<(), OpError> {
    if numlocks == 0 || numlocks > MAX_NUMLOCKS {
        return Err(OpError::Range {
            what: "numlocks",
            value: u64::from(numlocks),
            max: MAX_NUMLOCKS,
        });
    }
    Ok(())
}

/// Opens a device and checks its control block for lock `index`, as the
/// original tools do before anything else: magic, format, version, then
/// index ≤ numlocks, then stored block size == logical sector size.
pub fn open_checked(
    path: &Path,
    index: u32,
    engine: EngineKind,
    writable: bool,
) -> Result<(Device, ControlBlock), OpError> {
    check_index(index)?;
    let mut dev = if writable {
        Device::open(path, engine)?
    } else {
        Device::open_read_only(path, engine)?
    };
    let cb = read_control(&mut dev, path)?;
    format::check_geometry(&cb, index, dev.sector_size()).map_err(|source| OpError::Geometry {
        path: path.display().to_string(),
        source,
    })?;
    Ok((dev, cb))
}

/// Reads lock `index`.
pub fn read_lock(dev: &mut dyn BlockIo, index: u32) -> Result<LockBlock, String> {
    let b = dev
        .read_block(u64::from(index))
        .map_err(|e| e.to_string())?;
    format::decode_lock(&b).map_err(|e| e.to_string())
}

/// Formats a device with `numlocks` locks, like `sfex_init -n`, but checks
/// first: the device must be large enough; an existing sfex device is only
/// re-initialised with `force`, and never while one of its locks is held.
/// Lock blocks are written first and the control block last, so an
/// interrupted init never leaves a control block over unwritten locks.
pub fn init(dev: &mut dyn BlockIo, path: &Path, numlocks: u32, force: bool) -> Result<(), OpError> {
    let size = dev.size_bytes();
    check_numlocks(numlocks)?;
    let block = dev.block_size();
    let need = format::required_size(numlocks, block);
    if need > size {
        return Err(OpError::TooSmall {
            path: path.display().to_string(),
            numlocks,
            need,
            blocks: u64::from(numlocks) + 1,
            block,
            size,
        });
    }
    let existing = dev.read_block(0)?;
    if existing[..4] == format::MAGIC {
        if let Ok(cb) = format::decode_control(&existing) {
            // Refuse while any lock of the old layout is held (alive or not:
            // the operator clears a dead node's lock with `unlock --force`).
            let old = u32::try_from(cb.numlocks.clamp(0, 999)).unwrap_or(0);
            let readable = u64::from(old).min(size / u64::from(block) - 1);
            for i in 1..=u32::try_from(readable).unwrap_or(0) {
                if let Ok(lb) = read_lock(dev, i) {
                    if lb.status == Status::Locked {
                        return Err(OpError::Held {
                            path: path.display().to_string(),
                            index: i,
                            holder: lb.nodename,
                            count: lb.count,
                        });
                    }
                }
            }
            if !force {
                return Err(OpError::AlreadyInitialised {
                    path: path.display().to_string(),
                    numlocks: cb.numlocks,
                });
            }
        } else if !force {
            return Err(OpError::AlreadyInitialised {
                path: path.display().to_string(),
                numlocks: -1,
            });
        }
    }
    let fresh = format::encode_lock(&LockBlock::fresh(), block as usize);
    for i in 1..=numlocks {
        dev.write_block(u64::from(i), &fresh)?;
    }
    dev.write_block(
        0,
        &format::encode_control(&ControlBlock::new(block, numlocks), block as usize),
    )?;
    Ok(())
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The device.
    pub device: String,
    /// The engine used.
    pub engine: EngineKind,
    /// The control block.
    pub control: ControlBlock,
    /// Lock index.
    pub index: u32,
    /// The lock block, if it could be read.
    pub lock: Option<LockBlock>,
    /// Why it could not be read.
    pub lock_error: Option<String>,
    /// The node asking.
    pub node: NodeName,
    /// True when the lock is held by `node` (exit 0).
    pub held_by_me: bool,
}

impl StatusReport {
    /// Exit code: 0 held by this node, 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.held_by_me {
            exit::OK
        } else {
            exit::NOT_MINE
        }
    }

    /// The `sfex_stat` text.
    pub fn text(&self) -> String {
        format::stat_text(&self.control, self.index, self.lock.as_ref(), &self.node)
    }
}

/// Reads the status of lock `index` (like `sfex_stat`).
pub fn status(
    path: &Path,
    index: u32,
    node: &NodeName,
    engine: EngineKind,
) -> Result<StatusReport, OpError> {
    let (mut dev, control) = open_checked(path, index, engine, false)?;
    let (lock, lock_error) = match read_lock(&mut dev, index) {
        Ok(l) => (Some(l), None),
        Err(e) => (None, Some(e)),
    };
    let held_by_me = lock.as_ref().is_some_and(|l| l.is_held_by(node));
    Ok(StatusReport {
        device: path.display().to_string(),
        engine: dev.engine(),
        control,
        index,
        lock,
        lock_error,
        node: node.clone(),
        held_by_me,
    })
}

/// What `unlock` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnlockOutcome {
    /// Status set to `u`, count and name kept.
    Released {
        /// The holder whose lock was released.
        holder: NodeName,
        /// The count kept.
        count: i32,
    },
    /// Nothing to do: the lock was not held.
    AlreadyUnlocked,
}

/// Releases lock `index` when held by `node` (or by anyone, with `force`),
/// writing the same bytes as `sfex_daemon`'s release. A live holder notices
/// at its next renewal and gives up (the original reboots).
pub fn unlock(
    dev: &mut dyn BlockIo,
    path: &Path,
    index: u32,
    node: &NodeName,
    force: bool,
) -> Result<UnlockOutcome, OpError> {
    let lb = read_lock(dev, index).map_err(|error| OpError::Lock {
        path: path.display().to_string(),
        index,
        error,
    })?;
    if lb.status == Status::Unlocked {
        return Ok(UnlockOutcome::AlreadyUnlocked);
    }
    if lb.nodename != *node && !force {
        return Err(OpError::Held {
            path: path.display().to_string(),
            index,
            holder: lb.nodename,
            count: lb.count,
        });
    }
    let released = LockBlock {
        status: Status::Unlocked,
        ..lb.clone()
    };
    dev.write_block(
        u64::from(index),
        &format::encode_lock(&released, dev.block_size() as usize),
    )?;
    Ok(UnlockOutcome::Released {
        holder: lb.nodename,
        count: lb.count,
    })
}

/// One block in a dump.
#[derive(Debug, Clone, Serialize)]
pub struct DumpBlock {
    /// Block index (0 = control).
    pub index: u64,
    /// Byte offset.
    pub offset: u64,
    /// Decoded lock block (for index ≥ 1), if it decodes.
    pub lock: Option<LockBlock>,
    /// Decode error, if any.
    pub error: Option<String>,
    /// Hex of the bytes up to the last non-zero byte (the rest is zero).
    pub hex: String,
    /// Bytes in the block.
    pub len: usize,
}

/// Hex of `b` up to its last non-zero byte.
pub fn trimmed_hex(b: &[u8]) -> String {
    let end = b.iter().rposition(|&x| x != 0).map_or(0, |p| p + 1);
    b[..end].iter().map(|x| format!("{x:02x}")).collect()
}

/// xxd-style hex dump lines of `b` at `base`, with runs of zero lines
/// collapsed into `*`.
pub fn hexdump(b: &[u8], base: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut skipping = false;
    for (i, chunk) in b.chunks(16).enumerate() {
        let zero = chunk.iter().all(|&x| x == 0);
        if zero && i > 0 {
            if !skipping {
                out.push("*".to_string());
                skipping = true;
            }
            continue;
        }
        skipping = false;
        let hex: Vec<String> = chunk.iter().map(|x| format!("{x:02x}")).collect();
        let ascii: String = chunk
            .iter()
            .map(|&x| {
                if x.is_ascii_graphic() || x == b' ' {
                    x as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push(format!(
            "{:08x}: {:<47}  {}",
            base + (i as u64) * 16,
            hex.join(" "),
            ascii
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::MemDisk;

    fn name(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }

    #[test]
    fn init_checks_before_writing() {
        let p = Path::new("mem");
        let mut d = MemDisk::new(512, 4);
        let before = d.peek(0);
        let err = init(&mut d, p, 5, false).unwrap_err();
        assert!(matches!(err, OpError::TooSmall { need: 3072, .. }), "{err}");
        assert_eq!(d.peek(0), before, "nothing written");
        assert!(matches!(
            init(&mut d, p, 0, false),
            Err(OpError::Range { .. })
        ));
        init(&mut d, p, 3, false).unwrap();
        assert_eq!(
            format::decode_control(&d.peek(0)).unwrap(),
            ControlBlock::new(512, 3)
        );
        // already an sfex device: refused without --force
        let err = init(&mut d, p, 1, false).unwrap_err();
        assert!(
            matches!(err, OpError::AlreadyInitialised { numlocks: 3, .. }),
            "{err}"
        );
        assert_eq!(err.exit_code(), exit::ERROR);
        // a held lock refuses even --force
        let held = LockBlock {
            status: Status::Locked,
            count: 4,
            nodename: name("b"),
        };
        d.poke(2, &format::encode_lock(&held, 512));
        let err = init(&mut d, p, 1, true).unwrap_err();
        assert!(matches!(err, OpError::Held { index: 2, .. }), "{err}");
        assert_eq!(err.exit_code(), exit::NOT_MINE);
        // released: --force re-initialises
        d.poke(2, &format::encode_lock(&LockBlock::fresh(), 512));
        init(&mut d, p, 1, true).unwrap();
        assert_eq!(format::decode_control(&d.peek(0)).unwrap().numlocks, 1);
    }

    #[test]
    fn unlock_only_our_own_unless_forced() {
        let p = Path::new("mem");
        let mut d = MemDisk::new(512, 2);
        let held = LockBlock {
            status: Status::Locked,
            count: 12,
            nodename: name("b"),
        };
        d.poke(1, &format::encode_lock(&held, 512));
        let err = unlock(&mut d, p, 1, &name("a"), false).unwrap_err();
        assert!(matches!(err, OpError::Held { .. }));
        assert_eq!(format::decode_lock(&d.peek(1)).unwrap(), held, "untouched");
        assert_eq!(
            unlock(&mut d, p, 1, &name("b"), false).unwrap(),
            UnlockOutcome::Released {
                holder: name("b"),
                count: 12
            }
        );
        // the original's release bytes: u, same count, same name
        assert_eq!(&d.peek(1)[..7], b"u12\0\0b\0");
        assert_eq!(
            unlock(&mut d, p, 1, &name("a"), false).unwrap(),
            UnlockOutcome::AlreadyUnlocked
        );
    }

    #[test]
    fn hexdump_collapses_zero_runs() {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"SFEX");
        b[48] = b'u';
        let lines = hexdump(&b, 0x200);
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("00000200: 53 46 45 58 00"),
            "{}",
            lines[0]
        );
        assert!(lines[0].ends_with("SFEX............"));
        assert_eq!(lines[1], "*");
        assert!(lines[2].starts_with("00000230: 75"));
        assert_eq!(trimmed_hex(&b[..8]), "53464558");
    }
}
