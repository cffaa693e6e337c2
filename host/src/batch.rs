//! The host's fast server: up to [`BATCH`](mmsg::BATCH) datagrams per `recvmmsg(2)`, the core's
//! [`Responder`] on every one of them (the same guards, counters and decisions as the
//! core's `Server` driver), and the replies in one `sendmmsg(2)`.
//!
//! What it adds over the `embedded-nal` path ([`udp_echo_core::Server`] on
//! [`StdStack`]):
//! - two system calls per batch instead of two per datagram;
//! - on a socket bound to a wildcard address, each datagram's destination
//!   (`IP_PKTINFO`/`IPV6_PKTINFO`): the reply goes out *from the address the request was
//!   sent to*, and the responder learns whether the request was a broadcast and whether
//!   its source is on a directly connected network ([`Responder::handle_to`]).
//!
//! True lengths stay exact (`MSG_TRUNC` per message); a reply the kernel refuses is
//! counted (`send_failed`) and the rest of the batch still goes out; each call handles at
//! most one batch, so the loop looks at signals between batches as often as the simple
//! path does.

use std::io;
use std::net::IpAddr;

use udp_echo_core::embedded_nal::{UdpClientStack, UdpFullStack};
use udp_echo_core::responder::DEFAULT_SOURCES;
use udp_echo_core::wire::canonical;
use udp_echo_core::{
    Counters, Decision, Instant, Received, Responder, ResponderConfig, StackErrorKind, Wake,
};

use crate::interfaces::Interfaces;
use crate::mmsg::{self, RecvBatch, SendBatch};
use crate::stack::{StdSocket, StdStack};

/// The batched byte-count server on one socket. See the [module docs](self).
#[derive(Debug)]
pub struct BatchServer<const N: usize = DEFAULT_SOURCES> {
    socket: StdSocket,
    responder: Responder<N>,
    recv: RecvBatch,
    send: SendBatch,
    /// The socket is IPv6 (IPv4 peers appear v4-mapped).
    ipv6: bool,
    /// The socket reports destinations (bound to a wildcard or non-local address).
    packet_info: bool,
    interfaces: Interfaces,
}

impl BatchServer {
    /// Binds `port` on `stack`'s bind address (with its options, e.g. `SO_REUSEPORT`) and
    /// answers with the guards of `config`.
    ///
    /// # Errors
    ///
    /// If the socket cannot be opened, bound or set up, or the kernel has no
    /// `recvmmsg(2)` (`ErrorKind::Unsupported`: use the simple path).
    pub fn bind(stack: &mut StdStack, port: u16, config: ResponderConfig) -> io::Result<Self> {
        let mut socket = stack.socket()?;
        stack.bind(&mut socket, port)?;
        if !mmsg::available(&socket) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel has no recvmmsg(2)",
            ));
        }
        let local = socket.local_addr()?;
        let interfaces = Interfaces::read();
        // A socket bound to one of this host's unicast addresses only ever gets datagrams
        // sent to that address, and its replies come from it: nothing to learn per
        // datagram. Anything else (a wildcard, a broadcast address) asks the kernel.
        let packet_info = local.ip().is_unspecified() || !interfaces.is_local(local.ip());
        if packet_info {
            mmsg::enable_packet_info(&socket)?;
        }
        Ok(BatchServer {
            socket,
            responder: Responder::new(config),
            recv: RecvBatch::new(),
            send: SendBatch::new(),
            ipv6: local.is_ipv6(),
            packet_info,
            interfaces,
        })
    }
}

impl<const N: usize> BatchServer<N> {
    /// The same server with `M` per-source buckets (see
    /// [`udp_echo_core::Server::with_sources`]). Call before the first poll.
    #[must_use]
    pub fn with_sources<const M: usize>(self) -> BatchServer<M> {
        BatchServer {
            socket: self.socket,
            responder: Responder::with_sources(*self.responder.config()),
            recv: self.recv,
            send: self.send,
            ipv6: self.ipv6,
            packet_info: self.packet_info,
            interfaces: self.interfaces,
        }
    }

    /// Keys the per-source table with a random `seed` (see [`Responder::with_seed`]).
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.responder = self.responder.with_seed(seed);
        self
    }

    /// The socket, for a shell that waits on it.
    pub fn socket(&self) -> &StdSocket {
        &self.socket
    }

    /// Whether the server learns each datagram's destination (and replies from it).
    pub fn knows_destinations(&self) -> bool {
        self.packet_info
    }

    /// What the server has seen and done.
    pub fn counters(&self) -> &Counters {
        self.responder.counters()
    }

    /// Answers one batch of waiting datagrams (up to [`BATCH`](mmsg::BATCH)) and tells `on_datagram`
    /// about each with the decision taken. Returns [`Wake::Now`] if the batch was full
    /// (more may be waiting), else [`Wake::OnDatagram`].
    ///
    /// # Errors
    ///
    /// If receiving fails with anything but an ICMP report for an earlier reply.
    pub fn poll(
        &mut self,
        now: Instant,
        mut on_datagram: impl FnMut(&Received<'_>, &Decision),
    ) -> io::Result<Wake> {
        let n = match self.recv.recv(&self.socket) {
            Ok(n) => n,
            Err(e) if udp_echo_core::stack::classify_io_error(&e) == StackErrorKind::Refused => {
                return Ok(Wake::Now);
            }
            Err(e) => return Err(e),
        };
        for i in 0..n {
            let Some(d) = self.recv.get(i) else {
                continue; // not an IP source: nothing to answer
            };
            let from = canonical(d.from);
            let dst = d.info.map(|info| info.dst);
            // On an IPv4 socket the kernel names the address it would answer from: another
            // than the destination means it delivered a broadcast.
            let kernel_says_broadcast = d
                .info
                .and_then(|info| info.local)
                .is_some_and(|local| Some(IpAddr::V4(local)) != dst);
            let to = self
                .interfaces
                .destination(from.ip(), dst, kernel_says_broadcast);
            let decision = self.responder.handle_to(now, from, to, d.len, d.head);
            if let Decision::Reply(reply) = decision {
                let source = d
                    .info
                    .and_then(|info| info.reply_source().map(|ip| (ip, info.ifindex)));
                // To the source as the socket reported it (a dual-stack socket's IPv4 peers
                // as `::ffff:a.b.c.d`, which it takes back as they came).
                let _ = self.send.push(Some(d.from), reply, source, self.ipv6);
            }
            on_datagram(
                &Received {
                    from,
                    len: d.len,
                    head: d.head,
                    at: now,
                },
                &decision,
            );
        }
        let sent = self.send.flush(&self.socket);
        for _ in 0..sent.failed {
            self.responder.note_send_failed();
        }
        if sent.failed > 0 {
            log::warn!("server: {} replies could not be sent", sent.failed);
        }
        Ok(if self.recv.was_full() {
            Wake::Now
        } else {
            Wake::OnDatagram
        })
    }
}
