//! `udp-echo serve`: the host's [`Server`] (the core's responder on every datagram) on
//! one thread or several (`SO_REUSEPORT`), on the path `--io` picks; on its own socket or
//! on one a service manager passes (socket activation, one thread).

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::thread;

use clap::Args;
use udp_echo::parse::{Iface, Limit, parse_bind, parse_interface, parse_limit};

use udp_echo_core::{Counters, DEFAULT_SOURCE_LIMIT, RateLimit, ResponderConfig};
use udp_echo_host::clock::Clock;
use udp_echo_host::server::activation::{self, Inherited};
use udp_echo_host::server::{Options, Server, Stopped};
use udp_echo_host::udp::{BindOptions, Offload, Path};

use super::{STOP_PATIENCE, announce, install_shutdown, server_failure, stop_reason};
use crate::args::{Failure, local_server};
use crate::diag;
use crate::output::events;

// `serve`'s options.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ServeArgs {
    /// Address to bind: `IP:PORT`, an IP alone (port 6666), or a bare `PORT` / `:PORT`
    /// (127.0.0.1); port 0 lets the OS pick (the `listening on` line shows it). Default:
    /// 127.0.0.1:6666, or the socket a service manager passes (systemd socket activation:
    /// LISTEN_FDS), which --bind cannot be given with.
    #[arg(long, value_parser = parse_bind)]
    pub bind: Option<SocketAddr>,
    /// Print nothing per datagram (the summary at exit still comes).
    #[arg(long, short)]
    pub quiet: bool,
    /// Answer datagrams from reflection-prone service ports (DNS 53, NTP 123, …) too.
    #[arg(long)]
    pub allow_reflection_ports: bool,
    /// Limit replies per source address (IPv4 address, IPv6 /64), e.g. `200/s`, or `off`.
    /// Default: 1000/s (bursts of 100) on any address but loopback, where benchmarks run.
    /// Bounds what one source, or a loop with a service that answers everything, can get.
    #[arg(long, value_parser = parse_limit)]
    pub rate_limit: Option<Limit>,
    /// Limit replies over all sources together, e.g. `5000/s` (burst of the same size), or
    /// `off` (the default): the outer cap above the per-source limits.
    #[arg(long, value_parser = parse_limit)]
    pub total_limit: Option<Limit>,
    /// Show at most this many datagram lines per second; the rest are summed up once a second.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_lines: u32,
    /// Set SO_REUSEPORT, so several servers can share the port.
    #[arg(long)]
    pub reuse_port: bool,
    /// Answer on this interface only (SO_BINDTODEVICE on Linux, IP_BOUND_IF on macOS); a
    /// multicast group --bind names is joined there (by default on every interface).
    #[arg(long, value_name = "IFACE", value_parser = parse_interface)]
    pub interface: Option<Iface>,
    /// How datagrams move: `batched` (recvmmsg/sendmmsg, a batch of replies to many
    /// clients per system call; Linux only) or `simple` (quinn-udp, one sendmsg per reply
    /// train: the path every system takes). Both decide alike and reply from the address
    /// each request was sent to. Default: `batched` on Linux, `simple` elsewhere.
    #[arg(long, value_enum)]
    pub io: Option<Io>,
    /// Ask for no GRO (trains of datagrams received as one buffer) and no GSO (replies to
    /// one client sent as one train). By default both are used where the kernel has them.
    #[arg(long)]
    pub no_offload: bool,
    /// Server threads, each with its own SO_REUSEPORT socket, loop and counters (summed at
    /// exit); 0 = one per CPU.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub threads: u16,
    /// Never answer a datagram sent to a broadcast or multicast address. By default they
    /// are answered (within the limits) when the source is on a directly connected network.
    #[arg(long)]
    pub no_broadcast: bool,
}

impl ServeArgs {
    /// The address to bind: --bind, else 127.0.0.1:6666.
    pub fn bind_addr(&self) -> SocketAddr {
        self.bind.unwrap_or_else(local_server)
    }
}

/// The text after `--help`'s options.
const AFTER_HELP: &str = "\
Prints `listening on ADDR` on stderr at startup (with the real port when --bind has port 0);
with --json also {\"event\":\"listening\",\"addr\":\"ADDR\"} on stdout. SIGINT or SIGTERM stops
it with a summary of the counters and exit status 0; a closed stdout stops it with 141.

Examples:
  udp-echo serve
  udp-echo serve --bind 7000                       # 127.0.0.1:7000 (a number is a port)
  udp-echo serve --bind :0 --json                  # the OS picks the port
  udp-echo serve --bind [::]:6666 --rate-limit 1000/s
  udp-echo serve --bind 0.0.0.0:6666 --threads 0 -q   # one thread per CPU
  udp-echo serve --bind 239.1.2.3:6666             # answer a multicast group";

/// `--io`: how datagrams move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Io {
    /// recvmmsg/sendmmsg, a batch per system call each way (Linux; elsewhere `simple`).
    Batched,
    /// quinn-udp, one reply train per sendmsg: the path every system takes.
    Simple,
}

impl Io {
    fn path(self) -> Path {
        match self {
            Io::Batched => Path::Batched,
            Io::Simple => Path::Portable,
        }
    }
}

/// The socket a service manager passed (socket activation), if one did; see
/// [`activation::take`]. `serve` and `listen` call it first, before anything else.
pub(super) fn inherited_socket() -> Result<Option<Inherited>, Failure> {
    // SAFETY: `serve` and `listen` call this first, and no thread runs but this one yet:
    // `cli::run` starts none for them (no stdout watcher), and their own (the presenter's
    // writer, the server threads) start later. So nothing reads the environment meanwhile.
    let taken = unsafe { activation::take() };
    taken.map_err(|e| {
        let message = format!("socket activation: {}", crate::output::plain(&e));
        match e.kind() {
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported => {
                Failure::usage(message)
            }
            _ => Failure::network(message),
        }
    })
}

/// Refuses the options that cannot go with a socket from the service manager: the
/// .socket unit says where to listen (ListenDatagram=) and how (ReusePort=).
pub(super) fn refuse_with_inherited(
    bind: Option<std::net::SocketAddr>,
    reuse_port: bool,
) -> Result<(), Failure> {
    if let Some(bind) = bind {
        return Err(Failure::usage(format!(
            "--bind {bind} and a socket from the service manager (LISTEN_FDS) both say where \
             to listen: drop --bind (the .socket unit's ListenDatagram= says where)"
        )));
    }
    if reuse_port {
        return Err(Failure::usage(
            "--reuse-port does not apply to a socket from the service manager (LISTEN_FDS): \
             drop it, and set ReusePort=yes in the .socket unit",
        ));
    }
    Ok(())
}

/// Runs the server until SIGINT/SIGTERM/SIGHUP; exit 0 with a summary.
pub fn run(args: &ServeArgs, json: bool) -> Result<ExitCode, Failure> {
    let inherited = inherited_socket()?;
    let threads = match args.threads {
        0 => thread::available_parallelism().map_or(1, usize::from),
        n => usize::from(n),
    };
    if inherited.is_some() {
        refuse_with_inherited(args.bind, args.reuse_port)?;
        if threads > 1 {
            return Err(Failure::usage(format!(
                "--threads {threads} needs a socket per thread (SO_REUSEPORT), and the service \
                 manager passed one (LISTEN_FDS=1): serve runs one thread on it; drop \
                 --threads, or run several instances, each with its own .socket unit with \
                 ReusePort=yes"
            )));
        }
    }
    let shutdown = install_shutdown()?;
    let bind = inherited
        .as_ref()
        .map_or_else(|| args.bind_addr(), Inherited::local_addr);
    let mut config = ResponderConfig::default();
    config.block_reflection_ports = !args.allow_reflection_ports;
    // Loopback is where benchmarks run and only this machine can reach: no default limit.
    let default_limit = (!bind.ip().is_loopback()).then_some(DEFAULT_SOURCE_LIMIT);
    config.source_limit = args.rate_limit.map_or(default_limit, |l| l.0);
    config.rate_limit = args.total_limit.and_then(|l| l.0);
    config.answer_broadcast = !args.no_broadcast;
    // Each thread keeps its own buckets: the total is shared out among them.
    let mut per_thread = config;
    per_thread.rate_limit = config.rate_limit.map(|l| share(l, threads));

    let hasher = RandomState::new();
    let cannot_bind = |e: std::io::Error| {
        Failure::network(format!(
            "cannot bind {bind}: {}",
            super::socket_error(&e, bind)
        ))
    };
    let mut options = Options {
        bind,
        path: args.io.map_or(Path::best(), Io::path),
        offload: if args.no_offload {
            Offload::NONE
        } else {
            Offload::ALL
        },
        socket: BindOptions {
            reuse_port: args.reuse_port || threads > 1,
            interface: args.interface.as_ref().map(|i| i.index),
            ..BindOptions::default()
        },
        config: per_thread,
        seed: hasher.hash_one(0usize),
    };
    let from_manager = inherited.is_some();
    let first = match inherited {
        None => Server::<SOURCES>::bind(&options).map_err(cannot_bind)?,
        Some(socket) => Server::bind_inherited(socket, &options).map_err(|e| {
            Failure::network(format!(
                "cannot take the socket from the service manager ({bind}): {}",
                crate::output::plain(&e)
            ))
        })?,
    };
    if let Some(why) = first.fallback() {
        diag!("udp-echo: {why}: taking the portable path (quinn-udp)");
    }
    // Port 0: the others join the port the first one got.
    options.bind = first.local_addr();
    let mut servers = vec![first];
    for i in 1..threads {
        options.seed = hasher.hash_one(i);
        servers.push(Server::bind(&options).map_err(cannot_bind)?);
    }
    let mut presenter = announce(servers[0].local_addr(), json, args.quiet, args.max_lines)?;
    if from_manager {
        diag!("socket: from the service manager (socket activation), one thread");
    }
    diag!("limits: {}", limits(&config, threads));
    diag!("{}", io_line(&servers[0], threads, args.no_offload));

    let (result, each) = if threads == 1 {
        let mut server = servers.pop().expect("one server");
        let result = server.run(&Clock::new(), Some(&shutdown), &mut presenter);
        (result, vec![server.counters()])
    } else {
        // Each thread shows its share of the lines, so the total stays within --max-lines.
        let lines = u32::try_from(threads).map_or(1, |n| (args.max_lines / n).max(1));
        let shutdown = &shutdown;
        thread::scope(|scope| {
            let handles: Vec<_> = servers
                .into_iter()
                .map(|mut server| {
                    let mut presenter = presenter.sibling(lines);
                    scope.spawn(move || {
                        let result = server.run(&Clock::new(), Some(shutdown), &mut presenter);
                        presenter.finish(None, STOP_PATIENCE);
                        (result, server.counters())
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
    let last = json.then(|| events::serve_stopped(&why, threads, &counters, &each).to_string());
    presenter.finish(last, STOP_PATIENCE);
    if !json {
        diag!("udp-echo: stopped by {why}: {}", summary(&counters));
    }
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(server_failure(&e, "receive failed")),
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

/// The start-up `io:` line: the path, the offloads in force, the threads, and where
/// replies come from, e.g. `io: batched (recvmmsg/sendmmsg), GRO and GSO, 2 threads
/// (SO_REUSEPORT); replies from each request's destination address`.
fn io_line(server: &Server<SOURCES>, threads: usize, offload_off: bool) -> String {
    let path = match server.path() {
        Path::Batched => "batched (recvmmsg/sendmmsg)",
        Path::Portable => "simple (quinn-udp, one sendmsg per reply train)",
    };
    let offload = server.offload();
    let offload = match (offload.gro, offload.gso) {
        _ if offload_off => "GRO and GSO off (--no-offload)".to_string(),
        (true, true) => "GRO and GSO".to_string(),
        (false, false) => "no GRO or GSO (the kernel refused them)".to_string(),
        (gro, _) => format!(
            "{}; the kernel refused {}",
            if gro { "GRO" } else { "GSO" },
            if gro { "GSO" } else { "GRO" }
        ),
    };
    let threads = match threads {
        1 => String::new(),
        n => format!(", {n} threads (SO_REUSEPORT)"),
    };
    // Both paths learn each datagram's destination on every system the host runs on.
    format!("io: {path}, {offload}{threads}; replies from each request's destination address")
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
