//! The host's server: every decision between the datagram layer ([`crate::udp`]) and the
//! core's [`Responder`], and the loop that waits for datagrams.
//!
//! For each received buffer it decides, once:
//! - the **source** to answer from: the address the request was sent to, unless that was a
//!   broadcast, multicast or unspecified address (then the kernel picks);
//! - the **destination class** for the responder's broadcast guard: unicast, or a
//!   broadcast/multicast from a directly connected network or not ([`Interfaces`]);
//!
//! and for each datagram in it (a buffer holds several of one source when the kernel
//! coalesced them, GRO), the core's responder decides reply-or-drop, with its per-source
//! limits and counters charged per datagram exactly as on any other path. The replies
//! go to an [`Outbox`], which sends equal-length replies to one destination as one train
//! (GSO) where the kernel can.
//!
//! A [`Server`] built with [`Server::listen`] never replies: it only tells the
//! [`Observer`] what arrives (the `udp-echo listen` command).
//!
//! A server binds its own socket ([`Server::bind`]), or takes one a service manager
//! handed over ([`activation`], [`Server::bind_inherited`]): the same server either way.
//!
//! Each turn handles one batch, then the loop sleeps until a datagram arrives, the
//! observer's next deadline (e.g. a per-second summary), a signal (through
//! [`Shutdown::fd`]), or [`MAX_WAIT`], whichever is first.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rustix::fd::AsFd;
use udp_echo_core::wire::{canonical, canonical_ip};
use udp_echo_core::{
    Counters, DEFAULT_SOURCES, Decision, Destination, Instant, Received, Responder,
    ResponderConfig, Wake,
};

use crate::clock::Clock;
use crate::interfaces::Interfaces;
use crate::shutdown::Shutdown;
use crate::udp::{self, BindOptions, Datagrams, Offload, Outbox, Path};

/// The longest a loop sleeps before it checks [`Observer::stop`] again.
pub const MAX_WAIT: Duration = Duration::from_millis(200);

/// Bytes of each datagram shown to the [`Observer`]: enough for a line.
pub const HEAD: usize = 2048;

/// What a loop tells about the datagrams it handles; the shell's presentation.
pub trait Observer {
    /// One datagram and, for a server, the decision taken (`None` for a listener).
    /// Called on the receive path: it must not block.
    fn datagram(&mut self, received: &Received<'_>, decision: Option<&Decision>);

    /// Called after every turn of the loop; returns when it wants to be called again at
    /// the latest.
    fn tick(&mut self, _now: Instant) -> Wake {
        Wake::OnDatagram
    }

    /// Whether the loop should end (checked every turn, and at least every [`MAX_WAIT`]).
    fn stop(&self) -> bool {
        false
    }
}

/// An observer that looks at nothing.
impl Observer for () {
    fn datagram(&mut self, _: &Received<'_>, _: Option<&Decision>) {}
}

/// Why a loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// A signal (SIGINT, SIGTERM or, on Unix, SIGHUP) arrived.
    Signal,
    /// The observer asked to stop.
    Observer,
}

/// How to open a [`Server`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The address to bind; a wildcard (`0.0.0.0`, `[::]`) answers on every address, each
    /// reply from the address its request was sent to.
    pub bind: SocketAddr,
    /// How datagrams move; [`Path::Batched`] falls back to [`Path::Portable`] where the
    /// system lacks it (see [`Server::fallback`]).
    pub path: Path,
    /// The offloads to ask for.
    pub offload: Offload,
    /// Socket options (`SO_REUSEPORT` for several threads on one port).
    pub socket: BindOptions,
    /// The core's guards.
    pub config: ResponderConfig,
    /// A random key for the per-source table (see [`Responder::with_seed`]).
    pub seed: u64,
}

impl Options {
    /// Defaults: the best path, every offload, no socket options, the core's default
    /// guards.
    pub fn new(bind: SocketAddr) -> Self {
        Options {
            bind,
            path: Path::best(),
            offload: Offload::ALL,
            socket: BindOptions::default(),
            config: ResponderConfig::default(),
            seed: 0,
        }
    }
}

/// The byte-count server (or a listener) on one socket. See the [module docs](self).
///
/// `N` is the number of per-source buckets of the core's responder.
#[derive(Debug)]
pub struct Server<const N: usize = DEFAULT_SOURCES> {
    io: Datagrams,
    local: SocketAddr,
    /// `None`: a listener.
    responder: Option<Responder<N>>,
    /// Datagrams a listener saw.
    listened: u64,
    interfaces: Interfaces,
    outbox: Outbox,
    fallback: Option<io::Error>,
    stats: IoStats,
}

/// What moved through a server's system calls (its datagrams are in its [`Counters`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoStats {
    /// Receive buffers: fewer than datagrams received when the kernel coalesced (GRO).
    pub buffers: u64,
    /// Send calls: fewer than transmits when batched (`sendmmsg`).
    pub send_calls: u64,
    /// Transmits sent: fewer than replies when replies went out as trains (GSO).
    pub transmits: u64,
}

impl<const N: usize> Server<N> {
    /// Binds `options.bind` and answers with the guards of `options.config`.
    ///
    /// # Errors
    ///
    /// If the socket cannot be opened, bound or set up.
    pub fn bind(options: &Options) -> io::Result<Self> {
        let responder = Responder::with_sources(options.config).with_seed(options.seed);
        Self::open(options, Some(responder), None)
    }

    /// Binds `options.bind` to listen: every datagram goes to the observer, none is
    /// answered (the guards of `options.config` do not apply).
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn listen(options: &Options) -> io::Result<Self> {
        Self::open(options, None, None)
    }

    /// Answers on `socket`, handed over by a service manager ([`activation::take`]), as
    /// [`bind`](Self::bind) does on its own: `options.bind` and `options.socket` do not
    /// apply (the socket is bound, with the options its manager set).
    ///
    /// # Errors
    ///
    /// If the socket cannot be set up.
    pub fn bind_inherited(socket: activation::Inherited, options: &Options) -> io::Result<Self> {
        let responder = Responder::with_sources(options.config).with_seed(options.seed);
        Self::open(options, Some(responder), Some(socket))
    }

    /// Listens on `socket`, handed over by a service manager, as [`listen`](Self::listen)
    /// does on its own (see [`bind_inherited`](Self::bind_inherited)).
    ///
    /// # Errors
    ///
    /// As [`bind_inherited`](Self::bind_inherited).
    pub fn listen_inherited(socket: activation::Inherited, options: &Options) -> io::Result<Self> {
        Self::open(options, None, Some(socket))
    }

    fn open(
        options: &Options,
        responder: Option<Responder<N>>,
        inherited: Option<activation::Inherited>,
    ) -> io::Result<Self> {
        let (socket, spare) = match inherited {
            None => (udp::bind(options.bind, options.socket)?, None),
            Some(inherited) => {
                let socket = inherited.into_socket();
                socket.set_nonblocking(true)?;
                // A socket handed over cannot be opened again: a duplicate, for the
                // fallback below.
                let spare = socket.try_clone()?;
                (socket, Some(spare))
            }
        };
        let local = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("socket has no IP address"))?;
        let (io, fallback) = match Datagrams::new(socket, options.path, options.offload) {
            Ok(io) => (io, None),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                // The socket went with the refusal: open the port again (or take the
                // duplicate of a socket handed over).
                let socket = match spare {
                    Some(spare) => spare,
                    None => udp::bind(local, options.socket)?,
                };
                (
                    Datagrams::new(socket, Path::Portable, options.offload)?,
                    Some(e),
                )
            }
            Err(e) => return Err(e),
        };
        let outbox = Outbox::new(io.max_segments());
        Ok(Server {
            io,
            local,
            responder,
            listened: 0,
            interfaces: Interfaces::read(),
            outbox,
            fallback,
            stats: IoStats::default(),
        })
    }

    /// The bound address (with the port the system picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The path datagrams take.
    pub fn path(&self) -> Path {
        self.io.path()
    }

    /// Why the path asked for was not taken, if it was not.
    pub fn fallback(&self) -> Option<&io::Error> {
        self.fallback.as_ref()
    }

    /// The offloads in force.
    pub fn offload(&self) -> Offload {
        self.io.offload()
    }

    /// What moved through the system calls so far.
    pub fn io_stats(&self) -> IoStats {
        self.stats
    }

    /// What the server has seen and done (all zero for a listener but `received`).
    pub fn counters(&self) -> Counters {
        match &self.responder {
            Some(r) => *r.counters(),
            None => Counters {
                received: self.listened,
                ..Counters::default()
            },
        }
    }

    /// Handles one batch of waiting datagrams and sends the replies; tells `observer`
    /// about each datagram with the decision taken. Returns [`Wake::Now`] if the batch
    /// was full (more may be waiting), else [`Wake::OnDatagram`].
    ///
    /// # Errors
    ///
    /// If receiving fails with anything but an ICMP report for an earlier reply.
    pub fn poll(&mut self, now: Instant, observer: &mut impl Observer) -> io::Result<Wake> {
        let n = match self.io.recv() {
            Ok(n) => n,
            // An ICMP report for an earlier reply (Windows reports it as a reset).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                ) =>
            {
                return Ok(Wake::Now);
            }
            Err(e) => return Err(e),
        };
        self.stats.buffers += n as u64;
        for i in 0..n {
            let Some((meta, buf)) = self.io.get(i) else {
                continue; // not an IP source: nothing to answer
            };
            let from = canonical(meta.from);
            let Some(responder) = &mut self.responder else {
                for seg in meta.segments() {
                    self.listened += 1;
                    observer.datagram(&received(from, &buf[seg], now), None);
                }
                continue;
            };
            let to = self.interfaces.destination(from.ip(), meta.dst);
            // A broadcast's reply goes from the address the kernel picks: a subnet's
            // broadcast address, known only from the interface list, cannot be a source.
            let src = match to {
                Destination::Broadcast { .. } => None,
                _ => meta.dst.and_then(reply_source),
            };
            for seg in meta.segments() {
                let r = received(from, &buf[seg], now);
                let decision = responder.handle_to(now, from, to, r.len, r.head);
                if let Decision::Reply(reply) = decision {
                    // To the source as the socket reported it (a dual-stack socket's IPv4
                    // peers as `::ffff:a.b.c.d`, which it takes back as they came).
                    self.outbox.push(meta.from, src, reply.as_bytes());
                }
                observer.datagram(&r, Some(&decision));
            }
        }
        if !self.outbox.is_empty() {
            self.stats.transmits += self.outbox.len() as u64;
            let sent = self.io.send(&mut self.outbox);
            self.stats.send_calls += sent.calls as u64;
            if sent.failed > 0 {
                log::warn!("server: {} replies could not be sent", sent.failed);
                if let Some(r) = &mut self.responder {
                    for _ in 0..sent.failed {
                        r.note_send_failed();
                    }
                }
            }
        }
        Ok(if self.io.was_full() {
            Wake::Now
        } else {
            Wake::OnDatagram
        })
    }

    /// Runs until a signal arrives through `shutdown` or the observer says stop.
    ///
    /// # Errors
    ///
    /// As [`poll`](Self::poll), or if waiting fails.
    pub fn run(
        &mut self,
        clock: &Clock,
        shutdown: Option<&Shutdown>,
        observer: &mut impl Observer,
    ) -> io::Result<Stopped> {
        loop {
            if shutdown.is_some_and(Shutdown::requested) {
                return Ok(Stopped::Signal);
            }
            if observer.stop() {
                return Ok(Stopped::Observer);
            }
            let now = clock.now();
            let wake = self
                .poll(now, observer)?
                .min(observer.tick(now))
                .min(Wake::At(now + MAX_WAIT));
            let Some(at) = wake.deadline(now).filter(|at| *at > now) else {
                continue;
            };
            crate::wait::readable(
                self.io.socket().as_fd(),
                shutdown.and_then(Shutdown::fd),
                Some(clock.to_std(at)),
            )?;
        }
    }
}

fn received(from: SocketAddr, bytes: &[u8], at: Instant) -> Received<'_> {
    Received {
        from,
        len: bytes.len(),
        head: &bytes[..bytes.len().min(HEAD)],
        at,
    }
}

/// The source a reply should carry so that the client sees it come from the address it
/// sent to: that address, unless it cannot be a source (broadcast, multicast,
/// unspecified), and then the kernel picks.
pub fn reply_source(dst: IpAddr) -> Option<IpAddr> {
    match canonical_ip(dst) {
        IpAddr::V4(v4) if v4.is_broadcast() || v4.is_multicast() || v4.is_unspecified() => None,
        IpAddr::V6(v6) if v6.is_multicast() || v6.is_unspecified() => None,
        _ => Some(dst),
    }
}

pub mod activation {
    //! Socket activation: the socket a service manager hands over (systemd's `.socket`
    //! units, `systemd-socket-activate`), as `sd_listen_fds(3)` describes it: `LISTEN_FDS`
    //! descriptors from 3 on, for the process whose PID is `LISTEN_PID`.
    //!
    //! Unix only: elsewhere [`take`] refuses a set `LISTEN_FDS` with an error that says so.
    //! This module holds the crate's only `unsafe` outside the system-call layer: unsetting
    //! the variables, and taking ownership of the descriptor.
    #![allow(unsafe_code)]

    use std::io;
    use std::net::SocketAddr;

    use socket2::Socket;

    /// The first descriptor passed (`SD_LISTEN_FDS_START`).
    pub const LISTEN_FDS_START: i32 = 3;

    /// A bound UDP socket over IPv4 or IPv6 that a service manager handed over, for
    /// [`Server::bind_inherited`](super::Server::bind_inherited) or
    /// [`Server::listen_inherited`](super::Server::listen_inherited).
    #[derive(Debug)]
    pub struct Inherited {
        socket: Socket,
        local: SocketAddr,
    }

    impl Inherited {
        /// The address the socket is bound to.
        pub fn local_addr(&self) -> SocketAddr {
            self.local
        }

        pub(super) fn into_socket(self) -> Socket {
            self.socket
        }
    }

    #[cfg(unix)]
    fn refuse(message: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, message)
    }

    /// The socket passed to this process, if one was. `Ok(None)` without `LISTEN_PID` or
    /// `LISTEN_FDS`, with `LISTEN_FDS=0`, or when `LISTEN_PID` is another process's
    /// (variables inherited from a parent), as `sd_listen_fds(3)` does. Unsets
    /// `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` in every case (as `sd_listen_fds`
    /// with `unset_environment`), so that no child process takes them for its own.
    ///
    /// # Errors
    ///
    /// `ErrorKind::InvalidInput` with a message for people when the variables are
    /// malformed or pass more than one descriptor, or when the descriptor is not open or
    /// not a UDP socket over IPv4 or IPv6; `ErrorKind::Unsupported` where there is no
    /// socket activation (not Unix) and `LISTEN_FDS` is set.
    ///
    /// # Safety
    ///
    /// It unsets environment variables: as with [`std::env::remove_var`], no other thread
    /// may read or write the environment meanwhile. Call it before the process starts
    /// threads.
    pub unsafe fn take() -> io::Result<Option<Inherited>> {
        let pid = std::env::var("LISTEN_PID");
        let fds = std::env::var("LISTEN_FDS");
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            // SAFETY: the caller guarantees that no other thread reads or writes the
            // environment now (this function's contract).
            unsafe { std::env::remove_var(name) };
        }
        #[cfg(not(unix))]
        {
            let _ = pid;
            match fds {
                Err(std::env::VarError::NotPresent) => Ok(None),
                _ => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "LISTEN_FDS is set, but socket activation exists only on Unix",
                )),
            }
        }
        #[cfg(unix)]
        {
            let (Ok(pid), Ok(fds)) = (pid, fds) else {
                return Ok(None);
            };
            let pid: u32 = pid
                .parse()
                .map_err(|_| refuse(format!("LISTEN_PID={pid} is not a process ID")))?;
            if pid != std::process::id() {
                return Ok(None);
            }
            let n: u32 = fds
                .parse()
                .map_err(|_| refuse(format!("LISTEN_FDS={fds} is not a number")))?;
            match n {
                0 => Ok(None),
                1 => take_fd(LISTEN_FDS_START).map(Some),
                n => Err(refuse(format!(
                    "the service manager passed {n} sockets (LISTEN_FDS={n}); udp-echo takes \
                     one (one ListenDatagram= in the .socket unit)"
                ))),
            }
        }
    }

    /// Takes descriptor `fd` if it is open and a UDP socket over IPv4 or IPv6.
    #[cfg(unix)]
    fn take_fd(fd: i32) -> io::Result<Inherited> {
        use std::os::fd::{BorrowedFd, FromRawFd};

        use rustix::io::{Errno, FdFlags};

        // SAFETY: only to ask whether `fd` is open (F_GETFD), and to set FD_CLOEXEC as
        // sd_listen_fds(3) does: the borrow ends with this statement, and nothing in this
        // process closes the descriptors the service manager passed.
        let flags = unsafe {
            let borrowed = BorrowedFd::borrow_raw(fd);
            rustix::io::fcntl_getfd(borrowed)
                .and_then(|f| rustix::io::fcntl_setfd(borrowed, f | FdFlags::CLOEXEC))
        };
        match flags {
            Ok(()) => {}
            Err(Errno::BADF) => {
                return Err(refuse(format!(
                    "LISTEN_FDS=1, but descriptor {fd} is not open"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        // SAFETY: `fd` is open (checked above) and, by the protocol (LISTEN_PID is this
        // process, LISTEN_FDS counts it), passed to this process for it to own; nothing
        // else in the process owns it, and the variables are gone, so it is taken once.
        let socket = unsafe { Socket::from_raw_fd(fd) };
        let not_udp = |what: &str| {
            refuse(format!(
                "descriptor {fd} from the service manager is not a UDP socket (SOCK_DGRAM over \
                 IPv4 or IPv6): {what}"
            ))
        };
        match socket.r#type() {
            Ok(t) if t == socket2::Type::DGRAM => {}
            Ok(t) if t == socket2::Type::STREAM => {
                return Err(not_udp(
                    "it is a stream socket (ListenStream= in the .socket unit: use ListenDatagram=)",
                ));
            }
            Ok(_) => return Err(not_udp("it is another type of socket")),
            Err(e) if e.raw_os_error() == Some(Errno::NOTSOCK.raw_os_error()) => {
                return Err(not_udp("it is not a socket"));
            }
            Err(e) => return Err(e),
        }
        let Some(local) = socket.local_addr()?.as_socket() else {
            return Err(not_udp("it is not an IPv4 or IPv6 socket"));
        };
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        if !matches!(socket.protocol(), Ok(Some(p)) if p == socket2::Protocol::UDP) {
            return Err(not_udp("its protocol is not UDP"));
        }
        Ok(Inherited { socket, local })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_multicast_and_unspecified_destinations_leave_the_source_to_the_kernel() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for none in [
            "255.255.255.255",
            "::ffff:255.255.255.255",
            "224.0.0.1",
            "ff02::1",
            "::",
            "0.0.0.0",
        ] {
            assert_eq!(reply_source(ip(none)), None, "{none}");
        }
        for same in ["10.0.0.1", "::ffff:10.0.0.1", "fd00::2", "fe80::1"] {
            assert_eq!(reply_source(ip(same)), Some(ip(same)), "{same}");
        }
    }
}
