//! The batched server path over real sockets on 127.0.0.1 and ::1: several datagrams are
//! queued before one `poll`, so they arrive in one `recvmmsg` batch.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use udp_echo_core::responder::REFLECTION_PORTS;
use udp_echo_core::{Decision, DropReason, Instant, ResponderConfig, Wake};
use udp_echo_host::batch::BatchServer;
use udp_echo_host::mmsg::{BATCH, SendBatch};
use udp_echo_host::stack::StdStack;

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn batch_server(ip: IpAddr, config: ResponderConfig) -> (StdStack, BatchServer, SocketAddr) {
    let mut stack = StdStack::new().with_bind_ip(ip);
    let server = BatchServer::bind(&mut stack, 0, config).unwrap();
    let addr = server.socket().local_addr().unwrap();
    (stack, server, addr)
}

fn client(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Waits until `n` datagrams are queued on the server's socket (loopback delivers at once,
/// but give the kernel a moment), then polls once and returns the decisions in order.
fn poll_once(server: &mut BatchServer) -> (Vec<(SocketAddr, usize, Decision)>, Wake) {
    std::thread::sleep(Duration::from_millis(50));
    let mut seen = Vec::new();
    let wake = server
        .poll(Instant::ZERO, |r, d| seen.push((r.from, r.len, *d)))
        .unwrap();
    (seen, wake)
}

fn reply(s: &UdpSocket) -> String {
    let mut buf = [0u8; 64];
    let n = s.recv(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn one_batch_of_0_1_1472_and_65507_bytes_gets_exact_counts() {
    let (_stack, mut server, addr) = batch_server(V4, ResponderConfig::default());
    let c = client("127.0.0.1");
    let sizes = [0usize, 1, 1472, 65507];
    for size in sizes {
        c.send_to(&vec![b'x'; size], addr).unwrap();
    }
    let (seen, _) = poll_once(&mut server);
    assert_eq!(
        seen.iter().map(|s| s.1).collect::<Vec<_>>(),
        sizes,
        "one batch, true lengths"
    );
    for size in sizes {
        assert_eq!(reply(&c), format!("Your data was {size} bytes"));
    }
    let counters = server.counters();
    assert_eq!((counters.received, counters.replied), (4, 4));
    assert_eq!(counters.dropped(), 0);
}

#[test]
fn a_reflection_port_source_in_the_middle_of_a_batch_is_dropped_and_the_others_answered() {
    let (_stack, mut server, addr) = batch_server(V4, ResponderConfig::default());
    // Any reflection port free on this machine will do (all are unprivileged for root,
    // and the high ones for anyone).
    let Some(reflector) = REFLECTION_PORTS
        .iter()
        .rev()
        .find_map(|p| UdpSocket::bind(("127.0.0.1", *p)).ok())
    else {
        eprintln!("skipped: no reflection port can be bound here");
        return;
    };
    let c = client("127.0.0.1");
    c.send_to(b"first", addr).unwrap();
    reflector.send_to(b"spoofed", addr).unwrap();
    c.send_to(b"last", addr).unwrap();
    let (seen, _) = poll_once(&mut server);
    let decisions: Vec<_> = seen.iter().map(|s| s.2).collect();
    assert_eq!(decisions.len(), 3);
    assert!(matches!(decisions[0], Decision::Reply(_)));
    assert_eq!(decisions[1], Decision::Drop(DropReason::ReflectionPort));
    assert!(matches!(decisions[2], Decision::Reply(_)));
    assert_eq!(reply(&c), "Your data was 5 bytes");
    assert_eq!(reply(&c), "Your data was 4 bytes");
    reflector.set_nonblocking(true).unwrap();
    assert!(
        reflector.recv(&mut [0u8; 64]).is_err(),
        "the reflector got a reply"
    );
    let counters = server.counters();
    assert_eq!(counters.dropped_for(DropReason::ReflectionPort), 1);
    assert_eq!((counters.received, counters.replied), (3, 2));
}

#[test]
fn a_loop_guard_and_a_full_batch_hold_within_one_poll() {
    let (_stack, mut server, addr) = batch_server(V4, ResponderConfig::default());
    let c = client("127.0.0.1");
    c.send_to(b"Your data was 5 bytes", addr).unwrap();
    for _ in 0..BATCH + 3 {
        c.send_to(b"x", addr).unwrap();
    }
    let (seen, wake) = poll_once(&mut server);
    assert_eq!(seen.len(), BATCH, "one batch per poll");
    assert_eq!(wake, Wake::Now, "more is waiting");
    assert_eq!(seen[0].2, Decision::Drop(DropReason::Loop));
    let (rest, wake) = poll_once(&mut server);
    assert_eq!(rest.len(), 4);
    assert_eq!(wake, Wake::OnDatagram);
    assert_eq!(server.counters().replied, BATCH as u64 + 3);
}

#[test]
fn ipv6_and_a_dual_stack_socket_answer_their_peers() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    let (_stack, mut server, addr) =
        batch_server("::".parse().unwrap(), ResponderConfig::default());
    assert!(server.knows_destinations());
    let v6 = client("::1");
    let v4 = client("127.0.0.1");
    v6.send_to(b"six", ("::1", addr.port())).unwrap();
    v4.send_to(b"four", ("127.0.0.1", addr.port())).unwrap();
    let (seen, _) = poll_once(&mut server);
    assert_eq!(seen.len(), 2);
    // The responder sees IPv4 peers as IPv4.
    assert!(seen.iter().any(|s| s.0.is_ipv4()));
    assert_eq!(reply(&v6), "Your data was 3 bytes");
    assert_eq!(reply(&v4), "Your data was 4 bytes");
}

#[test]
fn a_reply_the_kernel_refuses_is_counted_and_the_rest_of_the_batch_still_goes_out() {
    let rx = client("127.0.0.1");
    let to = rx.local_addr().unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut batch = SendBatch::new();
    let count = udp_echo_core::Reply::new;
    assert!(batch.push(Some(to), count(1), None, false));
    // Port 0 is no destination: the kernel refuses this one message (EINVAL).
    assert!(batch.push(Some("127.0.0.1:0".parse().unwrap()), count(2), None, false));
    assert!(batch.push(Some(to), count(3), None, false));
    let sent = batch.flush(&tx);
    assert_eq!((sent.sent, sent.failed), (2, 1));
    assert!(batch.is_empty());
    assert_eq!(reply(&rx), "Your data was 1 bytes");
    assert_eq!(reply(&rx), "Your data was 3 bytes");
}
