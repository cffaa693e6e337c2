//! Stdout's failures, whoever meets them (a command's line writer, the writer thread):
//! the first one is kept for the exit status, 141 when the reader went away.

use std::io;
use std::sync::Mutex;

use super::plain;

/// The first failed write to stdout, whoever made it (the writer thread included): `run`
/// turns it into the exit status once the command ends.
static STDOUT_ERROR: Mutex<Option<io::Error>> = Mutex::new(None);

/// Records a failed write to stdout (the first one counts).
pub fn stdout_failed(e: io::Error) {
    let mut slot = STDOUT_ERROR.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_none() {
        *slot = Some(e);
    }
}

/// What the first failed write to stdout said, without taking it: `None` if none failed
/// or stdout's reader went away (a broken pipe, which "stdout closed" says).
pub fn stdout_write_error() -> Option<String> {
    STDOUT_ERROR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .filter(|e| e.kind() != io::ErrorKind::BrokenPipe)
        .map(plain)
}

/// The first failed write to stdout, if any.
pub fn stdout_error() -> Option<io::Error> {
    STDOUT_ERROR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
}

/// The exit status of a command whose stdout reader went away (128 + SIGPIPE, as the
/// shell reports a process killed by SIGPIPE).
pub const CLOSED_STDOUT: u8 = 141;
