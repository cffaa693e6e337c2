//! Async drivers (feature `async`): the same decisions as the sync drivers, over
//! [`embedded-nal-async`](embedded_nal_async) 0.9 sockets.
//!
//! They take sockets, not stacks: a stack such as embassy-net cannot implement
//! `embedded-nal-async`'s `UdpStack` (embedded-nal issue #103), but its sockets can
//! implement [`ConnectedUdp`](embedded_nal_async::ConnectedUdp) and
//! [`UnconnectedUdp`](embedded_nal_async::UnconnectedUdp) (the `udp-echo-embassy` crate
//! does). Time comes through [`Clock`], a trait of two methods, so that no global time
//! driver is needed: host tests run them on a virtual clock with `block_on`.
//!
//! | driver | socket | what it does |
//! | --- | --- | --- |
//! | [`Client`] | `ConnectedUdp` | one request to its [`Outcome`](crate::Outcome), through an [`Exchange`](crate::Exchange) |
//! | [`Server`] | `UnconnectedUdp` | answers each datagram through a [`Responder`](crate::Responder), from the address it hit |
//! | [`Listener`] | `UnconnectedUdp` | hands each datagram over, never replies |
//! | [`Broadcaster`] | `UnconnectedUdp` | sends one datagram to any address |
//! | [`Discovery`] | `UnconnectedUdp` | one [`Survey`](crate::Survey) to its end |
//!
//! Their promises:
//!
//! - **Every await races the deadline.** A send that never completes, or a socket that
//!   never becomes readable, still ends a request at its give-up instant (3100 ms by
//!   default) and a discovery at the end of its window.
//! - **Read before timers**, at most [`BATCH`](crate::BATCH) in a row, as the sync drivers.
//! - **True lengths**: `receive_into` returns a datagram's full size when it cuts it (the
//!   trait's contract), so a small buffer answers datagrams of any size.
//!
//! Sockets must be cancel-safe: dropping an unfinished `receive_into` or `send` future
//! loses nothing that was not yet handed over (true of embassy-net's).

use core::future::Future;

use crate::time::Instant;

mod broadcast;
mod client;
mod server;

pub use broadcast::{Broadcaster, Discovery};
pub use client::{Client, request};
pub use server::{Destinations, Listener, Server, unknown_destinations};

/// The time, for the async drivers: now, and a sleep until an instant.
///
/// On embassy: `embassy_time::Instant::now()` and `Timer::at` (the `udp-echo-embassy`
/// crate has one). In tests: a virtual clock whose sleep jumps to the instant.
pub trait Clock {
    /// The time now; never earlier than the last.
    fn now(&self) -> Instant;

    /// Completes at `at` or later (at once if `at` has passed).
    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()>;
}

impl<C: Clock> Clock for &C {
    fn now(&self) -> Instant {
        (**self).now()
    }

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> {
        (**self).sleep_until(at)
    }
}

/// The output of `future` if it is ready at its first poll, without waiting; the future
/// is dropped otherwise (the sockets are cancel-safe).
///
/// A macro around `poll_fn`, not an `async fn` over `select(future, ready(()))`: that
/// added a state machine of its own, whose "resumed after completion" check, and
/// `Ready`'s "polled after completion" `expect`, the optimiser could not remove from the
/// drivers (firmware-example/no-panic proves that none is left).
macro_rules! ready_now {
    ($future:expr) => {{
        let mut future = core::pin::pin!($future);
        core::future::poll_fn(|cx| {
            core::task::Poll::Ready(match core::future::Future::poll(future.as_mut(), cx) {
                core::task::Poll::Ready(output) => Some(output),
                core::task::Poll::Pending => None,
            })
        })
        .await
    }};
}
use ready_now;

/// Whether a socket error is an ICMP "port unreachable" report.
fn refused<E: embedded_io_async::Error>(error: &E) -> bool {
    error.kind() == embedded_io_async::ErrorKind::ConnectionRefused
}
