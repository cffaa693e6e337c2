//! Counting the IPv4 datagrams too large to reassemble.
//!
//! With the `reassembly` feature smoltcp puts IPv4 fragments back together in one buffer
//! of `REASSEMBLY_BUFFER_SIZE` bytes (4096 here: requests of up to
//! [`MAX_REASSEMBLED_UDP`] bytes get their true count). A fragment that reaches past the
//! buffer ends the datagram: smoltcp drops it without a word, so nothing is ever answered
//! with a wrong count, but nothing counts it either. [`FragmentWatch`] wraps the device,
//! looks at each received frame on its way in, and counts those datagrams, once each.
//!
//! smoltcp keeps the fragments that came before in its one reassembly slot until the
//! reassembly timeout; set a short one (`iface.set_reassembly_timeout`), or a single
//! oversized request blocks every other fragmented request for smoltcp's default 60 s.

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
#[cfg(feature = "ethernet")]
use smoltcp::wire::{EthernetFrame, EthernetProtocol};
use smoltcp::wire::{Ipv4Address, Ipv4Packet};

/// The largest IP payload smoltcp reassembles: its reassembly buffer without a heap; 65535
/// with one (feature `std`: smoltcp grows the buffer); 0 without the `reassembly` feature
/// (every fragmented datagram is dropped).
pub const REASSEMBLY_LIMIT: usize = if cfg!(not(feature = "reassembly")) {
    0
} else if cfg!(feature = "std") {
    65_535
} else {
    smoltcp::config::REASSEMBLY_BUFFER_SIZE
};

/// The largest UDP request that arrives whole when fragmented: the reassembly buffer less
/// the UDP header.
pub const MAX_REASSEMBLED_UDP: usize = REASSEMBLY_LIMIT.saturating_sub(8);

/// A datagram dropped because it does not fit the reassembly buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Oversized {
    /// Its source.
    pub from: Ipv4Address,
    /// Its IPv4 identification.
    pub ident: u16,
    /// Its IP payload is at least this long (exact when the last fragment was the one seen).
    pub at_least: usize,
}

/// A [`Device`] that passes everything through and counts the fragmented IPv4 datagrams
/// larger than `limit` bytes of IP payload. See the [module docs](self).
#[derive(Debug)]
pub struct FragmentWatch<D> {
    inner: D,
    watch: Watch,
}

#[derive(Debug)]
struct Watch {
    limit: usize,
    medium: Medium,
    oversized: u32,
    last: Option<Oversized>,
}

impl<D: Device> FragmentWatch<D> {
    /// Watches `inner` for datagrams over smoltcp's reassembly buffer ([`REASSEMBLY_LIMIT`]).
    pub fn new(inner: D) -> Self {
        Self::with_limit(inner, REASSEMBLY_LIMIT)
    }

    /// Watches `inner` for datagrams of more than `limit` bytes of IP payload.
    pub fn with_limit(inner: D, limit: usize) -> Self {
        let medium = inner.capabilities().medium;
        FragmentWatch {
            inner,
            watch: Watch {
                limit,
                medium,
                oversized: 0,
                last: None,
            },
        }
    }

    /// Datagrams dropped for their size so far (saturating).
    pub fn oversized(&self) -> u32 {
        self.watch.oversized
    }

    /// The last of them.
    pub fn last_oversized(&self) -> Option<Oversized> {
        self.watch.last
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }
}

impl Watch {
    fn inspect(&mut self, frame: &[u8]) {
        let ip = match self.medium {
            #[cfg(feature = "ethernet")]
            Medium::Ethernet => match EthernetFrame::new_checked(frame) {
                Ok(eth) if eth.ethertype() == EthernetProtocol::Ipv4 => eth.payload(),
                _ => return,
            },
            _ => frame,
        };
        let Ok(packet) = Ipv4Packet::new_checked(ip) else {
            return;
        };
        if !packet.more_frags() && packet.frag_offset() == 0 {
            return;
        }
        let end = usize::from(packet.frag_offset()) + packet.payload().len();
        if end <= self.limit {
            return;
        }
        let seen = Oversized {
            from: packet.src_addr(),
            ident: packet.ident(),
            at_least: end,
        };
        match &mut self.last {
            // Another fragment of the datagram already counted.
            Some(last) if (last.from, last.ident) == (seen.from, seen.ident) => {
                last.at_least = last.at_least.max(end);
            }
            last => {
                *last = Some(seen);
                self.oversized = self.oversized.saturating_add(1);
            }
        }
    }
}

impl<D: Device> Device for FragmentWatch<D> {
    type RxToken<'a>
        = RxToken<'a, D::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = D::TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.inner.receive(now)?;
        Some((
            RxToken {
                inner: rx,
                watch: &mut self.watch,
            },
            tx,
        ))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        self.inner.transmit(now)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

/// A received frame, looked at on its way to smoltcp.
#[derive(Debug)]
pub struct RxToken<'a, T> {
    inner: T,
    watch: &'a mut Watch,
}

impl<T: phy::RxToken> phy::RxToken for RxToken<'_, T> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let watch = self.watch;
        self.inner.consume(|frame| {
            watch.inspect(frame);
            f(frame)
        })
    }
}

#[cfg(all(test, feature = "ethernet"))]
mod tests {
    use std::vec::Vec;

    use super::*;
    use crate::lan9118::Lan9118;
    use crate::lan9118::fake::{FakeChip, frames};
    use crate::lan9118::tests::{GUEST, HOST, flow};
    #[cfg(all(feature = "reassembly", not(feature = "std")))]
    use crate::lan9118::tests::{Rig, Storage, udp_replies};
    use smoltcp::phy::RxToken as _;

    fn watched(limit: usize) -> FragmentWatch<Lan9118<FakeChip>> {
        FragmentWatch::with_limit(Lan9118::new(FakeChip::new()).unwrap(), limit)
    }

    fn fragments(ident: u16, len: usize) -> Vec<Vec<u8>> {
        let mac = smoltcp::wire::EthernetAddress(FakeChip::new().mac);
        frames::udp_fragments(flow(mac), ident, &vec![b'x'; len])
    }

    /// Feeds `frames` through the watch and lets each go by.
    fn pass(watch: &mut FragmentWatch<Lan9118<FakeChip>>, frames: &[Vec<u8>]) {
        for frame in frames {
            watch.inner_mut().registers().push_frame(frame);
            let (rx, _) = watch.receive(Instant::ZERO).expect("a frame");
            assert_eq!(
                rx.consume(|f| f.to_vec()),
                *frame,
                "passed through untouched"
            );
        }
    }

    #[test]
    fn counts_each_datagram_over_the_limit_once() {
        let mut watch = watched(4096);
        // 4088 bytes of UDP payload: 4096 of IP payload, just fits.
        pass(&mut watch, &fragments(1, 4088));
        assert_eq!(watch.oversized(), 0);
        pass(&mut watch, &fragments(2, 4089));
        pass(&mut watch, &fragments(3, 5000));
        assert_eq!(watch.oversized(), 2);
        let last = watch.last_oversized().unwrap();
        assert_eq!(
            (last.from, last.ident, last.at_least),
            (*HOST.ip(), 3, 5008)
        );
    }

    #[test]
    fn unfragmented_and_other_frames_are_not_counted() {
        let mut watch = watched(0);
        let mac = watch.inner().mac();
        pass(&mut watch, &[frames::udp(flow(mac), &[1; 1472])]);
        pass(
            &mut watch,
            &[frames::arp_request(frames::GATEWAY_MAC, HOST, GUEST)],
        );
        assert_eq!(watch.oversized(), 0);
        // Without reassembly (limit 0) every fragmented datagram is one too large.
        pass(&mut watch, &fragments(9, 2000));
        assert_eq!(watch.oversized(), 1);
    }

    /// smoltcp with the `reassembly` feature (a 4096-byte buffer, no heap) behind the
    /// watch: the network firmware's receive path. (With `std`, smoltcp reassembles into a
    /// growing heap buffer and has no such limit.)
    #[cfg(all(feature = "reassembly", not(feature = "std")))]
    #[test]
    fn fragmented_requests_get_their_true_count_up_to_the_buffer_and_no_answer_beyond() {
        use smoltcp::time::Duration;
        assert_eq!(MAX_REASSEMBLED_UDP, 4088);
        let watch = FragmentWatch::new(Lan9118::new(FakeChip::new()).unwrap());
        let mac = watch.inner().mac();
        let mut storage = Storage::new();
        let mut rig = Rig::new(watch, mac, &mut storage);
        rig.iface.set_reassembly_timeout(Duration::from_millis(500));
        let chip = rig.device.inner_mut().registers();
        chip.push_frame(&frames::arp_request(frames::GATEWAY_MAC, HOST, GUEST));
        let mut now = Instant::ZERO;
        for (ident, len) in [(1, 4000), (2, 4088), (3, 4089), (4, 3000), (5, 4000)] {
            for frame in fragments(ident, len) {
                rig.device.inner_mut().registers().push_frame(&frame);
            }
            rig.run(now);
            // The oversized datagram's first fragments hold smoltcp's one slot until the
            // reassembly timeout; later requests come after it (as client retries would).
            now += Duration::from_millis(600);
        }
        let replies: Vec<Vec<u8>> = udp_replies(&rig.device.inner_mut().registers().sent)
            .into_iter()
            .map(|(_, _, payload)| payload)
            .collect();
        assert_eq!(
            replies,
            [
                &b"Your data was 4000 bytes"[..],
                b"Your data was 4088 bytes",
                b"Your data was 3000 bytes",
                b"Your data was 4000 bytes",
            ]
        );
        assert_eq!(rig.device.oversized(), 1);
    }
}
