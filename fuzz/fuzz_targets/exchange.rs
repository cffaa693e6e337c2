//! Random event sequences on monotonic time against the sans-IO `Exchange`, under a random
//! retry policy that `validate()` accepts.
//!
//! Two callers: an ideal one (sends as soon as asked, the stack never blocks, polls at each
//! deadline and when a datagram arrives) whose sends must land exactly on the policy's
//! schedule, and an adversarial one (any call, any time) under which the exchange must still
//! accept only the exact reply, never send early or twice in a slot, never move a deadline,
//! and be done by the give-up instant. Times are compared at the core clock's resolution,
//! whole microseconds, floored.

#![no_main]

use std::net::SocketAddr;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use udp_echo_core::wire::{self, Reply};
use udp_echo_core::{
    Action, BLOCKED_FIRST_PAUSE, Exchange, Factor, Instant, Jitter, Outcome, RetryPolicy, Verdict,
};
use udp_echo_fuzz::{Addr, Advance};

/// Policies with more slots than this are skipped: their runs only take longer.
const MAX_SLOTS: usize = 5_000;

#[derive(Debug, Arbitrary)]
struct PolicyIn {
    initial_us: u32,
    /// Sub-microsecond part of the first wait (the clock cannot see it).
    initial_ns: Option<u16>,
    factor_milli: u16,
    coarse_factor: bool,
    max_us: u32,
    attempts: Option<u16>,
    deadline_us: Option<u32>,
    deadline_ns: u16,
    jitter: u8,
}

#[derive(Debug, Arbitrary)]
enum From {
    /// The server's address as given to `Exchange::new`.
    Server,
    /// The server's address as an IPv4 stack reports it.
    ServerPlain,
    /// The server's address as a dual-stack socket reports an IPv4 peer.
    ServerMapped,
    /// The server's IP from another port.
    ServerOtherPort(u16),
    Other(Addr),
}

#[derive(Debug, Arbitrary)]
enum Payload {
    /// The exact reply to this request.
    Right,
    /// A well-formed reply with any count.
    Count(u16),
    /// A well-formed reply with a count near the right one (a stale reply, off by a few).
    Near(i8),
    /// The exact reply as the head of a longer datagram.
    RightLonger(u16),
    /// The exact reply with its last bytes missing.
    RightCut(u8),
    Bytes(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Arrival {
    delay_us: u32,
    from: From,
    payload: Payload,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Poll(Advance),
    /// Poll this many µs before the last `Wait` deadline (or at it), where an early send
    /// would show.
    PollNearDeadline(u8),
    Sent(Advance),
    Blocked(Advance),
    SendRefused(Advance),
    Datagram(Advance, Arrival),
    Refused(Advance),
    Unreadable(Advance),
}

#[derive(Debug, Arbitrary)]
enum Caller {
    Ideal(Vec<Arrival>),
    Adversarial(Vec<Op>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    policy: PolicyIn,
    server: Addr,
    request_len: u16,
    seed: u32,
    start_us: u32,
    caller: Caller,
}

fn policy(p: &PolicyIn) -> RetryPolicy {
    let mut policy = RetryPolicy::default();
    policy.initial_wait = Duration::from_micros(p.initial_us.into())
        + Duration::from_nanos(p.initial_ns.map_or(0, |ns| u64::from(ns % 1000)));
    policy.factor = if p.coarse_factor {
        Factor::integer(u32::from(p.factor_milli))
    } else {
        // Mostly just above 1, where rounding to whole microseconds bites.
        Factor::from_milli(1000 + u32::from(p.factor_milli % 2000) - 10)
    };
    policy.max_wait = Duration::from_micros(p.max_us.into());
    policy.max_attempts = p.attempts.map(u32::from);
    policy.deadline = p.deadline_us.map(|us| {
        Duration::from_micros(us.into()) + Duration::from_nanos(u64::from(p.deadline_ns % 1000))
    });
    policy.jitter = [Jitter::None, Jitter::Full, Jitter::Equal][usize::from(p.jitter % 3)];
    policy
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// An upper bound on the slots any run of `p` can have, jitter included (a jittered wait
/// may be as short as the clock allows, 1 µs, or half the base wait for `Equal`), or
/// `None` if it exceeds `MAX_SLOTS`.
fn slot_bound(p: &RetryPolicy) -> Option<usize> {
    let mut wait = Some(p.initial_wait);
    let mut slots = 0usize;
    let mut at = 0u64;
    while let Some(w) = wait {
        if p.max_attempts.is_some_and(|max| slots >= max as usize)
            || p.deadline.is_some_and(|d| at >= micros(d))
        {
            break;
        }
        slots += 1;
        if slots > MAX_SLOTS {
            return None;
        }
        let shortest = match p.jitter {
            Jitter::None => micros(w),
            Jitter::Full => 1,
            Jitter::Equal => (micros(w) / 2).max(1),
        };
        at = at.saturating_add(shortest);
        wait = p.next_wait(w);
    }
    Some(slots)
}

fn payload(p: &Payload, right: &[u8], request_len: u16) -> (Vec<u8>, usize) {
    let whole = |b: &[u8]| (b.to_vec(), b.len());
    match *p {
        Payload::Right => whole(right),
        Payload::Count(n) => whole(Reply::new(n).as_bytes()),
        Payload::Near(delta) => {
            whole(Reply::new(request_len.wrapping_add_signed(delta.into())).as_bytes())
        }
        Payload::RightLonger(extra) => (right.to_vec(), right.len() + usize::from(extra) + 1),
        Payload::RightCut(k) => whole(&right[..right.len() - 1 - usize::from(k) % right.len()]),
        Payload::Bytes(ref b) => whole(b),
    }
}

fn source(f: &From, server: SocketAddr) -> SocketAddr {
    let plain = wire::canonical(server);
    match f {
        From::Server => server,
        From::ServerPlain => plain,
        From::ServerMapped => match plain {
            SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
            v6 => v6,
        },
        From::ServerOtherPort(p) => SocketAddr::new(server.ip(), *p),
        From::Other(a) => a.get(),
    }
}

/// What the caller knows about the exchange, to check each answer against.
struct Check {
    policy: RetryPolicy,
    server: SocketAddr,
    right: Vec<u8>,
    request_len: u16,
    slot_bound: usize,
    /// Slot starts as offsets from the first poll, in µs (only without jitter).
    slot_starts: Option<Vec<u64>>,
    /// `give_up_after`, in µs.
    give_up: u64,
    t0: Option<Instant>,
    /// Slots (by index; only without jitter) whose send went out after a `Send`.
    sent_in_slot: Vec<bool>,
    on_sent_calls: u32,
    refused_seen: bool,
    last: Option<Action>,
    /// When `last` was returned: a send reported later still belongs to that slot.
    last_at: Instant,
    /// A send-related call since the last poll: the deadline may move.
    send_event: bool,
    /// A blocked send in this slot at this instant: no `Send` before the pause is over.
    blocked_at: Option<(usize, Instant)>,
    outcome: Option<Outcome>,
}

impl Check {
    fn slot_of(&self, now: Instant) -> Option<usize> {
        let starts = self.slot_starts.as_ref()?;
        let offset = now.as_micros() - self.t0?.as_micros();
        Some(starts.partition_point(|&s| s <= offset) - 1)
    }

    fn give_up_at(&self) -> Instant {
        self.t0.unwrap_or(Instant::ZERO) + Duration::from_micros(self.give_up)
    }

    fn poll(&mut self, ex: &mut Exchange, now: Instant) -> Action {
        let action = ex.poll(now);
        let t0 = *self.t0.get_or_insert(now);
        if let Some(done) = self.outcome {
            assert_eq!(action, Action::Done(done), "an ended exchange stays ended");
        }
        if now >= self.give_up_at() {
            assert!(
                matches!(action, Action::Done(_)),
                "{action:?} at {now}, past the give-up instant {}",
                self.give_up_at()
            );
        }
        match action {
            Action::Send => {
                if let (Some(Action::Wait(before)), false) = (self.last, self.send_event) {
                    assert!(
                        now >= before,
                        "a send at {now} before the deadline {before}"
                    );
                }
                if let Some(k) = self.slot_of(now) {
                    assert!(!self.sent_in_slot[k], "a second send in slot {k} at {now}");
                }
                if let Some((k, at)) = self.blocked_at
                    && self.slot_of(now).is_none_or(|now_k| now_k == k)
                {
                    assert!(
                        now >= at + BLOCKED_FIRST_PAUSE,
                        "resend at {now} right after a blocked send at {at}"
                    );
                }
            }
            Action::Wait(t) => {
                assert!(t > now, "a wait until {t} at {now} would spin");
                assert!(t <= self.give_up_at(), "waits past the give-up instant");
                if let (Some(Action::Wait(before)), false) = (self.last, self.send_event)
                    && now < before
                {
                    assert_eq!(t, before, "the deadline moved with no send at {now}");
                }
            }
            // (Checked when it first ends; later polls repeat it, as checked above.)
            Action::Done(Outcome::GaveUp(g)) if self.outcome.is_none() => {
                assert_eq!(g.attempts, ex.attempts());
                assert!(
                    (g.attempts + g.unsent) as usize <= self.slot_bound,
                    "{g:?} with at most {} slots",
                    self.slot_bound
                );
                assert!(g.attempts <= self.on_sent_calls);
                assert_eq!(g.elapsed, now - t0);
                assert_eq!(g.refused, self.refused_seen);
                if self.policy.jitter == Jitter::None {
                    assert!(now >= self.give_up_at(), "gave up early at {now}");
                }
                self.outcome = Some(Outcome::GaveUp(g));
            }
            Action::Done(Outcome::GaveUp(_)) => {}
            Action::Done(Outcome::Reply(_)) => {
                assert!(
                    self.outcome.is_some(),
                    "a reply outcome without an accepted reply"
                );
            }
        }
        self.last = Some(action);
        self.last_at = now;
        self.send_event = false;
        action
    }

    fn on_sent(&mut self, ex: &mut Exchange, now: Instant) {
        let after_send = self.last == Some(Action::Send);
        let before = ex.attempts();
        ex.on_sent(now);
        self.on_sent_calls += 1;
        self.send_event = true;
        if after_send {
            assert_eq!(
                ex.attempts(),
                before + 1,
                "a send asked for was not counted"
            );
            if let Some(k) = self.slot_of(self.last_at) {
                self.sent_in_slot[k] = true;
            }
            self.blocked_at = None;
        }
        // Only one report per `Send`.
        self.last = None;
    }

    fn on_blocked(&mut self, ex: &mut Exchange, now: Instant) {
        if self.last == Some(Action::Send) {
            self.blocked_at = self.slot_of(self.last_at).map(|k| (k, now));
        }
        ex.on_send_blocked(now);
        self.send_event = true;
        self.last = None;
    }

    fn on_send_refused(&mut self, ex: &mut Exchange, now: Instant) {
        ex.on_send_refused(now);
        self.refused_seen |= self.outcome.is_none();
        self.send_event = true;
        self.last = None;
    }

    fn on_datagram(&mut self, ex: &mut Exchange, now: Instant, arrival: &Arrival) -> Verdict {
        let from = source(&arrival.from, self.server);
        let (bytes, len) = payload(&arrival.payload, &self.right, self.request_len);
        let verdict = ex.on_datagram(now, from, len, &bytes);
        let exact = wire::canonical(from) == wire::canonical(self.server)
            && bytes == self.right
            && len == bytes.len();
        if self.outcome.is_some() {
            assert_eq!(verdict, Verdict::Late);
        } else if exact && ex.attempts() > 0 {
            assert!(
                matches!(verdict, Verdict::Accepted(_)),
                "the exact reply was refused"
            );
        } else {
            assert!(
                !matches!(verdict, Verdict::Accepted(_)),
                "accepted {from} {bytes:?} len {len}"
            );
        }
        if let Verdict::Accepted(replied) = verdict {
            assert!(self.on_sent_calls > 0);
            let Some(Outcome::Reply(r)) = ex.outcome() else {
                panic!("accepted without a reply outcome")
            };
            assert_eq!(replied, r, "the verdict carries the outcome's reply");
            assert_eq!(r.count, self.request_len);
            assert_eq!(r.attempts, ex.attempts());
            assert_eq!(r.rtt_ambiguous, r.attempts > 1);
            assert_eq!(r.elapsed, now - self.t0.unwrap_or(now));
            self.outcome = Some(Outcome::Reply(r));
        }
        verdict
    }
}

fuzz_target!(|input: Input| {
    let policy = policy(&input.policy);
    let server = input.server.get();
    let len = usize::from(input.request_len);
    let ex = Exchange::new(&policy, server, len);
    let Ok(()) = policy.validate() else {
        assert!(ex.is_err());
        return;
    };
    if len > wire::max_request(server) {
        assert!(ex.is_err());
        return;
    }
    let mut ex = ex
        .expect("a valid policy and a request that fits")
        .with_seed(input.seed);
    assert_eq!(ex.server(), wire::canonical(server));
    let Some(slot_bound) = slot_bound(&policy) else {
        return;
    };
    let slot_starts: Option<Vec<u64>> =
        (policy.jitter == Jitter::None).then(|| policy.send_times().map(micros).collect());
    if let Some(starts) = &slot_starts {
        assert_eq!(
            starts.len(),
            slot_bound,
            "send_times() and the waits disagree"
        );
    }
    let mut check = Check {
        policy,
        server,
        right: Reply::new(input.request_len).as_bytes().to_vec(),
        request_len: input.request_len,
        slot_bound,
        sent_in_slot: vec![false; slot_starts.as_ref().map_or(0, Vec::len)],
        slot_starts,
        give_up: micros(policy.give_up_after()),
        t0: None,
        on_sent_calls: 0,
        refused_seen: false,
        last: None,
        last_at: Instant::ZERO,
        send_event: false,
        blocked_at: None,
        outcome: None,
    };
    let mut now = Instant::from_micros(input.start_us.into());

    match &input.caller {
        Caller::Ideal(arrivals) => {
            let mut arrivals = arrivals.iter().peekable();
            let mut next_at = now;
            let mut sends = Vec::new();
            // Each step sends, delivers a datagram or moves to a deadline: bounded.
            for _ in 0..3 * MAX_SLOTS + 2 * arrivals.len() + 10 {
                match check.poll(&mut ex, now) {
                    Action::Send => {
                        check.on_sent(&mut ex, now);
                        sends.push(now.as_micros() - check.t0.unwrap().as_micros());
                    }
                    Action::Wait(deadline) => match arrivals.peek() {
                        Some(a)
                            if next_at + Duration::from_micros(a.delay_us.into()) < deadline =>
                        {
                            next_at += Duration::from_micros(a.delay_us.into());
                            now = now.max(next_at);
                            check.on_datagram(&mut ex, now, a);
                            arrivals.next();
                        }
                        _ => now = deadline,
                    },
                    Action::Done(outcome) => {
                        if let Some(starts) = &check.slot_starts {
                            assert_eq!(sends, starts[..sends.len()], "sends off the schedule");
                        }
                        if let Outcome::GaveUp(g) = outcome {
                            assert_eq!(g.unsent, 0, "unsent slots with a stack that never blocks");
                            if check.slot_starts.is_some() {
                                assert_eq!(sends.len(), check.slot_bound);
                                assert_eq!(now, check.give_up_at(), "gave up off the schedule");
                            }
                        }
                        for a in arrivals {
                            assert_eq!(check.on_datagram(&mut ex, now, a), Verdict::Late);
                        }
                        return;
                    }
                }
            }
            panic!("no outcome after bounded steps: {:?}", ex.outcome());
        }
        Caller::Adversarial(ops) => {
            for op in ops {
                match op {
                    Op::Poll(a) => {
                        now = a.after(now);
                        let _ = check.poll(&mut ex, now);
                    }
                    Op::PollNearDeadline(before) => {
                        if let Some(Action::Wait(t)) = check.last {
                            let early = u64::from(*before % 4);
                            let at = Instant::from_micros(t.as_micros().saturating_sub(early));
                            now = now.max(at);
                        }
                        let _ = check.poll(&mut ex, now);
                    }
                    Op::Sent(a) => {
                        now = a.after(now);
                        check.on_sent(&mut ex, now);
                    }
                    Op::Blocked(a) => {
                        now = a.after(now);
                        check.on_blocked(&mut ex, now);
                    }
                    Op::SendRefused(a) => {
                        now = a.after(now);
                        check.on_send_refused(&mut ex, now);
                    }
                    Op::Datagram(a, arrival) => {
                        now = a.after(now);
                        check.on_datagram(&mut ex, now, arrival);
                    }
                    Op::Refused(a) => {
                        now = a.after(now);
                        ex.on_refused(now);
                        check.refused_seen |= check.outcome.is_none();
                    }
                    Op::Unreadable(a) => {
                        now = a.after(now);
                        let v = ex.on_unreadable(now);
                        assert_eq!(v == Verdict::Late, check.outcome.is_some());
                    }
                }
            }
            // However it was driven, a poll at the give-up instant ends it.
            if check.t0.is_some() {
                now = now.max(check.give_up_at());
                assert!(matches!(check.poll(&mut ex, now), Action::Done(_)));
            }
        }
    }
});
