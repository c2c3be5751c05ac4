//! Block devices for the lease, opened with `O_DIRECT | O_SYNC` and accessed
//! one whole logical sector at a time, as the original sfex tools do.
//!
//! Two engines sit behind one [`Device`] type:
//! - **sync**: `pread`/`pwrite` on the O_DIRECT descriptor;
//! - **uring**: one io_uring submission per block, waited for at once.
//!
//! The io-uring engine is the default. When the kernel refuses a ring
//! (seccomp, `kernel.io_uring_disabled`, old kernels) the device falls back
//! to the sync engine with a warning; [`Device::engine`] says which one runs.
//!
//! Buffers are aligned to the larger of the device's logical block size
//! (queried with `BLKSSZGET`, never assumed) and the page size, and are
//! exactly one block long.
//!
//! All calls block the calling thread: run them on a thread of their own,
//! never on an async runtime's workers ([`crate::holder`] does this).
//!
//! This is the only module of hapair with `unsafe` code: the aligned buffer,
//! two ioctls and io_uring submissions. Every block says why it is sound.

mod mem;
mod uring;

use std::alloc::{self, Layout};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

pub use mem::{MemDisk, MemFault};

/// Which I/O engine to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Plain `pread`/`pwrite` on the O_DIRECT descriptor.
    Sync,
    /// io_uring, falling back to `Sync` with a warning when refused.
    #[default]
    Uring,
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineKind::Sync => "sync",
            EngineKind::Uring => "uring",
        })
    }
}

impl std::str::FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sync" => Ok(EngineKind::Sync),
            "uring" | "io-uring" | "io_uring" => Ok(EngineKind::Uring),
            _ => Err(format!("unknown engine {s:?}: use sync or uring")),
        }
    }
}

/// Errors of device access. Each names the device and, for I/O, the offset.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// open(2) failed (missing, permission, read-only medium for a writer...).
    #[error("can't open device {path}: {source}")]
    Open {
        /// The device.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Not a block device: the sector size cannot be queried.
    #[error("{path} is not a block device (sfex needs the logical sector size from BLKSSZGET)")]
    NotBlockDevice {
        /// The path.
        path: PathBuf,
    },
    /// A size ioctl failed.
    #[error("can't query {what} of {path}: {source}")]
    Ioctl {
        /// Which property.
        what: &'static str,
        /// The device.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A read or write failed.
    #[error("can't {op} {len} bytes at offset {offset} of {path}: {source}")]
    Io {
        /// "read" or "write".
        op: &'static str,
        /// Byte offset.
        offset: u64,
        /// Bytes asked for.
        len: usize,
        /// The device.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A transfer moved fewer bytes than one block.
    #[error("can't {op} meta-data atomically: {done} of {len} bytes at offset {offset} of {path}")]
    Short {
        /// "read" or "write".
        op: &'static str,
        /// Byte offset.
        offset: u64,
        /// Bytes moved.
        done: usize,
        /// Bytes asked for.
        len: usize,
        /// The device.
        path: PathBuf,
    },
    /// The block lies past the end of the device.
    #[error("block {index} (offset {offset}) is past the end of {path} ({size} bytes)")]
    PastEnd {
        /// Block index.
        index: u64,
        /// Byte offset.
        offset: u64,
        /// Device size.
        size: u64,
        /// The device.
        path: PathBuf,
    },
    /// The data to write is not exactly one block.
    #[error("write of {len} bytes to {path}: must be exactly one {block}-byte block")]
    BadLength {
        /// Bytes given.
        len: usize,
        /// Block size.
        block: u32,
        /// The device.
        path: PathBuf,
    },
    /// The block device itself is read-only (`BLKROGET`), so it cannot hold a lock.
    #[error("can't open device {path} for writing: the block device is read-only")]
    ReadOnlyDevice {
        /// The device.
        path: PathBuf,
    },
    /// The device was opened read-only.
    #[error("{path} was opened read-only")]
    ReadOnly {
        /// The device.
        path: PathBuf,
    },
}

/// Whole-block access, implemented by [`Device`] and by the in-memory
/// [`MemDisk`] used in unit tests of pure logic.
pub trait BlockIo: Send {
    /// Size of one block in bytes (the device's logical sector size).
    fn block_size(&self) -> u32;
    /// Size of the device in bytes.
    fn size_bytes(&self) -> u64;
    /// Reads block `index` (0 = control block).
    fn read_block(&mut self, index: u64) -> Result<Vec<u8>, DevError>;
    /// Writes block `index`; `data` must be exactly one block.
    fn write_block(&mut self, index: u64, data: &[u8]) -> Result<(), DevError>;
}

/// Private ioctl wrappers: one safe function per ioctl.
mod ioctl {
    use std::fs::File;
    use std::io;
    use std::os::unix::io::AsRawFd;

    nix::ioctl_read_bad!(blksszget, 0x1268, libc::c_int);
    nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
    nix::ioctl_read_bad!(blkroget, 0x125e, libc::c_int);

    /// True when the block device is read-only (`BLKROGET`).
    pub(super) fn read_only(f: &File) -> io::Result<bool> {
        let mut v: libc::c_int = 0;
        // SAFETY: BLKROGET writes one c_int through the pointer, which points
        // to a live local; the descriptor is open for the duration of the call.
        unsafe { blkroget(f.as_raw_fd(), &mut v) }.map_err(io::Error::from)?;
        Ok(v != 0)
    }

    /// The logical sector size (`BLKSSZGET`).
    pub(super) fn logical_block_size(f: &File) -> io::Result<u32> {
        let mut v: libc::c_int = 0;
        // SAFETY: BLKSSZGET writes one c_int through the pointer, which points
        // to a live local; the descriptor is open for the duration of the call.
        unsafe { blksszget(f.as_raw_fd(), &mut v) }.map_err(io::Error::from)?;
        u32::try_from(v).map_err(|_| io::Error::other(format!("negative sector size {v}")))
    }

    /// The device size in bytes (`BLKGETSIZE64`).
    pub(super) fn size_bytes(f: &File) -> io::Result<u64> {
        let mut v: u64 = 0;
        // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points
        // to a live local; the descriptor is open for the duration of the call.
        unsafe { blkgetsize64(f.as_raw_fd(), &mut v) }.map_err(io::Error::from)?;
        Ok(v)
    }
}

/// A heap buffer of `len` bytes aligned to `align`, zero-initialised, for
/// O_DIRECT transfers.
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like a Box<[u8]>; it has
// no thread-affine state.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// Allocates a zeroed buffer. `align` must be a power of two.
    pub(crate) fn new(len: usize, align: usize) -> io::Result<Self> {
        let layout = Layout::from_size_align(len.max(1), align)
            .map_err(|e| io::Error::other(format!("bad buffer layout {len}/{align}: {e}")))?;
        // SAFETY: the layout has a non-zero size (len.max(1)).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(|| io::Error::other("out of memory"))?;
        Ok(Self { ptr, layout })
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr points to layout.size() initialised (zeroed at
        // allocation) bytes owned by self, borrowed immutably for &self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: ptr was returned by alloc_zeroed with exactly this layout
        // and is freed only here, once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AlignedBuf({} bytes, align {})",
            self.layout.size(),
            self.layout.align()
        )
    }
}

enum Engine {
    Sync,
    Uring(Box<uring::Ring>),
}

/// A block device opened for sfex: O_DIRECT (and O_SYNC when writable),
/// with its logical sector size and size queried at open.
pub struct Device {
    file: File,
    path: PathBuf,
    sector: u32,
    size: u64,
    writable: bool,
    buf: AlignedBuf,
    engine: Engine,
    fallback: Option<String>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("path", &self.path)
            .field("sector", &self.sector)
            .field("size", &self.size)
            .field("engine", &self.engine())
            .finish()
    }
}

impl Device {
    /// Opens `path` read-write (`O_RDWR | O_DIRECT | O_SYNC`), as the
    /// original tools do, with the requested engine.
    pub fn open(path: &Path, kind: EngineKind) -> Result<Self, DevError> {
        Self::open_with(path, kind, true)
    }

    /// Opens `path` read-only (`O_RDONLY | O_DIRECT`), for the read commands
    /// (status, dump, watch), so a read-only device can still be inspected.
    pub fn open_read_only(path: &Path, kind: EngineKind) -> Result<Self, DevError> {
        Self::open_with(path, kind, false)
    }

    fn open_with(path: &Path, kind: EngineKind, writable: bool) -> Result<Self, DevError> {
        let mut flags = libc::O_DIRECT;
        if writable {
            flags |= libc::O_SYNC;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .custom_flags(flags)
            .open(path)
            .map_err(|source| DevError::Open {
                path: path.to_owned(),
                source,
            })?;
        let meta = file.metadata().map_err(|source| DevError::Open {
            path: path.to_owned(),
            source,
        })?;
        if !meta.file_type().is_block_device() {
            return Err(DevError::NotBlockDevice {
                path: path.to_owned(),
            });
        }
        let ioctl_err = |what| {
            move |source| DevError::Ioctl {
                what,
                path: path.to_owned(),
                source,
            }
        };
        let sector = ioctl::logical_block_size(&file).map_err(ioctl_err("sector size"))?;
        let size = ioctl::size_bytes(&file).map_err(ioctl_err("size"))?;
        if writable && ioctl::read_only(&file).map_err(ioctl_err("read-only flag"))? {
            return Err(DevError::ReadOnlyDevice {
                path: path.to_owned(),
            });
        }
        if sector == 0 || !sector.is_power_of_two() {
            return Err(DevError::Ioctl {
                what: "sector size",
                path: path.to_owned(),
                source: io::Error::other(format!("unusable logical sector size {sector}")),
            });
        }
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|p| usize::try_from(p).ok())
            .unwrap_or(4096);
        let align = page.max(sector as usize);
        let buf = AlignedBuf::new(sector as usize, align).map_err(|source| DevError::Open {
            path: path.to_owned(),
            source,
        })?;
        let (engine, fallback) = match kind {
            EngineKind::Sync => (Engine::Sync, None),
            EngineKind::Uring => match uring::Ring::new() {
                Ok(r) => (Engine::Uring(Box::new(r)), None),
                Err(e) => {
                    let why = format!(
                        "io_uring unavailable ({e}); falling back to O_DIRECT pread/pwrite"
                    );
                    tracing::warn!(device = %path.display(), "{why}");
                    (Engine::Sync, Some(why))
                }
            },
        };
        Ok(Self {
            file,
            path: path.to_owned(),
            sector,
            size,
            writable,
            buf,
            engine,
            fallback,
        })
    }

    /// The device path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Logical sector size in bytes (`BLKSSZGET`).
    pub fn sector_size(&self) -> u32 {
        self.sector
    }

    /// Size of the device in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The engine actually in use.
    pub fn engine(&self) -> EngineKind {
        match self.engine {
            Engine::Sync => EngineKind::Sync,
            Engine::Uring(_) => EngineKind::Uring,
        }
    }

    /// Why io_uring was not used, when it was asked for and refused.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    fn offset_of(&self, index: u64) -> Result<u64, DevError> {
        let block = u64::from(self.sector);
        let offset = index.saturating_mul(block);
        if offset.saturating_add(block) > self.size {
            return Err(DevError::PastEnd {
                index,
                offset,
                size: self.size,
                path: self.path.clone(),
            });
        }
        Ok(offset)
    }

    fn io_err(&self, op: &'static str, offset: u64, source: io::Error) -> DevError {
        DevError::Io {
            op,
            offset,
            len: self.sector as usize,
            path: self.path.clone(),
            source,
        }
    }

    fn check_len(&self, op: &'static str, offset: u64, done: usize) -> Result<(), DevError> {
        let len = self.sector as usize;
        if done == len {
            Ok(())
        } else {
            Err(DevError::Short {
                op,
                offset,
                done,
                len,
                path: self.path.clone(),
            })
        }
    }
}

fn off_t(offset: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(offset).map_err(|_| io::Error::other("offset overflows off_t"))
}

impl BlockIo for Device {
    fn block_size(&self) -> u32 {
        self.sector
    }

    fn size_bytes(&self) -> u64 {
        self.size
    }

    fn read_block(&mut self, index: u64) -> Result<Vec<u8>, DevError> {
        let offset = self.offset_of(index)?;
        let fd = self.file.as_raw_fd();
        let done = match &mut self.engine {
            Engine::Sync => off_t(offset).and_then(|off| {
                nix::sys::uio::pread(&self.file, self.buf.as_mut_slice(), off)
                    .map_err(io::Error::from)
            }),
            Engine::Uring(ring) => ring.read(fd, &mut self.buf, offset),
        }
        .map_err(|e| self.io_err("read", offset, e))?;
        self.check_len("read", offset, done)?;
        Ok(self.buf.as_slice().to_vec())
    }

    fn write_block(&mut self, index: u64, data: &[u8]) -> Result<(), DevError> {
        if !self.writable {
            return Err(DevError::ReadOnly {
                path: self.path.clone(),
            });
        }
        if data.len() != self.sector as usize {
            return Err(DevError::BadLength {
                len: data.len(),
                block: self.sector,
                path: self.path.clone(),
            });
        }
        let offset = self.offset_of(index)?;
        self.buf.as_mut_slice().copy_from_slice(data);
        let fd = self.file.as_raw_fd();
        let done = match &mut self.engine {
            Engine::Sync => off_t(offset).and_then(|off| {
                nix::sys::uio::pwrite(&self.file, self.buf.as_slice(), off).map_err(io::Error::from)
            }),
            Engine::Uring(ring) => ring.write(fd, &mut self.buf, offset),
        }
        .map_err(|e| self.io_err("write", offset, e))?;
        self.check_len("write", offset, done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffer_is_aligned_and_zeroed() {
        for (len, align) in [(512, 4096), (4096, 4096), (4096, 8192)] {
            let mut b = AlignedBuf::new(len, align).unwrap();
            assert_eq!(b.as_mut_ptr() as usize % align, 0);
            assert_eq!(b.as_slice().len(), len);
            assert!(b.as_slice().iter().all(|&x| x == 0));
            b.as_mut_slice()[len - 1] = 7;
            assert_eq!(b.as_slice()[len - 1], 7);
        }
        assert!(AlignedBuf::new(512, 3000).is_err());
    }

    #[test]
    fn engine_names_parse() {
        assert_eq!("sync".parse::<EngineKind>(), Ok(EngineKind::Sync));
        assert_eq!("io_uring".parse::<EngineKind>(), Ok(EngineKind::Uring));
        assert!("aio".parse::<EngineKind>().is_err());
        assert_eq!(EngineKind::default(), EngineKind::Uring);
    }

    #[test]
    fn regular_file_is_refused_like_the_original() {
        let f = tempfile::NamedTempFile::new_in("/var/tmp").unwrap();
        f.as_file().set_len(8192).unwrap();
        let err = Device::open(f.path(), EngineKind::Sync).unwrap_err();
        // tmpfs may refuse O_DIRECT at open; a disk-backed file reaches the check
        assert!(
            matches!(err, DevError::NotBlockDevice { .. } | DevError::Open { .. }),
            "{err}"
        );
    }

    #[test]
    fn missing_device_names_the_path() {
        let err =
            Device::open(Path::new("/dev/does-not-exist-sfex"), EngineKind::Uring).unwrap_err();
        assert!(
            err.to_string().contains("/dev/does-not-exist-sfex"),
            "{err}"
        );
        assert!(matches!(err, DevError::Open { .. }));
    }
}
