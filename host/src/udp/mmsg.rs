//! The batched path (Linux): `recvmmsg(2)` and `sendmmsg(2)`, with each buffer's
//! destination (`IP_PKTINFO` / `IPV6_PKTINFO` in) and segment size (`UDP_GRO` in), and
//! per transmit a source address (the same `PKTINFO` out) and a segment size
//! (`UDP_SEGMENT` out).
//!
//! This is the only module of the crate with `unsafe`: the two system calls. Everything
//! they read or write is a buffer owned by [`Io`] or the caller's [`Outbox`], and the
//! addresses and control messages are encoded and decoded as plain bytes in safe code.
//!
//! Why our own and not quinn-udp's (the portable path): quinn-udp sends one transmit per
//! `sendmsg`, and replies to a batch from many clients go out here in one `sendmmsg`.
//! Why not nix's `recvmmsg`/`sendmmsg` (nix 0.32): its `sendmmsg` takes one set of control
//! messages for the whole batch, so replies to requests that arrived on different
//! addresses cannot each carry their own source. nix is still used for the socket options.

#![allow(unsafe_code)] // the two system calls; see the module docs

use std::io;
use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{SockaddrStorage, getsockname, setsockopt, sockopt};
use socket2::Socket;

use super::{BATCH, BUFFER, Meta, Offload, Sent, Transmit, is_gso_refusal};

/// Room for a `sockaddr_in6` (28 bytes), the larger of the two address families.
const NAME: usize = 28;
/// Room for one `IPV6_PKTINFO` (or `IP_PKTINFO`) and one `UDP_GRO`/`UDP_SEGMENT` message.
const CONTROL: usize = cmsg_space(size_of::<libc::in6_pktinfo>()) + cmsg_space(4);

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

#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Name([u8; NAME]);

#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; CONTROL]);

/// What the kernel told of one received buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Info {
    dst: Option<IpAddr>,
    /// `UDP_GRO`'s segment size, if the buffer holds a coalesced train.
    stride: Option<usize>,
}

/// The fewest messages one call asks for.
const MIN_WANT: usize = 4;

pub(super) struct Io {
    socket: Socket,
    bufs: Vec<Box<[u8]>>,
    names: [Name; BATCH],
    controls: [Control; BATCH],
    /// Per received message: length, name length, control length.
    got: [(usize, usize, usize); BATCH],
    count: usize,
    /// Whether the last call got all it asked for.
    full: bool,
    /// How many messages the next call asks for: it doubles while calls come back full
    /// and falls back to twice the last count, so that setting up the headers costs in
    /// proportion to what arrives, not a full batch per datagram under light load.
    want: usize,
    ipv6: bool,
    gro: bool,
    gso: bool,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("mmsg::Io")
            .field("count", &self.count)
            .field("gro", &self.gro)
            .field("gso", &self.gso)
            .finish_non_exhaustive()
    }
}

impl Io {
    pub(super) fn new(socket: Socket, offload: Offload) -> io::Result<Self> {
        if !available(&socket) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel has no recvmmsg(2)",
            ));
        }
        let fd = socket.as_fd();
        let local: SockaddrStorage = getsockname(fd.as_raw_fd())?;
        let ipv6 = local.as_sockaddr_in6().is_some();
        if ipv6 {
            setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)?;
        } else {
            setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)?;
        }
        // Each offload is asked for and kept off where the kernel says no.
        let gro = offload.gro && setsockopt(&fd, sockopt::UdpGroSegment, &true).is_ok();
        // GSO is per send (a control message); setting a socket default probes for it,
        // and 0 puts the default back (no segmentation unless a send asks).
        let gso = offload.gso
            && setsockopt(&fd, sockopt::UdpGsoSegment, &1500).is_ok()
            && setsockopt(&fd, sockopt::UdpGsoSegment, &0).is_ok();
        Ok(Io {
            socket,
            // Zeroed allocations: only the pages datagrams are written to become resident.
            bufs: (0..BATCH)
                .map(|_| vec![0u8; BUFFER].into_boxed_slice())
                .collect(),
            names: [Name([0; NAME]); BATCH],
            controls: [Control([0; CONTROL]); BATCH],
            got: [(0, 0, 0); BATCH],
            count: 0,
            full: false,
            want: BATCH,
            ipv6,
            gro,
            gso,
        })
    }

    pub(super) fn socket(&self) -> &Socket {
        &self.socket
    }

    pub(super) fn gro(&self) -> bool {
        self.gro
    }

    pub(super) fn max_segments(&self) -> usize {
        if self.gso { super::MAX_SEGMENTS } else { 1 }
    }

    pub(super) fn recv(&mut self) -> io::Result<usize> {
        self.count = 0;
        self.full = false;
        let want = self.want;
        // Only `want` headers are built (heapless: no initialisation of the rest).
        let mut iovs: heapless::Vec<libc::iovec, BATCH> = heapless::Vec::new();
        for buf in self.bufs.iter_mut().take(want) {
            let _ = iovs.push(libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
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
        let fd = self.socket.as_raw_fd();
        let n = loop {
            // SAFETY: `msgs` holds `msgs.len()` headers, each pointing at its own name (NAME
            // bytes), control (CONTROL bytes) and iovec, whose buffer is BUFFER bytes long,
            // as the lengths say; all are owned by `self` or this frame and outlive the call
            // (the heapless vectors never move their elements). The kernel writes only
            // within those lengths. A null timeout never blocks longer than the
            // non-blocking flag allows.
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

    pub(super) fn was_full(&self) -> bool {
        self.full
    }

    pub(super) fn get(&self, i: usize) -> Option<(Meta, &[u8])> {
        if i >= self.count {
            return None;
        }
        let (len, namelen, controllen) = self.got[i];
        let from = decode_name(&self.names[i].0[..namelen.min(NAME)])?;
        let info = decode_control(&self.controls[i].0[..controllen.min(CONTROL)]);
        // `len` is the true length (MSG_TRUNC); a buffer holds any datagram whole.
        let len = len.min(BUFFER);
        Some((
            Meta {
                from,
                dst: info.dst,
                len,
                stride: info.stride.unwrap_or(len),
            },
            &self.bufs[i][..len],
        ))
    }

    /// Sends `transmits` in as few `sendmmsg(2)` calls as the kernel allows.
    pub(super) fn send<'a>(&mut self, transmits: impl Iterator<Item = Transmit<'a>>) -> Sent {
        let mut done = Sent::default();
        let mut chunk: heapless::Vec<Transmit<'a>, BATCH> = heapless::Vec::new();
        for t in transmits {
            if chunk.is_full() {
                self.send_chunk(&chunk, &mut done);
                chunk.clear();
            }
            let _ = chunk.push(t);
        }
        if !chunk.is_empty() {
            self.send_chunk(&chunk, &mut done);
        }
        done
    }

    fn send_chunk(&mut self, chunk: &[Transmit<'_>], done: &mut Sent) {
        let n = chunk.len().min(BATCH);
        let chunk = &chunk[..n];
        // This frame's own (a refused train is re-sent from a nested call), and only as
        // many as there are transmits: heapless vectors initialise nothing beyond that.
        let mut names: heapless::Vec<Name, BATCH> = heapless::Vec::new();
        let mut controls: heapless::Vec<(Control, usize), BATCH> = heapless::Vec::new();
        for t in chunk {
            let mut name = Name([0; NAME]);
            encode_name(t.to, &mut name.0);
            let _ = names.push(name);
            let mut control = Control([0; CONTROL]);
            let len = encode_control(t, self.ipv6, &mut control.0);
            let _ = controls.push((control, len));
        }
        let mut iovs: heapless::Vec<libc::iovec, BATCH> = heapless::Vec::new();
        for t in chunk {
            let _ = iovs.push(libc::iovec {
                iov_base: t.contents.as_ptr().cast_mut().cast(),
                iov_len: t.contents.len(),
            });
        }
        // Pointers are taken once the vectors are full: they do not move from here on.
        let mut msgs: heapless::Vec<libc::mmsghdr, BATCH> = heapless::Vec::new();
        for (i, t) in chunk.iter().enumerate() {
            let (control, controllen) = &mut controls[i];
            let _ = msgs.push(libc::mmsghdr {
                msg_hdr: libc::msghdr {
                    msg_name: names[i].0.as_mut_ptr().cast(),
                    msg_namelen: name_len(t.to) as libc::socklen_t,
                    msg_iov: iovs.as_mut_ptr().wrapping_add(i),
                    msg_iovlen: 1,
                    msg_control: if *controllen == 0 {
                        std::ptr::null_mut()
                    } else {
                        control.0.as_mut_ptr().cast()
                    },
                    msg_controllen: *controllen,
                    msg_flags: 0,
                },
                msg_len: 0,
            });
        }
        let fd = self.socket.as_raw_fd();
        let mut at = 0;
        while at < n {
            let rest = &mut msgs[at..n];
            done.calls += 1;
            // SAFETY: `rest` holds `rest.len()` initialised headers; each points at its own
            // name and control bytes in this frame (with their encoded lengths, or null and
            // 0) and its iovec, which points into the caller's transmit bytes; all outlive
            // the call, and the kernel only reads them (and writes `msg_len`).
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    rest.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                for t in &chunk[at..at + r as usize] {
                    done.sent += t.datagrams();
                }
                at += r as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            if r < 0 && e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The first message of `rest` was refused (sendmmsg reports an error only when
            // nothing went out). A train refused for its segmentation goes again one
            // datagram at a time, with GSO off from now on; anything else is counted.
            let t = chunk[at];
            if t.segment_size.is_some() && is_gso_refusal(&e) {
                log::info!("udp: the kernel refused a GSO train ({e}): sending one by one");
                self.gso = false;
                let singles: Vec<Transmit<'_>> = t.split().collect();
                for part in singles.chunks(BATCH) {
                    self.send_chunk(part, done);
                }
            } else {
                done.failed += t.datagrams();
            }
            at += 1;
        }
    }
}

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

/// The length of `addr` as a `sockaddr_in`/`sockaddr_in6`.
fn name_len(addr: SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => size_of::<libc::sockaddr_in>(),
        SocketAddr::V6(_) => size_of::<libc::sockaddr_in6>(),
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

fn decode_control(control: &[u8]) -> Info {
    let mut info = Info::default();
    let mut at = 0;
    while control.len() >= at + CMSG_HDR {
        let h = &control[at..];
        let Some(len) = h
            .get(..size_of::<usize>())
            .and_then(|b| b.try_into().ok())
            .map(usize::from_ne_bytes)
        else {
            break;
        };
        let (Some(level), Some(kind)) = (
            field(h, offset_of!(libc::cmsghdr, cmsg_level)),
            field(h, offset_of!(libc::cmsghdr, cmsg_type)),
        ) else {
            break;
        };
        if len < CMSG_HDR || at + len > control.len() {
            break;
        }
        let data = &h[CMSG_HDR..len];
        match (level, kind) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO) if data.len() >= 12 => {
                // struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
                let dst: [u8; 4] = data[8..12].try_into().unwrap_or_default();
                info.dst = Some(IpAddr::V4(dst.into()));
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) if data.len() >= 20 => {
                // struct in6_pktinfo { in6_addr ipi6_addr; unsigned ipi6_ifindex; }
                let dst: [u8; 16] = data[..16].try_into().unwrap_or_default();
                info.dst = Some(IpAddr::V6(Ipv6Addr::from(dst)));
            }
            (libc::SOL_UDP, libc::UDP_GRO) if data.len() >= 4 => {
                let size = i32::from_ne_bytes(data[..4].try_into().unwrap_or_default());
                info.stride = usize::try_from(size).ok().filter(|s| *s > 0);
            }
            _ => {}
        }
        at += cmsg_align(len);
    }
    info
}

fn field(h: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(h.get(at..at + 4)?.try_into().ok()?))
}

/// Writes the control messages of `t`: its source address (`IP_PKTINFO` on an IPv4
/// socket, `IPV6_PKTINFO` on an IPv6 one, IPv4 sources as `::ffff:a.b.c.d`) and its
/// segment size (`UDP_SEGMENT`); returns their length (0: none).
fn encode_control(t: &Transmit<'_>, ipv6_socket: bool, b: &mut [u8; CONTROL]) -> usize {
    let mut at = 0;
    if let Some(ip) = t.src {
        if ipv6_socket {
            let v6 = match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            let mut data = [0u8; 20];
            data[..16].copy_from_slice(&v6.octets());
            // The interface comes from the destination's scope for a link-local peer.
            at += put(&mut b[at..], libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &data);
        } else if let IpAddr::V4(v4) = ip {
            let mut data = [0u8; 12];
            data[4..8].copy_from_slice(&v4.octets()); // ipi_spec_dst; ifindex and ipi_addr 0
            at += put(&mut b[at..], libc::IPPROTO_IP, libc::IP_PKTINFO, &data);
        }
        // An IPv6 source on an IPv4 socket cannot be: the kernel picks.
    }
    if let Some(size) = t.segment_size {
        let size = u16::try_from(size).unwrap_or(u16::MAX);
        at += put(
            &mut b[at..],
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            &size.to_ne_bytes(),
        );
    }
    at
}

/// Writes one control message at the start of `b`; returns the space it takes.
fn put(b: &mut [u8], level: i32, kind: i32, data: &[u8]) -> usize {
    let space = cmsg_space(data.len());
    b[..space].fill(0);
    b[..size_of::<usize>()].copy_from_slice(&cmsg_len(data.len()).to_ne_bytes());
    let level_at = offset_of!(libc::cmsghdr, cmsg_level);
    let kind_at = offset_of!(libc::cmsghdr, cmsg_type);
    b[level_at..level_at + 4].copy_from_slice(&level.to_ne_bytes());
    b[kind_at..kind_at + 4].copy_from_slice(&kind.to_ne_bytes());
    b[CMSG_HDR..CMSG_HDR + data.len()].copy_from_slice(data);
    space
}

/// Whether the kernel has `recvmmsg(2)` for `socket` (an empty call: nothing is read).
fn available(socket: &impl AsFd) -> bool {
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

    fn transmit(src: Option<&str>, segment_size: Option<usize>) -> Transmit<'static> {
        Transmit {
            to: "127.0.0.1:1".parse().unwrap(),
            src: src.map(|s| s.parse().unwrap()),
            segment_size,
            contents: b"",
        }
    }

    #[test]
    fn a_source_and_a_segment_size_encode_as_control_messages_the_decoder_reads() {
        let mut b = [0; CONTROL];
        let n = encode_control(&transmit(Some("10.7.0.2"), Some(22)), false, &mut b);
        assert_eq!(n, cmsg_space(12) + cmsg_space(2));
        // IP_PKTINFO out carries the source in ipi_spec_dst; the decoder reads ipi_addr.
        assert_eq!(
            decode_control(&b[..n]).dst,
            Some("0.0.0.0".parse().unwrap())
        );
        let n = encode_control(&transmit(Some("fe80::2"), None), true, &mut b);
        assert_eq!(
            decode_control(&b[..n]).dst,
            Some("fe80::2".parse().unwrap())
        );
        let n = encode_control(&transmit(Some("10.0.0.1"), None), true, &mut b);
        assert_eq!(
            decode_control(&b[..n]).dst,
            Some("::ffff:10.0.0.1".parse().unwrap())
        );
        assert_eq!(encode_control(&transmit(None, None), true, &mut b), 0);
    }

    #[test]
    fn a_gro_segment_size_is_read_beside_the_destination() {
        let mut b = [0; CONTROL];
        let mut at = put(&mut b, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &{
            let mut d = [0u8; 20];
            d[..16].copy_from_slice(&"::1".parse::<Ipv6Addr>().unwrap().octets());
            d
        });
        at += put(
            &mut b[at..],
            libc::SOL_UDP,
            libc::UDP_GRO,
            &10i32.to_ne_bytes(),
        );
        let info = decode_control(&b[..at]);
        assert_eq!(info.dst, Some("::1".parse().unwrap()));
        assert_eq!(info.stride, Some(10));
    }

    #[test]
    fn truncated_or_foreign_control_data_is_no_information() {
        assert_eq!(decode_control(&[]), Info::default());
        assert_eq!(decode_control(&[0xff; 7]), Info::default());
        let mut b = [0; CONTROL];
        let n = encode_control(&transmit(Some("10.0.0.1"), None), false, &mut b);
        b[size_of::<usize>()] = 99; // another level
        assert_eq!(decode_control(&b[..n]), Info::default());
    }
}
