//! smoltcp 0.14 side of udp-echo: an `embedded-nal` 0.9 UDP adapter, heap-free devices and
//! a simulated link, all `no_std` and without `alloc`. A library only: the TAP binary
//! (`udp-echo-tap`), the bare-metal self-test (`udp-echo-bare-metal`) and the network
//! firmware (`udp-echo-net-firmware`) are packages of their own, so depending on this
//! pulls no CLI or board crates.
//!
//! - [`nal`]: [`NalStack`], the `UdpClientStack`/`UdpFullStack` the core's drivers run on,
//!   and [`CAPS`], what they may assume of it. The adapter is ours because the published
//!   one, smoltcp-nal 0.7, is pinned to smoltcp 0.12 and heapless 0.8, and reports an
//!   empty receive queue as an error instead of `WouldBlock`, which would make every poll
//!   of an idle socket look like a failure.
//! - [`clock`]: the core's time on smoltcp's, and the interface's next timer as a `Wake`.
//! - [`loopback`]: [`Loopback`], a `phy::Device` that turns frames around (smoltcp's
//!   `phy::Loopback` needs `alloc`).
//! - [`fault`]: [`FaultyLink`], a `phy::Device` wrapper that loses chosen UDP datagrams.
//! - [`selftest`]: the firmware self-test's exchanges and what each must show.
//! - [`sim`]: two interfaces on an in-memory wire with a virtual clock and seeded,
//!   deterministic faults (drop, duplicate, reorder, delay, corrupt).
//! - [`frag`]: counts the IPv4 datagrams too large for smoltcp's reassembly buffer
//!   (feature `reassembly`), which smoltcp drops without a word.
//! - [`cmdline`]: the network firmware's boot command line (`serve`, `client HOST:PORT MSG`).
//! - `board` (features `ethernet` and `reassembly`): the network firmware's stack, written
//!   once: addresses, the interface, the sockets and the main loop's round; the host's fuzz
//!   target runs the same over the fake LAN9118 (feature `fake-chip`).
//! - [`lan9118`] (feature `ethernet` or `embassy-driver`): drivers for the LAN9118
//!   Ethernet controller of Arm's MPS2 boards (and QEMU's `mps2-an386`): one chip core
//!   without a stack, a polled `phy::Device` front end (feature `ethernet`) and an
//!   interrupt-driven `embassy-net-driver` front end (feature `embassy-driver`).
//! - [`show`]: addresses for defmt logs, by their octets (no `core::fmt` on the target).
//! - `tap` (feature `std`, Linux only): the drivers over a Linux TAP device.
//!
//! Features: `std` (default) enables the `tap` module (on Linux); `ethernet` (on with `std`) adds
//! Ethernet framing and ARP, and the polled `lan9118` driver; `embassy-driver` the
//! `lan9118` driver for embassy-net (no smoltcp 0.14 code in it); `reassembly` turns on smoltcp's
//! IPv4 reassembly (one 4 KB buffer); `defmt` derives `defmt::Format`; `ipv6` accepts IPv6
//! remotes in the adapter; `fake-chip` makes the LAN9118's fake register file public (host
//! tests and fuzzing only). For firmware: `default-features = false`. [`smoltcp`] is re-exported,
//! so a firmware's interface and devices always match the adapter's version.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![deny(unsafe_code)]
#![deny(missing_docs)]

#[cfg(all(feature = "ethernet", feature = "reassembly"))]
pub mod board;
pub mod clock;
pub mod cmdline;
pub mod fault;
pub mod frag;
#[cfg(any(feature = "ethernet", feature = "embassy-driver"))]
pub mod lan9118;
pub mod loopback;
pub mod nal;
pub mod selftest;
pub mod show;
pub mod sim;
#[cfg(all(feature = "std", target_os = "linux"))]
pub mod tap;

pub use smoltcp;

pub use fault::FaultyLink;
pub use loopback::Loopback;
pub use nal::{CAPS, NalBuffers, NalError, NalSockets, NalStack, NalStorage, UdpSocket};
