//! A monotonic clock in the core's terms.
//!
//! The core owns no clock: every call takes a [`udp_echo_core::Instant`], microseconds since
//! an epoch the caller picks. [`Clock`] picks "when it was created" and converts both ways,
//! so a shell can turn the core's deadlines into `poll(2)` timeouts.

use std::time::Duration;

/// Further than any deadline the core can mean; keeps [`Clock::to_std`] from overflowing.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Monotonic time as [`udp_echo_core::Instant`]s counted from the clock's creation.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: std::time::Instant,
}

impl Clock {
    /// A clock whose epoch (`Instant::ZERO`) is now.
    pub fn new() -> Self {
        Clock {
            epoch: std::time::Instant::now(),
        }
    }

    /// Microseconds since the epoch.
    pub fn now(&self) -> udp_echo_core::Instant {
        let micros = self.epoch.elapsed().as_micros();
        udp_echo_core::Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// The `std` instant that `instant` stands for; instants more than a century after the
    /// epoch (the core's "never") map to a century after it.
    pub fn to_std(&self, instant: udp_echo_core::Instant) -> std::time::Instant {
        self.epoch + Duration::from_micros(instant.as_micros()).min(FAR_FUTURE)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_starts_near_zero_and_never_goes_back() {
        let clock = Clock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(a <= b);
        assert!(a.as_micros() < 1_000_000);
    }

    #[test]
    fn to_std_inverts_now() {
        let clock = Clock::new();
        let at = udp_echo_core::Instant::from_millis(1500);
        assert_eq!(
            clock.to_std(at) - clock.to_std(udp_echo_core::Instant::ZERO),
            Duration::from_millis(1500)
        );
        let now = clock.now();
        assert!(clock.to_std(now) <= std::time::Instant::now());
    }

    #[test]
    fn to_std_saturates_instead_of_panicking() {
        let clock = Clock::new();
        let never = udp_echo_core::Instant::from_micros(u64::MAX);
        assert!(clock.to_std(never) > std::time::Instant::now() + Duration::from_secs(3600));
    }
}
