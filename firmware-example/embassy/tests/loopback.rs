//! The adapter against a real embassy-net stack on the host: one interface at 10.0.0.1/24
//! on an in-memory IP loopback (every packet sent comes back in), run by embassy-net's
//! `Runner` next to the test body, on embassy-time's std driver.
//!
//! The executor parks the thread until a waker fires (no spinning), so a future that
//! forgot to register its waker would hang the test until its timeout, not pass by luck.

use std::collections::VecDeque;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

use embassy_futures::select::{Either, select};
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{Config, Ipv4Cidr, Stack, StackResources, StaticConfigV4};
use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState};
use embassy_time::{Duration, Timer, with_timeout};
use embedded_io_async::{Error as _, ErrorKind};
use embedded_nal_async::{ConnectedUdp, UnconnectedUdp};
use udp_echo_core::asynch::{self, Clock, Server};
use udp_echo_core::{ClientEvent, Instant, Outcome, ResponderConfig, RetryPolicy};
use udp_echo_embassy::{Connected, EmbassyClock, Error, Unconnected};

const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SERVER_PORT: u16 = 7000;
const OTHER_PORT: u16 = 7001;
/// Every test body ends well within this, or fails.
const TEST_LIMIT: Duration = Duration::from_secs(10);

fn server_addr() -> SocketAddr {
    SocketAddr::from((HOST, SERVER_PORT))
}

// ---------------------------------------------------------------------------------------
// The harness: a loopback driver, a parking executor, a stack per test.

/// An IP-medium device that receives every packet it transmits.
#[derive(Default)]
struct Loopback {
    packets: VecDeque<Vec<u8>>,
    waker: Option<Waker>,
}

struct Rx(Vec<u8>);

struct Tx<'a>(&'a mut Loopback);

impl embassy_net_driver::RxToken for Rx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        f(&mut self.0)
    }
}

impl embassy_net_driver::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0; len];
        let r = f(&mut packet);
        self.0.packets.push_back(packet);
        // The runner may have looked for received packets earlier in this poll.
        if let Some(waker) = self.0.waker.take() {
            waker.wake();
        }
        r
    }
}

impl Driver for Loopback {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Rx, Tx<'_>)> {
        match self.packets.pop_front() {
            Some(packet) => Some((Rx(packet), Tx(self))),
            None => {
                self.waker = Some(cx.waker().clone());
                None
            }
        }
    }

    fn transmit(&mut self, _cx: &mut Context<'_>) -> Option<Tx<'_>> {
        Some(Tx(self))
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = 1500;
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ip
    }
}

struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` on this thread, parked between wake-ups.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

/// Runs `body` with a stack at 10.0.0.1/24 on a fresh loopback, its runner alongside;
/// fails if `body` takes longer than [`TEST_LIMIT`].
fn on_stack(body: impl AsyncFnOnce(Stack<'_>)) {
    let mut resources = StackResources::<6>::new();
    let config = Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(HOST, 24),
        gateway: None,
        dns_servers: Default::default(),
    });
    let (stack, mut runner) = embassy_net::new(Loopback::default(), config, &mut resources, 7);
    block_on(async {
        match select(runner.run(), with_timeout(TEST_LIMIT, body(stack))).await {
            Either::First(never) => match never {},
            Either::Second(done) => done.expect("the test body timed out"),
        }
    });
}

/// Socket buffers: 4 datagrams and 4 KB each way.
struct Buffers {
    rx_meta: [PacketMetadata; 4],
    rx: [u8; 4096],
    tx_meta: [PacketMetadata; 4],
    tx: [u8; 4096],
}

impl Buffers {
    fn new() -> Self {
        Self {
            rx_meta: [PacketMetadata::EMPTY; 4],
            rx: [0; 4096],
            tx_meta: [PacketMetadata::EMPTY; 4],
            tx: [0; 4096],
        }
    }

    fn socket<'a>(&'a mut self, stack: Stack<'a>) -> UdpSocket<'a> {
        UdpSocket::new(
            stack,
            &mut self.rx_meta,
            &mut self.rx,
            &mut self.tx_meta,
            &mut self.tx,
        )
    }
}

/// `n` bytes 0, 1, 2, … (mod 251).
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn local_port(socket: &Connected<'_>) -> u16 {
    socket.endpoint().port
}

// ---------------------------------------------------------------------------------------
// Unconnected

#[test]
fn unconnected_reports_the_true_length_and_stores_what_fits() {
    on_stack(async |stack| {
        let (mut a, mut b) = (Buffers::new(), Buffers::new());
        let mut server = Unconnected::bind(b.socket(stack), SERVER_PORT).unwrap();
        let mut client = Connected::connect(a.socket(stack), server_addr()).unwrap();
        let sent = pattern(1000);
        client.send(&sent).await.unwrap();

        let mut head = [0u8; 10];
        let (len, _, _) = server.receive_into(&mut head).await.unwrap();
        assert_eq!(len, 1000);
        assert_eq!(head[..], sent[..10]);
    });
}

#[test]
fn unconnected_reports_the_local_address_hit_and_the_source() {
    on_stack(async |stack| {
        let (mut a, mut b) = (Buffers::new(), Buffers::new());
        let mut server = Unconnected::bind(b.socket(stack), SERVER_PORT).unwrap();
        let mut client = Connected::connect(a.socket(stack), server_addr()).unwrap();
        client.send(b"where?").await.unwrap();

        let mut buf = [0u8; 64];
        let (len, local, remote) = server.receive_into(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"where?");
        assert_eq!(local, server_addr());
        assert_eq!(remote, SocketAddr::from((HOST, local_port(&client))));
    });
}

#[test]
fn unconnected_sends_from_the_local_address_given_or_one_the_stack_picks() {
    on_stack(async |stack| {
        let (mut a, mut b) = (Buffers::new(), Buffers::new());
        let mut server = Unconnected::bind(b.socket(stack), SERVER_PORT).unwrap();
        let mut client = Connected::connect(a.socket(stack), server_addr()).unwrap();
        let to = SocketAddr::from((HOST, local_port(&client)));
        let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));

        // The connected client drops anything not from 10.0.0.1:7000, so both arriving
        // shows the source was right.
        server.send(server_addr(), to, b"given").await.unwrap();
        server.send(unspecified, to, b"picked").await.unwrap();
        let mut buf = [0u8; 16];
        let n = client.receive_into(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"given");
        let n = client.receive_into(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"picked");
        assert_eq!(client.foreign(), 0);
    });
}

#[test]
fn unconnected_refuses_a_local_port_other_than_its_own() {
    on_stack(async |stack| {
        let mut b = Buffers::new();
        let mut server = Unconnected::bind(b.socket(stack), SERVER_PORT).unwrap();
        let wrong = SocketAddr::from((HOST, SERVER_PORT + 1));
        let to = SocketAddr::from((HOST, 9));
        let e = server.send(wrong, to, b"x").await.unwrap_err();
        assert_eq!(e, Error::LocalAddress);
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    });
}

// ---------------------------------------------------------------------------------------
// Connected

#[test]
fn connected_binds_an_ephemeral_port() {
    on_stack(async |stack| {
        let (mut a, mut b) = (Buffers::new(), Buffers::new());
        let first = Connected::connect(a.socket(stack), server_addr()).unwrap();
        let second = Connected::connect(b.socket(stack), server_addr()).unwrap();
        assert!(first.endpoint().addr.is_none());
        assert!((1025..=65535).contains(&local_port(&first)), "{first:?}");
        assert_ne!(local_port(&first), local_port(&second));
        assert_eq!(first.remote(), server_addr());
    });
}

#[test]
fn connected_drops_and_counts_datagrams_from_other_sources() {
    on_stack(async |stack| {
        let (mut a, mut b, mut c) = (Buffers::new(), Buffers::new(), Buffers::new());
        let mut server = Unconnected::bind(b.socket(stack), SERVER_PORT).unwrap();
        let mut other = Unconnected::bind(c.socket(stack), OTHER_PORT).unwrap();
        let mut client = Connected::connect(a.socket(stack), server_addr()).unwrap();
        let to = SocketAddr::from((HOST, local_port(&client)));
        let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));

        other.send(unspecified, to, b"not the peer").await.unwrap();
        other.send(unspecified, to, b"still not").await.unwrap();
        // The stack sends socket by socket: let the others' arrive first.
        other.flush().await;
        Timer::after_millis(20).await;
        server.send(unspecified, to, b"the peer").await.unwrap();

        let mut buf = [0u8; 4];
        let n = client.receive_into(&mut buf).await.unwrap();
        assert_eq!(n, 8, "the peer's datagram, at its true length");
        assert_eq!(&buf, b"the ");
        assert_eq!(client.foreign(), 2);
    });
}

#[test]
fn connected_refuses_remotes_it_cannot_send_to() {
    on_stack(async |stack| {
        let mut a = Buffers::new();
        let cases = [
            ("0.0.0.0:7000", Error::NoRoute, ErrorKind::AddrNotAvailable),
            ("10.0.0.1:0", Error::NoRoute, ErrorKind::AddrNotAvailable),
            #[cfg(not(feature = "proto-ipv6"))]
            ("[::1]:7000", Error::Unsupported, ErrorKind::Unsupported),
            // With IPv6 on, its unspecified address is refused as IPv4's is.
            #[cfg(feature = "proto-ipv6")]
            ("[::]:7000", Error::NoRoute, ErrorKind::AddrNotAvailable),
        ];
        for (remote, error, kind) in cases {
            let socket = a.socket(stack);
            let got = Connected::connect(socket, remote.parse().unwrap()).unwrap_err();
            assert_eq!((got, got.kind()), (error, kind), "{remote}");
            assert!(!got.to_string().is_empty());
        }
    });
}

// ---------------------------------------------------------------------------------------
// Cancel safety

#[test]
fn a_receive_raced_and_dropped_loses_no_datagram() {
    on_stack(async |stack| {
        let (mut a, mut b) = (Buffers::new(), Buffers::new());
        let mut server = Unconnected::bind(b.socket(stack), SERVER_PORT).unwrap();
        let mut client = Connected::connect(a.socket(stack), server_addr()).unwrap();
        let mut buf = [0u8; 16];

        // As the core does when a deadline wins: a receive pending, then dropped.
        let raced = select(server.receive_into(&mut buf), Timer::after_millis(20)).await;
        assert!(matches!(raced, Either::Second(())));

        // Worse: the datagram lands (and wakes the receive) while a pending receive is
        // never polled again, and that receive is dropped.
        {
            let mut pending = pin!(server.receive_into(&mut buf));
            assert!(embassy_futures::poll_once(pending.as_mut()).is_pending());
            client.send(b"after").await.unwrap();
            Timer::after_millis(20).await;
        }

        let (n, _, _) = server.receive_into(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"after");
    });
}

#[test]
fn a_receive_dropped_while_the_peer_is_silent_keeps_the_foreign_count() {
    on_stack(async |stack| {
        let (mut a, mut b, mut c) = (Buffers::new(), Buffers::new(), Buffers::new());
        let mut server = Unconnected::bind(b.socket(stack), SERVER_PORT).unwrap();
        let mut other = Unconnected::bind(c.socket(stack), OTHER_PORT).unwrap();
        let mut client = Connected::connect(a.socket(stack), server_addr()).unwrap();
        let to = SocketAddr::from((HOST, local_port(&client)));
        let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let mut buf = [0u8; 16];

        other.send(unspecified, to, b"noise").await.unwrap();
        let raced = select(client.receive_into(&mut buf), Timer::after_millis(50)).await;
        assert!(matches!(raced, Either::Second(())), "noise is not a reply");
        assert_eq!(client.foreign(), 1);
        server.send(unspecified, to, b"reply").await.unwrap();
        let n = client.receive_into(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"reply");
    });
}

// ---------------------------------------------------------------------------------------
// The clock

#[test]
fn the_clock_sleeps_until_the_instant_it_is_given() {
    on_stack(async |_| {
        let clock = EmbassyClock;
        let start = clock.now();
        let at = Instant::from_micros(start.as_micros() + 30_000);
        clock.sleep_until(at).await;
        let woke = clock.now();
        assert!(woke >= at, "woke at {woke:?}, before {at:?}");
        // An instant already past completes at once.
        clock.sleep_until(start).await;
    });
}

// ---------------------------------------------------------------------------------------
// The core's async drivers on the adapter

#[test]
fn the_core_client_gets_its_count_from_the_core_server_through_a_short_buffer() {
    on_stack(async |stack| {
        let (mut a, mut b) = (Buffers::new(), Buffers::new());
        let socket = Unconnected::bind(b.socket(stack), SERVER_PORT).unwrap();
        let mut server = Server::new(socket, ResponderConfig::default());
        let mut small = [0u8; 32];
        let client = Connected::connect(a.socket(stack), server_addr()).unwrap();
        let request = pattern(1200);
        let policy = RetryPolicy::default();

        let serving = server.run(&EmbassyClock, &mut small, |_, _| {});
        let asking = asynch::request(client, server_addr(), &policy, &request, &EmbassyClock);
        let outcome = match select(serving, asking).await {
            Either::First(Err(e)) => panic!("server: {e:?}"),
            Either::Second(outcome) => outcome.expect("client"),
        };
        match outcome {
            Outcome::Reply(r) => {
                assert_eq!(r.count, 1200);
                assert_eq!(r.attempts, 1);
            }
            Outcome::GaveUp(g) => panic!("gave up: {g:?}"),
        }
        assert_eq!(server.counters().replied, 1);
    });
}

#[test]
fn the_core_client_gives_up_at_3100_ms_when_nothing_answers() {
    on_stack(async |stack| {
        let mut a = Buffers::new();
        let nobody = SocketAddr::from((HOST, 7999));
        let mut client =
            asynch::Client::new(Connected::connect(a.socket(stack), nobody).unwrap(), nobody);
        let clock = EmbassyClock;
        let start = clock.now();
        let mut sends = Vec::new();
        let outcome = client
            .request(&clock, &RetryPolicy::default(), b"anyone?", |event| {
                if let ClientEvent::Sent { at, .. } = event {
                    sends.push(at.saturating_since(start).as_millis());
                }
            })
            .await
            .expect("client");
        let Outcome::GaveUp(g) = outcome else {
            panic!("a reply from nobody: {outcome:?}");
        };
        assert_eq!(g.attempts, 5);
        let ms = g.elapsed.as_millis();
        assert!((3100..3300).contains(&ms), "gave up after {ms} ms");
        let expected = [0, 100, 300, 700, 1500];
        assert_eq!(sends.len(), 5);
        for (sent, due) in sends.iter().zip(expected) {
            assert!((due..due + 100).contains(sent), "sends at {sends:?} ms");
        }
        // Nothing else was heard: smoltcp's ICMP port unreachable never reaches a socket.
        assert_eq!(client.into_socket().foreign(), 0);
    });
}
