//! Discovery as a sans-IO state machine: one request to a broadcast (or any) address,

use core::net::SocketAddr;
use core::time::Duration;

use crate::exchange::next_blocked_pause_us;
use crate::time::Instant;
use crate::wire::{self, MAX_REPLY_LEN, TooLarge};

/// A server that answered a survey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Found {
    /// Its address (IPv4-mapped IPv6 made IPv4).
    pub addr: SocketAddr,
    /// Time from the request to its first valid answer.
    pub rtt: Duration,
}

/// What the caller of a [`Survey`] should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SurveyStep {
    /// Send the request now, then report how it went.
    Send,
    /// Wait until this instant at the latest (reading answers while listening).
    Wait(Instant),
    /// The window closed.
    Done,
}

/// What a datagram was to a [`Survey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SurveyVerdict {
    /// A server answered for the first time.
    Found(Found),
    /// A server already found answered again: nothing new.
    Repeat,
    /// A new server answered, but the list of `N` is full: counted in
    /// [`Survey::overflow`].
    Overflow,
    /// Not a valid answer to this request (or it came outside the window): counted in
    /// [`Survey::ignored`].
    Ignored,
}

/// One discovery, as a sans-IO state machine. `N` bounds the servers listed.
///
///
/// The [`Survey`] decides; the caller does the I/O and tells it the time, as with the
/// [`Exchange`](crate::Exchange). Call order:
///
/// 1. [`Survey::new`]; the window's clock starts at the first poll.
/// 2. Loop on [`Survey::poll`]:
///    - [`SurveyStep::Send`]: send the request, then [`Survey::on_sent`] if it went out or
///      [`Survey::on_send_blocked`] if the stack could not take it now;
///    - [`SurveyStep::Wait`]: wait until that instant; while [`Survey::listening`], hand
///      every datagram that arrives to [`Survey::on_datagram`] (and any the stack could
///      not read whole to [`Survey::on_unreadable`]);
///    - [`SurveyStep::Done`]: the window closed; [`Survey::found`] has the servers.
///
/// The window runs from the send. If the stack never takes it, the survey still ends one
/// window after the first poll, with nothing sent.
///
/// ```
/// use core::time::Duration;
/// use udp_echo_core::{Instant, Survey, SurveyStep, SurveyVerdict};
///
/// let to = "255.255.255.255:6666".parse().unwrap();
/// let mut survey = Survey::<4>::new(to, 3, Duration::from_millis(500)).unwrap();
/// let t0 = Instant::ZERO;
/// assert_eq!(survey.poll(t0), SurveyStep::Send);
/// survey.on_sent(t0);
/// assert_eq!(survey.poll(t0), SurveyStep::Wait(Instant::from_millis(500)));
///
/// let a = "192.0.2.7:6666".parse().unwrap();
/// let t = Instant::from_millis(3);
/// assert!(matches!(survey.on_datagram(t, a, 21, b"Your data was 3 bytes"), SurveyVerdict::Found(_)));
/// assert_eq!(survey.on_datagram(t, a, 21, b"Your data was 3 bytes"), SurveyVerdict::Repeat);
/// assert_eq!(survey.poll(Instant::from_millis(500)), SurveyStep::Done);
/// assert_eq!(survey.found()[0].rtt, Duration::from_millis(3));
/// ```
#[derive(Debug, Clone)]
pub struct Survey<const N: usize> {
    to: SocketAddr,
    request_len: u16,
    window: Duration,
    started: Option<Instant>,
    sent_at: Option<Instant>,
    /// When the send is (re)tried after the stack could not take it.
    send_due: Option<Instant>,
    blocked_pause_us: u64,
    found: heapless::Vec<Found, N>,
    overflow: u32,
    ignored: u32,
    /// Whether [`poll`](Self::poll) said [`SurveyStep::Done`]: answers are no longer taken.
    closed: bool,
}

impl<const N: usize> Survey<N> {
    /// A survey of `to` with a request of `request_len` bytes, collecting answers for
    /// `window` after the send.
    ///
    /// # Errors
    ///
    /// [`TooLarge`] if the request does not fit one datagram to `to`.
    pub fn new(to: SocketAddr, request_len: usize, window: Duration) -> Result<Self, TooLarge> {
        let request_len = wire::fits(to, request_len)?;
        Ok(Survey {
            to,
            request_len,
            window,
            started: None,
            sent_at: None,
            send_due: None,
            blocked_pause_us: 0,
            found: heapless::Vec::new(),
            overflow: 0,
            ignored: 0,
            closed: false,
        })
    }

    /// Where the request goes.
    pub fn to(&self) -> SocketAddr {
        self.to
    }

    /// When the window closes, once the survey started (one window after the send, or
    /// after the first poll while nothing went out).
    pub fn deadline(&self) -> Option<Instant> {
        let from = self.sent_at.or(self.started)?;
        Some(from + self.window)
    }

    /// What to do at `now`.
    #[must_use = "the step says whether to send, wait or stop"]
    pub fn poll(&mut self, now: Instant) -> SurveyStep {
        self.started.get_or_insert(now);
        let deadline = self.deadline().unwrap_or(now);
        if now >= deadline {
            self.closed = true;
            return SurveyStep::Done;
        }
        if self.sent_at.is_some() {
            return SurveyStep::Wait(deadline);
        }
        match *self.send_due.get_or_insert(now) {
            due if now >= due => SurveyStep::Send,
            due => SurveyStep::Wait(due.min(deadline)),
        }
    }

    /// Records that the request went out at `now`: answers count from here.
    pub fn on_sent(&mut self, now: Instant) {
        if self.sent_at.is_none() {
            self.sent_at = Some(now);
        }
    }

    /// Records that the stack could not take the send at `now`: it is tried again after
    /// a pause that doubles from [`BLOCKED_FIRST_PAUSE`](crate::BLOCKED_FIRST_PAUSE).
    pub fn on_send_blocked(&mut self, now: Instant) {
        self.blocked_pause_us = next_blocked_pause_us(self.blocked_pause_us);
        self.send_due = Some(Instant::from_micros(
            now.as_micros().saturating_add(self.blocked_pause_us),
        ));
    }

    /// Whether answers are awaited: the request went out and the survey is not done.
    pub fn listening(&self) -> bool {
        self.sent_at.is_some() && !self.closed
    }

    /// Judges a datagram from `from` whose true length is `len`, of which the first bytes
    /// are `head`, received at `now`.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        len: usize,
        head: &[u8],
    ) -> SurveyVerdict {
        let from = wire::canonical(from);
        let valid = len == head.len()
            && len <= MAX_REPLY_LEN
            && wire::parse_reply(head) == Ok(self.request_len);
        // Until `poll` closes the window, an answer counts even if read after its end:
        // drivers read what is waiting before they look at the time, so it came in time.
        let Some(sent_at) = self.sent_at.filter(|_| valid && !self.closed) else {
            self.ignored = self.ignored.saturating_add(1);
            return SurveyVerdict::Ignored;
        };
        if self.found.iter().any(|f| f.addr == from) {
            return SurveyVerdict::Repeat;
        }
        let found = Found {
            addr: from,
            rtt: now - sent_at,
        };
        match self.found.push(found) {
            Ok(()) => SurveyVerdict::Found(found),
            Err(_) => {
                self.overflow = self.overflow.saturating_add(1);
                SurveyVerdict::Overflow
            }
        }
    }

    /// Records a datagram the stack could not hand over whole and could not measure: it
    /// cannot be an answer.
    pub fn on_unreadable(&mut self, _now: Instant) -> SurveyVerdict {
        self.ignored = self.ignored.saturating_add(1);
        SurveyVerdict::Ignored
    }

    /// When the request went out, once it did.
    pub fn sent_at(&self) -> Option<Instant> {
        self.sent_at
    }

    /// Servers found so far, in the order they answered.
    pub fn found(&self) -> &[Found] {
        &self.found
    }

    /// Answers from new servers that did not fit the list of `N`.
    pub fn overflow(&self) -> u32 {
        self.overflow
    }

    /// Datagrams that were not a valid answer to this request.
    pub fn ignored(&self) -> u32 {
        self.ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn survey<const N: usize>() -> Survey<N> {
        let to = "255.255.255.255:6666".parse().unwrap();
        Survey::new(to, 5, Duration::from_millis(1000)).unwrap()
    }

    const FIVE: &[u8] = b"Your data was 5 bytes";

    #[test]
    fn the_window_runs_from_the_send_and_not_from_the_first_poll() {
        let mut s = survey::<4>();
        assert_eq!(s.poll(at(0)), SurveyStep::Send);
        s.on_send_blocked(at(0));
        assert_eq!(s.poll(at(0)), SurveyStep::Wait(at(1)));
        s.on_send_blocked(at(1));
        // The pause doubles: 1 ms, then 2 ms.
        assert_eq!(s.poll(at(1)), SurveyStep::Wait(at(3)));
        assert_eq!(s.poll(at(3)), SurveyStep::Send);
        s.on_sent(at(3));
        assert_eq!(s.poll(at(3)), SurveyStep::Wait(at(1003)));
        assert_eq!(s.poll(at(1002)), SurveyStep::Wait(at(1003)));
        assert_eq!(s.poll(at(1003)), SurveyStep::Done);
    }

    #[test]
    fn a_send_that_never_goes_out_ends_one_window_after_the_first_poll() {
        let mut s = survey::<4>();
        let mut now = at(0);
        let mut wakes = 0;
        loop {
            match s.poll(now) {
                SurveyStep::Send => s.on_send_blocked(now),
                SurveyStep::Wait(t) => {
                    wakes += 1;
                    now = t;
                }
                SurveyStep::Done => break,
            }
        }
        assert_eq!(now, at(1000));
        assert_eq!(s.sent_at(), None);
        // Doubling pauses: a handful of wake-ups over a second, not one per millisecond.
        assert!(wakes <= 12, "{wakes} wakes");
    }

    #[test]
    fn answers_are_found_once_judged_and_overflow_counted() {
        let mut s = survey::<2>();
        let (a, b, c) = (
            "192.0.2.1:6666".parse().unwrap(),
            "192.0.2.2:6666".parse().unwrap(),
            "192.0.2.3:6666".parse().unwrap(),
        );
        // Before the send: nobody was asked.
        assert_eq!(s.on_datagram(at(0), a, 21, FIVE), SurveyVerdict::Ignored);
        let _ = s.poll(at(0));
        s.on_sent(at(10));
        let found = s.on_datagram(at(12), a, 21, FIVE);
        assert_eq!(
            found,
            SurveyVerdict::Found(Found {
                addr: a,
                rtt: Duration::from_millis(2)
            })
        );
        assert_eq!(s.on_datagram(at(13), a, 21, FIVE), SurveyVerdict::Repeat);
        // The wrong count, a cut answer, garbage: ignored.
        let four = b"Your data was 4 bytes";
        assert_eq!(s.on_datagram(at(14), b, 21, four), SurveyVerdict::Ignored);
        assert_eq!(s.on_datagram(at(14), b, 22, FIVE), SurveyVerdict::Ignored);
        assert_eq!(
            s.on_datagram(at(14), b, 5, b"hello"),
            SurveyVerdict::Ignored
        );
        assert_eq!(s.on_unreadable(at(14)), SurveyVerdict::Ignored);
        assert!(matches!(
            s.on_datagram(at(15), b, 21, FIVE),
            SurveyVerdict::Found(_)
        ));
        assert_eq!(s.on_datagram(at(16), c, 21, FIVE), SurveyVerdict::Overflow);
        // Read at the window's end, before the poll that closes it: it came in time.
        let d = "192.0.2.4:6666".parse().unwrap();
        assert_eq!(
            s.on_datagram(at(1010), d, 21, FIVE),
            SurveyVerdict::Overflow
        );
        // After the poll that closed the window: too late.
        assert_eq!(s.poll(at(1010)), SurveyStep::Done);
        assert_eq!(s.on_datagram(at(1010), d, 21, FIVE), SurveyVerdict::Ignored);
        assert_eq!((s.found().len(), s.overflow(), s.ignored()), (2, 2, 6));
    }

    #[test]
    fn an_ipv4_mapped_answer_is_the_ipv4_server() {
        let mut s = survey::<2>();
        let _ = s.poll(at(0));
        s.on_sent(at(0));
        let mapped = "[::ffff:192.0.2.1]:6666".parse().unwrap();
        let plain = "192.0.2.1:6666".parse().unwrap();
        assert!(
            matches!(s.on_datagram(at(1), mapped, 21, FIVE), SurveyVerdict::Found(f) if f.addr == plain)
        );
        assert_eq!(s.on_datagram(at(2), plain, 21, FIVE), SurveyVerdict::Repeat);
    }

    #[test]
    fn a_request_too_large_for_the_family_is_refused() {
        let to = "255.255.255.255:6666".parse().unwrap();
        let e = Survey::<1>::new(to, 65_508, Duration::from_secs(1)).unwrap_err();
        assert_eq!(
            e,
            TooLarge {
                len: 65_508,
                max: 65_507
            }
        );
    }
}
