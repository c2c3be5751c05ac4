//! sfex: the shared-disk lease of hapair, byte-compatible with the sfex tools
//! of ClusterLabs resource-agents (`sfex_init`, `sfex_stat`, `sfex_daemon`).
//!
//! - [`format`]: pure encode/decode of the on-disk blocks.
//! - [`lease`]: the lock protocol as a pure state machine (time and I/O
//!   results in, I/O requests and events out).
//! - [`dev`]: block devices with O_DIRECT, through a plain pread/pwrite engine
//!   or an io-uring engine; the only module with `unsafe` code.
//! - [`holder`]: runs the lease state machine against a device on its own I/O
//!   thread, watching the deadline even when the disk hangs.
//! - [`ops`]: the operations the CLI offers (init, status, unlock, dump),
//!   with typed errors and the original tools' exit codes.
#![deny(missing_docs)]
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod dev;
pub mod format;
pub mod holder;
pub mod lease;
pub mod ops;
