//! The async request/reply client: an [`Exchange`] over a `ConnectedUdp` socket.

use core::net::SocketAddr;

use embassy_futures::select::{Either, select};
use embedded_nal_async::ConnectedUdp;

use super::{Clock, ready_now, refused};
use crate::driver::{ClientError, ClientEvent, ReadFirst, on_reply};
use crate::exchange::{Action, Exchange, Outcome};
use crate::retry::RetryPolicy;
use crate::wire::MAX_REPLY_LEN;

/// Sends `bytes` to `server` over `socket` (connected to it) on the schedule of `policy`
/// until a reply or the give-up instant: the whole async client, for the common case.
///
/// # Errors
///
/// As [`Client::request`].
pub async fn request<S: ConnectedUdp>(
    socket: S,
    server: SocketAddr,
    policy: &RetryPolicy,
    bytes: &[u8],
    clock: &impl Clock,
) -> Result<Outcome, ClientError<S::Error>> {
    Client::new(socket, server)
        .request(clock, policy, bytes, |_| {})
        .await
}

/// A request/reply client on a connected socket.
///
/// ```
/// # async fn demo<S: udp_echo_core::embedded_nal_async::ConnectedUdp>(
/// #     socket: S, clock: impl udp_echo_core::asynch::Clock) {
/// use udp_echo_core::asynch::Client;
/// use udp_echo_core::{Outcome, RetryPolicy};
///
/// let server = "192.0.2.1:6666".parse().unwrap(); // where `socket` is connected
/// let mut client = Client::new(socket, server);
/// match client.request(&clock, &RetryPolicy::default(), b"hello", |_| {}).await {
///     Ok(Outcome::Reply(r)) => assert_eq!(r.count, 5),
///     Ok(Outcome::GaveUp(g)) => { /* no reply: gave up 3100 ms after the first send */ }
///     Err(e) => { /* the socket failed */ }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Client<S> {
    socket: S,
    server: SocketAddr,
}

impl<S: ConnectedUdp> Client<S> {
    /// A client on `socket`, which is connected to `server` (the address replies must
    /// come from, as the exchange checks).
    pub fn new(socket: S, server: SocketAddr) -> Self {
        Client { socket, server }
    }

    /// The socket back.
    pub fn into_socket(self) -> S {
        self.socket
    }

    /// Sends `bytes` on the schedule of `policy` until a reply or the give-up instant
    /// (3100 ms after the first send by default), whatever the socket does: a send that
    /// never completes ends with its slot, a socket that never becomes readable with the
    /// schedule. Every step that is not the end (sent, blocked, ignored, refused) goes to
    /// `on_event`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Exchange`] if the request cannot start; [`ClientError::Stack`] if
    /// the socket fails with anything but an ICMP "port unreachable".
    pub async fn request(
        &mut self,
        clock: &impl Clock,
        policy: &RetryPolicy,
        bytes: &[u8],
        mut on_event: impl FnMut(&ClientEvent),
    ) -> Result<Outcome, ClientError<S::Error>> {
        let mut ex =
            Exchange::new(policy, self.server, bytes.len()).map_err(ClientError::Exchange)?;
        // Larger than any reply, so a longer datagram shows as cut and is rejected.
        let mut buf = [0u8; MAX_REPLY_LEN + 1];
        let mut reads = ReadFirst::new();
        loop {
            if ex.attempts() > 0
                && reads.may_read()
                && let Some(got) = ready_now!(self.socket.receive_into(&mut buf))
            {
                if let Some(outcome) = self.on_received(&mut ex, clock, got, &buf, &mut on_event)? {
                    return Ok(outcome);
                }
                continue;
            }
            reads.timers_seen();
            let now = clock.now();
            match ex.poll(now) {
                Action::Done(outcome) => return Ok(outcome),
                Action::Send => {
                    let sending = select(self.socket.send(bytes), clock.sleep_until(ex.slot_end()));
                    match sending.await {
                        Either::First(Ok(())) => {
                            let at = clock.now();
                            ex.on_sent(at);
                            on_event(&ClientEvent::Sent {
                                attempt: ex.attempts(),
                                at,
                            });
                        }
                        // A pending ICMP error can surface on send: then nothing went out.
                        Either::First(Err(e)) if refused(&e) => {
                            ex.on_send_refused(now);
                            on_event(&ClientEvent::Refused);
                        }
                        Either::First(Err(e)) => return Err(ClientError::Stack(e)),
                        // The slot ended first: the next poll counts it unsent.
                        Either::Second(()) => on_event(&ClientEvent::SendBlocked),
                    }
                }
                Action::Wait(until) => {
                    let waiting =
                        select(self.socket.receive_into(&mut buf), clock.sleep_until(until));
                    if let Either::First(got) = waiting.await {
                        let _ = reads.may_read();
                        if let Some(outcome) =
                            self.on_received(&mut ex, clock, got, &buf, &mut on_event)?
                        {
                            return Ok(outcome);
                        }
                    }
                }
            }
        }
    }

    /// Hands what a receive gave to the exchange: the outcome if it was the reply.
    fn on_received(
        &self,
        ex: &mut Exchange,
        clock: &impl Clock,
        got: Result<usize, S::Error>,
        buf: &[u8],
        on_event: &mut impl FnMut(&ClientEvent),
    ) -> Result<Option<Outcome>, ClientError<S::Error>> {
        let now = clock.now();
        match got {
            Ok(len) => {
                let head = buf.get(..len).unwrap_or(buf);
                match on_reply(
                    ex.on_datagram(now, self.server, len, head),
                    Some(self.server),
                ) {
                    ClientEvent::Done(outcome) => return Ok(Some(outcome)),
                    event => on_event(&event),
                }
            }
            Err(e) if refused(&e) => {
                ex.on_refused(now);
                on_event(&ClientEvent::Refused);
            }
            Err(e) => return Err(ClientError::Stack(e)),
        }
        Ok(None)
    }
}
