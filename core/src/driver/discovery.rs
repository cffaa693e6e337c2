//! Discovery over an `embedded-nal` stack: a [`Survey`] wired to a socket.

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use embedded_nal::UdpFullStack;

use super::{BroadcastError, ReadFirst, Socket, Wake, socket_lifecycle};
use crate::stack::StackErrorKind;
use crate::survey::{Found, Survey, SurveyStep, SurveyVerdict};
use crate::time::Instant;
use crate::wire::MAX_REPLY_LEN;

/// What one [`Discovery::poll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use = "`Wait` says when to call again and `Done` ends the discovery"]
pub enum DiscoveryEvent {
    /// The request went out at this instant; answers count from here. Call again at once.
    Sent(Instant),
    /// A server answered for the first time. Call again at once.
    Found(Found),
    /// A datagram that is not a valid answer was ignored. Call again at once.
    Ignored {
        /// Its source, if the stack could say.
        from: Option<SocketAddr>,
    },
    /// Nothing to do until the wake.
    Wait(Wake),
    /// The window closed: [`Survey::found`] has the servers.
    Done,
}

/// Discovery: one request to a broadcast address, then every distinct server that
/// answers correctly within the window after the send, up to `N` of them. The decisions
/// are the [`Survey`]'s; this driver does its I/O.
///
/// If the stack never takes the send (`WouldBlock` throughout), the discovery still ends
/// one window after the first poll, with nothing sent.
///
/// ```
/// use core::time::Duration;
/// use udp_echo_core::{Discovery, DiscoveryEvent, Instant, Wake};
/// # fn demo<S: udp_echo_core::embedded_nal::UdpFullStack>(
/// #     stack: &mut S, now: impl Fn() -> Instant, sleep: impl Fn(Wake))
/// # -> Result<(), udp_echo_core::BroadcastError<S::Error>> where S::Error: core::fmt::Debug {
///
/// let to = "255.255.255.255:6666".parse().unwrap();
/// let mut discovery = Discovery::<_, 8>::start(stack, 0, to, b"who is there?", Duration::from_secs(1))?;
/// loop {
///     match discovery.poll(stack, now())? {
///         DiscoveryEvent::Found(server) => { /* server.addr answered in server.rtt */ }
///         DiscoveryEvent::Wait(wake) => sleep(wake),
///         DiscoveryEvent::Done => break,
///         _ => {}
///     }
/// }
/// let servers = discovery.survey().found().len();
/// # let _ = servers; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Discovery<'r, S: UdpFullStack, const N: usize> {
    io: Socket<S>,
    request: &'r [u8],
    survey: Survey<N>,
    reads: ReadFirst,
}

impl<'r, S, const N: usize> Discovery<'r, S, N>
where
    S: UdpFullStack,
    S::Error: fmt::Debug,
{
    /// Opens a socket on `local_port` (0: the stack picks) to discover servers at `to`
    /// (e.g. `255.255.255.255:6666`) with `request`, collecting answers for `window` after
    /// the send. The first [`poll`](Self::poll) sends.
    ///
    /// # Errors
    ///
    /// [`BroadcastError::PayloadTooLarge`] if `request` does not fit one datagram to `to`;
    /// [`BroadcastError::Stack`] if the stack cannot open or bind the socket.
    pub fn start(
        stack: &mut S,
        local_port: u16,
        to: SocketAddr,
        request: &'r [u8],
        window: Duration,
    ) -> Result<Self, BroadcastError<S::Error>> {
        let survey = Survey::new(to, request.len(), window)?;
        Ok(Discovery {
            io: Socket::bind(stack, local_port).map_err(BroadcastError::Stack)?,
            request,
            survey,
            reads: ReadFirst::new(),
        })
    }

    socket_lifecycle!();

    /// The survey: when the request went out, the servers found, what was ignored.
    pub fn survey(&self) -> &Survey<N> {
        &self.survey
    }

    /// Takes one step at `now`: reads one answer, sends the request when due, or says
    /// when to call again. Loop on it until [`DiscoveryEvent::Done`].
    ///
    /// # Errors
    ///
    /// [`BroadcastError::Stack`] when sending or receiving fails with an error that the
    /// caps do not classify as an ICMP report or a cut datagram.
    // One copy for every call site: inlined, it costs the network firmware and the
    // self-test hundreds of bytes of flash (measured with scripts/qemu-net.sh build and scripts/qemu-run.sh).
    #[inline(never)]
    pub fn poll(
        &mut self,
        stack: &mut S,
        now: Instant,
    ) -> Result<DiscoveryEvent, BroadcastError<S::Error>> {
        let mut buf = [0u8; MAX_REPLY_LEN + 1];
        while self.survey.listening() && self.reads.may_read() {
            match stack.receive(&mut self.io.socket, &mut buf) {
                Ok((len, from)) => {
                    let head = buf.get(..len).unwrap_or(&buf);
                    match self.survey.on_datagram(now, from, len, head) {
                        SurveyVerdict::Found(found) => return Ok(DiscoveryEvent::Found(found)),
                        SurveyVerdict::Ignored => {
                            return Ok(DiscoveryEvent::Ignored { from: Some(from) });
                        }
                        // Nothing new: read on.
                        SurveyVerdict::Repeat | SurveyVerdict::Overflow => {}
                    }
                }
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(e)) => {
                    return match self.io.caps.kind(&e) {
                        StackErrorKind::Other => Err(BroadcastError::Stack(e)),
                        StackErrorKind::Refused | StackErrorKind::Truncated => {
                            let _ = self.survey.on_unreadable(now);
                            Ok(DiscoveryEvent::Ignored { from: None })
                        }
                    };
                }
            }
        }
        self.reads.timers_seen();
        match self.survey.poll(now) {
            SurveyStep::Done => Ok(DiscoveryEvent::Done),
            SurveyStep::Wait(at) => Ok(DiscoveryEvent::Wait(Wake::At(at))),
            SurveyStep::Send => {
                match stack.send_to(&mut self.io.socket, self.survey.to(), self.request) {
                    // Answers are read by the next call, which carries a fresh `now`: read
                    // in this one, a fast answer would show an RTT of zero.
                    Ok(()) => {
                        self.survey.on_sent(now);
                        Ok(DiscoveryEvent::Sent(now))
                    }
                    Err(nb::Error::WouldBlock) => {
                        self.survey.on_send_blocked(now);
                        let wake = match self.survey.poll(now) {
                            SurveyStep::Wait(at) => Wake::At(at),
                            SurveyStep::Send | SurveyStep::Done => Wake::Now,
                        };
                        Ok(DiscoveryEvent::Wait(wake))
                    }
                    Err(nb::Error::Other(e)) => Err(BroadcastError::Stack(e)),
                }
            }
        }
    }
}
