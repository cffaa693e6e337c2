//! The command line, its checks and the output lines: `firmware-example`'s (the
//! `udp-echo-tap` library), with this binary's name and wording.

mod net;

use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;

use embassy_net::{EthernetAddress, Ipv4Cidr};
use udp_echo_tap::{Binary, Cli, Command, Failure};

const BINARY: Binary = Binary {
    name: "embassy-tap",
    about: "The udp-echo protocol on embassy-net (smoltcp 0.13) over a TAP device: the core's \
            async drivers on the udp-echo-embassy adapter, with this process as the \"board\"",
    blocked: "the socket's queue is full (no ARP reply?); the slot passed",
    unsent: "the socket's queue stayed full",
};

/// Parses the command line and runs it; the exit status.
pub fn main() -> ExitCode {
    BINARY.exit(run(BINARY.parse()))
}

fn run(cli: Cli) -> Result<(), Failure> {
    let setup = net::Setup {
        tap: cli.tap,
        cidr: Ipv4Cidr::new(cli.ip.address, cli.ip.prefix_len),
        gateway: cli.gateway,
        mac: EthernetAddress(cli.mac),
    };
    let device = net::open(&setup).map_err(Failure::runtime)?;
    let job = match cli.command {
        Command::Client { server, message } => {
            let message = message.into_vec();
            udp_echo_tap::fits(&message, net::max_payload(&device), &setup.tap)?;
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
