//! The system-call layer: datagrams in and out with their metadata, and no decision.
//!
//! In: each receive buffer's source, destination address, length and segment size (a
//! buffer holds several datagrams of one source when the kernel coalesced them, `UDP_GRO`).
//! Out: a [`Transmit`] per destination and source address, whose bytes may be several
//! datagrams of one segment size (`UDP_SEGMENT`, GSO), queued in an [`Outbox`].
//!
//! Two paths, one face ([`Datagrams`]):
//! - [`Path::Portable`]: quinn-udp, on every system the host runs on (Linux, macOS,
//!   Windows, FreeBSD). It reports each datagram's destination and sets each reply's
//!   source where the system can, and does GRO/GSO where the system has them (on Linux it
//!   also receives with `recvmmsg`). It sends one `sendmsg` per [`Transmit`].
//! - [`Path::Batched`] (Linux only): our own `recvmmsg`/`sendmmsg`, which sends a whole
//!   batch of transmits to many destinations in one system call, each with its own source
//!   address and segment size.
//!
//! What to do with a datagram, and whom to answer from which address, is decided above
//! this layer (the [`server`](crate::server) module).

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

#[cfg(target_os = "linux")]
mod mmsg;
mod portable;

/// Buffers per receive call: the core's [`BATCH`](udp_echo_core::BATCH), so a loop looks
/// at its signals and timers as often on every path.
pub const BATCH: usize = udp_echo_core::BATCH;

/// Bytes per receive buffer: room for the largest datagram (65,527 bytes over IPv6) and
/// for the largest train the kernel coalesces (64 KiB), so no datagram is ever cut and a
/// buffer's length is its true length.
pub const BUFFER: usize = 1 << 16;

/// The largest payload one send may carry (IPv4's limit; IPv6's is 20 bytes more).
pub const MAX_SEND: usize = 65_507;

/// The most datagrams one GSO send carries (the kernel's `UDP_MAX_SEGMENTS` is 64 on
/// older kernels, 128 on newer ones).
pub const MAX_SEGMENTS: usize = 64;

/// How datagrams move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// quinn-udp: every system; one `sendmsg` per transmit.
    Portable,
    /// `recvmmsg`/`sendmmsg` (Linux): one system call per batch each way.
    Batched,
}

impl Path {
    /// The fastest path this system has.
    pub const fn best() -> Path {
        if cfg!(target_os = "linux") {
            Path::Batched
        } else {
            Path::Portable
        }
    }
}

/// Which offloads to ask the kernel for; each one it refuses is left off (see
/// [`Datagrams::offload`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offload {
    /// Receive trains of datagrams as one buffer (`UDP_GRO`).
    pub gro: bool,
    /// Send trains of datagrams in one call (`UDP_SEGMENT`).
    pub gso: bool,
}

impl Offload {
    /// Both on: the default.
    pub const ALL: Offload = Offload {
        gro: true,
        gso: true,
    };
    /// Both off: one datagram per buffer and per send.
    pub const NONE: Offload = Offload {
        gro: false,
        gso: false,
    };
}

impl Default for Offload {
    fn default() -> Self {
        Offload::ALL
    }
}

/// One receive buffer's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The source, as the socket reports it (a dual-stack socket's IPv4 peers as
    /// `::ffff:a.b.c.d`; it takes them back as they came).
    pub from: SocketAddr,
    /// The destination address in the IP header, where the system reports it (a
    /// broadcast or multicast address, or one of this host's).
    pub dst: Option<IpAddr>,
    /// Bytes in the buffer: all its datagrams together, each at its true length.
    pub len: usize,
    /// The size of each datagram but the last, which may be shorter; `len` if the buffer
    /// holds one datagram.
    pub stride: usize,
}

impl Meta {
    /// The buffer's datagrams, as ranges of it: `stride` bytes each, the last one
    /// shorter; one empty range for a 0-byte datagram.
    pub fn segments(&self) -> impl Iterator<Item = std::ops::Range<usize>> + use<> {
        let (len, stride) = (self.len, self.stride.max(1));
        let count = if len == 0 { 1 } else { len.div_ceil(stride) };
        (0..count).map(move |i| (i * stride).min(len)..((i + 1) * stride).min(len))
    }
}

/// Bytes to send to one destination from one source address: one datagram, or a train
/// of `segment_size`-byte datagrams whose last may be shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// Where to.
    pub to: SocketAddr,
    /// The source address to send from (`None`: the kernel picks).
    pub src: Option<IpAddr>,
    /// The size of each datagram (`None`: `contents` is one datagram).
    pub segment_size: Option<usize>,
    /// The bytes.
    pub contents: &'a [u8],
}

impl Transmit<'_> {
    /// How many datagrams it carries.
    pub fn datagrams(&self) -> usize {
        match self.segment_size {
            Some(size) if size > 0 => self.contents.len().div_ceil(size).max(1),
            _ => 1,
        }
    }

    /// The same bytes, one transmit per datagram.
    pub fn split(&self) -> impl Iterator<Item = Transmit<'_>> + '_ {
        let size = self.segment_size.unwrap_or(self.contents.len());
        let meta = Meta {
            from: self.to,
            dst: None,
            len: self.contents.len(),
            stride: size,
        };
        meta.segments().map(move |r| Transmit {
            segment_size: None,
            contents: &self.contents[r],
            ..*self
        })
    }
}

/// Transmits waiting to go out. Each datagram [`push`](Self::push)ed goes on the newest
/// train of its destination and source address if GSO allows it (every datagram of a
/// train has the train's first length but the last, which may be shorter and then ends
/// it), else it starts a new train. One destination's datagrams keep their order; trains
/// go out in the order they were started.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Trains in use are `trains[..used]`; the rest keep their buffers for later batches.
    trains: Vec<Train>,
    used: usize,
    max_segments: usize,
}

#[derive(Debug, Clone)]
struct Train {
    to: SocketAddr,
    src: Option<IpAddr>,
    bytes: Vec<u8>,
    /// The segment size (the first datagram's length).
    segment: usize,
    segments: usize,
}

impl Train {
    /// Whether a `len`-byte datagram may follow: a shorter one ended the train, and a
    /// longer one cannot be a segment.
    fn takes(&self, len: usize, max_segments: usize) -> bool {
        self.segments < max_segments
            && len > 0
            && len <= self.segment
            && self.bytes.len() == self.segment * self.segments
            && self.bytes.len() + len <= MAX_SEND
    }
}

impl Outbox {
    /// An empty outbox whose trains carry at most `max_segments` datagrams (1: no trains).
    pub fn new(max_segments: usize) -> Self {
        Outbox {
            max_segments: max_segments.clamp(1, MAX_SEGMENTS),
            ..Outbox::default()
        }
    }

    /// Trains carry at most `max_segments` datagrams from now on (1: none).
    pub fn set_max_segments(&mut self, max_segments: usize) {
        self.max_segments = max_segments.clamp(1, MAX_SEGMENTS);
    }

    /// Queues one datagram of `bytes` to `to` from `src` (`None`: the kernel picks).
    pub fn push(&mut self, to: SocketAddr, src: Option<IpAddr>, bytes: &[u8]) {
        let len = bytes.len();
        if self.max_segments > 1 {
            // The newest train of this destination and source, searched from the end
            // (the last one, under load from few clients).
            let open = self.trains[..self.used]
                .iter_mut()
                .rev()
                .find(|t| t.to == to && t.src == src);
            if let Some(t) = open
                && t.takes(len, self.max_segments)
            {
                t.bytes.extend_from_slice(bytes);
                t.segments += 1;
                return;
            }
        }
        if self.used == self.trains.len() {
            self.trains.push(Train {
                to,
                src,
                bytes: Vec::with_capacity(64),
                segment: 0,
                segments: 0,
            });
        }
        let t = &mut self.trains[self.used];
        t.to = to;
        t.src = src;
        t.bytes.clear();
        t.bytes.extend_from_slice(bytes);
        t.segment = len;
        t.segments = 1;
        self.used += 1;
    }

    /// The transmits queued, in order.
    pub fn transmits(&self) -> impl Iterator<Item = Transmit<'_>> + '_ {
        self.trains[..self.used].iter().map(|t| Transmit {
            to: t.to,
            src: t.src,
            segment_size: (t.segments > 1).then_some(t.segment),
            contents: &t.bytes,
        })
    }

    /// Transmits queued.
    pub fn len(&self) -> usize {
        self.used
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Empties it (keeping its buffers).
    pub fn clear(&mut self) {
        self.used = 0;
    }
}

/// What a send did, counted in datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sent {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Datagrams it refused (the rest still went out).
    pub failed: usize,
    /// Send calls made.
    pub calls: usize,
}

/// Options for a socket that [`bind`] opens.
#[derive(Debug, Clone, Copy, Default)]
pub struct BindOptions {
    /// `SO_REUSEADDR`: several listeners share a port and all get its broadcasts.
    pub reuse_addr: bool,
    /// `SO_REUSEPORT` (not on Windows): the kernel spreads datagrams over the sockets.
    pub reuse_port: bool,
    /// `SO_BROADCAST`.
    pub broadcast: bool,
    /// The interface (by index, see [`crate::interfaces::index_of`]) the socket is tied
    /// to, and on which a multicast group it is bound to is joined; `None`: every one.
    pub interface: Option<u32>,
}

/// Joins the multicast group `group` on the interface with index `index`, or on every
/// interface that has an address of the group's family when `index` is `None` (a server
/// on a LAN does not know which one its clients are behind).
///
/// # Errors
///
/// If the system refuses every join.
pub fn join(socket: &Socket, group: IpAddr, index: Option<u32>) -> io::Result<()> {
    let indexes: Vec<u32> = match index {
        Some(i) => vec![i],
        None => crate::interfaces::indexes_with(group.is_ipv4()),
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no interface to join the group on");
    let mut joined = false;
    for i in indexes {
        let r = match group {
            IpAddr::V4(g) => join_v4(socket, g, i),
            IpAddr::V6(g) => socket.join_multicast_v6(&g, i),
        };
        match r {
            Ok(()) => joined = true,
            Err(e) => last = e,
        }
    }
    if joined { Ok(()) } else { Err(last) }
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn join_v4(socket: &Socket, group: std::net::Ipv4Addr, index: u32) -> io::Result<()> {
    socket.join_multicast_v4_n(&group, &socket2::InterfaceIndexOrAddress::Index(index))
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn join_v4(socket: &Socket, group: std::net::Ipv4Addr, index: u32) -> io::Result<()> {
    // Elsewhere IPv4 joins name the interface by one of its addresses.
    let addr = crate::interfaces::ipv4_of(index).ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "the interface has no IPv4 address")
    })?;
    socket.join_multicast_v4(&group, &addr)
}

/// A non-blocking UDP socket bound to `addr`; `[::]` makes a dual-stack socket.
///
/// # Errors
///
/// The system's, e.g. the port in use or an address that is not this host's.
pub fn bind(addr: SocketAddr, options: BindOptions) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    if addr.ip() == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED) {
        socket.set_only_v6(false)?;
    }
    if options.reuse_addr {
        socket.set_reuse_address(true)?;
    }
    if options.reuse_port {
        #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
        socket.set_reuse_port(true)?;
        #[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "SO_REUSEPORT is not available on this system",
        ));
    }
    if options.broadcast {
        socket.set_broadcast(true)?;
    }
    if let Some(index) = options.interface {
        bind_device_index(&socket, index, addr.is_ipv6())?;
    }
    socket.bind(&addr.into())?;
    // Bound to a multicast group: join it, on the interface the address's scope names
    // (`[ff02::1234%eth0]`) or on every one.
    if addr.ip().is_multicast() {
        let scope = match addr {
            SocketAddr::V6(v6) if v6.scope_id() != 0 => Some(v6.scope_id()),
            _ => None,
        };
        join(&socket, addr.ip(), scope.or(options.interface))?;
    }
    Ok(socket)
}

/// Ties `socket` to the interface called `name`, so its datagrams go out (and, on Linux,
/// come in) there only: `SO_BINDTODEVICE` on Linux, `IP_BOUND_IF`/`IPV6_BOUND_IF` on
/// macOS.
///
/// # Errors
///
/// If there is no such interface, the system refuses (`SO_BINDTODEVICE` needs
/// `CAP_NET_RAW` on older kernels), or the system has no such option (`Unsupported`:
/// Windows and FreeBSD).
pub fn bind_device(socket: &Socket, name: &str) -> io::Result<()> {
    let index = crate::interfaces::index_of(name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("there is no interface `{name}` here"),
        )
    })?;
    bind_device_index(socket, index, socket.local_addr()?.is_ipv6())
}

/// [`bind_device`] by the interface's index, for a socket of the family `ipv6` says.
///
/// # Errors
///
/// As [`bind_device`].
pub fn bind_device_index(socket: &Socket, index: u32, ipv6: bool) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
    {
        let index = std::num::NonZeroU32::new(index)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "interface index 0"))?;
        if ipv6 {
            socket.bind_device_by_index_v6(Some(index))
        } else {
            socket.bind_device_by_index_v4(Some(index))
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
    {
        let _ = (socket, index, ipv6);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "binding a socket to an interface works on Linux and macOS only",
        ))
    }
}

/// One socket's datagrams, on either [`Path`]. See the [module docs](self).
#[derive(Debug)]
pub struct Datagrams {
    imp: Imp,
    /// Trains carry at most this many datagrams (1: GSO off).
    gso: usize,
    gro: bool,
}

#[derive(Debug)]
enum Imp {
    Portable(Box<portable::Io>),
    #[cfg(target_os = "linux")]
    Batched(Box<mmsg::Io>),
}

impl Datagrams {
    /// Takes `socket` (bound, non-blocking) onto `path`, asking for `offload`; asks the
    /// system to report each datagram's destination where it can.
    ///
    /// # Errors
    ///
    /// If the socket cannot be set up, or `path` is [`Path::Batched`] on a system without
    /// `recvmmsg(2)` (`ErrorKind::Unsupported`: take [`Path::Portable`]).
    pub fn new(socket: Socket, path: Path, offload: Offload) -> io::Result<Self> {
        let (imp, gro, gso) = match path {
            Path::Portable => {
                let io = portable::Io::new(socket, offload)?;
                let (gro, gso) = (io.gro(), io.max_segments());
                (Imp::Portable(Box::new(io)), gro, gso)
            }
            #[cfg(target_os = "linux")]
            Path::Batched => {
                let io = mmsg::Io::new(socket, offload)?;
                let (gro, gso) = (io.gro(), io.max_segments());
                (Imp::Batched(Box::new(io)), gro, gso)
            }
            #[cfg(not(target_os = "linux"))]
            Path::Batched => {
                drop(socket);
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "recvmmsg/sendmmsg are Linux's",
                ));
            }
        };
        Ok(Datagrams { imp, gso, gro })
    }

    /// The path datagrams take.
    pub fn path(&self) -> Path {
        match self.imp {
            Imp::Portable(_) => Path::Portable,
            #[cfg(target_os = "linux")]
            Imp::Batched(_) => Path::Batched,
        }
    }

    /// The offloads in force: what was asked for and the kernel took (GSO goes off for
    /// good if the kernel refuses a train at send time).
    pub fn offload(&self) -> Offload {
        Offload {
            gro: self.gro,
            gso: self.gso > 1,
        }
    }

    /// The most datagrams a train may carry now (1: GSO off).
    pub fn max_segments(&self) -> usize {
        self.gso
    }

    /// The socket.
    pub fn socket(&self) -> &Socket {
        match &self.imp {
            Imp::Portable(io) => io.socket(),
            #[cfg(target_os = "linux")]
            Imp::Batched(io) => io.socket(),
        }
    }

    /// Receives what is waiting, up to [`BATCH`] buffers, without blocking; returns how
    /// many (0: nothing was waiting).
    ///
    /// # Errors
    ///
    /// The system's, except "would block" (0) and interruptions (tried again). An ICMP
    /// report for an earlier send (`ConnectionRefused`, `ConnectionReset` on Windows)
    /// comes back as an error: the caller decides to ignore it.
    pub fn recv(&mut self) -> io::Result<usize> {
        match &mut self.imp {
            Imp::Portable(io) => io.recv(),
            #[cfg(target_os = "linux")]
            Imp::Batched(io) => io.recv(),
        }
    }

    /// Whether the last [`recv`](Self::recv) filled every buffer: more may be waiting.
    pub fn was_full(&self) -> bool {
        match &self.imp {
            Imp::Portable(io) => io.was_full(),
            #[cfg(target_os = "linux")]
            Imp::Batched(io) => io.was_full(),
        }
    }

    /// The `i`th buffer of the last [`recv`](Self::recv) and its metadata; `None` past
    /// the end, or if its source is not an IP address.
    pub fn get(&self, i: usize) -> Option<(Meta, &[u8])> {
        match &self.imp {
            Imp::Portable(io) => io.get(i),
            #[cfg(target_os = "linux")]
            Imp::Batched(io) => io.get(i),
        }
    }

    /// Sends everything in `outbox` and empties it. A transmit the kernel refuses is
    /// counted as failed, datagram by datagram, and the rest still go out; a train the
    /// kernel refuses for its segmentation (`EIO`, `EINVAL`) is sent again datagram by
    /// datagram, and GSO is off from then on.
    pub fn send(&mut self, outbox: &mut Outbox) -> Sent {
        let sent = self.send_iter(outbox.transmits());
        outbox.set_max_segments(outbox.max_segments.min(self.gso));
        outbox.clear();
        sent
    }

    /// Sends `transmits` as they are (an [`Outbox`] builds them), with the same handling
    /// of refusals as [`send`](Self::send).
    pub fn send_transmits(&mut self, transmits: &[Transmit<'_>]) -> Sent {
        self.send_iter(transmits.iter().copied())
    }

    fn send_iter<'a>(&mut self, transmits: impl Iterator<Item = Transmit<'a>>) -> Sent {
        let sent = match &mut self.imp {
            Imp::Portable(io) => io.send(transmits),
            #[cfg(target_os = "linux")]
            Imp::Batched(io) => io.send(transmits),
        };
        self.gso = match &self.imp {
            Imp::Portable(io) => io.max_segments(),
            #[cfg(target_os = "linux")]
            Imp::Batched(io) => io.max_segments(),
        };
        sent
    }
}

/// Whether a send error says the kernel cannot segment this train (GSO unsupported by
/// the device or the kernel).
fn is_gso_refusal(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    {
        matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL))
    }
    #[cfg(not(target_os = "linux"))]
    {
        e.kind() == io::ErrorKind::InvalidInput
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn shape(o: &mut Outbox) -> Vec<(u16, Option<usize>, usize)> {
        o.transmits()
            .map(|t| (t.to.port(), t.segment_size, t.contents.len()))
            .collect()
    }

    #[test]
    fn equal_datagrams_to_one_destination_make_one_train() {
        let mut o = Outbox::new(64);
        for _ in 0..3 {
            o.push(to(1), None, &[b'a'; 22]);
        }
        o.push(to(1), None, &[b'a'; 21]); // shorter: ends the train
        o.push(to(1), None, &[b'a'; 21]);
        assert_eq!(shape(&mut o), [(1, Some(22), 87), (1, None, 21)]);
        assert_eq!(o.transmits().map(|t| t.datagrams()).sum::<usize>(), 5);
    }

    #[test]
    fn interleaved_destinations_each_get_one_train_in_their_own_order() {
        let mut o = Outbox::new(64);
        for i in 0..6u8 {
            o.push(to(1 + u16::from(i % 2)), None, &[i; 3]);
        }
        assert_eq!(shape(&mut o), [(1, Some(3), 9), (2, Some(3), 9)]);
        let first: Vec<u8> = o.transmits().next().unwrap().contents.to_vec();
        assert_eq!(first, [0, 0, 0, 2, 2, 2, 4, 4, 4]);
    }

    #[test]
    fn a_longer_datagram_starts_a_new_train() {
        let mut o = Outbox::new(64);
        o.push(to(1), None, &[0; 21]);
        o.push(to(1), None, &[0; 21]);
        o.push(to(1), None, &[0; 22]);
        assert_eq!(shape(&mut o), [(1, Some(21), 42), (1, None, 22)]);
    }

    #[test]
    fn other_destinations_and_sources_are_other_trains() {
        let mut o = Outbox::new(64);
        let src: IpAddr = "127.0.0.2".parse().unwrap();
        o.push(to(1), None, &[0; 5]);
        o.push(to(2), None, &[0; 5]);
        o.push(to(1), Some(src), &[0; 5]);
        o.push(to(2), None, &[0; 5]);
        assert_eq!(
            shape(&mut o),
            [(1, None, 5), (2, Some(5), 10), (1, None, 5)],
            "by destination and source, in the order trains were started"
        );
    }

    #[test]
    fn gso_off_or_the_segment_cap_bounds_trains() {
        let mut o = Outbox::new(1);
        o.push(to(1), None, &[0; 5]);
        o.push(to(1), None, &[0; 5]);
        assert_eq!(shape(&mut o), [(1, None, 5), (1, None, 5)]);
        let mut o = Outbox::new(2);
        for _ in 0..5 {
            o.push(to(1), None, &[0; 5]);
        }
        assert_eq!(
            shape(&mut o),
            [(1, Some(5), 10), (1, Some(5), 10), (1, None, 5)]
        );
    }

    #[test]
    fn zero_byte_datagrams_and_the_size_cap_are_never_coalesced() {
        let mut o = Outbox::new(64);
        o.push(to(1), None, &[]);
        o.push(to(1), None, &[]);
        o.push(to(1), None, &vec![0; 40_000]);
        o.push(to(1), None, &vec![0; 40_000]);
        assert_eq!(
            shape(&mut o),
            [
                (1, None, 0),
                (1, None, 0),
                (1, None, 40_000),
                (1, None, 40_000)
            ]
        );
    }

    #[test]
    fn segments_cover_the_buffer_with_a_shorter_last() {
        let meta = |len, stride| Meta {
            from: to(1),
            dst: None,
            len,
            stride,
        };
        let v: Vec<_> = meta(25, 10).segments().collect();
        assert_eq!(v, [0..10, 10..20, 20..25]);
        let one = |m: Meta| m.segments().collect::<Vec<_>>();
        assert_eq!(one(meta(0, 0)), vec![(0..0)], "a 0-byte datagram");
        assert_eq!(one(meta(7, 7)), vec![(0..7)]);
    }

    #[test]
    fn a_train_splits_back_into_its_datagrams() {
        let t = Transmit {
            to: to(1),
            src: None,
            segment_size: Some(4),
            contents: b"aaaabbbbcc",
        };
        assert_eq!(t.datagrams(), 3);
        let parts: Vec<&[u8]> = t.split().map(|t| t.contents).collect();
        assert_eq!(parts, [&b"aaaa"[..], b"bbbb", b"cc"]);
    }
}
