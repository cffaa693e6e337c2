//! Size image `async-client`: the core's async client (`udp_echo_core::asynch::request`)
//! with the default retry policy, over the mailbox socket and clock of `udp_echo_sizes`,
//! run by `embassy_futures::block_on` (a polling loop: no executor to measure).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "async-client is a size image: build it with --target thumbv7em-none-eabihf --profile firmware (see scripts/sizes.sh)"
    );
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod image {
    use embassy_futures::block_on;
    use udp_echo_core::asynch::request;
    use udp_echo_core::{Outcome, RetryPolicy};
    use udp_echo_sizes::{BYTES, Connected, MAILBOX, MailboxClock};

    udp_echo_sizes::halt_on_panic!();

    #[cortex_m_rt::entry]
    fn main() -> ! {
        let mut buf = [0; BYTES];
        loop {
            let bytes = MAILBOX.request(&mut buf);
            let policy = RetryPolicy::default();
            let result = block_on(request(
                Connected,
                MAILBOX.peer(),
                &policy,
                bytes,
                &MailboxClock,
            ));
            MAILBOX.report(match result {
                Ok(Outcome::Reply(replied)) => u64::from(replied.count),
                Ok(Outcome::GaveUp(gave_up)) => u64::from(gave_up.attempts) << 32,
                Err(_) => u64::MAX,
            });
        }
    }
}
