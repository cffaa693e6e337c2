//! `udp-echo bench`: a bounded load generator for one server.
//!
//! Keeps `window` requests in flight, spread over `--sockets` connected sockets (so that
//! a server with several `SO_REUSEPORT` threads gets work on each, and one socket's
//! queue is not the bottleneck), for `duration` (at most 60 s) and at most `--requests`
//! (itself at most [`MAX_REQUESTS`]) requests, whichever ends first, then waits up to
//! [`DRAIN`] for the last replies; once every reply is in, it listens one [`dup_hold`]
//! more, so a duplicate trailing the last reply is counted too. Requests go out and replies come in by the batch
//! (`sendmmsg`/`recvmmsg`, the same calls as the batched server).
//!
//! # Matching replies to requests
//!
//! The protocol has no header and no nonce: a reply says only `Your data was N bytes`.
//! So on each socket every request in flight has a size of its own, and N names it:
//! sizes are `-s` (the base size) plus a slot number below [`POOL`] (fewer if the
//! datagram limit of the family leaves less room). Nothing is matched by order, so lost,
//! duplicated and reordered replies cannot shift the RTTs of other requests. A datagram
//! that names nothing in flight is ignored and counted by kind:
//! - *duplicate*: it names a request already answered (its slot not reused yet);
//! - *wrong-count*: a byte-count reply naming a size no request had;
//! - *garbled*: not a byte-count reply from the server at all.
//!
//! A slot's size is not reused at once: an answered one rests [`dup_hold`] (2 RTOs, at
//! least 2 ms) so a duplicate that trails its original is told apart, a given-up one
//! [`late_hold`] (100 RTOs, 100 ms to 1 s) so a reply that comes after its request was
//! given up is still its own. Free slots are taken lowest-numbered-last-freed first, so a
//! healthy run uses only as many sizes as it has requests in flight or resting. Only a
//! reply later than its hold, or a duplicate later than [`dup_hold`], can still be taken
//! for another request: the protocol has nothing else to tell them apart by.
//!
//! # Loss
//!
//! A request unanswered after the retransmission timeout (RTO) is given up and its place
//! in the window goes to a new request. The RTO adapts to the RTTs measured as in RFC 6298
//! (SRTT + 4·RTTVAR from every reply, doubled after each round of timeouts until the next
//! reply), bounded to [[`MIN_RTO`], [`MAX_RTO`]]; it starts at [`INITIAL_RTO`]. A reply
//! that comes after its request was given up but within [`late_hold`] still counts: as a
//! reply (with its real RTT) and as *late*, and the request no longer as lost. `lost` in
//! the summary is what never got an answer by the end of the run.
//!
//! # GSO trains (`--gso K`)
//!
//! A GSO train carries equal-size datagrams (the last may be shorter), so under `--gso`
//! the unit that has a size of its own is a train: its K requests share one size, and a
//! reply naming it is counted against that train (K replies expected; more are
//! duplicates; fewer at the RTO are lost). Counts stay exact when a server drops or
//! duplicates; only when one train both loses a reply and gets a duplicate of another
//! can the duplicate stand in for the lost one (and a reply's RTT is that of its train).
//! Without `--gso` every unit is one request.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fd::AsFd;
use udp_echo::parse::{Peer, parse_duration, parse_peer_arg};
use udp_echo_core::StackErrorKind;
use udp_echo_core::wire::{self, MAX_REPLY_LEN, canonical};
use udp_echo_host::udp::{self, BATCH, BindOptions, Datagrams, Offload, Outbox, Path};

use super::filler;
use crate::args::{Failure, NetArgs, local_server_in};
use crate::output::{Stdout, events, ms};

// `bench`'s options.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct BenchArgs {
    /// The server to load (the only destination): `HOST`, `HOST:PORT`, `IP`,
    /// `[IPv6]:PORT` or a bare `PORT` (127.0.0.1); default 127.0.0.1:6666.
    #[arg(value_name = "HOST[:PORT]", value_parser = parse_peer_arg, conflicts_with = "server")]
    pub target: Option<Peer>,
    /// The server, as an option.
    #[arg(long, value_name = "HOST[:PORT]", value_parser = parse_peer_arg)]
    pub server: Option<Peer>,
    #[command(flatten)]
    pub net: NetArgs,
    /// How long to send (at most 60s; a number alone is seconds).
    #[arg(long, short = 't', default_value = "2s", value_parser = parse_duration)]
    pub duration: Duration,
    /// The base request size in bytes: each request (or --gso train) in flight on a socket
    /// has a size of its own, SIZE, SIZE+1, … (up to SIZE+2047, within the datagram limit),
    /// so the count in each reply names its request.
    #[arg(long, short, default_value_t = 12)]
    pub size: usize,
    /// No progress lines on stderr (the summary still comes).
    #[arg(long, short)]
    pub quiet: bool,
    /// Requests in flight at once (1..=1024), spread over the sockets.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub window: u32,
    /// Sockets to spread the window over (1..=64; at most --window are used).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub sockets: u32,
    /// Send each socket's requests as trains of up to K datagrams per system call (GSO,
    /// Linux), and take replies with GRO; 1 (the default) sends datagrams one by one.
    /// Every datagram of a train is a request of its own and is counted as one.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub gso: u8,
    /// Stop sending after this many requests (or at --duration, whichever comes first;
    /// 1..=20000000). Default: only --duration limits the run.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_REQUESTS))]
    pub requests: Option<u64>,
}

impl BenchArgs {
    /// The server: the positional target, else --server, else 127.0.0.1:6666 ([::1] with
    /// -6), in the family -4/-6 ask for.
    pub fn server(&self) -> Result<SocketAddr, Failure> {
        match self.target.as_ref().or(self.server.as_ref()) {
            Some(peer) => self.net.resolve(peer),
            None => Ok(local_server_in(self.net.family())),
        }
    }
}

/// The text after `--help`'s options.
const AFTER_HELP: &str = "\
Keeps --window requests in flight, spread over --sockets connected sockets and sent and
received by the batch (sendmmsg/recvmmsg), for --duration (at most 60s) or until --requests
have been sent, whichever comes first, then waits briefly for stragglers. Sends only to
the server given. A progress line per second goes to stderr (unless --json or -q); Ctrl-C
stops sending and prints the summary of what ran. Every figure is measured: the time runs
from the first send until sending stopped or the last reply came, whichever is later; an
RTT runs from just before its send; percentiles are nearest-rank; bits/s count UDP payload.

Examples:
  udp-echo bench                                   # 127.0.0.1:6666 for 2 s
  udp-echo bench 127.0.0.1:7000 -t 10 -s 1400 --window 32
  udp-echo bench ::1 --requests 20000 --window 8 --json";

/// The longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(60);
/// The most requests one run sends.
pub const MAX_REQUESTS: u64 = 20_000_000;
/// The most distinct request sizes one socket uses: `-s` up to `-s` + 2047 bytes.
pub const POOL: usize = 2048;
/// The shortest loss timeout (loopback RTTs are tens of microseconds).
pub const MIN_RTO: Duration = Duration::from_millis(1);
/// The longest loss timeout (and the old fixed one).
pub const MAX_RTO: Duration = Duration::from_secs(1);
/// The loss timeout before the first RTT is measured (RFC 6298).
pub const INITIAL_RTO: Duration = Duration::from_secs(1);
/// How long to wait for the last replies after sending stops.
pub const DRAIN: Duration = Duration::from_secs(1);

/// How long the last replies are awaited after Ctrl-C.
pub const INTERRUPT_DRAIN: Duration = Duration::from_millis(200);
/// How often a progress line goes to stderr.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// How long an answered slot's size rests before reuse: duplicates of its reply within
/// this time are counted as duplicates.
pub fn dup_hold(rto: Duration) -> Duration {
    (rto * 2).clamp(Duration::from_millis(2), MAX_RTO)
}

/// How long a given-up slot's size rests before reuse: its reply within this time still
/// counts (as late).
pub fn late_hold(rto: Duration) -> Duration {
    (rto * 100).clamp(Duration::from_millis(100), MAX_RTO)
}

/// The RFC 6298 estimator.
struct Estimator {
    /// Smoothed RTT and its variation, in seconds; `None` before the first sample.
    srtt: Option<(f64, f64)>,
    /// Timeouts since the last sample (each doubles the RTO).
    backoff: u32,
    rto: Duration,
}

impl Estimator {
    fn new() -> Self {
        Estimator {
            srtt: None,
            backoff: 0,
            rto: INITIAL_RTO,
        }
    }

    /// A reply in time: its RTT, and no backoff.
    fn sample(&mut self, rtt: f64) {
        self.backoff = 0;
        self.late(rtt);
    }

    /// A reply after its request was given up: its RTT, the backoff kept.
    fn late(&mut self, rtt: f64) {
        let (srtt, rttvar) = match self.srtt {
            None => (rtt, rtt / 2.0),
            Some((srtt, rttvar)) => (
                0.875 * srtt + 0.125 * rtt,
                0.75 * rttvar + 0.25 * (srtt - rtt).abs(),
            ),
        };
        self.srtt = Some((srtt, rttvar));
        self.update();
    }

    fn timed_out(&mut self) {
        self.backoff = (self.backoff + 1).min(10);
        self.update();
    }

    fn update(&mut self) {
        let base = self
            .srtt
            .map_or(INITIAL_RTO.as_secs_f64(), |(s, v)| s + 4.0 * v);
        let secs = base * f64::from(1u32 << self.backoff);
        self.rto = Duration::from_secs_f64(secs.min(MAX_RTO.as_secs_f64())).clamp(MIN_RTO, MAX_RTO);
    }
}

/// What a slot (one request size on one socket) last carried.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Never sent: a reply naming it is wrong-count.
    Unused,
    /// Awaiting replies.
    InFlight,
    /// Every reply came: another one is a duplicate.
    Answered,
    /// Given up at the RTO: a reply is late (while `got < expected`).
    Lost,
}

#[derive(Clone, Copy)]
struct Slot {
    state: State,
    sent_at: Instant,
    /// Requests in this unit (1, or a GSO train's length) and replies to them so far.
    expected: u16,
    got: u16,
    /// Bumped at each send, to tell a stale entry of `order` from the slot's new use.
    generation: u32,
}

/// One socket (its own port) and its slots.
struct Flow {
    io: Datagrams,
    window: usize,
    /// Requests in units in flight.
    in_flight: usize,
    slots: Vec<Slot>,
    /// Slots free to send, the next one last.
    ready: Vec<u16>,
    /// Units in send order (with the generation sent); stale entries are skipped.
    order: VecDeque<(u16, u32)>,
    /// Answered and given-up slots resting, each with the time it came to rest.
    resting_answered: VecDeque<(u16, Instant)>,
    resting_lost: VecDeque<(u16, Instant)>,
    /// Requests counted lost whose replies could still come (their slot is resting).
    owed: u64,
    /// Datagrams a send refused whose units are not known (they are in flight and never
    /// answered): they come off the next losses instead of counting as lost.
    unsent: u64,
}

impl Flow {
    /// Slots whose rest is over go back to `ready`; a given-up one's missing replies are
    /// no longer awaited.
    fn release(&mut self, now: Instant, rto: Duration) {
        let hold = dup_hold(rto);
        while let Some(&(i, at)) = self.resting_answered.front() {
            if now.saturating_duration_since(at) < hold {
                break;
            }
            self.resting_answered.pop_front();
            self.ready.push(i);
        }
        let hold = late_hold(rto);
        while let Some(&(i, at)) = self.resting_lost.front() {
            if now.saturating_duration_since(at) < hold {
                break;
            }
            self.resting_lost.pop_front();
            let s = &self.slots[usize::from(i)];
            self.owed = self.owed.saturating_sub(u64::from(s.expected - s.got));
            self.ready.push(i);
        }
    }

    /// The oldest unit in flight (dropping stale entries).
    fn oldest(&mut self) -> Option<Slot> {
        while let Some(&(i, generation)) = self.order.front() {
            let s = self.slots[usize::from(i)];
            if s.state == State::InFlight && s.generation == generation {
                return Some(s);
            }
            self.order.pop_front();
        }
        None
    }

    /// When the next resting slot comes free.
    fn next_release(&self, rto: Duration) -> Option<Instant> {
        let a = self
            .resting_answered
            .front()
            .map(|&(_, at)| at + dup_hold(rto));
        let l = self
            .resting_lost
            .front()
            .map(|&(_, at)| at + late_hold(rto));
        a.into_iter().chain(l).min()
    }
}

/// Tallies, for the whole run and for each progress interval.
#[derive(Default, Clone)]
struct Tally {
    sent: u64,
    sent_bytes: u64,
    replies: u64,
    reply_bytes: u64,
    lost: u64,
    late: u64,
    duplicates: u64,
    wrong_count: u64,
    garbled: u64,
    refused: u64,
    rtts: Vec<u32>, // microseconds
}

/// The `p`-th percentile of sorted samples by the nearest-rank method: the smallest
/// sample with at least `p`% of the samples at or below it (rank ⌈p/100 · n⌉).
pub fn nearest_rank(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// `1.23 Mbit/s`.
fn bits_per_second(bytes: u64, secs: f64) -> String {
    let bits = bytes as f64 * 8.0 / secs;
    if bits >= 1e9 {
        format!("{:.2} Gbit/s", bits / 1e9)
    } else if bits >= 1e6 {
        format!("{:.2} Mbit/s", bits / 1e6)
    } else if bits >= 1e3 {
        format!("{:.2} kbit/s", bits / 1e3)
    } else {
        format!("{bits:.0} bit/s")
    }
}

/// Runs the load; exit 0 if any reply came.
pub fn run(args: &BenchArgs, json: bool) -> Result<ExitCode, Failure> {
    let server = args.server()?;
    super::one_server(server)?;
    let base = args.size;
    filler(server, base)?;
    if args.duration > MAX_DURATION {
        return Err(Failure::usage(format!(
            "--duration {:?} is longer than the cap of {}s: bench runs are bounded",
            args.duration,
            MAX_DURATION.as_secs()
        )));
    }
    let duration = args.duration;
    let window = args.window as usize;
    let sockets = (args.sockets as usize).min(window);
    let limit = args.requests.unwrap_or(MAX_REQUESTS).min(MAX_REQUESTS);
    let progress_lines = !json && !args.quiet;
    let gso = usize::from(args.gso);
    // Sizes from `base` up to the family's datagram limit; each socket needs one per unit
    // it keeps in flight (its window share in trains of `gso`), the rest let sizes rest.
    let max = wire::max_request(server);
    let pool = (max - base + 1).min(POOL);
    let most_units = window.div_ceil(sockets).div_ceil(gso);
    if pool < most_units {
        return Err(Failure::usage(format!(
            "-s {base} leaves {pool} distinct request sizes up to {max} bytes, and each request              (or --gso train) in flight on a socket needs its own: {most_units} here; take a              smaller -s or --window"
        )));
    }
    let request = filler(server, base + pool - 1)?;
    let net = |e: &dyn std::fmt::Display| Failure::network(format!("bench to {server}: {e}"));
    let shutdown = super::install_shutdown()?;

    let offload = if gso > 1 { Offload::ALL } else { Offload::NONE };
    let mut flows = Vec::with_capacity(sockets);
    let start = Instant::now();
    for i in 0..sockets {
        let local = match (args.net.source, server) {
            // --source's address; its port only for one socket (they cannot share it).
            (Some(source), _) if source.is_ipv4() == server.is_ipv4() => {
                SocketAddr::new(source.ip(), if sockets == 1 { source.port() } else { 0 })
            }
            (Some(source), _) => {
                return Err(Failure::usage(format!(
                    "the source {source} and the server {server} are of different address families"
                )));
            }
            (None, SocketAddr::V4(_)) => SocketAddr::from(([0, 0, 0, 0], 0)),
            (None, SocketAddr::V6(_)) => SocketAddr::from(([0u16; 8], 0)),
        };
        // Replies are told from other datagrams by their source. On Linux the socket is
        // also connected, so an ICMP "port unreachable" comes back as "refused"; elsewhere
        // (BSD, macOS) a connected socket refuses a destination on each send, which both
        // datagram paths give.
        let socket =
            udp::bind(local, BindOptions::default()).map_err(|e| match args.net.source {
                Some(_) => {
                    Failure::usage(format!("--source {local}: {}", crate::output::plain(&e)))
                }
                None => net(&e),
            })?;
        if let Some(name) = &args.net.interface {
            udp::bind_device(&socket, name).map_err(|e| {
                Failure::usage(format!("--interface {name}: {}", crate::output::plain(&e)))
            })?;
        }
        #[cfg(target_os = "linux")]
        socket.connect(&server.into()).map_err(|e| net(&e))?;
        let _ = socket.set_recv_buffer_size(4 << 20);
        let io = Datagrams::new(socket, Path::best(), offload).map_err(|e| net(&e))?;
        // The window spread over the sockets, the first ones taking the remainder.
        let share = window / sockets + usize::from(i < window % sockets);
        let unused = Slot {
            state: State::Unused,
            sent_at: start,
            expected: 0,
            got: 0,
            generation: 0,
        };
        flows.push(Flow {
            io,
            window: share,
            in_flight: 0,
            slots: vec![unused; pool],
            // Slot 0 (the base size) is taken first.
            ready: (0..pool as u16).rev().collect(),
            order: VecDeque::with_capacity(share),
            resting_answered: VecDeque::new(),
            resting_lost: VecDeque::new(),
            owed: 0,
            unsent: 0,
        });
    }

    let mut t = Tally::default();
    let mut interval = Tally::default();
    let mut rto = Estimator::new();
    let mut largest = 0usize; // the largest slot number sent
    let mut outbox = Outbox::new(gso);
    let mut units: Vec<(u16, u16)> = Vec::with_capacity(BATCH * gso);
    let start = Instant::now();
    let mut end = start + duration;
    let mut drain = DRAIN;
    let mut interrupted = false;
    let mut last_activity = start;
    let mut send_stopped: Option<Instant> = None;
    let mut next_progress = start + PROGRESS_EVERY;
    let mut interval_start = start;
    loop {
        if !interrupted && shutdown.requested() {
            interrupted = true;
            end = end.min(Instant::now());
            drain = INTERRUPT_DRAIN;
        }
        let now = Instant::now();
        let mut progress = false;
        let mut timed_out = false;
        for flow in &mut flows {
            flow.release(now, rto.rto);
            // Fill this socket's window, a batch at a time, each unit with a free size.
            while now < end && t.sent < limit && flow.in_flight < flow.window {
                let mut room = (flow.window - flow.in_flight)
                    .min(BATCH * gso)
                    .min(usize::try_from(limit - t.sent).unwrap_or(usize::MAX));
                units.clear();
                while room > 0 {
                    let Some(i) = flow.ready.pop() else { break };
                    let k = room.min(gso);
                    room -= k;
                    let size = base + usize::from(i);
                    for _ in 0..k {
                        outbox.push(server, None, &request[..size]);
                    }
                    units.push((i, k as u16));
                }
                if units.is_empty() {
                    break; // every size is in flight or resting
                }
                // The RTT runs from before the send: a send that blocks counts.
                let at = Instant::now();
                let done = flow.io.send(&mut outbox);
                for &(i, k) in &units {
                    let s = &mut flow.slots[usize::from(i)];
                    s.generation = s.generation.wrapping_add(1);
                    *s = Slot {
                        state: State::InFlight,
                        sent_at: at,
                        expected: k,
                        got: 0,
                        generation: s.generation,
                    };
                    flow.order.push_back((i, s.generation));
                    flow.in_flight += usize::from(k);
                    largest = largest.max(usize::from(i));
                    if done.failed == 0 {
                        t.sent_bytes += u64::from(k) * (base + usize::from(i)) as u64;
                    }
                }
                t.sent += done.sent as u64;
                interval.sent += done.sent as u64;
                if done.sent > 0 {
                    progress = true;
                    last_activity = Instant::now();
                }
                if done.failed > 0 {
                    // Refused (ICMP) or the kernel's queue is full: which datagrams did
                    // not go is not known, so their units wait for the RTO like the rest
                    // and this many of their missing replies are not counted lost.
                    flow.unsent += done.failed as u64;
                    t.refused += done.failed as u64;
                    t.sent_bytes += done.sent as u64 * base as u64;
                    break;
                }
            }
            // Read what came back on it.
            loop {
                let n = match flow.io.recv() {
                    Ok(n) => n,
                    Err(e)
                        if udp_echo_host::stack::classify_io_error(&e)
                            == StackErrorKind::Refused =>
                    {
                        t.refused += 1;
                        continue;
                    }
                    Err(e) => return Err(net(&crate::output::plain(&e))),
                };
                let at = Instant::now();
                for i in 0..n {
                    let Some((meta, buf)) = flow.io.get(i) else {
                        continue;
                    };
                    let ours = canonical(meta.from) == canonical(server);
                    for r in meta.segments() {
                        let d = &buf[r];
                        let count = if ours && d.len() <= MAX_REPLY_LEN {
                            wire::parse_reply(d).ok()
                        } else {
                            None
                        };
                        let Some(count) = count else {
                            t.garbled += 1;
                            continue;
                        };
                        let Some(slot) = usize::from(count)
                            .checked_sub(base)
                            .and_then(|i| flow.slots.get_mut(i))
                        else {
                            t.wrong_count += 1;
                            continue;
                        };
                        let late = match slot.state {
                            State::InFlight => false,
                            State::Lost if slot.got < slot.expected => true,
                            State::Unused => {
                                t.wrong_count += 1;
                                continue;
                            }
                            State::Answered | State::Lost => {
                                t.duplicates += 1;
                                continue;
                            }
                        };
                        slot.got += 1;
                        let rtt = at.saturating_duration_since(slot.sent_at);
                        if late {
                            // The RTO was too short: the RTT enters the estimate, and the
                            // backoff stays until a reply in time.
                            rto.late(rtt.as_secs_f64());
                        } else if slot.got == slot.expected {
                            // A unit's RTO covers its last reply.
                            rto.sample(rtt.as_secs_f64());
                        }
                        let us = u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX);
                        for tally in [&mut t, &mut interval] {
                            tally.replies += 1;
                            tally.reply_bytes += d.len() as u64;
                            tally.rtts.push(us);
                        }
                        last_activity = at;
                        if late {
                            t.late += 1;
                            t.lost -= 1;
                            interval.lost = interval.lost.saturating_sub(1);
                            flow.owed = flow.owed.saturating_sub(1);
                        } else if slot.got == slot.expected {
                            slot.state = State::Answered;
                            flow.in_flight -= usize::from(slot.expected);
                            let i = (usize::from(count) - base) as u16;
                            flow.resting_answered.push_back((i, at));
                        }
                    }
                }
                progress |= n > 0;
                if !flow.io.was_full() {
                    break;
                }
            }
            // Give up what waited an RTO.
            let now = Instant::now();
            while let Some(s) = flow.oldest()
                && now.saturating_duration_since(s.sent_at) >= rto.rto
            {
                let (i, _) = flow.order.pop_front().expect("oldest is at the front");
                let missing = u64::from(s.expected - s.got);
                let unsent = missing.min(flow.unsent);
                flow.unsent -= unsent;
                t.lost += missing - unsent;
                interval.lost += missing - unsent;
                flow.owed += missing - unsent;
                flow.in_flight -= usize::from(s.expected);
                flow.slots[usize::from(i)].state = State::Lost;
                flow.resting_lost.push_back((i, now));
                timed_out = true;
            }
        }
        if timed_out {
            rto.timed_out();
        }
        let now = Instant::now();
        if progress_lines && now >= next_progress {
            progress_line(&mut interval, interval_start, now, start);
            interval_start = now;
            next_progress = now + PROGRESS_EVERY;
        }
        let sending = now < end && t.sent < limit;
        if !sending && send_stopped.is_none() {
            send_stopped = Some(now.min(end));
        }
        let in_flight: usize = flows.iter().map(|f| f.in_flight).sum();
        let owed: u64 = flows.iter().map(|f| f.owed).sum();
        let drain_end = end.min(last_activity) + drain;
        // Every reply came: listen one duplicate hold more, so a duplicate trailing the
        // last reply is counted, as the server sent it.
        let settle = (in_flight == 0 && owed == 0).then(|| last_activity + dup_hold(rto.rto));
        if !sending && (settle.is_some_and(|at| now >= at) || now >= drain_end.max(end)) {
            // What is still in flight now never got its answer.
            for f in &mut flows {
                while let Some(s) = f.oldest() {
                    f.order.pop_front();
                    let missing = u64::from(s.expected - s.got);
                    let unsent = missing.min(f.unsent);
                    f.unsent -= unsent;
                    t.lost += missing - unsent;
                }
            }
            break;
        }
        if progress {
            continue;
        }
        // Sleep until a reply, the oldest request's RTO, a size's rest ends on a socket
        // with room in its window, the next progress line, or the end of
        // sending/draining; a refused send is tried again after a millisecond instead of
        // spinning.
        let mut until = if sending { end } else { drain_end.max(end) };
        if let Some(at) = settle.filter(|_| !sending) {
            until = until.min(at);
        }
        for f in &mut flows {
            if let Some(s) = f.oldest() {
                until = until.min(s.sent_at + rto.rto);
            }
            if ((sending && f.in_flight < f.window) || (!sending && f.owed > 0))
                && let Some(at) = f.next_release(rto.rto)
            {
                until = until.min(at);
            }
        }
        if sending {
            until = until.min(now + Duration::from_millis(1));
        }
        if progress_lines {
            until = until.min(next_progress);
        }
        let signal = (!interrupted).then(|| shutdown.fd()).flatten();
        // Where no descriptor wakes the wait on a signal (Windows), it ends within 200 ms.
        let until = shutdown.wait_deadline(Some(until)).unwrap_or(until);
        wait_any(&flows, signal, until).map_err(|e| net(&e))?;
    }
    drop(flows);
    let Tally {
        sent,
        sent_bytes,
        replies,
        reply_bytes,
        lost,
        late,
        duplicates,
        wrong_count,
        garbled,
        refused,
        mut rtts,
    } = t;
    let ignored = duplicates + wrong_count + garbled;
    let size_max = base + largest;

    // The run as it happened: from the first send until sending stopped (at --duration,
    // after --requests, or at Ctrl-C) or the last reply, whichever came later.
    let elapsed = send_stopped
        .map_or(last_activity, |s| s.max(last_activity))
        .saturating_duration_since(start)
        .max(Duration::from_micros(1));
    let secs = elapsed.as_secs_f64();
    let rate = replies as f64 / secs;
    let send_rate = sent as f64 / secs;
    let sent_bits = bits_per_second(sent_bytes, secs);
    let reply_bits = bits_per_second(reply_bytes, secs);
    rtts.sort_unstable();
    let pct = |p: f64| nearest_rank(&rtts, p).map(|us| f64::from(us) / 1000.0);
    let mut out = Stdout::default();
    if json {
        let bps = |bytes: u64| bytes as f64 * 8.0 / secs;
        out.json(&events::bench(&events::BenchSummary {
            server,
            size: base,
            size_max,
            window,
            sockets,
            duration: elapsed,
            interrupted,
            sent,
            replies,
            lost,
            late,
            ignored,
            duplicates,
            wrong_count,
            garbled,
            refused,
            requests_per_s: send_rate,
            replies_per_s: rate,
            request_bits_per_s: bps(sent_bytes),
            reply_bits_per_s: bps(reply_bytes),
            rtt_ms: [pct(50.0), pct(90.0), pct(99.0), pct(100.0)],
            rto: rto.rto,
        }));
    } else {
        let note = if interrupted { " (interrupted)" } else { "" };
        let sizes = if size_max > base {
            format!("{base}-{size_max}")
        } else {
            base.to_string()
        };
        out.line(format_args!(
            "{sent} requests of {sizes} bytes to {server} ({window} in flight on {sockets} sockets) in {secs:.3}s{note}"
        ));
        out.line(format_args!(
            "{replies} replies ({late} late), {lost} lost, {refused} refused: \
             {send_rate:.0} requests/s ({sent_bits} of payload), {rate:.0} replies/s ({reply_bits})"
        ));
        out.line(format_args!(
            "{ignored} ignored: {duplicates} duplicates, {wrong_count} wrong-count, {garbled} garbled; \
             loss timeout at the end {:.3} ms",
            ms(rto.rto)
        ));
        if let (Some(p50), Some(p90), Some(p99), Some(max)) =
            (pct(50.0), pct(90.0), pct(99.0), pct(100.0))
        {
            out.line(format_args!(
                "rtt p50 {p50:.3} ms, p90 {p90:.3} ms, p99 {p99:.3} ms, max {max:.3} ms (nearest-rank, {} samples)",
                rtts.len()
            ));
        }
    }
    Ok(if replies > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One iperf3-style interval line on stderr, and a fresh interval.
fn progress_line(interval: &mut Tally, from: Instant, to: Instant, start: Instant) {
    let secs = to.saturating_duration_since(from).as_secs_f64().max(1e-6);
    let done = interval.replies + interval.lost;
    let loss = if done == 0 {
        0.0
    } else {
        100.0 * interval.lost as f64 / done as f64
    };
    interval.rtts.sort_unstable();
    let rtt = match (
        nearest_rank(&interval.rtts, 50.0),
        nearest_rank(&interval.rtts, 99.0),
    ) {
        (Some(p50), Some(p99)) => format!(
            ", rtt p50 {:.3} ms, p99 {:.3} ms",
            f64::from(p50) / 1000.0,
            f64::from(p99) / 1000.0
        ),
        _ => String::new(),
    };
    crate::diag!(
        "[{:6.2}-{:6.2}s] {:.0} replies/s ({}), {:.1}% loss{rtt}",
        from.saturating_duration_since(start).as_secs_f64(),
        to.saturating_duration_since(start).as_secs_f64(),
        interval.replies as f64 / secs,
        bits_per_second(interval.reply_bytes, secs),
        loss
    );
    *interval = Tally::default();
}

/// Sleeps in `poll(2)` until one of the flows' sockets (or the signal pipe) is readable or
/// `until` passes.
fn wait_any(
    flows: &[Flow],
    signal: Option<rustix::fd::BorrowedFd<'_>>,
    until: Instant,
) -> std::io::Result<()> {
    let mut fds: Vec<PollFd<'_>> = flows
        .iter()
        .map(|f| PollFd::from_borrowed_fd(f.io.socket().as_fd(), PollFlags::IN))
        .chain(signal.map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN)))
        .collect();
    let left = until.saturating_duration_since(Instant::now());
    let timeout = Timespec::try_from(left).ok();
    match rustix::event::poll(&mut fds, timeout.as_ref()) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(nearest_rank(&[], 50.0), None);
        assert_eq!(nearest_rank(&[10, 20], 50.0), Some(10));
        assert_eq!(nearest_rank(&[10, 20], 99.0), Some(20));
        assert_eq!(nearest_rank(&[10, 20], 100.0), Some(20));
        let xs: Vec<u32> = (1..=100).collect();
        assert_eq!(nearest_rank(&xs, 90.0), Some(90));
        assert_eq!(nearest_rank(&xs, 99.0), Some(99));
        assert_eq!(nearest_rank(&xs, 0.0), Some(1));
    }
}
