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
