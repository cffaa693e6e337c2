//! A LAN9118 register file for host tests: the subset the drivers use, modelled on the
//! datasheet and QEMU's `hw/net/lan9118.c`, with knobs for the failures real chips (or
//! no chip) would show. Public with feature `fake-chip` (for fuzzing the drivers with the
//! stack on the host, `fuzz/`), else built for this crate's tests only; it needs `alloc`,
//! never `std`.
//!
//! It panics when a driver breaks the chip's rules (a register it has no business with,
//! a malformed transmit command, non-zero padding): that is what it is for.
//!
//! Interrupts as QEMU models them: INT_STS is write-1-to-clear; RSFL is set when a frame
//! arrives and more status words wait than FIFO_INT's RX level; the IRQ pin
//! ([`irq_line`](FakeChip::irq_line)) is active low unless IRQ_CFG sets IRQ_EN, IRQ_POL
//! and IRQ_TYPE. TDFA, which QEMU never raises (it sends synchronously, so its TX FIFO is
//! always empty again), is set as the datasheet says, when the free space rises above
//! FIFO_INT's TX data available level ([`free_tx`](FakeChip::free_tx)).

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::{BYTE_TEST, FCS_LEN, Reg, Registers, bits, words};

/// A TX status word's error bit: set it in [`FakeChip::tx_status_template`] and every frame
/// sent is reported as failed (collision, carrier loss, …).
pub const TX_STATUS_ERROR: u32 = bits::TX_STATUS_ERROR;

/// The longest frame a receive status word can describe: its length field (bits 29:16)
/// holds at most 0x3FFF bytes, FCS included.
pub const MAX_STATUS_LEN: usize = 0x3FFF;

/// FIFO_INT after reset (TX data available level 0x48, the others 0).
const FIFO_INT_RESET: u32 = 0x4800_0000;
/// IRQ_CFG.IRQ_INT: an enabled interrupt is pending (read only).
const IRQ_CFG_IRQ_INT: u32 = 1 << 12;

/// The fake chip. Frames pushed with [`push_frame`](Self::push_frame) are received (past the
/// address filter, if [`filter`](Self::filter) is on); frames the driver sends land in
/// [`sent`](Self::sent).
#[derive(Debug)]
pub struct FakeChip {
    /// What BYTE_TEST reads ([`BYTE_TEST`] on a working chip).
    pub byte_test: u32,
    /// What ID_REV reads: chip ID in 31:16, revision in 15:0.
    pub id_rev: u32,
    /// Reads of HW_CFG after a soft reset before SRST clears; `None`: it never does.
    pub reset_reads: Option<u32>,
    reset_left: Option<u32>,
    hw_cfg: u32,
    /// PMT_CTRL.READY: the chip came out of reset.
    pub pmt_ready: bool,
    /// The MAC CSR stays busy for ever.
    pub mac_stuck: bool,
    /// The MAC address in ADDRH/ADDRL (from the EEPROM on a real board).
    pub mac: [u8; 6],
    /// The MAC control register (MAC_CR).
    pub mac_cr: u32,
    mac_cmd: u32,
    mac_data: u32,
    /// INT_EN: the interrupt sources routed to the IRQ pin.
    pub int_en: u32,
    /// INT_STS: pending interrupt sources (write 1 to clear).
    pub int_sts: u32,
    /// Every bit ever written to INT_STS (to clear it).
    pub int_sts_cleared: u32,
    /// IRQ_CFG's writable bits (IRQ_EN, IRQ_POL, IRQ_TYPE).
    pub irq_cfg: u32,
    /// FIFO_INT: the FIFO levels that raise RSFL and TDFA.
    pub fifo_int: u32,
    /// RX_CFG (RX_DUMP reads back as 0).
    pub rx_cfg: u32,
    /// TX_CFG.
    pub tx_cfg: u32,
    /// The RX status FIFO: one word per received frame.
    pub rx_status: VecDeque<u32>,
    /// The RX data FIFO: the frames' words, FCS included.
    pub rx_data: VecDeque<u32>,
    /// RX_DROP: added to by tests, cleared on read.
    pub rx_drop: u32,
    /// Reads of RX_DATA_FIFO with nothing in it.
    pub rx_underflows: u32,
    /// RX_DUMP requests.
    pub rx_dumps: u32,
    /// TX_FIFO_INF's free bytes.
    pub tx_free: u32,
    /// The TX status FIFO: one word per frame sent, until the driver reads it.
    pub tx_status: VecDeque<u32>,
    /// Status words the chip reports for sent frames (error bit and all).
    pub tx_status_template: u32,
    tx_words: Vec<u32>,
    /// Frames sent, with the tag of their command B.
    pub sent: Vec<(u16, Vec<u8>)>,
    /// What FREE_RUN reads.
    pub free_run: u32,
    /// Register reads so far.
    pub reads: u32,
    /// Apply the chip's address filter to [`push_frame`](Self::push_frame), as QEMU models
    /// it with MAC_CR as the driver set it: every frame passes in promiscuous mode (PRMS,
    /// on after reset); else broadcasts unless BCAST disables them, multicasts with MCPAS,
    /// and frames to the chip's own address (no hash filtering). Off: every frame is
    /// queued, whatever its destination.
    pub filter: bool,
    /// Frames [`push_frame`](Self::push_frame) dropped for the address filter (the chip
    /// counts them nowhere).
    pub filtered_out: u32,
}

impl Default for FakeChip {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeChip {
    /// A healthy LAN9118 (as QEMU models it) with MAC `52:54:00:12:34:56`.
    pub fn new() -> Self {
        FakeChip {
            byte_test: BYTE_TEST,
            id_rev: 0x0118_0001,
            reset_reads: Some(2),
            reset_left: None,
            hw_cfg: 0x0005_0004,
            pmt_ready: true,
            mac_stuck: false,
            mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56],
            mac_cr: 1 << 18,
            mac_cmd: 0,
            mac_data: 0,
            int_en: 0xFFFF,
            int_sts: 0,
            int_sts_cleared: 0,
            irq_cfg: 0,
            fifo_int: FIFO_INT_RESET,
            rx_cfg: 0,
            tx_cfg: 0,
            rx_status: VecDeque::new(),
            rx_data: VecDeque::new(),
            rx_drop: 0,
            rx_underflows: 0,
            rx_dumps: 0,
            tx_free: 4608,
            tx_status: VecDeque::new(),
            tx_status_template: 0,
            tx_words: Vec::new(),
            sent: Vec::new(),
            free_run: 0,
            reads: 0,
            filter: false,
            filtered_out: 0,
        }
    }

    /// Whether the address filter lets `frame` in (see [`filter`](Self::filter)).
    pub fn passes_filter(&self, frame: &[u8]) -> bool {
        const BCAST: u32 = 1 << 11;
        const PRMS: u32 = 1 << 18;
        const MCPAS: u32 = 1 << 19;
        let Some(dst) = frame.get(..6) else {
            // Too short to have a destination: the MAC takes it in as a runt.
            return true;
        };
        if self.mac_cr & PRMS != 0 {
            true
        } else if dst == [0xFF; 6] {
            self.mac_cr & BCAST == 0
        } else if dst[0] & 1 == 1 && self.mac_cr & MCPAS != 0 {
            true
        } else {
            dst == self.mac
        }
    }

    /// Queues a received frame as the chip stores it: data and a 4-byte FCS, little-endian
    /// words, and a status word with the length (FCS included) and the address bits; or
    /// drops it, if [`filter`](Self::filter) is on and the address filter refuses it.
    ///
    /// # Panics
    ///
    /// If the frame and its FCS are longer than a status word can say
    /// ([`MAX_STATUS_LEN`]): no chip stores such a frame.
    pub fn push_frame(&mut self, frame: &[u8]) {
        let len = frame.len() + FCS_LEN;
        assert!(
            len <= MAX_STATUS_LEN,
            "a {len}-byte frame does not fit a status word"
        );
        if self.filter && !self.passes_filter(frame) {
            self.filtered_out += 1;
            return;
        }
        let mut status = (len as u32) << 16;
        if frame.len() >= 6 && frame[..6] == [0xFF; 6] {
            status |= 1 << 13;
        } else if frame.first().is_some_and(|b| b & 1 == 1) {
            status |= 1 << 10;
        }
        self.push_raw(status, frame);
    }

    /// Queues a status word and the data words of `bytes` plus an FCS (zeros), as is: the
    /// status need not agree with the data (a chip out of step with its driver).
    pub fn push_raw(&mut self, status: u32, bytes: &[u8]) {
        let mut data = bytes.to_vec();
        data.extend_from_slice(&[0; FCS_LEN]);
        data.resize(words(data.len()) * 4, 0);
        self.rx_data.extend(
            data.chunks_exact(4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
        );
        self.rx_status.push_back(status);
        if self.rx_status.len() > (self.fifo_int & 0xFF) as usize {
            self.int_sts |= bits::INT_RSFL;
        }
    }

    /// The chip sent what its TX FIFO held: `free` bytes are free now. TDFA is set if that
    /// is more than FIFO_INT's TX data available level.
    pub fn free_tx(&mut self, free: u32) {
        self.tx_free = free;
        if free > (self.fifo_int >> 24) * 64 {
            self.int_sts |= bits::INT_TDFA;
        }
    }

    /// Whether an enabled interrupt is pending (IRQ_CFG.IRQ_INT).
    pub fn interrupt_pending(&self) -> bool {
        self.int_sts & self.int_en != 0
    }

    /// The level of the IRQ pin as the interrupt controller sees it (`true`: high, an
    /// interrupt request), as QEMU drives it: a pending enabled interrupt with IRQ_EN set,
    /// inverted unless IRQ_POL and IRQ_TYPE are both set (active low: high while nothing
    /// is pending).
    pub fn irq_line(&self) -> bool {
        let active = self.interrupt_pending() && self.irq_cfg & bits::IRQ_CFG_IRQ_EN != 0;
        let high = bits::IRQ_CFG_IRQ_POL | bits::IRQ_CFG_IRQ_TYPE;
        if self.irq_cfg & high == high {
            active
        } else {
            !active
        }
    }

    fn mac_register(&mut self, index: u32) -> u32 {
        match index {
            1 => self.mac_cr,
            2 => u32::from(self.mac[4]) | u32::from(self.mac[5]) << 8,
            3 => u32::from_le_bytes([self.mac[0], self.mac[1], self.mac[2], self.mac[3]]),
            other => panic!("the driver read MAC register {other}"),
        }
    }

    fn tx_push(&mut self, word: u32) {
        self.tx_words.push(word);
        let a = self.tx_words[0];
        let len = (a & 0x7FF) as usize;
        if self.tx_words.len() < 2 + words(len) {
            return;
        }
        let b = self.tx_words[1];
        assert_eq!(a & 0x3000, 0x3000, "one segment: FIRST and LAST: {a:#x}");
        assert_eq!(a & !0x37FF, 0, "no offset, 4-byte end alignment: {a:#x}");
        assert_eq!((b & 0x7FF) as usize, len, "command B length");
        let mut bytes: Vec<u8> = self.tx_words[2..]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        assert!(
            bytes[len..].iter().all(|&b| b == 0),
            "padding must be zeros"
        );
        bytes.truncate(len);
        self.sent.push(((b >> 16) as u16, bytes));
        self.tx_status
            .push_back(self.tx_status_template | b & 0xFFFF_0000);
        self.tx_words.clear();
    }
}

impl Registers for FakeChip {
    fn read(&mut self, reg: Reg) -> u32 {
        self.reads += 1;
        match reg {
            Reg::RxDataFifo => self.rx_data.pop_front().unwrap_or_else(|| {
                self.rx_underflows += 1;
                0
            }),
            Reg::RxStatusFifo => self.rx_status.pop_front().unwrap_or(0),
            Reg::TxStatusFifo => self.tx_status.pop_front().unwrap_or(0),
            Reg::IdRev => self.id_rev,
            Reg::ByteTest => self.byte_test,
            Reg::HwCfg => {
                if let Some(left) = &mut self.reset_left {
                    if *left == 0 {
                        self.hw_cfg &= !1;
                        self.reset_left = None;
                    } else {
                        *left -= 1;
                    }
                }
                self.hw_cfg
            }
            Reg::PmtCtrl => u32::from(self.pmt_ready),
            Reg::MacCsrCmd => {
                if self.mac_stuck {
                    self.mac_cmd | 1 << 31
                } else {
                    self.mac_cmd
                }
            }
            Reg::MacCsrData => self.mac_data,
            Reg::RxCfg => self.rx_cfg,
            Reg::TxCfg => self.tx_cfg,
            Reg::IntEn => self.int_en,
            Reg::IntSts => self.int_sts,
            Reg::IrqCfg => {
                self.irq_cfg
                    | if self.interrupt_pending() {
                        IRQ_CFG_IRQ_INT
                    } else {
                        0
                    }
            }
            Reg::FifoInt => self.fifo_int,
            Reg::RxFifoInf => {
                (self.rx_status.len().min(0xFF) as u32) << 16
                    | (self.rx_data.len() * 4).min(0xFFFF) as u32
            }
            Reg::TxFifoInf => (self.tx_status.len().min(0xFF) as u32) << 16 | self.tx_free,
            Reg::FreeRun => self.free_run,
            Reg::RxDrop => core::mem::take(&mut self.rx_drop),
            other => panic!("the driver read {other:?}"),
        }
    }

    fn write(&mut self, reg: Reg, value: u32) {
        match reg {
            Reg::TxDataFifo => self.tx_push(value),
            Reg::HwCfg => {
                if value & 1 != 0 {
                    self.hw_cfg |= 1;
                    self.reset_left = self.reset_reads;
                    if self.reset_reads.is_none() {
                        // Stuck in reset for ever.
                        self.reset_left = Some(u32::MAX);
                    }
                    self.mac_cr = 1 << 18;
                    self.rx_status.clear();
                    self.rx_data.clear();
                    self.int_sts = 0;
                    self.int_en = 0;
                    self.fifo_int = FIFO_INT_RESET;
                    self.irq_cfg &= bits::IRQ_CFG_IRQ_POL | bits::IRQ_CFG_IRQ_TYPE;
                }
            }
            Reg::MacCsrCmd => {
                self.mac_cmd = value & !(1 << 31);
                if value & 1 << 31 != 0 && !self.mac_stuck {
                    let index = value & 0xFF;
                    if value & 1 << 30 != 0 {
                        self.mac_data = self.mac_register(index);
                    } else {
                        assert_eq!(index, 1, "the driver writes only MAC_CR");
                        self.mac_cr = self.mac_data;
                    }
                }
            }
            Reg::MacCsrData => self.mac_data = value,
            Reg::IntEn => self.int_en = value,
            Reg::IntSts => {
                self.int_sts &= !value;
                self.int_sts_cleared |= value;
            }
            Reg::IrqCfg => {
                self.irq_cfg =
                    value & (bits::IRQ_CFG_IRQ_EN | bits::IRQ_CFG_IRQ_POL | bits::IRQ_CFG_IRQ_TYPE)
            }
            Reg::FifoInt => self.fifo_int = value,
            Reg::RxCfg => {
                if value & 1 << 15 != 0 {
                    self.rx_dumps += 1;
                    self.rx_status.clear();
                    self.rx_data.clear();
                }
                self.rx_cfg = value & !(1 << 15);
            }
            Reg::TxCfg => self.tx_cfg = value,
            other => panic!("the driver wrote {value:#x} to {other:?}"),
        }
    }
}

#[cfg(all(test, feature = "ethernet"))]
mod tests {
    use super::*;
    use crate::lan9118::Lan9118;

    fn to(dst: [u8; 6]) -> Vec<u8> {
        let mut frame = dst.to_vec();
        frame.resize(60, 0);
        frame
    }

    const MULTICAST: [u8; 6] = [0x01, 0x00, 0x5E, 0, 0, 1];
    const OTHER: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

    #[test]
    fn the_address_filter_passes_everything_until_the_driver_ends_promiscuous_mode() {
        let mut chip = FakeChip {
            filter: true,
            ..FakeChip::new()
        };
        for dst in [MULTICAST, OTHER] {
            chip.push_frame(&to(dst));
        }
        assert_eq!((chip.rx_status.len(), chip.filtered_out), (2, 0));

        let mut nic = Lan9118::new(FakeChip {
            filter: true,
            ..FakeChip::new()
        })
        .unwrap();
        let chip = nic.registers();
        let own = chip.mac;
        for dst in [own, [0xFF; 6], MULTICAST, OTHER] {
            chip.push_frame(&to(dst));
        }
        assert_eq!((chip.rx_status.len(), chip.filtered_out), (2, 2));
    }
}

/// Frames to feed the fake chip, and what to read out of the frames it sent.
#[cfg(feature = "ethernet")]
pub mod frames {
    extern crate alloc;

    use alloc::vec;
    use alloc::vec::Vec;
    use core::net::SocketAddrV4;

    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
        EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
    };

    /// QEMU user networking's gateway MAC (slirp).
    pub const GATEWAY_MAC: EthernetAddress = EthernetAddress([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);

    /// An Ethernet frame around `payload`.
    pub fn ethernet(
        src: EthernetAddress,
        dst: EthernetAddress,
        ethertype: EthernetProtocol,
        payload: &[u8],
    ) -> Vec<u8> {
        let repr = EthernetRepr {
            src_addr: src,
            dst_addr: dst,
            ethertype,
        };
        let mut buf = vec![0; repr.buffer_len() + payload.len()];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        repr.emit(&mut frame);
        frame.payload_mut().copy_from_slice(payload);
        buf
    }

    /// "Who has `target`? Tell `from`", broadcast by `from_mac`.
    pub fn arp_request(
        from_mac: EthernetAddress,
        from: SocketAddrV4,
        target: SocketAddrV4,
    ) -> Vec<u8> {
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: from_mac,
            source_protocol_addr: *from.ip(),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: *target.ip(),
        };
        let mut payload = vec![0; arp.buffer_len()];
        arp.emit(&mut ArpPacket::new_unchecked(&mut payload[..]));
        ethernet(
            from_mac,
            EthernetAddress::BROADCAST,
            EthernetProtocol::Arp,
            &payload,
        )
    }

    /// The UDP header and payload of a datagram, checksum filled in.
    fn udp_datagram(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
        let repr = UdpRepr {
            src_port: from.port(),
            dst_port: to.port(),
        };
        let mut buf = vec![0; repr.header_len() + payload.len()];
        repr.emit(
            &mut UdpPacket::new_unchecked(&mut buf[..]),
            &(*from.ip()).into(),
            &(*to.ip()).into(),
            payload.len(),
            |b| b.copy_from_slice(payload),
            &ChecksumCapabilities::default(),
        );
        buf
    }

    /// Who sends to whom: addresses of an Ethernet frame carrying UDP.
    #[derive(Debug, Clone, Copy)]
    pub struct Flow {
        /// The sender's MAC address (a router's, for a sender off the link).
        pub from_mac: EthernetAddress,
        /// The receiver's MAC address.
        pub to_mac: EthernetAddress,
        /// The sender's address and port.
        pub from: SocketAddrV4,
        /// The receiver's address and port.
        pub to: SocketAddrV4,
    }

    /// Where an IPv4 packet sits in its datagram.
    struct Fragment {
        ident: u16,
        /// Bytes, a multiple of 8.
        offset: usize,
        more: bool,
    }

    /// One IPv4 packet carrying `ip_payload`.
    fn ipv4_frame(flow: Flow, fragment: Fragment, ip_payload: &[u8]) -> Vec<u8> {
        let repr = Ipv4Repr {
            src_addr: *flow.from.ip(),
            dst_addr: *flow.to.ip(),
            next_header: IpProtocol::Udp,
            payload_len: ip_payload.len(),
            hop_limit: 64,
        };
        let mut buf = vec![0; repr.buffer_len() + ip_payload.len()];
        let mut packet = Ipv4Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut packet, &ChecksumCapabilities::ignored());
        packet.set_ident(fragment.ident);
        packet.set_dont_frag(false);
        packet.set_more_frags(fragment.more);
        packet.set_frag_offset(fragment.offset as u16);
        packet.payload_mut().copy_from_slice(ip_payload);
        packet.fill_checksum();
        ethernet(flow.from_mac, flow.to_mac, EthernetProtocol::Ipv4, &buf)
    }

    /// A UDP datagram in one Ethernet frame.
    pub fn udp(flow: Flow, payload: &[u8]) -> Vec<u8> {
        let whole = Fragment {
            ident: 1,
            offset: 0,
            more: false,
        };
        ipv4_frame(flow, whole, &udp_datagram(flow.from, flow.to, payload))
    }

    /// A UDP datagram cut into IPv4 fragments of at most 1480 payload bytes each, as
    /// Linux (and slirp) send one larger than a 1500-byte MTU.
    pub fn udp_fragments(flow: Flow, ident: u16, payload: &[u8]) -> Vec<Vec<u8>> {
        udp_fragments_of(flow, ident, payload, 1480)
    }

    /// A UDP datagram cut into IPv4 fragments of `size` bytes of IP payload (the last one
    /// shorter), in order; one fragment (offset 0, no more fragments) if it fits.
    ///
    /// # Panics
    ///
    /// If `size` is 0 or not a multiple of 8 (fragment offsets count 8-byte units).
    pub fn udp_fragments_of(flow: Flow, ident: u16, payload: &[u8], size: usize) -> Vec<Vec<u8>> {
        assert!(
            size > 0 && size.is_multiple_of(8),
            "fragments of {size} bytes"
        );
        let datagram = udp_datagram(flow.from, flow.to, payload);
        let count = datagram.len().div_ceil(size);
        datagram
            .chunks(size)
            .enumerate()
            .map(|(i, chunk)| {
                let fragment = Fragment {
                    ident,
                    offset: i * size,
                    more: i + 1 < count,
                };
                ipv4_frame(flow, fragment, chunk)
            })
            .collect()
    }

    /// The UDP payload of a sent frame, with its source and destination; `None` if the
    /// frame is anything else.
    pub fn udp_payload(frame: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4, Vec<u8>)> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            return None;
        }
        let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
        let udp = UdpPacket::new_checked(ip.payload()).ok()?;
        Some((
            SocketAddrV4::new(ip.src_addr(), udp.src_port()),
            SocketAddrV4::new(ip.dst_addr(), udp.dst_port()),
            udp.payload().to_vec(),
        ))
    }

    /// Whether a sent frame is an ARP reply to `to_mac`.
    pub fn is_arp_reply_to(frame: &[u8], to_mac: EthernetAddress) -> bool {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return false;
        };
        eth.ethertype() == EthernetProtocol::Arp
            && eth.dst_addr() == to_mac
            && ArpPacket::new_checked(eth.payload())
                .and_then(|p| ArpRepr::parse(&p))
                .is_ok_and(|r| {
                    matches!(
                        r,
                        ArpRepr::EthernetIpv4 {
                            operation: ArpOperation::Reply,
                            ..
                        }
                    )
                })
    }
}
