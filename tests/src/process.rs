//! Child processes with deadlines, for the tests that run binaries: every wait is bounded,
//! and a child is killed (by its PID) and reaped when its guard drops, whatever happened.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A child that is killed and reaped when dropped.
#[derive(Debug)]
pub struct Reaped {
    /// The process (take its pipes from here).
    pub child: Child,
    what: String,
}

impl Reaped {
    /// Starts `command` with stdin from /dev/null and stdout and stderr piped.
    pub fn spawn(mut command: Command, what: &str) -> Self {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Self::start(command, what)
    }

    /// Starts `command` with the stdio it was given.
    pub fn start(mut command: Command, what: &str) -> Self {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Reaped {
            child,
            what: what.to_owned(),
        }
    }

    /// The child's process ID.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the child to exit, at most `deadline`; kills it (and fails) after that.
    pub fn wait(&mut self, deadline: Duration) -> ExitStatus {
        match self.wait_at_most(deadline) {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not exit within {deadline:?}; killed", self.what);
            }
        }
    }

    /// Like [`wait`](Self::wait), and also returns the CPU time (user + system, its own
    /// and its reaped children's) the child used. std reaps without `rusage`, so the times
    /// are read from `/proc/<pid>/stat` while the exited child is still a zombie
    /// (clock-tick resolution, 10 ms here).
    pub fn wait_with_cpu(&mut self, deadline: Duration) -> (ExitStatus, Duration) {
        let (status, cpu) = self.wait_measuring(deadline);
        (status, cpu.expect("an unreaped child's /proc entry"))
    }

    /// Like [`wait_with_cpu`](Self::wait_with_cpu), with `None` for the CPU time where there
    /// is no `/proc/<pid>/stat` to read it from (not Linux): then it only waits.
    pub fn wait_measuring(&mut self, deadline: Duration) -> (ExitStatus, Option<Duration>) {
        let stat = format!("/proc/{}/stat", self.child.id());
        let until = Instant::now() + deadline;
        let ticks = loop {
            let Ok(text) = std::fs::read_to_string(&stat) else {
                return (
                    self.wait(until.saturating_duration_since(Instant::now())),
                    None,
                );
            };
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
            Some(Duration::from_micros(
                ticks * 1_000_000 / clock_ticks_per_second(),
            )),
        )
    }

    /// The child's status if it has exited (`Child::try_wait`).
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits for the child to exit, at most `deadline`: `None` if it is still running.
    pub fn wait_at_most(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGTERM (a clean stop for the servers) through kill(1).
    pub fn terminate(&mut self) {
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

/// Lines of a child's pipe (decoded lossily), read by a thread, so that they can be
/// awaited with a deadline.
#[derive(Debug)]
pub struct Lines {
    rx: Receiver<String>,
    seen: RefCell<Vec<String>>,
}

impl Lines {
    /// Reads `pipe` line by line in a thread, until it closes.
    pub fn new(pipe: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut pipe = BufReader::new(pipe);
            let mut buf = Vec::new();
            while matches!(pipe.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches('\n')
                    .to_owned();
                if tx.send(line).is_err() {
                    break;
                }
                buf.clear();
            }
        });
        Lines {
            rx,
            seen: RefCell::new(Vec::new()),
        }
    }

    /// The next line, waiting at most `deadline` (`None`: none came, or the pipe closed).
    fn next(&self, deadline: Duration) -> Option<String> {
        let line = self.rx.recv_timeout(deadline).ok()?;
        self.seen.borrow_mut().push(line.clone());
        Some(line)
    }

    /// The first line (from now on) containing `needle`, waiting at most `deadline`.
    pub fn wait_for(&mut self, needle: &str, deadline: Duration) -> Option<String> {
        self.until(needle, deadline).ok()?.pop()
    }

    /// Like [`wait_for`](Self::wait_for), failing the test (with the lines it saw) if no
    /// such line comes.
    pub fn line(&self, needle: &str, deadline: Duration) -> String {
        match self.until(needle, deadline) {
            Ok(mut lines) => lines.pop().expect("the matching line"),
            Err(seen) => {
                panic!("no line containing {needle:?} within {deadline:?}; saw {seen:?}")
            }
        }
    }

    /// Every line from now on up to and including the first that contains `needle`,
    /// waiting at most `deadline`; `Err` with the lines seen if none did.
    pub fn until(&self, needle: &str, deadline: Duration) -> Result<Vec<String>, Vec<String>> {
        let until = Instant::now() + deadline;
        let mut lines = Vec::new();
        loop {
            let Some(line) = self.next(until.saturating_duration_since(Instant::now())) else {
                return Err(lines);
            };
            let done = line.contains(needle);
            lines.push(line);
            if done {
                return Ok(lines);
            }
        }
    }

    /// The lines that arrive from now on until none has for `quiet` (or the pipe closed):
    /// the rest of a child's output, once it has exited.
    pub fn rest(&self, quiet: Duration) -> Vec<String> {
        std::iter::from_fn(|| self.next(quiet)).collect()
    }

    /// The lines already read, without waiting.
    pub fn ready(&self) -> Vec<String> {
        std::iter::from_fn(|| self.next(Duration::ZERO)).collect()
    }

    /// Everything read so far, plus what arrives within `grace` (until the pipe closes).
    pub fn drain(&mut self, grace: Duration) -> String {
        let until = Instant::now() + grace;
        while self
            .next(until.saturating_duration_since(Instant::now()))
            .is_some()
        {}
        self.seen.borrow().join("\n")
    }
}

/// Reads all of `pipe` in a thread; join it for the bytes.
pub fn read_all(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// `sysconf(_SC_CLK_TCK)`, through getconf(1) (no libc here); 100 (Linux's) if it fails.
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
pub fn run_bounded(command: Command, deadline: Duration) -> Output {
    run_measured(command, deadline).0
}

/// Runs `command` to completion, killing it after `deadline`; also returns the CPU time it
/// used (see [`Reaped::wait_with_cpu`]).
pub fn run_measured(command: Command, deadline: Duration) -> (Output, Duration) {
    let what = format!("{command:?}");
    let mut child = Reaped::spawn(command, &what);
    let out_reader = read_all(child.child.stdout.take().unwrap());
    let err_reader = read_all(child.child.stderr.take().unwrap());
    let (status, cpu) = child.wait_with_cpu(deadline);
    let output = Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    };
    (output, cpu)
}

/// Where the running test's cargo build put things.
#[derive(Debug, Clone)]
pub struct BuildDirs {
    /// `<target-dir>`.
    pub target_dir: PathBuf,
    /// `<target-dir>[/<triple>]/<profile-dir>`: where binaries of the test's profile land.
    pub profile_dir: PathBuf,
    /// The profile's name for `--profile` (`dev` for `debug/`).
    pub profile: String,
    /// `--target`, when the test was built with an explicit one.
    pub triple: Option<String>,
}

impl BuildDirs {
    /// Works them out from the test executable's path,
    /// `<target-dir>[/<triple>]/<profile-dir>/deps/<test>-<hash>`.
    pub fn of_this_test() -> Self {
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
        let mut target_dir = profile_dir.parent().unwrap().to_path_buf();
        let mut triple = None;
        if !target_dir.join("CACHEDIR.TAG").exists() && target_dir.parent().is_some() {
            // <target-dir>/<triple>/<profile>: a cross/explicit --target build.
            triple = Some(
                target_dir
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            target_dir = target_dir.parent().unwrap().to_path_buf();
        }
        let profile = match profile_name.as_str() {
            "debug" => "dev".to_owned(),
            other => other.to_owned(),
        };
        BuildDirs {
            target_dir,
            profile_dir,
            profile,
            triple,
        }
    }

    /// Builds binary `bin` of `package` with this test's profile, target directory and
    /// triple (a nested `cargo build`, bounded by `deadline`) and returns its path.
    pub fn build_bin(&self, package: &str, bin: &str, deadline: Duration) -> PathBuf {
        let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .current_dir(workspace)
            .args([
                "build",
                "-p",
                package,
                "--bin",
                bin,
                "--profile",
                &self.profile,
            ])
            .arg("--target-dir")
            .arg(&self.target_dir);
        if let Some(triple) = &self.triple {
            cargo.args(["--target", triple]);
        }
        let started = Instant::now();
        let out = run_bounded(cargo, deadline);
        assert!(
            out.status.success(),
            "cargo build -p {package} --bin {bin} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "built {bin} in {:.1} s ({} profile)",
            started.elapsed().as_secs_f64(),
            self.profile
        );
        let path = self.profile_dir.join(bin);
        assert!(path.exists(), "{} was not built", path.display());
        path
    }
}
