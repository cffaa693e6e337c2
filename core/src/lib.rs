#![doc = include_str!("../README.md")]
#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(test, feature = "std"))]
extern crate std;

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("features `defmt` and `log` are mutually exclusive: pick one logging backend");

#[macro_use]
mod fmt;

#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub mod asynch;
mod driver;
mod exchange;
mod limit;
mod responder;
mod retry;
mod stack;
mod survey;
mod time;
pub mod wire;

// The traits the drivers run on, at the versions they were built for: depend on these
// re-exports and the versions always match.
pub use embedded_nal;
#[cfg(feature = "async")]
pub use embedded_nal_async;
pub use nb;

pub use driver::{
    BATCH, BroadcastError, Broadcaster, Client, ClientError, ClientEvent, Discovery,
    DiscoveryEvent, Listener, Received, Request, RequestError, Server, ServerError, Shell, Wake,
    request,
};
pub use exchange::{
    Action, BLOCKED_FIRST_PAUSE, Exchange, ExchangeError, GaveUp, Ignored, Outcome, Replied,
    Verdict,
};
pub use limit::RateLimit;
pub use responder::{
    Counters, DEFAULT_SOURCE_LIMIT, DEFAULT_SOURCES, Decision, Destination, DropReason,
    REFLECTION_PORTS, Responder, ResponderConfig,
};
#[cfg(feature = "jitter")]
pub use retry::Jitter;
pub use retry::{Factor, PolicyError, RetryPolicy};
#[cfg(feature = "std")]
pub use stack::classify_io_error;
pub use stack::{StackCaps, StackErrorKind};
pub use survey::{Found, Survey, SurveyStep, SurveyVerdict};
pub use time::Instant;
