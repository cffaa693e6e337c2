//! `embedded-nal` 0.9 [`UdpClientStack`] and [`UdpFullStack`] over smoltcp 0.14 UDP sockets,
//! without a heap.
//!
//! [`NalStorage`] holds every buffer (sized by const generics); [`NalStack`] builds a
//! smoltcp [`SocketSet`] of `SOCKETS` UDP sockets on it and hands them out as
//! [`UdpSocket`]s. The caller keeps the [`Interface`](smoltcp::iface::Interface) and the
//! device and polls them with [`NalStack::sockets_mut`] in its main loop.
//!
//! ```
//! use core::net::{Ipv4Addr, SocketAddr};
//! use embedded_nal::{UdpClientStack, UdpFullStack};
//! use smoltcp::iface::{Config, Interface};
//! use smoltcp::phy::Medium;
//! use smoltcp::time::Instant;
//! use smoltcp::wire::{HardwareAddress, IpCidr};
//! use udp_echo_firmware_example::{Loopback, NalStack, NalStorage};
//!
//! let ip = Ipv4Addr::new(127, 0, 0, 1);
//! let mut device: Loopback = Loopback::new(Medium::Ip);
//! let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, Instant::ZERO);
//! iface.update_ip_addrs(|addrs| addrs.push(IpCidr::new(ip.into(), 8)).unwrap());
//!
//! let mut storage: NalStorage<'_> = NalStorage::new(); // or a `static` via static_cell
//! let mut stack = NalStack::new(&mut storage, ip);
//! let mut socket = stack.socket()?;
//! stack.bind(&mut socket, 6666)?;
//! stack.send_to(&mut socket, SocketAddr::from((ip, 6666)), b"hello")?;
//!
//! // Egress, then ingress of what the loopback device turned around.
//! iface.poll(Instant::ZERO, &mut device, stack.sockets_mut());
//! iface.poll(Instant::ZERO, &mut device, stack.sockets_mut());
//!
//! let mut buf = [0; 2];
//! let (len, from) = stack.receive(&mut socket, &mut buf)?;
//! assert_eq!((len, &buf, from), (5, b"he", SocketAddr::from((ip, 6666))));
//! assert_eq!(stack.receive(&mut socket, &mut buf), Err(nb::Error::WouldBlock));
//! # Ok::<(), nb::Error<udp_echo_firmware_example::NalError>>(())
//! ```
//!
//! ## Semantics
//!
//! - Sockets listen on every local address (`IpListenEndpoint { addr: None, .. }`), so a
//!   bound socket receives unicast and broadcast datagrams alike and survives an address
//!   change (DHCP).
//! - [`connect`](UdpClientStack::connect) binds an unbound socket to an ephemeral port
//!   (49152..=65535, cycling, skipping ports this stack's sockets hold) and remembers the
//!   remote for [`send`](UdpClientStack::send); [`send_to`](UdpFullStack::send_to) does not
//!   change it, and binds an unbound socket the same way.
//! - [`receive`](UdpClientStack::receive) follows the core's receive-length contract
//!   ([`StackCaps`]): it copies what fits and returns the datagram's **true**
//!   length ([`CAPS`] tells the core's drivers so). A connected socket still returns
//!   datagrams from any source (smoltcp has no connected UDP sockets); the core's client
//!   filters them by address.
//! - Nothing to receive, or a full transmit buffer: [`nb::Error::WouldBlock`].
//! - smoltcp drops, without telling the socket, a received datagram larger than its
//!   receive buffer (`BUF`) and an outgoing one larger than the IP MTU (no fragmentation).
//!   Size `BUF` to hold at least one MTU-sized datagram (1472 bytes on Ethernet).
//! - smoltcp sends a socket's queue in order and never gives up on a neighbour that does
//!   not answer ARP: one datagram to such an on-link address (a spoofed request's reply)
//!   would hold every later one forever. Call [`NalStack::unstick`] after each
//!   `iface.poll`: it empties a queue that has not moved for [`STUCK_AFTER`] (see there
//!   for the cost) and counts what it discarded ([`NalStack::stuck`]).

use core::fmt;
use core::net::{Ipv4Addr, SocketAddr};

use embedded_nal::{UdpClientStack, UdpFullStack};
use smoltcp::iface::{SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::udp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpEndpoint;
use udp_echo_core::StackCaps;

/// How long a socket's non-empty transmit queue may stand still before
/// [`NalStack::unstick`] empties it.
///
/// smoltcp sends ARP for an unknown neighbour and holds the socket until the answer
/// (at once) or for 1 s (`DISCOVERY_SILENT_TIME`), then asks again, forever. On a LAN the
/// answer takes a few ms, so 100 ms lets every real first exchange through; a neighbour
/// slower than that costs its peer one retry (its answer still fills the cache, so the
/// retry's reply goes out at once). Waiting for smoltcp's own ARP retry (over 1 s) would
/// let a spoofer sending one request a second hold the queue all the time, past the
/// core's client schedule (last send at 1.5 s, give-up at 3.1 s).
pub const STUCK_AFTER: Duration = Duration::from_millis(100);

/// What [`NalStack::unstick`] discarded so far (wrapping counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StuckCounts {
    /// Transmit queues emptied.
    pub purges: u32,
    /// Payload bytes they held (smoltcp counts no datagrams there).
    pub tx_bytes: u32,
    /// Received datagrams lost with them (smoltcp resets both queues at once).
    pub rx_lost: u32,
}

/// The dynamic port range (RFC 6335) that `connect`, `bind(0)` and `send_to` draw from.
pub const EPHEMERAL_PORTS: core::ops::RangeInclusive<u16> = 49152..=65535;

/// Every buffer a [`NalStack`] needs: `SOCKETS` UDP sockets, each with `META` datagram
/// slots and `BUF` payload bytes per direction.
///
/// [`new`](Self::new) is `const`, so the storage can live in a `static` or on the stack of
/// `main`. It is borrowed for as long as the stack lives.
///
/// It is the two halves [`NalSockets`] and [`NalBuffers`] side by side. Firmware that keeps
/// its storage in `static`s should keep the halves apart ([`NalStack::from_parts`]): the
/// payload bytes start as zeros, so their `static` goes to `.bss` (no copy in flash),
/// whereas smoltcp's empty socket and metadata slots are not all-zero bit patterns and
/// would drag every byte of a combined `static` into `.data`.
pub struct NalStorage<'a, const SOCKETS: usize = 4, const META: usize = 4, const BUF: usize = 1536>
{
    sockets: NalSockets<'a, SOCKETS, META>,
    buffers: NalBuffers<SOCKETS, BUF>,
}

impl<const SOCKETS: usize, const META: usize, const BUF: usize> NalStorage<'_, SOCKETS, META, BUF> {
    /// Empty storage.
    pub const fn new() -> Self {
        Self {
            sockets: NalSockets::new(),
            buffers: NalBuffers::new(),
        }
    }
}

impl<const SOCKETS: usize, const META: usize, const BUF: usize> Default
    for NalStorage<'_, SOCKETS, META, BUF>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<const SOCKETS: usize, const META: usize, const BUF: usize> fmt::Debug
    for NalStorage<'_, SOCKETS, META, BUF>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NalStorage")
            .field("sockets", &SOCKETS)
            .field("meta", &META)
            .field("buf", &BUF)
            .finish_non_exhaustive()
    }
}

/// The socket slots of a [`NalStack`] and, per socket and direction, `META` datagram
/// metadata slots (a few dozen bytes each). The payload bytes are in [`NalBuffers`].
pub struct NalSockets<'a, const SOCKETS: usize = 4, const META: usize = 4> {
    sockets: [SocketStorage<'a>; SOCKETS],
    meta: [SocketMeta<META>; SOCKETS],
}

struct SocketMeta<const META: usize> {
    rx: [udp::PacketMetadata; META],
    tx: [udp::PacketMetadata; META],
}

impl<const SOCKETS: usize, const META: usize> NalSockets<'_, SOCKETS, META> {
    /// Empty slots.
    pub const fn new() -> Self {
        Self {
            sockets: [SocketStorage::EMPTY; SOCKETS],
            meta: [const {
                SocketMeta {
                    rx: [udp::PacketMetadata::EMPTY; META],
                    tx: [udp::PacketMetadata::EMPTY; META],
                }
            }; SOCKETS],
        }
    }
}

impl<const SOCKETS: usize, const META: usize> Default for NalSockets<'_, SOCKETS, META> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const SOCKETS: usize, const META: usize> fmt::Debug for NalSockets<'_, SOCKETS, META> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NalSockets")
            .field("sockets", &SOCKETS)
            .field("meta", &META)
            .finish_non_exhaustive()
    }
}

/// The payload bytes of a [`NalStack`]: per socket, `RX` bytes of received datagrams and
/// `TX` bytes of datagrams to send (by default as many).
///
/// All zeros, so a `static` of it lives in `.bss` (static_cell's `ConstStaticCell` keeps it
/// there without building it on the stack first).
pub struct NalBuffers<const SOCKETS: usize = 4, const RX: usize = 1536, const TX: usize = RX> {
    rx: [[u8; RX]; SOCKETS],
    tx: [[u8; TX]; SOCKETS],
}

impl<const SOCKETS: usize, const RX: usize, const TX: usize> NalBuffers<SOCKETS, RX, TX> {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        Self {
            rx: [[0; RX]; SOCKETS],
            tx: [[0; TX]; SOCKETS],
        }
    }
}

impl<const SOCKETS: usize, const RX: usize, const TX: usize> Default
    for NalBuffers<SOCKETS, RX, TX>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<const SOCKETS: usize, const RX: usize, const TX: usize> fmt::Debug
    for NalBuffers<SOCKETS, RX, TX>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NalBuffers")
            .field("sockets", &SOCKETS)
            .field("rx", &RX)
            .field("tx", &TX)
            .finish()
    }
}

/// A socket handed out by [`NalStack::socket`].
///
/// It belongs to the stack that made it: using it with another stack is a logic error
/// (it may act on that stack's socket in the same slot, or panic).
#[derive(Debug)]
pub struct UdpSocket {
    slot: usize,
    remote: Option<IpEndpoint>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    handle: SocketHandle,
    in_use: bool,
    /// The transmit queue's byte count at the last look (`unstick` or a send).
    queued: usize,
    /// The queue emptied or shrank since `unstick` last looked: a send saw it.
    moved: bool,
    /// The last time `unstick` saw the queue empty or moving.
    still_since: Instant,
}

/// The `embedded-nal` UDP stack. See the [module docs](self).
pub struct NalStack<'a, const SOCKETS: usize> {
    sockets: SocketSet<'a>,
    slots: [Slot; SOCKETS],
    local_ip: Ipv4Addr,
    next_port: u16,
    stuck: StuckCounts,
}

impl<'a, const SOCKETS: usize> NalStack<'a, SOCKETS> {
    /// Builds the socket set on `storage`. `local_ip` is the interface's address, used only
    /// to report [`local_addr`](Self::local_addr).
    pub fn new<const META: usize, const BUF: usize>(
        storage: &'a mut NalStorage<'a, SOCKETS, META, BUF>,
        local_ip: Ipv4Addr,
    ) -> Self {
        let NalStorage { sockets, buffers } = storage;
        Self::from_parts(sockets, buffers, local_ip)
    }

    /// Like [`new`](Self::new), on storage kept in two parts (see [`NalStorage`] for why
    /// firmware would), and with receive and transmit buffers of different sizes.
    pub fn from_parts<const META: usize, const RX: usize, const TX: usize>(
        sockets: &'a mut NalSockets<'a, SOCKETS, META>,
        buffers: &'a mut NalBuffers<SOCKETS, RX, TX>,
        local_ip: Ipv4Addr,
    ) -> Self {
        // More sockets than ephemeral ports would make the port search endless.
        const { assert!(SOCKETS <= 16384, "at most 16384 sockets") };
        let NalSockets {
            sockets: slots,
            meta,
        } = sockets;
        let mut set = SocketSet::new(&mut slots[..]);
        let mut slots = [Slot {
            handle: SocketHandle::default(),
            in_use: false,
            queued: 0,
            moved: false,
            still_since: Instant::ZERO,
        }; SOCKETS];
        let buffers = buffers.rx.iter_mut().zip(buffers.tx.iter_mut());
        for ((slot, m), (rx, tx)) in slots.iter_mut().zip(meta.iter_mut()).zip(buffers) {
            slot.handle = set.add(udp::Socket::new(
                udp::PacketBuffer::new(&mut m.rx[..], &mut rx[..]),
                udp::PacketBuffer::new(&mut m.tx[..], &mut tx[..]),
            ));
        }
        Self {
            sockets: set,
            slots,
            local_ip,
            next_port: *EPHEMERAL_PORTS.start(),
            stuck: StuckCounts::default(),
        }
    }

    /// Empties each socket whose transmit queue has held data without moving for
    /// [`STUCK_AFTER`] (as seen by these calls and by sends), so that a datagram to a
    /// neighbour that never answers ARP cannot hold the later ones forever. Call it after
    /// each `iface.poll` with the same `now` (monotonic), and wake for
    /// [`unstick_at`](Self::unstick_at).
    ///
    /// The socket is closed and bound again to its port, and put back into the set under
    /// a new handle (so that smoltcp forgets the missing neighbour too); what both its
    /// queues held is lost and counted in [`stuck`](Self::stuck). Returns how many
    /// sockets it emptied.
    pub fn unstick(&mut self, now: Instant) -> u32 {
        let mut purged = 0;
        for slot in 0..SOCKETS {
            let queued = self.udp_ref(slot).send_queue();
            let s = &mut self.slots[slot];
            if queued == 0 || queued < s.queued || s.moved {
                s.still_since = now;
            }
            (s.queued, s.moved) = (queued, false);
            if queued > 0 && now >= s.still_since + STUCK_AFTER {
                self.purge(slot, queued);
                purged += 1;
            }
        }
        purged
    }

    /// When [`unstick`](Self::unstick) would next empty a queue that does not move
    /// (`None`: every queue is empty).
    pub fn unstick_at(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|s| s.queued > 0)
            .map(|s| s.still_since + STUCK_AFTER)
            .min()
    }

    /// What [`unstick`](Self::unstick) discarded so far.
    pub fn stuck(&self) -> StuckCounts {
        self.stuck
    }

    fn purge(&mut self, slot: usize, queued: usize) {
        let udp = self.udp(slot);
        let port = udp.endpoint().port;
        let mut rx_lost = 0u32;
        while udp.recv().is_ok() {
            rx_lost += 1;
        }
        // A fresh entry in the set: smoltcp keeps "neighbour missing, silent for 1 s" in
        // the entry, not the socket, and would hold the next datagram behind it.
        let socket = self.sockets.remove(self.slots[slot].handle);
        let handle = self.sockets.add(socket);
        self.slots[slot].handle = handle;
        self.slots[slot].queued = 0;
        let udp = self.udp(slot);
        udp.close();
        // Rebinding the port it just held cannot fail.
        let _ = udp.bind(port);
        let c = &mut self.stuck;
        c.purges = c.purges.wrapping_add(1);
        c.tx_bytes = c.tx_bytes.wrapping_add(queued as u32);
        c.rx_lost = c.rx_lost.wrapping_add(rx_lost);
    }

    /// The socket set, for `iface.poll(now, &mut device, stack.sockets_mut())`.
    pub fn sockets_mut(&mut self) -> &mut SocketSet<'a> {
        &mut self.sockets
    }

    /// The socket set, for `iface.poll_delay(now, stack.sockets())`.
    pub fn sockets(&self) -> &SocketSet<'a> {
        &self.sockets
    }

    /// The smoltcp handle behind `socket`, for settings the traits lack (hop limit, …).
    /// [`unstick`](Self::unstick) may change it: do not keep it.
    pub fn handle(&self, socket: &UdpSocket) -> SocketHandle {
        self.slots[socket.slot].handle
    }

    /// The interface address given to [`new`](Self::new) or [`set_local_ip`](Self::set_local_ip).
    pub fn local_ip(&self) -> Ipv4Addr {
        self.local_ip
    }

    /// Records a new interface address (after DHCP, say). Bound sockets keep working:
    /// they listen on every address.
    pub fn set_local_ip(&mut self, ip: Ipv4Addr) {
        self.local_ip = ip;
    }

    /// `socket`'s local address: the interface address and its port, if bound.
    pub fn local_addr(&self, socket: &UdpSocket) -> Option<SocketAddr> {
        let port = self.udp_ref(socket.slot).endpoint().port;
        (port != 0).then(|| SocketAddr::from((self.local_ip, port)))
    }

    /// Where the ephemeral port search starts next (clamped into [`EPHEMERAL_PORTS`]).
    /// Seed it from a hardware RNG so a rebooted device does not reuse the same ports.
    pub fn set_next_ephemeral_port(&mut self, port: u16) {
        self.next_port = port.max(*EPHEMERAL_PORTS.start());
    }

    fn udp(&mut self, slot: usize) -> &mut udp::Socket<'a> {
        self.sockets.get_mut(self.slots[slot].handle)
    }

    fn udp_ref(&self, slot: usize) -> &udp::Socket<'a> {
        self.sockets.get(self.slots[slot].handle)
    }

    fn port_in_use(&self, port: u16) -> bool {
        self.slots.iter().any(|s| {
            s.in_use
                && self
                    .sockets
                    .get::<udp::Socket<'a>>(s.handle)
                    .endpoint()
                    .port
                    == port
        })
    }

    /// The next free port of the dynamic range. Ends: fewer sockets than ports (see `new`).
    fn ephemeral_port(&mut self) -> u16 {
        loop {
            let port = self.next_port;
            self.next_port = port.checked_add(1).unwrap_or(*EPHEMERAL_PORTS.start());
            if !self.port_in_use(port) {
                return port;
            }
        }
    }

    fn bind_ephemeral_if_unbound(&mut self, slot: usize) -> Result<(), NalError> {
        if !self.udp(slot).is_open() {
            let port = self.ephemeral_port();
            self.udp(slot).bind(port).map_err(NalError::Bind)?;
        }
        Ok(())
    }

    fn send_datagram(
        &mut self,
        slot: usize,
        to: IpEndpoint,
        data: &[u8],
    ) -> nb::Result<(), NalError> {
        self.bind_ephemeral_if_unbound(slot)?;
        let udp = self.udp(slot);
        let capacity = udp.payload_send_capacity();
        if data.len() > capacity {
            // smoltcp would report BufferFull forever: that is no WouldBlock.
            return Err(NalError::TooLarge {
                len: data.len(),
                capacity,
            }
            .into());
        }
        let before = udp.send_queue();
        let sent = udp.send_slice(data, to);
        let queued = udp.send_queue();
        let s = &mut self.slots[slot];
        // Emptied or shrank since the last look: smoltcp sent something, the queue moves.
        s.moved |= before == 0 || before < s.queued;
        s.queued = queued;
        match sent {
            Ok(()) => Ok(()),
            Err(udp::SendError::BufferFull) => Err(nb::Error::WouldBlock),
            Err(e) => Err(NalError::Send(e).into()),
        }
    }
}

// Not derived: the socket set would print every buffer byte.
impl<const SOCKETS: usize> fmt::Debug for NalStack<'_, SOCKETS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let in_use = self.slots.iter().filter(|s| s.in_use).count();
        f.debug_struct("NalStack")
            .field("sockets", &SOCKETS)
            .field("in_use", &in_use)
            .field("local_ip", &self.local_ip)
            .field("next_port", &self.next_port)
            .finish_non_exhaustive()
    }
}

fn endpoint(addr: SocketAddr) -> Result<IpEndpoint, NalError> {
    match addr {
        SocketAddr::V4(v4) => Ok(v4.into()),
        #[cfg(feature = "ipv6")]
        SocketAddr::V6(v6) => Ok(v6.into()),
        #[cfg(not(feature = "ipv6"))]
        SocketAddr::V6(_) => Err(NalError::UnsupportedAddress),
    }
}

impl<const SOCKETS: usize> UdpClientStack for NalStack<'_, SOCKETS> {
    type UdpSocket = UdpSocket;
    type Error = NalError;

    fn socket(&mut self) -> Result<UdpSocket, NalError> {
        let slot = self
            .slots
            .iter()
            .position(|s| !s.in_use)
            .ok_or(NalError::NoFreeSocket)?;
        self.slots[slot].in_use = true;
        // An idle socket has port 0 and smoltcp delivers datagrams for port 0 to it: flush.
        self.udp(slot).close();
        Ok(UdpSocket { slot, remote: None })
    }

    fn connect(&mut self, socket: &mut UdpSocket, remote: SocketAddr) -> Result<(), NalError> {
        let remote = endpoint(remote)?;
        self.bind_ephemeral_if_unbound(socket.slot)?;
        socket.remote = Some(remote);
        Ok(())
    }

    fn send(&mut self, socket: &mut UdpSocket, buffer: &[u8]) -> nb::Result<(), NalError> {
        let remote = socket.remote.ok_or(NalError::NotConnected)?;
        self.send_datagram(socket.slot, remote, buffer)
    }

    fn receive(
        &mut self,
        socket: &mut UdpSocket,
        buffer: &mut [u8],
    ) -> nb::Result<(usize, SocketAddr), NalError> {
        let udp = self.udp(socket.slot);
        if !udp.is_open() {
            return Err(NalError::NotBound.into());
        }
        // `recv`, not `recv_slice`: the latter drops a datagram that does not fit.
        match udp.recv() {
            Ok((payload, meta)) => {
                let n = payload.len().min(buffer.len());
                buffer[..n].copy_from_slice(&payload[..n]);
                Ok((payload.len(), meta.endpoint.into()))
            }
            Err(udp::RecvError::Exhausted) => Err(nb::Error::WouldBlock),
            Err(e) => Err(NalError::Recv(e).into()),
        }
    }

    fn close(&mut self, socket: UdpSocket) -> Result<(), NalError> {
        self.udp(socket.slot).close();
        self.slots[socket.slot].in_use = false;
        Ok(())
    }
}

impl<const SOCKETS: usize> UdpFullStack for NalStack<'_, SOCKETS> {
    fn bind(&mut self, socket: &mut UdpSocket, local_port: u16) -> Result<(), NalError> {
        if self.udp(socket.slot).is_open() {
            return Err(NalError::Bind(udp::BindError::InvalidState));
        }
        let port = match local_port {
            0 => self.ephemeral_port(),
            p if self.port_in_use(p) => return Err(NalError::PortInUse(p)),
            p => p,
        };
        self.udp(socket.slot).bind(port).map_err(NalError::Bind)
    }

    fn send_to(
        &mut self,
        socket: &mut UdpSocket,
        remote: SocketAddr,
        buffer: &[u8],
    ) -> nb::Result<(), NalError> {
        self.send_datagram(socket.slot, endpoint(remote)?, buffer)
    }
}

/// Why a [`NalStack`] operation failed. "Nothing yet" is never an error: it is
/// [`nb::Error::WouldBlock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum NalError {
    /// Every socket of the storage is in use; close one first.
    NoFreeSocket,
    /// `send` on a socket that was never connected (use `send_to`).
    NotConnected,
    /// `receive` on a socket that is neither bound nor connected.
    NotBound,
    /// `bind` to a port another socket of this stack holds.
    PortInUse(u16),
    /// An IPv6 address without the `ipv6` feature.
    UnsupportedAddress,
    /// The datagram is larger than the socket's whole transmit buffer, so it can never be sent.
    TooLarge {
        /// The datagram's length.
        len: usize,
        /// The transmit buffer's capacity (`BUF`).
        capacity: usize,
    },
    /// smoltcp refused to bind (the socket is already bound).
    Bind(udp::BindError),
    /// smoltcp refused to send (unspecified address or port 0).
    Send(udp::SendError),
    /// smoltcp refused to receive. `recv` only reports an empty queue, which is
    /// `WouldBlock`, so this is kept for future smoltcp errors rather than expected.
    Recv(udp::RecvError),
}

impl fmt::Display for NalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFreeSocket => f.write_str("no free UDP socket"),
            Self::NotConnected => f.write_str("socket is not connected"),
            Self::NotBound => f.write_str("socket is neither bound nor connected"),
            Self::PortInUse(port) => write!(f, "UDP port {port} is in use"),
            Self::UnsupportedAddress => f.write_str("IPv6 addresses need the `ipv6` feature"),
            Self::TooLarge { len, capacity } => {
                write!(
                    f,
                    "{len}-byte datagram exceeds the {capacity}-byte transmit buffer"
                )
            }
            Self::Bind(e) => write!(f, "bind: {e}"),
            Self::Send(e) => write!(f, "send: {e}"),
            Self::Recv(e) => write!(f, "receive: {e}"),
        }
    }
}

// Display already includes smoltcp's message, so `source` stays `None` (no doubled chains).
impl core::error::Error for NalError {}

/// What the core's drivers may assume of a [`NalStack`]: pass it to their `with_caps`.
///
/// `receive` reports true lengths, so a server answers any datagram from a small buffer.
/// smoltcp never passes ICMP errors to UDP sockets, so no error is `Refused` or
/// `Truncated`: the default classifier (all [`Other`](udp_echo_core::StackErrorKind::Other))
/// is right.
pub const CAPS: StackCaps<NalError> = StackCaps::PLAIN.with_true_lengths();

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Loopback;
    use smoltcp::iface::{Config, Interface};
    use smoltcp::phy::Medium;
    use smoltcp::time::Instant;
    use smoltcp::wire::{HardwareAddress, IpCidr};

    const IP: Ipv4Addr = Ipv4Addr::LOCALHOST;
    type Storage<'a> = NalStorage<'a, 3, 4, 1024>;

    /// An interface on 127.0.0.1/8 over a loopback device, and a stack on `storage`.
    struct Rig<'a> {
        device: Loopback,
        iface: Interface,
        stack: NalStack<'a, 3>,
    }

    impl<'a> Rig<'a> {
        fn new(storage: &'a mut Storage<'a>) -> Self {
            let mut device = Loopback::new(Medium::Ip);
            let mut iface =
                Interface::new(Config::new(HardwareAddress::Ip), &mut device, Instant::ZERO);
            iface.update_ip_addrs(|a| a.push(IpCidr::new(IP.into(), 8)).unwrap());
            let stack = NalStack::new(storage, IP);
            Self {
                device,
                iface,
                stack,
            }
        }

        /// Egress, then ingress of what the device turned around.
        fn poll(&mut self) {
            for _ in 0..2 {
                self.iface
                    .poll(Instant::ZERO, &mut self.device, self.stack.sockets_mut());
            }
        }

        fn bound(&mut self, port: u16) -> UdpSocket {
            let mut socket = self.stack.socket().unwrap();
            self.stack.bind(&mut socket, port).unwrap();
            socket
        }

        fn port(&self, socket: &UdpSocket) -> u16 {
            self.stack.local_addr(socket).unwrap().port()
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from((IP, port))
    }

    #[test]
    fn datagram_sent_to_self_arrives_with_its_source_and_length() {
        let mut storage = Storage::new();
        let mut rig = Rig::new(&mut storage);
        let mut socket = rig.bound(7000);
        rig.stack
            .send_to(&mut socket, addr(7000), b"hello")
            .unwrap();
        rig.poll();
        let mut buf = [0; 16];
        assert_eq!(
            rig.stack.receive(&mut socket, &mut buf),
            Ok((5, addr(7000)))
        );
        assert_eq!(&buf[..5], b"hello");
    }

    #[test]
    fn empty_receive_queue_is_would_block() {
        let mut storage = Storage::new();
        let mut rig = Rig::new(&mut storage);
        let mut socket = rig.bound(7000);
        rig.poll();
        assert_eq!(
            rig.stack.receive(&mut socket, &mut [0; 16]),
            Err(nb::Error::WouldBlock)
        );
    }

    #[test]
    fn oversize_datagram_reports_its_true_length() {
        let mut storage = Storage::new();
        let mut rig = Rig::new(&mut storage);
        let mut socket = rig.bound(7000);
        let data: [u8; 600] = core::array::from_fn(|i| i as u8);
        rig.stack.send_to(&mut socket, addr(7000), &data).unwrap();
        rig.poll();
        let mut buf = [0; 32];
        assert_eq!(
            rig.stack.receive(&mut socket, &mut buf),
            Ok((600, addr(7000)))
        );
        assert_eq!(buf, data[..32]);
    }

    #[test]
    fn zero_length_datagram_round_trips() {
        let mut storage = Storage::new();
        let mut rig = Rig::new(&mut storage);
        let mut socket = rig.bound(7000);
        rig.stack.send_to(&mut socket, addr(7000), &[]).unwrap();
        rig.poll();
        assert_eq!(
            rig.stack.receive(&mut socket, &mut [0; 4]),
            Ok((0, addr(7000)))
        );
    }

    #[test]
    fn connects_get_distinct_ephemeral_ports() {
        let mut storage = Storage::new();
        let mut rig = Rig::new(&mut storage);
        let (mut one, mut two) = (rig.stack.socket().unwrap(), rig.stack.socket().unwrap());
        rig.stack.connect(&mut one, addr(6666)).unwrap();
        rig.stack.connect(&mut two, addr(6666)).unwrap();
        assert_eq!((rig.port(&one), rig.port(&two)), (49152, 49153));
    }

    #[test]
    fn ephemeral_ports_skip_ports_in_use_and_wrap_around() {
        let mut storage = Storage::new();
        let mut rig = Rig::new(&mut storage);
        let _held = rig.bound(49152);
        rig.stack.set_next_ephemeral_port(65535);
        let (mut one, mut two) = (rig.stack.socket().unwrap(), rig.stack.socket().unwrap());
        rig.stack.connect(&mut one, addr(6666)).unwrap();
        rig.stack.bind(&mut two, 0).unwrap();
        assert_eq!((rig.port(&one), rig.port(&two)), (65535, 49153));
    }

    #[test]
    fn close_frees_the_slot_and_its_port() {
        let mut storage = Storage::new();
        let mut rig = Rig::new(&mut storage);
        let first = rig.bound(7000);
        let _others = [rig.stack.socket().unwrap(), rig.stack.socket().unwrap()];
        assert_eq!(rig.stack.socket().unwrap_err(), NalError::NoFreeSocket);

        rig.stack.close(first).unwrap();
        let mut again = rig.stack.socket().unwrap();
        assert_eq!(
            rig.stack.receive(&mut again, &mut [0; 4]),
            Err(nb::Error::Other(NalError::NotBound))
        );
        rig.stack.bind(&mut again, 7000).unwrap();
    }

    #[test]
    fn connected_socket_sends_to_its_remote_and_still_sees_other_sources() {
        let mut storage = Storage::new();
        let mut rig = Rig::new(&mut storage);
        let mut server = rig.bound(7000);
        let mut other = rig.bound(7001);
        let mut client = rig.stack.socket().unwrap();
        rig.stack.connect(&mut client, addr(7000)).unwrap();
        let client_addr = rig.stack.local_addr(&client).unwrap();

        rig.stack.send(&mut client, b"request").unwrap();
        rig.stack
            .send_to(&mut other, client_addr, b"foreign")
            .unwrap();
        rig.poll();

        let mut buf = [0; 16];
        assert_eq!(
            rig.stack.receive(&mut server, &mut buf),
            Ok((7, client_addr))
        );
        assert_eq!(
            rig.stack.receive(&mut client, &mut buf),
            Ok((7, addr(7001)))
        );
        assert_eq!(&buf[..7], b"foreign");
    }

    #[test]
    fn send_without_connect_is_not_connected() {
        let mut storage = Storage::new();
        let mut rig = Rig::new(&mut storage);
        let mut socket = rig.bound(7000);
        assert_eq!(
            rig.stack.send(&mut socket, b"x"),
            Err(nb::Error::Other(NalError::NotConnected))
        );
    }

    #[test]
    fn binding_a_port_twice_fails() {
        let mut storage = Storage::new();
        let mut rig = Rig::new(&mut storage);
        let mut socket = rig.bound(7000);
        let mut second = rig.stack.socket().unwrap();
        assert_eq!(
            rig.stack.bind(&mut second, 7000),
            Err(NalError::PortInUse(7000))
        );
        assert_eq!(
            rig.stack.bind(&mut socket, 7001),
            Err(NalError::Bind(udp::BindError::InvalidState))
        );
    }

    #[test]
    fn full_transmit_buffer_is_would_block_until_polled() {
        let mut storage = Storage::new();
        let mut rig = Rig::new(&mut storage);
        let mut socket = rig.bound(7000);
        for _ in 0..4 {
            rig.stack.send_to(&mut socket, addr(7001), b"x").unwrap();
        }
        assert_eq!(
            rig.stack.send_to(&mut socket, addr(7001), b"x"),
            Err(nb::Error::WouldBlock)
        );
        rig.iface
            .poll(Instant::ZERO, &mut rig.device, rig.stack.sockets_mut());
        rig.stack.send_to(&mut socket, addr(7001), b"x").unwrap();
    }

    #[test]
    fn datagram_larger_than_the_transmit_buffer_is_an_error() {
        let mut storage = Storage::new();
        let mut rig = Rig::new(&mut storage);
        let mut socket = rig.bound(7000);
        assert_eq!(
            rig.stack.send_to(&mut socket, addr(7000), &[0; 1025]),
            Err(nb::Error::Other(NalError::TooLarge {
                len: 1025,
                capacity: 1024
            }))
        );
    }

    #[test]
    fn storage_in_two_parts_may_size_receive_and_transmit_apart() {
        let mut slots: NalSockets<'_, 2, 4> = NalSockets::new();
        let mut bytes: NalBuffers<2, 2048, 64> = NalBuffers::new();
        let mut device = Loopback::<4, 2100>::new(Medium::Ip);
        let mut iface =
            Interface::new(Config::new(HardwareAddress::Ip), &mut device, Instant::ZERO);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IP.into(), 8)).unwrap());
        let mut stack = NalStack::from_parts(&mut slots, &mut bytes, IP);
        let mut socket = stack.socket().unwrap();
        stack.bind(&mut socket, 7000).unwrap();
        assert_eq!(
            stack.send_to(&mut socket, addr(7000), &[0; 65]),
            Err(nb::Error::Other(NalError::TooLarge {
                len: 65,
                capacity: 64
            }))
        );

        // A 2000-byte datagram from a second stack: its poll puts the packet on the
        // loopback, this stack's poll takes it in.
        let mut peer_storage: NalStorage<'_, 1, 1, 2048> = NalStorage::new();
        let mut peer = NalStack::new(&mut peer_storage, IP);
        let mut sender = peer.socket().unwrap();
        peer.send_to(&mut sender, addr(7000), &[7; 2000]).unwrap();
        iface.poll(Instant::ZERO, &mut device, peer.sockets_mut());
        iface.poll(Instant::ZERO, &mut device, stack.sockets_mut());
        let mut buf = [0; 4];
        let from = peer.local_addr(&sender).unwrap();
        assert_eq!(stack.receive(&mut socket, &mut buf), Ok((2000, from)));
    }

    #[cfg(not(feature = "ipv6"))]
    #[test]
    fn ipv6_remote_is_unsupported() {
        let mut storage = Storage::new();
        let mut rig = Rig::new(&mut storage);
        let mut socket = rig.stack.socket().unwrap();
        let v6 = SocketAddr::from((core::net::Ipv6Addr::LOCALHOST, 6666));
        assert_eq!(
            rig.stack.connect(&mut socket, v6),
            Err(NalError::UnsupportedAddress)
        );
    }

    /// A's stack sends on an Ethernet link to B (a real smoltcp host that answers ARP);
    /// 10.0.0.77 is on the link but nobody answers for it.
    #[cfg(feature = "ethernet")]
    mod stuck {
        use super::*;
        use crate::clock::to_net;
        use crate::sim::{ADDR_B, Faults, Pair};
        use core::time::Duration as CoreDuration;

        const SILENT: SocketAddr =
            SocketAddr::new(core::net::IpAddr::V4(Ipv4Addr::new(10, 0, 0, 77)), 7000);
        const B: SocketAddr = SocketAddr::new(core::net::IpAddr::V4(ADDR_B), 7000);

        /// A pair whose B listens on 7000 and has received one datagram from A's 6666
        /// (so A has resolved B), at 0 ms.
        fn resolved(pair: &mut Pair<'_>) -> (UdpSocket, UdpSocket) {
            let mut from = pair.a.stack.socket().unwrap();
            pair.a.stack.bind(&mut from, 6666).unwrap();
            let mut to = pair.b.stack.socket().unwrap();
            pair.b.stack.bind(&mut to, 7000).unwrap();
            pair.a.stack.send_to(&mut from, B, b"hello").unwrap();
            pair.poll();
            assert_eq!(
                pair.b.stack.receive(&mut to, &mut [0; 8]).map(|(n, _)| n),
                Ok(5)
            );
            (from, to)
        }

        /// Advances 10 ms, then calls `unstick` as a main loop would.
        fn round(pair: &mut Pair<'_>) -> u32 {
            pair.advance(CoreDuration::from_millis(10));
            pair.a.stack.unstick(to_net(pair.now()))
        }

        fn ms(pair: &Pair<'_>) -> u64 {
            (pair.now() - udp_echo_core::Instant::ZERO).as_millis() as u64
        }

        #[test]
        fn without_unstick_one_datagram_to_a_silent_neighbour_holds_the_queue() {
            let mut storage = Default::default();
            let mut pair = Pair::new(&mut storage, Medium::Ethernet, Faults::default(), 7);
            let (mut from, mut to) = resolved(&mut pair);
            pair.a.stack.send_to(&mut from, SILENT, b"spoofed").unwrap();
            pair.a.stack.send_to(&mut from, B, b"valid").unwrap();
            for _ in 0..500 {
                pair.advance(CoreDuration::from_millis(10));
            }
            assert_eq!(
                pair.b.stack.receive(&mut to, &mut [0; 8]),
                Err(nb::Error::WouldBlock)
            );
        }

        #[test]
        fn queue_behind_a_silent_neighbour_is_emptied_at_100_ms_and_the_next_send_goes() {
            let mut storage = Default::default();
            let mut pair = Pair::new(&mut storage, Medium::Ethernet, Faults::default(), 7);
            let (mut from, mut to) = resolved(&mut pair);
            pair.a.stack.send_to(&mut from, SILENT, b"spoofed").unwrap();
            assert_eq!(pair.a.stack.unstick(to_net(pair.now())), 0);
            assert_eq!(
                pair.a.stack.unstick_at(),
                Some(to_net(pair.now()) + STUCK_AFTER)
            );
            let mut purged_at = None;
            while purged_at.is_none() {
                if ms(&pair) == 50 {
                    pair.a.stack.send_to(&mut from, B, b"behind").unwrap();
                }
                if round(&mut pair) == 1 {
                    purged_at = Some(ms(&pair));
                }
            }
            assert_eq!(purged_at, Some(100));
            assert_eq!(
                pair.a.stack.stuck(),
                StuckCounts {
                    purges: 1,
                    tx_bytes: 13,
                    rx_lost: 0
                }
            );
            assert_eq!(pair.a.stack.unstick_at(), None);

            // The socket kept its port, and smoltcp forgot the silent neighbour: the next
            // datagram leaves in the same round.
            pair.a.stack.send_to(&mut from, B, b"after").unwrap();
            pair.poll();
            let mut buf = [0; 8];
            let from_addr = SocketAddr::from((crate::sim::ADDR_A, 6666));
            assert_eq!(pair.b.stack.receive(&mut to, &mut buf), Ok((5, from_addr)));
            assert_eq!(&buf[..5], b"after");
        }

        #[test]
        fn queue_that_keeps_moving_is_never_emptied() {
            let mut storage = Default::default();
            let mut pair = Pair::new(&mut storage, Medium::Ethernet, Faults::default(), 7);
            let (mut from, mut to) = resolved(&mut pair);
            for _ in 0..100 {
                pair.a.stack.send_to(&mut from, B, b"valid").unwrap();
                assert_eq!(round(&mut pair), 0);
                assert_eq!(
                    pair.b.stack.receive(&mut to, &mut [0; 8]).map(|(n, _)| n),
                    Ok(5)
                );
            }
            assert_eq!(pair.a.stack.stuck(), StuckCounts::default());
        }
    }
}
