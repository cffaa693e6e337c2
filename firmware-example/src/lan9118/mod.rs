//! Drivers for the SMSC (Microchip) LAN9118 Ethernet controller, the NIC of Arm's MPS2
//! boards and of QEMU's `mps2-an385`/`mps2-an386`/`mps2-an500`: one chip core, two front
//! ends.
//!
//! - [`Chip`]: the chip without a network stack. Init, reading a received frame into a
//!   buffer (with every check and counter below), writing a frame, the TX FIFO's room and
//!   the interrupt pin (set up, acknowledge). No smoltcp, no interrupts of its own: the
//!   front ends decide when to call it.
//! - `Lan9118` (feature `ethernet`): a **polled** smoltcp 0.14 `phy::Device`: smoltcp's
//!   `iface.poll` asks for frames and the driver reads the chip's FIFOs. The network
//!   firmware (`net-firmware/`) runs on it.
//! - `EmbassyDriver` (feature `embassy-driver`): an **interrupt-driven**
//!   `embassy-net-driver` 0.2 driver. The chip raises its IRQ pin when a frame arrives
//!   (RSFL) or, once asked, when the TX FIFO has room again (TDFA); the firmware's
//!   interrupt handler calls `EmbassyState::on_interrupt`, which acknowledges the chip and
//!   wakes embassy-net. The async firmware (`async-firmware/`) runs on it.
//!
//! `no_std`, no heap. The chip is reached through [`Registers`]; `Mmio` (bare metal only)
//! is the memory-mapped block and the only `unsafe` code of the drivers, so everything
//! else, init and interrupts included, is tested on the host against a fake register file
//! (`fake::FakeChip`, public with feature `fake-chip`).
//!
//! ```ignore
//! let regs = Mmio::take(Board::Mps2An386).unwrap();
//! let mut nic = Lan9118::new(regs)?;             // BYTE_TEST, ID_REV, reset, MAC, TX/RX on
//! let config = Config::new(nic.mac().into());
//! let mut iface = Interface::new(config, &mut nic, now);
//! ```
//!
//! **Receive.** Each frame has a status word (its length, FCS included, and error bits)
//! and `ceil(len / 4)` data words. A frame that the stack cannot use (longer than
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
//! words. A front end hands out a transmit token only when the TX FIFO has room for a
//! full-size frame, so the stack keeps the packet and tries again later (the polled one at
//! its next poll; the interrupt-driven one when TDFA says there is room); sent status
//! words are drained to count errors.
//!
//! **Waits** (soft reset, MAC register access) are bounded by [`WAIT_LIMIT`] reads, so an
//! absent or broken chip is an [`InitError`], never a hang.

// The drivers' only `unsafe`: volatile access to the memory-mapped registers.
#[allow(unsafe_code)]
mod regs;

mod chip;
#[cfg(feature = "embassy-driver")]
mod embassy;
#[cfg(feature = "ethernet")]
mod phy;

#[cfg(all(test, feature = "embassy-driver"))]
mod embassy_tests;
// The fake register file: this crate's tests, and with feature `fake-chip` anyone's (the
// fuzz targets drive the drivers and smoltcp through it).
#[cfg(any(test, feature = "fake-chip"))]
pub mod fake;
#[cfg(all(test, feature = "ethernet"))]
pub(crate) mod tests;

pub use chip::{Chip, InitError, Interrupts};
#[cfg(feature = "embassy-driver")]
pub use embassy::{EmbassyDriver, EmbassyRxToken, EmbassyState, EmbassyTxToken};
#[cfg(feature = "ethernet")]
pub use phy::{Lan9118, RxToken, TxToken};
#[cfg(target_os = "none")]
pub use regs::Mmio;
pub use regs::{Board, Reg, Registers};

/// The largest frame exchanged with the stack: a 14-byte Ethernet header and a 1500-byte
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

/// Bytes of a receive buffer ([`Chip::receive`]): the largest frame with its FCS, in whole
/// words.
pub const RX_BUF: usize = words(MAX_FRAME + FCS_LEN) * 4;

/// Frames one receive call reads and discards at most before saying "nothing yet", so
/// a burst of bad frames cannot hold the caller.
const DISCARDS_PER_CALL: u32 = 8;

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
    /// IRQ_CFG: the IRQ pin is driven (without it, it stays deasserted).
    pub const IRQ_CFG_IRQ_EN: u32 = 1 << 8;
    /// IRQ_CFG: the pin is active high (reset: active low).
    pub const IRQ_CFG_IRQ_POL: u32 = 1 << 4;
    /// IRQ_CFG: the pin is push-pull (reset: open drain). QEMU drives the line active high
    /// only with both POL and TYPE set; anything else is active low, i.e. asserted while
    /// nothing is pending, for an NVIC that takes a high level as a request.
    pub const IRQ_CFG_IRQ_TYPE: u32 = 1 << 0;
    /// INT_STS/INT_EN: RX status FIFO level (more status words than FIFO_INT's RX level).
    pub const INT_RSFL: u32 = 1 << 3;
    /// INT_STS/INT_EN: TX data FIFO available (more free bytes than FIFO_INT's TX level).
    pub const INT_TDFA: u32 = 1 << 9;
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

/// FIFO_INT for the interrupt-driven front end: RSFL as soon as one status word waits
/// (RX status level 0), TDFA once the TX data FIFO has room for a full-size frame (TX data
/// available level, in 64-byte units: more than 24 × 64 = 1536 free bytes ≥ the 1524 a
/// full frame takes), TX status level 0 (TSFL is never enabled).
pub const FIFO_INT_LEVELS: u32 = (tx_fifo_bytes(MAX_FRAME).div_ceil(64) as u32) << 24;

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
    /// Hand `len` bytes (the frame without its FCS) to the stack.
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
    /// Frames handed to the stack.
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
    /// Transmit tokens refused because the TX FIFO lacked room for a full frame (the
    /// stack keeps the packet and retries).
    pub tx_busy: u32,
    /// Frames dropped at send time: no room in the TX FIFO, or longer than [`MAX_FRAME`].
    pub tx_dropped: u32,
    /// Sent frames whose status reported an error (collisions, carrier loss, …).
    pub tx_errors: u32,
}

impl Counters {
    /// The wrapping sum of the frames received and of every receive and send loss: each
    /// only grows, so a firmware that logs its drops when they change compares this.
    pub fn moved(&self) -> u32 {
        [
            self.rx_frames,
            self.rx_dropped,
            self.rx_errors,
            self.rx_resyncs,
            self.rx_runts,
            self.rx_oversize,
            self.rx_filtered,
            self.tx_dropped,
            self.tx_errors,
        ]
        .into_iter()
        .fold(0, u32::wrapping_add)
    }
}

fn bump(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}
