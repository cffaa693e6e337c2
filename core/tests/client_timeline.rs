//! Exact-millisecond timelines of the client driver under simulated time.

mod expect;
mod support;

use support::*;
#[cfg(feature = "jitter")]
use udp_echo_core::Jitter;
use udp_echo_core::{
    Client, ClientError, ClientEvent, ExchangeError, GaveUp, Outcome, Replied, RetryPolicy,
    Verdict, Wake,
};

fn silent(_: u32) -> Vec<Scheduled> {
    Vec::new()
}

fn gave_up(run: &Run) -> GaveUp {
    match run.outcome {
        Outcome::GaveUp(g) => g,
        other => panic!("expected a give-up, got {other:?}"),
    }
}

fn replied(run: &Run) -> Replied {
    match run.outcome {
        Outcome::Reply(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// The timelines every client driver shares (see `expect`), on the sync `Client`.
#[test]
fn the_shared_timelines_hold() {
    for case in expect::cases() {
        let answer = case.answer;
        let run = run_client(
            case.policy,
            b"hello",
            1,
            MockStack::default(),
            |k| match answer {
                Some((nth, after)) if nth == k => vec![support::answer(after, server(), reply(5))],
                _ => Vec::new(),
            },
        );
        expect::check(&case, &run.sends_ms, run.outcome);
        let end = match case.end {
            expect::End::Reply { at_ms, .. } | expect::End::GaveUp { at_ms, .. } => at_ms,
        };
        assert_eq!(run.ended_ms, end, "{}: the clock at the end", case.name);
    }
}

#[test]
fn gives_up_after_five_sends_at_3100_ms() {
    let run = run_client(
        RetryPolicy::default(),
        b"hello",
        1,
        MockStack::default(),
        silent,
    );
    assert_eq!(run.sends_ms, [0, 100, 300, 700, 1500]);
    assert_eq!(run.ended_ms, 3100);
    let g = gave_up(&run);
    assert_eq!(
        (g.attempts, g.unsent, g.elapsed, g.refused),
        (5, 0, ms(3100), false)
    );
    assert!(
        run.stack
            .sent
            .iter()
            .all(|s| s.bytes == b"hello" && s.to == server())
    );
    // One sleep per wait: the driver only asks to be woken at deadlines.
    assert_eq!(run.waits, 5);
}

#[test]
fn reply_on_attempt_k_ends_the_exchange_with_karns_flag() {
    let sends = [0u64, 100, 300, 700, 1500];
    for k in 1..=5u32 {
        let run = run_client(
            RetryPolicy::default(),
            b"abc",
            1,
            MockStack::default(),
            |n| {
                if n == k {
                    vec![answer(7, server(), reply(3))]
                } else {
                    vec![]
                }
            },
        );
        let r = replied(&run);
        assert_eq!(run.sends_ms, sends[..k as usize], "k = {k}");
        assert_eq!(run.ended_ms, sends[k as usize - 1] + 7);
        assert_eq!((r.count, r.attempts, r.rtt), (3, k, ms(7)));
        assert_eq!(
            r.rtt_ambiguous,
            k > 1,
            "an RTT after a retransmission is ambiguous"
        );
        assert_eq!(r.elapsed, ms(sends[k as usize - 1] + 7));
    }
}

#[test]
fn late_reply_to_the_first_send_is_accepted_after_a_resend() {
    // The reply to send 1 arrives at 150 ms, after send 2 went out at 100 ms.
    let run = run_client(
        RetryPolicy::default(),
        b"abc",
        1,
        MockStack::default(),
        |n| {
            if n == 1 {
                vec![answer(150, server(), reply(3))]
            } else {
                vec![]
            }
        },
    );
    let r = replied(&run);
    assert_eq!(run.sends_ms, [0, 100]);
    assert_eq!((r.attempts, r.rtt, r.rtt_ambiguous), (2, ms(50), true));
}

#[test]
fn stale_reply_with_another_count_is_ignored_without_moving_the_deadline() {
    let run = run_client(
        RetryPolicy::default(),
        b"abcd",
        1,
        MockStack::default(),
        |n| match n {
            1 => vec![answer(50, server(), reply(99))],
            2 => vec![answer(30, server(), reply(4))],
            _ => vec![],
        },
    );
    assert_eq!(run.sends_ms, [0, 100]);
    assert_eq!(run.ended_ms, 130);
    assert_eq!(replied(&run).attempts, 2);
}

#[test]
fn datagram_from_a_foreign_address_is_ignored() {
    let stranger = "192.0.2.99:6666".parse().unwrap();
    let run = run_client(
        RetryPolicy::default(),
        b"abcd",
        1,
        MockStack::default(),
        |n| match n {
            1 => vec![answer(10, stranger, reply(4))],
            _ => vec![],
        },
    );
    assert_eq!(run.sends_ms, [0, 100, 300, 700, 1500]);
    assert_eq!(run.ended_ms, 3100);
    assert_eq!(gave_up(&run).attempts, 5);
}

#[test]
fn garbage_and_oversized_datagrams_are_ignored() {
    let run = run_client(
        RetryPolicy::default(),
        b"xy",
        1,
        MockStack::default(),
        |n| match n {
            1 => vec![
                answer(10, server(), b"Your data was 02 bytes".to_vec()),
                answer(20, server(), vec![0xff; 300]),
                answer(30, server(), b"Your data was 2 bytes\n".to_vec()),
            ],
            2 => vec![answer(1, server(), reply(2))],
            _ => vec![],
        },
    );
    assert_eq!(run.sends_ms, [0, 100]);
    assert_eq!(run.ended_ms, 101);
}

#[test]
fn icmp_refused_on_attempt_2_is_reported_but_never_ends_the_schedule() {
    let run = run_client(
        RetryPolicy::default(),
        b"hi",
        1,
        MockStack::default(),
        |n| {
            if n == 2 { vec![refused(1)] } else { vec![] }
        },
    );
    assert_eq!(run.sends_ms, [0, 100, 300, 700, 1500]);
    assert_eq!(run.ended_ms, 3100);
    assert!(gave_up(&run).refused);
}

#[test]
fn a_server_that_starts_after_a_refusal_still_gets_through() {
    let run = run_client(
        RetryPolicy::default(),
        b"hi",
        1,
        MockStack::default(),
        |n| match n {
            1 => vec![refused(1)],
            3 => vec![answer(2, server(), reply(2))],
            _ => vec![],
        },
    );
    assert_eq!(run.sends_ms, [0, 100, 300]);
    assert_eq!(replied(&run).attempts, 3);
}

#[test]
fn send_refused_by_a_pending_icmp_error_is_retried_at_once() {
    let mut stack = MockStack::default();
    stack
        .send_script
        .extend([Ok(()), Err(nb::Error::Other(MockError::Refused))]);
    let run = run_client(RetryPolicy::default(), b"hi", 1, stack, silent);
    assert_eq!(
        run.sends_ms,
        [0, 100, 300, 700, 1500],
        "the refused send is retried at 100 ms"
    );
    assert_eq!(run.ended_ms, 3100);
    assert!(gave_up(&run).refused);
}

#[test]
fn a_stack_that_always_refuses_sends_pauses_instead_of_spinning() {
    let mut stack = MockStack::default();
    stack.send_script.extend(std::iter::repeat_n(
        Err(nb::Error::Other(MockError::Refused)),
        10_000,
    ));
    let run = run_client(RetryPolicy::default(), b"hi", 1, stack, silent);
    assert!(run.sends_ms.is_empty());
    assert_eq!(run.ended_ms, 3100);
    let g = gave_up(&run);
    assert_eq!((g.attempts, g.unsent, g.refused), (0, 5, true));
    assert!(run.waits < 80, "{} wake-ups: backs off", run.waits);
}

#[test]
fn send_that_would_block_is_retried_after_a_pause_without_moving_the_schedule() {
    let mut stack = MockStack::default();
    stack.send_script.extend([
        Ok(()),
        Err(nb::Error::WouldBlock),
        Err(nb::Error::WouldBlock),
    ]);
    let run = run_client(RetryPolicy::default(), b"hi", 1, stack, silent);
    // Send 2 is refused at 100 and 101 ms (pauses of 1, then 2 ms) and goes out at
    // 103 ms; the schedule stays anchored, so the later sends keep their instants.
    assert_eq!(run.blocked_ms, [100, 101]);
    assert_eq!(run.sends_ms, [0, 103, 300, 700, 1500]);
    assert_eq!(run.ended_ms, 3100);
    assert_eq!((gave_up(&run).attempts, gave_up(&run).unsent), (5, 0));
}

#[test]
fn send_blocked_forever_gives_up_at_3100_ms_having_sent_nothing() {
    let stack = MockStack {
        blocked_after_script: true,
        ..MockStack::default()
    };
    let run = run_client(RetryPolicy::default(), b"hi", 1, stack, silent);
    assert!(run.sends_ms.is_empty());
    assert!(run.stack.sent.is_empty());
    assert_eq!(run.ended_ms, 3100);
    let g = gave_up(&run);
    assert_eq!((g.attempts, g.unsent, g.elapsed), (0, 5, ms(3100)));
    // Pauses double from 1 ms up to each slot's end: a few wake-ups per slot (7, 8, 9,
    // 10, 11 for slots of 100..1600 ms), not one per millisecond.
    assert_eq!(run.blocked_ms.len(), 7 + 8 + 9 + 10 + 11);
    assert_eq!(run.blocked_ms[..8], [0, 1, 3, 7, 15, 31, 63, 100]);
    assert!(run.waits <= run.blocked_ms.len() + 5);
}

#[test]
fn send_blocked_on_attempt_3_only_skips_that_slot_and_keeps_the_rest() {
    let mut stack = MockStack::default();
    stack.send_script.extend([Ok(()), Ok(())]);
    // Slot 3 runs from 300 to 700 ms: refusals at 300, 301, 303, ... 555 (9 of them).
    stack
        .send_script
        .extend(std::iter::repeat_n(Err(nb::Error::WouldBlock), 9));
    let run = run_client(RetryPolicy::default(), b"hi", 1, stack, silent);
    assert_eq!(
        run.blocked_ms,
        [300, 301, 303, 307, 315, 331, 363, 427, 555]
    );
    assert_eq!(run.sends_ms, [0, 100, 700, 1500]);
    assert_eq!(run.ended_ms, 3100);
    let g = gave_up(&run);
    assert_eq!((g.attempts, g.unsent), (4, 1));
}

#[test]
fn send_blocked_then_drained_goes_out_and_gets_its_reply() {
    let mut stack = MockStack::default();
    stack
        .send_script
        .extend(std::iter::repeat_n(Err(nb::Error::WouldBlock), 4));
    let run = run_client(RetryPolicy::default(), b"abc", 1, stack, |_| {
        vec![answer(5, server(), reply(3))]
    });
    assert_eq!(run.blocked_ms, [0, 1, 3, 7]);
    assert_eq!(run.sends_ms, [15]);
    let r = replied(&run);
    assert_eq!((r.attempts, r.rtt, r.elapsed), (1, ms(5), ms(20)));
    assert!(!r.rtt_ambiguous);
}

#[test]
fn a_broken_stack_is_an_error_not_a_give_up() {
    let mut stack = MockStack::default();
    stack
        .send_script
        .extend([Ok(()), Err(nb::Error::Other(MockError::Broken))]);
    let mut client = Client::connect(&mut stack, server()).unwrap();
    let mut req = client.start(&RetryPolicy::default(), b"x").unwrap();
    assert!(matches!(
        client.poll(&mut stack, &mut req, at(0)),
        Ok(ClientEvent::Sent { attempt: 1, .. })
    ));
    assert_eq!(
        client.poll(&mut stack, &mut req, at(100)).unwrap_err(),
        ClientError::Stack(MockError::Broken)
    );
}

#[test]
fn without_caps_an_icmp_error_is_a_stack_error() {
    // A third-party stack plugged in with no classifier: its errors are reported, never
    // mistaken for a give-up or hidden.
    let mut stack = MockStack::default();
    let mut client = Client::connect(&mut stack, server()).unwrap();
    let mut req = client.start(&RetryPolicy::default(), b"x").unwrap();
    let _ = client.poll(&mut stack, &mut req, at(0)).unwrap();
    stack.deliver(0, Incoming::Error(MockError::Refused));
    assert_eq!(
        client.poll(&mut stack, &mut req, at(1)).unwrap_err(),
        ClientError::Stack(MockError::Refused)
    );
}

#[test]
fn a_v4_mapped_server_address_accepts_the_plain_ipv4_reply() {
    let mapped: std::net::SocketAddr = "[::ffff:192.0.2.10]:6666".parse().unwrap();
    let mut stack = MockStack::default();
    let mut client = Client::connect(&mut stack, mapped).unwrap();
    let mut req = client.start(&RetryPolicy::default(), b"abc").unwrap();
    let _ = client.poll(&mut stack, &mut req, at(0)).unwrap();
    stack.deliver(0, Incoming::Datagram(server(), reply(3)));
    assert!(matches!(
        client.poll(&mut stack, &mut req, at(4)).unwrap(),
        ClientEvent::Done(Outcome::Reply(_))
    ));
}

#[test]
#[cfg(feature = "jitter")]
fn jitter_keeps_every_wait_within_its_bounds_and_seeds_differ() {
    let base = [100u64, 200, 400, 800, 1600];
    let gaps = |jitter: Jitter, seed: u32| {
        let mut policy = RetryPolicy::default();
        policy.jitter = jitter;
        let run = run_client(policy, b"hi", seed, MockStack::default(), silent);
        let mut times = run.sends_ms.clone();
        times.push(run.ended_ms);
        assert_eq!(times.len(), 6, "jitter never changes the number of sends");
        times.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
    };
    for seed in 1..50 {
        for (gap, max) in gaps(Jitter::Full, seed).iter().zip(base) {
            assert!(*gap <= max, "full jitter: {gap} > {max}");
        }
        for (gap, max) in gaps(Jitter::Equal, seed).iter().zip(base) {
            assert!(
                *gap >= max / 2 && *gap <= max,
                "equal jitter: {gap} outside [{}, {max}]",
                max / 2
            );
        }
    }
    assert_ne!(gaps(Jitter::Full, 1), gaps(Jitter::Full, 2));
    assert_eq!(
        gaps(Jitter::Full, 7),
        gaps(Jitter::Full, 7),
        "same seed, same run"
    );
}

#[test]
fn request_larger_than_one_datagram_is_refused_before_sending() {
    let mut stack = MockStack::default();
    let client = Client::connect(&mut stack, server()).unwrap();
    let big = vec![0u8; 65_508];
    assert_eq!(
        client.start(&RetryPolicy::default(), &big).unwrap_err(),
        ClientError::Exchange(ExchangeError::RequestTooLarge {
            len: 65_508,
            max: 65_507
        })
    );
    assert!(
        client
            .start(&RetryPolicy::default(), &big[..65_507])
            .is_ok()
    );
    let v6: std::net::SocketAddr = "[2001:db8::1]:6666".parse().unwrap();
    let client6 = Client::connect(&mut stack, v6).unwrap();
    assert!(
        client6
            .start(&RetryPolicy::default(), &vec![0u8; 65_527])
            .is_ok()
    );
    assert!(
        client6
            .start(&RetryPolicy::default(), &vec![0u8; 65_528])
            .is_err()
    );
    assert!(stack.sent.is_empty());
}

#[test]
fn empty_request_gets_a_zero_count_reply() {
    let run = run_client(RetryPolicy::default(), b"", 1, MockStack::default(), |_| {
        vec![answer(1, server(), reply(0))]
    });
    assert_eq!(replied(&run).count, 0);
    assert_eq!(run.stack.sent[0].bytes, b"");
}

#[test]
fn a_flood_of_foreign_datagrams_cannot_hold_the_client_past_its_deadline() {
    let stranger = "192.0.2.99:6666".parse().unwrap();
    let mut stack = MockStack::default();
    let mut client = Client::connect(&mut stack, server()).unwrap();
    let mut req = client.start(&RetryPolicy::default(), b"x").unwrap();
    let _ = client.poll(&mut stack, &mut req, at(0)).unwrap();
    for _ in 0..10_000 {
        stack.deliver(0, Incoming::Datagram(stranger, reply(1)));
    }
    // At 100 ms the client reads a bounded batch, then resends on time.
    let mut ignored = 0;
    let sent = loop {
        match client.poll(&mut stack, &mut req, at(100)).unwrap() {
            ClientEvent::Ignored {
                verdict: Verdict::Foreign,
                ..
            } => ignored += 1,
            ClientEvent::Sent { attempt, .. } => break attempt,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!((sent, ignored), (2, udp_echo_core::BATCH));
    assert_eq!(stack.sent.len(), 2);
    assert_eq!(
        req.exchange().ignored().foreign as usize,
        10_000 - stack.sockets[0].inbox.len()
    );
}

#[test]
fn wake_min_prefers_now_then_the_earlier_instant() {
    let (a, b) = (Wake::At(at(5)), Wake::At(at(9)));
    assert_eq!(a.min(b), a);
    assert_eq!(Wake::OnDatagram.min(b), b);
    assert_eq!(Wake::Now.min(a), Wake::Now);
    assert_eq!(Wake::OnDatagram.min(Wake::OnDatagram), Wake::OnDatagram);
    assert_eq!(Wake::Now.deadline(at(3)), Some(at(3)));
    assert_eq!(Wake::OnDatagram.deadline(at(3)), None);
    assert_eq!(b.deadline(at(3)), Some(at(9)));
}
