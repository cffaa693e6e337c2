//! The server's decision for one datagram, as a sans-IO state machine.

use core::fmt;
use core::net::SocketAddr;

use crate::limit::RateLimit;
use crate::limit::{Bucket, SourceTable};
use crate::time::Instant;
use crate::wire::{self, MAX_REPLY_LEN, Reply};

/// Source ports never answered by default: services that reply to anything (echo 7,
/// daytime 13, qotd 17, chargen 19, time 37) or that amplify (DNS 53, portmap 111,
/// NTP 123, NetBIOS 137/138, SNMP 161, CLDAP 389, IKE 500, RIP 520, SSDP 1900,
/// mDNS 5353, memcached 11211).
pub const REFLECTION_PORTS: [u16; 17] = [
    7, 13, 17, 19, 37, 53, 111, 123, 137, 138, 161, 389, 500, 520, 1900, 5353, 11211,
];

/// The highest of the [`REFLECTION_PORTS`].
const MAX_REFLECTION_PORT: u16 = {
    let mut max = 0;
    let mut i = 0;
    while i < REFLECTION_PORTS.len() {
        if REFLECTION_PORTS[i] > max {
            max = REFLECTION_PORTS[i];
        }
        i += 1;
    }
    max
};

/// The per-source limit a default [`ResponderConfig`] applies: 1000 replies a second per
/// source address, in bursts of up to 100.
pub const DEFAULT_SOURCE_LIMIT: RateLimit = RateLimit {
    per_second: 1000,
    burst: 100,
};

/// Per-source buckets a [`Responder`] keeps unless told otherwise: 32 slots, 1 KiB.
pub const DEFAULT_SOURCES: usize = 32;

/// Which guards are on. `Default` turns every guard on, with the per-source limit at
/// [`DEFAULT_SOURCE_LIMIT`], and leaves the global rate limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ResponderConfig {
    /// Drop datagrams from source port 0.
    pub block_port_zero: bool,
    /// Drop datagrams from the [`REFLECTION_PORTS`].
    pub block_reflection_ports: bool,
    /// Drop datagrams that are themselves byte-count replies.
    pub block_replies: bool,
    /// Limit each source's reply rate (`None`: no limit).
    pub source_limit: Option<RateLimit>,
    /// Limit the reply rate over all sources (`None`: no limit).
    pub rate_limit: Option<RateLimit>,
    /// Answer datagrams sent to a broadcast or multicast address (from sources on a
    /// directly connected network only, and within the limits); `false` refuses them all.
    pub answer_broadcast: bool,
}

impl Default for ResponderConfig {
    fn default() -> Self {
        ResponderConfig {
            block_port_zero: true,
            block_reflection_ports: true,
            block_replies: true,
            source_limit: Some(DEFAULT_SOURCE_LIMIT),
            rate_limit: None,
            answer_broadcast: true,
        }
    }
}

impl ResponderConfig {
    /// Every guard off: answer everything, as a plain echo server would (broadcasts too,
    /// though still only from directly connected sources).
    pub fn permissive() -> Self {
        ResponderConfig {
            block_port_zero: false,
            block_reflection_ports: false,
            block_replies: false,
            source_limit: None,
            rate_limit: None,
            answer_broadcast: true,
        }
    }
}

/// The one table of drop reasons: the enum, its counter slot, its machine key and its
/// words all come from here.
macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $name:ident => $key:literal, $words:literal;)+) => {
        /// Why a datagram got no reply.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub enum DropReason {
            $($(#[$doc])* $name,)+
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: [DropReason; drop_reasons!(@count $($name)+)] =
                [$(DropReason::$name,)+];

            /// A short `snake_case` name, e.g. for JSON keys.
            pub const fn key(self) -> &'static str {
                match self {
                    $(DropReason::$name => $key,)+
                }
            }

            /// In words, for people.
            pub const fn words(self) -> &'static str {
                match self {
                    $(DropReason::$name => $words,)+
                }
            }
        }
    };
    (@count $($name:ident)+) => { 0 $(+ drop_reasons!(@one $name))+ };
    (@one $name:ident) => { 1 };
}

drop_reasons! {
    /// It came from source port 0.
    PortZero => "port_zero", "source port 0";
    /// It came from one of the [`REFLECTION_PORTS`].
    ReflectionPort => "reflection_port", "source is a reflection-prone service port";
    /// It is itself a byte-count reply (answering would start a loop).
    Loop => "loop", "it is itself a byte-count reply";
    /// It may have been cut by the receive buffer, so its length is unknown.
    Cut => "cut", "it may have been cut by the receive buffer";
    /// It was sent to a broadcast or multicast address and broadcasts are refused.
    Broadcast => "broadcast", "sent to a broadcast address, and broadcasts are refused";
    /// It was sent to a broadcast or multicast address from a source that is not on a
    /// directly connected network (a spoofed smurf/fraggle source, or a routed one).
    OffLinkBroadcast => "off_link_broadcast", "sent to a broadcast address from a source that is not on a directly connected network";
    /// Its source's reply rate limit was reached.
    SourceLimited => "source_limited", "its source's reply rate limit reached";
    /// The reply rate limit over all sources was reached.
    RateLimited => "rate_limited", "reply rate limit reached";
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.words())
    }
}

/// Where a datagram was sent, as far as the stack can tell: what
/// [`Responder::handle_to`] needs to apply the broadcast guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Destination {
    /// The stack cannot tell (e.g. an `embedded-nal` stack): treated as [`Unicast`](Self::Unicast).
    Unknown,
    /// To one of this host's own addresses.
    Unicast,
    /// To a broadcast address (255.255.255.255 or a subnet's) or a multicast group.
    Broadcast {
        /// Whether the source address lies in a prefix of one of this host's interfaces
        /// (a directly connected network).
        source_on_link: bool,
    },
}

/// The decision for one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use = "a reply decided on must be sent"]
pub enum Decision {
    /// Send these bytes back to the source.
    Reply(Reply),
    /// Send nothing.
    Drop(DropReason),
}

/// What the responder has seen and done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Datagrams handled.
    pub received: u64,
    /// Replies decided on.
    pub replied: u64,
    /// Replies the stack failed to send (counted by the driver).
    pub send_failed: u64,
    /// Datagrams sent to a broadcast or multicast address, answered or not (only a
    /// stack that knows each datagram's destination can tell, see [`Destination`]).
    pub broadcast: u64,
    /// Datagrams dropped, by [`DropReason`] in [`DropReason::ALL`] order.
    pub dropped_by: [u64; DropReason::ALL.len()],
}

impl Counters {
    /// All datagrams dropped by a guard.
    pub fn dropped(&self) -> u64 {
        self.dropped_by.iter().sum()
    }

    /// Datagrams dropped for `reason`.
    pub fn dropped_for(&self, reason: DropReason) -> u64 {
        self.dropped_by[reason as usize]
    }

    /// Each reason with its count, in [`DropReason::ALL`] order.
    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.into_iter().zip(self.dropped_by)
    }

    /// Adds `other`'s counts to these (e.g. to sum several servers).
    pub fn add(&mut self, other: &Counters) {
        self.received += other.received;
        self.replied += other.replied;
        self.send_failed += other.send_failed;
        self.broadcast += other.broadcast;
        for (mine, theirs) in self.dropped_by.iter_mut().zip(other.dropped_by) {
            *mine += theirs;
        }
    }
}

/// Decides reply-or-drop for each datagram, and counts.
///
/// `N` is the number of per-source buckets (32 bytes each), fixed at compile time.
///
/// [`Responder::handle`] takes what arrived (source, true length, first bytes) and says
/// reply — with the reply bytes — or drop, and why. It carries the guards that keep a
/// public echo server from being abused, each on by default and each switchable off:
///
/// - **source port 0**: not a real sender; a reply can only go astray;
/// - **reflection ports** ([`REFLECTION_PORTS`]): echo, daytime, chargen, DNS, NTP, SSDP, …
///   A spoofed request "from" such a service would make two servers talk forever or
///   turn this server into an amplifier;
/// - **loops**: a datagram that is itself a byte-count reply is never answered, or two
///   echo servers would bounce 22-byte replies forever;
/// - **cut datagrams**: a datagram whose true length is unknown (the stack may have cut it
///   to the buffer, see [`StackCaps`](crate::StackCaps)) is dropped rather than answered wrongly;
/// - **per-source rate limit** (on by default, [`DEFAULT_SOURCE_LIMIT`]): a token bucket
///   per source address in a fixed table of `N` slots ([`RateLimit`](crate::RateLimit)), so that no
///   source starves another and a loop with a foreign service that answers everything
///   (the CVE-1999-0103 pattern) is bounded;
/// - **broadcasts**: a datagram sent to a broadcast address (or a multicast group) is
///   answered only when its source is on a directly connected network, and not at all
///   with [`ResponderConfig::answer_broadcast`] off, so that one spoofed packet cannot make
///   every server on a subnet answer a victim elsewhere (smurf/fraggle). Only a stack that
///   knows where each datagram was sent can tell ([`Responder::handle_to`] with a
///   [`Destination`]); [`Responder::handle`] does not know and treats every datagram as
///   unicast;
/// - **rate limit** (off by default): a token bucket over all replies, the outer cap.
///
/// ```
/// use udp_echo_core::{Decision, DropReason, Responder, ResponderConfig};
/// use udp_echo_core::Instant;
///
/// let mut r = Responder::new(ResponderConfig::default());
/// let now = Instant::ZERO;
/// let client = "127.0.0.1:50000".parse().unwrap();
/// let Decision::Reply(reply) = r.handle(now, client, 5, b"hello") else { panic!() };
/// assert_eq!(reply.as_bytes(), b"Your data was 5 bytes");
///
/// let dns = "127.0.0.1:53".parse().unwrap();
/// assert_eq!(r.handle(now, dns, 5, b"hello"), Decision::Drop(DropReason::ReflectionPort));
/// assert_eq!(r.counters().replied, 1);
/// ```
#[derive(Debug, Clone)]
pub struct Responder<const N: usize = DEFAULT_SOURCES> {
    config: ResponderConfig,
    counters: Counters,
    global: Bucket,
    sources: SourceTable<N>,
}

/// The source table's hash key unless [`Responder::with_seed`] gives one.
const DEFAULT_SEED: u64 = 0x243F_6A88_85A3_08D3;

impl Responder {
    /// A responder with these guards and [`DEFAULT_SOURCES`] per-source buckets.
    pub fn new(config: ResponderConfig) -> Self {
        Self::with_sources(config)
    }
}

impl<const N: usize> Responder<N> {
    /// A responder with these guards and `N` per-source buckets.
    pub fn with_sources(config: ResponderConfig) -> Self {
        Responder {
            config,
            counters: Counters::default(),
            global: Bucket::default(),
            sources: SourceTable::new(DEFAULT_SEED),
        }
    }

    /// Keys the per-source table's hash with `seed`; give it a random one (e.g. from a
    /// hardware RNG or the OS) so that no one can aim many sources at one bucket.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.sources.reseed(seed);
        self
    }

    /// The guards in force.
    pub fn config(&self) -> &ResponderConfig {
        &self.config
    }

    /// What has been seen so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counts a reply that the stack failed to send.
    pub fn note_send_failed(&mut self) {
        self.counters.send_failed += 1;
    }

    /// Decides for a datagram whose true length is unknown because the receive buffer
    /// may have cut it: never answered with a guess.
    pub fn cut(&mut self) -> Decision {
        self.counters.received += 1;
        self.count(Decision::Drop(DropReason::Cut))
    }

    /// Decides for a datagram from `from` whose true length is `len`, of which the first
    /// bytes are `head`, received at `now`. The caller vouches for `len` (a stack that may
    /// cut datagrams goes through [`cut`](Self::cut) for one that filled its buffer).
    ///
    /// The destination is unknown here, so the broadcast guard cannot apply (see
    /// [`handle_to`](Self::handle_to)).
    pub fn handle(&mut self, now: Instant, from: SocketAddr, len: usize, head: &[u8]) -> Decision {
        self.handle_to(now, from, Destination::Unknown, len, head)
    }

    /// Like [`handle`](Self::handle), for a stack that also knows where the datagram was
    /// sent (`to`): a broadcast is counted, and answered only from a directly connected
    /// source while [`ResponderConfig::answer_broadcast`] is on, and within the limits.
    pub fn handle_to(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: Destination,
        len: usize,
        head: &[u8],
    ) -> Decision {
        self.counters.received += 1;
        if let Destination::Broadcast { .. } = to {
            self.counters.broadcast += 1;
        }
        let decision = self.decide(now, from, to, len, head);
        self.count(decision)
    }

    fn count(&mut self, decision: Decision) -> Decision {
        match decision {
            Decision::Reply(_) => self.counters.replied += 1,
            Decision::Drop(why) => self.counters.dropped_by[why as usize] += 1,
        }
        decision
    }

    // One copy for every call site: inlined, it costs the network firmware and the
    // self-test hundreds of bytes of flash (measured with scripts/qemu-net.sh build and scripts/qemu-run.sh).
    #[inline(never)]
    fn decide(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: Destination,
        len: usize,
        head: &[u8],
    ) -> Decision {
        let cfg = self.config;
        let port = from.port();
        if cfg.block_port_zero && port == 0 {
            return Decision::Drop(DropReason::PortZero);
        }
        // Ephemeral client ports lie above every reflection port: one comparison for them.
        if cfg.block_reflection_ports
            && port <= MAX_REFLECTION_PORT
            && REFLECTION_PORTS.contains(&port)
        {
            return Decision::Drop(DropReason::ReflectionPort);
        }
        let Ok(count) = u16::try_from(len) else {
            return Decision::Drop(DropReason::Cut);
        };
        if cfg.block_replies && len <= MAX_REPLY_LEN && len == head.len() && wire::is_reply(head) {
            return Decision::Drop(DropReason::Loop);
        }
        if let Destination::Broadcast { source_on_link } = to {
            if !cfg.answer_broadcast {
                return Decision::Drop(DropReason::Broadcast);
            }
            if !source_on_link {
                return Decision::Drop(DropReason::OffLinkBroadcast);
            }
        }
        if let Some(limit) = cfg.source_limit
            && !self.sources.take(now, from, limit)
        {
            return Decision::Drop(DropReason::SourceLimited);
        }
        if let Some(limit) = cfg.rate_limit
            && !self.global.take(now, limit)
        {
            return Decision::Drop(DropReason::RateLimited);
        }
        Decision::Reply(Reply::new(count))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Instant = Instant::ZERO;

    fn from(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn broadcast(source_on_link: bool) -> Destination {
        Destination::Broadcast { source_on_link }
    }

    fn reply_text(d: Decision) -> std::string::String {
        match d {
            Decision::Reply(r) => std::string::ToString::to_string(&r),
            Decision::Drop(why) => panic!("dropped: {why}"),
        }
    }

    #[test]
    fn answers_with_the_true_length_even_when_only_the_head_was_kept() {
        let mut r = Responder::new(ResponderConfig::default());
        let d = r.handle(NOW, from(40000), 1000, &[0u8; 16]);
        assert_eq!(reply_text(d), "Your data was 1000 bytes");
    }

    #[test]
    fn a_datagram_of_unknown_length_is_dropped_and_counted_as_cut() {
        let mut r = Responder::new(ResponderConfig::permissive());
        assert_eq!(r.cut(), Decision::Drop(DropReason::Cut));
        assert_eq!(
            r.handle(NOW, from(40000), 65536, &[0u8; 16]),
            Decision::Drop(DropReason::Cut)
        );
        assert_eq!(r.counters().dropped_for(DropReason::Cut), 2);
        assert_eq!(r.counters().received, 2);
    }

    #[test]
    fn drop_reasons_have_distinct_keys_in_counter_order() {
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i);
            assert!(DropReason::ALL[..i].iter().all(|r| r.key() != reason.key()));
            assert!(!reason.words().is_empty());
        }
    }

    #[test]
    fn answers_empty_and_largest_datagrams_exactly() {
        let mut r = Responder::new(ResponderConfig::default());
        assert_eq!(
            reply_text(r.handle(NOW, from(40000), 0, b"")),
            "Your data was 0 bytes"
        );
        let big = std::vec![7u8; 65507];
        assert_eq!(
            reply_text(r.handle(NOW, from(40000), 65507, &big)),
            "Your data was 65507 bytes"
        );
    }

    #[test]
    fn never_answers_source_port_zero() {
        let mut r = Responder::new(ResponderConfig::default());
        assert_eq!(
            r.handle(NOW, from(0), 3, b"abc"),
            Decision::Drop(DropReason::PortZero)
        );
        assert_eq!(r.counters().dropped_for(DropReason::PortZero), 1);
    }

    #[test]
    fn never_answers_any_reflection_port() {
        let mut r = Responder::new(ResponderConfig::default());
        for port in REFLECTION_PORTS {
            assert_eq!(
                r.handle(NOW, from(port), 3, b"abc"),
                Decision::Drop(DropReason::ReflectionPort),
                "port {port}"
            );
        }
        assert_eq!(
            r.counters().dropped_for(DropReason::ReflectionPort),
            REFLECTION_PORTS.len() as u64
        );
        assert_eq!(
            reply_text(r.handle(NOW, from(6666), 3, b"abc")),
            "Your data was 3 bytes"
        );
    }

    #[test]
    fn never_answers_a_byte_count_reply() {
        let mut r = Responder::new(ResponderConfig::default());
        let reply = b"Your data was 22 bytes";
        assert_eq!(
            r.handle(NOW, from(6666), reply.len(), reply),
            Decision::Drop(DropReason::Loop)
        );
        // A near-miss is ordinary data and gets its count.
        let near = b"Your data was 022 bytes";
        assert_eq!(
            reply_text(r.handle(NOW, from(6666), near.len(), near)),
            "Your data was 23 bytes"
        );
        assert_eq!(r.counters().dropped_for(DropReason::Loop), 1);
    }

    #[test]
    fn every_guard_can_be_turned_off() {
        let mut r = Responder::new(ResponderConfig::permissive());
        let reply = b"Your data was 22 bytes";
        assert_eq!(
            reply_text(r.handle(NOW, from(0), 1, b"x")),
            "Your data was 1 bytes"
        );
        assert_eq!(
            reply_text(r.handle(NOW, from(53), 1, b"x")),
            "Your data was 1 bytes"
        );
        assert_eq!(
            reply_text(r.handle(NOW, from(7), 22, reply)),
            "Your data was 22 bytes"
        );
        assert_eq!(
            reply_text(r.handle(NOW, from(9), 64, &[0; 64])),
            "Your data was 64 bytes"
        );
        assert_eq!(r.counters().dropped(), 0);
    }

    #[test]
    fn rate_limit_allows_a_burst_then_refills_with_time() {
        let mut r = Responder::new(ResponderConfig {
            rate_limit: Some(RateLimit {
                per_second: 10,
                burst: 3,
            }),
            ..ResponderConfig::default()
        });
        let mut replies = |at: Instant, n: usize| {
            (0..n)
                .filter(|_| matches!(r.handle(at, from(40000), 1, b"x"), Decision::Reply(_)))
                .count()
        };
        assert_eq!(replies(Instant::ZERO, 5), 3, "burst of 3");
        assert_eq!(replies(Instant::from_millis(50), 5), 0, "half a token");
        assert_eq!(
            replies(Instant::from_millis(100), 5),
            1,
            "one token per 100 ms"
        );
        assert_eq!(
            replies(Instant::from_millis(10_000), 5),
            3,
            "refill caps at the burst"
        );
        assert_eq!(
            r.counters().dropped_for(DropReason::RateLimited),
            2 + 5 + 4 + 2
        );
    }

    #[test]
    fn under_a_flood_from_one_source_another_source_is_answered() {
        // Source A floods at 100 datagrams per ms; B asks every 10 ms; for one second.
        let mut r = Responder::new(ResponderConfig::default());
        let (a, b) = (
            "198.51.100.1:40000".parse().unwrap(),
            "198.51.100.2:40000".parse().unwrap(),
        );
        let (mut a_replies, mut b_replies) = (0u64, 0u64);
        for ms in 0..1000u64 {
            let now = Instant::from_millis(ms);
            for _ in 0..100 {
                a_replies += u64::from(matches!(r.handle(now, a, 3, b"abc"), Decision::Reply(_)));
            }
            if ms % 10 == 0 {
                b_replies += u64::from(matches!(r.handle(now, b, 3, b"abc"), Decision::Reply(_)));
            }
        }
        assert_eq!(b_replies, 100, "every one of B's requests");
        let limit = DEFAULT_SOURCE_LIMIT;
        assert!(
            a_replies <= u64::from(limit.burst) + u64::from(limit.per_second),
            "{a_replies} replies to the flood in 1 s"
        );
        assert_eq!(
            r.counters().dropped_for(DropReason::SourceLimited),
            100_000 - a_replies
        );
    }

    #[test]
    fn the_total_limit_caps_what_the_per_source_limits_allow() {
        let mut r = Responder::new(ResponderConfig {
            rate_limit: Some(RateLimit {
                per_second: 10,
                burst: 5,
            }),
            ..ResponderConfig::default()
        });
        let answered = (0..20u16)
            .filter(|i| {
                let from = SocketAddr::from(([198, 51, 100, *i as u8], 40000));
                matches!(r.handle(NOW, from, 1, b"x"), Decision::Reply(_))
            })
            .count();
        assert_eq!(answered, 5);
        assert_eq!(r.counters().dropped_for(DropReason::RateLimited), 15);
    }

    #[test]
    fn a_broadcast_is_counted_and_answered_only_from_a_directly_connected_source() {
        let mut r = Responder::new(ResponderConfig::default());
        let on_link = broadcast(true);
        let off_link = broadcast(false);
        assert_eq!(
            reply_text(r.handle_to(NOW, from(40000), on_link, 3, b"abc")),
            "Your data was 3 bytes"
        );
        assert_eq!(
            r.handle_to(NOW, from(40000), off_link, 3, b"abc"),
            Decision::Drop(DropReason::OffLinkBroadcast)
        );
        // Unicast and unknown destinations are not broadcasts.
        for to in [Destination::Unicast, Destination::Unknown] {
            assert!(matches!(
                r.handle_to(NOW, from(40000), to, 3, b"abc"),
                Decision::Reply(_)
            ));
        }
        let c = r.counters();
        assert_eq!((c.received, c.broadcast, c.replied), (4, 2, 3));
        assert_eq!(c.dropped_for(DropReason::OffLinkBroadcast), 1);
    }

    #[test]
    fn broadcasts_can_be_refused_entirely() {
        let mut r = Responder::new(ResponderConfig {
            answer_broadcast: false,
            ..ResponderConfig::default()
        });
        let to = broadcast(true);
        assert_eq!(
            r.handle_to(NOW, from(40000), to, 3, b"abc"),
            Decision::Drop(DropReason::Broadcast)
        );
        assert!(matches!(
            r.handle_to(NOW, from(40000), Destination::Unicast, 3, b"abc"),
            Decision::Reply(_)
        ));
        assert_eq!(r.counters().dropped_for(DropReason::Broadcast), 1);
        assert_eq!(r.counters().broadcast, 1);
    }

    #[test]
    fn answered_broadcasts_stay_within_the_per_source_limit() {
        let mut r = Responder::new(ResponderConfig::default());
        let to = broadcast(true);
        let answered = (0..500)
            .filter(|_| {
                matches!(
                    r.handle_to(NOW, from(40000), to, 1, b"x"),
                    Decision::Reply(_)
                )
            })
            .count();
        assert_eq!(answered as u32, DEFAULT_SOURCE_LIMIT.burst);
        assert_eq!(
            r.counters().dropped_for(DropReason::SourceLimited),
            500 - u64::from(DEFAULT_SOURCE_LIMIT.burst)
        );
    }

    #[test]
    fn counters_add_every_field() {
        let mut r = Responder::new(ResponderConfig::default());
        let to = broadcast(false);
        let _ = r.handle_to(NOW, from(40000), to, 1, b"x");
        let _ = r.handle(NOW, from(53), 1, b"x");
        let _ = r.handle(NOW, from(40000), 1, b"x");
        r.note_send_failed();
        let mut sum = *r.counters();
        sum.add(r.counters());
        let c = r.counters();
        assert_eq!(sum.received, 2 * c.received);
        assert_eq!(sum.replied, 2 * c.replied);
        assert_eq!(sum.send_failed, 2);
        assert_eq!(sum.broadcast, 2);
        assert_eq!(sum.dropped(), 2 * c.dropped());
        assert_eq!(sum.dropped_for(DropReason::OffLinkBroadcast), 2);
    }
}
