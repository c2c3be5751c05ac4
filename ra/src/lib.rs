//! `ra`: runs OCF, LSB and systemd resource agents the way Pacemaker's
//! executor does, and reads what they say.
//!
//! hapair drives every resource above the storage (filesystem, address,
//! database, NFS) through the agents operators already trust. This crate is
//! the executor half of that: the engine asks for `RunAgent{res, op,
//! timeout}` (a [`Request`]), the runtime hands it to a [`Runner`], and what
//! comes back is an [`AgentResult`] ([`OpKey`], [`OcfExit`], [`Timing`],
//! Pacemaker's reading of it, [`Classification`], and the captured output),
//! whose [`AgentResult::done`] is the engine's `AgentDone{res, op, rc,
//! elapsed}` ([`AgentDone`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ra::Error> {
//! use std::time::Duration;
//! use ra::{Action, Request, Runner, RunnerConfig, Verdict};
//!
//! let runner = Runner::new(RunnerConfig::default())?;
//! let agent = "ocf:heartbeat:Filesystem".parse()?;
//! let md = runner.meta_data(&agent).await?;
//! let start = Request::new("fs", agent, Action::Start, Duration::from_secs(60))
//!     .param("device", "/dev/drbd0")
//!     .param("directory", "/srv")
//!     .param("fstype", "ext4");
//! assert!(md.check_params(&start.params).iter().all(|p| !p.is_error()));
//! let done = runner.run(&start).await?;
//! match done.classification.verdict {
//!     Verdict::Success => println!("{} in {:?}", done.key, done.elapsed()),
//!     Verdict::Failed(recovery) => println!(
//!         "rc {}: {recovery:?} ({})",
//!         done.rc,
//!         done.exit_reason.as_deref().unwrap_or("no reason")
//!     ),
//!     Verdict::Ignored => {}
//! }
//! # Ok(()) }
//! ```
//!
//! Modules, pure ones first:
//! - [`agent`]: `ocf:PROVIDER:TYPE` / `lsb:NAME` / `systemd:UNIT`, action names;
//! - [`exit`]: OCF codes, LSB mapping, exec status, recovery classes;
//! - [`request`]: what to run (parameters, meta, clone and notify data);
//! - [`env`](mod@env): the OCF 1.1 environment Pacemaker passes, built from a request;
//! - [`metadata`]: `meta-data` XML, parameter checks, timeout hints;
//! - [`capture`]: bounded output capture, `ocf-exit-reason:` scanner;
//! - [`systemd`]: reading `systemctl` output;
//! - [`run`]: the runner (process groups, timeouts, SIGTERM→SIGKILL, capture).
//!
//! The runner is async (tokio), so a daemon can run several agents at once;
//! a command-line tool wraps a call in a current-thread runtime.
//!
//! What it does not do: decide anything. Fail counts, `on-fail`,
//! `migration-threshold`, fencing after a failed stop, which role to
//! promote: all the engine's, from the [`Classification`] given here.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agent;
pub mod capture;
pub mod env;
mod error;
pub mod exit;
pub mod metadata;
pub mod request;
pub mod run;
pub mod systemd;

pub use agent::{Action, Agent};
pub use capture::{CaptureLimits, Captured};
pub use error::Error;
pub use exit::{Classification, ExecStatus, Observed, OcfExit, OpKind, Recovery, Role, Verdict};
pub use metadata::{MetaData, ParamProblem, Parameter};
pub use request::{CloneMeta, Instance, Notify, NotifyOp, NotifyType, OpKey, Request};
pub use run::{
    AgentDone, AgentList, AgentResult, CommandResult, Runner, RunnerConfig, Timing,
    process_group_alive, with_defaults,
};
