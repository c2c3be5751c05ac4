//! The sfex lock protocol as a pure state machine, with the semantics of
//! resource-agents' `sfex_daemon` (sfex-format.md section 3.3):
//!
//! ```text
//!  Start ─► read ─┬─ free / our own name ──────────────► claim (l, count+1)
//!                 └─ held by another ─► wait lock_timeout ─► read again
//!                        count changed: HeldElsewhere (or, with `wait`,
//!                        keep polling until the count stands still)
//!                        count unchanged: stale ─────────► claim
//!  claim ─► wait collision_timeout ─► read: name not ours ─► Collision
//!                                          ours ─► extend (count+1) ─► Held
//!  Held ─► every monitor_interval: read, must be ours with the count we
//!          wrote ─► write count+1.  Release: read, ours ─► write u (same count)
//! ```
//!
//! Time is an input ([`Millis`], a monotonic clock of the caller's choice) and
//! I/O results are inputs; outputs are I/O requests and events. The machine
//! never reads a clock, sleeps or touches a device, so it is tested without a
//! disk and reused by the hapair daemon.
//!
//! **Deadline.** The sfex protocol has no shared clock: a contender takes the
//! lock once the counter it reads has stood still for `lock_timeout` of its
//! own time, and its first read can come right after one of our writes
//! landed. So our lease is only good until `S + lock_timeout - margin`, where
//! `S` is when we *submitted* the last write that completed, and `margin`
//! absorbs clock-rate drift between the nodes. When the deadline passes
//! without a newer confirmed write — disk slow, failing, or hung with the I/O
//! still in flight — the holder reports [`Event::Lost`] at once. A holder also
//! loses the lease when a renewal read shows another name, status `u`, or a
//! count it did not write.
//!
//! Where we differ from `sfex_daemon`, on the safe side: a failed read during
//! the collision check fails the acquisition (the original only logs it and
//! goes on); renewal I/O errors are retried until the deadline instead of
//! giving up at once; a count we did not write counts as losing the lock.

use std::fmt;

use serde::Serialize;

use crate::format::{LockBlock, NodeName, Status, next_count};

/// Monotonic time in milliseconds, from a clock the caller chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Millis(pub u64);

impl Millis {
    /// `self + d`, saturating.
    pub fn plus(self, d: Millis) -> Millis {
        Millis(self.0.saturating_add(d.0))
    }
    /// `self - d`, saturating at 0.
    pub fn minus(self, d: Millis) -> Millis {
        Millis(self.0.saturating_sub(d.0))
    }
    /// From whole seconds.
    pub fn from_secs(s: u64) -> Millis {
        Millis(s.saturating_mul(1000))
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// Timing and identity of one lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our node name, written into the lock block.
    pub node: NodeName,
    /// How long a contender watches a held lock before calling it stale.
    pub lock_timeout: Millis,
    /// How long to wait after the claim before checking for a collision.
    pub collision_timeout: Millis,
    /// Renewal period of the holder.
    pub monitor_interval: Millis,
    /// Safety margin subtracted from the lease validity (clock-rate drift).
    pub margin: Millis,
    /// Delay before retrying a failed renewal (still bounded by the deadline).
    pub retry_interval: Millis,
    /// Keep polling a live holder instead of giving up with HeldElsewhere.
    pub wait: bool,
    /// The longest a lease I/O may take; a slower one counts as failed
    /// (`None`: no bound, as `sfex_daemon`). Needs `collision_timeout >
    /// 2 * max_io` so that collision detection sees every concurrent claim.
    pub max_io: Option<Millis>,
}

/// A configuration that cannot keep the lease safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A timeout of zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// Collision detection cannot see a claim that lands this late.
    #[error(
        "collision_timeout ({collision}) must be more than twice max_io ({max_io}): \
         a concurrent claim could land after the collision check"
    )]
    CollisionTooShort {
        /// collision_timeout
        collision: Millis,
        /// max_io
        max_io: Millis,
    },
    /// The holder could not renew before a contender may take over.
    #[error(
        "monitor_interval ({monitor}) plus the safety margin ({margin}) and max_io ({max_io}) \
         must be shorter than lock_timeout ({lock}): a holder would lose its lease between \
         two renewals"
    )]
    IntervalTooLong {
        /// monitor_interval
        monitor: Millis,
        /// margin
        margin: Millis,
        /// max_io (0 when unbounded)
        max_io: Millis,
        /// lock_timeout
        lock: Millis,
    },
}

impl Config {
    /// The margin used when none is given: a tenth of `lock_timeout`
    /// (tolerates 10% clock-rate difference between the nodes), at most 2 s.
    pub fn default_margin(lock_timeout: Millis) -> Millis {
        Millis((lock_timeout.0 / 10).min(2000))
    }

    /// Checks the timing rules: all timeouts positive and
    /// `monitor_interval + margin < lock_timeout`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (v, name) in [
            (self.lock_timeout, "lock_timeout"),
            (self.collision_timeout, "collision_timeout"),
            (self.monitor_interval, "monitor_interval"),
            (self.retry_interval, "retry_interval"),
        ] {
            if v.0 == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if let Some(max) = self.max_io {
            if self.collision_timeout <= max.plus(max) {
                return Err(ConfigError::CollisionTooShort {
                    collision: self.collision_timeout,
                    max_io: max,
                });
            }
        }
        let io = self.max_io.unwrap_or_default();
        if self.monitor_interval.plus(self.margin).plus(io) >= self.lock_timeout {
            return Err(ConfigError::IntervalTooLong {
                monitor: self.monitor_interval,
                margin: self.margin,
                max_io: io,
                lock: self.lock_timeout,
            });
        }
        Ok(())
    }
}

/// An I/O or decode failure, as the machine sees it (the driver keeps the
/// details for its log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IoFailure {
    /// What failed.
    pub message: String,
    /// The block was read but does not decode as a lock block: somebody
    /// overwrote it. A holder takes that as the loss of its lock at once.
    pub corrupt: bool,
}

impl IoFailure {
    /// A read or write that failed.
    pub fn io(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            corrupt: false,
        }
    }
    /// A block that was read but does not decode.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            corrupt: true,
        }
    }
}

/// Inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Begin acquiring.
    Start,
    /// The time asked for by [`Lease::next_wake`] has come (or any later time).
    Timer,
    /// The requested read finished: the decoded lock block, or why not.
    ReadDone(Result<LockBlock, IoFailure>),
    /// The requested write finished.
    WriteDone(Result<(), IoFailure>),
    /// Release the lock (SIGTERM): as soon as no I/O is in flight.
    Release,
    /// The holder on disk was confirmed fenced (powered off) after its
    /// counter was last seen at `count`. A fenced node cannot write, so if a
    /// fresh read still shows that count the lock is taken at once instead of
    /// after `lock_timeout`. If the count moved (the node wrote before it was
    /// fenced, or was rebooted and wrote again) the ordinary rules apply.
    /// The collision check after such a claim waits `max_io` (when bounded)
    /// instead of `collision_timeout`: only for a lock shared by two nodes,
    /// where the fenced one is the only other writer.
    PeerFenced {
        /// The holder's last counter value seen before the fence.
        count: i32,
    },
}

/// Outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read the lock block; answer with [`Input::ReadDone`].
    Read,
    /// Write this lock block; answer with [`Input::WriteDone`].
    Write(LockBlock),
    /// Something happened.
    Event(Event),
}

/// Why an acquisition failed (the original's exit 2 cases, and I/O).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum AcquireError {
    /// The holder's counter moved while we watched: it is alive.
    HeldElsewhere {
        /// The live holder.
        holder: NodeName,
    },
    /// Another name replaced our claim during the collision wait.
    Collision {
        /// The name found instead of ours.
        other: NodeName,
    },
    /// A read or write failed while acquiring.
    Io {
        /// What failed.
        failure: IoFailure,
    },
}

/// Why a held lease was lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum LostReason {
    /// No renewal confirmed before the deadline (slow, failing or hung disk).
    DeadlineMissed {
        /// The deadline that passed.
        deadline: Millis,
    },
    /// The block no longer shows our lock: another node took it, or it was
    /// unlocked, or a count we did not write appeared.
    TakenOver {
        /// The block found on disk.
        found: LockBlock,
    },
    /// The block no longer decodes as a lock block: somebody overwrote it.
    Corrupt {
        /// The decode error.
        message: String,
    },
}

/// What the machine reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The lock is held by a node that may be alive; watching its counter.
    Watching {
        /// Holder on disk.
        holder: NodeName,
        /// Counter on disk.
        count: i32,
        /// When the counter will be checked again.
        until: Millis,
    },
    /// The holder's counter stood still for lock_timeout: taking over.
    Stale {
        /// The dead holder.
        holder: NodeName,
        /// Its last count.
        count: i32,
    },
    /// The holder was confirmed fenced: taking its lock without waiting.
    FencedTakeover {
        /// The fenced holder.
        holder: NodeName,
    },
    /// We hold the lock.
    Acquired {
        /// Count written by the extension write.
        count: i32,
        /// The lease is good until this time unless renewed.
        valid_until: Millis,
    },
    /// A renewal was confirmed.
    Renewed {
        /// Count written.
        count: i32,
        /// New validity.
        valid_until: Millis,
    },
    /// A renewal read or write failed; retrying until the deadline.
    RenewFailed {
        /// What failed.
        failure: IoFailure,
        /// The deadline.
        deadline: Millis,
    },
    /// Could not acquire. Terminal.
    AcquireFailed(AcquireError),
    /// The lease was lost. Terminal: stop everything that relied on it.
    Lost(LostReason),
    /// Released (status `u`, same count and name). Terminal.
    Released {
        /// The count kept on disk.
        count: i32,
    },
    /// Release found the lock not ours (never acquired, or already gone). Terminal.
    NotHeld {
        /// The block on disk, when it could be read.
        found: Option<LockBlock>,
    },
}

impl Event {
    /// True for events after which the machine does nothing more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::AcquireFailed(_)
                | Event::Lost(_)
                | Event::Released { .. }
                | Event::NotHeld { .. }
        )
    }
}

/// Where the machine is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    /// First read of the acquisition in flight.
    FirstRead,
    /// Watching a held lock: `count` seen (first) at `since`; next read at `next`.
    Watch {
        holder: NodeName,
        count: i32,
        since: Millis,
        next: Millis,
    },
    /// Re-read of a held lock in flight.
    WatchRead {
        holder: NodeName,
        count: i32,
        since: Millis,
    },
    /// Claim write in flight; `fenced`: taking a fenced holder's lock.
    Claim {
        count: i32,
        fenced: bool,
    },
    /// Waiting for the collision check.
    CollisionWait {
        count: i32,
        until: Millis,
    },
    /// Collision read in flight.
    CollisionRead {
        count: i32,
    },
    /// Extension write in flight, submitted at `at`.
    Extend {
        count: i32,
        at: Millis,
    },
    /// Holding: `count` confirmed, lease good until `valid_until`; the next
    /// renewal starts at `next`. `alt` is the count of a renewal write that
    /// failed and so may or may not have landed.
    Held {
        count: i32,
        valid_until: Millis,
        next: Millis,
        alt: Option<i32>,
    },
    /// Renewal read in flight.
    RenewRead {
        count: i32,
        valid_until: Millis,
        alt: Option<i32>,
    },
    /// Renewal write of `count + 1` in flight, submitted at `at`.
    RenewWrite {
        count: i32,
        valid_until: Millis,
        at: Millis,
    },
    /// Release read in flight.
    ReleaseRead {
        valid_until: Option<Millis>,
    },
    /// Release write in flight.
    ReleaseWrite {
        count: i32,
    },
    /// Finished.
    Done,
}

/// The lease state machine. Feed it [`Input`]s with the current time; carry
/// out the [`Action`]s it returns; call [`Input::Timer`] at [`Lease::next_wake`].
/// At most one I/O is requested at a time.
#[derive(Debug, Clone)]
pub struct Lease {
    cfg: Config,
    state: State,
    release_pending: bool,
    /// Count of a fenced holder (see [`Input::PeerFenced`]).
    fenced_count: Option<i32>,
    /// When the I/O in flight was submitted.
    io_started: Millis,
}

impl Lease {
    /// A machine for `cfg` (validate it first with [`Config::validate`]).
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            state: State::Idle,
            release_pending: false,
            fenced_count: None,
            io_started: Millis(0),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// True while we hold the lease (acquired, not yet lost or released).
    /// Callers must also check [`Lease::valid_until`] against their clock.
    pub fn is_held(&self) -> bool {
        self.valid_until().is_some()
    }

    /// The end of the current lease, while held.
    pub fn valid_until(&self) -> Option<Millis> {
        match self.state {
            State::Held { valid_until, .. }
            | State::RenewRead { valid_until, .. }
            | State::RenewWrite { valid_until, .. } => Some(valid_until),
            State::ReleaseRead { valid_until } => valid_until,
            _ => None,
        }
    }

    /// True once a terminal event was reported.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The earliest time at which the machine wants an [`Input::Timer`]. While
    /// the lease is held this is never later than the deadline, even with an
    /// I/O in flight, so a hung disk cannot hide the loss of the lease.
    pub fn next_wake(&self) -> Option<Millis> {
        match &self.state {
            State::Watch { next, .. } => Some(*next),
            State::CollisionWait { until, .. } => Some(*until),
            State::Held {
                next, valid_until, ..
            } => Some((*next).min(*valid_until)),
            _ => self.valid_until(),
        }
    }

    fn lease_end(&self, submitted: Millis) -> Millis {
        submitted.plus(self.cfg.lock_timeout).minus(self.cfg.margin)
    }

    fn finish(&mut self, ev: Event) -> Vec<Action> {
        self.state = State::Done;
        vec![Action::Event(ev)]
    }

    fn io_in_flight(&self) -> bool {
        matches!(
            self.state,
            State::FirstRead
                | State::WatchRead { .. }
                | State::Claim { .. }
                | State::CollisionRead { .. }
                | State::Extend { .. }
                | State::RenewRead { .. }
                | State::RenewWrite { .. }
                | State::ReleaseRead { .. }
                | State::ReleaseWrite { .. }
        )
    }

    /// Advances the machine.
    pub fn step(&mut self, now: Millis, input: Input) -> Vec<Action> {
        let out = self.step_inner(now, input);
        if out
            .iter()
            .any(|a| matches!(a, Action::Read | Action::Write(_)))
        {
            self.io_started = now;
        }
        out
    }

    /// With `max_io` set, an I/O that completes later than that after its
    /// submission counts as failed: a write that lands that late may land
    /// after another node's claim, and a read that late may show the past.
    fn bound_io<T>(&self, now: Millis, r: Result<T, IoFailure>) -> Result<T, IoFailure> {
        match (r, self.cfg.max_io) {
            (Ok(_), Some(max)) if now.minus(self.io_started) > max => Err(IoFailure::io(format!(
                "lease I/O took {} (max_io {max})",
                now.minus(self.io_started)
            ))),
            (r, _) => r,
        }
    }

    fn step_inner(&mut self, now: Millis, input: Input) -> Vec<Action> {
        if self.state == State::Done {
            return Vec::new();
        }
        // The deadline comes first, whatever the input: a confirmation that
        // arrives late does not extend a lease that has already run out.
        if let Some(deadline) = self.valid_until() {
            if now >= deadline {
                return self.finish(Event::Lost(LostReason::DeadlineMissed { deadline }));
            }
        }
        match input {
            Input::PeerFenced { count } => {
                self.fenced_count = Some(count);
                match self.state.clone() {
                    // check at once with a fresh read
                    State::Watch {
                        holder,
                        count,
                        since,
                        ..
                    } => {
                        self.state = State::WatchRead {
                            holder,
                            count,
                            since,
                        };
                        self.io_started = now;
                        vec![Action::Read]
                    }
                    _ => Vec::new(), // applied to the next read
                }
            }
            Input::Release => {
                self.release_pending = true;
                if self.io_in_flight() {
                    return Vec::new();
                }
                self.start_release()
            }
            Input::Start => match self.state {
                State::Idle => {
                    self.state = State::FirstRead;
                    vec![Action::Read]
                }
                _ => Vec::new(),
            },
            Input::Timer => self.on_timer(now),
            Input::ReadDone(r) => {
                let r = self.bound_io(now, r);
                let mut out = self.on_read(now, r);
                self.after_io(&mut out);
                out
            }
            Input::WriteDone(r) => {
                let r = self.bound_io(now, r);
                let mut out = self.on_write(now, r);
                self.after_io(&mut out);
                out
            }
        }
    }

    /// A release asked for while an I/O was in flight starts once it is done.
    fn after_io(&mut self, out: &mut Vec<Action>) {
        if self.release_pending && !self.io_in_flight() && self.state != State::Done {
            // Drop any I/O the step just requested: nothing is in flight yet.
            out.retain(|a| matches!(a, Action::Event(_)));
            out.extend(self.start_release());
        }
    }

    fn start_release(&mut self) -> Vec<Action> {
        if matches!(
            self.state,
            State::ReleaseRead { .. } | State::ReleaseWrite { .. }
        ) {
            return Vec::new();
        }
        let valid_until = self.valid_until();
        self.state = State::ReleaseRead { valid_until };
        vec![Action::Read]
    }

    fn on_timer(&mut self, now: Millis) -> Vec<Action> {
        match self.state.clone() {
            State::Watch {
                holder,
                count,
                since,
                next,
            } if now >= next => {
                self.state = State::WatchRead {
                    holder,
                    count,
                    since,
                };
                vec![Action::Read]
            }
            State::CollisionWait { count, until } if now >= until => {
                self.state = State::CollisionRead { count };
                vec![Action::Read]
            }
            State::Held {
                count,
                valid_until,
                next,
                alt,
            } if now >= next => {
                self.state = State::RenewRead {
                    count,
                    valid_until,
                    alt,
                };
                vec![Action::Read]
            }
            _ => Vec::new(),
        }
    }

    fn claim(&mut self, count: i32) -> Vec<Action> {
        self.claim_as(count, false)
    }

    fn claim_as(&mut self, count: i32, fenced: bool) -> Vec<Action> {
        let count = next_count(count);
        self.state = State::Claim { count, fenced };
        vec![Action::Write(self.block(Status::Locked, count))]
    }

    fn block(&self, status: Status, count: i32) -> LockBlock {
        LockBlock {
            status,
            count,
            nodename: self.cfg.node.clone(),
        }
    }

    fn on_read(&mut self, now: Millis, r: Result<LockBlock, IoFailure>) -> Vec<Action> {
        let me = self.cfg.node.clone();
        match (self.state.clone(), r) {
            (State::FirstRead, Err(failure)) => {
                self.finish(Event::AcquireFailed(AcquireError::Io { failure }))
            }
            (State::FirstRead | State::WatchRead { .. }, Ok(lb))
                if lb.status == Status::Locked
                    && lb.nodename != me
                    && self.fenced_count == Some(lb.count) =>
            {
                let mut out = vec![Action::Event(Event::FencedTakeover {
                    holder: lb.nodename,
                })];
                out.extend(self.claim_as(lb.count, true));
                out
            }
            (State::FirstRead, Ok(lb)) => {
                if lb.status == Status::Locked && lb.nodename != me {
                    let until = now.plus(self.cfg.lock_timeout);
                    let next = if self.cfg.wait {
                        now.plus(self.poll()).min(until)
                    } else {
                        until
                    };
                    let ev = Event::Watching {
                        holder: lb.nodename.clone(),
                        count: lb.count,
                        until,
                    };
                    self.state = State::Watch {
                        holder: lb.nodename,
                        count: lb.count,
                        since: now,
                        next,
                    };
                    vec![Action::Event(ev)]
                } else {
                    // Free, or our own name (our stale lock after a crash): no wait.
                    self.claim(lb.count)
                }
            }
            (State::WatchRead { .. }, Err(failure)) => {
                self.finish(Event::AcquireFailed(AcquireError::Io { failure }))
            }
            (
                State::WatchRead {
                    holder,
                    count,
                    since,
                },
                Ok(lb),
            ) => {
                let stale = now.minus(since) >= self.cfg.lock_timeout;
                if lb.count == count {
                    if stale {
                        let mut out = vec![Action::Event(Event::Stale {
                            holder,
                            count: lb.count,
                        })];
                        out.extend(self.claim(lb.count));
                        return out;
                    }
                    // Only in wait mode: an intermediate poll, nothing moved yet.
                    let until = since.plus(self.cfg.lock_timeout);
                    let next = now.plus(self.poll()).min(until);
                    self.state = State::Watch {
                        holder,
                        count,
                        since,
                        next,
                    };
                    return Vec::new();
                }
                if !self.cfg.wait {
                    return self.finish(Event::AcquireFailed(AcquireError::HeldElsewhere {
                        holder: lb.nodename,
                    }));
                }
                // Alive (count moved). Free now, or ours: claim; else watch anew.
                if lb.status == Status::Unlocked || lb.nodename == me {
                    return self.claim(lb.count);
                }
                let until = now.plus(self.cfg.lock_timeout);
                let ev = Event::Watching {
                    holder: lb.nodename.clone(),
                    count: lb.count,
                    until,
                };
                self.state = State::Watch {
                    holder: lb.nodename,
                    count: lb.count,
                    since: now,
                    next: now.plus(self.poll()).min(until),
                };
                vec![Action::Event(ev)]
            }
            (State::CollisionRead { .. }, Err(failure)) => {
                self.finish(Event::AcquireFailed(AcquireError::Io { failure }))
            }
            (State::CollisionRead { count }, Ok(lb)) => {
                if lb.nodename != me {
                    return self.finish(Event::AcquireFailed(AcquireError::Collision {
                        other: lb.nodename,
                    }));
                }
                let count = next_count(count);
                self.state = State::Extend { count, at: now };
                vec![Action::Write(self.block(Status::Locked, count))]
            }
            (State::RenewRead { .. }, Err(f)) if f.corrupt => {
                self.finish(Event::Lost(LostReason::Corrupt { message: f.message }))
            }
            (
                State::RenewRead {
                    count,
                    valid_until,
                    alt,
                },
                Err(failure),
            ) => self.renew_failed(now, count, valid_until, alt, failure),
            (
                State::RenewRead {
                    count,
                    valid_until,
                    alt,
                },
                Ok(lb),
            ) => {
                let ours = lb.is_held_by(&me) && (lb.count == count || Some(lb.count) == alt);
                if !ours {
                    return self.finish(Event::Lost(LostReason::TakenOver { found: lb }));
                }
                let count = next_count(lb.count);
                self.state = State::RenewWrite {
                    count,
                    valid_until,
                    at: now,
                };
                vec![Action::Write(self.block(Status::Locked, count))]
            }
            (State::ReleaseRead { .. }, Err(_)) => self.finish(Event::NotHeld { found: None }),
            (State::ReleaseRead { .. }, Ok(lb)) => {
                // A lapsed lease is lost, not released: the deadline check
                // at the top of `step` ends the machine before we get here.
                // When we never acquired in this run, a lock in our name is a
                // stale lock of an earlier run: release it, as the original does.
                if lb.is_held_by(&me) {
                    self.state = State::ReleaseWrite { count: lb.count };
                    vec![Action::Write(self.block(Status::Unlocked, lb.count))]
                } else {
                    self.finish(Event::NotHeld { found: Some(lb) })
                }
            }
            _ => Vec::new(),
        }
    }

    fn poll(&self) -> Millis {
        self.cfg.monitor_interval
    }

    fn renew_failed(
        &mut self,
        now: Millis,
        count: i32,
        valid_until: Millis,
        alt: Option<i32>,
        failure: IoFailure,
    ) -> Vec<Action> {
        let next = now.plus(self.cfg.retry_interval).min(valid_until);
        self.state = State::Held {
            count,
            valid_until,
            next,
            alt,
        };
        vec![Action::Event(Event::RenewFailed {
            failure,
            deadline: valid_until,
        })]
    }

    fn on_write(&mut self, now: Millis, r: Result<(), IoFailure>) -> Vec<Action> {
        match (self.state.clone(), r) {
            (State::Claim { .. } | State::Extend { .. }, Err(failure)) => {
                self.finish(Event::AcquireFailed(AcquireError::Io { failure }))
            }
            (State::Claim { count, fenced }, Ok(())) => {
                // Taking a fenced holder's lock, nobody else can claim: the
                // check only has to see a write the fenced node submitted
                // before it was cut and that lands late, within max_io of
                // its submission, so before max_io after ours completed.
                // Without a bound on I/O, the full collision_timeout.
                let wait = match (fenced, self.cfg.max_io) {
                    (true, Some(max_io)) => max_io.min(self.cfg.collision_timeout),
                    _ => self.cfg.collision_timeout,
                };
                self.state = State::CollisionWait {
                    count,
                    until: now.plus(wait),
                };
                Vec::new()
            }
            (State::Extend { count, at }, Ok(())) => {
                let valid_until = self.lease_end(at);
                self.state = State::Held {
                    count,
                    valid_until,
                    next: at.plus(self.cfg.monitor_interval),
                    alt: None,
                };
                vec![Action::Event(Event::Acquired { count, valid_until })]
            }
            (
                State::RenewWrite {
                    count, valid_until, ..
                },
                Err(failure),
            ) => {
                // The write may or may not have landed: the next renewal read
                // accepts either the count before it or its own.
                self.renew_failed(now, count_before(count), valid_until, Some(count), failure)
            }
            (State::RenewWrite { count, at, .. }, Ok(())) => {
                let valid_until = self.lease_end(at);
                self.state = State::Held {
                    count,
                    valid_until,
                    next: at.plus(self.cfg.monitor_interval),
                    alt: None,
                };
                vec![Action::Event(Event::Renewed { count, valid_until })]
            }
            (State::ReleaseWrite { count }, Ok(())) => self.finish(Event::Released { count }),
            (State::ReleaseWrite { .. }, Err(_)) => self.finish(Event::NotHeld { found: None }),
            _ => Vec::new(),
        }
    }
}

/// The count before `c` in the `next_count` sequence (0 comes after 999).
fn count_before(c: i32) -> i32 {
    if c == 0 { 999 } else { c - 1 }
}

#[cfg(test)]
#[path = "lease_test.rs"]
mod lease_test;
