//! Built-in resource types: resources the daemon runs itself, with a few
//! system calls, instead of forking an OCF shell agent that forks dozens of
//! times. Each type parses its parameters once ([`ParamError`]s name the
//! parameter) and runs an operation as one blocking call that returns a
//! [`BuiltinResult`]: the engine's [`Outcome`] plus a reason for logs and
//! status. The daemon calls `run` on a blocking thread with its own timeout.
//!
//! The OCF agents for the same jobs stay usable: a built-in is chosen by
//! configuration, never forced.
//!
//! - [`filesystem`]: mount/unmount/check a block-device filesystem
//!   (replaces `ocf:heartbeat:Filesystem` for ext4/xfs on DRBD or a LUN);
//! - [`mountinfo`]: the `/proc/self/mountinfo` parser it relies on;
//! - [`address`]: a virtual IP over netlink, with a duplicate check and
//!   gratuitous ARP (replaces `ocf:heartbeat:IPaddr2`);
//! - [`netlink`]: the rtnetlink messages it uses.

pub mod address;
mod arp;
pub mod filesystem;
pub mod mountinfo;
pub mod netlink;

use crate::engine::{FailClass, Op, Outcome};

/// What a built-in operation ended with: the engine's outcome plus a reason for logs/status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinResult {
    /// The engine's reading of the operation.
    pub outcome: Outcome,
    /// Why (always set on failure; sometimes on success, e.g. "already mounted").
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

#[cfg(test)]
#[path = "../../tests/builtin_fs.rs"]
mod builtin_fs_tests;
