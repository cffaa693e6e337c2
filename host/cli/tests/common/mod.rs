//! Helpers shared by the test files that run the `udp-echo` binary on Unix, on top of the
//! workspace's `udp_echo_tests::{process, netns}` (child guards, line readers, CPU time at
//! exit, network namespaces): starting `udp-echo` (whose path only this package's test
//! crates know), bounded runs, servers, peers, a closed UDP port and the namespaces these
//! tests use. Each test file takes it with `mod common;`.

// Each test file uses some of these helpers, never all.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
pub use udp_echo_tests::netns::Netns;
pub use udp_echo_tests::process::{Lines, Reaped, read_all};

pub const BIN: &str = env!("CARGO_BIN_EXE_udp-echo");
/// Upper bound for anything that should happen "at once" on loopback.
pub const PATIENCE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A child process (killed and reaped when dropped) with its stdout and stderr read line
/// by line: the shared [`Reaped`] and [`Lines`], with this file's patience.
pub struct Proc {
    pub child: Reaped,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl Proc {
    pub fn spawn(cmd: Command) -> Proc {
        let what = format!("{cmd:?}");
        let mut child = Reaped::spawn(cmd, &what);
        let stdout = Lines::new(child.child.stdout.take().unwrap());
        let stderr = Lines::new(child.child.stderr.take().unwrap());
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for exit, at most `limit`; `None` if it is still running.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.child.wait_at_most(limit)
    }

    /// Every stdout line up to and including the first that contains `needle`.
    pub fn stdout_until(&self, needle: &str) -> Vec<String> {
        self.stdout
            .until(needle, PATIENCE)
            .unwrap_or_else(|seen| panic!("no line containing {needle:?}; saw {seen:?}"))
    }

    pub fn stdout_line(&self, needle: &str) -> String {
        self.stdout.line(needle, PATIENCE)
    }

    pub fn stderr_line(&self, needle: &str) -> String {
        self.stderr.line(needle, PATIENCE)
    }

    /// Everything left on stderr (call after exit).
    pub fn rest_of_stderr(&self) -> String {
        let mut out = String::new();
        for line in self.stderr.rest(Duration::from_millis(500)) {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    pub fn rest_of_stdout(&self) -> Vec<String> {
        self.stdout.rest(Duration::from_millis(500))
    }
}

/// A running `udp-echo serve` and the address it listens on.
pub struct Serve {
    pub proc: Proc,
    pub addr: SocketAddr,
}

pub fn serve(bind: &str, extra: &[&str]) -> Serve {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--bind", bind]).args(extra);
    let proc = Proc::spawn(cmd);
    let line = proc.stderr_line("listening on ");
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .parse()
        .unwrap();
    Serve { proc, addr }
}

/// The result of a short-lived command.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
    /// User + system CPU time of the process, read from /proc before it was reaped.
    pub cpu: Option<Duration>,
}

impl Ran {
    pub fn code(&self) -> i32 {
        self.status.code().expect("exited, not killed")
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }
}

/// Runs `udp-echo ARGS` with `stdin`, killing it after `limit`.
pub fn run(args: &[&str], stdin: &[u8], limit: Duration) -> Ran {
    run_with(Command::new(BIN), args, stdin, limit)
}

/// Runs `program ARGS` with an empty stdin, killing it after `limit`.
pub fn run_program(program: &str, args: &[&str], limit: Duration) -> Ran {
    run_with(Command::new(program), args, b"", limit)
}

pub fn run_with(mut cmd: Command, args: &[&str], stdin: &[u8], limit: Duration) -> Ran {
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let what = format!("{cmd:?}");
    let mut child = Reaped::start(cmd, &what);
    let mut input = child.child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = read_all(child.child.stdout.take().unwrap());
    let err = read_all(child.child.stderr.take().unwrap());
    let (status, cpu) = child.wait_measuring(limit);
    let elapsed = start.elapsed();
    Ran {
        status,
        stdout: out.join().unwrap(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        elapsed,
        cpu,
    }
}

/// The port of a socket that was bound and closed again: nothing listens there.
pub fn closed_port(ip: &str) -> SocketAddr {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.local_addr().unwrap()
}

pub fn send_to(server: SocketAddr, message: &str) -> Ran {
    run(
        &["send", message, "--server", &server.to_string()],
        b"",
        PATIENCE,
    )
}

pub fn ipv6_available() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

pub fn python3() -> Option<&'static str> {
    Command::new("python3")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "python3")
}

pub fn peer(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
        .display()
        .to_string()
}

pub fn signal(pid: i32, sig: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid).unwrap(), sig).unwrap();
}

/// A `--json` server or listener whose stdout pipe nobody reads (the pipe fills up and
/// its writer blocks) still stops within 500 ms of SIGTERM.
pub fn json_stops_within_500_ms_with_an_unread_stdout(command: &str) {
    let mut cmd = Command::new(BIN);
    cmd.args([
        command,
        "--bind",
        "127.0.0.1:0",
        "--json",
        "--max-lines",
        "100000",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped()) // kept open, never read: the pipe fills up
    .stderr(Stdio::piped());
    let mut guard = Reaped::start(cmd, command);
    let pipe = guard.child.stdout.take();
    let stderr = Lines::new(guard.child.stderr.take().unwrap());
    let line = stderr.line("listening on ", PATIENCE);
    let addr: SocketAddr = line["listening on ".len()..].parse().unwrap();
    // 2000 datagrams × ~150 bytes of JSON each: far more than a 64 KiB pipe holds.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..2000 {
        sock.send_to(&[b'x'; 64], addr).unwrap();
    }
    thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    signal(guard.id() as i32, rustix::process::Signal::TERM);
    let status = loop {
        if let Some(status) = guard.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{command} --json hangs on SIGTERM with a full stdout pipe"
        );
        thread::sleep(Duration::from_millis(2));
    };
    let took = start.elapsed();
    drop(pipe);
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

/// The prefix of this package's network namespaces (see [`Netns::empty`]).
pub const NS_PREFIX: &str = "udpecho-bc";

/// A namespace with its loopback up and a /24 on it with its broadcast address.
pub fn broadcast_netns() -> Result<Netns, String> {
    let ns = Netns::empty(NS_PREFIX)?;
    // Loopback with a /24 and its broadcast address: a real broadcast route
    // (`broadcast 10.213.7.255 dev lo`) inside the namespace only.
    ns.ip(&[
        "addr",
        "add",
        "10.213.7.1/24",
        "broadcast",
        "10.213.7.255",
        "dev",
        "lo",
    ])?;
    Ok(ns)
}

/// The `udp-echo` binary inside a shared [`Netns`].
pub trait InNetns {
    /// `udp-echo ARGS` inside, not started.
    fn udp_echo(&self, args: &[&str]) -> Command;
    /// `udp-echo serve ARGS` inside, once it listens.
    fn serve(&self, args: &[&str]) -> Proc;
    /// `udp-echo ARGS` inside, to its end (bounded by PATIENCE).
    fn run(&self, args: &[&str]) -> Ran;
}

impl InNetns for Netns {
    fn udp_echo(&self, args: &[&str]) -> Command {
        self.command(BIN, args)
    }

    fn serve(&self, args: &[&str]) -> Proc {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        let proc = Proc::spawn(self.udp_echo(&all));
        proc.stderr_line("listening on ");
        proc
    }

    fn run(&self, args: &[&str]) -> Ran {
        let mut all = vec!["netns", "exec", &self.name, BIN];
        all.extend_from_slice(args);
        run_program("ip", &all, PATIENCE)
    }
}

/// `udp-echo ARGS`, reading its first stdout line, then closing the pipe: the exit status
/// and how long it took after the close.
pub fn first_line_then_close(args: &[&str]) -> (Option<i32>, Duration) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut guard = Reaped::start(cmd, "udp-echo");
    let mut out = BufReader::new(guard.child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "{args:?}: no first line");
    drop(out); // `| head -1`
    let closed = Instant::now();
    let deadline = closed + PATIENCE;
    loop {
        if let Some(s) = guard.try_wait().unwrap() {
            return (s.code(), closed.elapsed());
        }
        if Instant::now() >= deadline {
            return (None, closed.elapsed());
        }
        thread::sleep(Duration::from_millis(5));
    }
}
