//! The `udp-echo` binary over real sockets: 127.0.0.1, ::1, and addresses inside a network
//! namespace the test creates. Ports are picked by the OS (`serve --bind 127.0.0.1:0`
//! prints `listening on ADDR`). Every wait is bounded; every child process is killed and
//! reaped by its guard, even when an assertion fails.

// Signals to child processes (rustix::process): Unix only.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

// serve ↔ send

#[test]
fn serve_answers_send_over_ipv4_and_prints_the_datagram() {
    let server = serve("127.0.0.1:0", &[]);
    let ran = send_to(server.addr, "hello world!");
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert_eq!(ran.stdout(), "Your data was 12 bytes\n");
    let line = server.proc.stdout_line("sent 12 bytes");
    assert!(line.starts_with("127.0.0.1:"), "{line}");
    assert!(line.ends_with(r#"sent 12 bytes: "hello world!""#), "{line}");
}

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

/// Sends `count` datagrams from `from` to `to` as fast as the kernel takes them (bounded
/// by `limit` in time) while counting the replies; returns (sent, replies, elapsed).
fn flood(from: &str, to: SocketAddr, count: u32, limit: Duration) -> (u32, u32, Duration) {
    let sock = UdpSocket::bind(from).unwrap();
    sock.set_nonblocking(true).unwrap();
    let (mut sent, mut replies) = (0u32, 0u32);
    let mut buf = [0u8; 64];
    let start = Instant::now();
    while sent < count && start.elapsed() < limit {
        if sock.send_to(b"flood", to).is_ok() {
            sent += 1;
        }
        while sock.recv_from(&mut buf).is_ok() {
            replies += 1;
        }
        if sent % 64 == 0 {
            thread::sleep(Duration::from_micros(200)); // let the server's thread in
        }
    }
    let elapsed = start.elapsed();
    thread::sleep(Duration::from_millis(100));
    while sock.recv_from(&mut buf).is_ok() {
        replies += 1;
    }
    (sent, replies, elapsed)
}

#[test]
fn under_a_flood_from_one_source_another_source_is_answered() {
    let server = serve("127.0.0.1:0", &["--quiet", "--rate-limit", "1000/s"]);
    let to = server.addr;
    let flooder = thread::spawn(move || flood("127.0.0.2:0", to, 200_000, Duration::from_secs(2)));
    thread::sleep(Duration::from_millis(100));
    let target = to.to_string();
    let ping = run(
        &[
            "ping",
            "--server",
            &target,
            "--count",
            "20",
            "--interval",
            "50ms",
            "--json",
        ],
        b"",
        PATIENCE,
    );
    let (sent, replies, elapsed) = flooder.join().unwrap();
    let summary = ping.json_lines().pop().unwrap();
    let received = summary["received"].as_u64().unwrap();
    println!(
        "flood: {sent} sent, {replies} answered in {elapsed:?}; ping: {received} of 20 answered"
    );
    assert!(received >= 18, "{summary}");
    // 1000/s with bursts of 1000 (the `N/s` form), on the server's clock: the flood gets
    // at most what the limit allows in the time it ran, whatever it sent.
    let allowed = 1000.0 + 1000.0 * (elapsed.as_secs_f64() + 0.2);
    assert!(f64::from(replies) <= allowed, "{replies} > {allowed}");
    assert!(sent > replies * 2, "the flood was not a flood: {sent} sent");
}

#[test]
fn a_loop_with_a_service_that_answers_everything_is_bounded_by_the_limit() {
    // A peer that answers every datagram with an upper-cased copy: the loop guard does
    // not recognise its answers, so one datagram starts a loop that only the rate limit
    // bounds.
    let server = serve("127.0.0.1:0", &["--quiet", "--rate-limit", "500/s"]);
    let peer = UdpSocket::bind("127.0.0.3:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    peer.send_to(b"hello", server.addr).unwrap();
    let mut bounced = 0u32;
    let mut buf = [0u8; 64];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        match peer.recv_from(&mut buf) {
            Ok((n, from)) => {
                bounced += 1;
                peer.send_to(&buf[..n].to_ascii_uppercase(), from).unwrap();
            }
            Err(_) => thread::sleep(Duration::from_millis(1)),
        }
    }
    println!("loop: {bounced} replies in 1 s under a 500/s limit");
    // Burst 500 plus 500/s for one second, and a little slack for timing.
    assert!(bounced <= 1100, "{bounced} replies: the loop ran unbounded");
    assert!(
        bounced >= 400,
        "{bounced}: the loop never ran, the test proves nothing"
    );
}

#[test]
fn serve_states_its_limits_at_start_up() {
    let server = serve("127.0.0.1:0", &[]);
    server
        .proc
        .stderr_line("limits: no per-source limit, no total limit");
    let limited = serve(
        "127.0.0.1:0",
        &["--rate-limit", "200/s", "--total-limit", "5000/s"],
    );
    limited.proc.stderr_line(
        "limits: 200 replies/s per source (bursts of 200), 5000 replies/s in all (bursts of 5000)",
    );
}

#[test]
fn serve_answers_send_over_ipv6() {
    if !ipv6_available() {
        eprintln!("skipped: ::1 is not available");
        return;
    }
    let server = serve("[::1]:0", &[]);
    assert!(server.addr.is_ipv6());
    let ran = send_to(server.addr, "hi over v6");
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert_eq!(ran.stdout(), "Your data was 10 bytes\n");
    let line = server.proc.stdout_line("sent 10 bytes");
    assert!(line.starts_with("[::1]:"), "{line}");
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
fn non_utf8_payloads_are_counted_and_shown_escaped() {
    let server = serve("127.0.0.1:0", &[]);
    let addr = server.addr.to_string();
    let payload = b"\xff\xfe hi\n\x1b[2J";
    let ran = run(&["send", "-", "--server", &addr], payload, PATIENCE);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert_eq!(ran.stdout(), "Your data was 10 bytes\n");
    let line = server.proc.stdout_line("sent 10 bytes");
    assert!(
        line.ends_with(r#"sent 10 bytes: "\xff\xfe hi\n\x1b[2J""#),
        "{line}"
    );
}

#[test]
fn server_never_answers_a_byte_count_reply_but_answers_the_next_datagram() {
    let server = serve("127.0.0.1:0", &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(server.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    sock.send(b"Your data was 5 bytes").unwrap();
    let mut buf = [0u8; 64];
    let err = sock.recv(&mut buf).expect_err("a reply to a reply");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    sock.send(b"hello").unwrap();
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"Your data was 5 bytes");
    let line = server.proc.stdout_line("Your data was 5 bytes");
    assert!(line.contains("not answered"), "{line}");
}

#[test]
fn under_a_flood_serve_shows_at_most_max_lines_and_sums_up_the_rest() {
    let mut server = serve("127.0.0.1:0", &["--max-lines", "5"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(server.addr).unwrap();
    // Bounded: 2000 datagrams, paced a little so the server's socket buffer keeps up.
    for i in 0..2000u32 {
        sock.send(format!("flood {i}").as_bytes()).unwrap();
        if i % 100 == 99 {
            thread::sleep(Duration::from_millis(2));
        }
    }
    let mut shown = server.proc.stdout_until("not shown");
    let summary = shown.pop().unwrap();
    assert!(summary.starts_with("… "), "{summary}");
    assert!(summary.contains("datagrams in the last 1s"), "{summary}");
    signal(server.proc.pid(), rustix::process::Signal::TERM);
    assert_eq!(server.proc.wait_for(PATIENCE).unwrap().code(), Some(0));
    let stderr = server.proc.rest_of_stderr();
    let received: u64 = stderr
        .split("received ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(received > 1000, "{stderr}");
    let datagram_lines = shown.iter().filter(|l| l.contains(" sent ")).count();
    // The lines before the first summary are that window's: 5 at most.
    assert!((1..=5).contains(&datagram_lines), "{shown:?}");
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
fn bad_durations_and_policies_are_usage_errors() {
    for (args, needle) in [
        (
            &["send", "x", "--initial-timeout", "0"][..],
            "greater than zero",
        ),
        (
            &["send", "x", "--initial-timeout=-5ms"][..],
            "greater than zero",
        ),
        (
            &["send", "x", "--max-timeout", "soon"][..],
            "not a duration",
        ),
        (&["send", "x", "--factor", "two"][..], "decimal number"),
        (
            &["send", "x", "--initial-timeout", "3s"][..],
            "must not exceed the maximum",
        ),
        (&["send", "x", "--factor", "0.5"][..], "at least 1"),
        (&["send", "x", "--factor", "1"][..], "never gives up"),
        (&["send", "x", "--attempts", "0"][..], "0 is not in 1.."),
        (
            &["send", "x", "--initial-timeout", "1us", "--factor", "1.5"][..],
            "never give up",
        ),
        (
            &["send", "x", "--initial-timeout", "9us", "--factor", "1.1"][..],
            "never give up",
        ),
        (&["send"][..], "MESSAGE"),
    ] {
        let ran = run(args, b"", PATIENCE);
        assert_eq!(ran.code(), 2, "{args:?}: {}", ran.stderr);
        assert!(ran.stderr.contains(needle), "{args:?}: {}", ran.stderr);
        assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    }
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let mut cmd = Command::new(BIN);
    cmd.args(["ping", "-c", "3", "-i", "10ms", "--server"])
        .arg(server.addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = Guard(cmd.spawn().unwrap());
    drop(guard.0.stdout.take()); // the reader is gone before the first line
    let err = reader(guard.0.stderr.take().unwrap());
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "ping did not end");
        thread::sleep(Duration::from_millis(5));
    };
    let stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    assert_eq!(status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn serve_stops_with_141_and_its_summary_when_its_stdout_is_closed() {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--bind", "127.0.0.1:0"]);
    let mut proc = Proc::spawn(cmd);
    let line = proc.stderr_line("listening on ");
    let addr: SocketAddr = line["listening on ".len()..].parse().unwrap();
    // Close the read end of the server's stdout: its next write fails with EPIPE.
    let (tx, rx) = mpsc::channel();
    drop(std::mem::replace(&mut proc.stdout, rx));
    drop(tx);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        sock.send_to(b"ping", addr).unwrap();
        if let Some(status) = proc.wait_for(Duration::from_millis(50)) {
            break status;
        }
        assert!(Instant::now() < deadline, "serve kept running");
    };
    let stderr = proc.rest_of_stderr();
    assert_eq!(status.code(), Some(141), "{stderr}");
    assert!(stderr.contains("stopped by stdout closed"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn stops_within_500_ms_on(sig: rustix::process::Signal, name: &str) {
    let mut server = serve("127.0.0.1:0", &[]);
    assert_eq!(send_to(server.addr, "one").code(), 0);
    server.proc.stdout_line("sent 3 bytes");
    let start = Instant::now();
    signal(server.proc.pid(), sig);
    let status = server
        .proc
        .wait_for(Duration::from_secs(5))
        .expect("serve ignored the signal");
    let took = start.elapsed();
    let stderr = server.proc.rest_of_stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(took < Duration::from_millis(500), "took {took:?}");
    assert!(
        stderr.contains(&format!(
            "stopped by {name}: received 1, replied 1, dropped 0"
        )),
        "{stderr}"
    );
}

/// A `--json` server or listener whose stdout pipe nobody reads (the pipe fills up and
/// its writer blocks) still stops within 500 ms of SIGTERM.
fn json_stops_within_500_ms_with_an_unread_stdout(command: &str) {
    let mut child = Command::new(BIN)
        .args([
            command,
            "--bind",
            "127.0.0.1:0",
            "--json",
            "--max-lines",
            "100000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped()) // kept open, never read: the pipe fills up
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = child.stdout.take();
    let stderr = lines(child.stderr.take().unwrap());
    let mut guard = Guard(child);
    let line = Proc::line_containing(&stderr, "listening on ", PATIENCE);
    let addr: SocketAddr = line["listening on ".len()..].parse().unwrap();
    // 2000 datagrams × ~150 bytes of JSON each: far more than a 64 KiB pipe holds.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..2000 {
        sock.send_to(&[b'x'; 64], addr).unwrap();
    }
    thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    signal(guard.0.id() as i32, rustix::process::Signal::TERM);
    let status = loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{command} --json hangs on SIGTERM with a full stdout pipe"
        );
        thread::sleep(Duration::from_millis(2));
    };
    let took = start.elapsed();
    drop(pipe);
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

#[test]
fn serve_json_stops_within_500_ms_when_nobody_reads_stdout() {
    json_stops_within_500_ms_with_an_unread_stdout("serve");
}

#[test]
fn listen_json_stops_within_500_ms_when_nobody_reads_stdout() {
    json_stops_within_500_ms_with_an_unread_stdout("listen");
}

#[test]
fn sigterm_stops_serve_within_500_ms_with_a_summary() {
    stops_within_500_ms_on(rustix::process::Signal::TERM, "SIGTERM");
}

#[test]
fn sigint_stops_serve_within_500_ms_with_a_summary() {
    stops_within_500_ms_on(rustix::process::Signal::INT, "SIGINT");
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

// discover, bench

#[test]
fn discover_lists_a_local_server_and_fails_when_none_answers() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let to = server.addr.to_string();
    let ran = run(&["discover", "--to", &to, "--wait", "300ms"], b"", PATIENCE);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert!(
        ran.stdout().starts_with(&format!("{to} answered in ")),
        "{}",
        ran.stdout()
    );

    let nobody = closed_port("127.0.0.1").to_string();
    let ran = run(
        &["discover", "--to", &nobody, "--wait", "200ms"],
        b"",
        PATIENCE,
    );
    assert_eq!(ran.code(), 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("no server answered"), "{}", ran.stderr);
}

#[test]
fn bench_reports_replies_and_percentiles() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let to = server.addr.to_string();
    let ran = run(
        &[
            "bench",
            "--server",
            &to,
            "--duration",
            "300ms",
            "--window",
            "8",
            "--json",
        ],
        b"",
        PATIENCE,
    );
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    let report = ran.json_lines().pop().unwrap();
    let replies = report["replies"].as_u64().unwrap();
    assert!(replies > 0, "{report}");
    assert!(report["sent"].as_u64().unwrap() >= replies);
    assert!(report["rtt_ms"]["p50"].as_f64().unwrap() <= report["rtt_ms"]["max"].as_f64().unwrap());
}

#[test]
fn bench_requests_sends_exactly_that_many() {
    let mut server = serve("127.0.0.1:0", &["--quiet"]);
    let to = server.addr.to_string();
    // A duration far beyond PATIENCE: the run must end because of --requests.
    let ran = run(
        &[
            "bench",
            "--server",
            &to,
            "--requests",
            "100",
            "--duration",
            "60s",
            "--window",
            "8",
            "--json",
        ],
        b"",
        PATIENCE,
    );
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    let report = ran.json_lines().pop().unwrap();
    assert_eq!(report["sent"].as_u64(), Some(100), "{report}");
    let replies = report["replies"].as_u64().unwrap();
    assert!(replies > 0, "{report}");
    assert_eq!(replies + report["lost"].as_u64().unwrap(), 100, "{report}");

    // The server saw exactly 100 datagrams, not a window's worth more.
    signal(server.proc.pid(), rustix::process::Signal::TERM);
    server
        .proc
        .wait_for(PATIENCE)
        .expect("serve ignored SIGTERM");
    let stderr = server.proc.rest_of_stderr();
    assert!(stderr.contains("received 100,"), "{stderr}");

    for bad in ["0", "20000001", "many"] {
        let ran = run(
            &["bench", "--server", &to, "--requests", bad],
            b"",
            PATIENCE,
        );
        assert_eq!(ran.code(), 2, "--requests {bad}: {}", ran.stderr);
    }
}

#[test]
fn a_server_off_loopback_limits_each_source_by_default() {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("skipped: cannot create a network namespace: {why}");
            return;
        }
    };
    let server = Proc::spawn(ns.command(&["serve", "--bind", "10.213.7.1:6666", "--quiet"]));
    server.stderr_line("listening on 10.213.7.1:6666");
    server.stderr_line("limits: 1000 replies/s per source (bursts of 100), no total limit");
    // One source keeping 64 requests in flight: past the burst, replies are limited and
    // its window stalls on the lost requests (bench waits a second for each).
    let out = ns
        .command(&[
            "bench",
            "--server",
            "10.213.7.1:6666",
            "--duration",
            "1s",
            "--window",
            "64",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bench: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let (sent, replies) = (
        bench["sent"].as_u64().unwrap(),
        bench["replies"].as_u64().unwrap(),
    );
    println!("one source, default limit, 1 s: {sent} sent, {replies} answered");
    // 100 in a burst, then 1000/s for the second the load ran (and its drain).
    assert!(replies <= 100 + 1000 * 2 + 50, "{replies} answered");
    assert!(replies >= 100, "{replies}: not even the burst was answered");
    assert!(sent > replies, "{sent} sent: no request was limited");
}

#[test]
fn listeners_sharing_a_port_both_get_a_broadcast() {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("skipped: cannot create a network namespace: {why}");
            return;
        }
    };
    let listen = || {
        let proc = Proc::spawn(ns.command(&["listen", "--bind", "0.0.0.0:6666"]));
        proc.stderr_line("listening on 0.0.0.0:6666");
        proc
    };
    let (mut a, mut b) = (listen(), listen());
    let mut send = ns.command(&["broadcast", "hello, LAN", "--to", "10.213.7.255:6666"]);
    let sent = send.output().unwrap();
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&sent.stdout),
        "sent 10 bytes to 10.213.7.255:6666\n"
    );
    for l in [&a, &b] {
        let line = l.stdout_line("hello, LAN");
        assert!(line.starts_with("10.213.7.1:"), "{line}");
        assert!(line.ends_with(r#"sent 10 bytes: "hello, LAN""#), "{line}");
    }
    // Discovery over the same broadcast address finds a server there.
    let mut server = Proc::spawn(ns.command(&["serve", "--bind", "0.0.0.0:7777", "--quiet"]));
    server.stderr_line("listening on 0.0.0.0:7777");
    let found = ns
        .command(&["discover", "--to", "10.213.7.255:7777", "--wait", "300ms"])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    assert!(String::from_utf8_lossy(&found.stdout).starts_with("10.213.7.1:7777 answered in"));

    for p in [&mut a, &mut b, &mut server] {
        signal(p.pid(), rustix::process::Signal::INT);
        assert_eq!(p.wait_for(PATIENCE).and_then(|s| s.code()), Some(0));
    }
    assert!(a.rest_of_stderr().contains("stopped by SIGINT: received 1"));
}

/// Skips the test (prints why) unless namespaces can be made here.
macro_rules! or_skip {
    ($made:expr) => {
        match $made {
            Ok(made) => made,
            Err(why) => {
                eprintln!("skipped: cannot create a network namespace: {why}");
                return;
            }
        }
    };
}

/// Stops a server with SIGTERM and returns its `--json` "stopped" event.
fn stopped_event(mut server: Proc) -> Value {
    signal(server.pid(), rustix::process::Signal::TERM);
    assert_eq!(server.wait_for(PATIENCE).and_then(|s| s.code()), Some(0));
    let line = server
        .rest_of_stdout()
        .into_iter()
        .rev()
        .find(|l| l.contains(r#""event":"stopped""#))
        .expect("a stopped event");
    serde_json::from_str(&line).unwrap()
}

#[test]
fn a_wildcard_server_replies_from_the_ipv4_address_the_request_was_sent_to() {
    // Two addresses on one interface: the kernel would answer from the primary one.
    let ns = or_skip!(Netns::empty());
    for addr in ["10.7.0.1/24", "10.7.0.2/24"] {
        ns.ip(&["addr", "add", addr, "dev", "lo"]).unwrap();
    }
    let _server = ns.serve(&["--bind", "0.0.0.0:6666", "--quiet"]);
    let ran = ns.run(&["send", "hi", "--server", "10.7.0.2:6666"]);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert_eq!(ran.stdout(), "Your data was 2 bytes\n");
    assert!(ran.stderr.contains("(1 attempt)"), "{}", ran.stderr);
}

#[test]
fn a_wildcard_server_replies_from_the_ipv6_address_the_request_was_sent_to() {
    // ::20 is deprecated (as a rotated-out temporary address is): still valid, so the
    // request reaches it, but the kernel's own choice of source for the reply is ::10.
    let (server_ns, client_ns) = or_skip!(Netns::pair(
        &["fd00:7::10/64", "fd00:7::20/64 preferred_lft 0"],
        &["fd00:7::11/64"]
    ));
    let _server = server_ns.serve(&["--bind", "[::]:6666", "--quiet"]);
    let ran = client_ns.run(&["send", "hi", "--server", "[fd00:7::20]:6666"]);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert!(ran.stderr.contains("(1 attempt)"), "{}", ran.stderr);
    // And an IPv4 peer of the same dual-stack socket.
    server_ns
        .ip(&["addr", "add", "10.7.0.1/24", "dev", "vs"])
        .unwrap();
    server_ns
        .ip(&["addr", "add", "10.7.0.2/24", "dev", "vs"])
        .unwrap();
    client_ns
        .ip(&["addr", "add", "10.7.0.9/24", "dev", "vc"])
        .unwrap();
    let ran = client_ns.run(&["send", "hi", "--server", "10.7.0.2:6666"]);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert!(ran.stderr.contains("(1 attempt)"), "{}", ran.stderr);
}

#[test]
fn broadcasts_are_answered_only_to_directly_connected_sources_and_counted() {
    for io in ["batched", "simple"] {
        broadcasts_on(io);
    }
}

fn broadcasts_on(io: &str) {
    let (server_ns, client_ns) = or_skip!(Netns::pair(&["10.7.0.1/24"], &["10.7.0.2/24"]));
    let answering = server_ns.serve(&["--bind", "0.0.0.0:6666", "--quiet", "--json", "--io", io]);
    let refusing = server_ns.serve(&[
        "--bind",
        "0.0.0.0:6667",
        "--quiet",
        "--json",
        "--no-broadcast",
        "--io",
        io,
    ]);
    // On-link: the subnet's broadcast address, from 10.7.0.2.
    let found = client_ns.run(&["discover", "--to", "10.7.0.255:6666", "--wait", "300ms"]);
    assert_eq!(found.code(), 0, "{}", found.stderr);
    assert!(
        found.stdout().starts_with("10.7.0.1:6666 answered in"),
        "{}",
        found.stdout()
    );
    let refused = client_ns.run(&["discover", "--to", "10.7.0.255:6667", "--wait", "300ms"]);
    assert_eq!(refused.code(), 1, "{}", refused.stdout());
    // Off-link: the client moves to another network and broadcasts to everyone.
    client_ns.ip(&["addr", "flush", "dev", "vc"]).unwrap();
    client_ns
        .ip(&["addr", "add", "10.9.0.2/24", "dev", "vc"])
        .unwrap();
    client_ns
        .ip(&["route", "add", "default", "dev", "vc"])
        .unwrap();
    let off = client_ns.run(&[
        "discover",
        "--to",
        "255.255.255.255:6666",
        "--wait",
        "300ms",
    ]);
    assert_eq!(off.code(), 1, "answered off-link: {}", off.stdout());

    let a = stopped_event(answering);
    assert_eq!(a["broadcast"], 2, "{a}");
    assert_eq!(a["replied"], 1, "{a}");
    assert_eq!(a["dropped_by_reason"]["off_link_broadcast"], 1, "{a}");
    let r = stopped_event(refusing);
    assert_eq!(r["broadcast"], 1, "{r}");
    assert_eq!(r["replied"], 0, "{r}");
    assert_eq!(r["dropped_by_reason"]["broadcast"], 1, "{r}");
}

#[test]
fn both_io_paths_answer_and_say_which_they_are() {
    for (io, says) in [("batched", "io: batched"), ("simple", "io: simple")] {
        let server = serve("127.0.0.1:0", &["--io", io]);
        server.proc.stderr_line(says);
        let ran = send_to(server.addr, "hello");
        assert_eq!(
            ran.stdout(),
            "Your data was 5 bytes\n",
            "{io}: {}",
            ran.stderr
        );
    }
}

#[test]
fn gso_trains_are_answered_datagram_by_datagram_on_every_path_family_and_thread_count() {
    // bench --gso sends trains of 16 (UDP_SEGMENT); the server takes each as one GRO
    // buffer, answers each datagram and sends the replies back as trains.
    for (bind, extra) in [
        ("127.0.0.1:0", &["--io", "batched"][..]),
        ("127.0.0.1:0", &["--io", "simple"][..]),
        ("[::1]:0", &["--io", "batched"][..]),
        ("[::1]:0", &["--io", "simple"][..]),
        ("127.0.0.1:0", &["--threads", "2"][..]),
        ("127.0.0.1:0", &["--no-offload"][..]),
    ] {
        let mut args = vec!["--quiet", "--json"];
        args.extend_from_slice(extra);
        let server = serve(bind, &args);
        let to = server.addr.to_string();
        let ran = run(
            &[
                "bench",
                &to,
                "--gso",
                "16",
                "--window",
                "128",
                "--requests",
                "4000",
                "--json",
            ],
            b"",
            PATIENCE,
        );
        assert_eq!(ran.code(), 0, "{extra:?}: {}", ran.stderr);
        let bench: Value = serde_json::from_str(ran.stdout().lines().last().unwrap()).unwrap();
        assert_eq!(bench["sent"], 4000, "{extra:?}: {bench}");
        assert_eq!(bench["replies"], 4000, "{extra:?}: {bench}");
        let stopped = stopped_event(server.proc);
        assert_eq!(stopped["received"], 4000, "{bind} {extra:?}: {stopped}");
        assert_eq!(stopped["replied"], 4000, "{bind} {extra:?}: {stopped}");
        assert_eq!(stopped["send_failed"], 0, "{bind} {extra:?}: {stopped}");
    }
}

#[test]
fn the_io_line_says_which_offloads_are_in_force() {
    let on = serve("127.0.0.1:0", &["--quiet"]);
    on.proc.stderr_line("GRO and GSO");
    let off = serve("127.0.0.1:0", &["--quiet", "--no-offload"]);
    off.proc.stderr_line("GRO and GSO off (--no-offload)");
}

#[test]
fn two_threads_answer_from_both_sockets_and_sum_their_counters() {
    let server = serve("127.0.0.1:0", &["--threads", "2", "--quiet", "--json"]);
    server.proc.stderr_line("2 threads (SO_REUSEPORT)");
    // 64 flows: SO_REUSEPORT spreads them over both sockets by their 4-tuple.
    for i in 0..64 {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(PATIENCE)).unwrap();
        c.send_to(format!("flow {i:02}").as_bytes(), server.addr)
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"Your data was 7 bytes");
        assert_eq!(from, server.addr);
    }
    let stopped = stopped_event(server.proc);
    assert_eq!(stopped["threads"], 2, "{stopped}");
    assert_eq!(stopped["received"], 64, "{stopped}");
    assert_eq!(stopped["replied"], 64, "{stopped}");
    let each: Vec<u64> = stopped["per_thread"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["received"].as_u64().unwrap())
        .collect();
    assert_eq!(each.len(), 2, "{stopped}");
    assert!(
        each.iter().all(|n| *n > 0),
        "one socket got nothing: {each:?}"
    );
    assert_eq!(each.iter().sum::<u64>(), 64);
}

#[test]
fn sigterm_under_a_flood_stops_within_500_ms() {
    for extra in [&["--quiet"][..], &["--quiet", "--threads", "2"], &[]] {
        let mut server = serve("127.0.0.1:0", extra);
        let to = server.addr;
        // Bounded: at most 400,000 datagrams or 3 s.
        let flooder =
            thread::spawn(move || flood("127.0.0.1:0", to, 400_000, Duration::from_secs(3)));
        thread::sleep(Duration::from_millis(300));
        let start = Instant::now();
        signal(server.proc.pid(), rustix::process::Signal::TERM);
        let status = server
            .proc
            .wait_for(Duration::from_secs(5))
            .expect("serve ignored SIGTERM under a flood");
        let took = start.elapsed();
        let (sent, replies, _) = flooder.join().unwrap();
        println!("{extra:?}: stopped in {took:?}; the flood sent {sent}, got {replies} replies");
        assert_eq!(status.code(), Some(0));
        assert!(
            took < Duration::from_millis(500),
            "{extra:?}: took {took:?}"
        );
        assert!(replies > 0, "the flood was never answered");
    }
}

#[test]
fn python_client_gets_exact_counts_from_serve() {
    let Some(py) = python3() else {
        eprintln!("skipped: python3 not found");
        return;
    };
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let port = server.addr.port().to_string();
    for message in ["hello world!", "", "ünïcödé"] {
        let out = Command::new(py)
            .args([&peer("py_client.py"), "127.0.0.1", &port, message])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{message:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim_end(),
            format!("Your data was {} bytes", message.len())
        );
    }
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

/// Runs `udp-echo ARGS` with stdout on /dev/full (every write fails with ENOSPC).
fn run_to_dev_full(args: &[&str]) -> (i32, String) {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped());
    let mut guard = Guard(cmd.spawn().unwrap());
    let err = reader(guard.0.stderr.take().unwrap());
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?} > /dev/full did not end"
        );
        thread::sleep(Duration::from_millis(5));
    };
    let stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    (status.code().expect("exited"), stderr)
}

/// `udp-echo ARGS`, reading its first stdout line, then closing the pipe: the exit status
/// and how long it took after the close.
fn first_line_then_close(args: &[&str]) -> (Option<i32>, Duration) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut guard = Guard(cmd.spawn().unwrap());
    let mut out = BufReader::new(guard.0.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "{args:?}: no first line");
    drop(out); // `| head -1`
    let closed = Instant::now();
    let deadline = closed + PATIENCE;
    loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            return (s.code(), closed.elapsed());
        }
        if Instant::now() >= deadline {
            return (None, closed.elapsed());
        }
        thread::sleep(Duration::from_millis(5));
    }
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
fn bench_and_discover_end_with_141_when_their_reader_goes_away() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let addr = server.addr.to_string();
    // bench prints its summary only at the end: the pipe closes before, and the run
    // stops at once instead of loading the server for 60 s.
    let mut cmd = Command::new(BIN);
    cmd.args(["bench", &addr, "-t", "60", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut guard = Guard(cmd.spawn().unwrap());
    thread::sleep(Duration::from_millis(200));
    drop(guard.0.stdout.take());
    let closed = Instant::now();
    let status = loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            break s;
        }
        assert!(closed.elapsed() < PATIENCE, "bench kept running");
        thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.code(), Some(141));
    let (code, _) = first_line_then_close(&["discover", "--to", &addr, "--wait", "30"]);
    assert_eq!(code, Some(141));
}

#[test]
fn a_failed_write_of_results_is_exit_1_with_one_line_in_every_subcommand() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let addr = server.addr.to_string();
    let runs: Vec<Vec<&str>> = vec![
        vec!["send", "hi", "--server", &addr],
        vec!["send", &addr, "hi", "--json"],
        vec!["ping", &addr, "-c", "1"],
        vec!["bench", &addr, "--requests", "10", "-q"],
        vec!["discover", "--to", &addr, "--wait", "200ms"],
        vec!["broadcast", "hi", "--to", &addr],
        vec!["completions", "bash"],
        vec!["manpage"],
    ];
    for args in runs {
        let (code, stderr) = run_to_dev_full(&args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.contains("cannot write the results to stdout"))
            .unwrap_or_else(|| panic!("{args:?}: {stderr}"));
        assert!(line.contains("No space left on device"), "{line}");
        assert!(!stderr.contains("os error"), "{stderr}");
    }
    // The servers too: serve and listen stop at their first failed write.
    for (command, bind) in [("serve", "127.0.0.1:0"), ("listen", "127.0.0.1:0")] {
        let (code, stderr) = run_to_dev_full(&[command, "--bind", bind, "--json"]);
        assert_eq!(code, 1, "{command}: {stderr}");
        assert!(
            stderr.contains("cannot write the results to stdout: No space left on device"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn bench_reports_the_time_it_took_and_rates_over_it() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let to = server.addr.to_string();
    let ran = run(
        &[
            "bench",
            &to,
            "--requests",
            "2000",
            "-t",
            "60",
            "--window",
            "4",
            "--json",
        ],
        b"",
        PATIENCE,
    );
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    let r = ran.json_lines().pop().unwrap();
    let took = r["duration_ms"].as_f64().unwrap();
    assert!(
        took > 0.0 && took < ran.elapsed.as_secs_f64() * 1000.0,
        "{r}"
    );
    let replies = r["replies"].as_f64().unwrap();
    let rate = r["replies_per_s"].as_f64().unwrap();
    assert!((rate - replies / (took / 1000.0)).abs() <= 1.0, "{r}");
    assert_eq!(r["percentile_method"], "nearest-rank");
    // Timestamps taken before the send: no round trip is measured as zero.
    assert!(r["rtt_ms"]["p50"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["request_bits_per_s"].as_f64().unwrap() > 0.0, "{r}");

    // Against a server limited to 100 replies/s, the rate is over the run, not over
    // the burst of the first replies.
    let limited = serve("127.0.0.1:0", &["--quiet", "--total-limit", "100/s"]);
    let to = limited.addr.to_string();
    let ran = run(
        &["bench", &to, "-t", "1", "--window", "4", "--json"],
        b"",
        PATIENCE,
    );
    let r = ran.json_lines().pop().unwrap();
    let rate = r["replies_per_s"].as_f64().unwrap();
    assert!(rate > 0.0 && rate < 500.0, "{r}");
    let took = r["duration_ms"].as_f64().unwrap();
    assert!(took >= 900.0, "{r}");

    // The text summary states the time it took and the method.
    let ran = run(&["bench", &to, "--requests", "50", "-q"], b"", PATIENCE);
    let out = ran.stdout();
    assert!(!out.contains("in 2.00s"), "{out}");
    assert!(out.contains("nearest-rank"), "{out}");
    assert!(out.contains("bit/s"), "{out}");
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
fn sigint_during_bench_prints_the_summary_of_what_ran() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let to = server.addr.to_string();
    let mut cmd = Command::new(BIN);
    cmd.args(["bench", &to, "-t", "30", "--window", "4"]);
    let mut bench = Proc::spawn(cmd);
    bench.stderr_line("replies/s"); // the first progress line, after a second
    signal(bench.pid(), rustix::process::Signal::INT);
    let status = bench.wait_for(PATIENCE).expect("bench ignored SIGINT");
    assert_eq!(status.code(), Some(0));
    let out = bench.rest_of_stdout().join("\n");
    assert!(out.contains("(interrupted)"), "{out}");
    assert!(out.contains("replies/s"), "{out}");
    assert!(out.contains("rtt p50"), "{out}");
}

#[test]
fn discover_honours_port_with_to_and_refuses_two_different_ports() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let port = server.addr.port().to_string();
    let ran = run(
        &[
            "discover",
            "--to",
            "127.0.0.1",
            "--port",
            &port,
            "--wait",
            "300ms",
        ],
        b"",
        PATIENCE,
    );
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert!(ran.stdout().contains(&server.addr.to_string()));
    let other = (server.addr.port() ^ 1).to_string();
    let to = server.addr.to_string();
    let ran = run(
        &["discover", "--to", &to, "--port", &other, "--wait", "300ms"],
        b"",
        PATIENCE,
    );
    assert_eq!(ran.code(), 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("different ports"), "{}", ran.stderr);
}

#[test]
fn unbalanced_brackets_and_ambiguous_ipv6_ports_are_usage_errors() {
    for args in [
        vec!["send", "[::1", "hi"],
        vec!["send", "hi", "--server", "[::1"],
        vec!["ping", "::1]"],
        vec!["bench", "[::1]:"],
    ] {
        let ran = run(&args, b"", PATIENCE);
        assert_eq!(ran.code(), 2, "{args:?}: {}", ran.stderr);
    }
    let ran = run(&["ping", "::1:6666"], b"", PATIENCE);
    assert_eq!(ran.code(), 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("[::1]:6666"), "{}", ran.stderr);
    assert!(ran.stderr.contains("ambiguous"), "{}", ran.stderr);
}

#[test]
fn targets_are_positional_and_server_stays_a_long_alias() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let addr = server.addr.to_string();
    let ran = run(&["send", &addr, "hello"], b"", PATIENCE);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert_eq!(ran.stdout(), "Your data was 5 bytes\n");
    // One word is always the message.
    let ran = run(&["send", "hello!", "--server", &addr], b"", PATIENCE);
    assert_eq!(ran.stdout(), "Your data was 6 bytes\n");
    let ran = run(&["send", &addr, "x", "--server", &addr], b"", PATIENCE);
    assert_eq!(ran.code(), 2, "{}", ran.stderr);
    let ran = run(&["ping", &addr, "-c", "2", "-i", "10ms"], b"", PATIENCE);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert!(
        ran.stdout().contains("2 sent, 2 received"),
        "{}",
        ran.stdout()
    );
    let ran = run(&["ping", &addr, "--server", &addr], b"", PATIENCE);
    assert_eq!(ran.code(), 2, "{}", ran.stderr);
    let ran = run(&["bench", &addr, "--requests", "20", "-q"], b"", PATIENCE);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert!(ran.stdout().contains("20 replies"), "{}", ran.stdout());
}

#[test]
fn a_bare_number_where_an_address_goes_is_a_port() {
    let server = serve(":0", &["--quiet"]);
    assert!(server.addr.ip().is_loopback(), "{}", server.addr);
    let port = server.addr.port().to_string();
    let ran = run(&["send", &port, "hi"], b"", PATIENCE);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    assert_eq!(ran.stdout(), "Your data was 2 bytes\n");
    let ran = run(&["ping", &format!(":{port}"), "-c", "1"], b"", PATIENCE);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    // Never a legacy integer IPv4 address (1400 = 0.0.5.120).
    let ran = run(&["ping", "127.1", "-c", "1"], b"", PATIENCE);
    assert_eq!(ran.code(), 2, "{}", ran.stderr);
    let mut listen = Command::new(BIN);
    listen.args(["listen", "--bind", "0"]);
    let listen = Proc::spawn(listen);
    let line = listen.stderr_line("listening on ");
    assert!(line.starts_with("listening on 0.0.0.0:"), "{line}");
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

#[test]
fn no_short_flag_means_two_things_across_subcommands() {
    use std::collections::HashMap;
    let mut meaning: HashMap<String, (String, String)> = HashMap::new();
    for sub in [
        "serve",
        "send",
        "ping",
        "broadcast",
        "listen",
        "discover",
        "bench",
    ] {
        let help = run(&[sub, "--help"], b"", PATIENCE).stdout();
        for line in help.lines() {
            let line = line.trim_start();
            // `-s, --size <SIZE>`
            if let Some(rest) = line.strip_prefix('-')
                && let Some((short, long)) = rest.split_once(", --")
                && short.len() == 1
            {
                let long = long.split_whitespace().next().unwrap().to_string();
                if let Some((other, first)) = meaning.get(short) {
                    assert_eq!(
                        other, &long,
                        "-{short}: --{first} in one place, --{long} in {sub}"
                    );
                } else {
                    meaning.insert(short.to_string(), (long, sub.to_string()));
                }
            }
        }
    }
    assert_eq!(meaning["s"].0, "size");
}

#[test]
fn bench_caps_its_duration_with_an_error_and_shows_progress_on_stderr() {
    let ran = run(&["bench", "-t", "61"], b"", PATIENCE);
    assert_eq!(ran.code(), 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("60s"), "{}", ran.stderr);
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let to = server.addr.to_string();
    let ran = run(&["bench", &to, "-t", "1.5", "--window", "4"], b"", PATIENCE);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    let progress: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with('[') && l.contains("replies/s"))
        .collect();
    assert!(!progress.is_empty(), "{}", ran.stderr);
    assert!(
        progress[0].contains("loss") && progress[0].contains("p99"),
        "{progress:?}"
    );
    assert!(ran.stdout().contains("bit/s"), "{}", ran.stdout());
    for quiet in [&["-q"][..], &["--json"][..]] {
        let mut args = vec!["bench", to.as_str(), "-t", "1.2", "--window", "4"];
        args.extend_from_slice(quiet);
        let ran = run(&args, b"", PATIENCE);
        assert!(
            !ran.stderr.contains("replies/s"),
            "{quiet:?}: {}",
            ran.stderr
        );
    }
}

#[test]
fn a_port_in_use_says_what_to_do_without_os_error_tails() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let addr = server.addr.to_string();
    for command in ["serve", "listen"] {
        let ran = run(&[command, "--bind", &addr], b"", PATIENCE);
        assert_eq!(ran.code(), 1, "{command}: {}", ran.stderr);
        assert!(ran.stderr.contains("already in use"), "{}", ran.stderr);
        assert!(ran.stderr.contains("--reuse-port"), "{}", ran.stderr);
        assert!(!ran.stderr.contains("os error"), "{}", ran.stderr);
    }
}

#[test]
fn a_low_port_without_privilege_mentions_cap_net_bind_service() {
    // As an unprivileged user (needs setpriv and root to switch; skipped otherwise).
    if !Path::new("/usr/bin/setpriv").exists() || !rustix::process::getuid().is_root() {
        eprintln!("skipped: needs root and setpriv to drop privileges");
        return;
    }
    let ran = run_program(
        "/usr/bin/setpriv",
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "serve",
            "--bind",
            "127.0.0.1:80",
        ],
        PATIENCE,
    );
    assert_eq!(ran.code(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("CAP_NET_BIND_SERVICE"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("os error"), "{}", ran.stderr);
}

#[test]
fn completions_and_the_man_page_come_from_the_clap_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let ran = run(&["completions", shell], b"", PATIENCE);
        assert_eq!(ran.code(), 0, "{}", ran.stderr);
        let out = ran.stdout();
        assert!(
            out.contains("udp-echo") && out.contains("discover"),
            "{shell}"
        );
        assert!(
            out.contains("--deadline") || out.contains("deadline"),
            "{shell}"
        );
    }
    let ran = run(&["manpage"], b"", PATIENCE);
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    let man = ran.stdout();
    assert!(
        man.starts_with(".ie") || man.contains(".TH udp-echo"),
        "{man}"
    );
    assert!(man.contains("bench"), "{man}");
}

#[test]
fn json_datagrams_carry_base64_and_text_only_when_utf8() {
    let server = serve("127.0.0.1:0", &["--json"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(server.addr).unwrap();
    sock.send("a\"b\\c\nd\u{1}é".as_bytes()).unwrap();
    let line = server.proc.stdout_line("\"datagram\"");
    assert!(!line.contains("\\x") && !line.contains("\\u{"), "{line}");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["text"], "a\"b\\c\nd\u{1}é");
    assert_eq!(v["payload_b64"], "YSJiXGMKZAHDqQ==");
    sock.send(b"\xff\x00ok").unwrap();
    let v: Value = serde_json::from_str(&server.proc.stdout_line("\"datagram\"")).unwrap();
    assert_eq!(v["payload_b64"], "/wBvaw==");
    assert!(v.get("text").is_none(), "{v}");
    let help = run(&["--help"], b"", PATIENCE).stdout();
    assert!(help.contains("JSON Lines"), "{help}");
}

#[test]
fn per_datagram_drops_use_the_summary_keys() {
    let mut server = serve("127.0.0.1:0", &["--json"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(b"Your data was 5 bytes", server.addr).unwrap();
    let v: Value = serde_json::from_str(&server.proc.stdout_line("\"datagram\"")).unwrap();
    assert_eq!(v["dropped"], "loop", "{v}");
    signal(server.proc.pid(), rustix::process::Signal::TERM);
    server.proc.wait_for(PATIENCE).unwrap();
    let stopped: Value = serde_json::from_str(&server.proc.stdout_line("stopped")).unwrap();
    assert_eq!(stopped["dropped_by_reason"]["loop"], 1, "{stopped}");
}
