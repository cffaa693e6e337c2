//! Sending to a broadcast (or any) address over an `embedded-nal` stack.

use core::fmt;
use core::net::SocketAddr;

use embedded_nal::UdpFullStack;

use super::{BroadcastError, Socket, socket_lifecycle};
use crate::wire;

/// Sends datagrams to a broadcast (or any) address from one socket.
///
/// The stack must allow broadcast on its sockets (the host's adapter has an option for
/// `SO_BROADCAST`; smoltcp always allows it).
///
/// ```
/// use udp_echo_core::Broadcaster;
/// # fn demo<S: udp_echo_core::embedded_nal::UdpFullStack>(stack: &mut S)
/// # -> Result<(), udp_echo_core::BroadcastError<S::Error>> where S::Error: core::fmt::Debug {
///
/// let mut broadcaster = Broadcaster::open(stack, 0)?;
/// let to = "255.255.255.255:6666".parse().unwrap();
/// // `nb::block!` for a one-off; a main loop would retry on its next turn instead.
/// udp_echo_core::nb::block!(broadcaster.send(stack, to, b"hello, LAN"))?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Broadcaster<S: UdpFullStack> {
    io: Socket<S>,
}

impl<S> Broadcaster<S>
where
    S: UdpFullStack,
    S::Error: fmt::Debug,
{
    /// Opens a socket bound to `local_port` (0: the stack picks one).
    ///
    /// # Errors
    ///
    /// [`BroadcastError::Stack`] if the stack cannot open or bind the socket.
    pub fn open(stack: &mut S, local_port: u16) -> Result<Self, BroadcastError<S::Error>> {
        Ok(Broadcaster {
            io: Socket::bind(stack, local_port).map_err(BroadcastError::Stack)?,
        })
    }

    socket_lifecycle!();

    /// Sends `payload` to `to`. `WouldBlock` means: try again shortly.
    ///
    /// # Errors
    ///
    /// [`BroadcastError::PayloadTooLarge`] if `payload` does not fit one datagram to `to`;
    /// [`BroadcastError::Stack`] if the stack fails.
    pub fn send(
        &mut self,
        stack: &mut S,
        to: SocketAddr,
        payload: &[u8],
    ) -> nb::Result<(), BroadcastError<S::Error>> {
        wire::fits(to, payload.len()).map_err(BroadcastError::from)?;
        stack
            .send_to(&mut self.io.socket, to, payload)
            .map_err(|e| e.map(BroadcastError::Stack))
    }
}
