//! Presentation: text or JSON lines on stdout, diagnostics on stderr.
//!
//! Nothing here panics on a closed stdout (EPIPE, e.g. `udp-echo serve | head -1`): a
//! failed write marks stdout closed and later lines are dropped.
//!
//! The server and listener loops never write to stdout themselves: a [`Presenter`] turns
//! at most `max_lines` datagrams a second into lines, queues them without blocking to a
//! writer thread ([`Sink`]) that buffers and flushes when idle and at least every 100 ms,
//! and sums up the rest once a second.

mod diag;
pub mod events;
mod lines;
mod numbers;
mod presenter;
mod sink;
mod status;
mod watch;

pub use diag::{diag, plain};
pub use lines::Stdout;
pub use numbers::{human, ms};
pub use presenter::Presenter;
pub use sink::Sink;
pub use status::{CLOSED_STDOUT, stdout_error, stdout_failed, stdout_write_error};
pub use watch::exit_when_stdout_closes;
