//! The request/reply client over an `embedded-nal` stack, and the loop that runs it.

use core::fmt;
use core::net::SocketAddr;

use embedded_nal::UdpClientStack;

use super::{ClientError, ReadFirst, Socket, Wake, socket_lifecycle};
use crate::exchange::{Action, Exchange, Outcome, Verdict};
use crate::retry::RetryPolicy;
use crate::stack::{StackCaps, StackErrorKind};
use crate::time::Instant;
use crate::wire::MAX_REPLY_LEN;

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
    /// that doubles from [`BLOCKED_FIRST_PAUSE`](crate::BLOCKED_FIRST_PAUSE).
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
/// [`Client::start`], driven by [`Client::poll`] or [`Client::run`].
#[derive(Debug, Clone)]
pub struct Request<'r> {
    bytes: &'r [u8],
    exchange: Exchange,
}

impl Request<'_> {
    /// The exchange's state: attempts, ignored datagrams, outcome.
    pub fn exchange(&self) -> &Exchange {
        &self.exchange
    }

    /// Seeds the retry jitter (see [`Exchange::with_seed`]).
    #[cfg(feature = "jitter")]
    #[must_use]
    pub fn with_seed(mut self, seed: u32) -> Self {
        self.exchange = self.exchange.with_seed(seed);
        self
    }
}

/// What [`Client::run`] and [`request`] need from the program around the stack: the
/// time, and a way to wait.
///
/// On the host: a monotonic clock and `poll(2)` on the socket. In smoltcp firmware: the
/// tick counter, with `iface.poll()` in [`now`](Self::now) and a sleep until the earlier
/// of the wake and smoltcp's `poll_delay` in [`sleep`](Self::sleep).
pub trait Shell<S: UdpClientStack> {
    /// Why the shell ended a request early (an interrupt, a failed wait, a watchdog).
    type Error;

    /// The time now; never earlier than the last. Called before every step of the
    /// request: also the place to run the stack (e.g. smoltcp's `iface.poll`).
    fn now(&mut self, stack: &mut S) -> Instant;

    /// Waits until `wake`'s instant, or until a datagram arrives on `socket`, whichever is
    /// first. `now` is the time of the step that asked for the wait.
    ///
    /// # Errors
    ///
    /// Any: the request ends with [`RequestError::Shell`].
    fn sleep(
        &mut self,
        stack: &mut S,
        socket: &S::UdpSocket,
        now: Instant,
        wake: Wake,
    ) -> Result<(), Self::Error>;

    /// Every step that was progress (sent, blocked, ignored, refused), for a progress
    /// report. Does nothing unless overridden.
    fn on_event(&mut self, event: &ClientEvent) {
        let _ = event;
    }
}

/// Why [`request`] or [`Client::run`] did not come to an [`Outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RequestError<E, W> {
    /// The client failed: see [`ClientError`].
    Client(ClientError<E>),
    /// The shell ended the request.
    Shell(W),
}

impl<E, W> From<ClientError<E>> for RequestError<E, W> {
    fn from(e: ClientError<E>) -> Self {
        RequestError::Client(e)
    }
}

impl<E: fmt::Debug, W: fmt::Debug> fmt::Display for RequestError<E, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Client(e) => fmt::Display::fmt(e, f),
            RequestError::Shell(e) => write!(f, "stopped: {e:?}"),
        }
    }
}

impl<E: fmt::Debug, W: fmt::Debug> core::error::Error for RequestError<E, W> {}

/// Connects to `server`, sends `bytes` on the schedule of `policy` until a reply or the
/// give-up instant, and closes the socket: the whole client, for the common case.
///
/// ```
/// use udp_echo_core::{Instant, Outcome, RetryPolicy, Shell, StackCaps, Wake, request};
/// # use udp_echo_core::embedded_nal::UdpClientStack;
/// /// A firmware's clock and sleep: `iface.poll()` in `now`, WFI in `sleep`.
/// struct Board { ms: u64 }
/// impl<S: UdpClientStack> Shell<S> for Board {
///     type Error = core::convert::Infallible;
///     fn now(&mut self, _: &mut S) -> Instant { Instant::from_millis(self.ms) }
///     fn sleep(&mut self, _: &mut S, _: &S::UdpSocket, now: Instant, wake: Wake)
///         -> Result<(), Self::Error> {
///         self.ms = wake.deadline(now).unwrap_or(now).as_millis(); // a datagram wakes earlier
///         Ok(())
///     }
/// }
/// # fn demo<S: UdpClientStack>(stack: &mut S) where S::Error: core::fmt::Debug {
/// let server = "192.0.2.1:6666".parse().unwrap();
/// match request(stack, StackCaps::PLAIN, server, &RetryPolicy::default(), b"hello", &mut Board { ms: 0 }) {
///     Ok(Outcome::Reply(r)) => assert_eq!(r.count, 5),
///     Ok(Outcome::GaveUp(g)) => { /* no reply: g.attempts sends, gave up at 3100 ms */ }
///     Err(e) => { /* the stack failed */ }
/// }
/// # }
/// ```
///
/// # Errors
///
/// [`RequestError::Client`] if the stack fails or the request cannot start;
/// [`RequestError::Shell`] if the shell ends it.
pub fn request<S, H>(
    stack: &mut S,
    caps: StackCaps<S::Error>,
    server: SocketAddr,
    policy: &RetryPolicy,
    bytes: &[u8],
    shell: &mut H,
) -> Result<Outcome, RequestError<S::Error, H::Error>>
where
    S: UdpClientStack,
    S::Error: fmt::Debug,
    H: Shell<S>,
{
    let mut client = Client::connect(stack, server)?.with_caps(caps);
    let result = client
        .start(policy, bytes)
        .map_err(RequestError::Client)
        .and_then(|mut request| client.run(stack, &mut request, shell));
    let closed = client.close(stack);
    let outcome = result?;
    closed.map_err(|e| RequestError::Client(ClientError::Stack(e)))?;
    Ok(outcome)
}

/// A request/reply client on a connected socket.
///
/// Call order: [`connect`](Self::connect), then per request [`start`](Self::start) and
/// either [`run`](Self::run) (with a [`Shell`]) or [`poll`](Self::poll) until
/// [`ClientEvent::Done`], sleeping only on [`ClientEvent::Wait`]; [`close`](Self::close)
/// at the end. `now` must never go back. The outcome comes at the policy's give-up
/// instant at the latest (3100 ms after the first poll by default), whatever the stack
/// does. [`request`] does all of it.
#[derive(Debug)]
pub struct Client<S: UdpClientStack> {
    io: Socket<S>,
    server: SocketAddr,
    reads: ReadFirst,
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
        Ok(Client {
            io: Socket::connect(stack, server).map_err(ClientError::Stack)?,
            server,
            reads: ReadFirst::new(),
        })
    }

    socket_lifecycle!();

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

    /// Runs `request` to its outcome: polls, sleeps through `shell` on every wait and
    /// reports every other step to [`Shell::on_event`].
    ///
    /// # Errors
    ///
    /// As [`poll`](Self::poll), and [`RequestError::Shell`] if the shell ends the request
    /// (the request keeps what happened so far).
    pub fn run<H: Shell<S>>(
        &mut self,
        stack: &mut S,
        request: &mut Request<'_>,
        shell: &mut H,
    ) -> Result<Outcome, RequestError<S::Error, H::Error>> {
        loop {
            let now = shell.now(stack);
            match self.poll(stack, request, now)? {
                ClientEvent::Done(outcome) => return Ok(outcome),
                ClientEvent::Wait(wake) => shell
                    .sleep(stack, &self.io.socket, now, wake)
                    .map_err(RequestError::Shell)?,
                event => shell.on_event(&event),
            }
        }
    }

    /// Takes one step of `request` at `now` and says what it did. Loop on it until
    /// [`ClientEvent::Done`]; sleep only on [`ClientEvent::Wait`].
    ///
    /// Datagrams waiting on the socket are read before timers are looked at, so a reply
    /// that arrived in time wins over a resend; after [`BATCH`](crate::BATCH) reads the
    /// timers come first, so a flood cannot hold the client past its deadline.
    ///
    /// # Errors
    ///
    /// [`ClientError::Stack`] when the stack fails with an error that the caps do not
    /// classify as an ICMP report. `WouldBlock` is never an error.
    // One copy for every call site: inlined, it costs the network firmware and the
    // self-test hundreds of bytes of flash (measured with scripts/qemu-net.sh build and scripts/qemu-run.sh).
    #[inline(never)]
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
        if ex.attempts() > 0 && self.reads.may_read() {
            // Larger than any reply, so a longer datagram shows as cut and is rejected.
            let mut buf = [0u8; MAX_REPLY_LEN + 1];
            match stack.receive(&mut self.io.socket, &mut buf) {
                Ok((len, from)) => {
                    let head = buf.get(..len).unwrap_or(&buf);
                    return Ok(on_reply(ex.on_datagram(now, from, len, head), Some(from)));
                }
                Err(nb::Error::WouldBlock) => {}
                Err(nb::Error::Other(e)) => {
                    return match self.io.caps.kind(&e) {
                        StackErrorKind::Refused => {
                            ex.on_refused(now);
                            Ok(ClientEvent::Refused)
                        }
                        StackErrorKind::Truncated => Ok(on_reply(ex.on_unreadable(now), None)),
                        StackErrorKind::Other => Err(ClientError::Stack(e)),
                    };
                }
            }
        }
        self.reads.timers_seen();
        match ex.poll(now) {
            Action::Done(outcome) => Ok(ClientEvent::Done(outcome)),
            Action::Wait(until) => Ok(ClientEvent::Wait(Wake::At(until))),
            Action::Send => match stack.send(&mut self.io.socket, request.bytes) {
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
                Err(nb::Error::Other(e)) if self.io.caps.kind(&e) == StackErrorKind::Refused => {
                    ex.on_send_refused(now);
                    Ok(ClientEvent::Refused)
                }
                Err(nb::Error::Other(e)) => Err(ClientError::Stack(e)),
            },
        }
    }
}

/// The event for a datagram the exchange judged: the outcome if it was the reply.
pub(crate) fn on_reply(verdict: Verdict, from: Option<SocketAddr>) -> ClientEvent {
    match verdict {
        Verdict::Accepted(replied) => ClientEvent::Done(Outcome::Reply(replied)),
        verdict => {
            debug!("client: ignored a datagram ({})", verdict.words());
            ClientEvent::Ignored { from, verdict }
        }
    }
}
