//! One request/reply exchange over host sockets: the core's [`Client`], with the shell's
//! only job, waiting, done by `poll(2)` (`WSAPoll` on Windows).
//!
//! Each call opens a fresh connected socket (a new ephemeral port), so a late reply to an
//! earlier exchange can never be taken for this one's.

use std::net::SocketAddr;
use std::time::Duration;

use udp_echo_core::{
    Client, ClientError, ClientEvent, Ignored, Instant, Outcome, RequestError, RetryPolicy, Shell,
    Wake,
};

use crate::clock::Clock;
use crate::shutdown::Shutdown;
use crate::stack::{CAPS, StdError, StdSocket, StdStack};

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The core's outcome: a reply or a give-up.
    Done(Outcome),
    /// The `interrupt` shutdown was asked for (SIGINT, SIGTERM) before the end.
    Interrupted,
}

/// The result of [`exchange`]: how it ended and what happened on the way.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// How it ended.
    pub ended: Ended,
    /// Requests that went out (also when interrupted).
    pub sent: u32,
    /// Datagrams and ICMP reports the exchange ignored (foreign, malformed, stale, refused).
    pub ignored: Ignored,
}

/// Asks `server` for the byte count of `request` on the retry schedule `policy`.
///
/// `on_event(event, since_start)` hears every step of the core's client but the waits
/// and the end (which the report carries): sends, blocked sends, ignored datagrams,
/// ICMP reports. Between steps the thread sleeps in `poll(2)` on the socket (and on
/// `interrupt`'s descriptor, if given) until the driver's deadline: no spinning, almost
/// no CPU. With `interrupt`, the exchange ends as [`Ended::Interrupted`] once a stop is
/// asked for: at once on Unix, within [`CHECK_EVERY`](crate::shutdown::CHECK_EVERY) on
/// Windows (where no descriptor wakes the wait).
///
/// # Errors
///
/// The core's [`ClientError`]: a request too large or a policy that cannot work, or a
/// socket that fails.
pub fn exchange(
    stack: &mut StdStack,
    server: SocketAddr,
    request: &[u8],
    policy: &RetryPolicy,
    interrupt: Option<&Shutdown>,
    on_event: impl FnMut(&ClientEvent, Duration),
) -> Result<Report, ClientError<StdError>> {
    let clock = Clock::new();
    let mut client = Client::connect(stack, server)?.with_caps(CAPS);
    let mut req = match client.start(policy, request) {
        Ok(req) => req,
        Err(e) => {
            let _ = client.close(stack);
            return Err(e);
        }
    };
    let started = clock.now();
    let mut shell = Waiting {
        clock,
        started,
        last: started,
        interrupt,
        on_event,
    };
    let result = match client.run(stack, &mut req, &mut shell) {
        Ok(outcome) => Ok(Ended::Done(outcome)),
        Err(RequestError::Shell(Stop::Interrupted)) => Ok(Ended::Interrupted),
        Err(RequestError::Shell(Stop::Wait(e))) => Err(ClientError::Stack(e)),
        Err(RequestError::Client(e)) => Err(e),
    };
    let (sent, ignored) = (req.exchange().attempts(), req.exchange().ignored());
    let _ = client.close(stack);
    result.map(|ended| Report {
        ended,
        sent,
        ignored,
    })
}

/// The host's [`Shell`]: the monotonic clock, and `poll(2)` on the socket and on the
/// interrupt's descriptor until the driver's deadline.
struct Waiting<'i, F> {
    clock: Clock,
    /// When the request started: events are reported as time since then.
    started: Instant,
    /// The time of the step being taken, for its event.
    last: Instant,
    interrupt: Option<&'i Shutdown>,
    on_event: F,
}

/// Why [`Waiting`] ended a request early.
#[derive(Debug)]
enum Stop {
    /// A stop was asked for.
    Interrupted,
    /// The wait itself failed.
    Wait(StdError),
}

impl<F: FnMut(&ClientEvent, Duration)> Shell<StdStack> for Waiting<'_, F> {
    type Error = Stop;

    fn now(&mut self, _: &mut StdStack) -> Instant {
        self.last = self.clock.now();
        self.last
    }

    fn sleep(
        &mut self,
        stack: &mut StdStack,
        socket: &StdSocket,
        now: Instant,
        wake: Wake,
    ) -> Result<(), Stop> {
        let mut deadline = wake.deadline(now).map(|at| self.clock.to_std(at));
        if let Some(shutdown) = self.interrupt {
            deadline = shutdown.wait_deadline(deadline);
        }
        let fd = self.interrupt.and_then(Shutdown::fd);
        match stack.wait_readable_or(socket, fd, deadline) {
            Ok(ready) if ready.other || self.interrupt.is_some_and(Shutdown::requested) => {
                Err(Stop::Interrupted)
            }
            Ok(_) => Ok(()),
            Err(e) => Err(Stop::Wait(e.into())),
        }
    }

    fn on_event(&mut self, event: &ClientEvent) {
        (self.on_event)(event, self.last - self.started);
    }
}
