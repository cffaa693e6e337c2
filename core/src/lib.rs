#![doc = include_str!("../README.md")]
#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]

#[cfg(test)]
extern crate std;

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("features `defmt` and `log` are mutually exclusive: pick one logging backend");

#[macro_use]
mod fmt;

pub mod driver;
pub mod exchange;
pub mod responder;
pub mod retry;
pub mod stack;
pub mod time;
pub mod wire;

pub use driver::{Broadcaster, Client, Discovery, Listener, Poll, Server, Wake};
pub use exchange::{Exchange, Outcome, Verdict};
pub use responder::{Decision, Responder, ResponderConfig};
pub use retry::RetryPolicy;
pub use stack::{StackError, StackErrorKind};
pub use time::Instant;
