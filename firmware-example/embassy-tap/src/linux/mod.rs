//! The command line, its checks and the output lines (as `firmware-example`'s).

mod net;

use std::ffi::OsString;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use embassy_net::{EthernetAddress, Ipv4Cidr};
use udp_echo_core::wire::DEFAULT_PORT;
use udp_echo_firmware_example::tap::parse_tap_name;

const AFTER_HELP: &str = "\
Examples (as root; 192.168.69.0/24 lives only on tap0):
  ip tuntap add name tap0 mode tap
  ip addr add 192.168.69.100/24 dev tap0
  ip link set tap0 up
  udp-echo serve --bind 192.168.69.100:6666 &
  embassy-tap --tap tap0 --ip 192.168.69.1/24 client 192.168.69.100:6666 hello

  embassy-tap --tap tap0 --ip 192.168.69.1/24 server --port 6666 &
  udp-echo send hello --server 192.168.69.1:6666

Better inside a network namespace: `ip netns add udpecho; ip -n udpecho tuntap add …;
ip netns exec udpecho embassy-tap …`.

Exit status: 0 success (client: a reply; server: stopped by SIGINT/SIGTERM or --count
reached), 1 no reply (the client gave up) or a device/network failure, 2 bad arguments.";

/// The udp-echo protocol on embassy-net (smoltcp 0.13) over a TAP device: the core's
/// async drivers on the udp-echo-embassy adapter, with this process as the "board".
#[derive(Debug, Parser)]
#[command(name = "embassy-tap", version, after_help = AFTER_HELP)]
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

// smoltcp's parsers (`FromStr`, error `()`), plus what an interface's own address must be.

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
#[derive(Debug)]
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

/// Parses the command line and runs it; the exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            say(&format!("embassy-tap: {}", failure.message));
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let setup = net::Setup {
        tap: cli.tap,
        cidr: cli.ip,
        gateway: cli.gateway,
        mac: cli.mac,
    };
    let device = net::open(&setup).map_err(Failure::runtime)?;
    let job = match cli.command {
        Command::Client { server, message } => {
            let message = message.into_vec();
            let max = net::max_payload(&device);
            if message.len() > max {
                return Err(Failure::usage(format!(
                    "the message is {} bytes; at most {max} fit one frame on {} (this stack \
                     does not fragment)",
                    message.len(),
                    setup.tap
                )));
            }
            net::Job::Client { server, message }
        }
        Command::Server { port, count, quiet } => net::Job::Server {
            port,
            count,
            quiet,
            stop: net::stop_on_signals()?,
        },
    };
    net::run(device, &setup, job)
}
