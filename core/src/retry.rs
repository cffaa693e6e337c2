//! The retry policy: how long to wait after each send, and when to give up.

use core::fmt;
use core::time::Duration;

use crate::time::micros;

/// How much each timeout grows the next wait, in thousandths (exact, float-free).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Factor {
    milli: u32,
}

impl Factor {
    /// `milli / 1000`: `Factor::from_milli(1500)` is ×1.5.
    pub const fn from_milli(milli: u32) -> Self {
        Factor { milli }
    }

    /// A whole-number factor, saturating.
    pub const fn integer(n: u32) -> Self {
        Factor {
            milli: n.saturating_mul(1000),
        }
    }

    /// The factor in thousandths.
    pub const fn as_milli(self) -> u32 {
        self.milli
    }

    /// `us × factor` in whole microseconds, saturating (the arithmetic of the schedule).
    pub(crate) fn apply_us(self, us: u64) -> u64 {
        us.saturating_mul(u64::from(self.milli)) / 1000
    }
}

impl fmt::Display for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Trailing zeros dropped. Widths written out, not a runtime `width$`: core::fmt
        // checks a runtime width with a panic the optimiser cannot remove.
        let (whole, frac) = (self.milli / 1000, self.milli % 1000);
        if frac == 0 {
            write!(f, "{whole}")
        } else if frac % 100 == 0 {
            write!(f, "{whole}.{}", frac / 100)
        } else if frac % 10 == 0 {
            write!(f, "{whole}.{:02}", frac / 10)
        } else {
            write!(f, "{whole}.{frac:03}")
        }
    }
}

/// Randomisation of each wait, from randomness the caller supplies (feature `jitter`).
#[cfg(feature = "jitter")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Jitter {
    /// Wait exactly the scheduled time (the default: the timeline is exact).
    #[default]
    None,
    /// Wait a uniform random time in `[0, wait]` ("full jitter"); an exchange waits at
    /// least 1 µs, the clock's resolution.
    Full,
    /// Wait `wait/2` plus a uniform random time in `[0, wait/2]` ("equal jitter").
    Equal,
}

#[cfg(feature = "jitter")]
impl Jitter {
    /// The wait to use for a scheduled `wait`, given 32 random bits.
    pub fn apply(self, wait: Duration, random: u32) -> Duration {
        Duration::from_micros(self.apply_us(micros(wait), random))
    }

    /// [`apply`](Self::apply) in whole microseconds.
    pub(crate) fn apply_us(self, us: u64, random: u32) -> u64 {
        // us × random / 2³² in u64, exactly: split us into its high and low 32 bits.
        let scale = |us: u64| {
            let r = u64::from(random);
            (us >> 32) * r + (((us & 0xFFFF_FFFF) * r) >> 32)
        };
        match self {
            Jitter::None => us,
            Jitter::Full => scale(us),
            Jitter::Equal => us / 2 + scale(us - us / 2),
        }
    }
}

/// When to resend and when to give up. `Default` is the protocol's schedule.
///
/// The waits are `initial_wait`, then each one `factor` times the last; the exchange
/// gives up once the next wait would exceed `max_wait`, after `max_attempts` sends, or at
/// `deadline` after the first send, whichever comes first.
///
/// The default is the protocol's schedule: first wait 100 ms, each timeout doubles the
/// wait, give up when the next wait would exceed 2 s. That is sends at 0, 100, 300, 700
/// and 1500 ms, and a give-up at 3100 ms.
///
/// ```
/// use core::time::Duration;
/// use udp_echo_core::RetryPolicy;
///
/// let policy = RetryPolicy::default();
/// let sends: Vec<u128> = policy.send_times().map(|t| t.as_millis()).collect();
/// assert_eq!(sends, [0, 100, 300, 700, 1500]);
/// assert_eq!(policy.give_up_after(), Duration::from_millis(3100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Wait after the first send.
    pub initial_wait: Duration,
    /// Growth of the wait after each timeout (at least 1).
    pub factor: Factor,
    /// No wait is longer than this: when the next one would be, the exchange gives up.
    pub max_wait: Duration,
    /// At most this many sends (`None`: as many as the waits allow).
    pub max_attempts: Option<u32>,
    /// Give up this long after the first send at the latest (`None`: no overall limit).
    pub deadline: Option<Duration>,
    /// Randomisation of each wait (feature `jitter`).
    #[cfg(feature = "jitter")]
    pub jitter: Jitter,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_wait: Duration::from_millis(100),
            factor: Factor::integer(2),
            max_wait: Duration::from_secs(2),
            max_attempts: None,
            deadline: None,
            #[cfg(feature = "jitter")]
            jitter: Jitter::None,
        }
    }
}

/// Why a policy cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PolicyError {
    /// `initial_wait` is under 1 µs, the resolution of the core's clock: the client would
    /// resend without waiting.
    ZeroInitialWait,
    /// `initial_wait` exceeds `max_wait`: not even one wait fits the schedule.
    InitialExceedsMax,
    /// `factor` is below 1: waits would shrink.
    FactorBelowOne,
    /// `factor` is 1 with no `max_attempts` or `deadline`: the client would never give up.
    Unbounded,
    /// `factor` does not grow `initial_wait` by even 1 µs (e.g. 1 µs × 1.5, waits being
    /// whole microseconds), and there is no `max_attempts` or `deadline`: the client would
    /// never give up.
    NoGrowth,
    /// `max_attempts` is zero: nothing would be sent.
    ZeroAttempts,
    /// `deadline` is under 1 µs, the resolution of the core's clock: it ends the exchange
    /// at its first instant, before anything is sent.
    ZeroDeadline,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyError::ZeroInitialWait => "the initial timeout must be at least 1 µs",
            PolicyError::InitialExceedsMax => {
                "the initial timeout must not exceed the maximum timeout"
            }
            PolicyError::FactorBelowOne => "the backoff factor must be at least 1",
            PolicyError::Unbounded => {
                "a backoff factor of 1 needs a limit on attempts or a deadline, or it never gives up"
            }
            PolicyError::ZeroAttempts => "the number of attempts must be at least 1",
            PolicyError::ZeroDeadline => "the deadline must be at least 1 µs",
            PolicyError::NoGrowth => {
                "the backoff factor does not grow the initial timeout by even 1 µs, so it would never give up: use a larger initial timeout or factor, or limit attempts or the deadline"
            }
        })
    }
}

impl core::error::Error for PolicyError {}

impl RetryPolicy {
    /// Checks that the policy sends at least once and always gives up.
    ///
    /// # Errors
    ///
    /// The first [`PolicyError`] that applies.
    #[inline]
    pub fn validate(&self) -> Result<(), PolicyError> {
        // In whole microseconds, as the exchange runs the schedule (and in u64: far less
        // code on a Cortex-M than `Duration` arithmetic).
        let initial = micros(self.initial_wait);
        let bounded = self.max_attempts.is_some() || self.deadline.is_some();
        if initial == 0 {
            Err(PolicyError::ZeroInitialWait)
        } else if self.initial_wait > self.max_wait {
            Err(PolicyError::InitialExceedsMax)
        } else if self.factor.as_milli() < 1000 {
            Err(PolicyError::FactorBelowOne)
        } else if self.max_attempts == Some(0) {
            Err(PolicyError::ZeroAttempts)
        } else if self.deadline.is_some_and(|d| micros(d) == 0) {
            Err(PolicyError::ZeroDeadline)
        } else if self.factor.as_milli() == 1000 && !bounded {
            Err(PolicyError::Unbounded)
        } else if self.factor.apply_us(initial) <= initial && !bounded {
            // Growth is floor(w × (factor − 1)) µs, which never shrinks as w grows: if the
            // first wait grows, every later one does too, and the schedule ends.
            Err(PolicyError::NoGrowth)
        } else {
            Ok(())
        }
    }

    /// The wait that follows `wait` in the schedule, or `None` once it would exceed
    /// `max_wait` (attempt limits are the caller's to count).
    pub fn next_wait(&self, wait: Duration) -> Option<Duration> {
        self.next_wait_us(micros(wait)).map(Duration::from_micros)
    }

    /// [`next_wait`](Self::next_wait) in whole microseconds.
    pub(crate) fn next_wait_us(&self, us: u64) -> Option<u64> {
        let grown = self.factor.apply_us(us);
        (grown <= micros(self.max_wait)).then_some(grown)
    }

    /// The scheduled waits, one per send, without jitter; a send at or past the overall
    /// deadline is not made, so its wait is not listed (the last wait listed may run past
    /// the deadline: [`give_up_after`](Self::give_up_after) cuts it). In whole
    /// microseconds, the core clock's resolution, as an exchange runs them.
    ///
    /// Endless only for a policy that [`validate`](Self::validate) rejects.
    pub fn waits(&self) -> impl Iterator<Item = Duration> + '_ {
        let mut next =
            (self.initial_wait <= self.max_wait).then_some(whole_micros(self.initial_wait));
        let mut sent = 0u32;
        let mut at = Duration::ZERO;
        let deadline = self.deadline.map(whole_micros);
        core::iter::from_fn(move || {
            let wait = next?;
            if self.max_attempts.is_some_and(|max| sent >= max) || deadline.is_some_and(|d| at >= d)
            {
                return None;
            }
            sent += 1;
            at = at.saturating_add(wait);
            next = self.next_wait(wait);
            Some(wait)
        })
    }

    /// Times of the sends after the first one's, as scheduled (deadline applied).
    pub fn send_times(&self) -> impl Iterator<Item = Duration> + '_ {
        let mut at = Duration::ZERO;
        self.waits().map(move |wait| {
            let send = at;
            at = at.saturating_add(wait);
            send
        })
    }

    /// How long after the first send the exchange gives up without a reply (no jitter).
    pub fn give_up_after(&self) -> Duration {
        let total = self
            .waits()
            .fold(Duration::ZERO, |sum, w| sum.saturating_add(w));
        self.deadline.map_or(total, |d| total.min(whole_micros(d)))
    }
}

/// `d` cut to whole microseconds: the schedule as an exchange runs it on the core's clock,
/// which cannot see a finer part of the first wait or the deadline.
fn whole_micros(d: Duration) -> Duration {
    Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
// Written as users outside the crate must, where the struct is `#[non_exhaustive]`.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn default_sends_at_0_100_300_700_1500_and_gives_up_at_3100() {
        let p = RetryPolicy::default();
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(
            p.waits().collect::<Vec<_>>(),
            [ms(100), ms(200), ms(400), ms(800), ms(1600)]
        );
        assert_eq!(
            p.send_times().collect::<Vec<_>>(),
            [ms(0), ms(100), ms(300), ms(700), ms(1500)]
        );
        assert_eq!(p.give_up_after(), ms(3100));
        assert_eq!(p.next_wait(ms(800)), Some(ms(1600)));
        assert_eq!(p.next_wait(ms(1600)), None);
    }

    #[test]
    fn factors_display_without_trailing_zeros() {
        let table = [
            (1000, "1"),
            (2000, "2"),
            (1500, "1.5"),
            (1250, "1.25"),
            (1050, "1.05"),
            (1005, "1.005"),
            (1999, "1.999"),
            (999, "0.999"),
            (0, "0"),
            (u32::MAX, "4294967.295"),
        ];
        for (milli, text) in table {
            assert_eq!(Factor::from_milli(milli).to_string(), text, "{milli}");
        }
    }

    #[test]
    fn max_attempts_and_deadline_shorten_the_schedule() {
        let mut p = RetryPolicy::default();
        p.max_attempts = Some(3);
        assert_eq!(
            p.send_times().collect::<Vec<_>>(),
            [ms(0), ms(100), ms(300)]
        );
        assert_eq!(p.give_up_after(), ms(700));
        p.max_attempts = None;
        p.deadline = Some(ms(1000));
        assert_eq!(
            p.send_times().collect::<Vec<_>>(),
            [ms(0), ms(100), ms(300), ms(700)]
        );
        assert_eq!(p.give_up_after(), ms(1000));
    }

    #[test]
    fn fractional_factor_is_exact() {
        let mut p = RetryPolicy::default();
        p.factor = Factor::from_milli(1500);
        p.max_wait = ms(400);
        assert_eq!(
            p.waits().collect::<Vec<_>>(),
            [ms(100), ms(150), ms(225), Duration::from_micros(337_500)]
        );
    }

    #[test]
    fn huge_waits_saturate_instead_of_overflowing() {
        let mut p = RetryPolicy::default();
        p.initial_wait = Duration::from_secs(u64::MAX / 4);
        p.max_wait = Duration::MAX;
        p.factor = Factor::integer(u32::MAX);
        p.max_attempts = Some(4);
        assert_eq!(p.waits().count(), 4);
        let _ = p.give_up_after();
    }

    #[test]
    fn rejects_policies_that_never_send_or_never_stop() {
        let base = RetryPolicy::default();
        let with = |f: fn(&mut RetryPolicy)| {
            let mut p = base;
            f(&mut p);
            p.validate()
        };
        assert_eq!(
            with(|p| p.initial_wait = Duration::ZERO),
            Err(PolicyError::ZeroInitialWait)
        );
        assert_eq!(
            with(|p| p.initial_wait = ms(3000)),
            Err(PolicyError::InitialExceedsMax)
        );
        assert_eq!(
            with(|p| p.factor = Factor::from_milli(999)),
            Err(PolicyError::FactorBelowOne)
        );
        assert_eq!(
            with(|p| p.factor = Factor::integer(1)),
            Err(PolicyError::Unbounded)
        );
        assert_eq!(
            with(|p| p.max_attempts = Some(0)),
            Err(PolicyError::ZeroAttempts)
        );
        assert_eq!(
            with(|p| {
                p.factor = Factor::integer(1);
                p.max_attempts = Some(3);
            }),
            Ok(())
        );
    }

    #[test]
    fn rejects_waits_below_the_clock_and_factors_that_round_to_no_growth() {
        let policy = |initial: Duration, milli: u32| {
            let mut p = RetryPolicy::default();
            p.initial_wait = initial;
            p.factor = Factor::from_milli(milli);
            p
        };
        let us = Duration::from_micros;
        assert_eq!(
            policy(Duration::from_nanos(500), 2000).validate(),
            Err(PolicyError::ZeroInitialWait)
        );
        assert_eq!(policy(us(1), 1500).validate(), Err(PolicyError::NoGrowth));
        assert_eq!(policy(us(9), 1100).validate(), Err(PolicyError::NoGrowth));
        // One microsecond of growth is enough: it only ever grows from there.
        assert_eq!(policy(us(10), 1100).validate(), Ok(()));
        assert_eq!(policy(us(2), 1500).validate(), Ok(()));
        // With a limit, a policy that does not grow still ends.
        let mut limited = policy(us(1), 1500);
        limited.deadline = Some(ms(5));
        assert_eq!(limited.validate(), Ok(()));
        assert_eq!(limited.give_up_after(), ms(5));
    }

    /// Found by `fuzz/exchange`: a zero deadline validated, and the exchange then gave up
    /// at its first poll with nothing sent (one slot "unsent" on a stack that never blocked).
    #[test]
    fn rejects_a_deadline_under_the_clock_resolution() {
        for deadline in [Duration::ZERO, Duration::from_nanos(500)] {
            let mut p = RetryPolicy::default();
            p.deadline = Some(deadline);
            assert_eq!(p.validate(), Err(PolicyError::ZeroDeadline), "{deadline:?}");
        }
        let mut p = RetryPolicy::default();
        p.deadline = Some(Duration::from_micros(1));
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.send_times().count(), 1);
        assert_eq!(p.give_up_after(), Duration::from_micros(1));
    }

    #[test]
    fn the_schedule_is_stated_in_whole_microseconds() {
        let mut p = RetryPolicy::default();
        p.initial_wait = Duration::from_nanos(1_500);
        p.deadline = Some(Duration::from_nanos(4_999));
        let us = Duration::from_micros;
        assert_eq!(p.waits().collect::<Vec<_>>(), [us(1), us(2), us(4)]);
        assert_eq!(p.send_times().collect::<Vec<_>>(), [us(0), us(1), us(3)]);
        assert_eq!(p.give_up_after(), us(4));
    }

    #[test]
    fn a_flat_schedule_with_a_deadline_ends_at_the_deadline() {
        let mut p = RetryPolicy::default();
        p.factor = Factor::integer(1);
        p.deadline = Some(ms(1000));
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.give_up_after(), ms(1000));
        assert_eq!(p.send_times().count(), 10);
        assert_eq!(p.send_times().last(), Some(ms(900)));
    }

    #[test]
    #[cfg(feature = "jitter")]
    fn jitter_stays_within_its_bounds() {
        let wait = ms(400);
        for random in [0, 1, u32::MAX / 3, u32::MAX / 2, u32::MAX - 1, u32::MAX] {
            assert_eq!(Jitter::None.apply(wait, random), wait);
            let full = Jitter::Full.apply(wait, random);
            assert!(full <= wait);
            let equal = Jitter::Equal.apply(wait, random);
            assert!(equal >= ms(200) && equal <= wait, "{equal:?}");
        }
        assert_eq!(Jitter::Full.apply(wait, 0), Duration::ZERO);
        assert_eq!(Jitter::Equal.apply(wait, 0), ms(200));
        assert_eq!(
            Jitter::Full.apply(wait, u32::MAX / 2),
            Duration::from_micros(199_999)
        );
    }
}
