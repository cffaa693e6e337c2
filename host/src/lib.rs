//! udp-echo on std sockets: the core's protocol over the host's UDP sockets, and the
//! loops that wait for it in `poll(2)`. A library; the `udp-echo` CLI is the `udp-echo`
//! package beside it.
//!
//! Everything goes through the core ([`udp_echo_core`]): this crate adds sockets and
//! waiting, never its own copy of the protocol.
//!
//! - [`stack`]: an `embedded-nal` UDP stack over non-blocking host sockets ([`StdStack`],
//!   with [`stack::CAPS`] for the drivers), with the readiness wait the shells sleep in;
//! - [`clock`]: monotonic time as the core's [`udp_echo_core::Instant`];
//! - [`client`]: one request/reply exchange (the core's `Client`), waiting in `poll(2)`;
//! - [`server`]: the server (and listener): every decision above the datagram layer
//!   (reply source, broadcast classification, the core's responder per datagram, replies
//!   coalesced into trains) and the loop that waits;
//! - [`udp`]: the system-call layer, datagrams in and out with their metadata: quinn-udp
//!   on every system, and on Linux our own `recvmmsg`/`sendmmsg` with GRO/GSO (the crate's
//!   only `unsafe`); [`interfaces`] lists the directly connected networks;
//! - [`wait`]: sleeping until a socket is readable, a signal, or a deadline;
//! - [`shutdown`]: SIGINT/SIGTERM as a flag and a file descriptor the loops wait on.
//!
//! ```no_run
//! use udp_echo_core::{Outcome, RetryPolicy};
//! use udp_echo_host::{StdStack, client};
//!
//! let mut stack = StdStack::new();
//! let server = "127.0.0.1:6666".parse().unwrap();
//! let report = client::exchange(&mut stack, server, b"hello", &RetryPolicy::default(), None, |_, _| {})?;
//! if let client::Ended::Done(Outcome::Reply(reply)) = report.ended {
//!     println!("{} bytes, rtt {:?}", reply.count, reply.rtt);
//! }
//! # Ok::<(), udp_echo_core::ClientError<udp_echo_host::stack::StdError>>(())
//! ```

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod client;
pub mod clock;
pub mod interfaces;
pub mod server;
pub mod shutdown;
pub mod stack;
pub mod udp;
pub mod wait;

pub use clock::Clock;
pub use stack::{StdError, StdSocket, StdStack};
