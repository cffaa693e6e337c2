//! The server, listener, broadcaster and discovery drivers over the scripted stack.

mod support;

use std::net::SocketAddr;

use support::*;
use udp_echo_core::wire::TooLarge;
use udp_echo_core::{
    BATCH, BroadcastError, Broadcaster, Decision, Discovery, DiscoveryEvent, DropReason, Found,
    Listener, ResponderConfig, Server, StackCaps, Wake,
};

/// Polls a discovery at `now` until it waits or is done; returns every event.
fn drive<const N: usize>(
    d: &mut Discovery<'_, MockStack, N>,
    stack: &mut MockStack,
    now: udp_echo_core::Instant,
) -> Vec<DiscoveryEvent> {
    let mut events = Vec::new();
    for _ in 0..1000 {
        let event = d.poll(stack, now).unwrap();
        events.push(event);
        if matches!(event, DiscoveryEvent::Wait(_) | DiscoveryEvent::Done) {
            return events;
        }
    }
    panic!("discovery never waits: {events:?}");
}

fn found_in(events: &[DiscoveryEvent]) -> Vec<Found> {
    events
        .iter()
        .filter_map(|e| match e {
            DiscoveryEvent::Found(f) => Some(*f),
            _ => None,
        })
        .collect()
}

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn datagram(from: SocketAddr, bytes: &[u8]) -> Incoming {
    Incoming::Datagram(from, bytes.to_vec())
}

#[test]
fn server_answers_each_datagram_with_its_count_to_its_source() {
    let mut stack = MockStack::default();
    let mut server = Server::bind(&mut stack, 6666, ResponderConfig::default()).unwrap();
    stack.deliver(0, datagram(peer(40001), b"hello world!"));
    stack.deliver(0, datagram(peer(40002), b""));
    stack.deliver(0, datagram(peer(40003), &[0xff, 0x00, 0xfe]));
    let mut seen = Vec::new();
    let mut buf = [0u8; 2048];
    let wake = server
        .poll(&mut stack, &mut buf, at(5), |d, decision| {
            seen.push((d.from, d.len, *decision))
        })
        .unwrap();
    assert_eq!(
        wake,
        Wake::OnDatagram,
        "an empty queue means: wait for a datagram"
    );
    let sent: Vec<_> = stack
        .sent
        .iter()
        .map(|s| (s.to, String::from_utf8(s.bytes.clone()).unwrap()))
        .collect();
    assert_eq!(
        sent,
        [
            (peer(40001), "Your data was 12 bytes".to_string()),
            (peer(40002), "Your data was 0 bytes".to_string()),
            (peer(40003), "Your data was 3 bytes".to_string()),
        ]
    );
    assert_eq!(seen.len(), 3);
    assert_eq!(server.counters().replied, 3);
}

#[test]
fn server_never_answers_a_byte_count_reply_or_a_reflection_port() {
    let mut stack = MockStack::default();
    let mut server = Server::bind(&mut stack, 6666, ResponderConfig::default()).unwrap();
    stack.deliver(0, datagram(peer(6667), b"Your data was 5 bytes"));
    stack.deliver(0, datagram(peer(19), b"chargen"));
    let mut decisions = Vec::new();
    let _ = server
        .poll(&mut stack, &mut [0u8; 64], at(0), |_, d| decisions.push(*d))
        .unwrap();
    assert_eq!(
        decisions,
        [
            Decision::Drop(DropReason::Loop),
            Decision::Drop(DropReason::ReflectionPort)
        ]
    );
    assert!(stack.sent.is_empty());
}

#[test]
fn server_answers_the_true_length_of_a_datagram_larger_than_its_buffer() {
    let mut stack = MockStack::default();
    let mut server = Server::bind(&mut stack, 6666, ResponderConfig::default())
        .unwrap()
        .with_caps(MOCK_CAPS);
    stack.deliver(0, datagram(peer(40000), &[1u8; 1000]));
    let _ = server
        .poll(&mut stack, &mut [0u8; 16], at(0), |d, _| {
            assert_eq!((d.len, d.head.len()), (1000, 16))
        })
        .unwrap();
    assert_eq!(stack.sent[0].bytes, b"Your data was 1000 bytes");
}

#[test]
fn server_drops_what_a_length_hiding_stack_may_have_cut() {
    let mut stack = MockStack {
        reports_true_length: false,
        ..MockStack::default()
    };
    let caps = StackCaps {
        true_lengths: false,
        ..MOCK_CAPS
    };
    let mut server = Server::bind(&mut stack, 6666, ResponderConfig::default())
        .unwrap()
        .with_caps(caps);
    stack.deliver(0, datagram(peer(40000), &[1u8; 1000]));
    stack.deliver(0, Incoming::Error(MockError::Truncated));
    stack.deliver(0, datagram(peer(40000), &[1u8; 15]));
    let _ = server
        .poll(&mut stack, &mut [0u8; 16], at(0), |_, _| {})
        .unwrap();
    assert_eq!(stack.sent.len(), 1);
    assert_eq!(stack.sent[0].bytes, b"Your data was 15 bytes");
    assert_eq!(server.counters().dropped_for(DropReason::Cut), 2);
    assert_eq!(server.counters().received, 3);
}

#[test]
fn server_handles_a_bounded_batch_per_call() {
    let mut stack = MockStack::default();
    let mut server = Server::bind(&mut stack, 6666, ResponderConfig::default()).unwrap();
    for i in 0..BATCH + 8 {
        stack.deliver(0, datagram(peer(40000 + i as u16), b"x"));
    }
    let mut buf = [0u8; 64];
    assert_eq!(
        server.poll(&mut stack, &mut buf, at(3), |_, _| {}).unwrap(),
        Wake::Now
    );
    assert_eq!(stack.sent.len(), BATCH);
    assert_eq!(
        server.poll(&mut stack, &mut buf, at(3), |_, _| {}).unwrap(),
        Wake::OnDatagram
    );
    assert_eq!(stack.sent.len(), BATCH + 8);
}

#[test]
fn server_counts_a_reply_the_stack_could_not_take_and_goes_on() {
    let mut stack = MockStack::default();
    let mut server = Server::bind(&mut stack, 6666, ResponderConfig::default()).unwrap();
    stack.send_script.extend([
        Err(nb::Error::WouldBlock),
        Err(nb::Error::Other(MockError::Broken)),
    ]);
    for _ in 0..3 {
        stack.deliver(0, datagram(peer(40000), b"abc"));
    }
    let _ = server
        .poll(&mut stack, &mut [0u8; 64], at(0), |_, _| {})
        .unwrap();
    assert_eq!(server.counters().send_failed, 2);
    assert_eq!(stack.sent.len(), 1);
}

#[test]
fn server_reports_a_broken_receive() {
    let mut stack = MockStack::default();
    let mut server = Server::bind(&mut stack, 6666, ResponderConfig::default()).unwrap();
    stack.deliver(0, Incoming::Error(MockError::Broken));
    assert!(
        server
            .poll(&mut stack, &mut [0u8; 64], at(0), |_, _| {})
            .is_err()
    );
}

#[test]
fn listener_hands_datagrams_over_and_never_replies() {
    let mut stack = MockStack::default();
    let mut listener = Listener::bind(&mut stack, 6666).unwrap();
    stack.deliver(0, datagram(peer(40000), b"hello all"));
    stack.deliver(0, datagram(peer(40001), &[0xc3, 0x28]));
    let mut got = Vec::new();
    let _ = listener
        .poll(&mut stack, &mut [0u8; 64], at(0), |d| {
            got.push((d.from, d.head.to_vec()))
        })
        .unwrap();
    assert_eq!(
        got,
        [
            (peer(40000), b"hello all".to_vec()),
            (peer(40001), vec![0xc3, 0x28])
        ]
    );
    assert_eq!(listener.received(), 2);
    assert!(stack.sent.is_empty());
}

#[test]
fn broadcaster_sends_to_the_broadcast_address_and_rejects_oversize() {
    let mut stack = MockStack::default();
    let to: SocketAddr = "255.255.255.255:6666".parse().unwrap();
    let mut b = Broadcaster::open(&mut stack, 0).unwrap();
    b.send(&mut stack, to, b"anyone?").unwrap();
    assert_eq!(stack.sent[0].to, to);
    assert_eq!(
        b.send(&mut stack, to, &vec![0u8; 65_508]).unwrap_err(),
        nb::Error::Other(BroadcastError::PayloadTooLarge(TooLarge {
            len: 65_508,
            max: 65_507
        }))
    );
}

#[test]
fn discovery_lists_each_server_once_until_the_deadline() {
    let mut stack = MockStack::default();
    let to: SocketAddr = "255.255.255.255:6666".parse().unwrap();
    let mut d: Discovery<'_, _, 2> =
        Discovery::start(&mut stack, 0, to, b"ping", ms(1000)).unwrap();
    assert_eq!(
        drive(&mut d, &mut stack, at(0)),
        [
            DiscoveryEvent::Sent(at(0)),
            DiscoveryEvent::Wait(Wake::At(at(1000)))
        ]
    );
    assert_eq!(stack.sent[0].to, to);
    let (a, b, c) = (
        peer(6666),
        SocketAddr::from(([127, 0, 0, 2], 6666)),
        SocketAddr::from(([127, 0, 0, 3], 6666)),
    );
    stack.deliver(0, datagram(a, &reply(4)));
    stack.deliver(0, datagram(a, &reply(4)));
    stack.deliver(0, datagram(b, &reply(5)));
    stack.deliver(0, datagram(b, b"not a reply"));
    let mut announced = found_in(&drive(&mut d, &mut stack, at(12)));
    stack.deliver(0, datagram(b, &reply(4)));
    stack.deliver(0, datagram(c, &reply(4)));
    let last = drive(&mut d, &mut stack, at(1000));
    assert_eq!(last.last(), Some(&DiscoveryEvent::Done));
    announced.extend(found_in(&last));
    let expected = [
        Found {
            addr: a,
            rtt: ms(12),
        },
        Found {
            addr: b,
            rtt: ms(1000),
        },
    ];
    assert_eq!(d.survey().found(), expected);
    assert_eq!(announced, expected);
    assert_eq!(
        d.survey().overflow(),
        1,
        "a third server does not fit a list of 2"
    );
    assert_eq!(d.survey().ignored(), 2, "the wrong count and the garbage");
    assert_eq!(stack.sent.len(), 1, "discovery sends exactly one request");
}

#[test]
fn discovery_reads_answers_only_after_the_send_call_so_rtt_is_measured() {
    let mut stack = MockStack::default();
    let to: SocketAddr = "255.255.255.255:6666".parse().unwrap();
    let mut d: Discovery<'_, _, 4> = Discovery::start(&mut stack, 0, to, b"ab", ms(500)).unwrap();
    // An answer already waiting when the request goes out (a very fast server).
    stack.deliver(0, datagram(peer(6666), &reply(2)));
    assert_eq!(
        d.poll(&mut stack, at(10)).unwrap(),
        DiscoveryEvent::Sent(at(10))
    );
    assert!(d.survey().found().is_empty());
    let _ = drive(&mut d, &mut stack, at(13));
    assert_eq!(
        d.survey().found(),
        [Found {
            addr: peer(6666),
            rtt: ms(3)
        }]
    );
}

#[test]
fn discovery_whose_send_stays_blocked_ends_one_window_after_it_began() {
    let mut stack = MockStack {
        blocked_after_script: true,
        ..MockStack::default()
    };
    let to: SocketAddr = "255.255.255.255:6666".parse().unwrap();
    let mut d: Discovery<'_, _, 4> = Discovery::start(&mut stack, 0, to, b"ab", ms(500)).unwrap();
    let mut now = at(0);
    let mut wakes = 0;
    loop {
        match d.poll(&mut stack, now).unwrap() {
            DiscoveryEvent::Wait(wake) => {
                wakes += 1;
                let next = wake.deadline(now).unwrap();
                assert!(next > now, "no spin");
                now = next;
            }
            DiscoveryEvent::Done => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(now, at(500));
    assert_eq!(d.survey().sent_at(), None);
    assert!(wakes < 15, "{wakes} wake-ups: pauses double");
}
