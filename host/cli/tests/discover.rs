//! `udp-echo discover` over real sockets. Every wait is bounded; every child process is
//! killed and reaped by its guard (see `common`).

// Signals to child processes (rustix::process): Unix only.
#![cfg(unix)]

mod common;

use common::*;

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
