//! The core's drivers over a Linux TAP device (std only): what the `firmware-example`
//! binary runs, kept here so that it can be reused and tested.
//!
//! [`Tap`] owns the [`TunTapInterface`], the smoltcp [`Interface`] on it and a monotonic
//! clock. Its main loop is the one of every shell in this project: `iface.poll`, drive the
//! core, then sleep in [`phy::wait`] until a frame arrives or until the earlier of the
//! interface's next timer and the driver's [`Wake`] ([`clock::iface_wake`]). Nothing spins.
//!
//! ```no_run
//! use udp_echo_core::{Outcome, RetryPolicy};
//! use udp_echo_firmware_example::smoltcp::wire::Ipv4Cidr;
//! use udp_echo_firmware_example::tap::{Tap, TapConfig};
//! use udp_echo_firmware_example::{NalStack, NalStorage};
//!
//! let cidr: Ipv4Cidr = "192.168.69.1/24".parse().map_err(|()| "bad CIDR")?;
//! let config = TapConfig::new("tap0", cidr);
//! let mut tap = Tap::open(&config)?; // root or CAP_NET_ADMIN
//! let mut storage: NalStorage<'_> = NalStorage::new();
//! let mut stack = NalStack::new(&mut storage, cidr.address());
//! let server = "192.168.69.100:6666".parse()?;
//! let policy = RetryPolicy::default();
//! match tap.exchange(&mut stack, server, b"hello", &policy, |event| eprintln!("{event:?}"))? {
//!     Outcome::Reply(r) => println!("Your data was {} bytes", r.count),
//!     Outcome::GaveUp(g) => eprintln!("no reply after {} sends", g.attempts),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{self, Device, Medium, TunTapInterface};
use smoltcp::socket::udp;
use smoltcp::time::Duration as NetDuration;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};
use udp_echo_core::{
    ClientError, ClientEvent, Decision, Instant, Outcome, Received, RequestError, ResponderConfig,
    RetryPolicy, Server, ServerError, Shell, Wake,
};

use crate::clock::{self, to_net};
use crate::nal::{CAPS, NalError, NalStack, UdpSocket};

/// The MAC address used unless told otherwise: locally administered, unicast.
pub const DEFAULT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);

/// How long a server loop sleeps at most, so that a stop request (SIGINT/SIGTERM) that
/// lands just before the sleep starts is still seen soon. A signal during the sleep ends
/// it at once (`select` returns `EINTR`).
pub const STOP_CHECK: core::time::Duration = core::time::Duration::from_millis(500);

/// How long a server keeps polling after its last reply so that the reply leaves the
/// device (it may wait for ARP) before the process exits.
pub const FLUSH_LIMIT: core::time::Duration = core::time::Duration::from_secs(1);

/// How long [`Tap::open`] waits for the kernel's side of the device to come up.
///
/// Attaching gives the device its carrier, but the kernel activates its transmit queue
/// only when its link watcher runs, which can take up to a second after an earlier link
/// event (such as `ip link set tap0 up`). Until then the kernel drops what it would send us
/// (our first ARP reply, say), and smoltcp stays silent towards an unresolved neighbor for
/// a whole second: the first exchange would need four sends instead of one.
pub const LINK_UP_LIMIT: core::time::Duration = core::time::Duration::from_secs(2);

/// Longest Linux interface name (`IFNAMSIZ` - 1).
pub const MAX_NAME_LEN: usize = 15;

/// Checks a Linux interface name: 1 to [`MAX_NAME_LEN`] bytes, no `/`, `:` or whitespace
/// (smoltcp would panic on a longer one; the kernel rejects the others).
pub fn parse_tap_name(s: &str) -> Result<String, &'static str> {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return Err("an interface name has 1 to 15 bytes, e.g. tap0");
    }
    if s == "." || s == ".." || s.contains(['/', ':']) || s.contains(char::is_whitespace) {
        return Err("an interface name cannot be . or .. nor contain /, : or whitespace");
    }
    Ok(s.to_owned())
}

/// What [`Tap::open`] sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapConfig {
    /// The TAP device's name, e.g. `tap0`.
    pub name: String,
    /// The interface's address and prefix.
    pub cidr: Ipv4Cidr,
    /// The default IPv4 route's gateway, if any.
    pub gateway: Option<Ipv4Addr>,
    /// The interface's MAC address.
    pub mac: EthernetAddress,
}

impl TapConfig {
    /// Device `name` with address `cidr`, no gateway and [`DEFAULT_MAC`].
    pub fn new(name: &str, cidr: Ipv4Cidr) -> Self {
        Self {
            name: name.to_owned(),
            cidr,
            gateway: None,
            mac: DEFAULT_MAC,
        }
    }
}

/// Why the TAP device could not be opened.
#[derive(Debug)]
pub struct OpenError {
    name: String,
    source: io::Error,
}

impl OpenError {
    /// The OS error.
    pub fn io(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot open TAP device {:?}: {}", self.name, self.source)?;
        match self.source.raw_os_error() {
            Some(code) if code == EPERM || code == EACCES => f.write_str(
                " (attaching to a TAP device needs root or CAP_NET_ADMIN, unless it is a \
                 persistent device owned by this user: `ip tuntap add name tap0 mode tap user $USER`)",
            ),
            Some(ENOENT) => f.write_str(" (/dev/net/tun is missing: load the `tun` module)"),
            Some(EBUSY) => f.write_str(
                " (the device is in use by another process, or it is a TUN device, not TAP)",
            ),
            Some(EINVAL) => f.write_str(" (not a valid TAP device name)"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

// Linux errno values (stable ABI), to explain the usual failures without a libc dependency.
const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const EACCES: i32 = 13;
const EBUSY: i32 = 16;
const EINVAL: i32 = 22;

/// Why a [`Tap`] loop stopped with an error.
#[derive(Debug)]
pub enum RunError {
    /// The client driver failed.
    Client(ClientError<NalError>),
    /// The server driver failed.
    Server(ServerError<NalError>),
    /// Waiting on the device failed.
    Wait(io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Client(e) => write!(f, "client: {e}"),
            Self::Server(e) => write!(f, "server: {e}"),
            Self::Wait(e) => write!(f, "waiting on the TAP device: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// A smoltcp interface on a TAP device, with its clock.
pub struct Tap {
    device: TunTapInterface,
    iface: Interface,
    epoch: std::time::Instant,
}

// Not derived: smoltcp's `Interface` has no `Debug`.
impl fmt::Debug for Tap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tap")
            .field("device", &self.device)
            .field("hardware_addr", &self.iface.hardware_addr())
            .field("ip_addrs", &self.iface.ip_addrs())
            .finish_non_exhaustive()
    }
}

impl Tap {
    /// Attaches to (or creates) TAP device `config.name` and builds the interface on it.
    pub fn open(config: &TapConfig) -> Result<Self, OpenError> {
        if let Err(why) = parse_tap_name(&config.name) {
            return Err(OpenError {
                name: config.name.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, why),
            });
        }
        let mut device =
            TunTapInterface::new(&config.name, Medium::Ethernet).map_err(|source| OpenError {
                name: config.name.clone(),
                source,
            })?;
        wait_until_up(&config.name, LINK_UP_LIMIT).map_err(|source| OpenError {
            name: config.name.clone(),
            source,
        })?;
        let epoch = std::time::Instant::now();
        let mut iface_config = Config::new(HardwareAddress::Ethernet(config.mac));
        // Different runs should not share smoltcp's sequence of "random" values.
        iface_config.random_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        let mut iface = Interface::new(iface_config, &mut device, to_net(Instant::ZERO));
        let cidr = IpCidr::Ipv4(config.cidr);
        iface.update_ip_addrs(|addrs| {
            // A fresh interface has room for at least one address.
            let _ = addrs.push(cidr);
        });
        if let Some(gateway) = config.gateway {
            // A fresh route table has room for the default route.
            let _ = iface.routes_mut().add_default_ipv4_route(gateway);
        }
        Ok(Self {
            device,
            iface,
            epoch,
        })
    }

    /// Time since [`open`](Self::open), on the core's clock.
    pub fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// The largest UDP payload one frame on this device carries (IPv4, no options; this
    /// stack does not fragment).
    pub fn max_payload(&self) -> usize {
        let mtu = self.device.capabilities().max_transmission_unit;
        mtu.saturating_sub(14 + 20 + 8)
    }

    /// One `iface.poll` at `now`: frames in, frames out.
    pub fn poll(&mut self, now: Instant, sockets: &mut SocketSet<'_>) {
        self.iface.poll(to_net(now), &mut self.device, sockets);
    }

    /// Sleeps until a frame arrives, or until the earlier of the interface's next timer and
    /// `wake` (both as seen at `now`, the instant this round polled at). Returns early
    /// (without error) when a signal arrives.
    pub fn wait(&mut self, now: Instant, sockets: &SocketSet<'_>, wake: Wake) -> io::Result<()> {
        let wake = wake.min(clock::iface_wake(&mut self.iface, now, sockets));
        // From an instant, so the time spent since `now` (polling, the driver) is not
        // slept again.
        let timeout = wake.deadline(now).map(|at| at.saturating_since(self.now()));
        // `phy::wait` keeps whole milliseconds only. Rounding up would make every wake up
        // to 1 ms late (and a retry schedule drift by that much per send); rounding down
        // would spin through the last fraction. So: wait the whole milliseconds for a
        // frame, then sleep the sub-millisecond rest (frames queue in the kernel meanwhile).
        if let Some(t) = timeout
            && t < core::time::Duration::from_millis(1)
        {
            std::thread::sleep(t);
            return Ok(());
        }
        match phy::wait(self.device.as_raw_fd(), timeout.map(select_timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            other => other,
        }
    }

    /// Runs one exchange of `request` with `server` on `stack`, using `policy`, until it
    /// has an outcome (a reply, or giving up). Every other [`ClientEvent`] (sent, blocked,
    /// ignored, refused) goes to `on_event` as it happens, for progress reports.
    pub fn exchange<const N: usize>(
        &mut self,
        stack: &mut NalStack<'_, N>,
        server: SocketAddr,
        request: &[u8],
        policy: &RetryPolicy,
        on_event: impl FnMut(ClientEvent),
    ) -> Result<Outcome, RunError> {
        let mut shell = TapShell {
            tap: self,
            on_event,
        };
        udp_echo_core::request(stack, CAPS, server, policy, request, &mut shell).map_err(
            |e| match e {
                RequestError::Client(e) => RunError::Client(e),
                RequestError::Shell(e) => RunError::Wait(e),
            },
        )
    }

    /// Serves the byte-count protocol on UDP `port` of `stack` until `stop` is set or
    /// `count` datagrams have been answered (`None`: no limit). Every datagram is reported
    /// to `on_datagram` with the decision taken. Returns how many were answered.
    pub fn serve<const N: usize>(
        &mut self,
        stack: &mut NalStack<'_, N>,
        port: u16,
        config: ResponderConfig,
        count: Option<u64>,
        stop: &AtomicBool,
        mut on_datagram: impl FnMut(&Received<'_>, &Decision),
    ) -> Result<u64, RunError> {
        let mut server = Server::bind(stack, port, config)
            .map_err(RunError::Server)?
            .with_caps(CAPS);
        let handle = stack.handle(server.socket());
        // An Ethernet MTU's worth: smoltcp drops larger datagrams anyway (no fragments),
        // and the adapter reports true lengths.
        let mut buf = [0u8; 1536];
        let limit_reached = |server: &Server<NalStack<'_, N>>| {
            count.is_some_and(|n| server.counters().replied >= n)
        };
        while !stop.load(Ordering::Relaxed) && !limit_reached(&server) {
            let now = self.now();
            self.poll(now, stack.sockets_mut());
            let wake = server
                .poll(stack, &mut buf, now, &mut on_datagram)
                .map_err(RunError::Server)?;
            if limit_reached(&server) {
                break;
            }
            let wake = wake.min(Wake::At(now + STOP_CHECK));
            self.wait(now, stack.sockets(), wake)
                .map_err(RunError::Wait)?;
        }
        // Let the last replies leave (they may wait for ARP), boundedly.
        let start = self.now();
        loop {
            let now = self.now();
            self.poll(now, stack.sockets_mut());
            let queued = stack.sockets().get::<udp::Socket<'_>>(handle).send_queue();
            let spent = now.saturating_since(start);
            if queued == 0 || spent >= FLUSH_LIMIT || stop.load(Ordering::Relaxed) {
                break;
            }
            self.wait(now, stack.sockets(), Wake::At(start + FLUSH_LIMIT))
                .map_err(RunError::Wait)?;
        }
        let replied = server.counters().replied;
        server
            .close(stack)
            .map_err(|e| RunError::Server(ServerError::Stack(e)))?;
        Ok(replied)
    }
}

/// The client's [`Shell`] on a [`Tap`]: the tap's clock with an `iface.poll` before every
/// step, and [`Tap::wait`] (a frame, the interface's next timer or the driver's wake).
struct TapShell<'t, F> {
    tap: &'t mut Tap,
    on_event: F,
}

impl<const N: usize, F: FnMut(ClientEvent)> Shell<NalStack<'_, N>> for TapShell<'_, F> {
    type Error = io::Error;

    fn now(&mut self, stack: &mut NalStack<'_, N>) -> Instant {
        let now = self.tap.now();
        self.tap.poll(now, stack.sockets_mut());
        now
    }

    // No second `iface.poll` here: it could take in a datagram that nobody would look at
    // until the next frame or deadline. What the driver just queued makes the interface's
    // wake "now", so the wait returns at once and the next step's `iface.poll` sends it.
    fn sleep(
        &mut self,
        stack: &mut NalStack<'_, N>,
        _socket: &UdpSocket,
        now: Instant,
        wake: Wake,
    ) -> io::Result<()> {
        self.tap.wait(now, stack.sockets(), wake)
    }

    fn on_event(&mut self, event: &ClientEvent) {
        (self.on_event)(*event);
    }
}

/// Waits, at most `limit`, until the kernel reports interface `name` up (administratively
/// up, carrier on, transmit queue active: `operstate` is `up`). Without sysfs there is
/// nothing to check and it returns at once. [`Tap::open`] waits [`LINK_UP_LIMIT`]; so does
/// `embassy-tap` (another stack on a TAP device) before its executor starts.
///
/// This also turns a device that is down on the kernel's side into an error: smoltcp's
/// `TunTapInterface` (and embassy-net-tuntap's device) panics when a write fails with
/// `EIO`, which is what a down TAP device answers.
pub fn wait_until_up(name: &str, limit: core::time::Duration) -> io::Result<()> {
    let sys = std::path::Path::new("/sys/class/net").join(name);
    let started = std::time::Instant::now();
    loop {
        let Ok(state) = std::fs::read_to_string(sys.join("operstate")) else {
            return Ok(()); // no sysfs view of this namespace: cannot tell, carry on
        };
        if state.trim() == "up" {
            return Ok(());
        }
        if started.elapsed() >= limit {
            break;
        }
        // Bounded start-up wait (usually 0 to a few rounds), before any main loop.
        std::thread::sleep(core::time::Duration::from_millis(2));
    }
    let flags = std::fs::read_to_string(sys.join("flags")).unwrap_or_default();
    let admin_up =
        u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).is_ok_and(|f| f & 1 != 0); // IFF_UP
    Err(io::Error::new(
        io::ErrorKind::NotConnected,
        if admin_up {
            format!("{name} did not come up within {limit:?}")
        } else {
            format!("{name} is down on the host side: run `ip link set {name} up`")
        },
    ))
}

/// smoltcp's `phy::wait` keeps whole milliseconds only (see [`Tap::wait`]): round down, the
/// caller sleeps the rest.
fn select_timeout(d: core::time::Duration) -> NetDuration {
    NetDuration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_interface_names() {
        assert_eq!(parse_tap_name("tap0").as_deref(), Ok("tap0"));
        assert!(parse_tap_name("tap-fifteen-byt").is_ok());
        assert!(parse_tap_name("tap-sixteen-byte").is_err());
        assert!(parse_tap_name("").is_err());
        assert!(parse_tap_name("a/b").is_err());
        assert!(parse_tap_name("tap 0").is_err());
        assert!(parse_tap_name("..").is_err());
    }

    #[test]
    fn select_timeout_keeps_whole_milliseconds() {
        use core::time::Duration;
        assert_eq!(select_timeout(Duration::ZERO), NetDuration::ZERO);
        assert_eq!(
            select_timeout(Duration::from_micros(100_000)),
            NetDuration::from_millis(100)
        );
        assert_eq!(
            select_timeout(Duration::from_micros(100_999)),
            NetDuration::from_millis(100)
        );
    }

    #[test]
    fn permission_errors_say_what_is_needed() {
        let e = OpenError {
            name: "tap0".into(),
            source: io::Error::from_raw_os_error(EPERM),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("cannot open TAP device \"tap0\": "),
            "{text}"
        );
        assert!(text.contains("CAP_NET_ADMIN"), "{text}");
    }
}
