//! The `udp-echo` CLI's value parsers on hostile strings: never a panic, only values in
//! range, and round trips for what they print or what users write.
//!
//! Address strings go through `split_endpoint` first; `parse_bind` / `parse_peer` are called
//! only when it found a literal (or refused the string), so no name ever reaches the
//! resolver and no query leaves the machine.

#![no_main]

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use udp_echo::parse::{
    Endpoint, needs_scope, parse_bind, parse_duration, parse_factor, parse_peer, parse_rate,
    split_endpoint,
};
use udp_echo_core::Factor;
use udp_echo_core::wire::DEFAULT_PORT;

const DAY: Duration = Duration::from_secs(86_400);

#[derive(Debug, Arbitrary)]
enum Unit {
    Ns,
    Us,
    Micro,
    Ms,
    S,
    M,
    Min,
    H,
}

#[derive(Debug, Arbitrary)]
enum Input {
    /// Any text, to every parser.
    Text(String),
    /// A literal address as `Display` writes it, bare IPs too.
    Addr(SocketAddr),
    /// A whole number with a unit.
    Duration(u64, Unit),
    /// Seconds with nine decimals, as a user may paste them.
    Decimal(u32, u32),
    Rate(u32),
    Factor(u32),
}

fn text(s: &str) {
    if let Ok(d) = parse_duration(s) {
        assert!(!d.is_zero() && d <= DAY, "{s:?} gave {d:?}");
    }
    if let Ok(rate) = parse_rate(s) {
        assert!(
            rate.per_second > 0 && rate.burst == rate.per_second,
            "{s:?}"
        );
    }
    if let Ok(f) = parse_factor(s) {
        assert_eq!(parse_factor(&f.to_string()), Ok(f), "{s:?}");
    }
    match split_endpoint(s) {
        // Resolving a name could ask a DNS server: names stop here.
        Ok(Endpoint::Name(with_port)) => {
            let (_, port) = with_port.rsplit_once(':').expect("a port for the resolver");
            assert!(port.parse::<u16>().is_ok(), "{s:?} → {with_port:?}");
        }
        // Interface names are looked up at parse time: they stop here too.
        Ok(Endpoint::Scoped { scope, .. }) => {
            assert!(!scope.is_empty() && scope.parse::<u32>().is_err(), "{s:?}");
        }
        Ok(Endpoint::Addr(addr)) if needs_scope(&addr) => {
            assert!(parse_bind(s).is_err() && parse_peer(s).is_err(), "{s:?}");
        }
        Ok(Endpoint::Addr(addr)) => {
            assert_eq!(parse_bind(s), Ok(addr));
            assert_eq!(parse_peer(s).is_ok(), addr.port() != 0, "{s:?}");
        }
        Err(_) => {
            assert!(parse_bind(s).is_err() && parse_peer(s).is_err());
        }
    }
}

fn micros_of(unit: &Unit) -> (&'static str, u128) {
    match unit {
        Unit::Ns => ("ns", 1),
        Unit::Us => ("us", 1_000),
        Unit::Micro => ("µs", 1_000),
        Unit::Ms => ("ms", 1_000_000),
        Unit::S => ("s", 1_000_000_000),
        Unit::M => ("m", 60_000_000_000),
        Unit::Min => ("min", 60_000_000_000),
        Unit::H => ("h", 3_600_000_000_000),
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Text(s) => text(&s),
        Input::Addr(addr) => {
            // `Display` drops the flow label, which no address argument can carry.
            let addr = match addr {
                SocketAddr::V6(v6) => {
                    SocketAddrV6::new(*v6.ip(), v6.port(), 0, v6.scope_id()).into()
                }
                v4 => v4,
            };
            let written = addr.to_string();
            assert_eq!(
                split_endpoint(&written),
                Ok(Endpoint::Addr(addr)),
                "{written}"
            );
            text(&written);
            let ip: IpAddr = addr.ip();
            let bare = SocketAddr::new(ip, DEFAULT_PORT);
            if ip.is_ipv6() {
                // Unbracketed, an address whose last group reads as a port is refused as
                // ambiguous (`::1:6666`); otherwise it is the address on port 6666.
                let got = split_endpoint(&ip.to_string());
                assert!(
                    got.is_err() || got == Ok(Endpoint::Addr(bare)),
                    "{ip}: {got:?}"
                );
                assert_eq!(split_endpoint(&format!("[{ip}]")), Ok(Endpoint::Addr(bare)));
            } else {
                assert_eq!(split_endpoint(&ip.to_string()), Ok(Endpoint::Addr(bare)));
            }
        }
        Input::Duration(n, unit) => {
            let (suffix, nanos) = micros_of(&unit);
            let written = format!("{n}{suffix}");
            let want = u128::from(n) * nanos;
            let got = parse_duration(&written);
            if want == 0 || want > DAY.as_nanos() {
                assert!(got.is_err(), "{written} gave {got:?}");
            } else {
                let want = Duration::from_nanos(want as u64);
                assert_eq!(got, Ok(want), "{written}");
            }
            text(&written);
        }
        Input::Decimal(secs, nanos) => {
            let want = Duration::new(u64::from(secs % 86_400), nanos % 1_000_000_000);
            let written = format!("{}.{:09}s", want.as_secs(), want.subsec_nanos());
            if !want.is_zero() {
                assert_eq!(parse_duration(&written), Ok(want), "{written}");
            }
            text(&written);
        }
        Input::Rate(n) => {
            for written in [format!("{n}/s"), n.to_string()] {
                let got = parse_rate(&written).map(|r| r.per_second);
                assert_eq!(got.ok(), (n > 0).then_some(n), "{written}");
            }
        }
        Input::Factor(milli) => {
            let f = Factor::from_milli(milli);
            assert_eq!(parse_factor(&f.to_string()), Ok(f), "{f}");
        }
    }
});
