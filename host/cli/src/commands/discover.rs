//! `udp-echo discover`: one broadcast request through the core's `Discovery`.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use udp_echo::parse::{Family, names_port, parse_duration, parse_peer_arg};
use udp_echo_core::{BroadcastError, Discovery, DiscoveryEvent};
use udp_echo_host::clock::Clock;
use udp_echo_host::stack::StdStack;

use super::broadcast_failure;
use crate::args::{DEFAULT_PORT, Failure, NetArgs};
use crate::diag;
use crate::output::{Stdout, events, human};

// `discover`'s options.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
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

/// The text after `--help`'s options.
const AFTER_HELP: &str = "\
--to without a port uses --port; --to with a port and a different --port is an error.
Exit status 0 if at least one server answered, 1 if none did.

Examples:
  udp-echo discover
  udp-echo discover --port 7000 --wait 2
  udp-echo discover --to 192.168.1.255:6666 --wait 2s
  udp-echo discover --to 239.1.2.3:6666 --interface eth0   # the servers of a group
  udp-echo discover --to '[ff02::1%eth0]:6666'   # IPv6 (no broadcast): all nodes";

/// The request discovery sends; servers answer `Your data was 17 bytes`.
const REQUEST: &[u8] = b"udp-echo discover";
/// At most this many servers are listed.
const MAX_SERVERS: usize = 256;

/// Lists the servers that answered; exit 0 if any did, 1 if none.
pub fn run(args: &DiscoverArgs, json: bool) -> Result<ExitCode, Failure> {
    let to = args.destination()?;
    let (mut stack, port) = args.net.broadcast_stack(to);
    let clock = Clock::new();
    let mut discovery =
        Discovery::<StdStack, MAX_SERVERS>::start(&mut stack, port, to, REQUEST, args.wait)
            .map_err(|e| broadcast_failure(e, "cannot open a socket"))?;
    let mut out = Stdout::default();
    let failed = |e: BroadcastError<_>| broadcast_failure(e, &format!("discovery at {to} failed"));
    loop {
        let now = clock.now();
        match discovery.poll(&mut stack, now).map_err(failed)? {
            DiscoveryEvent::Found(f) if json => out.json(&events::found(f.addr, f.rtt)),
            DiscoveryEvent::Found(f) => {
                out.line(format_args!("{} answered in {}", f.addr, human(f.rtt)));
            }
            DiscoveryEvent::Wait(wake) => {
                let deadline = wake.deadline(now).map(|at| clock.to_std(at));
                stack
                    .wait_readable(discovery.socket(), deadline)
                    .map_err(|e| Failure::network(format!("discovery at {to} failed: {e}")))?;
            }
            DiscoveryEvent::Done => break,
            DiscoveryEvent::Sent(_) | DiscoveryEvent::Ignored { .. } => {}
        }
    }
    let survey = discovery.survey();
    let (found, overflow, ignored) = (survey.found().len(), survey.overflow(), survey.ignored());
    let _ = discovery.close(&mut stack);
    if json {
        out.json(&events::discover_summary(
            to, found, overflow, ignored, args.wait,
        ));
    } else if found > 0 {
        diag!(
            "udp-echo: {found} server{} answered at {to} within {}",
            if found == 1 { "" } else { "s" },
            human(args.wait)
        );
    }
    if overflow > 0 {
        diag!("udp-echo: {overflow} more answers did not fit the list of {MAX_SERVERS}");
    }
    if found == 0 {
        return Err(Failure::network(format!(
            "no server answered at {to} within {}",
            human(args.wait)
        )));
    }
    Ok(ExitCode::SUCCESS)
}
