//! One module per subcommand, each with its clap arguments (`ServeArgs`, …), the text after
//! its `--help` options, its helpers and its `run`, which returns the exit status or a
//! [`Failure`]. What several commands share is here or in the leaf modules `args`, `parse`
//! and `output`; nothing here uses `cli`.
//!
//! Each subcommand's arguments carry plain comments, not doc comments: with deferred
//! subcommands a doc comment on the struct would replace the subcommand's description in
//! --help.
//!
//! [`Failure`]: crate::args::Failure

pub mod bench;
pub mod broadcast;
pub mod completions;
pub mod discover;
pub mod listen;
pub mod manpage;
pub mod ping;
pub mod send;
pub mod serve;

use std::io::Read;
use std::time::Duration;

use udp_echo_core::{BroadcastError, ClientError};
use udp_echo_host::server::Stopped;
use udp_echo_host::shutdown::Shutdown;
use udp_echo_host::stack::StdError;

use crate::args::Failure;
use crate::diag;
use crate::output::{Presenter, events};

/// A MESSAGE argument's bytes: `-` reads stdin, up to one byte more than `max` (the largest
/// request to the destination), so that a longer input shows as too long instead of being
/// silently cut; anything else is taken as is (its bytes on Unix; on Windows, where
/// arguments are UTF-16, its UTF-8 encoding). The caller checks the length against `max`.
fn message_bytes(message: &std::ffi::OsStr, max: usize) -> Result<Vec<u8>, Failure> {
    if message == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                Failure::usage(format!(
                    "cannot read the message from stdin: {}",
                    crate::output::plain(&e)
                ))
            })?;
        if bytes.len() > max {
            return Err(Failure::usage(format!(
                "the message on stdin is more than {max} bytes: one UDP datagram carries at most {max} bytes to this address"
            )));
        }
        Ok(bytes)
    } else {
        // The bytes as given on Unix; on Windows UTF-8 (WTF-8 for an unpaired surrogate).
        Ok(message.as_encoded_bytes().to_vec())
    }
}

/// The datagrams an exchange ignored, by source and reason, for the final message: a
/// user who gets no reply sees without `-v` that something did answer, and why it did
/// not count.
#[derive(Debug, Default)]
pub struct IgnoredLog {
    /// (source, reason, count), in order of first sight; at most [`IgnoredLog::KEPT`].
    seen: Vec<(Option<std::net::SocketAddr>, &'static str, u32)>,
    total: u32,
}

impl IgnoredLog {
    /// Distinct (source, reason) pairs kept; the rest are only counted.
    const KEPT: usize = 4;

    /// Notes one client event if it is an ignored datagram.
    pub fn note(&mut self, event: &udp_echo_core::ClientEvent) {
        use udp_echo_core::Verdict;
        let udp_echo_core::ClientEvent::Ignored { from, verdict } = *event else {
            return;
        };
        let why = match verdict {
            Verdict::Foreign => "not the server's address",
            Verdict::Malformed => "not a byte-count reply",
            Verdict::Stale { .. } => "a reply with another count",
            Verdict::Late | Verdict::Accepted(_) => "after the exchange ended",
        };
        self.total += 1;
        if let Some(entry) = self.seen.iter_mut().find(|e| e.0 == from && e.1 == why) {
            entry.2 += 1;
        } else if self.seen.len() < Self::KEPT {
            self.seen.push((from, why, 1));
        }
    }

    /// `; ignored 3 datagrams: 2 from 10.0.0.9:6666 (not a byte-count reply), 1 from …`,
    /// or nothing when none was ignored.
    pub fn suffix(&self) -> String {
        if self.total == 0 {
            return String::new();
        }
        let plural = if self.total == 1 { "" } else { "s" };
        let parts: Vec<String> = self
            .seen
            .iter()
            .map(|(from, why, n)| match from {
                Some(from) => format!("{n} from {from} ({why})"),
                None => format!("{n} too long to read ({why})"),
            })
            .collect();
        let shown: u32 = self.seen.iter().map(|e| e.2).sum();
        let rest = match self.total - shown {
            0 => String::new(),
            n => format!(", {n} more"),
        };
        format!(
            "; ignored {} datagram{plural}: {}{rest}",
            self.total,
            parts.join(", ")
        )
    }
}

/// A socket error for people: what to do about the usual ones, no `(os error N)` tail.
pub fn socket_error(e: &std::io::Error, addr: std::net::SocketAddr) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::AddrInUse if cfg!(windows) => format!(
            "port {} is already in use (another `udp-echo serve` or `listen` may hold it: stop it or pick another port)",
            addr.port()
        ),
        ErrorKind::AddrInUse => format!(
            "port {} is already in use (another `udp-echo serve` or `listen` may hold it: stop it, pick another port, or give both --reuse-port)",
            addr.port()
        ),
        ErrorKind::PermissionDenied if addr.port() < 1024 && cfg!(target_os = "linux") => "permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE (e.g. `sudo setcap cap_net_bind_service=+ep $(command -v udp-echo)`), or pick a port from 1024 up".to_string(),
        ErrorKind::PermissionDenied if addr.port() < 1024 && cfg!(unix) => "permission denied: ports below 1024 may need root here, or pick a port from 1024 up".to_string(),
        ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this machine",
            addr.ip()
        ),
        _ => crate::output::plain(e),
    }
}

/// A `-s SIZE` request of letters (`abc…`), refused if one datagram to `server` cannot
/// carry it.
fn filler(server: std::net::SocketAddr, size: usize) -> Result<Vec<u8>, Failure> {
    let max = udp_echo_core::wire::max_request(server);
    if size > max {
        return Err(Failure::usage(format!(
            "-s {size} is too large: one UDP datagram to {server} carries at most {max} bytes"
        )));
    }
    Ok((0..size).map(|i| b'a' + (i % 26) as u8).collect())
}

/// A client driver's error as a failure: bad input is usage (2), the rest network (1).
/// The kernel refusing to send (`EACCES`) means a broadcast address not known as one
/// beforehand: usage too, with what to use instead.
fn client_failure(e: ClientError<StdError>, what: &str) -> Failure {
    match e {
        ClientError::Exchange(e) => Failure::usage(e.to_string()),
        ClientError::Stack(e) if e.io_error().kind() == std::io::ErrorKind::PermissionDenied => {
            Failure::usage(format!(
                "{what}: the system refuses to send there (a broadcast address?): {}",
                BROADCAST_ADVICE
            ))
        }
        // What --source and --interface ask for that this machine does not have.
        ClientError::Stack(e) if e.io_error().kind() == std::io::ErrorKind::AddrNotAvailable => {
            Failure::usage(format!(
                "{what}: the source address is not one of this machine's (--source)"
            ))
        }
        ClientError::Stack(e)
            if matches!(
                e.io_error().kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::Unsupported
                    | std::io::ErrorKind::InvalidInput
                    | std::io::ErrorKind::AddrInUse
            ) =>
        {
            Failure::usage(format!("{what}: {}", stack_text(&e)))
        }
        ClientError::Stack(e) => Failure::network(format!("{what}: {}", stack_text(&e))),
    }
}

/// What to use to reach many servers at once.
const BROADCAST_ADVICE: &str = "to find the servers there use `udp-echo discover --to ADDR:PORT`, to send without waiting for a reply `udp-echo broadcast --to ADDR:PORT`";

/// Refuses a broadcast or multicast target for a command that waits for one server's
/// reply (send, ping, bench): exit 2 with what to use instead.
///
/// Only what the address itself says is checked here: reading the interface list for the
/// subnets' broadcast addresses would cost a one-shot `send` a fifth of its run, and the
/// kernel refuses those anyway (`EACCES`, which [`client_failure`] words the same way).
fn one_server(server: std::net::SocketAddr) -> Result<(), Failure> {
    let ip = udp_echo_core::wire::canonical_ip(server.ip());
    let group = match ip {
        std::net::IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast(),
        std::net::IpAddr::V6(v6) => v6.is_multicast(),
    };
    if group {
        return Err(Failure::usage(format!(
            "{ip} is a broadcast address, and this command waits for one server's reply: {BROADCAST_ADVICE}"
        )));
    }
    Ok(())
}

/// A server loop's error as a failure.
fn server_failure(e: &std::io::Error, what: &str) -> Failure {
    Failure::network(format!("{what}: {}", crate::output::plain(e)))
}

/// A broadcast driver's error as a failure.
fn broadcast_failure(e: BroadcastError<StdError>, what: &str) -> Failure {
    match e {
        BroadcastError::PayloadTooLarge(_) => Failure::usage(e.to_string()),
        BroadcastError::Stack(e) => Failure::network(format!("{what}: {}", stack_text(&e))),
    }
}

/// A stack error's text without an `(os error N)` tail.
fn stack_text(e: &StdError) -> String {
    crate::output::plain(e.io_error())
}

/// How long a stopping server or listener gives its last stdout lines: bounded, so that
/// a reader that never reads cannot keep it alive.
const STOP_PATIENCE: Duration = Duration::from_millis(200);

/// SIGINT/SIGTERM handling for a command that stops cleanly.
fn install_shutdown() -> Result<Shutdown, Failure> {
    Shutdown::install()
        .map_err(|e| Failure::network(format!("cannot install signal handlers: {e}")))
}

/// Announces a bound server or listener (`listening on ADDR` on stderr, and a JSON event)
/// and returns the presenter for its datagrams.
fn announce(
    local: std::net::SocketAddr,
    json: bool,
    quiet: bool,
    max_lines: u32,
) -> Result<Presenter, Failure> {
    let mut presenter = Presenter::new(json, quiet, max_lines);
    diag!("listening on {local}");
    if json {
        presenter.event(events::listening(local).to_string());
    }
    Ok(presenter)
}

/// Why a server or listener loop ended, for its last line.
fn stop_reason(result: &Result<Stopped, std::io::Error>, shutdown: &Shutdown) -> String {
    match result {
        Ok(Stopped::Signal) => shutdown.signal_name().unwrap_or("a signal").to_string(),
        Ok(Stopped::Observer) => match crate::output::stdout_write_error() {
            Some(e) => format!("a failed write to stdout ({e})"),
            None => "stdout closed".to_string(),
        },
        Err(e) => format!("error: {}", crate::output::plain(e)),
    }
}

/// Writes `bytes` to stdout at once (completions, man pages); a failed write is recorded
/// for the exit status.
fn write_all_stdout(bytes: &[u8]) -> Result<std::process::ExitCode, Failure> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        crate::output::stdout_failed(e);
    }
    Ok(std::process::ExitCode::SUCCESS)
}
