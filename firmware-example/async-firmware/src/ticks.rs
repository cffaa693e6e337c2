//! The time driver's arithmetic, apart from the registers so that it runs on the host:
//! a 32-bit down-counter extended to 64 bits, and the alarm's delay.
//!
//! The CMSDK APB timer counts down from its RELOAD value at 25 MHz; as QEMU models it, its
//! interrupt flag is set when the count goes from 1 to 0, the count holds 0 for one cycle
//! and then reloads. With RELOAD = `u32::MAX` a period is 2³² counts (171.8 s) and the
//! counts elapsed in it are `u32::MAX - VALUE`.

/// Timer counts per second (the MPS2 AN385/AN386 peripheral clock).
pub const COUNTS_HZ: u64 = 25_000_000;

/// Timer counts per embassy-time tick (1 MHz ticks).
pub const COUNTS_PER_TICK: u64 = COUNTS_HZ / 1_000_000;

/// Counts since the clock started, from the wraps the interrupt handler has counted
/// (`periods`), whether a wrap is flagged but not yet counted (`wrapped`: the timer's
/// interrupt status) and VALUE read *before* that flag.
///
/// Read that way, inside a critical section (so the handler cannot count a wrap in
/// between), it is monotonic: without the flag, VALUE was read before any uncounted wrap
/// and belongs to period `periods`; with it, a VALUE above half the range was read after
/// the reload (the next period), one below it just before the wrap or while the count
/// held 0 (this period; the handler runs long before half a period, 86 s, passes).
pub const fn extend(periods: u32, wrapped: bool, value: u32) -> u64 {
    let next = wrapped && value > u32::MAX / 2;
    let periods = periods as u64 + next as u64;
    periods << 32 | (u32::MAX - value) as u64
}

/// When the alarm timer should fire for a wake at tick `at`, the clock being at `now`
/// counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    /// Nothing to wait for (`at` is `u64::MAX`, the timer queue's "no timer"): stop it.
    Never,
    /// `at` has come: wake now instead (the timer queue is asked again).
    Due,
    /// In this many counts (at least 1), at most 2³² − 1: a later `at` fires early, and
    /// the queue sets the alarm again for what is left.
    In(u32),
}

/// The alarm for tick `at` with the clock at `now` counts.
pub const fn alarm(now: u64, at: u64) -> Alarm {
    if at == u64::MAX {
        return Alarm::Never;
    }
    let at = at.saturating_mul(COUNTS_PER_TICK);
    if at <= now {
        return Alarm::Due;
    }
    let delay = at - now;
    Alarm::In(if delay > u32::MAX as u64 {
        u32::MAX
    } else {
        delay as u32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_two_to_the_32_counts_from_reload_to_zero() {
        assert_eq!(extend(0, false, u32::MAX), 0);
        assert_eq!(extend(0, false, u32::MAX - 25), 25);
        assert_eq!(extend(0, false, 0), u64::from(u32::MAX));
        assert_eq!(extend(3, false, u32::MAX), 3 << 32);
    }

    #[test]
    fn the_count_holding_zero_with_the_flag_up_is_still_the_old_period() {
        // The flag rises as the count reaches 0; the reload comes one count later.
        assert_eq!(extend(0, true, 0), u64::from(u32::MAX));
        assert_eq!(extend(0, true, 1), u64::from(u32::MAX) - 1);
    }

    #[test]
    fn after_the_reload_an_uncounted_wrap_counts_as_the_next_period() {
        assert_eq!(extend(0, true, u32::MAX), 1 << 32);
        assert_eq!(extend(0, true, u32::MAX - 1000), (1 << 32) + 1000);
        // Once the handler has counted it, the same VALUE reads the same.
        assert_eq!(extend(1, false, u32::MAX - 1000), (1 << 32) + 1000);
    }

    #[test]
    fn readings_across_a_wrap_never_go_backwards() {
        // (periods counted, flag, VALUE) in the order a reader can see them.
        let seen = [
            (7, false, 2),
            (7, false, 1),
            (7, true, 0),
            (7, true, u32::MAX),
            (7, true, u32::MAX - 3),
            (8, false, u32::MAX - 4),
        ];
        let times: Vec<u64> = seen.iter().map(|&(p, w, v)| extend(p, w, v)).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    }

    #[test]
    fn an_alarm_is_the_distance_in_counts_from_now() {
        assert_eq!(alarm(0, 1), Alarm::In(25));
        assert_eq!(alarm(1000, 100), Alarm::In(1500));
        assert_eq!(alarm(1001, 40), Alarm::Due, "a tick already begun has come");
        assert_eq!(alarm(2500, 100), Alarm::Due);
        assert_eq!(alarm(7, u64::MAX), Alarm::Never);
    }

    #[test]
    fn a_far_alarm_fires_early_at_the_longest_delay_and_huge_ticks_saturate() {
        let far = (u64::from(u32::MAX) + 1) * 2;
        assert_eq!(alarm(0, far), Alarm::In(u32::MAX));
        assert_eq!(alarm(0, u64::MAX - 1), Alarm::In(u32::MAX));
    }
}
