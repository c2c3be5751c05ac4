//! hapair: storage high availability for two-node pairs.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod engine;
#[cfg(test)]
mod sim;
