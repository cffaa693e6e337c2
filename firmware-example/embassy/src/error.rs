//! The adapter's one error type.

use core::fmt;

use embassy_net::udp::SendError;
use embedded_io_async::ErrorKind;

/// Why a send (or setting up a [`Connected`](crate::Connected)) failed.
///
/// Receiving never fails: embassy-net has no receive error once the whole datagram is
/// read (see [`Unconnected`](crate::Unconnected)), and smoltcp does not pass ICMP errors
/// to UDP sockets, so [`ErrorKind::ConnectionRefused`] never occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The remote address cannot be sent to: unspecified, or port 0 (embassy-net's
    /// `SendError::NoRoute`). A remote without a route is not detected here: smoltcp drops
    /// such a datagram when it would transmit it. Kind: [`ErrorKind::AddrNotAvailable`].
    NoRoute,
    /// The socket is not bound to a port (embassy-net's `SendError::SocketNotBound`).
    /// Kind: [`ErrorKind::NotConnected`].
    NotBound,
    /// The datagram is larger than the socket's whole transmit buffer: it can never be
    /// sent (embassy-net's `SendError::PacketTooLarge`). Kind: [`ErrorKind::InvalidInput`].
    TooLarge,
    /// An IPv6 address, without the `proto-ipv6` feature. Kind: [`ErrorKind::Unsupported`].
    Unsupported,
    /// The local address given to `send` cannot be used with this socket: a port other
    /// than the one it is bound to, or an address of another family than the remote's.
    /// Kind: [`ErrorKind::InvalidInput`].
    LocalAddress,
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        match e {
            SendError::NoRoute => Self::NoRoute,
            SendError::SocketNotBound => Self::NotBound,
            SendError::PacketTooLarge => Self::TooLarge,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoRoute => "the remote address is unspecified or has port 0",
            Self::NotBound => "the socket is not bound to a port",
            Self::TooLarge => "the datagram is larger than the socket's transmit buffer",
            Self::Unsupported => "IPv6 is not enabled (feature `proto-ipv6`)",
            Self::LocalAddress => {
                "the local address is not the socket's port, or not the remote's family"
            }
        })
    }
}

impl core::error::Error for Error {}

impl embedded_io_async::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoRoute => ErrorKind::AddrNotAvailable,
            Self::NotBound => ErrorKind::NotConnected,
            Self::TooLarge | Self::LocalAddress => ErrorKind::InvalidInput,
            Self::Unsupported => ErrorKind::Unsupported,
        }
    }
}
