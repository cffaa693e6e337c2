//! The stdout watcher: the process ends with [`CLOSED_STDOUT`](super::CLOSED_STDOUT) as
//! soon as stdout's reader has gone, even while the command waits for the network.

#[cfg(unix)]
use std::io;
#[cfg(unix)]
use std::thread;

#[cfg(unix)]
use super::CLOSED_STDOUT;

/// Ends the process with [`CLOSED_STDOUT`](super::CLOSED_STDOUT) as soon as stdout is a
/// pipe or socket whose reader has gone (`| head -1`), even while the command waits for
/// the network: the results could not reach anyone. A watcher thread sleeps in `poll(2)`
/// on stdout; it is started only for a pipe or a socket, the only kinds of stdout whose
/// reader can go away (a thread costs a one-shot `send` about a tenth of its run).
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

/// Ends the process with [`CLOSED_STDOUT`](super::CLOSED_STDOUT) as soon as stdout's
/// reader has gone: on Unix.
/// On Windows nothing watches stdout (`WSAPoll` takes sockets only): a closed stdout is
/// noticed at the next write to it, which fails and ends the command as usual.
#[cfg(not(unix))]
pub fn exit_when_stdout_closes() {}
