//! Diagnostics on stderr: the `diag!` macro, and `io::Error`s for people.

use std::fmt;
use std::io::{self, Write};

/// Writes one diagnostic line to stderr; errors are ignored (there is nowhere to report them).
pub fn diag(args: fmt::Arguments<'_>) {
    // stderr is unbuffered: one write for the whole line, not one per formatted piece.
    let line = format!("{args}\n");
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

/// Writes a diagnostic line to stderr, `format!`-style.
#[macro_export]
macro_rules! diag {
    ($($arg:tt)*) => { $crate::output::diag(format_args!($($arg)*)) };
}

/// An `io::Error` for people: the text without its ` (os error N)` tail.
pub fn plain(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}
