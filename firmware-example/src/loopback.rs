//! A loopback [`Device`] without a heap.
//!
//! smoltcp's own `phy::Loopback` needs the `alloc` feature; this one keeps up to `N` frames
//! of at most `MTU` bytes in a `heapless::Deque`, so it fits in a `static` or on the stack of
//! a bare-metal program. The medium is chosen at construction, like `phy::Loopback::new`:
//! [`Medium::Ip`] is the simplest (no ARP, no MAC); `Medium::Ethernet` exercises ARP
//! and the broadcast MAC too. With Ethernet, `MTU` counts the 14-byte header.

use heapless::{Deque, Vec};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Frames sent are received back in order. A frame sent while `N` are queued is dropped.
#[derive(Debug)]
pub struct Loopback<const N: usize = 4, const MTU: usize = 1514> {
    queue: Deque<Vec<u8, MTU>, N>,
    medium: Medium,
    peak: usize,
}

impl<const N: usize, const MTU: usize> Loopback<N, MTU> {
    /// An empty loopback device for `medium`.
    pub const fn new(medium: Medium) -> Self {
        Self {
            queue: Deque::new(),
            medium,
            peak: 0,
        }
    }

    /// Frames waiting to be received. On hardware this is a pending RX interrupt: a main
    /// loop must not sleep while it is nonzero.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no frame waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The most frames queued at once so far: how much of `N` a program needed.
    pub fn peak(&self) -> usize {
        self.peak
    }
}

impl<const N: usize, const MTU: usize> Device for Loopback<N, MTU> {
    type RxToken<'a> = RxToken<MTU>;
    type TxToken<'a> = TxToken<'a, N, MTU>;

    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self.queue.pop_front()?;
        Some((RxToken(frame), self.tx_token()))
    }

    fn transmit(&mut self, _: Instant) -> Option<Self::TxToken<'_>> {
        Some(self.tx_token())
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

impl<const N: usize, const MTU: usize> Loopback<N, MTU> {
    fn tx_token(&mut self) -> TxToken<'_, N, MTU> {
        TxToken {
            queue: &mut self.queue,
            peak: &mut self.peak,
        }
    }
}

/// Permission to put one frame at the back of the queue.
#[derive(Debug)]
pub struct TxToken<'a, const N: usize, const MTU: usize> {
    queue: &'a mut Deque<Vec<u8, MTU>, N>,
    peak: &'a mut usize,
}

impl<const N: usize, const MTU: usize> phy::TxToken for TxToken<'_, N, MTU> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let (frame, r) = build_frame(len, f);
        // A full queue is a full NIC ring: the frame is lost, as on real hardware.
        let _ = self.queue.push_back(frame);
        *self.peak = (*self.peak).max(self.queue.len());
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
