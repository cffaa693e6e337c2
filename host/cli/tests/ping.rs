//! `udp-echo ping` over real sockets: its lines, its summary, its stops. Every wait is
//! bounded; every child process is killed and reaped by its guard (see `common`).

// Signals to child processes (rustix::process): Unix only.
#![cfg(unix)]

mod common;

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::*;

// ping, JSON

#[test]
fn ping_summary_numbers_add_up() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let addr = server.addr.to_string();
    let ran = run(
        &[
            "ping",
            "--count",
            "5",
            "--interval",
            "20ms",
            "--server",
            &addr,
        ],
        b"",
        PATIENCE,
    );
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    let out = ran.stdout();
    assert_eq!(
        out.lines().filter(|l| l.starts_with("seq=")).count(),
        5,
        "{out}"
    );
    assert!(out.contains("5 sent, 5 received, 0.0% loss"), "{out}");

    let ran = run(
        &["ping", "-c", "3", "-i", "20ms", "--server", &addr, "--json"],
        b"",
        PATIENCE,
    );
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    let events = ran.json_lines();
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    let (sent, received, lost) = (
        summary["sent"].as_u64().unwrap(),
        summary["received"].as_u64().unwrap(),
        summary["lost"].as_u64().unwrap(),
    );
    assert_eq!(sent, 3);
    assert_eq!(received + lost, sent);
    let loss = summary["loss_percent"].as_f64().unwrap();
    assert!((loss - 100.0 * lost as f64 / sent as f64).abs() < 1e-9);
    let rtt = &summary["rtt_ms"];
    let (min, avg, max) = (
        rtt["min"].as_f64().unwrap(),
        rtt["avg"].as_f64().unwrap(),
        rtt["max"].as_f64().unwrap(),
    );
    assert!(min <= avg && avg <= max, "{rtt}");
    assert_eq!(events.iter().filter(|e| e["event"] == "reply").count(), 3);
}

#[test]
fn ping_to_a_silent_socket_counts_every_exchange_as_lost() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let ran = run(
        &[
            "ping",
            "-c",
            "2",
            "-i",
            "10ms",
            "--server",
            &addr,
            "--attempts",
            "1",
            "--initial-timeout",
            "50ms",
            "--json",
        ],
        b"",
        PATIENCE,
    );
    assert_eq!(ran.code(), 1, "{}", ran.stderr);
    let summary = ran.json_lines().pop().unwrap();
    assert_eq!(summary["sent"], 2);
    assert_eq!(summary["received"], 0);
    assert_eq!(summary["loss_percent"], 100.0);
    assert!(summary["rtt_ms"].is_null());
}

#[test]
fn sigint_stops_an_endless_ping_with_its_summary() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let mut cmd = Command::new(BIN);
    cmd.args(["ping", "--count", "0", "--interval", "50ms", "--server"])
        .arg(server.addr.to_string());
    let mut ping = Proc::spawn(cmd);
    ping.stdout_line("seq=2");
    signal(ping.pid(), rustix::process::Signal::INT);
    let status = ping.wait_for(PATIENCE).expect("ping ignored SIGINT");
    assert_eq!(status.code(), Some(0));
    let rest = ping.rest_of_stdout().join("\n");
    assert!(rest.contains("udp-echo ping statistics"), "{rest}");
    assert!(rest.contains("0.0% loss"), "{rest}");
}

#[test]
fn endless_ping_ends_with_141_when_its_reader_goes_away() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let addr = server.addr.to_string();
    let (code, took) = first_line_then_close(&["ping", &addr, "-c", "0", "-i", "100ms"]);
    assert_eq!(code, Some(141), "after {took:?}");
    // Against a silent server too, in the middle of an exchange's 3.1 s schedule.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let (code, took) = first_line_then_close(&["ping", &addr, "-c", "0", "-i", "100ms"]);
    assert_eq!(code, Some(141));
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn sigint_during_ping_to_a_silent_server_counts_what_went_out() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let mut cmd = Command::new(BIN);
    cmd.args(["ping", &addr, "--json"]);
    let mut ping = Proc::spawn(cmd);
    // The first exchange sends at 0, 100 and 300 ms.
    let mut buf = [0u8; 64];
    silent.set_read_timeout(Some(PATIENCE)).unwrap();
    for _ in 0..3 {
        silent.recv(&mut buf).unwrap();
    }
    signal(ping.pid(), rustix::process::Signal::INT);
    let status = ping.wait_for(PATIENCE).expect("ping ignored SIGINT");
    assert_eq!(status.code(), Some(1));
    let summary: Value = serde_json::from_str(&ping.stdout_line("summary")).unwrap();
    assert_eq!(summary["sent"], 1, "{summary}");
    assert!(
        summary["datagrams_sent"].as_u64().unwrap() >= 3,
        "{summary}"
    );
    assert_eq!(summary["lost"], 1, "{summary}");
}

#[test]
fn ping_takes_size_quiet_deadline_wait_and_unitless_seconds() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let addr = server.addr.to_string();
    let ran = run(
        &["ping", &addr, "-c", "3", "-i", "0.02", "-s", "100", "-q"],
        b"",
        PATIENCE,
    );
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    let out = ran.stdout();
    assert!(out.contains("with 100 bytes"), "{out}");
    assert!(!out.contains("seq="), "{out}");
    assert!(out.contains("3 sent, 3 received"), "{out}");

    // -w without -c: exchanges until the deadline, exit 0 as replies came.
    let ran = run(
        &["ping", &addr, "-w", "0.5", "-i", "0.1", "--json"],
        b"",
        PATIENCE,
    );
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    let s = ran.json_lines().pop().unwrap();
    let sent = s["sent"].as_u64().unwrap();
    assert!((3..=7).contains(&sent), "{s}");
    assert!(ran.elapsed < Duration::from_secs(3), "{:?}", ran.elapsed);

    // -w cuts an exchange's retry schedule against a silent server; -W is one send each.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead = silent.local_addr().unwrap().to_string();
    let ran = run(&["ping", &dead, "-w", "1"], b"", PATIENCE);
    assert_eq!(ran.code(), 1, "{}", ran.stderr);
    assert!(
        ran.elapsed < Duration::from_millis(2500),
        "{:?}",
        ran.elapsed
    );
    let ran = run(
        &[
            "ping", &dead, "-c", "2", "-i", "10ms", "-W", "0.1", "--json",
        ],
        b"",
        PATIENCE,
    );
    assert_eq!(ran.code(), 1, "{}", ran.stderr);
    let s = ran.json_lines().pop().unwrap();
    assert_eq!(s["sent"], 2, "{s}");
    assert_eq!(s["datagrams_sent"], 2, "{s}");
    let ran = run(
        &["ping", &dead, "-W", "1", "--attempts", "3"],
        b"",
        PATIENCE,
    );
    assert_eq!(ran.code(), 2, "{}", ran.stderr);

    let help = run(&["ping", "--help"], b"", PATIENCE).stdout();
    assert!(help.contains("one exchange at a time"), "{help}");
    assert!(help.contains("-W"), "{help}");
}
