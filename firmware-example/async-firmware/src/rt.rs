//! The executor and the interrupts: embassy-executor's `raw::Executor` with this firmware's
//! own pender and sleep, the NVIC, and the exception handlers. With `timer.rs` (and the
//! library's LAN9118 register module) the only `unsafe` of the firmware.
//!
//! **Why not `platform-cortex-m`.** Its thread executor sleeps with `WFE` and wakes with
//! `SEV`; QEMU treats `WFE` as a yield, so an idle firmware would spin a whole host core.
//! Here the pender only sets [`PENDED`], and the loop in [`run`] polls the executor, then
//! masks interrupts (PRIMASK), and sleeps in `WFI` only if nothing was pended meanwhile.
//! `WFI` wakes on a pending interrupt even while masked; unmasking then runs its handler,
//! whose wakes set the flag for the next round. A wake between the poll and the mask is
//! seen by the check, so none is lost.
//!
//! **Interrupts.** No device crate: cortex-m-rt's default vector table sends every device
//! interrupt to `DefaultHandler`, which dispatches on the IRQ number: [`Irq`].

use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;
use cortex_m_rt::{ExceptionFrame, exception};
use embassy_executor::{Spawner, raw};
use static_cell::StaticCell;

use crate::firmware::{self, NIC};
use crate::timer;

/// The device interrupts this firmware uses, by their numbers on QEMU's `mps2-an386`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Irq {
    /// CMSDK APB TIMER0: the clock's wrap.
    Timer0 = 8,
    /// CMSDK APB TIMER1: the alarm.
    Timer1 = 9,
    /// The LAN9118.
    Ethernet = 13,
}

// SAFETY: each number is a device interrupt of this board (below the NVIC's 240), so
// `number` names a valid NVIC line, as the trait requires.
unsafe impl InterruptNumber for Irq {
    fn number(self) -> u16 {
        self as u16
    }
}

/// Clears a stale pending state of `irq` and lets it in. Call once its handler's state is
/// ready (for the LAN9118: after the driver took the chip).
pub fn unmask(irq: Irq) {
    NVIC::unpend(irq);
    // SAFETY: unmasking breaks critical sections that rely on this line being masked; this
    // firmware's critical sections mask every interrupt (PRIMASK, cortex-m's single-core
    // implementation), never a single line, and `DefaultHandler` handles the line.
    unsafe { NVIC::unmask(irq) }
}

/// Set by the pender when a task was woken; cleared before each poll.
static PENDED: AtomicBool = AtomicBool::new(false);

/// embassy-executor's pender (it calls `__pender` when a task becomes ready, from any
/// context): only a flag, which [`run`] reads before sleeping.
// SAFETY: the symbol is `__pender` with the signature embassy-executor declares, and it is
// defined once in the program (no platform feature of embassy-executor defines another).
#[unsafe(export_name = "__pender")]
fn pender(_context: *mut ()) {
    PENDED.store(true, Ordering::Release);
}

/// Runs the executor for ever: `init` spawns the tasks; then poll, and sleep in `WFI`
/// until an interrupt whenever no task is ready.
pub fn run(init: impl FnOnce(Spawner)) -> ! {
    static EXECUTOR: StaticCell<raw::Executor> = StaticCell::new();
    let executor: &'static raw::Executor = EXECUTOR.init(raw::Executor::new(core::ptr::null_mut()));
    init(executor.spawner());
    loop {
        PENDED.store(false, Ordering::Relaxed);
        // SAFETY: `poll` is called only here, one call at a time (never from the pender,
        // which only sets a flag, nor from an interrupt handler).
        unsafe { executor.poll() };
        cortex_m::interrupt::free(|_| {
            if !PENDED.load(Ordering::Acquire) {
                cortex_m::asm::wfi();
            }
        });
    }
}

/// Every device interrupt (cortex-m-rt's default vector table): the two timers and the
/// LAN9118; anything else ends the run.
// SAFETY (of defining it): a default handler also receives NMI; nothing on this board
// raises one (QEMU's mps2-an386 has no NMI source), and the handlers below run only for
// the maskable device interrupts 8, 9 and 13, so no critical section is ever preempted by
// code that takes one.
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    const TIMER0: i16 = Irq::Timer0 as i16;
    const TIMER1: i16 = Irq::Timer1 as i16;
    const ETHERNET: i16 = Irq::Ethernet as i16;
    match irqn {
        TIMER0 => timer::on_clock_interrupt(),
        TIMER1 => timer::on_alarm_interrupt(),
        ETHERNET => {
            NIC.on_interrupt();
        }
        _ => {
            defmt::error!("unexpected exception (IRQ {=i16})", irqn);
            firmware::exit_failure()
        }
    }
}

/// A bus fault (no device at an address, say) ends the run instead of hanging it.
// SAFETY (of defining it): logs and exits; takes the logger's critical section only on
// the way out of a firmware that has already failed.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    defmt::error!("hard fault at pc {=u32:#010x}", frame.pc());
    firmware::exit_failure()
}
