//! `firmware-example`: the core's client and server on smoltcp over a Linux TAP device,
//! like smoltcp's own examples. See `firmware-example --help`.

use std::ffi::OsString;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::{Parser, Subcommand};
use udp_echo_core::wire::DEFAULT_PORT;
use udp_echo_core::{ClientEvent, Decision, Outcome, ResponderConfig, RetryPolicy};
use udp_echo_firmware_example::smoltcp::wire::{EthernetAddress, Ipv4Cidr};
use udp_echo_firmware_example::tap::{Tap, TapConfig, parse_tap_name};
use udp_echo_firmware_example::{NalStack, NalStorage};

/// Payload bytes per socket buffer and direction: one Ethernet MTU's worth.
const BUF: usize = 1536;

const AFTER_HELP: &str = "\
Examples (as root; 192.168.69.0/24 lives only on tap0):
  ip tuntap add name tap0 mode tap
  ip addr add 192.168.69.100/24 dev tap0
  ip link set tap0 up
  udp-echo serve --bind 192.168.69.100:6666 &
  firmware-example --tap tap0 --ip 192.168.69.1/24 client 192.168.69.100:6666 hello

  firmware-example --tap tap0 --ip 192.168.69.1/24 server --port 6666 &
  udp-echo send hello --server 192.168.69.1:6666

Better inside a network namespace: `ip netns add udpecho; ip -n udpecho tuntap add …;
ip netns exec udpecho firmware-example …`.

Exit status: 0 success (client: a reply; server: stopped by SIGINT/SIGTERM or --count
reached), 1 no reply (the client gave up) or a device/network failure, 2 bad arguments.";

/// The udp-echo protocol on smoltcp 0.14 over a TAP device: the same no_std core and
/// embedded-nal adapter the bare-metal firmware runs, with this process as the "board".
#[derive(Debug, Parser)]
#[command(name = "firmware-example", version, after_help = AFTER_HELP)]
struct Cli {
    /// TAP device to attach to (created if missing; needs root or CAP_NET_ADMIN unless it is
    /// a persistent device owned by this user).
    #[arg(long, value_name = "NAME", default_value = "tap0", value_parser = parse_tap_name)]
    tap: String,

    /// This interface's IPv4 address and prefix length.
    #[arg(long, value_name = "ADDR/PREFIX", default_value = "192.168.69.1/24", value_parser = parse_cidr)]
    ip: Ipv4Cidr,

    /// Default IPv4 gateway, for peers outside the prefix.
    #[arg(long, value_name = "ADDR", value_parser = parse_gateway)]
    gateway: Option<Ipv4Addr>,

    /// This interface's MAC address (unicast; locally administered by default).
    #[arg(long, value_name = "MAC", default_value = "02:00:00:00:00:01", value_parser = parse_mac)]
    mac: EthernetAddress,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send MESSAGE once (resent at 0/100/300/700/1500 ms until a reply; giving up at
    /// 3100 ms) and print the reply on stdout.
    Client {
        /// The server, an IPv4 ADDR:PORT.
        #[arg(value_name = "ADDR:PORT", value_parser = parse_server)]
        server: SocketAddrV4,
        /// The request's bytes (any bytes; one datagram).
        #[arg(value_name = "MESSAGE")]
        message: OsString,
    },
    /// Answer every datagram on PORT with `Your data was N bytes`, printing one line per
    /// datagram, until SIGINT/SIGTERM (or --count replies).
    Server {
        /// The UDP port to serve.
        #[arg(long, default_value_t = DEFAULT_PORT, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        /// Stop after answering this many datagrams.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// Print no line per datagram.
        #[arg(long)]
        quiet: bool,
    },
}

// The parsers are smoltcp's (`FromStr`); these only add what an interface's own address
// must also be, and say what was expected (smoltcp's error is `()`).

fn parse_cidr(s: &str) -> Result<Ipv4Cidr, String> {
    let cidr: Ipv4Cidr = s
        .parse()
        .map_err(|()| "expected ADDRESS/PREFIX with a prefix of 0 to 32, e.g. 192.168.69.1/24")?;
    unicast(cidr.address())?;
    Ok(cidr)
}

fn parse_gateway(s: &str) -> Result<Ipv4Addr, String> {
    let ip = s
        .parse()
        .map_err(|_| "expected an IPv4 address like 192.168.69.100")?;
    unicast(ip)?;
    Ok(ip)
}

fn parse_mac(s: &str) -> Result<EthernetAddress, String> {
    let mac: EthernetAddress = s
        .parse()
        .map_err(|()| "expected six hex bytes like 02:00:00:00:00:01")?;
    if !mac.is_unicast() {
        return Err("a multicast or broadcast MAC cannot be an interface's address".into());
    }
    Ok(mac)
}

fn unicast(ip: Ipv4Addr) -> Result<(), String> {
    if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
        return Err(format!("{ip} is not a unicast host address"));
    }
    Ok(())
}

fn parse_server(s: &str) -> Result<SocketAddrV4, String> {
    match s.parse::<SocketAddr>() {
        Ok(SocketAddr::V4(addr)) => {
            let ip = *addr.ip();
            if ip.is_unspecified() || ip.is_multicast() {
                Err(format!("{ip} cannot be a server address"))
            } else if addr.port() == 0 {
                Err("the server's port cannot be 0".into())
            } else {
                Ok(addr)
            }
        }
        Ok(SocketAddr::V6(_)) => Err("this example speaks IPv4 only".into()),
        Err(_) => Err("expected an IPv4 ADDR:PORT, e.g. 192.168.69.100:6666".into()),
    }
}

/// A failure after argument parsing: the message and the exit status.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: String) -> Self {
        Self { code: 2, message }
    }

    fn runtime(message: impl ToString) -> Self {
        Self {
            code: 1,
            message: message.to_string(),
        }
    }
}

/// One line on stderr in one `write` (stderr is unbuffered: `eprintln!` writes piecemeal,
/// which interleaves badly with other processes' output).
fn say(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// One line on stdout. A closed stdout (`| head -1`) must not panic the server: the line
/// is dropped.
fn print(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(format!("{line}\n").as_bytes())
        .and_then(|()| out.flush());
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            say(&format!("firmware-example: {}", failure.message));
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let config = TapConfig {
        name: cli.tap,
        cidr: cli.ip,
        gateway: cli.gateway,
        mac: cli.mac,
    };
    let mut tap = Tap::open(&config).map_err(Failure::runtime)?;
    // Sockets and buffers are fixed-size, as on the board: no heap in the data path.
    let mut storage: NalStorage<'_, 2, 4, BUF> = NalStorage::new();
    let mut stack = NalStack::new(&mut storage, config.cidr.address());

    match cli.command {
        Command::Client { server, message } => {
            let request = message.as_bytes();
            let max = tap.max_payload().min(BUF);
            if request.len() > max {
                return Err(Failure::usage(format!(
                    "the message is {} bytes; at most {max} fit one frame on {} (this stack \
                     does not fragment)",
                    request.len(),
                    config.name
                )));
            }
            let mut progress = Progress::new();
            let outcome = tap
                .exchange(
                    &mut stack,
                    server.into(),
                    request,
                    &RetryPolicy::default(),
                    |event| progress.report(event),
                )
                .map_err(Failure::runtime)?;
            match outcome {
                Outcome::Reply(r) => {
                    print(&format!("Your data was {} bytes", r.count));
                    say(&format!(
                        "reply from {server}: rtt {:.3} ms{}, {} attempt{}, {:.3} ms in all",
                        r.rtt.as_secs_f64() * 1e3,
                        if r.rtt_ambiguous {
                            " (ambiguous: measured after a resend)"
                        } else {
                            ""
                        },
                        r.attempts,
                        if r.attempts == 1 { "" } else { "s" },
                        r.elapsed.as_secs_f64() * 1e3,
                    ));
                    Ok(())
                }
                Outcome::GaveUp(g) => Err(Failure::runtime(format!(
                    "no reply from {server} after {} attempt{} in {} ms{}",
                    g.attempts,
                    if g.attempts == 1 { "" } else { "s" },
                    g.elapsed.as_millis(),
                    match g.unsent {
                        0 => String::new(),
                        n => format!(
                            "; {n} more could not be sent (the stack said WouldBlock: \
                             is {} on the link?)",
                            server.ip()
                        ),
                    }
                ))),
            }
        }
        Command::Server { port, count, quiet } => {
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                // A second signal while the first is being handled ends the process at once.
                signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
                    .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
                    .map_err(|e| Failure::runtime(format!("cannot handle signals: {e}")))?;
            }
            say(&format!(
                "listening on {}:{port} ({}, {})",
                config.cidr.address(),
                config.name,
                config.mac
            ));
            let replied = tap
                .serve(
                    &mut stack,
                    port,
                    ResponderConfig::default(),
                    count,
                    &stop,
                    |rx, decision| {
                        if quiet {
                            return;
                        }
                        match decision {
                            Decision::Reply(_) => {
                                print(&format!("{} sent {} bytes", rx.from, rx.len))
                            }
                            Decision::Drop(why) => print(&format!(
                                "{} sent {} bytes, not answered: {why}",
                                rx.from, rx.len
                            )),
                        }
                    },
                )
                .map_err(Failure::runtime)?;
            say(&format!(
                "answered {replied} datagram{}",
                if replied == 1 { "" } else { "s" }
            ));
            Ok(())
        }
    }
}

/// The client's progress on stderr, one line per event. Blocked sends come in bursts
/// (the core tries again after 1, 2, 4, … ms): one line per burst.
struct Progress {
    started: Instant,
    blocked: bool,
}

impl Progress {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            blocked: false,
        }
    }

    fn report(&mut self, event: ClientEvent) {
        let ms = self.started.elapsed().as_secs_f64() * 1e3;
        match event {
            ClientEvent::Sent { attempt, .. } => {
                self.blocked = false;
                say(&format!("attempt {attempt} sent at {ms:.1} ms"));
            }
            ClientEvent::SendBlocked if !self.blocked => {
                self.blocked = true;
                say(&format!(
                    "send blocked at {ms:.1} ms: the stack cannot take the datagram yet \
                     (no ARP reply?); trying again"
                ));
            }
            ClientEvent::Ignored { from, verdict } => say(&format!(
                "ignored a datagram at {ms:.1} ms from {}: {verdict:?}",
                from.map_or("an unknown source".into(), |a| a.to_string())
            )),
            ClientEvent::Refused => say(&format!(
                "ICMP port unreachable at {ms:.1} ms (noted; the schedule goes on)"
            )),
            _ => {}
        }
    }
}
