//! The command line's value parsers: addresses, durations, rates.
//!
//! A library module (not inside the binary) so the fuzz targets in `fuzz/` can call them.
//! Each returns the message clap prints on error.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use udp_echo_core::DEFAULT_PORT;
use udp_echo_core::responder::RateLimit;

/// What an address argument names, before any name is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A literal address: nothing to resolve.
    Addr(SocketAddr),
    /// A host name with its port, as `HOST:PORT` for the resolver.
    Name(String),
}

/// Reads an address argument without resolving anything: `IP:PORT`, `[IPv6]:PORT`, a
/// bare IP (port 6666), or a host name with or without a port. Pure, so it can be fuzzed
/// without ever asking a DNS server.
pub fn split_endpoint(s: &str) -> Result<Endpoint, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(Endpoint::Addr(addr));
    }
    if let Ok(ip) = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(Endpoint::Addr(SocketAddr::new(ip, DEFAULT_PORT)));
    }
    match s.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => Ok(Endpoint::Name(s.to_owned())),
        Some((_, port)) => Err(format!("`{s}`: `{port}` is not a port (0-65535)")),
        None => Ok(Endpoint::Name(format!("{s}:{DEFAULT_PORT}"))),
    }
}

/// An address to bind: `IP:PORT`, `[IPv6]:PORT`, a bare IP or host name (port 6666), or
/// `HOST:PORT`. Port 0 lets the OS pick.
pub fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    parse_endpoint(s)
}

/// An address to send to: like [`parse_bind`], but port 0 is refused (nothing listens there).
pub fn parse_peer(s: &str) -> Result<SocketAddr, String> {
    let addr = parse_endpoint(s)?;
    if addr.port() == 0 {
        return Err(format!("`{s}`: port 0 cannot be a destination"));
    }
    Ok(addr)
}

/// [`split_endpoint`], then a name is resolved (`localhost` reads /etc/hosts only).
pub fn parse_endpoint(s: &str) -> Result<SocketAddr, String> {
    let with_port = match split_endpoint(s)? {
        Endpoint::Addr(addr) => return Ok(addr),
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

/// Parses `100ms`, `2s`, `1.5s`, `250us`, `1m`: a positive decimal number and a unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.starts_with('-') {
        return Err(format!("`{s}`: the duration must be greater than zero"));
    }
    let Some(split) = s.find(|c: char| !(c.is_ascii_digit() || c == '.')) else {
        return Err(if s.parse::<f64>().is_ok_and(|v| v == 0.0) {
            format!("`{s}`: the duration must be greater than zero")
        } else {
            format!("`{s}` has no unit: write e.g. `100ms`, `2s` or `1.5s`")
        });
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn durations_parse_with_units_and_decimals() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("100ms"), Ok(ms(100)));
        assert_eq!(parse_duration("2s"), Ok(ms(2000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1m"), Ok(ms(60_000)));
    }

    #[test]
    fn durations_reject_zero_negative_and_garbage() {
        for bad in [
            "0",
            "0s",
            "0ms",
            "-1s",
            "1",
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
