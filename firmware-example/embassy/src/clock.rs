//! The core's [`Clock`] on embassy-time.

use core::future::Future;

use embassy_time::{Instant as EmbassyInstant, Timer};
use udp_echo_core::Instant;
use udp_echo_core::asynch::Clock;

/// The core's clock on embassy-time: `now` is [`embassy_time::Instant::now`] in
/// microseconds, `sleep_until` a [`Timer::at`]. Needs an embassy-time driver in the
/// firmware (exactly one per binary; `std` on a host).
///
/// An instant beyond what the tick rate can express sleeps
/// until [`embassy_time::Instant::MAX`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EmbassyClock;

impl Clock for EmbassyClock {
    fn now(&self) -> Instant {
        Instant::from_micros(EmbassyInstant::now().as_micros())
    }

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> {
        let at = EmbassyInstant::try_from_micros(at.as_micros()).unwrap_or(EmbassyInstant::MAX);
        Timer::at(at)
    }
}
