//! The device, the stack, the executor and the two jobs.
//!
//! One thread runs embassy-executor's std executor with two tasks: embassy-net's
//! `Runner` on the TAP device (woken by async-io's reactor when a frame arrives, and by
//! embassy-time's std driver for smoltcp's timers) and the job, client or server. The job
//! stores its result and the executor stops; nothing spins.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_io::Async;
use embassy_executor::Executor;
use embassy_futures::select::{Either, select};
use embassy_net::driver::Driver;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{
    Config, EthernetAddress, Ipv4Cidr, Runner, Stack, StackResources, StaticConfigV4,
};
use embassy_net_tuntap::TunTapDevice;
use embassy_time::{Duration, with_timeout};
use static_cell::StaticCell;
use udp_echo_core::asynch::{self, Clock};
use udp_echo_core::{
    ClientEvent, Counters, Decision, Destination, Instant, Outcome, Received, ResponderConfig,
    RetryPolicy,
};
use udp_echo_embassy::{Connected, EmbassyClock, Unconnected};

use super::{Failure, print, say};

/// Payload bytes of one Ethernet frame's datagram at most (IP MTU 1500 less headers),
/// rounded up: the socket buffers hold this many per datagram.
const DATAGRAM: usize = 1536;

/// Datagrams each socket buffer holds, each way.
const QUEUE: usize = 4;

/// The server's receive buffer: the adapter reports true lengths, so a request of any
/// size is answered with its full count from these few bytes.
const HEAD: usize = 64;

/// How long a server keeps the stack running after its last reply so that the reply
/// leaves the device (it may wait for ARP) before the process exits.
const FLUSH_LIMIT: Duration = Duration::from_secs(1);

/// How long [`open`] waits for the kernel's side of the device to come up (as
/// `firmware-example`: until then the kernel drops what it would send us, e.g. the ARP
/// reply the first exchange needs).
const LINK_UP_LIMIT: StdDuration = StdDuration::from_secs(2);

/// What the interface is.
#[derive(Debug)]
pub struct Setup {
    /// The TAP device's name.
    pub tap: String,
    /// The interface's address and prefix.
    pub cidr: Ipv4Cidr,
    /// The default route's gateway, if any.
    pub gateway: Option<Ipv4Addr>,
    /// The interface's MAC address.
    pub mac: EthernetAddress,
}

/// What the job task does.
#[derive(Debug)]
pub enum Job {
    /// One exchange with `server`.
    Client {
        /// The server.
        server: SocketAddrV4,
        /// The request's bytes.
        message: Vec<u8>,
    },
    /// Serve `port` until `stop` is readable or `count` replies.
    Server {
        /// The port.
        port: u16,
        /// Stop after this many replies.
        count: Option<u64>,
        /// No line per datagram.
        quiet: bool,
        /// Readable once SIGINT or SIGTERM arrived.
        stop: Async<UnixStream>,
    },
}

/// Attaches to TAP device `setup.tap` and waits until the kernel has it up.
pub fn open(setup: &Setup) -> Result<TunTapDevice, String> {
    let fail = |e: io::Error| format!("cannot open TAP device {:?}: {e}", setup.tap);
    let mut device = TunTapDevice::new(&setup.tap).map_err(fail)?;
    device.set_hardware_address(setup.mac.0);
    // embassy-net-tuntap panics when a write fails, which is what a device that is down
    // on the kernel's side answers: refuse to start instead.
    wait_until_up(&setup.tap, LINK_UP_LIMIT).map_err(fail)?;
    Ok(device)
}

/// The largest UDP payload one frame on `device` carries (IPv4, no options; the stack
/// does not fragment).
pub fn max_payload(device: &TunTapDevice) -> usize {
    let mtu = device.capabilities().max_transmission_unit; // Ethernet header included
    mtu.saturating_sub(14 + 20 + 8).min(DATAGRAM)
}

/// A socket readable once SIGINT or SIGTERM has arrived; a second signal ends the
/// process at once (status 130).
pub fn stop_on_signals() -> Result<Async<UnixStream>, Failure> {
    let fail = |e: io::Error| Failure::runtime(format!("cannot handle signals: {e}"));
    let (rx, tx) = UnixStream::pair().map_err(fail)?;
    let stopping = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stopping))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stopping)))
            .and_then(|_| signal_hook::low_level::pipe::register(signal, tx.try_clone()?))
            .map_err(fail)?;
    }
    Async::new(rx).map_err(fail)
}

/// The job's result, set once by its task: the executor runs until then.
static RESULT: Mutex<Option<Result<(), Failure>>> = Mutex::new(None);

fn finish(result: Result<(), Failure>) {
    *RESULT.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
}

/// Builds the stack on `device` and runs `job` to its end.
pub fn run(device: TunTapDevice, setup: &Setup, job: Job) -> Result<(), Failure> {
    static RESOURCES: StaticCell<StackResources<2>> = StaticCell::new();
    static EXECUTOR: StaticCell<Executor> = StaticCell::new();

    let config = Config::ipv4_static(StaticConfigV4 {
        address: setup.cidr,
        gateway: setup.gateway,
        dns_servers: Default::default(),
    });
    // Different runs should not share smoltcp's "random" values (ephemeral ports, ARP).
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let (stack, runner) =
        embassy_net::new(device, config, RESOURCES.init(StackResources::new()), seed);
    let tap = setup.tap.clone();
    let mac = setup.mac;
    EXECUTOR.init(Executor::new()).run_until(
        |spawner| {
            // Each task has a pool of one and is spawned once: spawning cannot fail.
            spawner.spawn(net_task(runner).expect("one net task"));
            match job {
                Job::Client { server, message } => {
                    spawner.spawn(client_task(stack, server, message).expect("one client task"));
                }
                Job::Server {
                    port,
                    count,
                    quiet,
                    stop,
                } => {
                    let server = ServerJob {
                        cidr: setup.cidr,
                        port,
                        count,
                        quiet,
                        stop,
                        tap,
                        mac,
                    };
                    spawner.spawn(server_task(stack, server).expect("one server task"));
                }
            }
        },
        || RESULT.lock().is_ok_and(|r| r.is_some()),
    );
    RESULT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_else(|| Err(Failure::runtime("the executor stopped without a result")))
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn client_task(stack: Stack<'static>, server: SocketAddrV4, message: Vec<u8>) {
    finish(ask(stack, server, &message).await);
}

/// What the server task needs.
struct ServerJob {
    /// The interface's address and prefix.
    cidr: Ipv4Cidr,
    port: u16,
    count: Option<u64>,
    quiet: bool,
    stop: Async<UnixStream>,
    tap: String,
    mac: EthernetAddress,
}

#[embassy_executor::task]
async fn server_task(stack: Stack<'static>, job: ServerJob) {
    finish(serve(stack, job).await);
}

/// A socket's buffers: [`QUEUE`] datagrams each way, in `RX` and `TX` bytes of payload
/// (the server sends only replies of at most 25 bytes).
struct Buffers<const RX: usize, const TX: usize> {
    rx_meta: [PacketMetadata; QUEUE],
    rx: [u8; RX],
    tx_meta: [PacketMetadata; QUEUE],
    tx: [u8; TX],
}

impl<const RX: usize, const TX: usize> Buffers<RX, TX> {
    fn new() -> Self {
        Self {
            rx_meta: [PacketMetadata::EMPTY; QUEUE],
            rx: [0; RX],
            tx_meta: [PacketMetadata::EMPTY; QUEUE],
            tx: [0; TX],
        }
    }

    fn socket<'a>(&'a mut self, stack: Stack<'a>) -> UdpSocket<'a> {
        UdpSocket::new(
            stack,
            &mut self.rx_meta,
            &mut self.rx,
            &mut self.tx_meta,
            &mut self.tx,
        )
    }
}

/// The client: one exchange, its progress on stderr, the reply on stdout.
async fn ask(stack: Stack<'static>, server: SocketAddrV4, message: &[u8]) -> Result<(), Failure> {
    let mut buffers = Buffers::<{ QUEUE * DATAGRAM }, { QUEUE * DATAGRAM }>::new();
    let to = SocketAddr::V4(server);
    let socket = Connected::connect(buffers.socket(stack), to).map_err(Failure::runtime)?;
    let mut client = asynch::Client::new(socket, to);
    let clock = EmbassyClock;
    let mut progress = Progress::new(clock);
    let outcome = client
        .request(&clock, &RetryPolicy::default(), message, |event| {
            progress.report(event)
        })
        .await
        .map_err(|e| Failure::runtime(format!("client: {e}")))?;
    let foreign = client.into_socket().foreign();
    if foreign > 0 {
        say(&format!(
            "dropped {foreign} datagram{} from other sources than {server}",
            plural(u64::from(foreign))
        ));
    }
    match outcome {
        Outcome::Reply(r) => {
            print(&format!("Your data was {} bytes", r.count));
            say(&format!(
                "reply from {server}: rtt {:.3} ms{}, {} attempt{}, {:.3} ms in all",
                r.rtt.as_secs_f64() * 1e3,
                if r.rtt_ambiguous {
                    " (ambiguous: measured after a resend)"
                } else {
                    ""
                },
                r.attempts,
                plural(r.attempts.into()),
                r.elapsed.as_secs_f64() * 1e3,
            ));
            Ok(())
        }
        Outcome::GaveUp(g) => Err(Failure::runtime(format!(
            "no reply from {server} after {} attempt{} in {} ms{}",
            g.attempts,
            plural(g.attempts.into()),
            g.elapsed.as_millis(),
            match g.unsent {
                0 => String::new(),
                n => format!(
                    "; {n} more could not be sent (the socket's queue stayed full: is {} on \
                     the link?)",
                    server.ip()
                ),
            }
        ))),
    }
}

/// The server: one line per datagram on stdout until a signal or `count` replies.
async fn serve(stack: Stack<'static>, job: ServerJob) -> Result<(), Failure> {
    let mut buffers = Buffers::<{ QUEUE * DATAGRAM }, { QUEUE * 32 }>::new();
    let socket = Unconnected::bind(buffers.socket(stack), job.port)
        .map_err(|e| Failure::runtime(format!("cannot bind UDP port {}: {e:?}", job.port)))?;
    let subnet = job.cidr;
    let mut server = asynch::Server::new(socket, ResponderConfig::default())
        .with_destinations(move |local, remote| destinations(subnet, local, remote));
    say(&format!(
        "listening on {}:{} ({}, {})",
        subnet.address(),
        job.port,
        job.tap,
        job.mac
    ));
    let clock = EmbassyClock;
    let mut head = [0u8; HEAD];
    let mut stop = pin!(job.stop.readable());
    let done = |counters: &Counters| job.count.is_some_and(|n| counters.replied >= n);
    while !done(server.counters()) {
        match select(server.next(&clock, &mut head), stop.as_mut()).await {
            Either::First(Ok((datagram, decision))) if !job.quiet => report(&datagram, &decision),
            Either::First(Ok(_)) => {}
            Either::First(Err(e)) => return Err(Failure::runtime(format!("server: {e}"))),
            Either::Second(_) => break, // SIGINT or SIGTERM
        }
    }
    let replied = server.counters().replied;
    // Let the last replies leave (they may wait for ARP), boundedly.
    let mut socket = server.into_socket();
    let _ = with_timeout(FLUSH_LIMIT, socket.flush()).await;
    say(&format!("answered {replied} datagram{}", plural(replied)));
    Ok(())
}

fn report(datagram: &Received<'_>, decision: &Decision) {
    match decision {
        Decision::Reply(_) => print(&format!("{} sent {} bytes", datagram.from, datagram.len)),
        Decision::Drop(why) => print(&format!(
            "{} sent {} bytes, not answered: {why}",
            datagram.from, datagram.len
        )),
    }
}

/// Where a datagram that hit `local` was sent, from the interface's prefix: its own
/// address, or the subnet's or the limited broadcast (for the broadcast guard).
fn destinations(subnet: Ipv4Cidr, local: SocketAddr, remote: SocketAddr) -> Destination {
    let (IpAddr::V4(to), IpAddr::V4(from)) = (local.ip(), remote.ip()) else {
        return Destination::Unknown;
    };
    if to == subnet.address() {
        Destination::Unicast
    } else if to.is_broadcast() || to.is_multicast() || Some(to) == subnet.broadcast() {
        Destination::Broadcast {
            source_on_link: subnet.contains_addr(&from),
        }
    } else {
        Destination::Unknown
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The client's progress on stderr, one line per event, in ms on the core's clock.
/// Blocked sends come in bursts: one line per burst.
struct Progress {
    clock: EmbassyClock,
    started: Instant,
    blocked: bool,
}

impl Progress {
    fn new(clock: EmbassyClock) -> Self {
        Self {
            clock,
            started: clock.now(),
            blocked: false,
        }
    }

    fn ms(&self, at: Instant) -> f64 {
        at.saturating_since(self.started).as_secs_f64() * 1e3
    }

    fn report(&mut self, event: &ClientEvent) {
        let now = self.ms(self.clock.now());
        match event {
            ClientEvent::Sent { attempt, at } => {
                self.blocked = false;
                say(&format!("attempt {attempt} sent at {:.1} ms", self.ms(*at)));
            }
            ClientEvent::SendBlocked if !self.blocked => {
                self.blocked = true;
                say(&format!(
                    "send blocked at {now:.1} ms: the socket's queue is full (no ARP reply?); \
                     the slot passed"
                ));
            }
            ClientEvent::Ignored { from, verdict } => say(&format!(
                "ignored a datagram at {now:.1} ms from {}: {verdict:?}",
                from.map_or("an unknown source".into(), |a| a.to_string())
            )),
            ClientEvent::Refused => say(&format!(
                "ICMP port unreachable at {now:.1} ms (noted; the schedule goes on)"
            )),
            _ => {}
        }
    }
}

/// Waits, at most `limit`, until the kernel reports interface `name` up (`operstate` is
/// `up`: administratively up, carrier on, transmit queue active). Without sysfs there is
/// nothing to check and it returns at once. (As `firmware-example`'s, which is private.)
fn wait_until_up(name: &str, limit: StdDuration) -> io::Result<()> {
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
        // Bounded start-up wait (usually 0 to a few rounds), before the executor starts.
        std::thread::sleep(StdDuration::from_millis(2));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(local: [u8; 4], remote: [u8; 4]) -> Destination {
        destinations(
            "192.168.69.1/24".parse().unwrap(),
            SocketAddr::from((local, 6666)),
            SocketAddr::from((remote, 40000)),
        )
    }

    #[test]
    fn destinations_tell_the_own_address_from_broadcasts_by_the_prefix() {
        assert_eq!(
            classify([192, 168, 69, 1], [192, 168, 69, 100]),
            Destination::Unicast
        );
        assert_eq!(
            classify([192, 168, 69, 255], [192, 168, 69, 100]),
            Destination::Broadcast {
                source_on_link: true
            }
        );
        assert_eq!(
            classify([255, 255, 255, 255], [10, 0, 0, 1]),
            Destination::Broadcast {
                source_on_link: false
            }
        );
        assert_eq!(
            classify([192, 168, 69, 7], [192, 168, 69, 100]),
            Destination::Unknown
        );
    }
}
