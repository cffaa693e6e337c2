//! The polled network firmware (`net-firmware/`) under QEMU on a TAP device, without slirp:
//! root only, each test in a network namespace it creates and always deletes (otherwise it
//! prints `skipped: …` and passes).
//!
//! Layout in namespace `udpecho-fwtap-<pid>-<test>`: Linux owns `tap0` as 10.0.2.2/24 (the
//! firmware's gateway); QEMU attaches the LAN9118 to `tap0`, and the firmware is
//! 10.0.2.15 with MAC 52:54:00:12:34:56. The link is kept quiet so that every frame on it
//! is the test's: no IPv6 on `tap0` (no router solicitations, no MLD), and a permanent
//! neighbour entry for the firmware (Linux never ARPs for it). The test's own sockets live
//! in threads that entered the namespace ([`Netns::enter`]).
//!
//! - [`a_burst_of_500_requests_is_answered_or_counted_to_the_last`]: 50 sockets × 10
//!   requests at once; every request must show up as a reply or in a drop counter of the
//!   firmware's `drops:` line (or, where QEMU's model of the chip loses it, in the frames
//!   Linux handed QEMU that never reached the chip); else it fails, saying where the rest
//!   went with the kernel's counters.
//! - [`a_soak_of_hostile_frames_leaves_every_request_answered_and_memory_flat`]: 60 s
//!   (`SOAK_SECONDS`) of raw hostile frames at a bounded rate with valid requests among
//!   them on the core's retry schedule; every request must get its exact count, and
//!   QEMU's resident memory must stay flat. Among the frames, 3 requests a second from
//!   on-link addresses nobody owns (10.0.2.77..=10.0.2.90): their replies wait for ARP
//!   that never comes, and the firmware must empty the stuck queue (`stuck_purges` > 0)
//!   for the valid replies behind them to go out.
//!
//! Both need the decoded log (`defmt-print`) for the firmware's counters.

// TAP, namespaces and AF_PACKET: Linux only.
#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use udp_echo_core::{ClientEvent, DropReason, Outcome, REFLECTION_PORTS, RetryPolicy};
use udp_echo_host::StdStack;
use udp_echo_host::client::{self, Ended};
use udp_echo_tests::netns::{self, Netns};
use udp_echo_tests::packet::PacketSocket;
use udp_echo_tests::process::{Lines, run_bounded};
use udp_echo_tests::qemu::{BOOT_DEADLINE, Firmware, Image, host, qemu_missing};

const FIRMWARE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const FIRMWARE_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const LINUX_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const ECHO_PORT: u16 = 6666;
/// The firmware logs its drop counters this often while they change (`REPORT_EVERY`).
const REPORT_EVERY: Duration = Duration::from_secs(2);
/// No `drops:` line for this long: the last one shows the final counts.
const SETTLED: Duration = REPORT_EVERY.saturating_add(Duration::from_millis(600));

// ---------------------------------------------------------------------------------------
// The rig

/// The firmware serving on `tap0` in its namespace. Fields drop in order: QEMU first, then
/// the namespace.
struct Rig {
    firmware: Firmware,
    ns: Netns,
}

/// Boots the firmware in a fresh namespace, or says why it cannot (`None`: skipped).
fn rig(test: &str) -> Option<Rig> {
    let why = qemu_missing()
        .or_else(netns::skip_reason)
        .or_else(|| (!host().decoder).then(|| "defmt-print is missing (cargo install defmt-print --locked): the firmware's counters are in its log".into()));
    if let Some(why) = why {
        eprintln!("skipped: {why}");
        return None;
    }
    let ns = Netns::create("udpecho-fwtap", test, &format!("{LINUX_IP}/24"));
    let quiet = ns
        .command("sysctl", &["-qw", "net.ipv6.conf.tap0.disable_ipv6=1"])
        .output()
        .expect("sysctl");
    assert!(quiet.status.success(), "sysctl: {quiet:?}");
    let mac = mac_text(FIRMWARE_MAC);
    ns.ip(&[
        "neigh",
        "replace",
        &FIRMWARE_IP.to_string(),
        "lladdr",
        &mac,
        "dev",
        "tap0",
        "nud",
        "permanent",
    ])
    .expect("a permanent neighbour entry");
    let nic = format!("tap,model=lan9118,ifname=tap0,script=no,downscript=no,mac={mac}");
    let mut firmware = Firmware::boot(Image::Polled, &nic, None, Some(&ns));
    assert!(
        firmware.logged("serving on 10.0.2.15:6666", BOOT_DEADLINE),
        "{}",
        firmware.log_text()
    );
    Some(Rig { firmware, ns })
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// Runs `job` in a thread of its own inside `ns` (its sockets are the namespace's).
fn in_namespace<T: Send>(ns: &Netns, job: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().expect("setns into the test's namespace");
            job()
        })
        .join()
        .expect("the namespace thread")
    })
}

/// One request from the namespace on the core's retry schedule: the reply's count, the
/// sends it took, or why there was none.
fn request(len: usize) -> Result<(u16, u32), String> {
    let mut stack = StdStack::new();
    let server = SocketAddr::from((FIRMWARE_IP, ECHO_PORT));
    let message = vec![b'x'; len];
    let report = client::exchange(
        &mut stack,
        server,
        &message,
        &RetryPolicy::default(),
        None,
        |_: &ClientEvent, _| {},
    )
    .map_err(|e| format!("{len} B: {e}"))?;
    match report.ended {
        Ended::Done(Outcome::Reply(r)) => Ok((r.count, r.attempts)),
        Ended::Done(Outcome::GaveUp(g)) => Err(format!(
            "{len} B: no reply after {} attempts in {:?}",
            g.attempts, g.elapsed
        )),
        Ended::Interrupted => Err(format!("{len} B: interrupted")),
    }
}

// ---------------------------------------------------------------------------------------
// The firmware's drop counters

/// A `drops:` line of the firmware's log as `name → count`: the NIC's and the reassembly
/// watch's counters, the server's drops by `DropReason` (named as the enum is), then
/// `rx_frames`, `received` and `replied`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Drops(BTreeMap<String, u64>);

/// Counters of the line that are frames lost below the server, in its order.
const LOWER: [&str; 8] = [
    "chip_rx_dropped",
    "rx_errors",
    "fifo_resyncs",
    "runts",
    "oversize",
    "frag_oversized",
    "frag_busy",
    "reassembly_timeouts",
];
/// Counters of the line that are replies decided but never sent.
const UNSENT: [&str; 3] = ["send_failed", "tx_dropped", "tx_errors"];

impl Drops {
    fn parse(line: &str) -> Option<Drops> {
        let rest = &line[line.find("drops: ")? + "drops: ".len()..];
        let counts = rest
            .split_whitespace()
            .filter_map(|pair| {
                let (name, value) = pair.trim_matches(['(', ')']).split_once('=')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect();
        Some(Drops(counts))
    }

    /// The count called `name` (the line must have it).
    fn get(&self, name: &str) -> u64 {
        *self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("no {name}= in the drops line: {self:?}"))
    }

    /// The server's drops by reason, named as the core's `DropReason`s are.
    fn by_reason(&self) -> Vec<(String, u64)> {
        DropReason::ALL
            .iter()
            .map(|reason| {
                let name = format!("{reason:?}");
                let count = self.get(&name);
                (name, count)
            })
            .collect()
    }

    /// Every count less `before`'s.
    fn since(&self, before: &Drops) -> Drops {
        Drops(
            self.0
                .iter()
                .map(|(name, n)| (name.clone(), n - before.0.get(name).copied().unwrap_or(0)))
                .collect(),
        )
    }

    /// Requests (or their frames) the firmware counted as dropped: below the server, by
    /// the server's guards, and replies that never left.
    fn counted(&self) -> u64 {
        let named: u64 = LOWER.iter().chain(&UNSENT).map(|n| self.get(n)).sum();
        named + self.by_reason().iter().map(|(_, n)| n).sum::<u64>()
    }

    /// Frames the chip took out of its FIFO: handed to the stack or discarded.
    fn chip_frames(&self) -> u64 {
        ["rx_frames", "rx_errors", "runts", "oversize"]
            .iter()
            .map(|n| self.get(n))
            .sum()
    }

    /// The non-zero counts, `name=count` each, for messages.
    fn nonzero(&self) -> String {
        let all: Vec<String> = self
            .0
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(name, n)| format!("{name}={n}"))
            .collect();
        all.join(" ")
    }
}

/// Reads the log until no `drops:` line has come for [`SETTLED`] (at most `deadline`),
/// and returns the last `drops:` line read (`None`: none came).
fn settled_drops(log: &mut Lines, deadline: Duration) -> Option<(Drops, String)> {
    let until = Instant::now() + deadline;
    let mut last = None;
    while let Some(line) = log.wait_for(
        "drops: ",
        SETTLED.min(until.saturating_duration_since(Instant::now())),
    ) {
        last = Drops::parse(&line).map(|d| (d, line));
    }
    last
}

// ---------------------------------------------------------------------------------------
// The kernel's counters in the namespace

/// `tap0`'s statistics and the UDP errors of the namespace's Linux.
#[derive(Debug, Clone, Copy, Default)]
struct Kernel {
    /// Frames Linux handed to QEMU on `tap0` (read by QEMU from the TAP device).
    tap_tx: u64,
    /// Frames Linux dropped on the way to QEMU (the TAP queue full).
    tap_tx_dropped: u64,
    /// Frames QEMU wrote to `tap0`.
    tap_rx: u64,
    tap_rx_dropped: u64,
    /// UDP datagrams Linux dropped: bad checksum and the like, a full receive buffer.
    udp_in_errors: u64,
    udp_rcvbuf_errors: u64,
}

impl Kernel {
    fn read(ns: &Netns) -> Kernel {
        let script = "cd /sys/class/net/tap0/statistics && \
                      cat tx_packets tx_dropped rx_packets rx_dropped && \
                      grep '^Udp:' /proc/net/snmp";
        let out = run_bounded(ns.command("sh", &["-c", script]), Duration::from_secs(10));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "reading the kernel's counters: {out:?}"
        );
        let mut lines = text.lines();
        let mut next = || -> u64 { lines.next().and_then(|l| l.trim().parse().ok()).unwrap() };
        let (tap_tx, tap_tx_dropped, tap_rx, tap_rx_dropped) = (next(), next(), next(), next());
        // "Udp: InDatagrams NoPorts InErrors …" then the values in the same order.
        let udp: Vec<&str> = text.lines().filter(|l| l.starts_with("Udp:")).collect();
        let column = |name: &str| -> u64 {
            let names: Vec<&str> = udp[0].split_whitespace().collect();
            let values: Vec<&str> = udp[1].split_whitespace().collect();
            let at = names.iter().position(|n| *n == name).unwrap();
            values[at].parse().unwrap()
        };
        Kernel {
            tap_tx,
            tap_tx_dropped,
            tap_rx,
            tap_rx_dropped,
            udp_in_errors: column("InErrors"),
            udp_rcvbuf_errors: column("RcvbufErrors"),
        }
    }

    fn since(self, before: Kernel) -> Kernel {
        Kernel {
            tap_tx: self.tap_tx - before.tap_tx,
            tap_tx_dropped: self.tap_tx_dropped - before.tap_tx_dropped,
            tap_rx: self.tap_rx - before.tap_rx,
            tap_rx_dropped: self.tap_rx_dropped - before.tap_rx_dropped,
            udp_in_errors: self.udp_in_errors - before.udp_in_errors,
            udp_rcvbuf_errors: self.udp_rcvbuf_errors - before.udp_rcvbuf_errors,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The burst

/// Sockets of the burst, each its own source port.
const SOCKETS: usize = 50;
/// Requests per socket.
const PER_SOCKET: usize = 10;
const REQUEST: &[u8] = b"hello world!";
/// After the last reply, how long to wait for another.
const REPLY_QUIET: Duration = Duration::from_secs(2);
/// The most the replies may take in all.
const REPLY_DEADLINE: Duration = Duration::from_secs(15);

/// What the namespace's side of the burst saw.
#[derive(Debug, Default)]
struct Burst {
    sent: u64,
    /// Sends that failed (the error of the first).
    unsent: Vec<String>,
    /// Replies with the right count.
    replies: u64,
    /// Anything else that came back.
    wrong: Vec<String>,
}

/// Sends `SOCKETS` × `PER_SOCKET` requests as fast as the sockets take them, then collects
/// the replies until none has come for [`REPLY_QUIET`].
fn burst() -> Burst {
    let sockets: Vec<UdpSocket> = (0..SOCKETS)
        .map(|_| {
            let socket = UdpSocket::bind((LINUX_IP, 0)).expect("bind 10.0.2.2:0");
            socket.set_nonblocking(true).expect("non-blocking");
            socket
        })
        .collect();
    let to = SocketAddr::from((FIRMWARE_IP, ECHO_PORT));
    let mut seen = Burst::default();
    for _ in 0..PER_SOCKET {
        for socket in &sockets {
            match socket.send_to(REQUEST, to) {
                Ok(_) => seen.sent += 1,
                Err(e) => seen.unsent.push(e.to_string()),
            }
        }
    }
    let expected = format!("Your data was {} bytes", REQUEST.len());
    let started = Instant::now();
    let mut last = Instant::now();
    let mut buf = [0u8; 64];
    while last.elapsed() < REPLY_QUIET && started.elapsed() < REPLY_DEADLINE {
        let mut got = false;
        for socket in &sockets {
            loop {
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) if from == to && buf[..n] == *expected.as_bytes() => {
                        seen.replies += 1;
                    }
                    Ok((n, from)) => seen
                        .wrong
                        .push(format!("{from}: {:?}", String::from_utf8_lossy(&buf[..n]))),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // ICMP errors and the like: not a reply.
                    Err(e) => seen.wrong.push(e.to_string()),
                }
                got = true;
            }
        }
        if got {
            last = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    seen
}

#[test]
fn a_burst_of_500_requests_is_answered_or_counted_to_the_last() {
    let Some(mut rig) = rig("burst") else {
        return;
    };
    let started = Instant::now();
    // The firmware learns Linux's MAC (it ARPs for 10.0.2.2 to answer): after this, every
    // frame on the link is the burst's or a reply.
    let warm = in_namespace(&rig.ns, || request(4));
    assert!(matches!(warm, Ok((4, _))), "the warm-up request: {warm:?}");
    let (before, _) = settled_drops(&mut rig.firmware.log, Duration::from_secs(10))
        .expect("a drops line after the warm-up");
    let kernel_before = Kernel::read(&rig.ns);

    let seen = in_namespace(&rig.ns, burst);
    let (after, line) = settled_drops(&mut rig.firmware.log, Duration::from_secs(15))
        .expect("a drops line after the burst");
    let kernel = Kernel::read(&rig.ns).since(kernel_before);
    let fw = after.since(&before);
    eprintln!("burst: {line}");

    let requests = (SOCKETS * PER_SOCKET) as u64;
    // QEMU 7.2's LAN9118 has no RX_DROP: a frame that finds the RX FIFO full (176 frames,
    // or 10,560 bytes) is discarded without a trace, where the chip would count it in
    // RX_DROP (`chip_rx_dropped`). Stand in for that register: the frames QEMU read from
    // tap0 less those the chip took out of its FIFO. (Nothing else is on the link: no
    // IPv6, no ARP.)
    let qemu_fifo_full = kernel.tap_tx.saturating_sub(fw.chip_frames());
    // Socket queues the firmware emptied after 100 ms standing still (none expected: Linux
    // answers ARP at once): the requests lost with them, and the replies they held, all of
    // one length (the line counts their bytes).
    let reply_len = format!("Your data was {} bytes", REQUEST.len()).len() as u64;
    let stuck = fw.get("stuck_rx_lost") + fw.get("stuck_bytes") / reply_len;
    let counted = fw.counted() + qemu_fifo_full + stuck;
    let reasons: Vec<String> = fw
        .by_reason()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    eprintln!(
        "burst: {requests} requests from {SOCKETS} ports ({} sent): {} replies; counted {counted}: \
         by the server's guards [{}], below it [{}], unsent replies [{}], \
         RX FIFO full in QEMU's model {qemu_fifo_full} (tap0 handed QEMU {}, the chip took {}), \
         in {} stuck queues emptied {stuck}; kernel: tap0 tx dropped {}, rx {} dropped {}, UDP InErrors {} RcvbufErrors {}; {:.1} s",
        seen.sent,
        seen.replies,
        reasons.join(", "),
        LOWER
            .iter()
            .map(|n| format!("{n} {}", fw.get(n)))
            .collect::<Vec<_>>()
            .join(", "),
        UNSENT
            .iter()
            .map(|n| format!("{n} {}", fw.get(n)))
            .collect::<Vec<_>>()
            .join(", "),
        kernel.tap_tx,
        fw.chip_frames(),
        fw.get("stuck_purges"),
        kernel.tap_tx_dropped,
        kernel.tap_rx,
        kernel.tap_rx_dropped,
        kernel.udp_in_errors,
        kernel.udp_rcvbuf_errors,
        started.elapsed().as_secs_f64(),
    );
    assert!(seen.unsent.is_empty(), "sends failed: {:?}", seen.unsent);
    assert!(seen.wrong.is_empty(), "not replies: {:?}", seen.wrong);
    if seen.replies + counted != requests {
        // Where the rest went: between each pair of layers, what went in and came out.
        let answered = fw.get("replied") - UNSENT.iter().map(|n| fw.get(n)).sum::<u64>();
        panic!(
            "{requests} requests: {} replies + {counted} counted drops = {}, {} unaccounted for.\n\
             - Linux → QEMU: {} sent, tap0 handed QEMU {} frames, dropped {} (TAP queue full)\n\
             - QEMU → chip: the chip took {} frames out of its FIFO ({qemu_fifo_full} lost \
               in QEMU's model)\n\
             - chip → server: {} frames handed to smoltcp, {} datagrams reached the server \
               (a difference is a drop inside smoltcp nobody counts)\n\
             - server: {} replied, {} sent on the wire\n\
             - QEMU → Linux: tap0 received {} frames, dropped {}; UDP InErrors {}, \
               RcvbufErrors {}; {} replies read\n\
             firmware counters (since the warm-up): {}",
            seen.replies,
            seen.replies + counted,
            requests.abs_diff(seen.replies + counted),
            seen.sent,
            kernel.tap_tx,
            kernel.tap_tx_dropped,
            fw.chip_frames(),
            fw.get("rx_frames"),
            fw.get("received"),
            fw.get("replied"),
            answered,
            kernel.tap_rx,
            kernel.tap_rx_dropped,
            kernel.udp_in_errors,
            kernel.udp_rcvbuf_errors,
            seen.replies,
            fw.nonzero(),
        );
    }
}

// ---------------------------------------------------------------------------------------
// The soak

/// Default length of the soak; `SOAK_SECONDS` overrides it (at least 10).
const SOAK: Duration = Duration::from_secs(60);
/// Hostile frames per second at most (drawn at random from [`HOSTILE`]).
const HOSTILE_PER_SECOND: u32 = 300;
/// Requests from [`SILENT_NEIGHBOURS`] per second, evenly spaced, on top of those.
const SILENT_PER_SECOND: u32 = 3;
/// Last octets of on-link addresses nobody owns (10.0.2.77..=10.0.2.90): Linux is
/// 10.0.2.2, the firmware 10.0.2.15, and [`Hostile::ArpJunk`] claims only .100 and up, so
/// no ARP ever tells the firmware where they are.
const SILENT_NEIGHBOURS: std::ops::RangeInclusive<u8> = 77..=90;
/// A valid request goes out this often (each waits for its reply before the next).
const REQUEST_EVERY: Duration = Duration::from_millis(100);
/// Memory is first sampled after this much of the soak (QEMU's code cache warms up),
/// then every `RSS_EVERY`.
const RSS_WARM_UP: Duration = Duration::from_secs(5);
const RSS_EVERY: Duration = Duration::from_secs(5);
/// "Flat": the last samples at most this far above the first.
const RSS_SLACK_KIB: u64 = 2 * 1024;
/// Lengths of the valid requests, in turn (all below the MTU: the wild fragments keep
/// smoltcp's one reassembly slot busy much of the time).
const LENGTHS: [usize; 7] = [0, 1, 12, 100, 512, 1000, 1472];

/// Kinds of hostile frames, sent in turn at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Hostile {
    /// Random bytes after an Ethernet header, random EtherType (IPv4 and ARP among them).
    RandomBytes,
    /// A request to 10.0.2.15:6666 with a broken IPv4 header: version, header length,
    /// total length (too long, too short), checksum.
    BadIpv4,
    /// A request with a broken UDP header: length too long or too short, bad checksum.
    BadUdp,
    /// An IPv4 fragment at a random offset, with or without more to come, random length
    /// and identification: overlaps, holes, past the reassembly buffer.
    WildFragment,
    /// ARP with random operations, hardware and protocol types, lengths and addresses,
    /// truncated or not (never claiming 10.0.2.2: that would be a poisoning, which ARP
    /// cannot refuse; nor a silent neighbour: that would answer for it).
    ArpJunk,
    /// A request from a reflection-prone port (or port 0) of 10.0.2.2.
    ReflectionPort,
    /// A byte-count reply sent to the subnet's or the limited broadcast address.
    LoopToBroadcast,
    /// A request from a random address beyond the gateway (answered through it; Linux
    /// drops the reply).
    FromAfar,
    /// A valid request from an on-link address that never answers ARP
    /// ([`SILENT_NEIGHBOURS`], in turn): the reply waits for a neighbour that never comes
    /// and holds the socket's queue until the firmware empties it (`stuck_purges`). Sent
    /// [`SILENT_PER_SECOND`], evenly spaced, not drawn from [`HOSTILE`].
    SilentNeighbour,
}

const HOSTILE: [Hostile; 8] = [
    Hostile::RandomBytes,
    Hostile::BadIpv4,
    Hostile::BadUdp,
    Hostile::WildFragment,
    Hostile::ArpJunk,
    Hostile::ReflectionPort,
    Hostile::LoopToBroadcast,
    Hostile::FromAfar,
];

/// xorshift64*: seeded, so a run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Linux's MAC on tap0 (the frames the test injects come from it, as Linux's would).
fn tap_mac(ns: &Netns) -> [u8; 6] {
    let out = run_bounded(
        ns.command("cat", &["/sys/class/net/tap0/address"]),
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut mac = [0u8; 6];
    for (byte, hex) in mac.iter_mut().zip(text.trim().split(':')) {
        *byte = u8::from_str_radix(hex, 16).expect("a MAC address");
    }
    mac
}

/// The Internet checksum of `data` (with `sum` carried in).
fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for pair in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header (20 bytes, checksum filled in) for `payload_len` bytes of `protocol`.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload_len: usize, ident: u16) -> Vec<u8> {
    ipv4_fragment(src, dst, protocol, payload_len, ident, 0, false)
}

/// An IPv4 header for a fragment at `offset` (a multiple of 8) with `more` to come.
fn ipv4_fragment(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    payload_len: usize,
    ident: u16,
    offset: usize,
    more: bool,
) -> Vec<u8> {
    let total = (20 + payload_len) as u16;
    let flags = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
    let mut header = vec![0x45, 0];
    header.extend(total.to_be_bytes());
    header.extend(ident.to_be_bytes());
    header.extend(flags.to_be_bytes());
    header.extend([64, protocol, 0, 0]);
    header.extend(src.octets());
    header.extend(dst.octets());
    let sum = checksum(&header, 0);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
    header
}

/// A UDP header and payload, checksum filled in.
fn udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
        unreachable!("IPv4 only")
    };
    let len = (8 + payload.len()) as u16;
    let mut datagram = Vec::with_capacity(8 + payload.len());
    datagram.extend(src.port().to_be_bytes());
    datagram.extend(dst.port().to_be_bytes());
    datagram.extend(len.to_be_bytes());
    datagram.extend([0, 0]);
    datagram.extend(payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend(src.ip().octets());
    pseudo.extend(dst.ip().octets());
    pseudo.extend([0, 17]);
    pseudo.extend(len.to_be_bytes());
    let pseudo_sum: u32 = pseudo
        .chunks(2)
        .map(|p| u32::from(u16::from_be_bytes([p[0], p[1]])))
        .sum();
    let sum = match checksum(&datagram, pseudo_sum) {
        0 => 0xFFFF,
        sum => sum,
    };
    datagram[6..8].copy_from_slice(&sum.to_be_bytes());
    datagram
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.extend(dst);
    frame.extend(src);
    frame.extend(ethertype.to_be_bytes());
    frame.extend(payload);
    frame
}

/// A whole UDP datagram in IPv4 in Ethernet, from `src` to `dst`.
fn udp_frame(
    mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> Vec<u8> {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else {
        unreachable!("IPv4 only")
    };
    let datagram = udp(src, dst, payload);
    let mut packet = ipv4(*s.ip(), *d.ip(), 17, datagram.len(), 0);
    packet.extend(datagram);
    ethernet(dst_mac, mac, 0x0800, &packet)
}

/// An address of 198.51.100.0/24 (TEST-NET-2), beyond the firmware's gateway.
fn afar(rng: &mut Rng) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 1 + rng.below(254) as u8)
}

fn high_port(rng: &mut Rng) -> u16 {
    20_000 + rng.below(40_000) as u16
}

/// One hostile frame of `kind`, from Linux's MAC `mac`.
fn hostile(kind: Hostile, rng: &mut Rng, mac: [u8; 6]) -> Vec<u8> {
    let firmware = SocketAddr::from((FIRMWARE_IP, ECHO_PORT));
    let linux = |port| SocketAddr::from((LINUX_IP, port));
    match kind {
        Hostile::RandomBytes => {
            let dst = if rng.below(2) == 0 {
                FIRMWARE_MAC
            } else {
                [0xFF; 6]
            };
            let ethertype = match rng.below(4) {
                0 => 0x0800,
                1 => 0x0806,
                _ => rng.next() as u16,
            };
            let len = rng.below(1501) as usize;
            ethernet(dst, mac, ethertype, &rng.bytes(len))
        }
        Hostile::BadIpv4 => {
            let mut frame = udp_frame(
                mac,
                FIRMWARE_MAC,
                linux(high_port(rng)),
                firmware,
                b"bad ip",
            );
            let ip = 14;
            match rng.below(6) {
                0 => frame[ip] = 0x65,                      // version 6
                1 => frame[ip] = 0x40 | rng.below(5) as u8, // header under 20 bytes
                2 => frame[ip] = 0x4F,                      // header past the packet
                3 => frame[ip + 2..ip + 4].copy_from_slice(&1500u16.to_be_bytes()), // too long
                4 => frame[ip + 2..ip + 4].copy_from_slice(&10u16.to_be_bytes()), // too short
                _ => frame[ip + 10] ^= 0x5A,                // bad checksum
            }
            frame
        }
        Hostile::BadUdp => {
            let mut frame = udp_frame(
                mac,
                FIRMWARE_MAC,
                linux(high_port(rng)),
                firmware,
                b"bad udp",
            );
            let udp = 14 + 20;
            match rng.below(3) {
                0 => frame[udp + 4..udp + 6].copy_from_slice(&900u16.to_be_bytes()),
                1 => frame[udp + 4..udp + 6].copy_from_slice(&(rng.below(8) as u16).to_be_bytes()),
                _ => frame[udp + 6] ^= 0xA5,
            }
            frame
        }
        Hostile::WildFragment => {
            let src = if rng.below(2) == 0 {
                LINUX_IP
            } else {
                afar(rng)
            };
            // Mostly within the 4 KB reassembly buffer (holes, overlaps, timeouts), now and
            // then anywhere up to 64 KB (too large).
            let offset = if rng.below(4) == 0 {
                rng.below(8192) as usize * 8
            } else {
                rng.below(512) as usize * 8
            };
            let len = rng.below(1481) as usize;
            let more = rng.below(3) != 0;
            let ident = rng.below(64) as u16;
            let mut packet = ipv4_fragment(src, FIRMWARE_IP, 17, len, ident, offset, more);
            packet.extend(rng.bytes(len));
            ethernet(FIRMWARE_MAC, mac, 0x0800, &packet)
        }
        Hostile::ArpJunk => {
            let sender = if rng.below(2) == 0 {
                Ipv4Addr::new(10, 0, 2, 100 + rng.below(150) as u8)
            } else {
                afar(rng)
            };
            let target = if rng.below(2) == 0 {
                FIRMWARE_IP
            } else {
                Ipv4Addr::new(10, 0, 2, rng.below(256) as u8)
            };
            let mut arp = Vec::with_capacity(28);
            let hardware = if rng.below(2) == 0 {
                1
            } else {
                rng.next() as u16
            };
            let protocol = if rng.below(2) == 0 {
                0x0800
            } else {
                rng.next() as u16
            };
            arp.extend(hardware.to_be_bytes());
            arp.extend(protocol.to_be_bytes());
            arp.push(if rng.below(2) == 0 {
                6
            } else {
                rng.next() as u8
            });
            arp.push(if rng.below(2) == 0 {
                4
            } else {
                rng.next() as u8
            });
            arp.extend((rng.below(5) as u16).to_be_bytes());
            arp.extend(rng.bytes(6));
            arp.extend(sender.octets());
            arp.extend([0; 6]);
            arp.extend(target.octets());
            arp.truncate(8 + rng.below(21) as usize);
            let dst = if rng.below(2) == 0 {
                [0xFF; 6]
            } else {
                FIRMWARE_MAC
            };
            ethernet(dst, mac, 0x0806, &arp)
        }
        Hostile::ReflectionPort => {
            let ports: Vec<u16> = REFLECTION_PORTS.iter().copied().chain([0]).collect();
            let port = ports[rng.below(ports.len() as u64) as usize];
            udp_frame(mac, FIRMWARE_MAC, linux(port), firmware, b"reflect me")
        }
        Hostile::LoopToBroadcast => {
            let to = if rng.below(2) == 0 {
                Ipv4Addr::new(10, 0, 2, 255)
            } else {
                Ipv4Addr::BROADCAST
            };
            let from = if rng.below(2) == 0 {
                linux(high_port(rng))
            } else {
                SocketAddr::from((afar(rng), high_port(rng)))
            };
            let reply = format!("Your data was {} bytes", rng.below(1473));
            udp_frame(
                mac,
                [0xFF; 6],
                from,
                SocketAddr::from((to, ECHO_PORT)),
                reply.as_bytes(),
            )
        }
        Hostile::FromAfar => {
            let from = SocketAddr::from((afar(rng), high_port(rng)));
            let len = rng.below(64) as usize;
            udp_frame(mac, FIRMWARE_MAC, from, firmware, &rng.bytes(len))
        }
        Hostile::SilentNeighbour => silent_neighbour(rng.next() as u32, rng, mac),
    }
}

/// The `n`th request from a silent neighbour: from the `n`th of [`SILENT_NEIGHBOURS`] in
/// turn, a high port, and a payload the server answers (never a byte-count reply).
fn silent_neighbour(n: u32, rng: &mut Rng, mac: [u8; 6]) -> Vec<u8> {
    let (first, last) = (*SILENT_NEIGHBOURS.start(), *SILENT_NEIGHBOURS.end());
    let octet = first + (n % u32::from(last - first + 1)) as u8;
    let from = SocketAddr::from((Ipv4Addr::new(10, 0, 2, octet), high_port(rng)));
    let request = vec![b's'; rng.below(101) as usize];
    udp_frame(
        mac,
        FIRMWARE_MAC,
        from,
        SocketAddr::from((FIRMWARE_IP, ECHO_PORT)),
        &request,
    )
}

/// What the valid requests saw.
#[derive(Debug, Default)]
struct Requests {
    answered: u64,
    /// Answered on a later send than the first.
    retried: u64,
    /// Each request that got no reply or a wrong count, with why.
    failed: Vec<String>,
}

/// Valid requests from the namespace, one every [`REQUEST_EVERY`], each on the core's
/// retry schedule, until `stop`.
fn valid_requests(stop: &AtomicBool) -> Requests {
    let mut seen = Requests::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let began = Instant::now();
        let len = LENGTHS[n % LENGTHS.len()];
        n += 1;
        match request(len) {
            Ok((count, attempts)) if usize::from(count) == len => {
                seen.answered += 1;
                seen.retried += u64::from(attempts > 1);
            }
            Ok((count, _)) => seen.failed.push(format!("{len} B: answered {count}")),
            Err(why) => seen.failed.push(why),
        }
        std::thread::sleep(REQUEST_EVERY.saturating_sub(began.elapsed()));
    }
    seen
}

/// Hostile frames on `tap0` at [`HOSTILE_PER_SECOND`], with requests from silent
/// neighbours among them at [`SILENT_PER_SECOND`], until `stop`; frames sent by kind, and
/// send errors.
fn inject(stop: &AtomicBool, mac: [u8; 6], seed: u64) -> (BTreeMap<Hostile, u64>, Vec<String>) {
    let socket = PacketSocket::bind("tap0").expect("an AF_PACKET socket on tap0");
    let mut rng = Rng(seed);
    let mut sent = BTreeMap::new();
    let mut errors = Vec::new();
    let every = Duration::from_secs(1) / HOSTILE_PER_SECOND;
    let silent_every = Duration::from_secs(1) / SILENT_PER_SECOND;
    let start = Instant::now();
    let mut n: u32 = 0;
    let mut silent: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut frames = Vec::with_capacity(2);
        if Instant::now() >= start + silent_every * (silent + 1) {
            frames.push((
                Hostile::SilentNeighbour,
                silent_neighbour(silent, &mut rng, mac),
            ));
            silent += 1;
        }
        let kind = HOSTILE[rng.below(HOSTILE.len() as u64) as usize];
        frames.push((kind, hostile(kind, &mut rng, mac)));
        for (kind, frame) in frames {
            match socket.send(&frame) {
                Ok(()) => *sent.entry(kind).or_insert(0) += 1,
                Err(e) if errors.len() < 10 => {
                    errors.push(format!("{kind:?} ({} B): {e}", frame.len()))
                }
                Err(_) => {}
            }
        }
        // Paced against the start: the rate holds even when a sleep runs late.
        n += 1;
        std::thread::sleep((start + every * n).saturating_duration_since(Instant::now()));
    }
    (sent, errors)
}

fn soak_length() -> Duration {
    match std::env::var("SOAK_SECONDS") {
        Ok(text) => {
            let seconds: u64 = text
                .trim()
                .parse()
                .expect("SOAK_SECONDS: a number of seconds");
            Duration::from_secs(seconds.max(10))
        }
        Err(_) => SOAK,
    }
}

#[test]
fn a_soak_of_hostile_frames_leaves_every_request_answered_and_memory_flat() {
    let Some(mut rig) = rig("soak") else {
        return;
    };
    let length = soak_length();
    let mac = tap_mac(&rig.ns);
    let seed = 0x5EED_F00D_u64 ^ u64::from(std::process::id());
    let warm = in_namespace(&rig.ns, || request(4));
    assert!(matches!(warm, Ok((4, _))), "the warm-up request: {warm:?}");

    let stop = AtomicBool::new(false);
    let mut rss = Vec::new();
    let (requests, (sent, send_errors)) = std::thread::scope(|s| {
        let (ns, stop) = (&rig.ns, &stop);
        let valid = s.spawn(move || {
            ns.enter().expect("setns");
            valid_requests(stop)
        });
        let hostile = s.spawn(move || {
            ns.enter().expect("setns");
            inject(stop, mac, seed)
        });
        // Memory: after the warm-up, then every RSS_EVERY.
        let started = Instant::now();
        let mut next = started + RSS_WARM_UP;
        while started.elapsed() < length && !valid.is_finished() && !hostile.is_finished() {
            if Instant::now() >= next {
                rss.push((started.elapsed(), rig.firmware.rss_kib()));
                next += RSS_EVERY;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        rss.push((started.elapsed(), rig.firmware.rss_kib()));
        stop.store(true, Ordering::Relaxed);
        (
            valid.join().expect("the requests' thread"),
            hostile.join().expect("the injector's thread"),
        )
    });
    let last = settled_drops(&mut rig.firmware.log, Duration::from_secs(15));
    let alive = rig.firmware.qemu.try_wait().expect("try_wait").is_none();

    let total: u64 = sent.values().sum();
    let silent = sent.get(&Hostile::SilentNeighbour).copied().unwrap_or(0);
    let kinds: Vec<String> = sent.iter().map(|(k, n)| format!("{k:?} {n}")).collect();
    let samples: Vec<String> = rss
        .iter()
        .map(|(at, kib)| format!("{:.0}s {:.1}", at.as_secs_f64(), *kib as f64 / 1024.0))
        .collect();
    eprintln!(
        "soak: {:.0} s (seed {seed:#x}); {} requests answered with their count ({} after a retry), {} failed; \
         {total} hostile frames ({:.0}/s): {}; QEMU VmRSS MiB: {}",
        length.as_secs_f64(),
        requests.answered,
        requests.retried,
        requests.failed.len(),
        total as f64 / length.as_secs_f64(),
        kinds.join(", "),
        samples.join(", "),
    );
    match &last {
        Some((drops, line)) => {
            eprintln!("soak: {line}");
            eprintln!(
                "soak: {silent} requests from silent neighbours: {} stuck queues emptied \
                 ({} bytes, {} received datagrams lost with them)",
                drops.get("stuck_purges"),
                drops.get("stuck_bytes"),
                drops.get("stuck_rx_lost"),
            );
        }
        None => eprintln!("soak: no drops line"),
    }

    let log = rig.firmware.log.drain(Duration::ZERO);
    let trouble: Vec<&str> = log
        .lines()
        .filter(|l| {
            ["panic", "hard fault", "failed:"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    assert!(
        alive && trouble.is_empty(),
        "the firmware stopped: {trouble:?}"
    );
    assert!(send_errors.is_empty(), "injecting failed: {send_errors:?}");
    assert!(requests.answered > 0, "no request was answered");
    assert!(
        requests.failed.is_empty(),
        "{} of {} requests failed: {:?}",
        requests.failed.len(),
        requests.answered + requests.failed.len() as u64,
        requests.failed
    );
    assert!(rss.len() >= 2, "too short to sample memory: {samples:?}");
    let first = rss[0].1;
    let tail = &rss[rss.len().saturating_sub(3)..];
    let highest = tail.iter().map(|(_, kib)| *kib).max().unwrap_or(first);
    assert!(
        highest <= first + RSS_SLACK_KIB,
        "QEMU's memory grew {} KiB (more than {RSS_SLACK_KIB}): {samples:?}",
        highest - first
    );
    // Every hostile kind went out, and the silent neighbours' replies were emptied out of
    // the queue (else the path that keeps the rest answered was never taken).
    assert_eq!(sent.len(), HOSTILE.len() + 1, "kinds sent: {kinds:?}");
    let (drops, _) = last.expect("a drops line after the soak");
    assert!(
        drops.get("stuck_purges") > 0,
        "{silent} requests from silent neighbours, and no queue emptied: {}",
        drops.nonzero()
    );
}
