//! [`Connected`]: embedded-nal-async's `ConnectedUdp` on an embassy-net socket.

use core::net::SocketAddr;

use embassy_net::udp::{UdpMetadata, UdpSocket};
use embassy_net::{IpEndpoint, IpListenEndpoint};
use embedded_nal_async::ConnectedUdp;

use crate::Error;
use crate::addr::to_remote;
use crate::unconnected::copy_head;

/// An embassy-net [`UdpSocket`] connected to one peer, as an embedded-nal-async
/// [`ConnectedUdp`]: what the core's `asynch::Client` runs on.
///
/// smoltcp has no connected UDP sockets, so the connection is kept here: `send` sends to
/// the peer, and `receive_into` drops datagrams from any other source (address or port)
/// and counts them ([`foreign`](Self::foreign)), as a connected POSIX socket would.
/// Lengths are true lengths, as for [`Unconnected`](crate::Unconnected).
///
/// ```no_run
/// # async fn demo(stack: udp_echo_embassy::embassy_net::Stack<'_>) {
/// use udp_echo_core::{Outcome, RetryPolicy, asynch};
/// use udp_echo_embassy::embassy_net::udp::{PacketMetadata, UdpSocket};
/// use udp_echo_embassy::{Connected, EmbassyClock};
///
/// let (mut rx_meta, mut rx) = ([PacketMetadata::EMPTY; 4], [0u8; 256]);
/// let (mut tx_meta, mut tx) = ([PacketMetadata::EMPTY; 4], [0u8; 2048]);
/// let socket = UdpSocket::new(stack, &mut rx_meta, &mut rx, &mut tx_meta, &mut tx);
/// let server = "192.168.69.100:6666".parse().unwrap();
/// let socket = Connected::connect(socket, server).expect("an IPv4 server");
/// match asynch::request(socket, server, &RetryPolicy::default(), b"hello", &EmbassyClock).await {
///     Ok(Outcome::Reply(r)) => assert_eq!(r.count, 5),
///     Ok(Outcome::GaveUp(_)) => { /* no reply by 3100 ms */ }
///     Err(_) => { /* the socket failed */ }
/// }
/// # }
/// ```
///
/// # Cancel safety
///
/// The core's drivers race every send and receive against a deadline and drop the loser
/// unfinished; a dropped operation loses no datagram, here and in
/// [`Unconnected`](crate::Unconnected). embassy-net's `send_to` and `recv_from_with` are
/// `poll_fn`s, and each of their polls does all or nothing inside one borrow of the stack:
/// either it enqueues the whole datagram into (or dequeues it from, and copies it out of)
/// the socket's buffer and returns `Ready`, or it only registers the waker and returns
/// `Pending`. The adapter's futures add no await after the datagram is taken, so the value
/// reaches the caller in that same poll. A future dropped while pending has therefore
/// taken nothing out of the socket and put nothing into it. A datagram from another
/// source is discarded (and counted) in the poll that reads it, by design.
pub struct Connected<'a> {
    socket: UdpSocket<'a>,
    peer: IpEndpoint,
    foreign: u32,
}

impl<'a> Connected<'a> {
    /// Connects `socket` to `remote`. An unbound socket is first bound to an ephemeral
    /// port on every local address: embassy-net's `bind(0)` takes the stack's next port
    /// from 1025..=65535, starting at a point drawn from the stack's random seed. A bound
    /// socket keeps its binding.
    ///
    /// # Errors
    ///
    /// [`Error::NoRoute`] if `remote` is unspecified or has port 0, [`Error::Unsupported`]
    /// if it is IPv6 without the `proto-ipv6` feature, [`Error::LocalAddress`] if the
    /// socket is bound to an address of the other family, [`Error::NotBound`] if binding
    /// failed. The socket is dropped (and closed) on error.
    pub fn connect(mut socket: UdpSocket<'a>, remote: SocketAddr) -> Result<Self, Error> {
        let peer = to_remote(remote)?;
        // smoltcp panics on an IP header whose source and destination families differ.
        if let Some(local) = socket.endpoint().addr
            && core::net::IpAddr::from(local).is_ipv4() != remote.is_ipv4()
        {
            return Err(Error::LocalAddress);
        }
        if socket.endpoint().port == 0 {
            socket
                .bind(IpListenEndpoint {
                    addr: None,
                    port: 0,
                })
                .map_err(|_| Error::NotBound)?;
        }
        Ok(Self {
            socket,
            peer,
            foreign: 0,
        })
    }

    /// The peer, as given to [`connect`](Self::connect).
    pub fn remote(&self) -> SocketAddr {
        SocketAddr::new(self.peer.addr.into(), self.peer.port)
    }

    /// The local endpoint the socket is bound to (its address is `None` when bound to
    /// every local address).
    pub fn endpoint(&self) -> IpListenEndpoint {
        self.socket.endpoint()
    }

    /// Datagrams from other sources than the peer, dropped by `receive_into` so far
    /// (saturating).
    pub fn foreign(&self) -> u32 {
        self.foreign
    }

    /// The embassy-net socket.
    pub fn socket(&self) -> &UdpSocket<'a> {
        &self.socket
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
impl core::fmt::Debug for Connected<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connected")
            .field("endpoint", &self.socket.endpoint())
            .field("peer", &self.peer)
            .field("foreign", &self.foreign)
            .finish()
    }
}

impl ConnectedUdp for Connected<'_> {
    type Error = Error;

    async fn send(&mut self, data: &[u8]) -> Result<(), Error> {
        Ok(self
            .socket
            .send_to(data, UdpMetadata::from(self.peer))
            .await?)
    }

    async fn receive_into(&mut self, buffer: &mut [u8]) -> Result<usize, Error> {
        loop {
            let peer = self.peer;
            // Only the peer's datagram is copied out; another's is read and discarded.
            let got = self
                .socket
                .recv_from_with(|data, meta| {
                    (meta.endpoint == peer).then(|| copy_head(data, buffer))
                })
                .await;
            match got {
                Some(len) => return Ok(len),
                None => self.foreign = self.foreign.saturating_add(1),
            }
        }
    }
}
