//! [`Chip`]: the LAN9118 without a network stack, shared by both front ends.

use core::fmt;

use super::{
    BYTE_TEST, Counters, DISCARDS_PER_CALL, Discard, FIFO_INT_LEVELS, KNOWN_IDS, MAX_FRAME, RX_BUF,
    Reg, Registers, RxStatus, RxVerdict, WAIT_LIMIT, bits, bump, mac_reg, tx_commands,
    tx_fifo_bytes,
};

/// Why [`Chip::new`] (and so `Lan9118::new`) failed.
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
    /// The chip's MAC address (its six bytes) is not a unicast address (no EEPROM, say).
    InvalidMac([u8; 6]),
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
            Self::InvalidMac([a, b, c, d, e, g]) => write!(
                f,
                "the LAN9118's MAC address {a:02x}-{b:02x}-{c:02x}-{d:02x}-{e:02x}-{g:02x} \
                 is not unicast"
            ),
        }
    }
}

impl core::error::Error for InitError {}

/// What an interrupt reported, as [`Chip::ack_interrupts`] found (and cleared) it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Interrupts {
    /// A received frame's status word waits (RSFL): wake the receiver.
    pub rx: bool,
    /// The TX FIFO has room for a full frame again (TDFA): wake the transmitter.
    pub tx_room: bool,
}

/// The chip: its registers, its MAC address and the [`Counters`]. No buffers and no stack:
/// a front end owns a receive buffer of [`RX_BUF`] bytes and a transmit buffer of
/// [`MAX_FRAME`] bytes and moves frames between them and the chip with
/// [`receive`](Self::receive) and [`send`](Self::send).
///
/// Interrupts are off after [`new`](Self::new) (the polled driver's way);
/// [`enable_interrupts`](Self::enable_interrupts) routes RSFL (and TDFA, once
/// [`tx_room_or_arm`](Self::tx_room_or_arm) asks for it) to the IRQ pin, and
/// [`ack_interrupts`](Self::ack_interrupts) is the interrupt handler's part.
pub struct Chip<R> {
    regs: R,
    mac: [u8; 6],
    id_rev: u32,
    counters: Counters,
    /// Command B tag of the next frame sent.
    tag: u16,
}

impl<R> fmt::Debug for Chip<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chip")
            .field("mac", &self.mac)
            .field("id_rev", &self.id_rev)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<R: Registers> Chip<R> {
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
        // No interrupt sources (a front end may turn some on), and nothing left pending
        // from before the reset.
        regs.write(Reg::IntEn, 0);
        regs.write(Reg::IntSts, bits::INT_ALL);

        let mut chip = Chip {
            regs,
            mac: [0; 6],
            id_rev,
            counters: Counters::default(),
            tag: 0,
        };
        let low = chip.mac_read(mac_reg::ADDRL)?.to_le_bytes();
        let high = chip.mac_read(mac_reg::ADDRH)?.to_le_bytes();
        let mac = [low[0], low[1], low[2], low[3], high[0], high[1]];
        // Group (multicast or broadcast) addresses have bit 0 of the first byte set.
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(InitError::InvalidMac(mac));
        }
        chip.mac = mac;
        // RX and TX on; promiscuous mode (on after reset) off; broadcasts accepted.
        chip.mac_write(mac_reg::MAC_CR, bits::MAC_CR_TXEN | bits::MAC_CR_RXEN)?;
        chip.regs
            .write(Reg::TxCfg, bits::TX_CFG_TX_ON | bits::TX_CFG_TXSAO);
        Ok(chip)
    }

    /// The MAC address read from the chip (QEMU: `-nic …,mac=`).
    pub fn mac(&self) -> [u8; 6] {
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

    /// The FREE_RUN counter: [`FREE_RUN_HZ`](super::FREE_RUN_HZ) ticks since the last
    /// reset, wrapping at 2³².
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

    /// Reads the next good frame into `buf`, dropping (and counting) bad ones on the way;
    /// its length without the FCS, or `None` when no good frame waits (yet). At most 8 bad
    /// frames are read per call, so a burst of them cannot hold the caller.
    pub fn receive(&mut self, buf: &mut [u8; RX_BUF]) -> Option<usize> {
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
                    for word in buf.chunks_exact_mut(4).take(status.words()) {
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

    /// Whether the TX FIFO has room for a full-size frame, so that a transmit token can
    /// be handed out; a refusal is counted ([`Counters::tx_busy`]).
    pub fn tx_room(&mut self) -> bool {
        let room = tx_data_free(self.regs.read(Reg::TxFifoInf)) >= tx_fifo_bytes(MAX_FRAME);
        if !room {
            bump(&mut self.counters.tx_busy);
        }
        room
    }

    /// Sends the first `len` bytes of `buf`, which a transmit token's closure filled:
    /// drains the TX status FIFO first (counting errors), then writes the two command
    /// words and the frame. A frame longer than [`MAX_FRAME`] (the stack asked for more
    /// than the token's buffer) or without room in the FIFO is dropped and counted.
    pub fn send(&mut self, buf: &[u8; MAX_FRAME], len: usize) {
        let info = self.regs.read(Reg::TxFifoInf);
        for _ in 0..tx_status_used(info) {
            if self.regs.read(Reg::TxStatusFifo) & bits::TX_STATUS_ERROR != 0 {
                bump(&mut self.counters.tx_errors);
            }
        }
        if len > MAX_FRAME || tx_data_free(info) < tx_fifo_bytes(len) {
            bump(&mut self.counters.tx_dropped);
            return;
        }
        let (a, b) = tx_commands(len, self.tag);
        self.regs.write(Reg::TxDataFifo, a);
        self.regs.write(Reg::TxDataFifo, b);
        // Whole words as they are; only the last, partial one is copied into a word (a
        // copy per word is a `memcpy` call per word on the target).
        let (words, rest) = buf[..len].as_chunks::<4>();
        for word in words {
            self.regs.write(Reg::TxDataFifo, u32::from_le_bytes(*word));
        }
        if !rest.is_empty() {
            let mut last = [0; 4];
            last[..rest.len()].copy_from_slice(rest);
            self.regs.write(Reg::TxDataFifo, u32::from_le_bytes(last));
        }
        self.tag = self.tag.wrapping_add(1);
        bump(&mut self.counters.tx_frames);
    }

    /// Routes the chip's interrupts to its IRQ pin, active high and push-pull (QEMU's
    /// model is active low otherwise, i.e. asserted while nothing is pending): RSFL as soon
    /// as a received frame's status waits; TDFA, once enabled by
    /// [`tx_room_or_arm`](Self::tx_room_or_arm), when the TX FIFO has room for a full
    /// frame ([`FIFO_INT_LEVELS`]). Anything pending from before is cleared: a frame that
    /// is already in the FIFO raises nothing, so receive until `None` after this.
    pub fn enable_interrupts(&mut self) {
        self.regs.write(Reg::FifoInt, FIFO_INT_LEVELS);
        self.regs.write(Reg::IntSts, bits::INT_ALL);
        self.regs.write(Reg::IntEn, bits::INT_RSFL);
        self.regs.write(
            Reg::IrqCfg,
            bits::IRQ_CFG_IRQ_EN | bits::IRQ_CFG_IRQ_POL | bits::IRQ_CFG_IRQ_TYPE,
        );
    }

    /// [`tx_room`](Self::tx_room), and when there is none, enables TDFA so that the IRQ
    /// says when there is: a stack that was refused a token is woken then. TDFA's status
    /// is not cleared first: if room came back since the check, the interrupt follows at
    /// once.
    pub fn tx_room_or_arm(&mut self) -> bool {
        if self.tx_room() {
            return true;
        }
        let enabled = self.regs.read(Reg::IntEn);
        self.regs.write(Reg::IntEn, enabled | bits::INT_TDFA);
        false
    }

    /// The interrupt handler's part: reads which enabled sources are pending, clears them
    /// (INT_STS is write-1-to-clear) so the IRQ pin drops, and disables TDFA once it fired
    /// (the room it reports lasts; the next refusal enables it again). Returns what fired:
    /// nothing, if the interrupt was not the chip's (or came before any was enabled).
    pub fn ack_interrupts(&mut self) -> Interrupts {
        let enabled = self.regs.read(Reg::IntEn);
        let pending = self.regs.read(Reg::IntSts) & enabled;
        if pending == 0 {
            return Interrupts::default();
        }
        self.regs.write(Reg::IntSts, pending);
        if pending & bits::INT_TDFA != 0 {
            self.regs.write(Reg::IntEn, enabled & !bits::INT_TDFA);
        }
        Interrupts {
            rx: pending & bits::INT_RSFL != 0,
            tx_room: pending & bits::INT_TDFA != 0,
        }
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
