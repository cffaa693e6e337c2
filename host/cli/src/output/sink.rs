//! [`Sink`]: a writer thread for stdout, so that a server loop never blocks on it.

use std::io::{self, BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::stdout_failed;

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
    /// The number the next [`Presenter::sibling`](super::Presenter::sibling) gets (server
    /// threads count from 1).
    pub(super) siblings: std::sync::atomic::AtomicU32,
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
    pub(super) fn closed() -> Self {
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
