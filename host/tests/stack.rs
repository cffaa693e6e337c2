//! `StdStack` over real sockets: 127.0.0.1 and ::1 only, ports picked by the OS.

// Thread CPU time (rustix::time): not on Windows.
#![cfg(unix)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use rustix::time::{ClockId, clock_gettime};
use socket2::SockRef;
use udp_echo_core::StackErrorKind;
use udp_echo_core::embedded_nal::{UdpClientStack, UdpFullStack};
use udp_echo_core::nb;
use udp_echo_host::stack::{StdSocket, StdStack};

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
/// Upper bound for anything that should happen "at once" on loopback.
const PATIENCE: Duration = Duration::from_secs(5);

/// The deadline `d` from now, as `wait_readable` takes it.
fn within(d: Duration) -> Option<Instant> {
    Some(Instant::now() + d)
}

/// A stack binding `ip`, and a socket bound to an ephemeral port there.
fn server(ip: IpAddr) -> (StdStack, StdSocket, SocketAddr) {
    let mut stack = StdStack::new().with_bind_ip(ip);
    let mut socket = stack.socket().unwrap();
    stack.bind(&mut socket, 0).unwrap();
    let addr = socket.local_addr().unwrap();
    assert_ne!(addr.port(), 0);
    (stack, socket, addr)
}

/// A socket connected to `remote`.
fn client(stack: &mut StdStack, remote: SocketAddr) -> StdSocket {
    let mut socket = stack.socket().unwrap();
    stack.connect(&mut socket, remote).unwrap();
    socket
}

/// Wait for a datagram, then receive it.
fn recv(stack: &mut StdStack, socket: &mut StdSocket, buf: &mut [u8]) -> (usize, SocketAddr) {
    assert!(stack.wait_readable(socket, within(PATIENCE)).unwrap());
    stack.receive(socket, buf).unwrap()
}

fn thread_cpu_time() -> Duration {
    clock_gettime(ClockId::ThreadCPUTime).try_into().unwrap()
}

#[test]
fn receive_on_empty_socket_would_block() {
    let (mut stack, mut socket, _) = server(V4);
    let result = stack.receive(&mut socket, &mut [0; 16]);
    assert!(matches!(result, Err(nb::Error::WouldBlock)), "{result:?}");
}

#[test]
fn datagram_larger_than_buffer_reports_true_length() {
    let (mut stack, mut server, addr) = server(V4);
    let mut client = client(&mut stack, addr);
    let payload: Vec<u8> = (0..=255).cycle().take(1000).collect();
    stack.send(&mut client, &payload).unwrap();

    let mut buf = [0; 16];
    let (len, from) = recv(&mut stack, &mut server, &mut buf);
    assert_eq!(len, 1000);
    assert_eq!(buf, payload[..16]);
    assert_eq!(from, client.local_addr().unwrap());
}

#[test]
fn connected_socket_to_closed_port_is_refused() {
    let closed = server(V4).2; // bound, then dropped: nothing listens there now
    let mut stack = StdStack::new();
    let mut client = client(&mut stack, closed);
    stack.send(&mut client, b"anyone?").unwrap();

    // The ICMP port unreachable makes the socket readable with a pending error.
    assert!(stack.wait_readable(&client, within(PATIENCE)).unwrap());
    match stack.receive(&mut client, &mut [0; 16]) {
        Err(nb::Error::Other(e)) => assert_eq!(e.kind(), StackErrorKind::Refused, "{e}"),
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[test]
fn pending_port_unreachable_is_reported_on_next_send_as_refused() {
    let closed = server(V4).2;
    let mut stack = StdStack::new();
    let mut client = client(&mut stack, closed);
    stack.send(&mut client, b"anyone?").unwrap();
    assert!(stack.wait_readable(&client, within(PATIENCE)).unwrap());

    match stack.send(&mut client, b"still?") {
        Err(nb::Error::Other(e)) => assert_eq!(e.kind(), StackErrorKind::Refused, "{e}"),
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[test]
fn wait_readable_times_out_without_datagram() {
    let (stack, socket, _) = server(V4);
    let start = Instant::now();
    assert!(
        !stack
            .wait_readable(&socket, within(Duration::from_millis(100)))
            .unwrap()
    );
    assert!(start.elapsed() >= Duration::from_millis(100));
}

#[test]
fn wait_readable_with_zero_timeout_returns_at_once() {
    let (stack, socket, _) = server(V4);
    let start = Instant::now();
    assert!(
        !stack
            .wait_readable(&socket, within(Duration::ZERO))
            .unwrap()
    );
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn wait_readable_wakes_when_datagram_arrives() {
    let (stack, socket, addr) = server(V4);
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        let peer = UdpSocket::bind((V4, 0)).unwrap();
        peer.send_to(b"wake", addr).unwrap();
    });
    let start = Instant::now();
    assert!(stack.wait_readable(&socket, within(PATIENCE)).unwrap());
    assert!(start.elapsed() < PATIENCE);
    sender.join().unwrap();
}

#[test]
fn waiting_300_ms_uses_almost_no_cpu() {
    let (stack, socket, _) = server(V4);
    let (cpu, wall) = (thread_cpu_time(), Instant::now());
    assert!(
        !stack
            .wait_readable(&socket, within(Duration::from_millis(300)))
            .unwrap()
    );
    let (cpu, wall) = (thread_cpu_time() - cpu, wall.elapsed());
    assert!(wall >= Duration::from_millis(300), "{wall:?}");
    assert!(cpu < Duration::from_millis(20), "{cpu:?} of CPU");
}

#[test]
fn ipv6_loopback_round_trip() {
    let (mut stack, mut server, addr) = server(V6);
    let mut client = client(&mut stack, addr);
    stack.send(&mut client, b"ping").unwrap();

    let mut buf = [0; 64];
    let (len, from) = recv(&mut stack, &mut server, &mut buf);
    assert_eq!(&buf[..len], b"ping");
    assert_eq!(from, client.local_addr().unwrap());
    assert!(from.is_ipv6());

    stack.send_to(&mut server, from, b"pong").unwrap();
    let (len, from) = recv(&mut stack, &mut client, &mut buf);
    assert_eq!((&buf[..len], from), (&b"pong"[..], addr));
}

#[test]
fn send_to_between_bound_sockets_round_trips() {
    let (mut stack, mut a, a_addr) = server(V4);
    let mut b = stack.socket().unwrap();
    stack.bind(&mut b, 0).unwrap();
    let b_addr = b.local_addr().unwrap();

    let mut buf = [0; 64];
    stack.send_to(&mut a, b_addr, b"there").unwrap();
    let (len, from) = recv(&mut stack, &mut b, &mut buf);
    assert_eq!((&buf[..len], from), (&b"there"[..], a_addr));

    stack.send_to(&mut b, from, b"back").unwrap();
    let (len, from) = recv(&mut stack, &mut a, &mut buf);
    assert_eq!((&buf[..len], from), (&b"back"[..], b_addr));
}

#[test]
fn dual_stack_socket_reports_ipv4_peers_as_ipv4() {
    let (mut stack, mut server, addr) = server(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    let peer = UdpSocket::bind((V4, 0)).unwrap();
    peer.send_to(b"v4", (V4, addr.port())).unwrap();

    let mut buf = [0; 64];
    let (len, from) = recv(&mut stack, &mut server, &mut buf);
    assert_eq!(
        (&buf[..len], from),
        (&b"v4"[..], peer.local_addr().unwrap())
    );

    stack.send_to(&mut server, from, b"back").unwrap();
    peer.set_read_timeout(Some(PATIENCE)).unwrap();
    let (len, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"back");
}

#[test]
fn broadcast_option_sets_so_broadcast_on_every_socket() {
    let (mut stack, bound, addr) = server(V4);
    let plain = client(&mut stack, addr);
    assert!(!SockRef::from(&bound).broadcast().unwrap());
    assert!(!SockRef::from(&plain).broadcast().unwrap());

    let mut stack = stack.with_broadcast(true);
    let mut bound = stack.socket().unwrap();
    stack.bind(&mut bound, 0).unwrap();
    let connected = client(&mut stack, addr);
    assert!(SockRef::from(&bound).broadcast().unwrap());
    assert!(SockRef::from(&connected).broadcast().unwrap());
}

#[test]
fn recv_buffer_size_option_sets_so_rcvbuf() {
    let mut stack = StdStack::new().with_bind_ip(V4).with_recv_buffer_size(8192);
    let mut socket = stack.socket().unwrap();
    stack.bind(&mut socket, 0).unwrap();
    // Linux reports twice the request (its bookkeeping overhead).
    assert_eq!(SockRef::from(&socket).recv_buffer_size().unwrap(), 2 * 8192);
}

#[test]
fn reuse_port_lets_two_sockets_bind_one_port() {
    let (mut stack, _first, addr) = server(V4);
    let mut second = stack.socket().unwrap();
    let err = stack.bind(&mut second, addr.port()).unwrap_err();
    assert_eq!(err.io_error().kind(), std::io::ErrorKind::AddrInUse);

    let mut stack = StdStack::new().with_bind_ip(V4).with_reuse_port(true);
    let mut first = stack.socket().unwrap();
    stack.bind(&mut first, 0).unwrap();
    let port = first.local_addr().unwrap().port();
    let mut second = stack.socket().unwrap();
    stack.bind(&mut second, port).unwrap();
}

#[test]
fn largest_ipv4_datagram_round_trips() {
    let (mut stack, mut server, addr) = server(V4);
    let mut client = client(&mut stack, addr);
    let payload: Vec<u8> = (0..=255).cycle().take(65507).collect();
    stack.send(&mut client, &payload).unwrap();

    let mut buf = vec![0; 65536];
    let (len, _) = recv(&mut stack, &mut server, &mut buf);
    assert_eq!(len, 65507);
    assert_eq!(buf[..len], payload[..]);
}

#[test]
fn unopened_socket_is_an_error_not_a_panic() {
    let mut stack = StdStack::new();
    let mut socket = stack.socket().unwrap();
    assert!(!socket.is_open());
    assert!(matches!(
        stack.send(&mut socket, b"x"),
        Err(nb::Error::Other(_))
    ));
    assert!(matches!(
        stack.receive(&mut socket, &mut [0; 4]),
        Err(nb::Error::Other(_))
    ));
    assert!(
        stack
            .wait_readable(&socket, within(Duration::ZERO))
            .is_err()
    );
    assert!(socket.local_addr().is_err());
}
