//! A measuring stick, not a product: the smallest honest *batched* byte-count echo loop.
//!
//! `scripts/bench.sh` runs it next to `udp-echo serve` (batched) to show what the core's
//! responder and the server loop cost on top of the same system calls. It uses the host's
//! `recvmmsg`/`sendmmsg` wrappers ([`RecvBatch`], [`SendBatch`]) and nothing else: no guards
//! (it answers source port 0, reflection ports and other echo servers' replies alike, so
//! never expose it), no rate limits, no counters by reason, no observer, no reply source
//! address. Only the reply text comes from the core ([`Reply::new`]).
//!
//! ```text
//! cargo run --release -p udp-echo --example mmsg_echo -- 127.0.0.1:0
//! ```
//!
//! Binds the address in the first argument (default `127.0.0.1:0`), prints
//! `listening on ADDR` on stderr, then answers until SIGTERM or SIGINT, or for at most
//! [`LIFETIME`]; on exit prints `mmsg_echo: received N, replied M` on stderr.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rustix::event::{PollFd, PollFlags, Timespec};
use udp_echo_core::wire::Reply;
use udp_echo_host::mmsg::{RecvBatch, SendBatch};

mod common;

use common::{LIFETIME, TICK};

fn main() -> ExitCode {
    common::main_of("mmsg_echo", run)
}

fn run() -> io::Result<()> {
    let addr: SocketAddr = common::arg(1, SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let stop = common::stop_on_signals()?;
    let socket = UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    eprintln!("listening on {}", socket.local_addr()?);

    let deadline = Instant::now() + LIFETIME;
    let (mut recv, mut send) = (RecvBatch::new(), SendBatch::new());
    let (mut received, mut replied) = (0u64, 0u64);
    let tick = Timespec::try_from(TICK).expect("a small timeout");
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let n = match recv.recv(&socket) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            let mut fds = [PollFd::new(&socket, PollFlags::IN)];
            let _ = rustix::event::poll(&mut fds, Some(&tick));
            continue;
        }
        received += n as u64;
        for i in 0..n {
            if let Some(d) = recv.get(i)
                && let Ok(len) = u16::try_from(d.len)
            {
                send.push(Some(d.from), Reply::new(len), None, false);
            }
        }
        replied += send.flush(&socket).sent as u64;
    }
    eprintln!("mmsg_echo: received {received}, replied {replied}");
    Ok(())
}
