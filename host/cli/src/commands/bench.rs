//! `udp-echo bench`: a bounded load generator for one server.
//!
//! Keeps `window` requests in flight, spread over `--sockets` connected sockets (so that
//! a server with several `SO_REUSEPORT` threads gets work on each, and one socket's
//! queue is not the bottleneck), for `duration` (at most 60 s) and at most `--requests`
//! (itself at most [`MAX_REQUESTS`]) requests, whichever ends first, then waits up to
//! [`DRAIN`] for the last replies. Requests go out and replies come in by the batch
//! (`sendmmsg`/`recvmmsg`, the same calls as the batched server). Replies are checked with
//! the core's parser (`Your data was N bytes`, N = the request size) and matched to each
//! socket's requests in order (loopback keeps order), which gives the RTT percentiles. A
//! request without a reply after [`LOSS_TIMEOUT`] counts as lost.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fd::AsFd;
use serde_json::json;
use udp_echo_core::StackErrorKind;
use udp_echo_core::wire::{self, MAX_REPLY_LEN, canonical};
use udp_echo_host::udp::{self, BATCH, BindOptions, Datagrams, Offload, Outbox, Path};

use super::filler;
use crate::cli::{BenchArgs, Failure};
use crate::output::{Stdout, ms};

/// The longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(60);
/// The most requests one run sends.
pub const MAX_REQUESTS: u64 = 20_000_000;
/// A request unanswered this long is lost.
pub const LOSS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long to wait for the last replies after sending stops.
pub const DRAIN: Duration = Duration::from_secs(1);

/// How long the last replies are awaited after Ctrl-C.
pub const INTERRUPT_DRAIN: Duration = Duration::from_millis(200);
/// How often a progress line goes to stderr.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// One socket (its own port) and the send times of its requests in flight.
struct Flow {
    io: Datagrams,
    window: usize,
    in_flight: VecDeque<Instant>,
}

/// Tallies, for the whole run and for each progress interval.
#[derive(Default, Clone)]
struct Tally {
    sent: u64,
    replies: u64,
    reply_bytes: u64,
    lost: u64,
    ignored: u64,
    refused: u64,
    rtts: Vec<u32>, // microseconds
}

/// The `p`-th percentile of sorted samples by the nearest-rank method: the smallest
/// sample with at least `p`% of the samples at or below it (rank ⌈p/100 · n⌉).
pub fn nearest_rank(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// `1.23 Mbit/s`.
fn bits_per_second(bytes: u64, secs: f64) -> String {
    let bits = bytes as f64 * 8.0 / secs;
    if bits >= 1e9 {
        format!("{:.2} Gbit/s", bits / 1e9)
    } else if bits >= 1e6 {
        format!("{:.2} Mbit/s", bits / 1e6)
    } else if bits >= 1e3 {
        format!("{:.2} kbit/s", bits / 1e3)
    } else {
        format!("{bits:.0} bit/s")
    }
}

/// Runs the load; exit 0 if any reply came.
pub fn run(args: &BenchArgs, json: bool) -> Result<ExitCode, Failure> {
    let server = args.server();
    let request = filler(server, args.size)?;
    if args.duration > MAX_DURATION {
        return Err(Failure::usage(format!(
            "--duration {:?} is longer than the cap of {}s: bench runs are bounded",
            args.duration,
            MAX_DURATION.as_secs()
        )));
    }
    let duration = args.duration;
    let window = args.window as usize;
    let sockets = (args.sockets as usize).min(window);
    let limit = args.requests.unwrap_or(MAX_REQUESTS).min(MAX_REQUESTS);
    let progress_lines = !json && !args.quiet;
    let net = |e: &dyn std::fmt::Display| Failure::network(format!("bench to {server}: {e}"));
    let shutdown = super::install_shutdown()?;

    let gso = usize::from(args.gso);
    let offload = if gso > 1 { Offload::ALL } else { Offload::NONE };
    let mut flows = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let local = match server {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
        };
        // Replies are told from other datagrams by their source. On Linux the socket is
        // also connected, so an ICMP "port unreachable" comes back as "refused"; elsewhere
        // (BSD, macOS) a connected socket refuses a destination on each send, which both
        // datagram paths give.
        let socket = udp::bind(local, BindOptions::default()).map_err(|e| net(&e))?;
        #[cfg(target_os = "linux")]
        socket.connect(&server.into()).map_err(|e| net(&e))?;
        let _ = socket.set_recv_buffer_size(4 << 20);
        let io = Datagrams::new(socket, Path::best(), offload).map_err(|e| net(&e))?;
        // The window spread over the sockets, the first ones taking the remainder.
        let share = window / sockets + usize::from(i < window % sockets);
        flows.push(Flow {
            io,
            window: share,
            in_flight: VecDeque::with_capacity(share),
        });
    }

    let mut t = Tally::default();
    let mut interval = Tally::default();
    let mut outbox = Outbox::new(gso);
    let start = Instant::now();
    let mut end = start + duration;
    let mut drain = DRAIN;
    let mut interrupted = false;
    let mut last_activity = start;
    let mut send_stopped: Option<Instant> = None;
    let mut next_progress = start + PROGRESS_EVERY;
    let mut interval_start = start;
    loop {
        if !interrupted && shutdown.requested() {
            interrupted = true;
            end = end.min(Instant::now());
            drain = INTERRUPT_DRAIN;
        }
        let now = Instant::now();
        let mut progress = false;
        for flow in &mut flows {
            // Fill this socket's window, a batch at a time.
            while now < end && t.sent < limit && flow.in_flight.len() < flow.window {
                let per_call = BATCH * gso;
                let room = (flow.window - flow.in_flight.len())
                    .min(per_call)
                    .min(usize::try_from(limit - t.sent).unwrap_or(per_call));
                for _ in 0..room {
                    outbox.push(server, None, &request);
                }
                // The RTT runs from before the send: a send that blocks counts.
                let at = Instant::now();
                let done = flow.io.send(&mut outbox);
                for _ in 0..done.sent {
                    flow.in_flight.push_back(at);
                }
                t.sent += done.sent as u64;
                interval.sent += done.sent as u64;
                if done.sent > 0 {
                    progress = true;
                    last_activity = Instant::now();
                }
                if done.failed > 0 {
                    // Refused (ICMP) or the kernel's queue is full: try again later.
                    t.refused += done.failed as u64;
                    break;
                }
            }
            // Read what came back on it.
            loop {
                let n = match flow.io.recv() {
                    Ok(n) => n,
                    Err(e)
                        if udp_echo_host::stack::classify_io_error(&e)
                            == StackErrorKind::Refused =>
                    {
                        t.refused += 1;
                        continue;
                    }
                    Err(e) => return Err(net(&crate::output::plain(&e))),
                };
                let at = Instant::now();
                let replies = (0..n)
                    .filter_map(|i| flow.io.get(i))
                    .flat_map(|(meta, buf)| meta.segments().map(move |r| (meta.from, &buf[r])));
                for (from, d) in replies {
                    let ok = canonical(from) == canonical(server)
                        && d.len() <= MAX_REPLY_LEN
                        && wire::parse_reply(d).is_ok_and(|n| usize::from(n) == args.size);
                    match (ok, ok.then(|| flow.in_flight.pop_front()).flatten()) {
                        (true, Some(sent_at)) => {
                            let us = u32::try_from((at - sent_at).as_micros()).unwrap_or(u32::MAX);
                            for tally in [&mut t, &mut interval] {
                                tally.replies += 1;
                                tally.reply_bytes += d.len() as u64;
                                tally.rtts.push(us);
                            }
                            last_activity = at;
                        }
                        // A reply to a request already counted lost, or not a reply.
                        _ => t.ignored += 1,
                    }
                }
                progress |= n > 0;
                if !flow.io.was_full() {
                    break;
                }
            }
            let now = Instant::now();
            while flow
                .in_flight
                .front()
                .is_some_and(|s| now - *s >= LOSS_TIMEOUT)
            {
                flow.in_flight.pop_front();
                t.lost += 1;
                interval.lost += 1;
            }
        }
        let now = Instant::now();
        if progress_lines && now >= next_progress {
            progress_line(&mut interval, interval_start, now, start);
            interval_start = now;
            next_progress = now + PROGRESS_EVERY;
        }
        let sending = now < end && t.sent < limit;
        if !sending && send_stopped.is_none() {
            send_stopped = Some(now.min(end));
        }
        let in_flight: usize = flows.iter().map(|f| f.in_flight.len()).sum();
        let drain_end = end.min(last_activity) + drain;
        if !sending && (in_flight == 0 || now >= drain_end.max(end)) {
            t.lost += in_flight as u64;
            break;
        }
        if progress {
            continue;
        }
        // Sleep until a reply, the oldest request's loss, the next progress line, or the
        // end of sending/draining; a refused send is tried again after a millisecond
        // instead of spinning.
        let mut until = if sending { end } else { drain_end.max(end) };
        for f in &flows {
            if let Some(s) = f.in_flight.front() {
                until = until.min(*s + LOSS_TIMEOUT);
            }
        }
        if sending {
            until = until.min(now + Duration::from_millis(1));
        }
        if progress_lines {
            until = until.min(next_progress);
        }
        let signal = (!interrupted).then(|| shutdown.fd()).flatten();
        // Where no descriptor wakes the wait on a signal (Windows), it ends within 200 ms.
        let until = shutdown.wait_deadline(Some(until)).unwrap_or(until);
        wait_any(&flows, signal, until).map_err(|e| net(&e))?;
    }
    drop(flows);
    let Tally {
        sent,
        replies,
        reply_bytes,
        lost,
        ignored,
        refused,
        mut rtts,
    } = t;

    // The run as it happened: from the first send until sending stopped (at --duration,
    // after --requests, or at Ctrl-C) or the last reply, whichever came later.
    let elapsed = send_stopped
        .map_or(last_activity, |s| s.max(last_activity))
        .saturating_duration_since(start)
        .max(Duration::from_micros(1));
    let secs = elapsed.as_secs_f64();
    let rate = replies as f64 / secs;
    let send_rate = sent as f64 / secs;
    let sent_bits = bits_per_second(sent * args.size as u64, secs);
    let reply_bits = bits_per_second(reply_bytes, secs);
    rtts.sort_unstable();
    let pct = |p: f64| nearest_rank(&rtts, p).map(|us| f64::from(us) / 1000.0);
    let mut out = Stdout::default();
    if json {
        let bps = |bytes: u64| (bytes as f64 * 8.0 / secs).round();
        out.json(&json!({
            "event": "bench", "server": server.to_string(), "size": args.size,
            "window": window, "sockets": sockets, "duration_ms": ms(elapsed),
            "interrupted": interrupted, "sent": sent, "replies": replies, "lost": lost,
            "ignored": ignored, "refused": refused, "requests_per_s": send_rate.round(),
            "replies_per_s": rate.round(), "request_bits_per_s": bps(sent * args.size as u64),
            "reply_bits_per_s": bps(reply_bytes), "percentile_method": "nearest-rank",
            "rtt_ms": {"p50": pct(50.0), "p90": pct(90.0), "p99": pct(99.0), "max": pct(100.0)},
        }));
    } else {
        let note = if interrupted { " (interrupted)" } else { "" };
        out.line(format_args!(
            "{sent} requests of {} bytes to {server} ({window} in flight on {sockets} sockets) in {:.3}s{note}",
            args.size, secs
        ));
        out.line(format_args!(
            "{replies} replies, {lost} lost, {ignored} ignored, {refused} refused: \
             {send_rate:.0} requests/s ({sent_bits} of payload), {rate:.0} replies/s ({reply_bits})"
        ));
        if let (Some(p50), Some(p90), Some(p99), Some(max)) =
            (pct(50.0), pct(90.0), pct(99.0), pct(100.0))
        {
            out.line(format_args!(
                "rtt p50 {p50:.3} ms, p90 {p90:.3} ms, p99 {p99:.3} ms, max {max:.3} ms (nearest-rank, {} samples)",
                rtts.len()
            ));
        }
    }
    Ok(if replies > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One iperf3-style interval line on stderr, and a fresh interval.
fn progress_line(interval: &mut Tally, from: Instant, to: Instant, start: Instant) {
    let secs = to.saturating_duration_since(from).as_secs_f64().max(1e-6);
    let done = interval.replies + interval.lost;
    let loss = if done == 0 {
        0.0
    } else {
        100.0 * interval.lost as f64 / done as f64
    };
    interval.rtts.sort_unstable();
    let rtt = match (
        nearest_rank(&interval.rtts, 50.0),
        nearest_rank(&interval.rtts, 99.0),
    ) {
        (Some(p50), Some(p99)) => format!(
            ", rtt p50 {:.3} ms, p99 {:.3} ms",
            f64::from(p50) / 1000.0,
            f64::from(p99) / 1000.0
        ),
        _ => String::new(),
    };
    crate::diag!(
        "[{:6.2}-{:6.2}s] {:.0} replies/s ({}), {:.1}% loss{rtt}",
        from.saturating_duration_since(start).as_secs_f64(),
        to.saturating_duration_since(start).as_secs_f64(),
        interval.replies as f64 / secs,
        bits_per_second(interval.reply_bytes, secs),
        loss
    );
    *interval = Tally::default();
}

/// Sleeps in `poll(2)` until one of the flows' sockets (or the signal pipe) is readable or
/// `until` passes.
fn wait_any(
    flows: &[Flow],
    signal: Option<rustix::fd::BorrowedFd<'_>>,
    until: Instant,
) -> std::io::Result<()> {
    let mut fds: Vec<PollFd<'_>> = flows
        .iter()
        .map(|f| PollFd::from_borrowed_fd(f.io.socket().as_fd(), PollFlags::IN))
        .chain(signal.map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN)))
        .collect();
    let left = until.saturating_duration_since(Instant::now());
    let timeout = Timespec::try_from(left).ok();
    match rustix::event::poll(&mut fds, timeout.as_ref()) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(nearest_rank(&[], 50.0), None);
        assert_eq!(nearest_rank(&[10, 20], 50.0), Some(10));
        assert_eq!(nearest_rank(&[10, 20], 99.0), Some(20));
        assert_eq!(nearest_rank(&[10, 20], 100.0), Some(20));
        let xs: Vec<u32> = (1..=100).collect();
        assert_eq!(nearest_rank(&xs, 90.0), Some(90));
        assert_eq!(nearest_rank(&xs, 99.0), Some(99));
        assert_eq!(nearest_rank(&xs, 0.0), Some(1));
    }
}
