//! Presentation: text or JSON lines on stdout, diagnostics on stderr.
//!
//! Nothing here panics on a closed stdout (EPIPE, e.g. `udp-echo serve | head -1`): a
//! failed write marks stdout closed and later lines are dropped.
//!
//! The server and listener loops never write to stdout themselves: a [`Presenter`] turns
//! at most `max_lines` datagrams a second into lines, queues them without blocking to a
//! writer thread ([`Sink`]) that buffers and flushes when idle and at least every 100 ms,
//! and sums up the rest once a second.

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use udp_echo_core::{Decision, Instant, Received, Wake};

use crate::payload;
use udp_echo_host::server::Observer;

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

/// Ends the process with [`CLOSED_STDOUT`] as soon as stdout is a pipe or socket whose
/// reader has gone (`| head -1`), even while the command waits for the network: the
/// results could not reach anyone. A watcher thread sleeps in `poll(2)` on stdout; it is
/// started only for a pipe or a socket, the only kinds of stdout whose reader can go away
/// (a thread costs a one-shot `send` about a tenth of its run).
///
/// On Windows there is no watcher (`WSAPoll` takes sockets only): a closed stdout is
/// noticed at the next write to it, which fails and ends the command as usual.
#[cfg(unix)]
pub fn exit_when_stdout_closes() {
    use rustix::fs::FileType;
    let kind = rustix::fs::fstat(io::stdout()).map(|st| FileType::from_raw_mode(st.st_mode));
    if !matches!(kind, Ok(FileType::Fifo | FileType::Socket)) {
        return;
    }
    let _ = thread::Builder::new()
        .name("stdout-watch".into())
        .spawn(|| {
            let stdout = io::stdout();
            let mut fds = [rustix::event::PollFd::new(
                &stdout,
                rustix::event::PollFlags::empty(),
            )];
            loop {
                match rustix::event::poll(&mut fds, None) {
                    Ok(_) => {
                        let got = fds[0].revents();
                        if got.intersects(
                            rustix::event::PollFlags::ERR | rustix::event::PollFlags::HUP,
                        ) {
                            std::process::exit(i32::from(CLOSED_STDOUT));
                        }
                        if got.contains(rustix::event::PollFlags::NVAL) {
                            return;
                        }
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(_) => return,
                }
            }
        });
}

/// Ends the process with [`CLOSED_STDOUT`] as soon as stdout's reader has gone: on Unix.
/// On Windows nothing watches stdout (`WSAPoll` takes sockets only): a closed stdout is
/// noticed at the next write to it, which fails and ends the command as usual.
#[cfg(not(unix))]
pub fn exit_when_stdout_closes() {}

/// An `io::Error` for people: the text without its ` (os error N)` tail.
pub fn plain(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}

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

/// Milliseconds with microsecond precision, for JSON.
pub fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

/// A duration for people: `0.123 ms`, `12.3 ms`, `3.10s`.
pub fn human(d: Duration) -> String {
    let ms = ms(d);
    if d < Duration::from_micros(1) {
        format!("{} ns", d.as_nanos())
    } else if ms < 1.0 {
        format!("{ms:.3} ms")
    } else if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// How many lines may wait for the writer thread; more are dropped (and counted).
const QUEUE: usize = 1024;
/// The writer flushes whenever its queue runs dry, and wakes at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// A writer thread for stdout: lines are queued without ever blocking the caller.
#[derive(Debug)]
pub struct Sink {
    tx: Option<SyncSender<String>>,
    closed: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The number the next [`Presenter::sibling`] gets (server threads count from 1).
    siblings: std::sync::atomic::AtomicU32,
}

impl Sink {
    /// Starts the writer thread.
    pub fn spawn() -> Self {
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        let closed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&closed);
        let thread = thread::Builder::new()
            .name("stdout".into())
            .spawn(move || {
                let stdout = io::stdout();
                let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
                let mut dirty = false;
                loop {
                    let line = match rx.recv_timeout(FLUSH_EVERY) {
                        Ok(line) => Some(line),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    let mut result = Ok(());
                    if let Some(line) = line {
                        result = result.and(writeln!(out, "{line}"));
                        dirty = true;
                    }
                    // Whatever else is queued goes into the same buffer before a flush.
                    while let Ok(line) = rx.try_recv() {
                        result = result.and(writeln!(out, "{line}"));
                    }
                    if dirty {
                        result = result.and(out.flush());
                        dirty = false;
                    }
                    if let Err(e) = result {
                        stdout_failed(e);
                        flag.store(true, Ordering::SeqCst);
                        break;
                    }
                }
                if let Err(e) = out.flush() {
                    stdout_failed(e);
                }
            })
            .ok();
        Sink {
            tx: Some(tx),
            closed,
            thread,
            siblings: std::sync::atomic::AtomicU32::new(1),
        }
    }

    /// A sink with no writer: every line is dropped.
    fn closed() -> Self {
        Sink {
            tx: None,
            closed: Arc::new(AtomicBool::new(true)),
            thread: None,
            siblings: std::sync::atomic::AtomicU32::new(1),
        }
    }

    /// Queues a line; false if the queue was full or stdout is closed (the line is dropped).
    pub fn try_line(&self, line: String) -> bool {
        if self.is_closed() {
            return false;
        }
        match &self.tx {
            Some(tx) => match tx.try_send(line) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => false,
                Err(TrySendError::Disconnected(_)) => {
                    self.closed.store(true, Ordering::SeqCst);
                    false
                }
            },
            None => false,
        }
    }

    /// Queues a line, waiting for room until `deadline` at the latest: for a last line
    /// that a slow reader should still get, and that a reader who never reads must not
    /// turn into a hang. False if it was dropped.
    pub fn line_by(&self, mut line: String, deadline: std::time::Instant) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        loop {
            if self.is_closed() {
                return false;
            }
            match tx.try_send(line) {
                Ok(()) => return true,
                Err(TrySendError::Full(back)) if std::time::Instant::now() < deadline => {
                    line = back;
                    thread::sleep(Duration::from_millis(2));
                }
                Err(_) => return false,
            }
        }
    }

    /// Whether writing to stdout failed (e.g. the reader went away).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Writes what is queued and stops the thread; gives up waiting at `deadline` (a
    /// reader that never reads must not keep the process alive: the thread, blocked in a
    /// write, ends with the process, and std's exit-time flush does not wait for it).
    pub fn finish(mut self, deadline: std::time::Instant) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                thread::sleep(Duration::from_millis(2));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

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
                let mut v = json!({"event": "summary", "window_s": 1,
                                   "datagrams": self.in_window, "not_shown": not_shown});
                if let Some(n) = self.thread {
                    v["thread"] = json!(n);
                }
                v.to_string()
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
            // The bytes seen (the receiver may keep only the head of a long datagram):
            // base64 always, and the text itself when they are valid UTF-8.
            let mut v = json!({"event": "datagram", "from": r.from.to_string(),
                               "bytes": r.len, "payload_b64": BASE64.encode(r.head),
                               "cut": r.head.len() < r.len});
            if let Ok(text) = std::str::from_utf8(r.head) {
                v["text"] = json!(text);
            }
            match decision {
                Some(Decision::Reply(reply)) => v["reply"] = json!(reply.to_string()),
                Some(Decision::Drop(why)) => v["dropped"] = json!(why.key()),
                None => {}
            }
            v.to_string()
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
