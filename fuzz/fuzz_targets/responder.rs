//! Random datagram sequences through `Responder` under a random `ResponderConfig`.
//!
//! Each decision is checked against a model written from the module docs: the guards in
//! their documented order, a reply's N equal to the true length, counters that add up,
//! and (with a rate limit) no window of time holding more replies than
//! `burst + rate × elapsed`.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use udp_echo_core::wire::{Reply, parse_reply};
use udp_echo_core::{
    Decision, DropReason, Instant, REFLECTION_PORTS, RateLimit, Responder, ResponderConfig,
};
use udp_echo_fuzz::{Addr, Advance};

#[derive(Debug, Arbitrary)]
struct Input {
    block_port_zero: bool,
    block_reflection_ports: bool,
    block_replies: bool,
    rate_limit: Option<(u32, u32)>,
    start_us: u64,
    datagrams: Vec<Datagram>,
}

#[derive(Debug, Arbitrary)]
enum Head {
    Bytes(Vec<u8>),
    /// A well-formed reply, whole.
    Reply(u16),
    /// A well-formed reply with bytes cut off its end or added to it.
    NearReply(u16, u8, bool),
}

#[derive(Debug, Arbitrary)]
enum Len {
    /// The datagram is exactly its head.
    Whole,
    /// The head is the first bytes of a longer datagram (0..=70000 in all).
    Longer(u32),
}

#[derive(Debug, Arbitrary)]
enum Datagram {
    Handle {
        advance: Advance,
        from: Addr,
        head: Head,
        len: Len,
    },
    /// A datagram the stack may have cut: length unknown.
    Cut(Advance),
}

fn head_bytes(h: &Head) -> Vec<u8> {
    match *h {
        Head::Bytes(ref b) => b.clone(),
        Head::Reply(n) => Reply::new(n).as_bytes().to_vec(),
        Head::NearReply(n, k, longer) => {
            let mut b = Reply::new(n).as_bytes().to_vec();
            if longer {
                b.push(k);
            } else {
                b.truncate(b.len().saturating_sub(usize::from(k % 4) + 1));
            }
            b
        }
    }
}

fuzz_target!(|input: Input| {
    // `ResponderConfig` is `#[non_exhaustive]`: start from a value and set each field.
    let mut config = ResponderConfig::permissive();
    config.block_port_zero = input.block_port_zero;
    config.block_reflection_ports = input.block_reflection_ports;
    config.block_replies = input.block_replies;
    config.rate_limit = input
        .rate_limit
        .map(|(per_second, burst)| RateLimit { per_second, burst });
    let mut r = Responder::new(config);

    let mut now = Instant::from_micros(input.start_us);
    let mut seen = [0u64; DropReason::ALL.len()];
    let mut replies = 0u64;
    // Instants of the replies that went through the rate limiter.
    let mut limited_replies: Vec<Instant> = Vec::new();

    for d in &input.datagrams {
        match d {
            Datagram::Cut(a) => {
                now = a.after(now);
                assert_eq!(r.cut(), Decision::Drop(DropReason::Cut));
                seen[DropReason::Cut as usize] += 1;
            }
            Datagram::Handle {
                advance: a,
                from,
                head,
                len,
            } => {
                now = a.after(now);
                let from = from.get();
                let mut head = head_bytes(head);
                let len = match *len {
                    Len::Whole => head.len(),
                    Len::Longer(extra) => head.len() + (extra % 70_001) as usize,
                };
                // The head is the datagram's first bytes: never longer than the datagram.
                head.truncate(len);

                let decision = r.handle(now, from, len, &head);
                let expected_drop = if config.block_port_zero && from.port() == 0 {
                    Some(DropReason::PortZero)
                } else if config.block_reflection_ports && REFLECTION_PORTS.contains(&from.port()) {
                    Some(DropReason::ReflectionPort)
                } else if len > 65_535 {
                    Some(DropReason::Cut)
                } else if config.block_replies && len == head.len() && parse_reply(&head).is_ok() {
                    Some(DropReason::Loop)
                } else {
                    None
                };
                match (decision, expected_drop) {
                    (Decision::Drop(got), Some(want)) => assert_eq!(got, want),
                    (Decision::Reply(reply), None) => {
                        assert_eq!(reply.as_bytes(), Reply::new(len as u16).as_bytes());
                        assert_eq!(parse_reply(reply.as_bytes()).map(usize::from), Ok(len));
                        replies += 1;
                        if config.rate_limit.is_some() {
                            limited_replies.push(now);
                        }
                    }
                    (Decision::Drop(DropReason::RateLimited), None)
                        if config.rate_limit.is_some() => {}
                    (got, want) => panic!("{got:?} for {from} len {len}, expected {want:?}"),
                }
                if let Decision::Drop(why) = decision {
                    seen[why as usize] += 1;
                }
            }
        }
        let c = r.counters();
        assert_eq!(c.received, c.replied + c.dropped());
        assert_eq!(c.replied, replies);
        assert_eq!(c.dropped_by, seen);
    }
    assert_eq!(r.counters().received, input.datagrams.len() as u64);

    // The bucket: within [t_i, t_j], at most burst + rate × (t_j − t_i) replies. A burst of
    // 0 is taken as 1 by the responder (a limit that never answers is not a limit).
    if let Some(limit) = config.rate_limit {
        let burst = u128::from(limit.burst.max(1)) * 1_000_000;
        for (i, &ti) in limited_replies.iter().enumerate() {
            for (k, &tj) in limited_replies[i..].iter().enumerate() {
                let count = (k as u128 + 1) * 1_000_000;
                let elapsed = u128::from(tj.as_micros() - ti.as_micros());
                let allowed = burst + u128::from(limit.per_second) * elapsed;
                assert!(
                    count <= allowed,
                    "{} replies in {elapsed} µs with {limit:?}",
                    k + 1
                );
            }
        }
    }
});
