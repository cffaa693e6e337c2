//! embassy-time on the two CMSDK APB timers of QEMU's `mps2-an386` (25 MHz, 32-bit
//! down-counters with reload and an interrupt on reaching zero): TIMER0 runs free as the
//! clock, extended to 64 bits by counting its wraps (IRQ 8, every 171.8 s); TIMER1 is the
//! alarm, set for the earliest timer of the queue (IRQ 9). Tick-less: nothing interrupts
//! the core between timers but the wraps.
//!
//! The timer queue is embassy-time-queue-utils' integrated queue (its items live in
//! embassy-executor 0.10's tasks, so every waker given to it must be a task's, as all of
//! this firmware's are). The `unsafe` here: the timers' registers, and the exported symbols
//! of `time_driver_impl!`.

use core::cell::{Cell, RefCell};
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::Waker;

use critical_section::{CriticalSection, Mutex};
use embassy_time_queue_utils::Queue;

use crate::rt::{self, Irq};
use crate::ticks::{self, Alarm};

const _: () = assert!(embassy_time_driver::TICK_HZ * ticks::COUNTS_PER_TICK == ticks::COUNTS_HZ);

/// A CMSDK APB timer's register block (ARM DDI0479C, section 4.4).
#[derive(Clone, Copy)]
struct Timer {
    base: usize,
}

/// The clock: free-running from `u32::MAX`.
const CLOCK: Timer = Timer { base: 0x4000_0000 };
/// The alarm: counts down the delay to the next timer, then is stopped.
const ALARM: Timer = Timer { base: 0x4000_1000 };

const CTRL: usize = 0x00;
const VALUE: usize = 0x04;
const RELOAD: usize = 0x08;
/// INTSTATUS when read, INTCLEAR (write 1) when written.
const INT: usize = 0x0C;

const CTRL_ENABLE: u32 = 1 << 0;
const CTRL_IRQ_ENABLE: u32 = 1 << 3;

impl Timer {
    fn register(self, offset: usize) -> *mut u32 {
        core::ptr::with_exposed_provenance_mut(self.base + offset)
    }

    fn read(self, offset: usize) -> u32 {
        // SAFETY: `base` is one of the board's two APB timers (mps2-an386 memory map) and
        // `offset` one of the four 4-aligned registers above: device memory that no Rust
        // object occupies. Reads have no side effects; the writes that change state are
        // made inside critical sections, so an interrupt handler never interleaves.
        unsafe { self.register(offset).read_volatile() }
    }

    fn write(self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { self.register(offset).write_volatile(value) }
    }

    fn stop(self) {
        self.write(CTRL, 0);
        self.write(INT, 1);
    }

    /// Counts down from `counts` (at least 1) and raises its interrupt on reaching zero.
    fn start(self, counts: u32) {
        self.stop();
        // QEMU loads VALUE on a RELOAD write too; the hardware needs both.
        self.write(RELOAD, counts);
        self.write(VALUE, counts);
        self.write(CTRL, CTRL_ENABLE | CTRL_IRQ_ENABLE);
    }
}

/// The driver: the wraps counted so far and the timer queue.
struct Driver {
    periods: Mutex<Cell<u32>>,
    queue: Mutex<RefCell<Queue>>,
}

/// Set once the clock runs: `now` is 0 until then (the driver must answer before init).
static STARTED: AtomicBool = AtomicBool::new(false);

// SAFETY (of the two `#[unsafe(no_mangle)]` functions the macro defines): they are
// `_embassy_time_now` and `_embassy_time_schedule_wake` with the signatures embassy-time
// declares, defined once in the program (embassy-time-driver's `links = "embassy-time"`
// admits one driver crate, and nothing else here defines them).
embassy_time_driver::time_driver_impl!(static DRIVER: Driver = Driver {
    periods: Mutex::new(Cell::new(0)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

/// Starts the clock and unmasks both timers' interrupts. Call first thing: log timestamps
/// read the clock.
pub fn start() {
    CLOCK.start(u32::MAX);
    STARTED.store(true, Ordering::Release);
    rt::unmask(Irq::Timer0);
    rt::unmask(Irq::Timer1);
}

/// TIMER0's interrupt: one more wrap.
pub fn on_clock_interrupt() {
    critical_section::with(|cs| {
        CLOCK.write(INT, 1);
        let periods = DRIVER.periods.borrow(cs);
        periods.set(periods.get().wrapping_add(1));
    });
}

/// TIMER1's interrupt: the earliest timer (or the longest delay) has come. Wakes what is
/// due and sets the alarm for the next.
pub fn on_alarm_interrupt() {
    critical_section::with(|cs| {
        ALARM.stop();
        DRIVER.set_next_alarm(cs);
    });
}

impl Driver {
    /// Counts since the clock started (inside a critical section: see `ticks::extend`).
    fn counts(&self, cs: CriticalSection<'_>) -> u64 {
        if !STARTED.load(Ordering::Acquire) {
            return 0;
        }
        let value = CLOCK.read(VALUE);
        let wrapped = CLOCK.read(INT) & 1 != 0;
        ticks::extend(self.periods.borrow(cs).get(), wrapped, value)
    }

    /// Wakes the timers that are due and sets the alarm for the earliest left; asks again
    /// while that one has come meanwhile.
    fn set_next_alarm(&self, cs: CriticalSection<'_>) {
        let mut queue = self.queue.borrow_ref_mut(cs);
        loop {
            let now = self.counts(cs);
            let next = queue.next_expiration(now / ticks::COUNTS_PER_TICK);
            match ticks::alarm(self.counts(cs), next) {
                Alarm::Never => return ALARM.stop(),
                Alarm::Due => continue,
                Alarm::In(counts) => return ALARM.start(counts),
            }
        }
    }
}

impl embassy_time_driver::Driver for Driver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.counts(cs)) / ticks::COUNTS_PER_TICK
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let changed = self.queue.borrow_ref_mut(cs).schedule_wake(at, waker);
            if changed {
                self.set_next_alarm(cs);
            }
        });
    }
}
