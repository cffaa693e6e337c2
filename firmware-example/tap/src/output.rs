//! The output lines: results on stdout, diagnostics on stderr, each line in one write.

use std::fmt;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};

use udp_echo_core::{ClientEvent, Decision, Outcome, Received};

/// A failure after argument parsing: the message and the exit status.
#[derive(Debug)]
pub struct Failure {
    /// The exit status: 2 for bad arguments, 1 for everything else.
    pub code: u8,
    /// What went wrong, said after the binary's name.
    pub message: String,
}

impl Failure {
    /// Bad arguments the parser could not see (status 2).
    pub fn usage(message: String) -> Self {
        Self { code: 2, message }
    }

    /// A device, network or client failure (status 1).
    pub fn runtime(message: impl ToString) -> Self {
        Self {
            code: 1,
            message: message.to_string(),
        }
    }
}

/// One line on stderr in one `write` (stderr is unbuffered: `eprintln!` writes piecemeal,
/// which interleaves badly with other processes' output).
pub fn say(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// One line on stdout. A closed stdout (`| head -1`) must not panic the server: the line
/// is dropped.
pub fn print(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(format!("{line}\n").as_bytes())
        .and_then(|()| out.flush());
}

/// The plural ending for `n` of something.
pub fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Checks that a client's `message` fits one frame on device `tap`, which carries at most
/// `max` bytes of UDP payload: the stacks do not fragment.
pub fn fits(message: &[u8], max: usize, tap: &str) -> Result<(), Failure> {
    if message.len() > max {
        return Err(Failure::usage(format!(
            "the message is {} bytes; at most {max} fit one frame on {tap} (this stack does \
             not fragment)",
            message.len(),
        )));
    }
    Ok(())
}

/// [`Binary::outcome`](crate::Binary::outcome), with the binary's reason for unsent
/// datagrams.
pub(crate) fn outcome(server: SocketAddrV4, outcome: Outcome, unsent: &str) -> Result<(), Failure> {
    match outcome {
        Outcome::Reply(r) => {
            print(&format!("Your data was {} bytes", r.count));
            say(&format!(
                "reply from {server}: rtt {:.3} ms{}, {} attempt{}, {:.3} ms in all",
                r.rtt.as_secs_f64() * 1e3,
                if r.rtt_ambiguous {
                    " (ambiguous: measured after a resend)"
                } else {
                    ""
                },
                r.attempts,
                plural(r.attempts.into()),
                r.elapsed.as_secs_f64() * 1e3,
            ));
            Ok(())
        }
        Outcome::GaveUp(g) => Err(Failure::runtime(format!(
            "no reply from {server} after {} attempt{} in {} ms{}",
            g.attempts,
            plural(g.attempts.into()),
            g.elapsed.as_millis(),
            match g.unsent {
                0 => String::new(),
                n => format!(
                    "; {n} more could not be sent ({unsent}: is {} on the link?)",
                    server.ip()
                ),
            }
        ))),
    }
}

/// The client's progress on stderr, one line per event. Blocked sends come in bursts:
/// one line per burst.
#[derive(Debug)]
pub struct Progress {
    /// The rest of a `send blocked at X ms: …` line.
    blocked_note: &'static str,
    blocked: bool,
}

impl Progress {
    /// Progress lines that say `blocked_note` of a blocked send.
    pub fn new(blocked_note: &'static str) -> Self {
        Self {
            blocked_note,
            blocked: false,
        }
    }

    /// Reports `event`, which happened `ms` milliseconds into the exchange. Only sends,
    /// blocked sends, ignored datagrams and refusals make a line.
    pub fn report(&mut self, event: &ClientEvent, ms: f64) {
        match event {
            ClientEvent::Sent { attempt, .. } => {
                self.blocked = false;
                say(&format!("attempt {attempt} sent at {ms:.1} ms"));
            }
            ClientEvent::SendBlocked if !self.blocked => {
                self.blocked = true;
                say(&format!(
                    "send blocked at {ms:.1} ms: {}",
                    self.blocked_note
                ));
            }
            ClientEvent::Ignored { from, verdict } => say(&format!(
                "ignored a datagram at {ms:.1} ms from {}: {verdict:?}",
                from.map_or("an unknown source".into(), |a| a.to_string())
            )),
            ClientEvent::Refused => say(&format!(
                "ICMP port unreachable at {ms:.1} ms (noted; the schedule goes on)"
            )),
            _ => {}
        }
    }
}

/// The server's first line, on stderr: where it listens.
pub fn listening(address: Ipv4Addr, port: u16, tap: &str, mac: impl fmt::Display) {
    say(&format!("listening on {address}:{port} ({tap}, {mac})"));
}

/// The server's line for one datagram, on stdout: its source and size, and why it was not
/// answered if it was not.
pub fn datagram(rx: &Received<'_>, decision: &Decision) {
    match decision {
        Decision::Reply(_) => print(&format!("{} sent {} bytes", rx.from, rx.len)),
        Decision::Drop(why) => print(&format!(
            "{} sent {} bytes, not answered: {why}",
            rx.from, rx.len
        )),
    }
}

/// The server's last line, on stderr: how many datagrams it answered.
pub fn answered(replied: u64) {
    say(&format!("answered {replied} datagram{}", plural(replied)));
}
