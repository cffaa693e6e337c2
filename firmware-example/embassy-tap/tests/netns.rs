//! The host's `udp-echo` ↔ `embassy-tap` (embassy-net on embassy-executor) over a real TAP
//! device, inside a network namespace each test creates and always deletes (root only:
//! otherwise each test prints `skipped: …` and passes).
//!
//! Layout inside namespace `udpecho-etap-<pid>-<test>`: Linux owns `tap0` with
//! 192.168.69.100/24; `embassy-tap` attaches to `tap0` as 192.168.69.1/24 with its own
//! embassy-net stack. 192.168.69.0/24 exists only in that namespace, so no packet leaves
//! it. The same layout, command line and output lines as `tests/tests/tap.rs` has for the
//! smoltcp binary.
//!
//! `embassy-tap` is this package's binary (built by cargo for these tests); the host's
//! `udp-echo` is built by a nested `cargo build` (same profile and target directory), once,
//! when a test needs it. Every wait has a deadline; children are killed and reaped, and
//! the namespace deleted, by drop guards.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::{Duration, Instant};

use udp_echo_tests::netns::Netns;
use udp_echo_tests::process::{run_bounded, run_measured};
use udp_echo_tests::require_root_and_tap;
use udp_echo_tests::tap::{
    ABSENT_IP, EXCHANGE_DEADLINE, IDLE_CPU_LIMIT, LINUX_IP, PORT, STACK_IP, STARTUP_DEADLINE,
    assert_byte_count, assert_gave_up, assert_refuses_a_tap_that_is_down, host_bin,
    spawn_listening, stack_args,
};

/// How late a give-up line may say 3.1 s is, in ms.
const LATE_MS: u64 = 200;

fn embassy_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_embassy-tap"))
}

/// A namespace `udpecho-etap-<pid>-<test>` where Linux owns `tap0` at 192.168.69.100/24.
fn namespace(test: &str) -> Netns {
    udp_echo_tests::tap::namespace("udpecho-etap", test)
}

#[test]
fn embassy_client_gets_its_byte_count_from_the_host_server() {
    require_root_and_tap!();
    let host = host_bin(); // built (if need be) before the namespace exists
    let ns = namespace("c");
    let bind = format!("{LINUX_IP}:{PORT}");
    let (mut server, server_out, _err) =
        spawn_listening(&ns, host, &["serve", "--bind", &bind], "udp-echo serve");

    let message = "hello over embassy";
    let started = Instant::now();
    let out = run_bounded(
        ns.command(embassy_bin(), &stack_args(&["client", &bind, message])),
        EXCHANGE_DEADLINE,
    );
    let wall = started.elapsed();
    let stderr = assert_byte_count("embassy-tap client", &out, message.len());
    assert!(
        stderr.contains("reply from 192.168.69.100:6666: rtt "),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 attempt,"),
        "a resend was needed: {stderr}"
    );

    // The host server saw the datagram from 192.168.69.1:<ephemeral port>.
    let line = server_out.line(&format!("{STACK_IP}:"), STARTUP_DEADLINE);
    assert!(line.contains(&message.len().to_string()), "{line}");
    server.terminate();
    assert!(server.wait(Duration::from_secs(5)).success());
    eprintln!(
        "embassy client -> host server: {}; wall {wall:?}",
        stderr.trim()
    );
}

#[test]
fn host_client_gets_its_byte_count_from_the_embassy_server_even_beyond_its_buffer() {
    require_root_and_tap!();
    let host = host_bin();
    let ns = namespace("s");
    let port = PORT.to_string();
    let (mut server, server_out, server_err) = spawn_listening(
        &ns,
        embassy_bin(),
        &stack_args(&["server", "--port", &port, "--count", "2"]),
        "embassy-tap server",
    );

    // The server reads into 64 bytes: 1000 is answered only if lengths are true.
    let to = format!("{STACK_IP}:{PORT}");
    let long = "x".repeat(1000);
    for message in ["hello from linux", long.as_str()] {
        let started = Instant::now();
        let out = run_bounded(
            ns.command(host, &["send", message, "--server", &to]),
            EXCHANGE_DEADLINE,
        );
        let stderr = assert_byte_count("udp-echo send", &out, message.len());
        let expected = format!("sent {} bytes", message.len());
        let line = server_out.line(&expected, Duration::from_secs(2));
        assert!(line.starts_with(&format!("{LINUX_IP}:")), "{line}");
        eprintln!(
            "udp-echo send of {} bytes -> embassy server: {:?} in {:?}",
            message.len(),
            stderr.trim(),
            started.elapsed()
        );
    }

    // --count 2: the server stops by itself after its second reply.
    let status = server.wait(Duration::from_secs(5));
    let rest = server_err.rest(Duration::from_millis(200));
    assert!(status.success(), "embassy-tap server: {status:?}: {rest:?}");
    assert!(rest.iter().any(|l| l == "answered 2 datagrams"), "{rest:?}");
}

#[test]
fn embassy_server_stops_cleanly_on_sigterm() {
    require_root_and_tap!();
    let ns = namespace("t");
    let (mut server, _out, server_err) = spawn_listening(
        &ns,
        embassy_bin(),
        &stack_args(&["server", "--port", "6666"]),
        "embassy-tap server",
    );
    server.terminate();
    let status = server.wait(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    let rest = server_err.rest(Duration::from_millis(200));
    assert!(rest.iter().any(|l| l == "answered 0 datagrams"), "{rest:?}");
}

#[test]
fn embassy_client_gives_up_at_3100_ms_when_the_peer_is_absent() {
    require_root_and_tap!();
    let ns = namespace("a");

    // Nobody answers ARP for this address, so smoltcp never sends to it: the datagrams
    // stay queued in the socket until it is full, and later sends cannot complete. The
    // schedule must still end at 3.1 s, with the client asleep meanwhile.
    let to = format!("{ABSENT_IP}:{PORT}");
    let started = Instant::now();
    let (out, cpu) = run_measured(
        ns.command(embassy_bin(), &stack_args(&["client", &to, "hi"])),
        EXCHANGE_DEADLINE,
    );
    let wall = started.elapsed();
    let gave_up = assert_gave_up(&out, "embassy-tap", &to, LATE_MS);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        cpu < IDLE_CPU_LIMIT,
        "the client used {cpu:?} of CPU in {wall:?}: {stderr}"
    );
    eprintln!(
        "embassy client to an absent peer: {}; wall {wall:?}, CPU {cpu:?}\n{stderr}",
        gave_up.trim()
    );
}

#[test]
fn embassy_client_runs_its_whole_schedule_when_nothing_listens() {
    require_root_and_tap!();
    let ns = namespace("g");

    // Linux answers ICMP port unreachable, which smoltcp does not pass to UDP sockets.
    let to = format!("{LINUX_IP}:{}", PORT + 1);
    let out = run_bounded(
        ns.command(embassy_bin(), &stack_args(&["client", &to, "anyone?"])),
        EXCHANGE_DEADLINE,
    );
    let gave_up = assert_gave_up(&out, "embassy-tap", &to, LATE_MS);
    assert!(gave_up.contains("after 5 attempts in "), "{gave_up}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let sends: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("attempt "))
        .collect();
    assert_eq!(sends.len(), 5, "{stderr}");
}

#[test]
fn embassy_tap_refuses_a_tap_that_is_down_on_the_host_side() {
    require_root_and_tap!();
    assert_refuses_a_tap_that_is_down(&namespace("d"), embassy_bin());
}

// ---------------------------------------------------------------------------------------
// The command line (no root needed: these fail before the device is opened)

#[test]
fn bad_arguments_exit_with_status_2() {
    for args in [
        vec!["--ip", "192.168.69.1", "client", "192.168.69.100:6666", "x"],
        vec!["--ip", "224.0.0.1/24", "client", "192.168.69.100:6666", "x"],
        vec!["client", "192.168.69.100:0", "x"],
        vec!["client", "[::1]:6666", "x"],
        vec!["--tap", "much-too-long-name", "server"],
        vec!["--mac", "01:00:00:00:00:01", "server"],
        vec!["server", "--port", "0"],
    ] {
        let mut command = std::process::Command::new(embassy_bin());
        command.args(&args);
        let out = run_bounded(command, Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_shows_the_same_subcommands_as_the_smoltcp_binary() {
    let mut command = std::process::Command::new(embassy_bin());
    command.arg("--help");
    let out = run_bounded(command, Duration::from_secs(10));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in [
        "--tap",
        "--ip",
        "--gateway",
        "--mac",
        "client",
        "server",
        "Exit status",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
}
