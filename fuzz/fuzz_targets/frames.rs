//! Ethernet frames, wild and valid, through the network firmware's whole receive path on
//! the host: the LAN9118's fake register file (its address filter on) → the polled driver
//! → the fragment watch → smoltcp 0.14 (Ethernet, 10.0.2.15/24, IPv4 reassembly into 4096
//! bytes, no heap) → the adapter (`NalStack`) → the core's `Server` (default guards,
//! `CAPS`), set up by `udp_echo_firmware_example::board` as the firmware sets them up and
//! run by the firmware's main loop (`board::poll`: one frame in per round, then the
//! adapter's `unstick`; sleep until `board::wake`) on a virtual clock. The network around it answers the firmware's ARP requests
//! (`udp_echo_fuzz::frames::rig`).
//!
//! **Input**: steps, in order: valid requests (0..=4088 bytes from a client's address and
//! port: on the link or routed, never port 0 or a reflection port; fragmented when over 1472
//! bytes, in fragments of 512..=1480 bytes, forwards or backwards, the first one possibly
//! sent again after the last; optionally after smoltcp's reassembly slot is free); requests
//! too large to reassemble (4089..=8088 bytes); bursts of up to 16 frames that sit in the
//! FIFO together (raw bytes; UDP datagrams with mutated Ethernet, IPv4 and UDP fields,
//! checksums fixed or not, cut short, padded, grown past the MTU; ARP junk; wild IPv4
//! fragments, with a UDP header or not), each with the status word the chip gives it or one
//! flagging an error or a filter failure or saying length 0; a status word that claims more
//! data than the FIFO holds; frames the chip dropped (`RX_DROP`); a TX FIFO kept full or
//! sends reported failed, for up to 256 ms; and waits of µs to minutes. Sources of junk are
//! anything, 0.0.0.0, our own address and the broadcast addresses included.
//!
//! **The oracle** (`udp_echo_fuzz::frames::oracle`) works out from the frames alone, from the
//! datasheet, the driver's docs and smoltcp's receive path, what must happen: the chip's
//! address filter, the driver's verdict for each FIFO entry (and where a flush takes the
//! rest), then smoltcp's: a datagram for the server (source, true length) or none, with
//! smoltcp's one reassembly slot copied step by step (key, deadline, total, its own
//! `Assembler`, the buffer), so that it knows which fragments complete which datagram and
//! which datagrams smoltcp loses (too large, refused while the slot is taken, timed out).
//!
//! **Checks** (besides no panic, and the rig's own, see its docs):
//! - the server handles exactly the datagrams the oracle says, in order, with their true
//!   length; every reply says `Your data was N bytes` with that length;
//! - every valid request reaches the server unless smoltcp's slot held another datagram
//!   (then the fragment watch must count it, below) or the adapter emptied a stuck socket
//!   as it arrived (`stuck.rx_lost`), and gets `Your data was N bytes` or, counted by the
//!   responder, a drop for the per-source rate limit (as a loop, when its bytes are
//!   themselves a reply);
//! - each reply decided leaves the chip once, to its source, in the order decided, or is
//!   counted as not queued (`send_failed`: the socket held 4 replies, or 3 where its ring
//!   wraps, or the source is 0.0.0.0) or as discarded by `NalStack::unstick` (`stuck`, its
//!   byte count exact); a queue may stand still long enough for that only while the TX side
//!   fails or within 1.1 s of an ARP request (smoltcp's ARP silence: this network answers
//!   every request at once); by the end none is left in the socket;
//! - the driver's counters move exactly as the oracle says: `rx_frames` (the network's ARP
//!   answers included), `rx_errors`, `rx_filtered`, `rx_runts`, `rx_oversize`, `rx_resyncs`
//!   per entry, `rx_dropped` by what the chip dropped; `tx_frames` per frame sent,
//!   `tx_errors` per failed send once its status is read; `tx_busy` and `tx_dropped` only
//!   while the TX FIFO is kept full;
//! - the fragment watch counts every datagram the oracle saw smoltcp lose at least once
//!   (each key; each too-large one as oversized), and no more than smoltcp's losses;
//! - every frame sent is well-formed Ethernet/ARP or IPv4 with right checksums.
//!
//! **Dropped and counted**, per kind: by the driver, frames flagged by the chip
//! (`rx_errors`, `rx_filtered`), shorter than an Ethernet header (`rx_runts`), longer than
//! 1514 bytes (`rx_oversize`), and a FIFO flushed for a status that cannot be right
//! (`rx_resyncs`, once per flush whatever it held); by the chip, frames it had no room for
//! (`rx_dropped`); by the fragment watch, fragmented datagrams smoltcp lost (`oversized`,
//! `busy`, `timed_out`); by the responder, datagrams from port 0, reflection ports, replies,
//! over the rate limit (`dropped_by`), and replies the socket could not queue
//! (`send_failed`); by the adapter, replies and datagrams lost emptying a stuck socket
//! (`stuck`: purges, bytes, received datagrams); by the chip again, failed sends
//! (`tx_errors`). Dropped and counted by
//! nobody, by design: frames for another MAC address (the chip's filter), and what smoltcp
//! drops outside reassembly (not for our address, malformed, not UDP, other ports, ARP it
//! answers or ignores): the oracle predicts each, and the check is that none reaches the
//! server.
//!
//! **Not checkable here**: smoltcp's checksum checks (in fuzz builds, `cfg(fuzzing)`,
//! smoltcp's `verify_checksum` always says yes, so frames with bad checksums go on, and the
//! oracle, on the same types, agrees; the checksums of what the firmware sends are computed
//! by the rig); ARP and ICMP answers are checked for form, not content; the MAC address a
//! reply goes to (ARP junk may rewrite smoltcp's neighbor cache, legitimately); how the
//! fragment watch splits its count between reasons, and whether it counts a datagram lost
//! twice (the oracle checks bounds); fragments from the subnet's broadcast address, the
//! watch's documented blind spot (after one, only the lower bound holds); a status word that
//! claims less data than its frame has (the driver cannot see it and no chip does it: not
//! generated).

#![no_main]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use udp_echo_core::wire::{Reply, parse_reply};
use udp_echo_core::{Decision, DropReason, REFLECTION_PORTS};
use udp_echo_firmware_example::board::{self, Buffers, Sockets};
use udp_echo_firmware_example::frag::MAX_REASSEMBLED_UDP;
use udp_echo_firmware_example::lan9118::fake::TX_STATUS_ERROR;
use udp_echo_firmware_example::lan9118::{Counters, MAX_FRAME, tx_fifo_bytes};
use udp_echo_firmware_example::smoltcp::time::Duration;
use udp_echo_firmware_example::smoltcp::wire::{
    EthernetAddress, IpProtocol, Ipv4Packet, UdpPacket,
};
use udp_echo_fuzz::Port;
use udp_echo_fuzz::frames::build::{self, ETH, IP, Ipv4Fields, hop_mac};
use udp_echo_fuzz::frames::oracle::{self, Driver, Entry, Oracle, RxCounts, Stack};
use udp_echo_fuzz::frames::rig::{Handled, Rig, TxFault};
use udp_echo_fuzz::frames::{ALL_SYSTEMS, OUR_IP, OUR_MAC, SUBNET_BROADCAST, on_link};

/// Steps looked at; the rest of a longer input is ignored.
const MAX_STEPS: usize = 128;
/// Entries in one burst.
const MAX_BURST: usize = 16;
/// The longest frame pushed: past the MTU, well within a status word.
const MAX_PUSHED: usize = 2000;
/// The longest UDP payload in one unfragmented frame (1500 − 20 − 8).
const MAX_SINGLE: usize = 1472;

// ---------------------------------------------------------------- input

#[derive(Debug, Arbitrary)]
struct Input {
    /// The chip's FREE_RUN count at boot: the firmware's seed and clock.
    boot_ticks: u32,
    steps: Vec<Step>,
}

#[derive(Debug, Arbitrary)]
enum Step {
    /// Time passes; the firmware runs and sleeps meanwhile.
    Wait(Wait),
    /// A valid request from a client.
    Request(Request),
    /// A request from a client too large to reassemble (4089 + `extra % 4000` bytes).
    Oversized {
        from: Client,
        extra: u16,
        ident: u16,
        frag_units: u8,
    },
    /// Frames that sit in the FIFO together before the firmware looks.
    Burst(Vec<BurstEntry>),
    /// A status word that claims `missing` more words than the FIFO holds, alone.
    ShortData { frame: Frame, missing: u8 },
    /// The chip dropped frames for want of room (RX_DROP).
    ChipDropped(u8),
    /// The TX FIFO stays full (`free` bytes) or every send fails, for `millis` ms.
    Tx { full: Option<u16>, millis: u8 },
}

#[derive(Debug, Arbitrary)]
enum Wait {
    Micros(u16),
    Millis(u16),
    Secs(u8),
}

impl Wait {
    fn get(&self) -> Duration {
        match *self {
            Wait::Micros(us) => Duration::from_micros(us.into()),
            Wait::Millis(ms) => Duration::from_millis(ms.into()),
            Wait::Secs(s) => Duration::from_secs(s.into()),
        }
    }
}

/// A client: a real sender on the link or behind the gateway, on a port the server
/// answers.
#[derive(Debug, Arbitrary)]
struct Client {
    host: Host,
    port: u16,
}

#[derive(Debug, Arbitrary)]
enum Host {
    /// 10.0.2.x.
    OnLink(u8),
    /// Anywhere else.
    Routed([u8; 4]),
}

impl Client {
    fn get(&self) -> SocketAddrV4 {
        let ip = match self.host {
            Host::OnLink(h) if h == OUR_IP.octets()[3] || h == 255 => Ipv4Addr::new(10, 0, 2, 100),
            Host::OnLink(h) => Ipv4Addr::new(10, 0, 2, h),
            Host::Routed(ip) => {
                let ip = Ipv4Addr::from(ip);
                if on_link(ip) || ip.is_multicast() || ip.is_broadcast() || ip.is_unspecified() {
                    Ipv4Addr::new(203, 0, 113, ip.octets()[3])
                } else {
                    ip
                }
            }
        };
        let port = if self.port == 0 || REFLECTION_PORTS.contains(&self.port) {
            self.port | 0x8000
        } else {
            self.port
        };
        SocketAddrV4::new(ip, port)
    }
}

#[derive(Debug, Arbitrary)]
struct Request {
    from: Client,
    len: u16,
    /// The payload's first bytes (the rest is a pattern).
    head: Vec<u8>,
    fill: u8,
    ident: u16,
    /// Fragment size in 8-byte units, 64..=185 (512..=1480 bytes).
    frag_units: u8,
    reverse: bool,
    /// The first fragment again after the last (it starts a new datagram in the slot).
    duplicate: bool,
    /// Let the firmware run until smoltcp's reassembly slot is surely free first.
    wait_for_slot: bool,
}

/// A payload.
#[derive(Debug, Arbitrary)]
enum Payload {
    Pattern {
        len: u16,
        fill: u8,
    },
    Bytes(Vec<u8>),
    /// A byte-count reply, whole.
    Reply(u16),
    /// A byte-count reply cut short.
    NearReply(u16, u8),
}

fn pattern(len: usize, fill: u8) -> impl Iterator<Item = u8> {
    (0..len).map(move |i| fill.wrapping_add((i as u8).wrapping_mul(7)))
}

impl Payload {
    fn get(&self, max: usize) -> Vec<u8> {
        let mut bytes: Vec<u8> = match self {
            Payload::Pattern { len, fill } => {
                pattern(usize::from(*len) % (max + 1), *fill).collect()
            }
            Payload::Bytes(b) => b.clone(),
            Payload::Reply(n) => Reply::new(*n).as_bytes().to_vec(),
            Payload::NearReply(n, cut) => {
                let reply = Reply::new(*n);
                let b = reply.as_bytes();
                b[..b.len().saturating_sub(usize::from(*cut % 4) + 1)].to_vec()
            }
        };
        bytes.truncate(max);
        bytes
    }
}

/// A source address for a junk frame.
#[derive(Debug, Arbitrary)]
enum Src {
    Client(Client),
    Any([u8; 4], Port),
    Unspecified(Port),
    Us(Port),
    Broadcast(Port),
    SubnetBroadcast(Port),
}

impl Src {
    fn get(&self) -> SocketAddrV4 {
        let (ip, port) = match self {
            Src::Client(c) => return c.get(),
            Src::Any(ip, p) => (Ipv4Addr::from(*ip), p),
            Src::Unspecified(p) => (Ipv4Addr::UNSPECIFIED, p),
            Src::Us(p) => (OUR_IP, p),
            Src::Broadcast(p) => (Ipv4Addr::BROADCAST, p),
            Src::SubnetBroadcast(p) => (SUBNET_BROADCAST, p),
        };
        SocketAddrV4::new(ip, port.get())
    }
}

#[derive(Debug, Arbitrary)]
enum Dst {
    Us,
    SubnetBroadcast,
    Broadcast,
    AllSystems,
    Any([u8; 4]),
}

impl Dst {
    fn get(&self) -> Ipv4Addr {
        match *self {
            Dst::Us => OUR_IP,
            Dst::SubnetBroadcast => SUBNET_BROADCAST,
            Dst::Broadcast => Ipv4Addr::BROADCAST,
            Dst::AllSystems => ALL_SYSTEMS,
            Dst::Any(ip) => ip.into(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum DstPort {
    Echo,
    Any(u16),
}

impl DstPort {
    fn get(&self) -> u16 {
        match *self {
            DstPort::Echo => board::ECHO_PORT,
            DstPort::Any(p) => p,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Mac {
    Us,
    Broadcast,
    /// 01:00:5e:… (IPv4 multicast).
    Multicast(u8),
    Any([u8; 6]),
}

impl Mac {
    fn get(&self) -> EthernetAddress {
        match *self {
            Mac::Us => OUR_MAC,
            Mac::Broadcast => EthernetAddress::BROADCAST,
            Mac::Multicast(g) => EthernetAddress([0x01, 0x00, 0x5e, 0, 0, g]),
            Mac::Any(m) => EthernetAddress(m),
        }
    }
}

/// One entry of a burst: a frame and the status word the chip gives it.
#[derive(Debug, Arbitrary)]
struct BurstEntry {
    frame: Frame,
    status: Status,
}

#[derive(Debug, Arbitrary)]
enum Status {
    /// As the chip stores a frame it received.
    AsReceived,
    /// The frame's length, and any low bits (bit 15: error) and the filter-fail bit.
    Flags { low: u16, filter_fail: bool },
    /// Length 0 (the driver flushes).
    Empty(u16),
}

#[derive(Debug, Arbitrary)]
enum Frame {
    Raw(Vec<u8>),
    Udp(UdpFrame),
    Arp(ArpFrame),
    Fragment(FragmentFrame),
}

/// A UDP datagram to the firmware, then changed.
#[derive(Debug, Arbitrary)]
struct UdpFrame {
    from: Src,
    to: Dst,
    to_port: DstPort,
    eth_dst: Mac,
    ident: u16,
    payload: Payload,
    fields: Vec<Field>,
    fix_ip_checksum: bool,
    fix_udp_checksum: bool,
    /// Cut to this many bytes (modulo the length).
    cut: Option<u16>,
    /// Bytes added at the end.
    append: Vec<u8>,
    /// Zeros added at the end.
    pad: u16,
}

#[derive(Debug, Arbitrary)]
enum Field {
    EtherType(u16),
    Version(u8),
    Ihl(u8),
    TotalLen(u16),
    Ident(u16),
    Flags {
        df: bool,
        mf: bool,
        offset_units: u16,
    },
    Ttl(u8),
    Protocol(u8),
    IpChecksum(u16),
    IpSrc([u8; 4]),
    IpDst([u8; 4]),
    SrcPort(u16),
    DstPort(u16),
    UdpLen(u16),
    UdpChecksum(u16),
    Xor {
        at: u16,
        value: u8,
    },
}

#[derive(Debug, Arbitrary)]
enum ArpIp {
    Us,
    Gateway,
    OnLink(u8),
    Any([u8; 4]),
}

impl ArpIp {
    fn get(&self) -> Ipv4Addr {
        match *self {
            ArpIp::Us => OUR_IP,
            ArpIp::Gateway => board::GATEWAY,
            ArpIp::OnLink(h) => Ipv4Addr::new(10, 0, 2, h),
            ArpIp::Any(ip) => ip.into(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct ArpFrame {
    eth_dst: Mac,
    operation: u16,
    sender_mac: Mac,
    sender_ip: ArpIp,
    target_mac: [u8; 6],
    target_ip: ArpIp,
    /// Hardware type, protocol type and address lengths overwritten.
    header: Option<[u8; 6]>,
    cut: Option<u8>,
    append: Vec<u8>,
}

/// A wild IPv4 fragment, with a UDP header or not.
#[derive(Debug, Arbitrary)]
struct FragmentFrame {
    from: Src,
    to: Dst,
    ident: u16,
    offset_units: u16,
    more: bool,
    /// Source port, destination port, length and checksum of a UDP header in front.
    udp: Option<(u16, DstPort, u16, u16)>,
    payload: Payload,
}

// ---------------------------------------------------------------- frames

fn limit(mut frame: Vec<u8>) -> Vec<u8> {
    frame.truncate(MAX_PUSHED);
    frame
}

impl Frame {
    fn build(&self) -> Vec<u8> {
        limit(match self {
            Frame::Raw(bytes) => bytes.clone(),
            Frame::Udp(u) => u.build(),
            Frame::Arp(a) => a.build(),
            Frame::Fragment(f) => f.build(),
        })
    }
}

impl UdpFrame {
    fn build(&self) -> Vec<u8> {
        let from = self.from.get();
        let to = SocketAddrV4::new(self.to.get(), self.to_port.get());
        let payload = self.payload.get(MAX_SINGLE);
        let udp = build::udp(from, to, &payload, None, None);
        let fields = Ipv4Fields {
            src: *from.ip(),
            dst: *to.ip(),
            ident: self.ident,
            more: false,
            offset: 0,
            protocol: IpProtocol::Udp,
        };
        let mut frame = build::ipv4(hop_mac(*from.ip()), self.eth_dst.get(), fields, &udp);
        for field in &self.fields {
            field.apply(&mut frame);
        }
        if self.fix_ip_checksum {
            build::fix_ipv4_checksum(&mut frame);
        }
        if self.fix_udp_checksum {
            build::fix_udp_checksum(&mut frame);
        }
        if let Some(cut) = self.cut {
            frame.truncate(usize::from(cut) % (frame.len() + 1));
        }
        frame.extend_from_slice(&self.append);
        frame.resize(frame.len() + usize::from(self.pad) % (MAX_PUSHED + 1), 0);
        frame
    }
}

impl Field {
    fn apply(&self, frame: &mut [u8]) {
        match *self {
            Field::EtherType(t) => return frame[12..14].copy_from_slice(&t.to_be_bytes()),
            Field::Xor { at, value } => {
                let len = frame.len();
                return frame[usize::from(at) % len] ^= value;
            }
            _ => {}
        }
        let (ip_header, udp) = frame[ETH..].split_at_mut(IP);
        let mut ip = Ipv4Packet::new_unchecked(ip_header);
        let mut udp = UdpPacket::new_unchecked(udp);
        match *self {
            Field::EtherType(_) | Field::Xor { .. } => {}
            Field::Version(v) => ip.set_version(v),
            Field::Ihl(ihl) => ip.set_header_len((ihl % 16) * 4),
            Field::TotalLen(len) => ip.set_total_len(len),
            Field::Ident(id) => ip.set_ident(id),
            Field::Flags {
                df,
                mf,
                offset_units,
            } => {
                ip.set_dont_frag(df);
                ip.set_more_frags(mf);
                ip.set_frag_offset((offset_units & 0x1FFF) * 8);
            }
            Field::Ttl(ttl) => ip.set_hop_limit(ttl),
            Field::Protocol(p) => ip.set_next_header(IpProtocol::from(p)),
            Field::IpChecksum(sum) => ip.set_checksum(sum),
            Field::IpSrc(a) => ip.set_src_addr(a.into()),
            Field::IpDst(a) => ip.set_dst_addr(a.into()),
            Field::SrcPort(p) => udp.set_src_port(p),
            Field::DstPort(p) => udp.set_dst_port(p),
            Field::UdpLen(len) => udp.set_len(len),
            Field::UdpChecksum(sum) => udp.set_checksum(sum),
        }
    }
}

impl ArpFrame {
    fn build(&self) -> Vec<u8> {
        let sender = self.sender_mac.get();
        let mut frame = build::arp(
            sender,
            self.eth_dst.get(),
            self.operation,
            sender,
            self.sender_ip.get(),
            EthernetAddress(self.target_mac),
            self.target_ip.get(),
        );
        if let Some(header) = self.header {
            frame[ETH..ETH + 6].copy_from_slice(&header);
        }
        if let Some(cut) = self.cut {
            frame.truncate(usize::from(cut) % (frame.len() + 1));
        }
        frame.extend_from_slice(&self.append);
        frame
    }
}

impl FragmentFrame {
    fn build(&self) -> Vec<u8> {
        let from = self.from.get();
        let to = self.to.get();
        let mut payload = Vec::new();
        if let Some((sport, ref dport, len, sum)) = self.udp {
            for field in [sport, dport.get(), len, sum] {
                payload.extend_from_slice(&field.to_be_bytes());
            }
        }
        payload.extend(self.payload.get(1480 - payload.len()));
        let fields = Ipv4Fields {
            src: *from.ip(),
            dst: to,
            ident: self.ident,
            more: self.more,
            offset: (self.offset_units & 0x1FFF) * 8,
            protocol: IpProtocol::Udp,
        };
        build::ipv4(hop_mac(*from.ip()), OUR_MAC, fields, &payload)
    }
}

impl BurstEntry {
    fn build(&self) -> Entry {
        let bytes = self.frame.build();
        let len = (bytes.len() + 4) as u32;
        match self.status {
            Status::AsReceived => Entry::Frame(bytes),
            Status::Flags { low, filter_fail } => Entry::Raw {
                // A frame for another address gets a status word only in a pass-all mode
                // of the filter, which flags it.
                status: len << 16
                    | u32::from(low)
                    | u32::from(filter_fail || !oracle::passes_filter(&bytes)) << 30,
                bytes,
            },
            Status::Empty(low) => Entry::Raw {
                status: u32::from(low),
                bytes,
            },
        }
    }
}

// ---------------------------------------------------------------- the run

/// The run and what the target knows that the firmware does not.
struct Run<'a> {
    rig: Rig<'a>,
    oracle: Oracle,
    /// The driver's receive counters as they must be.
    rx: RxCounts,
    /// `rx_dropped` as it must be.
    rx_dropped: u32,
    /// The network's ARP answers already added to `rx.frames`.
    answers: u32,
    /// A fragment from the subnet's broadcast address was delivered: the fragment watch's
    /// documented blind spot (it does not know that address, smoltcp ignores them), so its
    /// copy of smoltcp's slot may differ from here on.
    blind: bool,
}

impl Run<'_> {
    /// The firmware runs at the current instant until it has nothing left to do now.
    fn settle(&mut self) {
        let now = self.rig.now();
        self.rig.run_until(now);
    }

    /// `entries` arrive together and the firmware takes them in; the server must handle
    /// exactly the datagrams the oracle says, in order (but for those the adapter lost
    /// emptying a stuck socket). Returns what it handled, and how many were lost.
    fn arrive(&mut self, entries: &[Entry]) -> (Vec<Handled>, u32) {
        let fates = oracle::drive(entries);
        let now = self.rig.now();
        let mut expected = Vec::new();
        for (entry, fate) in entries.iter().zip(&fates) {
            if *fate != Driver::Deliver {
                continue;
            }
            let frame = entry.bytes();
            self.blind |= from_subnet_broadcast(frame);
            if let Stack::Datagram { from, len } = self.oracle.receive(now, frame) {
                expected.push((from, len));
            }
        }
        self.rx.add(&fates);
        self.rig.push(entries);
        self.settle();
        self.check_counters();
        let (handled, lost) = self.rig.take_handled();
        check_handled(&handled, &expected, lost);
        (handled, lost)
    }

    /// The driver's receive counters are where they must be.
    fn check_counters(&mut self) {
        self.rx.frames += self.rig.answers_pushed - self.answers;
        self.answers = self.rig.answers_pushed;
        let c: Counters = self.rig.counters();
        let got = RxCounts {
            frames: c.rx_frames,
            errors: c.rx_errors,
            filtered: c.rx_filtered,
            runts: c.rx_runts,
            oversize: c.rx_oversize,
            resyncs: c.rx_resyncs,
        };
        assert_eq!(got, self.rx, "the driver's receive counters");
        assert_eq!(c.rx_dropped, self.rx_dropped, "rx_dropped");
    }

    /// Time passes; no frame arrives but the network's answers.
    fn wait(&mut self, d: Duration) {
        let until = self.rig.now() + d;
        self.rig.run_until(until);
        self.check_counters();
        assert_eq!(
            self.rig.take_handled(),
            (vec![], 0),
            "a datagram out of nowhere"
        );
    }

    fn request(&mut self, r: &Request) {
        let from = r.from.get();
        let len = usize::from(r.len) % (MAX_REASSEMBLED_UDP + 1);
        let mut payload: Vec<u8> = r.head.iter().copied().take(len).collect();
        payload.extend(pattern(len - payload.len(), r.fill));
        let size = 8 * (64 + usize::from(r.frag_units) % 122);
        let mut frames = build::request(from, r.ident, &payload, size);
        let fragmented = frames.len() > 1;
        if fragmented
            && r.wait_for_slot
            && let Some(at) = self.oracle.slot_expires_at()
        {
            let now = self.rig.now();
            if at >= now {
                self.wait(at - now + Duration::from_micros(1));
            }
        }
        if r.reverse {
            frames.reverse();
        }
        if fragmented && r.duplicate {
            // The first fragment again: a new datagram in the slot once this one is done.
            let first = frames[if r.reverse { frames.len() - 1 } else { 0 }].clone();
            frames.push(first);
        }
        let now = self.rig.now();
        let slot_was_free = self.oracle.slot_expires_at().is_none_or(|at| at < now);
        let entries: Vec<Entry> = frames.into_iter().map(Entry::Frame).collect();
        let (handled, lost) = self.arrive(&entries);
        if !fragmented || slot_was_free {
            assert_eq!(
                handled.len() as u32 + lost,
                1,
                "a valid request from {from} reaches the server"
            );
        }
        // The decision: the reply, or a counted drop.
        let looped = len <= 25 && parse_reply(&payload).is_ok();
        for h in handled {
            match h.decision {
                Decision::Drop(DropReason::Loop) if looped => {}
                Decision::Reply(_) | Decision::Drop(DropReason::SourceLimited) if !looped => {}
                other => panic!("a valid request of {len} bytes from {from}: {other:?}"),
            }
        }
    }

    fn oversized(&mut self, from: &Client, extra: u16, ident: u16, frag_units: u8) {
        let from = from.get();
        let len = MAX_REASSEMBLED_UDP + 1 + usize::from(extra) % 4000;
        let payload: Vec<u8> = pattern(len, 0x5A).collect();
        let size = 8 * (64 + usize::from(frag_units) % 122);
        let frames = build::request(from, ident, &payload, size);
        let entries: Vec<Entry> = frames.into_iter().map(Entry::Frame).collect();
        let (handled, lost) = self.arrive(&entries);
        assert_eq!(
            (handled, lost),
            (vec![], 0),
            "a request too large to reassemble"
        );
        let key = (ident, *from.ip(), OUR_IP, u8::from(IpProtocol::Udp));
        assert!(self.oracle.losses.oversized_keys.contains(&key));
    }

    /// At the end, with smoltcp's slot expired and polled: the fragment watch counted every
    /// datagram smoltcp lost in reassembly, and nothing it did not lose.
    fn check_fragment_watch(&mut self) {
        let now = self.rig.now();
        self.oracle.poll(now);
        assert!(!self.oracle.slot_held());
        let counts = self.rig.fragment_counts();
        let total = counts.oversized + counts.busy + counts.timed_out;
        let lost = &self.oracle.losses;
        // Each datagram at least once (its key may come back as a new datagram, which the
        // watch may take for the same one).
        assert!(
            total as usize >= lost.keys.len(),
            "the fragment watch counted {counts:?}; smoltcp lost {lost:?}"
        );
        assert!(
            counts.oversized as usize >= lost.oversized_keys.len(),
            "the fragment watch counted {counts:?}; smoltcp lost {lost:?}"
        );
        if !self.blind {
            assert!(
                total <= lost.oversized + lost.busy + lost.timed_out
                    && counts.oversized <= lost.oversized,
                "the fragment watch counted {counts:?}; smoltcp lost {lost:?}"
            );
        }
    }
}

/// Whether a frame is an IPv4 fragment from the subnet's broadcast address.
fn from_subnet_broadcast(frame: &[u8]) -> bool {
    frame.len() >= ETH + IP
        && frame[12..14] == [0x08, 0x00]
        && Ipv4Packet::new_checked(&frame[ETH..]).is_ok_and(|ip| {
            ip.src_addr() == SUBNET_BROADCAST && (ip.more_frags() || ip.frag_offset() != 0)
        })
}

/// The datagrams the server handled in a step are the expected ones, in order, but for
/// `lost` of them that the adapter lost emptying a stuck socket (counted); every reply says
/// the true length.
fn check_handled(handled: &[Handled], expected: &[(SocketAddrV4, usize)], lost: u32) {
    let got: Vec<(SocketAddr, usize)> = handled.iter().map(|h| (h.from, h.len)).collect();
    let want: Vec<(SocketAddr, usize)> = expected
        .iter()
        .map(|&(from, len)| (from.into(), len))
        .collect();
    let mut rest = want.iter();
    assert!(
        got.len() + lost as usize == want.len() && got.iter().all(|g| rest.any(|w| w == g)),
        "the server got {got:?}, {lost} lost; expected {want:?}"
    );
    for h in handled {
        if let Decision::Reply(reply) = h.decision {
            assert_eq!(
                reply.as_bytes(),
                Reply::new(h.len as u16).as_bytes(),
                "the reply to {} bytes",
                h.len
            );
        }
    }
}

fuzz_target!(|input: Input| {
    let mut sockets = Sockets::new();
    let mut buffers = Box::new(Buffers::new());
    let mut run = Run {
        rig: Rig::new(&mut sockets, &mut buffers, input.boot_ticks),
        oracle: Oracle::default(),
        rx: RxCounts::default(),
        rx_dropped: 0,
        answers: 0,
        blind: false,
    };
    for step in input.steps.iter().take(MAX_STEPS) {
        match step {
            Step::Wait(w) => run.wait(w.get()),
            Step::Request(r) => run.request(r),
            Step::Oversized {
                from,
                extra,
                ident,
                frag_units,
            } => run.oversized(from, *extra, *ident, *frag_units),
            Step::Burst(entries) => {
                let entries: Vec<Entry> = entries
                    .iter()
                    .take(MAX_BURST)
                    .map(BurstEntry::build)
                    .collect();
                run.arrive(&entries);
            }
            Step::ShortData { frame, missing } => {
                let bytes = frame.build();
                let claimed = bytes.len() + 4 + 4 * (usize::from(*missing) % 64 + 1);
                let entry = Entry::Raw {
                    status: (claimed as u32) << 16,
                    bytes,
                };
                run.arrive(&[entry]);
            }
            Step::ChipDropped(n) => {
                run.rig.chip().rx_drop += u32::from(*n);
                run.rx_dropped += u32::from(*n);
                run.settle();
                run.check_counters();
            }
            Step::Tx { full, millis } => {
                let fault = match full {
                    Some(free) => TxFault::Full(u32::from(*free) % tx_fifo_bytes(MAX_FRAME) as u32),
                    None => TxFault::Errors,
                };
                let until = run.rig.now() + Duration::from_millis(u64::from(*millis) + 1);
                run.rig.tx_fault(fault, until);
                run.settle();
                run.check_counters();
            }
        }
    }
    // Long enough for every fault to end, every neighbor to be found (a second of ARP
    // silence at most) and every reply to leave.
    run.wait(Duration::from_secs(10));
    run.settle();
    run.check_fragment_watch();

    let rig = &mut run.rig;
    assert_eq!(rig.queued(), 0, "replies left in the socket");
    assert!(rig.chip().rx_status.is_empty() && rig.chip().rx_data.is_empty());
    let r = rig.replies;
    assert_eq!(r.decided, r.sent + r.failed + r.purged, "{r:?}");
    let c = rig.counters();
    let sent = rig.chip().sent.len();
    assert_eq!(c.tx_frames as usize, sent, "tx_frames");
    let unread_errors = rig
        .chip()
        .tx_status
        .iter()
        .filter(|&&s| s & TX_STATUS_ERROR != 0)
        .count() as u32;
    assert_eq!(
        c.tx_errors + unread_errors,
        rig.errored_sent,
        "tx_errors: every failed send, once its status is read"
    );
    let s = rig.server_counters();
    assert_eq!(s.received, s.replied + s.dropped());
    assert_eq!(
        (s.replied, s.send_failed),
        (r.decided.into(), r.failed.into())
    );
});
