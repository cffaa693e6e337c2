//! What must become of the frames pushed into the fake chip, worked out from the frames
//! alone, from the datasheet, the driver's docs and smoltcp 0.14's receive path:
//!
//! 1. the chip's address filter ([`passes_filter`]) and the driver ([`drive`]): which
//!    frames reach smoltcp, which the driver drops and with which counter, and where a
//!    flush (`RX_DUMP`) takes the rest;
//! 2. smoltcp ([`Oracle::receive`]): whether a frame hands the server a datagram (its
//!    source and true length), with smoltcp's one IPv4 reassembly slot followed step by
//!    step ([`Oracle`] keeps a copy of it, written from smoltcp's `process_ipv4` and
//!    `PacketAssembler`), and which fragmented datagrams it loses ([`Losses`]).
//!
//! The firmware's main loop takes in one frame per round and the server reads the socket
//! after each, so the socket's queue never overflows (the rig checks it).

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use udp_echo_firmware_example::board;
use udp_echo_firmware_example::frag::REASSEMBLY_LIMIT;
use udp_echo_firmware_example::lan9118::fake::FakeChip;
use udp_echo_firmware_example::lan9118::{Discard, FCS_LEN, MAX_FRAME, MIN_FRAME, words};
use udp_echo_firmware_example::smoltcp::storage::Assembler;
use udp_echo_firmware_example::smoltcp::time::Instant;
use udp_echo_firmware_example::smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket,
    UdpRepr,
};

use super::build::checksums;
use super::{ALL_SYSTEMS, OUR_IP, OUR_MAC, SUBNET_BROADCAST};

/// One entry of the chip's receive FIFOs: a status word and the frame's data words.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A frame as the chip stores one it received: its status says its length (FCS
    /// included) and nothing else wrong. The address filter may drop it first.
    Frame(Vec<u8>),
    /// A status word of our choosing over the frame's bytes (plus the FCS), past the
    /// filter. Its length field may say anything: more data than there is makes the
    /// driver flush.
    Raw {
        /// The status word.
        status: u32,
        /// The frame.
        bytes: Vec<u8>,
    },
}

impl Entry {
    /// The frame's bytes (without the FCS).
    pub fn bytes(&self) -> &[u8] {
        match self {
            Entry::Frame(bytes) | Entry::Raw { bytes, .. } => bytes,
        }
    }

    /// Queues it in the chip's receive FIFOs.
    pub fn push(&self, chip: &mut FakeChip) {
        match self {
            Entry::Frame(bytes) => chip.push_frame(bytes),
            Entry::Raw { status, bytes } => chip.push_raw(*status, bytes),
        }
    }

    /// The status word's length field (FCS included), error bit and filter-fail bit.
    fn status(&self) -> (usize, bool, bool) {
        match self {
            Entry::Frame(bytes) => (bytes.len() + FCS_LEN, false, false),
            Entry::Raw { status, .. } => (
                ((status >> 16) & 0x3FFF) as usize,
                status & 1 << 15 != 0,
                status & 1 << 30 != 0,
            ),
        }
    }

    /// Data words the fake chip queues for it: the bytes and the FCS, in whole words.
    fn data_words(&self) -> usize {
        words(self.bytes().len() + FCS_LEN)
    }
}

/// Whether the chip's address filter, as the driver sets it (no promiscuous mode, no
/// multicast), lets a frame in: broadcasts and frames to our MAC (and frames too short to
/// have a destination: the driver drops those).
pub fn passes_filter(frame: &[u8]) -> bool {
    frame
        .get(..6)
        .is_none_or(|dst| dst == [0xFF; 6] || dst == OUR_MAC.0)
}

/// What the driver does with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// The address filter dropped it before the FIFO (counted nowhere: not for us).
    NotForUs,
    /// Hands the frame (without FCS) to smoltcp; `rx_frames`.
    Deliver,
    /// Reads it out and drops it, counted by reason.
    Discard(Discard),
    /// Its status cannot be right (no length, or more data than the FIFO holds): both
    /// FIFOs are flushed; `rx_resyncs`.
    Resync,
    /// Flushed with the FIFOs by an earlier entry's resync (not counted on its own).
    Flushed,
}

/// The driver's receive loop over `entries`, all in the FIFO at once.
pub fn drive(entries: &[Entry]) -> Vec<Driver> {
    let queued = |e: &&Entry| !matches!(e, Entry::Frame(bytes) if !passes_filter(bytes));
    let mut data_left: usize = entries.iter().filter(queued).map(Entry::data_words).sum();
    let mut fates = Vec::with_capacity(entries.len());
    for entry in entries {
        if let Entry::Frame(bytes) = entry
            && !passes_filter(bytes)
        {
            fates.push(Driver::NotForUs);
            continue;
        }
        let (len, error, filtered) = entry.status();
        let claimed = words(len);
        // RX_FIFO_INF shows at most 0xFFFF bytes.
        if len == 0 || claimed * 4 > (data_left * 4).min(0xFFFF) {
            fates.push(Driver::Resync);
            let rest = entries.len() - fates.len();
            fates.extend(entries[entries.len() - rest..].iter().map(|e| {
                if matches!(e, Entry::Frame(bytes) if !passes_filter(bytes)) {
                    Driver::NotForUs
                } else {
                    Driver::Flushed
                }
            }));
            break;
        }
        data_left -= claimed;
        fates.push(if error {
            Driver::Discard(Discard::Error)
        } else if filtered {
            Driver::Discard(Discard::Filtered)
        } else if len < MIN_FRAME + FCS_LEN {
            Driver::Discard(Discard::Runt)
        } else if len > MAX_FRAME + FCS_LEN {
            Driver::Discard(Discard::Oversize)
        } else {
            Driver::Deliver
        });
    }
    fates
}

/// The driver's counters an entry moves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxCounts {
    /// `rx_frames`.
    pub frames: u32,
    /// `rx_errors`.
    pub errors: u32,
    /// `rx_filtered`.
    pub filtered: u32,
    /// `rx_runts`.
    pub runts: u32,
    /// `rx_oversize`.
    pub oversize: u32,
    /// `rx_resyncs`.
    pub resyncs: u32,
}

impl RxCounts {
    /// Adds what `fates` move.
    pub fn add(&mut self, fates: &[Driver]) {
        for fate in fates {
            match fate {
                Driver::Deliver => self.frames += 1,
                Driver::Discard(Discard::Error) => self.errors += 1,
                Driver::Discard(Discard::Filtered) => self.filtered += 1,
                Driver::Discard(Discard::Runt) => self.runts += 1,
                Driver::Discard(Discard::Oversize) => self.oversize += 1,
                Driver::Resync => self.resyncs += 1,
                Driver::NotForUs | Driver::Flushed => {}
            }
        }
    }
}

/// smoltcp's key for the fragments of one datagram: identification, source, destination,
/// protocol.
pub type Key = (u16, Ipv4Addr, Ipv4Addr, u8);

/// The fragmented datagrams smoltcp lost, as [`Oracle`] saw it lose them.
#[derive(Debug, Default)]
pub struct Losses {
    /// Fragments that reached past the reassembly buffer.
    pub oversized: u32,
    /// Fragments refused because the slot held another datagram.
    pub busy: u32,
    /// Datagrams still incomplete when the slot expired.
    pub timed_out: u32,
    /// The datagrams (by key) lost in any of these ways.
    pub keys: HashSet<Key>,
    /// The datagrams (by key) with a fragment past the buffer.
    pub oversized_keys: HashSet<Key>,
}

/// smoltcp's reassembly slot, as smoltcp keeps it.
#[derive(Debug)]
struct Slot {
    held: Option<Key>,
    expires_at: Instant,
    total: Option<usize>,
    received: Assembler,
    /// Not cleared between datagrams, as smoltcp's is not.
    buffer: Vec<u8>,
}

/// What smoltcp does with a frame the driver delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// No datagram for the server: not for us, malformed, a bad checksum, not UDP, another
    /// port, ARP (which smoltcp may answer itself, as it may answer with ICMP), or a
    /// fragment of a datagram not complete yet (or lost).
    NoDatagram,
    /// A datagram for the server on UDP 6666.
    Datagram {
        /// Its source.
        from: SocketAddrV4,
        /// Its true length: the UDP length field less the header.
        len: usize,
    },
}

/// smoltcp 0.14's receive path on the firmware's interface, with its reassembly slot.
#[derive(Debug)]
pub struct Oracle {
    slot: Slot,
    /// What smoltcp lost in reassembly.
    pub losses: Losses,
}

impl Default for Oracle {
    fn default() -> Self {
        Oracle {
            slot: Slot {
                held: None,
                expires_at: Instant::ZERO,
                total: None,
                received: Assembler::new(),
                buffer: vec![0; REASSEMBLY_LIMIT],
            },
            losses: Losses::default(),
        }
    }
}

/// smoltcp's unicast test for a source: not broadcast (either kind), multicast or
/// unspecified.
fn unicast(ip: Ipv4Addr) -> bool {
    !ip.is_broadcast() && !ip.is_multicast() && !ip.is_unspecified() && ip != SUBNET_BROADCAST
}

fn for_us(ip: Ipv4Addr) -> bool {
    [OUR_IP, ALL_SYSTEMS, Ipv4Addr::BROADCAST, SUBNET_BROADCAST].contains(&ip)
}

impl Oracle {
    /// Whether smoltcp's reassembly slot holds a datagram.
    pub fn slot_held(&self) -> bool {
        self.slot.held.is_some()
    }

    /// When the slot's datagram expires (smoltcp frees the slot at its first poll after).
    pub fn slot_expires_at(&self) -> Option<Instant> {
        self.slot.held.map(|_| self.slot.expires_at)
    }

    /// The start of an `Interface` poll at `now` (`remove_expired`): the slot's datagram
    /// expires.
    pub fn poll(&mut self, now: Instant) {
        let slot = &mut self.slot;
        if let Some(key) = slot.held
            && slot.expires_at < now
        {
            self.losses.timed_out += 1;
            self.losses.keys.insert(key);
            slot.held = None;
            slot.total = None;
            slot.received.clear();
        }
    }

    /// smoltcp takes in `frame` at `now` (`process_ethernet`, `process_ipv4`, `process_udp`).
    pub fn receive(&mut self, now: Instant, frame: &[u8]) -> Stack {
        self.poll(now);
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Stack::NoDatagram;
        };
        let to: EthernetAddress = eth.dst_addr();
        if !(to.is_broadcast() || to.is_multicast() || to == OUR_MAC)
            || eth.ethertype() != EthernetProtocol::Ipv4
        {
            return Stack::NoDatagram;
        }
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
            return Stack::NoDatagram;
        };
        let Ok(repr) = Ipv4Repr::parse(&ip, &checksums()) else {
            return Stack::NoDatagram;
        };
        let (src, dst) = (repr.src_addr, repr.dst_addr);
        if !unicast(src) && !src.is_unspecified() {
            return Stack::NoDatagram;
        }
        let assembled;
        let payload = if ip.more_frags() || ip.frag_offset() != 0 {
            let key = (ip.ident(), src, dst, u8::from(ip.next_header()));
            match self.fragment(now, key, &ip) {
                Some(datagram) => {
                    assembled = datagram;
                    &assembled[..]
                }
                None => return Stack::NoDatagram,
            }
        } else {
            ip.payload()
        };
        // Reassembled or not, the rest of the way is the same.
        if !for_us(dst) || repr.next_header != IpProtocol::Udp {
            return Stack::NoDatagram;
        }
        let Ok(udp) = UdpPacket::new_checked(payload) else {
            return Stack::NoDatagram;
        };
        match UdpRepr::parse(&udp, &src.into(), &dst.into(), &checksums()) {
            Ok(r) if r.dst_port == board::ECHO_PORT => Stack::Datagram {
                from: SocketAddrV4::new(src, r.src_port),
                len: udp.payload().len(),
            },
            _ => Stack::NoDatagram,
        }
    }

    /// smoltcp's `PacketAssemblerSet::get` and `PacketAssembler::{set_total_size, add,
    /// assemble}`: the datagram, if this fragment completes it.
    fn fragment(&mut self, now: Instant, key: Key, ip: &Ipv4Packet<&[u8]>) -> Option<Vec<u8>> {
        let limit = REASSEMBLY_LIMIT;
        let offset = usize::from(ip.frag_offset());
        let data = ip.payload();
        let slot = &mut self.slot;
        if offset + data.len() > limit {
            self.losses.oversized += 1;
            self.losses.keys.insert(key);
            self.losses.oversized_keys.insert(key);
        }
        match slot.held {
            Some(held) if held == key => {}
            Some(_) => {
                self.losses.busy += 1;
                self.losses.keys.insert(key);
                return None;
            }
            None => {
                slot.held = Some(key);
                slot.expires_at = now + board::REASSEMBLY_TIMEOUT;
            }
        }
        if !ip.more_frags() {
            let size = usize::from(ip.total_len()) - usize::from(ip.header_len()) + offset;
            if slot.total.is_some_and(|total| total != size) || size > limit {
                return None;
            }
            slot.total = Some(size);
        }
        if offset + data.len() > limit {
            return None;
        }
        slot.buffer[offset..offset + data.len()].copy_from_slice(data);
        // smoltcp ignores "too many holes".
        let _ = slot.received.add(offset, data.len());
        let total = slot.total?;
        if total != slot.received.peek_front() {
            return None;
        }
        slot.held = None;
        slot.total = None;
        slot.received.clear();
        Some(slot.buffer[..total].to_vec())
    }
}
