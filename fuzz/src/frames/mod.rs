//! The `frames` target's machinery: the network firmware's stack on the fake LAN9118 with
//! the network around it ([`rig`]), what the driver and smoltcp must do with each frame
//! ([`oracle`]), and the frames themselves ([`build`]). The target
//! (`fuzz_targets/frames.rs`) turns its input into frames and checks the outcome.

pub mod build;
pub mod oracle;
pub mod rig;

use std::net::Ipv4Addr;

use udp_echo_firmware_example::board;
use udp_echo_firmware_example::smoltcp::wire::EthernetAddress;

/// The firmware's MAC address: the fake chip's.
pub const OUR_MAC: EthernetAddress = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

/// The firmware's address and server port.
pub const OUR_IP: Ipv4Addr = board::ADDR;

/// The broadcast address of the firmware's network, 10.0.2.255.
pub const SUBNET_BROADCAST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 255);

/// The one multicast group smoltcp answers without joining any: all systems, 224.0.0.1.
pub const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);

/// Whether `ip` is on the firmware's network (10.0.2.0/24).
pub fn on_link(ip: Ipv4Addr) -> bool {
    ip.octets()[..3] == OUR_IP.octets()[..3]
}
