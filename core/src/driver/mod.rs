//! Drivers: the state machines wired to an `embedded-nal` stack.
//!
//! Every driver call does what it can at `now` and returns; none blocks or spins. When a
//! call cannot progress it returns a [`Wake`]: call again when a datagram arrives on the
//! driver's socket, or at the wake's instant at the latest. A shell therefore only waits:
//! the host with `poll(2)` on the socket, firmware with `iface.poll()` and a sleep until
//! the smaller of smoltcp's `poll_delay` and the driver's deadline. For the common case,
//! [`request`](crate::request) runs the whole client loop given a [`Shell`](crate::Shell).
//!
//! Any `embedded-nal` 0.9 stack whose error is `Debug` works as it is. `with_caps` tells a
//! driver more about the stack, e.g. which error is an ICMP "port unreachable" (see
//! [`StackCaps`]).
//!
//! | driver | stack | what one call does |
//! | --- | --- | --- |
//! | [`Client`](crate::Client) | `UdpClientStack` | one step of a request: a [`ClientEvent`](crate::ClientEvent) |
//! | [`Server`](crate::Server) | `UdpFullStack` | answers up to [`BATCH`] datagrams through a [`Responder`](crate::Responder) |
//! | [`Listener`](crate::Listener) | `UdpFullStack` | hands up to [`BATCH`] datagrams to a callback, never replies |
//! | [`Broadcaster`](crate::Broadcaster) | `UdpFullStack` | sends one datagram to any address |
//! | [`Discovery`](crate::Discovery) | `UdpFullStack` | one step of a [`Survey`](crate::Survey): a [`DiscoveryEvent`](crate::DiscoveryEvent) |

use core::net::SocketAddr;

use embedded_nal::{UdpClientStack, UdpFullStack};

use crate::stack::StackCaps;
use crate::time::Instant;

mod broadcast;
mod client;
mod discovery;
mod error;
mod server;

pub use broadcast::Broadcaster;
#[cfg(feature = "async")]
pub(crate) use client::on_reply;
pub use client::{Client, ClientEvent, Request, RequestError, Shell, request};
pub use discovery::{Discovery, DiscoveryEvent};
pub use error::{BroadcastError, ClientError, ServerError};
pub use server::{Listener, Server};

/// When to call a driver again. Every variant also means "or as soon as a datagram
/// arrives on the driver's socket"; [`min`](Self::min) combines the wakes of several
/// drivers (and a shell's own timers) into the one to sleep on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use = "the driver makes no progress until called again as the wake says"]
pub enum Wake {
    /// Without sleeping: the call stopped early (a batch was full) and has more to do.
    Now,
    /// At this instant at the latest.
    At(Instant),
    /// Only when a datagram arrives: there is no deadline.
    OnDatagram,
}

impl Wake {
    /// The earlier of two wakes.
    pub fn min(self, other: Wake) -> Wake {
        match (self, other) {
            (Wake::Now, _) | (_, Wake::Now) => Wake::Now,
            (Wake::At(a), Wake::At(b)) => Wake::At(a.min(b)),
            (Wake::At(t), Wake::OnDatagram) | (Wake::OnDatagram, Wake::At(t)) => Wake::At(t),
            (Wake::OnDatagram, Wake::OnDatagram) => Wake::OnDatagram,
        }
    }

    /// The instant to wake at, as seen at `now` (`Now` is `now`); `None`: no deadline.
    pub fn deadline(self, now: Instant) -> Option<Instant> {
        match self {
            Wake::Now => Some(now),
            Wake::At(t) => Some(t),
            Wake::OnDatagram => None,
        }
    }
}

/// `None` is "no deadline".
impl From<Option<Instant>> for Wake {
    fn from(at: Option<Instant>) -> Self {
        at.map_or(Wake::OnDatagram, Wake::At)
    }
}

/// How many datagrams one driver call reads before it looks at its timers (client,
/// discovery) or returns (server, listener), so that a flood cannot starve the caller's
/// other work or hold a driver past its deadline.
pub const BATCH: usize = 32;

/// The one reading rule of every driver that awaits answers, sync or async: datagrams
/// already waiting are read before the timers are looked at, so an answer that came in
/// time wins over a resend or the window's end; but at most [`BATCH`] in a row, so a
/// flood cannot hold a driver past its deadline.
#[derive(Debug, Clone)]
pub(crate) struct ReadFirst {
    left: usize,
}

impl ReadFirst {
    pub(crate) const fn new() -> Self {
        ReadFirst { left: BATCH }
    }

    /// Whether to read (once more) before the timers; counts the read.
    pub(crate) fn may_read(&mut self) -> bool {
        let may = self.left > 0;
        self.left = self.left.saturating_sub(1);
        may
    }

    /// The timers were looked at: a new batch may be read.
    pub(crate) fn timers_seen(&mut self) {
        self.left = BATCH;
    }
}

/// One datagram as a server or listener saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Received<'a> {
    /// Its source.
    pub from: SocketAddr,
    /// Its length as the stack reported it: the true length, or at most the buffer's if
    /// the stack may cut (then a [`DropReason::Cut`](crate::DropReason::Cut) decision
    /// says the true length is unknown).
    pub len: usize,
    /// Its bytes, as many as the buffer held.
    pub head: &'a [u8],
    /// When it was handled.
    pub at: Instant,
}

impl<'a> Received<'a> {
    /// The datagram of `len` bytes received into `buf` from `from` at `at`.
    pub(crate) fn new(from: SocketAddr, len: usize, buf: &'a [u8], at: Instant) -> Self {
        let head = buf.get(..len).unwrap_or(buf);
        Received {
            from,
            len,
            head,
            at,
        }
    }
}

/// A driver's socket and what it was told about its stack: the lifecycle every driver
/// shares.
struct Socket<S: UdpClientStack> {
    socket: S::UdpSocket,
    caps: StackCaps<S::Error>,
}

/// Stacks' socket types need not be `Debug`: shown as the caps only.
impl<S: UdpClientStack> core::fmt::Debug for Socket<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Socket")
            .field("caps", &self.caps)
            .finish_non_exhaustive()
    }
}

impl<S: UdpClientStack> Socket<S> {
    /// A socket connected to `remote`; closed again if the connect fails.
    fn connect(stack: &mut S, remote: SocketAddr) -> Result<Self, S::Error> {
        let mut socket = stack.socket()?;
        if let Err(e) = stack.connect(&mut socket, remote) {
            let _ = stack.close(socket);
            return Err(e);
        }
        Ok(Socket {
            socket,
            caps: StackCaps::PLAIN,
        })
    }

    fn close(self, stack: &mut S) -> Result<(), S::Error> {
        stack.close(self.socket)
    }
}

impl<S: UdpFullStack> Socket<S> {
    /// A socket bound to `port` (0: the stack picks); closed again if the bind fails.
    fn bind(stack: &mut S, port: u16) -> Result<Self, S::Error> {
        let mut socket = stack.socket()?;
        if let Err(e) = stack.bind(&mut socket, port) {
            let _ = stack.close(socket);
            return Err(e);
        }
        Ok(Socket {
            socket,
            caps: StackCaps::PLAIN,
        })
    }
}

/// The socket methods every driver offers, written once: `with_caps`, `socket`, `close`.
/// Used inside an `impl` whose stack parameter is `S` and whose socket field is `io`.
macro_rules! socket_lifecycle {
    () => {
        /// Tells the driver what the stack's errors mean and whether it reports true
        /// lengths (see [`StackCaps`](crate::StackCaps)).
        #[must_use]
        pub fn with_caps(mut self, caps: crate::StackCaps<S::Error>) -> Self {
            self.io.caps = caps;
            self
        }

        /// The socket, for a shell that waits on it.
        pub fn socket(&self) -> &S::UdpSocket {
            &self.io.socket
        }

        /// Closes the socket.
        ///
        /// # Errors
        ///
        /// The stack's, if it fails to close.
        pub fn close(self, stack: &mut S) -> Result<(), S::Error> {
            self.io.close(stack)
        }
    };
}
use socket_lifecycle;
