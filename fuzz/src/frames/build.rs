//! Frames as the network sends them, well-formed or not, built with smoltcp's wire types.
//! Valid requests come from the fake chip's own helpers (`lan9118::fake::frames`), the
//! same ones the driver's tests send.

use std::net::{Ipv4Addr, SocketAddrV4};

use udp_echo_firmware_example::board;
use udp_echo_firmware_example::lan9118::fake::frames::{self, Flow};
use udp_echo_firmware_example::smoltcp::phy::ChecksumCapabilities;
use udp_echo_firmware_example::smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetProtocol, IpProtocol, Ipv4Packet,
    UdpPacket,
};

use super::{OUR_IP, OUR_MAC, on_link};

/// Bytes of an Ethernet header.
pub const ETH: usize = 14;
/// Bytes of an IPv4 header without options.
pub const IP: usize = 20;
/// Bytes of a UDP header.
pub const UDP: usize = 8;

/// The MAC address of `ip` on the firmware's network: the gateway's as QEMU gives it, any
/// other host's made of its address (locally administered, unicast).
pub fn mac_of(ip: Ipv4Addr) -> EthernetAddress {
    if ip == board::GATEWAY {
        frames::GATEWAY_MAC
    } else {
        let [a, b, c, d] = ip.octets();
        EthernetAddress([0x02, 0x00, a, b, c, d])
    }
}

/// The MAC address a datagram from `ip` arrives from: its own on the link, the gateway's
/// when it was routed.
pub fn hop_mac(ip: Ipv4Addr) -> EthernetAddress {
    if on_link(ip) {
        mac_of(ip)
    } else {
        frames::GATEWAY_MAC
    }
}

/// A UDP datagram from `from` to the firmware's server, cut into fragments of `size` bytes
/// of IP payload (a multiple of 8) if it does not fit one.
pub fn request(from: SocketAddrV4, ident: u16, payload: &[u8], size: usize) -> Vec<Vec<u8>> {
    let flow = Flow {
        from_mac: hop_mac(*from.ip()),
        to_mac: OUR_MAC,
        from,
        to: SocketAddrV4::new(OUR_IP, board::ECHO_PORT),
    };
    frames::udp_fragments_of(flow, ident, payload, size)
}

/// The fields of an IPv4 header that the frames here vary.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Fields {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Identification (the reassembly key, with the addresses and protocol).
    pub ident: u16,
    /// More fragments follow.
    pub more: bool,
    /// Where the payload sits in the datagram, in bytes (a multiple of 8).
    pub offset: u16,
    /// The protocol of the payload.
    pub protocol: IpProtocol,
}

/// An IPv4 packet in an Ethernet frame, header checksum filled in.
pub fn ipv4(
    src: EthernetAddress,
    dst: EthernetAddress,
    fields: Ipv4Fields,
    payload: &[u8],
) -> Vec<u8> {
    let mut ip = vec![0; IP + payload.len()];
    let mut packet = Ipv4Packet::new_unchecked(&mut ip[..]);
    packet.set_version(4);
    packet.set_header_len(IP as u8);
    packet.set_total_len((IP + payload.len()) as u16);
    packet.set_ident(fields.ident);
    packet.clear_flags();
    packet.set_more_frags(fields.more);
    packet.set_frag_offset(fields.offset);
    packet.set_hop_limit(64);
    packet.set_next_header(fields.protocol);
    packet.set_src_addr(fields.src);
    packet.set_dst_addr(fields.dst);
    packet.payload_mut().copy_from_slice(payload);
    packet.fill_checksum();
    frames::ethernet(src, dst, EthernetProtocol::Ipv4, &ip)
}

/// A UDP header and payload: length field `len` (the true one if `None`), checksum filled
/// in over `from` and `to` unless `checksum` says what to put there.
pub fn udp(
    from: SocketAddrV4,
    to: SocketAddrV4,
    payload: &[u8],
    len: Option<u16>,
    checksum: Option<u16>,
) -> Vec<u8> {
    let mut buf = vec![0; UDP + payload.len()];
    let mut packet = UdpPacket::new_unchecked(&mut buf[..]);
    packet.set_src_port(from.port());
    packet.set_dst_port(to.port());
    packet.set_len((UDP + payload.len()) as u16);
    packet.payload_mut().copy_from_slice(payload);
    packet.fill_checksum(&(*from.ip()).into(), &(*to.ip()).into());
    if let Some(sum) = checksum {
        packet.set_checksum(sum);
    }
    if let Some(len) = len {
        packet.set_len(len);
    }
    buf
}

/// An ARP packet (Ethernet/IPv4) in an Ethernet frame.
#[allow(clippy::too_many_arguments)]
pub fn arp(
    eth_src: EthernetAddress,
    eth_dst: EthernetAddress,
    operation: u16,
    sha: EthernetAddress,
    spa: Ipv4Addr,
    tha: EthernetAddress,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::from(operation),
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: tha,
        target_protocol_addr: tpa,
    };
    let mut payload = vec![0; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut payload[..]));
    frames::ethernet(eth_src, eth_dst, EthernetProtocol::Arp, &payload)
}

/// The network's answer to the firmware's "who has `ip`?": `ip` is at [`mac_of`]`(ip)`.
pub fn arp_answer(ip: Ipv4Addr) -> Vec<u8> {
    let mac = mac_of(ip);
    arp(
        mac,
        OUR_MAC,
        ArpOperation::Reply.into(),
        mac,
        ip,
        OUR_MAC,
        OUR_IP,
    )
}

/// Fills in the IPv4 header checksum of an Ethernet frame, if the header (as long as its
/// IHL says) is there.
pub fn fix_ipv4_checksum(frame: &mut [u8]) {
    let Some(ip) = frame.get_mut(ETH..) else {
        return;
    };
    if ip.len() < IP {
        return;
    }
    let room = ip.len();
    let mut packet = Ipv4Packet::new_unchecked(ip);
    if usize::from(packet.header_len()) <= room {
        packet.fill_checksum();
    }
}

/// Fills in the UDP checksum of an Ethernet frame carrying an IPv4 header of `IP` bytes
/// (over the addresses in that header), if the UDP length field stays within the frame.
pub fn fix_udp_checksum(frame: &mut [u8]) {
    if frame.len() < ETH + IP + UDP {
        return;
    }
    let (src, dst) = {
        let ip = Ipv4Packet::new_unchecked(&frame[ETH..]);
        (ip.src_addr(), ip.dst_addr())
    };
    let room = frame.len() - ETH - IP;
    let mut udp = UdpPacket::new_unchecked(&mut frame[ETH + IP..]);
    let len = usize::from(udp.len());
    if (UDP..=room).contains(&len) {
        udp.fill_checksum(&src.into(), &dst.into());
    }
}

/// Checksum settings as smoltcp's interface has them: everything computed and checked.
pub fn checksums() -> ChecksumCapabilities {
    ChecksumCapabilities::default()
}

/// The Internet checksum (RFC 1071) of `parts`, concatenated: 0 when the data carries a
/// right one. Computed here because smoltcp's `verify_checksum` always says yes in fuzz
/// builds (`cfg(fuzzing)`).
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for byte in parts.iter().flat_map(|p| p.iter().copied()) {
        match odd.take() {
            None => odd = Some(byte),
            Some(high) => sum += u32::from(u16::from_be_bytes([high, byte])),
        }
    }
    if let Some(high) = odd {
        sum += u32::from(high) << 8;
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether an IPv4 header (all of it) has a right checksum.
pub fn ipv4_checksum_ok(header: &[u8]) -> bool {
    internet_checksum(&[header]) == 0
}

/// Whether a UDP datagram (header and payload) from `src` to `dst` has a right checksum
/// (or none: 0).
pub fn udp_checksum_ok(src: Ipv4Addr, dst: Ipv4Addr, datagram: &[u8]) -> bool {
    if datagram.get(6..8) == Some(&[0, 0]) {
        return true;
    }
    let len = (datagram.len() as u16).to_be_bytes();
    let pseudo = [&src.octets()[..], &dst.octets(), &[0, 17], &len];
    let mut parts: Vec<&[u8]> = pseudo.to_vec();
    parts.push(datagram);
    internet_checksum(&parts) == 0
}
