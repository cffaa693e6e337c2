//! What the drivers may know about a network stack beyond the `embedded-nal` traits.

use core::fmt;

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

/// Facts about a stack that the drivers use when given.
/// [`StackCaps::PLAIN`], the drivers' default, assumes nothing.
///
/// Any `embedded-nal` 0.9 stack whose error type is `Debug` runs the drivers as it is.
/// `embedded-nal` gives UDP errors no kind, though, and stacks differ in one fact the
/// protocol cares about; a [`StackCaps`] handed to a driver's `with_caps` tells it both:
///
/// - **errors**: [`StackCaps::classify`] says which errors are an ICMP "port unreachable"
///   (the client notes it and keeps its schedule) or a datagram too long to measure.
///   Without it every error is [`StackErrorKind::Other`] and ends the driver's call with
///   `Err`; the drivers' promises (give-up instants, no spin) hold either way.
/// - **true lengths**: see below.
///
/// A classifier is a plain function, so it can be written for any error type, foreign or
/// not (no trait to implement, no orphan rule in the way). With the `std` feature the core
/// ships one for `std::io::Error` (`StackCaps::STD_IO`).
///
/// ## Receive-length contract
///
/// `UdpClientStack::receive` returns `(len, from)`. A stack that knows a datagram's true
/// length returns it **even when it is larger than the buffer** (only the first
/// `buffer.len()` bytes are stored) and says so with [`StackCaps::true_lengths`]: the
/// server then answers with the true count from a small buffer. A stack that cannot know
/// the true length must never report more than it stored; the server then drops a
/// datagram that filled its buffer exactly unless the buffer is at least
/// [`crate::wire::MAX_DATAGRAM`] bytes long, because it might have been cut.
///
/// ```
/// use udp_echo_core::{StackCaps, StackErrorKind};
///
/// #[derive(Debug)]
/// enum ModemError { PortUnreachable, Timeout }
///
/// const MODEM: StackCaps<ModemError> = StackCaps::PLAIN.with_classifier(|e| match e {
///     ModemError::PortUnreachable => StackErrorKind::Refused,
///     ModemError::Timeout => StackErrorKind::Other,
/// });
/// assert_eq!((MODEM.classify)(&ModemError::PortUnreachable), StackErrorKind::Refused);
/// assert!(!MODEM.true_lengths);
/// ```
pub struct StackCaps<E> {
    /// `receive` reports a datagram's true length even when it exceeds the buffer.
    pub true_lengths: bool,
    /// What kind of failure an error is.
    pub classify: fn(&E) -> StackErrorKind,
}

impl<E> StackCaps<E> {
    /// Nothing known: lengths may be cut, every error is [`StackErrorKind::Other`].
    pub const PLAIN: Self = StackCaps {
        true_lengths: false,
        classify: unclassified::<E>,
    };

    /// These caps, with `receive` known to report true lengths.
    #[must_use]
    pub const fn with_true_lengths(mut self) -> Self {
        self.true_lengths = true;
        self
    }

    /// These caps, with errors classified by `classify`.
    #[must_use]
    pub const fn with_classifier(mut self, classify: fn(&E) -> StackErrorKind) -> Self {
        self.classify = classify;
        self
    }

    /// The kind of `error`.
    pub fn kind(&self, error: &E) -> StackErrorKind {
        (self.classify)(error)
    }
}

impl<E> Default for StackCaps<E> {
    fn default() -> Self {
        Self::PLAIN
    }
}

// Not derived: a derive would require `E: Clone`/`Debug`, which the caps never hold.
impl<E> Clone for StackCaps<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for StackCaps<E> {}

impl<E> fmt::Debug for StackCaps<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackCaps")
            .field("true_lengths", &self.true_lengths)
            .finish_non_exhaustive()
    }
}

fn unclassified<E>(_: &E) -> StackErrorKind {
    StackErrorKind::Other
}

#[cfg(feature = "std")]
impl StackCaps<std::io::Error> {
    /// For stacks whose error is `std::io::Error` (e.g. std-embedded-nal):
    /// `ConnectionRefused` is [`StackErrorKind::Refused`]. Lengths are not assumed true.
    pub const STD_IO: Self = StackCaps::PLAIN.with_classifier(classify_io_error);
}

/// `ECONNREFUSED` (an ICMP port unreachable on a connected socket) is
/// [`StackErrorKind::Refused`]; every other error is [`StackErrorKind::Other`].
#[cfg(feature = "std")]
pub fn classify_io_error(error: &std::io::Error) -> StackErrorKind {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => StackErrorKind::Refused,
        _ => StackErrorKind::Other,
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn std_io_caps_call_connection_refused_refused_and_nothing_else() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(StackCaps::STD_IO.kind(&refused), StackErrorKind::Refused);
        assert_eq!(StackCaps::STD_IO.kind(&other), StackErrorKind::Other);
        const { assert!(!StackCaps::<std::io::Error>::STD_IO.true_lengths) };
        assert_eq!(
            StackCaps::<std::io::Error>::PLAIN.kind(&refused),
            StackErrorKind::Other
        );
    }
}
