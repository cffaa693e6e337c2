//! The command line: clap types, argument parsers, exit codes.
//!
//! Exit codes: 0 success; 1 the network did not deliver (no reply, no server found, a
//! socket error); 2 bad usage or input (clap's own errors use 2 as well).

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use udp_echo::parse::{Limit, parse_bind, parse_duration, parse_limit, parse_peer};
use udp_echo_core::RetryPolicy;
use udp_echo_core::retry::Factor;

use crate::commands;

const EXAMPLES: &str = "\
Examples:
  udp-echo serve                               # answer on 127.0.0.1:6666
  udp-echo serve --bind 0.0.0.0:6666 --quiet   # answer on every interface, print nothing per datagram
  udp-echo send 'hello world!'                 # prints: Your data was 12 bytes
  head -c 1000 /dev/urandom | udp-echo send -  # binary payload from stdin
  udp-echo ping --count 10 --interval 200ms
  udp-echo listen --bind 0.0.0.0:6666          # print broadcasts, never reply
  udp-echo broadcast hi --to 192.168.1.255:6666
  udp-echo discover --wait 2s                  # who answers on the LAN?
  udp-echo bench --duration 2s --window 32     # load a local server, replies/s and RTT

Exit status: 0 success, 1 no reply / nothing found / network error, 2 bad usage or input.";

/// Byte-count UDP echo: every datagram is answered with `Your data was N bytes`.
#[derive(Debug, Parser)]
#[command(name = "udp-echo", version, after_help = EXAMPLES)]
pub struct Cli {
    /// More logging on stderr: -v debug, -vv trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// One JSON object per line on stdout, for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Answer every datagram with its byte count, printing who sent what.
    #[command(after_help = "\
Prints `listening on ADDR` on stderr at startup (with the real port when --bind has port 0);
with --json also {\"event\":\"listening\",\"addr\":\"ADDR\"} on stdout. SIGINT or SIGTERM stops
it with a summary of the counters and exit status 0.

Examples:
  udp-echo serve
  udp-echo serve --bind 127.0.0.1:0 --json
  udp-echo serve --bind [::]:6666 --rate-limit 1000/s
  udp-echo serve --bind 0.0.0.0:6666 --threads 0 --quiet   # one thread per CPU")]
    Serve(ServeArgs),
    /// Send one message and print the server's reply, retrying with backoff.
    #[command(after_help = "\
The reply goes to stdout; retries, RTT and errors to stderr. Exit status 0 on a reply,
1 when no reply came (the message names the attempts, the time and whether the port was
refused), 2 on bad input (e.g. a message longer than one datagram).

Examples:
  udp-echo send 'hello world!'
  udp-echo send '' --server [::1]:6666          # an empty datagram
  printf '\\377\\000' | udp-echo send -        # bytes from stdin
  udp-echo send hi --initial-timeout 50ms --max-timeout 1s --attempts 3")]
    Send(SendArgs),
    /// Repeated exchanges, one line each, then loss and RTT statistics.
    #[command(after_help = "\
Each exchange uses a fresh socket. --count 0 runs until Ctrl-C, which prints the summary.
Exit status 0 if any reply came, 1 if none did.

Examples:
  udp-echo ping
  udp-echo ping --count 100 --interval 10ms --size 1400")]
    Ping(PingArgs),
    /// Send one datagram to a broadcast (or any) address; nothing is awaited.
    #[command(after_help = "\
Example:
  udp-echo broadcast 'hello, LAN' --to 192.168.1.255:6666")]
    Broadcast(BroadcastArgs),
    /// Print every datagram that arrives (e.g. broadcasts); never reply.
    #[command(after_help = "\
Several listeners may share the port (SO_REUSEADDR). Prints `listening on ADDR` on stderr.
SIGINT or SIGTERM stops it with exit status 0.

Example:
  udp-echo listen --bind 0.0.0.0:6666")]
    Listen(ListenArgs),
    /// Broadcast one request and list every server that answered, with its RTT.
    #[command(after_help = "\
Exit status 0 if at least one server answered, 1 if none did.

Examples:
  udp-echo discover
  udp-echo discover --to 192.168.1.255:6666 --wait 2s")]
    Discover(DiscoverArgs),
    /// A bounded load test of one server: replies/s and RTT percentiles.
    #[command(after_help = "\
Keeps --window requests in flight, spread over --sockets connected sockets and sent and
received by the batch (sendmmsg/recvmmsg), for --duration (at most 60s) or until --requests
have been sent, whichever comes first, then waits briefly for stragglers.
Sends only to --server.

Examples:
  udp-echo bench --server 127.0.0.1:6666 --duration 2s --size 12 --window 32
  udp-echo bench --server 127.0.0.1:6666 --requests 20000 --window 8")]
    Bench(BenchArgs),
}

/// `serve`'s options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to bind (`IP:PORT`, or an IP alone for port 6666); port 0 lets the OS pick
    /// (the `listening on` line shows it).
    #[arg(long, default_value_t = local_server(), value_parser = parse_bind)]
    pub bind: SocketAddr,
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
    /// How datagrams are read and answered: `batched` (recvmmsg/sendmmsg, replies from the
    /// address each request was sent to) or `simple` (the core's embedded-nal driver, one
    /// datagram per system call: the reference path, as on firmware).
    #[arg(long, value_enum, default_value_t = crate::commands::serve::Io::Batched)]
    pub io: crate::commands::serve::Io,
    /// Server threads, each with its own SO_REUSEPORT socket, loop and counters (summed at
    /// exit); 0 = one per CPU.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub threads: u16,
    /// Never answer a datagram sent to a broadcast or multicast address. By default they
    /// are answered (within the limits) when the source is on a directly connected network.
    #[arg(long)]
    pub no_broadcast: bool,
}

/// The retry schedule's options.
#[derive(Debug, Args, Clone)]
pub struct RetryArgs {
    /// Wait after the first send.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub initial_timeout: Duration,
    /// Give up once the next wait would exceed this.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub max_timeout: Duration,
    /// Growth of the wait after each timeout, e.g. `2` or `1.5`.
    #[arg(long, default_value = "2")]
    pub factor: Factor,
    /// At most this many sends (default: as many as the waits allow, 5 by default).
    #[arg(long)]
    pub attempts: Option<u32>,
}

impl RetryArgs {
    /// The policy, checked by the core (its message on error).
    pub fn policy(&self) -> Result<RetryPolicy, Failure> {
        let mut policy = RetryPolicy::default();
        policy.initial_wait = self.initial_timeout;
        policy.max_wait = self.max_timeout;
        policy.factor = self.factor;
        policy.max_attempts = self.attempts;
        policy
            .validate()
            .map_err(|e| Failure::usage(format!("invalid retry policy: {e}")))?;
        Ok(policy)
    }
}

/// `send`'s options.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The message; `-` reads it from stdin (binary is fine); `""` sends an empty datagram.
    pub message: OsString,
    /// The server: `IP:PORT`, `HOST:PORT`, or an IP or host alone (port 6666).
    #[arg(long, short, default_value_t = local_server(), value_parser = parse_peer)]
    pub server: SocketAddr,
    #[command(flatten)]
    pub retry: RetryArgs,
}

/// `ping`'s options.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// Exchanges to make; 0 runs until Ctrl-C.
    #[arg(long, short, default_value_t = 4)]
    pub count: u64,
    /// Time between the starts of two exchanges.
    #[arg(long, short, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Request size in bytes.
    #[arg(long, default_value_t = 12)]
    pub size: usize,
    /// The server: `IP:PORT`, `HOST:PORT`, or an IP or host alone (port 6666).
    #[arg(long, short, default_value_t = local_server(), value_parser = parse_peer)]
    pub server: SocketAddr,
    #[command(flatten)]
    pub retry: RetryArgs,
}

/// `broadcast`'s options.
#[derive(Debug, Args)]
pub struct BroadcastArgs {
    /// The message; `-` reads it from stdin.
    pub message: OsString,
    /// Destination: a broadcast address (SO_BROADCAST is set) or any other.
    #[arg(long, default_value_t = everyone(), value_parser = parse_peer)]
    pub to: SocketAddr,
}

/// `listen`'s options.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address to bind (SO_REUSEADDR is set, so listeners can share the port).
    #[arg(long, default_value_t = all_interfaces(), value_parser = parse_bind)]
    pub bind: SocketAddr,
    /// Show at most this many datagram lines per second; the rest are summed up once a second.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_lines: u32,
}

/// `discover`'s options.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The servers' port.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Where to send the request (default: 255.255.255.255 at --port).
    #[arg(long, value_parser = parse_peer)]
    pub to: Option<SocketAddr>,
    /// How long to collect answers.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub wait: Duration,
}

/// `bench`'s options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The server to load (the only destination).
    #[arg(long, short, default_value_t = local_server(), value_parser = parse_peer)]
    pub server: SocketAddr,
    /// How long to send (at most 60s).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Request size in bytes.
    #[arg(long, default_value_t = 12)]
    pub size: usize,
    /// Requests in flight at once (1..=1024), spread over the sockets.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub window: u32,
    /// Connected sockets to spread the window over (1..=64; at most --window are used).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub sockets: u32,
    /// Stop sending after this many requests (or at --duration, whichever comes first;
    /// 1..=20000000). Default: only --duration limits the run.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=commands::bench::MAX_REQUESTS))]
    pub requests: Option<u64>,
}

/// A command's failure: its message and exit status.
#[derive(Debug)]
pub struct Failure {
    /// For stderr, after `udp-echo: `.
    pub message: String,
    /// The exit status.
    pub code: u8,
}

impl Failure {
    /// Bad usage or input: exit 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 2,
        }
    }

    /// The network did not deliver, or a socket failed: exit 1.
    pub fn network(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 1,
        }
    }
}

/// Parses the command line, runs the command, and turns its result into an exit status.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(&args, cli.json),
        Command::Send(args) => commands::send::run(&args, cli.json),
        Command::Ping(args) => commands::ping::run(&args, cli.json),
        Command::Broadcast(args) => commands::broadcast::run(&args, cli.json),
        Command::Listen(args) => commands::listen::run(&args, cli.json),
        Command::Discover(args) => commands::discover::run(&args, cli.json),
        Command::Bench(args) => commands::bench::run(&args, cli.json),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            crate::output::diag(format_args!("udp-echo: {}", failure.message));
            ExitCode::from(failure.code)
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "udp_echo=debug,udp_echo_host=debug,udp_echo_core=debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
}

/// The protocol's port, used when an address comes without one.
pub use udp_echo_core::DEFAULT_PORT;

/// The default server: this machine only, the protocol's port.
fn local_server() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT))
}

/// Every IPv4 interface, the protocol's port: where broadcasts arrive.
fn all_interfaces() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT))
}

/// The limited broadcast address, the protocol's port.
fn everyone() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::BROADCAST, DEFAULT_PORT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
