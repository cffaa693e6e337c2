//! Every JSON event the CLI prints (`--json`: one object per line, each with an `"event"`
//! key), one function per event. USAGE.md's "JSON events" lists them; keep both in step.
//!
//! Durations are milliseconds with microsecond precision (`*_ms`), addresses are
//! `IP:PORT` strings.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use udp_echo_core::wire::Reply;
use udp_echo_core::{Counters, Decision, GaveUp, Received, Replied};

use super::ms;

/// `listening` (serve, listen): the bound address.
pub fn listening(addr: SocketAddr) -> Value {
    json!({"event": "listening", "addr": addr.to_string()})
}

/// `datagram` (serve, listen): one datagram that arrived, and what serve did with it.
pub fn datagram(r: &Received<'_>, decision: Option<&Decision>) -> Value {
    // The bytes seen (the receiver may keep only the head of a long datagram): base64
    // always, and the text itself when they are valid UTF-8.
    let mut v = json!({"event": "datagram", "from": r.from.to_string(),
                       "bytes": r.len, "payload_b64": BASE64.encode(r.head),
                       "cut": r.head.len() < r.len});
    if let Ok(text) = std::str::from_utf8(r.head) {
        v["text"] = json!(text);
    }
    match decision {
        Some(Decision::Reply(reply)) => v["reply"] = json!(reply.to_string()),
        Some(Decision::Drop(why)) => v["dropped"] = json!(why.key()),
        None => {}
    }
    v
}

/// `summary` (serve, listen): a one-second window had more datagrams than lines shown.
pub fn window_summary(datagrams: u64, not_shown: u64, thread: Option<u32>) -> Value {
    let mut v = json!({"event": "summary", "window_s": 1,
                       "datagrams": datagrams, "not_shown": not_shown});
    if let Some(n) = thread {
        v["thread"] = json!(n);
    }
    v
}

/// `stopped` (serve): why, and the counters, summed and per thread.
pub fn serve_stopped(reason: &str, threads: usize, total: &Counters, each: &[Counters]) -> Value {
    let by_reason: serde_json::Map<String, Value> = total
        .drops()
        .map(|(why, n)| (why.key().to_string(), json!(n)))
        .collect();
    json!({
        "event": "stopped", "reason": reason, "threads": threads,
        "received": total.received, "replied": total.replied,
        "send_failed": total.send_failed, "broadcast": total.broadcast,
        "dropped": total.dropped(), "dropped_by_reason": Value::Object(by_reason),
        "per_thread": each.iter().map(|c| json!({"received": c.received, "replied": c.replied}))
            .collect::<Vec<_>>(),
    })
}

/// `stopped` (listen): why, and how many datagrams arrived.
pub fn listen_stopped(reason: &str, received: u64) -> Value {
    json!({"event": "stopped", "reason": reason, "received": received})
}

/// `send` (send): one request went out, `at` after the first.
pub fn send(attempt: u32, at: Duration, bytes: usize) -> Value {
    json!({"event": "send", "attempt": attempt, "at_ms": ms(at), "bytes": bytes})
}

/// `reply` (send): the server's reply.
pub fn send_reply(server: SocketAddr, r: &Replied) -> Value {
    json!({
        "event": "reply", "server": server.to_string(), "reply": Reply::new(r.count).to_string(),
        "count": r.count, "attempts": r.attempts, "rtt_ms": ms(r.rtt),
        "rtt_ambiguous": r.rtt_ambiguous, "elapsed_ms": ms(r.elapsed),
    })
}

/// `gave_up` (send): no reply within the schedule.
pub fn gave_up(server: SocketAddr, g: &GaveUp) -> Value {
    json!({"event": "gave_up", "server": server.to_string(), "attempts": g.attempts,
           "unsent": g.unsent, "elapsed_ms": ms(g.elapsed), "refused": g.refused})
}

/// `reply` (ping): exchange `seq`'s reply.
pub fn ping_reply(seq: u64, server: SocketAddr, r: &Replied) -> Value {
    json!({"event": "reply", "seq": seq, "server": server.to_string(),
           "reply": Reply::new(r.count).to_string(), "count": r.count, "attempts": r.attempts,
           "rtt_ms": ms(r.rtt), "rtt_ambiguous": r.rtt_ambiguous})
}

/// `gave_up` (ping): exchange `seq` got no reply; the keys of send's, and `seq`.
pub fn ping_gave_up(seq: u64, server: SocketAddr, g: &GaveUp) -> Value {
    let mut v = gave_up(server, g);
    v["seq"] = json!(seq);
    v
}

/// What `ping`'s `summary` event says.
#[derive(Debug)]
pub struct PingSummary {
    /// The server.
    pub server: SocketAddr,
    /// Exchanges that sent at least one request.
    pub sent: u64,
    /// Requests that went out, retries included.
    pub datagrams_sent: u64,
    /// Exchanges that got a reply.
    pub received: u64,
    /// Exchanges that got none.
    pub lost: u64,
    /// `lost` in percent of `sent`.
    pub loss_percent: f64,
    /// The unambiguous RTTs measured.
    pub rtt_samples: usize,
    /// Min, avg, max and mdev of those, in milliseconds (none without samples).
    pub rtt_ms: Option<[f64; 4]>,
    /// The whole run.
    pub time: Duration,
}

/// `summary` (ping): loss and RTT statistics.
pub fn ping_summary(s: &PingSummary) -> Value {
    // Microsecond precision is all the clock gives; no float noise in the output.
    let us = |x: f64| (x * 1000.0).round() / 1000.0;
    let rtt_json = s.rtt_ms.map(|[min, avg, max, mdev]| {
        json!({"min": us(min), "avg": us(avg), "max": us(max), "mdev": us(mdev)})
    });
    json!({"event": "summary", "server": s.server.to_string(),
        "sent": s.sent, "datagrams_sent": s.datagrams_sent, "received": s.received,
        "lost": s.lost, "loss_percent": s.loss_percent, "rtt_samples": s.rtt_samples,
        "rtt_ms": rtt_json, "time_ms": ms(s.time)})
}

/// `sent` (broadcast): the datagram went out.
pub fn sent(to: SocketAddr, bytes: usize) -> Value {
    json!({"event": "sent", "to": to.to_string(), "bytes": bytes})
}

/// `found` (discover): a server answered.
pub fn found(addr: SocketAddr, rtt: Duration) -> Value {
    json!({"event": "found", "addr": addr.to_string(), "rtt_ms": ms(rtt)})
}

/// `summary` (discover): how many servers answered at `to` within `wait`.
pub fn discover_summary(
    to: SocketAddr,
    servers: usize,
    not_listed: u32,
    ignored: u32,
    wait: Duration,
) -> Value {
    json!({"event": "summary", "to": to.to_string(), "servers": servers,
           "not_listed": not_listed, "ignored": ignored, "wait_ms": ms(wait)})
}

/// What `bench`'s event says.
#[derive(Debug)]
pub struct BenchSummary {
    /// The server.
    pub server: SocketAddr,
    /// The base request size, and the largest size sent.
    pub size: usize,
    /// The largest request size sent.
    pub size_max: usize,
    /// Requests in flight at once.
    pub window: usize,
    /// Sockets used.
    pub sockets: usize,
    /// The run's time.
    pub duration: Duration,
    /// Whether Ctrl-C stopped the sending.
    pub interrupted: bool,
    /// Requests sent.
    pub sent: u64,
    /// Replies matched to their requests.
    pub replies: u64,
    /// Requests given up.
    pub lost: u64,
    /// Replies that came after their request was given up.
    pub late: u64,
    /// Duplicates, wrong counts and garbled datagrams together.
    pub ignored: u64,
    /// Replies to a request already answered.
    pub duplicates: u64,
    /// Byte-count replies naming no request's size.
    pub wrong_count: u64,
    /// Datagrams that were no byte-count reply.
    pub garbled: u64,
    /// Sends the system refused.
    pub refused: u64,
    /// Requests per second (rounded in the event).
    pub requests_per_s: f64,
    /// Replies per second (rounded in the event).
    pub replies_per_s: f64,
    /// Request payload bits per second (rounded in the event).
    pub request_bits_per_s: f64,
    /// Reply payload bits per second (rounded in the event).
    pub reply_bits_per_s: f64,
    /// RTT percentiles p50, p90, p99 and the maximum, in milliseconds (none without samples).
    pub rtt_ms: [Option<f64>; 4],
    /// The retransmission timeout at the end.
    pub rto: Duration,
}

/// `bench` (bench): the run's figures.
pub fn bench(b: &BenchSummary) -> Value {
    let [p50, p90, p99, max] = b.rtt_ms;
    json!({
        "event": "bench", "server": b.server.to_string(), "size": b.size,
        "size_max": b.size_max, "window": b.window, "sockets": b.sockets,
        "duration_ms": ms(b.duration), "interrupted": b.interrupted, "sent": b.sent,
        "replies": b.replies, "lost": b.lost, "late": b.late, "ignored": b.ignored,
        "duplicates": b.duplicates, "wrong_count": b.wrong_count, "garbled": b.garbled,
        "refused": b.refused, "requests_per_s": b.requests_per_s.round(),
        "replies_per_s": b.replies_per_s.round(),
        "request_bits_per_s": b.request_bits_per_s.round(),
        "reply_bits_per_s": b.reply_bits_per_s.round(), "percentile_method": "nearest-rank",
        "rtt_ms": {"p50": p50, "p90": p90, "p99": p99, "max": max},
        "rto_ms": ms(b.rto),
    })
}
