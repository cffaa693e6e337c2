//! `udp-echo serve`: the core's `Server` in the host's loop.

use std::process::ExitCode;

use serde_json::json;
use std::hash::{BuildHasher, RandomState};

use udp_echo_core::responder::DEFAULT_SOURCE_LIMIT;
use udp_echo_core::{Counters, RateLimit, ResponderConfig, Server};
use udp_echo_host::clock::Clock;
use udp_echo_host::server::run_server;
use udp_echo_host::stack::{CAPS, StdStack};

use super::{STOP_PATIENCE, announce, install_shutdown, server_failure, stop_reason};
use crate::cli::{Failure, ServeArgs};
use crate::diag;

/// Runs the server until SIGINT/SIGTERM; exit 0 with a summary.
pub fn run(args: &ServeArgs, json: bool) -> Result<ExitCode, Failure> {
    let shutdown = install_shutdown()?;
    let mut stack = StdStack::new()
        .with_bind_ip(args.bind.ip())
        .with_reuse_port(args.reuse_port);
    let mut config = ResponderConfig::default();
    config.block_reflection_ports = !args.allow_reflection_ports;
    // Loopback is where benchmarks run and only this machine can reach: no default limit.
    let default_limit = (!args.bind.ip().is_loopback()).then_some(DEFAULT_SOURCE_LIMIT);
    config.source_limit = args.rate_limit.map_or(default_limit, |l| l.0);
    config.rate_limit = args.total_limit.and_then(|l| l.0);
    let mut server = Server::bind(&mut stack, args.bind.port(), config)
        .map_err(|e| server_failure(e, &format!("cannot bind {}", args.bind)))?
        .with_caps(CAPS)
        .with_sources::<SOURCES>()
        .with_seed(RandomState::new().hash_one(std::process::id()));
    let mut presenter = announce(server.socket(), json, args.quiet, args.max_lines)?;
    diag!("limits: {}", limits(&config));
    let clock = Clock::new();
    let result = run_server(
        &mut stack,
        &mut server,
        &clock,
        Some(&shutdown),
        &mut presenter,
    );
    let counters = *server.counters();
    let _ = server.close(&mut stack);
    let why = stop_reason(&result, &shutdown);
    let last = json.then(|| {
        json!({
            "event": "stopped", "reason": why, "received": counters.received,
            "replied": counters.replied, "send_failed": counters.send_failed,
            "dropped": counters.dropped(), "dropped_by_reason": dropped_json(&counters),
        })
        .to_string()
    });
    presenter.finish(last, STOP_PATIENCE);
    if !json {
        diag!("udp-echo: stopped by {why}: {}", summary(&counters));
    }
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(server_failure(e, "receive failed")),
    }
}

/// Per-source buckets: 32 KiB, enough to tell a LAN's sources apart under a flood.
const SOURCES: usize = 1024;

/// A `--rate-limit`/`--total-limit` value: a limit, or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<RateLimit>);

/// Parses `N/s` (bursts of the same size) or `off`.
pub fn parse_limit(s: &str) -> Result<Limit, String> {
    if s == "off" {
        return Ok(Limit(None));
    }
    crate::cli::parse_rate(s)
        .map(|l| Limit(Some(l)))
        .map_err(|e| format!("{e}, or `off`"))
}

/// `1000 replies/s per source (bursts of 100), no total limit`.
fn limits(config: &ResponderConfig) -> String {
    let per_source = match config.source_limit {
        Some(l) => format!(
            "{} replies/s per source (bursts of {})",
            l.per_second, l.burst
        ),
        None => "no per-source limit".to_string(),
    };
    let total = match config.rate_limit {
        Some(l) => format!("{} replies/s in all (bursts of {})", l.per_second, l.burst),
        None => "no total limit".to_string(),
    };
    format!("{per_source}, {total}")
}

fn dropped_json(c: &Counters) -> serde_json::Value {
    let by_reason: serde_json::Map<String, serde_json::Value> = c
        .drops()
        .map(|(why, n)| (why.key().to_string(), json!(n)))
        .collect();
    serde_json::Value::Object(by_reason)
}

/// `received 12, replied 11, dropped 1 (loop 1), send failed 0`.
pub fn summary(c: &Counters) -> String {
    let reasons: Vec<String> = c
        .drops()
        .filter(|(_, n)| *n > 0)
        .map(|(why, n)| format!("{} {n}", why.key().replace('_', " ")))
        .collect();
    let detail = if reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", reasons.join(", "))
    };
    format!(
        "received {}, replied {}, dropped {}{detail}, send failed {}",
        c.received,
        c.replied,
        c.dropped(),
        c.send_failed
    )
}
