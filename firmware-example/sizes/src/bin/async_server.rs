//! Size image `async-server`: the core's async server (`asynch::Server::new` with the
//! default `ResponderConfig`, then `run`) over the mailbox socket and clock of
//! `udp_echo_sizes`, run by `embassy_futures::block_on` (a polling loop: no executor to
//! measure).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "async-server is a size image: build it with --target thumbv7em-none-eabihf --profile firmware (see scripts/sizes.sh)"
    );
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod image {
    use embassy_futures::block_on;
    use udp_echo_core::asynch::Server;
    use udp_echo_core::{Decision, ResponderConfig};
    use udp_echo_sizes::{BYTES, MAILBOX, MailboxClock, Unconnected};

    udp_echo_sizes::halt_on_panic!();

    #[cortex_m_rt::entry]
    fn main() -> ! {
        let mut server = Server::new(Unconnected, ResponderConfig::default());
        let mut buf = [0; BYTES];
        loop {
            // `run` returns only on a socket error.
            let Err(_) = block_on(server.run(&MailboxClock, &mut buf, |datagram, decision| {
                let replied = matches!(decision, Decision::Reply(_));
                MAILBOX.report(datagram.len as u64 | u64::from(replied) << 32);
            }));
            MAILBOX.report(u64::MAX);
        }
    }
}
