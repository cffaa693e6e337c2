//! A measuring stick, not a product: the smallest honest byte-count echo loop on `std`.
//!
//! `scripts/bench.sh` runs it next to `udp-echo serve` to show what going through the
//! core (its `Server` driver, `Responder` guards, `StdStack` adapter, `poll(2)` loop and
//! presenter) costs per datagram. It has none of that: no guards (it answers source port
//! 0, reflection ports and other echo servers' replies alike, so never expose it), no rate
//! limit, no core drivers, no non-blocking I/O. Only the reply text comes from the core
//! ([`Reply::new`]), so both servers speak the same protocol.
//!
//! ```text
//! cargo run --release -p udp-echo --example plain_echo -- 127.0.0.1:0
//! ```
//!
//! Binds the address in the first argument (default `127.0.0.1:0`), prints
//! `listening on ADDR` on stderr, then answers with a blocking `recv_from`/`send_to` loop
//! until SIGTERM or SIGINT, or for at most [`LIFETIME`]; on exit prints
//! `plain_echo: received N, replied M` on stderr.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Instant;

use udp_echo_core::wire::Reply;

mod common;

use common::{LIFETIME, TICK};

fn main() -> ExitCode {
    common::main_of("plain_echo", run)
}

fn run() -> io::Result<()> {
    let addr: SocketAddr = common::arg(1, SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let stop = common::stop_on_signals()?;
    let socket = UdpSocket::bind(addr)?;
    socket.set_read_timeout(Some(TICK))?;
    eprintln!("listening on {}", socket.local_addr()?);

    let deadline = Instant::now() + LIFETIME;
    let mut buf = vec![0u8; 65_536];
    let (mut received, mut replied) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            // The read timeout (or a signal) ended the wait: check the flag and the clock.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if Instant::now() >= deadline {
                    break;
                }
                continue;
            }
            // An ICMP error for an earlier reply's destination: nothing to answer.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e),
        };
        received += 1;
        // A 65536-byte buffer holds any UDP payload, so `n` is the true length.
        if let Ok(n) = u16::try_from(n)
            && socket.send_to(Reply::new(n).as_bytes(), from).is_ok()
        {
            replied += 1;
        }
        // Under a load that never lets the read time out, read the clock now and then
        // (not per datagram: the stick should not carry costs the task does not need).
        if received % 1024 == 0 && Instant::now() >= deadline {
            break;
        }
    }
    eprintln!("plain_echo: received {received}, replied {replied}");
    Ok(())
}
