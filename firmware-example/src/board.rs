//! The network firmware's stack (`net-firmware/`), set up in one place: QEMU user
//! networking's addresses, the interface with IPv4 reassembly, the sockets, and the round
//! of its main loop that moves frames ([`poll`]) and when the next one is due ([`wake`]). The firmware calls these on the board;
//! the host runs the very same stack over the fake LAN9118 (the `frames` fuzz target), so
//! what is tested there is what the firmware runs. (The server is the core's, bound to
//! [`ECHO_PORT`] with `ResponderConfig::default()`, the adapter's `CAPS` and the seed: a
//! function for those three calls cost the firmware 150 to 250 bytes of flash.)
//!
//! Features `ethernet` and `reassembly`, as the firmware builds this crate.
//!
//! ```
//! use udp_echo_firmware_example::board::{self, Buffers, Sockets};
//! use udp_echo_firmware_example::smoltcp::iface::Interface;
//! use udp_echo_firmware_example::smoltcp::time::Instant;
//! use udp_echo_firmware_example::smoltcp::wire::EthernetAddress;
//! # fn demo(device: &mut impl udp_echo_firmware_example::smoltcp::phy::Device) {
//!
//! let seed = 0x1234; // a varying input: the firmware takes the NIC's free-running counter
//! let mac = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
//! let mut iface = Interface::new(board::config(mac, seed), device, Instant::ZERO);
//! board::configure(&mut iface).expect("a new interface has room for the default route");
//!
//! let (mut sockets, mut buffers) = (Sockets::new(), Buffers::new()); // `static`s on a board
//! let mut stack = board::stack(&mut sockets, &mut buffers, seed);
//! // Each round of the main loop: frames in and out, then the server, then sleep until
//! // a frame comes or `board::wake(&mut iface, &stack, now, server_wake)` says.
//! board::poll(&mut iface, device, &mut stack, Instant::ZERO);
//! # }
//! ```

use core::net::Ipv4Addr;

use smoltcp::iface::{Config, Interface, PollResult, RouteTableFull};
use smoltcp::phy::Device;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

use udp_echo_core::{Instant as CoreInstant, Wake};

use crate::clock;
use crate::frag::{MAX_REASSEMBLED_UDP, REASSEMBLY_LIMIT};
use crate::{NalBuffers, NalSockets, NalStack};

/// The firmware's address: QEMU user networking's guest address (slirp's default).
pub const ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// The prefix length of its network, 10.0.2.0/24.
pub const PREFIX_LEN: u8 = 24;
/// The default gateway (slirp's host side).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The server's port.
pub const ECHO_PORT: u16 = 6666;
/// How long smoltcp holds the fragments of a datagram in its one reassembly slot. A LAN
/// delivers all fragments within microseconds; a datagram too large for the buffer (or
/// missing a fragment) blocks other fragmented requests until then (smoltcp's default is
/// 60 s).
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_millis(500);

/// One UDP socket: the server's or the client's.
pub const SOCKETS: usize = 1;
/// Datagrams queued per direction.
pub const META: usize = 4;
/// Receive payload bytes: one request as large as reassembly allows. smoltcp resets an
/// empty ring, so the largest one always fits when the server keeps up.
pub const RX: usize = REASSEMBLY_LIMIT;
/// Transmit payload bytes: a client message (the command line holds less) or replies.
pub const TX: usize = 1472;
/// The server reads only a request's head: the stack reports true lengths (`CAPS`).
pub const SERVER_BUF: usize = 32;
const _: () = assert!(RX >= MAX_REASSEMBLED_UDP, "a reassembled request must fit");

/// The socket slots of [`stack`].
pub type Sockets<'a> = NalSockets<'a, SOCKETS, META>;
/// The payload bytes of [`stack`]: all zeros, so a `static` of it lives in `.bss`.
pub type Buffers = NalBuffers<SOCKETS, RX, TX>;
/// The firmware's `embedded-nal` stack.
pub type Stack<'a> = NalStack<'a, SOCKETS>;

// The functions below are `#[inline]`: a firmware that does not call them then carries no
// trace of them (without it, fat LTO still changed the network firmware's inlining and
// grew it by 56 bytes).

/// The interface's configuration: Ethernet with the NIC's `mac`, smoltcp seeded with
/// `seed` (a varying input).
#[inline]
pub fn config(mac: EthernetAddress, seed: u64) -> Config {
    let mut config = Config::new(HardwareAddress::Ethernet(mac));
    config.random_seed = seed;
    config
}

/// Gives a new interface [`ADDR`]/[`PREFIX_LEN`], the default route via [`GATEWAY`] and
/// the reassembly timeout.
///
/// # Errors
///
/// [`RouteTableFull`] if the default route did not fit (never on a new interface): only
/// 10.0.2.0/24 is reachable then; everything else is set.
#[inline]
pub fn configure(iface: &mut Interface) -> Result<(), RouteTableFull> {
    iface.update_ip_addrs(|addrs| {
        // The list has room for at least one address.
        let _ = addrs.push(IpCidr::new(ADDR.into(), PREFIX_LEN));
    });
    iface.set_reassembly_timeout(REASSEMBLY_TIMEOUT);
    iface
        .routes_mut()
        .add_default_ipv4_route(GATEWAY)
        .map(|_| ())
}

/// One round of the firmware's main loop, before the server runs: smoltcp takes in at most
/// **one** frame, then sends everything the sockets hold, then the adapter empties a socket
/// queue that has not moved for `nal::STUCK_AFTER` ([`NalStack::unstick`]: a reply to a
/// neighbour that never answers ARP must not hold the rest). One frame per round, so that
/// the server reads each datagram before the next comes in: smoltcp drops, without a word,
/// a datagram that finds the socket's queue ([`META`] slots) full, which a round that took
/// in a whole FIFO of requests would do.
pub fn poll<D: Device + ?Sized>(
    iface: &mut Interface,
    device: &mut D,
    stack: &mut Stack<'_>,
    now: Instant,
) {
    let _ = iface.poll_ingress_single(now, device, stack.sockets_mut());
    while iface.poll_egress(now, device, stack.sockets_mut()) != PollResult::None {}
    stack.unstick(now);
}

/// When the next round is due at the latest if no frame comes: the earliest of `drivers`
/// (the core drivers' wake), the interface's next timer and the adapter's next unstick.
#[inline]
pub fn wake(iface: &mut Interface, stack: &Stack<'_>, now: CoreInstant, drivers: Wake) -> Wake {
    drivers
        .min(clock::iface_wake(iface, now, stack.sockets()))
        .min(Wake::from(stack.unstick_at().map(clock::to_core)))
}

/// The sockets on their storage, for [`ADDR`]; the ephemeral port search starts at a port
/// drawn from `seed`, so a rebooted board does not reuse the same ports.
#[inline]
pub fn stack<'a>(sockets: &'a mut Sockets<'a>, buffers: &'a mut Buffers, seed: u64) -> Stack<'a> {
    let mut stack = NalStack::from_parts(sockets, buffers, ADDR);
    stack.set_next_ephemeral_port(49152 + (seed % 16384) as u16);
    stack
}
