#![doc = include_str!("../README.md")]
#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod addr;
mod clock;
mod connected;
mod error;
mod unconnected;

pub use clock::EmbassyClock;
pub use connected::Connected;
pub use error::Error;
pub use unconnected::Unconnected;

/// The embassy-net the adapter is built on: name its types through this re-export and
/// they always match the adapter's (smoltcp 0.13 underneath).
pub use embassy_net;
