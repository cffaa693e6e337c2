//! The namespace tests of the two TAP binaries (`firmware-example` in `tests/tests/tap.rs`,
//! `embassy-tap` in `firmware-example/embassy-tap/tests/netns.rs`): one layout, one set of
//! deadlines, the same checks of the same output lines.
//!
//! Layout inside a namespace each test creates ([`namespace`]): Linux owns `tap0` with
//! [`LINUX_IP`]/24; the binary attaches to `tap0` as [`STACK_CIDR`] with its own stack
//! ([`stack_args`]). 192.168.69.0/24 exists only in that namespace, so no packet leaves it.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use crate::netns::{Netns, ip};
use crate::process::{BuildDirs, Lines, Reaped, run_bounded};

/// Linux's address on `tap0`.
pub const LINUX_IP: &str = "192.168.69.100";
/// The binary's interface: its `--ip`.
pub const STACK_CIDR: &str = "192.168.69.1/24";
/// The binary's address.
pub const STACK_IP: &str = "192.168.69.1";
/// On the link, but nobody's: ARP for it is never answered.
pub const ABSENT_IP: &str = "192.168.69.50";
/// The servers' port.
pub const PORT: u16 = 6666;
/// Generous bound for one exchange (the client's own schedule ends at 3.1 s).
pub const EXCHANGE_DEADLINE: Duration = Duration::from_secs(10);
/// Bound for a server to say `listening on`.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(10);
/// Bound for a nested `cargo build` (the binaries are usually up to date).
pub const BUILD_DEADLINE: Duration = Duration::from_secs(900);
/// CPU a client may use while it waits out its 3.1 s schedule: a generous bound that a
/// client that spun, or woke every millisecond (≈ 3,000 wake-ups), would not meet.
pub const IDLE_CPU_LIMIT: Duration = Duration::from_millis(300);

/// Returns early from the test with `skipped: …` when the machine cannot run it (not
/// root, no TUN/TAP, no `ip`).
#[macro_export]
macro_rules! require_root_and_tap {
    () => {
        if let Some(why) = $crate::netns::skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// Builds binary `bin` of `package` with this test's profile, target directory and target
/// triple (a nested `cargo build`), and returns its path.
pub fn build(package: &str, bin: &str) -> PathBuf {
    BuildDirs::of_this_test().build_bin(package, bin, BUILD_DEADLINE)
}

/// The host's `udp-echo`, built once.
pub fn host_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build("udp-echo", "udp-echo"))
}

/// A namespace `<prefix>-<pid>-<test>` where Linux owns `tap0` at [`LINUX_IP`]/24.
pub fn namespace(prefix: &str, test: &str) -> Netns {
    Netns::create(prefix, test, &format!("{LINUX_IP}/24"))
}

/// The binary's options before its subcommand (`--tap tap0 --ip` [`STACK_CIDR`]), then
/// `rest`.
pub fn stack_args<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--tap", "tap0", "--ip", STACK_CIDR];
    args.extend_from_slice(rest);
    args
}

/// Asserts that a client run succeeded with exactly `Your data was N bytes` on stdout, N
/// being `len`; returns its stderr.
#[track_caller]
pub fn assert_byte_count(who: &str, out: &Output, len: usize) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{who}: {:?}: {stderr}", out.status);
    assert_eq!(stdout, format!("Your data was {len} bytes\n"));
    stderr
}

/// Starts a server in `ns` and waits for its `listening on` line; returns it with its
/// stdout and stderr lines.
pub fn spawn_listening(
    ns: &Netns,
    bin: &Path,
    args: &[&str],
    name: &str,
) -> (Reaped, Lines, Lines) {
    let mut server = Reaped::spawn(ns.command(bin, args), name);
    let out = Lines::new(server.child.stdout.take().unwrap());
    let mut err = Lines::new(server.child.stderr.take().unwrap());
    assert!(
        err.wait_for("listening on", STARTUP_DEADLINE).is_some(),
        "{name} did not start: {}",
        err.drain(Duration::ZERO)
    );
    (server, out, err)
}

/// Asserts that a client run of binary `name` gave up on `to`: status 1, nothing on
/// stdout, and a line `<name>: no reply from <to> after …` that says 3100 ms, less than
/// `late_ms` late (the instant is exact on virtual time, in the core's timeline tests; here
/// a real clock reports it, and a loaded machine may wake the process a little late).
/// Returns that line.
#[track_caller]
pub fn assert_gave_up(out: &Output, name: &str, to: &str, late_ms: u64) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&format!("{name}: no reply from {to} after")))
        .unwrap_or_else(|| panic!("no give-up line in: {stderr}"));
    let ms: u64 = line
        .split(" in ")
        .last()
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no give-up time in {line}"));
    assert!((3100..3100 + late_ms).contains(&ms), "{line}");
    line.to_owned()
}

/// With `tap0` down on the host side, a client run of `bin` in `ns` must fail with status 1
/// and the fix in its message, not panic (smoltcp's `TunTapInterface` and
/// embassy-net-tuntap's device would, at their first write: `EIO`).
#[track_caller]
pub fn assert_refuses_a_tap_that_is_down(ns: &Netns, bin: &Path) {
    ip(&["-n", &ns.name, "link", "set", "tap0", "down"]);
    let to = format!("{LINUX_IP}:{PORT}");
    let out = run_bounded(
        ns.command(bin, &stack_args(&["client", &to, "hello"])),
        EXCHANGE_DEADLINE,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tap0 is down on the host side: run `ip link set tap0 up`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
