//! Size image `sync-client`: the core's sync client (`udp_echo_core::request`, i.e.
//! `Client::connect`/`start`/`run`/`close`) with the default retry policy, over the
//! mailbox stack of `udp_echo_sizes`.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "sync-client is a size image: build it with --target thumbv7em-none-eabihf --profile firmware (see scripts/sizes.sh)"
    );
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod image {
    use udp_echo_core::{Outcome, RetryPolicy, request};
    use udp_echo_sizes::{BYTES, MAILBOX, MailboxShell, Stack};

    udp_echo_sizes::halt_on_panic!();

    #[cortex_m_rt::entry]
    fn main() -> ! {
        let mut buf = [0; BYTES];
        loop {
            let bytes = MAILBOX.request(&mut buf);
            let policy = RetryPolicy::default();
            let result = request(
                &mut Stack,
                MAILBOX.caps(),
                MAILBOX.peer(),
                &policy,
                bytes,
                &mut MailboxShell,
            );
            MAILBOX.report(match result {
                Ok(Outcome::Reply(replied)) => u64::from(replied.count),
                Ok(Outcome::GaveUp(gave_up)) => u64::from(gave_up.attempts) << 32,
                Err(_) => u64::MAX,
            });
        }
    }
}
