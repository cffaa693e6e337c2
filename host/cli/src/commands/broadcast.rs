//! `udp-echo broadcast`: one datagram through the core's `Broadcaster` (SO_BROADCAST on).

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use udp_echo::parse::{Family, Peer, parse_peer_arg};
use udp_echo_core::{BroadcastError, Broadcaster, nb};

use super::{broadcast_failure, message_bytes};
use crate::args::{DEFAULT_PORT, Failure, NetArgs};
use crate::output::{Stdout, events};

// `broadcast`'s options.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
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

/// The limited broadcast address, the protocol's port.
fn everyone() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::BROADCAST, DEFAULT_PORT))
}

/// The text after `--help`'s options.
const AFTER_HELP: &str = "\
Examples:
  udp-echo broadcast 'hello, LAN' --to 192.168.1.255:6666
  udp-echo broadcast hi --to 239.1.2.3:6666 --ttl 2 --interface eth0   # a multicast group
  udp-echo broadcast hi --to '[ff02::1%eth0]:6666'                     # IPv6: all nodes on eth0";

/// How long a send the kernel keeps refusing for now (ENOBUFS, EAGAIN) is retried.
const SEND_PATIENCE: Duration = Duration::from_secs(1);

/// Sends the message once; exit 0 when it went out.
pub fn run(args: &BroadcastArgs, json: bool) -> Result<ExitCode, Failure> {
    let to = args.destination()?;
    let payload = message_bytes(&args.message, udp_echo_core::wire::max_request(to))?;
    let (mut stack, port) = args.net.broadcast_stack(to);
    if let Some(hops) = args.ttl {
        stack = stack.with_multicast_ttl(hops);
    }
    let mut sender = Broadcaster::open(&mut stack, port)
        .map_err(|e| broadcast_failure(e, "cannot open a socket"))?;
    let deadline = Instant::now() + SEND_PATIENCE;
    let sent = loop {
        match sender.send(&mut stack, to, &payload) {
            Ok(()) => break Ok(()),
            Err(nb::Error::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(nb::Error::WouldBlock) => {
                break Err(Failure::network(format!(
                    "cannot send to {}: the kernel's queue stayed full",
                    to
                )));
            }
            Err(nb::Error::Other(e @ BroadcastError::PayloadTooLarge(_))) => {
                break Err(broadcast_failure(e, ""));
            }
            Err(nb::Error::Other(e)) => {
                break Err(broadcast_failure(e, &format!("cannot send to {}", to)));
            }
        }
    };
    let _ = sender.close(&mut stack);
    sent?;
    let mut out = Stdout::default();
    if json {
        out.json(&events::sent(to, payload.len()));
    } else {
        out.line(format_args!("sent {} bytes to {}", payload.len(), to));
    }
    Ok(ExitCode::SUCCESS)
}
