//! Stand-ins for the size images in `src/bin/`: an `embedded-nal` stack, two
//! `embedded-nal-async` sockets, a `Shell` and a `Clock`, all backed by volatile
//! reads and writes of one static `Mailbox` and nothing else. Each image thus holds one
//! role of the core and next to nothing besides; and because the optimiser cannot know
//! what the mailbox holds (datagram bytes and lengths, addresses of either family, the
//! time, whether the next operation completes, blocks or fails, whether lengths are true),
//! it keeps every path of the core's code. Results go back to the mailbox, so nothing is
//! dead either.
//!
//! Nothing here is meant to run: `scripts/sizes.sh` builds the images and measures them.
//! `udp-echo-no-panic` (`../no-panic`) reuses the same stand-ins to prove at link time
//! that the core has no reachable panic; for that, every stand-in is itself panic-free,
//! and the panic handler is each image's own (`halt_on_panic!`).
//!
//! Built for the host the crate is empty (its dependencies are for the board only).

#![cfg(target_os = "none")]
#![no_std]

use core::cell::UnsafeCell;
use core::convert::Infallible;
use core::fmt;
use core::future::{Future, poll_fn};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::sync::atomic::{Ordering, compiler_fence};
use core::task::Poll;

use udp_echo_core::asynch::Clock;
use udp_echo_core::embedded_nal::{UdpClientStack, UdpFullStack};
use udp_echo_core::embedded_nal_async::{ConnectedUdp, UnconnectedUdp};
use udp_echo_core::{Instant, Shell, StackCaps, StackErrorKind, Wake, nb};

/// Defines the size images' panic handler, in the style of panic-halt: no message, no
/// formatting code, no output. A macro, not a handler in this library, so that a binary
/// that reuses these stand-ins can bring its own (`udp-echo-no-panic` links one that must
/// never be reached).
#[macro_export]
macro_rules! halt_on_panic {
    () => {
        #[panic_handler]
        fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
            $crate::halt()
        }
    };
}

/// Stops here for good: what [`halt_on_panic!`]'s handler does.
pub fn halt() -> ! {
    loop {
        compiler_fence(Ordering::SeqCst);
    }
}

/// Datagram bytes the mailbox holds each way: enough for any request the images send and
/// any reply (the core's buffers are sized by the core, not by this).
pub const BYTES: usize = 64;

/// The port the servers bind.
pub const PORT: u16 = udp_echo_core::wire::DEFAULT_PORT;

/// One value in memory the compiler must read and write as told, like a device register.
#[derive(Debug)]
pub struct Volatile<T: Copy>(UnsafeCell<T>);

// SAFETY: the images are single-threaded and use no interrupt handlers, so no two
// accesses ever overlap; every access is a whole-value volatile read or write.
unsafe impl<T: Copy + Send> Sync for Volatile<T> {}

impl<T: Copy> Volatile<T> {
    /// A location holding `value` (in a `static`: zero-initialised ones go to `.bss`).
    pub const fn new(value: T) -> Self {
        Volatile(UnsafeCell::new(value))
    }

    /// The value, read from memory.
    pub fn get(&self) -> T {
        // SAFETY: the pointer comes from a live `UnsafeCell` and is aligned; no reference
        // to the contents exists (see the `Sync` impl).
        unsafe { self.0.get().read_volatile() }
    }

    /// Writes `value` to memory.
    pub fn set(&self, value: T) {
        // SAFETY: as in `get`.
        unsafe { self.0.get().write_volatile(value) }
    }
}

/// A socket address in the mailbox: IPv4 when `family` is 4 (the first four bytes of `ip`),
/// else IPv6.
#[derive(Debug)]
pub struct Addr {
    family: Volatile<u8>,
    ip: Volatile<[u8; 16]>,
    port: Volatile<u16>,
}

impl Addr {
    const fn new() -> Self {
        Addr {
            family: Volatile::new(0),
            ip: Volatile::new([0; 16]),
            port: Volatile::new(0),
        }
    }

    /// The address, read from memory.
    pub fn get(&self) -> SocketAddr {
        let ip = self.ip.get();
        let ip = if self.family.get() == 4 {
            IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(ip))
        };
        SocketAddr::new(ip, self.port.get())
    }

    /// Writes `addr` to memory.
    pub fn set(&self, addr: SocketAddr) {
        let (family, ip) = match addr.ip() {
            IpAddr::V4(v4) => {
                let mut ip = [0; 16];
                ip[..4].copy_from_slice(&v4.octets());
                (4, ip)
            }
            IpAddr::V6(v6) => (6, v6.octets()),
        };
        self.family.set(family);
        self.ip.set(ip);
        self.port.set(addr.port());
    }
}

/// What the next socket operation does, as the mailbox says.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// It completes.
    Ready,
    /// It would block (`nb::Error::WouldBlock`), or is not ready yet (async).
    Pending,
    /// It fails.
    Fail(Fault),
}

/// The stand-ins' error: each kind the core's drivers react to differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// An ICMP "port unreachable" report.
    Refused,
    /// A datagram too long to measure.
    Truncated,
    /// Anything else.
    Other,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::Refused => "refused",
            Fault::Truncated => "truncated",
            Fault::Other => "failed",
        })
    }
}

impl core::error::Error for Fault {}

/// The async sockets' classification (the core looks for `ConnectionRefused`).
impl embedded_io_async::Error for Fault {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        match self {
            Fault::Refused => embedded_io_async::ErrorKind::ConnectionRefused,
            Fault::Truncated | Fault::Other => embedded_io_async::ErrorKind::Other,
        }
    }
}

/// The sync drivers' classification of [`Fault`].
fn classify(fault: &Fault) -> StackErrorKind {
    match fault {
        Fault::Refused => StackErrorKind::Refused,
        Fault::Truncated => StackErrorKind::Truncated,
        Fault::Other => StackErrorKind::Other,
    }
}

/// Everything the images read and write: the stand-in for a NIC and a timer.
#[derive(Debug)]
pub struct Mailbox {
    /// The next operation: 0 completes, 1 is pending, 2/3/else fails Refused/Truncated/Other.
    step: Volatile<u8>,
    /// The time, in microseconds.
    micros: Volatile<u64>,
    /// Non-zero: `receive` reports true lengths (see [`StackCaps::true_lengths`]).
    true_lengths: Volatile<u8>,
    /// Where datagrams come from; the client's server.
    peer: Addr,
    /// Where datagrams were sent to (the async server's local address).
    local: Addr,
    /// The next datagram's true length, and its first bytes; the client's request.
    rx_len: Volatile<u16>,
    rx: [Volatile<u8>; BYTES],
    /// The last datagram sent: destination, source (async server), length and bytes.
    sent_to: Addr,
    sent_from: Addr,
    tx_len: Volatile<u16>,
    tx: [Volatile<u8>; BYTES],
    /// Whatever an image reports: outcomes, decisions, wake-up instants.
    out: Volatile<u64>,
}

/// The one mailbox (zero at reset: in `.bss`).
pub static MAILBOX: Mailbox = Mailbox {
    step: Volatile::new(0),
    micros: Volatile::new(0),
    true_lengths: Volatile::new(0),
    peer: Addr::new(),
    local: Addr::new(),
    rx_len: Volatile::new(0),
    rx: [const { Volatile::new(0) }; BYTES],
    sent_to: Addr::new(),
    sent_from: Addr::new(),
    tx_len: Volatile::new(0),
    tx: [const { Volatile::new(0) }; BYTES],
    out: Volatile::new(0),
};

impl Mailbox {
    /// What the next socket operation does.
    pub fn step(&self) -> Step {
        match self.step.get() {
            0 => Step::Ready,
            1 => Step::Pending,
            2 => Step::Fail(Fault::Refused),
            3 => Step::Fail(Fault::Truncated),
            _ => Step::Fail(Fault::Other),
        }
    }

    /// The time now.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.micros.get())
    }

    /// The peer: the source of datagrams, the client's server.
    pub fn peer(&self) -> SocketAddr {
        self.peer.get()
    }

    /// The stack's caps for the sync drivers: errors classified, lengths true or not.
    pub fn caps(&self) -> StackCaps<Fault> {
        let caps = StackCaps::PLAIN.with_classifier(classify);
        if self.true_lengths.get() != 0 {
            caps.with_true_lengths()
        } else {
            caps
        }
    }

    /// The request a client sends: up to [`BYTES`] bytes from the receive area, behind
    /// `black_box` so that the optimiser cannot bound its length by the buffer's (and drop
    /// the core's too-large check).
    pub fn request<'b>(&self, buf: &'b mut [u8; BYTES]) -> &'b [u8] {
        let len = self.receive(buf).min(BYTES);
        core::hint::black_box(&buf[..len])
    }

    /// Copies the waiting datagram's head into `buf`; returns its true length.
    fn receive(&self, buf: &mut [u8]) -> usize {
        for (byte, cell) in buf.iter_mut().zip(&self.rx) {
            *byte = cell.get();
        }
        usize::from(self.rx_len.get())
    }

    /// Takes a datagram to send (its first [`BYTES`] bytes).
    fn transmit(&self, data: &[u8]) {
        for (cell, &byte) in self.tx.iter().zip(data) {
            cell.set(byte);
        }
        self.tx_len
            .set(u16::try_from(data.len()).unwrap_or(u16::MAX));
    }

    /// Reports `value`.
    pub fn report(&self, value: u64) {
        self.out.set(value);
    }

    /// Where a firmware would sleep until `wake` (seen at `now`): reports the instant.
    pub fn wait(&self, now: Instant, wake: Wake) {
        self.report(wake.deadline(now).map_or(u64::MAX, Instant::as_micros));
    }

    fn nb_step(&self) -> nb::Result<(), Fault> {
        match self.step() {
            Step::Ready => Ok(()),
            Step::Pending => Err(nb::Error::WouldBlock),
            Step::Fail(fault) => Err(nb::Error::Other(fault)),
        }
    }

    fn setup_step(&self) -> Result<(), Fault> {
        match self.step() {
            Step::Ready | Step::Pending => Ok(()),
            Step::Fail(fault) => Err(fault),
        }
    }

    /// Completes with `then()` once the mailbox says the operation is ready, or fails as
    /// it says. A plain `poll_fn`, not an `async` block: an `async` state machine carries a
    /// "resumed after completion" panic that the optimiser cannot always remove, and the
    /// stand-ins must be panic-free (`udp-echo-no-panic` links them).
    fn when_ready<'a, T>(
        &'a self,
        mut then: impl FnMut() -> T + 'a,
    ) -> impl Future<Output = Result<T, Fault>> + 'a {
        poll_fn(move |_| match self.step() {
            Step::Ready => Poll::Ready(Ok(then())),
            Step::Pending => Poll::Pending,
            Step::Fail(fault) => Poll::Ready(Err(fault)),
        })
    }
}

/// The sync stand-in: an `embedded-nal` stack of one socket, the mailbox.
#[derive(Debug)]
pub struct Stack;

/// Its socket handle.
#[derive(Debug)]
pub struct Socket;

impl UdpClientStack for Stack {
    type UdpSocket = Socket;
    type Error = Fault;

    fn socket(&mut self) -> Result<Socket, Fault> {
        MAILBOX.setup_step().map(|()| Socket)
    }

    fn connect(&mut self, _: &mut Socket, remote: SocketAddr) -> Result<(), Fault> {
        MAILBOX.setup_step()?;
        MAILBOX.sent_to.set(remote);
        Ok(())
    }

    fn send(&mut self, _: &mut Socket, buffer: &[u8]) -> nb::Result<(), Fault> {
        MAILBOX.nb_step()?;
        MAILBOX.transmit(buffer);
        Ok(())
    }

    fn receive(
        &mut self,
        _: &mut Socket,
        buffer: &mut [u8],
    ) -> nb::Result<(usize, SocketAddr), Fault> {
        MAILBOX.nb_step()?;
        let len = MAILBOX.receive(buffer);
        // Without true lengths, a stack never reports more than it stored.
        let len = if MAILBOX.true_lengths.get() != 0 {
            len
        } else {
            len.min(buffer.len())
        };
        Ok((len, MAILBOX.peer()))
    }

    fn close(&mut self, _: Socket) -> Result<(), Fault> {
        MAILBOX.setup_step()
    }
}

impl UdpFullStack for Stack {
    fn bind(&mut self, _: &mut Socket, local_port: u16) -> Result<(), Fault> {
        MAILBOX.setup_step()?;
        MAILBOX.report(u64::from(local_port));
        Ok(())
    }

    fn send_to(
        &mut self,
        _: &mut Socket,
        remote: SocketAddr,
        buffer: &[u8],
    ) -> nb::Result<(), Fault> {
        MAILBOX.nb_step()?;
        MAILBOX.sent_to.set(remote);
        MAILBOX.transmit(buffer);
        Ok(())
    }
}

/// The sync client's shell: the mailbox's time; a wait only reports its instant.
#[derive(Debug)]
pub struct MailboxShell;

impl<S: UdpClientStack> Shell<S> for MailboxShell {
    type Error = Infallible;

    fn now(&mut self, _: &mut S) -> Instant {
        MAILBOX.now()
    }

    fn sleep(
        &mut self,
        _: &mut S,
        _: &S::UdpSocket,
        now: Instant,
        wake: Wake,
    ) -> Result<(), Infallible> {
        MAILBOX.wait(now, wake);
        Ok(())
    }
}

/// The async drivers' clock: the mailbox's time; a sleep is pending until it has come.
#[derive(Debug)]
pub struct MailboxClock;

impl Clock for MailboxClock {
    fn now(&self) -> Instant {
        MAILBOX.now()
    }

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> {
        poll_fn(move |_| {
            if MAILBOX.now() >= at {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// The async client's stand-in: a socket connected to [`Mailbox::peer`].
#[derive(Debug)]
pub struct Connected;

impl ConnectedUdp for Connected {
    type Error = Fault;

    fn send(&mut self, data: &[u8]) -> impl Future<Output = Result<(), Fault>> {
        MAILBOX.when_ready(move || MAILBOX.transmit(data))
    }

    fn receive_into(&mut self, buffer: &mut [u8]) -> impl Future<Output = Result<usize, Fault>> {
        // The trait's contract: the full size, even when the buffer cut it.
        MAILBOX.when_ready(move || MAILBOX.receive(buffer))
    }
}

/// The async server's stand-in: a socket bound to [`PORT`] on any address.
#[derive(Debug)]
pub struct Unconnected;

impl UnconnectedUdp for Unconnected {
    type Error = Fault;

    fn send(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> impl Future<Output = Result<(), Fault>> {
        MAILBOX.when_ready(move || {
            MAILBOX.sent_from.set(local);
            MAILBOX.sent_to.set(remote);
            MAILBOX.transmit(data);
        })
    }

    fn receive_into(
        &mut self,
        buffer: &mut [u8],
    ) -> impl Future<Output = Result<(usize, SocketAddr, SocketAddr), Fault>> {
        MAILBOX.when_ready(move || {
            let len = MAILBOX.receive(buffer);
            (len, MAILBOX.local.get(), MAILBOX.peer())
        })
    }
}
