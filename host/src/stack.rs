//! An `embedded-nal` 0.9 UDP stack over the host's (Linux) sockets.
//!
//! [`StdStack`] implements [`UdpClientStack`] and [`UdpFullStack`] with non-blocking
//! sockets, so the core's drivers get [`nb::Error::WouldBlock`] instead of blocking; the
//! shell then sleeps in [`StdStack::wait_readable`] until a datagram arrives or the
//! driver's deadline passes.
//!
//! What it adds over `std::net::UdpSocket`, for the core's [`udp_echo_core::stack`]
//! contract:
//! - [`receive`](UdpClientStack::receive) returns a datagram's **true length** even when
//!   it did not fit the buffer (`MSG_TRUNC`; Linux semantics);
//! - [`CAPS`] tells the core's drivers so, and that `ECONNREFUSED` is an ICMP "port
//!   unreachable";
//! - the bind address, `SO_BROADCAST`, `SO_REUSEADDR`, `SO_REUSEPORT` and `SO_RCVBUF` are
//!   configurable.
//!
//! A socket's address family is only known once it is connected or bound, so
//! [`socket`](UdpClientStack::socket) creates no OS socket: [`connect`](UdpClientStack::connect)
//! opens one of the remote's family, [`bind`](UdpFullStack::bind) one of the bind
//! address's, and [`send_to`](UdpFullStack::send_to) on a fresh socket one of the
//! destination's (bound to an ephemeral port by the kernel).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Instant;

use embedded_nal::{UdpClientStack, UdpFullStack};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use udp_echo_core::embedded_nal;
use udp_echo_core::wire::canonical;
use udp_echo_core::{StackCaps, StackErrorKind, nb};

/// What the core's drivers may assume of [`StdStack`]: true lengths (`MSG_TRUNC`), and
/// `ECONNREFUSED` is an ICMP "port unreachable".
pub const CAPS: StackCaps<StdError> = StackCaps::PLAIN
    .with_true_lengths()
    .with_classifier(|e| udp_echo_core::stack::classify_io_error(&e.0));

/// A UDP stack over host sockets; its fields are the options applied to every socket it
/// opens. Build with [`StdStack::new`] and the `with_*` methods.
#[derive(Debug, Clone, Default)]
pub struct StdStack {
    bind_ip: Option<IpAddr>,
    broadcast: bool,
    reuse_addr: bool,
    reuse_port: bool,
    recv_buffer_size: Option<usize>,
}

impl StdStack {
    /// A stack that binds `0.0.0.0`, with no socket options beyond the OS defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Address [`bind`](UdpFullStack::bind) binds (default `0.0.0.0`). Binding `::` makes
    /// a dual-stack socket (`IPV6_V6ONLY` off) whose IPv4 peers are reported as plain IPv4
    /// addresses. Connected sockets ignore it: the kernel picks their source address.
    pub fn with_bind_ip(mut self, ip: IpAddr) -> Self {
        self.bind_ip = Some(ip);
        self
    }

    /// Set `SO_BROADCAST` on every socket, so it may send to broadcast addresses.
    pub fn with_broadcast(mut self, on: bool) -> Self {
        self.broadcast = on;
        self
    }

    /// Set `SO_REUSEADDR` on bound sockets. It lets several listeners share a port and all
    /// receive its broadcasts; for a unicast server it hides "address in use" (the newest
    /// socket gets the datagrams), hence off by default.
    pub fn with_reuse_addr(mut self, on: bool) -> Self {
        self.reuse_addr = on;
        self
    }

    /// Set `SO_REUSEPORT` on bound sockets: the kernel spreads datagrams over all sockets
    /// (of the same user) bound to the port, e.g. one per server thread.
    pub fn with_reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Ask for a receive buffer (`SO_RCVBUF`) of `bytes` on every socket; Linux caps the
    /// request at `net.core.rmem_max`, then doubles it for its bookkeeping.
    pub fn with_recv_buffer_size(mut self, bytes: usize) -> Self {
        self.recv_buffer_size = Some(bytes);
        self
    }

    /// Sleep until `socket` is readable (a datagram or a pending error such as
    /// `ECONNREFUSED` is waiting, so [`receive`](UdpClientStack::receive) will not say
    /// `WouldBlock`) or `deadline` passes; `None` waits forever. Returns whether it is
    /// readable. Signals do not cut the wait short.
    ///
    /// # Errors
    ///
    /// If the socket has not been connected, bound or sent from yet, or `poll(2)` fails.
    pub fn wait_readable(&self, socket: &StdSocket, deadline: Option<Instant>) -> io::Result<bool> {
        self.wait_readable_or(socket, None, deadline)
            .map(|w| w.socket)
    }

    /// Like [`wait_readable`](Self::wait_readable), but also wakes when `other` becomes
    /// readable, e.g. the read end of a self-pipe that a signal handler writes to, so a
    /// shell can stop at once on SIGINT without polling a flag.
    ///
    /// # Errors
    ///
    /// As [`wait_readable`](Self::wait_readable).
    pub fn wait_readable_or(
        &self,
        socket: &StdSocket,
        other: Option<BorrowedFd<'_>>,
        deadline: Option<Instant>,
    ) -> io::Result<Readiness> {
        crate::wait::readable(socket.get()?.as_fd(), other, deadline)
    }

    /// A new OS socket of `addr`'s family with the stack-wide options.
    fn open(&self, addr: SocketAddr) -> io::Result<Socket> {
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::DGRAM.nonblocking(),
            Some(Protocol::UDP),
        )?;
        if self.broadcast {
            socket.set_broadcast(true)?;
        }
        if let Some(bytes) = self.recv_buffer_size {
            socket.set_recv_buffer_size(bytes)?;
        }
        Ok(socket)
    }
}

pub use crate::wait::Readiness;

/// The stack's socket: a non-blocking UDP socket, opened on first connect, bind or send_to.
#[derive(Debug)]
pub struct StdSocket {
    inner: Option<Socket>,
}

impl StdSocket {
    /// Whether the OS socket exists yet (after connect, bind or send_to).
    pub fn is_open(&self) -> bool {
        self.inner.is_some()
    }

    /// The local address, e.g. to learn the port `bind(socket, 0)` got.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.get()?
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("socket has no IP address"))
    }

    fn get(&self) -> io::Result<&Socket> {
        self.inner.as_ref().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotConnected,
                "socket not yet connected, bound or sent from",
            )
        })
    }
}

/// # Panics
///
/// If the socket is not open yet (see [`StdSocket::is_open`]).
impl AsFd for StdSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner
            .as_ref()
            .expect("StdSocket used before connect, bind or send_to")
            .as_fd()
    }
}

/// # Panics
///
/// If the socket is not open yet (see [`StdSocket::is_open`]).
impl AsRawFd for StdSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

/// A failed socket operation; the OS error is kept whole.
#[derive(Debug)]
pub struct StdError(io::Error);

impl StdError {
    /// The underlying OS error.
    pub fn io_error(&self) -> &io::Error {
        &self.0
    }

    /// Unwrap the underlying OS error.
    pub fn into_io_error(self) -> io::Error {
        self.0
    }
}

impl From<io::Error> for StdError {
    fn from(e: io::Error) -> Self {
        StdError(e)
    }
}

impl From<StdError> for io::Error {
    fn from(e: StdError) -> Self {
        e.0
    }
}

/// Transparent: shows the OS error, whose source is this error's source.
impl fmt::Display for StdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl StdError {
    /// What the core makes of this error (see [`CAPS`]); never `Truncated`: `receive`
    /// always knows the true length.
    pub fn kind(&self) -> StackErrorKind {
        CAPS.kind(self)
    }
}

/// Conditions a non-blocking call should retry later are `WouldBlock`; the rest are errors.
fn nb_error(e: io::Error) -> nb::Error<StdError> {
    // ENOBUFS: the interface queue is full, a transient state like EAGAIN.
    let transient = matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    ) || Errno::from_io_error(&e) == Some(Errno::NOBUFS);
    if transient {
        nb::Error::WouldBlock
    } else {
        fatal(e)
    }
}

/// An error a retry cannot cure.
fn fatal(e: io::Error) -> nb::Error<StdError> {
    nb::Error::Other(StdError(e))
}

impl UdpClientStack for StdStack {
    type UdpSocket = StdSocket;
    type Error = StdError;

    fn socket(&mut self) -> Result<StdSocket, StdError> {
        Ok(StdSocket { inner: None })
    }

    /// Connects (`connect(2)`), opening a socket of `remote`'s family first if needed; the
    /// kernel then binds it (if unbound) to an ephemeral port and only delivers `remote`'s datagrams.
    fn connect(&mut self, socket: &mut StdSocket, remote: SocketAddr) -> Result<(), StdError> {
        let os = match &mut socket.inner {
            Some(os) => os,
            none => none.insert(self.open(remote)?),
        };
        os.connect(&remote.into())?;
        Ok(())
    }

    fn send(&mut self, socket: &mut StdSocket, buffer: &[u8]) -> nb::Result<(), StdError> {
        let os = socket.get().map_err(fatal)?;
        os.send(buffer).map(drop).map_err(nb_error)
    }

    /// Non-blocking `recvfrom(2)` with `MSG_TRUNC`: the length returned is the datagram's,
    /// which may exceed `buffer.len()` (only that many bytes are stored).
    fn receive(
        &mut self,
        socket: &mut StdSocket,
        buffer: &mut [u8],
    ) -> nb::Result<(usize, SocketAddr), StdError> {
        let os = socket.get().map_err(fatal)?;
        let (_stored, len, from) =
            rustix::net::recvfrom(os, buffer, RecvFlags::TRUNC).map_err(|e| nb_error(e.into()))?;
        let from = from
            .and_then(|a| SocketAddr::try_from(a).ok())
            .ok_or_else(|| fatal(io::Error::other("datagram without an IP source")))?;
        // A dual-stack socket reports IPv4 peers as `::ffff:a.b.c.d`; the core sees
        // `a.b.c.d` (and Linux accepts it back as a `send_to` destination on that socket).
        Ok((len, canonical(from)))
    }

    fn close(&mut self, socket: StdSocket) -> Result<(), StdError> {
        drop(socket);
        Ok(())
    }
}

impl UdpFullStack for StdStack {
    /// Binds `bind_ip:local_port` on a new socket; port 0 picks an ephemeral port (see
    /// [`StdSocket::local_addr`]). Applies `SO_REUSEADDR`/`SO_REUSEPORT` if configured.
    fn bind(&mut self, socket: &mut StdSocket, local_port: u16) -> Result<(), StdError> {
        if socket.inner.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "socket already connected, bound or sent from",
            )
            .into());
        }
        let ip = self.bind_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let local = SocketAddr::new(ip, local_port);
        let os = self.open(local)?;
        if ip == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
            os.set_only_v6(false)?;
        }
        if self.reuse_addr {
            os.set_reuse_address(true)?;
        }
        if self.reuse_port {
            os.set_reuse_port(true)?;
        }
        os.bind(&SockAddr::from(local))?;
        socket.inner = Some(os);
        Ok(())
    }

    fn send_to(
        &mut self,
        socket: &mut StdSocket,
        remote: SocketAddr,
        buffer: &[u8],
    ) -> nb::Result<(), StdError> {
        let os = match &mut socket.inner {
            Some(os) => os,
            none => none.insert(self.open(remote).map_err(fatal)?),
        };
        // rustix's raw syscall, like `receive`: no glibc wrapper (whose multi-threaded path
        // toggles thread cancellation on every call) and no sockaddr_storage to build.
        rustix::net::sendto(&*os, buffer, SendFlags::empty(), &remote)
            .map(drop)
            .map_err(|e| nb_error(e.into()))
    }
}
