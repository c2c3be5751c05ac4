//! The async/I/O half of `src`: sockets, timers and the tasks that carry the
//! pure state machines' outputs out and feed results back. Nothing in here
//! decides anything.

pub mod builtin;
pub mod control;
pub mod daemon;
pub mod drbd;
pub mod exec;
pub mod fence;
pub mod heartbeat;
pub mod lease_io;
pub mod metrics;
pub mod notify;
pub mod wake;
pub mod watchdog;
