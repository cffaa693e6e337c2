//! [`Stdout`]: line-at-a-time stdout for the commands off the hot path.

use std::fmt;
use std::io::{self, Write};

use serde_json::Value;

use super::stdout_failed;

/// Line-at-a-time stdout for commands off the hot path (send, ping, discover, …).
#[derive(Debug, Default)]
pub struct Stdout {
    closed: bool,
}

impl Stdout {
    /// Writes `line` and a newline, flushed; once a write failed, does nothing (the error
    /// is recorded for the exit status).
    pub fn line(&mut self, line: impl fmt::Display) {
        if self.closed {
            return;
        }
        let mut out = io::stdout().lock();
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            self.closed = true;
            stdout_failed(e);
        }
    }

    /// Writes one JSON object as a line.
    pub fn json(&mut self, value: &Value) {
        self.line(value);
    }

    /// Whether a write failed (the reader went away, or the disk is full).
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}
