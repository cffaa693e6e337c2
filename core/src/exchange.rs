//! One request/reply exchange as a sans-IO state machine.
//!
//! The [`Exchange`] decides; the caller does the I/O and tells it the time. Call order:
//!
//! 1. [`Exchange::new`] with the request length and `now`.
//! 2. Loop: hand every received datagram to [`Exchange::on_datagram`] and every ICMP
//!    "port unreachable" to [`Exchange::on_refused`]; then ask [`Exchange::poll`]:
//!    - [`Action::Send`]: send the request, then call [`Exchange::on_sent`] (only after
//!      the send succeeded, so a send that could not go out is retried, not counted);
//!    - [`Action::Wait`]: wait for a datagram or until the given instant, whichever is first;
//!    - [`Action::Done`]: the [`Outcome`].
//!
//! `now` must never go backwards. Datagrams that are not the awaited reply (another
//! source, garbage, a stale reply carrying another count) are ignored and counted
//! without moving the current deadline.
//!
//! ```
//! use core::time::Duration;
//! use udp_echo_core::exchange::{Action, Exchange, Outcome, Verdict};
//! use udp_echo_core::{Instant, RetryPolicy};
//!
//! let server = "127.0.0.1:6666".parse().unwrap();
//! let t0 = Instant::from_millis(0);
//! let mut ex = Exchange::new(&RetryPolicy::default(), server, 5, t0).unwrap();
//! assert_eq!(ex.poll(t0), Action::Send);
//! ex.on_sent(t0);
//! assert_eq!(ex.poll(t0), Action::Wait(Instant::from_millis(100)));
//!
//! let t = Instant::from_millis(7);
//! assert_eq!(ex.on_datagram(t, server, b"Your data was 5 bytes", 21), Verdict::Accepted);
//! let Action::Done(Outcome::Reply(reply)) = ex.poll(t) else { panic!() };
//! assert_eq!((reply.count, reply.attempts, reply.rtt), (5, 1, Duration::from_millis(7)));
//! ```

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use crate::retry::{PolicyError, RetryPolicy};
use crate::time::Instant;
use crate::wire::{self, MAX_REQUEST_V4, MAX_REQUEST_V6};

/// What the caller should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Action {
    /// Send (or resend) the request now, then call [`Exchange::on_sent`].
    Send,
    /// Wait for a datagram, or until this instant at the latest, then poll again.
    Wait(Instant),
    /// The exchange is over.
    Done(Outcome),
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// The server answered with the right count.
    Reply(Replied),
    /// The schedule ran out without a valid reply.
    GaveUp(GaveUp),
}

/// A successful exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Replied {
    /// The count the server reported (equal to the request length).
    pub count: u16,
    /// Sends made, the first included.
    pub attempts: u32,
    /// Time from the last send to the reply.
    pub rtt: Duration,
    /// True after a retransmission: the reply may answer an earlier send, so the RTT is
    /// ambiguous and must not feed an RTT estimator (Karn's rule).
    pub rtt_ambiguous: bool,
    /// Time from the first send to the reply.
    pub elapsed: Duration,
}

/// An exchange that ran out of schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GaveUp {
    /// Sends made.
    pub attempts: u32,
    /// Time from the first send to giving up.
    pub elapsed: Duration,
    /// Whether an ICMP "port unreachable" was seen: probably nothing listens there.
    pub refused: bool,
}

/// What the exchange made of one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Verdict {
    /// The awaited reply: the exchange is done.
    Accepted,
    /// Ignored: it came from another address than the server's.
    Foreign,
    /// Ignored: it is not a well-formed reply.
    Malformed,
    /// Ignored: a well-formed reply with another count (an answer to something else).
    Stale {
        /// The count it carried.
        count: u16,
    },
    /// Ignored: the exchange had already ended.
    Late,
}

/// Counts of datagrams the exchange ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ignored {
    /// From another address.
    pub foreign: u32,
    /// Not a reply.
    pub malformed: u32,
    /// A reply with another count.
    pub stale: u32,
    /// ICMP "port unreachable" reports.
    pub refused: u32,
}

/// Why an exchange cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ExchangeError {
    /// The request does not fit one UDP datagram to this server's address family.
    RequestTooLarge {
        /// The request's length.
        len: usize,
        /// The largest request for the family (65507 over IPv4, 65527 over IPv6).
        max: usize,
    },
    /// The retry policy is unusable.
    Policy(PolicyError),
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::RequestTooLarge { len, max } => write!(
                f,
                "the request is {len} bytes; one UDP datagram carries at most {max} bytes"
            ),
            ExchangeError::Policy(e) => write!(f, "invalid retry policy: {e}"),
        }
    }
}

impl core::error::Error for ExchangeError {}

/// The jitter generator's seed unless [`Exchange::with_seed`] gives one.
const DEFAULT_SEED: u32 = 0x9E37_79B9;

/// The largest request one datagram to `server` can carry.
pub fn max_request(server: SocketAddr) -> usize {
    match server {
        SocketAddr::V4(_) => MAX_REQUEST_V4,
        SocketAddr::V6(_) => MAX_REQUEST_V6,
    }
}

/// One request/reply exchange with retries. See the [module docs](self) for the call order.
#[derive(Debug, Clone)]
pub struct Exchange {
    policy: RetryPolicy,
    server: SocketAddr,
    request_len: u16,
    started: Instant,
    attempts: u32,
    /// Scheduled wait after the next send; `None` once the schedule is exhausted.
    next_wait: Option<Duration>,
    wait_until: Instant,
    last_sent: Instant,
    ignored: Ignored,
    rng: u32,
    outcome: Option<Outcome>,
}

impl Exchange {
    /// Starts an exchange of a `request_len`-byte request with `server` at `now`.
    pub fn new(
        policy: &RetryPolicy,
        server: SocketAddr,
        request_len: usize,
        now: Instant,
    ) -> Result<Self, ExchangeError> {
        policy.validate().map_err(ExchangeError::Policy)?;
        let max = max_request(server);
        let too_large = ExchangeError::RequestTooLarge {
            len: request_len,
            max,
        };
        if request_len > max {
            return Err(too_large);
        }
        Ok(Exchange {
            policy: *policy,
            server,
            request_len: u16::try_from(request_len).map_err(|_| too_large)?,
            started: now,
            attempts: 0,
            next_wait: Some(policy.initial_wait),
            wait_until: now,
            last_sent: now,
            ignored: Ignored::default(),
            rng: DEFAULT_SEED,
            outcome: None,
        })
    }

    /// Seeds the generator behind [`Jitter`](crate::retry::Jitter) (ignored without jitter).
    /// Give each exchange its own seed, e.g. from a hardware RNG, so clients spread out.
    pub fn with_seed(mut self, seed: u32) -> Self {
        // xorshift never leaves zero, so zero means "the default".
        self.rng = if seed == 0 { DEFAULT_SEED } else { seed };
        self
    }

    /// The server this exchange talks to.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The request length the reply must report.
    pub fn request_len(&self) -> u16 {
        self.request_len
    }

    /// Sends made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Datagrams and ICMP reports ignored so far.
    pub fn ignored(&self) -> Ignored {
        self.ignored
    }

    /// The final outcome, once there is one.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// What to do at `now`.
    pub fn poll(&mut self, now: Instant) -> Action {
        if let Some(outcome) = self.outcome {
            return Action::Done(outcome);
        }
        if self.attempts == 0 {
            return Action::Send;
        }
        if now < self.wait_until {
            return Action::Wait(self.wait_until);
        }
        let attempts_left = self
            .policy
            .max_attempts
            .is_none_or(|max| self.attempts < max);
        let before_deadline = self.policy.deadline.is_none_or(|d| now < self.started + d);
        if self.next_wait.is_some() && attempts_left && before_deadline {
            return Action::Send;
        }
        let gave_up = Outcome::GaveUp(GaveUp {
            attempts: self.attempts,
            elapsed: now - self.started,
            refused: self.ignored.refused > 0,
        });
        debug!("exchange: gave up after {} sends", self.attempts);
        self.outcome = Some(gave_up);
        Action::Done(gave_up)
    }

    /// Records that the request went out at `now` and starts the next wait.
    pub fn on_sent(&mut self, now: Instant) {
        let Some(base) = self.next_wait else {
            return;
        };
        if self.attempts == 0 {
            self.started = now;
        }
        self.attempts += 1;
        self.last_sent = now;
        let wait = self.policy.jitter.apply(base, self.next_random());
        self.wait_until = now + wait;
        if let Some(d) = self.policy.deadline {
            self.wait_until = self.wait_until.min(self.started + d);
        }
        self.next_wait = self.policy.next_wait(base);
        trace!("exchange: send {} at {}", self.attempts, now.as_millis());
    }

    /// Classifies a datagram of `len` bytes (its true length) from `from`, whose first
    /// bytes are `bytes`, received at `now`.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        len: usize,
    ) -> Verdict {
        if self.outcome.is_some() {
            return Verdict::Late;
        }
        if from != self.server {
            self.ignored.foreign += 1;
            return Verdict::Foreign;
        }
        let count = match wire::parse_reply(bytes) {
            Ok(count) if len == bytes.len() => count,
            _ => {
                self.ignored.malformed += 1;
                return Verdict::Malformed;
            }
        };
        if count != self.request_len || self.attempts == 0 {
            self.ignored.stale += 1;
            return Verdict::Stale { count };
        }
        self.outcome = Some(Outcome::Reply(Replied {
            count,
            attempts: self.attempts,
            rtt: now - self.last_sent,
            rtt_ambiguous: self.attempts > 1,
            elapsed: now - self.started,
        }));
        Verdict::Accepted
    }

    /// Records an ICMP "port unreachable" for this exchange. It never ends the schedule
    /// early: ICMP is unauthenticated and a server may be starting up.
    pub fn on_refused(&mut self, _now: Instant) {
        self.ignored.refused += 1;
    }

    fn next_random(&mut self) -> u32 {
        // xorshift32: enough to spread retries, no dependency, no_std.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }
}
