//! The daemon main loop's one timer, on a timerfd.
//!
//! tokio's timer wheel keeps deadlines beyond 64 ms in coarser slots and
//! wakes the thread at the slot's start to re-file them, so every such
//! deadline costs two or three wakeups; an idle daemon's CPU is mostly its
//! wakeups (README, "Daemon benchmarks"). A timerfd armed for the exact
//! deadline wakes the loop once. Like tokio's timers it takes part in the
//! task budget, so a deadline that is always already past (a busy loop)
//! still lets the runtime's other tasks run.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

#[derive(Debug)]
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A one-shot timer on CLOCK_MONOTONIC (the clock tokio's `Instant` and the
/// daemon's `Clock` read), registered with the tokio reactor.
#[derive(Debug)]
pub struct WakeTimer {
    fd: AsyncFd<Fd>,
}

impl WakeTimer {
    /// A disarmed timer. Must be called inside a tokio runtime.
    pub fn new() -> io::Result<WakeTimer> {
        let t = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // tokio 1.54 deprecates the safe constructor for the I/O-safety
        // rule stated by its replacement, `register_with_interest` (an
        // unsafe function): the fd must stay open and the same while
        // registered. It does: `Fd` owns the
        // timerfd and always returns that one descriptor; the rule of this
        // workspace keeps `unsafe` out of here.
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(Fd(t), Interest::READABLE)?;
        Ok(WakeTimer { fd })
    }

    /// Arms the timer to fire `after` from now, replacing any earlier
    /// setting (an expiry not yet waited for is forgotten). Zero fires at
    /// once (a zero timerfd setting would disarm it instead).
    pub fn arm(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_micros(1));
        self.fd.get_ref().0.set(
            Expiration::OneShot(TimeSpec::from_duration(after)),
            TimerSetTimeFlags::empty(),
        )?;
        Ok(())
    }

    /// Waits until the armed expiry passes. Cancel-safe: dropped before it
    /// fires, nothing is consumed.
    pub async fn fired(&self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| fd.get_ref().0.wait().map_err(io::Error::from)) {
                Ok(r) => {
                    // readiness of an fd takes no part in tokio's task
                    // budget: a timer armed in the past again and again
                    // would never let the runtime's other tasks (and
                    // timers) run; this does, as tokio's own sleep does
                    tokio::task::consume_budget().await;
                    return r;
                }
                Err(_would_block) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WakeTimer;
    use std::time::{Duration, Instant};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn fires_once_at_the_deadline_and_rearming_replaces_it() {
        rt().block_on(async {
            let t = WakeTimer::new().unwrap();
            let start = Instant::now();
            t.arm(Duration::from_millis(80)).unwrap();
            t.fired().await.unwrap();
            assert!(start.elapsed() >= Duration::from_millis(80));
            // re-armed before the first expiry: only the second counts
            let start = Instant::now();
            t.arm(Duration::from_secs(60)).unwrap();
            t.arm(Duration::from_millis(30)).unwrap();
            t.fired().await.unwrap();
            let took = start.elapsed();
            assert!(took >= Duration::from_millis(30), "{took:?}");
            assert!(took < Duration::from_secs(30), "{took:?}");
            // not re-armed: it does not fire again
            let again = tokio::time::timeout(Duration::from_millis(100), t.fired()).await;
            assert!(again.is_err(), "fired without being armed");
            // zero fires at once rather than disarming
            t.arm(Duration::ZERO).unwrap();
            tokio::time::timeout(Duration::from_secs(5), t.fired())
                .await
                .expect("a zero timeout fires")
                .unwrap();
        });
    }

    #[test]
    fn a_wait_dropped_by_select_leaves_the_expiry_for_the_next() {
        rt().block_on(async {
            let t = WakeTimer::new().unwrap();
            let start = Instant::now();
            t.arm(Duration::from_millis(150)).unwrap();
            // another branch wins while the wait is pending, as in the
            // daemon's select loop
            tokio::select! {
                _ = t.fired() => panic!("fired early"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            tokio::time::timeout(Duration::from_secs(5), t.fired())
                .await
                .expect("the expiry still comes")
                .unwrap();
            assert!(start.elapsed() >= Duration::from_millis(150));
        });
    }
}
