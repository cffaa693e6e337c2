//! Time between smoltcp and the core, and the one rule of every main loop here:
//! poll the interface, drive the core, then sleep until the earlier of the interface's
//! next timer and the driver's [`Wake`] (`iface_wake(..).min(wake)`), or until a frame
//! arrives.

use smoltcp::iface::{Interface, SocketSet};
use smoltcp::time::Instant as NetInstant;
use udp_echo_core::{Instant, Wake};

/// smoltcp's instant as the core's (times before the epoch clamp to zero).
pub fn to_core(t: NetInstant) -> Instant {
    Instant::from_micros(u64::try_from(t.total_micros()).unwrap_or(0))
}

/// The core's instant as smoltcp's.
pub fn to_net(t: Instant) -> NetInstant {
    NetInstant::from_micros(i64::try_from(t.as_micros()).unwrap_or(i64::MAX))
}

/// The interface's own next timer (`Interface::poll_at`: ARP, a queued datagram, …) as a
/// [`Wake`]: [`Wake::OnDatagram`] when it has none, so only a frame can wake it.
pub fn iface_wake(iface: &mut Interface, now: Instant, sockets: &SocketSet<'_>) -> Wake {
    Wake::from(iface.poll_at(to_net(now), sockets).map(to_core))
}

/// A free-running 32-bit hardware counter (such as the LAN9118's 25 MHz FREE_RUN) extended
/// to 64 bits: each reading is compared with the previous one, and a smaller value means
/// the counter wrapped. Correct as long as it is read at least once per wrap period
/// (171.8 s at 25 MHz), which any main loop that wakes on a timer does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WrapCounter {
    last: u32,
    wraps: u32,
}

impl WrapCounter {
    /// A counter whose first reading is taken as no wrap yet.
    pub const fn new() -> Self {
        Self { last: 0, wraps: 0 }
    }

    /// The 64-bit count for `raw`, the counter's current value.
    pub fn extend(&mut self, raw: u32) -> u64 {
        if raw < self.last {
            self.wraps = self.wraps.wrapping_add(1);
        }
        self.last = raw;
        u64::from(self.wraps) << 32 | u64::from(raw)
    }
}

/// `ticks` of a `hz` counter as the core's instant (µs; `hz` ≥ 1 MHz loses nothing that
/// matters, sub-µs remainders are dropped).
pub fn from_ticks(ticks: u64, hz: u32) -> Instant {
    let hz = u64::from(hz.max(1));
    let micros = ticks / hz * 1_000_000 + ticks % hz * 1_000_000 / hz;
    Instant::from_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Loopback, NalStack, NalStorage};
    use core::net::Ipv4Addr;
    use embedded_nal::{UdpClientStack, UdpFullStack};
    use smoltcp::iface::Config;
    use smoltcp::phy::Medium;
    use smoltcp::wire::{HardwareAddress, IpCidr};

    #[test]
    fn wrap_counter_carries_into_the_high_word() {
        let mut c = WrapCounter::new();
        assert_eq!(c.extend(5), 5);
        assert_eq!(c.extend(u32::MAX), u64::from(u32::MAX));
        assert_eq!(c.extend(3), (1 << 32) + 3);
        assert_eq!(c.extend(3), (1 << 32) + 3, "same reading, no wrap");
        assert_eq!(c.extend(2), (2 << 32) + 2);
    }

    #[test]
    fn ticks_become_microseconds() {
        const HZ: u32 = 25_000_000;
        assert_eq!(from_ticks(25, HZ), Instant::from_micros(1));
        assert_eq!(from_ticks(24, HZ), Instant::ZERO);
        // One wrap of the 25 MHz counter: 171.798691 s.
        assert_eq!(from_ticks(1 << 32, HZ), Instant::from_micros(171_798_691));
        // No overflow after years of uptime.
        let ten_years = 25_000_000 * 3600 * 24 * 365 * 10;
        assert_eq!(
            from_ticks(ten_years, HZ),
            Instant::from_micros(3600 * 24 * 365 * 10 * 1_000_000)
        );
    }

    #[test]
    fn converts_both_ways_and_clamps_before_the_epoch() {
        let t = Instant::from_micros(3_100_000);
        assert_eq!(to_core(to_net(t)), t);
        assert_eq!(to_core(NetInstant::from_micros(-5)), Instant::ZERO);
    }

    #[test]
    fn an_idle_interface_waits_for_a_frame_and_a_queued_datagram_wakes_it_now() {
        let ip = Ipv4Addr::LOCALHOST;
        let mut device: Loopback = Loopback::new(Medium::Ip);
        let mut iface = Interface::new(
            Config::new(HardwareAddress::Ip),
            &mut device,
            NetInstant::ZERO,
        );
        iface.update_ip_addrs(|a| a.push(IpCidr::new(ip.into(), 8)).unwrap());
        let mut storage: NalStorage<'_> = NalStorage::new();
        let mut stack = NalStack::new(&mut storage, ip);
        let now = Instant::from_millis(1000);
        assert_eq!(
            iface_wake(&mut iface, now, stack.sockets()),
            Wake::OnDatagram
        );

        let mut socket = stack.socket().unwrap();
        stack.send_to(&mut socket, (ip, 7).into(), b"x").unwrap();
        let wake = iface_wake(&mut iface, now, stack.sockets());
        assert!(wake.deadline(now).is_some_and(|at| at <= now), "{wake:?}");
        // The driver's later deadline loses to it; an earlier one would win.
        let driver = Wake::At(Instant::from_millis(1100));
        assert_eq!(driver.min(wake), wake);
    }
}
