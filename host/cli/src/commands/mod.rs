//! One module per subcommand; each `run` returns the exit status or a [`Failure`].
//!
//! [`Failure`]: crate::cli::Failure

pub mod bench;
pub mod broadcast;
pub mod discover;
pub mod listen;
pub mod ping;
pub mod send;
pub mod serve;

use std::io::Read;
use std::time::Duration;

use serde_json::json;
use udp_echo_core::{BroadcastError, ClientError};
use udp_echo_host::server::Stopped;
use udp_echo_host::shutdown::Shutdown;
use udp_echo_host::stack::StdError;

use crate::cli::Failure;
use crate::diag;
use crate::output::Presenter;

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
fn client_failure(e: ClientError<StdError>, what: &str) -> Failure {
    match e {
        ClientError::Exchange(e) => Failure::usage(e.to_string()),
        ClientError::Stack(e) => Failure::network(format!("{what}: {}", stack_text(&e))),
    }
}

/// A server loop's error as a failure.
fn server_failure(e: &std::io::Error, what: &str) -> Failure {
    Failure::network(format!("{what}: {}", crate::output::plain(e)))
}

/// A broadcast driver's error as a failure.
fn broadcast_failure(e: BroadcastError<StdError>, what: &str) -> Failure {
    match e {
        BroadcastError::PayloadTooLarge { .. } => Failure::usage(e.to_string()),
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
        presenter.event(json!({"event": "listening", "addr": local.to_string()}).to_string());
    }
    Ok(presenter)
}

/// Why a server or listener loop ended, for its last line.
fn stop_reason(result: &Result<Stopped, std::io::Error>, shutdown: &Shutdown) -> String {
    match result {
        Ok(Stopped::Signal) => shutdown.signal_name().unwrap_or("a signal").to_string(),
        Ok(Stopped::Observer) => "stdout closed".to_string(),
        Err(e) => format!("error: {}", crate::output::plain(e)),
    }
}
