//! [`Presenter`]: a server's or listener's datagrams as lines, at most `max_lines` a
//! second, the rest summed up once a second.

use std::sync::Arc;
use std::time::Duration;

use udp_echo_core::{Decision, Instant, Received, Wake};
use udp_echo_host::server::Observer;

use super::{Sink, events};
use crate::payload;

/// Turns datagrams into lines for [`Sink`]: at most `max_lines` a second, the rest summed up.
///
/// Server threads each have their own presenter ([`sibling`](Self::sibling)) writing to
/// one shared sink: each thread's lines stay in its order, each within its own cap.
#[derive(Debug)]
pub struct Presenter {
    sink: Arc<Sink>,
    json: bool,
    quiet: bool,
    max_lines: u64,
    window_start: Option<Instant>,
    in_window: u64,
    shown: u64,
    /// A server thread's number, named in its summaries (`None`: the only one).
    thread: Option<u32>,
}

/// The length of the rate window.
const WINDOW: Duration = Duration::from_secs(1);

impl Presenter {
    /// A presenter writing through a new [`Sink`].
    pub fn new(json: bool, quiet: bool, max_lines: u32) -> Self {
        Presenter {
            sink: Arc::new(Sink::spawn()),
            json,
            quiet,
            max_lines: u64::from(max_lines),
            window_start: None,
            in_window: 0,
            shown: 0,
            thread: None,
        }
    }

    /// A presenter for another thread, writing through the same sink, showing at most
    /// `max_lines` datagram lines a second of its own; its summaries name it `thread N`
    /// (siblings are numbered from 1). Drop it (or call [`finish`](Self::finish)) before
    /// the first presenter finishes.
    pub fn sibling(&self, max_lines: u32) -> Self {
        let n = self
            .sink
            .siblings
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Presenter {
            sink: Arc::clone(&self.sink),
            json: self.json,
            quiet: self.quiet,
            max_lines: u64::from(max_lines),
            window_start: None,
            in_window: 0,
            shown: 0,
            thread: Some(n),
        }
    }

    /// Queues a line of its own (e.g. an event), never blocking.
    pub fn event(&mut self, line: String) {
        let _ = self.sink.try_line(line);
    }

    /// Sums up the current window if anything in it was not shown, and closes it.
    fn roll(&mut self) {
        if !self.quiet && self.in_window > self.shown {
            let not_shown = self.in_window - self.shown;
            let line = if self.json {
                events::window_summary(self.in_window, not_shown, self.thread).to_string()
            } else {
                let who = self
                    .thread
                    .map(|n| format!("thread {n}: "))
                    .unwrap_or_default();
                format!(
                    "… {who}{} datagrams in the last 1s ({} not shown)",
                    self.in_window, not_shown
                )
            };
            let _ = self.sink.try_line(line);
        }
        self.window_start = None;
        self.in_window = 0;
        self.shown = 0;
    }

    /// Flushes the last summary and `last` (e.g. the final JSON event) and, if no sibling
    /// still holds it, stops the writer, all within `patience` whatever stdout does: every
    /// line to stdout goes through the writer thread, so a blocked write can never hold
    /// this one.
    pub fn finish(mut self, last: Option<String>, patience: Duration) {
        let deadline = std::time::Instant::now() + patience;
        self.roll();
        if let Some(line) = last {
            let _ = self.sink.line_by(line, deadline);
        }
        let sink = std::mem::replace(&mut self.sink, Arc::new(Sink::closed()));
        if let Ok(sink) = Arc::try_unwrap(sink) {
            sink.finish(deadline);
        }
    }

    fn line(&self, r: &Received<'_>, decision: Option<&Decision>) -> String {
        if self.json {
            events::datagram(r, decision).to_string()
        } else {
            let shown = payload::show(r.head, r.len, payload::DEFAULT_MAX_CHARS);
            let mut line = format!("{} sent {} bytes: {shown}", r.from, r.len);
            if let Some(Decision::Drop(why)) = decision {
                line.push_str(&format!(" (not answered: {why})"));
            }
            line
        }
    }
}

impl Observer for Presenter {
    fn datagram(&mut self, r: &Received<'_>, decision: Option<&Decision>) {
        if self.quiet {
            return; // nothing reads the window counts: keep the hot path empty
        }
        if self
            .window_start
            .is_some_and(|start| r.at >= start + WINDOW)
        {
            self.roll();
        }
        self.window_start.get_or_insert(r.at);
        self.in_window += 1;
        if self.shown >= self.max_lines {
            return;
        }
        if self.sink.try_line(self.line(r, decision)) {
            self.shown += 1;
        }
    }

    fn tick(&mut self, now: Instant) -> Wake {
        let Some(start) = self.window_start else {
            return Wake::OnDatagram;
        };
        if now >= start + WINDOW {
            self.roll();
            return Wake::OnDatagram;
        }
        // Wake at the window's end only if there is something to sum up.
        if self.in_window > self.shown && !self.quiet {
            Wake::At(start + WINDOW)
        } else {
            Wake::OnDatagram
        }
    }

    fn stop(&self) -> bool {
        self.sink.is_closed()
    }
}
