//! smoltcp 0.14 side of udp-echo: an `embedded-nal` 0.9 UDP adapter, a heap-free loopback
//! device and a simulated link, all `no_std` and without `alloc`.
//!
//! - [`nal`]: [`NalStack`], the `UdpClientStack`/`UdpFullStack` the core's drivers run on.
//!   The adapter is ours because the published one, smoltcp-nal 0.7, is pinned to smoltcp
//!   0.12 and heapless 0.8, and reports an empty receive queue as an error instead of
//!   `WouldBlock`, which would make every poll of an idle socket look like a failure.
//! - [`loopback`]: [`Loopback`], a `phy::Device` that turns frames around (smoltcp's
//!   `phy::Loopback` needs `alloc`).
//! - [`sim`]: two interfaces on an in-memory wire with a virtual clock and seeded,
//!   deterministic faults (drop, duplicate, reorder, delay, corrupt).
//! - [`frag`]: counts the IPv4 datagrams too large for smoltcp's reassembly buffer
//!   (feature `reassembly`), which smoltcp drops without a word.
//! - [`cmdline`]: the network firmware's boot command line (`serve`, `client HOST:PORT MSG`).
//! - [`lan9118`] (feature `ethernet`): a polled `phy::Device` driver for the LAN9118
//!   Ethernet controller of Arm's MPS2 boards (and QEMU's `mps2-an386`).
//! - `tap` (feature `std`): the drivers over a Linux TAP device, for the `firmware-example`
//!   binary.
//!
//! Features: `std` (default) enables std-only modules; `defmt` derives `defmt::Format`;
//! `ipv6` accepts IPv6 remotes in the adapter.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod clock;
pub mod cmdline;
pub mod frag;
#[cfg(feature = "ethernet")]
pub mod lan9118;
pub mod loopback;
pub mod nal;
pub mod sim;
#[cfg(feature = "std")]
pub mod tap;

pub use loopback::Loopback;
pub use nal::{NalBuffers, NalError, NalSockets, NalStack, NalStorage, UdpSocket};
