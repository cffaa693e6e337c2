//! The bare-metal example: Cortex-M4F (`thumbv7em-none-eabihf`) under QEMU `mps2-an386`,
//! logging with defmt over semihosting. Run it with `scripts/qemu-run.sh`.
//!
//! The outcome is QEMU's exit status (semihosting `exit`): 0 when `run` succeeds,
//! 1 on `Err` or panic, so CI needs no log scraping.
//!
//! Built for the host (e.g. `--all-features`), this file is a stub that says how to build
//! it, so feature-unified host builds never need the Cortex-M crates.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "bare-metal is firmware: build it with --target thumbv7em-none-eabihf \
         --no-default-features --features bare-metal (see scripts/qemu-run.sh)"
    );
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod firmware {
    use core::sync::atomic::{AtomicU32, Ordering};

    use cortex_m as _; // its critical-section impl backs defmt-semihosting
    use cortex_m_rt::entry;
    use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
    use defmt_semihosting as _; // the global defmt logger

    /// What a successful run proves; logged before exiting 0.
    #[derive(defmt::Format)]
    struct Report {
        /// Request/reply exchanges that completed.
        exchanges: u32,
    }

    /// Why a run failed; logged before exiting 1.
    #[derive(defmt::Format)]
    enum Failure {}

    /// The example's real work slots in here (core client + server over smoltcp on the
    /// no-alloc `udp_echo_firmware_example::loopback` device, with a virtual clock).
    fn run() -> Result<Report, Failure> {
        defmt::info!("udp-echo bare-metal: booted");
        Ok(Report { exchanges: 0 })
    }

    #[entry]
    fn main() -> ! {
        match run() {
            Ok(report) => {
                defmt::info!("done: {}", report);
                exit(EXIT_SUCCESS)
            }
            Err(failure) => {
                defmt::error!("failed: {}", failure);
                exit(EXIT_FAILURE)
            }
        }
    }

    /// No panic-probe: its `udf` leaves QEMU hung instead of exiting non-zero.
    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        match info.location() {
            Some(at) => defmt::error!(
                "panic at {=str}:{=u32}: {}",
                at.file(),
                at.line(),
                defmt::Display2Format(&info.message())
            ),
            None => defmt::error!("panic: {}", defmt::Display2Format(&info.message())),
        }
        exit(EXIT_FAILURE)
    }

    fn exit(status: debug::ExitStatus) -> ! {
        debug::exit(status);
        // Only reached without a semihosting host (e.g. real hardware, no debugger).
        loop {
            cortex_m::asm::wfi();
        }
    }

    // No clock exists before `run` sets one up, so stamp lines with a sequence number:
    // it still orders lines and shows gaps.
    static LOG_SEQ: AtomicU32 = AtomicU32::new(0);
    defmt::timestamp!("#{=u32}", LOG_SEQ.fetch_add(1, Ordering::Relaxed));
}
