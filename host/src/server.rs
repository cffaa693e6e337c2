//! The server and listener loops: the core's [`Server`] and [`Listener`] drivers, with the
//! shell's only job, waiting, done by `poll(2)`.
//!
//! Each turn hands every waiting datagram (up to the core's batch) to the driver, which
//! decides and replies through the core's responder, then tells the [`Observer`]. Then the
//! loop sleeps until a datagram arrives, the observer's next deadline (e.g. a per-second
//! summary), a signal (through [`Shutdown::fd`]), or [`MAX_WAIT`] — whichever is first.

use std::time::Duration;

use udp_echo_core::{Decision, Instant, Listener, Received, Server, ServerError, Wake};

use crate::batch::BatchServer;
use crate::clock::Clock;
use crate::shutdown::Shutdown;
use crate::stack::{StdError, StdSocket, StdStack};

/// The longest a loop sleeps before it checks [`Observer::stop`] again.
pub const MAX_WAIT: Duration = Duration::from_millis(200);

/// The receive buffer: the stack reports true lengths (see [`crate::stack::CAPS`]), so
/// only a datagram's head is kept, enough to print a line and to spot a reply-shaped one.
pub const RECV_BUFFER: usize = 2048;

/// What a loop tells about the datagrams it handles; the shell's presentation.
pub trait Observer {
    /// One datagram and, for a server, the decision taken (`None` for a listener).
    /// Called on the receive path: it must not block.
    fn datagram(&mut self, received: &Received<'_>, decision: Option<&Decision>);

    /// Called after every turn of the loop; returns when it wants to be called again at
    /// the latest.
    fn tick(&mut self, _now: Instant) -> Wake {
        Wake::OnDatagram
    }

    /// Whether the loop should end (checked every turn, and at least every [`MAX_WAIT`]).
    fn stop(&self) -> bool {
        false
    }
}

/// Why a loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// A signal (SIGINT or SIGTERM) arrived.
    Signal,
    /// The observer asked to stop.
    Observer,
}

/// Runs `server` until a signal arrives through `shutdown` or the observer says stop.
pub fn run_server<const N: usize>(
    stack: &mut StdStack,
    server: &mut Server<StdStack, N>,
    clock: &Clock,
    shutdown: Option<&Shutdown>,
    observer: &mut impl Observer,
) -> Result<Stopped, ServerError<StdError>> {
    run(stack, server, clock, shutdown, observer)
}

/// Runs the batched `server` ([`BatchServer`]) until a signal arrives through `shutdown`
/// or the observer says stop; the same loop, waits and observer as [`run_server`].
pub fn run_batched<const N: usize>(
    stack: &mut StdStack,
    server: &mut BatchServer<N>,
    clock: &Clock,
    shutdown: Option<&Shutdown>,
    observer: &mut impl Observer,
) -> Result<Stopped, ServerError<StdError>> {
    run(stack, server, clock, shutdown, observer)
}

/// Runs `listener` (never replies) until a signal arrives or the observer says stop.
pub fn run_listener(
    stack: &mut StdStack,
    listener: &mut Listener<StdStack>,
    clock: &Clock,
    shutdown: Option<&Shutdown>,
    observer: &mut impl Observer,
) -> Result<Stopped, ServerError<StdError>> {
    run(stack, listener, clock, shutdown, observer)
}

/// A driver the loop can turn: the server or the listener.
trait Driver {
    fn socket(&self) -> &StdSocket;
    fn turn(
        &mut self,
        stack: &mut StdStack,
        buf: &mut [u8],
        now: Instant,
        observer: &mut impl Observer,
    ) -> Result<Wake, ServerError<StdError>>;
}

impl<const N: usize> Driver for Server<StdStack, N> {
    fn socket(&self) -> &StdSocket {
        Server::socket(self)
    }
    fn turn(
        &mut self,
        stack: &mut StdStack,
        buf: &mut [u8],
        now: Instant,
        observer: &mut impl Observer,
    ) -> Result<Wake, ServerError<StdError>> {
        self.poll(stack, buf, now, |r, d| observer.datagram(r, Some(d)))
    }
}

impl<const N: usize> Driver for BatchServer<N> {
    fn socket(&self) -> &StdSocket {
        BatchServer::socket(self)
    }
    fn turn(
        &mut self,
        _stack: &mut StdStack,
        _buf: &mut [u8],
        now: Instant,
        observer: &mut impl Observer,
    ) -> Result<Wake, ServerError<StdError>> {
        self.poll(now, |r, d| observer.datagram(r, Some(d)))
            .map_err(|e| ServerError::Stack(e.into()))
    }
}

impl Driver for Listener<StdStack> {
    fn socket(&self) -> &StdSocket {
        Listener::socket(self)
    }
    fn turn(
        &mut self,
        stack: &mut StdStack,
        buf: &mut [u8],
        now: Instant,
        observer: &mut impl Observer,
    ) -> Result<Wake, ServerError<StdError>> {
        self.poll(stack, buf, now, |r| observer.datagram(r, None))
    }
}

/// The shell: turn the driver, then sleep in `poll(2)` until a datagram, a deadline or a
/// signal.
fn run(
    stack: &mut StdStack,
    driver: &mut impl Driver,
    clock: &Clock,
    shutdown: Option<&Shutdown>,
    observer: &mut impl Observer,
) -> Result<Stopped, ServerError<StdError>> {
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        if let Some(stopped) = should_stop(shutdown, observer) {
            return Ok(stopped);
        }
        let now = clock.now();
        let wake = driver
            .turn(stack, &mut buf, now, observer)?
            .min(observer.tick(now))
            .min(Wake::At(now + MAX_WAIT));
        let Some(at) = wake.deadline(now).filter(|at| *at > now) else {
            continue;
        };
        stack
            .wait_readable_or(
                driver.socket(),
                shutdown.map(Shutdown::fd),
                Some(clock.to_std(at)),
            )
            .map_err(|e| ServerError::Stack(e.into()))?;
    }
}

fn should_stop(shutdown: Option<&Shutdown>, observer: &impl Observer) -> Option<Stopped> {
    if shutdown.is_some_and(Shutdown::requested) {
        Some(Stopped::Signal)
    } else if observer.stop() {
        Some(Stopped::Observer)
    } else {
        None
    }
}
