//! What the two TAP binaries share: `firmware-example` (this package: the core's drivers on
//! smoltcp 0.14) and `embassy-tap` (`udp-echo-embassy-tap`: the async drivers on
//! embassy-net, smoltcp 0.13). One command line with its checks, one set of exit statuses
//! and one wording of the output lines, written once over std types and the core's
//! ([`Outcome`], [`ClientEvent`](udp_echo_core::ClientEvent),
//! [`Received`](udp_echo_core::Received), [`Decision`](udp_echo_core::Decision)), so that a
//! binary on either smoltcp can use them. A [`Binary`] names the binary and says the few
//! things its stack words differently.
//!
//! Linux only, as the binaries: the interface-name check is the TAP module's.

mod cli;
mod output;

pub use cli::{Cidr, Cli, Command};
pub use output::{Failure, Progress, answered, datagram, fits, listening, plural, print, say};

use std::io;
use std::net::SocketAddrV4;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use udp_echo_core::Outcome;

/// One of the binaries: its name, and what its stack says where the two stacks differ.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    /// The name in usage lines, examples and error lines (`<name>: no reply from …`).
    pub name: &'static str,
    /// The summary `--help` starts with (no final period: clap's style).
    pub about: &'static str,
    /// Why a send could not go out, and what happens next: the rest of the progress line
    /// `send blocked at X ms: …`.
    pub blocked: &'static str,
    /// Why scheduled sends never went out, in the give-up line
    /// `…; N more could not be sent (<unsent>: is ADDR on the link?)`.
    pub unsent: &'static str,
}

impl Binary {
    /// Parses the process's arguments as this binary; bad arguments end the process with
    /// status 2 and the reason, `--help` and `--version` with status 0.
    pub fn parse(&self) -> Cli {
        Cli::parse_as(self)
    }

    /// `main`'s end: status 0 for `Ok`, or the failure's message (after the binary's name,
    /// on stderr) and status.
    pub fn exit(&self, result: Result<(), Failure>) -> ExitCode {
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(failure) => {
                say(&format!("{}: {}", self.name, failure.message));
                ExitCode::from(failure.code)
            }
        }
    }

    /// The client's progress lines, as this binary words them.
    pub fn progress(&self) -> Progress {
        Progress::new(self.blocked)
    }

    /// The client's result: on a reply, the byte count on stdout and the summary on stderr;
    /// on giving up, the failure (status 1) that says so.
    pub fn outcome(&self, server: SocketAddrV4, outcome: Outcome) -> Result<(), Failure> {
        output::outcome(server, outcome, self.unsent)
    }
}

/// Sets the returned flag at SIGINT or SIGTERM, after which `also(signal)` may register
/// more actions for each of them. A second signal while the first is being handled ends
/// the process at once (status 130).
pub fn stop_on_signals(
    mut also: impl FnMut(i32) -> io::Result<()>,
) -> Result<Arc<AtomicBool>, Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .and_then(|_| also(signal))
            .map_err(|e| Failure::runtime(format!("cannot handle signals: {e}")))?;
    }
    Ok(stop)
}
