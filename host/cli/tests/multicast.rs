//! Multicast across a link: two network namespaces joined by a veth pair (IPv4 multicast
//! does not pass between two interfaces of one namespace: the kernel drops a packet whose
//! source is a local address). Root only; otherwise each test says why it skipped.
#![cfg(target_os = "linux")]

use std::time::Duration;

use udp_echo_tests::netns::{Netns, skip_reason};
use udp_echo_tests::process::{Lines, Reaped, run_bounded};

const BIN: &str = env!("CARGO_BIN_EXE_udp-echo");
const PATIENCE: Duration = Duration::from_secs(10);

macro_rules! or_skip {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// `udp-echo ARGS` in `ns`, running; its stdout lines readable once it said `listening`.
fn start(ns: &Netns, args: &[&str]) -> (Reaped, Lines) {
    let mut p = Reaped::spawn(ns.command(BIN, args), "udp-echo");
    let out = Lines::new(p.child.stdout.take().unwrap());
    let mut err = Lines::new(p.child.stderr.take().unwrap());
    err.wait_for("listening on", PATIENCE)
        .expect("it did not start");
    (p, out)
}

/// `udp-echo ARGS` in `ns`, to its end: (status, stdout, stderr).
fn run(ns: &Netns, args: &[&str]) -> (Option<i32>, String, String) {
    let out = run_bounded(ns.command(BIN, args), PATIENCE);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_listener_bound_to_a_group_joins_it_and_hears_what_is_sent_there() {
    or_skip!();
    let (a, b) = Netns::pair("ue-mc", "v4listen", "10.7.0.1/24", "10.7.0.2/24");
    let (_l, mut heard) = start(&a, &["listen", "--bind", "239.1.2.3:6666"]);
    let (code, out, err) = run(
        &b,
        &[
            "broadcast",
            "hello, group",
            "--to",
            "239.1.2.3:6666",
            "--interface",
            "vb",
            "--ttl",
            "1",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "sent 12 bytes to 239.1.2.3:6666\n");
    let line = heard
        .wait_for("hello, group", PATIENCE)
        .expect("nothing heard");
    assert!(line.starts_with("10.7.0.2:"), "{line}");
}

#[test]
fn discover_finds_a_server_on_an_ipv4_group() {
    or_skip!();
    let (a, b) = Netns::pair("ue-mc", "v4disc", "10.7.0.1/24", "10.7.0.2/24");
    let (_s, _) = start(&a, &["serve", "--bind", "239.1.2.3:6666", "--quiet"]);
    let (code, out, err) = run(
        &b,
        &[
            "discover",
            "--to",
            "239.1.2.3:6666",
            "--interface",
            "vb",
            "--wait",
            "500ms",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    // The reply comes from the server's own address: a group cannot be a source.
    assert!(out.starts_with("10.7.0.1:6666 answered in"), "{out}");
}

#[test]
fn discover_finds_a_server_over_ipv6_through_the_all_nodes_group() {
    or_skip!();
    let (a, b) = Netns::pair("ue-mc", "v6disc", "10.7.0.1/24", "10.7.0.2/24");
    let (_s, _) = start(&a, &["serve", "--bind", "[::]:6666", "--quiet"]);
    let (code, out, err) = run(
        &b,
        &["discover", "--to", "[ff02::1%vb]:6666", "--wait", "500ms"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("[fe80::"), "{out}");
    assert!(out.contains("]:6666 answered in"), "{out}");
    assert!(err.contains("at [ff02::1%"), "the scope is kept: {err}");
}

#[test]
fn an_ipv6_listener_bound_to_a_scoped_group_hears_it() {
    or_skip!();
    let (a, b) = Netns::pair("ue-mc", "v6listen", "10.7.0.1/24", "10.7.0.2/24");
    let (_l, mut heard) = start(&a, &["listen", "--bind", "[ff02::1234%va]:6666"]);
    let (code, _, err) = run(&b, &["broadcast", "hi six", "--to", "[ff02::1234%vb]:6666"]);
    assert_eq!(code, Some(0), "{err}");
    let line = heard.wait_for("hi six", PATIENCE).expect("nothing heard");
    assert!(line.starts_with("[fe80::"), "{line}");
}

#[test]
fn interface_says_where_a_group_is_joined_and_where_a_server_answers() {
    or_skip!();
    let (a, b) = Netns::pair("ue-mc", "iface", "10.7.0.1/24", "10.7.0.2/24");
    let (_l, mut heard) = start(
        &a,
        &["listen", "--bind", "239.9.9.9:6666", "--interface", "va"],
    );
    let (code, _, err) = run(
        &b,
        &[
            "broadcast",
            "on va",
            "--to",
            "239.9.9.9:6666",
            "--interface",
            "vb",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(heard.wait_for("on va", PATIENCE).is_some());
    // A server tied to lo does not answer what arrives on va.
    let (_s, _) = start(
        &a,
        &[
            "serve",
            "--bind",
            "0.0.0.0:7000",
            "--interface",
            "lo",
            "--quiet",
        ],
    );
    let (code, _, err) = run(
        &b,
        &[
            "send",
            "10.7.0.1:7000",
            "hi",
            "--attempts",
            "1",
            "--initial-timeout",
            "300ms",
        ],
    );
    assert_eq!(code, Some(1), "answered through lo: {err}");
    let (_s2, _) = start(
        &a,
        &[
            "serve",
            "--bind",
            "0.0.0.0:7001",
            "--interface",
            "va",
            "--quiet",
        ],
    );
    let (code, _, err) = run(&b, &["send", "10.7.0.1:7001", "hi"]);
    assert_eq!(code, Some(0), "{err}");
}
