//! The ```` ```console ```` examples of README.md and host/cli/USAGE.md, rerun: every
//! `$ … udp-echo …` command of a block that is not marked otherwise runs for real and its
//! output must be what the block shows, so the docs cannot drift from the binary.
//!
//! # The rules a console block follows
//!
//! - A line `$ COMMAND` is a command; the lines after it, up to the next `$ ` line or the
//!   end of the block, are its output: stdout and stderr together, as a terminal shows
//!   them. Blank lines at the end of an output are ignored, as are trailing spaces.
//!   COMMAND runs with `bash -c` (pipes, `# comments`, `${PIPESTATUS[0]}` work), with the
//!   `udp-echo` under test first in `PATH`, from the workspace root, within 15 s.
//! - An output whose last line is `(exit N)` says the exit status is N; otherwise it
//!   must be 0.
//! - Wildcards: a decimal number with a point (`0.216`, `100.2`, `3.10s`, `0.0%`) matches
//!   any number there (times, RTTs, rates vary). Everything else is compared exactly,
//!   integers included (byte counts, ports, attempts, sequence numbers). A run of digits
//!   and dots with more than one dot (`127.0.0.1`) is literal text.
//! - A command whose output shows a `^C` line runs until interrupted: it runs alone in a
//!   namespace of its own, nothing is sent to it, and after its output has been quiet
//!   for a moment it gets SIGINT (as its process group, as a terminal's ^C does). The
//!   lines it printed by then must be the block's first lines (`listening on …`,
//!   `limits: …`, `io: …`); the rest (the datagrams the other terminals sent, the
//!   counters) is not compared. It must then exit 0 within 5 s.
//! - Every other command runs in a fresh network namespace (so 127.0.0.1:6666 is free)
//!   where `udp-echo serve`, as the docs show it, listens on 127.0.0.1:6666; one
//!   namespace per block, stopped and deleted after it (also on panic).
//! - Markers, on the lines right before the opening fence (HTML comments: not rendered):
//!   - `<!-- docs.rs: no-run: REASON -->`: the block is not run (QEMU, a TAP device, a
//!     subnet for broadcasts, measured rates, a `^C` after traffic from elsewhere).
//!     A reason is required. Without this marker a block is run, so a new block is
//!     checked by default, and a block with nothing runnable in it (output before any
//!     `$`, a `#` root prompt, a `$` command that is not `udp-echo`) fails the test.
//!   - `<!-- docs.rs: no server -->`: no server on 127.0.0.1:6666 for this block (the
//!     examples of what happens when nothing listens).
//!
//! The namespaces need root (CI runs the tests as root); without it, or when
//! `ip netns add` fails, the tests print `skipped: …` and pass. A failure lists each
//! command whose output drifted, with the file and line, what the doc shows and what ran.
//!
//! Also: README's console of `scripts/qemu-net.sh serve` shows the network firmware's
//! size lines; [`net_firmware_sizes_match_the_build`] compares them with
//! `scripts/qemu-net.sh build` (the build tests/tests/qemu_net.rs makes in the same target
//! directory, so it is usually up to date; skipped without qemu-system-arm, the
//! thumbv7em target or arm-none-eabi-size). The bare-metal console's numbers (it needs a
//! QEMU run) are not checked.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// Bound for one command (`send`'s own schedule gives up at 3.1 s).
const COMMAND_DEADLINE: Duration = Duration::from_secs(15);
/// How long an interrupted command's output must be quiet before the ^C.
const QUIET: Duration = Duration::from_millis(500);
/// Bound for the server to say it listens, and for anything to stop after a signal.
const STARTUP_DEADLINE: Duration = Duration::from_secs(5);
/// Bound for `scripts/qemu-net.sh build` (usually up to date; a cold build takes minutes).
const BUILD_DEADLINE: Duration = Duration::from_secs(900);

const MARKER: &str = "<!-- docs.rs:";

// ---------------------------------------------------------------------------------------
// The blocks

/// One ```` ```console ```` block.
#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    /// The lines between the fences, each with its 1-based line number.
    lines: Vec<(usize, String)>,
    no_run: Option<String>,
    no_server: bool,
}

/// One `$ COMMAND` and what the doc shows after it.
#[derive(Debug)]
struct Example {
    line: usize,
    command: String,
    expected: Vec<String>,
    exit: i32,
    /// The doc shows `^C`: only the lines before it that the command prints alone count.
    interrupted: bool,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_doc(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The console blocks of a Markdown text, with their markers.
fn console_blocks(doc: &str, file: &str) -> Vec<Block> {
    enum Fence {
        Outside,
        Console(Block),
        Other,
    }
    let mut blocks = Vec::new();
    let mut markers: Vec<(usize, String)> = Vec::new();
    let mut fence = Fence::Outside;
    for (i, raw) in doc.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim();
        fence = match fence {
            Fence::Console(mut block) => {
                if trimmed.starts_with("```") {
                    blocks.push(block);
                    Fence::Outside
                } else {
                    block.lines.push((n, raw.to_string()));
                    Fence::Console(block)
                }
            }
            Fence::Other if trimmed.starts_with("```") => Fence::Outside,
            Fence::Other => Fence::Other,
            Fence::Outside => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    if info.split_whitespace().next() == Some("console") {
                        let mut block = Block {
                            line: n,
                            lines: Vec::new(),
                            no_run: None,
                            no_server: false,
                        };
                        for (m, marker) in markers.drain(..) {
                            apply_marker(&mut block, &marker, file, m);
                        }
                        Fence::Console(block)
                    } else {
                        if let Some((m, _)) = markers.first() {
                            panic!(
                                "{file}:{m}: a docs.rs marker before a fence that is not ```console"
                            );
                        }
                        Fence::Other
                    }
                } else if trimmed.starts_with(MARKER) {
                    markers.push((n, trimmed.to_string()));
                    Fence::Outside
                } else {
                    if let Some((m, _)) = markers.first().filter(|_| !trimmed.is_empty()) {
                        panic!("{file}:{m}: a docs.rs marker not right before a ```console fence");
                    }
                    Fence::Outside
                }
            }
        };
    }
    assert!(
        matches!(fence, Fence::Outside),
        "{file}: a fenced block is not closed"
    );
    blocks
}

fn apply_marker(block: &mut Block, marker: &str, file: &str, line: usize) {
    let body = marker
        .strip_prefix(MARKER)
        .and_then(|b| b.strip_suffix("-->"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{file}:{line}: a malformed docs.rs marker"));
    if let Some(reason) = body.strip_prefix("no-run:") {
        assert!(
            !reason.trim().is_empty(),
            "{file}:{line}: `no-run:` needs a reason"
        );
        block.no_run = Some(reason.trim().to_string());
    } else if body == "no server" {
        block.no_server = true;
    } else {
        panic!("{file}:{line}: unknown docs.rs marker `{body}` (no-run: REASON | no server)");
    }
}

/// The examples of a block that is run; a block with nothing runnable is an error.
fn examples(block: &Block, file: &str) -> Vec<Example> {
    let mut examples: Vec<Example> = Vec::new();
    for (n, raw) in &block.lines {
        if let Some(command) = raw.strip_prefix("$ ") {
            assert!(
                command
                    .split(|c: char| c.is_whitespace() || c == '|' || c == ';')
                    .any(|word| word == "udp-echo"),
                "{file}:{n}: `$ {command}` is not a udp-echo command: mark the block \
                 `<!-- docs.rs: no-run: REASON -->` if it cannot run here"
            );
            examples.push(Example {
                line: *n,
                command: command.to_string(),
                expected: Vec::new(),
                exit: 0,
                interrupted: false,
            });
        } else {
            let Some(example) = examples.last_mut() else {
                assert!(
                    raw.trim().is_empty(),
                    "{file}:{n}: output before any `$ udp-echo …` command (a `#` root prompt?): \
                     mark the block `<!-- docs.rs: no-run: REASON -->` if it cannot run here"
                );
                continue;
            };
            example.expected.push(raw.trim_end().to_string());
        }
    }
    assert!(
        !examples.is_empty(),
        "{file}:{}: a ```console block with no `$ udp-echo …` command: mark it \
         `<!-- docs.rs: no-run: REASON -->`",
        block.line
    );
    for example in &mut examples {
        while example.expected.last().is_some_and(String::is_empty) {
            example.expected.pop();
        }
        if let Some(code) = example
            .expected
            .last()
            .and_then(|l| l.strip_prefix("(exit "))
            .and_then(|l| l.strip_suffix(')'))
        {
            example.exit = code
                .parse()
                .unwrap_or_else(|_| panic!("{file}:{}: bad `(exit {code})`", example.line));
            example.expected.pop();
        }
        example.interrupted = example.expected.iter().any(|l| l == "^C");
    }
    examples
}

// ---------------------------------------------------------------------------------------
// Matching

/// The number at the start of `s` (a maximal run of digits and dots, without a trailing
/// dot) and its length, if `s` starts with a digit.
fn number_at(s: &str) -> Option<&str> {
    if !s.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    Some(s[..end].trim_end_matches('.'))
}

/// Whether a doc line matches a real one: a decimal number with a point in the doc
/// matches any number; everything else exactly. See the module docs.
fn line_matches(doc: &str, real: &str) -> bool {
    let (mut d, mut r) = (doc.trim_end(), real.trim_end());
    // Only at the start of a number: not inside a word like `x86` or after another digit.
    let mut at_boundary = true;
    loop {
        if at_boundary && let Some(number) = number_at(d) {
            if number.matches('.').count() == 1 {
                let Some(real_number) = number_at(r).filter(|n| n.matches('.').count() <= 1) else {
                    return false;
                };
                d = &d[number.len()..];
                r = &r[real_number.len()..];
                at_boundary = false;
                continue;
            }
            // Literal (an integer, an IPv4 address): compared as text.
            let Some(rest) = r.strip_prefix(number) else {
                return false;
            };
            // The real number must not go on where the doc's ends (12 vs 123).
            if rest.starts_with(|c: char| c.is_ascii_digit()) {
                return false;
            }
            d = &d[number.len()..];
            r = rest;
            at_boundary = false;
            continue;
        }
        let Some(c) = d.chars().next() else {
            return r.is_empty();
        };
        if !r.starts_with(c) {
            return false;
        }
        d = &d[c.len_utf8()..];
        r = &r[c.len_utf8()..];
        at_boundary = !(c.is_alphanumeric() || c == '_');
    }
}

fn lines_match(doc: &[String], real: &[String]) -> bool {
    doc.len() == real.len() && doc.iter().zip(real).all(|(d, r)| line_matches(d, r))
}

// ---------------------------------------------------------------------------------------
// Namespaces and processes

/// A network namespace with `lo` up, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Result<Netns, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "ue-docs-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let add = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| format!("cannot run `ip`: {e}"))?;
        if !add.status.success() {
            return Err(format!(
                "`ip netns add` failed: {}",
                String::from_utf8_lossy(&add.stderr).trim()
            ));
        }
        let ns = Netns(name);
        let up = Command::new("ip")
            .args(["-n", &ns.0, "link", "set", "lo", "up"])
            .output()
            .map_err(|e| format!("cannot run `ip`: {e}"))?;
        if !up.status.success() {
            return Err(format!(
                "`ip link set lo up` failed: {}",
                String::from_utf8_lossy(&up.stderr).trim()
            ));
        }
        Ok(ns)
    }

    /// `ip netns exec NAME bash -c COMMAND` in its own process group, from the
    /// workspace root, with the tested `udp-echo` first in PATH.
    fn bash(&self, command: &str) -> Command {
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_udp-echo")).parent().unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin_dir.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0, "bash", "-c", command])
            .current_dir(workspace())
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .process_group(0);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A child killed (its process group) and reaped on drop.
struct Running {
    child: Child,
}

impl Running {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32).unwrap()
    }

    fn signal_group(&self, signal: Signal) {
        let _ = rustix::process::kill_process_group(self.pid(), signal);
    }

    /// Waits until it exits or the deadline passes; its status code (None: killed or
    /// timed out).
    fn wait_for(&mut self, deadline: Duration) -> Result<Option<i32>, ()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Ok(status.code());
            }
            if start.elapsed() > deadline {
                return Err(());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal_group(Signal::KILL);
            let _ = self.child.wait();
        }
    }
}

/// Starts `command` with stdout and stderr in one pipe; its lines arrive on the channel.
fn spawn_merged(mut cmd: Command) -> (Running, mpsc::Receiver<String>) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    cmd.stdout(writer.try_clone().expect("pipe")).stderr(writer);
    let child = cmd.spawn().expect("spawn ip netns exec");
    // The parent's copies of the write end went with `cmd`.
    drop(cmd);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(reader).split(b'\n') {
            let Ok(line) = line else { break };
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    (Running { child }, rx)
}

/// `udp-echo serve` on 127.0.0.1:6666 in `ns`, as the docs show it; stopped on drop.
fn start_server(ns: &Netns) -> Running {
    let mut cmd = ns.bash("exec udp-echo serve --quiet");
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn udp-echo serve");
    let stderr = child.stderr.take().unwrap();
    let server = Running { child };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        // Drain the rest so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let first = rx
        .recv_timeout(STARTUP_DEADLINE)
        .expect("udp-echo serve did not start within 5 s");
    assert_eq!(first, "listening on 127.0.0.1:6666", "udp-echo serve said");
    server
}

/// What one run printed and how it ended.
struct Ran {
    lines: Vec<String>,
    exit: Result<Option<i32>, ()>,
}

fn run_example(ns: &Netns, example: &Example) -> Ran {
    let (mut child, rx) = spawn_merged(ns.bash(&example.command));
    let exit = child.wait_for(COMMAND_DEADLINE);
    if exit.is_err() {
        child.signal_group(Signal::KILL);
    }
    drop(child);
    // The pipe closes when the last writer (the command's pipeline) is gone.
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
        lines.push(line);
    }
    Ran { lines, exit }
}

/// A command shown until ^C: alone in its own namespace, interrupted once quiet.
fn run_interrupted(example: &Example) -> Result<Ran, String> {
    let ns = Netns::new()?;
    let (mut child, rx) = spawn_merged(ns.bash(&example.command));
    let start = Instant::now();
    let mut lines = Vec::new();
    let mut last = Instant::now();
    while start.elapsed() < STARTUP_DEADLINE {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(line) => {
                lines.push(line);
                last = Instant::now();
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !lines.is_empty() && last.elapsed() >= QUIET {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    child.signal_group(Signal::INT);
    let exit = child.wait_for(STARTUP_DEADLINE);
    drop(child);
    drop(ns);
    Ok(Ran { lines, exit })
}

// ---------------------------------------------------------------------------------------
// The tests

/// None when the namespaces can be made; else why not.
fn cannot_run() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root: the examples run in network namespaces (CI runs as root)".into());
    }
    Netns::new().err()
}

fn show(lines: &[String]) -> String {
    lines.iter().map(|l| format!("    | {l}\n")).collect()
}

/// Runs every runnable example of a doc; panics with every drift found.
fn check_doc(relative: &str) {
    let doc = read_doc(relative);
    let blocks = console_blocks(&doc, relative);
    // Parse (and so validate) everything before the skip, so a malformed block fails
    // even where the examples cannot run.
    let runnable: Vec<(&Block, Vec<Example>)> = blocks
        .iter()
        .filter(|b| b.no_run.is_none())
        .map(|b| (b, examples(b, relative)))
        .collect();
    assert!(
        !runnable.is_empty(),
        "{relative}: no runnable console block"
    );
    if let Some(why) = cannot_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let mut drift = Vec::new();
    let mut ran = 0;
    for (block, examples) in &runnable {
        let mut block_ns: Option<(Netns, Option<Running>)> = None;
        for example in examples {
            let where_ = format!("{relative}:{}: $ {}", example.line, example.command);
            let result = if example.interrupted {
                let Ran { lines, exit } = run_interrupted(example).expect("namespace");
                let before_c: Vec<String> = example
                    .expected
                    .iter()
                    .take_while(|l| *l != "^C")
                    .cloned()
                    .collect();
                let shown = &before_c[..lines.len().min(before_c.len())];
                if lines.is_empty() || lines.len() > before_c.len() || !lines_match(shown, &lines) {
                    Err(format!(
                        "{where_}\n  the doc's first lines (before any datagram):\n{}  what it printed alone before ^C:\n{}",
                        show(shown),
                        show(&lines)
                    ))
                } else if exit != Ok(Some(0)) {
                    Err(format!(
                        "{where_}\n  after ^C: exit {exit:?}, not 0 within 5 s"
                    ))
                } else {
                    Ok(())
                }
            } else {
                if block_ns.is_none() {
                    let ns = Netns::new().expect("namespace");
                    let server = (!block.no_server).then(|| start_server(&ns));
                    block_ns = Some((ns, server));
                }
                let (ns, _) = block_ns.as_ref().unwrap();
                let Ran { lines, exit } = run_example(ns, example);
                match exit {
                    Err(()) => Err(format!(
                        "{where_}\n  still running after {COMMAND_DEADLINE:?}; killed"
                    )),
                    Ok(code)
                        if code != Some(example.exit)
                            || !lines_match(&example.expected, &lines) =>
                    {
                        Err(format!(
                            "{where_}\n  the doc shows (exit {}):\n{}  it printed (exit {code:?}):\n{}",
                            example.exit,
                            show(&example.expected),
                            show(&lines)
                        ))
                    }
                    Ok(_) => Ok(()),
                }
            };
            ran += 1;
            if let Err(e) = result {
                drift.push(e);
            }
        }
        // Server first (by its PID, in the namespace), then the namespace.
        drop(block_ns.map(|(ns, server)| {
            if let Some(mut server) = server {
                let _ = rustix::process::kill_process(server.pid(), Signal::TERM);
                let _ = server.wait_for(STARTUP_DEADLINE);
            }
            ns
        }));
    }
    assert!(
        drift.is_empty(),
        "{} of {ran} examples in {relative} drifted from the binary (rules: host/cli/tests/docs.rs):\n\n{}",
        drift.len(),
        drift.join("\n\n")
    );
    eprintln!("{relative}: {ran} examples match");
}

#[test]
fn readme_console_examples_match_the_binary() {
    check_doc("../../README.md");
}

#[test]
fn usage_console_examples_match_the_binary() {
    check_doc("USAGE.md");
}

// ---------------------------------------------------------------------------------------
// The firmware's sizes

/// The target directory this test was built into (where tests/tests/qemu_net.rs builds
/// the firmware too).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("<profile>/deps");
    let mut dir = profile_dir.parent().unwrap().to_path_buf();
    if !dir.join("CACHEDIR.TAG").exists()
        && let Some(parent) = dir.parent()
    {
        // <target-dir>/<triple>/<profile>
        dir = parent.to_path_buf();
    }
    dir
}

/// The numbers of a Berkeley `size` row (text, data, bss, dec, hex).
fn size_row(line: &str) -> Vec<String> {
    line.split_whitespace().take(5).map(String::from).collect()
}

#[test]
fn net_firmware_sizes_match_the_build() {
    let doc = read_doc("../../README.md");
    let blocks = console_blocks(&doc, "README.md");
    let block = blocks
        .iter()
        .find(|b| {
            b.lines
                .first()
                .is_some_and(|(_, l)| l.starts_with("$ scripts/qemu-net.sh serve"))
        })
        .expect("README.md: the console of `scripts/qemu-net.sh serve`");
    let doc_line = |prefix: &str, after: bool| {
        let i = block
            .lines
            .iter()
            .position(|(_, l)| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("README.md:{}: no `{prefix}` line", block.line));
        block.lines[i + usize::from(after)].clone()
    };
    let (row_at, doc_row) = doc_line("text", true);
    let (footprint_at, doc_footprint) = doc_line("footprint:", false);

    if Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: qemu-system-arm is missing (scripts/qemu-net.sh requires it)");
        return;
    }
    let mut script = Command::new("bash");
    script
        .current_dir(workspace())
        .args(["scripts/qemu-net.sh", "build"])
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = script.spawn().expect("bash scripts/qemu-net.sh build");
    let mut stderr = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut build = Running { child };
    let status = build.wait_for(BUILD_DEADLINE);
    drop(build);
    let stderr = reader.join().unwrap();
    if status != Ok(Some(0)) {
        if stderr.contains("target may not be installed") {
            eprintln!("skipped: the thumbv7em-none-eabihf target is not installed");
            return;
        }
        panic!("scripts/qemu-net.sh build: {status:?}\n{stderr}");
    }
    let Some(footprint) = stderr.lines().find(|l| l.starts_with("footprint:")) else {
        eprintln!("skipped: no sizes from the build (arm-none-eabi-size missing?)\n{stderr}");
        return;
    };
    let row = stderr
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("text"))
        .nth(1)
        .expect("a size row after the header");
    assert_eq!(
        (size_row(&doc_row), doc_footprint.as_str()),
        (size_row(row), footprint),
        "README.md:{row_at} and :{footprint_at}: the network firmware's sizes drifted from \
         `scripts/qemu-net.sh build`"
    );
}

#[test]
fn the_wildcards() {
    assert!(line_matches(
        "in 0.216 ms (1 attempt)",
        "in 12.5 ms (1 attempt)"
    ));
    assert!(line_matches("in 3.10s", "in 3s"));
    assert!(line_matches("a 0.0% b", "a 100.0% b"));
    assert!(!line_matches(
        "in 0.216 ms (1 attempt)",
        "in 0.216 ms (2 attempts)"
    ));
    assert!(!line_matches(
        "Your data was 12 bytes",
        "Your data was 13 bytes"
    ));
    assert!(!line_matches(
        "Your data was 12 bytes",
        "Your data was 123 bytes"
    ));
    assert!(line_matches("from 127.0.0.1:6666.", "from 127.0.0.1:6666."));
    assert!(!line_matches("from 127.0.0.1:6666", "from 127.0.0.2:6666"));
    assert!(!line_matches("listening", "listening on"));
    assert!(line_matches("x  ", "x"));
    assert!(line_matches(
        "min/avg = 0.117/0.156 ms",
        "min/avg = 1.2/0.1 ms"
    ));
}

#[test]
fn a_new_block_is_run_by_default() {
    let doc = "text\n\n```console\n$ udp-echo send hi\nYour data was 2 bytes\n\n$ udp-echo send 127.0.0.1:9 hi\n(exit 1)\n```\n\n<!-- docs.rs: no-run: QEMU -->\n```console\n$ scripts/qemu-net.sh build\n```\n";
    let blocks = console_blocks(doc, "t.md");
    assert_eq!(blocks.len(), 2);
    let run = examples(&blocks[0], "t.md");
    assert_eq!(run.len(), 2);
    assert_eq!(run[0].expected, ["Your data was 2 bytes"]);
    assert_eq!((run[1].exit, run[1].expected.len()), (1, 0));
    assert_eq!(blocks[1].no_run.as_deref(), Some("QEMU"));
}

#[test]
#[should_panic(expected = "mark the block `<!-- docs.rs: no-run: REASON -->`")]
fn an_unmarked_block_that_cannot_run_fails() {
    let doc = "```console\n# ip netns add ue\n```\n";
    let blocks = console_blocks(doc, "t.md");
    examples(&blocks[0], "t.md");
}
