//! One request/reply exchange as a sans-IO state machine.

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use crate::retry::{PolicyError, RetryPolicy};
use crate::time::{Instant, micros};
use crate::wire;

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
    /// Sends that went out, the first included.
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
    /// Sends that went out.
    pub attempts: u32,
    /// Scheduled sends that never went out: the stack refused them (`WouldBlock`) until
    /// their slot ended.
    pub unsent: u32,
    /// Time from the first send to giving up.
    pub elapsed: Duration,
    /// Whether an ICMP "port unreachable" was seen: probably nothing listens there.
    pub refused: bool,
}

/// What the exchange made of one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Verdict {
    /// The awaited reply: the exchange is done, with this outcome.
    Accepted(Replied),
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

impl Verdict {
    /// In words, for logs.
    pub const fn words(self) -> &'static str {
        match self {
            Verdict::Accepted(_) => "accepted",
            Verdict::Foreign => "foreign source",
            Verdict::Malformed => "malformed",
            Verdict::Stale { .. } => "stale count",
            Verdict::Late => "after the end",
        }
    }
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
#[cfg(feature = "jitter")]
const DEFAULT_SEED: u32 = 0x9E37_79B9;

/// The first pause after a send the stack refused for now (`WouldBlock`); each further
/// refusal in the same slot doubles it, up to the slot's end. A stack that stays blocked
/// (smoltcp while ARP for the peer is unresolved) thus costs a handful of wake-ups per
/// slot, not one per millisecond.
pub const BLOCKED_FIRST_PAUSE: Duration = Duration::from_millis(1);

/// The pause after a refused send, in µs, given the last one (0: none yet): the rule of
/// [`BLOCKED_FIRST_PAUSE`], shared by every driver that retries a blocked send.
pub(crate) fn next_blocked_pause_us(last_us: u64) -> u64 {
    match last_us {
        0 => micros(BLOCKED_FIRST_PAUSE),
        us => us.saturating_mul(2),
    }
}

/// One request/reply exchange with retries, as a sans-IO state machine.
///
/// The schedule is anchored to the first [`poll`](Self::poll): slot `k` starts at the sum
/// of the first `k` waits (0, 100, 300, 700, 1500 ms by default) and the exchange gives up
/// when the last slot ends (3100 ms), whatever the stack does. A slot whose send the stack
/// never took is counted in [`GaveUp::unsent`]; a late send does not push the later slots.
///
/// The [`Exchange`] decides; the caller does the I/O and tells it the time. Call order:
///
/// 1. [`Exchange::new`] with the request length; the schedule starts at the first poll.
/// 2. Loop: hand every received datagram to [`Exchange::on_datagram`] and every ICMP
///    "port unreachable" to [`Exchange::on_refused`]; then ask [`Exchange::poll`]:
///    - [`Action::Send`]: send the request, then report how it went: [`Exchange::on_sent`]
///      if it went out, [`Exchange::on_send_blocked`] if the stack said `WouldBlock`,
///      [`Exchange::on_send_refused`] if it failed with a leftover ICMP error;
///    - [`Action::Wait`]: wait for a datagram or until the given instant, whichever is first;
///    - [`Action::Done`]: the [`Outcome`].
///
/// `now` must never go backwards. Datagrams that are not the awaited reply (another
/// source, garbage, a stale reply carrying another count) are ignored and counted
/// without moving the current deadline. The give-up instant is a promise: it holds
/// whether sends go out, block or fail.
///
/// Most users drive an exchange through [`Client`](crate::Client), which does this loop's
/// I/O on an `embedded-nal` stack.
///
/// ```
/// use core::time::Duration;
/// use udp_echo_core::{Action, Exchange, Instant, Outcome, RetryPolicy, Verdict};
///
/// let server = "127.0.0.1:6666".parse().unwrap();
/// let t0 = Instant::from_millis(0);
/// let mut ex = Exchange::new(&RetryPolicy::default(), server, 5).unwrap();
/// assert_eq!(ex.poll(t0), Action::Send);
/// ex.on_sent(t0);
/// assert_eq!(ex.poll(t0), Action::Wait(Instant::from_millis(100)));
///
/// let t = Instant::from_millis(7);
/// let Verdict::Accepted(reply) = ex.on_datagram(t, server, 21, b"Your data was 5 bytes") else {
///     panic!()
/// };
/// assert_eq!(ex.poll(t), Action::Done(Outcome::Reply(reply)));
/// assert_eq!((reply.count, reply.attempts, reply.rtt), (5, 1, Duration::from_millis(7)));
/// ```
#[derive(Debug, Clone)]
pub struct Exchange {
    policy: RetryPolicy,
    server: SocketAddr,
    request_len: u16,
    /// When the first slot began; `None` before the first poll.
    started: Option<Instant>,
    /// Slots begun, the current one included.
    slots: u32,
    /// Sends that went out.
    sent: u32,
    /// Slots that ended without their send going out.
    unsent: u32,
    /// When the current slot ends (the next slot begins, or the exchange gives up).
    slot_end: Instant,
    /// The base wait of the next slot, in µs; `None` once the schedule is exhausted.
    /// (Whole microseconds in `u64`, not `Duration`: far less code on a Cortex-M.)
    next_wait_us: Option<u64>,
    /// When the current slot's send is due; `None` once it went out.
    send_due: Option<Instant>,
    /// The pause after the last refused send in this slot, in µs (0: none refused yet).
    blocked_pause_us: u64,
    /// When the overall deadline passes, once the schedule started.
    deadline_at: Option<Instant>,
    /// Whether this slot's send was already retried at once after an ICMP error.
    refusal_retried: bool,
    last_sent: Instant,
    ignored: Ignored,
    #[cfg(feature = "jitter")]
    rng: u32,
    outcome: Option<Outcome>,
}

impl Exchange {
    /// Prepares an exchange of a `request_len`-byte request with `server`. Its schedule
    /// starts at the first [`poll`](Self::poll).
    ///
    /// An IPv4-mapped IPv6 server address (`::ffff:a.b.c.d`) is taken as the IPv4
    /// address it stands for, as stacks report the replies' source.
    ///
    /// # Errors
    ///
    /// [`ExchangeError::Policy`] if `policy` fails [`RetryPolicy::validate`];
    /// [`ExchangeError::RequestTooLarge`] if the request does not fit one datagram to
    /// `server`'s address family.
    #[inline] // a firmware's constant policy then validates at compile time
    pub fn new(
        policy: &RetryPolicy,
        server: SocketAddr,
        request_len: usize,
    ) -> Result<Self, ExchangeError> {
        policy.validate().map_err(ExchangeError::Policy)?;
        let server = wire::canonical(server);
        let max = wire::max_request(server);
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
            started: None,
            slots: 0,
            sent: 0,
            unsent: 0,
            slot_end: Instant::ZERO,
            next_wait_us: Some(micros(policy.initial_wait)),
            send_due: None,
            blocked_pause_us: 0,
            deadline_at: None,
            refusal_retried: false,
            last_sent: Instant::ZERO,
            ignored: Ignored::default(),
            #[cfg(feature = "jitter")]
            rng: DEFAULT_SEED,
            outcome: None,
        })
    }

    /// Seeds the generator behind [`Jitter`](crate::Jitter) (ignored without jitter).
    /// Give each exchange its own seed, e.g. from a hardware RNG, so clients spread out.
    #[cfg(feature = "jitter")]
    #[must_use]
    pub fn with_seed(mut self, seed: u32) -> Self {
        // xorshift never leaves zero, so zero means "the default".
        self.rng = if seed == 0 { DEFAULT_SEED } else { seed };
        self
    }

    /// The server this exchange talks to (IPv4-mapped addresses already made IPv4).
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Sends that went out so far.
    pub fn attempts(&self) -> u32 {
        self.sent
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
    #[must_use = "the action says whether to send, wait or stop"]
    pub fn poll(&mut self, now: Instant) -> Action {
        if let Some(outcome) = self.outcome {
            return Action::Done(outcome);
        }
        let started = *self.started.get_or_insert(now);
        if self.slots == 0 {
            self.deadline_at = self.policy.deadline.map(|d| started + d);
            self.begin_slot(now);
        }
        // A shell that woke late may have slept through whole slots: each ends unsent.
        while now >= self.slot_end {
            if self.send_due.take().is_some() {
                self.unsent += 1;
            }
            let attempts_left = self.policy.max_attempts.is_none_or(|max| self.slots < max);
            let before_deadline = self.deadline_at.is_none_or(|d| self.slot_end < d);
            if self.next_wait_us.is_none() || !attempts_left || !before_deadline {
                return self.give_up(now, started);
            }
            self.begin_slot(self.slot_end);
        }
        match self.send_due {
            Some(due) if now >= due => Action::Send,
            Some(due) => Action::Wait(due.min(self.slot_end)),
            None => Action::Wait(self.slot_end),
        }
    }

    fn begin_slot(&mut self, at: Instant) {
        let Some(base) = self.next_wait_us else {
            return;
        };
        self.slots += 1;
        // Never under the clock's 1 µs (nor over `base`, which validates to at least that):
        // a shorter slot would end as it begins, its send never going out, and a flat
        // schedule would never move on.
        #[cfg(feature = "jitter")]
        let wait = self.policy.jitter.apply_us(base, self.next_random()).max(1);
        #[cfg(not(feature = "jitter"))]
        let wait = base.max(1);
        self.slot_end = Instant::from_micros(at.as_micros().saturating_add(wait));
        if let Some(d) = self.deadline_at {
            self.slot_end = self.slot_end.min(d);
        }
        self.next_wait_us = self.policy.next_wait_us(base);
        self.send_due = Some(at);
        self.blocked_pause_us = 0;
        self.refusal_retried = false;
    }

    fn give_up(&mut self, now: Instant, started: Instant) -> Action {
        let gave_up = Outcome::GaveUp(GaveUp {
            attempts: self.sent,
            unsent: self.unsent,
            elapsed: now - started,
            refused: self.ignored.refused > 0,
        });
        debug!(
            "exchange: gave up after {} sends ({} could not go out)",
            self.sent, self.unsent
        );
        self.outcome = Some(gave_up);
        Action::Done(gave_up)
    }

    /// When the current slot ends: a send still pending then never went out in it.
    #[cfg(feature = "async")]
    pub(crate) fn slot_end(&self) -> Instant {
        self.slot_end
    }

    /// Records that the request went out at `now`, after [`Action::Send`].
    pub fn on_sent(&mut self, now: Instant) {
        if self.send_due.take().is_none() {
            return;
        }
        self.sent += 1;
        self.last_sent = now;
        trace!("exchange: send {} at {}", self.sent, now);
    }

    /// Records that the stack could not take the send at `now` (`WouldBlock`): it is
    /// tried again after a pause that starts at [`BLOCKED_FIRST_PAUSE`] and doubles, never
    /// past the slot's end.
    pub fn on_send_blocked(&mut self, now: Instant) {
        if self.send_due.is_none() {
            return;
        }
        self.blocked_pause_us = next_blocked_pause_us(self.blocked_pause_us);
        self.send_due = Some(Instant::from_micros(
            now.as_micros().saturating_add(self.blocked_pause_us),
        ));
    }

    /// Records that the send failed at `now` with an ICMP "port unreachable" left over
    /// from an earlier datagram: nothing went out. The first such failure in a slot is
    /// retried at once, later ones pause as [`on_send_blocked`](Self::on_send_blocked)
    /// does, so a stack that always refuses cannot make the caller spin.
    pub fn on_send_refused(&mut self, now: Instant) {
        self.ignored.refused += 1;
        if self.refusal_retried {
            self.on_send_blocked(now);
        } else {
            self.refusal_retried = true;
        }
    }

    /// Classifies a datagram from `from` whose true length is `len`, of which the first
    /// bytes are `head`, received at `now`.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        len: usize,
        head: &[u8],
    ) -> Verdict {
        if self.outcome.is_some() {
            return Verdict::Late;
        }
        if wire::canonical(from) != self.server {
            self.ignored.foreign += 1;
            return Verdict::Foreign;
        }
        let count = match wire::parse_reply(head) {
            Ok(count) if len == head.len() => count,
            _ => return self.on_unreadable(now),
        };
        if count != self.request_len || self.sent == 0 {
            self.ignored.stale += 1;
            return Verdict::Stale { count };
        }
        let started = self.started.unwrap_or(now);
        let replied = Replied {
            count,
            attempts: self.sent,
            rtt: now - self.last_sent,
            rtt_ambiguous: self.sent > 1,
            elapsed: now - started,
        };
        self.outcome = Some(Outcome::Reply(replied));
        Verdict::Accepted(replied)
    }

    /// Records a datagram the stack could not hand over whole and could not measure
    /// (too long for the buffer): it cannot be a reply.
    pub fn on_unreadable(&mut self, _now: Instant) -> Verdict {
        if self.outcome.is_some() {
            return Verdict::Late;
        }
        self.ignored.malformed += 1;
        Verdict::Malformed
    }

    /// Records an ICMP "port unreachable" for this exchange. It never ends the schedule
    /// early: ICMP is unauthenticated and a server may be starting up.
    pub fn on_refused(&mut self, _now: Instant) {
        self.ignored.refused += 1;
    }

    #[cfg(feature = "jitter")]
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

#[cfg(test)]
// Written as users outside the crate must, where the policy is `#[non_exhaustive]`.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use crate::retry::Factor;
    #[cfg(feature = "jitter")]
    use crate::retry::Jitter;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn server() -> SocketAddr {
        "192.0.2.1:6666".parse().unwrap()
    }

    /// Runs `ex` against a silent server on virtual time, jumping to each wait's end.
    /// Returns the send instants and the give-up, in µs.
    fn silent_run(ex: &mut Exchange, max_steps: usize) -> (Vec<u64>, u64, GaveUp) {
        let mut now = Instant::ZERO;
        let mut sends = Vec::new();
        for _ in 0..max_steps {
            match ex.poll(now) {
                Action::Send => {
                    ex.on_sent(now);
                    sends.push(now.as_micros());
                }
                Action::Wait(t) => {
                    assert!(t > now, "a wait must move time on");
                    now = t;
                }
                Action::Done(Outcome::GaveUp(g)) => return (sends, now.as_micros(), g),
                Action::Done(other) => panic!("{other:?}"),
            }
        }
        panic!("no outcome after {max_steps} steps");
    }

    /// Found by `fuzz/exchange`: full jitter scaled a 41 µs wait to under 1 µs now and
    /// then, the slot ended as it began, and its send was counted unsent on a stack that
    /// never blocked.
    #[test]
    #[cfg(feature = "jitter")]
    fn every_jittered_slot_sends_when_the_stack_is_ready() {
        let mut p = RetryPolicy::default();
        p.initial_wait = Duration::from_micros(41);
        p.factor = Factor::from_milli(1030);
        p.max_attempts = Some(97);
        for jitter in [Jitter::Full, Jitter::Equal] {
            p.jitter = jitter;
            for seed in 0..50 {
                let mut ex = Exchange::new(&p, server(), 3).unwrap().with_seed(seed);
                let (sends, ended, g) = silent_run(&mut ex, 1000);
                assert_eq!((g.attempts, g.unsent), (97, 0), "{jitter:?} seed {seed}");
                assert!(sends.windows(2).all(|w| w[0] < w[1]));
                assert!(ended <= p.give_up_after().as_micros() as u64);
            }
        }
    }

    /// Found by `fuzz/exchange`: with factor 1 and a deadline, jitter that scales a 1 µs
    /// wait to nothing never moved the slot on, and `poll` looped forever.
    #[test]
    #[cfg(feature = "jitter")]
    fn a_flat_jittered_schedule_ends_at_its_deadline() {
        let mut p = RetryPolicy::default();
        p.initial_wait = Duration::from_micros(1);
        p.factor = Factor::integer(1);
        p.deadline = Some(Duration::from_millis(1));
        for jitter in [Jitter::Full, Jitter::Equal] {
            p.jitter = jitter;
            let mut ex = Exchange::new(&p, server(), 3).unwrap();
            let (sends, ended, g) = silent_run(&mut ex, 5000);
            assert_eq!((sends.len(), g.unsent), (1000, 0), "{jitter:?}");
            assert_eq!(ended, 1000);
        }
    }

    /// Found by `fuzz/exchange`: the policy listed a second send at 10.731 ms before a
    /// 10.731216 ms deadline, but on the 1 µs clock that deadline is 10.731 ms and the
    /// exchange gave up after one send. The policy now states its schedule in whole µs.
    #[test]
    fn a_deadline_finer_than_the_clock_ends_on_the_stated_schedule() {
        let mut p = RetryPolicy::default();
        p.initial_wait = Duration::from_micros(10_731);
        p.deadline = Some(Duration::from_nanos(10_731_216));
        let stated: Vec<u64> = p.send_times().map(|t| t.as_micros() as u64).collect();
        let mut ex = Exchange::new(&p, server(), 3).unwrap();
        let (sends, ended, g) = silent_run(&mut ex, 100);
        assert_eq!(sends, stated);
        assert_eq!(ended, p.give_up_after().as_micros() as u64);
        assert_eq!(p.give_up_after(), Duration::from_micros(10_731));
        assert_eq!(g.unsent, 0);
    }

    proptest! {
        /// Every policy that validates ends exactly at its stated give-up instant, having
        /// sent exactly at its stated send times.
        #[test]
        fn every_valid_policy_ends_on_its_stated_schedule(
            initial_us in 1u64..3_000_000,
            milli in 1000u32..4000,
            max_us in 1u64..5_000_000,
            attempts in proptest::option::of(1u32..20),
            deadline_us in proptest::option::of(1u64..5_000_000),
        ) {
            let mut p = RetryPolicy::default();
            p.initial_wait = Duration::from_micros(initial_us);
            p.factor = Factor::from_milli(milli);
            p.max_wait = Duration::from_micros(max_us);
            p.max_attempts = attempts;
            p.deadline = deadline_us.map(Duration::from_micros);
            prop_assume!(p.validate().is_ok());
            let expected: Vec<u64> =
                p.send_times().take(20_001).map(|t| t.as_micros() as u64).collect();
            prop_assume!(expected.len() <= 20_000);
            let mut ex = Exchange::new(&p, server(), 3).unwrap();
            let (sends, ended, g) = silent_run(&mut ex, 3 * expected.len() + 10);
            prop_assert_eq!(&sends, &expected);
            prop_assert_eq!(ended, p.give_up_after().as_micros() as u64);
            prop_assert_eq!((g.attempts as usize, g.unsent), (expected.len(), 0));
        }
    }
}
