//! Throwaway network namespaces with a TAP device, for the root-only tests: created per
//! test, always deleted (by a drop guard, and stale ones of killed runs at the next start).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::run_bounded;

/// Why this machine cannot run the namespace tests, if it cannot.
pub fn skip_reason() -> Option<String> {
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

/// A network namespace `<prefix>-<pid>-<test>` with `lo` up and `tap0` holding a given
/// address, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// The namespace's name.
    pub name: String,
}

impl Netns {
    /// Creates the namespace and `tap0` with `cidr` (e.g. `192.168.69.100/24`), up.
    pub fn create(prefix: &str, test: &str, cidr: &str) -> Self {
        remove_stale_namespaces(prefix);
        let name = format!("{prefix}-{}-{test}", std::process::id());
        ip(&["netns", "add", &name]);
        // From here on, the guard deletes the namespace even if a later step fails.
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ip(&[
            "-n", &ns.name, "tuntap", "add", "name", "tap0", "mode", "tap",
        ]);
        ip(&["-n", &ns.name, "addr", "add", cidr, "dev", "tap0"]);
        ip(&["-n", &ns.name, "link", "set", "tap0", "up"]);
        ns
    }

    /// `program args…` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
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

/// Deletes namespaces `<prefix>-<pid>-…` left by earlier runs that were killed before their
/// guards ran (their process is gone).
fn remove_stale_namespaces(prefix: &str) {
    let Ok(list) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
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

/// Runs `ip args…` (bounded), failing the test if it fails.
pub fn ip(args: &[&str]) {
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
