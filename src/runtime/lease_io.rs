//! The lease's I/O thread: carries out the engine's `ReadLease` and
//! `WriteLease` on the sfex device and hands the results back.
//!
//! O_DIRECT reads and writes block, and a failing disk can keep one stuck in
//! D state for minutes. So the device lives on an OS thread of its own
//! (never a tokio worker): heartbeats, agents and the engine's timers go on
//! while an I/O hangs, and the engine, which bounds every lease I/O by
//! `max_io` and keeps the lease deadline on its own clock, stops the stack in
//! time whether or not the thread ever answers.
//!
//! One request is in flight at a time (the engine waits for each result), so
//! results come back in request order.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use sfex::dev::{BlockIo, EngineKind};
use sfex::format::{self, LockBlock};
use sfex::lease::IoFailure;
use tokio::sync::mpsc::UnboundedSender;

/// A finished lease I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDone {
    /// The lock block read (or why not).
    Read(Result<LockBlock, IoFailure>),
    /// The lock block written (or why not).
    Wrote(Result<(), IoFailure>),
}

enum Req {
    Read,
    Write(LockBlock),
}

/// Why the lease device could not be opened for the daemon.
#[derive(Debug, thiserror::Error)]
pub enum LeaseOpenError {
    /// Open, read or check of the control block failed.
    #[error("lease device {path}: {source}")]
    Device {
        /// The device.
        path: PathBuf,
        /// What failed.
        #[source]
        source: sfex::ops::OpError,
    },
    /// The thread could not be started.
    #[error("lease I/O thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// The handle the event loop keeps: requests go in here.
#[derive(Debug)]
pub struct LeaseIo {
    tx: mpsc::Sender<Req>,
    engine: EngineKind,
    fallback: Option<String>,
}

impl LeaseIo {
    /// Opens `path` (O_DIRECT, checking the control block and `index` as the
    /// sfex tools do) and starts the I/O thread; results go to `out`.
    pub fn open(
        path: &Path,
        index: u32,
        engine: EngineKind,
        out: UnboundedSender<LeaseDone>,
    ) -> Result<LeaseIo, LeaseOpenError> {
        let (dev, _cb) = sfex::ops::open_checked(path, index, engine, true).map_err(|source| {
            LeaseOpenError::Device {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let kind = dev.engine();
        let fallback = dev.fallback_reason().map(str::to_string);
        let mut io = LeaseIo::spawn(Box::new(dev), index, out)?;
        io.engine = kind;
        io.fallback = fallback;
        Ok(io)
    }

    /// Starts the I/O thread on an already checked device.
    pub fn spawn(
        mut dev: Box<dyn BlockIo>,
        index: u32,
        out: UnboundedSender<LeaseDone>,
    ) -> std::io::Result<LeaseIo> {
        let (tx, rx) = mpsc::channel::<Req>();
        let block = dev.block_size() as usize;
        thread::Builder::new()
            .name("hapair-lease".into())
            .spawn(move || {
                for req in rx {
                    let done = match req {
                        Req::Read => LeaseDone::Read(
                            dev.read_block(u64::from(index))
                                .map_err(|e| IoFailure::io(e.to_string()))
                                .and_then(|b| {
                                    format::decode_lock(&b)
                                        .map_err(|e| IoFailure::corrupt(e.to_string()))
                                }),
                        ),
                        Req::Write(lb) => LeaseDone::Wrote(
                            dev.write_block(u64::from(index), &format::encode_lock(&lb, block))
                                .map_err(|e| IoFailure::io(e.to_string())),
                        ),
                    };
                    if out.send(done).is_err() {
                        break;
                    }
                }
            })?;
        Ok(LeaseIo {
            tx,
            engine: EngineKind::Sync,
            fallback: None,
        })
    }

    /// The I/O engine in use.
    pub fn engine(&self) -> EngineKind {
        self.engine
    }

    /// Why io_uring was not used, when it was asked for and refused.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Queues a read of the lock block. `false` when the thread is gone.
    pub fn read(&self) -> bool {
        self.tx.send(Req::Read).is_ok()
    }

    /// Queues a write of `block`. `false` when the thread is gone.
    pub fn write(&self, block: LockBlock) -> bool {
        self.tx.send(Req::Write(block)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfex::dev::MemDisk;
    use sfex::format::{NodeName, Status};

    #[tokio::test(flavor = "current_thread")]
    async fn read_write_round_trip_in_order() {
        let mut disk = MemDisk::new(512, 8);
        sfex::ops::init(&mut disk, Path::new("mem"), 2, false).expect("init");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let io = LeaseIo::spawn(Box::new(disk), 1, tx).expect("spawn");
        assert!(io.read());
        let LeaseDone::Read(Ok(first)) = rx.recv().await.expect("read") else {
            panic!("read failed")
        };
        assert_eq!(first.status, Status::Unlocked);
        let block = LockBlock {
            status: Status::Locked,
            count: first.count + 1,
            nodename: NodeName::new("alpha").expect("name"),
        };
        assert!(io.write(block.clone()));
        assert!(io.read());
        assert_eq!(rx.recv().await, Some(LeaseDone::Wrote(Ok(()))));
        assert_eq!(rx.recv().await, Some(LeaseDone::Read(Ok(block))));
    }
}
