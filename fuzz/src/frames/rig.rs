//! The network firmware's stack on the host: the fake LAN9118 (its address filter on), the
//! polled driver behind the fragment watch, smoltcp's interface and the core's server, all
//! set up by `udp_echo_firmware_example::board` as the firmware sets them up, run by the
//! firmware's main loop (`board::poll`, then the server, then sleep until a frame comes or
//! `board::wake` says) on a virtual clock. Around it, the network: it answers the firmware's ARP
//! requests, and it can make the chip's transmit side fail for a while.
//!
//! Everything the firmware decides and sends is recorded for the target's checks, and a
//! few rules are checked as it runs (each a panic): every frame sent is well-formed
//! Ethernet with ARP or IPv4 (checksums right, computed here: smoltcp's own checks always
//! pass in fuzz builds), UDP only from the server's port; the replies leave in the order
//! the server decided them, each once, less those it could not queue (`send_failed`: only
//! with the socket's queue full of replies waiting for a neighbour or TX room, or to
//! 0.0.0.0) and those the adapter discarded with a queue stuck for 100 ms
//! (`NalStack::unstick`, whose byte count must match); the driver refuses transmit tokens
//! and drops frames at send time only while the TX FIFO is kept full; the server reads at
//! most one datagram per round (one frame in per round, so smoltcp never finds the
//! socket's queue full); and the loop never spins at one instant with nothing happening
//! unless the TX FIFO is kept full.

use std::collections::VecDeque;
use std::net::{SocketAddr, SocketAddrV4};

use udp_echo_core::{Decision, ResponderConfig, Server, Wake};
use udp_echo_firmware_example::board::{self, Buffers, Sockets, Stack};
use udp_echo_firmware_example::frag::{FragmentCounts, FragmentWatch};
use udp_echo_firmware_example::lan9118::fake::{FakeChip, TX_STATUS_ERROR};
use udp_echo_firmware_example::lan9118::{Counters, Lan9118, MAX_FRAME, tx_fifo_bytes};
use udp_echo_firmware_example::nal::STUCK_AFTER;
use udp_echo_firmware_example::smoltcp::iface::Interface;
use udp_echo_firmware_example::smoltcp::socket::{Socket, udp};
use udp_echo_firmware_example::smoltcp::time::{Duration, Instant};
use udp_echo_firmware_example::smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, Icmpv4Packet, IpProtocol,
    Ipv4Packet, UdpPacket,
};
use udp_echo_firmware_example::{CAPS, clock};

use super::build::{arp_answer, internet_checksum, ipv4_checksum_ok, udp_checksum_ok};
use super::oracle::Entry;
use super::{OUR_IP, OUR_MAC};

/// The fake chip's TX FIFO when nothing is stuck in it.
const TX_FREE: u32 = 4608;

/// Spins at one instant with nothing happening before the loop is declared stuck.
const MAX_IDLE_SPINS: u32 = 16;

/// Rounds one [`Rig::run_until`] may take: far more than any legitimate run needs.
const MAX_ROUNDS: u32 = 200_000;

/// The time a main loop iteration takes when it has to spin (the TX FIFO is full): the
/// firmware's SysTick.
pub const TICK: Duration = Duration::from_millis(1);

/// How the chip's transmit side fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxFault {
    /// The TX FIFO has only this many bytes free (less than a full frame takes).
    Full(u32),
    /// Every frame sent is reported failed (and lost on the wire).
    Errors,
}

/// A datagram the server handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    /// Its source.
    pub from: SocketAddr,
    /// Its length as the server was told.
    pub len: usize,
    /// The server's decision.
    pub decision: Decision,
}

/// A reply the server decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Where to.
    pub to: SocketAddr,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// What became of the replies the server decided on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replies {
    /// Decided on.
    pub decided: u32,
    /// Left the chip, in order, to their source (some reported failed by the chip).
    pub sent: u32,
    /// Could not be queued, counted by the server (`send_failed`).
    pub failed: u32,
    /// Emptied with a queue that did not move, counted by the adapter (`stuck`).
    pub purged: u32,
}

type Nic = FragmentWatch<Lan9118<FakeChip>>;

/// The firmware and its network. See the [module docs](self).
pub struct Rig<'a> {
    nic: Nic,
    iface: Interface,
    stack: Stack<'a>,
    server: Server<Stack<'a>>,
    now: Instant,
    fault: Option<(TxFault, Instant)>,
    /// When the last TX fault ended (or the current one began).
    fault_seen: Option<Instant>,
    /// When the firmware last asked ARP for a neighbour.
    last_arp_request: Option<Instant>,
    /// ARP answers on their way: they enter the chip once its receive FIFO is empty.
    answers: VecDeque<Vec<u8>>,
    /// Frames of the chip's `sent` already looked at.
    sent_seen: usize,
    /// Datagrams the server handled since [`take_handled`](Self::take_handled).
    handled: Vec<Handled>,
    /// Received datagrams the adapter lost emptying a stuck socket, since
    /// [`take_handled`](Self::take_handled).
    rx_lost: u32,
    /// The replies in the socket's send queue, as they must be.
    queue: VecDeque<Reply>,
    /// What became of the replies.
    pub replies: Replies,
    /// ARP answers the network pushed into the chip.
    pub answers_pushed: u32,
    /// Frames sent while the chip reported every send failed.
    pub errored_sent: u32,
    /// ICMP messages sent (port unreachable, echo replies, …).
    pub icmp_sent: u32,
}

impl<'a> Rig<'a> {
    /// Boots the firmware's stack at `boot_ticks` of the chip's 25 MHz counter (the
    /// firmware's seed and its clock's start).
    pub fn new(sockets: &'a mut Sockets<'a>, buffers: &'a mut Buffers, boot_ticks: u32) -> Self {
        let mut chip = FakeChip::new();
        chip.mac = OUR_MAC.0;
        chip.filter = true;
        let mut nic = FragmentWatch::new(Lan9118::new(chip).expect("the fake chip comes up"));
        nic.set_reassembly_timeout(board::REASSEMBLY_TIMEOUT);
        let seed = u64::from(boot_ticks);
        let now = clock::to_net(clock::from_ticks(
            seed,
            udp_echo_firmware_example::lan9118::FREE_RUN_HZ,
        ));
        let mut iface = Interface::new(board::config(nic.inner().mac(), seed), &mut nic, now);
        board::configure(&mut iface).expect("a new interface has room for the route");
        let mut stack = board::stack(sockets, buffers, seed);
        // As the firmware's `serve` binds it: the default guards, true lengths, the seed.
        let server = Server::bind(&mut stack, board::ECHO_PORT, ResponderConfig::default())
            .expect("the server binds")
            .with_caps(CAPS)
            .with_seed(seed);
        Rig {
            nic,
            iface,
            stack,
            server,
            now,
            fault: None,
            fault_seen: None,
            last_arp_request: None,
            answers: VecDeque::new(),
            sent_seen: 0,
            handled: Vec::new(),
            rx_lost: 0,
            queue: VecDeque::new(),
            replies: Replies::default(),
            answers_pushed: 0,
            errored_sent: 0,
            icmp_sent: 0,
        }
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The fake chip.
    pub fn chip(&mut self) -> &mut FakeChip {
        self.nic.inner_mut().registers()
    }

    /// The driver's counters.
    pub fn counters(&self) -> Counters {
        *self.nic.inner().counters()
    }

    /// Datagrams the fragment watch counted as lost in reassembly.
    pub fn fragment_counts(&self) -> FragmentCounts {
        self.nic.counts()
    }

    /// The server's counters.
    pub fn server_counters(&self) -> udp_echo_core::Counters {
        *self.server.counters()
    }

    /// Bytes of replies waiting in the server's socket.
    pub fn replies_queued(&self) -> usize {
        self.stack
            .sockets()
            .iter()
            .map(|(_, socket)| match socket {
                Socket::Udp(s) => udp::Socket::send_queue(s),
                #[allow(unreachable_patterns)]
                _ => 0,
            })
            .sum()
    }

    /// Puts `entries` into the chip's receive FIFOs, which must be empty (the firmware
    /// read everything before).
    pub fn push(&mut self, entries: &[Entry]) {
        assert!(self.chip().rx_status.is_empty() && self.chip().rx_data.is_empty());
        for entry in entries {
            entry.push(self.chip());
        }
    }

    /// Makes the transmit side fail as `fault` says until `until`.
    pub fn tx_fault(&mut self, fault: TxFault, until: Instant) {
        self.end_fault();
        match fault {
            TxFault::Full(free) => {
                assert!(free < tx_fifo_bytes(MAX_FRAME) as u32);
                self.chip().tx_free = free;
            }
            TxFault::Errors => self.chip().tx_status_template = TX_STATUS_ERROR,
        }
        self.fault = Some((fault, until));
        self.fault_seen = Some(self.now);
    }

    fn end_fault(&mut self) {
        if self.fault.take().is_some() {
            self.fault_seen = Some(self.now);
            self.chip().tx_free = TX_FREE;
            self.chip().tx_status_template = 0;
        }
    }

    /// Whether the TX FIFO is being kept full.
    fn tx_full(&self) -> bool {
        matches!(self.fault, Some((TxFault::Full(_), _)))
    }

    /// The datagrams the server handled since the last call, and how many more smoltcp
    /// had taken in for it that the adapter lost emptying a stuck socket.
    pub fn take_handled(&mut self) -> (Vec<Handled>, u32) {
        (
            std::mem::take(&mut self.handled),
            std::mem::take(&mut self.rx_lost),
        )
    }

    /// Replies still to leave.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The firmware's main loop until `until`: poll the interface, poll the server, sleep
    /// until the earlier of their deadlines or until a frame waits. Frames enter only here
    /// (the network's ARP answers, once the FIFO is empty); time moves to each deadline,
    /// and by a [`TICK`] when the loop spins with nothing happening (the TX FIFO full).
    pub fn run_until(&mut self, until: Instant) {
        let mut idle = 0;
        for _ in 0..MAX_ROUNDS {
            if self.fault.is_some_and(|(_, end)| self.now >= end) {
                self.end_fault();
            }
            if self.chip().rx_status.is_empty() {
                while let Some(answer) = self.answers.pop_front() {
                    self.chip().push_frame(&answer);
                    self.answers_pushed += 1;
                }
            }
            let (moved, wake) = self.round();
            if self.nic.inner_mut().rx_pending() || !self.answers.is_empty() {
                continue;
            }
            let core_now = clock::to_core(self.now);
            let wake = board::wake(&mut self.iface, &self.stack, core_now, wake);
            match wake.deadline(core_now).map(clock::to_net) {
                Some(at) if at <= self.now => {
                    if moved {
                        idle = 0;
                        continue;
                    }
                    idle += 1;
                    assert!(
                        self.tx_full() || idle <= MAX_IDLE_SPINS,
                        "the main loop spins at {} with nothing to do",
                        self.now
                    );
                    if self.now >= until {
                        return;
                    }
                    self.now = (self.now + TICK).min(until);
                }
                Some(at) if at <= until => {
                    idle = 0;
                    self.now = at;
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("the main loop ran {MAX_ROUNDS} rounds without reaching {until}");
    }

    /// One main-loop iteration at `now`; whether anything moved, and the server's wake.
    fn round(&mut self) -> (bool, Wake) {
        let before = self.fingerprint();
        let tx_before = self.counters();
        let stuck_before = self.stack.stuck();
        board::poll(&mut self.iface, &mut self.nic, &mut self.stack, self.now);
        let tx_after = self.counters();
        if !self.tx_full() {
            assert_eq!(
                (tx_after.tx_busy, tx_after.tx_dropped),
                (tx_before.tx_busy, tx_before.tx_dropped),
                "the driver refused to send with room in the TX FIFO"
            );
        }
        // What the interface sent left before the adapter looked for a stuck queue.
        self.look_at_sent();
        let stuck = self.stack.stuck();
        if stuck.purges != stuck_before.purges {
            assert_eq!(stuck.purges, stuck_before.purges.wrapping_add(1));
            let bytes: usize = self.queue.iter().map(|r| r.bytes.len()).sum();
            assert_eq!(
                stuck.tx_bytes.wrapping_sub(stuck_before.tx_bytes) as usize,
                bytes,
                "the adapter counts the bytes of the replies it discarded"
            );
            // On this network every ARP request is answered at once: a queue stands still
            // for 100 ms only while the TX side fails, or while smoltcp keeps quiet after
            // an ARP request (for 1 s, whatever the neighbour: `neighbor::Cache::
            // SILENT_TIME` is one deadline for all of them).
            let recent = |t: Option<Instant>| {
                t.is_some_and(|t| self.now < t + Duration::from_millis(1_000) + STUCK_AFTER)
            };
            assert!(
                self.fault.is_some() || recent(self.fault_seen) || recent(self.last_arp_request),
                "a socket queue stood still for nothing"
            );
            self.replies.purged += self.queue.len() as u32;
            self.queue.clear();
            self.rx_lost += stuck.rx_lost.wrapping_sub(stuck_before.rx_lost);
        } else {
            assert_eq!(stuck, stuck_before, "counted without a purge");
        }
        let queued: usize = self.queue.iter().map(|r| r.bytes.len()).sum();
        assert_eq!(
            self.replies_queued(),
            queued,
            "the socket holds the replies not sent"
        );

        let failed_before = self.server.counters().send_failed;
        let mut buf = [0u8; board::SERVER_BUF];
        let mut handled = Vec::new();
        let wake = self
            .server
            .poll(
                &mut self.stack,
                &mut buf,
                clock::to_core(self.now),
                |rx, decision| {
                    handled.push(Handled {
                        from: rx.from,
                        len: rx.len,
                        decision: *decision,
                    });
                },
            )
            .expect("the server's stack never fails");
        assert!(
            handled.len() <= 1,
            "one frame in per round, one datagram out"
        );
        let failed = self.server.counters().send_failed - failed_before;
        for h in &handled {
            let Decision::Reply(reply) = h.decision else {
                continue;
            };
            self.replies.decided += 1;
            let reply = Reply {
                to: h.from,
                bytes: reply.as_bytes().to_vec(),
            };
            if failed == 0 {
                // The queue takes 4 replies (at most 100 bytes of its 1472).
                assert!(
                    self.queue.len() < board::META,
                    "a reply queued in a full socket"
                );
                self.queue.push_back(reply);
            } else {
                // Refused: an address smoltcp cannot send to (0.0.0.0), or the queue full
                // (smoltcp may need a slot for padding where its ring wraps: one early).
                assert!(
                    h.from.ip().is_unspecified() || self.queue.len() + 1 >= board::META,
                    "a reply refused with room in the socket ({} queued)",
                    self.queue.len()
                );
                self.replies.failed += 1;
            }
        }
        let decided = handled
            .iter()
            .filter(|h| matches!(h.decision, Decision::Reply(_)))
            .count();
        assert!(failed as usize <= decided, "a failed send without a reply");
        self.handled.extend(handled);
        (self.fingerprint() != before, wake)
    }

    /// What changes when anything happens (not `tx_busy`: a refused token is nothing
    /// happening).
    fn fingerprint(&mut self) -> [u64; 6] {
        let c = self.counters();
        let chip = self.nic.inner_mut().registers();
        [
            chip.sent.len() as u64,
            (chip.rx_status.len() + chip.rx_data.len()) as u64,
            self.answers.len() as u64,
            self.server.counters().received,
            u64::from(c.rx_frames) + u64::from(c.rx_resyncs),
            u64::from(c.rx_errors + c.rx_filtered + c.rx_runts + c.rx_oversize),
        ]
    }

    /// Parses the frames the chip sent since last time; answers ARP requests.
    fn look_at_sent(&mut self) {
        let errored = self.chip().tx_status_template & TX_STATUS_ERROR != 0;
        let seen = self.sent_seen;
        let sent: Vec<Vec<u8>> = self.chip().sent[seen..]
            .iter()
            .map(|(_, frame)| frame.clone())
            .collect();
        self.sent_seen += sent.len();
        for frame in sent {
            if errored {
                self.errored_sent += 1;
            }
            let eth = EthernetFrame::new_checked(&frame[..]).expect("an Ethernet frame");
            assert_eq!(eth.src_addr(), OUR_MAC, "sent from our MAC");
            match eth.ethertype() {
                EthernetProtocol::Arp => {
                    let arp = ArpPacket::new_checked(eth.payload())
                        .and_then(|p| ArpRepr::parse(&p))
                        .expect("a well-formed ARP packet");
                    let ArpRepr::EthernetIpv4 {
                        operation,
                        source_hardware_addr,
                        source_protocol_addr,
                        target_protocol_addr,
                        ..
                    } = arp
                    else {
                        unreachable!("Ethernet/IPv4 is the only ARP smoltcp speaks")
                    };
                    assert_eq!(source_hardware_addr, OUR_MAC);
                    if operation == ArpOperation::Request {
                        self.last_arp_request = Some(self.now);
                    }
                    if operation == ArpOperation::Request && !errored {
                        assert_eq!(source_protocol_addr, OUR_IP);
                        self.answers.push_back(arp_answer(target_protocol_addr));
                    }
                }
                EthernetProtocol::Ipv4 => self.look_at_ipv4(eth.payload()),
                other => panic!("the firmware sent a {other} frame"),
            }
        }
    }

    fn look_at_ipv4(&mut self, packet: &[u8]) {
        let ip = Ipv4Packet::new_checked(packet).expect("a whole IPv4 packet");
        assert!(
            ipv4_checksum_ok(&packet[..usize::from(ip.header_len())]),
            "IPv4 header checksum"
        );
        assert!(
            !ip.more_frags() && ip.frag_offset() == 0,
            "the firmware sends nothing it must fragment"
        );
        assert_eq!(ip.src_addr(), OUR_IP, "sent from our address");
        match ip.next_header() {
            IpProtocol::Udp => {
                let udp = UdpPacket::new_checked(ip.payload()).expect("a whole UDP datagram");
                assert_eq!(usize::from(udp.len()), ip.payload().len());
                assert!(
                    udp_checksum_ok(ip.src_addr(), ip.dst_addr(), ip.payload()),
                    "UDP checksum"
                );
                assert_eq!(udp.src_port(), board::ECHO_PORT, "UDP only from the server");
                let sent = Reply {
                    to: SocketAddrV4::new(ip.dst_addr(), udp.dst_port()).into(),
                    bytes: udp.payload().to_vec(),
                };
                assert_eq!(
                    self.queue.pop_front().as_ref(),
                    Some(&sent),
                    "the replies leave in the order decided"
                );
                self.replies.sent += 1;
            }
            IpProtocol::Icmp => {
                Icmpv4Packet::new_checked(ip.payload()).expect("a whole ICMP message");
                assert!(internet_checksum(&[ip.payload()]) == 0, "ICMP checksum");
                self.icmp_sent += 1;
            }
            other => panic!("the firmware sent an IPv4 packet of protocol {other}"),
        }
    }
}
