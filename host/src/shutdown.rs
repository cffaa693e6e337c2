//! Stopping cleanly on SIGINT and SIGTERM.
//!
//! [`Shutdown::install`] registers both signals with `signal-hook`: each sets a flag and
//! writes one byte to a self-pipe. A shell passes [`Shutdown::fd`] to
//! [`StdStack::wait_readable_or`](crate::stack::StdStack::wait_readable_or), so its wait
//! ends the moment a signal arrives, then checks [`Shutdown::signal`] and stops. A second
//! SIGINT while the first is being handled ends the process at once (exit status 130), as
//! an impatient user expects.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use signal_hook::SigId;
use signal_hook::consts::{SIGINT, SIGTERM};

/// SIGINT and SIGTERM, turned into a flag and a readable file descriptor.
#[derive(Debug)]
pub struct Shutdown {
    signal: Arc<AtomicUsize>,
    pipe: UnixStream,
    ids: Vec<SigId>,
}

impl Shutdown {
    /// Installs the handlers. Until this value is dropped, SIGINT and SIGTERM no longer
    /// kill the process: they only make [`signal`](Self::signal) return `Some`.
    pub fn install() -> io::Result<Self> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let signal = Arc::new(AtomicUsize::new(0));
        let twice = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        // Registered first, so it runs before the flag is set: only a SIGINT that finds
        // the flag already set (a second Ctrl-C) exits at once.
        ids.push(signal_hook::flag::register_conditional_shutdown(
            SIGINT,
            130,
            Arc::clone(&twice),
        )?);
        ids.push(signal_hook::flag::register(SIGINT, Arc::clone(&twice))?);
        for sig in [SIGINT, SIGTERM] {
            ids.push(signal_hook::flag::register_usize(
                sig,
                Arc::clone(&signal),
                sig as usize,
            )?);
            ids.push(signal_hook::low_level::pipe::register(
                sig,
                write.try_clone()?,
            )?);
        }
        Ok(Shutdown {
            signal,
            pipe: read,
            ids,
        })
    }

    /// The signal that asked to stop, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            sig => i32::try_from(sig).ok(),
        }
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.signal().is_some()
    }

    /// The signal's name, e.g. `SIGTERM`, for messages.
    pub fn signal_name(&self) -> Option<&'static str> {
        self.signal().map(|sig| match sig {
            SIGINT => "SIGINT",
            SIGTERM => "SIGTERM",
            _ => "a signal",
        })
    }

    /// Readable once a signal has arrived (it stays readable: the pipe is never drained).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.pipe.as_fd())
    }

    /// Sleeps for `timeout` or until a signal arrives; returns whether one did.
    pub fn sleep(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while !self.requested() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let Ok(ts) = Timespec::try_from(left) else {
                break;
            };
            let mut fds = [PollFd::from_borrowed_fd(self.pipe.as_fd(), PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => std::thread::sleep(left),
            }
        }
        self.requested()
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
