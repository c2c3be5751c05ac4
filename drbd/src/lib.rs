//! DRBD integration. Pure parts: a streaming parser of `drbdsetup events2`
//! lines ([`events`]), a per-resource state model fed by those events
//! ([`model`]) and the promotion rule ([`promote`]). Process parts: the
//! `drbdadm`/`drbdsetup` driver with typed errors ([`admin`]) and the
//! long-running `events2` monitor ([`monitor`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod events;
pub mod model;
pub mod monitor;
pub mod promote;

pub use events::{Event, ParseError, parse_line};
pub use model::{Cluster, Transition};
pub use promote::{Refusal, View, check};
