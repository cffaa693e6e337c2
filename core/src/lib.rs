#![doc = include_str!("../README.md")]
#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]

#[cfg(any(test, feature = "std"))]
extern crate std;

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("features `defmt` and `log` are mutually exclusive: pick one logging backend");

#[macro_use]
mod fmt;

pub mod driver;
pub mod exchange;
pub mod limit;
pub mod responder;
pub mod retry;
pub mod stack;
pub mod time;
pub mod wire;

// The traits the drivers run on, at the versions they were built for: depend on these
// re-exports and the versions always match.
pub use embedded_nal;
pub use nb;

pub use driver::{
    BATCH, BroadcastError, Broadcaster, Client, ClientError, ClientEvent, Discovery,
    DiscoveryEvent, Found, Listener, Received, Request, Server, ServerError, Wake,
};
pub use exchange::{Exchange, ExchangeError, GaveUp, Ignored, Outcome, Replied, Verdict};
pub use responder::{
    Counters, Decision, Destination, DropReason, RateLimit, Responder, ResponderConfig,
};
pub use retry::{Factor, Jitter, PolicyError, RetryPolicy};
pub use stack::{StackCaps, StackErrorKind};
pub use time::Instant;
pub use wire::{DEFAULT_PORT, Reply};
