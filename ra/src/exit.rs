//! Exit codes and what they mean for recovery. Pure.
//!
//! - [`OcfExit`]: the OCF return codes (ocf.md 2.3), an API in both
//!   directions (agents we run, agents we ship).
//! - [`ExecStatus`]: how the process ended (exit code, signal, timeout,
//!   missing or non-executable agent).
//! - [`classify`]: Pacemaker's reading of the two for one kind of operation,
//!   as `lib/pengine/unpack.c` does it (not as its docs table says: rc 1 is
//!   a *soft* failure there): success, a failure Pacemaker ignores, or a
//!   failure with its recovery class (soft / hard / fatal), plus the state a
//!   monitor or probe observed and whether the resource is degraded.
//! - [`lsb_status_to_ocf`] / [`lsb_action_to_ocf`]: Pacemaker's
//!   `services__lsb2ocf` mapping for init scripts.
//!
//! What a failed *stop* leads to (fencing, by Pacemaker's default
//! `on-fail`) is the engine's decision; [`Classification::is_failed_stop`]
//! only says that it happened.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use serde::{Serialize, Serializer};

/// An OCF return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OcfExit {
    /// 0 `OCF_SUCCESS`: done; for monitor: running (unpromoted if it has roles).
    Success,
    /// 1 `OCF_ERR_GENERIC`: unspecified error.
    ErrGeneric,
    /// 2 `OCF_ERR_ARGS`: parameters invalid on this host.
    ErrArgs,
    /// 3 `OCF_ERR_UNIMPLEMENTED`: action not supported.
    ErrUnimplemented,
    /// 4 `OCF_ERR_PERM`: insufficient privilege.
    ErrPerm,
    /// 5 `OCF_ERR_INSTALLED`: required software missing on this host.
    ErrInstalled,
    /// 6 `OCF_ERR_CONFIGURED`: parameters inherently invalid.
    ErrConfigured,
    /// 7 `OCF_NOT_RUNNING`: cleanly stopped (monitor).
    NotRunning,
    /// 8 `OCF_RUNNING_PROMOTED` (legacy `OCF_RUNNING_MASTER`).
    RunningPromoted,
    /// 9 `OCF_FAILED_PROMOTED` (legacy `OCF_FAILED_MASTER`).
    FailedPromoted,
    /// 190 `OCF_DEGRADED`: running but likely to fail soon.
    Degraded,
    /// 191 `OCF_DEGRADED_PROMOTED`: promoted and degraded.
    DegradedPromoted,
    /// Any other code (custom, or 128+N from a shell reporting a signal).
    Other(u8),
}

impl OcfExit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            OcfExit::Success => 0,
            OcfExit::ErrGeneric => 1,
            OcfExit::ErrArgs => 2,
            OcfExit::ErrUnimplemented => 3,
            OcfExit::ErrPerm => 4,
            OcfExit::ErrInstalled => 5,
            OcfExit::ErrConfigured => 6,
            OcfExit::NotRunning => 7,
            OcfExit::RunningPromoted => 8,
            OcfExit::FailedPromoted => 9,
            OcfExit::Degraded => 190,
            OcfExit::DegradedPromoted => 191,
            OcfExit::Other(c) => c,
        }
    }

    /// The constant's name in `ocf-returncodes` (new names), or `"unknown"`.
    pub fn name(self) -> &'static str {
        match self {
            OcfExit::Success => "OCF_SUCCESS",
            OcfExit::ErrGeneric => "OCF_ERR_GENERIC",
            OcfExit::ErrArgs => "OCF_ERR_ARGS",
            OcfExit::ErrUnimplemented => "OCF_ERR_UNIMPLEMENTED",
            OcfExit::ErrPerm => "OCF_ERR_PERM",
            OcfExit::ErrInstalled => "OCF_ERR_INSTALLED",
            OcfExit::ErrConfigured => "OCF_ERR_CONFIGURED",
            OcfExit::NotRunning => "OCF_NOT_RUNNING",
            OcfExit::RunningPromoted => "OCF_RUNNING_PROMOTED",
            OcfExit::FailedPromoted => "OCF_FAILED_PROMOTED",
            OcfExit::Degraded => "OCF_DEGRADED",
            OcfExit::DegradedPromoted => "OCF_DEGRADED_PROMOTED",
            OcfExit::Other(_) => "unknown",
        }
    }

    /// A code from an exit status as Pacemaker's executor reads it: the exit
    /// code, or `OCF_ERR_GENERIC` for a process killed by a signal.
    pub fn from_code(code: i32) -> OcfExit {
        u8::try_from(code).map_or(OcfExit::ErrGeneric, OcfExit::from)
    }
}

impl From<u8> for OcfExit {
    fn from(c: u8) -> OcfExit {
        match c {
            0 => OcfExit::Success,
            1 => OcfExit::ErrGeneric,
            2 => OcfExit::ErrArgs,
            3 => OcfExit::ErrUnimplemented,
            4 => OcfExit::ErrPerm,
            5 => OcfExit::ErrInstalled,
            6 => OcfExit::ErrConfigured,
            7 => OcfExit::NotRunning,
            8 => OcfExit::RunningPromoted,
            9 => OcfExit::FailedPromoted,
            190 => OcfExit::Degraded,
            191 => OcfExit::DegradedPromoted,
            c => OcfExit::Other(c),
        }
    }
}

impl From<ExitStatus> for OcfExit {
    /// The exit code; a process killed by a signal is `OCF_ERR_GENERIC`.
    fn from(st: ExitStatus) -> OcfExit {
        st.code().map_or(OcfExit::ErrGeneric, OcfExit::from_code)
    }
}

impl fmt::Display for OcfExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.name())
    }
}

impl Serialize for OcfExit {
    /// `{"code": 7, "name": "OCF_NOT_RUNNING"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("OcfExit", 2)?;
        st.serialize_field("code", &self.code())?;
        st.serialize_field("name", self.name())?;
        st.end()
    }
}

/// Pacemaker's mapping of an LSB `status` exit code: 0 running; 1, 2, 3
/// not running; 150 not installed; 151 insufficient privilege; anything else
/// a generic error.
pub fn lsb_status_to_ocf(code: i32) -> OcfExit {
    match code {
        0 => OcfExit::Success,
        1..=3 => OcfExit::NotRunning,
        150 => OcfExit::ErrInstalled,
        151 => OcfExit::ErrPerm,
        _ => OcfExit::ErrGeneric,
    }
}

/// The LSB mapping for every other action: 0–7 are the OCF codes already,
/// anything above is a generic error.
pub fn lsb_action_to_ocf(code: i32) -> OcfExit {
    match code {
        0..=7 => OcfExit::from_code(code),
        _ => OcfExit::ErrGeneric,
    }
}

/// How the agent's process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum ExecStatus {
    /// It exited by itself with this code (the raw code, before any LSB
    /// mapping).
    Exited {
        /// The exit code.
        code: i32,
    },
    /// It was killed by a signal we did not send.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
    /// It did not finish within the timeout: its process group got SIGTERM
    /// and, if anything was left after the grace period, SIGKILL.
    TimedOut {
        /// SIGKILL was needed.
        killed: bool,
        /// Something was still alive (or unreaped) when we gave up waiting
        /// after SIGKILL (a process in uninterruptible sleep).
        unreaped: bool,
    },
    /// The agent does not exist (or is not a file).
    NotInstalled,
    /// The agent exists but cannot be executed (permissions).
    NotExecutable,
    /// It could not be started for another reason.
    SpawnFailed {
        /// The system's error message.
        error: String,
    },
}

impl ExecStatus {
    /// The status of a reaped child.
    pub fn from_exit(st: ExitStatus) -> ExecStatus {
        match (st.code(), st.signal()) {
            (Some(code), _) => ExecStatus::Exited { code },
            (None, Some(signal)) => ExecStatus::Signaled {
                signal,
                core_dumped: st.core_dumped(),
            },
            // Neither (stopped/continued) cannot come out of wait(); be safe.
            (None, None) => ExecStatus::SpawnFailed {
                error: format!("unexpected wait status {st:?}"),
            },
        }
    }

    /// The OCF code Pacemaker's executor reports for an ending that is not
    /// a normal exit: a timeout or signal is `OCF_ERR_GENERIC`, a missing
    /// agent `OCF_ERR_INSTALLED`, a non-executable one `OCF_ERR_PERM`.
    /// `None` for a normal exit (its code is the rc).
    pub fn synthetic_rc(&self) -> Option<OcfExit> {
        match self {
            ExecStatus::Exited { .. } => None,
            ExecStatus::NotInstalled => Some(OcfExit::ErrInstalled),
            ExecStatus::NotExecutable => Some(OcfExit::ErrPerm),
            ExecStatus::Signaled { .. }
            | ExecStatus::TimedOut { .. }
            | ExecStatus::SpawnFailed { .. } => Some(OcfExit::ErrGeneric),
        }
    }
}

impl fmt::Display for ExecStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecStatus::Exited { code } => write!(f, "exited with {code}"),
            ExecStatus::Signaled {
                signal,
                core_dumped,
            } => {
                let name = nix::sys::signal::Signal::try_from(*signal)
                    .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_string());
                write!(
                    f,
                    "killed by {name}{}",
                    if *core_dumped { " (core dumped)" } else { "" }
                )
            }
            ExecStatus::TimedOut { killed, unreaped } => {
                f.write_str("timed out")?;
                if *killed {
                    f.write_str(", process group SIGKILLed after the grace period")?;
                } else {
                    f.write_str(", process group ended on SIGTERM")?;
                }
                if *unreaped {
                    f.write_str(", something still alive after SIGKILL")?;
                }
                Ok(())
            }
            ExecStatus::NotInstalled => f.write_str("agent not installed"),
            ExecStatus::NotExecutable => f.write_str("agent not executable"),
            ExecStatus::SpawnFailed { error } => write!(f, "could not be started: {error}"),
        }
    }
}

/// The role a recurring monitor expects the resource to be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Stopped (a `role=Stopped` monitor).
    Stopped,
    /// Started; for resources with roles, the unpromoted role.
    #[default]
    Started,
    /// The promoted role.
    Promoted,
}

/// What kind of operation a result belongs to; decides how an rc reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    /// `monitor` with interval 0: find out the state, nothing expected.
    Probe,
    /// A recurring `monitor` expecting the resource in a role.
    Monitor(Role),
    /// `start`.
    Start,
    /// `stop`: success is 0 only (7 is an error).
    Stop,
    /// `promote`.
    Promote,
    /// `demote`.
    Demote,
    /// `notify`: Pacemaker ignores failures (logs only).
    Notify,
    /// `validate-all`: 3 means "not supported", not a failure.
    ValidateAll,
    /// Anything else (`reload-agent`, `meta-data`, `migrate_*`, …).
    Other,
}

/// Pacemaker's recovery classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recovery {
    /// Restart or move (`on-fail`, fail count, `migration-threshold`).
    Soft,
    /// Move, and never retry on this node until cleanup/expiry.
    Hard,
    /// Stop everywhere and never start anywhere.
    Fatal,
}

/// The reading of one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "verdict", content = "recovery", rename_all = "kebab-case")]
pub enum Verdict {
    /// The action did what was asked (or, for a probe, found a valid state).
    Success,
    /// Not a success, but Pacemaker takes no action: a failed `notify`, an
    /// unsupported recurring monitor or `validate-all`.
    Ignored,
    /// A failure with its recovery class.
    Failed(Recovery),
}

/// The state a monitor or probe reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Observed {
    /// Cleanly stopped (7, or a probe's 5 / missing agent).
    Stopped,
    /// Running, unpromoted (0, 190).
    Started,
    /// Running, promoted (8, 191).
    Promoted,
    /// Promoted but failed (9).
    FailedPromoted,
}

/// [`classify`]'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Classification {
    /// The kind of operation that was classified.
    pub op: OpKind,
    /// Success, ignored failure, or failure with recovery class.
    pub verdict: Verdict,
    /// For monitors and probes: the state the agent reported, if it is one.
    pub observed: Option<Observed>,
    /// The agent said degraded (190/191): success, shown as degraded.
    pub degraded: bool,
}

impl Classification {
    /// The verdict is [`Verdict::Success`].
    pub fn is_success(&self) -> bool {
        self.verdict == Verdict::Success
    }

    /// A `stop` that failed: by Pacemaker's default `on-fail` this ends in
    /// fencing the node (or blocking the resource without fencing).
    pub fn is_failed_stop(&self) -> bool {
        self.op == OpKind::Stop && matches!(self.verdict, Verdict::Failed(_))
    }
}

/// The recovery class of an rc that is a failure (unpack.c: 2, 3, 4, 5 are
/// hard, 6 fatal, everything else — 1 included — soft).
fn failure(rc: OcfExit) -> Verdict {
    Verdict::Failed(match rc {
        OcfExit::ErrArgs | OcfExit::ErrUnimplemented | OcfExit::ErrPerm | OcfExit::ErrInstalled => {
            Recovery::Hard
        }
        OcfExit::ErrConfigured => Recovery::Fatal,
        _ => Recovery::Soft,
    })
}

fn observed(rc: OcfExit) -> Option<Observed> {
    match rc {
        OcfExit::Success | OcfExit::Degraded => Some(Observed::Started),
        OcfExit::NotRunning => Some(Observed::Stopped),
        OcfExit::RunningPromoted | OcfExit::DegradedPromoted => Some(Observed::Promoted),
        OcfExit::FailedPromoted => Some(Observed::FailedPromoted),
        _ => None,
    }
}

/// Reads `exec` and the OCF code `rc` (already LSB/systemd-mapped, or the
/// synthetic code of [`ExecStatus::synthetic_rc`]) for an operation of kind
/// `op`, as Pacemaker's scheduler does.
pub fn classify(op: OpKind, exec: &ExecStatus, rc: OcfExit) -> Classification {
    let mk = |verdict, observed, degraded| Classification {
        op,
        verdict,
        observed,
        degraded,
    };
    match exec {
        ExecStatus::Exited { .. } => {}
        // Timeout, signal, spawn error: an ordinary failure.
        ExecStatus::Signaled { .. }
        | ExecStatus::TimedOut { .. }
        | ExecStatus::SpawnFailed { .. } => {
            let v = if op == OpKind::Notify {
                Verdict::Ignored
            } else {
                Verdict::Failed(Recovery::Soft)
            };
            return mk(v, None, false);
        }
        // A probe on a node without the agent: stopped here.
        ExecStatus::NotInstalled if op == OpKind::Probe => {
            return mk(Verdict::Success, Some(Observed::Stopped), false);
        }
        ExecStatus::NotInstalled | ExecStatus::NotExecutable => {
            let v = if op == OpKind::Notify {
                Verdict::Ignored
            } else {
                Verdict::Failed(Recovery::Hard)
            };
            return mk(v, None, false);
        }
    }
    let degraded = matches!(rc, OcfExit::Degraded | OcfExit::DegradedPromoted);
    match op {
        OpKind::Notify => {
            let v = if rc == OcfExit::Success {
                Verdict::Success
            } else {
                Verdict::Ignored
            };
            mk(v, None, false)
        }
        OpKind::Probe => match rc {
            OcfExit::Success
            | OcfExit::NotRunning
            | OcfExit::RunningPromoted
            | OcfExit::Degraded
            | OcfExit::DegradedPromoted => mk(Verdict::Success, observed(rc), degraded),
            // "a probe returning 5 just means stopped here"
            OcfExit::ErrInstalled => mk(Verdict::Success, Some(Observed::Stopped), false),
            // The promoted instance failed: recovery, but the state is known.
            OcfExit::FailedPromoted => mk(failure(rc), observed(rc), false),
            _ => mk(failure(rc), None, false),
        },
        OpKind::Monitor(expect) => {
            let seen = observed(rc);
            let v = match (rc, expect) {
                (OcfExit::Success | OcfExit::Degraded, Role::Started)
                | (OcfExit::RunningPromoted | OcfExit::DegradedPromoted, Role::Promoted)
                | (OcfExit::NotRunning, Role::Stopped) => Verdict::Success,
                // A recurring monitor the agent does not implement: no recovery.
                (OcfExit::ErrUnimplemented, _) => Verdict::Ignored,
                // Running in the wrong role, or died: an ordinary failure.
                (
                    OcfExit::Success
                    | OcfExit::Degraded
                    | OcfExit::RunningPromoted
                    | OcfExit::DegradedPromoted
                    | OcfExit::NotRunning,
                    _,
                ) => Verdict::Failed(Recovery::Soft),
                _ => failure(rc),
            };
            let degraded = degraded && v == Verdict::Success;
            mk(v, seen, degraded)
        }
        OpKind::ValidateAll if rc == OcfExit::ErrUnimplemented => mk(Verdict::Ignored, None, false),
        // start, stop, promote, demote, validate-all, others: 0 (or
        // degraded) only. For stop this makes 7 an error: a successful stop
        // must return 0.
        _ => match rc {
            OcfExit::Success | OcfExit::Degraded | OcfExit::DegradedPromoted => {
                mk(Verdict::Success, None, degraded)
            }
            _ => mk(failure(rc), None, false),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: u8) -> (ExecStatus, OcfExit) {
        (
            ExecStatus::Exited {
                code: i32::from(code),
            },
            OcfExit::from(code),
        )
    }

    fn verdict(op: OpKind, code: u8) -> Verdict {
        let (e, rc) = exited(code);
        classify(op, &e, rc).verdict
    }

    #[test]
    fn codes_round_trip() {
        for c in 0..=255u8 {
            assert_eq!(OcfExit::from(c).code(), c);
        }
        assert_eq!(OcfExit::from(7), OcfExit::NotRunning);
        assert_eq!(OcfExit::from(190), OcfExit::Degraded);
        assert_eq!(OcfExit::from(42), OcfExit::Other(42));
        assert_eq!(OcfExit::from_code(-1), OcfExit::ErrGeneric);
        assert_eq!(OcfExit::from_code(300), OcfExit::ErrGeneric);
        assert_eq!(OcfExit::NotRunning.to_string(), "7 (OCF_NOT_RUNNING)");
        assert_eq!(
            serde_json::to_string(&OcfExit::RunningPromoted).unwrap(),
            r#"{"code":8,"name":"OCF_RUNNING_PROMOTED"}"#
        );
    }

    #[test]
    fn exit_status_conversion() {
        // wait(2) status words: exit code in bits 8..16, signal in 0..7.
        assert_eq!(
            OcfExit::from(ExitStatus::from_raw(7 << 8)),
            OcfExit::NotRunning
        );
        assert_eq!(OcfExit::from(ExitStatus::from_raw(9)), OcfExit::ErrGeneric);
        assert_eq!(
            ExecStatus::from_exit(ExitStatus::from_raw(11 | 0x80)),
            ExecStatus::Signaled {
                signal: 11,
                core_dumped: true
            }
        );
        assert_eq!(
            ExecStatus::from_exit(ExitStatus::from_raw(3 << 8)),
            ExecStatus::Exited { code: 3 }
        );
    }

    #[test]
    fn lsb_mapping_follows_pacemaker() {
        let status: Vec<u8> = [0, 1, 2, 3, 4, 5, 150, 151, 200]
            .iter()
            .map(|&c| lsb_status_to_ocf(c).code())
            .collect();
        assert_eq!(status, [0, 7, 7, 7, 1, 1, 5, 4, 1]);
        let action: Vec<u8> = [0, 1, 5, 6, 7, 8, 99, 150]
            .iter()
            .map(|&c| lsb_action_to_ocf(c).code())
            .collect();
        assert_eq!(action, [0, 1, 5, 6, 7, 1, 1, 1]);
    }

    #[test]
    fn recovery_classes_of_one_shot_actions() {
        use Recovery::*;
        use Verdict::*;
        for op in [
            OpKind::Start,
            OpKind::Promote,
            OpKind::Demote,
            OpKind::Other,
        ] {
            assert_eq!(verdict(op, 0), Success);
            assert_eq!(verdict(op, 1), Failed(Soft), "rc 1 is soft in unpack.c");
            assert_eq!(verdict(op, 2), Failed(Hard));
            assert_eq!(verdict(op, 3), Failed(Hard));
            assert_eq!(verdict(op, 4), Failed(Hard));
            assert_eq!(verdict(op, 5), Failed(Hard));
            assert_eq!(verdict(op, 6), Failed(Fatal));
            assert_eq!(verdict(op, 7), Failed(Soft));
            assert_eq!(verdict(op, 9), Failed(Soft));
            assert_eq!(verdict(op, 42), Failed(Soft));
            assert_eq!(verdict(op, 143), Failed(Soft));
            assert_eq!(verdict(op, 190), Success);
        }
        let (e, rc) = exited(190);
        let c = classify(OpKind::Start, &e, rc);
        assert!(c.degraded && c.is_success());
    }

    #[test]
    fn stop_returning_not_running_is_an_error() {
        let (e, rc) = exited(7);
        let c = classify(OpKind::Stop, &e, rc);
        assert_eq!(c.verdict, Verdict::Failed(Recovery::Soft));
        assert!(c.is_failed_stop());
        let (e, rc) = exited(0);
        let c = classify(OpKind::Stop, &e, rc);
        assert!(c.is_success() && !c.is_failed_stop());
    }

    #[test]
    fn probe_semantics() {
        let p = |code| {
            let (e, rc) = exited(code);
            let c = classify(OpKind::Probe, &e, rc);
            (c.verdict, c.observed, c.degraded)
        };
        use Observed::*;
        use Verdict::*;
        assert_eq!(p(0), (Success, Some(Started), false));
        assert_eq!(p(7), (Success, Some(Stopped), false));
        assert_eq!(p(8), (Success, Some(Promoted), false));
        assert_eq!(p(5), (Success, Some(Stopped), false));
        assert_eq!(p(190), (Success, Some(Started), true));
        assert_eq!(p(191), (Success, Some(Promoted), true));
        assert_eq!(p(9), (Failed(Recovery::Soft), Some(FailedPromoted), false));
        assert_eq!(p(1), (Failed(Recovery::Soft), None, false));
        assert_eq!(p(6), (Failed(Recovery::Fatal), None, false));
        assert_eq!(p(2), (Failed(Recovery::Hard), None, false));
        // A probe where the agent is missing: stopped here.
        let c = classify(
            OpKind::Probe,
            &ExecStatus::NotInstalled,
            OcfExit::ErrInstalled,
        );
        assert_eq!((c.verdict, c.observed), (Success, Some(Stopped)));
    }

    #[test]
    fn recurring_monitor_semantics() {
        use Recovery::*;
        use Verdict::*;
        let started = OpKind::Monitor(Role::Started);
        let promoted = OpKind::Monitor(Role::Promoted);
        assert_eq!(verdict(started, 0), Success);
        assert_eq!(verdict(started, 190), Success);
        assert_eq!(verdict(started, 7), Failed(Soft), "the resource died");
        assert_eq!(verdict(started, 8), Failed(Soft), "wrong role");
        assert_eq!(
            verdict(started, 3),
            Ignored,
            "unsupported recurring monitor"
        );
        assert_eq!(verdict(started, 5), Failed(Hard));
        assert_eq!(verdict(started, 6), Failed(Fatal));
        assert_eq!(verdict(promoted, 8), Success);
        assert_eq!(verdict(promoted, 191), Success);
        assert_eq!(verdict(promoted, 0), Failed(Soft));
        assert_eq!(verdict(promoted, 9), Failed(Soft));
        assert_eq!(verdict(OpKind::Monitor(Role::Stopped), 7), Success);
        assert_eq!(verdict(OpKind::Monitor(Role::Stopped), 0), Failed(Soft));
        let (e, rc) = exited(191);
        let c = classify(started, &e, rc);
        assert!(!c.degraded, "degraded only on success");
        assert_eq!(c.observed, Some(Observed::Promoted));
    }

    #[test]
    fn notify_and_validate_failures() {
        use Verdict::*;
        assert_eq!(verdict(OpKind::Notify, 0), Success);
        assert_eq!(verdict(OpKind::Notify, 1), Ignored);
        assert_eq!(verdict(OpKind::Notify, 6), Ignored);
        assert_eq!(
            classify(
                OpKind::Notify,
                &ExecStatus::TimedOut {
                    killed: false,
                    unreaped: false
                },
                OcfExit::ErrGeneric
            )
            .verdict,
            Ignored
        );
        assert_eq!(verdict(OpKind::ValidateAll, 3), Ignored);
        assert_eq!(verdict(OpKind::ValidateAll, 2), Failed(Recovery::Hard));
        assert_eq!(verdict(OpKind::ValidateAll, 6), Failed(Recovery::Fatal));
    }

    #[test]
    fn abnormal_endings() {
        use Recovery::*;
        use Verdict::*;
        let t = ExecStatus::TimedOut {
            killed: true,
            unreaped: false,
        };
        let s = ExecStatus::Signaled {
            signal: 9,
            core_dumped: false,
        };
        for op in [
            OpKind::Start,
            OpKind::Stop,
            OpKind::Probe,
            OpKind::Monitor(Role::Started),
        ] {
            assert_eq!(
                classify(op, &t, t.synthetic_rc().unwrap()).verdict,
                Failed(Soft)
            );
            assert_eq!(
                classify(op, &s, s.synthetic_rc().unwrap()).verdict,
                Failed(Soft)
            );
            let ne = ExecStatus::NotExecutable;
            assert_eq!(classify(op, &ne, OcfExit::ErrPerm).verdict, Failed(Hard));
        }
        assert!(classify(OpKind::Stop, &t, OcfExit::ErrGeneric).is_failed_stop());
        let ni = ExecStatus::NotInstalled;
        assert_eq!(
            classify(OpKind::Start, &ni, OcfExit::ErrInstalled).verdict,
            Failed(Hard)
        );
        assert_eq!(ni.synthetic_rc(), Some(OcfExit::ErrInstalled));
        assert_eq!(
            ExecStatus::NotExecutable.synthetic_rc(),
            Some(OcfExit::ErrPerm)
        );
        assert_eq!(s.to_string(), "killed by SIGKILL");
    }
}
