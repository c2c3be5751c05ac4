//! hapair: storage high availability for two-node pairs.
//!
//! The library half of the `hapair` package. Modules:
//! (each issue adds its own; see architecture.md for the layout)
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cib;
pub mod cli;
pub mod config;
pub mod engine;
pub mod fence_peer;
pub mod keys;
pub mod membership;
pub mod preflight;
pub mod proto;
pub mod runtime;
#[cfg(test)]
mod sim;
pub mod state;
