//! Host side of udp-echo: the core's protocol over std sockets.
//!
//! - [`stack`]: an `embedded-nal` UDP stack over non-blocking host sockets, with the
//!   readiness wait the shells sleep in;
//! - [`clock`]: monotonic time as the core's [`udp_echo_core::Instant`].

#![deny(missing_docs)]

pub mod clock;
pub mod stack;
