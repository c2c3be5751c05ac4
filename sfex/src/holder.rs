//! Runs the pure [`Lease`] machine against a block device.
//!
//! The device I/O runs on a thread of its own; the calling thread keeps the
//! clock and the deadline. So when the disk hangs (a read stuck in D state),
//! the caller still learns at the deadline that the lease is lost, and can
//! stop or fence, while the stuck I/O thread is abandoned.
//!
//! The clock is `std::time::Instant` (monotonic), read only here and in the
//! CLI; the machine itself gets time as an input.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use crate::dev::BlockIo;
use crate::format::{self, LockBlock};
use crate::lease::{Action, Config, Event, Input, IoFailure, Lease, Millis};

enum Msg {
    Read(Result<LockBlock, IoFailure>),
    Wrote(Result<(), IoFailure>),
    Release,
}

enum Req {
    Read,
    Write(LockBlock),
}

/// Asks a running holder to release the lock (as SIGTERM does to sfex_daemon).
#[derive(Debug, Clone)]
pub struct ReleaseHandle(Sender<Msg>);

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Read(_) => "Read",
            Msg::Wrote(_) => "Wrote",
            Msg::Release => "Release",
        })
    }
}

impl ReleaseHandle {
    /// Requests the release; the holder finishes with `Released` or `NotHeld`.
    pub fn release(&self) {
        // The holder may already have finished: nothing to release then.
        let _ = self.0.send(Msg::Release);
    }
}

/// A lease bound to lock `index` of a device, ready to [`run`](Holder::run).
pub struct Holder {
    lease: Lease,
    index: u32,
    io: Sender<Req>,
    rx: Receiver<Msg>,
    tx: Sender<Msg>,
    epoch: Instant,
}

impl std::fmt::Debug for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Holder")
            .field("index", &self.index)
            .field("lease", &self.lease)
            .finish()
    }
}

impl Holder {
    /// Moves `dev` to a new I/O thread. The control block must already have
    /// been checked (index within numlocks, block size equal to sector size).
    pub fn new(mut dev: Box<dyn BlockIo>, index: u32, cfg: Config) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let (io, io_rx) = mpsc::channel::<Req>();
        let back = tx.clone();
        let block = dev.block_size();
        thread::Builder::new()
            .name(format!("sfex-io-{index}"))
            .spawn(move || {
                for req in io_rx {
                    let msg = match req {
                        Req::Read => Msg::Read(
                            dev.read_block(u64::from(index))
                                .map_err(|e| IoFailure::io(e.to_string()))
                                .and_then(|b| {
                                    format::decode_lock(&b)
                                        .map_err(|e| IoFailure::corrupt(e.to_string()))
                                }),
                        ),
                        Req::Write(lb) => Msg::Wrote(
                            dev.write_block(
                                u64::from(index),
                                &format::encode_lock(&lb, block as usize),
                            )
                            .map_err(|e| IoFailure::io(e.to_string())),
                        ),
                    };
                    if back.send(msg).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            lease: Lease::new(cfg),
            index,
            io,
            rx,
            tx,
            epoch: Instant::now(),
        })
    }

    /// A handle to request the release from another thread (signal handler).
    pub fn release_handle(&self) -> ReleaseHandle {
        ReleaseHandle(self.tx.clone())
    }

    fn now(&self) -> Millis {
        Millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// The time base of the events' `Millis` values.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Acquires, then holds and renews until released or lost. Every event
    /// goes to `on_event` as it happens; the terminal one is also returned.
    pub fn run(mut self, mut on_event: impl FnMut(&Event, Millis)) -> Event {
        let mut input = Input::Start;
        loop {
            let now = self.now();
            for action in self.lease.step(now, input) {
                match action {
                    Action::Read => self.submit(Req::Read),
                    Action::Write(lb) => self.submit(Req::Write(lb)),
                    Action::Event(ev) => {
                        on_event(&ev, now);
                        if ev.is_terminal() {
                            return ev;
                        }
                    }
                }
            }
            input = self.wait_input();
        }
    }

    fn submit(&self, req: Req) {
        // The I/O thread only ends when this holder is dropped.
        let _ = self.io.send(req);
    }

    fn wait_input(&self) -> Input {
        let msg = match self.lease.next_wake() {
            None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(wake) => {
                let wait = Duration::from_millis(wake.0.saturating_sub(self.now().0));
                self.rx.recv_timeout(wait)
            }
        };
        match msg {
            Ok(Msg::Read(r)) => Input::ReadDone(r),
            Ok(Msg::Wrote(r)) => Input::WriteDone(r),
            Ok(Msg::Release) => Input::Release,
            Err(_) => Input::Timer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::{MemDisk, MemFault};
    use crate::format::{NodeName, Status};

    fn cfg(node: &str) -> Config {
        Config {
            node: NodeName::new(node).unwrap(),
            lock_timeout: Millis(600),
            collision_timeout: Millis(50),
            monitor_interval: Millis(100),
            margin: Millis(60),
            retry_interval: Millis(30),
            wait: false,
            max_io: None,
        }
    }

    fn disk() -> MemDisk {
        let d = MemDisk::new(512, 2);
        d.poke(1, &format::encode_lock(&LockBlock::fresh(), 512));
        d
    }

    #[test]
    fn acquires_renews_and_releases() {
        let d = disk();
        let h = Holder::new(Box::new(d.clone()), 1, cfg("a")).unwrap();
        let rel = h.release_handle();
        let mut renewals = 0;
        let end = h.run(|ev, _| {
            if let Event::Renewed { .. } = ev {
                renewals += 1;
                if renewals == 3 {
                    rel.release();
                }
            }
        });
        assert_eq!(end, Event::Released { count: 5 });
        let lb = format::decode_lock(&d.peek(1)).unwrap();
        assert_eq!(
            (lb.status, lb.count, lb.nodename.to_string()),
            (Status::Unlocked, 5, "a".into())
        );
    }

    #[test]
    fn hung_disk_loses_the_lease_at_the_deadline() {
        let d = disk();
        let h = Holder::new(Box::new(d.clone()), 1, cfg("a")).unwrap();
        let epoch = h.epoch();
        let mut acquired_until = None;
        let end = h.run(|ev, _| {
            if let Event::Acquired { valid_until, .. } = ev {
                acquired_until = Some(*valid_until);
                // from now on every transfer takes far longer than the lease
                d.set_fault(MemFault::Slow(Duration::from_secs(5)));
            }
        });
        let deadline = acquired_until.expect("acquired");
        assert_eq!(
            end,
            Event::Lost(crate::lease::LostReason::DeadlineMissed { deadline })
        );
        let took = epoch.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "lost noticed after {took:?}, I/O still hung"
        );
    }

    #[test]
    fn overwritten_lock_is_noticed_at_the_next_renewal() {
        let d = disk();
        let h = Holder::new(Box::new(d.clone()), 1, cfg("a")).unwrap();
        let end = h.run(|ev, _| {
            if let Event::Acquired { .. } = ev {
                let other = LockBlock {
                    status: Status::Locked,
                    count: 50,
                    nodename: NodeName::new("b").unwrap(),
                };
                d.poke(1, &format::encode_lock(&other, 512));
            }
        });
        assert!(
            matches!(end, Event::Lost(crate::lease::LostReason::TakenOver { .. })),
            "{end:?}"
        );
    }
}
