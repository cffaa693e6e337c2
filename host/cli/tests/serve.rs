//! `udp-echo serve` over real sockets: 127.0.0.1, ::1, and addresses inside a network
//! namespace the test creates: replies, limits, the batched path and threads, stopping,
//! and what it prints. Every wait is bounded; every child process is killed and reaped by
//! its guard (see `common`), even when an assertion fails.

// Signals to child processes (rustix::process): Unix only.
#![cfg(unix)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
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
fn serve_stops_with_141_and_its_summary_when_its_stdout_is_closed() {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--bind", "127.0.0.1:0"]);
    let mut proc = Proc::spawn(cmd);
    let line = proc.stderr_line("listening on ");
    let addr: SocketAddr = line["listening on ".len()..].parse().unwrap();
    // Close the read end of the server's stdout: its next write fails with EPIPE.
    // (Its line reader is dropped: the reading thread stops at the next line and closes
    // the pipe.)
    drop(std::mem::replace(
        &mut proc.stdout,
        Lines::new(std::io::empty()),
    ));
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

#[test]
fn serve_json_stops_within_500_ms_when_nobody_reads_stdout() {
    json_stops_within_500_ms_with_an_unread_stdout("serve");
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
fn a_server_off_loopback_limits_each_source_by_default() {
    let ns = match broadcast_netns() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("skipped: cannot create a network namespace: {why}");
            return;
        }
    };
    let server = Proc::spawn(ns.udp_echo(&["serve", "--bind", "10.213.7.1:6666", "--quiet"]));
    server.stderr_line("listening on 10.213.7.1:6666");
    server.stderr_line("limits: 1000 replies/s per source (bursts of 100), no total limit");
    // One source keeping 64 requests in flight: past the burst, replies are limited and
    // its window stalls on the lost requests (bench waits a second for each).
    let out = ns
        .udp_echo(&[
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
    let ns = or_skip!(Netns::empty(NS_PREFIX));
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
    let (server_ns, client_ns) = or_skip!(Netns::veth_pair(
        NS_PREFIX,
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
    let (server_ns, client_ns) = or_skip!(Netns::veth_pair(
        NS_PREFIX,
        &["10.7.0.1/24"],
        &["10.7.0.2/24"]
    ));
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
    // A second to answer: on a loaded machine (tests run in parallel) a reply can lag.
    let found = client_ns.run(&["discover", "--to", "10.7.0.255:6666", "--wait", "1s"]);
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
                "64",
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
