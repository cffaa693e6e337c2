//! The host's `udp-echo` ↔ smoltcp's `firmware-example` over a real TAP device, inside a
//! network namespace each test creates and always deletes (root only: otherwise each test
//! prints `skipped: …` and passes).
//!
//! Layout inside namespace `udpecho-tap-<pid>-<test>`: Linux owns `tap0` with
//! 192.168.69.100/24; `firmware-example` attaches to `tap0` as 192.168.69.1/24 with its
//! own smoltcp stack. 192.168.69.0/24 exists only in that namespace, so no packet leaves it.
//!
//! The binaries are built by a nested `cargo build` (same profile and target directory as
//! this test), each only when a test needs it, and found next to this test's `deps/`
//! directory. Every wait has a deadline; children are killed and reaped, and the namespace
//! deleted, by drop guards.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

const LINUX_IP: &str = "192.168.69.100";
const FIRMWARE_CIDR: &str = "192.168.69.1/24";
const FIRMWARE_IP: &str = "192.168.69.1";
/// On the link, but nobody's: ARP for it is never answered.
const ABSENT_IP: &str = "192.168.69.50";
const PORT: u16 = 6666;
/// The package of the host's `udp-echo` binary.
const HOST_PACKAGE: &str = "udp-echo";
/// The package of the TAP binary `firmware-example`.
const FIRMWARE_PACKAGE: &str = "udp-echo-tap";
/// Generous bound for one exchange (the client's own schedule ends at 3.1 s).
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(10);
/// Bound for a server to say `listening on`.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);
/// Bound for the nested `cargo build` (the binaries are usually up to date).
const BUILD_DEADLINE: Duration = Duration::from_secs(900);
/// CPU a client may use while it waits out its 3.1 s schedule: a generous bound that a
/// client waking every millisecond (≈ 3,000 wake-ups) would not meet on these machines.
const IDLE_CPU_LIMIT: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------
// Preconditions and binaries

/// Why this machine cannot run the test, if it cannot.
fn skip_reason() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    if euid != Some("0") {
        return Some("needs root (network namespaces and TAP devices)".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing (no TUN/TAP support)".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("the `ip` command (iproute2) is missing".into()),
    }
}

/// Returns early from the test with `skipped: …` when the machine cannot run it.
macro_rules! require_root_and_tap {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// The host's `udp-echo`, built once.
fn host_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build(HOST_PACKAGE, "udp-echo"))
}

/// The TAP binary `firmware-example`, built once.
fn firmware_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build(FIRMWARE_PACKAGE, "firmware-example"))
}

/// Builds binary `bin` of `package` with this test's profile, target directory and target
/// triple, and returns its path.
fn build(package: &str, bin: &str) -> PathBuf {
    // current_exe: <target-dir>[/<triple>]/<profile-dir>/deps/tap-<hash>
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in <profile>/deps")
        .to_path_buf();
    let profile_name = profile_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut parent = profile_dir.parent().unwrap().to_path_buf();
    let mut target = None;
    if !parent.join("CACHEDIR.TAG").exists() && parent.parent().is_some() {
        // <target-dir>/<triple>/<profile>: a cross/explicit --target build.
        target = Some(parent.file_name().unwrap().to_string_lossy().into_owned());
        parent = parent.parent().unwrap().to_path_buf();
    }
    let profile = match profile_name.as_str() {
        "debug" => "dev".to_owned(),
        other => other.to_owned(),
    };
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(workspace)
        .args(["build", "-p", package, "--bin", bin, "--profile", &profile])
        .arg("--target-dir")
        .arg(&parent);
    if let Some(triple) = &target {
        cargo.args(["--target", triple]);
    }
    let started = Instant::now();
    let out = run_bounded(cargo, BUILD_DEADLINE);
    assert!(
        out.status.success(),
        "cargo build -p {package} --bin {bin} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "built {bin} in {:.1} s ({profile} profile)",
        started.elapsed().as_secs_f64()
    );
    let path = profile_dir.join(bin);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

// ---------------------------------------------------------------------------------------
// Processes with deadlines

/// A child that is killed and reaped when dropped, whatever happened.
struct Reaped {
    child: Child,
    what: String,
}

impl Reaped {
    fn spawn(mut command: Command, what: &str) -> Self {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Reaped {
            child,
            what: what.to_owned(),
        }
    }

    /// Waits for the child to exit, at most `deadline`; kills it (and fails) after that.
    fn wait(&mut self, deadline: Duration) -> ExitStatus {
        self.wait_with_cpu(deadline).0
    }

    /// Like [`wait`](Self::wait), and also returns the CPU time (user + system, its own
    /// and its reaped children's) the child used. std reaps without `rusage`, so the times
    /// are read from `/proc/<pid>/stat` while the exited child is still a zombie
    /// (clock-tick resolution, 10 ms here).
    fn wait_with_cpu(&mut self, deadline: Duration) -> (ExitStatus, Duration) {
        let stat = format!("/proc/{}/stat", self.child.id());
        let until = Instant::now() + deadline;
        let ticks = loop {
            let text = std::fs::read_to_string(&stat).expect("an unreaped child's /proc entry");
            // After "pid (comm) ": state, then fields 4..: utime, stime, cutime and
            // cstime are fields 14 to 17 of proc(5).
            let fields: Vec<&str> = text[text.rfind(')').expect("(comm)") + 1..]
                .split_whitespace()
                .collect();
            if fields[0] == "Z" {
                break fields[11..15]
                    .iter()
                    .map(|f| f.parse::<u64>().expect("a tick count"))
                    .sum::<u64>();
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not exit within {deadline:?}; killed", self.what);
            }
            thread::sleep(Duration::from_millis(5));
        };
        let status = self.child.wait().expect("wait");
        (
            status,
            Duration::from_micros(ticks * 1_000_000 / clock_ticks_per_second()),
        )
    }

    /// Sends SIGTERM (a clean stop for the servers) through kill(1).
    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Lines of a child's pipe, read by a thread, so that they can be awaited with a deadline.
struct Lines {
    rx: Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn new(pipe: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The first line (from now on) containing `needle`, waiting at most `deadline`.
    fn wait_for(&mut self, needle: &str, deadline: Duration) -> Option<String> {
        let until = Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Everything read so far, plus what arrives within `grace` (until the pipe closes).
    fn drain(&mut self, grace: Duration) -> String {
        let until = Instant::now() + grace;
        while let Ok(line) = self
            .rx
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

/// `sysconf(_SC_CLK_TCK)`, through getconf(1) (no libc here); 100 on Linux if it fails.
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// Runs `command` to completion, killing it after `deadline`.
fn run_bounded(command: Command, deadline: Duration) -> Output {
    run_measured(command, deadline).0
}

/// Runs `command` to completion, killing it after `deadline`; also returns the CPU time it
/// used (see [`Reaped::wait_with_cpu`]).
fn run_measured(command: Command, deadline: Duration) -> (Output, Duration) {
    let what = format!("{command:?}");
    let mut child = Reaped::spawn(command, &what);
    let mut stdout = child.child.stdout.take().unwrap();
    let mut stderr = child.child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let (status, cpu) = child.wait_with_cpu(deadline);
    let output = Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    };
    (output, cpu)
}

// ---------------------------------------------------------------------------------------
// The namespace

/// A network namespace with `tap0` at 192.168.69.100/24, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create(test: &str) -> Self {
        remove_stale_namespaces();
        let name = format!("udpecho-tap-{}-{test}", std::process::id());
        ip(&["netns", "add", &name]);
        // From here on, the guard deletes the namespace even if a later step fails.
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ip(&[
            "-n", &ns.name, "tuntap", "add", "name", "tap0", "mode", "tap",
        ]);
        let cidr = format!("{LINUX_IP}/24");
        ip(&["-n", &ns.name, "addr", "add", &cidr, "dev", "tap0"]);
        ip(&["-n", &ns.name, "link", "set", "tap0", "up"]);
        ns
    }

    /// `program args…` inside the namespace.
    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .arg(program)
            .args(args);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet(&["-n", &self.name, "link", "del", "tap0"]);
        quiet(&["netns", "del", &self.name]);
    }
}

/// Deletes namespaces left by earlier runs of this test that were killed before their
/// guards ran (`udpecho-tap-<pid>-…` whose process is gone).
fn remove_stale_namespaces() {
    let Ok(list) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix("udpecho-tap-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn ip(args: &[&str]) {
    let mut command = Command::new("ip");
    command.args(args);
    let out = run_bounded(command, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The firmware's options before its subcommand.
fn firmware_args<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--tap", "tap0", "--ip", FIRMWARE_CIDR];
    args.extend_from_slice(rest);
    args
}

/// `rtt X ms` from the firmware client's summary line.
fn reported_rtt_ms(stderr: &str) -> Option<f64> {
    let rest = &stderr[stderr.find("rtt ")? + 4..];
    rest.split_whitespace().next()?.parse().ok()
}

// ---------------------------------------------------------------------------------------
// The checks

/// Asserts that a client run succeeded with exactly `Your data was N bytes` on stdout, N
/// being `message`'s length; returns its stderr.
fn assert_byte_count(who: &str, out: &Output, message: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{who}: {:?}: {stderr}", out.status);
    assert_eq!(stdout, format!("Your data was {} bytes\n", message.len()));
    stderr
}

/// Starts a server in `ns` and waits for its `listening on` line; returns it with its
/// stdout and stderr lines.
fn spawn_listening(
    ns: &Netns,
    bin: &std::path::Path,
    args: &[&str],
    name: &'static str,
) -> (Reaped, Lines, Lines) {
    let mut server = Reaped::spawn(ns.command(bin, args), name);
    let server_out = Lines::new(server.child.stdout.take().unwrap());
    let mut server_err = Lines::new(server.child.stderr.take().unwrap());
    assert!(
        server_err
            .wait_for("listening on", STARTUP_DEADLINE)
            .is_some(),
        "{name} did not start: {}",
        server_err.drain(Duration::ZERO)
    );
    (server, server_out, server_err)
}

#[test]
fn firmware_client_gets_its_byte_count_from_the_host_server() {
    require_root_and_tap!();
    let started = Instant::now();
    let ns = Netns::create("c");

    let bind = format!("{LINUX_IP}:{PORT}");
    let (mut server, mut server_out, _) = spawn_listening(
        &ns,
        host_bin(),
        &["serve", "--bind", &bind],
        "udp-echo serve",
    );

    let message = "hello over tap";
    let exchange_started = Instant::now();
    let out = run_bounded(
        ns.command(firmware_bin(), &firmware_args(&["client", &bind, message])),
        EXCHANGE_DEADLINE,
    );
    let wall = exchange_started.elapsed();
    let stderr = assert_byte_count("firmware client", &out, message);
    let rtt = reported_rtt_ms(&stderr);
    assert!(rtt.is_some(), "no rtt in: {stderr}");
    assert!(
        stderr.contains("1 attempt,"),
        "a resend was needed: {stderr}"
    );

    // The server saw the firmware's datagram (source 192.168.69.1:<ephemeral>).
    let line = server_out.wait_for(&format!("{FIRMWARE_IP}:"), STARTUP_DEADLINE);
    server.terminate();
    let status = server.wait(Duration::from_secs(5));
    let line = line.unwrap_or_else(|| {
        panic!(
            "udp-echo serve printed no line for {FIRMWARE_IP}: {}",
            server_out.drain(Duration::from_millis(200))
        )
    });
    assert!(line.contains(&message.len().to_string()), "{line}");
    assert!(status.success(), "udp-echo serve on SIGTERM: {status:?}");

    eprintln!(
        "firmware client -> host server over TAP: {stderr_line}; process wall time {:.1} ms; \
         test {:.2} s",
        wall.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64(),
        stderr_line = stderr.trim(),
    );
}

#[test]
fn host_client_gets_its_byte_count_from_the_firmware_server() {
    require_root_and_tap!();
    let started = Instant::now();
    let ns = Netns::create("s");

    let port = PORT.to_string();
    let (mut server, mut server_out, mut server_err) = spawn_listening(
        &ns,
        firmware_bin(),
        &firmware_args(&["server", "--port", &port, "--count", "1"]),
        "firmware-example server",
    );

    let message = "hello from linux";
    let to = format!("{FIRMWARE_IP}:{PORT}");
    let exchange_started = Instant::now();
    let out = run_bounded(
        ns.command(host_bin(), &["send", message, "--server", &to]),
        EXCHANGE_DEADLINE,
    );
    let wall = exchange_started.elapsed();
    let stderr = assert_byte_count("udp-echo send", &out, message);

    // --count 1: the firmware server stops by itself after its reply.
    let status = server.wait(Duration::from_secs(5));
    let lines = server_out.drain(Duration::from_millis(500));
    assert!(
        status.success(),
        "firmware server: {status:?}: {}",
        server_err.drain(Duration::from_millis(200))
    );
    let expected = format!("sent {} bytes", message.len());
    assert!(
        lines
            .lines()
            .any(|l| l.starts_with(&format!("{LINUX_IP}:")) && l.ends_with(&expected)),
        "firmware server output: {lines}"
    );

    eprintln!(
        "host client -> firmware server over TAP: udp-echo send said {:?}; process wall time \
         {:.1} ms; test {:.2} s",
        stderr.trim(),
        wall.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64(),
    );
}

#[test]
fn firmware_client_gives_up_on_the_default_schedule() {
    require_root_and_tap!();
    let ns = Netns::create("g");

    // Nobody listens on this port: Linux answers ICMP port unreachable, which smoltcp
    // does not pass to UDP sockets, so the client must run its whole schedule.
    let to = format!("{LINUX_IP}:{}", PORT + 1);
    let firmware = firmware_bin(); // built (if need be) before the clock starts
    let started = Instant::now();
    let out = run_bounded(
        ns.command(firmware, &firmware_args(&["client", &to, "anyone?"])),
        EXCHANGE_DEADLINE,
    );
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("after 5 attempts"), "{stderr}");
    assert!(stderr.contains(" in 3100 ms"), "{stderr}");
    assert!(
        (Duration::from_millis(3100)..Duration::from_secs(10)).contains(&wall),
        "gave up after {wall:?}"
    );
    eprintln!("firmware client gave up: {}; wall {wall:?}", stderr.trim());
}

#[test]
fn firmware_client_gives_up_on_time_at_an_address_nobody_answers() {
    require_root_and_tap!();
    let firmware = firmware_bin();
    let ns = Netns::create("a");

    // Nobody answers ARP for this address, so smoltcp never sends to it: the socket's
    // queue fills and every later send says WouldBlock. The schedule must still end at
    // 3.1 s, with the client asleep meanwhile.
    let to = format!("{ABSENT_IP}:{PORT}");
    let started = Instant::now();
    let (out, cpu) = run_measured(
        ns.command(firmware, &firmware_args(&["client", &to, "hi"])),
        EXCHANGE_DEADLINE,
    );
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    let gave_up = stderr
        .lines()
        .find(|l| l.contains(&format!("no reply from {to} after")))
        .unwrap_or_else(|| panic!("no give-up line in: {stderr}"));
    assert!(gave_up.contains(" in 3100 ms"), "{gave_up}");
    assert!(
        (Duration::from_millis(3100)..Duration::from_secs(10)).contains(&wall),
        "gave up after {wall:?}"
    );
    assert!(
        cpu < IDLE_CPU_LIMIT,
        "the client used {cpu:?} of CPU in {wall:?}: {stderr}"
    );
    eprintln!(
        "firmware client to an absent peer: {}; wall {:.3} s, CPU {} ms\n{stderr}",
        gave_up.trim(),
        wall.as_secs_f64(),
        cpu.as_millis()
    );
}

#[test]
fn firmware_reports_a_tap_that_is_down_on_the_host_side() {
    require_root_and_tap!();
    let ns = Netns::create("d");
    ip(&["-n", &ns.name, "link", "set", "tap0", "down"]);

    // smoltcp's TunTapInterface would panic on the first write (EIO): the binary must
    // refuse to start instead, with the fix in the message.
    let to = format!("{LINUX_IP}:{PORT}");
    let out = run_bounded(
        ns.command(firmware_bin(), &firmware_args(&["client", &to, "hello"])),
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
