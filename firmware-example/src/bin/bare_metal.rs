//! The bare-metal example: Cortex-M4F (`thumbv7em-none-eabihf`) under QEMU `mps2-an386`,
//! logging with defmt over semihosting. Run it with `scripts/qemu-run.sh`.
//!
//! It proves that the core runs unchanged on an embedded stack: the core's `Server` and
//! `Client` (and a `Discovery` broadcast) talk over smoltcp 0.14 (one `Interface`,
//! 10.0.0.1/24, `Medium::Ip`) on the no-alloc `Loopback` device, behind `FaultyLink`, a
//! `phy::Device` wrapper that loses chosen datagrams so that the retry path runs.
//!
//! **Memory.** Nothing is allocated and nothing is `unsafe`. The large buffers, the
//! socket payload bytes (2 UDP sockets × 2 × 1024 bytes) and the link (2 frames of 1052
//! bytes), start as zeros and live in `ConstStaticCell`s: in `.bss` (no image in flash),
//! built at compile time, never copied through the stack. The socket and metadata slots
//! (472 bytes) do not start as zeros (smoltcp's empty-slot markers), so their `static` sits
//! in `.data`, its image in flash: building them at boot instead (`StaticCell::init`)
//! measured 516 bytes of code, more than the image. Had the payload shared their `static`,
//! all 4.5 KB would be in `.data` (and flash), as it was before `NalBuffers`. The
//! 1000-byte request lives on `main`'s stack. The report gives the stack depth measured
//! from `main`'s entry.
//!
//! **Virtual clock.** The guest has nothing to wait for in real time: the only peer is
//! itself. So the main loop never spins: after each round (poll the interface, then the
//! drivers) it *jumps* the clock to the next wake, `clock::next_wake` of smoltcp's
//! `poll_delay` and the drivers' `Wake`s, or stays at `now` while the link holds a frame
//! (the RX interrupt would be pending). That instant is exactly what a real firmware
//! would program a timer for before `WFI`. Log timestamps are this virtual time in
//! seconds, so the retry schedule (0/100/300/700/1500 ms, give up at 3100 ms) can be read
//! straight off the log. The loopback has no latency, so every RTT is 0 µs.
//!
//! `run` checks every exchange: the right count in each reply; with the first 2 requests
//! lost, success on attempt 3 with sends at 0/100/300 ms; against a port where nothing
//! listens, giving up at exactly 3100 ms after 5 sends. The outcome is QEMU's exit status
//! (semihosting `exit`): 0 when `run` succeeds, 1 on `Err` or panic, so CI needs no log
//! scraping.
//!
//! Built for the host (e.g. `--all-features`), this file is a stub that says how to build
//! it, so feature-unified host builds never need the Cortex-M crates.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "bare-metal is firmware: build it with --target thumbv7em-none-eabihf \
         --no-default-features --features bare-metal (see scripts/qemu-run.sh)"
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
    use heapless::{Deque, Vec};
    use smoltcp::iface::{Config, Interface};
    use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
    use smoltcp::time::Instant as NetInstant;
    use smoltcp::wire::{HardwareAddress, IpCidr, IpProtocol, Ipv4Packet, UdpPacket};
    use static_cell::ConstStaticCell;
    use udp_echo_core::driver::{BroadcastError, ClientError, ServerError};
    use udp_echo_core::exchange::Outcome;
    use udp_echo_core::responder::Counters;
    use udp_echo_core::{
        Client, Decision, Discovery, Instant, Poll, ResponderConfig, RetryPolicy, Server, Wake,
    };
    use udp_echo_firmware_example::clock;
    use udp_echo_firmware_example::loopback::{self, Loopback};
    use udp_echo_firmware_example::{NalBuffers, NalError, NalSockets, NalStack};

    /// The interface's address; client, server and discovery all live on it.
    const ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PREFIX_LEN: u8 = 24;
    /// 10.0.0.0/24's broadcast address, for the discovery.
    const BROADCAST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 255);
    const ECHO_PORT: u16 = 6666;
    /// Nothing listens here (and smoltcp's ICMP "port unreachable" never reaches a UDP
    /// socket), so the client runs its whole schedule.
    const SILENT_PORT: u16 = 7777;

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
    /// Receive buffer of the server: the NAL reports true lengths, so the server needs
    /// only the head of a datagram (to spot reply-shaped ones), never its whole payload.
    const SERVER_BUF: usize = 32;
    /// The largest request sent.
    const MAX_REQUEST: usize = 1000;
    /// A bound on main-loop rounds per exchange, so a logic error ends the run instead of
    /// hanging it (a clean exchange takes 5, the silent one 16).
    const MAX_ROUNDS: u32 = 200;

    type Stack = NalStack<'static, SOCKETS>;

    // Payload and link in `.bss`, the slots in `.data` (see the module docs).
    static SOCKET_SLOTS: ConstStaticCell<NalSockets<'static, SOCKETS, META>> =
        ConstStaticCell::new(NalSockets::new());
    static SOCKET_BYTES: ConstStaticCell<NalBuffers<SOCKETS, BUF>> =
        ConstStaticCell::new(NalBuffers::new());
    static LINK: ConstStaticCell<FaultyLink> = ConstStaticCell::new(FaultyLink::new());

    /// The stack pointer at `main`'s entry and the lowest seen on the deepest paths (a
    /// transmit inside `iface.poll`, the link's receive, the server's callback): their
    /// difference is the stack the run needed, measured without painting memory.
    static STACK_TOP: AtomicU32 = AtomicU32::new(0);
    static STACK_LOW: AtomicU32 = AtomicU32::new(u32::MAX);

    fn note_stack() {
        STACK_LOW.fetch_min(cortex_m::register::msp::read(), Ordering::Relaxed);
    }

    /// Virtual milliseconds since boot, for log timestamps.
    static VIRTUAL_MS: AtomicU32 = AtomicU32::new(0);
    defmt::timestamp!("{=u32:ms}", VIRTUAL_MS.load(Ordering::Relaxed));

    // ---------------------------------------------------------------- the fault layer

    /// The loopback with a fault: it loses the next `n` UDP datagrams to a chosen port
    /// ([`arm`](Self::arm)), as a lossy wire would. Everything else passes untouched.
    ///
    /// The verdict is taken when smoltcp transmits (the only moment the frame can be read
    /// without copying it) and queued next to the frame; on receive, frames judged lost
    /// are taken off the loopback unread. Both queues hold `FRAMES` and the loopback drops
    /// a frame sent while full, exactly when the verdict queue refuses its verdict, so
    /// the two stay in step.
    struct FaultyLink {
        inner: Loopback<FRAMES, IP_MTU>,
        wire: Wire,
    }

    struct Wire {
        /// One verdict per frame in the loopback, in the same order (`true`: lose it).
        verdicts: Deque<bool, FRAMES>,
        lose_port: u16,
        lose_left: u8,
        /// Frames sent, and lost on purpose, since boot.
        frames: u32,
        lost: u32,
        /// The most frames the loopback held at once.
        peak: usize,
    }

    impl FaultyLink {
        const fn new() -> Self {
            Self {
                inner: Loopback::new(Medium::Ip),
                wire: Wire {
                    verdicts: Deque::new(),
                    lose_port: 0,
                    lose_left: 0,
                    frames: 0,
                    lost: 0,
                    peak: 0,
                },
            }
        }

        /// Loses the next `n` UDP datagrams sent to `port`.
        fn arm(&mut self, port: u16, n: u8) {
            self.wire.lose_port = port;
            self.wire.lose_left = n;
        }

        /// A frame waits to be received: on hardware, the RX interrupt is pending and
        /// `WFI` returns at once.
        fn rx_pending(&self) -> bool {
            !self.wire.verdicts.is_empty()
        }
    }

    impl Wire {
        fn judge(&mut self, frame: &[u8]) -> bool {
            note_stack();
            self.frames += 1;
            if self.lose_left == 0 || udp_dst_port(frame) != Some(self.lose_port) {
                return false;
            }
            self.lose_left -= 1;
            self.lost += 1;
            defmt::info!(
                "  wire: lost a {=usize}-byte IP packet to :{=u16} on purpose ({=u8} more to lose)",
                frame.len(),
                self.lose_port,
                self.lose_left
            );
            true
        }
    }

    /// The destination port of an IPv4 UDP packet (`Medium::Ip` frames are bare IP).
    fn udp_dst_port(frame: &[u8]) -> Option<u16> {
        let ip = Ipv4Packet::new_checked(frame).ok()?;
        if ip.next_header() != IpProtocol::Udp {
            return None;
        }
        Some(UdpPacket::new_checked(ip.payload()).ok()?.dst_port())
    }

    impl Device for FaultyLink {
        type RxToken<'a> = loopback::RxToken<IP_MTU>;
        type TxToken<'a> = FaultTx<'a>;

        fn receive(&mut self, now: NetInstant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
            note_stack();
            while self.wire.verdicts.front() == Some(&true) {
                self.wire.verdicts.pop_front();
                let _lost = self.inner.receive(now);
            }
            let (rx, tx) = self.inner.receive(now)?;
            self.wire.verdicts.pop_front();
            Some((
                rx,
                FaultTx {
                    inner: tx,
                    wire: &mut self.wire,
                },
            ))
        }

        fn transmit(&mut self, now: NetInstant) -> Option<Self::TxToken<'_>> {
            Some(FaultTx {
                inner: self.inner.transmit(now)?,
                wire: &mut self.wire,
            })
        }

        fn capabilities(&self) -> DeviceCapabilities {
            self.inner.capabilities()
        }
    }

    struct FaultTx<'a> {
        inner: loopback::TxToken<'a, FRAMES, IP_MTU>,
        wire: &'a mut Wire,
    }

    impl phy::TxToken for FaultTx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let FaultTx { inner, wire } = self;
            inner.consume(len, |frame| {
                let r = f(frame);
                let lose = wire.judge(frame);
                // Full: the loopback drops this frame too (see `FaultyLink`).
                let _ = wire.verdicts.push_back(lose);
                wire.peak = wire.peak.max(wire.verdicts.len());
                r
            })
        }
    }

    // ---------------------------------------------------------------- the main loop

    /// The network: interface, link, sockets, and the virtual clock.
    struct Net {
        iface: Interface,
        link: &'static mut FaultyLink,
        stack: Stack,
        now: Instant,
    }

    impl Net {
        fn new() -> Self {
            let link = LINK.take();
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
                iface,
                link,
                stack: NalStack::from_parts(SOCKET_SLOTS.take(), SOCKET_BYTES.take(), ADDR),
                now: Instant::ZERO,
            }
        }

        /// Lets smoltcp move frames between the link and the sockets.
        fn poll(&mut self) {
            self.iface.poll(
                clock::to_net(self.now),
                &mut *self.link,
                self.stack.sockets_mut(),
            );
        }

        /// "Sleeps" until the next wake: the earlier of smoltcp's next timer and the
        /// drivers' `wake`, or not at all if a frame is waiting. Time jumps there; a real
        /// firmware would set a timer for that instant and `WFI`. `false`: nothing can
        /// ever wake the loop again.
        fn sleep(&mut self, wake: Wake) -> bool {
            if self.link.rx_pending() {
                return true;
            }
            let delay = self
                .iface
                .poll_delay(clock::to_net(self.now), self.stack.sockets());
            let Some(at) = clock::next_wake(self.now, delay, wake) else {
                return false;
            };
            self.now = self.now.max(at);
            VIRTUAL_MS.store(ms(self.now - Instant::ZERO), Ordering::Relaxed);
            true
        }
    }

    /// The earlier of two wakes.
    fn earliest(a: Wake, b: Wake) -> Wake {
        match (a.at, b.at) {
            (Some(a), Some(b)) => Wake::at(a.min(b)),
            (a, b) => Wake { at: a.or(b) },
        }
    }

    fn ms(d: Duration) -> u32 {
        u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
    }

    /// Answers whatever reached the server, logging at debug level.
    fn serve(net: &mut Net, server: &mut Server<Stack>) -> Result<Wake, Failure> {
        let mut buf = [0u8; SERVER_BUF];
        server
            .poll(
                &mut net.stack,
                &mut buf,
                net.now,
                |rx, decision| match decision {
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
                },
            )
            .map_err(Failure::Server)
    }

    // ---------------------------------------------------------------- the exchanges

    /// One exchange to run and what it must show.
    struct Case {
        name: &'static str,
        port: u16,
        len: usize,
        /// Requests the wire loses before one gets through.
        lose: u8,
        /// Send times, in ms from the first send.
        sends: &'static [u32],
        /// `None`: a reply with the right count; `Some(ms)`: gives up this long after
        /// the first send.
        gives_up_at: Option<u32>,
    }

    const CASES: [Case; 5] = [
        Case {
            name: "empty",
            port: ECHO_PORT,
            len: 0,
            lose: 0,
            sends: &[0],
            gives_up_at: None,
        },
        Case {
            name: "2 lost",
            port: ECHO_PORT,
            len: 5,
            lose: 2,
            sends: &[0, 100, 300],
            gives_up_at: None,
        },
        Case {
            name: "200 B",
            port: ECHO_PORT,
            len: 200,
            lose: 0,
            sends: &[0],
            gives_up_at: None,
        },
        Case {
            name: "1000 B",
            port: ECHO_PORT,
            len: MAX_REQUEST,
            lose: 0,
            sends: &[0],
            gives_up_at: None,
        },
        Case {
            name: "silent",
            port: SILENT_PORT,
            len: 12,
            lose: 0,
            sends: &[0, 100, 300, 700, 1500],
            gives_up_at: Some(3100),
        },
    ];

    /// What one exchange did.
    struct Trace {
        outcome: Outcome,
        /// Send times, in ms from the first send, as the client made them.
        sends: Vec<u32, 8>,
        /// Main-loop rounds (wake-ups), the first included.
        rounds: u32,
        /// Virtual time from the first send to the outcome.
        took: Duration,
        lost: u32,
    }

    /// Runs `request` through `client` on the default retry policy, driving the server
    /// and the network in the same loop.
    fn exchange(
        net: &mut Net,
        server: &mut Server<Stack>,
        client: &mut Client<Stack>,
        request: &[u8],
        case: &'static str,
    ) -> Result<Trace, Failure> {
        let start = net.now;
        let lost_before = net.link.wire.lost;
        let mut ex = client
            .start(&RetryPolicy::default(), request, start)
            .map_err(Failure::Client)?;
        let mut sends = Vec::new();
        for round in 1..=MAX_ROUNDS {
            net.poll();
            let served = serve(net, server)?;
            let sent_before = ex.attempts();
            let pending = match client
                .poll(&mut net.stack, &mut ex, request, net.now)
                .map_err(Failure::Client)?
            {
                Poll::Ready(outcome) => {
                    return Ok(Trace {
                        outcome,
                        sends,
                        rounds: round,
                        took: net.now - start,
                        lost: net.link.wire.lost - lost_before,
                    });
                }
                Poll::Pending(wake) => wake,
            };
            for _ in sent_before..ex.attempts() {
                let _ = sends.push(ms(net.now - start));
            }
            if !net.sleep(earliest(served, pending)) {
                return Err(Failure::Stalled { case });
            }
        }
        Err(Failure::Runaway { case })
    }

    /// Checks `trace` against `case`.
    fn check(case: &Case, trace: &Trace) -> Result<(), Failure> {
        let name = case.name;
        let attempts = match (trace.outcome, case.gives_up_at) {
            (Outcome::Reply(r), None) => {
                if usize::from(r.count) != case.len {
                    return Err(Failure::WrongCount {
                        case: name,
                        sent: case.len,
                        got: r.count,
                    });
                }
                r.attempts
            }
            (Outcome::GaveUp(g), Some(at)) => {
                if ms(g.elapsed) != at || ms(trace.took) != at {
                    return Err(Failure::GaveUpAt {
                        case: name,
                        expected_ms: at,
                        got_ms: ms(trace.took),
                    });
                }
                g.attempts
            }
            (Outcome::Reply(r), Some(_)) => {
                return Err(Failure::UnexpectedReply {
                    case: name,
                    count: r.count,
                });
            }
            (Outcome::GaveUp(g), None) => {
                return Err(Failure::NoReply {
                    case: name,
                    attempts: g.attempts,
                });
            }
        };
        if attempts as usize != case.sends.len() {
            return Err(Failure::Attempts {
                case: name,
                expected: case.sends.len(),
                got: attempts,
            });
        }
        if trace.sends[..] != *case.sends {
            return Err(Failure::SendTimes {
                case: name,
                expected: case.sends,
                got: trace.sends.clone(),
            });
        }
        if trace.lost != u32::from(case.lose) {
            return Err(Failure::Lost {
                case: name,
                expected: case.lose,
                got: trace.lost,
            });
        }
        Ok(())
    }

    fn log(case: &Case, trace: &Trace) {
        match trace.outcome {
            Outcome::Reply(r) => defmt::info!(
                "{=str}: {=usize} B to :{=u16} -> \"Your data was {=u16} bytes\", attempt {=u32}, rtt {=u64} us{=str}, sends at {} ms, {=u32} rounds",
                case.name,
                case.len,
                case.port,
                r.count,
                r.attempts,
                r.rtt.as_micros() as u64,
                if r.rtt_ambiguous { " (ambiguous)" } else { "" },
                &trace.sends[..],
                trace.rounds
            ),
            Outcome::GaveUp(g) => defmt::info!(
                "{=str}: {=usize} B to :{=u16} -> gave up after {=u32} sends at +{=u32} ms, sends at {} ms, {=u32} rounds",
                case.name,
                case.len,
                case.port,
                g.attempts,
                ms(g.elapsed),
                &trace.sends[..],
                trace.rounds
            ),
        }
    }

    /// Broadcasts a discovery on the subnet and expects the server to answer.
    fn discover(net: &mut Net, server: &mut Server<Stack>) -> Result<SocketAddr, Failure> {
        const REQUEST: &[u8] = b"anyone?";
        let to = SocketAddr::from((BROADCAST, ECHO_PORT));
        let mut discovery: Discovery<Stack, 2> =
            Discovery::start(&mut net.stack, 0, to, REQUEST, Duration::from_millis(200))
                .map_err(Failure::Discovery)?;
        let start = net.now;
        let mut result = Err(Failure::Runaway { case: "discovery" });
        for _ in 0..MAX_ROUNDS {
            net.poll();
            let served = serve(net, server)?;
            let polled = discovery
                .poll(&mut net.stack, REQUEST, net.now, |found| {
                    defmt::info!(
                        "  discovery: {} answered after {=u64} us",
                        found.addr,
                        found.rtt.as_micros() as u64
                    )
                })
                .map_err(Failure::Discovery)?;
            let pending = match polled {
                Poll::Ready(found) => {
                    result = match found {
                        [one] => Ok(one.addr),
                        _ => Err(Failure::Discovered { found: found.len() }),
                    };
                    break;
                }
                Poll::Pending(wake) => wake,
            };
            if !net.sleep(earliest(served, pending)) {
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
            ms(net.now - start)
        );
        if addr != SocketAddr::from((ADDR, ECHO_PORT)) {
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
        /// A reply carried another count than the request's length.
        WrongCount {
            case: &'static str,
            sent: usize,
            got: u16,
        },
        /// The client gave up where a reply was due.
        NoReply { case: &'static str, attempts: u32 },
        /// A reply came where nothing listens.
        UnexpectedReply { case: &'static str, count: u16 },
        /// The client made another number of sends.
        Attempts {
            case: &'static str,
            expected: usize,
            got: u32,
        },
        /// The client sent at other (virtual) times.
        SendTimes {
            case: &'static str,
            expected: &'static [u32],
            got: Vec<u32, 8>,
        },
        /// The client gave up at another (virtual) time.
        GaveUpAt {
            case: &'static str,
            expected_ms: u32,
            got_ms: u32,
        },
        /// The fault layer lost another number of requests.
        Lost {
            case: &'static str,
            expected: u8,
            got: u32,
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
        let mut config = ResponderConfig::default();
        // The NAL returns true lengths, so a 32-byte head is enough to count any request.
        config.stack_reports_true_length = true;
        let mut server =
            Server::bind(&mut net.stack, ECHO_PORT, config).map_err(Failure::Server)?;

        let mut request = [0u8; MAX_REQUEST];
        for (i, b) in request.iter_mut().enumerate() {
            *b = b'a' + (i % 26) as u8;
        }

        let (mut exchanges, mut sends) = (0, 0);
        for case in &CASES {
            let server_addr = SocketAddr::from((ADDR, case.port));
            let mut client =
                Client::connect(&mut net.stack, server_addr).map_err(Failure::Client)?;
            net.link.arm(case.port, case.lose);
            let trace = exchange(
                &mut net,
                &mut server,
                &mut client,
                &request[..case.len],
                case.name,
            );
            client.close(&mut net.stack).map_err(Failure::Stack)?;
            let trace = trace?;
            log(case, &trace);
            check(case, &trace)?;
            exchanges += 1;
            sends += trace.sends.len() as u32;
        }

        let discovered = discover(&mut net, &mut server)?;
        Ok(Report {
            exchanges,
            sends,
            lost: net.link.wire.lost,
            frames: net.link.wire.frames,
            peak_queue: net.link.wire.peak,
            server: *server.counters(),
            discovered,
            virtual_ms: ms(net.now - Instant::ZERO),
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
