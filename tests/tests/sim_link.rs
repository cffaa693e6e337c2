//! The core's client and server on smoltcp, across a simulated link with seeded faults,
//! on virtual time: the retry schedule to the millisecond, and the protocol's behaviour
//! under loss, duplication, reordering, delay and corruption.

use std::time::Duration;

use smoltcp::phy::Medium;
use udp_echo_core::{Listener, Outcome, Replied, RetryPolicy};
use udp_echo_firmware_example::CAPS;
use udp_echo_firmware_example::sim::{Faults, Pair};
use udp_echo_tests::{PORT, Peer, SimRun, ask, client, exchange, server};

fn pair<'a>(
    storage: &'a mut [udp_echo_firmware_example::NalStorage<'a>; 2],
    faults: Faults,
    seed: u64,
) -> Pair<'a> {
    Pair::new(storage, Medium::Ip, faults, seed)
}

fn replied(run: &SimRun) -> Replied {
    match run.outcome {
        Outcome::Reply(r) => r,
        Outcome::GaveUp(g) => panic!("gave up: {g:?}"),
    }
}

#[test]
fn silent_server_sees_the_exact_schedule_and_the_client_gives_up_at_3100_ms() {
    let mut storage = Default::default();
    let mut net = pair(&mut storage, Faults::NONE, 1);
    let mut listener = Listener::bind(&mut net.b.stack, PORT)
        .unwrap()
        .with_caps(CAPS);
    let mut arrivals = Vec::new();
    let mut c = client(&mut net);
    let run = exchange(
        &mut net,
        &mut c,
        &mut Peer::Silent(&mut listener, &mut arrivals),
        &RetryPolicy::default(),
        b"anyone there?",
        |_, _| {},
    );
    assert_eq!(run.sends_ms, [0, 100, 300, 700, 1500]);
    assert_eq!(
        arrivals,
        [0, 100, 300, 700, 1500],
        "each request crossed the link at once"
    );
    assert_eq!(run.ended_ms, 3100);
    match run.outcome {
        Outcome::GaveUp(g) => assert_eq!((g.attempts, g.refused), (5, false)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reply_comes_on_attempt_k_when_the_first_k_minus_1_requests_are_dropped() {
    let sends = [0u64, 100, 300, 700, 1500];
    for k in 1..=5u32 {
        let mut storage = Default::default();
        let mut net = pair(&mut storage, Faults::NONE, 2);
        let mut srv = server(&mut net);
        let mut c = client(&mut net);
        let run = exchange(
            &mut net,
            &mut c,
            &mut Peer::Server(&mut srv),
            &RetryPolicy::default(),
            b"hello",
            |link, attempts| {
                // Requests 1..k-1 are lost; request k and every reply get through.
                link.a_to_b.faults.drop = if attempts < k { 1000 } else { 0 };
            },
        );
        let r = replied(&run);
        assert_eq!(run.sends_ms, sends[..k as usize], "k = {k}");
        assert_eq!(
            (r.count, r.attempts, r.rtt_ambiguous),
            (5, k, k > 1),
            "k = {k}"
        );
        assert_eq!(
            run.ended_ms,
            sends[k as usize - 1],
            "the reply crosses a zero-delay link at once"
        );
        assert_eq!(net.link.a_to_b.counters().dropped, k - 1);
        assert_eq!(srv.counters().replied, 1);
    }
}

#[test]
fn duplicated_replies_never_produce_a_wrong_result() {
    let mut faults = Faults::NONE;
    faults.duplicate = 1000;
    let mut storage = Default::default();
    let mut net = pair(&mut storage, faults, 3);
    let mut srv = server(&mut net);
    let mut c = client(&mut net);
    // Consecutive exchanges on one socket, each with a new length: a duplicate of the
    // previous reply still on the way would carry the wrong count.
    for len in 1..=20usize {
        let request = vec![b'x'; len];
        let run = ask(&mut net, &mut c, &mut srv, &request);
        let r = replied(&run);
        assert_eq!((usize::from(r.count), r.attempts), (len, 1));
    }
    assert!(
        net.link.b_to_a.counters().duplicated >= 20,
        "every reply was duplicated"
    );
}

#[test]
fn reordered_delayed_and_duplicated_replies_are_ignored_unless_they_match() {
    let faults = Faults {
        drop: 100,
        duplicate: 300,
        reorder: 300,
        corrupt: 50,
        delay_min: Duration::from_millis(20),
        delay_jitter: Duration::from_millis(400),
    };
    let mut storage = Default::default();
    let mut net = pair(&mut storage, faults, 4);
    let mut srv = server(&mut net);
    let mut c = client(&mut net);
    let (mut replies, mut stale) = (0, 0);
    for i in 0..200usize {
        // Lengths cycle through 97 values, so consecutive requests always differ.
        let len = 1 + (i * 37) % 97;
        let request = vec![0xA5u8; len];
        let run = ask(&mut net, &mut c, &mut srv, &request);
        stale += run.ignored.stale;
        if let Outcome::Reply(r) = run.outcome {
            assert_eq!(
                usize::from(r.count),
                len,
                "exchange {i} took another request's reply"
            );
            replies += 1;
        }
    }
    let wire = net.link.b_to_a.counters();
    assert!(
        wire.reordered > 0 && wire.duplicated > 0 && wire.corrupted > 0,
        "{wire:?}"
    );
    assert!(
        stale > 0,
        "late replies to earlier requests arrived and were ignored"
    );
    assert!(
        replies > 150,
        "most exchanges succeed at these fault rates: {replies}/200"
    );
}

/// Success rate of one exchange when each direction loses a packet with probability `p`
/// independently: an attempt works when both its request and its reply survive, and the
/// default schedule makes 5 attempts.
fn expected_success(p: f64) -> f64 {
    1.0 - (1.0 - (1.0 - p).powi(2)).powi(5)
}

#[test]
fn monte_carlo_success_rate_matches_the_loss_model() {
    const N: u32 = 2000;
    for (seed, per_mille) in [(10u64, 100u16), (30, 300), (50, 500)] {
        let p = f64::from(per_mille) / 1000.0;
        let mut faults = Faults::NONE;
        faults.drop = per_mille;
        let mut storage = Default::default();
        let mut net = pair(&mut storage, faults, seed);
        let mut srv = server(&mut net);
        let mut ok = 0u32;
        for i in 0..N {
            // A fresh socket per exchange, as `udp-echo ping` does.
            let mut c = client(&mut net);
            let request = [i as u8; 8];
            let run = ask(&mut net, &mut c, &mut srv, &request);
            if let Outcome::Reply(r) = run.outcome {
                assert_eq!(r.count, 8);
                ok += 1;
            }
            c.close(&mut net.a.stack).unwrap();
        }
        let q = expected_success(p);
        let measured = f64::from(ok) / f64::from(N);
        // Binomial standard error of a rate over N trials; 4 of them bound a false
        // failure at about 6e-5 for a fair die, and the seeded run is deterministic.
        let tolerance = 4.0 * (q * (1.0 - q) / f64::from(N)).sqrt();
        println!("loss {p:.1} each way: {ok}/{N} = {measured:.4}, model {q:.4} ± {tolerance:.4}");
        assert!(
            (measured - q).abs() <= tolerance,
            "loss {p}: measured {measured:.4}, model {q:.4}, tolerance {tolerance:.4}"
        );
    }
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut faults = Faults::NONE;
        faults.drop = 400;
        faults.delay_jitter = Duration::from_millis(50);
        let mut storage = Default::default();
        let mut net = pair(&mut storage, faults, seed);
        let mut srv = server(&mut net);
        let mut c = client(&mut net);
        (0..20)
            .map(|i| {
                let r = ask(&mut net, &mut c, &mut srv, &[0; 3][..1 + i % 3]);
                (r.sends_ms, r.ended_ms)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}
