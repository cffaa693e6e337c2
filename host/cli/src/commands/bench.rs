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
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use serde_json::json;
use udp_echo_core::embedded_nal::UdpClientStack;
use udp_echo_core::wire::{self, MAX_REPLY_LEN, max_request};
use udp_echo_core::{Reply, StackErrorKind};
use udp_echo_host::mmsg::{BATCH, RecvBatch, SendBatch};
use udp_echo_host::stack::{StdSocket, StdStack};

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

/// One connected socket and the send times of its requests in flight.
struct Flow {
    socket: StdSocket,
    window: usize,
    in_flight: VecDeque<Instant>,
}

/// The run's tallies.
#[derive(Default)]
struct Tally {
    sent: u64,
    replies: u64,
    lost: u64,
    ignored: u64,
    refused: u64,
    rtts: Vec<u32>, // microseconds
}

/// Runs the load; exit 0 if any reply came.
pub fn run(args: &BenchArgs, json: bool) -> Result<ExitCode, Failure> {
    let max = max_request(args.server);
    if args.size > max {
        return Err(Failure::usage(format!(
            "--size {} is too large: one UDP datagram to {} carries at most {max} bytes",
            args.size, args.server
        )));
    }
    let duration = args.duration.min(MAX_DURATION);
    let request: Vec<u8> = (0..args.size).map(|i| b'a' + (i % 26) as u8).collect();
    let window = args.window as usize;
    let sockets = (args.sockets as usize).min(window);
    let limit = args.requests.unwrap_or(MAX_REQUESTS).min(MAX_REQUESTS);
    let net =
        |e: &dyn std::fmt::Display| Failure::network(format!("bench to {}: {e}", args.server));

    let mut stack = StdStack::new().with_recv_buffer_size(4 << 20);
    let mut flows = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let mut socket = stack.socket().map_err(|e| net(&e))?;
        stack
            .connect(&mut socket, args.server)
            .map_err(|e| net(&e))?;
        // The window spread over the sockets, the first ones taking the remainder.
        let share = window / sockets + usize::from(i < window % sockets);
        flows.push(Flow {
            socket,
            window: share,
            in_flight: VecDeque::with_capacity(share),
        });
    }

    let mut t = Tally::default();
    let mut recv = RecvBatch::new();
    let mut send = SendBatch::new();
    let start = Instant::now();
    let end = start + duration;
    let mut last_reply = start;
    loop {
        let now = Instant::now();
        let mut progress = false;
        for flow in &mut flows {
            // Fill this socket's window, a batch at a time.
            while now < end && t.sent < limit && flow.in_flight.len() < flow.window {
                let room = (flow.window - flow.in_flight.len())
                    .min(BATCH)
                    .min(usize::try_from(limit - t.sent).unwrap_or(BATCH));
                for _ in 0..room {
                    let _ = send.push(None, Reply::new(0), None, false);
                }
                let done = send.flush_same(&flow.socket, &request);
                let at = Instant::now();
                for _ in 0..done.sent {
                    flow.in_flight.push_back(at);
                }
                t.sent += done.sent as u64;
                progress |= done.sent > 0;
                if done.failed > 0 {
                    // Refused (ICMP) or the kernel's queue is full: try again later.
                    t.refused += done.failed as u64;
                    break;
                }
            }
            // Read what came back on it.
            loop {
                let n = match recv.recv(&flow.socket) {
                    Ok(n) => n,
                    Err(e)
                        if udp_echo_core::stack::classify_io_error(&e)
                            == StackErrorKind::Refused =>
                    {
                        t.refused += 1;
                        continue;
                    }
                    Err(e) => return Err(net(&e)),
                };
                let at = Instant::now();
                for i in 0..n {
                    let Some(d) = recv.get(i) else { continue };
                    let ok = d.len <= MAX_REPLY_LEN
                        && wire::parse_reply(d.head).is_ok_and(|n| usize::from(n) == args.size);
                    match (ok, ok.then(|| flow.in_flight.pop_front()).flatten()) {
                        (true, Some(sent_at)) => {
                            t.replies += 1;
                            last_reply = at;
                            let us = (at - sent_at).as_micros();
                            t.rtts.push(u32::try_from(us).unwrap_or(u32::MAX));
                        }
                        // A reply to a request already counted lost, or not a reply.
                        _ => t.ignored += 1,
                    }
                }
                progress |= n > 0;
                if n < BATCH {
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
            }
        }
        let now = Instant::now();
        let sending = now < end && t.sent < limit;
        let in_flight: usize = flows.iter().map(|f| f.in_flight.len()).sum();
        if !sending && (in_flight == 0 || now >= end + DRAIN) {
            t.lost += in_flight as u64;
            break;
        }
        if progress {
            continue;
        }
        // Sleep until a reply, the oldest request's loss, or the end of sending/draining;
        // a refused send is tried again after a millisecond instead of spinning.
        let mut until = if sending { end } else { end + DRAIN };
        for f in &flows {
            if let Some(s) = f.in_flight.front() {
                until = until.min(*s + LOSS_TIMEOUT);
            }
        }
        if sending {
            until = until.min(now + Duration::from_millis(1));
        }
        wait_any(&flows, until).map_err(|e| net(&e))?;
    }
    for flow in flows {
        let _ = stack.close(flow.socket);
    }
    let Tally {
        sent,
        replies,
        lost,
        ignored,
        refused,
        mut rtts,
    } = t;

    let active = last_reply
        .saturating_duration_since(start)
        .max(Duration::from_micros(1));
    let rate = replies as f64 / active.as_secs_f64();
    rtts.sort_unstable();
    let pct = |p: f64| -> Option<f64> {
        if rtts.is_empty() {
            return None;
        }
        let i = ((rtts.len() as f64 - 1.0) * p).round() as usize;
        Some(f64::from(rtts[i]) / 1000.0)
    };
    let mut out = Stdout::default();
    if json {
        out.json(
            &json!({"event": "bench", "server": args.server.to_string(), "size": args.size,
            "window": window, "sockets": sockets, "duration_ms": ms(duration), "sent": sent, "replies": replies,
            "lost": lost, "ignored": ignored, "refused": refused, "replies_per_s": rate.round(),
            "rtt_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1.0)}}),
        );
    } else {
        out.line(format_args!(
            "{} requests of {} bytes to {} ({} in flight on {} sockets) in {:.2}s",
            sent,
            args.size,
            args.server,
            window,
            sockets,
            duration.as_secs_f64()
        ));
        out.line(format_args!(
            "{replies} replies, {lost} lost, {ignored} ignored, {refused} refused: {rate:.0} replies/s"
        ));
        if let (Some(p50), Some(p90), Some(p99), Some(max)) =
            (pct(0.5), pct(0.9), pct(0.99), pct(1.0))
        {
            out.line(format_args!(
                "rtt p50 {p50:.3} ms, p90 {p90:.3} ms, p99 {p99:.3} ms, max {max:.3} ms"
            ));
        }
    }
    Ok(if replies > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Sleeps in `poll(2)` until one of the flows' sockets is readable or `until` passes.
fn wait_any(flows: &[Flow], until: Instant) -> std::io::Result<()> {
    let mut fds: Vec<PollFd<'_>> = flows
        .iter()
        .map(|f| PollFd::from_borrowed_fd(f.socket.as_fd(), PollFlags::IN))
        .collect();
    let left = until.saturating_duration_since(Instant::now());
    let timeout = Timespec::try_from(left).ok();
    match rustix::event::poll(&mut fds, timeout.as_ref()) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
