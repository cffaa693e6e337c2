//! The async network firmware: Cortex-M4F (`thumbv7em-none-eabihf`) under QEMU
//! `mps2-an386`, the same jobs as the polled network firmware (`net-firmware/`) on an
//! async stack. Run it with `scripts/qemu-net.sh --async`.
//!
//! - **Stack**: embassy-net 0.9 (smoltcp 0.13) holds 10.0.2.15/24 with gateway 10.0.2.2
//!   (QEMU user networking's defaults), with smoltcp's IPv4 reassembly in 4096 bytes; the
//!   core's async drivers run on it through the `udp-echo-embassy` adapter.
//! - **Jobs**, picked by the boot command line (QEMU `-append`, read through semihosting;
//!   `udp_echo_firmware_example::cmdline`): nothing or `serve`: the core's
//!   `asynch::Server` on UDP 6666 with the default guards and a destinations classifier
//!   for 10.0.2.0/24, until QEMU is stopped; `client HOST:PORT MESSAGE`: the core's
//!   `asynch::Client` with the default retry schedule; exit status 0 on a reply, 1 when it
//!   gave up (or anything failed).
//! - **NIC**: the LAN9118 through the library's interrupt-driven embassy-net-driver
//!   (`lan9118::EmbassyDriver`), on IRQ 13: a frame wakes the stack at once.
//! - **Time**: embassy-time on the CMSDK APB timers (`timer.rs`): one free-running clock,
//!   one alarm set for the next timer. Tick-less.
//! - **Executor**: embassy-executor's `raw::Executor`, polled in a loop that sleeps in
//!   `WFI` when no task is ready (`rt.rs`: not WFE, which QEMU treats as a yield).
//!
//! So an idle firmware sleeps until the next frame or timer: no periodic wake-up.
//!
//! `unsafe` only in `rt.rs` (executor, interrupts) and `timer.rs` (the timers' registers);
//! the LAN9118's registers are the library's. Built for the host, this file is a stub that
//! says how to build it (the package's dependencies are all gated on `target_os =
//! "none"`); its unit tests (`ticks.rs`) run on the host.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "async-firmware is firmware: build it with --target thumbv7em-none-eabihf \
         --profile firmware (see scripts/qemu-net.sh --async)"
    );
    std::process::exit(2);
}

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod rt;
#[cfg(any(target_os = "none", test))]
mod ticks;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod timer;

#[cfg(target_os = "none")]
mod firmware {
    use core::mem::MaybeUninit;
    use core::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
    use core::time::Duration;

    use cortex_m as _; // its critical-section impl backs defmt-semihosting and embassy
    use cortex_m_rt::entry;
    use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
    use defmt_semihosting as _; // the global defmt logger
    use embassy_executor::Spawner;
    use embassy_net::udp::{PacketMetadata, UdpSocket};
    use embassy_net::{Config, Ipv4Cidr, Runner, Stack, StackResources, StaticConfigV4};
    use static_cell::{ConstStaticCell, StaticCell};
    use udp_echo_core::asynch::{self, Clock};
    use udp_echo_core::{
        ClientError, ClientEvent, Counters, Decision, Destination, ExchangeError, Outcome,
        ResponderConfig, RetryPolicy, ServerError,
    };
    use udp_echo_embassy::{Connected, EmbassyClock, Error as SocketError, Unconnected};
    use udp_echo_firmware_example::cmdline::{self, CmdlineError, Mode};
    use udp_echo_firmware_example::lan9118::{
        Board, Chip, EmbassyDriver, EmbassyState, InitError, Mmio,
    };
    use udp_echo_firmware_example::show::{Drops, Ip, Sock};

    use crate::rt::{self, Irq};
    use crate::timer;

    /// QEMU user networking's guest address, network and gateway (slirp's defaults).
    const ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
    const PREFIX_LEN: u8 = 24;
    const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const ECHO_PORT: u16 = 6666;

    /// smoltcp 0.13's reassembly buffer (`reassembly-buffer-size-4096`, Cargo.toml).
    const REASSEMBLY: usize = smoltcp::config::REASSEMBLY_BUFFER_SIZE;
    /// The largest request that arrives whole when fragmented: the buffer less the UDP
    /// header.
    const MAX_REASSEMBLED_UDP: usize = REASSEMBLY - 8;
    /// Datagrams queued per direction.
    const META: usize = 4;
    /// Receive payload bytes: one request as large as reassembly allows.
    const RX: usize = REASSEMBLY;
    /// Transmit payload bytes: a client message (the command line holds less) or replies.
    const TX: usize = 1472;
    /// The server reads only a request's head (the adapter reports true lengths).
    const SERVER_BUF: usize = 32;
    /// The command line: the kernel's path, a command and a client's message.
    const CMDLINE: usize = 1024;
    /// A client run ends here at the latest whatever happens (its schedule ends at 3.1 s).
    const CLIENT_LIMIT: embassy_time::Duration = embassy_time::Duration::from_secs(10);
    /// The drop counters are logged at most this often, while they change.
    const REPORT_EVERY: embassy_time::Duration = embassy_time::Duration::from_secs(2);

    type Nic = EmbassyDriver<'static, Mmio>;

    /// The LAN9118, shared by the driver and its interrupt handler (`rt.rs`).
    pub static NIC: EmbassyState<Mmio> = EmbassyState::new();

    // Payloads in `.bss`; the metadata (not all-zero) in `.data`.
    static RX_META: ConstStaticCell<[PacketMetadata; META]> =
        ConstStaticCell::new([PacketMetadata::EMPTY; META]);
    static TX_META: ConstStaticCell<[PacketMetadata; META]> =
        ConstStaticCell::new([PacketMetadata::EMPTY; META]);
    static RX_BYTES: ConstStaticCell<[u8; RX]> = ConstStaticCell::new([0; RX]);
    static TX_BYTES: ConstStaticCell<[u8; TX]> = ConstStaticCell::new([0; TX]);
    /// One socket: the server's or the client's.
    static RESOURCES: StaticCell<StackResources<1>> = StaticCell::new();
    static LINE: ConstStaticCell<[MaybeUninit<u8>; CMDLINE]> =
        ConstStaticCell::new([MaybeUninit::uninit(); CMDLINE]);

    defmt::timestamp!(
        "{=u32:ms}",
        u32::try_from(embassy_time::Instant::now().as_millis()).unwrap_or(u32::MAX)
    );

    /// Why the firmware stopped with exit status 1.
    #[derive(defmt::Format)]
    enum Failure {
        /// The LAN9118 did not come up.
        Nic(InitError),
        /// The NIC's registers were already handed out (a second init).
        AlreadyStarted,
        /// Semihosting gave no command line (or one longer than `CMDLINE` bytes).
        NoCmdline,
        /// The command line is not `serve` or `client HOST:PORT MESSAGE`.
        Cmdline(CmdlineError),
        /// A task could not be spawned (its pool is taken).
        Spawn,
        /// The server's socket could not be bound to UDP 6666.
        Bind,
        /// The client's socket could not be connected, or a socket failed.
        Socket(SocketError),
        /// The client's exchange could not start (the message is too long).
        Exchange(ExchangeError),
        /// The client ran past `CLIENT_LIMIT` without an outcome.
        Stalled,
        /// The client gave up (not a malfunction: the server did not answer).
        NoReply,
    }

    // The drivers' errors, flattened: each wrapper would be one more `Format` impl in flash.
    impl From<ClientError<SocketError>> for Failure {
        fn from(e: ClientError<SocketError>) -> Self {
            match e {
                ClientError::Stack(e) => Failure::Socket(e),
                ClientError::Exchange(e) => Failure::Exchange(e),
            }
        }
    }

    impl From<ServerError<SocketError>> for Failure {
        fn from(e: ServerError<SocketError>) -> Self {
            match e {
                ServerError::Stack(e) => Failure::Socket(e),
            }
        }
    }

    // ---------------------------------------------------------------- boot

    #[entry]
    fn main() -> ! {
        // The clock first: every log line's timestamp reads it.
        timer::start();
        match boot() {
            Ok(jobs) => rt::run(|spawner| spawn(spawner, jobs)),
            Err(failure) => fail(failure),
        }
    }

    /// What the executor runs: the stack's runner and the job.
    struct Jobs {
        runner: Runner<'static, Nic>,
        stack: Stack<'static>,
        mode: Mode<'static>,
        seed: u64,
    }

    /// Reads the command line, brings the LAN9118 up with its interrupt and builds the
    /// stack.
    fn boot() -> Result<Jobs, Failure> {
        let line = semihosting::sys::arm_compat::sys_get_cmdline_uninit(LINE.take())
            .map_err(|_| Failure::NoCmdline)?;
        let mode = cmdline::parse(line).map_err(Failure::Cmdline)?;

        let regs = Mmio::take(Board::Mps2An386).ok_or(Failure::AlreadyStarted)?;
        let mut chip = Chip::new(regs).map_err(Failure::Nic)?;
        // The FREE_RUN count at boot (40 ns ticks since the NIC's reset), the one varying
        // input there is: seeds smoltcp (ephemeral ports) and the server's per-source table.
        let seed = u64::from(chip.free_run());
        let (mac, id_rev) = (chip.mac(), chip.id_rev());
        let driver = EmbassyDriver::new(&NIC, chip);
        rt::unmask(Irq::Ethernet);

        let config = Config::ipv4_static(StaticConfigV4 {
            address: Ipv4Cidr::new(ADDR, PREFIX_LEN),
            gateway: Some(GATEWAY),
            dns_servers: Default::default(),
        });
        let (stack, runner) =
            embassy_net::new(driver, config, RESOURCES.init(StackResources::new()), seed);
        let [m0, m1, m2, m3, m4, m5] = mac;
        defmt::info!(
            "LAN9118 (ID_REV {=u32:#010x}) MAC {=u8:02x}-{=u8:02x}-{=u8:02x}-{=u8:02x}-{=u8:02x}-{=u8:02x} on IRQ {=u16}, {}/{=u8} via {}, reassembly up to {=usize} B; embassy-net, tick-less",
            id_rev,
            m0,
            m1,
            m2,
            m3,
            m4,
            m5,
            Irq::Ethernet as u16,
            Ip::from(ADDR),
            PREFIX_LEN,
            Ip::from(GATEWAY),
            MAX_REASSEMBLED_UDP
        );
        Ok(Jobs {
            runner,
            stack,
            mode,
            seed,
        })
    }

    fn spawn(spawner: Spawner, jobs: Jobs) {
        let Jobs {
            runner,
            stack,
            mode,
            seed,
        } = jobs;
        // Each task has a pool of one and is spawned once: these cannot fail.
        let (Ok(net), Ok(job)) = (net_task(runner), job_task(stack, mode, seed)) else {
            fail(Failure::Spawn)
        };
        spawner.spawn(net);
        spawner.spawn(job);
    }

    #[embassy_executor::task]
    async fn net_task(mut runner: Runner<'static, Nic>) -> ! {
        runner.run().await
    }

    #[embassy_executor::task]
    async fn job_task(stack: Stack<'static>, mode: Mode<'static>, seed: u64) {
        let socket = UdpSocket::new(
            stack,
            RX_META.take(),
            RX_BYTES.take(),
            TX_META.take(),
            TX_BYTES.take(),
        );
        match mode {
            Mode::Serve => fail(serve(socket, seed).await),
            Mode::Client { server, message } => {
                let result = client(socket, server, message).await;
                log_drops(&Counters::default());
                match result {
                    Ok(()) => exit(EXIT_SUCCESS),
                    Err(failure) => fail(failure),
                }
            }
        }
    }

    // ---------------------------------------------------------------- the two roles

    /// Answers every request on UDP 6666; returns only on a failure.
    async fn serve(socket: UdpSocket<'static>, seed: u64) -> Failure {
        let socket = match Unconnected::bind(socket, ECHO_PORT) {
            Ok(socket) => socket,
            Err(_) => return Failure::Bind,
        };
        let mut server = asynch::Server::new(socket, ResponderConfig::default())
            .with_seed(seed)
            .with_destinations(destinations);
        defmt::info!("serving on {}:{=u16}", Ip::from(ADDR), ECHO_PORT);
        let mut buf = [0u8; SERVER_BUF];
        let mut report = Report {
            logged: 0,
            next: embassy_time::Instant::now(),
        };
        loop {
            // `next` awaits only the receive: cancelling it at the deadline loses nothing.
            let next =
                embassy_time::with_deadline(report.next, server.next(&EmbassyClock, &mut buf))
                    .await;
            match next {
                Ok(Ok((rx, Decision::Reply(_)))) => defmt::info!(
                    "{=usize} B from {}: replied \"Your data was {=usize} bytes\"",
                    rx.len,
                    Sock(rx.from),
                    rx.len
                ),
                Ok(Ok((rx, Decision::Drop(why)))) => defmt::warn!(
                    "{=usize} B from {}: dropped ({})",
                    rx.len,
                    Sock(rx.from),
                    why
                ),
                Ok(Err(e)) => {
                    log_drops(server.counters());
                    return e.into();
                }
                Err(embassy_time::TimeoutError) => {}
            }
            report.poll(server.counters());
        }
    }

    // ---------------------------------------------------------------- drop counters

    /// Logs the counters of frames and datagrams lost, and why, in the polled firmware's
    /// line: the NIC's (`lan9118::Counters`) and the server's (its drops by the core's
    /// `DropReason`), then what arrived and what was answered. Not here, because
    /// embassy-net keeps its smoltcp (0.13) to itself: the reassembly's losses (the polled
    /// firmware's `frag_*` and `reassembly_timeouts`, counted by a smoltcp 0.14 device
    /// wrapper) and datagrams its socket queue had no room for.
    fn log_drops(server: &Counters) {
        let chip = NIC.counters().unwrap_or_default();
        defmt::info!(
            "drops: chip_rx_dropped={=u32} rx_errors={=u32} fifo_resyncs={=u32} runts={=u32} oversize={=u32}{} send_failed={=u64} tx_dropped={=u32} tx_errors={=u32} (rx_frames={=u32} received={=u64} replied={=u64})",
            chip.rx_dropped,
            chip.rx_errors,
            chip.rx_resyncs,
            chip.rx_runts,
            chip.rx_oversize,
            Drops(server),
            server.send_failed,
            chip.tx_dropped,
            chip.tx_errors,
            chip.rx_frames,
            server.received,
            server.replied
        );
    }

    /// Logs the drop counters every `REPORT_EVERY` if they changed since the last line.
    struct Report {
        /// The sum of the counters last logged (wrapping): each only grows, so any
        /// change moves it.
        logged: u32,
        /// When to look next.
        next: embassy_time::Instant,
    }

    impl Report {
        fn poll(&mut self, server: &Counters) {
            let now = embassy_time::Instant::now();
            if now < self.next {
                return;
            }
            self.next = now + REPORT_EVERY;
            let chip = NIC.counters().unwrap_or_default();
            // Truncated: a change of the sum by exactly 2^32 in `REPORT_EVERY` is out of
            // reach.
            let sum = chip
                .moved()
                .wrapping_add((server.received + server.send_failed) as u32);
            if sum != self.logged {
                self.logged = sum;
                log_drops(server);
            }
        }
    }

    /// Where a datagram that reached `local` from `remote` was sent, by 10.0.2.0/24: the
    /// firmware's own address, or a broadcast (the limited one, the subnet's, a group),
    /// whose source may be on the link or not (the broadcast guard answers neither).
    fn destinations(local: SocketAddr, remote: SocketAddr) -> Destination {
        let (IpAddr::V4(to), IpAddr::V4(from)) = (local.ip(), remote.ip()) else {
            return Destination::Unknown;
        };
        let mask = u32::MAX << (32 - PREFIX_LEN);
        let on_link = |ip: Ipv4Addr| u32::from(ip) & mask == u32::from(ADDR) & mask;
        let subnet_broadcast = u32::from(ADDR) | !mask;
        if to == ADDR {
            Destination::Unicast
        } else if to.is_broadcast() || to.is_multicast() || u32::from(to) == subnet_broadcast {
            Destination::Broadcast {
                source_on_link: on_link(from),
            }
        } else {
            Destination::Unknown
        }
    }

    /// Sends `message` to `server` on the default retry schedule (the core's async client).
    async fn client(
        socket: UdpSocket<'static>,
        server: SocketAddrV4,
        message: &[u8],
    ) -> Result<(), Failure> {
        let to = SocketAddr::V4(server);
        let socket = Connected::connect(socket, to).map_err(Failure::Socket)?;
        let mut client = asynch::Client::new(socket, to);
        let clock = EmbassyClock;
        let start = clock.now();
        defmt::info!("sending {=usize} B to {}", message.len(), Sock(to));
        let policy = RetryPolicy::default();
        let request = client.request(&clock, &policy, message, |event| {
            if let ClientEvent::Sent { attempt, at } = *event
                && attempt > 1
            {
                defmt::info!(
                    "no reply yet; attempt {=u32} at +{=u32} ms",
                    attempt,
                    ms(at - start)
                );
            }
        });
        let outcome = embassy_time::with_timeout(CLIENT_LIMIT, request)
            .await
            .map_err(|_| Failure::Stalled)??;
        match outcome {
            Outcome::Reply(r) => {
                defmt::info!(
                    "reply from {}: \"Your data was {=u16} bytes\", rtt {=u32} us{=str}, attempt {=u32}, {=u32} ms in all",
                    Sock(to),
                    r.count,
                    u32::try_from(r.rtt.as_micros()).unwrap_or(u32::MAX),
                    if r.rtt_ambiguous { " (ambiguous)" } else { "" },
                    r.attempts,
                    ms(r.elapsed)
                );
                Ok(())
            }
            Outcome::GaveUp(g) => {
                defmt::warn!(
                    "no reply from {} after {=u32} attempts in {=u32} ms",
                    Sock(to),
                    g.attempts,
                    ms(g.elapsed)
                );
                Err(Failure::NoReply)
            }
        }
    }

    fn ms(d: Duration) -> u32 {
        // Not `as_millis`: u128 arithmetic costs flash on a Cortex-M.
        u32::try_from(d.as_secs()).map_or(u32::MAX, |s| {
            s.saturating_mul(1000).saturating_add(d.subsec_millis())
        })
    }

    // ---------------------------------------------------------------- the end

    /// Ends the run with exit status 1, saying why (a client that got no reply has said so).
    fn fail(failure: Failure) -> ! {
        if !matches!(failure, Failure::NoReply) {
            defmt::error!("failed: {}", failure);
            if let Failure::Cmdline(_) = failure {
                defmt::error!("usage: -append serve, or -append 'client HOST:PORT MESSAGE'");
            }
        }
        exit(EXIT_FAILURE)
    }

    /// Ends the run with exit status 1 (a fault or an unexpected interrupt, logged).
    pub fn exit_failure() -> ! {
        exit(EXIT_FAILURE)
    }

    /// No panic-probe: its `udf` leaves QEMU hung instead of exiting non-zero. The message
    /// is left out: formatting it links `core::fmt`; the location says where to look.
    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        match info.location() {
            Some(at) => defmt::error!("panic at {=str}:{=u32}", at.file(), at.line()),
            None => defmt::error!("panic"),
        }
        exit(EXIT_FAILURE)
    }

    fn exit(status: debug::ExitStatus) -> ! {
        debug::exit(status);
        // Only reached without a semihosting host (e.g. real hardware, no debugger).
        loop {
            cortex_m::asm::wfi();
        }
    }
}
