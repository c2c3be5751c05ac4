//! The async/I/O half of `src`: sockets, timers and the tasks that carry the
//! pure state machines' outputs out and feed results back. Nothing in here
//! decides anything.

pub mod builtin;
pub mod heartbeat;
