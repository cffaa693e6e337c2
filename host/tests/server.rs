//! The host's server over real sockets on 127.0.0.1 and ::1, on both datagram paths:
//! plain datagrams, GSO trains (one `sendmsg` with `UDP_SEGMENT` from the client, one
//! GRO buffer at the server), the guards charged per datagram, and exact counters.

// GSO/GRO control messages (nix) and the batched path: Linux only.
#![cfg(target_os = "linux")]

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant as StdInstant};

use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
use udp_echo_core::{
    Decision, DropReason, Instant, REFLECTION_PORTS, RateLimit, Received, ResponderConfig,
};
use udp_echo_host::server::{Observer, Options, Server};
use udp_echo_host::udp::{Offload, Path};

/// Every decision the server took, in order.
#[derive(Default)]
struct Seen(Vec<(SocketAddr, usize, Option<Decision>)>);

impl Observer for Seen {
    fn datagram(&mut self, r: &Received<'_>, d: Option<&Decision>) {
        self.0.push((r.from, r.len, d.copied()));
    }
}

fn server(bind: &str, path: Path, offload: Offload, config: ResponderConfig) -> Server {
    let mut options = Options::new(bind.parse().unwrap());
    options.path = path;
    options.offload = offload;
    options.config = config;
    Server::bind(&options).unwrap()
}

const PATHS: [Path; 2] = [Path::Batched, Path::Portable];

/// A server on 127.0.0.1 that answers everything, with every offload.
fn plain_server(path: Path) -> Server {
    server(
        "127.0.0.1:0",
        path,
        Offload::ALL,
        ResponderConfig::permissive(),
    )
}

/// Polls until the server has seen `n` datagrams (or 5 s pass).
fn serve_until(server: &mut Server, seen: &mut Seen, n: usize) {
    let deadline = StdInstant::now() + Duration::from_secs(5);
    while seen.0.len() < n && StdInstant::now() < deadline {
        let _ = server.poll(Instant::ZERO, seen).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(seen.0.len(), n, "datagrams seen");
}

fn client(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends `segments` (all but the last of one length) as one GSO train.
fn send_train(c: &UdpSocket, to: SocketAddr, segments: &[Vec<u8>]) {
    let bytes: Vec<u8> = segments.concat();
    let size = u16::try_from(segments[0].len()).unwrap();
    let to = SockaddrStorage::from(to);
    sendmsg(
        c.as_raw_fd(),
        &[IoSlice::new(&bytes)],
        &[ControlMessage::UdpGsoSegments(&size)],
        MsgFlags::empty(),
        Some(&to),
    )
    .unwrap();
}

fn train(size: usize, count: usize, last: usize) -> Vec<Vec<u8>> {
    let mut t = vec![vec![b'x'; size]; count - 1];
    t.push(vec![b'y'; last]);
    t
}

/// The next `n` replies' texts.
fn texts(c: &UdpSocket, n: usize) -> Vec<String> {
    replies(c, n).into_iter().map(|r| r.0).collect()
}

/// The next `n` replies, as text, with the server's address they came from.
fn replies(c: &UdpSocket, n: usize) -> Vec<(String, SocketAddr)> {
    let mut buf = [0u8; 64];
    (0..n)
        .map(|_| {
            let (len, from) = c.recv_from(&mut buf).unwrap();
            (String::from_utf8_lossy(&buf[..len]).into_owned(), from)
        })
        .collect()
}

fn no_more_replies(c: &UdpSocket) {
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(c.recv_from(&mut buf).is_err(), "an extra reply");
}

fn count(n: usize) -> String {
    format!("Your data was {n} bytes")
}

fn lens(seen: &Seen) -> Vec<usize> {
    seen.0.iter().map(|s| s.1).collect()
}

#[test]
fn a_train_with_a_shorter_last_segment_is_answered_datagram_by_datagram() {
    for path in PATHS {
        for (bind, peer) in [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "::1")] {
            let mut s = server(bind, path, Offload::ALL, ResponderConfig::permissive());
            let c = client(peer);
            send_train(&c, s.local_addr(), &train(100, 32, 37));
            let mut seen = Seen::default();
            serve_until(&mut s, &mut seen, 32);
            let mut expect = vec![100; 31];
            expect.push(37);
            assert_eq!(lens(&seen), expect, "{path:?} {bind}");
            let got = replies(&c, 32);
            for (i, (text, _)) in got.iter().enumerate() {
                assert_eq!(text, &count(expect[i]), "{path:?} {bind} reply {i}");
            }
            no_more_replies(&c);
            assert_eq!(s.io_stats().buffers, 1, "{path:?} {bind}: one GRO buffer");
            assert_eq!(s.io_stats().transmits, 1, "{path:?} {bind}: one GSO train");
        }
    }
}

#[test]
fn replies_of_22_bytes_then_one_of_21_go_out_as_one_train() {
    // Segments of 10 bytes: replies "Your data was 10 bytes" (22); a last one of 9: 21.
    for path in PATHS {
        let mut s = plain_server(path);
        let c = client("127.0.0.1");
        send_train(&c, s.local_addr(), &train(10, 8, 9));
        let mut seen = Seen::default();
        serve_until(&mut s, &mut seen, 8);
        let got = texts(&c, 8);
        let mut expect = vec![count(10); 7];
        expect.push(count(9));
        assert_eq!(got, expect, "{path:?}");
        assert_eq!(s.io_stats().transmits, 1, "{path:?}");
    }
}

#[test]
fn a_reply_longer_than_the_train_before_it_is_not_coalesced() {
    // A train of 99-byte segments (replies of 22 bytes) and then, in the same batch from
    // the same client, a 100-byte datagram (a reply of 23 bytes): two transmits.
    for path in PATHS {
        let mut s = plain_server(path);
        let c = client("127.0.0.1");
        send_train(&c, s.local_addr(), &train(99, 4, 99));
        c.send_to(&[b'z'; 100], s.local_addr()).unwrap();
        std::thread::sleep(Duration::from_millis(20)); // both queued before one poll
        let mut seen = Seen::default();
        serve_until(&mut s, &mut seen, 5);
        let got = texts(&c, 5);
        let mut expect = vec![count(99); 4];
        expect.push(count(100));
        assert_eq!(got, expect, "{path:?}: in order, exact");
        assert_eq!(s.io_stats().transmits, 2, "{path:?}");
    }
}

#[test]
fn a_train_from_a_reflection_port_is_dropped_whole_and_counted() {
    // 11211 (memcached) and 5353 (mDNS) can be bound without root; skip one in use.
    let Some(c) = [11211u16, 5353, 1900]
        .iter()
        .find_map(|p| UdpSocket::bind(("127.0.0.1", *p)).ok())
    else {
        eprintln!("skipped: no reflection port free to bind");
        return;
    };
    assert!(REFLECTION_PORTS.contains(&c.local_addr().unwrap().port()));
    for path in PATHS {
        let mut s = server(
            "127.0.0.1:0",
            path,
            Offload::ALL,
            ResponderConfig::default(),
        );
        send_train(&c, s.local_addr(), &train(20, 16, 20));
        let mut seen = Seen::default();
        serve_until(&mut s, &mut seen, 16);
        let counters = s.counters();
        assert_eq!(counters.received, 16, "{path:?}");
        assert_eq!(
            counters.dropped_for(DropReason::ReflectionPort),
            16,
            "{path:?}"
        );
        assert_eq!(counters.replied, 0, "{path:?}");
        assert_eq!(s.io_stats().transmits, 0, "{path:?}");
    }
}

#[test]
fn a_train_larger_than_the_remaining_burst_is_partly_answered_the_rest_source_limited() {
    for path in PATHS {
        let mut config = ResponderConfig::default();
        config.source_limit = Some(RateLimit {
            per_second: 1,
            burst: 10,
        });
        let mut s = server("127.0.0.1:0", path, Offload::ALL, config);
        let c = client("127.0.0.1");
        // 4 of the 10 tokens first, then a train of 20: 6 answered, 14 limited.
        for _ in 0..4 {
            c.send_to(b"warm", s.local_addr()).unwrap();
        }
        let mut seen = Seen::default();
        serve_until(&mut s, &mut seen, 4);
        send_train(&c, s.local_addr(), &train(30, 20, 30));
        serve_until(&mut s, &mut seen, 24);
        let counters = s.counters();
        assert_eq!(counters.replied, 10, "{path:?}");
        assert_eq!(
            counters.dropped_for(DropReason::SourceLimited),
            14,
            "{path:?}"
        );
        assert_eq!(
            counters.received,
            counters.replied + counters.dropped(),
            "{path:?}"
        );
        let got = replies(&c, 10);
        assert_eq!(
            got.iter().filter(|r| r.0 == count(30)).count(),
            6,
            "{path:?}"
        );
        no_more_replies(&c);
    }
}

#[test]
fn the_largest_and_the_empty_datagram_get_exact_counts() {
    for path in PATHS {
        for (bind, peer, largest) in [
            ("127.0.0.1:0", "127.0.0.1", 65_507),
            ("[::1]:0", "::1", 65_527),
        ] {
            let mut s = server(bind, path, Offload::ALL, ResponderConfig::permissive());
            let c = client(peer);
            c.send_to(&vec![b'x'; largest], s.local_addr()).unwrap();
            c.send_to(&[], s.local_addr()).unwrap();
            let mut seen = Seen::default();
            serve_until(&mut s, &mut seen, 2);
            assert_eq!(lens(&seen), [largest, 0], "{path:?} {bind}");
            let got = texts(&c, 2);
            assert_eq!(got, [count(largest), count(0)], "{path:?} {bind}");
        }
    }
}

#[test]
fn with_gro_refused_every_datagram_of_a_train_still_arrives_and_is_answered() {
    for path in PATHS {
        let mut s = server(
            "127.0.0.1:0",
            path,
            Offload::NONE,
            ResponderConfig::permissive(),
        );
        assert!(!s.offload().gro && !s.offload().gso, "{path:?}");
        let c = client("127.0.0.1");
        send_train(&c, s.local_addr(), &train(50, 24, 7));
        let mut seen = Seen::default();
        serve_until(&mut s, &mut seen, 24);
        let got = replies(&c, 24);
        assert_eq!(
            got.iter().filter(|r| r.0 == count(50)).count(),
            23,
            "{path:?}"
        );
        assert_eq!(got[23].0, count(7), "{path:?}");
        let stats = s.io_stats();
        assert_eq!(stats.buffers, 24, "{path:?}: one buffer per datagram");
        assert_eq!(stats.transmits, 24, "{path:?}: one reply per send");
    }
}

#[test]
fn counters_are_exact_per_datagram_under_mixed_trains() {
    for path in PATHS {
        let mut config = ResponderConfig::default();
        config.source_limit = None;
        let mut s = server("127.0.0.1:0", path, Offload::ALL, config);
        let c = client("127.0.0.1");
        send_train(&c, s.local_addr(), &train(12, 10, 12));
        // A reply-shaped datagram (a loop) and a train of them.
        let reply = count(5).into_bytes();
        c.send_to(&reply, s.local_addr()).unwrap();
        send_train(&c, s.local_addr(), &vec![reply.clone(); 5]);
        let mut seen = Seen::default();
        serve_until(&mut s, &mut seen, 16);
        let counters = s.counters();
        assert_eq!(counters.received, 16, "{path:?}");
        assert_eq!(counters.replied, 10, "{path:?}");
        assert_eq!(counters.dropped_for(DropReason::Loop), 6, "{path:?}");
        assert_eq!(counters.received, counters.replied + counters.dropped());
        assert_eq!(replies(&c, 10).len(), 10);
        no_more_replies(&c);
    }
}

#[test]
fn a_wildcard_server_replies_from_the_address_each_request_was_sent_to() {
    // 127.0.0.2 is this host's too (all of 127/8 is loopback).
    for path in PATHS {
        for (bind, to) in [
            ("0.0.0.0:0", "127.0.0.2"),
            ("[::]:0", "127.0.0.3"),
            ("[::]:0", "::1"),
        ] {
            let mut s = server(bind, path, Offload::ALL, ResponderConfig::permissive());
            let to = SocketAddr::new(to.parse().unwrap(), s.local_addr().port());
            let c = client(if to.is_ipv4() { "127.0.0.1" } else { "::1" });
            send_train(&c, to, &train(10, 3, 10));
            c.send_to(b"one", to).unwrap();
            let mut seen = Seen::default();
            serve_until(&mut s, &mut seen, 4);
            for (text, from) in replies(&c, 4) {
                assert!(text.starts_with("Your data was"), "{path:?} {bind}");
                assert_eq!(from, to, "{path:?} {bind}: the reply's source");
            }
            // The IPv4 peer of a dual-stack socket is seen as plain IPv4.
            assert!(
                seen.0
                    .iter()
                    .all(|s| s.0.ip() == c.local_addr().unwrap().ip())
            );
        }
    }
}

#[test]
fn a_listener_tells_every_datagram_of_a_train_and_answers_none() {
    for path in PATHS {
        let mut options = Options::new("127.0.0.1:0".parse().unwrap());
        options.path = path;
        let mut l: Server = Server::listen(&options).unwrap();
        let c = client("127.0.0.1");
        send_train(&c, l.local_addr(), &train(8, 6, 3));
        let mut seen = Seen::default();
        serve_until(&mut l, &mut seen, 6);
        assert!(seen.0.iter().all(|s| s.2.is_none()));
        assert_eq!(lens(&seen), [8, 8, 8, 8, 8, 3]);
        assert_eq!(l.counters().received, 6);
        no_more_replies(&c);
    }
}

#[test]
fn the_batched_path_is_taken_on_linux_and_the_portable_one_when_asked() {
    let s = server(
        "127.0.0.1:0",
        Path::Batched,
        Offload::ALL,
        ResponderConfig::default(),
    );
    assert_eq!(s.path(), Path::Batched);
    assert!(s.fallback().is_none());
    let p = server(
        "127.0.0.1:0",
        Path::Portable,
        Offload::ALL,
        ResponderConfig::default(),
    );
    assert_eq!(p.path(), Path::Portable);
    let _: IpAddr = s.local_addr().ip();
}

#[test]
fn a_train_the_kernel_refuses_to_segment_goes_out_datagram_by_datagram_and_gso_goes_off() {
    use udp_echo_host::udp::{self, BindOptions, Datagrams, Transmit};
    // More segments than the kernel's UDP_MAX_SEGMENTS (64 or 128): EINVAL, as a device
    // without checksum offload refuses any train with EIO.
    for path in PATHS {
        let socket = udp::bind("127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
        let mut io = Datagrams::new(socket, path, Offload::ALL).unwrap();
        assert!(io.offload().gso, "{path:?}: GSO on at first");
        let c = client("127.0.0.1");
        let contents = vec![b'q'; 200];
        let sent = io.send_transmits(&[Transmit {
            to: c.local_addr().unwrap(),
            src: None,
            segment_size: Some(1),
            contents: &contents,
        }]);
        assert_eq!((sent.sent, sent.failed), (200, 0), "{path:?}");
        assert!(!io.offload().gso, "{path:?}: GSO off after the refusal");
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 8];
        for i in 0..200 {
            let n = c.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"q", "{path:?} datagram {i}");
        }
    }
}
