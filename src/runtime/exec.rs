//! Carries out one resource operation: an OCF/LSB/systemd agent through the
//! `ra` runner, or a built-in type (`filesystem`, `address`) on a blocking
//! thread, or DRBD through `drbdadm`. Every call has a timeout; what comes
//! back is the engine's [`Outcome`] plus a reason for logs and status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ra::{Action as RaAction, Agent, Observed, Recovery, Request, Runner, Verdict};

use crate::engine::{FailClass, Op, Outcome};
use crate::runtime::builtin::{BuiltinResult, address::Address, filesystem::Filesystem};

/// How one resource is run.
#[derive(Debug, Clone)]
pub enum Executor {
    /// A resource agent.
    Agent {
        /// The agent.
        agent: Agent,
        /// Its parameters (OCF_RESKEY_*).
        params: BTreeMap<String, String>,
    },
    /// The built-in `filesystem` type.
    Filesystem(Arc<Filesystem>),
    /// The built-in `address` type.
    Address(Arc<Address>),
    /// DRBD: promote/demote with `drbdadm`, monitored from `events2`.
    Drbd(Arc<crate::runtime::drbd::DrbdResource>),
}

/// The result of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpResult {
    /// The engine's reading.
    pub outcome: Outcome,
    /// Why, when it failed (agent exit reason, error text, "timed out").
    pub reason: Option<String>,
    /// How long it took.
    pub elapsed: Duration,
}

fn ra_action(op: Op) -> RaAction {
    match op {
        Op::Start => RaAction::Start,
        Op::Stop => RaAction::Stop,
        Op::Monitor => RaAction::Monitor,
        Op::Promote => RaAction::Promote,
        Op::Demote => RaAction::Demote,
    }
}

/// Pacemaker's reading of an agent result, as the engine's outcome. A
/// recurring monitor that finds the resource cleanly stopped is
/// `NotRunning` (the engine decides what that means); an ignored failure
/// (a monitor the agent does not support) counts as success.
pub fn outcome_of(verdict: Verdict, observed: Option<Observed>) -> Outcome {
    match (verdict, observed) {
        (Verdict::Success | Verdict::Ignored, _) => Outcome::Ok,
        (Verdict::Failed(_), Some(Observed::Stopped)) => Outcome::NotRunning,
        (Verdict::Failed(Recovery::Soft), _) => Outcome::Failed(FailClass::Soft),
        (Verdict::Failed(Recovery::Hard), _) => Outcome::Failed(FailClass::Hard),
        (Verdict::Failed(Recovery::Fatal), _) => Outcome::Failed(FailClass::Fatal),
    }
}

impl Executor {
    /// A short name of the type, for status.
    pub fn type_name(&self) -> String {
        match self {
            Executor::Agent { agent, .. } => agent.to_string(),
            Executor::Filesystem(_) => "filesystem".into(),
            Executor::Address(_) => "address".into(),
            Executor::Drbd(_) => "drbd".into(),
        }
    }

    /// Runs `op` on resource `name` with `timeout`. Never panics, never
    /// outlives `timeout` by more than the runner's kill grace.
    pub async fn run(
        &self,
        runner: &Runner,
        name: &str,
        op: Op,
        timeout: Duration,
        interval: Duration,
    ) -> OpResult {
        let t0 = Instant::now();
        let (outcome, reason) = match self {
            Executor::Agent { agent, params } => {
                let mut req = Request::new(name, agent.clone(), ra_action(op), timeout);
                if op == Op::Monitor {
                    req = req.interval(interval);
                }
                for (k, v) in params {
                    req = req.param(k, v);
                }
                match runner.run(&req).await {
                    Ok(r) => {
                        let outcome =
                            outcome_of(r.classification.verdict, r.classification.observed);
                        let reason = (outcome != Outcome::Ok).then(|| {
                            r.exit_reason.clone().unwrap_or_else(|| match &r.exec {
                                // a timeout or a signal says more than the
                                // OCF code Pacemaker would report for it
                                ra::ExecStatus::Exited { .. } => {
                                    format!("{} {op}: {} ({})", agent, r.rc.name(), r.rc.code())
                                }
                                exec => format!("{agent} {op}: {exec} ({})", r.rc.name()),
                            })
                        });
                        (outcome, reason)
                    }
                    Err(e) => (
                        Outcome::Failed(FailClass::Soft),
                        Some(format!("{agent} {op}: {e}")),
                    ),
                }
            }
            Executor::Filesystem(fs) => {
                let fs = Arc::clone(fs);
                blocking(timeout, move || fs.run(op)).await
            }
            Executor::Address(a) => {
                let a = Arc::clone(a);
                blocking(timeout, move || a.run(op)).await
            }
            Executor::Drbd(d) => d.run(op, timeout).await,
        };
        OpResult {
            outcome,
            reason,
            elapsed: t0.elapsed(),
        }
    }
}

/// Runs a blocking built-in on the blocking pool with a timeout. A call
/// that times out is reported as a soft failure; its thread is abandoned
/// (a stuck `umount` cannot be interrupted), and the engine escalates.
async fn blocking(
    timeout: Duration,
    f: impl FnOnce() -> BuiltinResult + Send + 'static,
) -> (Outcome, Option<String>) {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(r)) => (r.outcome, r.reason),
        Ok(Err(e)) => (
            Outcome::Failed(FailClass::Soft),
            Some(format!("built-in operation panicked: {e}")),
        ),
        Err(_) => (
            Outcome::Failed(FailClass::Soft),
            Some(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent that hangs past its timeout is reported as timed out, not
    /// by the OCF code Pacemaker would give it.
    #[test]
    fn a_timed_out_agent_is_reported_as_such() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("resource.d/hapairtest");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let agent = dir.join("Hang");
        std::fs::write(&agent, "#!/bin/sh\nsleep 30\n").expect("write agent");
        std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let runner = Runner::new(ra::RunnerConfig {
            ocf_root: root.path().to_owned(),
            kill_grace: Duration::from_millis(200),
            ..ra::RunnerConfig::default()
        })
        .expect("runner");
        let exec = Executor::Agent {
            agent: ra::Agent::ocf("hapairtest", "Hang").expect("agent"),
            params: std::collections::BTreeMap::new(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let r = rt.block_on(exec.run(
            &runner,
            "svc",
            Op::Stop,
            Duration::from_millis(300),
            Duration::ZERO,
        ));
        assert_eq!(r.outcome, Outcome::Failed(FailClass::Soft));
        let reason = r.reason.expect("a reason");
        assert!(reason.contains("timed out"), "{reason}");
        assert!(reason.starts_with("ocf:hapairtest:Hang stop: "), "{reason}");
    }

    #[test]
    fn outcomes_follow_pacemaker_classes() {
        assert_eq!(outcome_of(Verdict::Success, None), Outcome::Ok);
        assert_eq!(outcome_of(Verdict::Ignored, None), Outcome::Ok);
        assert_eq!(
            outcome_of(Verdict::Failed(Recovery::Soft), Some(Observed::Stopped)),
            Outcome::NotRunning
        );
        assert_eq!(
            outcome_of(Verdict::Failed(Recovery::Soft), None),
            Outcome::Failed(FailClass::Soft)
        );
        assert_eq!(
            outcome_of(Verdict::Failed(Recovery::Hard), None),
            Outcome::Failed(FailClass::Hard)
        );
        assert_eq!(
            outcome_of(Verdict::Failed(Recovery::Fatal), Some(Observed::Started)),
            Outcome::Failed(FailClass::Fatal)
        );
    }
}
