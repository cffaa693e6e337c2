//! Reply-rate limits: token buckets, one shared and one per source, in fixed memory.
//!
//! Per-source buckets live in a table of `N` slots (no allocation) indexed by a keyed
//! hash of the source, in the manner of DNS response-rate limiting (BIND, NSD): each
//! source has two candidate slots; it takes its own, else an idle one (a bucket that
//! would be full again by now holds no memory worth keeping), else it shares the fuller
//! of the two. Sources are whole IPv4 addresses and IPv6 /64 prefixes, since one IPv6 host
//! may use any address of its /64. The hash key should be secret (a random seed) so that
//! an attacker cannot aim many sources at one slot.

use core::net::{IpAddr, SocketAddr};

use crate::time::Instant;
use crate::wire;

/// A token-bucket limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RateLimit {
    /// Replies per second sustained.
    pub per_second: u32,
    /// Replies allowed in a burst.
    pub burst: u32,
}

/// One token bucket, in micro-tokens so that refills at any rate stay integral.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Bucket {
    tokens: u64,
    refilled_at: Option<Instant>,
}

const ONE: u64 = 1_000_000;

/// A full bucket, in micro-tokens (a burst of 0 holds one token, as 1 does).
fn capacity(limit: RateLimit) -> u64 {
    u64::from(limit.burst.max(1)).saturating_mul(ONE)
}

impl Bucket {
    /// Takes one token at `now` if there is one; a fresh bucket starts full.
    pub(crate) fn take(&mut self, now: Instant, limit: RateLimit) -> bool {
        let cap = capacity(limit);
        let refill = match self.refilled_at {
            None => cap,
            // per_second tokens per 1e6 µs = per_second micro-tokens per µs.
            Some(at) => now
                .as_micros()
                .saturating_sub(at.as_micros())
                .saturating_mul(u64::from(limit.per_second)),
        };
        self.refilled_at = Some(now);
        self.tokens = self.tokens.saturating_add(refill).min(cap);
        if self.tokens >= ONE {
            self.tokens -= ONE;
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full at `now`: it remembers nothing worth keeping.
    fn idle(&self, now: Instant, limit: RateLimit) -> bool {
        match self.refilled_at {
            None => true,
            Some(at) => {
                let missing = capacity(limit).saturating_sub(self.tokens);
                let micros = now.as_micros().saturating_sub(at.as_micros());
                micros.saturating_mul(u64::from(limit.per_second)) >= missing
            }
        }
    }

    fn tokens(&self) -> u64 {
        self.tokens
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The source, as an IPv6 address (IPv4 mapped); 0 (`::`) marks an empty slot.
    key: u128,
    bucket: Bucket,
}

/// Per-source token buckets in `N` slots (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct SourceTable<const N: usize> {
    slots: [Slot; N],
    seed: u64,
}

impl<const N: usize> SourceTable<N> {
    pub(crate) fn new(seed: u64) -> Self {
        SourceTable {
            slots: [Slot::default(); N],
            seed,
        }
    }

    pub(crate) fn reseed(&mut self, seed: u64) {
        *self = Self::new(seed);
    }

    /// Takes a token from `from`'s bucket at `now`; true if there was one.
    pub(crate) fn take(&mut self, now: Instant, from: SocketAddr, limit: RateLimit) -> bool {
        if N == 0 {
            return true;
        }
        let key = source_key(from.ip());
        let (a, b) = self.candidates(key);
        let slot = if self.slots[a].key == key {
            a
        } else if self.slots[b].key == key {
            b
        } else if self.slots[a].key == 0 || self.slots[a].bucket.idle(now, limit) {
            self.claim(a, key)
        } else if self.slots[b].key == 0 || self.slots[b].bucket.idle(now, limit) {
            self.claim(b, key)
        } else if self.slots[a].bucket.tokens() >= self.slots[b].bucket.tokens() {
            a // shared with an active source: the fuller bucket hurts less
        } else {
            b
        };
        self.slots[slot].bucket.take(now, limit)
    }

    fn claim(&mut self, slot: usize, key: u128) -> usize {
        self.slots[slot] = Slot {
            key,
            bucket: Bucket::default(),
        };
        slot
    }

    fn candidates(&self, key: u128) -> (usize, usize) {
        let h = mix(key, self.seed);
        // Two independent halves of the hash; `N` is not zero here.
        let a = (h as u32 as usize) % N;
        let b = ((h >> 32) as u32 as usize) % N;
        (a, b)
    }
}

/// A source's key: its IPv4 address (mapped into IPv6 form), or its IPv6 /64 prefix.
fn source_key(ip: IpAddr) -> u128 {
    match wire::canonical(SocketAddr::new(ip, 1)).ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().to_bits(),
        IpAddr::V6(v6) => v6.to_bits() & !((1u128 << 64) - 1) | 1,
    }
}

/// A keyed 64-bit mix of a 128-bit key (SplitMix64 finalisers over both halves): fast,
/// no_std, and unpredictable without the seed.
fn mix(key: u128, seed: u64) -> u64 {
    fn fin(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let lo = fin((key as u64) ^ seed);
    fin((key >> 64) as u64 ^ lo.rotate_left(17) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 10,
        burst: 3,
    };

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn replies<const N: usize>(t: &mut SourceTable<N>, at: Instant, from: &str, n: usize) -> usize {
        (0..n).filter(|_| t.take(at, addr(from), LIMIT)).count()
    }

    #[test]
    fn each_source_has_its_own_bucket() {
        let mut t = SourceTable::<64>::new(1);
        assert_eq!(replies(&mut t, Instant::ZERO, "10.0.0.1:1000", 10), 3);
        assert_eq!(replies(&mut t, Instant::ZERO, "10.0.0.2:1000", 10), 3);
        assert_eq!(
            replies(&mut t, Instant::from_millis(100), "10.0.0.1:1000", 10),
            1
        );
    }

    #[test]
    fn ports_and_addresses_of_one_ipv6_slash_64_share_a_bucket() {
        let mut t = SourceTable::<64>::new(1);
        assert_eq!(replies(&mut t, Instant::ZERO, "[2001:db8::1]:1000", 2), 2);
        assert_eq!(replies(&mut t, Instant::ZERO, "[2001:db8::2]:2000", 5), 1);
        assert_eq!(replies(&mut t, Instant::ZERO, "[2001:db8:0:1::1]:1", 5), 3);
        // A v4-mapped source is the IPv4 source.
        assert_eq!(replies(&mut t, Instant::ZERO, "192.0.2.1:1", 2), 2);
        assert_eq!(replies(&mut t, Instant::ZERO, "[::ffff:192.0.2.1]:1", 5), 1);
    }

    #[test]
    fn a_full_table_reclaims_idle_slots_and_never_grows() {
        let mut t = SourceTable::<4>::new(7);
        for i in 0..1000u32 {
            let a = std::format!("10.{}.{}.{}:9", i >> 16, (i >> 8) & 255, i & 255);
            // One request per source, a second apart: every earlier bucket is idle again.
            assert!(t.take(Instant::from_millis(u64::from(i) * 1000), addr(&a), LIMIT));
        }
        assert_eq!(
            core::mem::size_of_val(&t.slots),
            4 * core::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn idle_means_full_again() {
        let mut b = Bucket::default();
        assert!(b.idle(Instant::ZERO, LIMIT));
        assert!(b.take(Instant::ZERO, LIMIT));
        assert!(!b.idle(Instant::from_millis(99), LIMIT));
        assert!(b.idle(Instant::from_millis(100), LIMIT));
    }
}
