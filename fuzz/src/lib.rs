//! Inputs the fuzz targets share: addresses and time steps, built by `arbitrary`; and the
//! `frames` target's firmware rig ([`frames`]).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::arbitrary;
use udp_echo_core::{Instant, REFLECTION_PORTS};

pub mod frames;

/// A port, biased toward the ones the guards care about.
#[derive(Debug, Arbitrary)]
pub enum Port {
    Zero,
    /// An index into `REFLECTION_PORTS`.
    Reflection(u8),
    Ephemeral(u16),
    Any(u16),
}

impl Port {
    pub fn get(&self) -> u16 {
        match *self {
            Port::Zero => 0,
            Port::Reflection(i) => REFLECTION_PORTS[usize::from(i) % REFLECTION_PORTS.len()],
            Port::Ephemeral(p) => 32768 | p,
            Port::Any(p) => p,
        }
    }
}

/// A socket address of either family, or an IPv4 one in the mapped form dual-stack
/// sockets report.
#[derive(Debug, Arbitrary)]
pub enum Addr {
    V4([u8; 4], Port),
    V6([u8; 16], Port),
    /// `::ffff:a.b.c.d`.
    Mapped([u8; 4], Port),
}

impl Addr {
    pub fn get(&self) -> SocketAddr {
        match self {
            Addr::V4(ip, p) => SocketAddr::new(Ipv4Addr::from(*ip).into(), p.get()),
            Addr::V6(ip, p) => SocketAddr::new(Ipv6Addr::from(*ip).into(), p.get()),
            Addr::Mapped(ip, p) => {
                SocketAddr::new(Ipv4Addr::from(*ip).to_ipv6_mapped().into(), p.get())
            }
        }
    }
}

/// How far the clock moves before the next event: never backwards.
#[derive(Debug, Arbitrary)]
pub enum Advance {
    Same,
    Micros(u16),
    Millis(u16),
    Secs(u8),
    /// Anywhere, up to where `Instant` saturates.
    Far(u64),
}

impl Advance {
    pub fn after(&self, now: Instant) -> Instant {
        now + match *self {
            Advance::Same => Duration::ZERO,
            Advance::Micros(us) => Duration::from_micros(us.into()),
            Advance::Millis(ms) => Duration::from_millis(ms.into()),
            Advance::Secs(s) => Duration::from_secs(s.into()),
            Advance::Far(us) => Duration::from_micros(us),
        }
    }
}
