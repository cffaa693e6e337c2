//! `udp-echo send` over real sockets: exact counts, giving up, bad input, JSON. Every wait
//! is bounded; every child process is killed and reaped by its guard (see `common`).

// Signals to child processes (rustix::process): Unix only.
#![cfg(unix)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::*;

#[test]
fn a_v4_mapped_server_address_gets_its_reply() {
    if !ipv6_available() {
        println!("skipped: no IPv6 loopback");
        return;
    }
    let server = serve("127.0.0.1:0", &[]);
    let mapped = format!("[::ffff:127.0.0.1]:{}", server.addr.port());
    let ran = run(&["send", "hi", "--server", &mapped], b"", PATIENCE);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert_eq!(ran.stdout(), "Your data was 2 bytes\n");
    assert!(ran.stderr.contains("(1 attempt)"), "{}", ran.stderr);
}

#[test]
fn empty_and_largest_ipv4_requests_get_exact_counts() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let ran = send_to(server.addr, "");
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert_eq!(ran.stdout(), "Your data was 0 bytes\n");

    let big = vec![b'x'; 65507];
    let addr = server.addr.to_string();
    let ran = run(&["send", "-", "--server", &addr], &big, PATIENCE);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert_eq!(ran.stdout(), "Your data was 65507 bytes\n");
}

#[test]
fn a_message_longer_than_one_ipv4_datagram_is_bad_input() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let addr = server.addr.to_string();
    let ran = run(
        &["send", "-", "--server", &addr],
        &vec![b'x'; 65508],
        PATIENCE,
    );
    assert_eq!(ran.code(), 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("more than 65507 bytes"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("at most 65507"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("os error"), "{}", ran.stderr);
    assert!(ran.stdout.is_empty());
}

#[test]
fn send_to_a_closed_port_gives_up_on_the_default_schedule_and_says_refused() {
    let addr = closed_port("127.0.0.1");
    let ran = send_to(addr, "anyone?");
    assert_eq!(ran.code(), 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("refused"), "{}", ran.stderr);
    assert!(ran.stderr.contains("after 5 attempts"), "{}", ran.stderr);
    assert!(
        ran.elapsed >= Duration::from_millis(3100),
        "{:?}",
        ran.elapsed
    );
    assert!(ran.stdout.is_empty());
}

#[test]
fn send_to_a_silent_socket_gives_up_after_five_sends() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let ran = send_to(addr, "hello?");
    assert_eq!(ran.code(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains(&format!("no reply from {addr} after 5 attempts in 3.1")),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("refused"), "{}", ran.stderr);
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let mut arrived = 0;
    while let Ok(n) = silent.recv(&mut buf) {
        assert_eq!(&buf[..n], b"hello?");
        arrived += 1;
    }
    assert_eq!(arrived, 5);
}

#[test]
fn a_client_waiting_out_the_schedule_uses_under_50_ms_of_cpu() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ran = send_to(silent.local_addr().unwrap(), "hello?");
    assert_eq!(ran.code(), 1, "{}", ran.stderr);
    assert!(ran.elapsed >= Duration::from_millis(3100));
    let cpu = ran.cpu.expect("CPU time from /proc");
    eprintln!("cpu used over {:?}: {cpu:?}", ran.elapsed);
    assert!(cpu < Duration::from_millis(50), "{cpu:?}");
}

#[test]
fn json_output_is_one_object_per_line_for_send_and_serve() {
    let server = serve("127.0.0.1:0", &["--json"]);
    let listening: Value = serde_json::from_str(&server.proc.stdout_line("listening")).unwrap();
    assert_eq!(listening["event"], "listening");
    assert_eq!(listening["addr"], server.addr.to_string());

    let addr = server.addr.to_string();
    let ran = run(&["send", "abc", "--server", &addr, "--json"], b"", PATIENCE);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    let events = ran.json_lines();
    assert_eq!(events[0]["event"], "send");
    let reply = events.last().unwrap();
    assert_eq!(reply["event"], "reply");
    assert_eq!(reply["reply"], "Your data was 3 bytes");
    assert_eq!(reply["count"], 3);
    assert_eq!(reply["attempts"], 1);

    let datagram: Value = serde_json::from_str(&server.proc.stdout_line("\"datagram\"")).unwrap();
    assert_eq!(datagram["bytes"], 3);
    assert_eq!(datagram["text"], "abc");
    assert_eq!(datagram["payload_b64"], "YWJj");
    assert_eq!(datagram["reply"], "Your data was 3 bytes");

    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let ran = run(
        &["send", "x", "--server", &addr, "--json", "--attempts", "2"],
        b"",
        PATIENCE,
    );
    assert_eq!(ran.code(), 1);
    let gave_up = ran.json_lines().pop().unwrap();
    assert_eq!(gave_up["event"], "gave_up");
    assert_eq!(gave_up["attempts"], 2);

    let mut server = server;
    signal(server.proc.pid(), rustix::process::Signal::TERM);
    assert_eq!(server.proc.wait_for(PATIENCE).unwrap().code(), Some(0));
    let stopped: Value = serde_json::from_str(&server.proc.stdout_line("stopped")).unwrap();
    assert_eq!(stopped["received"], 1);
    assert_eq!(stopped["replied"], 1);
}

#[test]
fn send_gets_exact_counts_from_the_python_server() {
    let Some(py) = python3() else {
        eprintln!("skipped: python3 not found");
        return;
    };
    let mut cmd = Command::new(py);
    cmd.args([&peer("py_server.py"), "127.0.0.1", "20"]);
    let server = Proc::spawn(cmd);
    let line = server.stdout_line("port ");
    let addr: SocketAddr = format!("127.0.0.1:{}", &line["port ".len()..])
        .parse()
        .unwrap();
    for message in ["hello world!", ""] {
        let ran = send_to(addr, message);
        assert_eq!(ran.code(), 0, "{}", ran.stderr);
        assert_eq!(
            ran.stdout(),
            format!("Your data was {} bytes\n", message.len())
        );
    }
    let big = vec![0u8; 65507];
    let ran = run(
        &["send", "-", "--server", &addr.to_string()],
        &big,
        PATIENCE,
    );
    assert_eq!(
        ran.stdout(),
        "Your data was 65507 bytes\n",
        "{}",
        ran.stderr
    );
}
