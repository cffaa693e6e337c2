//! [`Unconnected`]: embedded-nal-async's `UnconnectedUdp` on an embassy-net socket.

use core::net::SocketAddr;

use embassy_net::IpListenEndpoint;
use embassy_net::udp::{BindError, UdpMetadata, UdpSocket};
use embedded_nal_async::UnconnectedUdp;

use crate::Error;
use crate::addr::{from_endpoint, local_of, source_for, to_remote};

/// An embassy-net [`UdpSocket`] as an embedded-nal-async
/// [`UnconnectedUdp`]: what the core's `asynch::Server`, `Listener`, `Broadcaster` and
/// `Discovery` run on.
///
/// - `receive_into` returns the datagram's **true length** even when the buffer is
///   shorter (the first `buffer.len()` bytes are stored), as the trait asks. It reads
///   through [`UdpSocket::recv_from_with`]: embassy-net's `recv_from` would drop such a
///   datagram with `RecvError::Truncated`. The local address is the one the datagram was
///   sent to (smoltcp records it), on the socket's port.
/// - `send(local, remote, data)` sends from `local`'s address when it is specified (a
///   server answers from the address the request hit), and lets smoltcp pick one when it
///   is unspecified. `local`'s port must be 0 or the socket's.
/// - Both are **cancel-safe**: see [`Connected`](crate::Connected#cancel-safety).
///
/// ```no_run
/// # async fn demo(stack: udp_echo_embassy::embassy_net::Stack<'_>) {
/// use udp_echo_core::ResponderConfig;
/// use udp_echo_core::asynch::Server;
/// use udp_echo_embassy::embassy_net::udp::{PacketMetadata, UdpSocket};
/// use udp_echo_embassy::{EmbassyClock, Unconnected};
///
/// let (mut rx_meta, mut rx) = ([PacketMetadata::EMPTY; 4], [0u8; 2048]);
/// let (mut tx_meta, mut tx) = ([PacketMetadata::EMPTY; 4], [0u8; 256]);
/// let socket = UdpSocket::new(stack, &mut rx_meta, &mut rx, &mut tx_meta, &mut tx);
/// let socket = Unconnected::bind(socket, 6666).expect("a fresh socket binds");
/// let mut server = Server::new(socket, ResponderConfig::default());
/// let mut buf = [0u8; 64]; // true lengths: a small buffer answers any size
/// let _ = server.run(&EmbassyClock, &mut buf, |_, _| {}).await;
/// # }
/// ```
pub struct Unconnected<'a> {
    socket: UdpSocket<'a>,
}

impl<'a> Unconnected<'a> {
    /// Wraps `socket` as it is (bind it first: an unbound socket receives nothing and
    /// cannot send).
    pub fn new(socket: UdpSocket<'a>) -> Self {
        Self { socket }
    }

    /// Binds `socket` to `endpoint` (a port, or an address and port; port 0 picks an
    /// ephemeral port) and wraps it.
    ///
    /// # Errors
    ///
    /// embassy-net's [`BindError`]: the socket was already bound, or the endpoint is
    /// unusable.
    pub fn bind(
        mut socket: UdpSocket<'a>,
        endpoint: impl Into<IpListenEndpoint>,
    ) -> Result<Self, BindError> {
        socket.bind(endpoint)?;
        Ok(Self { socket })
    }

    /// The local endpoint the socket is bound to.
    pub fn endpoint(&self) -> IpListenEndpoint {
        self.socket.endpoint()
    }

    /// The embassy-net socket.
    pub fn socket(&self) -> &UdpSocket<'a> {
        &self.socket
    }

    /// The embassy-net socket, mutably.
    pub fn socket_mut(&mut self) -> &mut UdpSocket<'a> {
        &mut self.socket
    }

    /// The embassy-net socket back.
    pub fn into_inner(self) -> UdpSocket<'a> {
        self.socket
    }

    /// Waits until every datagram queued by `send` has left the socket (handed to the
    /// device). Bound it with a timeout: a datagram to a neighbor that never answers ARP
    /// stays queued.
    pub async fn flush(&mut self) {
        self.socket.flush().await;
    }
}

// Not derived: embassy-net's `UdpSocket` has no `Debug`.
impl core::fmt::Debug for Unconnected<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Unconnected")
            .field("endpoint", &self.socket.endpoint())
            .finish()
    }
}

impl UnconnectedUdp for Unconnected<'_> {
    type Error = Error;

    async fn send(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> Result<(), Error> {
        let mut meta = UdpMetadata::from(to_remote(remote)?);
        meta.local_address = source_for(local, remote, self.socket.endpoint())?;
        Ok(self.socket.send_to(data, meta).await?)
    }

    async fn receive_into(
        &mut self,
        buffer: &mut [u8],
    ) -> Result<(usize, SocketAddr, SocketAddr), Error> {
        // Read before the closure: it runs inside the stack's borrow, where the socket
        // cannot be asked again.
        let bound = self.socket.endpoint();
        let (len, meta) = self
            .socket
            .recv_from_with(|data, meta| (copy_head(data, buffer), meta))
            .await;
        let remote = from_endpoint(meta.endpoint);
        Ok((len, local_of(meta.local_address, bound, remote), remote))
    }
}

/// Copies as much of `data` as fits into `buffer`; returns `data`'s whole length.
pub(crate) fn copy_head(data: &[u8], buffer: &mut [u8]) -> usize {
    let n = data.len().min(buffer.len());
    buffer[..n].copy_from_slice(&data[..n]);
    data.len()
}
