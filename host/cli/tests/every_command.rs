//! What every subcommand shares: usage errors, addresses, short flags, a closed or full
//! stdout, and completions and man pages from the clap definitions. Every wait is bounded;
//! every child process is killed and reaped by its guard (see `common`).

// Signals to child processes (rustix::process): Unix only.
#![cfg(unix)]

mod common;

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

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
    let mut guard = Reaped::start(cmd, "udp-echo");
    drop(guard.child.stdout.take()); // the reader is gone before the first line
    let err = read_all(guard.child.stderr.take().unwrap());
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = guard.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "ping did not end");
        thread::sleep(Duration::from_millis(5));
    };
    let stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    assert_eq!(status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
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
    let mut guard = Reaped::start(cmd, "udp-echo");
    let err = read_all(guard.child.stderr.take().unwrap());
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = guard.try_wait().unwrap() {
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
