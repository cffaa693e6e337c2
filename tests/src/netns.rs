//! Throwaway network namespaces (with a TAP device, or joined by a veth pair), for the
//! root-only tests: created per test, always deleted (by a drop guard, and stale ones of
//! killed runs at the next start).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::process::run_bounded;

/// Why this machine cannot run the namespace tests, if it cannot.
pub fn skip_reason() -> Option<String> {
    if !is_root() {
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

    /// A namespace with only `lo`, up (no TAP device).
    pub fn bare(prefix: &str, test: &str) -> Self {
        remove_stale_namespaces(prefix);
        let name = format!("{prefix}-{}-{test}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// Two namespaces joined by a veth pair, `va` in the first and `vb` in the second,
    /// holding `a` and `b` (e.g. `10.7.0.1/24`), up, with IPv6 duplicate address
    /// detection off so that their link-local addresses work at once.
    pub fn pair(prefix: &str, test: &str, a: &str, b: &str) -> (Self, Self) {
        let first = Self::bare(prefix, &format!("{test}-a"));
        let second = Self::bare(prefix, &format!("{test}-b"));
        for ns in [&first, &second] {
            for key in ["all", "default"] {
                let out = ns
                    .command(
                        "sysctl",
                        &["-qw", &format!("net.ipv6.conf.{key}.accept_dad=0")],
                    )
                    .output()
                    .expect("sysctl");
                assert!(out.status.success(), "sysctl in {}", ns.name);
            }
        }
        ip(&[
            "-n",
            &first.name,
            "link",
            "add",
            "va",
            "type",
            "veth",
            "peer",
            "name",
            "vb",
            "netns",
            &second.name,
        ]);
        for (ns, dev, cidr) in [(&first, "va", a), (&second, "vb", b)] {
            ip(&["-n", &ns.name, "addr", "add", cidr, "dev", dev]);
            ip(&["-n", &ns.name, "link", "set", dev, "up"]);
        }
        // The link-local addresses come once both ends are up: wait for them (bounded).
        for (ns, dev) in [(&first, "va"), (&second, "vb")] {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let out = Command::new("ip")
                    .args([
                        "-n", &ns.name, "-6", "addr", "show", "dev", dev, "scope", "link",
                    ])
                    .output()
                    .expect("ip");
                let text = String::from_utf8_lossy(&out.stdout);
                if text.contains("fe80::") && !text.contains("tentative") {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{dev} in {} has no link-local address: {text}",
                    ns.name
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        (first, second)
    }

    /// A namespace `<prefix>-<pid>-<n>` with only `lo`, up, or why it cannot be made (not
    /// root, no `ip`, …): for the tests that skip, with the reason, rather than fail.
    pub fn empty(prefix: &str) -> Result<Self, String> {
        if !is_root() {
            return Err("not root".into());
        }
        static N: AtomicU32 = AtomicU32::new(0);
        remove_stale_namespaces(prefix);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        try_ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Two [`empty`](Self::empty) namespaces joined by a veth pair, `vs` in the first and
    /// `vc` in the second, both up, each with its addresses (e.g. `10.7.0.1/24`; an address
    /// may carry options, e.g. `fd00::1/64 preferred_lft 0`; IPv6 ones get `nodad`).
    pub fn veth_pair(
        prefix: &str,
        first: &[&str],
        second: &[&str],
    ) -> Result<(Self, Self), String> {
        let (a, b) = (Self::empty(prefix)?, Self::empty(prefix)?);
        a.ip(&[
            "link", "add", "vs", "type", "veth", "peer", "name", "vc", "netns", &b.name,
        ])?;
        for (ns, dev, addrs) in [(&a, "vs", first), (&b, "vc", second)] {
            for addr in addrs {
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

    /// `ip -n <namespace> args…` (bounded); `Err` with its stderr if it fails.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        try_ip(&all)
    }

    /// Moves the calling thread into the namespace: the sockets it opens from now on are
    /// the namespace's (other threads, and the children of this process, stay where they
    /// are). For a thread of its own, which ends before the namespace is deleted.
    #[cfg(target_os = "linux")]
    pub fn enter(&self) -> std::io::Result<()> {
        let file = std::fs::File::open(format!("/var/run/netns/{}", self.name))?;
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )?;
        Ok(())
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
        quiet(&["-n", &self.name, "link", "del", "va"]);
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
    if let Err(why) = try_ip(args) {
        panic!("{why}");
    }
}

/// Runs `ip args…` (bounded); `Err` with its stderr if it fails.
pub fn try_ip(args: &[&str]) -> Result<(), String> {
    let mut command = Command::new("ip");
    command.args(args);
    let out = run_bounded(command, Duration::from_secs(10));
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

/// Whether this process runs as root (effective UID 0, from `/proc/self/status`).
fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}
