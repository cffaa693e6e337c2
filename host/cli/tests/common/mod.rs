//! Helpers shared by the test files that run the `udp-echo` binary on Unix: child
//! processes killed and reaped by their guards, line readers, bounded runs, a free UDP
//! port, and network namespaces for the root-only tests. Written once; each test file
//! takes it with `mod common;`.

// Each test file uses some of these helpers, never all.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_udp-echo");
/// Upper bound for anything that should happen "at once" on loopback.
pub const PATIENCE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A child process that is killed and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub stdout: Receiver<String>,
    pub stderr: Receiver<String>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
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
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits for a line on `which` that contains `needle`; returns it.
    pub fn line_containing(which: &Receiver<String>, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match which.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no line containing {needle:?} within {limit:?}; saw {seen:?}"),
            }
        }
    }

    /// Every stdout line up to and including the first that contains `needle`.
    pub fn stdout_until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no line containing {needle:?}; saw {seen:?}"),
            }
        }
    }

    pub fn stdout_line(&self, needle: &str) -> String {
        Self::line_containing(&self.stdout, needle, PATIENCE)
    }

    pub fn stderr_line(&self, needle: &str) -> String {
        Self::line_containing(&self.stderr, needle, PATIENCE)
    }

    /// Everything left on stderr (call after exit).
    pub fn rest_of_stderr(&self) -> String {
        let mut out = String::new();
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(500)) {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    pub fn rest_of_stdout(&self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(line) = self.stdout.recv_timeout(Duration::from_millis(500)) {
            out.push(line);
        }
        out
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads lines (lossily decoded) in a thread until EOF.
pub fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches('\n')
                .to_string();
            if tx.send(line).is_err() {
                break;
            }
            buf.clear();
        }
    });
    rx
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
    let mut guard = Guard(cmd.spawn().expect("spawn"));
    let mut input = guard.0.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = reader(guard.0.stdout.take().unwrap());
    let err = reader(guard.0.stderr.take().unwrap());
    let cpu = cpu_at_exit(guard.0.id(), limit);
    let status = guard.0.wait().unwrap();
    let elapsed = start.elapsed();
    Ran {
        status,
        stdout: out.join().unwrap(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        elapsed,
        cpu,
    }
}

pub struct Guard(pub Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn reader(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// Waits (at most `limit`, else panics; the guard kills) until `pid` is a zombie, and
/// returns its user + system CPU time from /proc/PID/stat (it is not reaped yet).
pub fn cpu_at_exit(pid: u32, limit: Duration) -> Option<Duration> {
    let deadline = Instant::now() + limit;
    let path = format!("/proc/{pid}/stat");
    loop {
        let stat = std::fs::read_to_string(&path).ok()?;
        // Fields after the command name (which is in parentheses and may hold spaces).
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields[0] == "Z" {
            let ticks: u64 = fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?;
            let hz = rustix::param::clock_ticks_per_second();
            return Some(Duration::from_micros(ticks * 1_000_000 / hz));
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} still running after {limit:?}"
        );
        thread::sleep(Duration::from_millis(5));
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
    let mut child = Command::new(BIN)
        .args([
            command,
            "--bind",
            "127.0.0.1:0",
            "--json",
            "--max-lines",
            "100000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped()) // kept open, never read: the pipe fills up
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = child.stdout.take();
    let stderr = lines(child.stderr.take().unwrap());
    let mut guard = Guard(child);
    let line = Proc::line_containing(&stderr, "listening on ", PATIENCE);
    let addr: SocketAddr = line["listening on ".len()..].parse().unwrap();
    // 2000 datagrams × ~150 bytes of JSON each: far more than a 64 KiB pipe holds.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..2000 {
        sock.send_to(&[b'x'; 64], addr).unwrap();
    }
    thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    signal(guard.0.id() as i32, rustix::process::Signal::TERM);
    let status = loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
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

/// A network namespace, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    /// A namespace with its loopback up and a /24 on it with its broadcast address.
    pub fn create() -> Result<Netns, String> {
        let ns = Netns::empty()?;
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

    /// A namespace with only its loopback, up (root only).
    pub fn empty() -> Result<Netns, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("not root".into());
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("udpecho-bc-{}-{n}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Two namespaces joined by a veth pair, `vs` in the first and `vc` in the second,
    /// both up, each with its addresses (IPv6 ones without duplicate detection).
    pub fn pair(first: &[&str], second: &[&str]) -> Result<(Netns, Netns), String> {
        let (a, b) = (Netns::empty()?, Netns::empty()?);
        a.ip(&[
            "link", "add", "vs", "type", "veth", "peer", "name", "vc", "netns", &b.0,
        ])?;
        for (ns, dev, addrs) in [(&a, "vs", first), (&b, "vc", second)] {
            for addr in addrs {
                // An address may carry options, e.g. `fd00::1/64 preferred_lft 0`.
                let mut words = addr.split(' ');
                let mut args = vec!["addr", "add", words.next().unwrap_or(""), "dev", dev];
                args.extend(words);
                if addr.contains(':') {
                    args.push("nodad");
                }
                ns.ip(&args)?;
            }
            ns.ip(&["link", "set", dev, "up"])?;
        }
        Ok((a, b))
    }

    /// `ip -n NS ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", &self.0];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `udp-echo serve ARGS` inside, once it listens.
    pub fn serve(&self, args: &[&str]) -> Proc {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        let proc = Proc::spawn(self.command(&all));
        proc.stderr_line("listening on ");
        proc
    }

    /// `udp-echo ARGS` inside, to its end (bounded by PATIENCE).
    pub fn run(&self, args: &[&str]) -> Ran {
        let mut all = vec!["netns", "exec", &self.0, BIN];
        all.extend_from_slice(args);
        run_program("ip", &all, PATIENCE)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0, BIN]).args(args);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
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
    let mut guard = Guard(cmd.spawn().unwrap());
    let mut out = BufReader::new(guard.0.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "{args:?}: no first line");
    drop(out); // `| head -1`
    let closed = Instant::now();
    let deadline = closed + PATIENCE;
    loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            return (s.code(), closed.elapsed());
        }
        if Instant::now() >= deadline {
            return (None, closed.elapsed());
        }
        thread::sleep(Duration::from_millis(5));
    }
}
