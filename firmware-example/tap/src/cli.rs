//! The command line: the interface's options, then `client` or `server`.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use udp_echo_core::wire::DEFAULT_PORT;
use udp_echo_firmware_example::smoltcp::wire::{EthernetAddress, Ipv4Cidr};
use udp_echo_firmware_example::tap::parse_tap_name;

use crate::Binary;

/// The interface to attach to, and what to run on it (the summary, name and examples of
/// `--help` are the [`Binary`]'s).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// TAP device to attach to (created if missing; needs root or CAP_NET_ADMIN unless it is
    /// a persistent device owned by this user).
    #[arg(long, value_name = "NAME", default_value = "tap0", value_parser = parse_tap_name)]
    pub tap: String,

    /// This interface's IPv4 address and prefix length.
    #[arg(long, value_name = "ADDR/PREFIX", default_value = "192.168.69.1/24", value_parser = parse_cidr)]
    pub ip: Cidr,

    /// Default IPv4 gateway, for peers outside the prefix.
    #[arg(long, value_name = "ADDR", value_parser = parse_gateway)]
    pub gateway: Option<Ipv4Addr>,

    /// This interface's MAC address (unicast; locally administered by default).
    #[arg(long, value_name = "MAC", default_value = "02:00:00:00:00:01", value_parser = parse_mac)]
    pub mac: [u8; 6],

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// What to run on the interface.
#[derive(Debug, Subcommand)]
pub enum Command {
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

/// An interface's IPv4 address and prefix length (`--ip`), in std types: each binary
/// makes its own smoltcp's `Ipv4Cidr` of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The interface's address: a unicast host address.
    pub address: Ipv4Addr,
    /// The prefix length, 0 to 32.
    pub prefix_len: u8,
}

impl Cli {
    /// [`Binary::parse`].
    pub(crate) fn parse_as(binary: &Binary) -> Self {
        let mut command = Self::command()
            .name(binary.name)
            .about(binary.about)
            .long_about(None)
            .after_help(after_help(binary.name));
        let mut matches = command.get_matches_mut();
        Self::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut command).exit())
    }
}

/// The examples and exit statuses after `--help`, for binary `name`.
fn after_help(name: &str) -> String {
    format!(
        "\
Examples (as root; 192.168.69.0/24 lives only on tap0):
  ip tuntap add name tap0 mode tap
  ip addr add 192.168.69.100/24 dev tap0
  ip link set tap0 up
  udp-echo serve --bind 192.168.69.100:6666 &
  {name} --tap tap0 --ip 192.168.69.1/24 client 192.168.69.100:6666 hello

  {name} --tap tap0 --ip 192.168.69.1/24 server --port 6666 &
  udp-echo send hello --server 192.168.69.1:6666

Better inside a network namespace: `ip netns add udpecho; ip -n udpecho tuntap add …;
ip netns exec udpecho {name} …`.

Exit status: 0 success (client: a reply; server: stopped by SIGINT/SIGTERM or --count
reached), 1 no reply (the client gave up) or a device/network failure, 2 bad arguments."
    )
}

// The parsers are smoltcp's (`FromStr`; 0.14's here, the same as 0.13's); these only add
// what an interface's own address must also be, and say what was expected (smoltcp's
// error is `()`).

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let cidr: Ipv4Cidr = s
        .parse()
        .map_err(|()| "expected ADDRESS/PREFIX with a prefix of 0 to 32, e.g. 192.168.69.1/24")?;
    unicast(cidr.address())?;
    Ok(Cidr {
        address: cidr.address(),
        prefix_len: cidr.prefix_len(),
    })
}

fn parse_gateway(s: &str) -> Result<Ipv4Addr, String> {
    let ip = s
        .parse()
        .map_err(|_| "expected an IPv4 address like 192.168.69.100")?;
    unicast(ip)?;
    Ok(ip)
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mac: EthernetAddress = s
        .parse()
        .map_err(|()| "expected six hex bytes like 02:00:00:00:00:01")?;
    if !mac.is_unicast() {
        return Err("a multicast or broadcast MAC cannot be an interface's address".into());
    }
    Ok(mac.0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cidrs_are_unicast_host_addresses_with_a_prefix() {
        assert_eq!(
            parse_cidr("192.168.69.1/24"),
            Ok(Cidr {
                address: Ipv4Addr::new(192, 168, 69, 1),
                prefix_len: 24
            })
        );
        assert!(parse_cidr("192.168.69.1").is_err());
        assert!(parse_cidr("192.168.69.1/33").is_err());
        assert!(parse_cidr("224.0.0.1/4").is_err());
    }

    #[test]
    fn macs_are_unicast_in_either_notation() {
        assert_eq!(parse_mac("02:00:00:00:00:01"), Ok([2, 0, 0, 0, 0, 1]));
        assert_eq!(parse_mac("02-00-00-00-00-0a"), Ok([2, 0, 0, 0, 0, 10]));
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("02:00:00").is_err());
    }
}
