//! One request/reply exchange over host sockets: the core's [`Client`] and [`Exchange`],
//! with the shell's only job, waiting, done by `poll(2)`.
//!
//! Each call opens a fresh connected socket (a new ephemeral port), so a late reply to an
//! earlier exchange can never be taken for this one's.
//!
//! [`Exchange`]: udp_echo_core::Exchange

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use udp_echo_core::driver::{ClientError, Poll};
use udp_echo_core::exchange::Ignored;
use udp_echo_core::{Client, Outcome, RetryPolicy};

use crate::clock::Clock;
use crate::stack::{StdError, StdStack};

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The core's outcome: a reply or a give-up.
    Done(Outcome),
    /// The `interrupt` descriptor became readable (e.g. SIGINT) before the end.
    Interrupted,
}

/// The result of [`exchange`]: how it ended and what was ignored on the way.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// How it ended.
    pub ended: Ended,
    /// Datagrams and ICMP reports the exchange ignored (foreign, malformed, stale, refused).
    pub ignored: Ignored,
}

/// Asks `server` for the byte count of `request` on the retry schedule `policy`.
///
/// `on_send(attempt, since_start)` hears of every send, the first included. The wait
/// between calls is a `poll(2)` on the socket (and on `interrupt`, if given) with the
/// driver's deadline as timeout: no spinning, almost no CPU.
pub fn exchange(
    stack: &mut StdStack,
    server: SocketAddr,
    request: &[u8],
    policy: &RetryPolicy,
    interrupt: Option<BorrowedFd<'_>>,
    mut on_send: impl FnMut(u32, Duration),
) -> Result<Report, ClientError<StdError>> {
    let clock = Clock::new();
    let mut client = Client::connect(stack, server)?;
    let mut ex = match client.start(policy, request, clock.now()) {
        Ok(ex) => ex,
        Err(e) => {
            let _ = client.close(stack);
            return Err(e);
        }
    };
    let started = clock.now();
    let result = loop {
        let before = ex.attempts();
        let now = clock.now();
        let polled = client.poll(stack, &mut ex, request, now);
        for attempt in before + 1..=ex.attempts() {
            on_send(attempt, now - started);
        }
        match polled {
            Err(e) => break Err(e),
            Ok(Poll::Ready(outcome)) => break Ok(Ended::Done(outcome)),
            Ok(Poll::Pending(wake)) => {
                let timeout = wake.timeout(clock.now());
                match stack.wait_readable_or(client.socket(), interrupt, timeout) {
                    Ok(ready) if ready.other => break Ok(Ended::Interrupted),
                    Ok(_) => {}
                    Err(e) => break Err(ClientError::Stack(e.into())),
                }
            }
        }
    };
    let ignored = ex.ignored();
    let _ = client.close(stack);
    result.map(|ended| Report { ended, ignored })
}
