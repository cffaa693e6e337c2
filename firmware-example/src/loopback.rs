//! A loopback [`Device`] without a heap.
//!
//! smoltcp's own `phy::Loopback` needs the `alloc` feature; this one keeps up to `N` frames
//! of at most `MTU` bytes in a `heapless::Deque`, so it fits in a `static` or on the stack of
//! a bare-metal program. The medium is chosen at construction, like `phy::Loopback::new`:
//! [`Medium::Ip`] is the simplest (no ARP, no MAC); [`Medium::Ethernet`] exercises ARP
//! and the broadcast MAC too. With Ethernet, `MTU` counts the 14-byte header.

use heapless::{Deque, Vec};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Frames sent are received back in order. A frame sent while `N` are queued is dropped.
#[derive(Debug)]
pub struct Loopback<const N: usize = 4, const MTU: usize = 1514> {
    queue: Deque<Vec<u8, MTU>, N>,
    medium: Medium,
}

impl<const N: usize, const MTU: usize> Loopback<N, MTU> {
    /// An empty loopback device for `medium`.
    pub const fn new(medium: Medium) -> Self {
        Self {
            queue: Deque::new(),
            medium,
        }
    }
}

impl<const N: usize, const MTU: usize> Device for Loopback<N, MTU> {
    type RxToken<'a> = RxToken<MTU>;
    type TxToken<'a> = TxToken<'a, N, MTU>;

    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self.queue.pop_front()?;
        Some((RxToken(frame), TxToken(&mut self.queue)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Self::TxToken<'_>> {
        Some(TxToken(&mut self.queue))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = self.medium;
        caps.max_transmission_unit = MTU;
        caps
    }
}

/// A received frame, owned (it has left the queue).
#[derive(Debug)]
pub struct RxToken<const MTU: usize>(pub(crate) Vec<u8, MTU>);

impl<const MTU: usize> phy::RxToken for RxToken<MTU> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// Permission to put one frame at the back of the queue.
#[derive(Debug)]
pub struct TxToken<'a, const N: usize, const MTU: usize>(&'a mut Deque<Vec<u8, MTU>, N>);

impl<const N: usize, const MTU: usize> phy::TxToken for TxToken<'_, N, MTU> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let (frame, r) = build_frame(len, f);
        // A full queue is a full NIC ring: the frame is lost, as on real hardware.
        let _ = self.0.push_back(frame);
        r
    }
}

/// Lets smoltcp write a `len`-byte frame into a fresh buffer.
///
/// smoltcp drops packets larger than the advertised MTU before it takes a token, so
/// `len <= MTU` and the resize cannot fail (the `min` only keeps this panic-free).
pub(crate) fn build_frame<const MTU: usize, R>(
    len: usize,
    f: impl FnOnce(&mut [u8]) -> R,
) -> (Vec<u8, MTU>, R) {
    let mut frame = Vec::new();
    let _ = frame.resize(len.min(MTU), 0);
    let r = f(&mut frame);
    (frame, r)
}

// The tests cover both media, so they need the `ethernet` feature (on with `std`).
#[cfg(all(test, feature = "ethernet"))]
mod tests {
    use super::*;
    use crate::{NalStack, NalStorage};
    use core::net::{Ipv4Addr, SocketAddr};
    use embedded_nal::{UdpClientStack, UdpFullStack};
    use smoltcp::iface::{Config, Interface};
    use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

    #[test]
    fn either_medium_turns_a_datagram_around() {
        let ip = Ipv4Addr::LOCALHOST;
        let to = SocketAddr::from((ip, 7000));
        for (medium, hardware) in [
            (Medium::Ip, HardwareAddress::Ip),
            (Medium::Ethernet, EthernetAddress([2, 0, 0, 0, 0, 1]).into()),
        ] {
            let mut device: Loopback = Loopback::new(medium);
            let mut iface = Interface::new(Config::new(hardware), &mut device, Instant::ZERO);
            iface.update_ip_addrs(|a| a.push(IpCidr::new(ip.into(), 8)).unwrap());
            let mut storage: NalStorage<'_> = NalStorage::new();
            let mut stack = NalStack::new(&mut storage, ip);
            let mut socket = stack.socket().unwrap();
            stack.bind(&mut socket, 7000).unwrap();
            stack.send_to(&mut socket, to, b"echo").unwrap();
            // Ethernet needs extra rounds: ARP request and reply to itself first.
            for ms in 0..4 {
                iface.poll(Instant::from_millis(ms), &mut device, stack.sockets_mut());
            }
            let mut buf = [0; 8];
            assert_eq!(
                stack.receive(&mut socket, &mut buf),
                Ok((4, to)),
                "{medium:?}"
            );
        }
    }
}
