//! The command line: clap types, argument parsers, exit codes.
//!
//! Exit codes: 0 success; 1 the network did not deliver (no reply, no server found, a
//! socket error); 2 bad usage or input (clap's own errors use 2 as well).

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use udp_echo::parse::{
    Family, Iface, Limit, Peer, names_port, parse_bind, parse_duration, parse_interface,
    parse_limit, parse_listen_bind, parse_peer_arg, parse_source,
};
use udp_echo_core::RetryPolicy;
use udp_echo_core::retry::Factor;

use crate::commands;

mod docs;

const EXAMPLES: &str = "\
Addresses: HOST, HOST:PORT, IP, IP:PORT, [IPv6]:PORT, or a bare PORT (127.0.0.1, or every
interface for listen); a number alone is always a port. Port 6666 when none is given.
Durations: 100ms, 2s, 1.5m; a number without a unit is seconds (-i 0.2, -w 5).

Examples:
  udp-echo serve                               # answer on 127.0.0.1:6666
  udp-echo serve --bind 7000                   # 127.0.0.1:7000
  udp-echo serve --bind 0.0.0.0:6666 --quiet   # every interface, nothing printed per datagram
  udp-echo send 'hello world!'                 # to 127.0.0.1:6666; prints: Your data was 12 bytes
  udp-echo send ::1 'hello'                    # HOST then MESSAGE
  head -c 1000 /dev/urandom | udp-echo send -  # binary payload from stdin
  udp-echo ping -c 10 -i 0.2 -s 1400 localhost
  udp-echo listen --bind 6666                  # print broadcasts, never reply
  udp-echo broadcast hi --to 192.168.1.255:6666
  udp-echo discover --wait 2                   # who answers on the LAN?
  udp-echo bench 127.0.0.1:6666 -t 2 --window 32
  udp-echo completions bash > /etc/bash_completion.d/udp-echo
  udp-echo manpage > udp-echo.1

Exit status: 0 success, 1 no reply / nothing found / network error or a failed write of
results, 2 bad usage or input, 141 stdout closed (e.g. `| head -1`).";

/// Byte-count UDP echo: every datagram is answered with `Your data was N bytes`.
#[derive(Debug, Parser)]
#[command(name = "udp-echo", version, after_help = EXAMPLES)]
pub struct Cli {
    /// More logging on stderr: -v debug, -vv trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// JSON Lines on stdout (one JSON object per line, each with an "event" field), for
    /// scripts. Payloads come as "payload_b64" (standard base64) and, when valid UTF-8,
    /// "text".
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Deferred: only the one used has its arguments built (clap's work
/// is most of a one-shot `send`'s own).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Answer every datagram with its byte count, printing who sent what.
    #[command(after_help = "\
Prints `listening on ADDR` on stderr at startup (with the real port when --bind has port 0);
with --json also {\"event\":\"listening\",\"addr\":\"ADDR\"} on stdout. SIGINT or SIGTERM stops
it with a summary of the counters and exit status 0; a closed stdout stops it with 141.

Examples:
  udp-echo serve
  udp-echo serve --bind 7000                       # 127.0.0.1:7000 (a number is a port)
  udp-echo serve --bind :0 --json                  # the OS picks the port
  udp-echo serve --bind [::]:6666 --rate-limit 1000/s
  udp-echo serve --bind 0.0.0.0:6666 --threads 0 -q   # one thread per CPU")]
    Serve(ServeArgs),
    /// Send one message and print the server's reply, retrying with backoff.
    #[command(
        override_usage = "udp-echo send [OPTIONS] [HOST[:PORT]] MESSAGE",
        after_help = "\
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
  udp-echo send hi --initial-timeout 50ms --max-timeout 1s --attempts 3"
    )]
    Send(SendArgs),
    /// Repeated exchanges, one line each, then loss and RTT statistics.
    #[command(after_help = "\
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
  udp-echo ping 192.168.1.20 -w 5 -W 0.5")]
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

Examples:
  udp-echo listen                  # 0.0.0.0:6666
  udp-echo listen --bind 7000      # 0.0.0.0:7000 (a number is a port)")]
    Listen(ListenArgs),
    /// Broadcast one request and list every server that answered, with its RTT.
    #[command(after_help = "\
--to without a port uses --port; --to with a port and a different --port is an error.
Exit status 0 if at least one server answered, 1 if none did.

Examples:
  udp-echo discover
  udp-echo discover --port 7000 --wait 2
  udp-echo discover --to 192.168.1.255:6666 --wait 2s")]
    Discover(DiscoverArgs),
    /// A bounded load test of one server: replies/s, bits/s and RTT percentiles.
    #[command(after_help = "\
Keeps --window requests in flight, spread over --sockets connected sockets and sent and
received by the batch (sendmmsg/recvmmsg), for --duration (at most 60s) or until --requests
have been sent, whichever comes first, then waits briefly for stragglers. Sends only to
the server given. A progress line per second goes to stderr (unless --json or -q); Ctrl-C
stops sending and prints the summary of what ran. Every figure is measured: the time runs
from the first send until sending stopped or the last reply came, whichever is later; an
RTT runs from just before its send; percentiles are nearest-rank; bits/s count UDP payload.

Examples:
  udp-echo bench                                   # 127.0.0.1:6666 for 2 s
  udp-echo bench 127.0.0.1:7000 -t 10 -s 1400 --window 32
  udp-echo bench ::1 --requests 20000 --window 8 --json")]
    Bench(BenchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    #[command(after_help = "\
Examples:
  udp-echo completions bash > ~/.local/share/bash-completion/completions/udp-echo
  udp-echo completions zsh > ~/.zfunc/_udp-echo")]
    Completions(CompletionsArgs),
    /// Print a man page (roff) on stdout, or write them all, generated from these definitions.
    #[command(after_help = "\
Without --dir, prints one page: udp-echo(1), or a subcommand's (udp-echo-serve(1), ...).
With --dir, writes udp-echo.1 and one page per subcommand (udp-echo-serve.1, ...) there,
creating the directory if needed, and prints nothing.

Examples:
  udp-echo manpage > udp-echo.1 && man ./udp-echo.1
  udp-echo manpage serve | man -l -
  udp-echo manpage --dir ~/.local/share/man/man1")]
    Manpage(ManpageArgs),
}

// `completions`' options.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

// `manpage`'s options.
#[derive(Debug, Args)]
pub struct ManpageArgs {
    /// The subcommand whose page to print (default: udp-echo's own).
    #[arg(value_name = "SUBCOMMAND", value_parser = clap::builder::PossibleValuesParser::new(docs::PAGES))]
    pub subcommand: Option<String>,
    /// Write every page into this directory instead: udp-echo.1, udp-echo-serve.1, ...
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath, conflicts_with = "subcommand")]
    pub dir: Option<std::path::PathBuf>,
}

// Each subcommand's options below carry plain comments, not doc comments: with deferred
// subcommands a doc comment here would replace the subcommand's description in --help.

// `serve`'s options.
#[derive(Debug, Args)]
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
    pub io: Option<crate::commands::serve::Io>,
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

// The retry schedule's options (flattened into send and ping).
#[derive(Debug, Args, Clone)]
pub struct RetryArgs {
    /// Wait after the first send (a number alone is seconds).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub initial_timeout: Duration,
    /// Give up once the next wait would exceed this.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub max_timeout: Duration,
    /// Growth of the wait after each timeout, e.g. `2` or `1.5`.
    #[arg(long, default_value = "2")]
    pub factor: Factor,
    /// At most this many sends, 1 or more (default: as many as the waits allow, 5 by
    /// default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
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

// Where a client's datagrams go from: family, source address, interface (send, ping,
// discover).
#[derive(Debug, Args, Clone, Default)]
pub struct NetArgs {
    /// IPv4 only: a name resolves to its IPv4 address; an IPv6 address is refused.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only: a name resolves to its IPv6 address; an IPv4 address is refused.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Send from this address of this machine, and from this port if one is given (as
    /// nc's -s and -p): `--source 10.0.0.2`, `--source 10.0.0.2:40000`, `--source [::1]:0`.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_source)]
    pub source: Option<SocketAddr>,
    /// Send through this interface only, e.g. `eth0` (SO_BINDTODEVICE on Linux,
    /// IP_BOUND_IF on macOS; other systems refuse it).
    #[arg(long, value_name = "IFACE")]
    pub interface: Option<String>,
}

impl NetArgs {
    /// The family -4/-6 hold the command to.
    pub fn family(&self) -> Option<Family> {
        match (self.ipv4, self.ipv6) {
            (true, _) => Some(Family::V4),
            (_, true) => Some(Family::V6),
            _ => None,
        }
    }

    /// `peer` in the family asked for (usage error if it has none).
    pub fn resolve(&self, peer: &Peer) -> Result<SocketAddr, Failure> {
        peer.addr_in(self.family()).map_err(Failure::usage)
    }

    /// A client stack with the source and interface asked for.
    pub fn stack(&self) -> udp_echo_host::stack::StdStack {
        let mut stack = udp_echo_host::stack::StdStack::new();
        if let Some(source) = self.source {
            stack = stack.with_source(source);
        }
        if let Some(name) = &self.interface {
            stack = stack.with_device(name.clone());
        }
        stack
    }
}

/// The default server in the family asked for: 127.0.0.1:6666, or [::1]:6666 with -6.
fn local_server_in(family: Option<Family>) -> SocketAddr {
    match family {
        Some(Family::V6) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, DEFAULT_PORT)),
        _ => local_server(),
    }
}

// `send`'s options.
#[derive(Debug, Args)]
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

// `ping`'s options.
#[derive(Debug, Args)]
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

// `broadcast`'s options.
#[derive(Debug, Args)]
pub struct BroadcastArgs {
    /// The message; `-` reads it from stdin.
    pub message: OsString,
    /// Destination: a broadcast address (SO_BROADCAST is set), a multicast group
    /// (`239.1.2.3:6666`, `[ff02::1%eth0]:6666`) or any other. Default
    /// 255.255.255.255:6666.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_peer_arg)]
    pub to: Option<Peer>,
    /// How many routers a datagram to a multicast group may cross (the TTL, or IPv6's hop
    /// limit); the system's default is 1, the local network only.
    #[arg(long, value_name = "HOPS", value_parser = clap::value_parser!(u32).range(1..=255))]
    pub ttl: Option<u32>,
    #[command(flatten)]
    pub net: NetArgs,
}

impl BroadcastArgs {
    /// Where the datagram goes, in the family -4/-6 ask for.
    pub fn destination(&self) -> Result<SocketAddr, Failure> {
        match &self.to {
            Some(peer) => self.net.resolve(peer),
            None if self.net.family() == Some(Family::V6) => Err(Failure::usage(
                "IPv6 has no broadcast: give a group with its interface, e.g. --to [ff02::1%eth0]:6666",
            )),
            None => Ok(everyone()),
        }
    }
}

// `listen`'s options.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address to bind (SO_REUSEADDR is set, so listeners can share the port); a bare
    /// `PORT` or `:PORT` means every IPv4 interface. Default: 0.0.0.0:6666, or the socket a
    /// service manager passes (systemd socket activation: LISTEN_FDS), which --bind cannot
    /// be given with.
    #[arg(long, value_parser = parse_listen_bind)]
    pub bind: Option<SocketAddr>,
    /// Set SO_REUSEPORT (Unix), so this listener shares the port with servers and
    /// listeners that set it too (`serve --reuse-port`): the kernel spreads unicast
    /// datagrams over them by source, broadcasts reach each.
    #[arg(long)]
    pub reuse_port: bool,
    /// Listen on this interface only (SO_BINDTODEVICE on Linux, IP_BOUND_IF on macOS); a
    /// multicast group --bind names is joined there (by default on every interface).
    #[arg(long, value_name = "IFACE", value_parser = parse_interface)]
    pub interface: Option<Iface>,
    /// Show at most this many datagram lines per second; the rest are summed up once a second.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_lines: u32,
}

impl ListenArgs {
    /// The address to bind: --bind, else 0.0.0.0:6666.
    pub fn bind_addr(&self) -> SocketAddr {
        self.bind.unwrap_or_else(all_interfaces)
    }
}

// `discover`'s options.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The servers' port (default 6666); used by --to when it has none.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Where to send the request (default: 255.255.255.255 at --port).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub to: Option<String>,
    /// How long to collect answers (a number alone is seconds).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub wait: Duration,
    #[command(flatten)]
    pub net: NetArgs,
}

impl DiscoverArgs {
    /// Where the request goes: --to, with --port filling in a missing port.
    pub fn destination(&self) -> Result<SocketAddr, Failure> {
        let port = self.port.unwrap_or(DEFAULT_PORT);
        let Some(to) = &self.to else {
            if self.net.family() == Some(Family::V6) {
                return Err(Failure::usage(
                    "IPv6 has no broadcast: give a group with its interface, e.g. --to [ff02::1%eth0]",
                ));
            }
            return Ok(SocketAddr::from((Ipv4Addr::BROADCAST, port)));
        };
        let peer = parse_peer_arg(to).map_err(|e| Failure::usage(format!("--to {e}")))?;
        let addr = self.net.resolve(&peer)?;
        if !names_port(to) {
            return Ok(SocketAddr::new(addr.ip(), port));
        }
        match self.port {
            Some(p) if p != addr.port() => Err(Failure::usage(format!(
                "--port {p} and --to {to} name different ports: give the port once"
            ))),
            _ => Ok(addr),
        }
    }
}

// `bench`'s options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The server to load (the only destination): `HOST`, `HOST:PORT`, `IP`,
    /// `[IPv6]:PORT` or a bare `PORT` (127.0.0.1); default 127.0.0.1:6666.
    #[arg(value_name = "HOST[:PORT]", value_parser = parse_peer_arg, conflicts_with = "server")]
    pub target: Option<Peer>,
    /// The server, as an option.
    #[arg(long, value_name = "HOST[:PORT]", value_parser = parse_peer_arg)]
    pub server: Option<Peer>,
    #[command(flatten)]
    pub net: NetArgs,
    /// How long to send (at most 60s; a number alone is seconds).
    #[arg(long, short = 't', default_value = "2s", value_parser = parse_duration)]
    pub duration: Duration,
    /// The base request size in bytes: each request (or --gso train) in flight on a socket
    /// has a size of its own, SIZE, SIZE+1, … (up to SIZE+2047, within the datagram limit),
    /// so the count in each reply names its request.
    #[arg(long, short, default_value_t = 12)]
    pub size: usize,
    /// No progress lines on stderr (the summary still comes).
    #[arg(long, short)]
    pub quiet: bool,
    /// Requests in flight at once (1..=1024), spread over the sockets.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub window: u32,
    /// Sockets to spread the window over (1..=64; at most --window are used).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub sockets: u32,
    /// Send each socket's requests as trains of up to K datagrams per system call (GSO,
    /// Linux), and take replies with GRO; 1 (the default) sends datagrams one by one.
    /// Every datagram of a train is a request of its own and is counted as one.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub gso: u8,
    /// Stop sending after this many requests (or at --duration, whichever comes first;
    /// 1..=20000000). Default: only --duration limits the run.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=commands::bench::MAX_REQUESTS))]
    pub requests: Option<u64>,
}

impl BenchArgs {
    /// The server: the positional target, else --server, else 127.0.0.1:6666 ([::1] with
    /// -6), in the family -4/-6 ask for.
    pub fn server(&self) -> Result<SocketAddr, Failure> {
        match self.target.as_ref().or(self.server.as_ref()) {
            Some(peer) => self.net.resolve(peer),
            None => Ok(local_server_in(self.net.family())),
        }
    }
}

/// `-c N`: a count, 0 for endless; a negative number gets words, not clap's `--` tip.
fn parse_count(s: &str) -> Result<u64, String> {
    s.parse::<u64>().map_err(|_| {
        format!("`{s}` is not a count: give 0 (until Ctrl-C) or a positive number of exchanges")
    })
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
    let json = cli.json;
    if !matches!(cli.command, Command::Serve(_) | Command::Listen(_)) {
        // The server loops stop on a closed stdout by themselves (and print their summary).
        crate::output::exit_when_stdout_closes();
    }
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(&args, json),
        Command::Send(args) => commands::send::run(&args, json),
        Command::Ping(args) => commands::ping::run(&args, json),
        Command::Broadcast(args) => commands::broadcast::run(&args, json),
        Command::Listen(args) => commands::listen::run(&args, json),
        Command::Discover(args) => commands::discover::run(&args, json),
        Command::Bench(args) => commands::bench::run(&args, json),
        Command::Completions(args) => print_completions(args.shell),
        Command::Manpage(args) => print_manpage(&args),
    };
    let written = match crate::output::stdout_error() {
        None => Ok(()),
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return ExitCode::from(crate::output::CLOSED_STDOUT);
        }
        Some(e) => Err(Failure::network(format!(
            "cannot write the results to stdout: {}",
            crate::output::plain(&e)
        ))),
    };
    match result.and_then(|code| written.map(|()| code)) {
        Ok(code) => code,
        Err(failure) => {
            crate::output::diag(format_args!("udp-echo: {}", failure.message));
            ExitCode::from(failure.code)
        }
    }
}

/// `completions SHELL`: clap_complete's script for the same definitions (repaired: see
/// the `docs` module).
fn print_completions(shell: clap_complete::Shell) -> Result<ExitCode, Failure> {
    use clap::CommandFactory;
    write_all_stdout(&docs::completions(Cli::command(), shell))
}

/// `manpage [SUBCOMMAND]`, `manpage --dir DIR`: clap_mangen's roff for the same definitions,
/// with the examples laid out as man pages do (see the `docs` module).
fn print_manpage(args: &ManpageArgs) -> Result<ExitCode, Failure> {
    use clap::CommandFactory;
    let failed = |e: std::io::Error| Failure::network(format!("cannot render the man page: {e}"));
    let Some(dir) = &args.dir else {
        let page = docs::man_page(Cli::command(), args.subcommand.as_deref()).map_err(failed)?;
        return write_all_stdout(&page);
    };
    let pages = docs::man_pages(Cli::command()).map_err(failed)?;
    let cannot = |path: &std::path::Path, e: std::io::Error| {
        Failure::network(format!(
            "cannot write {}: {}",
            path.display(),
            crate::output::plain(&e)
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| cannot(dir, e))?;
    for (name, page) in pages {
        let path = dir.join(name);
        std::fs::write(&path, page).map_err(|e| cannot(&path, e))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_all_stdout(bytes: &[u8]) -> Result<ExitCode, Failure> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        crate::output::stdout_failed(e);
    }
    Ok(ExitCode::SUCCESS)
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
