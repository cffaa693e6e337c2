//! `udp-echo listen` and `broadcast`: listeners sharing a port, broadcasts in a network
//! namespace, stopping. Every wait is bounded; every child process is killed and reaped by
//! its guard (see `common`).

// Signals to child processes (rustix::process): Unix only.
#![cfg(unix)]

mod common;

use common::*;

#[test]
fn listen_json_stops_within_500_ms_when_nobody_reads_stdout() {
    json_stops_within_500_ms_with_an_unread_stdout("listen");
}

#[test]
fn listeners_sharing_a_port_both_get_a_broadcast() {
    let ns = match broadcast_netns() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("skipped: cannot create a network namespace: {why}");
            return;
        }
    };
    let listen = || {
        let proc = Proc::spawn(ns.udp_echo(&["listen", "--bind", "0.0.0.0:6666"]));
        proc.stderr_line("listening on 0.0.0.0:6666");
        proc
    };
    let (mut a, mut b) = (listen(), listen());
    let mut send = ns.udp_echo(&["broadcast", "hello, LAN", "--to", "10.213.7.255:6666"]);
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
    let mut server = Proc::spawn(ns.udp_echo(&["serve", "--bind", "0.0.0.0:7777", "--quiet"]));
    server.stderr_line("listening on 0.0.0.0:7777");
    let found = ns
        .udp_echo(&["discover", "--to", "10.213.7.255:7777", "--wait", "1s"])
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
