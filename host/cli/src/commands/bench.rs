//! `udp-echo bench`: a bounded load generator for one server.
//!
//! Keeps `window` requests in flight on one connected socket, for `duration` (at most
//! 60 s) and at most `--requests` (itself at most [`MAX_REQUESTS`]) requests, whichever
//! ends first, then waits up to [`DRAIN`] for the last replies. Replies are checked with
//! the core's parser (`Your data was N bytes`, N = the request size) and matched to
//! requests in order (loopback keeps order), which gives the RTT percentiles. A request without a reply after [`LOSS_TIMEOUT`] counts as lost.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;
use udp_echo_core::embedded_nal::UdpClientStack;
use udp_echo_core::wire::{self, MAX_REPLY_LEN, max_request};
use udp_echo_core::{StackErrorKind, nb};
use udp_echo_host::stack::StdStack;

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
    let limit = args.requests.unwrap_or(MAX_REQUESTS).min(MAX_REQUESTS);
    let net =
        |e: &dyn std::fmt::Display| Failure::network(format!("bench to {}: {e}", args.server));

    let mut stack = StdStack::new().with_recv_buffer_size(4 << 20);
    let mut socket = stack.socket().map_err(|e| net(&e))?;
    stack
        .connect(&mut socket, args.server)
        .map_err(|e| net(&e))?;

    let mut in_flight: VecDeque<Instant> = VecDeque::with_capacity(window);
    let mut rtts: Vec<u32> = Vec::new(); // microseconds
    let (mut sent, mut replies, mut lost, mut ignored, mut refused) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut buf = [0u8; MAX_REPLY_LEN + 1];
    let start = Instant::now();
    let end = start + duration;
    let mut last_reply = start;
    loop {
        let now = Instant::now();
        let sending = now < end && sent < limit;
        let mut send_blocked = false;
        while sending && in_flight.len() < window && sent < limit {
            match stack.send(&mut socket, &request) {
                Ok(()) => {
                    in_flight.push_back(Instant::now());
                    sent += 1;
                }
                Err(nb::Error::WouldBlock) => {
                    send_blocked = true;
                    break;
                }
                Err(nb::Error::Other(e)) if e.kind() == StackErrorKind::Refused => {
                    refused += 1;
                    send_blocked = true;
                    break;
                }
                Err(nb::Error::Other(e)) => return Err(net(&e)),
            }
        }
        loop {
            match stack.receive(&mut socket, &mut buf) {
                Ok((len, _from)) => {
                    let at = Instant::now();
                    let ok = len <= MAX_REPLY_LEN
                        && wire::parse_reply(&buf[..len])
                            .is_ok_and(|n| usize::from(n) == args.size);
                    match (ok, in_flight.pop_front()) {
                        (true, Some(t)) => {
                            replies += 1;
                            last_reply = at;
                            let us = (at - t).as_micros();
                            rtts.push(u32::try_from(us).unwrap_or(u32::MAX));
                        }
                        (true, None) => ignored += 1, // a reply to a request already counted lost
                        (false, front) => {
                            ignored += 1;
                            if let Some(t) = front {
                                in_flight.push_front(t);
                            }
                        }
                    }
                }
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(e)) if e.kind() == StackErrorKind::Refused => refused += 1,
                Err(nb::Error::Other(e)) => return Err(net(&e)),
            }
        }
        let now = Instant::now();
        while in_flight.front().is_some_and(|t| now - *t >= LOSS_TIMEOUT) {
            in_flight.pop_front();
            lost += 1;
        }
        let sending = now < end && sent < limit;
        if !sending && (in_flight.is_empty() || now >= end + DRAIN) {
            lost += in_flight.len() as u64;
            break;
        }
        if sending && in_flight.len() < window && !send_blocked {
            continue; // replies made room: send again before waiting
        }
        // Sleep until a reply, the oldest request's loss, or the end of sending/draining.
        let mut until = if sending { end } else { end + DRAIN };
        if let Some(t) = in_flight.front() {
            until = until.min(*t + LOSS_TIMEOUT);
        }
        if send_blocked {
            // The kernel refused a send for now: retry shortly instead of spinning.
            until = until.min(now + Duration::from_millis(1));
        }
        stack
            .wait_readable(&socket, Some(until))
            .map_err(|e| net(&e))?;
    }
    let _ = stack.close(socket);

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
            "window": window, "duration_ms": ms(duration), "sent": sent, "replies": replies,
            "lost": lost, "ignored": ignored, "refused": refused, "replies_per_s": rate.round(),
            "rtt_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1.0)}}),
        );
    } else {
        out.line(format_args!(
            "{} requests of {} bytes to {} ({} in flight) in {:.2}s",
            sent,
            args.size,
            args.server,
            window,
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
