//! The async drivers on a virtual clock with scripted sockets: no executor (`block_on`),
//! no network. The clock moves only when a driver sleeps, and then only to the next
//! scripted arrival or the sleep's instant, whichever is first, so every instant below is
//! exact.

mod expect;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use embassy_futures::block_on;
use udp_echo_core::asynch::{self, Clock};
use udp_echo_core::embedded_nal_async::{ConnectedUdp, UnconnectedUdp};
use udp_echo_core::{
    ClientEvent, Decision, DiscoveryEvent, DropReason, Instant, Outcome, ResponderConfig,
    RetryPolicy, Verdict,
};

// ---------------------------------------------------------------------------------------
// The world: a virtual clock and the datagrams scripted to arrive

#[derive(Debug, Clone)]
struct Arrival {
    at: u64, // µs
    local: SocketAddr,
    remote: SocketAddr,
    bytes: Vec<u8>,
    /// The true length, when the stack reports more than `bytes` (it cut them).
    len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SendMode {
    /// Every send completes at once.
    Ready,
    /// No send ever completes.
    Pending,
    /// Every send fails with "connection refused".
    Refused,
}

#[derive(Debug)]
struct World {
    now: u64,
    arrivals: VecDeque<Arrival>,
    /// (when, from, to, bytes) of every completed send.
    sent: Vec<(u64, SocketAddr, SocketAddr, Vec<u8>)>,
    send_mode: SendMode,
    /// A server inside the world answers the client's n-th send (1-based), after a delay.
    answer: Option<(u32, u64)>,
    sleeps: u32,
}

#[derive(Debug, Clone)]
struct Net(Rc<RefCell<World>>);

fn ms(v: u64) -> u64 {
    v * 1000
}

fn server() -> SocketAddr {
    "192.0.2.1:6666".parse().unwrap()
}

fn me() -> SocketAddr {
    "192.0.2.9:50000".parse().unwrap()
}

impl Net {
    fn new() -> Self {
        Net(Rc::new(RefCell::new(World {
            now: 0,
            arrivals: VecDeque::new(),
            sent: Vec::new(),
            send_mode: SendMode::Ready,
            answer: None,
            sleeps: 0,
        })))
    }

    fn arrive(&self, at: u64, remote: SocketAddr, bytes: &[u8]) {
        self.arrive_to(at, me(), remote, bytes, bytes.len());
    }

    fn arrive_to(&self, at: u64, local: SocketAddr, remote: SocketAddr, bytes: &[u8], len: usize) {
        let mut w = self.0.borrow_mut();
        let i = w.arrivals.partition_point(|a| a.at <= at);
        w.arrivals.insert(
            i,
            Arrival {
                at,
                local,
                remote,
                bytes: bytes.to_vec(),
                len,
            },
        );
    }

    fn now_ms(&self) -> f64 {
        self.0.borrow().now as f64 / 1000.0
    }

    /// The next arrival that is due, if any.
    fn take_due(&self) -> Option<Arrival> {
        let mut w = self.0.borrow_mut();
        let now = w.now;
        w.arrivals.front().filter(|a| a.at <= now)?;
        w.arrivals.pop_front()
    }

    fn receive(&self, buf: &mut [u8]) -> Poll<(usize, SocketAddr, SocketAddr)> {
        match self.take_due() {
            Some(a) => {
                let n = a.bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&a.bytes[..n]);
                Poll::Ready((a.len, a.local, a.remote))
            }
            None => Poll::Pending,
        }
    }

    fn send(&self, from: SocketAddr, to: SocketAddr, data: &[u8]) -> Poll<Result<(), Error>> {
        let mut w = self.0.borrow_mut();
        match w.send_mode {
            SendMode::Pending => return Poll::Pending,
            SendMode::Refused => return Poll::Ready(Err(Error::Refused)),
            SendMode::Ready => {}
        }
        let now = w.now;
        w.sent.push((now, from, to, data.to_vec()));
        let n = w.sent.len() as u32;
        if let Some((nth, delay)) = w.answer
            && n == nth
        {
            drop(w);
            let reply = format!("Your data was {} bytes", data.len());
            self.arrive(now + delay, to, reply.as_bytes());
        }
        Poll::Ready(Ok(()))
    }

    fn send_times_ms(&self) -> Vec<u64> {
        self.0.borrow().sent.iter().map(|s| s.0 / 1000).collect()
    }
}

impl Clock for Net {
    fn now(&self) -> Instant {
        Instant::from_micros(self.0.borrow().now)
    }

    /// Moves the clock to the next arrival or to `at`, whichever is first; ready once the
    /// clock reached `at`. Pending at an arrival, so that the receive raced against this
    /// sleep (polled first) takes it.
    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> {
        let at = at.as_micros();
        poll_fn(move |_| {
            let mut w = self.0.borrow_mut();
            w.sleeps += 1;
            let next = w.arrivals.front().map_or(u64::MAX, |a| a.at);
            w.now = w.now.max(at.min(next));
            if w.now >= at {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Error {
    Refused,
    Broken,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl core::error::Error for Error {}

impl embedded_io_async::Error for Error {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        match self {
            Error::Refused => embedded_io_async::ErrorKind::ConnectionRefused,
            Error::Broken => embedded_io_async::ErrorKind::Other,
        }
    }
}

/// A connected socket in the world (to [`server`]).
struct Connected(Net);

impl ConnectedUdp for Connected {
    type Error = Error;

    async fn send(&mut self, data: &[u8]) -> Result<(), Error> {
        poll_fn(|_| self.0.send(me(), server(), data)).await
    }

    async fn receive_into(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        poll_fn(|_| self.0.receive(buf).map(|(len, _, _)| Ok(len))).await
    }
}

/// An unconnected socket in the world.
struct Unconnected(Net);

impl UnconnectedUdp for Unconnected {
    type Error = Error;

    async fn send(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> Result<(), Error> {
        poll_fn(|_| self.0.send(local, remote, data)).await
    }

    async fn receive_into(
        &mut self,
        buf: &mut [u8],
    ) -> Result<(usize, SocketAddr, SocketAddr), Error> {
        poll_fn(|_| self.0.receive(buf).map(Ok)).await
    }
}

/// Runs a request of `request` on `net`, recording every event.
fn request(
    net: &Net,
    policy: &RetryPolicy,
    request: &[u8],
) -> (Result<Outcome, Error>, Vec<ClientEvent>) {
    let mut events = Vec::new();
    let mut client = asynch::Client::new(Connected(net.clone()), server());
    let outcome = block_on(client.request(net, policy, request, |e| events.push(*e)));
    let outcome = outcome.map_err(|e| match e {
        udp_echo_core::ClientError::Stack(e) => e,
        udp_echo_core::ClientError::Exchange(e) => panic!("{e}"),
    });
    (outcome, events)
}

fn gave_up(outcome: Result<Outcome, Error>) -> udp_echo_core::GaveUp {
    match outcome {
        Ok(Outcome::GaveUp(g)) => g,
        other => panic!("expected a give-up, got {other:?}"),
    }
}

fn replied(outcome: Result<Outcome, Error>) -> udp_echo_core::Replied {
    match outcome {
        Ok(Outcome::Reply(r)) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Client

/// The timelines every client driver shares (see `expect`), on the async `Client`.
#[test]
fn the_shared_timelines_hold() {
    for case in expect::cases() {
        let net = Net::new();
        net.0.borrow_mut().answer = case.answer.map(|(nth, after)| (nth, ms(after)));
        let (outcome, _) = request(&net, &case.policy, b"hello");
        expect::check(&case, &net.send_times_ms(), outcome.unwrap());
        let end = match case.end {
            expect::End::Reply { at_ms, .. } | expect::End::GaveUp { at_ms, .. } => at_ms,
        };
        assert_eq!(
            net.now_ms(),
            end as f64,
            "{}: the clock at the end",
            case.name
        );
    }
}

#[test]
fn a_silent_server_gets_sends_at_0_100_300_700_1500_and_a_give_up_at_3100() {
    let net = Net::new();
    let (outcome, events) = request(&net, &RetryPolicy::default(), b"hello");
    let g = gave_up(outcome);
    assert_eq!(net.send_times_ms(), [0, 100, 300, 700, 1500]);
    assert_eq!((g.attempts, g.unsent, g.refused), (5, 0, false));
    assert_eq!(g.elapsed, Duration::from_millis(3100));
    assert_eq!(net.now_ms(), 3100.0);
    let sent: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Sent { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [1, 2, 3, 4, 5]);
}

#[test]
fn a_reply_to_the_third_send_ends_the_request_with_its_rtt() {
    let net = Net::new();
    net.0.borrow_mut().answer = Some((3, ms(5)));
    let r = replied(request(&net, &RetryPolicy::default(), b"hello").0);
    assert_eq!((r.count, r.attempts), (5, 3));
    assert_eq!(r.rtt, Duration::from_millis(5));
    assert_eq!(r.elapsed, Duration::from_millis(305));
    assert!(r.rtt_ambiguous);
    assert_eq!(net.send_times_ms(), [0, 100, 300]);
}

#[test]
fn a_send_that_pends_forever_still_gives_up_at_3100_with_every_slot_unsent() {
    let net = Net::new();
    net.0.borrow_mut().send_mode = SendMode::Pending;
    let (outcome, events) = request(&net, &RetryPolicy::default(), b"hello");
    let g = gave_up(outcome);
    assert_eq!((g.attempts, g.unsent), (0, 5));
    assert_eq!(g.elapsed, Duration::from_millis(3100));
    assert_eq!(net.now_ms(), 3100.0);
    let blocked = events
        .iter()
        .filter(|e| **e == ClientEvent::SendBlocked)
        .count();
    assert_eq!(blocked, 5, "{events:?}");
}

#[test]
fn a_socket_that_never_becomes_readable_gives_up_on_time_with_few_wake_ups() {
    let net = Net::new();
    let g = gave_up(request(&net, &RetryPolicy::default(), b"x").0);
    assert_eq!(g.elapsed, Duration::from_millis(3100));
    // One sleep per wait (five waits), not one per millisecond.
    assert!(
        net.0.borrow().sleeps <= 10,
        "{} sleeps",
        net.0.borrow().sleeps
    );
}

#[test]
fn a_flood_of_garbage_neither_delays_the_schedule_nor_hides_the_reply() {
    // A datagram every 100 µs for 4 s: 40,000 of them on the connected socket.
    let net = Net::new();
    for i in 0..40_000 {
        net.arrive(i * 100 + 50, server(), b"garbage");
    }
    let (outcome, events) = request(&net, &RetryPolicy::default(), b"hello");
    let g = gave_up(outcome);
    assert_eq!(net.send_times_ms(), [0, 100, 300, 700, 1500]);
    assert_eq!(g.elapsed, Duration::from_millis(3100));
    let malformed = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ClientEvent::Ignored {
                    verdict: Verdict::Malformed,
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        malformed, 31_000,
        "every datagram up to 3100 ms was read and judged"
    );

    // The same flood with the reply to the second send among it.
    let net = Net::new();
    for i in 0..40_000 {
        net.arrive(i * 100 + 50, server(), b"garbage");
    }
    net.0.borrow_mut().answer = Some((2, ms(7)));
    let r = replied(request(&net, &RetryPolicy::default(), b"hello").0);
    assert_eq!((r.attempts, r.rtt), (2, Duration::from_millis(7)));
}

#[test]
fn stale_and_wrong_count_replies_are_ignored_and_counted() {
    let net = Net::new();
    net.arrive(ms(10), server(), b"Your data was 4 bytes"); // another request's count
    net.arrive(ms(20), server(), b"Your data was 5 bytes!"); // not a reply
    net.arrive(ms(30), server(), b"Your data was 5 bytes");
    let (outcome, events) = request(&net, &RetryPolicy::default(), b"hello");
    let r = replied(outcome);
    assert_eq!((r.attempts, r.rtt), (1, Duration::from_millis(30)));
    let verdicts: Vec<Verdict> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Ignored { verdict, .. } => Some(*verdict),
            _ => None,
        })
        .collect();
    assert_eq!(verdicts, [Verdict::Stale { count: 4 }, Verdict::Malformed]);
}

#[test]
fn a_reply_longer_than_the_buffer_is_judged_by_its_true_length() {
    // The stack reports 40 bytes but hands over only what fits: it was cut, so it is
    // not the reply even though its head reads like one.
    let net = Net::new();
    net.arrive_to(ms(10), me(), server(), b"Your data was 5 bytes", 40);
    net.arrive(ms(20), server(), b"Your data was 5 bytes");
    let (outcome, events) = request(&net, &RetryPolicy::default(), b"hello");
    assert_eq!(replied(outcome).rtt, Duration::from_millis(20));
    assert!(matches!(
        events[1],
        ClientEvent::Ignored {
            verdict: Verdict::Malformed,
            ..
        }
    ));
}

#[test]
fn icmp_refusals_are_noted_and_the_schedule_holds() {
    let net = Net::new();
    net.0.borrow_mut().send_mode = SendMode::Refused;
    let (outcome, events) = request(&net, &RetryPolicy::default(), b"hello");
    let g = gave_up(outcome);
    assert!(g.refused);
    assert_eq!(g.elapsed, Duration::from_millis(3100));
    assert!(events.contains(&ClientEvent::Refused));
}

#[test]
fn a_broken_socket_is_an_error_at_once() {
    let net = Net::new();
    struct Broken;
    impl ConnectedUdp for Broken {
        type Error = Error;
        async fn send(&mut self, _: &[u8]) -> Result<(), Error> {
            Err(Error::Broken)
        }
        async fn receive_into(&mut self, _: &mut [u8]) -> Result<usize, Error> {
            Err(Error::Broken)
        }
    }
    let outcome = block_on(asynch::request(
        Broken,
        server(),
        &RetryPolicy::default(),
        b"x",
        &net,
    ));
    assert_eq!(
        outcome,
        Err(udp_echo_core::ClientError::Stack(Error::Broken))
    );
    assert_eq!(net.now_ms(), 0.0);
}

// ---------------------------------------------------------------------------------------
// Server

/// Runs the async server on `net` until every scripted datagram is handled.
fn serve(
    net: &Net,
    config: ResponderConfig,
    buf_len: usize,
) -> (Vec<(SocketAddr, usize, Decision)>, udp_echo_core::Counters) {
    let mut server = asynch::Server::new(Unconnected(net.clone()), config);
    let mut buf = vec![0u8; buf_len];
    let mut seen = Vec::new();
    while !net.0.borrow().arrivals.is_empty() {
        // Time moves to the next arrival, as a real one would.
        let next = net.0.borrow().arrivals.front().unwrap().at;
        net.0.borrow_mut().now = next;
        let (d, decision) = block_on(server.next(net, &mut buf)).unwrap();
        seen.push((d.from, d.len, decision));
    }
    (seen, *server.counters())
}

#[test]
fn the_server_answers_from_the_address_the_request_hit_and_keeps_its_guards() {
    let net = Net::new();
    let here: SocketAddr = "192.0.2.9:6666".parse().unwrap();
    let client: SocketAddr = "192.0.2.50:40000".parse().unwrap();
    net.arrive_to(ms(1), here, client, b"hello", 5);
    net.arrive_to(ms(2), here, "192.0.2.50:53".parse().unwrap(), b"hello", 5);
    net.arrive_to(ms(3), here, "192.0.2.50:0".parse().unwrap(), b"hello", 5);
    net.arrive_to(ms(4), here, client, b"Your data was 5 bytes", 21);
    let everyone: SocketAddr = "255.255.255.255:6666".parse().unwrap();
    net.arrive_to(ms(5), everyone, client, b"hello", 5);
    // 3000 bytes through a 512-byte buffer: answered with the true count.
    net.arrive_to(ms(6), here, client, &[7u8; 512], 3000);
    let (seen, counters) = serve(&net, ResponderConfig::default(), 512);
    let decisions: Vec<String> = seen
        .iter()
        .map(|(_, _, d)| match d {
            Decision::Reply(r) => r.to_string(),
            Decision::Drop(why) => why.key().to_string(),
        })
        .collect();
    assert_eq!(
        decisions,
        [
            "Your data was 5 bytes",
            "reflection_port",
            "port_zero",
            "loop",
            "off_link_broadcast",
            "Your data was 3000 bytes",
        ]
    );
    let sent = &net.0.borrow().sent;
    assert_eq!(sent.len(), 2);
    // From the address the request hit, to its source.
    assert_eq!((sent[0].1, sent[0].2), (here, client));
    assert_eq!(sent[1].3, b"Your data was 3000 bytes");
    assert_eq!(
        (counters.received, counters.replied, counters.broadcast),
        (6, 2, 1)
    );
    assert_eq!(counters.dropped_for(DropReason::OffLinkBroadcast), 1);
}

#[test]
fn a_broadcast_from_on_link_is_answered_from_an_address_the_stack_picks() {
    let net = Net::new();
    let everyone: SocketAddr = "255.255.255.255:6666".parse().unwrap();
    let client: SocketAddr = "192.0.2.50:40000".parse().unwrap();
    net.arrive_to(ms(1), everyone, client, b"hi", 2);
    let mut server = asynch::Server::new(Unconnected(net.clone()), ResponderConfig::default())
        .with_destinations(|_, _| udp_echo_core::Destination::Broadcast {
            source_on_link: true,
        });
    net.0.borrow_mut().now = ms(1);
    let mut buf = [0u8; 64];
    let (_, decision) = block_on(server.next(&net, &mut buf)).unwrap();
    assert!(matches!(decision, Decision::Reply(_)));
    let sent = &net.0.borrow().sent;
    // Never from the broadcast address: from "any", on the server's port.
    assert_eq!(sent[0].1, "0.0.0.0:6666".parse().unwrap());
}

#[test]
fn a_reply_the_socket_cannot_take_at_once_is_dropped_and_counted() {
    let net = Net::new();
    net.0.borrow_mut().send_mode = SendMode::Pending;
    let client: SocketAddr = "192.0.2.50:40000".parse().unwrap();
    for i in 1..=3 {
        net.arrive_to(ms(i), me(), client, b"hello", 5);
    }
    let (seen, counters) = serve(&net, ResponderConfig::default(), 64);
    assert_eq!(seen.len(), 3, "the server went on to the next datagrams");
    assert_eq!((counters.replied, counters.send_failed), (3, 3));
}

#[test]
fn the_per_source_limit_holds_on_the_async_server() {
    let net = Net::new();
    let client: SocketAddr = "192.0.2.50:40000".parse().unwrap();
    for i in 0..200 {
        net.arrive_to(i, me(), client, b"hello", 5); // 200 within 200 µs
    }
    let (_, counters) = serve(&net, ResponderConfig::default(), 64);
    assert_eq!(counters.received, 200);
    assert!(
        counters.dropped_for(DropReason::SourceLimited) > 0,
        "{counters:?}"
    );
    assert_eq!(
        counters.replied + counters.dropped_for(DropReason::SourceLimited),
        200
    );
}

// ---------------------------------------------------------------------------------------
// Discovery

fn discover(
    net: &Net,
    window_ms: u64,
) -> (Vec<DiscoveryEvent>, Vec<udp_echo_core::Found>, u32, u32) {
    let to = "255.255.255.255:6666".parse().unwrap();
    let mut d = asynch::Discovery::<_, 2>::new(
        Unconnected(net.clone()),
        to,
        b"who",
        Duration::from_millis(window_ms),
    )
    .unwrap();
    let mut events = Vec::new();
    block_on(d.run(net, |e| events.push(*e))).unwrap();
    let s = d.survey();
    (events, s.found().to_vec(), s.overflow(), s.ignored())
}

#[test]
fn discovery_collects_each_server_once_within_the_window_after_the_send() {
    let net = Net::new();
    let (a, b, c, late): (SocketAddr, SocketAddr, SocketAddr, SocketAddr) = (
        "192.0.2.1:6666".parse().unwrap(),
        "192.0.2.2:6666".parse().unwrap(),
        "192.0.2.3:6666".parse().unwrap(),
        "192.0.2.4:6666".parse().unwrap(),
    );
    let three = b"Your data was 3 bytes";
    net.arrive(ms(2), a, three);
    net.arrive(ms(3), a, three); // a repeat
    net.arrive(ms(4), b, b"Your data was 9 bytes"); // the wrong count
    net.arrive(ms(5), b, three);
    net.arrive(ms(6), c, three); // a third server: the list holds two
    net.arrive(ms(1200), late, three); // after the window
    let (events, found, overflow, ignored) = discover(&net, 1000);
    assert_eq!(net.send_times_ms(), [0]);
    assert_eq!(
        found.iter().map(|f| (f.addr, f.rtt)).collect::<Vec<_>>(),
        [(a, Duration::from_millis(2)), (b, Duration::from_millis(5))]
    );
    assert_eq!((overflow, ignored), (1, 1));
    assert!(matches!(events[0], DiscoveryEvent::Sent(t) if t == Instant::ZERO));
    // It ended when the window closed, not at the late answer.
    assert_eq!(net.now_ms(), 1000.0);
}

#[test]
fn a_discovery_whose_send_never_completes_ends_one_window_after_it_began() {
    let net = Net::new();
    net.0.borrow_mut().send_mode = SendMode::Pending;
    let (events, found, _, _) = discover(&net, 500);
    assert!(events.is_empty() && found.is_empty());
    assert_eq!(net.now_ms(), 500.0);
}
