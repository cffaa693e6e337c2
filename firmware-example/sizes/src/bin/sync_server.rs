//! Size image `sync-server`: the core's sync server (`Server::bind` with the default
//! `ResponderConfig` and the stack's caps, then `poll` in a loop) over the mailbox stack
//! of `udp_echo_sizes`.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "sync-server is a size image: build it with --target thumbv7em-none-eabihf --profile firmware (see scripts/sizes.sh)"
    );
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod image {
    use udp_echo_core::{Decision, ResponderConfig, Server};
    use udp_echo_sizes::{BYTES, MAILBOX, PORT, Stack};

    udp_echo_sizes::halt_on_panic!();

    #[cortex_m_rt::entry]
    fn main() -> ! {
        let mut stack = Stack;
        let mut server = loop {
            match Server::bind(&mut stack, PORT, ResponderConfig::default()) {
                Ok(server) => break server.with_caps(MAILBOX.caps()),
                Err(_) => MAILBOX.report(u64::MAX),
            }
        };
        let mut buf = [0; BYTES];
        loop {
            let now = MAILBOX.now();
            let polled = server.poll(&mut stack, &mut buf, now, |datagram, decision| {
                let replied = matches!(decision, Decision::Reply(_));
                MAILBOX.report(datagram.len as u64 | u64::from(replied) << 32);
            });
            match polled {
                Ok(wake) => MAILBOX.wait(now, wake),
                Err(_) => MAILBOX.report(u64::MAX),
            }
        }
    }
}
