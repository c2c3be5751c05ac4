//! The io-uring engine: one submission per block transfer, waited for at once
//! on the calling thread (the io-uring crate's API is synchronous).

use std::io;
use std::os::unix::io::RawFd;

use io_uring::{IoUring, opcode, types};

use super::AlignedBuf;

/// A small ring used for one transfer at a time.
pub(super) struct Ring {
    ring: IoUring,
    /// Set when a transfer's completion could not be collected: the kernel
    /// may still own a buffer, so the ring must never be used again.
    poisoned: bool,
}

impl Ring {
    /// Sets up a ring; fails when the kernel refuses io_uring.
    pub(super) fn new() -> io::Result<Self> {
        let ring = IoUring::new(4)?;
        Ok(Self {
            ring,
            poisoned: false,
        })
    }

    pub(super) fn read(
        &mut self,
        fd: RawFd,
        buf: &mut AlignedBuf,
        offset: u64,
    ) -> io::Result<usize> {
        let len = u32::try_from(buf.as_slice().len()).map_err(io::Error::other)?;
        let sqe = opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), len)
            .offset(offset)
            .build();
        self.run(sqe, buf)
    }

    pub(super) fn write(
        &mut self,
        fd: RawFd,
        buf: &mut AlignedBuf,
        offset: u64,
    ) -> io::Result<usize> {
        let len = u32::try_from(buf.as_slice().len()).map_err(io::Error::other)?;
        let sqe = opcode::Write::new(types::Fd(fd), buf.as_mut_ptr().cast_const(), len)
            .offset(offset)
            .build();
        self.run(sqe, buf)
    }

    /// Submits one entry that refers to `buf` and waits for its completion.
    /// `buf` is borrowed mutably for the whole call, so it cannot be freed or
    /// touched while the kernel uses it.
    fn run(&mut self, sqe: io_uring::squeue::Entry, buf: &mut AlignedBuf) -> io::Result<usize> {
        if self.poisoned {
            return Err(io::Error::other(
                "io_uring ring unusable after an earlier failure",
            ));
        }
        let sqe = sqe.user_data(0x5fe4);
        // SAFETY: the entry points into `buf`, which is exclusively borrowed
        // until this function returns, and we do not return while the
        // operation may be in flight: we wait for its completion below, and
        // if waiting fails the buffer is leaked rather than freed.
        unsafe { self.ring.submission().push(&sqe) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // The kernel may still write into the buffer: never free it.
                    self.poisoned = true;
                    let leaked =
                        std::mem::replace(buf, AlignedBuf::new(buf.as_slice().len(), 4096)?);
                    std::mem::forget(leaked);
                    return Err(e);
                }
            }
            if let Some(cqe) = self.ring.completion().next() {
                let res = cqe.result();
                return if res < 0 {
                    Err(io::Error::from_raw_os_error(-res))
                } else {
                    usize::try_from(res).map_err(io::Error::other)
                };
            }
        }
    }
}
