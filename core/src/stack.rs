//! What the core needs to know about a network stack beyond the `embedded-nal` traits.
//!
//! `embedded-nal` 0.9 gives UDP errors no kind, yet the protocol must tell an ICMP
//! "port unreachable" apart from a broken socket, and a truncated datagram apart from a
//! short one. A stack's error type says so by implementing [`StackError`]; a stack that
//! cannot tell implements it with an empty body (`impl StackError for MyError {}`), which
//! classifies everything as [`StackErrorKind::Other`].
//!
//! ## Receive-length contract
//!
//! `UdpClientStack::receive` returns `(len, from)`. A stack that knows a datagram's true
//! length returns it **even when it is larger than the buffer** (only the first
//! `buffer.len()` bytes are stored): the core then answers with the true count. A stack
//! that cannot know the true length must never report more than it stored; the server then
//! drops a datagram that filled its buffer exactly unless the buffer is at least
//! [`crate::wire::MAX_DATAGRAM`] bytes long, because it might have been cut.

/// The kinds of stack error the protocol reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum StackErrorKind {
    /// The peer's host answered with ICMP port unreachable (`ECONNREFUSED` on a connected
    /// socket). ICMP is unauthenticated: the client notes it and keeps its schedule.
    Refused,
    /// A datagram did not fit the buffer and the stack cannot say how long it was.
    Truncated,
    /// Anything else: the operation failed and the driver reports the error.
    Other,
}

/// Classifies a stack's error for the protocol. See the [module docs](self).
pub trait StackError: core::fmt::Debug {
    /// What kind of failure this is; [`StackErrorKind::Other`] unless the stack knows better.
    fn kind(&self) -> StackErrorKind {
        StackErrorKind::Other
    }
}

impl StackError for core::convert::Infallible {}
