//! This host's directly connected networks, for the responder's broadcast guard: is a
//! destination a broadcast address, and is a source on one of our prefixes?
//!
//! Read with the `if-addrs` crate (`getifaddrs(3)` on Unix, `GetAdaptersAddresses` on
//! Windows), kept for [`Interfaces::MAX_AGE`] and read again when asked after that, so
//! addresses added or removed while a server runs are seen.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use udp_echo_core::Destination;
use udp_echo_core::wire::canonical_ip;

/// One address of an interface and its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Prefix {
    /// The address, IPv4 as `::ffff:a.b.c.d`, as bits.
    addr: u128,
    /// Its mask in the same form (all ones over the IPv4-mapped part).
    mask: u128,
    /// For IPv4 prefixes shorter than /31: the all-ones host address (the subnet's
    /// broadcast address); also the broadcast address the interface reports, if any.
    broadcast: [Option<Ipv4Addr>; 2],
}

/// The interfaces' prefixes, as last read.
#[derive(Debug, Clone)]
pub struct Interfaces {
    prefixes: Vec<Prefix>,
    read_at: Instant,
    /// The last destination found unicast, and how often it has been taken from here
    /// since: a server's datagrams mostly go to one address, and looking it up again
    /// (a clock read, then the prefixes) cost more than the responder's decision.
    unicast: Option<(IpAddr, u32)>,
}

impl Interfaces {
    /// How long a reading is trusted.
    pub const MAX_AGE: Duration = Duration::from_secs(1);

    /// Reads the interfaces now; on failure knows none (every source is then off-link:
    /// broadcasts go unanswered, the safe side).
    pub fn read() -> Self {
        let prefixes = if_addrs::get_if_addrs()
            .map(|list| list.iter().map(|ifa| prefix(&ifa.addr)).collect())
            .unwrap_or_default();
        Interfaces {
            prefixes,
            read_at: Instant::now(),
            unicast: None,
        }
    }

    /// Answers from the remembered unicast destination at most this many times in a row
    /// before looking again (and reading the interfaces again if the reading is old).
    const UNICAST_REUSE: u32 = 1024;

    /// Reads the interfaces again if the last reading is older than [`Self::MAX_AGE`].
    pub fn refresh(&mut self) {
        if self.read_at.elapsed() >= Self::MAX_AGE {
            *self = Self::read();
        }
    }

    /// Whether `ip` is one of this host's own addresses.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        let ip = bits(ip);
        self.prefixes.iter().any(|p| p.addr == ip)
    }

    /// Whether `ip` lies in one of the interfaces' prefixes (IPv6 link-local addresses
    /// always do).
    pub fn on_link(&self, ip: IpAddr) -> bool {
        if let IpAddr::V6(v6) = canonical_ip(ip)
            && v6.is_unicast_link_local()
        {
            return true;
        }
        let ip = bits(ip);
        self.prefixes.iter().any(|p| ip & p.mask == p.addr & p.mask)
    }

    /// Whether `ip` is a broadcast address: 255.255.255.255, an interface's broadcast
    /// address or a connected IPv4 subnet's all-ones address, or a multicast group (the
    /// same amplification risk).
    pub fn is_broadcast(&self, ip: IpAddr) -> bool {
        let v4 = match canonical_ip(ip) {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => return v6.is_multicast(),
        };
        v4.is_broadcast()
            || v4.is_multicast()
            || self
                .prefixes
                .iter()
                .any(|p| p.broadcast.contains(&Some(v4)))
    }

    /// The responder's view of a datagram from `from` sent to `dst` (`None`: unknown).
    pub fn destination(&mut self, from: IpAddr, dst: Option<IpAddr>) -> Destination {
        let Some(dst) = dst else {
            return Destination::Unknown;
        };
        if let Some((last, uses)) = &mut self.unicast
            && *last == dst
            && *uses < Self::UNICAST_REUSE
        {
            *uses += 1;
            return Destination::Unicast;
        }
        let broadcast = match canonical_ip(dst) {
            IpAddr::V4(v4) => {
                v4.is_broadcast() || v4.is_multicast() || {
                    // A subnet's broadcast address is known only from the interface list.
                    self.refresh();
                    self.is_broadcast(dst)
                }
            }
            IpAddr::V6(v6) => v6.is_multicast(),
        };
        if !broadcast {
            self.unicast = Some((dst, 0));
            return Destination::Unicast;
        }
        self.refresh();
        Destination::Broadcast {
            source_on_link: self.on_link(from),
        }
    }
}

/// One interface address as a prefix. A zero netmask is one the system did not give
/// (`if-addrs` reports a missing one as zeros): the prefix is then the address alone, never
/// "every address" (which would make every source on-link).
fn prefix(addr: &if_addrs::IfAddr) -> Prefix {
    match addr {
        if_addrs::IfAddr::V4(v4) => {
            let (a, m) = (v4.ip, u32::from(v4.netmask));
            let m = if m == 0 { u32::MAX } else { m };
            let subnet = (m.count_ones() < 31).then(|| Ipv4Addr::from(u32::from(a) | !m));
            Prefix {
                addr: mapped(a),
                mask: (!0u128 << 32) | u128::from(m),
                broadcast: [subnet, v4.broadcast],
            }
        }
        if_addrs::IfAddr::V6(v6) => {
            let m = v6.netmask.to_bits();
            Prefix {
                addr: v6.ip.to_bits(),
                mask: if m == 0 { u128::MAX } else { m },
                broadcast: [None, None],
            }
        }
    }
}

fn mapped(v4: Ipv4Addr) -> u128 {
    v4.to_ipv6_mapped().to_bits()
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => mapped(v4),
        IpAddr::V6(v6) => v6.to_bits(),
    }
}

/// The index of the interface called `name` (e.g. `eth0`), for an IPv6 scope; `None` if
/// there is none of that name.
pub fn index_of(name: &str) -> Option<u32> {
    if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .find(|ifa| ifa.name == name)
        .and_then(|ifa| ifa.index)
}

/// The indexes of the interfaces that have an address of the family asked for (IPv4 if
/// `ipv4`), each once.
pub fn indexes_with(ipv4: bool) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for ifa in if_addrs::get_if_addrs().unwrap_or_default() {
        let fits = matches!(ifa.addr, if_addrs::IfAddr::V4(_)) == ipv4;
        if let Some(i) = ifa.index.filter(|_| fits)
            && !out.contains(&i)
        {
            out.push(i);
        }
    }
    out
}

/// An IPv4 address of the interface with index `index`.
pub fn ipv4_of(index: u32) -> Option<Ipv4Addr> {
    if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .find_map(|ifa| match ifa.addr {
            if_addrs::IfAddr::V4(v4) if ifa.index == Some(index) => Some(v4.ip),
            _ => None,
        })
}

/// The names of this host's interfaces, each once, in the system's order: for messages
/// that ask the user to name one.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for ifa in if_addrs::get_if_addrs().unwrap_or_default() {
        if !names.contains(&ifa.name) {
            names.push(ifa.name);
        }
    }
    names
}

impl Default for Interfaces {
    fn default() -> Self {
        Self::read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn table() -> Interfaces {
        let v4 = |a: [u8; 4], m: [u8; 4], b: Option<[u8; 4]>| Prefix {
            addr: mapped(a.into()),
            mask: (!0u128 << 32) | u128::from(u32::from_be_bytes(m)),
            broadcast: [b.map(Into::into), None],
        };
        Interfaces {
            prefixes: vec![
                v4([127, 0, 0, 1], [255, 0, 0, 0], Some([127, 255, 255, 255])),
                v4([10, 7, 0, 1], [255, 255, 255, 0], Some([10, 7, 0, 255])),
                Prefix {
                    addr: "fd00:7::10".parse::<Ipv6Addr>().unwrap().to_bits(),
                    mask: !0u128 << 64,
                    broadcast: [None, None],
                },
            ],
            read_at: Instant::now(),
            unicast: None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn interface_addresses_become_prefixes() {
        let v4 = |ip: [u8; 4], mask: [u8; 4], broadcast: Option<[u8; 4]>| {
            prefix(&if_addrs::IfAddr::V4(if_addrs::Ifv4Addr {
                ip: ip.into(),
                netmask: mask.into(),
                prefixlen: u32::from_be_bytes(mask).count_ones() as u8,
                broadcast: broadcast.map(Into::into),
            }))
        };
        let lan = v4([10, 7, 0, 1], [255, 255, 255, 0], Some([10, 7, 0, 255]));
        assert_eq!(lan.addr, mapped([10, 7, 0, 1].into()));
        assert_eq!(lan.mask, (!0u128 << 32) | 0xffff_ff00);
        assert_eq!(
            lan.broadcast,
            [Some([10, 7, 0, 255].into()), Some([10, 7, 0, 255].into())]
        );
        // /31 and /32: no subnet broadcast address.
        let p2p = v4([10, 8, 0, 0], [255, 255, 255, 254], None);
        assert_eq!(p2p.broadcast, [None, None]);
        // No netmask given: the address alone.
        let bare = v4([192, 0, 2, 7], [0, 0, 0, 0], None);
        assert_eq!(bare.mask, !0u128);
        assert_eq!(bare.broadcast, [None, None]);
        let v6 = |ip: &str, mask: &str| {
            prefix(&if_addrs::IfAddr::V6(if_addrs::Ifv6Addr {
                ip: ip.parse().unwrap(),
                netmask: mask.parse().unwrap(),
                prefixlen: 0,
                broadcast: None,
            }))
        };
        let p = v6("fd00:7::10", "ffff:ffff:ffff:ffff::");
        assert_eq!(p.mask, !0u128 << 64);
        assert_eq!(v6("fd00:7::10", "::").mask, u128::MAX);
    }

    #[test]
    fn this_hosts_loopback_is_read() {
        let t = Interfaces::read();
        assert!(t.is_local(ip("127.0.0.1")), "{t:?}");
        assert!(t.on_link(ip("127.0.0.2")), "{t:?}");
        assert!(!t.is_broadcast(ip("127.0.0.1")), "{t:?}");
    }

    #[test]
    fn sources_on_a_connected_prefix_are_on_link() {
        let t = table();
        for on in [
            "10.7.0.99",
            "127.0.0.2",
            "fd00:7::1234",
            "fe80::1",
            "::ffff:10.7.0.5",
        ] {
            assert!(t.on_link(ip(on)), "{on}");
        }
        for off in ["10.9.0.2", "192.0.2.1", "fd00:8::1", "::ffff:10.9.0.5"] {
            assert!(!t.on_link(ip(off)), "{off}");
        }
    }

    #[test]
    fn broadcast_addresses_are_the_limited_one_subnet_ones_and_multicast() {
        let t = table();
        for b in [
            "255.255.255.255",
            "10.7.0.255",
            "::ffff:10.7.0.255",
            "224.0.0.1",
            "ff02::1",
        ] {
            assert!(t.is_broadcast(ip(b)), "{b}");
        }
        for u in ["10.7.0.1", "10.7.0.254", "fd00:7::10", "::ffff:10.7.0.1"] {
            assert!(!t.is_broadcast(ip(u)), "{u}");
        }
    }

    #[test]
    fn a_remembered_unicast_destination_is_looked_up_again_now_and_then() {
        let mut t = table();
        let src = ip("10.7.0.9");
        assert_eq!(
            t.destination(src, Some(ip("10.7.0.1"))),
            Destination::Unicast
        );
        // The address becomes a subnet's broadcast address (the interfaces changed).
        t.prefixes[1].broadcast = [
            Some(Ipv4Addr::new(10, 7, 0, 255)),
            Some(Ipv4Addr::new(10, 7, 0, 1)),
        ];
        let seen: Vec<Destination> = (0..=Interfaces::UNICAST_REUSE)
            .map(|_| t.destination(src, Some(ip("10.7.0.1"))))
            .collect();
        assert!(
            seen[..Interfaces::UNICAST_REUSE as usize]
                .iter()
                .all(|d| *d == Destination::Unicast)
        );
        assert_eq!(
            seen.last(),
            Some(&Destination::Broadcast {
                source_on_link: true
            })
        );
        // Another destination is looked up at once.
        assert_eq!(
            t.destination(src, Some(ip("10.7.0.255"))),
            Destination::Broadcast {
                source_on_link: true
            }
        );
    }

    #[test]
    fn destinations_for_the_responder() {
        let mut t = table();
        let src = ip("10.7.0.9");
        assert_eq!(t.destination(src, None), Destination::Unknown);
        assert_eq!(
            t.destination(src, Some(ip("10.7.0.1"))),
            Destination::Unicast
        );
        assert_eq!(
            t.destination(src, Some(ip("10.7.0.255"))),
            Destination::Broadcast {
                source_on_link: true
            }
        );
        assert_eq!(
            t.destination(ip("10.9.0.2"), Some(ip("255.255.255.255"))),
            Destination::Broadcast {
                source_on_link: false
            }
        );
    }
}
