//! `no-panic`: a link-time proof that no panic of `udp-echo-core` is reachable.
//!
//! The image calls every public entry of the core (features `async` and `jitter`) on
//! inputs read from volatile memory, so the optimiser must keep every path the inputs can
//! take; the stack, sockets, shell and clock are the size images' stand-ins
//! (`udp_echo_sizes`), equally unpredictable. Its panic handler calls a function that
//! exists nowhere: if any panic survives optimisation, the link fails with
//! `undefined symbol: a_panic_path_is_reachable`. The async drivers are polled once each
//! (one executor step), not run with `block_on`. See README.md for why, for what this
//! proves and for what it does not.
//!
//! Nothing here is meant to run.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "no-panic is a link-time proof: build it with --target thumbv7em-none-eabihf --profile firmware (see firmware-example/no-panic/check.sh)"
    );
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod proof {
    use core::fmt::{self, Write as _};
    use core::future::Future;
    use core::hint::black_box;
    use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use core::task::Poll;
    use core::time::Duration;

    use embassy_futures::poll_once;
    use udp_echo_core::asynch;
    use udp_echo_core::embedded_nal::UdpClientStack;
    use udp_echo_core::wire::{self, Reply};
    use udp_echo_core::{
        BATCH, BLOCKED_FIRST_PAUSE, Broadcaster, Client, ClientEvent, Counters,
        DEFAULT_SOURCE_LIMIT, DEFAULT_SOURCES, Destination, Discovery, DiscoveryEvent, DropReason,
        Exchange, Factor, Instant, Jitter, Listener, REFLECTION_PORTS, RateLimit, Responder,
        ResponderConfig, RetryPolicy, Server, Shell, StackCaps, StackErrorKind, Survey, Wake, nb,
        request,
    };
    use udp_echo_sizes::{
        BYTES, Connected, Fault, MAILBOX, MailboxClock, MailboxShell, Stack, Unconnected, Volatile,
    };

    // ---- The panic handler under proof ----------------------------------------------

    #[cfg(not(feature = "locate"))]
    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        unsafe extern "Rust" {
            // Defined nowhere: a reachable call to it fails the link.
            fn a_panic_path_is_reachable() -> !;
        }
        // SAFETY: never runs: the image links only if the optimiser removed every call.
        unsafe { a_panic_path_is_reachable() }
    }

    #[cfg(feature = "locate")]
    udp_echo_sizes::halt_on_panic!();

    // ---- Unpredictable inputs -------------------------------------------------------

    /// Every read is a fresh volatile read: the optimiser can assume nothing about any
    /// value below, nor that two reads agree.
    static INPUT: Volatile<u64> = Volatile::new(0);

    fn any_u64() -> u64 {
        INPUT.get()
    }

    fn any_u32() -> u32 {
        any_u64() as u32
    }

    fn any_u16() -> u16 {
        any_u64() as u16
    }

    fn any_u8() -> u8 {
        any_u64() as u8
    }

    fn any_usize() -> usize {
        any_u64() as usize
    }

    fn any_bool() -> bool {
        any_u64() & 1 != 0
    }

    /// Any `Duration`, up to `Duration::MAX` (nanoseconds below a second: no carry, so
    /// `Duration::new` cannot panic here).
    fn any_duration() -> Duration {
        Duration::new(any_u64(), any_u32() % 1_000_000_000)
    }

    fn any_instant() -> Instant {
        match any_u8() % 3 {
            0 => Instant::from_micros(any_u64()),
            1 => Instant::from_millis(any_u64()),
            _ => MAILBOX.now(),
        }
    }

    /// Any address of either family: plain IPv4, IPv6 (with flow info and scope id),
    /// IPv4-mapped IPv6, or the mailbox's peer.
    fn any_addr() -> SocketAddr {
        let port = any_u16();
        match any_u8() % 4 {
            0 => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from_bits(any_u32()), port)),
            1 => {
                let bits = u128::from(any_u64()) << 64 | u128::from(any_u64());
                let ip = Ipv6Addr::from_bits(bits);
                SocketAddr::V6(SocketAddrV6::new(ip, port, any_u32(), any_u32()))
            }
            2 => {
                let ip = Ipv4Addr::from_bits(any_u32()).to_ipv6_mapped();
                SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0))
            }
            _ => MAILBOX.peer(),
        }
    }

    fn any_wake() -> Wake {
        match any_u8() % 3 {
            0 => Wake::Now,
            1 => Wake::At(any_instant()),
            _ => Wake::from(any_bool().then(any_instant)),
        }
    }

    fn any_limit() -> RateLimit {
        match any_u8() % 2 {
            0 => DEFAULT_SOURCE_LIMIT,
            _ => RateLimit {
                per_second: any_u32(),
                burst: any_u32(),
            },
        }
    }

    fn any_policy() -> RetryPolicy {
        let mut policy = RetryPolicy::default();
        if any_bool() {
            return policy;
        }
        policy.initial_wait = any_duration();
        policy.factor = if any_bool() {
            Factor::from_milli(any_u32())
        } else {
            Factor::integer(any_u32())
        };
        policy.max_wait = any_duration();
        policy.max_attempts = any_bool().then(any_u32);
        policy.deadline = any_bool().then(any_duration);
        policy.jitter = match any_u8() % 3 {
            0 => Jitter::None,
            1 => Jitter::Full,
            _ => Jitter::Equal,
        };
        policy
    }

    fn any_config() -> ResponderConfig {
        let mut config = if any_bool() {
            ResponderConfig::default()
        } else {
            ResponderConfig::permissive()
        };
        if any_bool() {
            config.block_port_zero = any_bool();
            config.block_reflection_ports = any_bool();
            config.block_replies = any_bool();
            config.source_limit = any_bool().then(any_limit);
            config.rate_limit = any_bool().then(any_limit);
            config.answer_broadcast = any_bool();
        }
        config
    }

    fn any_destination() -> Destination {
        match any_u8() % 3 {
            0 => Destination::Unknown,
            1 => Destination::Unicast,
            _ => Destination::Broadcast {
                source_on_link: any_bool(),
            },
        }
    }

    fn any_kind(_: &Fault) -> StackErrorKind {
        match any_u8() % 3 {
            0 => StackErrorKind::Refused,
            1 => StackErrorKind::Truncated,
            _ => StackErrorKind::Other,
        }
    }

    /// The caps a driver is told: none, the mailbox's, or any classification.
    fn any_caps() -> StackCaps<Fault> {
        match any_u8() % 3 {
            0 => StackCaps::default(),
            1 => MAILBOX.caps(),
            _ => {
                let caps = StackCaps::PLAIN.with_classifier(any_kind);
                if any_bool() {
                    caps.with_true_lengths()
                } else {
                    caps
                }
            }
        }
    }

    /// A buffer the size of a datagram's head, filled with any bytes.
    fn any_bytes() -> [u8; BYTES] {
        let mut bytes = [0; BYTES];
        for byte in &mut bytes {
            *byte = any_u8();
        }
        bytes
    }

    /// Any prefix of `buf`, of a length the optimiser cannot bound (not even by `buf`'s).
    fn any_prefix(buf: &[u8]) -> &[u8] {
        black_box(buf.get(..any_usize()).unwrap_or(buf))
    }

    fn any_prefix_mut(buf: &mut [u8]) -> &mut [u8] {
        let len = any_usize().min(buf.len());
        black_box(buf.split_at_mut(len).0)
    }

    // ---- Sinks: results go somewhere the optimiser cannot see through ---------------

    fn out<T>(value: T) {
        black_box(value);
    }

    /// Formats into the mailbox, byte by byte.
    struct Sink;

    impl fmt::Write for Sink {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for byte in s.bytes() {
                MAILBOX.report(u64::from(byte));
            }
            Ok(())
        }
    }

    /// One step of an executor: the future's output if one poll finishes it.
    fn step<F: Future>(future: F) -> Option<F::Output> {
        match poll_once(future) {
            Poll::Ready(output) => Some(output),
            Poll::Pending => None,
        }
    }

    fn show(value: &dyn fmt::Display) {
        let _ = write!(Sink, "{value}");
    }

    fn show_debug(value: &dyn fmt::Debug) {
        let _ = write!(Sink, "{value:?}");
    }

    /// A shell whose sleep may end the request (the mailbox's cannot fail).
    struct AnyShell;

    impl<S: UdpClientStack> Shell<S> for AnyShell {
        type Error = ();

        fn now(&mut self, stack: &mut S) -> Instant {
            MailboxShell.now(stack)
        }

        fn sleep(
            &mut self,
            stack: &mut S,
            socket: &S::UdpSocket,
            now: Instant,
            wake: Wake,
        ) -> Result<(), ()> {
            let Ok(()) = MailboxShell.sleep(stack, socket, now, wake);
            if any_bool() { Err(()) } else { Ok(()) }
        }

        fn on_event(&mut self, event: &ClientEvent) {
            out(event);
        }
    }

    // ---- The entries --------------------------------------------------------------

    #[cortex_m_rt::entry]
    fn main() -> ! {
        loop {
            match any_u8() % 15 {
                0 => wire_format(),
                1 => time(),
                2 => retry_policy(),
                3 => exchange(),
                4 => responder(),
                5 => survey(),
                6 => sync_client(),
                7 => sync_server(),
                8 => sync_listener(),
                9 => sync_broadcast(),
                10 => sync_discovery(),
                11 => async_client(),
                12 => async_server(),
                13 => async_listener(),
                _ => async_broadcast(),
            }
        }
    }

    fn wire_format() {
        out((
            wire::DEFAULT_PORT,
            wire::MAX_REQUEST_V4,
            wire::MAX_REQUEST_V6,
            wire::MAX_DATAGRAM,
            wire::MAX_REPLY_LEN,
        ));
        let reply = Reply::new(any_u16());
        out(reply.as_bytes());
        show(&reply);
        show_debug(&reply);
        out(reply == Reply::new(any_u16()));
        let bytes = any_bytes();
        let head = any_prefix(&bytes);
        match wire::parse_reply(head) {
            Ok(n) => out(n),
            Err(e) => show(&e),
        }
        out(wire::is_reply(head));
        let to = any_addr();
        out(wire::max_request(to));
        match wire::fits(to, any_usize()) {
            Ok(n) => out(n),
            Err(e) => show(&e),
        }
        out(wire::canonical(to));
        let ip = match any_u8() % 2 {
            0 => IpAddr::V4(Ipv4Addr::from_bits(any_u32())),
            _ => IpAddr::V6(Ipv6Addr::from_bits(u128::from(any_u64()))),
        };
        out(wire::canonical_ip(ip));
    }

    fn time() {
        let a = any_instant();
        let b = any_instant();
        let d = any_duration();
        out((a.as_micros(), a.as_millis(), Instant::ZERO));
        out(a.saturating_since(b));
        out(a.saturating_add(d));
        out(a + d);
        out(a - b);
        let mut c = a;
        c += d;
        out(c);
        show(&a);
        out(any_wake().min(any_wake()).deadline(any_instant()));
        out((BATCH, BLOCKED_FIRST_PAUSE));
    }

    fn retry_policy() {
        let policy = any_policy();
        match policy.validate() {
            Ok(()) => {}
            Err(e) => show(&e),
        }
        out(policy.next_wait(any_duration()));
        // Endless only for a policy `validate` rejects; harmless here (nothing runs).
        for wait in policy.waits() {
            out(wait);
        }
        for at in policy.send_times() {
            out(at);
        }
        out(policy.give_up_after());
        out(policy.factor.as_milli());
        show(&policy.factor);
        out(policy.jitter.apply(any_duration(), any_u32()));
    }

    fn exchange() {
        let mut ex = match Exchange::new(&any_policy(), any_addr(), any_usize()) {
            Ok(ex) if any_bool() => ex.with_seed(any_u32()),
            Ok(ex) => ex,
            Err(e) => return show(&e),
        };
        loop {
            let now = any_instant();
            match any_u8() % 9 {
                0 => out(ex.poll(now)),
                1 => ex.on_sent(now),
                2 => ex.on_send_blocked(now),
                3 => ex.on_send_refused(now),
                4 => {
                    let bytes = any_bytes();
                    let verdict = ex.on_datagram(now, any_addr(), any_usize(), any_prefix(&bytes));
                    out(verdict.words());
                    out(verdict);
                }
                5 => out(ex.on_unreadable(now).words()),
                6 => ex.on_refused(now),
                7 => out((ex.server(), ex.attempts(), ex.ignored(), ex.outcome())),
                _ => return,
            }
        }
    }

    fn responder() {
        let config = any_config();
        match any_u8() % 4 {
            0 => decide(Responder::new(config)),
            1 => decide(Responder::<0>::with_sources(config)),
            2 => decide(Responder::<1>::with_sources(config).with_seed(any_u64())),
            _ => decide(Responder::<5>::with_sources(config).with_seed(any_u64())),
        }
        out(REFLECTION_PORTS);
        out(DEFAULT_SOURCES);
    }

    fn decide<const N: usize>(mut responder: Responder<N>) {
        loop {
            let bytes = any_bytes();
            let (now, from, len, head) =
                (any_instant(), any_addr(), any_usize(), any_prefix(&bytes));
            match any_u8() % 6 {
                0 => out(responder.handle(now, from, len, head)),
                1 => out(responder.handle_to(now, from, any_destination(), len, head)),
                2 => out(responder.cut()),
                3 => responder.note_send_failed(),
                4 => out(responder.config()),
                _ => break,
            }
        }
        counters(responder.counters());
    }

    fn counters(counters: &Counters) {
        out((
            counters.received,
            counters.replied,
            counters.send_failed,
            counters.broadcast,
        ));
        out(counters.dropped());
        let reason = DropReason::ALL[any_usize() % DropReason::ALL.len()];
        out((counters.dropped_for(reason), reason.key(), reason.words()));
        show(&reason);
        for (reason, count) in counters.drops() {
            out((reason, count));
        }
        let mut sum = Counters::default();
        sum.add(counters);
        out(sum);
    }

    fn survey() {
        let (to, len, window) = (any_addr(), any_usize(), any_duration());
        match any_u8() % 3 {
            0 => judge(Survey::<0>::new(to, len, window)),
            1 => judge(Survey::<1>::new(to, len, window)),
            _ => judge(Survey::<4>::new(to, len, window)),
        }
    }

    fn judge<const N: usize>(survey: Result<Survey<N>, wire::TooLarge>) {
        let mut survey = match survey {
            Ok(survey) => survey,
            Err(e) => return show(&e),
        };
        loop {
            let now = any_instant();
            match any_u8() % 7 {
                0 => out(survey.poll(now)),
                1 => survey.on_sent(now),
                2 => survey.on_send_blocked(now),
                3 => {
                    let bytes = any_bytes();
                    out(survey.on_datagram(now, any_addr(), any_usize(), any_prefix(&bytes)));
                }
                4 => out(survey.on_unreadable(now)),
                5 => out((
                    survey.to(),
                    survey.deadline(),
                    survey.listening(),
                    survey.sent_at(),
                )),
                _ => break,
            }
        }
        out((survey.found(), survey.overflow(), survey.ignored()));
    }

    // ---- Sync drivers over the stand-in stack ---------------------------------------

    fn sync_client() {
        let stack = &mut Stack;
        let policy = any_policy();
        let mut buf = [0; BYTES];
        let bytes = MAILBOX.request(&mut buf);
        if any_bool() {
            let result = if any_bool() {
                request(
                    stack,
                    any_caps(),
                    any_addr(),
                    &policy,
                    bytes,
                    &mut MailboxShell,
                )
                .map_err(|e| show(&e))
            } else {
                request(stack, any_caps(), any_addr(), &policy, bytes, &mut AnyShell)
                    .map_err(|e| show(&e))
            };
            return out(result);
        }
        let client = match Client::connect(stack, any_addr()) {
            Ok(client) => client,
            Err(e) => return show(&e),
        };
        let caps = any_caps();
        show_debug(&caps);
        out(caps.kind(&Fault::Other));
        let mut client = client.with_caps(caps);
        out(client.socket());
        match client.start(&policy, bytes) {
            Ok(request) => {
                let mut request = if any_bool() {
                    request.with_seed(any_u32())
                } else {
                    request
                };
                if any_bool() {
                    match client.run(stack, &mut request, &mut AnyShell) {
                        Ok(outcome) => out(outcome),
                        Err(e) => show(&e),
                    }
                } else {
                    loop {
                        match client.poll(stack, &mut request, any_instant()) {
                            Ok(ClientEvent::Done(outcome)) => break out(outcome),
                            Ok(ClientEvent::Wait(wake)) => MAILBOX.wait(any_instant(), wake),
                            Ok(event) => out(event),
                            Err(e) => break show(&e),
                        }
                    }
                }
                out(request.exchange().attempts());
            }
            Err(e) => show(&e),
        }
        out(client.close(stack));
    }

    fn sync_server() {
        let stack = &mut Stack;
        let server = match Server::bind(stack, any_u16(), any_config()) {
            Ok(server) => server.with_caps(any_caps()),
            Err(e) => return show(&e),
        };
        let server = if any_bool() {
            server.with_seed(any_u64())
        } else {
            server
        };
        match any_u8() % 4 {
            0 => serve(stack, server),
            1 => serve(stack, server.with_sources::<0>()),
            2 => serve(stack, server.with_sources::<1>().with_seed(any_u64())),
            _ => serve(stack, server.with_sources::<5>()),
        }
    }

    fn serve<const N: usize>(stack: &mut Stack, mut server: Server<Stack, N>) {
        let mut buf = [0; BYTES];
        let buf = any_prefix_mut(&mut buf);
        loop {
            let now = any_instant();
            match server.poll(stack, buf, now, |datagram, decision| {
                out((datagram.from, datagram.len, datagram.head, datagram.at));
                out(decision);
            }) {
                Ok(wake) => MAILBOX.wait(now, wake),
                Err(e) => break show(&e),
            }
            if any_bool() {
                break;
            }
        }
        counters(server.counters());
        out(server.socket());
        out(server.close(stack));
    }

    fn sync_listener() {
        let stack = &mut Stack;
        let mut listener = match Listener::bind(stack, any_u16()) {
            Ok(listener) => listener.with_caps(any_caps()),
            Err(e) => return show(&e),
        };
        let mut buf = [0; BYTES];
        let buf = any_prefix_mut(&mut buf);
        loop {
            let now = any_instant();
            match listener.poll(stack, buf, now, |datagram| out(datagram)) {
                Ok(wake) => MAILBOX.wait(now, wake),
                Err(e) => break show(&e),
            }
            if any_bool() {
                break;
            }
        }
        out((listener.received(), listener.socket()));
        out(listener.close(stack));
    }

    fn sync_broadcast() {
        let stack = &mut Stack;
        let mut broadcaster = match Broadcaster::open(stack, any_u16()) {
            Ok(broadcaster) => broadcaster.with_caps(any_caps()),
            Err(e) => return show(&e),
        };
        let bytes = any_bytes();
        match broadcaster.send(stack, any_addr(), any_prefix(&bytes)) {
            Ok(()) | Err(nb::Error::WouldBlock) => {}
            Err(nb::Error::Other(e)) => show(&e),
        }
        out(broadcaster.socket());
        out(broadcaster.close(stack));
    }

    fn sync_discovery() {
        let bytes = any_bytes();
        let request = any_prefix(&bytes);
        match any_u8() % 3 {
            0 => discover::<0>(request),
            1 => discover::<1>(request),
            _ => discover::<4>(request),
        }
    }

    fn discover<const N: usize>(request: &[u8]) {
        let stack = &mut Stack;
        let discovery =
            Discovery::<_, N>::start(stack, any_u16(), any_addr(), request, any_duration());
        let mut discovery = match discovery {
            Ok(discovery) => discovery.with_caps(any_caps()),
            Err(e) => return show(&e),
        };
        loop {
            match discovery.poll(stack, any_instant()) {
                Ok(DiscoveryEvent::Done) => break,
                Ok(DiscoveryEvent::Wait(wake)) => MAILBOX.wait(any_instant(), wake),
                Ok(event) => out(event),
                Err(e) => break show(&e),
            }
        }
        out(discovery.survey().found());
        out(discovery.socket());
        out(discovery.close(stack));
    }

    // ---- Async drivers over the stand-in sockets, one executor step each -------------
    //
    // Each future is polled once (see README.md for why not `block_on`): every await in
    // the drivers may finish at once or stay pending, as the stand-ins read, so one poll
    // reaches every line of the drivers.

    fn async_client() {
        let policy = any_policy();
        let mut buf = [0; BYTES];
        let bytes = MAILBOX.request(&mut buf);
        let result = if any_bool() {
            step(asynch::request(
                Connected,
                any_addr(),
                &policy,
                bytes,
                &MailboxClock,
            ))
        } else {
            let mut client = asynch::Client::new(Connected, any_addr());
            // The clock by reference: `Clock for &C` too.
            let result = step(client.request(&&MailboxClock, &policy, bytes, |e| out(e)));
            out(client.into_socket());
            result
        };
        match result {
            Some(Ok(outcome)) => out(outcome),
            Some(Err(e)) => show(&e),
            None => {}
        }
    }

    fn async_server() {
        let server = asynch::Server::new(Unconnected, any_config());
        let server = if any_bool() {
            server.with_seed(any_u64())
        } else {
            server
        };
        if any_bool() {
            return serve_async(server);
        }
        let server = server.with_destinations(|local, remote| {
            if any_bool() {
                asynch::unknown_destinations(local, remote)
            } else {
                any_destination()
            }
        });
        match any_u8() % 3 {
            0 => serve_async(server),
            1 => serve_async(server.with_sources::<0>()),
            _ => serve_async(server.with_sources::<1>().with_seed(any_u64())),
        }
    }

    fn serve_async<const N: usize, D>(mut server: asynch::Server<Unconnected, N, D>)
    where
        D: FnMut(SocketAddr, SocketAddr) -> Destination,
    {
        let mut buf = [0; BYTES];
        let buf = any_prefix_mut(&mut buf);
        if any_bool() {
            let running = server.run(&MailboxClock, buf, |datagram, decision| {
                out((datagram, decision));
            });
            if let Some(Err(e)) = step(running) {
                show(&e);
            }
        } else {
            match step(server.next(&MailboxClock, buf)) {
                Some(Ok((datagram, decision))) => out((datagram, decision)),
                Some(Err(e)) => show(&e),
                None => {}
            }
        }
        counters(server.counters());
        out(server.socket_mut());
        out(server.into_socket());
    }

    fn async_listener() {
        let mut listener = asynch::Listener::new(Unconnected);
        let mut buf = [0; BYTES];
        let buf = any_prefix_mut(&mut buf);
        match step(listener.next(&MailboxClock, buf)) {
            Some(Ok(datagram)) => out(datagram),
            Some(Err(e)) => show(&e),
            None => {}
        }
        out((listener.received(), listener.socket_mut()));
        out(listener.into_socket());
    }

    fn async_broadcast() {
        let bytes = any_bytes();
        let payload = any_prefix(&bytes);
        if any_bool() {
            let mut broadcaster = asynch::Broadcaster::new(Unconnected);
            if let Some(Err(e)) = step(broadcaster.send(any_addr(), payload)) {
                show(&e);
            }
            return out(broadcaster.into_socket());
        }
        match any_u8() % 3 {
            0 => discover_async::<0>(payload),
            1 => discover_async::<1>(payload),
            _ => discover_async::<4>(payload),
        }
    }

    fn discover_async<const N: usize>(request: &[u8]) {
        let discovery =
            asynch::Discovery::<_, N>::new(Unconnected, any_addr(), request, any_duration());
        let mut discovery = match discovery {
            Ok(discovery) => discovery,
            Err(e) => return show(&e),
        };
        if let Some(Err(e)) = step(discovery.run(&MailboxClock, |event| out(event))) {
            show(&e);
        }
        out(discovery.survey().found());
        out(discovery.into_socket());
    }
}
