//! The network firmware: Cortex-M4F (`thumbv7em-none-eabihf`) under QEMU `mps2-an386`, on
//! the board's LAN9118 Ethernet controller, logging with defmt over semihosting. Run it
//! with `scripts/qemu-net.sh`.
//!
//! smoltcp holds 10.0.2.15/24 with gateway 10.0.2.2 (QEMU user networking's defaults) on
//! our polled LAN9118 driver. The boot command line (QEMU `-append`, read through
//! semihosting) picks the role, see `udp_echo_firmware_example::cmdline`:
//! - nothing or `serve`: the core's server answers on UDP 6666, until QEMU is stopped;
//! - `client HOST:PORT MESSAGE`: the core's client sends MESSAGE with the default retry
//!   schedule and logs the reply; exit status 0 on a reply, 1 when it gave up.
//!
//! **Time** comes from the LAN9118's FREE_RUN counter (25 MHz, 40 ns resolution), extended
//! to 64 bits by counting its wraps (`clock::WrapCounter`): one register read gives the
//! instant, and time stays right however late a tick is handled. SysTick serves only to
//! wake the core, at `TICK_HZ`; counting its interrupts would give 1 ms resolution and
//! lose time whenever interrupts were masked.
//!
//! **Sleep.** Between rounds the core sleeps in `WFI`; each SysTick interrupt wakes it
//! and it looks (two register reads) whether a frame waits or the deadline (the earliest of
//! the interface's next timer, `clock::iface_wake`, the driver's `Wake` and, serving, the
//! drop report's next look) has come, and else sleeps again. The NIC's interrupt is not used (the driver is polled), so a frame
//! waits up to one tick.
//!
//! **Drops.** Nothing is lost without a count: every 2 s while they change, and when the
//! firmware stops, one `drops:` line gives the NIC's counters (RX_DROP, error frames, FIFO
//! resyncs, runts, oversize, unsent frames), the reassembly watch's (`FragmentWatch`:
//! datagrams too large, refused while the one reassembly slot was taken, timed out), the
//! server's drops by reason and its unsent replies, and what arrived and was answered.
//! smoltcp takes in one frame per round, so its socket queue never overflows (it would drop
//! without a word). What no counter sees: frames smoltcp drops as not a request (not for
//! this address, bad checksums or headers, unknown protocols). smoltcp never gives up on a
//! neighbour, so a reply to an on-link address that never answers ARP would hold the
//! later ones forever: each round ends with the adapter's `NalStack::unstick`, which
//! empties a queue that has not moved for 100 ms (`stuck_purges`, with the bytes and
//! received datagrams lost with it).
//!
//! **Guards.** The server is the core's with the default `ResponderConfig`, so the
//! per-source rate limit is on; its table is keyed with the boot instant, the one varying
//! input there is. Both drivers get the adapter's `CAPS` (true receive lengths).
//!
//! **Memory.** No heap and no `unsafe` here (the driver's register module has it all).
//! The interface (with smoltcp's 4 KB reassembly buffer), the driver (two 1.5 KB frame
//! buffers) and the socket payload live in `.bss`; only the socket slot table (under
//! 300 bytes, not all-zero) is in `.data`.
//!
//! Built for the host (`cargo build --workspace`), this file is a stub that says how to
//! build it: the package's dependencies are all gated on `target_os = "none"`.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "net-firmware is firmware: build it with --target thumbv7em-none-eabihf \
         --profile firmware (see scripts/qemu-net.sh)"
    );
    std::process::exit(2);
}

/// Wake-ups per second of the sleeping core (SysTick); also the longest a received frame
/// waits before it is looked at.
#[cfg(target_os = "none")]
const TICK_HZ: u32 = 1000;

#[cfg(target_os = "none")]
mod firmware {
    use core::mem::MaybeUninit;
    use core::net::{SocketAddr, SocketAddrV4};
    use core::sync::atomic::{AtomicU32, Ordering};
    use core::time::Duration;

    use cortex_m as _; // its critical-section impl backs defmt-semihosting
    use cortex_m::peripheral::syst::SystClkSource;
    use cortex_m_rt::{ExceptionFrame, entry, exception};
    use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
    use defmt_semihosting as _; // the global defmt logger
    use static_cell::{ConstStaticCell, StaticCell};
    use udp_echo_core::{
        ClientError, ClientEvent, Counters, Decision, ExchangeError, Instant, Outcome,
        RequestError, ResponderConfig, RetryPolicy, Server, ServerError, Shell, Wake,
    };
    use udp_echo_firmware_example::board::{
        self, ADDR, ECHO_PORT, GATEWAY, PREFIX_LEN, REASSEMBLY_TIMEOUT, SERVER_BUF,
    };
    use udp_echo_firmware_example::clock::{self, WrapCounter};
    use udp_echo_firmware_example::cmdline::{self, CmdlineError, Mode};
    use udp_echo_firmware_example::frag::{FragmentWatch, MAX_REASSEMBLED_UDP};
    use udp_echo_firmware_example::lan9118::{self, Board, InitError, Lan9118, Mmio};
    use udp_echo_firmware_example::nal::StuckCounts;
    use udp_echo_firmware_example::show::{Drops, Ip, Sock};
    use udp_echo_firmware_example::smoltcp::iface::Interface;
    use udp_echo_firmware_example::{CAPS, NalBuffers, NalError, NalSockets, UdpSocket};

    use super::TICK_HZ;

    /// The core clock of the MPS2 AN386 image (SysTick counts it).
    const CPU_HZ: u32 = 25_000_000;

    /// The command line: the kernel's path, a command and a client's message.
    const CMDLINE: usize = 1024;
    /// A client run ends here at the latest whatever happens (its schedule ends at 3.1 s).
    const CLIENT_LIMIT: Duration = Duration::from_secs(10);
    /// The drop counters are logged at most this often, while they change.
    const REPORT_EVERY: Duration = Duration::from_secs(2);

    type Nic = FragmentWatch<Lan9118<Mmio>>;
    type Stack = board::Stack<'static>;

    // Payload, driver and interface in `.bss`; the slot table in `.data` (not all-zero).
    static SOCKET_SLOTS: ConstStaticCell<board::Sockets<'static>> =
        ConstStaticCell::new(NalSockets::new());
    static SOCKET_BYTES: ConstStaticCell<board::Buffers> = ConstStaticCell::new(NalBuffers::new());
    static NIC: StaticCell<Nic> = StaticCell::new();
    static IFACE: StaticCell<Interface> = StaticCell::new();

    /// Milliseconds since the NIC's reset, for log timestamps.
    static NOW_MS: AtomicU32 = AtomicU32::new(0);
    defmt::timestamp!("{=u32:ms}", NOW_MS.load(Ordering::Relaxed));

    // ---------------------------------------------------------------- network and time

    /// The sockets, and the machine around them.
    struct Net {
        stack: Stack,
        machine: Machine,
    }

    /// The interface, the NIC and the clock: everything but the sockets, so that a driver
    /// loop can take the stack while its shell holds the machine.
    struct Machine {
        iface: &'static mut Interface,
        nic: &'static mut Nic,
        clock: WrapCounter,
        /// The instant of the current round.
        now: Instant,
        /// The FREE_RUN count at boot (40 ns ticks since the NIC's reset), the one varying
        /// input there is: seeds smoltcp, the first ephemeral port and the server's
        /// per-source table.
        seed: u64,
        /// The socket queues the adapter emptied ([`NalStack::unstick`]), as of this round.
        stuck: StuckCounts,
    }

    impl Net {
        fn new() -> Result<Self, Failure> {
            let regs = Mmio::take(Board::Mps2An386).ok_or(Failure::AlreadyStarted)?;
            let lan = Lan9118::new(regs).map_err(Failure::Nic)?;
            let (mac, id_rev) = (lan.mac(), lan.id_rev());
            let nic = NIC.init(FragmentWatch::new(lan));
            let raw = nic.inner_mut().free_run();

            let now = clock::from_ticks(u64::from(raw), lan9118::FREE_RUN_HZ);
            let config = board::config(mac, u64::from(raw));
            let iface = IFACE.init(Interface::new(config, &mut *nic, clock::to_net(now)));
            if board::configure(iface).is_err() {
                defmt::warn!("no room for the default route: only 10.0.2.0/24 is reachable");
            }
            nic.set_reassembly_timeout(REASSEMBLY_TIMEOUT);
            let stack = board::stack(SOCKET_SLOTS.take(), SOCKET_BYTES.take(), u64::from(raw));
            defmt::info!(
                "LAN9118 (ID_REV {=u32:#010x}) MAC {}, {}/{=u8} via {}, reassembly up to {=usize} B",
                id_rev,
                mac,
                Ip::from(ADDR),
                PREFIX_LEN,
                Ip::from(GATEWAY),
                MAX_REASSEMBLED_UDP
            );
            Ok(Net {
                stack,
                machine: Machine {
                    iface,
                    nic,
                    clock: WrapCounter::new(),
                    now,
                    seed: u64::from(raw),
                    stuck: StuckCounts::default(),
                },
            })
        }

        /// [`Machine::poll`] with these sockets.
        fn poll(&mut self) {
            self.machine.poll(&mut self.stack);
        }

        /// [`Machine::sleep`] with these sockets.
        fn sleep(&mut self, wake: Wake) {
            self.machine.sleep(&self.stack, wake);
        }
    }

    impl Machine {
        /// Reads the clock (one register read).
        fn read_clock(&mut self) -> Instant {
            let raw = self.nic.inner_mut().free_run();
            let now = clock::from_ticks(self.clock.extend(raw), lan9118::FREE_RUN_HZ);
            NOW_MS.store(ms(now - Instant::ZERO), Ordering::Relaxed);
            now
        }

        /// Starts a round: reads the clock, lets smoltcp take in **one** frame and send
        /// what the sockets of `stack` hold. One frame per round, so that the driver reads
        /// each datagram before the next comes in: smoltcp drops, without a word, a
        /// datagram that finds the socket's queue (`META` slots) full, which a round that
        /// took in a whole FIFO of requests would do.
        fn poll(&mut self, stack: &mut Stack) {
            self.now = self.read_clock();
            board::poll(self.iface, &mut *self.nic, stack, clock::to_net(self.now));
            self.stuck = stack.stuck();
        }

        /// Sleeps until a frame waits or `wake` (or the interface's own next timer) is
        /// due, waking on each SysTick to look.
        fn sleep(&mut self, stack: &Stack, wake: Wake) {
            let wake = board::wake(&mut *self.iface, stack, self.now, wake);
            let until = wake.deadline(self.now);
            loop {
                if self.nic.inner_mut().rx_pending() {
                    return;
                }
                let now = self.read_clock();
                if until.is_some_and(|at| now >= at) {
                    return;
                }
                cortex_m::asm::wfi();
            }
        }
    }

    // ---------------------------------------------------------------- drop counters

    /// Logs every counter of a frame or datagram lost on the way in or out, and why, in
    /// one line: the NIC's (`lan9118::Counters`), the reassembly watch's
    /// (`FragmentCounts`) and the server's (`udp_echo_core::Counters`: its drops by the
    /// core's `DropReason`, named as the enum is, and unsent replies), then what arrived
    /// and what was answered.
    fn log_drops(machine: &Machine, server: &Counters) {
        let chip = machine.nic.inner().counters();
        let frag = machine.nic.counts();
        defmt::info!(
            "drops: chip_rx_dropped={=u32} rx_errors={=u32} fifo_resyncs={=u32} runts={=u32} oversize={=u32} frag_oversized={=u32} frag_busy={=u32} reassembly_timeouts={=u32}{} send_failed={=u64} stuck_purges={=u32} stuck_bytes={=u32} stuck_rx_lost={=u32} tx_dropped={=u32} tx_errors={=u32} (rx_frames={=u32} received={=u64} replied={=u64})",
            chip.rx_dropped,
            chip.rx_errors,
            chip.rx_resyncs,
            chip.rx_runts,
            chip.rx_oversize,
            frag.oversized,
            frag.busy,
            frag.timed_out,
            Drops(server),
            server.send_failed,
            machine.stuck.purges,
            machine.stuck.tx_bytes,
            machine.stuck.rx_lost,
            chip.tx_dropped,
            chip.tx_errors,
            chip.rx_frames,
            server.received,
            server.replied
        );
    }

    /// Logs the drop counters every `REPORT_EVERY` if they changed since the last line.
    /// The serve loop wakes for it then whatever happens, which also lets smoltcp (and
    /// the reassembly watch) free an expired reassembly slot without waiting for a frame.
    struct Report {
        /// The sum of the counters last logged (wrapping): each only grows, so any
        /// change moves it.
        logged: u32,
        /// When to look next.
        next: Instant,
    }

    impl Report {
        fn new() -> Self {
            Report {
                logged: 0,
                next: Instant::ZERO,
            }
        }

        /// Logs the counters if the time has come and they changed; returns when to look
        /// again.
        fn poll(&mut self, machine: &Machine, server: &Counters) -> Wake {
            if machine.now >= self.next {
                self.next = machine.now + REPORT_EVERY;
                let chip = machine.nic.inner().counters();
                let frag = machine.nic.counts();
                let sum = [
                    chip.moved(),
                    frag.oversized,
                    frag.busy,
                    frag.timed_out,
                    machine.stuck.purges,
                ]
                .into_iter()
                .fold(
                    // Truncated: a change of the sum by exactly 2^32 in `REPORT_EVERY`
                    // is out of reach.
                    (server.received + server.send_failed) as u32,
                    u32::wrapping_add,
                );
                if sum != self.logged {
                    self.logged = sum;
                    log_drops(machine, server);
                }
            }
            Wake::At(self.next)
        }
    }

    fn ms(d: Duration) -> u32 {
        // Not `as_millis`: u128 arithmetic costs flash on a Cortex-M.
        u32::try_from(d.as_secs()).map_or(u32::MAX, |s| {
            s.saturating_mul(1000).saturating_add(d.subsec_millis())
        })
    }

    // ---------------------------------------------------------------- the two roles

    /// Answers every request on UDP 6666; returns only on a stack failure.
    fn serve(net: &mut Net) -> Failure {
        let config = ResponderConfig::default();
        let mut server = match Server::bind(&mut net.stack, ECHO_PORT, config) {
            // `CAPS`: the NAL reports true lengths, so a 32-byte head counts any request.
            // The per-source limit's table is keyed with the boot instant (`Net::seed`).
            Ok(server) => server.with_caps(CAPS).with_seed(net.machine.seed),
            Err(e) => return e.into(),
        };
        defmt::info!("serving on {}:{=u16}", Ip::from(ADDR), ECHO_PORT);
        let mut buf = [0u8; SERVER_BUF];
        let mut report = Report::new();
        loop {
            net.poll();
            let wake =
                server.poll(
                    &mut net.stack,
                    &mut buf,
                    net.machine.now,
                    |rx, decision| match decision {
                        Decision::Reply(_) => defmt::info!(
                            "{=usize} B from {}: replied \"Your data was {=usize} bytes\"",
                            rx.len,
                            Sock(rx.from),
                            rx.len
                        ),
                        Decision::Drop(why) => {
                            defmt::warn!(
                                "{=usize} B from {}: dropped ({})",
                                rx.len,
                                Sock(rx.from),
                                why
                            )
                        }
                    },
                );
            match wake {
                Ok(wake) => {
                    let wake = wake.min(report.poll(&net.machine, server.counters()));
                    net.sleep(wake);
                }
                Err(e) => {
                    log_drops(&net.machine, server.counters());
                    return e.into();
                }
            }
        }
    }

    /// Sends `message` to `server` on the default retry schedule (the core's `request`).
    fn client(net: &mut Net, server: SocketAddrV4, message: &[u8]) -> Result<Outcome, Failure> {
        let server = SocketAddr::V4(server);
        let mut shell = Rounds {
            machine: &mut net.machine,
            server,
            len: message.len(),
            start: None,
        };
        udp_echo_core::request(
            &mut net.stack,
            CAPS,
            server,
            &RetryPolicy::default(),
            message,
            &mut shell,
        )
        .map_err(|e| match e {
            RequestError::Client(e) => e.into(),
            RequestError::Shell(failure) => failure,
        })
    }

    /// The client's [`Shell`]: "now" is the instant of the current round; a wait sleeps
    /// ([`Machine::sleep`]) and starts the next round ([`Machine::poll`]). The first `now`
    /// starts the first round. A run that reaches `CLIENT_LIMIT` stops as
    /// [`Failure::Stalled`].
    struct Rounds<'m> {
        machine: &'m mut Machine,
        server: SocketAddr,
        /// The message's length, for the log.
        len: usize,
        /// The first round's instant: the schedule starts at the first poll, in it.
        start: Option<Instant>,
    }

    impl Shell<Stack> for Rounds<'_> {
        type Error = Failure;

        fn now(&mut self, stack: &mut Stack) -> Instant {
            if self.start.is_none() {
                self.machine.poll(stack);
                self.start = Some(self.machine.now);
                defmt::info!("sending {=usize} B to {}", self.len, Sock(self.server));
            }
            self.machine.now
        }

        fn sleep(
            &mut self,
            stack: &mut Stack,
            _: &UdpSocket,
            now: Instant,
            wake: Wake,
        ) -> Result<(), Failure> {
            if now - self.start.unwrap_or(now) >= CLIENT_LIMIT {
                return Err(Failure::Stalled);
            }
            self.machine.sleep(stack, wake);
            self.machine.poll(stack);
            Ok(())
        }

        fn on_event(&mut self, event: &ClientEvent) {
            if let ClientEvent::Sent { attempt, at } = *event
                && attempt > 1
            {
                defmt::info!(
                    "no reply yet; attempt {=u32} at +{=u32} ms",
                    attempt,
                    ms(at - self.start.unwrap_or(at))
                );
            }
        }
    }

    // ---------------------------------------------------------------- run

    /// Why the firmware stopped with exit status 1.
    #[derive(defmt::Format)]
    enum Failure {
        /// The LAN9118 did not come up.
        Nic(InitError),
        /// The NIC's registers or the core peripherals were already handed out (a second
        /// init).
        AlreadyStarted,
        /// Semihosting gave no command line (or one longer than `CMDLINE` bytes).
        NoCmdline,
        /// The command line is not `serve` or `client HOST:PORT MESSAGE`.
        Cmdline(CmdlineError),
        /// The socket failed (in the client or server driver, or closing it).
        Stack(NalError),
        /// The client's exchange could not start (the message is too long).
        Exchange(ExchangeError),
        /// The client ran past `CLIENT_LIMIT` without an outcome.
        Stalled,
        /// The client gave up (not a malfunction: the server did not answer).
        NoReply,
    }

    // The drivers' errors, flattened: each wrapper would be one more `Format` impl in flash.
    impl From<ClientError<NalError>> for Failure {
        fn from(e: ClientError<NalError>) -> Self {
            match e {
                ClientError::Stack(e) => Failure::Stack(e),
                ClientError::Exchange(e) => Failure::Exchange(e),
            }
        }
    }

    impl From<ServerError<NalError>> for Failure {
        fn from(e: ServerError<NalError>) -> Self {
            match e {
                ServerError::Stack(e) => Failure::Stack(e),
            }
        }
    }

    fn run() -> Result<(), Failure> {
        let mut line = [MaybeUninit::<u8>::uninit(); CMDLINE];
        let line = semihosting::sys::arm_compat::sys_get_cmdline_uninit(&mut line)
            .map_err(|_| Failure::NoCmdline)?;
        let mode = cmdline::parse(line).map_err(Failure::Cmdline)?;

        let mut core = cortex_m::Peripherals::take().ok_or(Failure::AlreadyStarted)?;
        core.SYST.set_clock_source(SystClkSource::Core);
        core.SYST.set_reload(CPU_HZ / TICK_HZ - 1);
        core.SYST.clear_current();
        core.SYST.enable_interrupt();
        core.SYST.enable_counter();

        let mut net = Net::new()?;
        match mode {
            Mode::Serve => Err(serve(&mut net)),
            Mode::Client { server, message } => {
                let outcome = client(&mut net, server, message);
                // The run ends here, whatever happened: the counters of the whole run.
                log_drops(&net.machine, &Counters::default());
                match outcome? {
                    Outcome::Reply(r) => {
                        defmt::info!(
                            "reply from {}: \"Your data was {=u16} bytes\", rtt {=u32} us{=str}, attempt {=u32}, {=u32} ms in all",
                            Sock(server.into()),
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
                            Sock(server.into()),
                            g.attempts,
                            ms(g.elapsed)
                        );
                        Err(Failure::NoReply)
                    }
                }
            }
        }
    }

    #[entry]
    fn main() -> ! {
        match run() {
            Ok(()) => exit(EXIT_SUCCESS),
            Err(Failure::NoReply) => exit(EXIT_FAILURE),
            Err(failure) => {
                defmt::error!("failed: {}", failure);
                if let Failure::Cmdline(_) = failure {
                    defmt::error!("usage: -append serve, or -append 'client HOST:PORT MESSAGE'");
                }
                exit(EXIT_FAILURE)
            }
        }
    }

    /// Only wakes the core from `WFI`: the main loop reads the time from the NIC.
    #[exception]
    fn SysTick() {}

    /// A bus fault (no device at an address, say) ends the run instead of hanging it.
    #[exception]
    unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
        defmt::error!("hard fault at pc {=u32:#010x}", frame.pc());
        exit(EXIT_FAILURE)
    }

    /// No panic-probe: its `udf` leaves QEMU hung instead of exiting non-zero. The message
    /// is left out: formatting it links `core::fmt` (2.5 KB of flash); the location says
    /// where to look.
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
