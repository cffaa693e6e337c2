//! Two smoltcp interfaces on an in-memory wire, on virtual time, with seeded faults.
//!
//! Nothing here reads a clock: the test owns `now` and moves it forward, typically to the
//! earlier of its driver's [`Wake`] and [`Pair::next_event`] (the interfaces' `poll_at`
//! and the wire's [`next_due`](Link::next_due)), so a 3-second retry schedule runs in
//! microseconds and every run with the same seed is identical. Time is the core's
//! ([`Instant`], [`Duration`]), as for the drivers under test. `no_std`, no heap.
//!
//! ```
//! use embedded_nal::{UdpClientStack, UdpFullStack};
//! use smoltcp::phy::Medium;
//! use udp_echo_firmware_example::sim::{Faults, Pair, ADDR_B};
//!
//! let mut storage = Default::default();
//! let mut net = Pair::new(&mut storage, Medium::Ip, Faults::NONE, 7);
//! let mut rx = net.b.stack.socket()?;
//! net.b.stack.bind(&mut rx, 6666)?;
//! let mut tx = net.a.stack.socket()?;
//! net.a.stack.send_to(&mut tx, (ADDR_B, 6666).into(), b"ping")?;
//! net.poll();
//! let mut buf = [0; 16];
//! assert_eq!(net.b.stack.receive(&mut rx, &mut buf)?.0, 4);
//! assert_eq!(net.link.a_to_b.counters().delivered, 1);
//! # Ok::<(), nb::Error<udp_echo_firmware_example::NalError>>(())
//! ```
//!
//! Faults act per direction, in this order, each decided by its own die roll: drop;
//! corrupt (flip one byte: smoltcp then drops the packet on its IP/UDP checksum or, on
//! Ethernet, on the header, which is what a real receiver does); reorder (hold the packet
//! back and release it right after the next one sent in that direction, so a held packet
//! with no successor stays on the wire); duplicate; delay (`delay_min` plus up to
//! `delay_jitter`, drawn per copy, so jitter reorders too).

use core::fmt;
use core::net::Ipv4Addr;
use core::time::Duration;

use heapless::Vec;
use smoltcp::iface::{Config, Interface, PollResult};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant as NetInstant;
use smoltcp::wire::{HardwareAddress, IpCidr};
use udp_echo_core::{Instant, Wake};

use crate::clock::{to_core, to_net};
use crate::loopback::{RxToken, build_frame};
use crate::nal::{NalStack, NalStorage};

/// Largest frame on the wire: an Ethernet frame with a 1500-byte IP packet.
pub const MTU: usize = 1514;
/// Packets one direction can hold in flight; more are lost (counted as `overflowed`).
pub const QUEUE: usize = 32;
/// Host A's address.
pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// Host B's address.
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The link's prefix length: both hosts are on 10.0.0.0/24.
pub const PREFIX_LEN: u8 = 24;
/// The link's subnet broadcast address.
pub const BROADCAST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 255);

type Frame = Vec<u8, MTU>;

/// What one direction of the wire does to packets. Probabilities are per mille
/// (0 = never, 1000 = always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// Chance that a packet is lost.
    pub drop: u16,
    /// Chance that a packet arrives twice.
    pub duplicate: u16,
    /// Chance that a packet is held back until the next one has been sent.
    pub reorder: u16,
    /// Chance that one byte of the packet is flipped.
    pub corrupt: u16,
    /// Delay every packet has.
    pub delay_min: Duration,
    /// Largest extra delay, drawn uniformly per packet.
    pub delay_jitter: Duration,
}

impl Faults {
    /// A perfect wire: no loss, no delay.
    pub const NONE: Self = Self {
        drop: 0,
        duplicate: 0,
        reorder: 0,
        corrupt: 0,
        delay_min: Duration::ZERO,
        delay_jitter: Duration::ZERO,
    };
}

impl Default for Faults {
    fn default() -> Self {
        Self::NONE
    }
}

/// What one direction of the wire did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets handed to the wire by the sending interface.
    pub sent: u32,
    /// Packets handed to the receiving interface (duplicates included).
    pub delivered: u32,
    /// Packets lost by the `drop` fault.
    pub dropped: u32,
    /// Extra copies made by the `duplicate` fault.
    pub duplicated: u32,
    /// Packets held back by the `reorder` fault.
    pub reordered: u32,
    /// Packets with a flipped byte.
    pub corrupted: u32,
    /// Packets lost because [`QUEUE`] packets were already in flight.
    pub overflowed: u32,
}

/// xorshift64, seeded through splitmix64 so that nearby seeds give unrelated streams.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1) // xorshift must not start at zero
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (the modulo bias is negligible for the small `n` used here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, per_mille: u16) -> bool {
        self.below(1000) < u64::from(per_mille)
    }
}

#[derive(Debug)]
struct InFlight {
    due: Instant,
    seq: u64,
    frame: Frame,
}

/// One direction of the link: packets in flight, the faults applied to them, counters.
#[derive(Debug)]
pub struct Wire {
    /// The faults applied to packets sent from now on.
    pub faults: Faults,
    rng: Rng,
    in_flight: Vec<InFlight, QUEUE>,
    held: Option<Frame>,
    seq: u64,
    counters: Counters,
}

impl Wire {
    /// An empty wire whose fault dice are seeded with `seed`.
    pub fn new(faults: Faults, seed: u64) -> Self {
        Self {
            faults,
            rng: Rng::new(seed),
            in_flight: Vec::new(),
            held: None,
            seq: 0,
            counters: Counters::default(),
        }
    }

    /// What the wire has done so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// When the next packet becomes deliverable (it may already be in the past), or `None`
    /// if nothing is in flight. A packet held for reordering is not due until another is sent.
    pub fn next_due(&self) -> Option<Instant> {
        self.in_flight.iter().map(|p| p.due).min()
    }

    fn send(&mut self, now: Instant, mut frame: Frame) {
        let f = self.faults;
        self.counters.sent += 1;
        if self.rng.chance(f.drop) {
            self.counters.dropped += 1;
            return;
        }
        if self.rng.chance(f.corrupt) && !frame.is_empty() {
            let at = self.rng.below(frame.len() as u64) as usize;
            frame[at] ^= (self.rng.next() as u8) | 1; // `| 1`: always change the byte
            self.counters.corrupted += 1;
        }
        if self.rng.chance(f.reorder) && self.held.is_none() {
            self.held = Some(frame);
            self.counters.reordered += 1;
            return;
        }
        if self.rng.chance(f.duplicate) {
            let due = self.due(now);
            self.enqueue(due, frame.clone());
            self.counters.duplicated += 1;
        }
        let due = self.due(now);
        self.enqueue(due, frame);
        if let Some(held) = self.held.take() {
            // Same due time, later sequence number: it arrives right behind this one.
            self.enqueue(due, held);
        }
    }

    fn due(&mut self, now: Instant) -> Instant {
        let jitter_max = u64::try_from(self.faults.delay_jitter.as_micros()).unwrap_or(u64::MAX);
        let jitter = self.rng.below(jitter_max.saturating_add(1));
        now + self.faults.delay_min + Duration::from_micros(jitter)
    }

    fn enqueue(&mut self, due: Instant, frame: Frame) {
        let seq = self.seq;
        self.seq += 1;
        if self.in_flight.push(InFlight { due, seq, frame }).is_err() {
            self.counters.overflowed += 1;
        }
    }

    /// The earliest-due packet whose time has come (ties: the one sent first).
    fn recv(&mut self, now: Instant) -> Option<Frame> {
        let (index, _) = self
            .in_flight
            .iter()
            .enumerate()
            .filter(|(_, p)| p.due <= now)
            .min_by_key(|(_, p)| (p.due, p.seq))?;
        self.counters.delivered += 1;
        Some(self.in_flight.swap_remove(index).frame)
    }
}

/// One end of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Host A, [`ADDR_A`], MAC 02:00:00:00:00:01.
    A,
    /// Host B, [`ADDR_B`], MAC 02:00:00:00:00:02.
    B,
}

/// The two directions of a point-to-point link.
#[derive(Debug)]
pub struct Link {
    /// Packets from A to B.
    pub a_to_b: Wire,
    /// Packets from B to A.
    pub b_to_a: Wire,
    medium: Medium,
}

impl Link {
    /// A link carrying `medium` frames, with `faults` in both directions (change
    /// `a_to_b.faults` or `b_to_a.faults` for asymmetric ones). Each direction rolls its
    /// own dice, both derived from `seed`.
    pub fn new(medium: Medium, faults: Faults, seed: u64) -> Self {
        Self {
            a_to_b: Wire::new(faults, seed),
            b_to_a: Wire::new(faults, seed ^ 0x5555_5555_5555_5555),
            medium,
        }
    }

    /// The device `side`'s interface polls: it sends on one wire, receives from the other.
    pub fn port(&mut self, side: Side) -> Port<'_> {
        let (tx, rx) = match side {
            Side::A => (&mut self.a_to_b, &mut self.b_to_a),
            Side::B => (&mut self.b_to_a, &mut self.a_to_b),
        };
        Port {
            tx,
            rx,
            medium: self.medium,
        }
    }

    /// The earlier of the two directions' [`Wire::next_due`].
    pub fn next_due(&self) -> Option<Instant> {
        self.a_to_b
            .next_due()
            .into_iter()
            .chain(self.b_to_a.next_due())
            .min()
    }
}

/// A host's view of the [`Link`], as a smoltcp [`Device`].
#[derive(Debug)]
pub struct Port<'l> {
    tx: &'l mut Wire,
    rx: &'l mut Wire,
    medium: Medium,
}

impl Device for Port<'_> {
    type RxToken<'a>
        = RxToken<MTU>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, now: NetInstant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let now = to_core(now);
        let frame = self.rx.recv(now)?;
        Some((RxToken(frame), TxToken { wire: self.tx, now }))
    }

    fn transmit(&mut self, now: NetInstant) -> Option<Self::TxToken<'_>> {
        Some(TxToken {
            wire: self.tx,
            now: to_core(now),
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = self.medium;
        caps.max_transmission_unit = if self.medium == Medium::Ip {
            MTU - 14 // the IP packet alone
        } else {
            MTU
        };
        caps
    }
}

/// Puts one frame on a [`Wire`], stamped with the time the interface was polled at.
#[derive(Debug)]
pub struct TxToken<'a> {
    wire: &'a mut Wire,
    now: Instant,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let (frame, r) = build_frame(len, f);
        self.wire.send(self.now, frame);
        r
    }
}

/// A smoltcp interface and the [`NalStack`] on it, at one end of a [`Link`].
pub struct Host<'a, const SOCKETS: usize = 4> {
    /// The interface: [`ADDR_A`] or [`ADDR_B`] on a /24.
    pub iface: Interface,
    /// The `embedded-nal` stack the code under test uses.
    pub stack: NalStack<'a, SOCKETS>,
    side: Side,
}

impl<'a, const SOCKETS: usize> Host<'a, SOCKETS> {
    /// Host `side` of `link`, its sockets on `storage`; `seed` seeds smoltcp's own randomness.
    pub fn new<const META: usize, const BUF: usize>(
        link: &mut Link,
        side: Side,
        storage: &'a mut NalStorage<'a, SOCKETS, META, BUF>,
        seed: u64,
    ) -> Self {
        let ip = match side {
            Side::A => ADDR_A,
            Side::B => ADDR_B,
        };
        let hardware = match link.medium {
            #[cfg(feature = "ethernet")]
            Medium::Ethernet => {
                let host = ip.octets()[3];
                HardwareAddress::Ethernet(smoltcp::wire::EthernetAddress([2, 0, 0, 0, 0, host]))
            }
            _ => HardwareAddress::Ip,
        };
        let mut config = Config::new(hardware);
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut link.port(side), NetInstant::ZERO);
        iface.update_ip_addrs(|addrs| {
            // A fresh interface has room for at least one address.
            let _ = addrs.push(IpCidr::new(ip.into(), PREFIX_LEN));
        });
        Self {
            iface,
            stack: NalStack::new(storage, ip),
            side,
        }
    }

    /// This host's address.
    pub fn addr(&self) -> Ipv4Addr {
        self.stack.local_ip()
    }

    /// One `iface.poll` at `now` on this host's end of `link`.
    pub fn poll(&mut self, now: Instant, link: &mut Link) -> PollResult {
        poll_iface(&mut self.iface, self.side, &mut self.stack, now, link)
    }

    /// When this interface next wants to be polled (`Interface::poll_at`).
    pub fn wake(&mut self, now: Instant) -> Wake {
        crate::clock::iface_wake(&mut self.iface, now, self.stack.sockets())
    }
}

/// One `iface.poll` at `now` of the interface on `side` of `link`, with its stack's sockets.
fn poll_iface<const SOCKETS: usize>(
    iface: &mut Interface,
    side: Side,
    stack: &mut NalStack<'_, SOCKETS>,
    now: Instant,
    link: &mut Link,
) -> PollResult {
    iface.poll(to_net(now), &mut link.port(side), stack.sockets_mut())
}

impl<const SOCKETS: usize> fmt::Debug for Host<'_, SOCKETS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("side", &self.side)
            .field("stack", &self.stack)
            .finish_non_exhaustive()
    }
}

/// Two hosts on a link, and the virtual clock.
///
/// Call order, like any sans-IO loop: run the code under test (it writes to and reads from
/// `a.stack` / `b.stack`), then [`poll`](Self::poll) to move packets, then pick the next
/// instant (its deadline or [`next_event`](Self::next_event)) and
/// [`advance_to`](Self::advance_to) it. Time only moves forward.
#[derive(Debug)]
pub struct Pair<'a, const SOCKETS: usize = 4> {
    /// The wire between the hosts: faults and counters per direction.
    pub link: Link,
    /// Host A ([`ADDR_A`]).
    pub a: Host<'a, SOCKETS>,
    /// Host B ([`ADDR_B`]).
    pub b: Host<'a, SOCKETS>,
    now: Instant,
}

impl<'a> Pair<'a> {
    /// Two hosts with default-sized storage: `let mut storage = Default::default();` then
    /// `Pair::new(&mut storage, medium, faults, seed)`.
    pub fn new(
        storage: &'a mut [NalStorage<'a>; 2],
        medium: Medium,
        faults: Faults,
        seed: u64,
    ) -> Self {
        let [a, b] = storage;
        Self::with_storage(a, b, medium, faults, seed)
    }
}

impl<'a, const SOCKETS: usize> Pair<'a, SOCKETS> {
    /// Two hosts with storage of any size. Time starts at zero.
    pub fn with_storage<const META: usize, const BUF: usize>(
        a: &'a mut NalStorage<'a, SOCKETS, META, BUF>,
        b: &'a mut NalStorage<'a, SOCKETS, META, BUF>,
        medium: Medium,
        faults: Faults,
        seed: u64,
    ) -> Self {
        let mut link = Link::new(medium, faults, seed);
        Self {
            a: Host::new(&mut link, Side::A, a, seed.wrapping_add(1)),
            b: Host::new(&mut link, Side::B, b, seed.wrapping_add(2)),
            link,
            now: Instant::ZERO,
        }
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Polls both hosts until nothing on the wire is due at `now` (bounded: 16 rounds).
    /// Several rounds are needed because an arrival may trigger an answer (ARP, a reply
    /// already queued by a socket) that is itself due at once.
    pub fn poll(&mut self) {
        let (a, mut rest) = self.split_a();
        rest.poll(a);
    }

    /// The earliest instant at which polling can make progress: either interface's
    /// `poll_at` or the wire's next due packet; [`Wake::OnDatagram`]: only new sends can.
    /// Its deadline may be in the past (meaning "now").
    pub fn next_event(&mut self) -> Wake {
        let (a, mut rest) = self.split_a();
        rest.next_event(a)
    }

    /// Moves the clock to `t` (never backwards) and [`poll`](Self::poll)s.
    pub fn advance_to(&mut self, t: Instant) {
        let (a, mut rest) = self.split_a();
        rest.advance_to(a, t);
    }

    /// Host A's stack apart from the rest of the pair, for a loop that takes the stack and
    /// a shell separately (the core's `Client::run`): the shell keeps the [`PairRest`]
    /// and is handed the stack back on every call.
    pub fn split_a(&mut self) -> (&mut NalStack<'a, SOCKETS>, PairRest<'_, 'a, SOCKETS>) {
        let rest = PairRest {
            link: &mut self.link,
            a_iface: &mut self.a.iface,
            b: &mut self.b,
            now: &mut self.now,
        };
        (&mut self.a.stack, rest)
    }

    /// Moves the clock forward by `d` and [`poll`](Self::poll)s.
    pub fn advance(&mut self, d: Duration) {
        self.advance_to(self.now + d);
    }
}

/// A [`Pair`] without host A's stack (see [`Pair::split_a`]): the same clock, wire and
/// hosts, with A's stack given back to every call that polls host A.
pub struct PairRest<'p, 'a, const SOCKETS: usize = 4> {
    /// The wire between the hosts.
    pub link: &'p mut Link,
    a_iface: &'p mut Interface,
    /// Host B.
    pub b: &'p mut Host<'a, SOCKETS>,
    now: &'p mut Instant,
}

impl<'a, const SOCKETS: usize> PairRest<'_, 'a, SOCKETS> {
    /// The virtual time.
    pub fn now(&self) -> Instant {
        *self.now
    }

    /// [`Pair::poll`], with host A's stack `a`.
    pub fn poll(&mut self, a: &mut NalStack<'a, SOCKETS>) {
        let now = *self.now;
        for _ in 0..16 {
            poll_iface(self.a_iface, Side::A, a, now, self.link);
            self.b.poll(now, self.link);
            if self.link.next_due().is_none_or(|due| due > now) {
                break;
            }
        }
    }

    /// [`Pair::next_event`], with host A's stack `a`.
    pub fn next_event(&mut self, a: &NalStack<'a, SOCKETS>) -> Wake {
        let now = *self.now;
        let wire = Wake::from(self.link.next_due());
        crate::clock::iface_wake(self.a_iface, now, a.sockets())
            .min(self.b.wake(now))
            .min(wire)
    }

    /// [`Pair::advance_to`], with host A's stack `a`.
    pub fn advance_to(&mut self, a: &mut NalStack<'a, SOCKETS>, t: Instant) {
        *self.now = (*self.now).max(t);
        self.poll(a);
    }
}

impl<const SOCKETS: usize> fmt::Debug for PairRest<'_, '_, SOCKETS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairRest")
            .field("link", &self.link)
            .field("b", &self.b)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

// The tests cover both media, so they need the `ethernet` feature (on with `std`).
#[cfg(all(test, feature = "ethernet"))]
mod tests {
    use super::*;
    use crate::nal::UdpSocket;
    use core::net::SocketAddr;
    use embedded_nal::{UdpClientStack, UdpFullStack};
    use std::vec::Vec;

    const PORT: u16 = 6666;

    fn bound(host: &mut Host<'_>, port: u16) -> UdpSocket {
        let mut socket = host.stack.socket().unwrap();
        host.stack.bind(&mut socket, port).unwrap();
        socket
    }

    /// Everything `socket` has received: (true length, source, first byte).
    fn drain(host: &mut Host<'_>, socket: &mut UdpSocket) -> Vec<(usize, SocketAddr, u8)> {
        let mut got = Vec::new();
        let mut buf = [0; 64];
        loop {
            match host.stack.receive(socket, &mut buf) {
                Ok((len, from)) => got.push((len, from, buf[0])),
                Err(nb::Error::WouldBlock) => return got,
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    /// A sends `count` one-byte datagrams (0, 1, …) to B, 10 ms apart, then the clock runs
    /// out every delay. Returns what B received.
    fn send_burst(net: &mut Pair<'_>, count: u8, to: Ipv4Addr) -> Vec<(usize, SocketAddr, u8)> {
        let mut rx = bound(&mut net.b, PORT);
        let mut tx = net.a.stack.socket().unwrap();
        let mut got = Vec::new();
        for i in 0..count {
            net.a
                .stack
                .send_to(&mut tx, (to, PORT).into(), &[i; 20])
                .unwrap();
            net.advance(Duration::from_millis(10));
            got.extend(drain(&mut net.b, &mut rx));
        }
        while let Some(t) = net.next_event().deadline(net.now()) {
            if t > net.now() + Duration::from_secs(5) {
                break;
            }
            net.advance_to(t.max(net.now() + Duration::from_millis(1)));
            got.extend(drain(&mut net.b, &mut rx));
        }
        got
    }

    fn from_a(tx_port: u16) -> SocketAddr {
        (ADDR_A, tx_port).into()
    }

    #[test]
    fn datagram_crosses_a_perfect_link_on_either_medium() {
        for medium in [Medium::Ip, Medium::Ethernet] {
            let mut storage = Default::default();
            let mut net = Pair::new(&mut storage, medium, Faults::NONE, 1);
            let got = send_burst(&mut net, 1, ADDR_B);
            assert_eq!(got, [(20, from_a(49152), 0)], "{medium:?}");
        }
    }

    #[test]
    fn drop_all_delivers_nothing() {
        let mut storage = Default::default();
        let faults = Faults {
            drop: 1000,
            ..Faults::NONE
        };
        let mut net = Pair::new(&mut storage, Medium::Ip, faults, 1);
        assert_eq!(send_burst(&mut net, 5, ADDR_B), []);
        let c = net.link.a_to_b.counters();
        assert_eq!((c.sent, c.dropped, c.delivered), (5, 5, 0));
    }

    #[test]
    fn duplicate_all_delivers_each_datagram_twice() {
        let mut storage = Default::default();
        let faults = Faults {
            duplicate: 1000,
            ..Faults::NONE
        };
        let mut net = Pair::new(&mut storage, Medium::Ip, faults, 1);
        let got = send_burst(&mut net, 1, ADDR_B);
        assert_eq!(got, [(20, from_a(49152), 0); 2]);
        assert_eq!(net.link.a_to_b.counters().duplicated, 1);
    }

    #[test]
    fn reorder_all_swaps_consecutive_datagrams() {
        let mut storage = Default::default();
        let faults = Faults {
            reorder: 1000,
            ..Faults::NONE
        };
        let mut net = Pair::new(&mut storage, Medium::Ip, faults, 1);
        let order: Vec<u8> = send_burst(&mut net, 4, ADDR_B)
            .iter()
            .map(|d| d.2)
            .collect();
        assert_eq!(order, [1, 0, 3, 2]);
        assert_eq!(net.link.a_to_b.counters().reordered, 2);
    }

    #[test]
    fn corrupted_datagrams_fail_the_checksum_and_vanish() {
        let mut storage = Default::default();
        let faults = Faults {
            corrupt: 1000,
            ..Faults::NONE
        };
        let mut net = Pair::new(&mut storage, Medium::Ip, faults, 1);
        assert_eq!(send_burst(&mut net, 10, ADDR_B), []);
        let c = net.link.a_to_b.counters();
        assert_eq!((c.corrupted, c.delivered), (10, 10));
    }

    #[test]
    fn delayed_datagram_is_due_after_the_delay() {
        let mut storage = Default::default();
        let faults = Faults {
            delay_min: Duration::from_millis(50),
            ..Faults::NONE
        };
        let mut net = Pair::new(&mut storage, Medium::Ip, faults, 1);
        let mut rx = bound(&mut net.b, PORT);
        let mut tx = net.a.stack.socket().unwrap();
        net.a
            .stack
            .send_to(&mut tx, (ADDR_B, PORT).into(), b"late")
            .unwrap();
        net.poll();
        assert_eq!(drain(&mut net.b, &mut rx), []);
        assert_eq!(net.next_event(), Wake::At(Instant::from_millis(50)));
        net.advance_to(Instant::from_millis(49));
        assert_eq!(drain(&mut net.b, &mut rx), []);
        net.advance_to(Instant::from_millis(50));
        assert_eq!(drain(&mut net.b, &mut rx).len(), 1);
        assert_eq!(net.next_event(), Wake::OnDatagram);
    }

    #[test]
    fn broadcast_reaches_the_other_host_without_arp() {
        let mut storage = Default::default();
        let mut net = Pair::new(&mut storage, Medium::Ethernet, Faults::NONE, 1);
        let got = send_burst(&mut net, 1, BROADCAST);
        assert_eq!(got, [(20, from_a(49152), 0)]);
        // One frame, no ARP request: smoltcp used the broadcast MAC.
        assert_eq!(net.link.a_to_b.counters().sent, 1);

        let mut storage = Default::default();
        let mut net = Pair::new(&mut storage, Medium::Ethernet, Faults::NONE, 1);
        let got = send_burst(&mut net, 1, Ipv4Addr::BROADCAST);
        assert_eq!(got, [(20, from_a(49152), 0)]);
    }

    #[test]
    fn unicast_on_ethernet_resolves_the_neighbor_first() {
        let mut storage = Default::default();
        let mut net = Pair::new(&mut storage, Medium::Ethernet, Faults::NONE, 1);
        send_burst(&mut net, 1, ADDR_B);
        // ARP request + the datagram one way, the ARP reply the other.
        assert_eq!(net.link.a_to_b.counters().sent, 2);
        assert_eq!(net.link.b_to_a.counters().sent, 1);
    }

    /// A lossy, jittery exchange: A sends 40 datagrams, B echoes each back.
    fn lossy_echo(seed: u64) -> (Counters, Counters, Vec<(usize, SocketAddr, u8)>) {
        let faults = Faults {
            drop: 150,
            duplicate: 150,
            reorder: 150,
            corrupt: 100,
            delay_min: Duration::from_millis(2),
            delay_jitter: Duration::from_millis(30),
        };
        let mut storage = Default::default();
        let mut net = Pair::new(&mut storage, Medium::Ethernet, faults, seed);
        let mut server = bound(&mut net.b, PORT);
        let mut client = net.a.stack.socket().unwrap();
        net.a
            .stack
            .connect(&mut client, (ADDR_B, PORT).into())
            .unwrap();
        let mut echoed = Vec::new();
        let mut buf = [0; 64];
        for step in 0..400u32 {
            if step % 10 == 0 {
                // WouldBlock while ARP is lost: the datagram is skipped, as a real app would.
                match net.a.stack.send(&mut client, &[(step / 10) as u8; 30]) {
                    Ok(()) | Err(nb::Error::WouldBlock) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
            net.advance(Duration::from_millis(5));
            while let Ok((len, from)) = net.b.stack.receive(&mut server, &mut buf) {
                match net.b.stack.send_to(&mut server, from, &buf[..len]) {
                    Ok(()) | Err(nb::Error::WouldBlock) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
            echoed.extend(drain(&mut net.a, &mut client));
        }
        (
            net.link.a_to_b.counters(),
            net.link.b_to_a.counters(),
            echoed,
        )
    }

    #[test]
    fn same_seed_gives_the_same_run() {
        let first = lossy_echo(42);
        assert_eq!(first, lossy_echo(42));
        assert_ne!(first, lossy_echo(43));
        let (ab, ba, echoed) = first;
        // Every fault fired, and the exchange still mostly worked.
        for c in [ab, ba] {
            assert!(c.dropped > 0 && c.duplicated > 0 && c.reordered > 0 && c.corrupted > 0);
            assert_eq!(c.overflowed, 0);
        }
        assert!(echoed.len() > 10, "{echoed:?}");
    }

    #[test]
    fn queue_overflow_is_counted() {
        let mut storage = Default::default();
        let faults = Faults {
            delay_min: Duration::from_secs(1),
            ..Faults::NONE
        };
        let mut net = Pair::new(&mut storage, Medium::Ip, faults, 1);
        let mut tx = net.a.stack.socket().unwrap();
        for i in 0..QUEUE + 2 {
            let r = net.a.stack.send_to(&mut tx, (ADDR_B, PORT).into(), &[0; 8]);
            assert!(r.is_ok() || r == Err(nb::Error::WouldBlock), "{i}: {r:?}");
            net.poll();
        }
        assert_eq!(net.link.a_to_b.counters().overflowed, 2);
    }
}
