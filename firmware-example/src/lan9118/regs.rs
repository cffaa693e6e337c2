//! The LAN9118's register map and the access to it: the drivers' only `unsafe` code.
//!
//! The driver speaks to the chip through [`Registers`], so that its logic runs on the host
//! against a fake register file; [`Mmio`] is the real thing, volatile 32-bit accesses to
//! the chip's memory-mapped block.

/// A LAN9118 system control and status register, by its byte offset from the chip's base
/// address (SMSC LAN9118 datasheet, section 5.3; QEMU's `hw/net/lan9118.c` models these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Reg {
    /// Received frame data, one 32-bit word per read (0x00..0x1C are aliases).
    RxDataFifo = 0x00,
    /// Frame data to send: command A, command B, then the frame (0x20..0x3C are aliases).
    TxDataFifo = 0x20,
    /// One status word per received frame; reading pops it.
    RxStatusFifo = 0x40,
    /// One status word per sent frame; reading pops it.
    TxStatusFifo = 0x48,
    /// Chip ID (bits 31:16) and revision.
    IdRev = 0x50,
    /// Interrupt pin configuration.
    IrqCfg = 0x54,
    /// Interrupt status; writing 1 clears a bit.
    IntSts = 0x58,
    /// Interrupt enables.
    IntEn = 0x5C,
    /// Reads 0x8765_4321 whatever the bus byte order: the chip's presence check.
    ByteTest = 0x64,
    /// FIFO levels that raise interrupts: TX data available (31:24, 64-byte units), TX
    /// status (23:16) and RX status (7:0).
    FifoInt = 0x68,
    /// Receive configuration (RX_DUMP flushes the receive FIFOs).
    RxCfg = 0x6C,
    /// Transmit configuration (TX_ON, status overrun allowed).
    TxCfg = 0x70,
    /// Hardware configuration (soft reset).
    HwCfg = 0x74,
    /// Receive data path control (fast-forward).
    RxDpCtrl = 0x78,
    /// Receive FIFO levels: status entries used (23:16), data bytes used (15:0).
    RxFifoInf = 0x7C,
    /// Transmit FIFO levels: status entries used (23:16), data bytes free (15:0).
    TxFifoInf = 0x80,
    /// Power management (READY).
    PmtCtrl = 0x84,
    /// Free-running 25 MHz counter.
    FreeRun = 0x9C,
    /// Frames the chip dropped for want of receive FIFO space (cleared on read).
    RxDrop = 0xA0,
    /// Indirect access to the MAC registers: command.
    MacCsrCmd = 0xA4,
    /// Indirect access to the MAC registers: data.
    MacCsrData = 0xA8,
}

impl Reg {
    /// The byte offset from the chip's base address.
    pub const fn offset(self) -> usize {
        self as usize
    }
}

/// 32-bit access to the chip's registers. Reads of the FIFO ports pop data, so reading
/// takes `&mut self` too.
pub trait Registers {
    /// Reads `reg`.
    fn read(&mut self, reg: Reg) -> u32;
    /// Writes `value` to `reg`.
    fn write(&mut self, reg: Reg, value: u32);
}

impl<R: Registers + ?Sized> Registers for &mut R {
    fn read(&mut self, reg: Reg) -> u32 {
        (**self).read(reg)
    }

    fn write(&mut self, reg: Reg, value: u32) {
        (**self).write(reg, value)
    }
}

/// A board with a LAN9118 (or a register-compatible LAN9220) at a known address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Board {
    /// Arm MPS2 with the AN385 (Cortex-M3) image, as QEMU's `mps2-an385` models it.
    Mps2An385,
    /// Arm MPS2 with the AN386 (Cortex-M4) image, as QEMU's `mps2-an386` models it.
    Mps2An386,
    /// Arm MPS2 with the AN500 (Cortex-M7) image, as QEMU's `mps2-an500` models it.
    Mps2An500,
}

impl Board {
    /// The chip's register block.
    pub const fn lan9118_base(self) -> usize {
        match self {
            Board::Mps2An385 | Board::Mps2An386 => 0x4020_0000,
            Board::Mps2An500 => 0xA000_0000,
        }
    }
}

#[cfg(target_os = "none")]
pub use mmio::Mmio;

#[cfg(target_os = "none")]
mod mmio {
    use core::sync::atomic::{AtomicBool, Ordering};

    use super::{Board, Reg, Registers};

    /// Set once the register block has been handed out.
    static TAKEN: AtomicBool = AtomicBool::new(false);

    /// The chip's memory-mapped registers.
    ///
    /// Soundness rests on two things: [`take`](Self::take) hands out one `Mmio` in the whole
    /// program, so no two drivers race on the FIFOs; and the firmware runs on the board it
    /// names, so the address is the chip's register block, device memory that no Rust object
    /// lives in (the same contract as a peripheral crate's `Peripherals::take`).
    #[derive(Debug)]
    pub struct Mmio {
        base: usize,
    }

    impl Mmio {
        /// The LAN9118 of `board`, the first time; `None` after that.
        pub fn take(board: Board) -> Option<Self> {
            if TAKEN.swap(true, Ordering::AcqRel) {
                return None;
            }
            Some(Mmio {
                base: board.lan9118_base(),
            })
        }

        fn register(&self, reg: Reg) -> *mut u32 {
            core::ptr::with_exposed_provenance_mut(self.base + reg.offset())
        }
    }

    impl Registers for Mmio {
        fn read(&mut self, reg: Reg) -> u32 {
            // SAFETY: a 4-aligned register of the chip's 256-byte block (every `Reg` offset
            // is a multiple of 4 below 0x100), device memory on this board that no Rust
            // object occupies; `&mut self` on the only `Mmio` serialises the accesses.
            unsafe { self.register(reg).read_volatile() }
        }

        fn write(&mut self, reg: Reg, value: u32) {
            // SAFETY: as in `read`.
            unsafe { self.register(reg).write_volatile(value) }
        }
    }
}
