//! The crate's error type: things that stop an action from being run at
//! all. What an agent *did* (any exit code, a timeout, a signal, a missing
//! or non-executable agent file) is not an error but an
//! [`AgentResult`](crate::AgentResult), as in Pacemaker, where a probe on a
//! node without the agent simply finds the resource stopped.

use std::io;
use std::path::PathBuf;

use crate::metadata::MetaDataError;

/// Why an action could not be run, or meta-data not read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The agent name is malformed.
    #[error("invalid agent {spec:?}: {reason}")]
    InvalidAgent {
        /// What was given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The action name is malformed.
    #[error(
        "invalid action {0:?}: expected start, stop, monitor, promote, demote, notify, reload-agent, validate-all, meta-data or another [a-z0-9_-] name"
    )]
    InvalidAction(String),
    /// A parameter, meta attribute or environment variable cannot be passed.
    #[error("cannot pass {name:?}: {reason}")]
    InvalidParam {
        /// The name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The agent's class has no such action (LSB and systemd resources
    /// only start, stop and report status).
    #[error(
        "{agent} does not support the {action} action ({class} resources only start, stop and monitor)"
    )]
    Unsupported {
        /// The agent.
        agent: String,
        /// The class (`lsb`, `systemd`).
        class: &'static str,
        /// The action.
        action: String,
    },
    /// systemd is not the init system here, so units cannot be managed.
    #[error("systemd is unavailable: {0}")]
    SystemdUnavailable(String),
    /// The agent does not exist (for meta-data; running a missing agent is
    /// a result, see [`crate::ExecStatus::NotInstalled`]).
    #[error("{agent}: not installed ({} does not exist)", path.display())]
    NotInstalled {
        /// The agent.
        agent: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The agent's `meta-data` action failed.
    #[error("{agent} meta-data failed: {detail}")]
    MetaDataAction {
        /// The agent.
        agent: String,
        /// How it failed, with its exit reason or the end of its stderr.
        detail: String,
    },
    /// The agent's meta-data could not be parsed.
    #[error("{agent} meta-data: {source}")]
    MetaData {
        /// The agent.
        agent: String,
        /// The parse error.
        #[source]
        source: MetaDataError,
    },
    /// An I/O error of the runner itself.
    #[error("{context}: {source}")]
    Io {
        /// What the runner was doing.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}
