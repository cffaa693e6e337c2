//! Addresses for defmt logs, written out by their octets.
//!
//! defmt's own `Format` for `core::net` addresses goes through their `Display`, which pulls
//! `core::fmt` (about 1.5 KB of flash) into a firmware that otherwise never formats text on
//! the target. These wrappers send the octets and let the host render them.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

/// An IP address, for a defmt log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip(pub IpAddr);

/// A socket address (`a.b.c.d:port`, `[v6]:port`), for a defmt log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sock(pub SocketAddr);

impl From<Ipv4Addr> for Ip {
    fn from(ip: Ipv4Addr) -> Self {
        Ip(IpAddr::V4(ip))
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Ip {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self.0 {
            IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                defmt::write!(f, "{=u8}.{=u8}.{=u8}.{=u8}", a, b, c, d)
            }
            IpAddr::V6(v6) => defmt::write!(f, "{=[u8]:02x}", v6.octets()),
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Sock {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self.0 {
            SocketAddr::V4(_) => defmt::write!(f, "{}:{=u16}", Ip(self.0.ip()), self.0.port()),
            SocketAddr::V6(_) => defmt::write!(f, "[{}]:{=u16}", Ip(self.0.ip()), self.0.port()),
        }
    }
}

/// A server's drops as ` Reason=count` for each of the core's `DropReason`s, for a defmt
/// log line (the names from the enum's `defmt::Format`, already in the image:
/// `DropReason::key` would add its strings to the flash).
#[derive(Debug, Clone, Copy)]
pub struct Drops<'a>(pub &'a udp_echo_core::Counters);

#[cfg(feature = "defmt")]
impl defmt::Format for Drops<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        for (reason, count) in self.0.drops() {
            defmt::write!(f, " {}={=u64}", reason, count);
        }
    }
}
