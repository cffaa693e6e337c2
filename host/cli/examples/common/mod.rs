//! What the benchmark examples share: the `main` plumbing, positional arguments, and the
//! bounds that keep a stray benchmark process from living on.

// Each example uses what it needs of this module.
#![allow(dead_code)]

use std::fmt::Display;
use std::io;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};

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
