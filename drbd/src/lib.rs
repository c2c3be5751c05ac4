//! Pure parts of DRBD integration: a streaming parser of `drbdsetup events2`
//! lines ([`events`]), a per-resource state model fed by those events
//! ([`model`]) and the promotion rule ([`promote`]). Nothing here runs a
//! process or touches a device.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod events;
pub mod model;
pub mod promote;

pub use events::{Event, ParseError, parse_line};
pub use model::{Cluster, Transition};
pub use promote::{Refusal, View, check};
