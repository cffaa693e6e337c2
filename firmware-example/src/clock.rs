//! Time between smoltcp and the core, and the one rule of every main loop here:
//! poll the interface, drive the core, then sleep until the earlier of smoltcp's next
//! timer and the driver's deadline (or until a frame arrives).

use smoltcp::time::{Duration as NetDuration, Instant as NetInstant};
use udp_echo_core::{Instant, Wake};

/// smoltcp's instant as the core's (times before the epoch clamp to zero).
pub fn to_core(t: NetInstant) -> Instant {
    Instant::from_micros(u64::try_from(t.total_micros()).unwrap_or(0))
}

/// The core's instant as smoltcp's.
pub fn to_net(t: Instant) -> NetInstant {
    NetInstant::from_micros(i64::try_from(t.as_micros()).unwrap_or(i64::MAX))
}

/// When the main loop must run again: the earlier of the interface's next timer
/// (`iface.poll_delay(now, sockets)`) and the driver's [`Wake`]. `None`: only when a
/// frame arrives.
pub fn next_wake(now: Instant, iface_delay: Option<NetDuration>, wake: Wake) -> Option<Instant> {
    let iface_at = iface_delay
        .map(|d| now.saturating_add(core::time::Duration::from_micros(d.total_micros())));
    match (iface_at, wake.at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways_and_clamps_before_the_epoch() {
        let t = Instant::from_micros(3_100_000);
        assert_eq!(to_core(to_net(t)), t);
        assert_eq!(to_core(NetInstant::from_micros(-5)), Instant::ZERO);
    }

    #[test]
    fn wakes_at_the_earlier_of_interface_and_driver() {
        let now = Instant::from_millis(1000);
        let driver = Wake::at(Instant::from_millis(1100));
        assert_eq!(
            next_wake(now, Some(NetDuration::from_millis(30)), driver),
            Some(Instant::from_millis(1030))
        );
        assert_eq!(
            next_wake(now, Some(NetDuration::from_millis(300)), driver),
            Some(Instant::from_millis(1100))
        );
        assert_eq!(
            next_wake(now, None, driver),
            Some(Instant::from_millis(1100))
        );
        assert_eq!(next_wake(now, None, Wake::on_datagram()), None);
    }
}
