//! The drivers on a published third-party `embedded-nal` 0.9 stack, unchanged:
//! std-embedded-nal's `Stack` (the operating system's sockets), over 127.0.0.1.
//!
//! Nothing here implements a trait of ours or wraps the stack. Its error is
//! `std::io::Error`, a foreign type: the one refinement (telling an ICMP "port
//! unreachable" apart) is a plain function handed over in `StackCaps`.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use std::convert::Infallible;

use std_embedded_nal::Stack;
use udp_echo_core::embedded_nal::UdpClientStack;
use udp_echo_core::{
    ClientError, DropReason, Instant, Outcome, RequestError, ResponderConfig, RetryPolicy, Server,
    Shell, StackCaps, StackErrorKind, Wake,
};

/// Bounds every loop here: a broken driver fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

/// A free UDP port on this machine (the stack binds `[::]:port` and cannot report it).
fn free_port() -> u16 {
    UdpSocket::bind("[::]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn now_since(epoch: StdInstant) -> Instant {
    Instant::from_micros(epoch.elapsed().as_micros() as u64)
}

/// Runs the core's server on a fresh std-embedded-nal stack until `datagrams` datagrams
/// arrived; returns the server's counters. `buf_len` is its receive buffer.
fn serve(port: u16, buf_len: usize, datagrams: u64) -> thread::JoinHandle<udp_echo_core::Counters> {
    let mut stack = Stack;
    let mut server = Server::bind(&mut stack, port, ResponderConfig::default()).unwrap();
    thread::spawn(move || {
        let epoch = StdInstant::now();
        let mut buf = vec![0u8; buf_len];
        while server.counters().received < datagrams && epoch.elapsed() < PATIENCE {
            let _ = server
                .poll(&mut stack, &mut buf, now_since(epoch), |_, _| {})
                .unwrap();
            // This stack offers no readiness wait: a short sleep stands in for one.
            thread::sleep(Duration::from_micros(200));
        }
        *server.counters()
    })
}

/// The client's shell on this stack: the time since `epoch`, and a short sleep for a
/// wait (this stack offers no readiness wait).
struct Patient {
    epoch: StdInstant,
}

impl Shell<Stack> for Patient {
    type Error = Infallible;

    fn now(&mut self, _: &mut Stack) -> Instant {
        assert!(self.epoch.elapsed() < PATIENCE, "the exchange never ended");
        now_since(self.epoch)
    }

    fn sleep(
        &mut self,
        _: &mut Stack,
        _: &<Stack as UdpClientStack>::UdpSocket,
        _: Instant,
        _: Wake,
    ) -> Result<(), Infallible> {
        thread::sleep(Duration::from_micros(200));
        Ok(())
    }
}

/// One exchange on a fresh std-embedded-nal stack: the core's `request`.
fn ask(
    server: SocketAddr,
    request: &[u8],
    policy: &RetryPolicy,
    caps: StackCaps<io::Error>,
) -> Result<Outcome, ClientError<io::Error>> {
    let mut shell = Patient {
        epoch: StdInstant::now(),
    };
    udp_echo_core::request(&mut Stack, caps, server, policy, request, &mut shell).map_err(|e| {
        match e {
            RequestError::Client(e) => e,
            RequestError::Shell(never) => match never {},
        }
    })
}

fn count_of(outcome: Outcome) -> u16 {
    match outcome {
        Outcome::Reply(r) => r.count,
        Outcome::GaveUp(g) => panic!("gave up after {} sends", g.attempts),
    }
}

/// A short schedule, so that a give-up takes 150 ms, not 3.1 s: sends at 0/10/30/70 ms.
fn quick() -> RetryPolicy {
    let mut policy = RetryPolicy::default();
    policy.initial_wait = Duration::from_millis(10);
    policy.max_wait = Duration::from_millis(80);
    policy
}

#[test]
fn client_and_server_run_on_std_embedded_nal_with_exact_counts() {
    let port = free_port();
    let sizes = [0usize, 1, 12, 1472, 9000];
    let serving = serve(port, 65_535, sizes.len() as u64);
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    for size in sizes {
        let request = vec![0xa5u8; size];
        let outcome = ask(server, &request, &RetryPolicy::default(), StackCaps::PLAIN).unwrap();
        assert_eq!(usize::from(count_of(outcome)), size);
    }
    let counters = serving.join().unwrap();
    assert_eq!(counters.replied, sizes.len() as u64);
}

#[test]
fn a_stack_that_may_cut_gets_no_guessed_count() {
    // std-embedded-nal cannot report a datagram's true length: with a 2 KB buffer, a
    // 3000-byte request is dropped as possibly cut, never answered "2048 bytes".
    let port = free_port();
    let serving = serve(port, 2048, 4);
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let outcome = ask(server, &[7u8; 3000], &quick(), StackCaps::PLAIN).unwrap();
    assert!(
        matches!(outcome, Outcome::GaveUp(g) if g.attempts == 4),
        "{outcome:?}"
    );
    let counters = serving.join().unwrap();
    assert_eq!(counters.replied, 0);
    assert_eq!(counters.dropped_for(DropReason::Cut), 4);
}

#[test]
fn without_a_classifier_a_refused_port_is_a_stack_error() {
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
    match ask(closed, b"anyone?", &quick(), StackCaps::PLAIN) {
        Err(ClientError::Stack(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
        other => panic!("{other:?}"),
    }
}

#[test]
fn with_a_classifier_a_refused_port_is_noted_and_the_schedule_runs_out() {
    let caps = StackCaps::PLAIN.with_classifier(|e: &io::Error| match e.kind() {
        io::ErrorKind::ConnectionRefused => StackErrorKind::Refused,
        _ => StackErrorKind::Other,
    });
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
    match ask(closed, b"anyone?", &quick(), caps).unwrap() {
        Outcome::GaveUp(g) => {
            assert!(g.refused);
            assert_eq!((g.attempts, g.unsent), (4, 0));
        }
        other => panic!("{other:?}"),
    }
}
