//! A [`Device`] wrapper that loses chosen UDP datagrams, so that a firmware can run its
//! client's retry path on purpose.
//!
//! [`FaultyLink`] wraps any smoltcp device (a NIC driver, the [`Loopback`](crate::Loopback),
//! another wrapper) and loses the next `n` IPv4 UDP datagrams that arrive for a chosen
//! port ([`lose_next`](FaultyLink::lose_next)), as a lossy wire would. Everything else
//! passes untouched. It is smoltcp's `phy::FaultInjector` made deterministic: that one
//! drops at random (and copies every received frame into a 1536-byte buffer to judge it);
//! this one judges a frame where the inner device holds it and hands a lost one to the
//! stack as an empty frame, which smoltcp discards. `no_std`, no heap, no copy.
//!
//! Losses happen on the way in: on a loopback that is every datagram sent; on a NIC, the
//! datagrams this host receives (to lose its own requests, lose the replies' port).
//!
//! An optional observer ([`observe`](FaultyLink::observe)) sees every frame in and out,
//! from inside `iface.poll`: for tracing, or to sample the stack depth there.
//!
//! ```
//! use core::net::{Ipv4Addr, SocketAddr};
//! use embedded_nal::{UdpClientStack, UdpFullStack};
//! use smoltcp::iface::{Config, Interface};
//! use smoltcp::phy::Medium;
//! use smoltcp::time::Instant;
//! use smoltcp::wire::{HardwareAddress, IpCidr};
//! use udp_echo_firmware_example::{FaultyLink, Loopback, NalStack, NalStorage};
//!
//! let ip = Ipv4Addr::LOCALHOST;
//! let mut link = FaultyLink::new(Loopback::<4, 1514>::new(Medium::Ip));
//! let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut link, Instant::ZERO);
//! iface.update_ip_addrs(|addrs| addrs.push(IpCidr::new(ip.into(), 8)).unwrap());
//! let mut storage: NalStorage<'_> = NalStorage::new();
//! let mut stack = NalStack::new(&mut storage, ip);
//! let mut socket = stack.socket()?;
//! stack.bind(&mut socket, 6666)?;
//!
//! link.lose_next(6666, 1);
//! for message in [&b"lost"[..], b"kept"] {
//!     stack.send_to(&mut socket, SocketAddr::from((ip, 6666)), message)?;
//!     iface.poll(Instant::ZERO, &mut link, stack.sockets_mut()); // out
//!     iface.poll(Instant::ZERO, &mut link, stack.sockets_mut()); // back in
//! }
//! let mut buf = [0; 8];
//! assert_eq!(stack.receive(&mut socket, &mut buf)?.0, 4);
//! assert_eq!(&buf[..4], b"kept");
//! assert_eq!(stack.receive(&mut socket, &mut buf), Err(nb::Error::WouldBlock));
//! assert_eq!((link.frames(), link.lost()), (2, 1));
//! # Ok::<(), nb::Error<udp_echo_firmware_example::NalError>>(())
//! ```

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium, PacketMeta, TracerDirection};
use smoltcp::time::Instant;
use smoltcp::wire::{IpProtocol, Ipv4Packet, UdpPacket};

/// A device that loses the next datagrams to a port on the way in. See the
/// [module docs](self).
#[derive(Debug)]
pub struct FaultyLink<D> {
    inner: D,
    faults: Faults,
}

/// Called with every frame that crosses the device (see [`FaultyLink::observe`]).
pub type Observer = fn(TracerDirection, &[u8]);

/// What to lose, what was seen, and who watches.
#[derive(Debug)]
struct Faults {
    port: u16,
    left: u32,
    frames: u32,
    lost: u32,
    observer: Option<Observer>,
}

impl<D> FaultyLink<D> {
    /// `inner`, losing nothing until told to. `const`, so it can be built into a `static`.
    pub const fn new(inner: D) -> Self {
        Self {
            inner,
            faults: Faults {
                port: 0,
                left: 0,
                frames: 0,
                lost: 0,
                observer: None,
            },
        }
    }

    /// Calls `observer` with every frame from now on: a received one before it is judged,
    /// a sent one once the stack has written it. (A setter, not a `const` builder: a
    /// function pointer in a `static`'s initial image would move it from `.bss` to `.data`.)
    pub fn observe(&mut self, observer: Observer) {
        self.faults.observer = Some(observer);
    }

    /// Loses the next `n` UDP datagrams to `port` that arrive (replacing any earlier
    /// order).
    pub fn lose_next(&mut self, port: u16, n: u32) {
        self.faults.port = port;
        self.faults.left = n;
    }

    /// Datagrams still to lose.
    pub fn left(&self) -> u32 {
        self.faults.left
    }

    /// Frames received through this device so far, lost ones included.
    pub fn frames(&self) -> u32 {
        self.faults.frames
    }

    /// Datagrams lost on purpose so far.
    pub fn lost(&self) -> u32 {
        self.faults.lost
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device. Frames received from it directly are not judged.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// The wrapped device, unwrapped.
    pub fn into_inner(self) -> D {
        self.inner
    }
}

impl Faults {
    fn observe(&self, direction: TracerDirection, frame: &[u8]) {
        if let Some(observer) = self.observer {
            observer(direction, frame);
        }
    }

    /// Whether to lose `frame`, counting it.
    fn lose(&mut self, frame: &[u8], medium: Medium) -> bool {
        self.observe(TracerDirection::RX, frame);
        self.frames += 1;
        if self.left == 0 || udp_dst_port(frame, medium) != Some(self.port) {
            return false;
        }
        self.left -= 1;
        self.lost += 1;
        true
    }
}

/// The destination port of an unfragmented (or first-fragment) IPv4 UDP packet.
fn udp_dst_port(frame: &[u8], medium: Medium) -> Option<u16> {
    let packet = match medium {
        #[cfg(feature = "ethernet")]
        Medium::Ethernet => {
            use smoltcp::wire::{EthernetFrame, EthernetProtocol};
            let ethernet = EthernetFrame::new_checked(frame).ok()?;
            if ethernet.ethertype() != EthernetProtocol::Ipv4 {
                return None;
            }
            &frame[EthernetFrame::<&[u8]>::header_len()..]
        }
        _ => frame, // `Medium::Ip`: bare IP packets
    };
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    if ip.next_header() != IpProtocol::Udp || ip.frag_offset() != 0 {
        return None;
    }
    Some(UdpPacket::new_checked(ip.payload()).ok()?.dst_port())
}

impl<D: Device> Device for FaultyLink<D> {
    type RxToken<'a>
        = RxToken<'a, D::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<D::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let medium = self.inner.capabilities().medium;
        let (inner, tx) = self.inner.receive(now)?;
        let Faults { observer, .. } = self.faults;
        let rx = RxToken {
            inner,
            faults: &mut self.faults,
            medium,
        };
        Some((
            rx,
            TxToken {
                inner: tx,
                observer,
            },
        ))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        let inner = self.inner.transmit(now)?;
        Some(TxToken {
            inner,
            observer: self.faults.observer,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

/// A received frame, judged when the stack reads it.
#[derive(Debug)]
pub struct RxToken<'a, T> {
    inner: T,
    faults: &'a mut Faults,
    medium: Medium,
}

impl<T: phy::RxToken> phy::RxToken for RxToken<'_, T> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let RxToken {
            inner,
            faults,
            medium,
        } = self;
        // Lost: the stack gets an empty frame, which smoltcp discards unread.
        inner.consume(|frame| {
            f(if faults.lose(frame, medium) {
                &[]
            } else {
                frame
            })
        })
    }

    fn meta(&self) -> PacketMeta {
        self.inner.meta()
    }
}

/// Permission to send one frame: the inner device's, watched by the observer.
#[derive(Debug)]
pub struct TxToken<T> {
    inner: T,
    observer: Option<Observer>,
}

impl<T: phy::TxToken> phy::TxToken for TxToken<T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let TxToken { inner, observer } = self;
        inner.consume(len, |frame| {
            let r = f(frame);
            if let Some(observer) = observer {
                observer(TracerDirection::TX, frame);
            }
            r
        })
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        self.inner.set_meta(meta);
    }
}

// The tests cover both media, so they need the `ethernet` feature (on with `std`).
#[cfg(all(test, feature = "ethernet"))]
mod tests {
    use super::*;
    use crate::{Loopback, NalStack, NalStorage, UdpSocket};
    use core::net::{Ipv4Addr, SocketAddr};
    use embedded_nal::{UdpClientStack, UdpFullStack};
    use smoltcp::iface::{Config, Interface};
    use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};
    use std::vec::Vec;

    const IP: Ipv4Addr = Ipv4Addr::LOCALHOST;

    /// Sends one datagram per entry of `ports` (its payload: the entry's index) from one
    /// socket through `FaultyLink<Loopback>` on `medium`, after `setup`; returns the
    /// payloads each port received, and the link.
    fn send_through(
        medium: Medium,
        ports: &[u16],
        setup: impl FnOnce(&mut FaultyLink<Loopback>),
    ) -> (Vec<(u16, u8)>, FaultyLink<Loopback>) {
        let mut link = FaultyLink::new(Loopback::new(medium));
        let hardware = match medium {
            Medium::Ethernet => EthernetAddress([2, 0, 0, 0, 0, 1]).into(),
            _ => HardwareAddress::Ip,
        };
        let mut iface = Interface::new(Config::new(hardware), &mut link, Instant::ZERO);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IP.into(), 8)).unwrap());
        let mut storage: NalStorage<'_, 4, 8> = NalStorage::new();
        let mut stack = NalStack::new(&mut storage, IP);
        let mut receivers: Vec<(u16, UdpSocket)> = Vec::new();
        for &port in ports {
            if receivers.iter().all(|(p, _)| *p != port) {
                let mut socket = stack.socket().unwrap();
                stack.bind(&mut socket, port).unwrap();
                receivers.push((port, socket));
            }
        }
        let mut tx = stack.socket().unwrap();
        setup(&mut link);
        for (i, &port) in ports.iter().enumerate() {
            stack
                .send_to(&mut tx, SocketAddr::from((IP, port)), &[i as u8])
                .unwrap();
            // Ethernet needs extra rounds: ARP request and reply to itself first.
            for ms in 0..4 {
                iface.poll(Instant::from_millis(ms), &mut link, stack.sockets_mut());
            }
        }
        let mut got = Vec::new();
        for (port, socket) in &mut receivers {
            let mut buf = [0; 4];
            while let Ok((1, _)) = stack.receive(socket, &mut buf) {
                got.push((*port, buf[0]));
            }
        }
        got.sort_by_key(|&(_, i)| i);
        (got, link)
    }

    #[test]
    fn loses_the_next_n_datagrams_to_the_port_and_nothing_else() {
        for medium in [Medium::Ip, Medium::Ethernet] {
            let ports = [7000, 7001, 7000, 7000, 7001, 7000];
            let (got, link) = send_through(medium, &ports, |link| link.lose_next(7000, 2));
            assert_eq!(
                got,
                [(7001, 1), (7000, 3), (7001, 4), (7000, 5)],
                "{medium:?}"
            );
            assert_eq!((link.lost(), link.left()), (2, 0), "{medium:?}");
        }
    }

    #[test]
    fn passes_everything_until_told_to_lose() {
        let (got, link) = send_through(Medium::Ip, &[7000, 7000], |_| {});
        assert_eq!(got, [(7000, 0), (7000, 1)]);
        assert_eq!((link.frames(), link.lost()), (2, 0));
    }

    #[test]
    fn counts_every_frame_it_hands_over_arp_included() {
        let (_, link) = send_through(Medium::Ethernet, &[7000], |link| link.lose_next(9, 1));
        // ARP request and reply (to itself), then the datagram; nothing to port 9.
        assert_eq!((link.frames(), link.lost(), link.left()), (3, 0, 1));
    }

    #[test]
    fn the_observer_sees_every_frame_both_ways_lost_ones_too() {
        use core::sync::atomic::{AtomicU32, Ordering};
        static OUT: AtomicU32 = AtomicU32::new(0);
        static IN: AtomicU32 = AtomicU32::new(0);
        let (got, _) = send_through(Medium::Ip, &[7000, 7000, 7000], |link| {
            link.lose_next(7000, 1);
            link.observe(|direction, frame| {
                assert_eq!(udp_dst_port(frame, Medium::Ip), Some(7000));
                match direction {
                    TracerDirection::TX => OUT.fetch_add(1, Ordering::Relaxed),
                    TracerDirection::RX => IN.fetch_add(1, Ordering::Relaxed),
                };
            });
        });
        assert_eq!(got.len(), 2);
        assert_eq!(
            (OUT.load(Ordering::Relaxed), IN.load(Ordering::Relaxed)),
            (3, 3)
        );
    }

    #[test]
    fn finds_the_port_only_in_ipv4_udp() {
        let mut udp = [0u8; 28];
        let mut ip = Ipv4Packet::new_unchecked(&mut udp[..]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len(28);
        ip.set_next_header(IpProtocol::Udp);
        UdpPacket::new_unchecked(&mut udp[20..]).set_dst_port(6666);
        UdpPacket::new_unchecked(&mut udp[20..]).set_len(8);
        assert_eq!(udp_dst_port(&udp, Medium::Ip), Some(6666));
        let mut tcp = udp;
        Ipv4Packet::new_unchecked(&mut tcp[..]).set_next_header(IpProtocol::Tcp);
        assert_eq!(udp_dst_port(&tcp, Medium::Ip), None);
        let mut fragment = udp;
        Ipv4Packet::new_unchecked(&mut fragment[..]).set_frag_offset(8);
        assert_eq!(udp_dst_port(&fragment, Medium::Ip), None);
        assert_eq!(udp_dst_port(&udp[..27], Medium::Ip), None);
        assert_eq!(udp_dst_port(&[], Medium::Ip), None);
    }
}
