//! Built-in resource types: operations the daemon carries out itself, with
//! a few system calls, instead of forking a shell agent. Each type parses
//! its parameters once (`from_params`, naming every bad parameter) and runs
//! an operation as a blocking call (`run(op)`), which the daemon makes on a
//! blocking thread under its own timeout. The OCF agents they replace stay
//! usable for the same job.

// (the engine's `types` module is private; its items are re-exported at
// `crate::engine`)
use crate::engine::Outcome;

pub mod address;
mod arp;
pub mod netlink;

/// What a built-in operation ended with: the engine's outcome plus a reason for logs/status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinResult {
    /// The outcome the engine reads.
    pub outcome: Outcome,
    /// Why (for logs and status), when there is something to say.
    pub reason: Option<String>,
}

/// A parameter problem, naming the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct ParamError {
    /// The parameter's name.
    pub param: String,
    /// What is wrong with it.
    pub message: String,
}
