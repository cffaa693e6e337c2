//! A measuring stick, not a product: the smallest honest *batched* byte-count echo loop.
//!
//! `scripts/bench.sh` runs it next to `udp-echo serve` (batched) to show what the core's
//! responder and the server loop cost on top of the same system calls. It uses the host's
//! system-call layer ([`udp_echo_host::udp`]) on its batched path (`recvmmsg`/`sendmmsg`)
//! with both offloads off, so every buffer is one datagram and every reply goes out on
//! its own (one `sendmmsg` for the batch), and nothing else: no guards (it answers source
//! port 0, reflection ports and other echo servers' replies alike, so never expose it),
//! no rate limits, no counters by reason, no observer, no reply source address. Only the
//! reply text comes from the core ([`Reply::new`]). Its GRO/GSO twin is `gro_echo`.
//!
//! ```text
//! cargo run --release -p udp-echo --example mmsg_echo -- 127.0.0.1:0
//! ```
//!
//! Binds the address in the first argument (default `127.0.0.1:0`), prints
//! `listening on ADDR` on stderr, then answers until SIGTERM or SIGINT, or for at most
//! [`LIFETIME`](common::LIFETIME); on exit prints `mmsg_echo: received N, replied M` on
//! stderr.

use std::io;
use std::process::ExitCode;

use udp_echo_core::wire::Reply;
use udp_echo_host::udp::{Offload, Outbox};

mod common;

fn main() -> ExitCode {
    common::main_of("mmsg_echo", run)
}

fn run() -> io::Result<()> {
    let mut echo = common::Echo::bind(Offload::NONE)?;
    let mut outbox = Outbox::new(1);
    let (mut received, mut replied, mut failed) = (0u64, 0u64, 0u64);
    while echo.running() {
        let n = echo.recv()?;
        received += n as u64;
        for i in 0..n {
            // Without GRO a buffer is one datagram, its length at most 65,527.
            if let Some((meta, _)) = echo.io.get(i)
                && let Ok(len) = u16::try_from(meta.len)
            {
                outbox.push(meta.from, None, Reply::new(len).as_bytes());
            }
        }
        if n > 0 {
            let sent = echo.io.send(&mut outbox);
            replied += sent.sent as u64;
            failed += sent.failed as u64;
        }
    }
    eprintln!("mmsg_echo: received {received}, replied {replied}, send failed {failed}");
    Ok(())
}
