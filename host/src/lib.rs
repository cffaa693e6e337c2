//! Host side of udp-echo: the core's protocol over std sockets, and the `udp-echo` CLI.
//!
//! Everything a user meets goes through the core ([`udp_echo_core`]): this crate adds
//! sockets, waiting and presentation, never its own copy of the protocol.
//!
//! - [`stack`]: an `embedded-nal` UDP stack over non-blocking host sockets, with the
//!   readiness wait the shells sleep in;
//! - [`clock`]: monotonic time as the core's [`udp_echo_core::Instant`];
//! - [`client`]: one request/reply exchange (the core's `Client` + `Exchange`), waiting
//!   in `poll(2)`;
//! - [`server`]: the server and listener loops (the core's `Server` and `Listener`);
//! - [`shutdown`]: SIGINT/SIGTERM as a flag and a file descriptor the loops wait on;
//! - [`payload`]: showing opaque payload bytes safely on one line.

#![deny(missing_docs)]

pub mod client;
pub mod clock;
pub mod payload;
pub mod server;
pub mod shutdown;
pub mod stack;
