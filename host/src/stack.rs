//! An `embedded-nal` 0.9 UDP stack over the host's sockets (Linux, macOS, FreeBSD,
//! Windows).
//!
//! [`StdStack`] implements [`UdpClientStack`] and [`UdpFullStack`] with non-blocking
//! sockets, so the core's drivers get [`nb::Error::WouldBlock`] instead of blocking; the
//! shell then sleeps in [`StdStack::wait_readable`] until a datagram arrives or the
//! driver's deadline passes.
//!
//! What it adds over `std::net::UdpSocket`, for the core's stack contract (see
//! [`StackCaps`]):
//! - [`receive`](UdpClientStack::receive) returns a datagram's **true length** even when
//!   it did not fit the buffer: on Linux with `MSG_TRUNC` (Linux semantics: the kernel
//!   returns the datagram's length); elsewhere, where `MSG_TRUNC` on input is ignored or
//!   only recent (FreeBSD 13.2), a buffer shorter than the largest datagram receives
//!   through a 64 KiB buffer of the stack's, so no datagram is ever cut before it is
//!   measured;
//! - [`CAPS`] tells the core's drivers so, and that `ECONNREFUSED` (`WSAECONNRESET` on
//!   Windows) is an ICMP "port unreachable";
//! - the bind address, `SO_BROADCAST`, `SO_REUSEADDR`, `SO_REUSEPORT` (not on Windows)
//!   and `SO_RCVBUF` are configurable.
//!
//! A socket's address family is only known once it is connected or bound, so
//! [`socket`](UdpClientStack::socket) creates no OS socket: [`connect`](UdpClientStack::connect)
//! opens one of the remote's family, [`bind`](UdpFullStack::bind) one of the bind
//! address's, and [`send_to`](UdpFullStack::send_to) on a fresh socket one of the
//! destination's (bound to an ephemeral port by the kernel).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use embedded_nal::{UdpClientStack, UdpFullStack};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, SocketAddrAny};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use udp_echo_core::embedded_nal;
use udp_echo_core::wire::canonical;
use udp_echo_core::{StackCaps, StackErrorKind, nb};

/// What the core's drivers may assume of [`StdStack`]: true lengths (see the module
/// docs), and `ECONNREFUSED` is an ICMP "port unreachable" (so is `ECONNRESET`: Windows
/// reports one so, and no other system does on a UDP socket).
pub const CAPS: StackCaps<StdError> = StackCaps::PLAIN
    .with_true_lengths()
    .with_classifier(|e| classify_io_error(&e.0));

/// What the core makes of a socket error on this host: `ConnectionRefused` and
/// `ConnectionReset` (Windows' `WSAECONNRESET`: an ICMP "port unreachable" for an earlier
/// send) are [`StackErrorKind::Refused`], every other error [`StackErrorKind::Other`].
pub fn classify_io_error(e: &io::Error) -> StackErrorKind {
    match e.kind() {
        io::ErrorKind::ConnectionReset => StackErrorKind::Refused,
        _ => udp_echo_core::classify_io_error(e),
    }
}

/// A UDP stack over host sockets; its fields are the options applied to every socket it
/// opens. Build with [`StdStack::new`] and the `with_*` methods.
#[derive(Debug, Clone, Default)]
pub struct StdStack {
    bind_ip: Option<IpAddr>,
    broadcast: bool,
    reuse_addr: bool,
    reuse_port: bool,
    recv_buffer_size: Option<usize>,
    /// The local address client sockets send from (`--source`).
    source: Option<SocketAddr>,
    /// The interface every socket is tied to (`--interface`).
    device: Option<String>,
    /// The TTL (IPv4) or hop limit (IPv6) of datagrams sent to a multicast group.
    multicast_ttl: Option<u32>,
    /// Where a short buffer's datagram is received whole, to tell its length (not Linux).
    scratch: Scratch,
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
    /// (of the same user) bound to the port, e.g. one per server thread. Windows has no
    /// `SO_REUSEPORT`: there [`bind`](UdpFullStack::bind) then fails (`Unsupported`).
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

    /// Client sockets (connected, or sending before any bind) send from `source`: its
    /// address, and its port unless that is 0. It must be of the remote's family.
    pub fn with_source(mut self, source: SocketAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// Every socket is tied to the interface called `name` (see
    /// [`udp::bind_device`](crate::udp::bind_device)).
    pub fn with_device(mut self, name: impl Into<String>) -> Self {
        self.device = Some(name.into());
        self
    }

    /// Datagrams to a multicast group go `hops` routers far (`IP_MULTICAST_TTL`,
    /// `IPV6_MULTICAST_HOPS`; the system's default is 1: the local network only).
    pub fn with_multicast_ttl(mut self, hops: u32) -> Self {
        self.multicast_ttl = Some(hops);
        self
    }

    /// A new OS socket for talking to `remote`: the stack-wide options, then bound to the
    /// source address if one is set.
    fn open_client(&self, remote: SocketAddr) -> io::Result<Socket> {
        let socket = self.open(remote)?;
        if let Some(source) = self.source {
            if source.is_ipv4() != remote.is_ipv4() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the source {source} and the destination {remote} are of different address families"
                    ),
                ));
            }
            socket.bind(&source.into())?;
        }
        Ok(socket)
    }

    /// A new OS socket of `addr`'s family with the stack-wide options.
    fn open(&self, addr: SocketAddr) -> io::Result<Socket> {
        // Non-blocking from the start where socket(2) takes SOCK_NONBLOCK.
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::DGRAM.nonblocking(),
            Some(Protocol::UDP),
        )?;
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        let socket = {
            let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
            socket.set_nonblocking(true)?;
            socket
        };
        if self.broadcast {
            socket.set_broadcast(true)?;
        }
        if let Some(bytes) = self.recv_buffer_size {
            socket.set_recv_buffer_size(bytes)?;
        }
        if let Some(name) = &self.device {
            crate::udp::bind_device(&socket, name)?;
        }
        if let Some(hops) = self.multicast_ttl {
            match addr {
                SocketAddr::V4(_) => socket.set_multicast_ttl_v4(hops)?,
                SocketAddr::V6(_) => socket.set_multicast_hops_v6(hops)?,
            }
        }
        Ok(socket)
    }
}

pub use crate::wait::Readiness;

/// The stack's socket: a non-blocking UDP socket, opened on first connect, bind or send_to.
#[derive(Debug)]
pub struct StdSocket {
    inner: Option<Socket>,
    /// Whether `inner` is an IPv6 socket.
    ipv6: bool,
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

    /// The OS socket; panics if there is none yet (for the descriptor traits).
    fn open_socket(&self) -> &Socket {
        self.inner
            .as_ref()
            .expect("StdSocket used before connect, bind or send_to")
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
#[cfg(unix)]
impl std::os::fd::AsFd for StdSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.open_socket().as_fd()
    }
}

/// # Panics
///
/// If the socket is not open yet (see [`StdSocket::is_open`]).
#[cfg(unix)]
impl std::os::fd::AsRawFd for StdSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self.open_socket())
    }
}

/// # Panics
///
/// If the socket is not open yet (see [`StdSocket::is_open`]).
#[cfg(windows)]
impl std::os::windows::io::AsSocket for StdSocket {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.open_socket().as_socket()
    }
}

/// # Panics
///
/// If the socket is not open yet (see [`StdSocket::is_open`]).
#[cfg(windows)]
impl std::os::windows::io::AsRawSocket for StdSocket {
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        std::os::windows::io::AsRawSocket::as_raw_socket(self.open_socket())
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
        Ok(StdSocket {
            inner: None,
            ipv6: false,
        })
    }

    /// Connects (`connect(2)`), opening a socket of `remote`'s family first if needed; the
    /// kernel then binds it (if unbound) to an ephemeral port and only delivers `remote`'s datagrams.
    fn connect(&mut self, socket: &mut StdSocket, remote: SocketAddr) -> Result<(), StdError> {
        let os = match &mut socket.inner {
            Some(os) => os,
            none => {
                socket.ipv6 = remote.is_ipv6();
                none.insert(self.open_client(remote)?)
            }
        };
        os.connect(&remote.into())?;
        Ok(())
    }

    fn send(&mut self, socket: &mut StdSocket, buffer: &[u8]) -> nb::Result<(), StdError> {
        let os = socket.get().map_err(fatal)?;
        os.send(buffer).map(drop).map_err(nb_error)
    }

    /// Non-blocking `recvfrom(2)`: the length returned is the datagram's, which may exceed
    /// `buffer.len()` (only that many bytes are stored). Linux tells it with `MSG_TRUNC`;
    /// elsewhere a buffer shorter than the largest datagram receives through the stack's
    /// own 64 KiB buffer and keeps the head.
    fn receive(
        &mut self,
        socket: &mut StdSocket,
        buffer: &mut [u8],
    ) -> nb::Result<(usize, SocketAddr), StdError> {
        let os = socket.get().map_err(fatal)?;
        let (len, from) =
            recv_true_length(os, buffer, &mut self.scratch).map_err(|e| nb_error(e.into()))?;
        let from = from
            .and_then(|a| SocketAddr::try_from(a).ok())
            .ok_or_else(|| fatal(io::Error::other("datagram without an IP source")))?;
        // A dual-stack socket reports IPv4 peers as `::ffff:a.b.c.d`; the core sees
        // `a.b.c.d` (`send_to` maps it back on an IPv6 socket).
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
            #[cfg(unix)]
            os.set_reuse_port(true)?;
            #[cfg(not(unix))]
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "SO_REUSEPORT is not available on this system",
            )
            .into());
        }
        os.bind(&SockAddr::from(local))?;
        socket.inner = Some(os);
        socket.ipv6 = local.is_ipv6();
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
            none => {
                socket.ipv6 = remote.is_ipv6();
                none.insert(self.open_client(remote).map_err(fatal)?)
            }
        };
        // An IPv4 destination on an IPv6 (dual-stack) socket, as `receive` reports its
        // IPv4 peers: Linux takes it as it is, macOS and Windows only IPv4-mapped.
        let remote = match remote {
            SocketAddr::V4(v4) if socket.ipv6 => {
                SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
            }
            _ => remote,
        };
        // rustix's raw syscall, like `receive`: no glibc wrapper (whose multi-threaded path
        // toggles thread cancellation on every call) and no sockaddr_storage to build.
        rustix::net::sendto(&*os, buffer, SendFlags::empty(), &remote)
            .map(drop)
            .map_err(|e| nb_error(e.into()))
    }
}

/// The largest UDP payload there is (IPv4's is 65,507 bytes, IPv6's 65,527 without
/// jumbograms): a buffer this long never cuts a datagram.
#[cfg(any(test, not(any(target_os = "linux", target_os = "android"))))]
const LARGEST: usize = udp_echo_core::wire::MAX_DATAGRAM;

/// A receive buffer for the largest datagram, allocated on first use (never on Linux);
/// clones start empty.
#[derive(Default)]
struct Scratch(Vec<u8>);

impl Clone for Scratch {
    fn clone(&self) -> Self {
        Scratch::default()
    }
}

impl fmt::Debug for Scratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scratch({} bytes)", self.0.len())
    }
}

/// Receives one datagram into `buffer` (as much as fits) and returns its true length and
/// source: `MSG_TRUNC` makes Linux return the datagram's length.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn recv_true_length(
    os: &Socket,
    buffer: &mut [u8],
    _scratch: &mut Scratch,
) -> rustix::io::Result<(usize, Option<SocketAddrAny>)> {
    let (_stored, len, from) = rustix::net::recvfrom(os, buffer, RecvFlags::TRUNC)?;
    Ok((len, from))
}

/// Receives one datagram into `buffer` (as much as fits) and returns its true length and
/// source. Elsewhere than on Linux `MSG_TRUNC` on input is ignored (macOS), only in recent
/// kernels (FreeBSD 13.2), or not there at all (Windows fails a cut receive with
/// `WSAEMSGSIZE` and no length).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn recv_true_length(
    os: &Socket,
    buffer: &mut [u8],
    scratch: &mut Scratch,
) -> rustix::io::Result<(usize, Option<SocketAddrAny>)> {
    recv_via_scratch(os, buffer, scratch)
}

/// A buffer shorter than [`LARGEST`] receives through `scratch`, which no datagram
/// overfills: the length received is the datagram's, and `buffer` keeps its head. Used
/// everywhere but on Linux (and in the tests there).
#[cfg(any(test, not(any(target_os = "linux", target_os = "android"))))]
fn recv_via_scratch(
    os: &Socket,
    buffer: &mut [u8],
    scratch: &mut Scratch,
) -> rustix::io::Result<(usize, Option<SocketAddrAny>)> {
    if buffer.len() >= LARGEST {
        let (stored, _, from) = rustix::net::recvfrom(os, buffer, RecvFlags::empty())?;
        return Ok((stored, from));
    }
    if scratch.0.len() < LARGEST {
        scratch.0 = vec![0; LARGEST];
    }
    let (len, _, from) = rustix::net::recvfrom(os, &mut scratch.0[..], RecvFlags::empty())?;
    let kept = len.min(buffer.len());
    buffer[..kept].copy_from_slice(&scratch.0[..kept]);
    Ok((len, from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_refused_and_reset_are_icmp_reports() {
        let kind = |k: io::ErrorKind| StdError(io::Error::from(k)).kind();
        assert_eq!(
            kind(io::ErrorKind::ConnectionRefused),
            StackErrorKind::Refused
        );
        assert_eq!(
            kind(io::ErrorKind::ConnectionReset),
            StackErrorKind::Refused
        );
        assert_eq!(kind(io::ErrorKind::PermissionDenied), StackErrorKind::Other);
    }

    #[test]
    fn the_scratch_path_tells_true_lengths_and_keeps_the_head() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let os = Socket::from(receiver);
        let mut scratch = Scratch::default();
        let payload: Vec<u8> = (0..=255).cycle().take(1000).collect();
        for (sent, room) in [(1000, 16), (1000, 1000), (10, 16), (0, 16), (1000, LARGEST)] {
            sender.send_to(&payload[..sent], to).unwrap();
            let mut buf = vec![0; room];
            let (len, from) = recv_via_scratch(&os, &mut buf, &mut scratch).unwrap();
            assert_eq!(len, sent, "{sent} bytes into {room}");
            let kept = sent.min(room);
            assert_eq!(buf[..kept], payload[..kept]);
            let from = SocketAddr::try_from(from.unwrap()).unwrap();
            assert_eq!(from, sender.local_addr().unwrap());
        }
    }

    #[test]
    fn ipv4_peers_of_a_dual_stack_socket_are_answered() {
        let mut stack = StdStack::new().with_bind_ip(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        let mut server = stack.socket().unwrap();
        if stack.bind(&mut server, 0).is_err() {
            return; // no IPv6 here
        }
        let port = server.local_addr().unwrap().port();
        let mut v4 = StdStack::new();
        let mut client = v4.socket().unwrap();
        v4.connect(&mut client, SocketAddr::from(([127, 0, 0, 1], port)))
            .unwrap();
        v4.send(&mut client, b"hello").unwrap();
        let deadline = Some(Instant::now() + std::time::Duration::from_secs(5));
        assert!(stack.wait_readable(&server, deadline).unwrap());
        let mut buf = [0; 2];
        let (len, from) = stack.receive(&mut server, &mut buf).unwrap();
        assert_eq!(
            (len, &buf),
            (5, b"he"),
            "the true length from a short buffer"
        );
        assert!(from.is_ipv4(), "{from}");
        stack.send_to(&mut server, from, b"count").unwrap();
        assert!(v4.wait_readable(&client, deadline).unwrap());
        let mut buf = [0; 16];
        assert_eq!(v4.receive(&mut client, &mut buf).unwrap().0, 5);
    }
}
