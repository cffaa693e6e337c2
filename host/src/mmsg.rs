//! Batched datagram I/O for Linux: `recvmmsg(2)` and `sendmmsg(2)`, with each datagram's
//! true length (`MSG_TRUNC`), its destination (`IP_PKTINFO` / `IPV6_PKTINFO` in) and a
//! per-message reply source (the same control messages out).
//!
//! This is the only module of the crate with `unsafe`: the two system calls. Everything
//! they read or write is a buffer owned by [`RecvBatch`] or [`SendBatch`], and the
//! addresses and control messages are encoded and decoded as plain bytes in safe code.
//!
//! Why not nix's `recvmmsg`/`sendmmsg` (nix 0.32): its `sendmmsg` takes one set of control
//! messages for the whole batch, so replies to requests that arrived on different
//! addresses cannot each carry their own source; it reports how many messages went out
//! only through an iterator that decodes every header again; and its `recvmmsg` does not
//! reset the name and control capacities that the kernel overwrites. nix is still used
//! for what it does well here: the socket options and the interface list.

#![allow(unsafe_code)] // the two system calls; see the module docs

use std::io;
use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};

use udp_echo_core::Reply;

/// Datagrams per system call; also the most a loop handles between two looks at its
/// signals and timers (the core's [`BATCH`](udp_echo_core::BATCH), as on the simple path).
pub const BATCH: usize = udp_echo_core::BATCH;

/// Bytes of each datagram kept: enough to show a line and to spot a reply-shaped one;
/// the length is always the true one (`MSG_TRUNC`).
pub const HEAD: usize = 2048;

/// Room for a `sockaddr_in6` (28 bytes), the larger of the two address families.
const NAME: usize = 28;
/// Room for one `IPV6_PKTINFO` or `IP_PKTINFO` control message.
const CONTROL: usize = cmsg_space(size_of::<libc::in6_pktinfo>());

/// `CMSG_ALIGN` of glibc/Linux: control messages are aligned to `size_t`.
const fn cmsg_align(n: usize) -> usize {
    (n + size_of::<usize>() - 1) & !(size_of::<usize>() - 1)
}
const CMSG_HDR: usize = cmsg_align(size_of::<libc::cmsghdr>());
const fn cmsg_len(n: usize) -> usize {
    CMSG_HDR + n
}
const fn cmsg_space(n: usize) -> usize {
    CMSG_HDR + cmsg_align(n)
}
// The byte layout read and written below: `cmsg_len` is a `size_t` at offset 0.
const _: () = assert!(offset_of!(libc::cmsghdr, cmsg_len) == 0);
const _: () = assert!(size_of::<libc::size_t>() == size_of::<usize>());

/// Where a datagram was sent and on which interface, as the kernel reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo {
    /// The destination address in the IP header (may be a broadcast or multicast
    /// address; IPv4 on a dual-stack socket appears as `::ffff:a.b.c.d`).
    pub dst: IpAddr,
    /// For IPv4 sockets, the local address the kernel would answer from (`ipi_spec_dst`):
    /// `dst` itself for unicast, the interface's address for a broadcast. `None` on IPv6
    /// sockets, which are not told.
    pub local: Option<Ipv4Addr>,
    /// The interface it arrived on.
    pub ifindex: u32,
}

impl PacketInfo {
    /// The source address a reply should carry so that the client sees it come from the
    /// address it sent to; `None` when that address cannot be a source (a broadcast or
    /// multicast destination on an IPv6 socket): the kernel then picks.
    pub fn reply_source(&self) -> Option<IpAddr> {
        if let Some(local) = self.local {
            return Some(IpAddr::V4(local));
        }
        match udp_echo_core::wire::canonical_ip(self.dst) {
            IpAddr::V4(v4) if v4.is_broadcast() || v4.is_multicast() => None,
            IpAddr::V6(v6) if v6.is_multicast() || v6.is_unspecified() => None,
            _ => Some(self.dst),
        }
    }
}

/// Asks the kernel for each datagram's destination (`IP_PKTINFO` on an IPv4 socket,
/// `IPV6_RECVPKTINFO` on an IPv6 one, which covers its IPv4 peers too).
///
/// # Errors
///
/// If the socket is neither IPv4 nor IPv6, or `setsockopt(2)` fails.
pub fn enable_packet_info(socket: &impl AsFd) -> io::Result<()> {
    use nix::sys::socket::{SockaddrStorage, getsockname, setsockopt, sockopt};
    let fd = socket.as_fd();
    let local: SockaddrStorage = getsockname(fd.as_raw_fd())?;
    if local.as_sockaddr_in6().is_some() {
        setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)?;
    } else if local.as_sockaddr_in().is_some() {
        setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)?;
    } else {
        return Err(io::Error::other("not an IP socket"));
    }
    Ok(())
}

/// One datagram of a [`RecvBatch`].
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// Its source as the socket reports it (IPv4 peers of a dual-stack socket as
    /// `::ffff:a.b.c.d`; see [`udp_echo_core::wire::canonical`]).
    pub from: SocketAddr,
    /// Its true length, even when longer than [`HEAD`].
    pub len: usize,
    /// Its first bytes (at most [`HEAD`]).
    pub head: &'a [u8],
    /// Its destination, if the socket reports it ([`enable_packet_info`]).
    pub info: Option<PacketInfo>,
}

#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Name([u8; NAME]);

#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; CONTROL]);

/// Buffers for receiving up to [`BATCH`] datagrams in one `recvmmsg(2)`.
pub struct RecvBatch {
    heads: Box<[[u8; HEAD]; BATCH]>,
    names: [Name; BATCH],
    controls: [Control; BATCH],
    /// Per received message: true length, name length, control length.
    got: [(usize, usize, usize); BATCH],
    count: usize,
    /// Whether the last call got all it asked for.
    full: bool,
    /// How many messages the next call asks for: it doubles while calls come back full
    /// and falls back to twice the last count, so that setting up the headers costs in
    /// proportion to what arrives, not a full batch per datagram under light load.
    want: usize,
}

/// The fewest messages one call asks for.
const MIN_WANT: usize = 4;

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    /// Empty buffers (64 KiB of heads).
    pub fn new() -> Self {
        RecvBatch {
            heads: vec![[0u8; HEAD]; BATCH]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("BATCH heads")),
            names: [Name([0; NAME]); BATCH],
            controls: [Control([0; CONTROL]); BATCH],
            got: [(0, 0, 0); BATCH],
            count: 0,
            full: false,
            want: BATCH,
        }
    }

    /// Receives what is waiting, up to [`BATCH`] datagrams, without blocking; returns how
    /// many (0: nothing was waiting). Datagrams are read with `MSG_TRUNC`, so each one's
    /// length is its true length.
    ///
    /// # Errors
    ///
    /// The kernel's, except `EAGAIN` (0 datagrams) and `EINTR` (tried again).
    pub fn recv(&mut self, socket: &impl AsFd) -> io::Result<usize> {
        self.count = 0;
        let want = self.want;
        // Only `want` headers are built (heapless: no initialisation of the rest).
        let mut iovs: heapless::Vec<libc::iovec, BATCH> = heapless::Vec::new();
        for head in self.heads.iter_mut().take(want) {
            let _ = iovs.push(libc::iovec {
                iov_base: head.as_mut_ptr().cast(),
                iov_len: HEAD,
            });
        }
        let mut msgs: heapless::Vec<libc::mmsghdr, BATCH> = heapless::Vec::new();
        for (i, (name, control)) in self.names.iter_mut().zip(&mut self.controls).enumerate() {
            if i == want {
                break;
            }
            let _ = msgs.push(libc::mmsghdr {
                msg_hdr: libc::msghdr {
                    msg_name: name.0.as_mut_ptr().cast(),
                    msg_namelen: NAME as libc::socklen_t,
                    msg_iov: iovs.as_mut_ptr().wrapping_add(i),
                    msg_iovlen: 1,
                    msg_control: control.0.as_mut_ptr().cast(),
                    msg_controllen: CONTROL,
                    msg_flags: 0,
                },
                msg_len: 0,
            });
        }
        let fd = socket.as_fd().as_raw_fd();
        let n = loop {
            // SAFETY: `msgs` holds `msgs.len()` headers, each pointing at its own name (NAME
            // bytes), control (CONTROL bytes) and iovec, whose buffer is HEAD bytes long, as
            // the lengths say; all are owned by `self` or this frame and outlive the call
            // (the heapless vectors never move their elements).
            // The kernel writes only within those lengths. A null timeout never blocks
            // longer than the non-blocking flag allows.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    msgs.len() as libc::c_uint,
                    libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(e),
            }
        };
        for (got, m) in self.got.iter_mut().zip(&msgs).take(n) {
            *got = (
                m.msg_len as usize,
                m.msg_hdr.msg_namelen as usize,
                m.msg_hdr.msg_controllen,
            );
        }
        self.count = n;
        self.want = if n == want {
            (want * 2).min(BATCH)
        } else {
            (n * 2).clamp(MIN_WANT, BATCH)
        };
        self.full = n == want;
        Ok(n)
    }

    /// Whether the last [`recv`](Self::recv) filled what it asked for: more may be waiting.
    pub fn was_full(&self) -> bool {
        self.full
    }

    /// How many datagrams the last [`recv`](Self::recv) got.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the last [`recv`](Self::recv) got nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `i`th datagram of the last [`recv`](Self::recv); `None` past the end or if its
    /// source is not an IP address.
    pub fn get(&self, i: usize) -> Option<Datagram<'_>> {
        if i >= self.count {
            return None;
        }
        let (len, namelen, controllen) = self.got[i];
        let from = decode_name(&self.names[i].0[..namelen.min(NAME)])?;
        Some(Datagram {
            from,
            len,
            head: &self.heads[i][..len.min(HEAD)],
            info: decode_packet_info(&self.controls[i].0[..controllen.min(CONTROL)]),
        })
    }
}

/// Replies waiting to go out in one `sendmmsg(2)`: each with its destination and,
/// optionally, its source address.
pub struct SendBatch {
    names: [Name; BATCH],
    namelens: [usize; BATCH],
    controls: [Control; BATCH],
    controllens: [usize; BATCH],
    replies: [Reply; BATCH],
    count: usize,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`SendBatch::flush`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sent {
    /// Messages the kernel took.
    pub sent: usize,
    /// Messages it refused (each counted, the rest of the batch still sent).
    pub failed: usize,
}

impl SendBatch {
    /// An empty batch.
    pub fn new() -> Self {
        SendBatch {
            names: [Name([0; NAME]); BATCH],
            namelens: [0; BATCH],
            controls: [Control([0; CONTROL]); BATCH],
            controllens: [0; BATCH],
            replies: [Reply::new(0); BATCH],
            count: 0,
        }
    }

    /// Whether another reply fits.
    pub fn is_full(&self) -> bool {
        self.count == BATCH
    }

    /// Replies queued.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Queues `reply` to `to` (`None`: the socket is connected), from `source` if given
    /// (`IP_PKTINFO`/`IPV6_PKTINFO` out; `ipv6_socket` says which; `ifindex` is kept for
    /// IPv6 link-local sources only). Returns false (nothing queued) if the batch is full.
    pub fn push(
        &mut self,
        to: Option<SocketAddr>,
        reply: Reply,
        source: Option<(IpAddr, u32)>,
        ipv6_socket: bool,
    ) -> bool {
        if self.is_full() {
            return false;
        }
        let i = self.count;
        self.namelens[i] = match to {
            Some(to) => encode_name(to, &mut self.names[i].0),
            None => 0,
        };
        self.controllens[i] = match source {
            Some((ip, ifindex)) => encode_source(ip, ifindex, ipv6_socket, &mut self.controls[i].0),
            None => 0,
        };
        self.replies[i] = reply;
        self.count += 1;
        true
    }

    /// Sends every queued reply, in as few `sendmmsg(2)` calls as the kernel allows: a
    /// message it refuses is counted as failed and skipped, and the rest still go out.
    /// The batch is empty afterwards.
    pub fn flush(&mut self, socket: &impl AsFd) -> Sent {
        self.send(socket, None)
    }

    /// Like [`flush`](Self::flush), but every queued message carries `payload` instead of
    /// its reply (e.g. a load generator's requests).
    pub fn flush_same(&mut self, socket: &impl AsFd, payload: &[u8]) -> Sent {
        self.send(socket, Some(payload))
    }

    fn send(&mut self, socket: &impl AsFd, payload: Option<&[u8]>) -> Sent {
        let n = self.count;
        self.count = 0;
        let mut done = Sent::default();
        if n == 0 {
            return done;
        }
        // Only the `n` messages queued are filled in.
        let mut iovs = [EMPTY_IOV; BATCH];
        let mut msgs = [EMPTY_MSG; BATCH];
        for (i, (iov, msg)) in iovs.iter_mut().zip(&mut msgs).enumerate().take(n) {
            let bytes = payload.unwrap_or(self.replies[i].as_bytes());
            *iov = libc::iovec {
                iov_base: bytes.as_ptr().cast_mut().cast(),
                iov_len: bytes.len(),
            };
            let h = &mut msg.msg_hdr;
            if self.namelens[i] != 0 {
                h.msg_name = self.names[i].0.as_mut_ptr().cast();
                h.msg_namelen = self.namelens[i] as libc::socklen_t;
            }
            if self.controllens[i] != 0 {
                h.msg_control = self.controls[i].0.as_mut_ptr().cast();
                h.msg_controllen = self.controllens[i];
            }
            h.msg_iov = iov;
            h.msg_iovlen = 1;
        }
        let fd = socket.as_fd().as_raw_fd();
        let mut at = 0;
        while at < n {
            let rest = &mut msgs[at..n];
            // SAFETY: `rest` holds `rest.len()` initialised headers; each points at its own
            // name and control bytes (with their encoded lengths, or null and 0) and its
            // iovec, which points into `self.replies` (a `Reply` owns its bytes) or at
            // `payload`; all outlive the call, and the kernel only reads them (and writes
            // `msg_len`).
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    rest.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                done.sent += r as usize;
                at += r as usize;
            } else if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            } else {
                // The first message of `rest` was refused (sendmmsg reports an error only
                // when nothing went out): count it and go on with the next.
                done.failed += 1;
                at += 1;
            }
        }
        done
    }
}

const EMPTY_IOV: libc::iovec = libc::iovec {
    iov_base: std::ptr::null_mut(),
    iov_len: 0,
};

const EMPTY_MSG: libc::mmsghdr = libc::mmsghdr {
    msg_hdr: libc::msghdr {
        msg_name: std::ptr::null_mut(),
        msg_namelen: 0,
        msg_iov: std::ptr::null_mut(),
        msg_iovlen: 0,
        msg_control: std::ptr::null_mut(),
        msg_controllen: 0,
        msg_flags: 0,
    },
    msg_len: 0,
};

fn decode_name(b: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes(b.get(..2)?.try_into().ok()?));
    let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(ip.into(), port)))
        }
        libc::AF_INET6 => {
            let flow = u32::from_be_bytes(b.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(b.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip.into(),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

/// Writes `addr` as a `sockaddr_in`/`sockaddr_in6`; returns its length.
fn encode_name(addr: SocketAddr, b: &mut [u8; NAME]) -> usize {
    b.fill(0);
    b[2..4].copy_from_slice(&addr.port().to_be_bytes());
    match addr {
        SocketAddr::V4(a) => {
            b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b[4..8].copy_from_slice(&a.ip().octets());
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            b[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
            b[8..24].copy_from_slice(&a.ip().octets());
            b[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
            size_of::<libc::sockaddr_in6>()
        }
    }
}

fn decode_packet_info(control: &[u8]) -> Option<PacketInfo> {
    let mut at = 0;
    while control.len() >= at + CMSG_HDR {
        let h = &control[at..];
        let len = usize::from_ne_bytes(h[..size_of::<usize>()].try_into().ok()?);
        let level = i32::from_ne_bytes(field(h, offset_of!(libc::cmsghdr, cmsg_level))?);
        let kind = i32::from_ne_bytes(field(h, offset_of!(libc::cmsghdr, cmsg_type))?);
        if len < CMSG_HDR || at + len > control.len() {
            return None;
        }
        let data = &h[CMSG_HDR..len];
        match (level, kind) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO) if data.len() >= 12 => {
                // struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
                let ifindex = i32::from_ne_bytes(data[..4].try_into().ok()?);
                let spec: [u8; 4] = data[4..8].try_into().ok()?;
                let dst: [u8; 4] = data[8..12].try_into().ok()?;
                return Some(PacketInfo {
                    dst: IpAddr::V4(dst.into()),
                    local: Some(spec.into()),
                    ifindex: u32::try_from(ifindex).unwrap_or(0),
                });
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) if data.len() >= 20 => {
                // struct in6_pktinfo { in6_addr ipi6_addr; unsigned ipi6_ifindex; }
                let dst: [u8; 16] = data[..16].try_into().ok()?;
                return Some(PacketInfo {
                    dst: IpAddr::V6(Ipv6Addr::from(dst)),
                    local: None,
                    ifindex: u32::from_ne_bytes(data[16..20].try_into().ok()?),
                });
            }
            _ => {}
        }
        at += cmsg_align(len);
    }
    None
}

fn field(h: &[u8], at: usize) -> Option<[u8; 4]> {
    h.get(at..at + 4)?.try_into().ok()
}

/// Writes one `IP_PKTINFO` (IPv4 socket) or `IPV6_PKTINFO` (IPv6 socket, IPv4 sources as
/// `::ffff:a.b.c.d`) control message that makes `ip` the source; returns its length.
fn encode_source(ip: IpAddr, ifindex: u32, ipv6_socket: bool, b: &mut [u8; CONTROL]) -> usize {
    b.fill(0);
    let (level, kind, data_len) = if ipv6_socket {
        let v6 = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        // The interface matters for a link-local source only; elsewhere routing decides.
        let link_local = v6.is_unicast_link_local();
        let data = &mut b[CMSG_HDR..CMSG_HDR + 20];
        data[..16].copy_from_slice(&v6.octets());
        data[16..20].copy_from_slice(&(if link_local { ifindex } else { 0 }).to_ne_bytes());
        (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, 20)
    } else {
        let IpAddr::V4(v4) = ip else {
            return 0; // an IPv6 source on an IPv4 socket: cannot be; let the kernel pick
        };
        let data = &mut b[CMSG_HDR..CMSG_HDR + 12];
        data[4..8].copy_from_slice(&v4.octets()); // ipi_spec_dst; ifindex and ipi_addr 0
        (libc::IPPROTO_IP, libc::IP_PKTINFO, 12)
    };
    b[..size_of::<usize>()].copy_from_slice(&cmsg_len(data_len).to_ne_bytes());
    let level_at = offset_of!(libc::cmsghdr, cmsg_level);
    let kind_at = offset_of!(libc::cmsghdr, cmsg_type);
    b[level_at..level_at + 4].copy_from_slice(&level.to_ne_bytes());
    b[kind_at..kind_at + 4].copy_from_slice(&kind.to_ne_bytes());
    cmsg_space(data_len)
}

/// Whether the kernel has `recvmmsg(2)` for `socket` (an empty call: nothing is read).
pub fn available(socket: &impl AsFd) -> bool {
    // SAFETY: a zero-length vector: the kernel reads no header and writes nothing.
    let r = unsafe {
        libc::recvmmsg(
            socket.as_fd().as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    r >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in [
            "127.0.0.1:6666",
            "[::1]:7",
            "[fe80::1%3]:9",
            "[::ffff:10.0.0.1]:1",
        ] {
            let addr: SocketAddr = a.parse().unwrap();
            let mut b = [0; NAME];
            let n = encode_name(addr, &mut b);
            assert_eq!(decode_name(&b[..n]), Some(addr), "{a}");
        }
    }

    #[test]
    fn a_source_encodes_as_the_packet_info_it_decodes_from() {
        let mut b = [0; CONTROL];
        let n = encode_source("10.7.0.2".parse().unwrap(), 5, false, &mut b);
        assert_eq!(n, cmsg_space(12));
        let info = decode_packet_info(&b[..n]).unwrap();
        assert_eq!(info.local, Some(Ipv4Addr::new(10, 7, 0, 2)));
        let n = encode_source("fe80::2".parse().unwrap(), 5, true, &mut b);
        let info = decode_packet_info(&b[..n]).unwrap();
        assert_eq!(info.dst, "fe80::2".parse::<IpAddr>().unwrap());
        assert_eq!(info.ifindex, 5);
        let n = encode_source("2001:db8::2".parse().unwrap(), 5, true, &mut b);
        assert_eq!(decode_packet_info(&b[..n]).unwrap().ifindex, 0);
    }

    #[test]
    fn truncated_or_foreign_control_data_is_no_packet_info() {
        assert_eq!(decode_packet_info(&[]), None);
        assert_eq!(decode_packet_info(&[0xff; 7]), None);
        let mut b = [0; CONTROL];
        let n = encode_source("10.0.0.1".parse().unwrap(), 0, false, &mut b);
        b[size_of::<usize>()] = 99; // another level
        assert_eq!(decode_packet_info(&b[..n]), None);
    }

    #[test]
    fn broadcast_and_multicast_destinations_leave_the_source_to_the_kernel() {
        let info = |dst: &str, local: Option<&str>| PacketInfo {
            dst: dst.parse().unwrap(),
            local: local.map(|l| l.parse().unwrap()),
            ifindex: 1,
        };
        let v4 = info("255.255.255.255", Some("10.0.0.1"));
        assert_eq!(v4.reply_source(), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(info("::ffff:255.255.255.255", None).reply_source(), None);
        assert_eq!(info("ff02::1", None).reply_source(), None);
        assert_eq!(
            info("fd00::2", None).reply_source(),
            Some("fd00::2".parse().unwrap())
        );
    }
}
