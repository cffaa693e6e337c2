//! The network firmware images under QEMU `mps2-an386`, for the tests that boot them
//! (`tests/qemu_net.rs` on QEMU user networking, `tests/firmware_tap.rs` on a TAP device):
//! building each image once ([`Image`]), the host's `udp-echo` and the defmt decoder
//! ([`host`]), and a booted image with its decoded log ([`Firmware`]), killed on drop.
//!
//! Each image is built by `scripts/qemu-net.sh [--async] build` into the test's target
//! directory (what `scripts/qemu-net.sh [--async] serve` then reuses), and `udp-echo` by a
//! nested `cargo build` with the test's profile. The defmt log is decoded by `defmt-print`
//! when it is installed (CI installs it); without it, checks on log lines are left out and
//! say so. Every wait has a deadline.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::process::{BuildDirs, Lines, Reaped, run_bounded};

/// The package of the host's `udp-echo` binary.
const HOST_PACKAGE: &str = "udp-echo";
/// Bound for the builds (both are usually up to date).
pub const BUILD_DEADLINE: Duration = Duration::from_secs(900);
/// Bound for the firmware to say it serves (it takes milliseconds).
pub const BOOT_DEADLINE: Duration = Duration::from_secs(20);

/// Why QEMU cannot run here, if it cannot.
pub fn qemu_missing() -> Option<String> {
    match Command::new("qemu-system-arm").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some(
            "qemu-system-arm is not installed (Debian: apt-get install qemu-system-arm)".into(),
        ),
    }
}

/// Returns early from the test with `skipped: …` when QEMU is missing.
#[macro_export]
macro_rules! require_qemu {
    () => {
        if let Some(why) = $crate::qemu::qemu_missing() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// Which firmware image a test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    /// `net-firmware/`: smoltcp 0.14, the polled LAN9118 driver, a 1 kHz SysTick.
    Polled,
    /// `async-firmware/`: embassy-net, the interrupt-driven LAN9118 driver, tick-less.
    Async,
}

impl Image {
    /// `scripts/qemu-net.sh`'s options that pick the image.
    pub fn options(self) -> &'static [&'static str] {
        match self {
            Image::Polled => &[],
            Image::Async => &["--async"],
        }
    }

    /// `bash scripts/qemu-net.sh [--async] ARGS…` in the workspace, building into this
    /// test's target directory.
    pub fn script(self, args: &[&str]) -> Command {
        let mut script = Command::new("bash");
        script
            .current_dir(workspace())
            .arg("scripts/qemu-net.sh")
            .args(self.options())
            .args(args)
            .env("CARGO_TARGET_DIR", &host().target_dir);
        script
    }

    /// The image's ELF, built once by `scripts/qemu-net.sh [--async] build`.
    pub fn elf(self) -> &'static Path {
        static POLLED: OnceLock<PathBuf> = OnceLock::new();
        static ASYNC: OnceLock<PathBuf> = OnceLock::new();
        let cell = match self {
            Image::Polled => &POLLED,
            Image::Async => &ASYNC,
        };
        cell.get_or_init(|| self.build())
    }

    fn build(self) -> PathBuf {
        let started = Instant::now();
        let out = run_bounded(self.script(&["build"]), BUILD_DEADLINE);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "qemu-net.sh {:?} build failed (the target: rustup target add thumbv7em-none-eabihf):\n{stderr}",
            self.options()
        );
        let firmware = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(firmware.exists(), "no image at {}", firmware.display());
        let sizes = stderr.lines().find(|l| l.starts_with("footprint:"));
        eprintln!(
            "built {} in {:.1} s; {}",
            firmware.display(),
            started.elapsed().as_secs_f64(),
            sizes.unwrap_or("(no sizes)")
        );
        firmware
    }
}

/// What every test shares whatever the image: `udp-echo`, the target directory, the
/// decoder.
#[derive(Debug)]
pub struct Host {
    /// The host's `udp-echo`, built with the test's profile.
    pub udp_echo: PathBuf,
    /// Where `scripts/qemu-net.sh` builds into (the test's target directory).
    pub target_dir: PathBuf,
    /// Whether `defmt-print` is installed: without it the log is not decoded.
    pub decoder: bool,
}

/// The workspace's root.
pub fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Builds `udp-echo` once and looks for the decoder.
pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let dirs = BuildDirs::of_this_test();
        let udp_echo = dirs.build_bin(HOST_PACKAGE, "udp-echo", BUILD_DEADLINE);
        let decoder = Command::new("defmt-print")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !decoder {
            eprintln!("note: defmt-print is missing: the firmware's log is not checked");
        }
        Host {
            udp_echo,
            target_dir: dirs.target_dir,
            decoder,
        }
    })
}

/// QEMU running an image, with its decoded log (and the decoder), killed on drop.
#[derive(Debug)]
pub struct Firmware {
    /// The defmt log, decoded (raw frames without a decoder).
    pub log: Lines,
    /// QEMU's own stderr.
    pub qemu_err: Lines,
    /// QEMU (`ip netns exec` execs it: the same process in a namespace).
    pub qemu: Reaped,
    _decoder: Option<Reaped>,
    /// When QEMU was started.
    pub booted: Instant,
}

impl Firmware {
    /// Boots `image` with `-nic NIC` (and `-append APPEND`), in `ns` if given.
    pub fn boot(image: Image, nic: &str, append: Option<&str>, ns: Option<&Netns>) -> Self {
        let firmware = image.elf().to_string_lossy().into_owned();
        let mut args = vec![
            "-machine",
            "mps2-an386",
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
            "-nic",
            nic,
            "-kernel",
            &firmware,
        ];
        if let Some(append) = append {
            args.extend(["-append", append]);
        }
        let mut command = match ns {
            Some(ns) => ns.command("qemu-system-arm", &args),
            None => {
                let mut command = Command::new("qemu-system-arm");
                command.args(&args);
                command
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let booted = Instant::now();
        let mut qemu = Reaped::start(command, "qemu-system-arm");
        let stdout = qemu.child.stdout.take().unwrap();
        let qemu_err = Lines::new(qemu.child.stderr.take().unwrap());
        let (log, decoder) = if host().decoder {
            let mut decode = Command::new("defmt-print");
            decode
                .args(["-e", &firmware])
                .stdin(Stdio::from(stdout))
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            let mut decoder = Reaped::start(decode, "defmt-print");
            (
                Lines::new(decoder.child.stdout.take().unwrap()),
                Some(decoder),
            )
        } else {
            (Lines::new(stdout), None)
        };
        Firmware {
            log,
            qemu_err,
            qemu,
            _decoder: decoder,
            booted,
        }
    }

    /// Waits for the log line containing `needle` (`true` without a decoder: unchecked).
    pub fn logged(&mut self, needle: &str, deadline: Duration) -> bool {
        !host().decoder || self.log.wait_for(needle, deadline).is_some()
    }

    /// CPU time (user + system) QEMU has used so far, from `/proc/<pid>/stat` (clock
    /// ticks of 10 ms).
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.qemu.id()))
            .expect("QEMU's /proc stat");
        // After "pid (comm) ": utime and stime are fields 14 and 15 of proc(5).
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    }

    /// QEMU's resident set (`VmRSS` of `/proc/<pid>/status`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.qemu.id()))
            .expect("QEMU's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS in QEMU's /proc status")
    }

    /// The log so far, for failure messages.
    pub fn log_text(&mut self) -> String {
        self.log.drain(Duration::from_millis(300))
    }
}

/// `n` printable bytes.
pub fn message(n: usize) -> String {
    (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect()
}
