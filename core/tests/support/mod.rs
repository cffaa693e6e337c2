//! A scripted `embedded-nal` stack and a virtual-time runner for the drivers' tests.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use udp_echo_core::{
    Client, ClientEvent, Instant, Outcome, RetryPolicy, Shell, StackCaps, StackErrorKind, Wake,
};

/// Errors the mock can be told to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockError {
    Refused,
    Truncated,
    Broken,
    NoSuchSocket,
}

/// What the mock's errors mean, as a stack's author would write it for the drivers.
pub const MOCK_CAPS: StackCaps<MockError> =
    StackCaps::PLAIN
        .with_true_lengths()
        .with_classifier(|e| match e {
            MockError::Refused => StackErrorKind::Refused,
            MockError::Truncated => StackErrorKind::Truncated,
            _ => StackErrorKind::Other,
        });

/// What a socket will hand out on its next receives.
#[derive(Debug, Clone)]
pub enum Incoming {
    Datagram(SocketAddr, Vec<u8>),
    Error(MockError),
}

#[derive(Debug, Default)]
pub struct SocketState {
    pub local_port: Option<u16>,
    pub remote: Option<SocketAddr>,
    pub inbox: VecDeque<Incoming>,
    pub closed: bool,
}

/// One datagram a socket sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub socket: usize,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
pub struct MockStack {
    pub sockets: Vec<SocketState>,
    pub sent: Vec<Sent>,
    /// Answers for the next sends on any socket, in order: `Ok` sends, `Err` fails.
    pub send_script: VecDeque<nb::Result<(), MockError>>,
    /// Once the script is used up, every send says `WouldBlock` (a stack whose buffer
    /// never drains, or smoltcp waiting for ARP).
    pub blocked_after_script: bool,
    /// Report a datagram's true length even when larger than the buffer.
    pub reports_true_length: bool,
    pub next_port: u16,
}

impl Default for MockStack {
    fn default() -> Self {
        MockStack {
            sockets: Vec::new(),
            sent: Vec::new(),
            send_script: VecDeque::new(),
            blocked_after_script: false,
            reports_true_length: true,
            next_port: 50_000,
        }
    }
}

#[derive(Debug)]
pub struct MockSocket(pub usize);

impl MockStack {
    pub fn deliver(&mut self, socket: usize, incoming: Incoming) {
        self.sockets[socket].inbox.push_back(incoming);
    }

    fn state(&mut self, s: &MockSocket) -> Result<&mut SocketState, MockError> {
        match self.sockets.get_mut(s.0) {
            Some(st) if !st.closed => Ok(st),
            _ => Err(MockError::NoSuchSocket),
        }
    }

    fn transmit(
        &mut self,
        s: &MockSocket,
        to: SocketAddr,
        bytes: &[u8],
    ) -> nb::Result<(), MockError> {
        self.state(s)?;
        match self.send_script.pop_front() {
            Some(answer) => answer?,
            None if self.blocked_after_script => return Err(nb::Error::WouldBlock),
            None => {}
        }
        self.sent.push(Sent {
            socket: s.0,
            to,
            bytes: bytes.to_vec(),
        });
        Ok(())
    }
}

impl embedded_nal::UdpClientStack for MockStack {
    type UdpSocket = MockSocket;
    type Error = MockError;

    fn socket(&mut self) -> Result<MockSocket, MockError> {
        self.sockets.push(SocketState::default());
        Ok(MockSocket(self.sockets.len() - 1))
    }

    fn connect(&mut self, s: &mut MockSocket, remote: SocketAddr) -> Result<(), MockError> {
        let port = self.next_port;
        self.next_port += 1;
        let st = self.state(s)?;
        st.remote = Some(remote);
        st.local_port = Some(port);
        Ok(())
    }

    fn send(&mut self, s: &mut MockSocket, bytes: &[u8]) -> nb::Result<(), MockError> {
        let to = self.state(s)?.remote.ok_or(MockError::Broken)?;
        self.transmit(s, to, bytes)
    }

    fn receive(
        &mut self,
        s: &mut MockSocket,
        buf: &mut [u8],
    ) -> nb::Result<(usize, SocketAddr), MockError> {
        let true_len = self.reports_true_length;
        match self.state(s)?.inbox.pop_front() {
            None => Err(nb::Error::WouldBlock),
            Some(Incoming::Error(e)) => Err(nb::Error::Other(e)),
            Some(Incoming::Datagram(from, bytes)) => {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                Ok((if true_len { bytes.len() } else { n }, from))
            }
        }
    }

    fn close(&mut self, s: MockSocket) -> Result<(), MockError> {
        self.state(&s)?.closed = true;
        Ok(())
    }
}

impl embedded_nal::UdpFullStack for MockStack {
    fn bind(&mut self, s: &mut MockSocket, port: u16) -> Result<(), MockError> {
        let port = if port == 0 { 40_000 + s.0 as u16 } else { port };
        self.state(s)?.local_port = Some(port);
        Ok(())
    }

    fn send_to(
        &mut self,
        s: &mut MockSocket,
        to: SocketAddr,
        bytes: &[u8],
    ) -> nb::Result<(), MockError> {
        self.transmit(s, to, bytes)
    }
}

pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

pub fn at(v: u64) -> Instant {
    Instant::from_millis(v)
}

pub fn server() -> SocketAddr {
    "192.0.2.10:6666".parse().unwrap()
}

pub fn reply(n: usize) -> Vec<u8> {
    format!("Your data was {n} bytes").into_bytes()
}

/// Something the scripted peer makes happen `after` a send.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub after: Duration,
    pub incoming: Incoming,
}

pub fn answer(after_ms: u64, from: SocketAddr, bytes: Vec<u8>) -> Scheduled {
    Scheduled {
        after: ms(after_ms),
        incoming: Incoming::Datagram(from, bytes),
    }
}

pub fn refused(after_ms: u64) -> Scheduled {
    Scheduled {
        after: ms(after_ms),
        incoming: Incoming::Error(MockError::Refused),
    }
}

/// What a client run looked like on the virtual clock.
#[derive(Debug)]
pub struct Run {
    pub outcome: Outcome,
    /// When each request went out, in ms (from the driver's `Sent` events, checked
    /// against what the stack saw).
    pub sends_ms: Vec<u64>,
    /// When a send was refused with `WouldBlock`, in ms.
    pub blocked_ms: Vec<u64>,
    /// When the outcome was reached, in ms.
    pub ended_ms: u64,
    /// How many times the driver asked to sleep.
    pub waits: usize,
    pub stack: MockStack,
}

/// Runs a client exchange on virtual time, through the core's `Client::run` with
/// [`Timeline`] as its shell. `peer(k)` is asked, for the k-th send (1-based), what it
/// makes happen; time jumps to the next of the driver's deadline and the peer's events,
/// exactly as a shell that sleeps would. `seed` seeds the jitter (feature `jitter`).
pub fn run_client(
    policy: RetryPolicy,
    request: &[u8],
    seed: u32,
    mut stack: MockStack,
    peer: impl FnMut(u32) -> Vec<Scheduled>,
) -> Run {
    let mut client = Client::connect(&mut stack, server())
        .unwrap()
        .with_caps(MOCK_CAPS);
    let req = client.start(&policy, request).unwrap();
    #[cfg(feature = "jitter")]
    let mut req = req.with_seed(seed);
    #[cfg(not(feature = "jitter"))]
    let (mut req, _) = (req, seed);
    let mut shell = Timeline {
        now: at(0),
        peer,
        pending: Vec::new(),
        sends_ms: Vec::new(),
        blocked_ms: Vec::new(),
        waits: 0,
        steps: 0,
        step: None,
    };
    let outcome = client.run(&mut stack, &mut req, &mut shell).unwrap();
    shell.settle(&stack);
    Run {
        outcome,
        sends_ms: shell.sends_ms,
        blocked_ms: shell.blocked_ms,
        ended_ms: shell.now.as_millis(),
        waits: shell.waits,
        stack,
    }
}

/// The shell of [`run_client`]: a virtual clock, a scripted peer whose datagrams are
/// delivered when the clock reaches them, and a record of every step the driver took.
pub struct Timeline<F> {
    pub now: Instant,
    pub peer: F,
    /// What the peer makes happen, and when.
    pub pending: Vec<(Instant, Incoming)>,
    pub sends_ms: Vec<u64>,
    pub blocked_ms: Vec<u64>,
    pub waits: usize,
    /// Steps taken (calls of `now`): a bound that tells a spin from a run.
    pub steps: u32,
    /// The step being taken: the datagrams sent before it, and whether the driver said
    /// `Sent`.
    pub step: Option<(usize, bool)>,
}

impl<F> Timeline<F> {
    /// Checks the step just taken: a datagram went out exactly when the driver said `Sent`.
    pub fn settle(&mut self, stack: &MockStack) {
        if let Some((sent_before, said_sent)) = self.step.take() {
            assert_eq!(
                stack.sent.len() - sent_before,
                usize::from(said_sent),
                "a datagram goes out exactly when the driver says Sent"
            );
        }
    }
}

impl<F: FnMut(u32) -> Vec<Scheduled>> Shell<MockStack> for Timeline<F> {
    type Error = std::convert::Infallible;

    fn now(&mut self, stack: &mut MockStack) -> Instant {
        self.settle(stack);
        self.steps += 1;
        assert!(self.steps <= 100_000, "the driver never finished: a spin");
        self.step = Some((stack.sent.len(), false));
        self.now
    }

    fn sleep(
        &mut self,
        stack: &mut MockStack,
        _: &MockSocket,
        now: Instant,
        wake: Wake,
    ) -> Result<(), Self::Error> {
        self.settle(stack);
        assert_eq!(now, self.now);
        self.waits += 1;
        let next_event = self.pending.iter().map(|(t, _)| *t).min();
        let next = wake
            .min(Wake::from(next_event))
            .deadline(now)
            .expect("waiting forever with nothing scheduled");
        assert!(next > now, "a wait that does not advance time is a spin");
        self.now = next;
        self.pending.sort_by_key(|(t, _)| *t);
        while self.pending.first().is_some_and(|(t, _)| *t <= self.now) {
            let (_, incoming) = self.pending.remove(0);
            stack.deliver(0, incoming);
        }
        Ok(())
    }

    fn on_event(&mut self, event: &ClientEvent) {
        let now = self.now;
        match *event {
            ClientEvent::Sent { attempt, at } => {
                if let Some(step) = &mut self.step {
                    step.1 = true;
                }
                assert_eq!(at, now);
                self.sends_ms.push(now.as_millis());
                assert_eq!(attempt as usize, self.sends_ms.len());
                let scheduled = (self.peer)(attempt);
                self.pending
                    .extend(scheduled.into_iter().map(|s| (now + s.after, s.incoming)));
            }
            ClientEvent::SendBlocked => self.blocked_ms.push(now.as_millis()),
            ClientEvent::Ignored { .. } | ClientEvent::Refused => {}
            ClientEvent::Wait(_) | ClientEvent::Done(_) => {
                unreachable!("the loop handles waits and the end itself")
            }
        }
    }
}
