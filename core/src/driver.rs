//! Drivers: the state machines wired to an `embedded-nal` stack.
//!
//! Every driver call does what it can at `now` and returns; none blocks or spins. When a
//! call cannot progress it returns a [`Wake`]: call again when a datagram arrives on the
//! driver's socket, or at the wake's instant at the latest. A shell therefore only waits —
//! the host with `poll(2)` on the socket, firmware with `iface.poll()` and a sleep until
//! the smaller of smoltcp's `poll_delay` and the driver's deadline.
//!
//! Any `embedded-nal` 0.9 stack whose error is `Debug` works as it is. `with_caps` tells a
//! driver more about the stack, e.g. which error is an ICMP "port unreachable" (see
//! [`crate::stack`]).
//!
//! | driver | stack | what one call does |
//! | --- | --- | --- |
//! | [`Client`] | `UdpClientStack` | one step of a [`Request`]: an [`ClientEvent`] |
//! | [`Server`] | `UdpFullStack` | answers up to [`BATCH`] datagrams through a [`Responder`] |
//! | [`Listener`] | `UdpFullStack` | hands up to [`BATCH`] datagrams to a callback, never replies |
//! | [`Broadcaster`] | `UdpFullStack` | sends one datagram to any address |
//! | [`Discovery`] | `UdpFullStack` | one step of a discovery: a [`DiscoveryEvent`] |

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use embedded_nal::{UdpClientStack, UdpFullStack};

use crate::exchange::{Action, Exchange, ExchangeError, Outcome, Verdict, next_blocked_pause_us};
use crate::responder::{Counters, DEFAULT_SOURCES, Decision, Responder, ResponderConfig};
use crate::retry::RetryPolicy;
use crate::stack::{StackCaps, StackErrorKind};
use crate::time::Instant;
use crate::wire::{self, MAX_DATAGRAM, MAX_REPLY_LEN};

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

    /// How long a shell may sleep from `now` (`None`: until a datagram arrives).
    pub fn timeout(self, now: Instant) -> Option<Duration> {
        self.deadline(now).map(|at| at - now)
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

/// Errors of the [`Client`] driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ClientError<E> {
    /// The stack failed (socket, connect, send or receive) with an error that is not an
    /// ICMP report: the exchange cannot go on.
    Stack(E),
    /// The exchange cannot start (request too large, bad policy).
    Exchange(ExchangeError),
}

/// Errors of the [`Server`] and [`Listener`] drivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ServerError<E> {
    /// The stack failed to open, bind or receive.
    Stack(E),
}

/// Errors of the [`Broadcaster`] and [`Discovery`] drivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BroadcastError<E> {
    /// The stack failed (socket, bind, send or receive).
    Stack(E),
    /// The payload does not fit one UDP datagram to the destination.
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The largest payload for the destination's family.
        max: usize,
    },
}

impl<E: fmt::Debug> fmt::Display for ClientError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Stack(e) => write!(f, "network stack: {e:?}"),
            ClientError::Exchange(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<E: fmt::Debug> fmt::Display for ServerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Stack(e) => write!(f, "network stack: {e:?}"),
        }
    }
}

impl<E: fmt::Debug> fmt::Display for BroadcastError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BroadcastError::Stack(e) => write!(f, "network stack: {e:?}"),
            BroadcastError::PayloadTooLarge { len, max } => write!(
                f,
                "the payload is {len} bytes; one UDP datagram carries at most {max} bytes"
            ),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for ClientError<E> {}
impl<E: fmt::Debug> core::error::Error for ServerError<E> {}
impl<E: fmt::Debug> core::error::Error for BroadcastError<E> {}

/// What one [`Client::poll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use = "`Wait` says when to call again and `Done` carries the outcome"]
pub enum ClientEvent {
    /// Attempt `attempt` (1-based) went out at `at`. Call again at once.
    Sent {
        /// Sends that went out so far, this one included.
        attempt: u32,
        /// When.
        at: Instant,
    },
    /// The stack could not take the send (`WouldBlock`); it is tried again after a pause
    /// that doubles from [`BLOCKED_FIRST_PAUSE`](crate::exchange::BLOCKED_FIRST_PAUSE).
    /// Call again at once (the next call says how long to wait).
    SendBlocked,
    /// A datagram that is not the awaited reply was ignored. Call again at once.
    Ignored {
        /// Its source; `None` if the stack could not say (a datagram too long to read).
        from: Option<SocketAddr>,
        /// Why it was ignored.
        verdict: Verdict,
    },
    /// The stack reported an ICMP "port unreachable": noted, the schedule goes on (ICMP
    /// is unauthenticated and the server may be starting). Call again at once.
    Refused,
    /// Nothing to do until the wake.
    Wait(Wake),
    /// The exchange is over.
    Done(Outcome),
}

/// A request in flight: its bytes, bound to the exchange that sends them. Made by
/// [`Client::start`], driven by [`Client::poll`].
#[derive(Debug, Clone)]
pub struct Request<'r> {
    bytes: &'r [u8],
    exchange: Exchange,
}

impl Request<'_> {
    /// The request's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }

    /// The exchange's state: attempts, ignored datagrams, outcome.
    pub fn exchange(&self) -> &Exchange {
        &self.exchange
    }

    /// Seeds the retry jitter (see [`Exchange::with_seed`]).
    #[must_use]
    pub fn with_seed(mut self, seed: u32) -> Self {
        self.exchange = self.exchange.with_seed(seed);
        self
    }
}

/// A request/reply client on a connected socket.
///
/// Call order: [`connect`](Self::connect), then per request [`start`](Self::start) and
/// [`poll`](Self::poll) until [`ClientEvent::Done`], sleeping only on
/// [`ClientEvent::Wait`]; [`close`](Self::close) at the end. `now` must never go back.
/// The outcome comes at the policy's give-up instant at the latest (3100 ms after the
/// first poll by default), whatever the stack does.
///
/// ```
/// use udp_echo_core::{Client, ClientEvent, Instant, RetryPolicy, Wake};
/// # fn demo<S: udp_echo_core::embedded_nal::UdpClientStack>(
/// #     stack: &mut S, now: impl Fn() -> Instant, sleep: impl Fn(Wake))
/// # -> Result<(), udp_echo_core::ClientError<S::Error>> {
///
/// let mut client = Client::connect(stack, "192.0.2.1:6666".parse().unwrap())?;
/// let mut request = client.start(&RetryPolicy::default(), b"hello")?;
/// let outcome = loop {
///     match client.poll(stack, &mut request, now())? {
///         ClientEvent::Done(outcome) => break outcome,
///         ClientEvent::Wait(wake) => sleep(wake), // until then, or a datagram arrives
///         _ => {}                                 // sent, ignored, refused: progress
///     }
/// };
/// client.close(stack).map_err(udp_echo_core::ClientError::Stack)?;
/// # let _ = outcome; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Client<S: UdpClientStack> {
    socket: S::UdpSocket,
    server: SocketAddr,
    caps: StackCaps<S::Error>,
    /// Datagrams this client may still read before it looks at its timers again.
    reads_left: usize,
}

impl<S> Client<S>
where
    S: UdpClientStack,
    S::Error: fmt::Debug,
{
    /// Opens a socket connected to `server`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Stack`] if the stack cannot open or connect a socket.
    pub fn connect(stack: &mut S, server: SocketAddr) -> Result<Self, ClientError<S::Error>> {
        let mut socket = stack.socket().map_err(ClientError::Stack)?;
        if let Err(e) = stack.connect(&mut socket, server) {
            let _ = stack.close(socket);
            return Err(ClientError::Stack(e));
        }
        Ok(Client {
            socket,
            server,
            caps: StackCaps::PLAIN,
            reads_left: BATCH,
        })
    }

    /// Tells the client what the stack's errors mean (see [`crate::stack`]).
    #[must_use]
    pub fn with_caps(mut self, caps: StackCaps<S::Error>) -> Self {
        self.caps = caps;
        self
    }

    /// The socket, for a shell that waits on it.
    pub fn socket(&self) -> &S::UdpSocket {
        &self.socket
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Prepares a request of `bytes` on the retry schedule `policy`. Nothing is sent and
    /// the schedule does not start until the first [`poll`](Self::poll).
    ///
    /// # Errors
    ///
    /// [`ClientError::Exchange`] if the policy is invalid or the request does not fit
    /// one datagram to the server.
    pub fn start<'r>(
        &self,
        policy: &RetryPolicy,
        bytes: &'r [u8],
    ) -> Result<Request<'r>, ClientError<S::Error>> {
        let exchange =
            Exchange::new(policy, self.server, bytes.len()).map_err(ClientError::Exchange)?;
        Ok(Request { bytes, exchange })
    }

    /// Takes one step of `request` at `now` and says what it did. Loop on it until
    /// [`ClientEvent::Done`]; sleep only on [`ClientEvent::Wait`].
    ///
    /// Datagrams waiting on the socket are read before timers are looked at, so a reply
    /// that arrived in time wins over a resend; after [`BATCH`] reads the timers come
    /// first, so a flood cannot hold the client past its deadline.
    ///
    /// # Errors
    ///
    /// [`ClientError::Stack`] when the stack fails with an error that the caps do not
    /// classify as an ICMP report. `WouldBlock` is never an error.
    pub fn poll(
        &mut self,
        stack: &mut S,
        request: &mut Request<'_>,
        now: Instant,
    ) -> Result<ClientEvent, ClientError<S::Error>> {
        let ex = &mut request.exchange;
        if let Some(outcome) = ex.outcome() {
            return Ok(ClientEvent::Done(outcome));
        }
        if ex.attempts() > 0 && self.reads_left > 0 {
            // Larger than any reply, so a longer datagram shows as cut and is rejected.
            let mut buf = [0u8; MAX_REPLY_LEN + 1];
            match stack.receive(&mut self.socket, &mut buf) {
                Ok((len, from)) => {
                    self.reads_left -= 1;
                    let head = &buf[..len.min(buf.len())];
                    return Ok(match ex.on_datagram(now, from, head, len) {
                        Verdict::Accepted => match ex.poll(now) {
                            Action::Done(outcome) => ClientEvent::Done(outcome),
                            // Unreachable: an accepted reply ends the exchange.
                            _ => ClientEvent::Wait(Wake::Now),
                        },
                        verdict => {
                            debug!("client: ignored a datagram ({})", verdict_name(verdict));
                            ClientEvent::Ignored {
                                from: Some(from),
                                verdict,
                            }
                        }
                    });
                }
                Err(nb::Error::WouldBlock) => {}
                Err(nb::Error::Other(e)) => {
                    self.reads_left -= 1;
                    return match self.caps.kind(&e) {
                        StackErrorKind::Refused => {
                            ex.on_refused(now);
                            Ok(ClientEvent::Refused)
                        }
                        StackErrorKind::Truncated => Ok(ClientEvent::Ignored {
                            from: None,
                            verdict: ex.on_unreadable(now),
                        }),
                        _ => Err(ClientError::Stack(e)),
                    };
                }
            }
        }
        self.reads_left = BATCH;
        match ex.poll(now) {
            Action::Done(outcome) => Ok(ClientEvent::Done(outcome)),
            Action::Wait(until) => Ok(ClientEvent::Wait(Wake::At(until))),
            Action::Send => match stack.send(&mut self.socket, request.bytes) {
                Ok(()) => {
                    ex.on_sent(now);
                    Ok(ClientEvent::Sent {
                        attempt: ex.attempts(),
                        at: now,
                    })
                }
                Err(nb::Error::WouldBlock) => {
                    ex.on_send_blocked(now);
                    Ok(ClientEvent::SendBlocked)
                }
                // A pending ICMP error can surface on send: then nothing went out.
                Err(nb::Error::Other(e)) if self.caps.kind(&e) == StackErrorKind::Refused => {
                    ex.on_send_refused(now);
                    Ok(ClientEvent::Refused)
                }
                Err(nb::Error::Other(e)) => Err(ClientError::Stack(e)),
            },
        }
    }

    /// Closes the socket.
    ///
    /// # Errors
    ///
    /// The stack's, if it fails to close.
    pub fn close(self, stack: &mut S) -> Result<(), S::Error> {
        stack.close(self.socket)
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Accepted => "accepted",
        Verdict::Foreign => "foreign source",
        Verdict::Malformed => "malformed",
        Verdict::Stale { .. } => "stale count",
        Verdict::Late => "after the end",
    }
}

/// One datagram as a server or listener saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Received<'a> {
    /// Its source.
    pub from: SocketAddr,
    /// Its length as the stack reported it: the true length, or at most the buffer's if
    /// the stack may cut (then a [`DropReason::Cut`](crate::responder::DropReason::Cut)
    /// decision says the true length is unknown).
    pub len: usize,
    /// Its bytes, as many as the buffer held.
    pub head: &'a [u8],
    /// When it was handled.
    pub at: Instant,
}

/// The byte-count server: answers every datagram through a [`Responder`].
///
/// ```
/// use udp_echo_core::{ResponderConfig, Server, Wake};
/// # use udp_echo_core::Instant;
/// # fn demo<S: udp_echo_core::embedded_nal::UdpFullStack>(
/// #     stack: &mut S, now: impl Fn() -> Instant, sleep: impl Fn(Wake))
/// # -> Result<(), udp_echo_core::ServerError<S::Error>> {
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
///   datagram's destination (the host's batched path reads `IP_PKTINFO`/`IPV6_PKTINFO`
///   and replies from it) and calls [`Responder::handle_to`];
/// - cannot tell a broadcast-addressed request from a unicast one, so the responder's
///   broadcast guard ([`Destination`](crate::responder::Destination)) does not apply here
///   (the per-source and global limits do).
#[derive(Debug)]
pub struct Server<S: UdpFullStack, const N: usize = DEFAULT_SOURCES> {
    socket: S::UdpSocket,
    responder: Responder<N>,
    caps: StackCaps<S::Error>,
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
        let socket = open_bound(stack, port).map_err(ServerError::Stack)?;
        Ok(Server {
            socket,
            responder: Responder::new(config),
            caps: StackCaps::PLAIN,
        })
    }
}

impl<S, const N: usize> Server<S, N>
where
    S: UdpFullStack,
    S::Error: fmt::Debug,
{
    /// The same server with `M` per-source buckets (32 bytes each): more sources are told
    /// apart under load. Call before the first poll: the buckets start empty.
    #[must_use]
    pub fn with_sources<const M: usize>(self) -> Server<S, M> {
        Server {
            socket: self.socket,
            responder: Responder::with_sources(*self.responder.config()),
            caps: self.caps,
        }
    }

    /// Keys the per-source table with a random `seed` (see [`Responder::with_seed`]).
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.responder = self.responder.with_seed(seed);
        self
    }

    /// Tells the server what it may assume of the stack: with true lengths a small
    /// buffer answers datagrams of any size (see [`crate::stack`]).
    #[must_use]
    pub fn with_caps(mut self, caps: StackCaps<S::Error>) -> Self {
        self.caps = caps;
        self
    }

    /// The socket, for a shell that waits on it.
    pub fn socket(&self) -> &S::UdpSocket {
        &self.socket
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
            let (len, from) = match stack.receive(&mut self.socket, buf) {
                Ok(got) => got,
                Err(nb::Error::WouldBlock) => return Ok(Wake::OnDatagram),
                Err(nb::Error::Other(e)) => match self.caps.kind(&e) {
                    // Reported for an earlier reply's destination; nothing to answer.
                    StackErrorKind::Refused => continue,
                    // Length unknown: counted as cut, never answered with a guess.
                    StackErrorKind::Truncated => {
                        let _ = self.responder.cut();
                        continue;
                    }
                    _ => return Err(ServerError::Stack(e)),
                },
            };
            let head = &buf[..len.min(buf.len())];
            let maybe_cut = !self.caps.true_lengths && len >= buf.len() && buf.len() < MAX_DATAGRAM;
            let decision = if maybe_cut {
                self.responder.cut()
            } else {
                self.responder.handle(now, from, len, head)
            };
            if let Decision::Reply(reply) = &decision
                && stack
                    .send_to(&mut self.socket, from, reply.as_bytes())
                    .is_err()
            {
                self.responder.note_send_failed();
                warn!("server: a reply could not be sent");
            }
            on_datagram(
                &Received {
                    from,
                    len,
                    head,
                    at: now,
                },
                &decision,
            );
        }
        Ok(Wake::Now)
    }

    /// Closes the socket.
    ///
    /// # Errors
    ///
    /// The stack's, if it fails to close.
    pub fn close(self, stack: &mut S) -> Result<(), S::Error> {
        stack.close(self.socket)
    }
}

/// A listener: receives datagrams (e.g. broadcasts) and never replies.
///
/// ```
/// use udp_echo_core::{Listener, Wake};
/// # use udp_echo_core::Instant;
/// # fn demo<S: udp_echo_core::embedded_nal::UdpFullStack>(
/// #     stack: &mut S, now: impl Fn() -> Instant, sleep: impl Fn(Wake))
/// # -> Result<(), udp_echo_core::ServerError<S::Error>> {
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
    socket: S::UdpSocket,
    received: u64,
    caps: StackCaps<S::Error>,
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
        let socket = open_bound(stack, port).map_err(ServerError::Stack)?;
        Ok(Listener {
            socket,
            received: 0,
            caps: StackCaps::PLAIN,
        })
    }

    /// Tells the listener which stack errors are harmless (see [`crate::stack`]).
    #[must_use]
    pub fn with_caps(mut self, caps: StackCaps<S::Error>) -> Self {
        self.caps = caps;
        self
    }

    /// The socket, for a shell that waits on it.
    pub fn socket(&self) -> &S::UdpSocket {
        &self.socket
    }

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
            match stack.receive(&mut self.socket, buf) {
                Ok((len, from)) => {
                    self.received += 1;
                    let head = &buf[..len.min(buf.len())];
                    on_datagram(&Received {
                        from,
                        len,
                        head,
                        at: now,
                    });
                }
                Err(nb::Error::WouldBlock) => return Ok(Wake::OnDatagram),
                Err(nb::Error::Other(e)) => match self.caps.kind(&e) {
                    StackErrorKind::Refused | StackErrorKind::Truncated => continue,
                    _ => return Err(ServerError::Stack(e)),
                },
            }
        }
        Ok(Wake::Now)
    }

    /// Closes the socket.
    ///
    /// # Errors
    ///
    /// The stack's, if it fails to close.
    pub fn close(self, stack: &mut S) -> Result<(), S::Error> {
        stack.close(self.socket)
    }
}

/// Sends datagrams to a broadcast (or any) address from one socket.
///
/// The stack must allow broadcast on its sockets (the host's adapter has an option for
/// `SO_BROADCAST`; smoltcp always allows it).
///
/// ```
/// use udp_echo_core::Broadcaster;
/// # fn demo<S: udp_echo_core::embedded_nal::UdpFullStack>(stack: &mut S)
/// # -> Result<(), udp_echo_core::BroadcastError<S::Error>> {
///
/// let mut broadcaster = Broadcaster::open(stack, 0)?;
/// let to = "255.255.255.255:6666".parse().unwrap();
/// // `nb::block!` for a one-off; a main loop would retry on its next turn instead.
/// udp_echo_core::nb::block!(broadcaster.send(stack, to, b"hello, LAN"))?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Broadcaster<S: UdpFullStack> {
    socket: S::UdpSocket,
}

impl<S> Broadcaster<S>
where
    S: UdpFullStack,
    S::Error: fmt::Debug,
{
    /// Opens a socket bound to `local_port` (0: the stack picks one).
    ///
    /// # Errors
    ///
    /// [`BroadcastError::Stack`] if the stack cannot open or bind the socket.
    pub fn open(stack: &mut S, local_port: u16) -> Result<Self, BroadcastError<S::Error>> {
        let socket = open_bound(stack, local_port).map_err(BroadcastError::Stack)?;
        Ok(Broadcaster { socket })
    }

    /// Sends `payload` to `to`. `WouldBlock` means: try again shortly.
    ///
    /// # Errors
    ///
    /// [`BroadcastError::PayloadTooLarge`] if `payload` does not fit one datagram to `to`;
    /// [`BroadcastError::Stack`] if the stack fails.
    pub fn send(
        &mut self,
        stack: &mut S,
        to: SocketAddr,
        payload: &[u8],
    ) -> nb::Result<(), BroadcastError<S::Error>> {
        check_payload(to, payload)?;
        stack
            .send_to(&mut self.socket, to, payload)
            .map_err(|e| e.map(BroadcastError::Stack))
    }

    /// Closes the socket.
    ///
    /// # Errors
    ///
    /// The stack's, if it fails to close.
    pub fn close(self, stack: &mut S) -> Result<(), S::Error> {
        stack.close(self.socket)
    }
}

fn check_payload<E>(to: SocketAddr, payload: &[u8]) -> Result<(), BroadcastError<E>> {
    let max = wire::max_request(to);
    if payload.len() > max {
        return Err(BroadcastError::PayloadTooLarge {
            len: payload.len(),
            max,
        });
    }
    Ok(())
}

/// A server that answered a discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Found {
    /// Its address.
    pub addr: SocketAddr,
    /// Time from the request to its first valid reply.
    pub rtt: Duration,
}

/// What one [`Discovery::poll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use = "`Wait` says when to call again and `Done` ends the discovery"]
pub enum DiscoveryEvent {
    /// The request went out at this instant; answers count from here. Call again at once.
    Sent(Instant),
    /// A server answered for the first time. Call again at once.
    Found(Found),
    /// A datagram that is not a valid answer was ignored. Call again at once.
    Ignored {
        /// Its source, if the stack could say.
        from: Option<SocketAddr>,
    },
    /// Nothing to do until the wake.
    Wait(Wake),
    /// The window closed: [`Discovery::found`] has the servers.
    Done,
}

/// Discovery: one request to a broadcast address, then every distinct server that
/// answers correctly within the window after the send, up to `N` of them.
///
/// If the stack never takes the send (`WouldBlock` throughout), the discovery still ends
/// one window after the first poll, with nothing sent ([`sent_at`](Self::sent_at) is
/// `None`).
///
/// ```
/// use core::time::Duration;
/// use udp_echo_core::{Discovery, DiscoveryEvent, Instant, Wake};
/// # fn demo<S: udp_echo_core::embedded_nal::UdpFullStack>(
/// #     stack: &mut S, now: impl Fn() -> Instant, sleep: impl Fn(Wake))
/// # -> Result<(), udp_echo_core::BroadcastError<S::Error>> {
///
/// let to = "255.255.255.255:6666".parse().unwrap();
/// let mut discovery = Discovery::<_, 8>::start(stack, 0, to, b"who is there?", Duration::from_secs(1))?;
/// loop {
///     match discovery.poll(stack, now())? {
///         DiscoveryEvent::Found(server) => { /* server.addr answered in server.rtt */ }
///         DiscoveryEvent::Wait(wake) => sleep(wake),
///         DiscoveryEvent::Done => break,
///         _ => {}
///     }
/// }
/// let servers = discovery.found().len();
/// # let _ = servers; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Discovery<'r, S: UdpFullStack, const N: usize> {
    socket: S::UdpSocket,
    to: SocketAddr,
    request: &'r [u8],
    window: Duration,
    caps: StackCaps<S::Error>,
    started: Option<Instant>,
    sent_at: Option<Instant>,
    /// When the send is (re)tried, and the pause after the last `WouldBlock`.
    send_due: Option<Instant>,
    blocked_pause_us: u64,
    reads_left: usize,
    found: heapless::Vec<Found, N>,
    overflow: u32,
    ignored: u32,
}

impl<'r, S, const N: usize> Discovery<'r, S, N>
where
    S: UdpFullStack,
    S::Error: fmt::Debug,
{
    /// Opens a socket on `local_port` (0: the stack picks) to discover servers at `to`
    /// (e.g. `255.255.255.255:6666`) with `request`, collecting answers for `window` after
    /// the send. The first [`poll`](Self::poll) sends.
    ///
    /// # Errors
    ///
    /// [`BroadcastError::PayloadTooLarge`] if `request` does not fit one datagram to `to`;
    /// [`BroadcastError::Stack`] if the stack cannot open or bind the socket.
    pub fn start(
        stack: &mut S,
        local_port: u16,
        to: SocketAddr,
        request: &'r [u8],
        window: Duration,
    ) -> Result<Self, BroadcastError<S::Error>> {
        check_payload(to, request)?;
        let socket = open_bound(stack, local_port).map_err(BroadcastError::Stack)?;
        Ok(Discovery {
            socket,
            to,
            request,
            window,
            caps: StackCaps::PLAIN,
            started: None,
            sent_at: None,
            send_due: None,
            blocked_pause_us: 0,
            reads_left: BATCH,
            found: heapless::Vec::new(),
            overflow: 0,
            ignored: 0,
        })
    }

    /// Tells the discovery which stack errors are harmless (see [`crate::stack`]).
    #[must_use]
    pub fn with_caps(mut self, caps: StackCaps<S::Error>) -> Self {
        self.caps = caps;
        self
    }

    /// The socket, for a shell that waits on it.
    pub fn socket(&self) -> &S::UdpSocket {
        &self.socket
    }

    /// Takes one step at `now`: sends the request when due, reads one answer, or says
    /// when to call again. Loop on it until [`DiscoveryEvent::Done`].
    ///
    /// # Errors
    ///
    /// [`BroadcastError::Stack`] when sending or receiving fails with an error that the
    /// caps do not classify as an ICMP report or a cut datagram.
    pub fn poll(
        &mut self,
        stack: &mut S,
        now: Instant,
    ) -> Result<DiscoveryEvent, BroadcastError<S::Error>> {
        let started = *self.started.get_or_insert(now);
        let deadline = self.sent_at.unwrap_or(started) + self.window;
        if let Some(sent_at) = self.sent_at {
            let mut buf = [0u8; MAX_REPLY_LEN + 1];
            while self.reads_left > 0 {
                match stack.receive(&mut self.socket, &mut buf) {
                    Ok((len, from)) => {
                        self.reads_left -= 1;
                        // A repeat from a server already found says nothing new: read on.
                        if let Some(event) = self.on_answer(sent_at, now, from, &buf, len) {
                            return Ok(event);
                        }
                    }
                    Err(nb::Error::WouldBlock) => break,
                    Err(nb::Error::Other(e)) => {
                        self.reads_left -= 1;
                        return match self.caps.kind(&e) {
                            StackErrorKind::Other => Err(BroadcastError::Stack(e)),
                            _ => {
                                self.ignored += 1;
                                Ok(DiscoveryEvent::Ignored { from: None })
                            }
                        };
                    }
                }
            }
        }
        self.reads_left = BATCH;
        if now >= deadline {
            return Ok(DiscoveryEvent::Done);
        }
        if self.sent_at.is_some() {
            return Ok(DiscoveryEvent::Wait(Wake::At(deadline)));
        }
        let due = *self.send_due.get_or_insert(now);
        if now < due {
            return Ok(DiscoveryEvent::Wait(Wake::At(due.min(deadline))));
        }
        match stack.send_to(&mut self.socket, self.to, self.request) {
            // Answers are read by the next call, which carries a fresh `now`: read in
            // this one, a fast answer would show an RTT of zero.
            Ok(()) => {
                self.sent_at = Some(now);
                Ok(DiscoveryEvent::Sent(now))
            }
            Err(nb::Error::WouldBlock) => {
                self.blocked_pause_us = next_blocked_pause_us(self.blocked_pause_us);
                let retry =
                    Instant::from_micros(now.as_micros().saturating_add(self.blocked_pause_us));
                self.send_due = Some(retry);
                Ok(DiscoveryEvent::Wait(Wake::At(retry.min(deadline))))
            }
            Err(nb::Error::Other(e)) => Err(BroadcastError::Stack(e)),
        }
    }

    /// Judges one answer; `None` for a repeat from a server already found.
    fn on_answer(
        &mut self,
        sent_at: Instant,
        now: Instant,
        from: SocketAddr,
        buf: &[u8],
        len: usize,
    ) -> Option<DiscoveryEvent> {
        let from = wire::canonical(from);
        let valid =
            len <= MAX_REPLY_LEN && wire::parse_reply(&buf[..len]) == Ok(self.request.len() as u16);
        if !valid {
            self.ignored += 1;
            return Some(DiscoveryEvent::Ignored { from: Some(from) });
        }
        if self.found.iter().any(|f| f.addr == from) {
            return None;
        }
        let found = Found {
            addr: from,
            rtt: now - sent_at,
        };
        match self.found.push(found) {
            Ok(()) => Some(DiscoveryEvent::Found(found)),
            Err(_) => {
                self.overflow += 1;
                None
            }
        }
    }

    /// When the request went out, once it did.
    pub fn sent_at(&self) -> Option<Instant> {
        self.sent_at
    }

    /// Servers found so far.
    pub fn found(&self) -> &[Found] {
        &self.found
    }

    /// Answers from servers that did not fit the list of `N`.
    pub fn overflow(&self) -> u32 {
        self.overflow
    }

    /// Datagrams that were not a valid answer to this request.
    pub fn ignored(&self) -> u32 {
        self.ignored
    }

    /// Closes the socket.
    ///
    /// # Errors
    ///
    /// The stack's, if it fails to close.
    pub fn close(self, stack: &mut S) -> Result<(), S::Error> {
        stack.close(self.socket)
    }
}

fn open_bound<S: UdpFullStack>(stack: &mut S, port: u16) -> Result<S::UdpSocket, S::Error> {
    let mut socket = stack.socket()?;
    if let Err(e) = stack.bind(&mut socket, port) {
        let _ = stack.close(socket);
        return Err(e);
    }
    Ok(socket)
}
