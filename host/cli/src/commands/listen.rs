//! `udp-echo listen`: the host's [`Server`] as a listener (never replies), on its own
//! socket or on one a service manager passes (socket activation).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use clap::Args;
use udp_echo::parse::{Iface, parse_interface, parse_listen_bind};
use udp_echo_host::clock::Clock;
use udp_echo_host::server::{Options, Server};
use udp_echo_host::udp::BindOptions;

use super::serve::{inherited_socket, refuse_with_inherited};
use super::{STOP_PATIENCE, announce, install_shutdown, server_failure, stop_reason};
use crate::args::{DEFAULT_PORT, Failure};
use crate::diag;
use crate::output::events;

// `listen`'s options.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
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

/// Every IPv4 interface, the protocol's port: where broadcasts arrive.
fn all_interfaces() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT))
}

/// The text after `--help`'s options.
const AFTER_HELP: &str = "\
Several listeners may share the port (SO_REUSEADDR). Prints `listening on ADDR` on stderr.
SIGINT or SIGTERM stops it with exit status 0.

Examples:
  udp-echo listen                  # 0.0.0.0:6666
  udp-echo listen --bind 7000      # 0.0.0.0:7000 (a number is a port)
  udp-echo listen --bind 239.1.2.3:6666 --interface eth0   # join a group on eth0
  udp-echo listen --bind '[ff02::1234%eth0]:6666'          # an IPv6 group";

/// Prints what arrives until SIGINT/SIGTERM/SIGHUP; exit 0.
pub fn run(args: &ListenArgs, json: bool) -> Result<ExitCode, Failure> {
    let inherited = inherited_socket()?;
    if inherited.is_some() {
        refuse_with_inherited(args.bind, args.reuse_port)?;
    }
    if args.reuse_port && !cfg!(unix) {
        return Err(Failure::usage(
            "--reuse-port: this system has no SO_REUSEPORT; listeners share a port without it \
             here (listen sets SO_REUSEADDR)",
        ));
    }
    let shutdown = install_shutdown()?;
    let bind = args.bind_addr();
    let mut options = Options::new(bind);
    // Several listeners may share a port, and all get its broadcasts.
    options.socket = BindOptions {
        reuse_addr: true,
        reuse_port: args.reuse_port,
        interface: args.interface.as_ref().map(|i| i.index),
        ..BindOptions::default()
    };
    let from_manager = inherited.is_some();
    let opened = match inherited {
        None => Server::listen(&options).map_err(|e| {
            Failure::network(format!(
                "cannot bind {bind}: {}",
                super::socket_error(&e, bind)
            ))
        }),
        Some(socket) => {
            let local = socket.local_addr();
            Server::listen_inherited(socket, &options).map_err(|e| {
                Failure::network(format!(
                    "cannot take the socket from the service manager ({local}): {}",
                    crate::output::plain(&e)
                ))
            })
        }
    };
    let mut listener: Server = opened?;
    let mut presenter = announce(listener.local_addr(), json, false, args.max_lines)?;
    if from_manager {
        diag!("socket: from the service manager (socket activation)");
    }
    let result = listener.run(&Clock::new(), Some(&shutdown), &mut presenter);
    let received = listener.counters().received;
    let why = stop_reason(&result, &shutdown);
    let last = json.then(|| events::listen_stopped(&why, received).to_string());
    presenter.finish(last, STOP_PATIENCE);
    if !json {
        diag!("udp-echo: stopped by {why}: received {received}");
    }
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(server_failure(&e, "receive failed")),
    }
}
