//! A measuring stick, not a product: the smallest honest byte-count echo loop with the
//! kernel's UDP offloads on.
//!
//! `scripts/bench.sh` runs it next to `udp-echo serve` under a load of GSO trains
//! (`udp-echo bench --gso 32`): the server should reach at least 0.9× its replies/s. It
//! is `mmsg_echo` with GRO and GSO: the host's system-call layer
//! ([`udp_echo_host::udp`]) on its batched path with [`Offload::ALL`], so one receive
//! buffer may hold a train of datagrams from one source (split with
//! [`Meta::segments`](udp_echo_host::udp::Meta::segments)), and the replies, one per
//! datagram, are queued in an [`Outbox`] that coalesces equal-length replies to one
//! destination into GSO trains, all sent with one `sendmmsg`. Nothing else: no guards
//! (it answers source port 0, reflection ports and other echo servers' replies alike, so
//! never expose it), no rate limits, no counters by reason, no observer, no reply source
//! address. Only the reply text comes from the core ([`Reply::new`]).
//!
//! ```text
//! cargo run --release -p udp-echo --example gro_echo -- 127.0.0.1:0
//! ```
//!
//! Binds the address in the first argument (default `127.0.0.1:0`), prints
//! `listening on ADDR` on stderr, then answers until SIGTERM or SIGINT, or for at most
//! [`LIFETIME`](common::LIFETIME); on exit prints
//! `gro_echo: received N (B buffers), replied M (C send calls), send failed F` on stderr.

use std::io;
use std::process::ExitCode;

use udp_echo_core::wire::Reply;
use udp_echo_host::udp::{Offload, Outbox};

mod common;

fn main() -> ExitCode {
    common::main_of("gro_echo", run)
}

fn run() -> io::Result<()> {
    let mut echo = common::Echo::bind(Offload::ALL)?;
    let mut outbox = Outbox::new(echo.io.max_segments());
    let (mut received, mut buffers, mut replied, mut failed, mut calls) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    while echo.running() {
        let n = echo.recv()?;
        buffers += n as u64;
        for i in 0..n {
            let Some((meta, _)) = echo.io.get(i) else {
                continue;
            };
            for r in meta.segments() {
                received += 1;
                // A datagram is at most 65,527 bytes.
                if let Ok(len) = u16::try_from(r.len()) {
                    outbox.push(meta.from, None, Reply::new(len).as_bytes());
                }
            }
        }
        if n > 0 {
            let sent = echo.io.send(&mut outbox);
            replied += sent.sent as u64;
            failed += sent.failed as u64;
            calls += sent.calls as u64;
        }
    }
    eprintln!(
        "gro_echo: received {received} ({buffers} buffers), replied {replied} ({calls} send calls), send failed {failed}"
    );
    Ok(())
}
