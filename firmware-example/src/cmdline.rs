//! The network firmware's boot command line: what QEMU's `-append` passes through
//! semihosting (`SYS_GET_CMDLINE`).
//!
//! QEMU hands over the kernel's path, a space, then the `-append` text split at spaces and
//! joined again with single spaces. So the first word is skipped, and a message keeps its
//! words but not runs of spaces:
//!
//! | after the path | mode |
//! | --- | --- |
//! | (nothing), `serve` | [`Mode::Serve`]: answer on UDP 6666 |
//! | `client HOST:PORT MESSAGE…` | [`Mode::Client`]: send MESSAGE (the rest of the line, possibly empty) to HOST:PORT |
//!
//! ```
//! use udp_echo_firmware_example::cmdline::{parse, Mode};
//!
//! let mode = parse(b"/tmp/net-firmware client 10.0.2.2:6666 hello world")?;
//! assert_eq!(
//!     mode,
//!     Mode::Client { server: "10.0.2.2:6666".parse().unwrap(), message: b"hello world" }
//! );
//! assert_eq!(parse(b"/tmp/net-firmware")?, Mode::Serve);
//! # Ok::<(), udp_echo_firmware_example::cmdline::CmdlineError>(())
//! ```

use core::fmt;
use core::net::SocketAddrV4;

/// What the firmware was booted to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode<'a> {
    /// Answer requests on UDP 6666 until stopped.
    Serve,
    /// Send `message` to `server` with the default retry schedule, then exit.
    Client {
        /// Where to send it (from inside QEMU's user network, the host is 10.0.2.2).
        server: SocketAddrV4,
        /// The request's bytes.
        message: &'a [u8],
    },
}

/// Why a command line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CmdlineError {
    /// The first word after the path is neither `serve` nor `client`.
    UnknownCommand,
    /// `client` without `HOST:PORT`.
    MissingServer,
    /// `HOST:PORT` is not an IPv4 address with a port, like `10.0.2.2:6666`.
    BadServer,
    /// Port 0 is no destination.
    PortZero,
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownCommand => "expected `serve` or `client HOST:PORT MESSAGE`",
            Self::MissingServer => "`client` needs HOST:PORT, e.g. 10.0.2.2:6666",
            Self::BadServer => "HOST:PORT must be an IPv4 address and a port, e.g. 10.0.2.2:6666",
            Self::PortZero => "port 0 is not a destination",
        })
    }
}

impl core::error::Error for CmdlineError {}

/// Splits off the first space-separated word (empty at the end of the line).
fn word(line: &[u8]) -> (&[u8], &[u8]) {
    let line = line.trim_ascii_start();
    match line.iter().position(|&b| b == b' ') {
        Some(at) => (&line[..at], &line[at + 1..]),
        None => (line, &[]),
    }
}

/// `a.b.c.d:port` in decimal, as core's `SocketAddrV4` parser takes it (no leading zeros
/// in an octet). Ours because core's, with the UTF-8 check in front, is 1.1 KB of flash on
/// a Cortex-M4 for this one use.
fn socket_addr(text: &[u8]) -> Option<SocketAddrV4> {
    fn number(digits: &[u8], max: u32) -> Option<u32> {
        if digits.is_empty() || digits.len() > 5 || digits.len() > 1 && digits[0] == b'0' {
            return None;
        }
        let n = digits.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })?;
        (n <= max).then_some(n)
    }
    let colon = text.iter().position(|&b| b == b':')?;
    let (ip, port) = (&text[..colon], &text[colon + 1..]);
    let mut parts = ip.split(|&b| b == b'.');
    let mut octets = [0u8; 4];
    for octet in &mut octets {
        *octet = number(parts.next()?, 255)? as u8;
    }
    if parts.next().is_some() {
        return None;
    }
    let port = number(port, 65535)? as u16;
    Some(SocketAddrV4::new(octets.into(), port))
}

/// Parses a command line (see the [module docs](self)).
pub fn parse(line: &[u8]) -> Result<Mode<'_>, CmdlineError> {
    let (_path, rest) = word(line);
    let (command, rest) = word(rest);
    match command {
        b"" | b"serve" if rest.trim_ascii().is_empty() => Ok(Mode::Serve),
        b"client" => {
            let (server, message) = word(rest);
            if server.is_empty() {
                return Err(CmdlineError::MissingServer);
            }
            let server = socket_addr(server).ok_or(CmdlineError::BadServer)?;
            if server.port() == 0 {
                return Err(CmdlineError::PortZero);
            }
            Ok(Mode::Client {
                server,
                message: message.trim_ascii_end(),
            })
        }
        _ => Err(CmdlineError::UnknownCommand),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(line: &[u8]) -> (SocketAddrV4, &[u8]) {
        match parse(line) {
            Ok(Mode::Client { server, message }) => (server, message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_command_or_serve_serves() {
        for line in [&b"fw"[..], b"fw ", b"fw serve", b"/a/b/net-firmware serve "] {
            assert_eq!(parse(line), Ok(Mode::Serve), "{line:?}");
        }
    }

    #[test]
    fn client_takes_the_rest_of_the_line_as_its_message() {
        let server = SocketAddrV4::new([10, 0, 2, 2].into(), 40000);
        assert_eq!(
            client(b"fw client 10.0.2.2:40000 hi there"),
            (server, &b"hi there"[..])
        );
        assert_eq!(
            client(b"fw client 10.0.2.2:40000 \xff\x01"),
            (server, &b"\xff\x01"[..])
        );
        assert_eq!(client(b"fw client 10.0.2.2:40000"), (server, &b""[..]));
        assert_eq!(client(b"fw client 10.0.2.2:40000 "), (server, &b""[..]));
    }

    #[test]
    fn addresses_parse_as_core_parses_them() {
        let good = [
            "10.0.2.2:6666",
            "0.0.0.0:1",
            "255.255.255.255:65535",
            "127.0.0.1:0",
        ];
        let bad = [
            "10.0.2.256:1",
            "10.0.2:1",
            "10.0.2.2.1:1",
            "10.0.2.2:65536",
            "10.0.2.2:",
            ":1",
            "a.b.c.d:1",
            "010.0.2.2:7",
            "10.0.2.2:+7",
            "10.0.2.2:7:8",
            "10..2.2:7",
            "10.0.2.2",
        ];
        for text in good.iter().chain(&bad) {
            let core: Option<SocketAddrV4> = text.parse().ok();
            assert_eq!(socket_addr(text.as_bytes()), core, "{text}");
        }
        assert!(socket_addr(b"10.0.2.2:6666").is_some());
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let cases: [(&[u8], CmdlineError); 6] = [
            (b"fw serve now", CmdlineError::UnknownCommand),
            (b"fw send 10.0.2.2:7 x", CmdlineError::UnknownCommand),
            (b"fw client", CmdlineError::MissingServer),
            (b"fw client 10.0.2.2 x", CmdlineError::BadServer),
            (b"fw client [::1]:6666 x", CmdlineError::BadServer),
            (b"fw client 10.0.2.2:0 x", CmdlineError::PortZero),
        ];
        for (line, error) in cases {
            assert_eq!(parse(line), Err(error), "{line:?}");
        }
    }
}
