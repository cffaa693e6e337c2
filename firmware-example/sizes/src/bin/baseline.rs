//! Size image `baseline`: the runtime (cortex-m-rt's vector table and reset code), the
//! panic handler and one mailbox read and write, without the core. Every other image
//! carries this too: subtract it to get a role's own code.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "baseline is a size image: build it with --target thumbv7em-none-eabihf --profile firmware (see scripts/sizes.sh)"
    );
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod image {
    use udp_echo_sizes::MAILBOX;

    udp_echo_sizes::halt_on_panic!();

    #[cortex_m_rt::entry]
    fn main() -> ! {
        loop {
            MAILBOX.report(MAILBOX.now().as_micros());
        }
    }
}
