//! The wire format: a request is any bytes; the reply is ASCII `Your data was {N} bytes`.
//!
//! ```
//! use udp_echo_core::wire::{parse_reply, Reply};
//!
//! let reply = Reply::new(12);
//! assert_eq!(reply.as_bytes(), b"Your data was 12 bytes");
//! assert_eq!(parse_reply(reply.as_bytes()), Ok(12));
//! assert!(parse_reply(b"Your data was 012 bytes").is_err());
//! ```

use core::fmt;
use core::net::{IpAddr, SocketAddr};

/// The protocol's port: servers listen on it unless told otherwise.
pub const DEFAULT_PORT: u16 = 6666;

/// The longest request that fits one IPv4 UDP datagram (65535 − 20 − 8).
pub const MAX_REQUEST_V4: usize = 65_507;
/// The longest request that fits one IPv6 UDP datagram without jumbograms (65535 − 8).
pub const MAX_REQUEST_V6: usize = 65_527;
/// A receive buffer at least this long can never cut a UDP datagram.
pub const MAX_DATAGRAM: usize = 65_535;
/// The longest reply: `Your data was 65535 bytes`.
pub const MAX_REPLY_LEN: usize = PREFIX.len() + 5 + SUFFIX.len();

/// The largest request one datagram to `to` can carry: [`MAX_REQUEST_V4`] or
/// [`MAX_REQUEST_V6`] by its family (an IPv4-mapped address counts as IPv4).
pub fn max_request(to: SocketAddr) -> usize {
    match canonical(to) {
        SocketAddr::V4(_) => MAX_REQUEST_V4,
        SocketAddr::V6(_) => MAX_REQUEST_V6,
    }
}

/// A payload that does not fit one UDP datagram to its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TooLarge {
    /// The payload's length.
    pub len: usize,
    /// The largest payload for the destination's family (65507 over IPv4, 65527 over
    /// IPv6).
    pub max: usize,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the payload is {} bytes; one UDP datagram carries at most {} bytes",
            self.len, self.max
        )
    }
}

impl core::error::Error for TooLarge {}

/// `len` as a count a reply can carry, if a payload that long fits one datagram to `to`.
///
/// # Errors
///
/// [`TooLarge`] if it does not.
pub fn fits(to: SocketAddr, len: usize) -> Result<u16, TooLarge> {
    let max = max_request(to);
    u16::try_from(len)
        .ok()
        .filter(|&n| usize::from(n) <= max)
        .ok_or(TooLarge { len, max })
}

/// `addr` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) made plain IPv4: the one
/// form in which a peer's address is compared. Dual-stack sockets report IPv4 peers in
/// the mapped form, other stacks in the plain one.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        // Only a mapped address changes: an IPv6 one keeps its scope id and flow info.
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// [`canonical`] for an address without a port.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

const PREFIX: &[u8] = b"Your data was ";
const SUFFIX: &[u8] = b" bytes";

/// A formatted reply, held inline: no buffer to size, no `core::fmt` on the hot path.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    buf: [u8; MAX_REPLY_LEN],
    len: u8,
}

impl Reply {
    /// The reply to a request of `n` bytes.
    pub fn new(n: u16) -> Self {
        // Its decimal digits: 1 to 5. Bounded so, every split below provably fits the 25
        // bytes (14 + at most 5 + 6) and no bounds check is left to fail.
        let digits = match n {
            0..=9 => 1,
            10..=99 => 2,
            100..=999 => 3,
            1000..=9999 => 4,
            _ => 5,
        };
        let mut buf = [0u8; MAX_REPLY_LEN];
        let (prefix, rest) = buf.split_at_mut(PREFIX.len());
        prefix.copy_from_slice(PREFIX);
        let (number, rest) = rest.split_at_mut(digits);
        let mut left = n;
        for digit in number.iter_mut().rev() {
            *digit = b'0' + (left % 10) as u8;
            left /= 10;
        }
        rest[..SUFFIX.len()].copy_from_slice(SUFFIX);
        Reply {
            buf,
            len: (PREFIX.len() + digits + SUFFIX.len()) as u8,
        }
    }

    /// The bytes to put on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        // `len` is at most `MAX_REPLY_LEN` by construction; the fallback only spares a
        // bounds check that the optimiser cannot see to be dead.
        self.buf.get(..usize::from(self.len)).unwrap_or(&self.buf)
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always ASCII by construction.
        f.write_str(core::str::from_utf8(self.as_bytes()).unwrap_or("?"))
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Reply {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=[u8]:a}", self.as_bytes())
    }
}

/// Why bytes are not a byte-count reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ParseError {
    /// The bytes do not start with `Your data was ` or do not end with ` bytes`.
    Frame,
    /// The count is empty, has a sign, a leading zero, a non-digit, or exceeds 65535.
    Count,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::Frame => "not of the form `Your data was N bytes`",
            ParseError::Count => "the byte count is not a plain decimal number up to 65535",
        })
    }
}

impl core::error::Error for ParseError {}

/// Parses a reply strictly and returns its count N.
///
/// Accepts exactly `Your data was {N} bytes` with N in canonical decimal (`0`, or no
/// leading zero), at most 65535; no whitespace, sign or trailing newline. Never panics.
pub fn parse_reply(bytes: &[u8]) -> Result<u16, ParseError> {
    let digits = bytes
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix(SUFFIX))
        .ok_or(ParseError::Frame)?;
    if digits.is_empty() || digits.len() > 5 || (digits.len() > 1 && digits[0] == b'0') {
        return Err(ParseError::Count);
    }
    let mut n: u32 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(ParseError::Count);
        }
        n = n * 10 + u32::from(d - b'0');
    }
    u16::try_from(n).map_err(|_| ParseError::Count)
}

/// Whether `bytes` is itself a byte-count reply (the server's loop guard asks this).
pub fn is_reply(bytes: &[u8]) -> bool {
    parse_reply(bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_the_table_of_counts() {
        let table: &[(u16, &[u8])] = &[
            (0, b"Your data was 0 bytes"),
            (1, b"Your data was 1 bytes"),
            (9, b"Your data was 9 bytes"),
            (10, b"Your data was 10 bytes"),
            (65507, b"Your data was 65507 bytes"),
            (65535, b"Your data was 65535 bytes"),
        ];
        for &(n, text) in table {
            assert_eq!(Reply::new(n).as_bytes(), text, "n = {n}");
            assert_eq!(parse_reply(text), Ok(n));
        }
    }

    /// Every count, each digit-count boundary (9/10, 99/100, .., 9999/10000) and the
    /// 25-byte longest reply among them: formatting fills the buffer by digit count, and
    /// `as_bytes` cuts it at the length.
    #[test]
    fn formats_every_count_exactly() {
        for n in 0..=u16::MAX {
            let reply = Reply::new(n);
            assert_eq!(
                reply.as_bytes(),
                std::format!("Your data was {n} bytes").as_bytes()
            );
        }
        assert_eq!(Reply::new(u16::MAX).as_bytes().len(), MAX_REPLY_LEN);
    }

    #[test]
    fn mapped_addresses_are_compared_as_ipv4_and_sized_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:6666".parse().unwrap();
        let plain: SocketAddr = "127.0.0.1:6666".parse().unwrap();
        let v6: SocketAddr = "[::1]:6666".parse().unwrap();
        assert_eq!(canonical(mapped), plain);
        assert_eq!(canonical(v6), v6);
        assert_eq!(max_request(mapped), MAX_REQUEST_V4);
        assert_eq!(max_request(v6), MAX_REQUEST_V6);
    }

    #[test]
    fn rejects_near_misses() {
        let table: &[(&[u8], ParseError)] = &[
            (b"", ParseError::Frame),
            (b"garbage", ParseError::Frame),
            (b"Your data was 12 bytes\n", ParseError::Frame),
            (b"your data was 12 bytes", ParseError::Frame),
            (b"Your data was 12 byte", ParseError::Frame),
            (b"Your data was  12 bytes", ParseError::Count),
            (b"Your data was 12  bytes", ParseError::Count),
            (b"Your data was bytes", ParseError::Frame),
            (b"Your data was  bytes", ParseError::Count),
            (b"Your data was 012 bytes", ParseError::Count),
            (b"Your data was 00 bytes", ParseError::Count),
            (b"Your data was +12 bytes", ParseError::Count),
            (b"Your data was -1 bytes", ParseError::Count),
            (b"Your data was 1e3 bytes", ParseError::Count),
            (b"Your data was 65536 bytes", ParseError::Count),
            (b"Your data was 99999 bytes", ParseError::Count),
            (b"Your data was 100000 bytes", ParseError::Count),
            (b"Your data was \xff bytes", ParseError::Count),
        ];
        for &(text, err) in table {
            assert_eq!(parse_reply(text), Err(err), "{:?}", text.escape_ascii());
        }
    }

    proptest! {
        #[test]
        fn every_count_round_trips_within_25_bytes(n: u16) {
            let reply = Reply::new(n);
            prop_assert!(reply.as_bytes().len() <= MAX_REPLY_LEN);
            prop_assert_eq!(MAX_REPLY_LEN, 25);
            prop_assert_eq!(parse_reply(reply.as_bytes()), Ok(n));
            prop_assert_eq!(std::format!("{reply}"), std::format!("Your data was {n} bytes"));
        }

        #[test]
        fn parser_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_reply(&bytes);
        }

        #[test]
        fn parser_never_panics_on_framed_noise(mid in proptest::collection::vec(any::<u8>(), 0..12)) {
            let mut bytes = PREFIX.to_vec();
            bytes.extend_from_slice(&mid);
            bytes.extend_from_slice(SUFFIX);
            if let Ok(n) = parse_reply(&bytes) {
                let again = Reply::new(n);
                prop_assert_eq!(again.as_bytes(), &bytes[..]);
            }
        }
    }
}
