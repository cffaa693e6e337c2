//! The drivers' errors, shared by the sync drivers and the async ones (`E` is the stack's
//! or the socket's error).

use core::fmt;

use crate::exchange::ExchangeError;
use crate::wire::TooLarge;

/// Errors of the clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ClientError<E> {
    /// The stack failed (socket, connect, send or receive) with an error that is not an
    /// ICMP report: the exchange cannot go on.
    Stack(E),
    /// The exchange cannot start (request too large, bad policy).
    Exchange(ExchangeError),
}

/// Errors of the servers and listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ServerError<E> {
    /// The stack failed to open, bind or receive.
    Stack(E),
}

/// Errors of the broadcasters and discoveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BroadcastError<E> {
    /// The stack failed (socket, bind, send or receive).
    Stack(E),
    /// The payload does not fit one UDP datagram to the destination.
    PayloadTooLarge(TooLarge),
}

impl<E> From<TooLarge> for BroadcastError<E> {
    fn from(e: TooLarge) -> Self {
        BroadcastError::PayloadTooLarge(e)
    }
}

impl<E: fmt::Debug> fmt::Display for ClientError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Stack(e) => write!(f, "network stack: {e:?}"),
            ClientError::Exchange(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<E: fmt::Debug> fmt::Display for ServerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Stack(e) => write!(f, "network stack: {e:?}"),
        }
    }
}

impl<E: fmt::Debug> fmt::Display for BroadcastError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BroadcastError::Stack(e) => write!(f, "network stack: {e:?}"),
            BroadcastError::PayloadTooLarge(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for ClientError<E> {}
impl<E: fmt::Debug> core::error::Error for ServerError<E> {}
impl<E: fmt::Debug> core::error::Error for BroadcastError<E> {}
