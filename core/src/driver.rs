//! Drivers: the state machines wired to an `embedded-nal` stack.
//!
//! Every driver call does what it can at `now` and returns; none blocks or spins. When a
//! call cannot progress it returns a [`Wake`]: call again when a datagram arrives on the
//! driver's socket, or at [`Wake::at`] at the latest. A shell therefore only waits — the
//! host with `poll(2)` on the socket, firmware with `iface.poll()` and a sleep until the
//! smaller of smoltcp's `poll_delay` and the driver's deadline.
//!
//! The stack's error type implements [`StackError`] so that the drivers can tell an ICMP
//! "port unreachable" from a broken socket (see [`crate::stack`]).

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use embedded_nal::{UdpClientStack, UdpFullStack};

use crate::exchange::{Action, Exchange, ExchangeError, Outcome, Verdict, max_request};
use crate::responder::{Counters, Decision, Responder, ResponderConfig};
use crate::retry::RetryPolicy;
use crate::stack::{StackError, StackErrorKind};
use crate::time::Instant;
use crate::wire::{self, MAX_REPLY_LEN};

/// When to call a driver again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Wake {
    /// At this instant at the latest; `None`: only when a datagram arrives.
    pub at: Option<Instant>,
}

impl Wake {
    /// Call again when a datagram arrives or at `at`, whichever is first.
    pub const fn at(at: Instant) -> Self {
        Wake { at: Some(at) }
    }

    /// Call again when a datagram arrives; there is no deadline.
    pub const fn on_datagram() -> Self {
        Wake { at: None }
    }

    /// How long a shell may sleep from `now` (`None`: until a datagram arrives).
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.at.map(|at| at - now)
    }
}

/// A driver call's result: finished with `T`, or pending until the [`Wake`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Poll<T> {
    /// Finished.
    Ready(T),
    /// Not yet: call again as the wake says.
    Pending(Wake),
}

/// A send the stack refused for now (`WouldBlock`) is retried this soon: the stack's
/// buffer drains as its own poll runs, so a short pause is enough and never a spin.
const SEND_RETRY: Duration = Duration::from_millis(1);

/// How many datagrams one server or listener call handles before returning, so that a
/// flood cannot starve the caller's other work.
pub const BATCH: usize = 32;

/// Errors of the [`Client`] driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ClientError<E> {
    /// The stack failed (socket, connect, send or receive).
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
    /// The payload does not fit one IPv4 UDP datagram.
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
            ClientError::Stack(e) => write!(f, "network stack error: {e:?}"),
            ClientError::Exchange(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<E: fmt::Debug> fmt::Display for ServerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Stack(e) => write!(f, "network stack error: {e:?}"),
        }
    }
}

impl<E: fmt::Debug> fmt::Display for BroadcastError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BroadcastError::Stack(e) => write!(f, "network stack error: {e:?}"),
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

/// A request/reply client on a connected socket.
///
/// ```
/// # use udp_echo_core::{Client, Instant, RetryPolicy};
/// # use udp_echo_core::driver::Poll;
/// # fn demo<S>(stack: &mut S, now: impl Fn() -> Instant, sleep: impl Fn(Option<core::time::Duration>))
/// # where S: embedded_nal::UdpClientStack, S::Error: udp_echo_core::StackError {
/// let server = "192.0.2.1:6666".parse().unwrap();
/// let mut client = Client::connect(stack, server).unwrap();
/// let request = b"hello";
/// let mut ex = client.start(&RetryPolicy::default(), request, now()).unwrap();
/// let outcome = loop {
///     match client.poll(stack, &mut ex, request, now()).unwrap() {
///         Poll::Ready(outcome) => break outcome,
///         Poll::Pending(wake) => sleep(wake.timeout(now())), // or until a datagram arrives
///     }
/// };
/// client.close(stack).unwrap();
/// # }
/// ```
#[derive(Debug)]
pub struct Client<S: UdpClientStack> {
    socket: S::UdpSocket,
    server: SocketAddr,
}

impl<S> Client<S>
where
    S: UdpClientStack,
    S::Error: StackError,
{
    /// Opens a socket connected to `server`.
    pub fn connect(stack: &mut S, server: SocketAddr) -> Result<Self, ClientError<S::Error>> {
        let mut socket = stack.socket().map_err(ClientError::Stack)?;
        if let Err(e) = stack.connect(&mut socket, server) {
            let _ = stack.close(socket);
            return Err(ClientError::Stack(e));
        }
        Ok(Client { socket, server })
    }

    /// The socket, for a shell that waits on it.
    pub fn socket(&self) -> &S::UdpSocket {
        &self.socket
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Starts an exchange of `request` at `now` (nothing is sent until [`poll`](Self::poll)).
    pub fn start(
        &self,
        policy: &RetryPolicy,
        request: &[u8],
        now: Instant,
    ) -> Result<Exchange, ClientError<S::Error>> {
        Exchange::new(policy, self.server, request.len(), now).map_err(ClientError::Exchange)
    }

    /// Drives `exchange` at `now`: takes in what arrived, sends when due, and says when to
    /// call again. `request` must be the bytes the exchange was started with.
    pub fn poll(
        &mut self,
        stack: &mut S,
        exchange: &mut Exchange,
        request: &[u8],
        now: Instant,
    ) -> Result<Poll<Outcome>, ClientError<S::Error>> {
        // Larger than any reply, so a longer datagram shows as cut and is rejected.
        let mut buf = [0u8; MAX_REPLY_LEN + 1];
        // Bounded: a flood of foreign datagrams must not keep this call from the timers.
        for _ in 0..BATCH {
            match stack.receive(&mut self.socket, &mut buf) {
                Ok((len, from)) => {
                    let head = &buf[..len.min(buf.len())];
                    match exchange.on_datagram(now, from, head, len) {
                        Verdict::Accepted => break,
                        verdict => debug!("client: ignored a datagram: {}", verdict_name(verdict)),
                    }
                }
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(e)) => match e.kind() {
                    StackErrorKind::Refused => exchange.on_refused(now),
                    // A datagram too long for `buf` cannot be a reply: count it as malformed.
                    StackErrorKind::Truncated => {
                        let _ = exchange.on_datagram(now, self.server, &[], usize::MAX);
                    }
                    StackErrorKind::Other => return Err(ClientError::Stack(e)),
                },
            }
        }
        // A pending ICMP error can surface on send too; then nothing went out, so the
        // send is retried at once (bounded: each error is reported once).
        for _ in 0..4 {
            match exchange.poll(now) {
                Action::Done(outcome) => return Ok(Poll::Ready(outcome)),
                Action::Wait(until) => return Ok(Poll::Pending(Wake::at(until))),
                Action::Send => match stack.send(&mut self.socket, request) {
                    Ok(()) => exchange.on_sent(now),
                    Err(nb::Error::WouldBlock) => {
                        return Ok(Poll::Pending(Wake::at(now + SEND_RETRY)));
                    }
                    Err(nb::Error::Other(e)) if e.kind() == StackErrorKind::Refused => {
                        exchange.on_refused(now)
                    }
                    Err(nb::Error::Other(e)) => return Err(ClientError::Stack(e)),
                },
            }
        }
        Ok(Poll::Pending(Wake::at(now + SEND_RETRY)))
    }

    /// Closes the socket.
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
    /// Its true length (may exceed `head.len()` when the buffer was smaller).
    pub len: usize,
    /// Its bytes, as many as the buffer held.
    pub head: &'a [u8],
    /// When it was handled.
    pub at: Instant,
}

/// The byte-count server: answers every datagram through a [`Responder`].
#[derive(Debug)]
pub struct Server<S: UdpFullStack> {
    socket: S::UdpSocket,
    responder: Responder,
}

impl<S> Server<S>
where
    S: UdpFullStack,
    S::Error: StackError,
{
    /// Binds `port` and answers with the guards of `config`.
    pub fn bind(
        stack: &mut S,
        port: u16,
        config: ResponderConfig,
    ) -> Result<Self, ServerError<S::Error>> {
        let socket = open_bound(stack, port).map_err(ServerError::Stack)?;
        Ok(Server {
            socket,
            responder: Responder::new(config),
        })
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
    /// `on_datagram` about each with the decision taken. A reply the stack cannot take
    /// right now is dropped and counted: UDP promises nothing, and queueing would let a
    /// flood grow memory.
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
                Err(nb::Error::WouldBlock) => return Ok(Wake::on_datagram()),
                Err(nb::Error::Other(e)) => match e.kind() {
                    // Reported for an earlier reply's destination; nothing to answer.
                    StackErrorKind::Refused => continue,
                    // Length unknown: counted as cut, never answered with a guess.
                    StackErrorKind::Truncated => {
                        self.responder.note_cut();
                        continue;
                    }
                    StackErrorKind::Other => return Err(ServerError::Stack(e)),
                },
            };
            let head = &buf[..len.min(buf.len())];
            let decision = self.responder.handle(now, from, len, head, buf.len());
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
        Ok(Wake::at(now))
    }

    /// Closes the socket.
    pub fn close(self, stack: &mut S) -> Result<(), S::Error> {
        stack.close(self.socket)
    }
}

/// A listener: receives datagrams (e.g. broadcasts) and never replies.
#[derive(Debug)]
pub struct Listener<S: UdpFullStack> {
    socket: S::UdpSocket,
    received: u64,
}

impl<S> Listener<S>
where
    S: UdpFullStack,
    S::Error: StackError,
{
    /// Binds `port`.
    pub fn bind(stack: &mut S, port: u16) -> Result<Self, ServerError<S::Error>> {
        let socket = open_bound(stack, port).map_err(ServerError::Stack)?;
        Ok(Listener {
            socket,
            received: 0,
        })
    }

    /// The socket, for a shell that waits on it.
    pub fn socket(&self) -> &S::UdpSocket {
        &self.socket
    }

    /// Datagrams received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Hands up to [`BATCH`] waiting datagrams to `on_datagram`.
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
                Err(nb::Error::WouldBlock) => return Ok(Wake::on_datagram()),
                Err(nb::Error::Other(e)) if e.kind() == StackErrorKind::Other => {
                    return Err(ServerError::Stack(e));
                }
                Err(nb::Error::Other(_)) => continue,
            }
        }
        Ok(Wake::at(now))
    }

    /// Closes the socket.
    pub fn close(self, stack: &mut S) -> Result<(), S::Error> {
        stack.close(self.socket)
    }
}

/// Sends datagrams to a broadcast (or any) address from one socket.
///
/// The stack must allow broadcast on its sockets (the host's adapter has an option for
/// `SO_BROADCAST`; smoltcp always allows it).
#[derive(Debug)]
pub struct Broadcaster<S: UdpFullStack> {
    socket: S::UdpSocket,
}

impl<S> Broadcaster<S>
where
    S: UdpFullStack,
    S::Error: StackError,
{
    /// Opens a socket bound to `local_port` (0: the stack picks one).
    pub fn open(stack: &mut S, local_port: u16) -> Result<Self, BroadcastError<S::Error>> {
        let socket = open_bound(stack, local_port).map_err(BroadcastError::Stack)?;
        Ok(Broadcaster { socket })
    }

    /// Sends `payload` to `to`. `WouldBlock` means: try again shortly.
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
    pub fn close(self, stack: &mut S) -> Result<(), S::Error> {
        stack.close(self.socket)
    }
}

fn check_payload<E>(to: SocketAddr, payload: &[u8]) -> Result<(), BroadcastError<E>> {
    let max = max_request(to);
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

/// Discovery: one request to a broadcast address, then every distinct server that
/// answers correctly before the deadline, up to `N` of them.
#[derive(Debug)]
pub struct Discovery<S: UdpFullStack, const N: usize> {
    socket: S::UdpSocket,
    to: SocketAddr,
    request_len: u16,
    sent_at: Option<Instant>,
    wait: Duration,
    found: heapless::Vec<Found, N>,
    overflow: u32,
    ignored: u32,
}

impl<S, const N: usize> Discovery<S, N>
where
    S: UdpFullStack,
    S::Error: StackError,
{
    /// Opens a socket on `local_port` (0: the stack picks) to discover servers at `to`
    /// (e.g. `255.255.255.255:6666`), collecting answers for `wait` after the send.
    /// `request` is sent by the first [`poll`](Self::poll).
    pub fn start(
        stack: &mut S,
        local_port: u16,
        to: SocketAddr,
        request: &[u8],
        wait: Duration,
    ) -> Result<Self, BroadcastError<S::Error>> {
        check_payload(to, request)?;
        let socket = open_bound(stack, local_port).map_err(BroadcastError::Stack)?;
        Ok(Discovery {
            socket,
            to,
            request_len: request.len() as u16,
            sent_at: None,
            wait,
            found: heapless::Vec::new(),
            overflow: 0,
            ignored: 0,
        })
    }

    /// The socket, for a shell that waits on it.
    pub fn socket(&self) -> &S::UdpSocket {
        &self.socket
    }

    /// Sends the request if not yet sent, collects answers, and is ready at the deadline.
    /// `on_found` hears of each new server as it answers.
    pub fn poll(
        &mut self,
        stack: &mut S,
        request: &[u8],
        now: Instant,
        mut on_found: impl FnMut(&Found),
    ) -> Result<Poll<&[Found]>, BroadcastError<S::Error>> {
        let Some(sent_at) = self.sent_at else {
            return match stack.send_to(&mut self.socket, self.to, request) {
                // Answers are read by the next call, which carries a fresh `now`: read in
                // this one, a fast answer would show an RTT of zero.
                Ok(()) => Ok(Poll::Pending(Wake::at(
                    *self.sent_at.insert(now) + self.wait,
                ))),
                Err(nb::Error::WouldBlock) => Ok(Poll::Pending(Wake::at(now + SEND_RETRY))),
                Err(nb::Error::Other(e)) => Err(BroadcastError::Stack(e)),
            };
        };
        let mut buf = [0u8; MAX_REPLY_LEN + 1];
        for _ in 0..BATCH {
            match stack.receive(&mut self.socket, &mut buf) {
                Ok((len, from)) => {
                    let valid = len <= MAX_REPLY_LEN
                        && wire::parse_reply(&buf[..len]) == Ok(self.request_len);
                    if !valid {
                        self.ignored += 1;
                    } else if self.found.iter().all(|f| f.addr != from) {
                        let found = Found {
                            addr: from,
                            rtt: now - sent_at,
                        };
                        match self.found.push(found) {
                            Ok(()) => on_found(&found),
                            Err(_) => self.overflow += 1,
                        }
                    }
                }
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(e)) if e.kind() == StackErrorKind::Other => {
                    return Err(BroadcastError::Stack(e));
                }
                Err(nb::Error::Other(_)) => self.ignored += 1,
            }
        }
        let deadline = sent_at + self.wait;
        if now >= deadline {
            Ok(Poll::Ready(&self.found))
        } else {
            Ok(Poll::Pending(Wake::at(deadline)))
        }
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
