//! The host's `udp-echo` ↔ smoltcp's `firmware-example` over a real TAP device, inside a
//! network namespace each test creates and always deletes (root only: otherwise each test
//! prints `skipped: …` and passes).
//!
//! Layout inside namespace `udpecho-tap-<pid>-<test>`: Linux owns `tap0` with
//! 192.168.69.100/24; `firmware-example` attaches to `tap0` as 192.168.69.1/24 with its
//! own smoltcp stack. 192.168.69.0/24 exists only in that namespace, so no packet leaves it.
//!
//! The binaries are built by a nested `cargo build` (same profile and target directory as
//! this test), each only when a test needs it, and found next to this test's `deps/`
//! directory. Every wait has a deadline; children are killed and reaped, and the namespace
//! deleted, by drop guards.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use udp_echo_tests::netns::{self, Netns, ip};
use udp_echo_tests::process::{BuildDirs, Lines, Reaped, run_bounded, run_measured};

const LINUX_IP: &str = "192.168.69.100";
const FIRMWARE_CIDR: &str = "192.168.69.1/24";
const FIRMWARE_IP: &str = "192.168.69.1";
/// On the link, but nobody's: ARP for it is never answered.
const ABSENT_IP: &str = "192.168.69.50";
const PORT: u16 = 6666;
/// The package of the host's `udp-echo` binary.
const HOST_PACKAGE: &str = "udp-echo";
/// The package of the TAP binary `firmware-example`.
const FIRMWARE_PACKAGE: &str = "udp-echo-tap";
/// Generous bound for one exchange (the client's own schedule ends at 3.1 s).
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(10);
/// Bound for a server to say `listening on`.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);
/// Bound for the nested `cargo build` (the binaries are usually up to date).
const BUILD_DEADLINE: Duration = Duration::from_secs(900);
/// CPU a client may use while it waits out its 3.1 s schedule: a generous bound that a
/// client waking every millisecond (≈ 3,000 wake-ups) would not meet on these machines.
const IDLE_CPU_LIMIT: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------
// Preconditions and binaries

/// Returns early from the test with `skipped: …` when the machine cannot run it.
macro_rules! require_root_and_tap {
    () => {
        if let Some(why) = netns::skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// The host's `udp-echo`, built once.
fn host_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build(HOST_PACKAGE, "udp-echo"))
}

/// The TAP binary `firmware-example`, built once.
fn firmware_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build(FIRMWARE_PACKAGE, "firmware-example"))
}

/// Builds binary `bin` of `package` with this test's profile, target directory and target
/// triple, and returns its path.
fn build(package: &str, bin: &str) -> PathBuf {
    BuildDirs::of_this_test().build_bin(package, bin, BUILD_DEADLINE)
}

/// A namespace `udpecho-tap-<pid>-<test>` where Linux owns `tap0` at 192.168.69.100/24.
fn namespace(test: &str) -> Netns {
    Netns::create("udpecho-tap", test, &format!("{LINUX_IP}/24"))
}

/// The firmware's options before its subcommand.
fn firmware_args<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--tap", "tap0", "--ip", FIRMWARE_CIDR];
    args.extend_from_slice(rest);
    args
}

/// `rtt X ms` from the firmware client's summary line.
fn reported_rtt_ms(stderr: &str) -> Option<f64> {
    let rest = &stderr[stderr.find("rtt ")? + 4..];
    rest.split_whitespace().next()?.parse().ok()
}

// ---------------------------------------------------------------------------------------
// The checks

/// Asserts that a client run succeeded with exactly `Your data was N bytes` on stdout, N
/// being `message`'s length; returns its stderr.
fn assert_byte_count(who: &str, out: &Output, message: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{who}: {:?}: {stderr}", out.status);
    assert_eq!(stdout, format!("Your data was {} bytes\n", message.len()));
    stderr
}

/// Starts a server in `ns` and waits for its `listening on` line; returns it with its
/// stdout and stderr lines.
fn spawn_listening(
    ns: &Netns,
    bin: &std::path::Path,
    args: &[&str],
    name: &'static str,
) -> (Reaped, Lines, Lines) {
    let mut server = Reaped::spawn(ns.command(bin, args), name);
    let server_out = Lines::new(server.child.stdout.take().unwrap());
    let mut server_err = Lines::new(server.child.stderr.take().unwrap());
    assert!(
        server_err
            .wait_for("listening on", STARTUP_DEADLINE)
            .is_some(),
        "{name} did not start: {}",
        server_err.drain(Duration::ZERO)
    );
    (server, server_out, server_err)
}

#[test]
fn firmware_client_gets_its_byte_count_from_the_host_server() {
    require_root_and_tap!();
    let started = Instant::now();
    let ns = namespace("c");

    let bind = format!("{LINUX_IP}:{PORT}");
    let (mut server, mut server_out, _) = spawn_listening(
        &ns,
        host_bin(),
        &["serve", "--bind", &bind],
        "udp-echo serve",
    );

    let message = "hello over tap";
    let exchange_started = Instant::now();
    let out = run_bounded(
        ns.command(firmware_bin(), &firmware_args(&["client", &bind, message])),
        EXCHANGE_DEADLINE,
    );
    let wall = exchange_started.elapsed();
    let stderr = assert_byte_count("firmware client", &out, message);
    let rtt = reported_rtt_ms(&stderr);
    assert!(rtt.is_some(), "no rtt in: {stderr}");
    assert!(
        stderr.contains("1 attempt,"),
        "a resend was needed: {stderr}"
    );

    // The server saw the firmware's datagram (source 192.168.69.1:<ephemeral>).
    let line = server_out.wait_for(&format!("{FIRMWARE_IP}:"), STARTUP_DEADLINE);
    server.terminate();
    let status = server.wait(Duration::from_secs(5));
    let line = line.unwrap_or_else(|| {
        panic!(
            "udp-echo serve printed no line for {FIRMWARE_IP}: {}",
            server_out.drain(Duration::from_millis(200))
        )
    });
    assert!(line.contains(&message.len().to_string()), "{line}");
    assert!(status.success(), "udp-echo serve on SIGTERM: {status:?}");

    eprintln!(
        "firmware client -> host server over TAP: {stderr_line}; process wall time {:.1} ms; \
         test {:.2} s",
        wall.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64(),
        stderr_line = stderr.trim(),
    );
}

#[test]
fn host_client_gets_its_byte_count_from_the_firmware_server() {
    require_root_and_tap!();
    let started = Instant::now();
    let ns = namespace("s");

    let port = PORT.to_string();
    let (mut server, mut server_out, mut server_err) = spawn_listening(
        &ns,
        firmware_bin(),
        &firmware_args(&["server", "--port", &port, "--count", "1"]),
        "firmware-example server",
    );

    let message = "hello from linux";
    let to = format!("{FIRMWARE_IP}:{PORT}");
    let exchange_started = Instant::now();
    let out = run_bounded(
        ns.command(host_bin(), &["send", message, "--server", &to]),
        EXCHANGE_DEADLINE,
    );
    let wall = exchange_started.elapsed();
    let stderr = assert_byte_count("udp-echo send", &out, message);

    // --count 1: the firmware server stops by itself after its reply.
    let status = server.wait(Duration::from_secs(5));
    let lines = server_out.drain(Duration::from_millis(500));
    assert!(
        status.success(),
        "firmware server: {status:?}: {}",
        server_err.drain(Duration::from_millis(200))
    );
    let expected = format!("sent {} bytes", message.len());
    assert!(
        lines
            .lines()
            .any(|l| l.starts_with(&format!("{LINUX_IP}:")) && l.ends_with(&expected)),
        "firmware server output: {lines}"
    );

    eprintln!(
        "host client -> firmware server over TAP: udp-echo send said {:?}; process wall time \
         {:.1} ms; test {:.2} s",
        stderr.trim(),
        wall.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64(),
    );
}

/// The give-up line says 3100 ms, give or take a late wake-up: the instant is exact on
/// virtual time (the core's timeline tests); here a real clock reports it, and a loaded
/// machine may wake the process a few milliseconds late.
fn assert_gave_up_at_3100_ms(text: &str) {
    let took_ms: u64 = text
        .split(" in ")
        .last()
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no give-up time in {text}"));
    assert!((3100..3200).contains(&took_ms), "{text}");
}

#[test]
fn firmware_client_gives_up_on_the_default_schedule() {
    require_root_and_tap!();
    let ns = namespace("g");

    // Nobody listens on this port: Linux answers ICMP port unreachable, which smoltcp
    // does not pass to UDP sockets, so the client must run its whole schedule.
    let to = format!("{LINUX_IP}:{}", PORT + 1);
    let firmware = firmware_bin(); // built (if need be) before the clock starts
    let started = Instant::now();
    let out = run_bounded(
        ns.command(firmware, &firmware_args(&["client", &to, "anyone?"])),
        EXCHANGE_DEADLINE,
    );
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("after 5 attempts"), "{stderr}");
    assert_gave_up_at_3100_ms(&stderr);
    assert!(
        (Duration::from_millis(3100)..Duration::from_secs(10)).contains(&wall),
        "gave up after {wall:?}"
    );
    eprintln!("firmware client gave up: {}; wall {wall:?}", stderr.trim());
}

#[test]
fn firmware_client_gives_up_on_time_at_an_address_nobody_answers() {
    require_root_and_tap!();
    let firmware = firmware_bin();
    let ns = namespace("a");

    // Nobody answers ARP for this address, so smoltcp never sends to it: the socket's
    // queue fills and every later send says WouldBlock. The schedule must still end at
    // 3.1 s, with the client asleep meanwhile.
    let to = format!("{ABSENT_IP}:{PORT}");
    let started = Instant::now();
    let (out, cpu) = run_measured(
        ns.command(firmware, &firmware_args(&["client", &to, "hi"])),
        EXCHANGE_DEADLINE,
    );
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    let gave_up = stderr
        .lines()
        .find(|l| l.contains(&format!("no reply from {to} after")))
        .unwrap_or_else(|| panic!("no give-up line in: {stderr}"));
    assert_gave_up_at_3100_ms(gave_up);
    assert!(
        (Duration::from_millis(3100)..Duration::from_secs(10)).contains(&wall),
        "gave up after {wall:?}"
    );
    assert!(
        cpu < IDLE_CPU_LIMIT,
        "the client used {cpu:?} of CPU in {wall:?}: {stderr}"
    );
    eprintln!(
        "firmware client to an absent peer: {}; wall {:.3} s, CPU {} ms\n{stderr}",
        gave_up.trim(),
        wall.as_secs_f64(),
        cpu.as_millis()
    );
}

#[test]
fn firmware_reports_a_tap_that_is_down_on_the_host_side() {
    require_root_and_tap!();
    let ns = namespace("d");
    ip(&["-n", &ns.name, "link", "set", "tap0", "down"]);

    // smoltcp's TunTapInterface would panic on the first write (EIO): the binary must
    // refuse to start instead, with the fix in the message.
    let to = format!("{LINUX_IP}:{PORT}");
    let out = run_bounded(
        ns.command(firmware_bin(), &firmware_args(&["client", &to, "hello"])),
        EXCHANGE_DEADLINE,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tap0 is down on the host side: run `ip link set tap0 up`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
