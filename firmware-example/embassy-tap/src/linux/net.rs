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
use std::sync::Mutex;

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
use udp_echo_core::{ClientEvent, Counters, Destination, Instant, ResponderConfig, RetryPolicy};
use udp_echo_embassy::{Connected, EmbassyClock, Unconnected};
use udp_echo_firmware_example::tap::{LINK_UP_LIMIT, wait_until_up};
use udp_echo_tap::{Failure, plural, say};

use super::BINARY;

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

/// Attaches to TAP device `setup.tap` and waits until the kernel has it up (as
/// `firmware-example` does: until then the kernel drops what it would send us, e.g. the ARP
/// reply the first exchange needs).
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
    udp_echo_tap::stop_on_signals(|signal| {
        signal_hook::low_level::pipe::register(signal, tx.try_clone()?).map(drop)
    })?;
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
    // Progress in ms on the core's clock: a send at its own instant, the rest when reported.
    let clock = EmbassyClock;
    let mut progress = BINARY.progress();
    let started = clock.now();
    let ms = |at: Instant| at.saturating_since(started).as_secs_f64() * 1e3;
    let outcome = client
        .request(&clock, &RetryPolicy::default(), message, |event| {
            let at = match event {
                ClientEvent::Sent { at, .. } => *at,
                _ => clock.now(),
            };
            progress.report(event, ms(at));
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
    BINARY.outcome(server, outcome)
}

/// The server: one line per datagram on stdout until a signal or `count` replies.
async fn serve(stack: Stack<'static>, job: ServerJob) -> Result<(), Failure> {
    let mut buffers = Buffers::<{ QUEUE * DATAGRAM }, { QUEUE * 32 }>::new();
    let socket = Unconnected::bind(buffers.socket(stack), job.port)
        .map_err(|e| Failure::runtime(format!("cannot bind UDP port {}: {e:?}", job.port)))?;
    let subnet = job.cidr;
    let mut server = asynch::Server::new(socket, ResponderConfig::default())
        .with_destinations(move |local, remote| destinations(subnet, local, remote));
    udp_echo_tap::listening(subnet.address(), job.port, &job.tap, job.mac);
    let clock = EmbassyClock;
    let mut head = [0u8; HEAD];
    let mut stop = pin!(job.stop.readable());
    let done = |counters: &Counters| job.count.is_some_and(|n| counters.replied >= n);
    while !done(server.counters()) {
        match select(server.next(&clock, &mut head), stop.as_mut()).await {
            Either::First(Ok((datagram, decision))) if !job.quiet => {
                udp_echo_tap::datagram(&datagram, &decision)
            }
            Either::First(Ok(_)) => {}
            Either::First(Err(e)) => return Err(Failure::runtime(format!("server: {e}"))),
            Either::Second(_) => break, // SIGINT or SIGTERM
        }
    }
    let replied = server.counters().replied;
    // Let the last replies leave (they may wait for ARP), boundedly.
    let mut socket = server.into_socket();
    let _ = with_timeout(FLUSH_LIMIT, socket.flush()).await;
    udp_echo_tap::answered(replied);
    Ok(())
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
