//! What the benchmark examples share: the `main` plumbing, positional arguments, the
//! bounds that keep a stray benchmark process from living on, and the socket set-up and
//! waiting of the bare echo loops.

// Each example uses what it needs of this module.
#![allow(dead_code)]

use std::fmt::Display;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use signal_hook::consts::{SIGINT, SIGTERM};
use udp_echo_host::udp::{self, BindOptions, Datagrams, Offload, Path};

/// The longest a server example runs, signal or not.
pub const LIFETIME: Duration = Duration::from_secs(120);
/// How long an idle wait lasts before it checks for a signal and the lifetime.
pub const TICK: Duration = Duration::from_millis(100);

/// Runs `run`; its error goes to stderr as `NAME: error`, with exit status 1.
pub fn main_of(name: &str, run: fn() -> io::Result<()>) -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The `i`-th command-line argument parsed as `T`, or `default` when it is absent.
pub fn arg<T: FromStr>(i: usize, default: T) -> io::Result<T>
where
    T::Err: Display,
{
    match std::env::args().nth(i) {
        Some(a) => a
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("`{a}`: {e}"))),
        None => Ok(default),
    }
}

/// A flag that SIGTERM or SIGINT sets.
pub fn stop_on_signals() -> io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// The socket of a bare echo loop (`mmsg_echo`, `gro_echo`) and the bounds it runs in.
pub struct Echo {
    /// The socket, on the batched path (`recvmmsg`/`sendmmsg`).
    pub io: Datagrams,
    stop: Arc<AtomicBool>,
    deadline: Instant,
}

impl Echo {
    /// Binds the address in the first argument (default `127.0.0.1:0`) on the batched
    /// path with `offload`, and prints `listening on ADDR` on stderr.
    ///
    /// # Errors
    ///
    /// A bad address, the bind, or a kernel without `recvmmsg` (or refusing an offload
    /// that was asked for: a bare loop must not quietly measure something else).
    pub fn bind(offload: Offload) -> io::Result<Echo> {
        let addr: SocketAddr = arg(1, SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let stop = stop_on_signals()?;
        let io = Datagrams::new(
            udp::bind(addr, BindOptions::default())?,
            Path::Batched,
            offload,
        )?;
        if io.offload() != offload {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the kernel refused offloads: asked {offload:?}, got {:?}",
                    io.offload()
                ),
            ));
        }
        let local = io.socket().local_addr()?.as_socket().unwrap_or(addr);
        eprintln!("listening on {local}");
        Ok(Echo {
            io,
            stop,
            deadline: Instant::now() + LIFETIME,
        })
    }

    /// Whether to go on: no SIGTERM or SIGINT yet, and within [`LIFETIME`].
    pub fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline
    }

    /// Receives what is waiting and returns how many buffers; when nothing is, waits up
    /// to [`TICK`] for the socket to become readable and returns `Ok(0)` (the caller
    /// checks [`running`](Self::running), then calls again). ICMP reports for earlier
    /// replies (`ConnectionRefused`) are skipped.
    ///
    /// # Errors
    ///
    /// The system's.
    pub fn recv(&mut self) -> io::Result<usize> {
        let n = loop {
            match self.io.recv() {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                other => break other?,
            }
        };
        if n == 0 {
            let mut fds = [PollFd::new(self.io.socket(), PollFlags::IN)];
            let tick = Timespec::try_from(TICK).expect("a small timeout");
            let _ = rustix::event::poll(&mut fds, Some(&tick));
        }
        Ok(n)
    }
}
