//! `udp-echo serve`: the core's responder in the host's loop, on the batched path
//! (`recvmmsg`/`sendmmsg`, [`BatchServer`]) or the simple one (the core's `Server` driver),
//! on one thread or several (`SO_REUSEPORT`).

use std::hash::{BuildHasher, RandomState};
use std::process::ExitCode;
use std::thread;

use serde_json::json;

use udp_echo_core::responder::DEFAULT_SOURCE_LIMIT;
use udp_echo_core::{Counters, RateLimit, ResponderConfig, Server, ServerError};
use udp_echo_host::batch::BatchServer;
use udp_echo_host::clock::Clock;
use udp_echo_host::server::{Stopped, run_batched, run_server};
use udp_echo_host::shutdown::Shutdown;
use udp_echo_host::stack::{CAPS, StdError, StdSocket, StdStack};

use super::{STOP_PATIENCE, announce, install_shutdown, server_failure, stop_reason};
use crate::cli::{Failure, ServeArgs};
use crate::diag;
use crate::output::Presenter;

/// `--io`: how datagrams are read and answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Io {
    /// recvmmsg/sendmmsg, replies from each request's destination address.
    Batched,
    /// The core's embedded-nal `Server` driver: one datagram per system call.
    Simple,
}

/// One thread's server: either path, behind one face.
#[derive(Debug)]
enum Engine {
    // Boxed: each holds a 32 KiB table of per-source buckets.
    Batched(Box<BatchServer<SOURCES>>),
    Simple(Box<Server<StdStack, SOURCES>>),
}

impl Engine {
    fn bind(
        stack: &mut StdStack,
        port: u16,
        config: ResponderConfig,
        io: Io,
        seed: u64,
    ) -> Result<Engine, std::io::Error> {
        if io == Io::Batched {
            match BatchServer::bind(stack, port, config) {
                Ok(server) => {
                    return Ok(Engine::Batched(Box::new(
                        server.with_sources::<SOURCES>().with_seed(seed),
                    )));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                    diag!("udp-echo: {e}: answering one datagram per system call");
                }
                Err(e) => return Err(e),
            }
        }
        let server = Server::bind(stack, port, config).map_err(|e| match e {
            ServerError::Stack(e) => e.into_io_error(),
        })?;
        Ok(Engine::Simple(Box::new(
            server
                .with_caps(CAPS)
                .with_sources::<SOURCES>()
                .with_seed(seed),
        )))
    }

    fn socket(&self) -> &StdSocket {
        match self {
            Engine::Batched(s) => s.socket(),
            Engine::Simple(s) => s.socket(),
        }
    }

    fn counters(&self) -> Counters {
        match self {
            Engine::Batched(s) => *s.counters(),
            Engine::Simple(s) => *s.counters(),
        }
    }

    fn run(
        &mut self,
        stack: &mut StdStack,
        shutdown: &Shutdown,
        presenter: &mut Presenter,
    ) -> Result<Stopped, ServerError<StdError>> {
        let clock = Clock::new();
        match self {
            Engine::Batched(s) => run_batched(stack, s, &clock, Some(shutdown), presenter),
            Engine::Simple(s) => run_server(stack, s, &clock, Some(shutdown), presenter),
        }
    }

    fn close(self, stack: &mut StdStack) {
        if let Engine::Simple(s) = self {
            let _ = (*s).close(stack);
        }
    }
}

/// Runs the server until SIGINT/SIGTERM; exit 0 with a summary.
pub fn run(args: &ServeArgs, json: bool) -> Result<ExitCode, Failure> {
    if args.io == Io::Simple && args.no_broadcast {
        return Err(Failure::usage(
            "--no-broadcast needs --io batched: the simple path cannot see where a datagram was sent",
        ));
    }
    let shutdown = install_shutdown()?;
    let threads = match args.threads {
        0 => thread::available_parallelism().map_or(1, usize::from),
        n => usize::from(n),
    };
    let mut stack = StdStack::new()
        .with_bind_ip(args.bind.ip())
        .with_reuse_port(args.reuse_port || threads > 1);
    let mut config = ResponderConfig::default();
    config.block_reflection_ports = !args.allow_reflection_ports;
    // Loopback is where benchmarks run and only this machine can reach: no default limit.
    let default_limit = (!args.bind.ip().is_loopback()).then_some(DEFAULT_SOURCE_LIMIT);
    config.source_limit = args.rate_limit.map_or(default_limit, |l| l.0);
    config.rate_limit = args.total_limit.and_then(|l| l.0);
    config.answer_broadcast = !args.no_broadcast;
    // Each thread keeps its own buckets: the total is shared out among them.
    let mut per_thread = config;
    per_thread.rate_limit = config.rate_limit.map(|l| share(l, threads));

    let hasher = RandomState::new();
    let cannot_bind = |e: std::io::Error| {
        Failure::network(format!(
            "cannot bind {}: {}",
            args.bind,
            super::socket_error(&e, args.bind)
        ))
    };
    let first = Engine::bind(
        &mut stack,
        args.bind.port(),
        per_thread,
        args.io,
        hasher.hash_one(0usize),
    )
    .map_err(cannot_bind)?;
    // Port 0: the others join the port the first one got.
    let port = first
        .socket()
        .local_addr()
        .map_err(|e| Failure::network(format!("cannot read the bound address: {e}")))?
        .port();
    let mut engines = vec![first];
    for i in 1..threads {
        let engine = Engine::bind(&mut stack, port, per_thread, args.io, hasher.hash_one(i))
            .map_err(cannot_bind)?;
        engines.push(engine);
    }
    let mut presenter = announce(engines[0].socket(), json, args.quiet, args.max_lines)?;
    diag!("limits: {}", limits(&config, threads));
    diag!("{}", io_line(&engines, args.bind.ip().is_unspecified()));

    let (result, each) = if threads == 1 {
        let mut engine = engines.pop().expect("one engine");
        let result = engine.run(&mut stack, &shutdown, &mut presenter);
        let counters = engine.counters();
        engine.close(&mut stack);
        (result, vec![counters])
    } else {
        // Each thread shows its share of the lines, so the total stays within --max-lines.
        let lines = u32::try_from(threads).map_or(1, |n| (args.max_lines / n).max(1));
        let shutdown = &shutdown;
        thread::scope(|scope| {
            let handles: Vec<_> = engines
                .into_iter()
                .map(|mut engine| {
                    let mut stack = stack.clone();
                    let mut presenter = presenter.sibling(lines);
                    scope.spawn(move || {
                        let result = engine.run(&mut stack, shutdown, &mut presenter);
                        let counters = engine.counters();
                        engine.close(&mut stack);
                        presenter.finish(None, STOP_PATIENCE);
                        (result, counters)
                    })
                })
                .collect();
            let mut each = Vec::new();
            let mut result = Ok(Stopped::Signal);
            for handle in handles {
                let (r, c) = handle.join().expect("a server thread panicked");
                each.push(c);
                // The first failure, else the first reason a thread gave.
                if r.is_err() || result.is_ok() {
                    result = r.or(result);
                }
            }
            (result, each)
        })
    };
    let mut counters = Counters::default();
    for c in &each {
        counters.add(c);
    }
    let why = stop_reason(&result, &shutdown);
    let last = json.then(|| {
        json!({
            "event": "stopped", "reason": why, "threads": threads,
            "received": counters.received, "replied": counters.replied,
            "send_failed": counters.send_failed, "broadcast": counters.broadcast,
            "dropped": counters.dropped(), "dropped_by_reason": dropped_json(&counters),
            "per_thread": each.iter().map(|c| json!({"received": c.received, "replied": c.replied}))
                .collect::<Vec<_>>(),
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

/// One thread's share of a total limit (at least 1/s and a burst of 1).
fn share(l: RateLimit, threads: usize) -> RateLimit {
    let n = u32::try_from(threads).unwrap_or(u32::MAX).max(1);
    RateLimit {
        per_second: (l.per_second / n).max(1),
        burst: (l.burst / n).max(1),
    }
}

/// `io: batched (recvmmsg/sendmmsg), 2 threads (SO_REUSEPORT), replies from each request's
/// destination address`.
fn io_line(engines: &[Engine], wildcard: bool) -> String {
    let threads = match engines.len() {
        1 => String::new(),
        n => format!(", {n} threads (SO_REUSEPORT)"),
    };
    match &engines[0] {
        Engine::Batched(s) if s.knows_destinations() => format!(
            "io: batched (recvmmsg/sendmmsg){threads}, replies from each request's destination address"
        ),
        Engine::Batched(_) => format!("io: batched (recvmmsg/sendmmsg){threads}"),
        Engine::Simple(_) if wildcard => format!(
            "io: simple (one datagram per system call){threads}; bound to a wildcard, replies \
             come from the address the kernel prefers, which on a host with several \
             addresses may not be the one a request was sent to"
        ),
        Engine::Simple(_) => format!("io: simple (one datagram per system call){threads}"),
    }
}

/// Per-source buckets: 32 KiB, enough to tell a LAN's sources apart under a flood.
const SOURCES: usize = 1024;

/// `1000 replies/s per source (bursts of 100), no total limit`.
fn limits(config: &ResponderConfig, threads: usize) -> String {
    let per_source = match config.source_limit {
        Some(l) => format!(
            "{} replies/s per source (bursts of {})",
            l.per_second, l.burst
        ),
        None => "no per-source limit".to_string(),
    };
    let total = match config.rate_limit {
        Some(l) if threads > 1 => format!(
            "{} replies/s in all (bursts of {}, shared out among {threads} threads)",
            l.per_second, l.burst
        ),
        Some(l) => format!("{} replies/s in all (bursts of {})", l.per_second, l.burst),
        None => "no total limit".to_string(),
    };
    let broadcast = if config.answer_broadcast {
        "broadcasts answered to directly connected sources"
    } else {
        "broadcasts refused"
    };
    format!("{per_source}, {total}, {broadcast}")
}

fn dropped_json(c: &Counters) -> serde_json::Value {
    let by_reason: serde_json::Map<String, serde_json::Value> = c
        .drops()
        .map(|(why, n)| (why.key().to_string(), json!(n)))
        .collect();
    serde_json::Value::Object(by_reason)
}

/// `received 12, replied 11, dropped 1 (loop 1), send failed 0` (`, broadcast N` if any).
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
    let broadcast = if c.broadcast > 0 {
        format!(", broadcast {}", c.broadcast)
    } else {
        String::new()
    };
    format!(
        "received {}, replied {}, dropped {}{detail}, send failed {}{broadcast}",
        c.received,
        c.replied,
        c.dropped(),
        c.send_failed
    )
}
