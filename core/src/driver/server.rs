//! The byte-count server and the listener over an `embedded-nal` stack.

use core::fmt;

use embedded_nal::UdpFullStack;

use super::{BATCH, Received, ServerError, Socket, Wake, socket_lifecycle};
use crate::responder::{Counters, DEFAULT_SOURCES, Decision, Responder, ResponderConfig};
use crate::stack::StackErrorKind;
use crate::time::Instant;
use crate::wire::MAX_DATAGRAM;

/// The byte-count server: answers every datagram through a [`Responder`].
///
/// ```
/// use udp_echo_core::{ResponderConfig, Server, Wake};
/// # use udp_echo_core::Instant;
/// # fn demo<S: udp_echo_core::embedded_nal::UdpFullStack>(
/// #     stack: &mut S, now: impl Fn() -> Instant, sleep: impl Fn(Wake))
/// # -> Result<(), udp_echo_core::ServerError<S::Error>> where S::Error: core::fmt::Debug {
///
/// let mut server = Server::bind(stack, 6666, ResponderConfig::default())?;
/// // Only the head of each datagram is kept: a stack that reports true lengths
/// // (`with_caps`) lets a small buffer answer any size; otherwise make it 65535 bytes.
/// let mut buf = [0u8; 2048];
/// loop {
///     let wake = server.poll(stack, &mut buf, now(), |datagram, decision| {
///         // e.g. log datagram.from, datagram.len and the decision
///     })?;
///     sleep(wake);
/// #   break;
/// }
/// # Ok(()) }
/// ```
///
/// `N` is the number of per-source rate-limit buckets ([`DEFAULT_SOURCES`] unless
/// [`with_sources`](Self::with_sources) says otherwise).
///
/// ## What `embedded-nal` cannot express
///
/// `receive` says where a datagram came from, not where it was sent, and `send_to` cannot
/// choose the reply's source address. So this driver:
///
/// - answers a socket bound to a wildcard address (`0.0.0.0`, `::`) from whatever source
///   address the stack picks, which on a host with several addresses may not be the one
///   the request was sent to: a client on a connected socket (ours included) then never
///   sees the reply. Bind one address per socket, or use a driver that learns each
///   datagram's destination (the async server, or the host's) and calls
///   [`Responder::handle_to`];
/// - cannot tell a broadcast-addressed request from a unicast one, so the responder's
///   broadcast guard ([`Destination`](crate::Destination)) does not apply here (the
///   per-source and global limits do).
#[derive(Debug)]
pub struct Server<S: UdpFullStack, const N: usize = DEFAULT_SOURCES> {
    io: Socket<S>,
    responder: Responder<N>,
}

impl<S> Server<S>
where
    S: UdpFullStack,
    S::Error: fmt::Debug,
{
    /// Binds `port` and answers with the guards of `config`.
    ///
    /// # Errors
    ///
    /// [`ServerError::Stack`] if the stack cannot open or bind the socket.
    pub fn bind(
        stack: &mut S,
        port: u16,
        config: ResponderConfig,
    ) -> Result<Self, ServerError<S::Error>> {
        Ok(Server {
            io: Socket::bind(stack, port).map_err(ServerError::Stack)?,
            responder: Responder::new(config),
        })
    }
}

impl<S, const N: usize> Server<S, N>
where
    S: UdpFullStack,
    S::Error: fmt::Debug,
{
    socket_lifecycle!();

    /// The same server with `M` per-source buckets (32 bytes each): more sources are told
    /// apart under load. Call before the first poll: the buckets start empty.
    #[must_use]
    pub fn with_sources<const M: usize>(self) -> Server<S, M> {
        Server {
            io: self.io,
            responder: Responder::with_sources(*self.responder.config()),
        }
    }

    /// Keys the per-source table with a random `seed` (see [`Responder::with_seed`]).
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.responder = self.responder.with_seed(seed);
        self
    }

    /// What the server has seen and done.
    pub fn counters(&self) -> &Counters {
        self.responder.counters()
    }

    /// Answers up to [`BATCH`] waiting datagrams, receiving each into `buf`, and tells
    /// `on_datagram` about each with the decision taken. Returns [`Wake::Now`] if more may
    /// be waiting, else [`Wake::OnDatagram`]. A reply the stack cannot take right now is
    /// dropped and counted: UDP promises nothing, and queueing would let a flood grow
    /// memory.
    ///
    /// # Errors
    ///
    /// [`ServerError::Stack`] when receiving fails with an error that the caps do not
    /// classify as an ICMP report or a cut datagram.
    pub fn poll(
        &mut self,
        stack: &mut S,
        buf: &mut [u8],
        now: Instant,
        mut on_datagram: impl FnMut(&Received<'_>, &Decision),
    ) -> Result<Wake, ServerError<S::Error>> {
        for _ in 0..BATCH {
            let (len, from) = match stack.receive(&mut self.io.socket, buf) {
                Ok(got) => got,
                Err(nb::Error::WouldBlock) => return Ok(Wake::OnDatagram),
                Err(nb::Error::Other(e)) => match self.io.caps.kind(&e) {
                    // Reported for an earlier reply's destination; nothing to answer.
                    StackErrorKind::Refused => continue,
                    // Length unknown: counted as cut, never answered with a guess.
                    StackErrorKind::Truncated => {
                        let _ = self.responder.cut();
                        continue;
                    }
                    StackErrorKind::Other => return Err(ServerError::Stack(e)),
                },
            };
            let datagram = Received::new(from, len, buf, now);
            let maybe_cut =
                !self.io.caps.true_lengths && len >= buf.len() && buf.len() < MAX_DATAGRAM;
            let decision = if maybe_cut {
                self.responder.cut()
            } else {
                self.responder.handle(now, from, len, datagram.head)
            };
            if let Decision::Reply(reply) = &decision
                && stack
                    .send_to(&mut self.io.socket, from, reply.as_bytes())
                    .is_err()
            {
                self.responder.note_send_failed();
                warn!("server: a reply could not be sent");
            }
            on_datagram(&datagram, &decision);
        }
        Ok(Wake::Now)
    }
}

/// A listener: receives datagrams (e.g. broadcasts) and never replies.
///
/// ```
/// use udp_echo_core::{Listener, Wake};
/// # use udp_echo_core::Instant;
/// # fn demo<S: udp_echo_core::embedded_nal::UdpFullStack>(
/// #     stack: &mut S, now: impl Fn() -> Instant, sleep: impl Fn(Wake))
/// # -> Result<(), udp_echo_core::ServerError<S::Error>> where S::Error: core::fmt::Debug {
///
/// let mut listener = Listener::bind(stack, 6666)?;
/// let mut buf = [0u8; 512];
/// loop {
///     let wake = listener.poll(stack, &mut buf, now(), |datagram| {
///         // e.g. print datagram.from and datagram.head
///     })?;
///     sleep(wake);
/// #   break;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Listener<S: UdpFullStack> {
    io: Socket<S>,
    received: u64,
}

impl<S> Listener<S>
where
    S: UdpFullStack,
    S::Error: fmt::Debug,
{
    /// Binds `port`.
    ///
    /// # Errors
    ///
    /// [`ServerError::Stack`] if the stack cannot open or bind the socket.
    pub fn bind(stack: &mut S, port: u16) -> Result<Self, ServerError<S::Error>> {
        Ok(Listener {
            io: Socket::bind(stack, port).map_err(ServerError::Stack)?,
            received: 0,
        })
    }

    socket_lifecycle!();

    /// Datagrams received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Hands up to [`BATCH`] waiting datagrams to `on_datagram`. Returns [`Wake::Now`] if
    /// more may be waiting, else [`Wake::OnDatagram`].
    ///
    /// # Errors
    ///
    /// [`ServerError::Stack`] when receiving fails with an error that the caps do not
    /// classify as an ICMP report or a cut datagram.
    pub fn poll(
        &mut self,
        stack: &mut S,
        buf: &mut [u8],
        now: Instant,
        mut on_datagram: impl FnMut(&Received<'_>),
    ) -> Result<Wake, ServerError<S::Error>> {
        for _ in 0..BATCH {
            match stack.receive(&mut self.io.socket, buf) {
                Ok((len, from)) => {
                    self.received += 1;
                    on_datagram(&Received::new(from, len, buf, now));
                }
                Err(nb::Error::WouldBlock) => return Ok(Wake::OnDatagram),
                Err(nb::Error::Other(e)) => match self.io.caps.kind(&e) {
                    StackErrorKind::Refused | StackErrorKind::Truncated => {}
                    StackErrorKind::Other => return Err(ServerError::Stack(e)),
                },
            }
        }
        Ok(Wake::Now)
    }
}
