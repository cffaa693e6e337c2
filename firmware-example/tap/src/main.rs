//! `firmware-example`: the core's client and server on smoltcp over a Linux TAP device,
//! like smoltcp's own examples. See `firmware-example --help`.

use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::Instant;

use udp_echo_core::{ResponderConfig, RetryPolicy};
use udp_echo_firmware_example::smoltcp::wire::{EthernetAddress, Ipv4Cidr};
use udp_echo_firmware_example::tap::{Tap, TapConfig};
use udp_echo_firmware_example::{NalStack, NalStorage};
use udp_echo_tap::{Binary, Cli, Command, Failure};

/// Payload bytes per socket buffer and direction: one Ethernet MTU's worth.
const BUF: usize = 1536;

const BINARY: Binary = Binary {
    name: "firmware-example",
    about: "The udp-echo protocol on smoltcp 0.14 over a TAP device: the same no_std core \
            and embedded-nal adapter the bare-metal firmware runs, with this process as the \
            \"board\"",
    // The core tries again after 1, 2, 4, … ms.
    blocked: "the stack cannot take the datagram yet (no ARP reply?); trying again",
    unsent: "the stack said WouldBlock",
};

fn main() -> ExitCode {
    BINARY.exit(run(BINARY.parse()))
}

fn run(cli: Cli) -> Result<(), Failure> {
    let config = TapConfig {
        name: cli.tap,
        cidr: Ipv4Cidr::new(cli.ip.address, cli.ip.prefix_len),
        gateway: cli.gateway,
        mac: EthernetAddress(cli.mac),
    };
    let mut tap = Tap::open(&config).map_err(Failure::runtime)?;
    // Sockets and buffers are fixed-size, as on the board: no heap in the data path.
    let mut storage: NalStorage<'_, 2, 4, BUF> = NalStorage::new();
    let mut stack = NalStack::new(&mut storage, config.cidr.address());

    match cli.command {
        Command::Client { server, message } => {
            let request = message.as_bytes();
            udp_echo_tap::fits(request, tap.max_payload().min(BUF), &config.name)?;
            // Progress in wall-clock ms from here, when each event is reported.
            let mut progress = BINARY.progress();
            let started = Instant::now();
            let outcome = tap
                .exchange(
                    &mut stack,
                    server.into(),
                    request,
                    &RetryPolicy::default(),
                    |event| progress.report(&event, started.elapsed().as_secs_f64() * 1e3),
                )
                .map_err(Failure::runtime)?;
            BINARY.outcome(server, outcome)
        }
        Command::Server { port, count, quiet } => {
            let stop = udp_echo_tap::stop_on_signals(|_| Ok(()))?;
            udp_echo_tap::listening(config.cidr.address(), port, &config.name, config.mac);
            let replied = tap
                .serve(
                    &mut stack,
                    port,
                    ResponderConfig::default(),
                    count,
                    &stop,
                    |rx, decision| {
                        if !quiet {
                            udp_echo_tap::datagram(rx, decision);
                        }
                    },
                )
                .map_err(Failure::runtime)?;
            udp_echo_tap::answered(replied);
            Ok(())
        }
    }
}
