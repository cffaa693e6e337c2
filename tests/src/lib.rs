//! Shared helpers for the cross-crate tests: the core's drivers on the firmware example's
//! smoltcp stack over a simulated link, on virtual time; child processes with deadlines
//! ([`process`]) and throwaway network namespaces ([`netns`]) for the tests that run
//! binaries.
//!
//! The loop is the one every shell runs (poll the interfaces, drive the core, sleep until
//! the next wake), except that "sleep" jumps the virtual clock to the next instant at which
//! anything can happen: a driver's deadline or a packet due on the wire.

pub mod netns;
pub mod process;

use core::net::SocketAddr;

use udp_echo_core::{
    Client, ClientEvent, DEFAULT_PORT, Ignored, Instant, Listener, Outcome, ResponderConfig,
    RetryPolicy, Server, Wake,
};
use udp_echo_firmware_example::sim::{ADDR_B, Link, Pair};
use udp_echo_firmware_example::{CAPS, NalStack};

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
    mut shape: impl FnMut(&mut Link, u32),
) -> SimRun {
    let start = net.now();
    let ms = |t: Instant| (t - start).as_millis() as u64;
    let mut request = client.start(policy, request).expect("valid exchange");
    let mut sends_ms = Vec::new();
    let mut buf = [0u8; 2048];
    for _ in 0..10_000 {
        // A few rounds per instant: request out, server answers, reply back.
        let mut wake = Wake::OnDatagram;
        for _ in 0..4 {
            let now = net.now();
            wake = loop {
                match client
                    .poll(&mut net.a.stack, &mut request, now)
                    .expect("client")
                {
                    ClientEvent::Done(outcome) => {
                        return SimRun {
                            outcome,
                            sends_ms,
                            ended_ms: ms(now),
                            ignored: request.exchange().ignored(),
                        };
                    }
                    ClientEvent::Sent { at, .. } => sends_ms.push(ms(at)),
                    ClientEvent::Wait(wake) => break wake,
                    _ => {}
                }
            };
            shape(&mut net.link, request.exchange().attempts());
            net.poll();
            match peer {
                Peer::Server(server) => {
                    let _ = server
                        .poll(&mut net.b.stack, &mut buf, now, |_, _| {})
                        .expect("server");
                }
                Peer::Silent(listener, arrivals) => {
                    let _ = listener
                        .poll(&mut net.b.stack, &mut buf, now, |d| arrivals.push(ms(d.at)))
                        .expect("listener");
                }
            }
            net.poll();
        }
        // Sleep: jump to the earlier of the client's wake and the link's next event.
        let at = wake.min(net.next_event()).deadline(net.now());
        net.advance_to(at.expect("the exchange waits with nothing scheduled"));
    }
    panic!("exchange did not end within 10 000 steps");
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
