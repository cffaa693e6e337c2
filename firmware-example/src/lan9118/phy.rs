//! [`Lan9118`]: the polled smoltcp 0.14 front end.

use core::fmt;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;

use super::{Chip, Counters, InitError, MAX_FRAME, RX_BUF, Registers};

/// The polled driver, a smoltcp [`Device`]: owns the [`Chip`], a receive and a transmit
/// buffer (1.5 KB each). No interrupts: each `iface.poll` reads what the FIFO holds. See
/// the [module docs](super).
pub struct Lan9118<R: Registers> {
    chip: Chip<R>,
    rx: [u8; RX_BUF],
    tx: [u8; MAX_FRAME],
}

impl<R: Registers> fmt::Debug for Lan9118<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lan9118")
            .field("mac", &self.mac())
            .field("id_rev", &self.chip.id_rev())
            .field("counters", self.chip.counters())
            .finish_non_exhaustive()
    }
}

impl<R: Registers> Lan9118<R> {
    /// [`Chip::new`]: checks that the chip is there, resets it, reads its MAC address and
    /// turns the transmitter and receiver on (no promiscuous mode, broadcasts accepted,
    /// interrupts off). Every wait is bounded: a missing or unresponsive chip is an error.
    pub fn new(regs: R) -> Result<Self, InitError> {
        Ok(Lan9118 {
            chip: Chip::new(regs)?,
            rx: [0; RX_BUF],
            tx: [0; MAX_FRAME],
        })
    }

    /// The MAC address read from the chip (QEMU: `-nic …,mac=`).
    pub fn mac(&self) -> EthernetAddress {
        EthernetAddress(self.chip.mac())
    }

    /// ID_REV as read at init: chip ID in 31:16, revision in 15:0.
    pub fn id_rev(&self) -> u32 {
        self.chip.id_rev()
    }

    /// What the driver has seen and done.
    pub fn counters(&self) -> &Counters {
        self.chip.counters()
    }

    /// Whether a received frame waits in the FIFO (one register read): what a polled main
    /// loop checks on each timer tick before running the whole stack.
    pub fn rx_pending(&mut self) -> bool {
        self.chip.rx_pending()
    }

    /// The FREE_RUN counter: [`FREE_RUN_HZ`](super::FREE_RUN_HZ) ticks since the last
    /// reset, wrapping at 2³².
    pub fn free_run(&mut self) -> u32 {
        self.chip.free_run()
    }

    /// The registers, for what the driver does not cover.
    pub fn registers(&mut self) -> &mut R {
        self.chip.registers()
    }
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
        let len = self.chip.receive(&mut self.rx)?;
        let Lan9118 { chip, rx, tx } = self;
        Some((RxToken { frame: &rx[..len] }, TxToken { chip, buf: tx }))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_, R>> {
        // No room: smoltcp keeps the packet and asks again at its next poll.
        if !self.chip.tx_room() {
            return None;
        }
        Some(TxToken {
            chip: &mut self.chip,
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
    chip: &'a mut Chip<R>,
    buf: &'a mut [u8; MAX_FRAME],
}

impl<R: Registers> fmt::Debug for TxToken<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxToken").finish_non_exhaustive()
    }
}

impl<R: Registers> phy::TxToken for TxToken<'_, R> {
    fn consume<T, F: FnOnce(&mut [u8]) -> T>(self, len: usize, f: F) -> T {
        // smoltcp never asks for more than the MTU it was given (`capabilities`).
        let result = f(&mut self.buf[..len.min(MAX_FRAME)]);
        self.chip.send(self.buf, len);
        result
    }
}
