//! Time as the caller tells it: the core owns no clock.
//!
//! [`Instant`] counts microseconds from an epoch the caller picks (boot, process start, a
//! test's virtual zero). Every state machine takes `now: Instant` and requires it never to
//! go backwards; durations are [`core::time::Duration`]. Arithmetic saturates.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
use core::time::Duration;

/// A point in time, in microseconds since a caller-chosen epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    micros: u64,
}

impl Instant {
    /// The epoch itself.
    pub const ZERO: Instant = Instant { micros: 0 };

    /// An instant `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Instant { micros }
    }

    /// An instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Instant {
            micros: millis.saturating_mul(1000),
        }
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.micros
    }

    /// Whole milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.micros / 1000
    }

    /// Time from `earlier` to `self`, or zero if `earlier` is later.
    // Not inlined: `Duration::from_micros` divides a u64, a library call on 32-bit targets
    // that would otherwise be set up again at every subtraction.
    #[inline(never)]
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.micros.saturating_sub(earlier.micros))
    }

    /// `self + d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Instant {
        Instant {
            micros: self.micros.saturating_add(micros(d)),
        }
    }
}

/// Whole microseconds of `d`, saturating. In `u64`: `Duration::as_micros` is `u128`,
/// whose arithmetic costs a Cortex-M kilobytes of flash.
pub(crate) fn micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = self.saturating_add(d);
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

/// `1.234s` style, like smoltcp's `Instant`.
impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:03}s",
            self.micros / 1_000_000,
            (self.micros / 1000) % 1000
        )
    }
}

/// `1.234s`, as `Display` shows it.
#[cfg(feature = "defmt")]
impl defmt::Format for Instant {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "{}.{=u64:03}s",
            self.micros / 1_000_000,
            (self.micros / 1000) % 1000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let far = Instant::from_micros(u64::MAX - 1);
        assert_eq!((far + Duration::from_secs(1)).as_micros(), u64::MAX);
        assert_eq!(Instant::ZERO - far, Duration::ZERO);
        assert_eq!(Instant::from_millis(u64::MAX).as_micros(), u64::MAX);
    }

    #[test]
    fn displays_seconds_with_milliseconds() {
        assert_eq!(Instant::from_millis(3100).to_string(), "3.100s");
        assert_eq!(Instant::from_micros(1_234_567).to_string(), "1.234s");
    }
}
