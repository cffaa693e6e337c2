//! `udp-echo serve` and `listen` under a service manager's socket activation
//! (`systemd-socket-activate --datagram`, systemd's own tool for this), their SIGHUP stop,
//! and `listen --reuse-port`. Ports are picked as in `common` (bound and closed again);
//! every wait is bounded; every child process is killed and reaped by its guard.

// Signals to child processes and socket activation: Unix only.
#![cfg(unix)]

mod common;

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use common::*;

const ACTIVATE: &str = "systemd-socket-activate";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// `common::Proc`, with the ways this file starts and stops one.
impl Proc {
    fn udp_echo(args: &[&str]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        Proc::spawn(cmd)
    }

    /// `systemd-socket-activate [--datagram] -l ADDR... udp-echo ARGS`.
    fn activated(datagram: bool, listen: &[SocketAddr], args: &[&str]) -> Proc {
        let mut cmd = Command::new(ACTIVATE);
        if datagram {
            cmd.arg("--datagram");
        }
        for addr in listen {
            cmd.arg("-l").arg(addr.to_string());
        }
        cmd.arg(BIN).args(args);
        let proc = Proc::spawn(cmd);
        // The tool's own line: the socket is bound, nothing runs yet (it starts udp-echo,
        // in its own place and PID, when the first datagram or connection arrives).
        proc.stderr_line(&format!("Listening on {}", listen[listen.len() - 1]));
        proc
    }

    fn signal(&self, sig: Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// Waits for exit, at most `limit`; panics if it is still running.
    fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {limit:?}");
            thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Whether `systemd-socket-activate` runs here; if not, says why the test is skipped.
fn have_activate() -> bool {
    let ok = Command::new(ACTIVATE)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "skipped: {ACTIVATE} is not installed (Debian's systemd package has it; .ci/run installs it)"
        );
    }
    ok
}

/// A client socket connected to `server`, with a bounded read timeout.
fn client(server: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(server).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Sends `message` once and returns the reply's text.
fn exchange(socket: &UdpSocket, message: &[u8]) -> String {
    socket.send(message).unwrap();
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf).expect("a reply within PATIENCE");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The address from a `listening on ADDR` line.
fn listening_on(proc: &Proc) -> SocketAddr {
    let line = proc.stderr_line("listening on ");
    line.strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Socket activation
// ---------------------------------------------------------------------------------------

#[test]
fn serve_answers_on_a_socket_from_systemd_socket_activate_and_stops_on_sigterm() {
    if !have_activate() {
        return;
    }
    let addr = closed_port("127.0.0.1");
    let mut proc = Proc::activated(true, &[addr], &["serve"]);
    // The first datagram starts udp-echo; it is answered from the socket's queue.
    let socket = client(addr);
    assert_eq!(exchange(&socket, b"hello world!"), "Your data was 12 bytes");
    assert_eq!(listening_on(&proc), addr);
    proc.stderr_line("socket: from the service manager");
    // Everything it does on its own socket: the guards too (a byte-count reply is dropped).
    assert_eq!(exchange(&socket, b""), "Your data was 0 bytes");
    socket.send(b"Your data was 5 bytes").unwrap();
    proc.stdout_line("not answered: it is itself a byte-count reply");
    proc.signal(Signal::TERM);
    let status = proc.exit_within(PATIENCE);
    let rest = proc.rest_of_stderr();
    assert!(status.success(), "{status:?}: {rest}");
    assert!(
        rest.contains(
            "udp-echo: stopped by SIGTERM: received 3, replied 2, dropped 1 (loop 1), send failed 0"
        ),
        "{rest}"
    );
}

#[test]
fn listen_prints_what_arrives_on_a_socket_from_systemd_socket_activate() {
    if !have_activate() {
        return;
    }
    let addr = closed_port("127.0.0.1");
    let mut proc = Proc::activated(true, &[addr], &["listen"]);
    let socket = client(addr);
    socket.send(b"hello").unwrap();
    assert_eq!(listening_on(&proc), addr);
    let line = proc.stdout_line("sent 5 bytes");
    assert!(line.ends_with("sent 5 bytes: \"hello\""), "{line}");
    // A listener never replies.
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(socket.recv(&mut [0u8; 64]).is_err(), "listen replied");
    proc.signal(Signal::TERM);
    let status = proc.exit_within(PATIENCE);
    let rest = proc.rest_of_stderr();
    assert!(status.success(), "{status:?}: {rest}");
    assert!(
        rest.contains("udp-echo: stopped by SIGTERM: received 1"),
        "{rest}"
    );
}

/// Starts `udp-echo ARGS` under the tool (started by one datagram, or by one connection
/// for a stream socket) and returns its exit status and stderr: it should refuse.
fn activated_refusal(datagram: bool, listen: &[SocketAddr], args: &[&str]) -> (i32, String) {
    let mut proc = Proc::activated(datagram, listen, args);
    // Kept open until udp-echo has exited: the tool hands over the listening socket only.
    let _conn = if datagram {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .send_to(b"x", listen[0])
            .unwrap();
        None
    } else {
        Some(TcpStream::connect(listen[0]).unwrap())
    };
    let status = proc.exit_within(PATIENCE);
    (status.code().expect("exited"), proc.rest_of_stderr())
}

#[test]
fn activation_refuses_bind_threads_reuse_port_and_foreign_sockets() {
    if !have_activate() {
        return;
    }
    let addr = closed_port("127.0.0.1");
    for (args, says) in [
        (
            &["serve", "--bind", "127.0.0.1:7000"][..],
            "--bind 127.0.0.1:7000 and a socket from the service manager",
        ),
        (
            &["listen", "--bind", "7000"][..],
            "--bind 0.0.0.0:7000 and a socket from the service manager",
        ),
        (&["serve", "--threads", "2"][..], "--threads 2"),
        (
            &["serve", "--reuse-port"][..],
            "--reuse-port does not apply to a socket from the service manager",
        ),
        (
            &["listen", "--reuse-port"][..],
            "--reuse-port does not apply to a socket from the service manager",
        ),
    ] {
        let (code, stderr) = activated_refusal(true, &[addr], args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // A TCP socket.
    let (code, stderr) = activated_refusal(false, &[addr], &["serve"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is not a UDP socket (SOCK_DGRAM over IPv4 or IPv6)"),
        "{stderr}"
    );
    // Two sockets.
    let other = closed_port("127.0.0.1");
    let (code, stderr) = activated_refusal(true, &[addr, other], &["listen"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("LISTEN_FDS=2"), "{stderr}");
}

#[test]
fn activation_checks_the_descriptor_and_ignores_another_process_variables() {
    // Our PID (the shell's, kept by exec), fd 3 a file.
    let ran = Command::new("sh")
        .args([
            "-c",
            "exec 3</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" serve",
            BIN,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("descriptor 3"), "{stderr}");
    assert!(stderr.contains("is not a UDP socket"), "{stderr}");
    // fd 3 not open at all.
    let ran = Command::new("sh")
        .args([
            "-c",
            "exec 3<&-; LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" listen",
            BIN,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("descriptor 3 is not open"), "{stderr}");
    // Variables meant for another process (LISTEN_PID is not ours): ignored, as
    // sd_listen_fds(3) does; the server binds its own socket.
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--bind", "127.0.0.1:0"])
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1");
    let mut proc = Proc::spawn(cmd);
    let addr = listening_on(&proc);
    assert_eq!(exchange(&client(addr), b"abc"), "Your data was 3 bytes");
    proc.signal(Signal::TERM);
    assert!(proc.exit_within(PATIENCE).success());
}

// ---------------------------------------------------------------------------------------
// SIGHUP
// ---------------------------------------------------------------------------------------

#[test]
fn sighup_stops_serve_with_its_summary() {
    let mut proc = Proc::udp_echo(&["serve", "--bind", "127.0.0.1:0"]);
    let addr = listening_on(&proc);
    assert_eq!(exchange(&client(addr), b"hi"), "Your data was 2 bytes");
    proc.signal(Signal::HUP);
    let status = proc.exit_within(PATIENCE);
    let rest = proc.rest_of_stderr();
    assert_eq!(status.code(), Some(0), "{status:?}: {rest}");
    assert!(
        rest.contains("udp-echo: stopped by SIGHUP: received 1, replied 1, dropped 0"),
        "{rest}"
    );
}

#[test]
fn sighup_stops_listen_with_its_summary() {
    let mut proc = Proc::udp_echo(&["listen", "--bind", "127.0.0.1:0"]);
    let addr = listening_on(&proc);
    client(addr).send(b"hey").unwrap();
    proc.stdout_line("sent 3 bytes");
    proc.signal(Signal::HUP);
    let status = proc.exit_within(PATIENCE);
    let rest = proc.rest_of_stderr();
    assert_eq!(status.code(), Some(0), "{status:?}: {rest}");
    assert!(
        rest.contains("udp-echo: stopped by SIGHUP: received 1"),
        "{rest}"
    );
}

#[test]
fn sighup_stops_ping_with_its_summary() {
    let server = Proc::udp_echo(&["serve", "--bind", "127.0.0.1:0", "--quiet"]);
    let addr = listening_on(&server);
    let mut ping = Proc::udp_echo(&["ping", &addr.to_string(), "-c", "0", "-i", "0.05"]);
    ping.stdout_line("seq=1 ");
    ping.signal(Signal::HUP);
    let status = ping.exit_within(PATIENCE);
    assert_eq!(status.code(), Some(0), "{status:?}");
    let line = ping.stdout_line(" received, ");
    assert!(line.contains("0.0% loss"), "{line}");
}

// ---------------------------------------------------------------------------------------
// listen --reuse-port
// ---------------------------------------------------------------------------------------

#[test]
fn two_listeners_with_reuse_port_share_a_port_and_its_datagrams() {
    let first = Proc::udp_echo(&["listen", "--bind", "127.0.0.1:0", "--reuse-port"]);
    let addr = listening_on(&first);
    let second = Proc::udp_echo(&["listen", "--bind", &addr.to_string(), "--reuse-port"]);
    assert_eq!(listening_on(&second), addr);
    // SO_REUSEPORT spreads sources over the sockets (SO_REUSEADDR alone would give every
    // unicast datagram to one of them): from enough sources, each listener gets some.
    let deadline = Instant::now() + PATIENCE;
    let (mut a, mut b) = (0, 0);
    while a == 0 || b == 0 {
        assert!(
            Instant::now() < deadline,
            "one listener got nothing: {a} and {b}"
        );
        for _ in 0..16 {
            UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .send_to(b"spread", addr)
                .unwrap();
        }
        thread::sleep(Duration::from_millis(50));
        a += first.stdout.ready().len();
        b += second.stdout.ready().len();
    }
}

#[test]
fn serve_and_listen_with_reuse_port_share_a_port() {
    // What the port-in-use advice says: "give both --reuse-port".
    let server = Proc::udp_echo(&["serve", "--bind", "127.0.0.1:0", "--reuse-port"]);
    let addr = listening_on(&server);
    let listener = Proc::udp_echo(&["listen", "--bind", &addr.to_string(), "--reuse-port"]);
    assert_eq!(listening_on(&listener), addr);
}

// ---------------------------------------------------------------------------------------
// The unit files in dist/
// ---------------------------------------------------------------------------------------

#[test]
fn the_unit_files_pass_systemd_analyze_verify() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist");
    let socket = std::fs::read_to_string(dist.join("udp-echo.socket")).unwrap();
    let service = std::fs::read_to_string(dist.join("udp-echo.service")).unwrap();
    // The project's safe default (README, "Security"): loopback only.
    assert!(socket.contains("\nListenDatagram=127.0.0.1:6666\n"));
    assert!(service.contains("\nExecStart=/usr/local/bin/udp-echo serve --quiet\n"));
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: systemd-analyze is not installed (Debian's systemd package has it)");
        return;
    }
    // verify checks that ExecStart's program exists: the one just built stands in.
    let dir = std::env::temp_dir().join(format!("udp-echo-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("udp-echo.socket"), &socket).unwrap();
    std::fs::write(
        dir.join("udp-echo.service"),
        service.replace("/usr/local/bin/udp-echo", BIN),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args([dir.join("udp-echo.socket"), dir.join("udp-echo.service")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    // It exits 0 on unknown keys and unparsable values, and says so: nothing may be said.
    assert!(!said.contains("udp-echo."), "{said}");
}
