//! The reference load generator: what `udp-echo bench` is measured against.
//!
//! The same shape of load as `udp-echo bench` (a window of requests spread over several
//! unconnected sockets, sent and received by the batch through the host's system-call
//! layer, [`udp_echo_host::udp`], on its batched path `sendmmsg`/`recvmmsg`; with a GSO
//! argument above 1, sent as trains of up to that many datagrams per message and received
//! with GRO, as `bench --gso`) with none of its bookkeeping: replies are counted, not
//! parsed, not matched and not timed; nothing is counted lost. `scripts/bench.sh` runs
//! both against the same server to check that `bench` loads it as hard (≥ 0.9× these
//! replies/s).
//!
//! ```text
//! cargo run --release -p udp-echo --example plain_load -- 127.0.0.1:6666 2s 64 4 [GSO]
//! ```
//!
//! Arguments: server, duration (`2s`, `500ms`; at most 60 s), window, sockets, GSO
//! (datagrams per train, 1..=64, default 1: none). Sends only to the server given; prints
//! `{"replies": N, "replies_per_s": R}` on stdout.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use udp_echo_host::udp::{
    self, BATCH, BindOptions, Datagrams, MAX_SEGMENTS, Offload, Outbox, Path,
};

mod common;

fn main() -> ExitCode {
    common::main_of("plain_load", run)
}

/// One socket, its share of the window and its requests in flight.
struct Flow {
    io: Datagrams,
    share: usize,
    in_flight: usize,
}

fn run() -> io::Result<()> {
    let server: SocketAddr = common::arg(1, SocketAddr::from(([127, 0, 0, 1], 6666)))?;
    // The CLI's own duration parser: `2s`, `500ms`, a number alone is seconds.
    let duration = match std::env::args().nth(2) {
        Some(d) => udp_echo::parse::parse_duration(&d)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        None => Duration::from_secs(2),
    }
    .min(Duration::from_secs(60));
    let window: usize = common::arg::<usize>(3, 64)?.max(1);
    let sockets: usize = common::arg(4, 4)?.clamp(1, window);
    let gso: usize = common::arg(5, 1)?.clamp(1, MAX_SEGMENTS);
    let offload = if gso > 1 { Offload::ALL } else { Offload::NONE };
    let request = b"hello world!";

    let local = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let mut flows = Vec::new();
    for i in 0..sockets {
        let socket = udp::bind(local, BindOptions::default())?;
        let _ = socket.set_recv_buffer_size(4 << 20);
        flows.push(Flow {
            io: Datagrams::new(socket, Path::Batched, offload)?,
            share: window / sockets + usize::from(i < window % sockets),
            in_flight: 0,
        });
    }
    let mut outbox = Outbox::new(gso);
    let mut replies = 0u64;
    let start = Instant::now();
    let end = start + duration;
    let mut last = start;
    while Instant::now() < end {
        let mut progress = false;
        for f in &mut flows {
            while f.in_flight < f.share {
                for _ in 0..(f.share - f.in_flight).min(BATCH * gso) {
                    outbox.push(server, None, request);
                }
                let done = f.io.send(&mut outbox);
                f.in_flight += done.sent;
                if done.sent == 0 || done.failed > 0 {
                    break;
                }
            }
            loop {
                let n = f.io.recv().unwrap_or(0);
                let got: usize = (0..n)
                    .filter_map(|i| f.io.get(i))
                    .map(|(meta, _)| meta.segments().count())
                    .sum();
                f.in_flight = f.in_flight.saturating_sub(got);
                replies += got as u64;
                progress |= got > 0;
                if !f.io.was_full() {
                    break;
                }
            }
        }
        if progress {
            last = Instant::now();
        } else {
            // Nothing came back: wait a little (a lost request would otherwise stall its
            // socket for good, so the window is refilled after 100 ms of silence).
            let mut fds: Vec<_> = flows
                .iter()
                .map(|f| PollFd::new(f.io.socket(), PollFlags::IN))
                .collect();
            let ts = Timespec::try_from(Duration::from_millis(100)).expect("small");
            if rustix::event::poll(&mut fds, Some(&ts)).unwrap_or(0) == 0 {
                for f in &mut flows {
                    f.in_flight = 0;
                }
            }
        }
    }
    let secs = (last - start).as_secs_f64().max(1e-6);
    println!(
        "{{\"replies\": {replies}, \"replies_per_s\": {:.0}}}",
        replies as f64 / secs
    );
    Ok(())
}
