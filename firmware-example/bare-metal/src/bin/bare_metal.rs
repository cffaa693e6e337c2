//! The bare-metal example: Cortex-M4F (`thumbv7em-none-eabihf`) under QEMU `mps2-an386`,
//! logging with defmt over semihosting. Run it with `scripts/qemu-run.sh`.
//!
//! It proves that the core runs unchanged on an embedded stack: the core's `Server` and
//! `Client` (and a `Discovery` broadcast) talk over smoltcp 0.14 (one `Interface`,
//! 10.0.0.1/24, `Medium::Ip`) on the library's no-alloc `Loopback` device, behind its
//! `FaultyLink`, a `phy::Device` wrapper that loses chosen datagrams so that the retry
//! path runs. The exchanges and what each must show are the library's `selftest` (tested
//! on the host); this file is the main loop and the exit plumbing.
//!
//! **Memory.** Nothing is allocated and nothing is `unsafe`. The large buffers, the
//! socket payload bytes (2 UDP sockets × 2 × 1024 bytes) and the link (2 frames of 1052
//! bytes), start as zeros and live in `ConstStaticCell`s: in `.bss` (no image in flash),
//! built at compile time, never copied through the stack. The socket and metadata slots
//! (472 bytes) do not start as zeros (smoltcp's empty-slot markers), so their `static`
//! sits in `.data`, its image in flash: building them at boot instead (`StaticCell::init`)
//! measured 536 bytes more code, more than the image. Had the payload shared their `static`
//! (`NalStorage`), all 4.5 KB would be in `.data` (and flash). The 1000-byte request lives
//! on `main`'s stack. The report gives the stack depth measured from `main`'s entry.
//!
//! **Virtual clock.** The guest has nothing to wait for in real time: the only peer is
//! itself. So the main loop never spins: after each round (poll the interface, then the
//! drivers) it *jumps* the clock to the next wake, the earliest of the drivers' `Wake`s
//! and the interface's (`clock::iface_wake`), or stays at `now` while the link holds a
//! frame (the RX interrupt would be pending). That instant is exactly what a real firmware
//! would program a timer for before `WFI`. Log timestamps are this virtual time in
//! seconds, so the retry schedule (0/100/300/700/1500 ms, give up at 3100 ms) can be read
//! straight off the log. The loopback has no latency, so every RTT is 0 µs.
//!
//! `run` checks every exchange (`selftest::check`): the right count in each reply; with
//! the first 2 requests lost, success on attempt 3 with sends at 0/100/300 ms; against a
//! port where nothing listens, giving up at exactly 3100 ms after 5 sends. The outcome is
//! QEMU's exit status
//! (semihosting `exit`): 0 when `run` succeeds, 1 on `Err` or panic, so CI needs no log
//! scraping.
//!
//! Built for the host (`cargo build --workspace`), this file is a stub that says how to
//! build it: the package's dependencies are all gated on `target_os = "none"`.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "bare-metal is firmware: build it with --target thumbv7em-none-eabihf \
         --profile firmware (see scripts/qemu-run.sh)"
    );
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod firmware {
    use core::net::{Ipv4Addr, SocketAddr};
    use core::sync::atomic::{AtomicU32, Ordering};
    use core::time::Duration;

    use cortex_m as _; // its critical-section impl backs defmt-semihosting
    use cortex_m_rt::entry;
    use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
    use defmt_semihosting as _; // the global defmt logger
    use heapless::Vec;
    use smoltcp::iface::{Config, Interface};
    use smoltcp::phy::Medium;
    use smoltcp::wire::{HardwareAddress, IpCidr};
    use static_cell::ConstStaticCell;
    use udp_echo_core::{
        BroadcastError, ClientError, ClientEvent, Counters, Decision, Discovery, DiscoveryEvent,
        Instant, Outcome, RequestError, ResponderConfig, RetryPolicy, Server, ServerError, Shell,
        Wake,
    };
    use udp_echo_firmware_example::selftest::{
        self, CASES, Case, MAX_REQUEST, MAX_SENDS, Mismatch, Trace, ms,
    };
    use udp_echo_firmware_example::{
        CAPS, FaultyLink, Loopback, NalBuffers, NalError, NalSockets, NalStack, UdpSocket, clock,
    };

    /// The interface's address; client, server and discovery all live on it.
    const ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PREFIX_LEN: u8 = 24;
    /// 10.0.0.0/24's broadcast address, for the discovery.
    const BROADCAST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 255);

    /// UDP sockets: the server, and one client or the discovery at a time.
    const SOCKETS: usize = 2;
    /// Datagrams queued per socket and direction.
    const META: usize = 4;
    /// Payload bytes per socket and direction: holds the largest request (1000 bytes;
    /// smoltcp resets an empty ring, so a 1000-byte datagram always fits 1024 bytes).
    const BUF: usize = 1024;
    /// The loopback's IP MTU (`Medium::Ip`: no link header): a full socket buffer plus
    /// the IPv4 and UDP headers. smoltcp drops larger packets (no fragmentation).
    const IP_MTU: usize = BUF + 20 + 8;
    /// Frames the loopback holds (a NIC ring). One at a time is ever queued here (the
    /// report's `peak_queue`): `iface.poll` takes frames in before it sends, and an ICMP
    /// error made on the way in is taken in by the same poll.
    const FRAMES: usize = 2;
    /// Receive buffer of the server: the NAL reports true lengths (`CAPS`), so the server
    /// needs only the head of a datagram (to spot reply-shaped ones), never its payload.
    const SERVER_BUF: usize = 32;
    /// A bound on main-loop rounds per exchange, so a logic error ends the run instead of
    /// hanging it (a clean exchange takes 5, the silent one 16).
    const MAX_ROUNDS: u32 = 200;

    type Stack = NalStack<'static, SOCKETS>;
    type Link = FaultyLink<Loopback<FRAMES, IP_MTU>>;

    // Payload and link in `.bss`, the slots in `.data` (see the module docs).
    static SOCKET_SLOTS: ConstStaticCell<NalSockets<'static, SOCKETS, META>> =
        ConstStaticCell::new(NalSockets::new());
    static SOCKET_BYTES: ConstStaticCell<NalBuffers<SOCKETS, BUF>> =
        ConstStaticCell::new(NalBuffers::new());
    static LINK: ConstStaticCell<Link> =
        ConstStaticCell::new(FaultyLink::new(Loopback::new(Medium::Ip)));

    /// The stack pointer at `main`'s entry and the lowest seen on the deepest paths (every
    /// frame inside `iface.poll`, through the link's observer; the server's callback):
    /// their difference is the stack the run needed, measured without painting memory.
    static STACK_TOP: AtomicU32 = AtomicU32::new(0);
    static STACK_LOW: AtomicU32 = AtomicU32::new(u32::MAX);

    fn note_stack() {
        STACK_LOW.fetch_min(cortex_m::register::msp::read(), Ordering::Relaxed);
    }

    /// Virtual milliseconds since boot, for log timestamps.
    static VIRTUAL_MS: AtomicU32 = AtomicU32::new(0);
    defmt::timestamp!("{=u32:ms}", VIRTUAL_MS.load(Ordering::Relaxed));

    // ---------------------------------------------------------------- the main loop

    /// The network: the sockets, and the machine around them.
    struct Net {
        stack: Stack,
        machine: Machine,
    }

    /// The interface, the link and the virtual clock: everything but the sockets, so that
    /// a driver loop can take the stack while its shell holds the machine.
    struct Machine {
        iface: Interface,
        link: &'static mut Link,
        now: Instant,
    }

    impl Net {
        fn new() -> Self {
            let link = LINK.take();
            link.observe(|_, _| note_stack());
            let mut iface = Interface::new(
                Config::new(HardwareAddress::Ip),
                &mut *link,
                clock::to_net(Instant::ZERO),
            );
            iface.update_ip_addrs(|addrs| {
                // The list has room for at least one address.
                let _ = addrs.push(IpCidr::new(ADDR.into(), PREFIX_LEN));
            });
            Net {
                stack: NalStack::from_parts(SOCKET_SLOTS.take(), SOCKET_BYTES.take(), ADDR),
                machine: Machine {
                    iface,
                    link,
                    now: Instant::ZERO,
                },
            }
        }

        fn now(&self) -> Instant {
            self.machine.now
        }

        /// [`Machine::poll`] with these sockets.
        fn poll(&mut self) {
            self.machine.poll(&mut self.stack);
        }

        /// [`Machine::sleep`] with these sockets.
        fn sleep(&mut self, wake: Wake) -> bool {
            self.machine.sleep(&self.stack, wake)
        }
    }

    impl Machine {
        /// Lets smoltcp move frames between the link and the sockets of `stack`.
        fn poll(&mut self, stack: &mut Stack) {
            self.iface.poll(
                clock::to_net(self.now),
                &mut *self.link,
                stack.sockets_mut(),
            );
        }

        /// "Sleeps" until the next wake: the earlier of the interface's and the drivers'
        /// `wake`, or not at all if a frame is waiting (its RX interrupt is pending). Time
        /// jumps there; a real firmware would set a timer for that instant and `WFI`.
        /// `false`: nothing can ever wake the loop again.
        fn sleep(&mut self, stack: &Stack, wake: Wake) -> bool {
            let wake = if self.link.inner().is_empty() {
                wake.min(clock::iface_wake(
                    &mut self.iface,
                    self.now,
                    stack.sockets(),
                ))
            } else {
                Wake::Now
            };
            let Some(at) = wake.deadline(self.now) else {
                return false;
            };
            self.now = self.now.max(at);
            VIRTUAL_MS.store(ms(self.now - Instant::ZERO), Ordering::Relaxed);
            true
        }
    }

    /// Answers whatever reached the server at `now`, logging at debug level.
    fn serve(stack: &mut Stack, now: Instant, server: &mut Server<Stack>) -> Result<Wake, Failure> {
        let mut buf = [0u8; SERVER_BUF];
        server
            .poll(stack, &mut buf, now, |rx, decision| match decision {
                Decision::Reply(_) => {
                    note_stack();
                    defmt::debug!("  server: {=usize} bytes from {}: replied", rx.len, rx.from)
                }
                Decision::Drop(why) => {
                    defmt::warn!(
                        "  server: {=usize} bytes from {}: dropped ({})",
                        rx.len,
                        rx.from,
                        why
                    )
                }
            })
            .map_err(Failure::Server)
    }

    // ---------------------------------------------------------------- the exchanges

    /// Asks the server at `to` for `request`'s count on the default retry policy (the
    /// core's `request`: connect, run, close), driving the server and the network in the
    /// same loop: the client's shell is the main loop's round.
    #[inline(never)] // one copy of the client loop, however many cases call it
    fn exchange(
        net: &mut Net,
        server: &mut Server<Stack>,
        to: SocketAddr,
        request: &[u8],
        case: &'static str,
    ) -> Result<Trace, Failure> {
        let start = net.now();
        let lost_before = net.machine.link.lost();
        let mut rounds = Rounds {
            machine: &mut net.machine,
            server,
            case,
            start,
            sends: Vec::new(),
            rounds: 0,
            served: Wake::OnDatagram,
        };
        // The first round opens here; `request` polls in it, as in every later one.
        rounds.open_round(&mut net.stack)?;
        let policy = RetryPolicy::default();
        let result =
            udp_echo_core::request(&mut net.stack, CAPS, to, &policy, request, &mut rounds);
        let outcome = result.map_err(|e| match e {
            RequestError::Client(e) => Failure::Client(e),
            RequestError::Shell(failure) => failure,
        })?;
        let mut trace = Trace::new(outcome);
        trace.sends = rounds.sends;
        trace.rounds = rounds.rounds;
        trace.took = net.now() - start;
        trace.lost = net.machine.link.lost() - lost_before;
        Ok(trace)
    }

    /// The client's [`Shell`] here: "now" is the virtual clock; a wait ends the round
    /// ([`Machine::sleep`]) and opens the next one: the interface polled, the server served,
    /// as every round of the main loop starts.
    struct Rounds<'n> {
        machine: &'n mut Machine,
        server: &'n mut Server<Stack>,
        case: &'static str,
        start: Instant,
        /// Send times in ms from `start`.
        sends: Vec<u32, MAX_SENDS>,
        /// Rounds opened so far.
        rounds: u32,
        /// The server's wake, from the current round.
        served: Wake,
    }

    impl Rounds<'_> {
        /// Polls the interface and serves at the machine's clock.
        fn open_round(&mut self, stack: &mut Stack) -> Result<(), Failure> {
            self.rounds += 1;
            self.machine.poll(stack);
            self.served = serve(stack, self.machine.now, self.server)?;
            Ok(())
        }
    }

    impl Shell<Stack> for Rounds<'_> {
        type Error = Failure;

        fn now(&mut self, _: &mut Stack) -> Instant {
            self.machine.now
        }

        fn sleep(
            &mut self,
            stack: &mut Stack,
            _: &UdpSocket,
            _: Instant,
            wake: Wake,
        ) -> Result<(), Failure> {
            if !self.machine.sleep(stack, self.served.min(wake)) {
                return Err(Failure::Stalled { case: self.case });
            }
            if self.rounds == MAX_ROUNDS {
                return Err(Failure::Runaway { case: self.case });
            }
            self.open_round(stack)
        }

        fn on_event(&mut self, event: &ClientEvent) {
            if let ClientEvent::Sent { at, .. } = *event {
                let _ = self.sends.push(ms(at - self.start));
            }
        }
    }

    fn log(case: &Case, trace: &Trace) {
        match trace.outcome {
            Outcome::Reply(r) => defmt::info!(
                "{=str}: {=usize} B to :{=u16} -> \"Your data was {=u16} bytes\", attempt {=u32}, rtt {=u64} us{=str}, sends at {} ms, {=u32} lost on purpose, {=u32} rounds",
                case.name,
                case.len,
                case.port,
                r.count,
                r.attempts,
                r.rtt.as_micros() as u64,
                if r.rtt_ambiguous { " (ambiguous)" } else { "" },
                &trace.sends[..],
                trace.lost,
                trace.rounds
            ),
            Outcome::GaveUp(g) => defmt::info!(
                "{=str}: {=usize} B to :{=u16} -> gave up after {=u32} sends ({=u32} unsent) at +{=u32} ms, sends at {} ms, {=u32} rounds",
                case.name,
                case.len,
                case.port,
                g.attempts,
                g.unsent,
                ms(g.elapsed),
                &trace.sends[..],
                trace.rounds
            ),
        }
    }

    /// Broadcasts a discovery on the subnet and expects the server to answer.
    fn discover(net: &mut Net, server: &mut Server<Stack>) -> Result<SocketAddr, Failure> {
        const REQUEST: &[u8] = b"anyone?";
        let to = SocketAddr::from((BROADCAST, selftest::ECHO_PORT));
        let mut discovery: Discovery<'_, Stack, 2> =
            Discovery::start(&mut net.stack, 0, to, REQUEST, Duration::from_millis(200))
                .map_err(Failure::Discovery)?
                .with_caps(CAPS);
        let start = net.now();
        let mut result = Err(Failure::Runaway { case: "discovery" });
        'rounds: for _ in 0..MAX_ROUNDS {
            net.poll();
            let served = serve(&mut net.stack, net.machine.now, server)?;
            let wake = loop {
                match discovery
                    .poll(&mut net.stack, net.machine.now)
                    .map_err(Failure::Discovery)?
                {
                    DiscoveryEvent::Found(found) => defmt::info!(
                        "  discovery: {} answered after {=u64} us",
                        found.addr,
                        found.rtt.as_micros() as u64
                    ),
                    DiscoveryEvent::Wait(wake) => break wake,
                    DiscoveryEvent::Done => {
                        result = match discovery.survey().found() {
                            [one] => Ok(one.addr),
                            found => Err(Failure::Discovered { found: found.len() }),
                        };
                        break 'rounds;
                    }
                    _ => {}
                }
            };
            if !net.sleep(served.min(wake)) {
                result = Err(Failure::Stalled { case: "discovery" });
                break;
            }
        }
        discovery.close(&mut net.stack).map_err(Failure::Stack)?;
        let addr = result?;
        defmt::info!(
            "discovery: {=usize} B to {} -> found {} after a {=u32} ms window",
            REQUEST.len(),
            to,
            addr,
            ms(net.now() - start)
        );
        if addr != SocketAddr::from((ADDR, selftest::ECHO_PORT)) {
            return Err(Failure::Discovered { found: 1 });
        }
        Ok(addr)
    }

    // ---------------------------------------------------------------- run

    /// What a successful run proves; logged before exiting 0.
    #[derive(defmt::Format)]
    struct Report {
        /// Request/reply exchanges whose checks passed (replies and the give-up alike).
        exchanges: u32,
        /// Requests the client sent, first sends and retries.
        sends: u32,
        /// Requests the wire lost on purpose.
        lost: u32,
        /// Frames the link carried (requests, replies, ICMP errors, the broadcast).
        frames: u32,
        /// The most frames the loopback held at once (it has room for `FRAMES`).
        peak_queue: usize,
        /// What the server saw and did.
        server: Counters,
        /// The server the discovery found.
        discovered: SocketAddr,
        /// Virtual time at the end, in ms.
        virtual_ms: u32,
        /// Stack used below `main`'s entry, in bytes (see `STACK_LOW`).
        stack_bytes: u32,
    }

    /// Why a run failed; logged before exiting 1.
    #[derive(defmt::Format)]
    enum Failure {
        /// Setting up or closing a socket failed.
        Stack(NalError),
        /// The client driver failed.
        Client(ClientError<NalError>),
        /// The server driver failed.
        Server(ServerError<NalError>),
        /// The discovery driver failed.
        Discovery(BroadcastError<NalError>),
        /// Nothing could ever wake the main loop again.
        Stalled { case: &'static str },
        /// The main loop ran `MAX_ROUNDS` rounds without an outcome.
        Runaway { case: &'static str },
        /// An exchange did not show what its case expects.
        Check {
            case: &'static str,
            mismatch: Mismatch,
        },
        /// The discovery found another set of servers.
        Discovered { found: usize },
    }

    fn run() -> Result<Report, Failure> {
        defmt::info!(
            "udp-echo bare-metal: core client + server over smoltcp 0.14 on a no-alloc loopback, {}/{=u8}, virtual clock (timestamps: virtual seconds)",
            ADDR,
            PREFIX_LEN
        );
        let mut net = Net::new();
        // `CAPS`: the NAL returns true lengths, so a 32-byte head counts any request.
        let mut server = Server::bind(
            &mut net.stack,
            selftest::ECHO_PORT,
            ResponderConfig::default(),
        )
        .map_err(Failure::Server)?
        .with_caps(CAPS);

        let mut request = [0u8; MAX_REQUEST];
        for (i, b) in request.iter_mut().enumerate() {
            *b = b'a' + (i % 26) as u8;
        }

        let (mut exchanges, mut sends) = (0, 0);
        for case in &CASES {
            let server_addr = SocketAddr::from((ADDR, case.port));
            net.machine.link.lose_next(case.port, case.lose.into());
            let trace = exchange(
                &mut net,
                &mut server,
                server_addr,
                &request[..case.len],
                case.name,
            )?;
            log(case, &trace);
            selftest::check(case, &trace).map_err(|mismatch| Failure::Check {
                case: case.name,
                mismatch,
            })?;
            exchanges += 1;
            sends += trace.sends.len() as u32;
        }

        let discovered = discover(&mut net, &mut server)?;
        Ok(Report {
            exchanges,
            sends,
            lost: net.machine.link.lost(),
            frames: net.machine.link.frames(),
            peak_queue: net.machine.link.inner().peak(),
            server: *server.counters(),
            discovered,
            virtual_ms: ms(net.now() - Instant::ZERO),
            stack_bytes: STACK_TOP
                .load(Ordering::Relaxed)
                .saturating_sub(STACK_LOW.load(Ordering::Relaxed)),
        })
    }

    #[entry]
    fn main() -> ! {
        STACK_TOP.store(cortex_m::register::msp::read(), Ordering::Relaxed);
        match run() {
            Ok(report) => {
                defmt::info!("done: {}", report);
                exit(EXIT_SUCCESS)
            }
            Err(failure) => {
                defmt::error!("failed: {}", failure);
                exit(EXIT_FAILURE)
            }
        }
    }

    /// No panic-probe: its `udf` leaves QEMU hung instead of exiting non-zero.
    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        match info.location() {
            Some(at) => defmt::error!(
                "panic at {=str}:{=u32}: {}",
                at.file(),
                at.line(),
                defmt::Display2Format(&info.message())
            ),
            None => defmt::error!("panic: {}", defmt::Display2Format(&info.message())),
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
