//! What several commands share: the [`Failure`] every command returns, the retry and
//! network options flattened into the clients' arguments, and the default addresses.
//! Imports nothing from `commands` or `cli`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Args;
use udp_echo::parse::{Family, Peer, parse_duration, parse_factor, parse_source};
use udp_echo_core::{Factor, RetryPolicy};

/// A command's failure: its message and exit status.
#[derive(Debug)]
pub struct Failure {
    /// For stderr, after `udp-echo: `.
    pub message: String,
    /// The exit status.
    pub code: u8,
}

impl Failure {
    /// Bad usage or input: exit 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 2,
        }
    }

    /// The network did not deliver, or a socket failed: exit 1.
    pub fn network(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 1,
        }
    }
}

// The retry schedule's options (flattened into send and ping).
#[derive(Debug, Args, Clone)]
pub struct RetryArgs {
    /// Wait after the first send (a number alone is seconds).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub initial_timeout: Duration,
    /// Give up once the next wait would exceed this.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub max_timeout: Duration,
    /// Growth of the wait after each timeout, e.g. `2` or `1.5`.
    #[arg(long, default_value = "2", value_parser = parse_factor)]
    pub factor: Factor,
    /// At most this many sends, 1 or more (default: as many as the waits allow, 5 by
    /// default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: Option<u32>,
}

impl RetryArgs {
    /// The policy, checked by the core (its message on error).
    pub fn policy(&self) -> Result<RetryPolicy, Failure> {
        let mut policy = RetryPolicy::default();
        policy.initial_wait = self.initial_timeout;
        policy.max_wait = self.max_timeout;
        policy.factor = self.factor;
        policy.max_attempts = self.attempts;
        policy
            .validate()
            .map_err(|e| Failure::usage(format!("invalid retry policy: {e}")))?;
        Ok(policy)
    }
}

// Where a client's datagrams go from: family, source address, interface (send, ping,
// discover).
#[derive(Debug, Args, Clone, Default)]
pub struct NetArgs {
    /// IPv4 only: a name resolves to its IPv4 address; an IPv6 address is refused.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only: a name resolves to its IPv6 address; an IPv4 address is refused.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Send from this address of this machine, and from this port if one is given (as
    /// nc's -s and -p): `--source 10.0.0.2`, `--source 10.0.0.2:40000`, `--source [::1]:0`.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_source)]
    pub source: Option<SocketAddr>,
    /// Send through this interface only, e.g. `eth0` (SO_BINDTODEVICE on Linux,
    /// IP_BOUND_IF on macOS; other systems refuse it).
    #[arg(long, value_name = "IFACE")]
    pub interface: Option<String>,
}

impl NetArgs {
    /// The family -4/-6 hold the command to.
    pub fn family(&self) -> Option<Family> {
        match (self.ipv4, self.ipv6) {
            (true, _) => Some(Family::V4),
            (_, true) => Some(Family::V6),
            _ => None,
        }
    }

    /// `peer` in the family asked for (usage error if it has none).
    pub fn resolve(&self, peer: &Peer) -> Result<SocketAddr, Failure> {
        peer.addr_in(self.family()).map_err(Failure::usage)
    }

    /// A client stack with the source and interface asked for.
    pub fn stack(&self) -> udp_echo_host::stack::StdStack {
        let mut stack = udp_echo_host::stack::StdStack::new();
        if let Some(source) = self.source {
            stack = stack.with_source(source);
        }
        if let Some(name) = &self.interface {
            stack = stack.with_device(name.clone());
        }
        stack
    }

    /// A stack for a socket that sends to `to`, a broadcast address or group
    /// (`SO_BROADCAST` on), bound to --source if given (its port too), else to any address
    /// of `to`'s family; and the port to bind.
    pub fn broadcast_stack(&self, to: SocketAddr) -> (udp_echo_host::stack::StdStack, u16) {
        let (ip, port) = match self.source {
            Some(source) => (source.ip(), source.port()),
            None if to.is_ipv4() => (std::net::Ipv4Addr::UNSPECIFIED.into(), 0),
            None => (std::net::Ipv6Addr::UNSPECIFIED.into(), 0),
        };
        let mut stack = udp_echo_host::stack::StdStack::new()
            .with_broadcast(true)
            .with_bind_ip(ip);
        if let Some(name) = &self.interface {
            stack = stack.with_device(name.clone());
        }
        (stack, port)
    }
}

/// The default server in the family asked for: 127.0.0.1:6666, or [::1]:6666 with -6.
pub fn local_server_in(family: Option<Family>) -> SocketAddr {
    match family {
        Some(Family::V6) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, DEFAULT_PORT)),
        _ => local_server(),
    }
}

/// The protocol's port, used when an address comes without one.
pub use udp_echo_core::wire::DEFAULT_PORT;

/// The default server: this machine only, the protocol's port.
pub fn local_server() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT))
}
