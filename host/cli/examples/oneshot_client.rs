//! A measuring stick, not a product: the least a one-shot byte-count client can do.
//!
//! `scripts/bench.sh` times it, as a whole process, next to `udp-echo send SERVER MESSAGE`
//! against the same server: what `send` costs on top of one exchange (argument parsing,
//! logging and signal set-up, the retry schedule). It binds, connects, sends once, waits
//! up to a second for one datagram and prints it; no retry, no check of the reply.
//!
//! ```text
//! cargo run --release -p udp-echo --example oneshot_client -- 127.0.0.1:6666 hello
//! ```

use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oneshot_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let server: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:6666".into())
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let message = args.next().unwrap_or_default();
    let socket = UdpSocket::bind(if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    socket.connect(server)?;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    socket.send(message.as_bytes())?;
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf)?;
    let mut out = io::stdout().lock();
    out.write_all(&buf[..n])?;
    out.write_all(b"\n")
}
