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
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use udp_echo_tests::netns::Netns;
use udp_echo_tests::process::{run_bounded, run_measured};
use udp_echo_tests::require_root_and_tap;
use udp_echo_tests::tap::{
    ABSENT_IP, EXCHANGE_DEADLINE, IDLE_CPU_LIMIT, LINUX_IP, PORT, STACK_IP, STARTUP_DEADLINE,
    assert_byte_count, assert_gave_up, assert_refuses_a_tap_that_is_down, build, host_bin,
    spawn_listening, stack_args,
};

/// How late a give-up line may say 3.1 s is, in ms (a loaded machine may wake the process
/// a few milliseconds late).
const LATE_MS: u64 = 100;

/// The TAP binary `firmware-example` (package `udp-echo-tap`), built once.
fn firmware_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build("udp-echo-tap", "firmware-example"))
}

/// A namespace `udpecho-tap-<pid>-<test>` where Linux owns `tap0` at 192.168.69.100/24.
fn namespace(test: &str) -> Netns {
    udp_echo_tests::tap::namespace("udpecho-tap", test)
}

/// `rtt X ms` from the firmware client's summary line.
fn reported_rtt_ms(stderr: &str) -> Option<f64> {
    let rest = &stderr[stderr.find("rtt ")? + 4..];
    rest.split_whitespace().next()?.parse().ok()
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
        ns.command(firmware_bin(), &stack_args(&["client", &bind, message])),
        EXCHANGE_DEADLINE,
    );
    let wall = exchange_started.elapsed();
    let stderr = assert_byte_count("firmware client", &out, message.len());
    let rtt = reported_rtt_ms(&stderr);
    assert!(rtt.is_some(), "no rtt in: {stderr}");
    assert!(
        stderr.contains("1 attempt,"),
        "a resend was needed: {stderr}"
    );

    // The server saw the firmware's datagram (source 192.168.69.1:<ephemeral>).
    let line = server_out.wait_for(&format!("{STACK_IP}:"), STARTUP_DEADLINE);
    server.terminate();
    let status = server.wait(Duration::from_secs(5));
    let line = line.unwrap_or_else(|| {
        panic!(
            "udp-echo serve printed no line for {STACK_IP}: {}",
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
        &stack_args(&["server", "--port", &port, "--count", "1"]),
        "firmware-example server",
    );

    let message = "hello from linux";
    let to = format!("{STACK_IP}:{PORT}");
    let exchange_started = Instant::now();
    let out = run_bounded(
        ns.command(host_bin(), &["send", message, "--server", &to]),
        EXCHANGE_DEADLINE,
    );
    let wall = exchange_started.elapsed();
    let stderr = assert_byte_count("udp-echo send", &out, message.len());

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
        ns.command(firmware, &stack_args(&["client", &to, "anyone?"])),
        EXCHANGE_DEADLINE,
    );
    let wall = started.elapsed();
    let gave_up = assert_gave_up(&out, "firmware-example", &to, LATE_MS);
    assert!(gave_up.contains("after 5 attempts"), "{gave_up}");
    let stderr = String::from_utf8_lossy(&out.stderr);
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
        ns.command(firmware, &stack_args(&["client", &to, "hi"])),
        EXCHANGE_DEADLINE,
    );
    let wall = started.elapsed();
    let gave_up = assert_gave_up(&out, "firmware-example", &to, LATE_MS);
    let stderr = String::from_utf8_lossy(&out.stderr);
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
    assert_refuses_a_tap_that_is_down(&namespace("d"), firmware_bin());
}
