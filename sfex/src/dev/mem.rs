//! An in-memory disk shared by several handles, with injectable faults, for
//! unit tests of pure logic and of the holder loop. Never the only test of an
//! I/O path: the real paths are tested on loop devices.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{BlockIo, DevError};

/// A fault applied to every transfer until cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemFault {
    /// Transfers succeed.
    #[default]
    None,
    /// Reads and writes fail with EIO.
    Fail,
    /// Reads and writes take this long (the thread sleeps), then succeed.
    Slow(Duration),
}

#[derive(Debug)]
struct Inner {
    data: Vec<u8>,
    fault: MemFault,
}

/// A handle on a shared in-memory disk; clones see the same bytes.
#[derive(Debug, Clone)]
pub struct MemDisk {
    block: u32,
    inner: Arc<Mutex<Inner>>,
}

impl MemDisk {
    /// A zeroed disk of `blocks` blocks of `block` bytes.
    pub fn new(block: u32, blocks: u64) -> Self {
        let len = usize::try_from(u64::from(block) * blocks).expect("disk fits in memory");
        Self {
            block,
            inner: Arc::new(Mutex::new(Inner {
                data: vec![0; len],
                fault: MemFault::None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the fault applied to later transfers.
    pub fn set_fault(&self, fault: MemFault) {
        self.lock().fault = fault;
    }

    /// A copy of block `index`, bypassing faults (for assertions).
    pub fn peek(&self, index: u64) -> Vec<u8> {
        let (s, e) = self.span(index).expect("block in range");
        self.lock().data[s..e].to_vec()
    }

    /// Overwrites block `index`, bypassing faults (to play another writer).
    pub fn poke(&self, index: u64, data: &[u8]) {
        let (s, e) = self.span(index).expect("block in range");
        self.lock().data[s..e].copy_from_slice(data);
    }

    fn span(&self, index: u64) -> Option<(usize, usize)> {
        let s = usize::try_from(index.checked_mul(u64::from(self.block))?).ok()?;
        let e = s.checked_add(self.block as usize)?;
        (e <= self.lock().data.len()).then_some((s, e))
    }

    fn fault(&self, op: &'static str, index: u64) -> Result<(), DevError> {
        let fault = self.lock().fault;
        match fault {
            MemFault::None => Ok(()),
            MemFault::Slow(d) => {
                std::thread::sleep(d);
                Ok(())
            }
            MemFault::Fail => Err(DevError::Io {
                op,
                offset: index * u64::from(self.block),
                len: self.block as usize,
                path: PathBuf::from("mem"),
                source: io::Error::from_raw_os_error(libc::EIO),
            }),
        }
    }

    fn past_end(&self, index: u64) -> DevError {
        DevError::PastEnd {
            index,
            offset: index.saturating_mul(u64::from(self.block)),
            size: self.lock().data.len() as u64,
            path: PathBuf::from("mem"),
        }
    }
}

impl BlockIo for MemDisk {
    fn block_size(&self) -> u32 {
        self.block
    }

    fn size_bytes(&self) -> u64 {
        self.lock().data.len() as u64
    }

    fn read_block(&mut self, index: u64) -> Result<Vec<u8>, DevError> {
        self.fault("read", index)?;
        let (s, e) = self.span(index).ok_or_else(|| self.past_end(index))?;
        Ok(self.lock().data[s..e].to_vec())
    }

    fn write_block(&mut self, index: u64, data: &[u8]) -> Result<(), DevError> {
        self.fault("write", index)?;
        if data.len() != self.block as usize {
            return Err(DevError::BadLength {
                len: data.len(),
                block: self.block,
                path: "mem".into(),
            });
        }
        let (s, e) = self.span(index).ok_or_else(|| self.past_end(index))?;
        self.lock().data[s..e].copy_from_slice(data);
        Ok(())
    }
}
