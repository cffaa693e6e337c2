//! Raw Ethernet frames sent from the host side of a TAP device (`AF_PACKET`), for the tests
//! that inject what no socket API sends: malformed headers, wild fragments, ARP junk. Root
//! only (`CAP_NET_RAW`); open it in a thread that has [entered](crate::netns::Netns::enter)
//! the namespace whose device it names.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use rustix::net::{AddressFamily, SendFlags, SocketType};

/// A raw packet socket bound to one interface: each [`send`](Self::send) puts one whole
/// frame on its wire (for a TAP device: hands it to the program on the other side).
/// Receives nothing (protocol 0).
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens the socket on interface `name` of the calling thread's network namespace.
    pub fn bind(name: &str) -> io::Result<Self> {
        let fd = rustix::net::socket(AddressFamily::PACKET, SocketType::RAW, None)?;
        let index = rustix::net::netdevice::name_to_index(&fd, name)?;
        bind_to_interface(&fd, index)?;
        Ok(PacketSocket { fd })
    }

    /// Sends `frame`: destination MAC, source MAC, EtherType, payload; no FCS. Frames
    /// shorter than an Ethernet header or longer than the MTU plus 14 are refused.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let sent = rustix::net::send(&self.fd, frame, SendFlags::empty())?;
        if sent == frame.len() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "sent {sent} of {} bytes",
                frame.len()
            )))
        }
    }
}

/// `bind(2)` with a `sockaddr_ll` naming interface `index`: the one call here that no safe
/// wrapper offers (rustix has no link-layer address type).
fn bind_to_interface(fd: &OwnedFd, index: u32) -> io::Result<()> {
    let addr = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: 0,
        sll_ifindex: i32::try_from(index).map_err(io::Error::other)?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let len = libc::socklen_t::try_from(size_of_val(&addr)).map_err(io::Error::other)?;
    // SAFETY: `fd` is an open socket; `addr` is a fully initialised `sockaddr_ll` that
    // lives until the call returns, and `len` is its size, so the kernel reads only it.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
