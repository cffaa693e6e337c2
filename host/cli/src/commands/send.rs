//! `udp-echo send`: one exchange through the core's `Client` and `Exchange`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;
use udp_echo::parse::{Peer, parse_peer_arg};
use udp_echo_core::wire::{Reply, max_request};
use udp_echo_core::{ClientEvent, GaveUp, Outcome, Replied};
use udp_echo_host::client::{self, Ended};

use super::{client_failure, message_bytes};
use crate::args::{Failure, NetArgs, RetryArgs, local_server_in};
use crate::diag;
use crate::output::{Stdout, events, human};

// `send`'s options.
#[derive(Debug, Args)]
#[command(
    override_usage = "udp-echo send [OPTIONS] [HOST[:PORT]] MESSAGE",
    after_help = AFTER_HELP
)]
pub struct SendArgs {
    /// `MESSAGE`, or `HOST[:PORT] MESSAGE`: one word is the message, two are the server and
    /// the message. `-` reads the message from stdin (binary is fine); `""` sends an empty
    /// datagram.
    #[arg(value_name = "[HOST[:PORT]] MESSAGE", num_args = 1..=2, required = true)]
    pub words: Vec<OsString>,
    /// The server, as an option (default 127.0.0.1:6666).
    #[arg(long, value_name = "HOST[:PORT]", value_parser = parse_peer_arg)]
    pub server: Option<Peer>,
    #[command(flatten)]
    pub retry: RetryArgs,
    #[command(flatten)]
    pub net: NetArgs,
}

impl SendArgs {
    /// The server and the message, from the words and --server.
    pub fn target(&self) -> Result<(SocketAddr, &OsString), Failure> {
        let family = self.net.family();
        match (self.words.as_slice(), &self.server) {
            ([message], Some(server)) => Ok((self.net.resolve(server)?, message)),
            ([message], None) => Ok((local_server_in(family), message)),
            ([_, _], Some(_)) => Err(Failure::usage(
                "the server is given twice: write `send HOST[:PORT] MESSAGE` or `send --server HOST[:PORT] MESSAGE`",
            )),
            ([host, message], None) => {
                let host = host.to_str().ok_or_else(|| {
                    Failure::usage("the server (the first of two words) is not valid UTF-8")
                })?;
                let server = parse_peer_arg(host).map_err(|e| {
                    Failure::usage(format!(
                        "{e} (two words are `HOST[:PORT] MESSAGE`; quote a message with spaces)"
                    ))
                })?;
                Ok((self.net.resolve(&server)?, message))
            }
            _ => Err(Failure::usage("send takes `[HOST[:PORT]] MESSAGE`")),
        }
    }
}

/// The text after `--help`'s options.
const AFTER_HELP: &str = "\
One word is always the MESSAGE (sent to --server, default 127.0.0.1:6666); two words are the
server, then the MESSAGE. So `udp-echo send localhost` sends the text `localhost`, and
`udp-echo send localhost hi` sends `hi` to localhost:6666.

The reply goes to stdout; retries, RTT and errors to stderr. Exit status 0 on a reply,
1 when no reply came (the message names the attempts, the time and whether the port was
refused), 2 on bad input (e.g. a message longer than one datagram).

Examples:
  udp-echo send 'hello world!'
  udp-echo send ::1 ''                           # an empty datagram to [::1]:6666
  udp-echo send 127.0.0.1:7000 hi                # HOST:PORT then MESSAGE
  printf '\\377\\000' | udp-echo send -          # bytes from stdin
  udp-echo send hi --initial-timeout 50ms --max-timeout 1s --attempts 3
  udp-echo send -6 myhost hi                     # myhost's IPv6 address
  udp-echo send --source 10.0.0.2:40000 10.0.0.1 hi   # from this address and port
  udp-echo send '[fe80::1%eth0]:6666' hi         # link-local: name the interface";

/// Sends the message; exit 0 on a reply, 1 when the schedule runs out.
pub fn run(args: &SendArgs, json: bool) -> Result<ExitCode, Failure> {
    let policy = args.retry.policy()?;
    let (server, message) = args.target()?;
    super::one_server(server)?;
    let request = message_bytes(message, max_request(server))?;
    let mut stack = args.net.stack();
    let mut out = Stdout::default();
    let mut ignored = super::IgnoredLog::default();
    let report =
        client::exchange(
            &mut stack,
            server,
            &request,
            &policy,
            None,
            |event, at| match *event {
                ClientEvent::Ignored { .. } => ignored.note(event),
                ClientEvent::Sent { attempt, .. } if json => {
                    out.json(&events::send(attempt, at, request.len()))
                }
                ClientEvent::Sent { attempt, .. } if attempt > 1 => {
                    diag!("udp-echo: no reply yet; attempt {attempt} at {}", human(at));
                }
                _ => {}
            },
        )
        .map_err(|e| client_failure(e, &format!("cannot talk to {}", server)))?;
    match report.ended {
        Ended::Done(Outcome::Reply(r)) => {
            print_reply(&mut out, server, &r, json, &ignored);
            Ok(ExitCode::SUCCESS)
        }
        Ended::Done(Outcome::GaveUp(g)) => {
            if json {
                out.json(&events::gave_up(server, &g));
            }
            Err(Failure::network(format!(
                "{}{}",
                gave_up_message(server, &g),
                ignored.suffix()
            )))
        }
        Ended::Interrupted => Err(Failure::network("interrupted")),
    }
}

fn print_reply(
    out: &mut Stdout,
    server: SocketAddr,
    r: &Replied,
    json: bool,
    ignored: &super::IgnoredLog,
) {
    let reply = Reply::new(r.count);
    if json {
        out.json(&events::send_reply(server, r));
        return;
    }
    out.line(reply);
    if r.rtt_ambiguous {
        diag!(
            "udp-echo: reply from {server} after {} attempts in {}; rtt {} since the last send (ambiguous: it may answer an earlier one){}",
            r.attempts,
            human(r.elapsed),
            human(r.rtt),
            ignored.suffix()
        );
    } else {
        diag!(
            "udp-echo: reply from {server} in {} (1 attempt){}",
            human(r.rtt),
            ignored.suffix()
        );
    }
}

/// `no reply from ADDR after 5 attempts in 3.10s (port unreachable: …)`.
pub fn gave_up_message(server: SocketAddr, g: &GaveUp) -> String {
    let plural = if g.attempts == 1 { "" } else { "s" };
    let refused = if g.refused {
        " (port unreachable: connection refused, nothing listens there)"
    } else {
        ""
    };
    let unsent = match g.unsent {
        0 => String::new(),
        n => format!(" ({n} more could not be sent: the network refused them)"),
    };
    format!(
        "no reply from {server} after {} attempt{plural} in {:.2}s{unsent}{refused}",
        g.attempts,
        g.elapsed.as_secs_f64()
    )
}
