//! What users type that used to end in a kernel errno, a silent wrong answer or a
//! misleading message: each case with the exit status and the words it gets now.
#![cfg(unix)]

use std::net::UdpSocket;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_udp-echo");
const PATIENCE: Duration = Duration::from_secs(20);

/// `udp-echo ARGS` to its end, bounded by PATIENCE (killed past it).
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("udp-echo {args:?} ran past {PATIENCE:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A server on 127.0.0.1 that answers each datagram with `answer(request)` (or nothing),
/// for at most `n` datagrams or 10 s.
fn fake_server(n: usize, answer: fn(&[u8]) -> Option<Vec<u8>>) -> String {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let addr = s.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for _ in 0..n {
            let Ok((len, from)) = s.recv_from(&mut buf) else {
                return;
            };
            if let Some(reply) = answer(&buf[..len]) {
                let _ = s.send_to(&reply, from);
            }
        }
    });
    addr
}

#[test]
fn bad_input_is_exit_2_with_what_to_do_instead() {
    // (arguments, words the message must hold)
    let table: &[(&[&str], &[&str])] = &[
        (
            &["send", "255.255.255.255", "hi"],
            &[
                "broadcast address",
                "udp-echo discover",
                "udp-echo broadcast",
            ],
        ),
        (&["discover", "--port", "0"], &["--port", "0"]),
        (
            &["serve", "--interface", "nosuch0"],
            &["no interface `nosuch0`"],
        ),
        (
            &["listen", "--interface", "nosuch0"],
            &["no interface `nosuch0`"],
        ),
        (
            &["bench", "255.255.255.255:7", "-t", "1"],
            &["broadcast address"],
        ),
        (&["ping", "224.0.0.1", "-c", "1"], &["broadcast address"]),
        (
            &["send", "[fe80::1]:6666", "hi"],
            &["link-local", "%INTERFACE"],
        ),
        (
            &["ping", "fe80::1", "-c", "1"],
            &["link-local", "%INTERFACE"],
        ),
        (&["bench", "[fe80::1]:7", "-t", "1"], &["link-local"]),
        (&["serve", "--bind", "[fe80::1]:0"], &["link-local"]),
        (&["listen", "--bind", "[fe80::1]:0"], &["link-local"]),
        (&["discover", "--to", "[ff02::1]:6666"], &["link-local"]),
        (
            &["broadcast", "hi", "--to", "[ff02::1]:6666"],
            &["link-local"],
        ),
        (
            &["send", "[fe80::1%nosuchif0]:7", "hi"],
            &["no interface `nosuchif0`"],
        ),
        (&["ping", "-c", "-1"], &["-c", "-1"]),
        (&["discover", "-6"], &["IPv6 has no broadcast", "ff02::1%"]),
        (
            &["send", "-4", "[::1]:7", "hi"],
            &["IPv6 address", "-4 asks for IPv4"],
        ),
        (&["send", "--attempts", "0", "hi"], &["--attempts", "1.."]),
        (
            &["send", "--attempts", "99999999999", "hi"],
            &["--attempts", "1.."],
        ),
    ];
    for (args, words) in table {
        let ran = run(args);
        let err = stderr(&ran);
        assert_eq!(ran.status.code(), Some(2), "{args:?}: {err}");
        for w in *words {
            assert!(err.contains(w), "{args:?}: {w:?} not in {err}");
        }
        assert!(!err.contains("os error"), "{args:?}: a raw errno: {err}");
        assert!(
            !err.contains("tip: to pass"),
            "{args:?}: clap's `--` tip: {err}"
        );
    }
}

#[test]
fn the_unspecified_address_as_a_target_gets_its_reply() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    server.set_read_timeout(Some(PATIENCE)).unwrap();
    let echo = thread::spawn(move || {
        let mut buf = [0u8; 64];
        for _ in 0..2 {
            let (len, from) = server.recv_from(&mut buf).unwrap();
            server
                .send_to(format!("Your data was {len} bytes").as_bytes(), from)
                .unwrap();
        }
    });
    for target in [
        format!("0.0.0.0:{port}"),
        format!("[::ffff:0.0.0.0]:{port}"),
    ] {
        let ran = run(&["send", &target, "hi", "--attempts", "1"]);
        assert_eq!(ran.status.code(), Some(0), "{target}: {}", stderr(&ran));
        assert_eq!(
            String::from_utf8_lossy(&ran.stdout),
            "Your data was 2 bytes\n"
        );
        assert!(stderr(&ran).contains(&format!("reply from 127.0.0.1:{port}")));
    }
    echo.join().unwrap();
}

#[test]
fn ignored_replies_are_named_in_the_final_message_without_verbose() {
    let garbling = fake_server(1, |_| Some(b"hello there".to_vec()));
    let ran = run(&[
        "send",
        &garbling,
        "hi",
        "--attempts",
        "1",
        "--initial-timeout",
        "300ms",
    ]);
    let err = stderr(&ran);
    assert_eq!(ran.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "ignored 1 datagram: 1 from {garbling} (not a byte-count reply)"
        )),
        "{err}"
    );
    let miscounting = fake_server(1, |_| Some(b"Your data was 99 bytes".to_vec()));
    let ran = run(&[
        "send",
        &miscounting,
        "hi",
        "--attempts",
        "1",
        "--initial-timeout",
        "300ms",
    ]);
    let err = stderr(&ran);
    assert!(err.contains("(a reply with another count)"), "{err}");
}

#[test]
fn a_sub_microsecond_interval_is_shown_in_nanoseconds() {
    let server = fake_server(1, |req| {
        Some(format!("Your data was {} bytes", req.len()).into_bytes())
    });
    let ran = run(&["ping", &server, "-c", "1", "-i", "1ns"]);
    let out = String::from_utf8_lossy(&ran.stdout);
    assert!(out.contains("every 1 ns"), "{out}");
}

/// `udp-echo serve ARGS` with stdout to `stdout`; returns the child and its address.
fn serve_to(stdout: Stdio, args: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    // Keep reading stderr so the child never blocks on it; hand the rest back at the end.
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut rest);
        let _ = tx.send(rest);
    });
    STDERR.with(|s| *s.borrow_mut() = Some(rx));
    (child, addr)
}

thread_local! {
    static STDERR: std::cell::RefCell<Option<std::sync::mpsc::Receiver<String>>> =
        const { std::cell::RefCell::new(None) };
}

/// The rest of the last `serve_to` child's stderr once it has ended.
fn rest_of_stderr() -> String {
    STDERR.with(|s| {
        s.borrow_mut()
            .take()
            .map(|rx| rx.recv_timeout(PATIENCE).unwrap_or_default())
            .unwrap_or_default()
    })
}

fn wait_bounded(child: &mut std::process::Child) -> Option<i32> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("serve ran past {PATIENCE:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn serve_on_a_full_stdout_names_the_write_error() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let (mut child, addr) = serve_to(Stdio::from(full), &[]);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Lines are buffered and flushed when idle: one datagram and a pause are enough.
    for _ in 0..3 {
        c.send_to(b"hello", &addr).unwrap();
        thread::sleep(Duration::from_millis(150));
    }
    let code = wait_bounded(&mut child);
    let err = rest_of_stderr();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("stopped by a failed write to stdout (No space left on device)"),
        "{err}"
    );
}

#[test]
fn each_server_threads_summary_says_which_thread_it_is() {
    let (mut child, addr) = serve_to(Stdio::piped(), &["--threads", "2", "--max-lines", "1"]);
    let mut out = child.stdout.take().unwrap();
    // Many sources, so SO_REUSEPORT gives both threads some: more than one line a second
    // each, so each thread sums up the rest.
    for _ in 0..3 {
        for _ in 0..32 {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            for _ in 0..4 {
                c.send_to(b"hello", &addr).unwrap();
            }
        }
        thread::sleep(Duration::from_millis(600));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert_eq!(wait_bounded(&mut child), Some(0));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut out, &mut text).unwrap();
    let summaries: Vec<&str> = text.lines().filter(|l| l.starts_with('…')).collect();
    assert!(!summaries.is_empty(), "{text}");
    for l in &summaries {
        assert!(
            l.starts_with("… thread 1: ") || l.starts_with("… thread 2: "),
            "{l}"
        );
    }
}
