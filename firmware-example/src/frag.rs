//! Counting the IPv4 datagrams that smoltcp's reassembly drops without a word.
//!
//! With the `reassembly` feature smoltcp puts IPv4 fragments back together in one buffer
//! of `REASSEMBLY_BUFFER_SIZE` bytes (4096 here: requests of up to
//! [`MAX_REASSEMBLED_UDP`] bytes get their true count), in its one reassembly slot. It
//! loses a fragmented datagram, without counting it, in three ways; [`FragmentWatch`]
//! wraps the device, looks at each received frame on its way in, and counts each such
//! datagram once ([`FragmentCounts`]):
//!
//! - **oversized**: a fragment reaches past the buffer. Nothing is ever answered with a
//!   wrong count, but the datagram is gone;
//! - **busy**: a fragment of another datagram comes while the one slot is taken: smoltcp
//!   refuses it;
//! - **timed out**: the slot's datagram is still incomplete when the reassembly timeout
//!   runs out (a fragment lost or refused, or a wild one), and smoltcp frees the slot.
//!
//! For the last two the watch keeps a copy of smoltcp's slot (its key, its deadline, the
//! bytes received, in smoltcp's own `storage::Assembler`), updated by the same rules and in
//! the same order as smoltcp's (`Interface::poll`, `process_ipv4`, `PacketAssemblerSet`),
//! so it knows which datagrams complete and which expire. Its one blind spot: smoltcp
//! ignores fragments from the interface's subnet broadcast address, which the watch does
//! not know (it ignores those from 255.255.255.255 and multicast addresses, as smoltcp
//! does). A datagram lost in two ways (refused, then given the slot and expired; too large
//! and expired) counts once, under the first reason (too large over refused): exact unless
//! the fragments of several lost datagrams interleave.
//!
//! smoltcp keeps the fragments that came before in its one reassembly slot until the
//! reassembly timeout; set a short one (`iface.set_reassembly_timeout`, and the same on
//! the watch: `FragmentWatch::set_reassembly_timeout`), or a single oversized request
//! blocks every other fragmented request for smoltcp's default 60 s. A timeout is counted
//! at the interface's first poll after it (see [`FragmentWatch::counts`]).

#[cfg(feature = "reassembly")]
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
#[cfg(feature = "reassembly")]
use smoltcp::storage::Assembler;
#[cfg(feature = "reassembly")]
use smoltcp::time::Duration;
use smoltcp::time::Instant;
use smoltcp::wire::Ipv4Packet;
#[cfg(feature = "reassembly")]
use smoltcp::wire::Ipv4Repr;
#[cfg(feature = "ethernet")]
use smoltcp::wire::{EthernetFrame, EthernetProtocol};

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

/// smoltcp's reassembly timeout until `Interface::set_reassembly_timeout` changes it.
#[cfg(feature = "reassembly")]
pub const DEFAULT_REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Fragmented IPv4 datagrams smoltcp dropped, by why (see the [module docs](self)).
/// Counts saturate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FragmentCounts {
    /// A fragment reached past the reassembly buffer.
    pub oversized: u32,
    /// A fragment came while the one reassembly slot held another datagram, and was
    /// refused (always 0 without the `reassembly` feature).
    pub busy: u32,
    /// The datagram in the slot was still incomplete at the reassembly timeout (always 0
    /// without the `reassembly` feature).
    pub timed_out: u32,
}

/// A [`Device`] that passes everything through and counts the fragmented IPv4 datagrams
/// that smoltcp's reassembly drops. See the [module docs](self).
#[derive(Debug)]
pub struct FragmentWatch<D> {
    inner: D,
    watch: Watch,
}

#[derive(Debug)]
struct Watch {
    limit: usize,
    medium: Medium,
    counts: FragmentCounts,
    /// The last datagram counted, so that each is counted once, and whether as oversized.
    lost: Option<Key>,
    lost_oversized: bool,
    #[cfg(feature = "reassembly")]
    slot: Mirror,
}

/// smoltcp's key for the fragments of one datagram (`Ipv4FragKey`: identification,
/// protocol, source, destination), packed into three words (`Ipv4FragKey`'s own
/// comparison costs more flash at each use).
type Key = [u32; 3];

fn key(packet: &Ipv4Packet<&[u8]>) -> Key {
    [
        u32::from(packet.ident()) << 8 | u32::from(u8::from(packet.next_header())),
        packet.src_addr().to_bits(),
        packet.dst_addr().to_bits(),
    ]
}

/// smoltcp's one reassembly slot as the watch follows it.
#[cfg(feature = "reassembly")]
#[derive(Debug)]
struct Mirror {
    checksum: ChecksumCapabilities,
    timeout: Duration,
    /// The datagram in the slot (`None`: free).
    held: Option<Key>,
    /// When smoltcp frees the slot (at its first poll after this instant).
    expires_at: Instant,
    /// The datagram in the slot is already counted (as oversized, or as refused before
    /// it got the slot).
    counted: bool,
    /// Its IP payload's length, once its last fragment came.
    total: Option<usize>,
    /// Which of its bytes came: the same bookkeeping as smoltcp's.
    received: Assembler,
}

impl<D: Device> FragmentWatch<D> {
    /// Watches `inner` for datagrams over smoltcp's reassembly buffer ([`REASSEMBLY_LIMIT`]).
    pub fn new(inner: D) -> Self {
        Self::with_limit(inner, REASSEMBLY_LIMIT)
    }

    /// Watches `inner` for datagrams of more than `limit` bytes of IP payload.
    pub fn with_limit(inner: D, limit: usize) -> Self {
        #[cfg_attr(not(feature = "reassembly"), allow(unused_variables))]
        let caps = inner.capabilities();
        FragmentWatch {
            inner,
            watch: Watch {
                limit,
                medium: caps.medium,
                counts: FragmentCounts::default(),
                lost: None,
                lost_oversized: false,
                #[cfg(feature = "reassembly")]
                slot: Mirror {
                    checksum: caps.checksum,
                    timeout: DEFAULT_REASSEMBLY_TIMEOUT,
                    held: None,
                    expires_at: Instant::ZERO,
                    counted: false,
                    total: None,
                    received: Assembler::new(),
                },
            },
        }
    }

    /// The reassembly timeout the watch assumes: call it with the value given to
    /// `Interface::set_reassembly_timeout` (smoltcp's default: 60 s).
    #[cfg(feature = "reassembly")]
    pub fn set_reassembly_timeout(&mut self, timeout: Duration) {
        self.watch.slot.timeout = timeout;
    }

    /// Every datagram lost in reassembly so far, by why. A timeout is counted at the
    /// interface's first poll after it, when smoltcp frees the slot (each poll asks the
    /// device for a frame, and the watch looks at the clock then): a firmware that sleeps
    /// until the next frame should also wake now and then.
    pub fn counts(&self) -> FragmentCounts {
        self.watch.counts
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

fn bump(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}

impl Watch {
    /// smoltcp's `remove_expired`, at the start of each poll: the slot's datagram timed
    /// out, unless it was already counted.
    #[cfg(feature = "reassembly")]
    fn expire(&mut self, now: Instant) {
        let slot = &mut self.slot;
        if slot.held.is_some() && slot.expires_at < now {
            slot.held = None;
            if !slot.counted {
                bump(&mut self.counts.timed_out);
            }
        }
    }

    #[cfg_attr(not(feature = "reassembly"), allow(unused_variables))]
    #[inline(never)]
    fn inspect(&mut self, now: Instant, frame: &[u8]) {
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
        // smoltcp's checks before reassembly: a valid header, a source that may send.
        #[cfg(feature = "reassembly")]
        if Ipv4Repr::parse(&packet, &self.slot.checksum).is_err()
            || packet.src_addr().is_broadcast()
            || packet.src_addr().is_multicast()
        {
            return;
        }
        let key = key(&packet);
        let offset = usize::from(packet.frag_offset());
        let end = offset + packet.payload().len();
        let counted = self.lost == Some(key);
        // Once per datagram (another of its fragments may have been counted).
        if end > self.limit && !(counted && self.lost_oversized) {
            if counted {
                // Counted as refused: too large says more.
                self.counts.busy = self.counts.busy.saturating_sub(1);
            }
            self.lost = Some(key);
            self.lost_oversized = true;
            bump(&mut self.counts.oversized);
        }
        #[cfg(feature = "reassembly")]
        self.reassemble(now, packet.more_frags(), key, offset, end);
    }

    /// smoltcp's `PacketAssemblerSet::get` and `PacketAssembler::{set_total_size, add,
    /// assemble}` for a fragment of the datagram `key` that holds its bytes
    /// `offset..end`.
    #[cfg(feature = "reassembly")]
    #[inline(never)]
    fn reassemble(&mut self, now: Instant, more: bool, key: Key, offset: usize, end: usize) {
        let counted = self.lost == Some(key);
        let slot = &mut self.slot;
        if slot.held != Some(key) {
            if slot.held.is_some() {
                if !counted {
                    self.lost = Some(key);
                    self.lost_oversized = false;
                    bump(&mut self.counts.busy);
                }
                return;
            }
            slot.held = Some(key);
            slot.expires_at = now + slot.timeout;
            slot.counted = false;
            slot.total = None;
            slot.received.clear();
        }
        slot.counted |= counted;
        if end > self.limit || !more && slot.total.is_some_and(|total| total != end) {
            return;
        }
        if !more {
            slot.total = Some(end);
        }
        // smoltcp ignores the assembler's "too many holes" too.
        let _ = slot.received.add(offset, end - offset);
        if slot.total == Some(slot.received.peek_front()) {
            slot.held = None;
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
        // Each smoltcp poll asks at least once, after freeing an expired slot: so does the
        // watch.
        #[cfg(feature = "reassembly")]
        self.watch.expire(now);
        let (rx, tx) = self.inner.receive(now)?;
        Some((
            RxToken {
                inner: rx,
                watch: &mut self.watch,
                now,
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
    now: Instant,
}

impl<T: phy::RxToken> phy::RxToken for RxToken<'_, T> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let (watch, now) = (self.watch, self.now);
        self.inner.consume(|frame| {
            watch.inspect(now, frame);
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

    /// Feeds `frames` through the watch (at time zero) and lets each go by.
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
        assert_eq!(watch.counts().oversized, 0);
        pass(&mut watch, &fragments(2, 4089));
        // (With reassembly, 2 holds smoltcp's slot and 3 is refused: too large says more.)
        pass(&mut watch, &fragments(3, 5000));
        assert_eq!(
            watch.counts(),
            FragmentCounts {
                oversized: 2,
                busy: 0,
                timed_out: 0
            }
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
        assert_eq!(watch.counts(), FragmentCounts::default());
        // Without reassembly (limit 0) every fragmented datagram is one too large.
        pass(&mut watch, &fragments(9, 2000));
        assert_eq!(watch.counts().oversized, 1);
    }

    /// smoltcp with the `reassembly` feature (a 4096-byte buffer, no heap) behind the
    /// watch: the network firmware's receive path. (With `std`, smoltcp reassembles into a
    /// growing heap buffer and has no such limit.)
    #[cfg(all(feature = "reassembly", not(feature = "std")))]
    #[test]
    fn fragmented_requests_get_their_true_count_up_to_the_buffer_and_no_answer_beyond() {
        use smoltcp::time::Duration;
        assert_eq!(MAX_REASSEMBLED_UDP, 4088);
        let mut watch = FragmentWatch::new(Lan9118::new(FakeChip::new()).unwrap());
        // The same timeout on both: the watch follows smoltcp's slot.
        watch.set_reassembly_timeout(Duration::from_millis(500));
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
        // Its slot expired at the 1.8 s poll: not counted a second time.
        assert_eq!(
            rig.device.counts(),
            FragmentCounts {
                oversized: 1,
                busy: 0,
                timed_out: 0
            }
        );
    }

    /// Feeds `frames` through the watch at `ms`, or, with none, asks for a frame then (as
    /// each smoltcp poll does).
    #[cfg(feature = "reassembly")]
    fn pass_at(watch: &mut FragmentWatch<Lan9118<FakeChip>>, ms: i64, frames: &[Vec<u8>]) {
        let now = Instant::from_millis(ms);
        if frames.is_empty() {
            assert!(watch.receive(now).is_none());
        }
        for frame in frames {
            watch.inner_mut().registers().push_frame(frame);
            let (rx, _) = watch.receive(now).expect("a frame");
            rx.consume(|_| ());
        }
    }

    #[cfg(feature = "reassembly")]
    #[test]
    fn an_incomplete_datagram_times_out_once_and_one_refused_meanwhile_counts_as_busy() {
        use smoltcp::time::Duration;
        let mut watch = watched(4096);
        watch.set_reassembly_timeout(Duration::from_millis(500));
        let first = fragments(1, 4000);
        // Its last fragment is lost: it holds the slot.
        pass_at(&mut watch, 0, &first[..2]);
        // Every fragment of the next is refused: one datagram, counted once.
        pass_at(&mut watch, 100, &fragments(2, 3000));
        assert_eq!(watch.counts().busy, 1);
        // Not yet at 500 ms (smoltcp frees the slot only after its deadline)...
        pass_at(&mut watch, 500, &[]);
        assert_eq!(watch.counts().timed_out, 0);
        // ...then once, at the first poll after it, with or without a frame.
        pass_at(&mut watch, 501, &[]);
        assert_eq!(watch.counts().timed_out, 1);
        pass_at(&mut watch, 700, &fragments(3, 2000));
        // 3 completed and freed the slot: 4 gets it and is not refused.
        pass_at(&mut watch, 800, &fragments(4, 2000));
        assert_eq!(
            watch.counts(),
            FragmentCounts {
                oversized: 0,
                busy: 1,
                timed_out: 1
            }
        );
    }

    /// The watch's copy of smoltcp's slot agrees with smoltcp: every fragmented request
    /// is either answered or counted, once.
    #[cfg(all(feature = "reassembly", not(feature = "std")))]
    #[test]
    fn every_fragmented_request_is_answered_or_counted_once() {
        use smoltcp::time::Duration;
        let mut watch = FragmentWatch::new(Lan9118::new(FakeChip::new()).unwrap());
        watch.set_reassembly_timeout(Duration::from_millis(500));
        let mac = watch.inner().mac();
        let mut storage = Storage::new();
        let mut rig = Rig::new(watch, mac, &mut storage);
        rig.iface.set_reassembly_timeout(Duration::from_millis(500));
        let chip = rig.device.inner_mut().registers();
        chip.push_frame(&frames::arp_request(frames::GATEWAY_MAC, HOST, GUEST));
        let incomplete = fragments(1, 4000);
        // (at ms, frames): 1 lacks its last fragment; 2 comes while 1 holds the slot; 3
        // after 1 timed out; 4 is too large; 5 comes while 4's first fragments hold the
        // slot; 6 after that, with its fragments in reverse order.
        let mut reversed = fragments(6, 2500);
        reversed.reverse();
        let schedule: [(i64, Vec<Vec<u8>>); 6] = [
            (0, incomplete[..2].to_vec()),
            (100, fragments(2, 1600)),
            (700, fragments(3, 3000)),
            (800, fragments(4, 5000)),
            (900, fragments(5, 2000)),
            (1400, reversed),
        ];
        for (ms, frames) in schedule {
            for frame in frames {
                rig.device.inner_mut().registers().push_frame(&frame);
            }
            rig.run(Instant::from_millis(ms));
        }
        let replies: Vec<Vec<u8>> = udp_replies(&rig.device.inner_mut().registers().sent)
            .into_iter()
            .map(|(_, _, payload)| payload)
            .collect();
        assert_eq!(
            replies,
            [
                &b"Your data was 3000 bytes"[..],
                b"Your data was 2500 bytes"
            ]
        );
        // 6 requests: 2 answered, 4 counted.
        assert_eq!(
            rig.device.counts(),
            FragmentCounts {
                oversized: 1,
                busy: 2,
                timed_out: 1
            }
        );
    }
}
