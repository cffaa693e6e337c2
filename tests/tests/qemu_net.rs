//! The network firmware images under QEMU `mps2-an386`, against the host's `udp-echo`,
//! through QEMU user networking: no root needed. Two images, one set of helpers
//! ([`Image`]): the polled network firmware (package `udp-echo-net-firmware`: the core on
//! smoltcp 0.14 on our polled LAN9118 driver) and the async one (`udp-echo-async-firmware`:
//! the core's async drivers on embassy-net, the interrupt-driven LAN9118 driver, a
//! tick-less timer; its tests are named `async_…`). Each test boots its own QEMU; traffic
//! goes to 127.0.0.1 only (QEMU forwards a free 127.0.0.1 port to the guest's 6666, and the
//! guest reaches the host's 127.0.0.1 as 10.0.2.2). Skipped, with `skipped: …`, only where
//! qemu-system-arm is missing.
//!
//! The images, `udp-echo` and the decoder come from `udp_echo_tests::qemu` (built once;
//! without `defmt-print`, checks on log lines are left out and say so). Every wait has a
//! deadline; QEMU and the decoder are killed by PID when a test ends.
//!
//! The TAP variants (`--tap`, no slirp) run as root only, inside a throwaway namespace.

use std::net::UdpSocket;
use std::process::{Command, Output};
use std::time::Duration;

use udp_echo_tests::netns::{self, Netns};
use udp_echo_tests::process::{Lines, Reaped, run_bounded};
use udp_echo_tests::qemu::{BOOT_DEADLINE, BUILD_DEADLINE, Firmware, Image, host, message};
use udp_echo_tests::require_qemu;

/// Bound for one `udp-echo send` (its own schedule ends at 3.1 s).
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(10);
/// Bound for a whole client run of the firmware: boot, the 3.1 s schedule, exit.
const CLIENT_DEADLINE: Duration = Duration::from_secs(30);

/// A port of 127.0.0.1 that was free a moment ago.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `image` serving, with a free 127.0.0.1 port forwarded to its 6666 (QEMU exits if
/// another process took the port in between: then another port is tried).
fn serving_firmware(image: Image) -> (Firmware, u16) {
    for _ in 0..5 {
        let port = free_udp_port();
        let nic = format!("user,model=lan9118,hostfwd=udp:127.0.0.1:{port}-:6666");
        let mut firmware = Firmware::boot(image, &nic, None, None);
        if host().decoder {
            if firmware.logged("serving on 10.0.2.15:6666", BOOT_DEADLINE) {
                return (firmware, port);
            }
        } else if firmware.qemu.wait_at_most(Duration::from_secs(1)).is_none() {
            return (firmware, port);
        }
        let err = firmware.qemu_err.drain(Duration::from_millis(500));
        assert!(
            err.contains("Could not set up host forwarding rule"),
            "the firmware did not start serving: {err}\n{}",
            firmware.log_text()
        );
    }
    panic!("no free port could be forwarded in 5 tries");
}

/// `udp-echo send MESSAGE --server 127.0.0.1:PORT extra…`, bounded.
fn udp_echo_send(port: u16, message: &str, extra: &[&str]) -> Output {
    let mut command = Command::new(&host().udp_echo);
    command
        .args(["send", message, "--server", &format!("127.0.0.1:{port}")])
        .args(extra);
    run_bounded(command, EXCHANGE_DEADLINE)
}

/// Asserts a reply with the exact count for `n` bytes; returns `send`'s stderr.
#[track_caller]
fn assert_count(out: &Output, n: usize) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{n} bytes: {:?}: {stderr}",
        out.status
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Your data was {n} bytes\n"),
        "{n} bytes"
    );
    stderr
}

// ---------------------------------------------------------------------------------------
// Server

#[test]
fn udp_echo_send_gets_exact_counts_from_the_firmware() {
    require_qemu!();
    exact_counts(Image::Polled);
}

#[test]
fn async_udp_echo_send_gets_exact_counts_from_the_firmware() {
    require_qemu!();
    exact_counts(Image::Async);
}

/// Requests of 12 bytes to the 4,088 that reassembly allows each get their true count.
fn exact_counts(image: Image) {
    let (mut firmware, port) = serving_firmware(image);
    for n in [12, 1000, 1472, 4000, 4088] {
        let out = udp_echo_send(port, &message(n), &[]);
        let stderr = assert_count(&out, n);
        if n == 12 {
            eprintln!(
                "first answer {:.0} ms after QEMU started",
                firmware.booted.elapsed().as_secs_f64() * 1e3
            );
        }
        eprintln!("{n} bytes: {}", stderr.trim());
        assert!(
            firmware.logged(
                &format!("replied \"Your data was {n} bytes\""),
                BOOT_DEADLINE
            ),
            "{}",
            firmware.log_text()
        );
    }
}

#[test]
fn async_a_4000_byte_request_arrives_in_fragments_and_gets_its_count() {
    require_qemu!();
    let (mut firmware, port) = serving_firmware(Image::Async);
    // Three IPv4 fragments on the 1500-byte link: embassy-net's smoltcp reassembles them.
    assert_count(&udp_echo_send(port, &message(4000), &[]), 4000);
    assert!(
        firmware.logged("4000 B from 10.0.2.2:", BOOT_DEADLINE),
        "{}",
        firmware.log_text()
    );
}

#[test]
fn async_udp_echo_ping_gets_every_reply() {
    require_qemu!();
    let (_firmware, port) = serving_firmware(Image::Async);
    let mut ping = Command::new(&host().udp_echo);
    ping.args([
        "ping",
        "--server",
        &format!("127.0.0.1:{port}"),
        "--count",
        "20",
        "--interval",
        "20ms",
    ]);
    let out = run_bounded(ping, EXCHANGE_DEADLINE);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // Slirp may hold the first datagram of a flow (it resolves the guest first): the
    // first seq can be lost, never more than that one.
    let replies = stdout
        .lines()
        .filter(|l| l.contains(": Your data was 12 bytes, rtt "))
        .count();
    assert!(replies >= 19, "{replies} replies of 20:\n{stdout}");
    eprintln!("{}", stdout.lines().last().unwrap_or_default());
}

#[test]
fn async_firmware_idles_without_spending_host_cpu() {
    require_qemu!();
    // Tick-less and asleep in WFI: QEMU waits for the next frame or timer. (The polled
    // image wakes 1000 times a second; a WFE-based executor would spin a host core.)
    let (firmware, _port) = serving_firmware(Image::Async);
    let idle = Duration::from_secs(3);
    let before = firmware.cpu();
    std::thread::sleep(idle);
    let used = firmware.cpu() - before;
    eprintln!("idle for {idle:?}: QEMU used {used:?} of CPU");
    assert!(
        used <= Duration::from_millis(90),
        "an idle async firmware cost QEMU {used:?} of CPU in {idle:?}"
    );
}

#[test]
fn requests_beyond_the_reassembly_buffer_get_no_answer_and_are_counted() {
    require_qemu!();
    let (mut firmware, port) = serving_firmware(Image::Polled);
    let out = udp_echo_send(
        port,
        &message(4089),
        &["--attempts", "1", "--initial-timeout", "1s"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "4089 bytes were answered: {stderr}"
    );
    assert!(out.stdout.is_empty());
    // Counted in the drop counters' line (logged within 2 s of a change).
    assert!(
        firmware.logged("frag_oversized=1 ", BOOT_DEADLINE),
        "{}",
        firmware.log_text()
    );
    // The reassembly slot comes free again (after 500 ms): the default schedule gets there.
    assert_count(&udp_echo_send(port, &message(4000), &[]), 4000);
}

#[test]
fn qemu_net_script_serves_until_sigterm_and_leaves_no_qemu_behind() {
    require_qemu!();
    script_serves_until_sigterm(Image::Polled);
}

#[test]
fn async_qemu_net_script_serves_until_sigterm_and_leaves_no_qemu_behind() {
    require_qemu!();
    script_serves_until_sigterm(Image::Async);
}

fn script_serves_until_sigterm(image: Image) {
    image.elf(); // built before the script, so that its own build is a no-op
    for _ in 0..5 {
        let port = free_udp_port();
        let script = image.script(&["serve", &port.to_string()]);
        let mut script = Reaped::spawn(script, "qemu-net.sh serve");
        let mut log = Lines::new(script.child.stdout.take().unwrap());
        let mut err = Lines::new(script.child.stderr.take().unwrap());
        let Some(pid_line) = err.wait_for("QEMU pid", BUILD_DEADLINE) else {
            panic!("no QEMU pid from the script: {}", err.drain(Duration::ZERO));
        };
        let qemu_pid: u32 = pid_line.rsplit(' ').next().unwrap().parse().unwrap();
        if host().decoder && log.wait_for("serving on", BOOT_DEADLINE).is_none() {
            let text = err.drain(Duration::from_secs(1));
            assert!(
                text.contains("Could not set up host forwarding rule"),
                "{text}"
            );
            continue; // the port was taken meanwhile
        }
        assert_count(&udp_echo_send(port, "via the script", &[]), 14);

        script.terminate();
        let status = script.wait(Duration::from_secs(10));
        assert!(status.success(), "qemu-net.sh on SIGTERM: {status:?}");
        assert!(
            !std::path::Path::new(&format!("/proc/{qemu_pid}")).exists(),
            "QEMU (pid {qemu_pid}) outlived the script"
        );
        assert!(
            err.drain(Duration::from_millis(200))
                .contains("stopped by SIGTERM")
        );
        return;
    }
    panic!("no free port could be forwarded in 5 tries");
}

// ---------------------------------------------------------------------------------------
// Client

/// Boots `image` as a client of `server` (as the guest sees it) and waits for it.
fn run_client(image: Image, server: &str, message: &str) -> (Option<i32>, String, Duration) {
    let append = format!("client {server} {message}");
    let mut firmware = Firmware::boot(image, "user,model=lan9118", Some(&append), None);
    let status = firmware.qemu.wait(CLIENT_DEADLINE);
    let took = firmware.booted.elapsed();
    (status.code(), firmware.log_text(), took)
}

#[test]
fn firmware_client_gets_its_count_from_udp_echo_serve() {
    require_qemu!();
    client_gets_its_count(Image::Polled);
}

#[test]
fn async_firmware_client_gets_its_count_from_udp_echo_serve() {
    require_qemu!();
    client_gets_its_count(Image::Async);
}

fn client_gets_its_count(image: Image) {
    let mut serve = Command::new(&host().udp_echo);
    serve.args(["serve", "--bind", "127.0.0.1:0"]);
    let mut serve = Reaped::spawn(serve, "udp-echo serve");
    let mut served = Lines::new(serve.child.stdout.take().unwrap());
    let mut serve_err = Lines::new(serve.child.stderr.take().unwrap());
    let listening = serve_err
        .wait_for("listening on 127.0.0.1:", BOOT_DEADLINE)
        .expect("udp-echo serve did not start");
    let port = listening.rsplit(':').next().unwrap();

    // Slirp delays the first reply of a flow the guest starts by up to a second: the
    // attempt that gets it is not checked.
    let text = "hello from the firmware";
    let (status, log, took) = run_client(image, &format!("10.0.2.2:{port}"), text);
    assert_eq!(status, Some(0), "{log}");
    if host().decoder {
        assert!(
            log.contains(&format!(
                "reply from 10.0.2.2:{port}: \"Your data was {} bytes\"",
                text.len()
            )),
            "{log}"
        );
    }
    // The host saw it from 127.0.0.1 (slirp's side of the flow).
    let line = served.wait_for("127.0.0.1:", BOOT_DEADLINE);
    serve.terminate();
    serve.wait(Duration::from_secs(5));
    let line = line.expect("udp-echo serve printed no request");
    assert!(
        line.contains(&format!("sent {} bytes", text.len())),
        "{line}"
    );
    eprintln!("firmware client run: {took:?} from boot to exit");
}

#[test]
fn firmware_client_gives_up_with_exit_status_1() {
    require_qemu!();
    client_gives_up(Image::Polled);
}

#[test]
fn async_firmware_client_gives_up_with_exit_status_1() {
    require_qemu!();
    client_gives_up(Image::Async);
}

fn client_gives_up(image: Image) {
    // Nothing listens there: the host's ICMP "port unreachable" never reaches the guest's
    // UDP socket (slirp and smoltcp drop it), so the client runs its whole schedule.
    let port = free_udp_port();
    let (status, log, took) = run_client(image, &format!("10.0.2.2:{port}"), "anyone?");
    assert_eq!(status, Some(1), "{log}");
    if host().decoder {
        assert!(log.contains("after 5 attempts in 310"), "{log}");
    }
    assert!(
        took >= Duration::from_millis(3100),
        "gave up after {took:?}"
    );
}

#[test]
fn a_bad_command_line_is_refused_with_exit_status_1() {
    require_qemu!();
    bad_command_line(Image::Polled);
}

#[test]
fn async_a_bad_command_line_is_refused_with_exit_status_1() {
    require_qemu!();
    bad_command_line(Image::Async);
}

fn bad_command_line(image: Image) {
    let (status, log, _) = run_client(image, "10.0.2.2", "no port");
    assert_eq!(status, Some(1), "{log}");
    if host().decoder {
        assert!(log.contains("Cmdline(BadServer)"), "{log}");
    }
}

#[test]
fn a_message_too_long_for_the_boot_command_line_is_refused_before_booting() {
    require_qemu!();
    let run = |message: &str| {
        let mut script = Image::Polled.script(&["client", "10.0.2.2:9", message]);
        script.env("QEMU_TIMEOUT", "10");
        run_bounded(script, BUILD_DEADLINE)
    };
    let out = run(&message(3000));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the message is 3000 bytes"), "{stderr}");
    assert!(stderr.contains("carries at most"), "{stderr}");
    assert!(!stderr.contains("NoCmdline"), "{stderr}");
    // The most it says it carries does boot and go out (and, with nothing there, give up).
    let most: usize = stderr
        .split("carries at most ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the limit in the message");
    let out = run(&message(most));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "no reply expected: {stderr}");
    assert!(!stderr.contains("carries at most"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// TAP (root)

#[test]
fn over_a_tap_device_without_slirp() {
    require_qemu!();
    over_tap(Image::Polled);
}

#[test]
fn async_over_a_tap_device_without_slirp() {
    require_qemu!();
    over_tap(Image::Async);
}

fn over_tap(image: Image) {
    if let Some(why) = netns::skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let host = host();
    // The namespace's Linux plays slirp's host: 10.0.2.2/24 on tap0.
    let test = match image {
        Image::Polled => "tap",
        Image::Async => "atap",
    };
    let ns = Netns::create("udpecho-qemu", test, "10.0.2.2/24");
    let nic = "tap,model=lan9118,ifname=tap0,script=no,downscript=no";
    let mut firmware = Firmware::boot(image, nic, None, Some(&ns));
    assert!(
        firmware.logged("serving on", BOOT_DEADLINE),
        "{}",
        firmware.log_text()
    );
    for n in [12, 1472, 4000] {
        let text = message(n);
        // The first request may go while the firmware still resolves 10.0.2.2 (ARP).
        let command = ns.command(
            &host.udp_echo,
            &["send", &text, "--server", "10.0.2.15:6666"],
        );
        let out = run_bounded(command, EXCHANGE_DEADLINE);
        let stderr = assert_count(&out, n);
        eprintln!("over TAP, {n} bytes: {}", stderr.trim());
    }
    let ping = ns.command(
        &host.udp_echo,
        &[
            "ping",
            "--server",
            "10.0.2.15:6666",
            "--count",
            "20",
            "--interval",
            "50ms",
        ],
    );
    let out = run_bounded(ping, EXCHANGE_DEADLINE);
    assert!(out.status.success());
    let summary = String::from_utf8_lossy(&out.stdout);
    eprintln!("{}", summary.lines().last().unwrap_or_default());
    drop(firmware);

    // And the firmware as a client of udp-echo serve in the namespace.
    let mut serve = Reaped::spawn(
        ns.command(&host.udp_echo, &["serve", "--bind", "10.0.2.2:6666"]),
        "udp-echo serve",
    );
    let mut serve_err = Lines::new(serve.child.stderr.take().unwrap());
    assert!(serve_err.wait_for("listening on", BOOT_DEADLINE).is_some());
    let mut client = Firmware::boot(image, nic, Some("client 10.0.2.2:6666 over tap"), Some(&ns));
    let status = client.qemu.wait(CLIENT_DEADLINE);
    let log = client.log_text();
    assert_eq!(status.code(), Some(0), "{log}");
    if host.decoder {
        assert!(log.contains("\"Your data was 8 bytes\""), "{log}");
        eprintln!(
            "{}",
            log.lines()
                .find(|l| l.contains("reply from"))
                .unwrap_or_default()
        );
    }
    serve.terminate();
    serve.wait(Duration::from_secs(5));
}
