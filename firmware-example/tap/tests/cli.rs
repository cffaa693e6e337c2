//! The `firmware-example` binary's command line: usage errors exit 2 with a clear message
//! before any device is touched, `--help` shows a worked example, and a TAP device that
//! cannot be opened is a clear error (exit 1), not a panic.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_firmware-example");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run firmware-example")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit status 2, nothing on stdout, and `needle` in the message.
#[track_caller]
fn assert_usage_error(args: &[&str], needle: &str) {
    let out = run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}: stdout {:?}", out.stdout);
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err}"
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

#[test]
fn bad_ip_is_a_usage_error() {
    let client = ["client", "192.168.69.100:6666", "hi"];
    // smoltcp's parser says only "no": one message for every malformed CIDR.
    let malformed = "expected ADDRESS/PREFIX with a prefix of 0 to 32";
    for (ip, why) in [
        ("192.168.69.1", malformed),
        ("192.168.69/24", malformed),
        ("192.168.69.1/33", malformed),
        ("192.168.69.1/x", malformed),
        ("224.0.0.1/4", "224.0.0.1 is not a unicast host address"),
        ("0.0.0.0/0", "0.0.0.0 is not a unicast host address"),
    ] {
        let args = [&["--ip", ip][..], &client].concat();
        assert_usage_error(
            &args,
            &format!("invalid value '{ip}' for '--ip <ADDR/PREFIX>'"),
        );
        assert_usage_error(&args, why);
    }
}

#[test]
fn missing_subcommand_is_a_usage_error() {
    assert_usage_error(&["--ip", "192.168.69.1/24"], "requires a subcommand");
    // No arguments at all: clap prints the help (on stderr) and exits 2.
    assert_usage_error(&[], "Usage: firmware-example [OPTIONS] <COMMAND>");
}

#[test]
fn other_bad_arguments_are_usage_errors() {
    assert_usage_error(
        &["--mac", "01:00:5e:00:00:01", "server"],
        "multicast or broadcast MAC",
    );
    assert_usage_error(&["--mac", "02:00:00", "server"], "six hex bytes");
    assert_usage_error(
        &["--mac", "02:00:00:00:00:01:02", "server"],
        "six hex bytes",
    );
    assert_usage_error(&["--gateway", "nope", "server"], "IPv4 address");
    assert_usage_error(&["--gateway", "255.255.255.255", "server"], "not a unicast");
    assert_usage_error(&["--tap", "a-name-far-too-long", "server"], "1 to 15 bytes");
    assert_usage_error(&["client", "192.168.69.100", "hi"], "ADDR:PORT");
    assert_usage_error(&["client", "192.168.69.100:0", "hi"], "port cannot be 0");
    assert_usage_error(&["client", "[::1]:6666", "hi"], "IPv4 only");
    assert_usage_error(&["client", "192.168.69.100:6666"], "<MESSAGE>");
    assert_usage_error(&["server", "--port", "0"], "--port");
    assert_usage_error(&["server", "--count", "0"], "--count");
    assert_usage_error(&["serve"], "unrecognized subcommand 'serve'");
}

#[test]
fn help_shows_an_example_and_the_exit_statuses() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Usage: firmware-example [OPTIONS] <COMMAND>",
        "--tap <NAME>",
        "--ip <ADDR/PREFIX>",
        "Examples",
        "firmware-example --tap tap0 --ip 192.168.69.1/24 client 192.168.69.100:6666 hello",
        "firmware-example --tap tap0 --ip 192.168.69.1/24 server --port 6666",
        "Exit status",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
}

/// Without CAP_NET_ADMIN, attaching to a new TAP device fails: the binary must say so and
/// exit 1. As root, the binary runs as `nobody` with no capabilities (via `setpriv`).
#[test]
fn tap_without_permission_is_a_clear_error() {
    let args = [
        "--tap",
        "udpecho-noperm",
        "client",
        "192.168.69.100:6666",
        "hi",
    ];
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let out = if is_root {
        let setpriv = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                BIN,
            ])
            .args(args)
            .output();
        match setpriv {
            Ok(out) if out.status.code() != Some(127) && out.status.code() != Some(126) => out,
            _ => {
                eprintln!("skipped: running as root and `setpriv` cannot drop privileges here");
                return;
            }
        }
    } else {
        run(&args)
    };
    let err = stderr(&out);
    if !err.contains("cannot open TAP device") && !err.contains("panicked") {
        eprintln!("skipped: this process may open TAP devices (CAP_NET_ADMIN?): {err}");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot open TAP device \"udpecho-noperm\""),
        "{err}"
    );
    assert!(
        err.contains("CAP_NET_ADMIN") || err.contains("/dev/net/tun"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
