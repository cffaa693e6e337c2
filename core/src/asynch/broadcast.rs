//! Async broadcast and discovery over an `UnconnectedUdp` socket.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;

use embassy_futures::select::{Either, select};
use embedded_nal_async::UnconnectedUdp;

use super::{Clock, ready_now, refused};
use crate::driver::{BroadcastError, DiscoveryEvent, ReadFirst};
use crate::survey::{Survey, SurveyStep, SurveyVerdict};
use crate::wire::{self, MAX_REPLY_LEN};

/// "Any address, any port" in `to`'s family: the stack picks the source.
fn any_source(to: SocketAddr) -> SocketAddr {
    let ip = match to {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

/// Sends datagrams to a broadcast (or any) address.
#[derive(Debug)]
pub struct Broadcaster<S> {
    socket: S,
}

impl<S: UnconnectedUdp> Broadcaster<S> {
    /// Sends from `socket` (the stack must allow broadcast on it; embassy-net does).
    pub fn new(socket: S) -> Self {
        Broadcaster { socket }
    }

    /// The socket back.
    pub fn into_socket(self) -> S {
        self.socket
    }

    /// Sends `payload` to `to`, from an address the stack picks.
    ///
    /// # Errors
    ///
    /// [`BroadcastError::PayloadTooLarge`] if `payload` does not fit one datagram to `to`;
    /// [`BroadcastError::Stack`] if the socket fails.
    pub async fn send(
        &mut self,
        to: SocketAddr,
        payload: &[u8],
    ) -> Result<(), BroadcastError<S::Error>> {
        wire::fits(to, payload.len())?;
        self.socket
            .send(any_source(to), to, payload)
            .await
            .map_err(BroadcastError::Stack)
    }
}

/// Discovery: one request to a broadcast address, then every distinct server that
/// answers correctly within the window after the send, up to `N` of them. The decisions
/// are the [`Survey`]'s.
///
/// ```
/// # async fn demo<S: udp_echo_core::embedded_nal_async::UnconnectedUdp>(
/// #     socket: S, clock: impl udp_echo_core::asynch::Clock)
/// # -> Result<(), udp_echo_core::BroadcastError<S::Error>> {
/// use core::time::Duration;
/// use udp_echo_core::DiscoveryEvent;
/// use udp_echo_core::asynch::Discovery;
///
/// let to = "255.255.255.255:6666".parse().unwrap();
/// let mut discovery = Discovery::<_, 8>::new(socket, to, b"who is there?", Duration::from_secs(1))?;
/// discovery.run(&clock, |event| {
///     if let DiscoveryEvent::Found(server) = event { /* server.addr, server.rtt */ }
/// }).await?;
/// let servers = discovery.survey().found();
/// # let _ = servers; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Discovery<'r, S, const N: usize> {
    socket: S,
    request: &'r [u8],
    survey: Survey<N>,
}

impl<'r, S: UnconnectedUdp, const N: usize> Discovery<'r, S, N> {
    /// A discovery of the servers at `to` (e.g. `255.255.255.255:6666`) with `request`
    /// from `socket`, collecting answers for `window` after the send.
    ///
    /// # Errors
    ///
    /// [`BroadcastError::PayloadTooLarge`] if `request` does not fit one datagram to `to`.
    pub fn new(
        socket: S,
        to: SocketAddr,
        request: &'r [u8],
        window: Duration,
    ) -> Result<Self, BroadcastError<S::Error>> {
        Ok(Discovery {
            socket,
            request,
            survey: Survey::new(to, request.len(), window)?,
        })
    }

    /// The survey: when the request went out, the servers found, what was ignored.
    pub fn survey(&self) -> &Survey<N> {
        &self.survey
    }

    /// The socket back.
    pub fn into_socket(self) -> S {
        self.socket
    }

    /// Sends the request and collects answers until the window closes, telling
    /// `on_event` of the send, each server found and each datagram ignored. Ends at the
    /// window's end whatever the socket does: a send that never completes ends one
    /// window after the call.
    ///
    /// # Errors
    ///
    /// [`BroadcastError::Stack`] if the socket fails with anything but an ICMP report.
    pub async fn run(
        &mut self,
        clock: &impl Clock,
        mut on_event: impl FnMut(&DiscoveryEvent),
    ) -> Result<(), BroadcastError<S::Error>> {
        let mut buf = [0u8; MAX_REPLY_LEN + 1];
        let mut reads = ReadFirst::new();
        loop {
            if self.survey.listening()
                && reads.may_read()
                && let Some(got) = ready_now!(self.socket.receive_into(&mut buf))
            {
                self.on_received(clock, got, &buf, &mut on_event)?;
                continue;
            }
            reads.timers_seen();
            match self.survey.poll(clock.now()) {
                SurveyStep::Done => return Ok(()),
                SurveyStep::Send => {
                    let to = self.survey.to();
                    let deadline = self.survey.deadline().unwrap_or_else(|| clock.now());
                    let sending = self.socket.send(any_source(to), to, self.request);
                    match select(sending, clock.sleep_until(deadline)).await {
                        Either::First(Ok(())) => {
                            let at = clock.now();
                            self.survey.on_sent(at);
                            on_event(&DiscoveryEvent::Sent(at));
                        }
                        Either::First(Err(e)) => return Err(BroadcastError::Stack(e)),
                        // The window closed first: the next poll ends the survey.
                        Either::Second(()) => {}
                    }
                }
                SurveyStep::Wait(until) => {
                    let waiting =
                        select(self.socket.receive_into(&mut buf), clock.sleep_until(until));
                    if let Either::First(got) = waiting.await {
                        let _ = reads.may_read();
                        self.on_received(clock, got, &buf, &mut on_event)?;
                    }
                }
            }
        }
    }

    /// Hands what a receive gave to the survey.
    fn on_received(
        &mut self,
        clock: &impl Clock,
        got: Result<(usize, SocketAddr, SocketAddr), S::Error>,
        buf: &[u8],
        on_event: &mut impl FnMut(&DiscoveryEvent),
    ) -> Result<(), BroadcastError<S::Error>> {
        let now = clock.now();
        let (verdict, from) = match got {
            Ok((len, _local, remote)) => {
                let head = buf.get(..len).unwrap_or(buf);
                (
                    self.survey.on_datagram(now, remote, len, head),
                    Some(remote),
                )
            }
            Err(e) if refused(&e) => (self.survey.on_unreadable(now), None),
            Err(e) => return Err(BroadcastError::Stack(e)),
        };
        match verdict {
            SurveyVerdict::Found(found) => on_event(&DiscoveryEvent::Found(found)),
            SurveyVerdict::Ignored => on_event(&DiscoveryEvent::Ignored { from }),
            SurveyVerdict::Repeat | SurveyVerdict::Overflow => {}
        }
        Ok(())
    }
}
