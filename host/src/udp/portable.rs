//! The portable path: quinn-udp, which knows each system's control messages (destination
//! address in, source address out) and offloads (GRO/GSO on Linux, URO/USO on Windows).
//!
//! Its limits, and how this module meets them:
//! - it drops a datagram longer than its buffer without a word: every buffer here holds
//!   [`BUFFER`] bytes, more than any datagram or coalesced train, so none is cut;
//! - it sends one transmit per `sendmsg`, and on a refused train it turns GSO off but
//!   returns the error: the train is sent again datagram by datagram here.

use std::io::{self, IoSliceMut};

use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use socket2::Socket;

use super::{BATCH, BUFFER, Meta, Offload, Sent, Transmit, is_gso_refusal};

/// Buffers per call: quinn-udp's batch (32 where it has `recvmmsg`, else 1).
const BUFFERS: usize = if quinn_udp::BATCH_SIZE < BATCH {
    quinn_udp::BATCH_SIZE
} else {
    BATCH
};

pub(super) struct Io {
    socket: Socket,
    state: UdpSocketState,
    bufs: Vec<Box<[u8]>>,
    meta: [RecvMeta; BUFFERS],
    count: usize,
    gso: bool,
    gro: bool,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("portable::Io")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Io {
    pub(super) fn new(socket: Socket, offload: Offload) -> io::Result<Self> {
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        let mut gro = state.gro_segments() > 1;
        if gro && !offload.gro {
            #[cfg(target_os = "linux")]
            nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::UdpGroSegment, &false)
                .map_err(io::Error::from)?;
            gro = !cfg!(target_os = "linux");
        }
        Ok(Io {
            socket,
            state,
            // Zeroed allocations: only the pages datagrams are written to become resident.
            bufs: (0..BUFFERS)
                .map(|_| vec![0u8; BUFFER].into_boxed_slice())
                .collect(),
            meta: [RecvMeta::default(); BUFFERS],
            count: 0,
            gso: offload.gso,
            gro,
        })
    }

    pub(super) fn socket(&self) -> &Socket {
        &self.socket
    }

    pub(super) fn gro(&self) -> bool {
        self.gro
    }

    pub(super) fn max_segments(&self) -> usize {
        if self.gso {
            self.state.max_gso_segments()
        } else {
            1
        }
    }

    pub(super) fn recv(&mut self) -> io::Result<usize> {
        self.count = 0;
        let mut slices: heapless::Vec<IoSliceMut<'_>, BUFFERS> = heapless::Vec::new();
        for b in &mut self.bufs {
            let _ = slices.push(IoSliceMut::new(b));
        }
        match self
            .state
            .recv(UdpSockRef::from(&self.socket), &mut slices, &mut self.meta)
        {
            Ok(n) => {
                self.count = n;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    pub(super) fn was_full(&self) -> bool {
        self.count == BUFFERS
    }

    pub(super) fn get(&self, i: usize) -> Option<(Meta, &[u8])> {
        if i >= self.count {
            return None;
        }
        let m = &self.meta[i];
        let len = m.len.min(BUFFER);
        Some((
            Meta {
                from: m.addr,
                dst: m.dst_ip,
                len,
                stride: if m.stride == 0 { len } else { m.stride },
            },
            &self.bufs[i][..len],
        ))
    }

    pub(super) fn send<'a>(&mut self, transmits: impl Iterator<Item = Transmit<'a>>) -> Sent {
        let mut done = Sent::default();
        for t in transmits {
            self.send_one(&t, &mut done);
        }
        done
    }

    fn send_one(&mut self, t: &Transmit<'_>, done: &mut Sent) {
        let transmit = quinn_udp::Transmit {
            destination: t.to,
            ecn: None,
            contents: t.contents,
            segment_size: t.segment_size,
            src_ip: t.src,
        };
        done.calls += 1;
        match self
            .state
            .try_send(UdpSockRef::from(&self.socket), &transmit)
        {
            Ok(()) => done.sent += t.datagrams(),
            Err(e) if t.segment_size.is_some() && is_gso_refusal(&e) => {
                log::info!("udp: the kernel refused a GSO train ({e}): sending one by one");
                self.gso = false;
                for one in t.split() {
                    self.send_one(&one, done);
                }
            }
            Err(_) => done.failed += t.datagrams(),
        }
    }
}
