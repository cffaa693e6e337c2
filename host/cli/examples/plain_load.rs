//! The reference load generator: what `udp-echo bench` is measured against.
//!
//! The same shape of load as `udp-echo bench` (a window of requests spread over several
//! connected sockets, sent and received by the batch with the host's `sendmmsg`/`recvmmsg`
//! wrappers) with none of its bookkeeping: replies are counted, not parsed, not matched
//! and not timed; nothing is counted lost. `scripts/bench.sh` runs both against the same
//! server to check that `bench` loads it as hard (≥ 0.9× these replies/s).
//!
//! ```text
//! cargo run --release -p udp-echo --example plain_load -- 127.0.0.1:6666 2s 64 4
//! ```
//!
//! Arguments: server, duration (`2s`, `500ms`; at most 60 s), window, sockets. Sends only
//! to the server given; prints `{"replies": N, "replies_per_s": R}` on stdout.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use udp_echo_core::Reply;
use udp_echo_host::mmsg::{BATCH, RecvBatch, SendBatch};

mod common;

fn main() -> ExitCode {
    common::main_of("plain_load", run)
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
    let window: usize = common::arg(3, 64)?;
    let sockets: usize = common::arg(4, 4)?.clamp(1, window.max(1));
    let request = b"hello world!";

    let mut flows = Vec::new();
    for i in 0..sockets {
        let s = UdpSocket::bind(if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })?;
        s.connect(server)?;
        s.set_nonblocking(true)?;
        flows.push((
            s,
            window / sockets + usize::from(i < window % sockets),
            0usize,
        ));
    }
    let (mut recv, mut send) = (RecvBatch::new(), SendBatch::new());
    let mut replies = 0u64;
    let start = Instant::now();
    let end = start + duration;
    let mut last = start;
    while Instant::now() < end {
        let mut progress = false;
        for (s, share, in_flight) in &mut flows {
            while *in_flight < *share {
                for _ in 0..(*share - *in_flight).min(BATCH) {
                    send.push(None, Reply::new(0), None, false);
                }
                let done = send.flush_same(s, request);
                *in_flight += done.sent;
                if done.sent == 0 {
                    break;
                }
            }
            loop {
                let n = recv.recv(s).unwrap_or(0);
                *in_flight = in_flight.saturating_sub(n);
                replies += n as u64;
                progress |= n > 0;
                if n < BATCH {
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
                .map(|f| PollFd::new(&f.0, PollFlags::IN))
                .collect();
            let ts = Timespec::try_from(Duration::from_millis(100)).expect("small");
            if rustix::event::poll(&mut fds, Some(&ts)).unwrap_or(0) == 0 {
                for f in &mut flows {
                    f.2 = 0;
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
