//! Where a client's datagrams go from, as nc and ping users expect: `-4`/`-6`,
//! `--source ADDR[:PORT]` and `--interface IFACE`, checked in a network namespace the test
//! makes (root; otherwise each test says why it skipped).
#![cfg(target_os = "linux")]

use std::time::Duration;

use udp_echo_tests::netns::{Netns, ip, skip_reason};
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

/// A namespace whose `lo` also holds 10.7.0.1/24 and 10.7.0.2/24, and whose /etc/hosts
/// (through `ip netns exec`'s /etc/netns/NAME/hosts) names `both.test` as 127.0.0.1 and ::1.
struct Host {
    ns: Netns,
    hosts_dir: std::path::PathBuf,
}

impl Host {
    fn new(test: &str) -> Self {
        let ns = Netns::create("ue-addr", test, "10.9.9.1/24");
        for a in ["10.7.0.1/24", "10.7.0.2/24"] {
            ip(&["-n", &ns.name, "addr", "add", a, "dev", "lo"]);
        }
        let hosts_dir = std::path::PathBuf::from(format!("/etc/netns/{}", ns.name));
        std::fs::create_dir_all(&hosts_dir).unwrap();
        std::fs::write(
            hosts_dir.join("hosts"),
            "127.0.0.1 localhost both.test\n::1 both.test\n",
        )
        .unwrap();
        Host { ns, hosts_dir }
    }

    /// `udp-echo serve ARGS` inside, its datagram lines readable.
    fn serve(&self, args: &[&str]) -> (Reaped, Lines) {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        let mut server = Reaped::spawn(self.ns.command(BIN, &all), "udp-echo serve");
        let lines = Lines::new(server.child.stdout.take().unwrap());
        let mut err = Lines::new(server.child.stderr.take().unwrap());
        err.wait_for("listening on", PATIENCE)
            .expect("the server did not start");
        (server, lines)
    }

    /// `udp-echo ARGS` inside, to its end: (exit status, stderr).
    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = run_bounded(self.ns.command(BIN, args), PATIENCE);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.hosts_dir);
    }
}

#[test]
fn source_picks_the_address_and_port_a_request_goes_from() {
    or_skip!();
    let host = Host::new("source");
    let (_server, mut lines) = host.serve(&["--bind", "0.0.0.0:6666"]);
    let (code, err) = host.run(&["send", "--source", "10.7.0.2:40000", "10.7.0.1:6666", "hi"]);
    assert_eq!(code, Some(0), "{err}");
    let line = lines.wait_for("sent 2 bytes", PATIENCE).expect("no line");
    assert!(line.starts_with("10.7.0.2:40000 "), "{line}");
    // The address alone: the system picks the port.
    let (code, err) = host.run(&["ping", "--source", "10.7.0.2", "10.7.0.1", "-c", "1"]);
    assert_eq!(code, Some(0), "{err}");
    let line = lines.wait_for("sent 12 bytes", PATIENCE).expect("no line");
    assert!(line.starts_with("10.7.0.2:"), "{line}");
    let (code, err) = host.run(&[
        "bench",
        "--source",
        "10.7.0.2",
        "10.7.0.1:6666",
        "--requests",
        "20",
        "-q",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let line = lines.wait_for("sent 12 bytes", PATIENCE).expect("no line");
    assert!(line.starts_with("10.7.0.2:"), "{line}");
    // Not an address of this machine, or of another family: exit 2, said plainly.
    let (code, err) = host.run(&["send", "--source", "10.8.0.1", "10.7.0.1:6666", "hi"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not one of this machine's"), "{err}");
    let (code, err) = host.run(&["send", "--source", "[::1]", "10.7.0.1:6666", "hi"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("different address families"), "{err}");
}

#[test]
fn interface_ties_the_request_to_one_interface() {
    or_skip!();
    let host = Host::new("iface");
    let (_server, mut lines) = host.serve(&["--bind", "0.0.0.0:6666"]);
    let (code, err) = host.run(&["send", "--interface", "lo", "10.7.0.1:6666", "hi"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(lines.wait_for("sent 2 bytes", PATIENCE).is_some());
    // Through tap0 nothing can reach 10.7.0.1 (no one is behind it): no reply.
    let (code, err) = host.run(&[
        "send",
        "--interface",
        "tap0",
        "10.7.0.1:6666",
        "hi",
        "--attempts",
        "1",
        "--initial-timeout",
        "200ms",
    ]);
    assert_eq!(code, Some(1), "{err}");
    let (code, err) = host.run(&["send", "--interface", "nosuch0", "10.7.0.1:6666", "hi"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no interface `nosuch0`"), "{err}");
}

#[test]
fn four_and_six_pick_the_family_a_name_resolves_to() {
    or_skip!();
    let host = Host::new("family");
    let (_server, mut lines) = host.serve(&["--bind", "[::]:6666"]);
    for (flags, from) in [
        (&["-6"][..], "[::1]:"),
        (&["-4"][..], "127.0.0.1:"),
        (&[][..], "127.0.0.1:"), // IPv4 first, as before
    ] {
        let mut args = vec!["send"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["both.test", "hello"]);
        let (code, err) = host.run(&args);
        assert_eq!(code, Some(0), "{flags:?}: {err}");
        let line = lines.wait_for("sent 5 bytes", PATIENCE).expect("no line");
        assert!(line.starts_with(from), "{flags:?}: {line}");
    }
    let (code, err) = host.run(&["ping", "-6", "both.test", "-c", "1"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = host.run(&["bench", "-6", "both.test", "--requests", "50", "-q"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        lines.wait_for("[::1]:", PATIENCE).is_some(),
        "bench -6 went to [::1]"
    );
    // -6 alone: the default server is [::1]:6666.
    let (code, err) = host.run(&["send", "-6", "hi"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("reply from [::1]:6666"), "{err}");
    // An address of the other family is refused.
    let (code, err) = host.run(&["send", "-4", "[::1]:6666", "hi"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("-4 asks for IPv4"), "{err}");
}
