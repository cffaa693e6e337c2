//! Shared helpers for the cross-crate tests: the core's drivers on the firmware example's
//! smoltcp stack over a simulated link, on virtual time; child processes with deadlines
//! ([`process`]) and throwaway network namespaces ([`netns`]) for the tests that run
//! binaries, the layout and checks both TAP binaries' namespace tests share ([`tap`]), the
//! firmware images under QEMU ([`qemu`]), and raw frames into a TAP device ([`packet`]).
//!
//! The loop is the one every shell runs (poll the interfaces, drive the core, sleep until
//! the next wake), except that "sleep" jumps the virtual clock to the next instant at which
//! anything can happen: a driver's deadline or a packet due on the wire.

pub mod netns;
// AF_PACKET: Linux only, as is everything that uses it.
#[cfg(target_os = "linux")]
pub mod packet;
pub mod process;
pub mod qemu;
pub mod tap;

use core::net::SocketAddr;

use udp_echo_core::wire::DEFAULT_PORT;
use udp_echo_core::{
    Client, ClientEvent, Ignored, Instant, Listener, Outcome, RequestError, ResponderConfig,
    RetryPolicy, Server, Shell, Wake,
};
use udp_echo_firmware_example::sim::{ADDR_B, Link, Pair, PairRest};
use udp_echo_firmware_example::{CAPS, NalStack, UdpSocket};

/// The port the simulated server listens on.
pub const PORT: u16 = DEFAULT_PORT;

/// The server's address on the simulated link.
pub fn server_addr() -> SocketAddr {
    SocketAddr::from((ADDR_B, PORT))
}

/// What host B runs.
#[allow(missing_debug_implementations)] // the drivers' stacks are not `Debug`
pub enum Peer<'s, 'a> {
    /// The core's byte-count server.
    Server(&'s mut Server<NalStack<'a, 4>>),
    /// A listener that records arrivals and never replies (a silent server).
    Silent(&'s mut Listener<NalStack<'a, 4>>, &'s mut Vec<u64>),
}

/// One client exchange as it happened on the virtual clock.
#[derive(Debug, Clone)]
pub struct SimRun {
    /// How it ended.
    pub outcome: Outcome,
    /// When each request was sent, in ms since the exchange started.
    pub sends_ms: Vec<u64>,
    /// When it ended, in ms since it started.
    pub ended_ms: u64,
    /// Stale, foreign and malformed datagrams the exchange ignored.
    pub ignored: Ignored,
}

/// Drives one exchange of `request` from host A's `client` to host B until it ends.
/// `shape(link, attempts)` may change the wire's faults before each poll of the link,
/// given the sends made so far.
pub fn exchange<'a>(
    net: &mut Pair<'a, 4>,
    client: &mut Client<NalStack<'a, 4>>,
    peer: &mut Peer<'_, 'a>,
    policy: &RetryPolicy,
    request: &[u8],
    shape: impl FnMut(&mut Link, u32),
) -> SimRun {
    let mut request = client.start(policy, request).expect("valid exchange");
    let (stack, rest) = net.split_a();
    let mut shell = SimShell {
        start: rest.now(),
        rest,
        peer,
        shape,
        buf: [0; 2048],
        sends_ms: Vec::new(),
        attempts: 0,
        round: 0,
        steps: 0,
    };
    let outcome = match client.run(stack, &mut request, &mut shell) {
        Ok(outcome) => outcome,
        Err(RequestError::Client(e)) => panic!("client: {e}"),
        Err(RequestError::Shell(e)) => panic!("{e}"),
    };
    SimRun {
        outcome,
        ended_ms: shell.ms(shell.rest.now()),
        sends_ms: shell.sends_ms,
        ignored: request.exchange().ignored(),
    }
}

/// The client's [`Shell`] on the simulated link. "Now" is the virtual clock. A wait takes a
/// few rounds at the same instant (request out, server answers, reply back: the wire's
/// faults shaped, the link polled, host B's peer polled, the link polled again), then
/// jumps the clock to the earlier of the client's wake and the link's next event.
struct SimShell<'p, 's, 'b, 'a, F> {
    rest: PairRest<'p, 'a, 4>,
    peer: &'s mut Peer<'b, 'a>,
    shape: F,
    buf: [u8; 2048],
    start: Instant,
    sends_ms: Vec<u64>,
    /// Sends so far, as the last `Sent` event said.
    attempts: u32,
    /// Rounds taken at the current instant.
    round: u32,
    /// Jumps of the clock so far.
    steps: u32,
}

impl<F> SimShell<'_, '_, '_, '_, F> {
    /// Rounds per instant.
    const ROUNDS: u32 = 4;
    /// Jumps of the clock after which an exchange is taken to hang.
    const STEPS: u32 = 10_000;

    fn ms(&self, t: Instant) -> u64 {
        (t - self.start).as_millis() as u64
    }
}

impl<'a, F: FnMut(&mut Link, u32)> Shell<NalStack<'a, 4>> for SimShell<'_, '_, '_, 'a, F> {
    type Error = &'static str;

    fn now(&mut self, _: &mut NalStack<'a, 4>) -> Instant {
        self.rest.now()
    }

    fn sleep(
        &mut self,
        stack: &mut NalStack<'a, 4>,
        _: &UdpSocket,
        now: Instant,
        wake: Wake,
    ) -> Result<(), Self::Error> {
        (self.shape)(self.rest.link, self.attempts);
        self.rest.poll(stack);
        let start = self.start;
        let ms = |t: Instant| (t - start).as_millis() as u64;
        match &mut *self.peer {
            Peer::Server(server) => {
                let _ = server
                    .poll(&mut self.rest.b.stack, &mut self.buf, now, |_, _| {})
                    .expect("server");
            }
            Peer::Silent(listener, arrivals) => {
                let _ = listener
                    .poll(&mut self.rest.b.stack, &mut self.buf, now, |d| {
                        arrivals.push(ms(d.at));
                    })
                    .expect("listener");
            }
        }
        self.rest.poll(stack);
        self.round += 1;
        if self.round < Self::ROUNDS {
            return Ok(());
        }
        self.round = 0;
        self.steps += 1;
        if self.steps == Self::STEPS {
            return Err("exchange did not end within 10 000 steps");
        }
        // Sleep: jump to the earlier of the client's wake and the link's next event.
        let at = wake.min(self.rest.next_event(stack)).deadline(now);
        self.rest.advance_to(
            stack,
            at.expect("the exchange waits with nothing scheduled"),
        );
        Ok(())
    }

    fn on_event(&mut self, event: &ClientEvent) {
        if let ClientEvent::Sent { attempt, at } = *event {
            self.sends_ms.push(self.ms(at));
            self.attempts = attempt;
        }
    }
}

/// One exchange of `request` with the core's server, default policy, faults as they are.
pub fn ask<'a>(
    net: &mut Pair<'a, 4>,
    client: &mut Client<NalStack<'a, 4>>,
    server: &mut Server<NalStack<'a, 4>>,
    request: &[u8],
) -> SimRun {
    let policy = RetryPolicy::default();
    exchange(
        net,
        client,
        &mut Peer::Server(server),
        &policy,
        request,
        |_, _| {},
    )
}

/// Binds the core's server on host B with all guards on.
pub fn server<'a>(net: &mut Pair<'a, 4>) -> Server<NalStack<'a, 4>> {
    Server::bind(&mut net.b.stack, PORT, ResponderConfig::default())
        .expect("bind server")
        .with_caps(CAPS)
}

/// Opens host A's client socket, connected to the server's address.
pub fn client<'a>(net: &mut Pair<'a, 4>) -> Client<NalStack<'a, 4>> {
    Client::connect(&mut net.a.stack, server_addr())
        .expect("connect client")
        .with_caps(CAPS)
}
