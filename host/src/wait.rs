//! The one thing a shell does: sleep until a socket is readable, another descriptor is
//! (a signal's self-pipe), or a deadline passes. `poll(2)` on Unix, `WSAPoll` on Windows
//! (both through rustix, whose [`BorrowedFd`] is a `BorrowedSocket` on Windows).

use std::io;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

/// The longest one `poll` call waits: a longer wait is several calls. Where `poll` takes
/// milliseconds in a C `int` (macOS, Windows), about 24.8 days is the most it can take.
const LONGEST_POLL: Duration = Duration::from_secs(24 * 3600);

/// What [`readable`] found ready (both false: the deadline passed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The socket has a datagram or a pending error.
    pub socket: bool,
    /// The other descriptor is readable.
    pub other: bool,
}

/// Sleeps until `socket` is readable (a datagram or a pending error such as an ICMP
/// report is waiting), `other` is readable, or `deadline` passes (`None`: no deadline).
/// Signals do not cut the wait short.
///
/// # Errors
///
/// If `poll(2)` fails.
pub fn readable(
    socket: BorrowedFd<'_>,
    other: Option<BorrowedFd<'_>>,
    deadline: Option<Instant>,
) -> io::Result<Readiness> {
    loop {
        // poll takes nanoseconds here (milliseconds, rounded up, on macOS and Windows): a
        // sub-millisecond wait does not round down to a zero timeout that would make the
        // caller spin.
        let left = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        let clamped = left.is_some_and(|left| left > LONGEST_POLL);
        let timespec = left.and_then(|left| Timespec::try_from(left.min(LONGEST_POLL)).ok());
        let mut fds = [
            PollFd::from_borrowed_fd(socket, PollFlags::IN),
            PollFd::from_borrowed_fd(other.unwrap_or(socket), PollFlags::IN),
        ];
        let n = if other.is_some() { 2 } else { 1 };
        match rustix::event::poll(&mut fds[..n], timespec.as_ref()) {
            // A clamped wait that timed out has not reached its deadline yet.
            Ok(0) if clamped => continue,
            Ok(_) => {
                return Ok(Readiness {
                    socket: !fds[0].revents().is_empty(),
                    other: other.is_some() && !fds[1].revents().is_empty(),
                });
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
