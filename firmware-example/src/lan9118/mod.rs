//! A polled smoltcp [`Device`] for the SMSC (Microchip) LAN9118 Ethernet controller, the
//! NIC of Arm's MPS2 boards and of QEMU's `mps2-an385`/`mps2-an386`/`mps2-an500`.
//!
//! `no_std`, no heap, no interrupts: smoltcp's `iface.poll` asks for frames and the driver
//! reads the chip's FIFOs. The chip is reached through [`Registers`]; `Mmio` (bare metal
//! only) is the memory-mapped block and the only `unsafe` code of the driver, so everything
//! else, init included, is tested on the host against a fake register file.
//!
//! ```ignore
//! let regs = Mmio::take(Board::Mps2An386).unwrap();
//! let mut nic = Lan9118::new(regs)?;             // BYTE_TEST, ID_REV, reset, MAC, TX/RX on
//! let config = Config::new(nic.mac().into());
//! let mut iface = Interface::new(config, &mut nic, now);
//! ```
//!
//! **Receive.** Each frame has a status word (its length, FCS included, and error bits)
//! and `ceil(len / 4)` data words. A frame that smoltcp cannot use (longer than
//! [`MAX_FRAME`], shorter than an Ethernet header, or flagged with an error) is read and
//! discarded, and counted in [`Counters`]. The driver never uses the chip's fast-forward
//! (`RX_DP_CTRL`): QEMU's model of it moves the read pointer without releasing the space,
//! so after a few skips its FIFO looks full and every frame is dropped; reading a frame out
//! costs at most 380 reads here and works on either. Should the status ever claim more
//! data than the FIFO holds, both receive FIFOs are flushed (`RX_DUMP`) and counted, so
//! the driver cannot stay out of step. Frames the chip itself dropped for want of FIFO
//! space (its `RX_DROP` counter) are added to [`Counters::rx_dropped`].
//!
//! **Transmit.** A frame goes out as command A, command B and the frame padded to whole
//! words. `transmit` hands out a token only when the TX FIFO has room for a full-size
//! frame, so smoltcp keeps the packet and tries again at its next poll; sent status words
//! are drained to count errors.
//!
//! **Waits** (soft reset, MAC register access) are bounded by [`WAIT_LIMIT`] reads, so an
//! absent or broken chip is an [`InitError`], never a hang.

// The driver's only `unsafe`: volatile access to the memory-mapped registers.
#[allow(unsafe_code)]
mod regs;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
pub(crate) mod tests;

use core::fmt;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;

#[cfg(target_os = "none")]
pub use regs::Mmio;
pub use regs::{Board, Reg, Registers};

/// The largest frame exchanged with smoltcp: a 14-byte Ethernet header and a 1500-byte
/// payload (no FCS, no VLAN tag). smoltcp's Ethernet MTU is this number.
pub const MAX_FRAME: usize = 1514;

/// The frame check sequence the chip leaves at the end of every received frame.
pub const FCS_LEN: usize = 4;

/// The shortest frame smoltcp can parse: an Ethernet header.
pub const MIN_FRAME: usize = 14;

/// What BYTE_TEST reads on a LAN9118 whatever the bus byte order.
pub const BYTE_TEST: u32 = 0x8765_4321;

/// The rate of the FREE_RUN counter: 25 MHz (it wraps every 171.8 s).
pub const FREE_RUN_HZ: u32 = 25_000_000;

/// Reads of a status bit before a wait gives up. Ample: QEMU answers at once, and the real
/// chip comes out of reset within milliseconds, while this many reads take at least
/// 10 ms on its 165 ns read cycle.
pub const WAIT_LIMIT: u32 = 100_000;

/// Frames one `receive` call reads and discards at most before saying "nothing yet", so
/// a burst of bad frames cannot hold the caller.
const DISCARDS_PER_CALL: u32 = 8;

/// Bytes of the receive buffer: the largest frame with its FCS, in whole words.
const RX_BUF: usize = words(MAX_FRAME + FCS_LEN) * 4;

/// Chip IDs (ID_REV 31:16) of the register-compatible family: LAN9115..9118,
/// LAN9215..9218, LAN9210/9211 and LAN9220/9221 (the MPS2 boards carry a LAN9220; QEMU
/// models a LAN9118).
const KNOWN_IDS: [u16; 12] = [
    0x0115, 0x0116, 0x0117, 0x0118, 0x115A, 0x116A, 0x117A, 0x118A, 0x9210, 0x9211, 0x9220, 0x9221,
];

mod bits {
    pub const HW_CFG_SRST: u32 = 1 << 0;
    pub const PMT_CTRL_READY: u32 = 1 << 0;
    pub const RX_CFG_RX_DUMP: u32 = 1 << 15;
    pub const TX_CFG_TX_ON: u32 = 1 << 1;
    /// Lets the TX status FIFO overrun: a status nobody reads never stops transmission.
    pub const TX_CFG_TXSAO: u32 = 1 << 2;
    pub const MAC_CSR_BUSY: u32 = 1 << 31;
    pub const MAC_CSR_READ: u32 = 1 << 30;
    pub const MAC_CR_TXEN: u32 = 1 << 3;
    pub const MAC_CR_RXEN: u32 = 1 << 2;
    pub const TX_CMD_A_FIRST: u32 = 1 << 13;
    pub const TX_CMD_A_LAST: u32 = 1 << 12;
    pub const TX_STATUS_ERROR: u32 = 1 << 15;
    pub const INT_ALL: u32 = 0xFFFF_FFFF;
}

/// Indirect MAC registers (MAC_CSR_CMD bits 7:0).
mod mac_reg {
    pub const MAC_CR: u32 = 1;
    pub const ADDRH: u32 = 2;
    pub const ADDRL: u32 = 3;
}

/// 32-bit FIFO words that carry `bytes` bytes.
pub const fn words(bytes: usize) -> usize {
    bytes.div_ceil(4)
}

/// TX FIFO bytes a frame of `len` bytes takes: the two command words and the data words.
pub const fn tx_fifo_bytes(len: usize) -> usize {
    8 + words(len) * 4
}

/// The two TX command words for a one-buffer frame of `len` bytes (`len <= 2047`):
/// command A (first and last segment, buffer length, no offset, 4-byte end alignment)
/// and command B (`tag` in 31:16, the frame length).
pub const fn tx_commands(len: usize, tag: u16) -> (u32, u32) {
    let len = (len & 0x7FF) as u32;
    (
        bits::TX_CMD_A_FIRST | bits::TX_CMD_A_LAST | len,
        (tag as u32) << 16 | len,
    )
}

/// A receive status word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RxStatus(pub u32);

impl RxStatus {
    /// The frame's length in bytes as the chip stored it, FCS included (bits 29:16).
    pub const fn len(self) -> usize {
        ((self.0 >> 16) & 0x3FFF) as usize
    }

    /// No bytes at all (the chip never reports this; a driver bug or a fake might).
    pub const fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// FIFO words the frame occupies: all must be read, whatever is done with it.
    pub const fn words(self) -> usize {
        words(self.len())
    }

    /// Error summary (bit 15): CRC error, runt, too long, collision, …
    pub const fn error(self) -> bool {
        self.0 & (1 << 15) != 0
    }

    /// The address filter failed (bit 30): only with the filter in pass-all modes.
    pub const fn filter_fail(self) -> bool {
        self.0 & (1 << 30) != 0
    }

    /// Sent to the broadcast address (bit 13).
    pub const fn broadcast(self) -> bool {
        self.0 & (1 << 13) != 0
    }

    /// Sent to a multicast address (bit 10).
    pub const fn multicast(self) -> bool {
        self.0 & (1 << 10) != 0
    }

    /// What to do with the frame.
    pub const fn verdict(self) -> RxVerdict {
        let len = self.len();
        if self.error() {
            RxVerdict::Discard(Discard::Error)
        } else if self.filter_fail() {
            RxVerdict::Discard(Discard::Filtered)
        } else if len < MIN_FRAME + FCS_LEN {
            RxVerdict::Discard(Discard::Runt)
        } else if len > MAX_FRAME + FCS_LEN {
            RxVerdict::Discard(Discard::Oversize)
        } else {
            RxVerdict::Deliver { len: len - FCS_LEN }
        }
    }
}

/// What the driver does with a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RxVerdict {
    /// Hand `len` bytes (the frame without its FCS) to smoltcp.
    Deliver {
        /// Bytes of the frame without the FCS.
        len: usize,
    },
    /// Read it out of the FIFO and drop it.
    Discard(Discard),
}

/// Why a received frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Discard {
    /// The chip flagged an error.
    Error,
    /// The address filter failed.
    Filtered,
    /// Shorter than an Ethernet header.
    Runt,
    /// Longer than [`MAX_FRAME`] (plus FCS).
    Oversize,
}

/// What the driver has seen and done since init. Counts saturate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Counters {
    /// Frames handed to smoltcp.
    pub rx_frames: u32,
    /// Frames the chip flagged with an error, read and dropped.
    pub rx_errors: u32,
    /// Frames that failed the address filter, read and dropped.
    pub rx_filtered: u32,
    /// Frames shorter than an Ethernet header, read and dropped.
    pub rx_runts: u32,
    /// Frames longer than [`MAX_FRAME`], read and dropped.
    pub rx_oversize: u32,
    /// Frames the chip dropped because its receive FIFO was full (`RX_DROP`).
    pub rx_dropped: u32,
    /// Times the receive FIFOs were flushed because status and data disagreed (with the
    /// frames in them).
    pub rx_resyncs: u32,
    /// Frames sent.
    pub tx_frames: u32,
    /// `transmit` calls refused because the TX FIFO lacked room for a full frame (smoltcp
    /// keeps the packet and retries).
    pub tx_busy: u32,
    /// Frames dropped at send time: no room in the TX FIFO, or longer than [`MAX_FRAME`].
    pub tx_dropped: u32,
    /// Sent frames whose status reported an error (collisions, carrier loss, …).
    pub tx_errors: u32,
}

fn bump(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}

/// Why [`Lan9118::new`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum InitError {
    /// BYTE_TEST did not read 0x8765_4321: no LAN9118 at this address (or the bus is not
    /// set up for it).
    NotFound {
        /// What BYTE_TEST read.
        byte_test: u32,
    },
    /// ID_REV names a chip outside the LAN9118 family.
    UnknownChip {
        /// What ID_REV read.
        id_rev: u32,
    },
    /// The soft reset (HW_CFG.SRST) did not complete within [`WAIT_LIMIT`] reads.
    ResetTimeout,
    /// PMT_CTRL.READY did not come up within [`WAIT_LIMIT`] reads.
    NotReady,
    /// A MAC register access stayed busy for [`WAIT_LIMIT`] reads.
    MacTimeout,
    /// The chip's MAC address is not a unicast address (no EEPROM, say).
    InvalidMac(EthernetAddress),
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound { byte_test } => write!(
                f,
                "no LAN9118: BYTE_TEST reads {byte_test:#010x}, not {BYTE_TEST:#010x}"
            ),
            Self::UnknownChip { id_rev } => {
                write!(f, "ID_REV {id_rev:#010x} is not a LAN9118-family chip")
            }
            Self::ResetTimeout => f.write_str("the LAN9118 soft reset did not complete"),
            Self::NotReady => f.write_str("the LAN9118 did not become ready after reset"),
            Self::MacTimeout => f.write_str("a LAN9118 MAC register access did not complete"),
            Self::InvalidMac(mac) => write!(f, "the LAN9118's MAC address {mac} is not unicast"),
        }
    }
}

impl core::error::Error for InitError {}

/// The driver: owns the registers, a receive and a transmit buffer (1.5 KB each) and the
/// counters. See the [module docs](self).
pub struct Lan9118<R: Registers> {
    regs: R,
    mac: EthernetAddress,
    id_rev: u32,
    counters: Counters,
    /// Command B tag of the next frame sent.
    tag: u16,
    rx: [u8; RX_BUF],
    tx: [u8; MAX_FRAME],
}

impl<R: Registers> fmt::Debug for Lan9118<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lan9118")
            .field("mac", &self.mac)
            .field("id_rev", &self.id_rev)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<R: Registers> Lan9118<R> {
    /// Checks that the chip is there, resets it, reads its MAC address and turns the
    /// transmitter and receiver on (no promiscuous mode, broadcasts accepted, interrupts
    /// off). Every wait is bounded: a missing or unresponsive chip is an error.
    pub fn new(mut regs: R) -> Result<Self, InitError> {
        let byte_test = regs.read(Reg::ByteTest);
        if byte_test != BYTE_TEST {
            return Err(InitError::NotFound { byte_test });
        }
        let id_rev = regs.read(Reg::IdRev);
        if !KNOWN_IDS.contains(&((id_rev >> 16) as u16)) {
            return Err(InitError::UnknownChip { id_rev });
        }
        let hw_cfg = regs.read(Reg::HwCfg);
        regs.write(Reg::HwCfg, hw_cfg | bits::HW_CFG_SRST);
        if !wait_for(&mut regs, Reg::HwCfg, bits::HW_CFG_SRST, 0) {
            return Err(InitError::ResetTimeout);
        }
        if !wait_for(
            &mut regs,
            Reg::PmtCtrl,
            bits::PMT_CTRL_READY,
            bits::PMT_CTRL_READY,
        ) {
            return Err(InitError::NotReady);
        }
        // Polled: no interrupt sources, and nothing left pending from before the reset.
        regs.write(Reg::IntEn, 0);
        regs.write(Reg::IntSts, bits::INT_ALL);

        let mut nic = Lan9118 {
            regs,
            mac: EthernetAddress([0; 6]),
            id_rev,
            counters: Counters::default(),
            tag: 0,
            rx: [0; RX_BUF],
            tx: [0; MAX_FRAME],
        };
        let low = nic.mac_read(mac_reg::ADDRL)?.to_le_bytes();
        let high = nic.mac_read(mac_reg::ADDRH)?.to_le_bytes();
        let mac = EthernetAddress([low[0], low[1], low[2], low[3], high[0], high[1]]);
        if !mac.is_unicast() || mac == EthernetAddress([0; 6]) {
            return Err(InitError::InvalidMac(mac));
        }
        nic.mac = mac;
        // RX and TX on; promiscuous mode (on after reset) off; broadcasts accepted.
        nic.mac_write(mac_reg::MAC_CR, bits::MAC_CR_TXEN | bits::MAC_CR_RXEN)?;
        nic.regs
            .write(Reg::TxCfg, bits::TX_CFG_TX_ON | bits::TX_CFG_TXSAO);
        Ok(nic)
    }

    /// The MAC address read from the chip (QEMU: `-nic …,mac=`).
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// ID_REV as read at init: chip ID in 31:16, revision in 15:0.
    pub fn id_rev(&self) -> u32 {
        self.id_rev
    }

    /// What the driver has seen and done.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether a received frame waits in the FIFO (one register read): what a polled main
    /// loop checks on each timer tick before running the whole stack.
    pub fn rx_pending(&mut self) -> bool {
        rx_status_used(self.regs.read(Reg::RxFifoInf)) > 0
    }

    /// The FREE_RUN counter: [`FREE_RUN_HZ`] ticks since the last reset, wrapping at 2³².
    pub fn free_run(&mut self) -> u32 {
        self.regs.read(Reg::FreeRun)
    }

    /// The registers, for what the driver does not cover.
    pub fn registers(&mut self) -> &mut R {
        &mut self.regs
    }

    fn mac_wait(&mut self) -> Result<(), InitError> {
        if wait_for(&mut self.regs, Reg::MacCsrCmd, bits::MAC_CSR_BUSY, 0) {
            Ok(())
        } else {
            Err(InitError::MacTimeout)
        }
    }

    fn mac_read(&mut self, index: u32) -> Result<u32, InitError> {
        self.mac_wait()?;
        self.regs.write(
            Reg::MacCsrCmd,
            bits::MAC_CSR_BUSY | bits::MAC_CSR_READ | index,
        );
        self.mac_wait()?;
        Ok(self.regs.read(Reg::MacCsrData))
    }

    fn mac_write(&mut self, index: u32, value: u32) -> Result<(), InitError> {
        self.mac_wait()?;
        self.regs.write(Reg::MacCsrData, value);
        self.regs.write(Reg::MacCsrCmd, bits::MAC_CSR_BUSY | index);
        self.mac_wait()
    }

    /// Reads the next good frame into `self.rx`, dropping bad ones on the way; its length
    /// without FCS, or `None` when no good frame waits (yet).
    fn read_frame(&mut self) -> Option<usize> {
        // Clear-on-read on the chip (QEMU always reads 0).
        let dropped = self.regs.read(Reg::RxDrop);
        self.counters.rx_dropped = self.counters.rx_dropped.saturating_add(dropped);
        for _ in 0..DISCARDS_PER_CALL {
            let info = self.regs.read(Reg::RxFifoInf);
            if rx_status_used(info) == 0 {
                return None;
            }
            let status = RxStatus(self.regs.read(Reg::RxStatusFifo));
            if status.is_empty() || status.words() * 4 > rx_data_used(info) {
                self.resync();
                return None;
            }
            match status.verdict() {
                RxVerdict::Deliver { len } => {
                    for word in self.rx.chunks_exact_mut(4).take(status.words()) {
                        word.copy_from_slice(&self.regs.read(Reg::RxDataFifo).to_le_bytes());
                    }
                    bump(&mut self.counters.rx_frames);
                    return Some(len);
                }
                RxVerdict::Discard(why) => {
                    for _ in 0..status.words() {
                        self.regs.read(Reg::RxDataFifo);
                    }
                    bump(match why {
                        Discard::Error => &mut self.counters.rx_errors,
                        Discard::Filtered => &mut self.counters.rx_filtered,
                        Discard::Runt => &mut self.counters.rx_runts,
                        Discard::Oversize => &mut self.counters.rx_oversize,
                    });
                }
            }
        }
        None
    }

    /// Flushes both receive FIFOs: status and data no longer agree.
    fn resync(&mut self) {
        let rx_cfg = self.regs.read(Reg::RxCfg);
        self.regs.write(Reg::RxCfg, rx_cfg | bits::RX_CFG_RX_DUMP);
        // Self-clearing; if it does not clear, the next receive resyncs again.
        wait_for(&mut self.regs, Reg::RxCfg, bits::RX_CFG_RX_DUMP, 0);
        bump(&mut self.counters.rx_resyncs);
    }

    fn tx_room(&mut self) -> bool {
        tx_data_free(self.regs.read(Reg::TxFifoInf)) >= tx_fifo_bytes(MAX_FRAME)
    }
}

/// Reads `reg` until `reg & mask == want`, at most [`WAIT_LIMIT`] times.
fn wait_for(regs: &mut impl Registers, reg: Reg, mask: u32, want: u32) -> bool {
    (0..WAIT_LIMIT).any(|_| regs.read(reg) & mask == want)
}

/// RX_FIFO_INF: status words waiting.
const fn rx_status_used(info: u32) -> usize {
    ((info >> 16) & 0xFF) as usize
}

/// RX_FIFO_INF: data bytes waiting.
const fn rx_data_used(info: u32) -> usize {
    (info & 0xFFFF) as usize
}

/// TX_FIFO_INF: status words waiting.
const fn tx_status_used(info: u32) -> usize {
    ((info >> 16) & 0xFF) as usize
}

/// TX_FIFO_INF: data bytes free.
const fn tx_data_free(info: u32) -> usize {
    (info & 0xFFFF) as usize
}

impl<R: Registers> Device for Lan9118<R> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, R>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_, R>)> {
        let len = self.read_frame()?;
        let Lan9118 {
            regs,
            counters,
            tag,
            rx,
            tx,
            ..
        } = self;
        Some((
            RxToken { frame: &rx[..len] },
            TxToken {
                regs,
                counters,
                tag,
                buf: tx,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_, R>> {
        if !self.tx_room() {
            bump(&mut self.counters.tx_busy);
            return None;
        }
        Some(TxToken {
            regs: &mut self.regs,
            counters: &mut self.counters,
            tag: &mut self.tag,
            buf: &mut self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        // The QEMU model has no checksum offload (nor is it enabled on the real chip):
        // smoltcp computes and checks every checksum, the default.
        caps
    }
}

/// A received frame, read out of the FIFO into the driver's buffer.
#[derive(Debug)]
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<T, F: FnOnce(&[u8]) -> T>(self, f: F) -> T {
        f(self.frame)
    }
}

/// Permission to send one frame.
pub struct TxToken<'a, R: Registers> {
    regs: &'a mut R,
    counters: &'a mut Counters,
    tag: &'a mut u16,
    buf: &'a mut [u8; MAX_FRAME],
}

impl<R: Registers> fmt::Debug for TxToken<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxToken").field("tag", &self.tag).finish()
    }
}

impl<R: Registers> phy::TxToken for TxToken<'_, R> {
    fn consume<T, F: FnOnce(&mut [u8]) -> T>(self, len: usize, f: F) -> T {
        // smoltcp never asks for more than the MTU it was given (`capabilities`).
        let frame = &mut self.buf[..len.min(MAX_FRAME)];
        let result = f(frame);
        let info = self.regs.read(Reg::TxFifoInf);
        for _ in 0..tx_status_used(info) {
            if self.regs.read(Reg::TxStatusFifo) & bits::TX_STATUS_ERROR != 0 {
                bump(&mut self.counters.tx_errors);
            }
        }
        if len > MAX_FRAME || tx_data_free(info) < tx_fifo_bytes(len) {
            bump(&mut self.counters.tx_dropped);
            return result;
        }
        let (a, b) = tx_commands(len, *self.tag);
        self.regs.write(Reg::TxDataFifo, a);
        self.regs.write(Reg::TxDataFifo, b);
        for chunk in frame.chunks(4) {
            let mut word = [0; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            self.regs.write(Reg::TxDataFifo, u32::from_le_bytes(word));
        }
        *self.tag = self.tag.wrapping_add(1);
        bump(&mut self.counters.tx_frames);
        result
    }
}
