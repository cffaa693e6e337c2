//! `udp-echo ping`: repeated exchanges (a fresh socket each), then loss and RTT statistics.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use udp_echo::parse::{Peer, parse_duration, parse_peer_arg};
use udp_echo_core::wire::Reply;
use udp_echo_core::{ClientEvent, Outcome, RetryPolicy};
use udp_echo_host::client::{self, Ended};

use super::{client_failure, filler, install_shutdown};
use crate::args::{Failure, NetArgs, RetryArgs, local_server_in};
use crate::diag;
use crate::output::{Stdout, events, human, ms};

// `ping`'s options.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct PingArgs {
    /// The server: `HOST`, `HOST:PORT`, `IP`, `[IPv6]:PORT` or a bare `PORT` (127.0.0.1);
    /// default 127.0.0.1:6666.
    #[arg(value_name = "HOST[:PORT]", value_parser = parse_peer_arg, conflicts_with = "server")]
    pub target: Option<Peer>,
    /// The server, as an option.
    #[arg(long, value_name = "HOST[:PORT]", value_parser = parse_peer_arg)]
    pub server: Option<Peer>,
    #[command(flatten)]
    pub net: NetArgs,
    /// Exchanges to make; 0 runs until Ctrl-C. Default 4, or unlimited with -w.
    #[arg(long, short, allow_negative_numbers = true, value_parser = parse_count)]
    pub count: Option<u64>,
    /// Time between the starts of two exchanges (a number alone is seconds).
    #[arg(long, short, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Request size in bytes.
    #[arg(long, short, default_value_t = 12)]
    pub size: usize,
    /// Summary only: no line per exchange.
    #[arg(long, short)]
    pub quiet: bool,
    /// Stop after this long in all, whatever -c says (an exchange in progress is cut at
    /// the deadline); exit 0 if any reply came.
    #[arg(long, short = 'w', value_name = "DEADLINE", value_parser = parse_duration)]
    pub deadline: Option<Duration>,
    /// Wait this long for each reply, with no retry: shorthand for
    /// `--attempts 1 --initial-timeout WAIT --max-timeout WAIT`.
    #[arg(long, short = 'W', value_name = "WAIT", value_parser = parse_duration,
          conflicts_with_all = ["initial_timeout", "max_timeout", "attempts", "factor"])]
    pub wait: Option<Duration>,
    #[command(flatten)]
    pub retry: RetryArgs,
}

impl PingArgs {
    /// The server: the positional target, else --server, else 127.0.0.1:6666 ([::1] with
    /// -6), in the family -4/-6 ask for.
    pub fn server(&self) -> Result<SocketAddr, Failure> {
        match self.target.as_ref().or(self.server.as_ref()) {
            Some(peer) => self.net.resolve(peer),
            None => Ok(local_server_in(self.net.family())),
        }
    }

    /// The retry policy, with -W mapped onto it.
    pub fn policy(&self) -> Result<RetryPolicy, Failure> {
        match self.wait {
            Some(wait) => RetryArgs {
                initial_timeout: wait,
                max_timeout: wait,
                factor: self.retry.factor,
                attempts: Some(1),
            }
            .policy(),
            None => self.retry.policy(),
        }
    }
}

/// `-c N`: a count, 0 for endless; a negative number gets words, not clap's `--` tip.
fn parse_count(s: &str) -> Result<u64, String> {
    s.parse::<u64>().map_err(|_| {
        format!("`{s}` is not a count: give 0 (until Ctrl-C) or a positive number of exchanges")
    })
}

/// The text after `--help`'s options.
const AFTER_HELP: &str = "\
Runs one exchange at a time: each sends a request from a fresh socket and waits for its
reply, retrying on the schedule (by default up to 5 sends over 3.1 s) before the next
exchange starts; -i spaces the starts of exchanges. -W WAIT makes each exchange a single
send that waits WAIT (--attempts 1 --initial-timeout WAIT --max-timeout WAIT).
-c 0 runs until Ctrl-C (or -w), which prints the summary; with -w and no -c, ping runs
until the deadline. Exit status 0 if any reply came, 1 if none did.

Examples:
  udp-echo ping
  udp-echo ping localhost:7000 -c 10 -i 0.2
  udp-echo ping ::1 -c 100 -i 10ms -s 1400 -q
  udp-echo ping 192.168.1.20 -w 5 -W 0.5
  udp-echo ping 10.0.0.1 --interface eth0 -4      # through eth0 only";

/// RTT statistics over the unambiguous samples (Karn's rule: an RTT measured after a
/// retransmission may belong to an earlier send and is left out).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stats {
    /// Exchanges that sent at least one request (an exchange cut short by Ctrl-C or the
    /// deadline after its first send counts, as lost).
    pub sent: u64,
    /// Requests (datagrams) that went out, retries included.
    pub datagrams: u64,
    /// Exchanges that got a reply.
    pub received: u64,
    /// Unambiguous round-trip times.
    pub rtts: Vec<Duration>,
}

impl Stats {
    /// Lost exchanges.
    pub fn lost(&self) -> u64 {
        self.sent - self.received
    }

    /// Loss in percent of the exchanges sent.
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            100.0 * self.lost() as f64 / self.sent as f64
        }
    }

    /// min, avg, max and mdev (as ping computes it) in milliseconds.
    pub fn rtt_ms(&self) -> Option<[f64; 4]> {
        if self.rtts.is_empty() {
            return None;
        }
        let xs: Vec<f64> = self.rtts.iter().map(|d| ms(*d)).collect();
        let n = xs.len() as f64;
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(0.0, f64::max);
        let avg = xs.iter().sum::<f64>() / n;
        let sq = xs.iter().map(|x| x * x).sum::<f64>() / n;
        let mdev = (sq - avg * avg).max(0.0).sqrt();
        Some([min, avg.clamp(min, max), max, mdev])
    }
}

/// Pings; exit 0 if any reply came, 1 if none did.
pub fn run(args: &PingArgs, json: bool) -> Result<ExitCode, Failure> {
    let mut policy = args.policy()?;
    let server = args.server()?;
    super::one_server(server)?;
    let request = filler(server, args.size)?;
    // ping(8): -w without -c runs until the deadline.
    let count = args
        .count
        .unwrap_or(if args.deadline.is_some() { 0 } else { 4 });
    let shutdown = install_shutdown()?;
    let mut stack = args.net.stack();
    let mut out = Stdout::default();
    let mut stats = Stats::default();
    let started = Instant::now();
    let deadline = args.deadline.map(|d| started + d);
    let schedule_deadline = policy.deadline;
    if !json {
        out.line(format_args!(
            "PING {server} with {} bytes, every {}",
            args.size,
            human(args.interval)
        ));
    }
    let mut seq: u64 = 0;
    while count == 0 || seq < count {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        seq += 1;
        let t0 = Instant::now();
        // -w: no exchange runs past the deadline.
        if let Some(d) = deadline {
            let left = d
                .saturating_duration_since(t0)
                .max(Duration::from_millis(1));
            policy.deadline = Some(schedule_deadline.map_or(left, |s| s.min(left)));
        }
        let mut ignored = super::IgnoredLog::default();
        let report = client::exchange(
            &mut stack,
            server,
            &request,
            &policy,
            Some(&shutdown),
            |event, at| {
                ignored.note(event);
                if let ClientEvent::Sent { attempt, .. } = *event
                    && attempt > 1
                    && !json
                    && !args.quiet
                {
                    diag!(
                        "udp-echo: seq={seq}: no reply yet; attempt {attempt} at {}",
                        human(at)
                    );
                }
            },
        )
        .map_err(|e| client_failure(e, &format!("cannot talk to {server}")))?;
        stats.datagrams += u64::from(report.sent);
        match report.ended {
            // Cut short by Ctrl-C: what went out counts as sent and unanswered.
            Ended::Interrupted => {
                if report.sent > 0 {
                    stats.sent += 1;
                }
                break;
            }
            Ended::Done(Outcome::Reply(r)) => {
                stats.sent += 1;
                stats.received += 1;
                if !r.rtt_ambiguous {
                    stats.rtts.push(r.rtt);
                }
                let reply = Reply::new(r.count);
                if json {
                    out.json(&events::ping_reply(seq, server, &r));
                } else if !args.quiet {
                    let note = if r.rtt_ambiguous {
                        format!(" after {} attempts (ambiguous)", r.attempts)
                    } else {
                        String::new()
                    };
                    out.line(format_args!(
                        "seq={seq} {server}: {reply}, rtt {}{note}",
                        human(r.rtt)
                    ));
                }
            }
            Ended::Done(Outcome::GaveUp(g)) => {
                stats.sent += 1;
                if json {
                    out.json(&events::ping_gave_up(seq, server, &g));
                } else if !args.quiet {
                    out.line(format_args!(
                        "seq={seq} {}{}",
                        super::send::gave_up_message(server, &g),
                        ignored.suffix()
                    ));
                }
            }
        }
        let more = count == 0 || seq < count;
        if !more || shutdown.requested() || out.is_closed() {
            break;
        }
        let mut next = t0 + args.interval;
        if let Some(d) = deadline {
            next = next.min(d);
        }
        if shutdown.sleep(next.saturating_duration_since(Instant::now())) {
            break;
        }
    }
    print_summary(&mut out, server, &stats, started.elapsed(), json);
    Ok(if stats.received > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_summary(out: &mut Stdout, server: SocketAddr, s: &Stats, time: Duration, json: bool) {
    let rtt = s.rtt_ms();
    if json {
        out.json(&events::ping_summary(&events::PingSummary {
            server,
            sent: s.sent,
            datagrams_sent: s.datagrams,
            received: s.received,
            lost: s.lost(),
            loss_percent: s.loss_percent(),
            rtt_samples: s.rtts.len(),
            rtt_ms: rtt,
            time,
        }));
        return;
    }
    out.line(format_args!("--- {server} udp-echo ping statistics ---"));
    let datagrams = if s.datagrams == s.sent {
        String::new()
    } else {
        format!(" ({} datagrams)", s.datagrams)
    };
    out.line(format_args!(
        "{} sent{datagrams}, {} received, {:.1}% loss, time {}",
        s.sent,
        s.received,
        s.loss_percent(),
        human(time)
    ));
    if let Some([min, avg, max, mdev]) = rtt {
        out.line(format_args!(
            "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_and_rtt_statistics_add_up() {
        let ms = Duration::from_millis;
        let s = Stats {
            sent: 4,
            datagrams: 5,
            received: 3,
            rtts: vec![ms(1), ms(2), ms(3)],
        };
        assert_eq!(s.lost(), 1);
        assert_eq!(s.loss_percent(), 25.0);
        let [min, avg, max, mdev] = s.rtt_ms().unwrap();
        assert_eq!((min, avg, max), (1.0, 2.0, 3.0));
        assert!((mdev - (2.0f64 / 3.0).sqrt()).abs() < 1e-9);
        assert_eq!(Stats::default().loss_percent(), 0.0);
        assert_eq!(Stats::default().rtt_ms(), None);
    }
}
