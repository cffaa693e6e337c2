//! The command line's value parsers: addresses, durations, rates, factors.
//!
//! A library module (not inside the binary) so the fuzz targets in `fuzz/` can call them.
//! Each returns the message clap prints on error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, ToSocketAddrs};
use std::time::Duration;

use udp_echo_core::wire::DEFAULT_PORT;
use udp_echo_core::{Factor, RateLimit};

/// What an address argument names, before any name is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A literal address: nothing to resolve.
    Addr(SocketAddr),
    /// A host name with its port, as `HOST:PORT` for the resolver.
    Name(String),
    /// An IPv6 address with a scope given by name (`fe80::1%eth0`): the name is looked up
    /// among the interfaces.
    Scoped {
        /// The address.
        ip: Ipv6Addr,
        /// The interface's name.
        scope: String,
        /// The port.
        port: u16,
    },
}

/// Reads an address argument without resolving anything: `IP:PORT`, `[IPv6]:PORT`, a
/// bare IP (port 6666), a bare port `PORT` or `:PORT` (on 127.0.0.1: a number is a port,
/// never a legacy integer IPv4 address), or a host name with or without a port. Pure, so
/// it can be fuzzed without ever asking a DNS server.
///
/// An IPv6 address with a port must be bracketed (`[::1]:6666`); an unbracketed one whose
/// last group could be read as a port (`::1:6666`, `fe80::1:7`) is refused as ambiguous.
pub fn split_endpoint(s: &str) -> Result<Endpoint, String> {
    if let Some(port) = bare_port(s) {
        let port = port?;
        return Ok(Endpoint::Addr(SocketAddr::from(([127, 0, 0, 1], port))));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(Endpoint::Addr(addr));
    }
    if let Some(scoped) = scoped(s) {
        return scoped;
    }
    if let Some(inner) = s.strip_prefix('[') {
        // `[IPv6]` alone (with a port it parsed above).
        let ip = inner
            .strip_suffix(']')
            .and_then(|ip| ip.parse::<std::net::Ipv6Addr>().ok())
            .ok_or_else(|| format!("`{s}` is not an address: write `[IPv6]` or `[IPv6]:PORT`"))?;
        return Ok(Endpoint::Addr(SocketAddr::new(
            IpAddr::V6(ip),
            DEFAULT_PORT,
        )));
    }
    if s.contains(']') {
        return Err(format!(
            "`{s}` is not an address: write `[IPv6]` or `[IPv6]:PORT`"
        ));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        if let Some((head, last)) = s.rsplit_once(':')
            && !last.is_empty()
            && last.len() <= 5
            && last.bytes().all(|b| b.is_ascii_digit())
            && !head.ends_with(':')
            && head.parse::<std::net::Ipv6Addr>().is_ok()
        {
            return Err(format!(
                "`{s}` is ambiguous: write `[{head}]:{last}` for port {last}, or `[{s}]` for the address"
            ));
        }
        return Ok(Endpoint::Addr(SocketAddr::new(ip, DEFAULT_PORT)));
    }
    if s.contains(':') && s.matches(':').count() > 1 {
        return Err(format!(
            "`{s}` is not an address: an IPv6 address with a port is written `[IPv6]:PORT`"
        ));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => (host, Some(port)),
        Some((_, port)) => return Err(format!("`{s}`: `{port}` is not a port (0-65535)")),
        None => (s, None),
    };
    // Digits and dots that are not a dotted quad (`1400`, `127.1`) would reach the
    // resolver's legacy integer forms: refuse them.
    if host.is_empty() || host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "`{s}` is not an address: write `IP`, `IP:PORT`, `HOST[:PORT]` or a bare `PORT`"
        ));
    }
    Ok(Endpoint::Name(match port {
        Some(_) => s.to_owned(),
        None => format!("{s}:{DEFAULT_PORT}"),
    }))
}

/// An IPv6 address with a scope: `[IPv6%SCOPE]:PORT`, `[IPv6%SCOPE]` or `IPv6%SCOPE`, the
/// scope a number or an interface's name (`None` if `s` has no `%`).
fn scoped(s: &str) -> Option<Result<Endpoint, String>> {
    let (addr, port) = match s.strip_prefix('[') {
        Some(inner) => {
            let Some((addr, rest)) = inner.split_once(']') else {
                return Some(Err(format!(
                    "`{s}` is not an address: write `[IPv6%INTERFACE]:PORT`"
                )));
            };
            let port = match rest {
                "" => DEFAULT_PORT,
                _ => match rest.strip_prefix(':').map(str::parse::<u16>) {
                    Some(Ok(port)) => port,
                    _ => return Some(Err(format!("`{s}`: `{rest}` is not `:PORT` (0-65535)"))),
                },
            };
            (addr, port)
        }
        None => (s, DEFAULT_PORT),
    };
    let (ip, scope) = addr.split_once('%')?;
    let Ok(ip) = ip.parse::<Ipv6Addr>() else {
        return Some(Err(format!(
            "`{s}` is not an address: only an IPv6 address takes a `%INTERFACE` scope"
        )));
    };
    if scope.is_empty() {
        return Some(Err(format!(
            "`{s}`: the scope after `%` is empty: name an interface"
        )));
    }
    Some(Ok(match scope.parse::<u32>() {
        Ok(index) => Endpoint::Addr(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, index))),
        Err(_) => Endpoint::Scoped {
            ip,
            scope: scope.to_owned(),
            port,
        },
    }))
}

/// `7000` or `:7000`: a port alone (`None` if `s` is not written that way).
fn bare_port(s: &str) -> Option<Result<u16, String>> {
    let digits = s.strip_prefix(':').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        digits
            .parse::<u16>()
            .map_err(|_| format!("`{s}`: `{digits}` is not a port (0-65535)")),
    )
}

/// An address to listen on: like [`parse_bind`], but a bare `PORT` or `:PORT` means every
/// IPv4 interface (`0.0.0.0:PORT`), where broadcasts arrive.
pub fn parse_listen_bind(s: &str) -> Result<SocketAddr, String> {
    match bare_port(s) {
        Some(port) => Ok(SocketAddr::from(([0, 0, 0, 0], port?))),
        None => parse_bind(s),
    }
}

/// Whether an address argument names its port (`HOST:PORT`, `[IPv6]:PORT`, `PORT`).
pub fn names_port(s: &str) -> bool {
    bare_port(s).is_some()
        || s.parse::<SocketAddr>().is_ok()
        || (s.starts_with('[') && s.contains("]:"))
        || (!s.starts_with('[') && s.matches(':').count() == 1)
}

/// An address to bind: `IP:PORT`, `[IPv6]:PORT`, a bare IP or host name (port 6666), or
/// `HOST:PORT`. Port 0 lets the OS pick.
pub fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    parse_endpoint(s)
}

/// An address to send to: like [`parse_bind`], but port 0 is refused (nothing listens
/// there), and the unspecified address (`0.0.0.0`, `[::]`, `[::ffff:0.0.0.0]`) means this
/// host, as the kernel reads it: it becomes the loopback address of its family, the
/// source the replies come from.
pub fn parse_peer(s: &str) -> Result<SocketAddr, String> {
    let mut addr = parse_endpoint(s)?;
    if addr.port() == 0 {
        return Err(format!("`{s}`: port 0 cannot be a destination"));
    }
    match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(v6) if v6.is_unspecified() => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_unspecified()) => {
            addr = SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()));
        }
        _ => {}
    }
    Ok(addr)
}

/// An address family a command is held to (`-4`, `-6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

impl Family {
    fn holds(self, addr: &SocketAddr) -> bool {
        addr.is_ipv4() == (self == Family::V4)
    }

    fn flag(self) -> &'static str {
        match self {
            Family::V4 => "-4 asks for IPv4",
            Family::V6 => "-6 asks for IPv6",
        }
    }
}

/// A destination as typed and as first resolved (IPv4 preferred for a name), so that
/// `-4`/`-6` can resolve a name again in their family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    text: String,
    addr: SocketAddr,
}

impl Peer {
    /// The address, held to `family` if given: a name resolves in that family; an address
    /// of the other family is refused.
    ///
    /// # Errors
    ///
    /// The message for the user when nothing fits.
    pub fn addr_in(&self, family: Option<Family>) -> Result<SocketAddr, String> {
        match family {
            None => Ok(self.addr),
            Some(f) if f.holds(&self.addr) => Ok(self.addr),
            Some(f) => match split_endpoint(&self.text)? {
                Endpoint::Name(with_port) => with_port
                    .to_socket_addrs()
                    .map_err(|e| format!("`{}`: the name does not resolve: {e}", self.text))?
                    .find(|a| f.holds(a))
                    .ok_or_else(|| {
                        format!(
                            "`{}` has no address of that family, and {}",
                            self.text,
                            f.flag()
                        )
                    }),
                _ => Err(format!(
                    "`{}` is an {} address, and {}",
                    self.text,
                    if self.addr.is_ipv4() { "IPv4" } else { "IPv6" },
                    f.flag()
                )),
            },
        }
    }

    /// The address as first resolved.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// An interface named on the command line, with its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Its name, e.g. `eth0`.
    pub name: String,
    /// Its index.
    pub index: u32,
}

/// `--interface IFACE`: an interface of this machine, by name or index.
pub fn parse_interface(s: &str) -> Result<Iface, String> {
    if let Ok(index) = s.parse::<u32>() {
        return Ok(Iface {
            name: s.to_owned(),
            index,
        });
    }
    udp_echo_host::interfaces::index_of(s)
        .map(|index| Iface {
            name: s.to_owned(),
            index,
        })
        .ok_or_else(|| format!("there is no interface `{s}` here{}", interfaces_hint()))
}

/// A destination argument ([`parse_peer`]), keeping its text for `-4`/`-6`.
pub fn parse_peer_arg(s: &str) -> Result<Peer, String> {
    Ok(Peer {
        text: s.to_owned(),
        addr: parse_peer(s)?,
    })
}

/// A source address (`--source ADDR[:PORT]`): an IP address, with a port or not (0: the
/// system picks); no names, no bare port.
pub fn parse_source(s: &str) -> Result<SocketAddr, String> {
    let addr = match split_endpoint(s)? {
        Endpoint::Addr(a) if bare_port(s).is_none() => a,
        Endpoint::Scoped { .. } => parse_endpoint(s)?,
        _ => {
            return Err(format!(
                "`{s}` is not a source address: write an address of this machine, `IP` or `IP:PORT`"
            ));
        }
    };
    let port = if names_port(s) { addr.port() } else { 0 };
    Ok(SocketAddr::new(addr.ip(), port))
}

/// [`split_endpoint`], then a name is resolved (`localhost` reads /etc/hosts only) and an
/// interface named as a scope is looked up. A link-local IPv6 address (`fe80::/10`, or a
/// link-local multicast group `ff02::/16`) without a scope is refused: it means nothing without its interface.
pub fn parse_endpoint(s: &str) -> Result<SocketAddr, String> {
    let addr = resolve(s)?;
    if let SocketAddr::V6(v6) = addr
        && needs_scope(&addr)
    {
        return Err(format!(
            "`{s}` is a link-local address, which needs its interface: write `[{}%INTERFACE]:{}`{}",
            v6.ip(),
            v6.port(),
            interfaces_hint()
        ));
    }
    Ok(addr)
}

/// Whether `addr` is a link-local IPv6 address (`fe80::/10`, or a link-local multicast
/// group `ff02::/16`) without the scope that says which interface it is on.
pub fn needs_scope(addr: &SocketAddr) -> bool {
    match addr {
        SocketAddr::V6(v6) => {
            v6.scope_id() == 0
                && (v6.ip().is_unicast_link_local() || v6.ip().segments()[0] & 0xff0f == 0xff02)
        }
        SocketAddr::V4(_) => false,
    }
}

/// ` (interfaces here: lo, eth0)`, or nothing if none can be listed.
fn interfaces_hint() -> String {
    let names = udp_echo_host::interfaces::names();
    if names.is_empty() {
        String::new()
    } else {
        format!(" (interfaces here: {})", names.join(", "))
    }
}

fn resolve(s: &str) -> Result<SocketAddr, String> {
    let with_port = match split_endpoint(s)? {
        Endpoint::Addr(addr) => return Ok(addr),
        Endpoint::Scoped { ip, scope, port } => {
            let index = udp_echo_host::interfaces::index_of(&scope).ok_or_else(|| {
                format!(
                    "`{s}`: there is no interface `{scope}` here{}",
                    interfaces_hint()
                )
            })?;
            return Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, index)));
        }
        Endpoint::Name(with_port) => with_port,
    };
    let resolved = with_port
        .to_socket_addrs()
        .map_err(|e| format!("`{s}`: not an address, and the name does not resolve: {e}"))?;
    let addrs: Vec<SocketAddr> = resolved.collect();
    // Prefer IPv4, as most servers (and the default bind) are IPv4.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("`{s}`: the name resolves to no address"))
}

/// Parses `100ms`, `2s`, `1.5s`, `250us`, `1m`: a positive decimal number and a unit; a
/// number without a unit is seconds (`0.2`, `5`), as ping, sleep and timeout read it.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_duration(&format!("{s}s"));
    }
    if s.starts_with('-') {
        return Err(format!("`{s}`: the duration must be greater than zero"));
    }
    let Some(split) = s.find(|c: char| !(c.is_ascii_digit() || c == '.')) else {
        return Err(format!(
            "`{s}` is not a duration: write e.g. `100ms`, `2s` or `1.5s`"
        ));
    };
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "`{s}` is not a duration: write e.g. `100ms`, `2s` or `1.5s`"
        ));
    }
    let scale: f64 = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (use ns, us, ms, s, m or h)"
            ));
        }
    };
    let valid = !number.is_empty()
        && !number.starts_with('.')
        && !number.ends_with('.')
        && number.matches('.').count() <= 1;
    let value: f64 =
        number.parse().ok().filter(|_| valid).ok_or_else(|| {
            format!("`{s}` is not a duration: write e.g. `100ms`, `2s` or `1.5s`")
        })?;
    let secs = value * scale;
    if secs <= 0.0 {
        return Err(format!("`{s}`: the duration must be greater than zero"));
    }
    if secs > 86_400.0 {
        return Err(format!("`{s}`: the duration must be at most a day"));
    }
    let d = Duration::from_secs_f64(secs);
    if d.is_zero() {
        return Err(format!("`{s}`: the duration must be greater than zero"));
    }
    Ok(d)
}

/// Parses `1000/s` or `1000` (replies per second; the burst is the same number).
pub fn parse_rate(s: &str) -> Result<RateLimit, String> {
    let number = s.strip_suffix("/s").unwrap_or(s);
    let per_second: u32 = number
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("`{s}` is not a rate: write e.g. `1000/s`"))?;
    Ok(RateLimit {
        per_second,
        burst: per_second,
    })
}

/// A `--rate-limit`/`--total-limit` value: a limit, or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<RateLimit>);

/// Parses `N/s` (bursts of the same size) or `off`.
pub fn parse_limit(s: &str) -> Result<Limit, String> {
    if s == "off" {
        return Ok(Limit(None));
    }
    parse_rate(s)
        .map(|l| Limit(Some(l)))
        .map_err(|e| format!("{e}, or `off`"))
}

/// Parses a retry factor: `2`, `1.5`, `1.25`, up to three decimals, no sign or exponent.
/// Whether the factor makes a working schedule is the policy's check, not this one's.
pub fn parse_factor(s: &str) -> Result<Factor, String> {
    const EXPECTED: &str = "expected a decimal number with at most 3 decimals, like `2` or `1.5`";
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(frac) || frac.len() > 3 {
        return Err(EXPECTED.to_owned());
    }
    if s.ends_with('.') {
        return Err(EXPECTED.to_owned());
    }
    let whole: u32 = whole.parse().map_err(|_| EXPECTED.to_owned())?;
    let mut milli: u32 = 0;
    for (i, b) in frac.bytes().enumerate() {
        milli += u32::from(b - b'0') * [100, 10, 1][i];
    }
    whole
        .checked_mul(1000)
        .and_then(|w| w.checked_add(milli))
        .map(Factor::from_milli)
        .ok_or_else(|| EXPECTED.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_parses_up_to_three_decimals_and_displays_back() {
        for (text, milli) in [("2", 2000), ("1.5", 1500), ("1.25", 1250), ("0.999", 999)] {
            let f = parse_factor(text).unwrap();
            assert_eq!(f.as_milli(), milli);
            assert_eq!(f.to_string(), text);
        }
        for bad in ["", ".5", "1.", "1.2345", "-2", "+2", "2e3", "x", "99999999"] {
            assert_eq!(
                parse_factor(bad),
                Err("expected a decimal number with at most 3 decimals, like `2` or `1.5`".into()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn addresses_take_names_and_default_to_port_6666() {
        let v4 = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert_eq!(parse_peer("127.0.0.1:7000"), Ok(v4("127.0.0.1:7000")));
        assert_eq!(parse_peer("127.0.0.1"), Ok(v4("127.0.0.1:6666")));
        assert_eq!(parse_peer("::1"), Ok(v4("[::1]:6666")));
        assert_eq!(parse_peer("[::1]"), Ok(v4("[::1]:6666")));
        assert_eq!(parse_peer("[::1]:7"), Ok(v4("[::1]:7")));
        assert_eq!(parse_peer("localhost:7000"), Ok(v4("127.0.0.1:7000")));
        assert_eq!(parse_peer("localhost"), Ok(v4("127.0.0.1:6666")));
        assert_eq!(parse_bind("127.0.0.1:0"), Ok(v4("127.0.0.1:0")));
        assert!(parse_peer("127.0.0.1:0").unwrap_err().contains("port 0"));
        assert!(
            parse_peer("127.0.0.1:99999")
                .unwrap_err()
                .contains("not a port")
        );
        // (No test of an unknown name: resolving it would ask a DNS server off this machine.)
    }

    #[test]
    fn names_are_split_from_their_port_without_resolving() {
        let name = |s: &str| Ok(Endpoint::Name(s.to_owned()));
        assert_eq!(
            split_endpoint("example.invalid"),
            name("example.invalid:6666")
        );
        assert_eq!(
            split_endpoint("example.invalid:7"),
            name("example.invalid:7")
        );
        assert!(split_endpoint("example.invalid:x").is_err());
    }

    #[test]
    fn the_unspecified_address_as_a_destination_is_this_host() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(parse_peer("0.0.0.0:7"), Ok(a("127.0.0.1:7")));
        assert_eq!(parse_peer("[::]:7"), Ok(a("[::1]:7")));
        assert_eq!(parse_peer("[::ffff:0.0.0.0]:7"), Ok(a("127.0.0.1:7")));
        assert_eq!(
            parse_bind("0.0.0.0:7"),
            Ok(a("0.0.0.0:7")),
            "a bind keeps it"
        );
    }

    #[test]
    fn scopes_are_taken_by_number_or_interface_name() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(parse_peer("[fe80::1%1]:7"), Ok(a("[fe80::1%1]:7")));
        assert_eq!(parse_peer("fe80::1%1"), Ok(a("[fe80::1%1]:6666")));
        // `lo` exists on every Linux host; its index is whatever the system gave it.
        let lo = udp_echo_host::interfaces::index_of("lo");
        if let Some(lo) = lo {
            let want = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 7, 0, lo));
            assert_eq!(parse_peer("[fe80::1%lo]:7"), Ok(want));
            assert_eq!(
                parse_bind("[fe80::1%lo]"),
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    "fe80::1".parse().unwrap(),
                    6666,
                    0,
                    lo
                )))
            );
        }
        assert!(
            parse_peer("[fe80::1%nosuchif0]:7")
                .unwrap_err()
                .contains("no interface `nosuchif0`")
        );
        assert!(parse_peer("[fe80::1%]:7").unwrap_err().contains("empty"));
        assert!(
            parse_peer("[10.0.0.1%lo]:7")
                .unwrap_err()
                .contains("only an IPv6")
        );
        assert!(
            parse_peer("[fe80::1%lo]:x")
                .unwrap_err()
                .contains("is not `:PORT`")
        );
    }

    #[test]
    fn a_link_local_address_without_a_scope_says_how_to_name_the_interface() {
        for s in ["fe80::1", "[fe80::1]:7", "[ff02::1]:6666"] {
            let e = parse_peer(s).unwrap_err();
            assert!(
                e.contains("link-local") && e.contains("%INTERFACE"),
                "{s}: {e}"
            );
        }
        assert!(parse_peer("[fd00::1]:7").is_ok(), "not link-local");
    }

    #[test]
    fn durations_parse_with_units_and_decimals() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("100ms"), Ok(ms(100)));
        assert_eq!(parse_duration("2s"), Ok(ms(2000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1m"), Ok(ms(60_000)));
    }

    #[test]
    fn durations_without_a_unit_are_seconds() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("0.2"), Ok(ms(200)));
        assert_eq!(parse_duration("5"), Ok(ms(5000)));
        assert!(parse_duration("0").is_err());
    }

    #[test]
    fn a_bare_number_is_a_port_never_an_integer_ipv4_address() {
        let v4 = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert_eq!(parse_bind("7000"), Ok(v4("127.0.0.1:7000")));
        assert_eq!(parse_bind(":7000"), Ok(v4("127.0.0.1:7000")));
        assert_eq!(parse_listen_bind("7000"), Ok(v4("0.0.0.0:7000")));
        assert_eq!(parse_peer("1400"), Ok(v4("127.0.0.1:1400")));
        assert!(parse_peer("70000").unwrap_err().contains("not a port"));
        assert!(parse_peer("127.1").is_err());
        assert!(split_endpoint("1.2:7").is_err());
    }

    #[test]
    fn ipv6_brackets_must_match_and_ambiguous_ports_are_refused() {
        assert!(parse_peer("[::1").is_err());
        assert!(parse_peer("::1]").is_err());
        assert!(parse_peer("::1:6666").unwrap_err().contains("[::1]:6666"));
        assert!(parse_peer("fe80::1:7").is_err());
        assert_eq!(
            parse_peer("[::1:6666]"),
            Ok("[::1:6666]:6666".parse().unwrap())
        );
        assert_eq!(parse_peer("::1"), Ok("[::1]:6666".parse().unwrap()));
        assert_eq!(parse_peer("fd00::"), Ok("[fd00::]:6666".parse().unwrap()));
        assert!(names_port("[::1]:7") && names_port("h:7") && names_port("7"));
        assert!(names_port("[ff02::1%eth0]:7") && !names_port("[ff02::1%eth0]"));
        assert!(!names_port("::1") && !names_port("[::1]") && !names_port("h"));
    }

    #[test]
    fn durations_reject_zero_negative_and_garbage() {
        for bad in [
            "0",
            "0s",
            "0ms",
            "-1s",
            "0.0",
            "s",
            "abc",
            "1.s",
            ".5s",
            "1.2.3s",
            "1x",
            "1e3s",
            "0.0000000001ns",
            "2d",
            "",
            "1000h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            parse_duration("0s")
                .unwrap_err()
                .contains("greater than zero")
        );
    }

    #[test]
    fn rates_parse_with_or_without_per_second() {
        assert_eq!(parse_rate("1000/s").map(|r| r.per_second), Ok(1000));
        assert_eq!(parse_rate("5").map(|r| r.burst), Ok(5));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("fast").is_err());
    }
}
