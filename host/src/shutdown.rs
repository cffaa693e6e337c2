//! Stopping cleanly on SIGINT and SIGTERM (Ctrl-C), and on Unix on SIGHUP too.
//!
//! [`Shutdown::install`] registers these signals with `signal-hook`: each sets a flag and,
//! on Unix, writes one byte to a self-pipe. A shell passes the shutdown to its waits
//! ([`Shutdown::fd`] to
//! [`StdStack::wait_readable_or`](crate::stack::StdStack::wait_readable_or), or the whole
//! value to [`client::exchange`](crate::client::exchange)), so on Unix a wait ends the
//! moment a signal arrives; the shell then checks [`Shutdown::requested`] and stops. A
//! second SIGINT while the first is being handled ends the process at once (exit status
//! 130), as an impatient user expects.
//!
//! SIGHUP (the terminal went away, or `kill -HUP`) stops the same way as SIGTERM, so a
//! server or a ping stopped by it still prints its summary; nothing is reloaded.
//!
//! On Windows there is no descriptor to wake a wait ([`Shutdown::fd`] is `None`: Ctrl-C
//! runs its handler on a thread of its own and only sets the flag), so a wait that should
//! stop on Ctrl-C ends at least every [`CHECK_EVERY`] to look at the flag; see
//! [`Shutdown::wait_deadline`].

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustix::fd::BorrowedFd;
use signal_hook::SigId;
#[cfg(unix)]
use signal_hook::consts::SIGHUP;
use signal_hook::consts::{SIGINT, SIGTERM};

/// Where no descriptor wakes a wait on a signal (Windows), the longest a wait that
/// should stop on one may last before it looks at the flag: the server loops'
/// [`MAX_WAIT`](crate::server::MAX_WAIT).
pub const CHECK_EVERY: Duration = crate::server::MAX_WAIT;

/// The signals that ask to stop: SIGINT and SIGTERM, and on Unix SIGHUP.
#[cfg(unix)]
const STOP_SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];
#[cfg(not(unix))]
const STOP_SIGNALS: [i32; 2] = [SIGINT, SIGTERM];

/// SIGINT, SIGTERM and (on Unix) SIGHUP, turned into a flag and (on Unix) a readable file
/// descriptor.
#[derive(Debug)]
pub struct Shutdown {
    signal: Arc<AtomicUsize>,
    /// The self-pipe's read end.
    #[cfg(unix)]
    pipe: std::os::unix::net::UnixStream,
    ids: Vec<SigId>,
}

impl Shutdown {
    /// Installs the handlers. Until this value is dropped, SIGINT, SIGTERM and SIGHUP (on
    /// Windows: Ctrl-C) no longer kill the process: they only make [`signal`](Self::signal) return
    /// `Some`.
    pub fn install() -> io::Result<Self> {
        #[cfg(unix)]
        let (pipe, write) = {
            let (read, write) = std::os::unix::net::UnixStream::pair()?;
            read.set_nonblocking(true)?;
            write.set_nonblocking(true)?;
            (read, write)
        };
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
        for sig in STOP_SIGNALS {
            ids.push(signal_hook::flag::register_usize(
                sig,
                Arc::clone(&signal),
                sig as usize,
            )?);
            // After the flag: a wait the pipe wakes finds the flag set.
            #[cfg(unix)]
            ids.push(signal_hook::low_level::pipe::register(
                sig,
                write.try_clone()?,
            )?);
        }
        Ok(Shutdown {
            signal,
            #[cfg(unix)]
            pipe,
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
            #[cfg(unix)]
            SIGHUP => "SIGHUP",
            _ => "a signal",
        })
    }

    /// On Unix: readable once a signal has arrived (it stays readable: the pipe is never
    /// drained). On Windows: `None`; wait until [`wait_deadline`](Self::wait_deadline)
    /// at the latest, then check [`requested`](Self::requested).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            Some(self.pipe.as_fd())
        }
        #[cfg(not(unix))]
        {
            None
        }
    }

    /// The deadline for a wait that should end when a stop is asked for, in place of
    /// `deadline` (`None`: none): the same where [`fd`](Self::fd) wakes the wait (Unix),
    /// else no later than [`CHECK_EVERY`] from now (Windows).
    pub fn wait_deadline(&self, deadline: Option<Instant>) -> Option<Instant> {
        wait_deadline(self.fd().is_some(), deadline, Instant::now())
    }

    /// Sleeps for `timeout` or until a signal arrives; returns whether one did.
    pub fn sleep(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.requested() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.sleep_once(deadline, now);
        }
        self.requested()
    }

    /// One wait on the self-pipe until `deadline`.
    #[cfg(unix)]
    fn sleep_once(&self, deadline: Instant, now: Instant) {
        use std::os::fd::AsFd;

        use rustix::event::{PollFd, PollFlags, Timespec};
        use rustix::io::Errno;

        // Within what poll takes on every system (see crate::wait).
        let left = deadline
            .saturating_duration_since(now)
            .min(Duration::from_secs(24 * 3600));
        let Ok(ts) = Timespec::try_from(left) else {
            std::thread::sleep(left);
            return;
        };
        let mut fds = [PollFd::from_borrowed_fd(self.pipe.as_fd(), PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(_) => std::thread::sleep(left),
        }
    }

    /// One nap of at most [`CHECK_EVERY`]: nothing wakes it early.
    #[cfg(not(unix))]
    fn sleep_once(&self, deadline: Instant, now: Instant) {
        if let Some(until) = self.wait_deadline(Some(deadline)) {
            std::thread::sleep(until.saturating_duration_since(now));
        }
    }
}

/// [`Shutdown::wait_deadline`] at `now`, for a shutdown with a descriptor or without.
fn wait_deadline(has_fd: bool, deadline: Option<Instant>, now: Instant) -> Option<Instant> {
    if has_fd {
        return deadline;
    }
    let check = now + CHECK_EVERY;
    Some(deadline.map_or(check, |deadline| deadline.min(check)))
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_descriptor_waits_end_every_check_interval() {
        let now = Instant::now();
        let soon = now + Duration::from_millis(50);
        let late = now + Duration::from_secs(60);
        // With a descriptor (Unix): the wait keeps its deadline.
        assert_eq!(wait_deadline(true, None, now), None);
        assert_eq!(wait_deadline(true, Some(late), now), Some(late));
        // Without (Windows): no later than CHECK_EVERY from now.
        assert_eq!(wait_deadline(false, None, now), Some(now + CHECK_EVERY));
        assert_eq!(
            wait_deadline(false, Some(late), now),
            Some(now + CHECK_EVERY)
        );
        assert_eq!(wait_deadline(false, Some(soon), now), Some(soon));
    }

    #[cfg(unix)]
    #[test]
    fn the_descriptor_is_there_on_unix() {
        let shutdown = Shutdown::install().unwrap();
        assert!(shutdown.fd().is_some());
        assert!(!shutdown.requested());
        let deadline = Some(Instant::now() + Duration::from_secs(60));
        assert_eq!(shutdown.wait_deadline(deadline), deadline);
        let t0 = Instant::now();
        assert!(!shutdown.sleep(Duration::from_millis(20)));
        assert!(t0.elapsed() >= Duration::from_millis(20));
    }
}
