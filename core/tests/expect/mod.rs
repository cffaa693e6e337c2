//! What every client driver, sync or async, must show on a virtual clock: one table,
//! checked by `client_timeline.rs` (the sync `Client` over a scripted stack) and by
//! `async_drivers.rs` (the async `Client` over scripted sockets).

#![allow(dead_code)] // each test file uses what it needs

use std::time::Duration;

use udp_echo_core::{Outcome, RetryPolicy};

/// One timeline: a policy, the server's behaviour, and what the client must do.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub policy: RetryPolicy,
    /// The server answers the n-th send (1-based) after this many ms; `None`: silent.
    pub answer: Option<(u32, u64)>,
    /// When the sends go out, in ms from the first.
    pub sends_ms: &'static [u64],
    pub end: End,
}

/// How the request must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Reply {
        attempts: u32,
        rtt_ms: u64,
        at_ms: u64,
    },
    GaveUp {
        attempts: u32,
        at_ms: u64,
    },
}

fn policy(edit: impl FnOnce(&mut RetryPolicy)) -> RetryPolicy {
    let mut p = RetryPolicy::default();
    edit(&mut p);
    p
}

/// The seed's timeline and its variations.
pub fn cases() -> Vec<Case> {
    const SEED: &[u64] = &[0, 100, 300, 700, 1500];
    vec![
        Case {
            name: "silent server: sends at 0/100/300/700/1500 ms, give-up at 3100 ms",
            policy: RetryPolicy::default(),
            answer: None,
            sends_ms: SEED,
            end: End::GaveUp {
                attempts: 5,
                at_ms: 3100,
            },
        },
        Case {
            name: "an answer to the first send",
            policy: RetryPolicy::default(),
            answer: Some((1, 5)),
            sends_ms: &[0],
            end: End::Reply {
                attempts: 1,
                rtt_ms: 5,
                at_ms: 5,
            },
        },
        Case {
            name: "an answer to the third send",
            policy: RetryPolicy::default(),
            answer: Some((3, 40)),
            sends_ms: &[0, 100, 300],
            end: End::Reply {
                attempts: 3,
                rtt_ms: 40,
                at_ms: 340,
            },
        },
        Case {
            name: "an answer to the last send, 1 ms before the give-up",
            policy: RetryPolicy::default(),
            answer: Some((5, 1599)),
            sends_ms: SEED,
            end: End::Reply {
                attempts: 5,
                rtt_ms: 1599,
                at_ms: 3099,
            },
        },
        Case {
            name: "an answer that would come at the give-up instant is too late",
            policy: RetryPolicy::default(),
            answer: Some((5, 1601)),
            sends_ms: SEED,
            end: End::GaveUp {
                attempts: 5,
                at_ms: 3100,
            },
        },
        Case {
            name: "an overall deadline cuts the last wait short",
            policy: policy(|p| p.deadline = Some(Duration::from_millis(1000))),
            answer: None,
            sends_ms: &[0, 100, 300, 700],
            end: End::GaveUp {
                attempts: 4,
                at_ms: 1000,
            },
        },
        Case {
            name: "max_attempts limits the sends",
            policy: policy(|p| p.max_attempts = Some(2)),
            answer: None,
            sends_ms: &[0, 100],
            end: End::GaveUp {
                attempts: 2,
                at_ms: 300,
            },
        },
    ]
}

/// Panics with the case's name unless a run showed what the case says.
pub fn check(case: &Case, sends_ms: &[u64], outcome: Outcome) {
    let name = case.name;
    assert_eq!(sends_ms, case.sends_ms, "{name}: sends");
    let got = match outcome {
        Outcome::Reply(r) => End::Reply {
            attempts: r.attempts,
            rtt_ms: r.rtt.as_millis() as u64,
            at_ms: r.elapsed.as_millis() as u64,
        },
        Outcome::GaveUp(g) => {
            assert_eq!(g.unsent, 0, "{name}: every slot's send went out");
            End::GaveUp {
                attempts: g.attempts,
                at_ms: g.elapsed.as_millis() as u64,
            }
        }
    };
    assert_eq!(got, case.end, "{name}");
}
