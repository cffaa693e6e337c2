//! `core::net` addresses (embedded-nal's) to and from embassy-net's (smoltcp 0.13).
//!
//! smoltcp converts `SocketAddr` only when both IPv4 and IPv6 are enabled, so the V4 case
//! is written out here. The other direction (`IpAddress` into `IpAddr`) exists for every
//! feature set, so these functions compile whatever features embassy-net is built with.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use embassy_net::{IpAddress, IpEndpoint, IpListenEndpoint};

use crate::Error;

/// `ip` as embassy-net's address.
pub(crate) fn to_ip(ip: IpAddr) -> Result<IpAddress, Error> {
    match ip {
        IpAddr::V4(v4) => Ok(IpAddress::Ipv4(v4)),
        #[cfg(feature = "proto-ipv6")]
        IpAddr::V6(v6) => Ok(IpAddress::Ipv6(v6)),
        #[cfg(not(feature = "proto-ipv6"))]
        IpAddr::V6(_) => Err(Error::Unsupported),
    }
}

/// `addr` as a remote endpoint embassy-net can send to, checked as embassy-net would at
/// send time (an unspecified address or port 0 is [`Error::NoRoute`]).
pub(crate) fn to_remote(addr: SocketAddr) -> Result<IpEndpoint, Error> {
    let ip = to_ip(addr.ip())?;
    if addr.ip().is_unspecified() || addr.port() == 0 {
        return Err(Error::NoRoute);
    }
    Ok(IpEndpoint::new(ip, addr.port()))
}

/// embassy-net's endpoint as a `SocketAddr`.
pub(crate) fn from_endpoint(endpoint: IpEndpoint) -> SocketAddr {
    SocketAddr::new(endpoint.addr.into(), endpoint.port)
}

/// The local address a datagram from `remote` arrived at: the address smoltcp recorded
/// (always set for received datagrams), else the socket's bound address, else the
/// unspecified address of the remote's family; on the socket's port.
pub(crate) fn local_of(
    local: Option<IpAddress>,
    bound: IpListenEndpoint,
    remote: SocketAddr,
) -> SocketAddr {
    let ip = match local.or(bound.addr) {
        Some(ip) => ip.into(),
        None if remote.is_ipv4() => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, bound.port)
}

/// The source address for a send from `local` to `remote` on a socket bound to `bound`:
/// `None` (the stack picks) when `local`'s address is unspecified.
pub(crate) fn source_for(
    local: SocketAddr,
    remote: SocketAddr,
    bound: IpListenEndpoint,
) -> Result<Option<IpAddress>, Error> {
    if local.port() != 0 && local.port() != bound.port {
        return Err(Error::LocalAddress);
    }
    if local.ip().is_unspecified() {
        return Ok(None);
    }
    // smoltcp panics on an IP header whose source and destination families differ.
    if local.is_ipv4() != remote.is_ipv4() {
        return Err(Error::LocalAddress);
    }
    to_ip(local.ip()).map(Some)
}
