//! The async byte-count server and listener over an `UnconnectedUdp` socket.

use core::convert::Infallible;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use embedded_nal_async::UnconnectedUdp;

use super::{Clock, ready_now, refused};
use crate::driver::{BATCH, Received, ServerError};
use crate::responder::{
    Counters, DEFAULT_SOURCES, Decision, Destination, Responder, ResponderConfig,
};

/// The default classifier's type: where a datagram that reached `local` from `remote`
/// was sent. Any `FnMut(SocketAddr, SocketAddr) -> Destination` can replace it (see
/// [`Server::with_destinations`]), e.g. a closure over the interface's prefix.
pub type Destinations = fn(local: SocketAddr, remote: SocketAddr) -> Destination;

/// The default [`Destinations`]: a datagram to 255.255.255.255 or a multicast group is a
/// broadcast whose source cannot be known to be on-link (so it is not answered), and
/// anything else is [`Destination::Unknown`]. A subnet's own broadcast address cannot be
/// told without the prefix: give the server your own classifier for that.
pub fn unknown_destinations(local: SocketAddr, _remote: SocketAddr) -> Destination {
    if is_group(local.ip()) {
        Destination::Broadcast {
            source_on_link: false,
        }
    } else {
        Destination::Unknown
    }
}

fn is_group(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}

/// The address a reply goes out from: the one the request hit, unless that was a
/// broadcast or multicast address (never a source) or unspecified; then the stack picks
/// the address, on the same port.
fn reply_source(local: SocketAddr, to: Destination) -> SocketAddr {
    let shared = matches!(to, Destination::Broadcast { .. }) || is_group(local.ip());
    if shared || local.ip().is_unspecified() {
        let any = match local {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        SocketAddr::new(any, local.port())
    } else {
        local
    }
}

/// The next datagram's true length, local and remote address, received from `$socket`
/// into `$buf`. An ICMP report is for an earlier reply's destination: nothing to answer,
/// so the wait goes on.
///
/// This and [`next_datagram!`] are macros, not `async fn`s the drivers await: each nested
/// `async fn` adds a state machine with a "resumed after completion" panic that the
/// optimiser could not remove (firmware-example/no-panic proves that none is left).
macro_rules! receive {
    ($socket:expr, $buf:expr) => {
        loop {
            match $socket.receive_into($buf).await {
                Ok(got) => break Ok(got),
                Err(e) if refused(&e) => {}
                Err(e) => break Err(ServerError::Stack(e)),
            }
        }
    };
}

/// The body of [`Server::next`], which [`Server::run`] runs too (see [`receive!`]).
macro_rules! next_datagram {
    ($server:expr, $clock:expr, $buf:expr) => {{
        let server = $server;
        let buf = $buf;
        match receive!(server.socket, &mut *buf) {
            Err(e) => Err(e),
            Ok((len, local, remote)) => {
                let now = $clock.now();
                let datagram = Received::new(remote, len, buf, now);
                let to = (server.destinations)(local, remote);
                let decision = server
                    .responder
                    .handle_to(now, remote, to, len, datagram.head);
                if let Decision::Reply(reply) = &decision {
                    let sending =
                        server
                            .socket
                            .send(reply_source(local, to), remote, reply.as_bytes());
                    if !matches!(ready_now!(sending), Some(Ok(()))) {
                        server.responder.note_send_failed();
                        warn!("server: a reply could not be sent");
                    }
                }
                Ok((datagram, decision))
            }
        }
    }};
}

/// The byte-count server: answers every datagram through a [`Responder`], from the
/// local address the request hit.
///
/// ```
/// # async fn demo<S: udp_echo_core::embedded_nal_async::UnconnectedUdp>(
/// #     socket: S, clock: impl udp_echo_core::asynch::Clock) {
/// use udp_echo_core::ResponderConfig;
/// use udp_echo_core::asynch::Server;
///
/// let mut server = Server::new(socket, ResponderConfig::default());
/// // The socket reports true lengths: a small buffer answers datagrams of any size.
/// let mut buf = [0u8; 512];
/// let Err(e) = server.run(&clock, &mut buf, |datagram, decision| {
///     // e.g. log datagram.from, datagram.len and the decision
/// }).await;
/// # }
/// ```
///
/// `N` is the number of per-source rate-limit buckets ([`DEFAULT_SOURCES`] unless
/// [`with_sources`](Self::with_sources) says otherwise).
#[derive(Debug)]
pub struct Server<S, const N: usize = DEFAULT_SOURCES, D = Destinations> {
    socket: S,
    responder: Responder<N>,
    destinations: D,
}

impl<S: UnconnectedUdp> Server<S> {
    /// Answers datagrams arriving on `socket` with the guards of `config`.
    pub fn new(socket: S, config: ResponderConfig) -> Self {
        Server {
            socket,
            responder: Responder::new(config),
            destinations: unknown_destinations,
        }
    }
}

impl<S, const N: usize, D> Server<S, N, D>
where
    S: UnconnectedUdp,
    D: FnMut(SocketAddr, SocketAddr) -> Destination,
{
    /// The same server with `M` per-source buckets (32 bytes each). Call before the
    /// first datagram: the buckets start empty.
    #[must_use]
    pub fn with_sources<const M: usize>(self) -> Server<S, M, D> {
        Server {
            socket: self.socket,
            responder: Responder::with_sources(*self.responder.config()),
            destinations: self.destinations,
        }
    }

    /// Keys the per-source table with a random `seed` (see [`Responder::with_seed`]).
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.responder = self.responder.with_seed(seed);
        self
    }

    /// Tells the server where datagrams were sent, for the broadcast guard:
    /// `destinations(local, remote)` for each datagram (see [`unknown_destinations`], the
    /// default). A closure may read state the stack keeps, such as a prefix from DHCP.
    #[must_use]
    pub fn with_destinations<E>(self, destinations: E) -> Server<S, N, E>
    where
        E: FnMut(SocketAddr, SocketAddr) -> Destination,
    {
        Server {
            socket: self.socket,
            responder: self.responder,
            destinations,
        }
    }

    /// What the server has seen and done.
    pub fn counters(&self) -> &Counters {
        self.responder.counters()
    }

    /// The socket, e.g. to flush the last reply.
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.socket
    }

    /// The socket back.
    pub fn into_socket(self) -> S {
        self.socket
    }

    /// Waits for the next datagram, decides and replies; returns the datagram (its head
    /// in `buf`) and the decision. A reply the socket cannot take at once is dropped and
    /// counted, as by the sync server: waiting for room would let a flood hold the
    /// server.
    ///
    /// # Errors
    ///
    /// [`ServerError::Stack`] if receiving fails with anything but an ICMP report.
    pub async fn next<'b>(
        &mut self,
        clock: &impl Clock,
        buf: &'b mut [u8],
    ) -> Result<(Received<'b>, Decision), ServerError<S::Error>> {
        next_datagram!(self, clock, buf)
    }

    /// Answers datagrams forever, telling `on_datagram` about each; lets other tasks
    /// run after every [`BATCH`] datagrams, so a flood cannot starve them.
    ///
    /// # Errors
    ///
    /// As [`next`](Self::next): the only way it returns.
    pub async fn run(
        &mut self,
        clock: &impl Clock,
        buf: &mut [u8],
        mut on_datagram: impl FnMut(&Received<'_>, &Decision),
    ) -> Result<Infallible, ServerError<S::Error>> {
        loop {
            for _ in 0..BATCH {
                let (datagram, decision) = next_datagram!(&mut *self, clock, &mut *buf)?;
                on_datagram(&datagram, &decision);
            }
            embassy_futures::yield_now().await;
        }
    }
}

/// A listener: receives datagrams (e.g. broadcasts) and never replies.
#[derive(Debug)]
pub struct Listener<S> {
    socket: S,
    received: u64,
}

impl<S: UnconnectedUdp> Listener<S> {
    /// Listens on `socket`.
    pub fn new(socket: S) -> Self {
        Listener {
            socket,
            received: 0,
        }
    }

    /// Datagrams received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The socket, e.g. to flush.
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.socket
    }

    /// The socket back.
    pub fn into_socket(self) -> S {
        self.socket
    }

    /// Waits for the next datagram; its head is in `buf`, its true length in `len`.
    ///
    /// # Errors
    ///
    /// [`ServerError::Stack`] if receiving fails with anything but an ICMP report.
    pub async fn next<'b>(
        &mut self,
        clock: &impl Clock,
        buf: &'b mut [u8],
    ) -> Result<Received<'b>, ServerError<S::Error>> {
        let (len, _local, remote) = receive!(self.socket, &mut *buf)?;
        self.received += 1;
        Ok(Received::new(remote, len, buf, clock.now()))
    }
}
