//! [`EmbassyDriver`]: the interrupt-driven embassy-net-driver 0.2 front end.

use core::cell::RefCell;
use core::fmt;
use core::task::Context;

use embassy_net_driver::{Capabilities, HardwareAddress, LinkState};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::waitqueue::AtomicWaker;

use super::{Chip, Counters, Interrupts, MAX_FRAME, RX_BUF, Registers};

/// What the [`EmbassyDriver`] shares with the chip's interrupt handler: the [`Chip`] and
/// the receiver's and the transmitter's wakers. `const`-constructible, for a `static`:
///
/// ```ignore
/// static NIC: EmbassyState<Mmio> = EmbassyState::new();
///
/// let chip = Chip::new(Mmio::take(Board::Mps2An386).unwrap())?;
/// let driver = EmbassyDriver::new(&NIC, chip);   // interrupts on, at the chip
/// // ... then unmask the chip's IRQ (13 on MPS2 AN385/AN386), whose handler calls
/// NIC.on_interrupt();
/// ```
pub struct EmbassyState<R> {
    chip: Mutex<CriticalSectionRawMutex, RefCell<Option<Chip<R>>>>,
    rx: AtomicWaker,
    tx: AtomicWaker,
}

impl<R> EmbassyState<R> {
    /// No chip yet: [`EmbassyDriver::new`] hands it over.
    pub const fn new() -> Self {
        EmbassyState {
            chip: Mutex::new(RefCell::new(None)),
            rx: AtomicWaker::new(),
            tx: AtomicWaker::new(),
        }
    }
}

impl<R> Default for EmbassyState<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R> fmt::Debug for EmbassyState<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbassyState").finish_non_exhaustive()
    }
}

impl<R: Registers> EmbassyState<R> {
    /// The chip's interrupt handler: acknowledges what the chip raised and wakes the
    /// receiver on RSFL, the transmitter on TDFA; returns what fired. Safe to call at any
    /// time (a spurious call, or one before the driver exists, wakes nobody), but it must
    /// be called for each interrupt of the chip: its IRQ line is level-triggered and stays
    /// up until acknowledged.
    pub fn on_interrupt(&self) -> Interrupts {
        let fired = self.with(Chip::ack_interrupts).unwrap_or_default();
        if fired.rx {
            self.rx.wake();
        }
        if fired.tx_room {
            self.tx.wake();
        }
        fired
    }

    /// Runs `f` on the chip inside the critical section (interrupts masked): e.g. to read
    /// its counters. `None` before [`EmbassyDriver::new`].
    pub fn with<T>(&self, f: impl FnOnce(&mut Chip<R>) -> T) -> Option<T> {
        self.chip.lock(|chip| chip.borrow_mut().as_mut().map(f))
    }

    /// The chip's counters (a copy), `None` before [`EmbassyDriver::new`].
    pub fn counters(&self) -> Option<Counters> {
        self.with(|chip| *chip.counters())
    }
}

/// The interrupt-driven driver: an [`embassy_net_driver::Driver`] for embassy-net, on a
/// [`Chip`] held by an [`EmbassyState`]. Owns a receive and a transmit buffer (1.5 KB
/// each), like the polled driver.
///
/// The chip lives in the [`EmbassyState`] (a `static` in a firmware), behind a
/// critical-section mutex, with two wakers. Two contexts use it:
///
/// - **the driver** (embassy-net's runner task): `receive` and `transmit` register the
///   task's waker *first* and then look at the chip, so an interrupt between the look and
///   the return still wakes the task. A received frame is read into the driver's buffer
///   before the token is handed out; a transmit token is handed out only with room for a
///   full frame, else TDFA is enabled ([`Chip::tx_room_or_arm`]) and `None` returned:
///   embassy-net stops polling the device until something wakes it, so the driver must.
/// - **the interrupt handler** (the firmware's, for the chip's IRQ line):
///   [`EmbassyState::on_interrupt`] acknowledges the chip ([`Chip::ack_interrupts`], which
///   lowers the line) and wakes the receiver on RSFL, the transmitter on TDFA.
///
/// Registers are only touched inside the mutex, so the handler never interleaves with a
/// frame being read or written. The closures of the tokens (embassy-net building or
/// parsing a frame) run outside it, on the driver's own buffers.
pub struct EmbassyDriver<'a, R> {
    state: &'a EmbassyState<R>,
    mac: [u8; 6],
    rx: [u8; RX_BUF],
    tx: [u8; MAX_FRAME],
}

impl<R> fmt::Debug for EmbassyDriver<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbassyDriver")
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl<'a, R: Registers> EmbassyDriver<'a, R> {
    /// Turns the chip's interrupts on ([`Chip::enable_interrupts`]: RSFL now, TDFA when a
    /// transmit finds no room; the IRQ pin active high) and hands it to `state`, where the
    /// interrupt handler finds it. Unmask the chip's IRQ after this, not before: until
    /// then QEMU holds the line up (active low, nothing pending).
    pub fn new(state: &'a EmbassyState<R>, mut chip: Chip<R>) -> Self {
        chip.enable_interrupts();
        let mac = chip.mac();
        state.chip.lock(|slot| *slot.borrow_mut() = Some(chip));
        EmbassyDriver {
            state,
            mac,
            rx: [0; RX_BUF],
            tx: [0; MAX_FRAME],
        }
    }

    /// The MAC address read from the chip.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The state shared with the interrupt handler.
    pub fn state(&self) -> &'a EmbassyState<R> {
        self.state
    }
}

impl<R: Registers> embassy_net_driver::Driver for EmbassyDriver<'_, R> {
    type RxToken<'b>
        = EmbassyRxToken<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = EmbassyTxToken<'b, R>
    where
        Self: 'b;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        // Waker first: a frame arriving after the look below raises RSFL, which wakes it.
        self.state.rx.register(cx.waker());
        let rx = &mut self.rx;
        let len = self.state.with(|chip| chip.receive(rx)).flatten()?;
        Some((
            EmbassyRxToken {
                frame: &mut self.rx[..len],
            },
            EmbassyTxToken {
                state: self.state,
                buf: &mut self.tx,
            },
        ))
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Self::TxToken<'_>> {
        // Waker first: room returning after the look below raises TDFA, which wakes it.
        self.state.tx.register(cx.waker());
        if !self.state.with(Chip::tx_room_or_arm).unwrap_or(false) {
            return None;
        }
        Some(EmbassyTxToken {
            state: self.state,
            buf: &mut self.tx,
        })
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        // No PHY code: QEMU's link is up from reset, and the polled driver assumes it too.
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = MAX_FRAME;
        // No checksum offload (QEMU's model has none): the stack computes and checks every
        // checksum, the default.
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.mac)
    }
}

/// A received frame, read out of the FIFO into the driver's buffer.
#[derive(Debug)]
pub struct EmbassyRxToken<'a> {
    frame: &'a mut [u8],
}

impl embassy_net_driver::RxToken for EmbassyRxToken<'_> {
    fn consume<T, F: FnOnce(&mut [u8]) -> T>(self, f: F) -> T {
        f(self.frame)
    }
}

/// Permission to send one frame: the closure fills the driver's transmit buffer outside
/// the critical section, then the frame is written to the chip inside it.
pub struct EmbassyTxToken<'a, R> {
    state: &'a EmbassyState<R>,
    buf: &'a mut [u8; MAX_FRAME],
}

impl<R> fmt::Debug for EmbassyTxToken<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbassyTxToken").finish_non_exhaustive()
    }
}

impl<R: Registers> embassy_net_driver::TxToken for EmbassyTxToken<'_, R> {
    fn consume<T, F: FnOnce(&mut [u8]) -> T>(self, len: usize, f: F) -> T {
        // embassy-net never asks for more than the MTU it was given (`capabilities`).
        let result = f(&mut self.buf[..len.min(MAX_FRAME)]);
        let buf = &*self.buf;
        self.state.with(|chip| chip.send(buf, len));
        result
    }
}
