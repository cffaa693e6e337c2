use std::net::{Ipv4Addr, SocketAddrV4};
use std::vec::Vec;

use smoltcp::iface::{Config, Interface};
use smoltcp::phy::{Device, RxToken as _, TxToken as _};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr};
use udp_echo_core::{ResponderConfig, Server};

use super::fake::{FakeChip, frames};
use super::*;
use crate::{CAPS, NalStack, NalStorage};

fn nic() -> Lan9118<FakeChip> {
    Lan9118::new(FakeChip::new()).expect("init")
}

fn chip_with(change: impl FnOnce(&mut FakeChip)) -> FakeChip {
    let mut chip = FakeChip::new();
    change(&mut chip);
    chip
}

/// The next frame the driver hands to smoltcp, copied out.
fn receive(nic: &mut Lan9118<FakeChip>) -> Option<Vec<u8>> {
    let (rx, _tx) = nic.receive(Instant::ZERO)?;
    Some(rx.consume(|frame| frame.to_vec()))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

// ------------------------------------------------------------------ pure parts

#[test]
fn status_word_decodes_length_and_flags() {
    let status = RxStatus(0x0040_0000 | 1 << 13);
    assert_eq!((status.len(), status.words()), (64, 16));
    assert!(status.broadcast() && !status.multicast() && !status.error());
    let status = RxStatus(0x3FFF_0000 | 1 << 15 | 1 << 10 | 1 << 30);
    assert_eq!(status.len(), 0x3FFF);
    assert!(status.error() && status.multicast() && status.filter_fail());
    assert!(RxStatus(0).is_empty());
}

#[test]
fn lengths_round_up_to_whole_words() {
    let cases = [
        (0, 0),
        (1, 1),
        (4, 1),
        (5, 2),
        (61, 16),
        (1514, 379),
        (1518, 380),
    ];
    for (bytes, expected) in cases {
        assert_eq!(words(bytes), expected, "{bytes} bytes");
    }
    // Command A and B, then the data padded to a word.
    assert_eq!(tx_fifo_bytes(60), 68);
    assert_eq!(tx_fifo_bytes(61), 72);
    assert_eq!(tx_fifo_bytes(MAX_FRAME), 1524);
    assert_eq!(RX_BUF, 1520);
}

#[test]
fn tx_commands_are_one_segment_with_length_and_tag() {
    assert_eq!(tx_commands(61, 0x1234), (0x3000 | 61, 0x1234_0000 | 61));
    assert_eq!(tx_commands(MAX_FRAME, 0), (0x3000 | 1514, 1514));
}

#[test]
fn verdict_delivers_frames_without_fcs_and_discards_the_rest() {
    let with_len = |len: u32| RxStatus(len << 16);
    assert_eq!(with_len(64).verdict(), RxVerdict::Deliver { len: 60 });
    assert_eq!(with_len(18).verdict(), RxVerdict::Deliver { len: 14 });
    assert_eq!(with_len(1518).verdict(), RxVerdict::Deliver { len: 1514 });
    assert_eq!(with_len(17).verdict(), RxVerdict::Discard(Discard::Runt));
    assert_eq!(
        with_len(1519).verdict(),
        RxVerdict::Discard(Discard::Oversize)
    );
    assert_eq!(
        RxStatus(64 << 16 | 1 << 15).verdict(),
        RxVerdict::Discard(Discard::Error)
    );
    assert_eq!(
        RxStatus(64 << 16 | 1 << 30).verdict(),
        RxVerdict::Discard(Discard::Filtered)
    );
}

// ------------------------------------------------------------------ init

#[test]
fn init_resets_the_chip_reads_its_mac_and_turns_rx_and_tx_on() {
    let mut nic = nic();
    assert_eq!(
        nic.mac(),
        EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
    );
    assert_eq!(nic.id_rev(), 0x0118_0001);
    let chip = nic.registers();
    // Promiscuous mode (set by reset) off, broadcasts accepted, TX and RX on.
    assert_eq!(chip.mac_cr, bits::MAC_CR_TXEN | bits::MAC_CR_RXEN);
    assert_eq!(chip.tx_cfg, bits::TX_CFG_TX_ON | bits::TX_CFG_TXSAO);
    assert_eq!((chip.int_en, chip.int_sts_cleared), (0, u32::MAX));
}

#[test]
fn absent_chip_is_an_error_after_one_read() {
    for byte_test in [0xFFFF_FFFF, 0, 0x4321_8765] {
        let mut chip = chip_with(|c| c.byte_test = byte_test);
        assert_eq!(
            Lan9118::new(&mut chip).unwrap_err(),
            InitError::NotFound { byte_test }
        );
        assert_eq!(chip.reads, 1);
    }
}

#[test]
fn a_chip_outside_the_family_is_refused() {
    let chip = chip_with(|c| c.id_rev = 0x9250_0000);
    assert_eq!(
        Lan9118::new(chip).unwrap_err(),
        InitError::UnknownChip {
            id_rev: 0x9250_0000
        }
    );
    let chip = chip_with(|c| c.id_rev = 0x9220_0000);
    assert!(Lan9118::new(chip).is_ok(), "LAN9220, as on the MPS2 boards");
}

#[test]
fn waits_that_never_end_are_errors_not_hangs() {
    type Break = fn(&mut FakeChip);
    let cases: [(Break, InitError); 3] = [
        (|c| c.reset_reads = None, InitError::ResetTimeout),
        (|c| c.pmt_ready = false, InitError::NotReady),
        (|c| c.mac_stuck = true, InitError::MacTimeout),
    ];
    for (break_it, error) in cases {
        let mut chip = chip_with(break_it);
        assert_eq!(Lan9118::new(&mut chip).unwrap_err(), error);
        // One bounded wait, plus the few reads around it.
        assert!(
            chip.reads <= WAIT_LIMIT + 8,
            "{error:?}: {} reads",
            chip.reads
        );
    }
}

#[test]
fn a_mac_address_that_is_not_unicast_is_refused() {
    for mac in [[0xFF; 6], [0x01, 0, 0x5E, 0, 0, 1], [0; 6]] {
        let chip = chip_with(|c| c.mac = mac);
        assert_eq!(Lan9118::new(chip).unwrap_err(), InitError::InvalidMac(mac));
    }
}

#[test]
fn init_errors_say_what_is_wrong() {
    let text = std::format!("{}", InitError::NotFound { byte_test: 0 });
    assert_eq!(
        text,
        "no LAN9118: BYTE_TEST reads 0x00000000, not 0x87654321"
    );
}

// ------------------------------------------------------------------ receive

#[test]
fn frames_of_every_length_mod_4_arrive_without_their_fcs() {
    let mut nic = nic();
    for len in [60, 61, 62, 63, MAX_FRAME] {
        nic.registers().push_frame(&pattern(len));
    }
    for len in [60, 61, 62, 63, MAX_FRAME] {
        assert_eq!(receive(&mut nic), Some(pattern(len)), "{len} bytes");
    }
    assert_eq!(receive(&mut nic), None);
    let chip = nic.registers();
    assert!(chip.rx_data.is_empty() && chip.rx_underflows == 0);
    assert_eq!(nic.counters().rx_frames, 5);
}

#[test]
fn an_oversized_frame_is_read_out_counted_and_the_next_one_delivered() {
    let mut nic = nic();
    nic.registers().push_raw(2000 << 16, &pattern(1996));
    nic.registers().push_frame(&pattern(100));
    assert_eq!(receive(&mut nic), Some(pattern(100)));
    assert_eq!(nic.counters().rx_oversize, 1);
    let chip = nic.registers();
    assert!(chip.rx_data.is_empty() && chip.rx_underflows == 0);
}

#[test]
fn error_filtered_and_runt_frames_are_dropped_and_counted() {
    let mut nic = nic();
    nic.registers().push_raw(64 << 16 | 1 << 15, &pattern(60));
    nic.registers().push_raw(64 << 16 | 1 << 30, &pattern(60));
    nic.registers().push_raw(12 << 16, &pattern(8));
    nic.registers().push_frame(&pattern(70));
    assert_eq!(receive(&mut nic), Some(pattern(70)));
    let c = *nic.counters();
    assert_eq!(
        (c.rx_errors, c.rx_filtered, c.rx_runts, c.rx_frames),
        (1, 1, 1, 1)
    );
    assert_eq!(nic.registers().rx_underflows, 0);
}

#[test]
fn a_burst_of_bad_frames_is_drained_a_few_per_call() {
    let mut nic = nic();
    for _ in 0..20 {
        nic.registers().push_raw(64 << 16 | 1 << 15, &pattern(60));
    }
    nic.registers().push_frame(&pattern(80));
    assert_eq!(receive(&mut nic), None, "8 dropped, then the call returns");
    assert_eq!(receive(&mut nic), None, "8 more");
    assert_eq!(receive(&mut nic), Some(pattern(80)));
    assert_eq!(nic.counters().rx_errors, 20);
}

#[test]
fn status_and_data_out_of_step_flush_both_fifos() {
    let mut nic = nic();
    nic.registers().push_raw(100 << 16, &pattern(96));
    // Lose data words behind the driver's back: the status now claims more than is there.
    nic.registers().rx_data.truncate(10);
    assert_eq!(receive(&mut nic), None);
    assert_eq!(nic.counters().rx_resyncs, 1);
    assert_eq!(nic.registers().rx_dumps, 1);
    // Back in step: the next frame arrives whole.
    nic.registers().push_frame(&pattern(64));
    assert_eq!(receive(&mut nic), Some(pattern(64)));
    assert_eq!(nic.registers().rx_underflows, 0);
}

#[test]
fn frames_the_chip_dropped_are_counted() {
    let mut nic = nic();
    nic.registers().rx_drop = 3;
    assert_eq!(receive(&mut nic), None);
    nic.registers().rx_drop = 2;
    assert_eq!(receive(&mut nic), None);
    assert_eq!(nic.counters().rx_dropped, 5);
}

#[test]
fn rx_pending_and_free_run_read_the_chip() {
    let mut nic = nic();
    assert!(!nic.rx_pending());
    nic.registers().push_frame(&pattern(60));
    assert!(nic.rx_pending());
    nic.registers().free_run = 0xDEAD_BEEF;
    assert_eq!(nic.free_run(), 0xDEAD_BEEF);
}

#[test]
fn the_polled_driver_leaves_the_interrupt_pin_unrouted() {
    let mut nic = nic();
    nic.registers().push_frame(&pattern(60));
    nic.registers().free_tx(4608);
    let chip = nic.registers();
    assert_eq!((chip.irq_cfg, chip.int_en), (0, 0));
    assert!(!chip.interrupt_pending());
    // Active low and idle: QEMU holds the line up, so a polled firmware leaves it masked.
    assert!(chip.irq_line());
}

// ------------------------------------------------------------------ transmit

#[test]
fn transmit_writes_both_commands_and_the_frame_padded_to_words() {
    let mut nic = nic();
    for len in [61, 64] {
        let token = nic.transmit(Instant::ZERO).expect("room");
        token.consume(len, |buf| buf.copy_from_slice(&pattern(len)));
    }
    // The fake checks the command words and that the padding is zeros.
    let chip = nic.registers();
    assert_eq!(chip.sent, [(0, pattern(61)), (1, pattern(64))]);
    assert_eq!(nic.counters().tx_frames, 2);
}

#[test]
fn no_room_for_a_full_frame_refuses_the_token_and_counts() {
    let mut nic = nic();
    nic.registers().tx_free = tx_fifo_bytes(MAX_FRAME) as u32 - 4;
    assert!(nic.transmit(Instant::ZERO).is_none());
    assert_eq!(nic.counters().tx_busy, 1);
    nic.registers().tx_free = tx_fifo_bytes(MAX_FRAME) as u32;
    assert!(nic.transmit(Instant::ZERO).is_some());
}

#[test]
fn a_reply_without_room_in_the_fifo_is_dropped_and_counted() {
    let mut nic = nic();
    nic.registers().push_frame(&pattern(60));
    nic.registers().tx_free = 64;
    let (_rx, tx) = nic.receive(Instant::ZERO).expect("a frame");
    tx.consume(60, |buf| buf.fill(1));
    assert_eq!(nic.counters().tx_dropped, 1);
    assert!(nic.registers().sent.is_empty());
}

#[test]
fn send_errors_reported_by_the_chip_are_counted() {
    let mut nic = nic();
    nic.registers().tx_status_template = bits::TX_STATUS_ERROR;
    for _ in 0..3 {
        let token = nic.transmit(Instant::ZERO).expect("room");
        token.consume(60, |buf| buf.fill(0));
    }
    // Each send drains the statuses of the frames before it.
    assert_eq!(nic.counters().tx_errors, 2);
    assert_eq!(nic.registers().tx_status.len(), 1);
}

// ------------------------------------------------------------------ the whole stack

pub(crate) const GUEST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), 6666);
pub(crate) const HOST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 40000);

/// smoltcp on the driver on the fake chip, 10.0.2.15/24, with the core's server on 6666
/// behind the `embedded-nal` adapter: the network firmware's stack, on the host.
pub(crate) struct Rig<'a, D: Device> {
    pub device: D,
    pub iface: Interface,
    stack: NalStack<'a, 1>,
    server: Server<NalStack<'a, 1>>,
}

pub(crate) type Storage<'a> = NalStorage<'a, 1, 4, 4096>;

impl<'a, D: Device> Rig<'a, D> {
    pub fn new(mut device: D, mac: EthernetAddress, storage: &'a mut Storage<'a>) -> Self {
        let mut iface = Interface::new(Config::new(mac.into()), &mut device, Instant::ZERO);
        iface.update_ip_addrs(|a| a.push(IpCidr::new((*GUEST.ip()).into(), 24)).unwrap());
        let mut stack = NalStack::new(storage, *GUEST.ip());
        let server = Server::bind(&mut stack, GUEST.port(), ResponderConfig::default())
            .unwrap()
            .with_caps(CAPS);
        Rig {
            device,
            iface,
            stack,
            server,
        }
    }

    /// Runs the firmware's main loop body twice at `now`: take frames in, answer, send.
    pub fn run(&mut self, now: Instant) {
        for _ in 0..2 {
            self.iface
                .poll(now, &mut self.device, self.stack.sockets_mut());
            let mut buf = [0; 32];
            // No sleeping here: the rounds are fixed, whatever the wake says.
            let _wake = self
                .server
                .poll(
                    &mut self.stack,
                    &mut buf,
                    crate::clock::to_core(now),
                    |_, _| {},
                )
                .unwrap();
        }
    }
}

/// From the gateway (QEMU's host side) to the firmware's server, whose MAC is `mac`.
pub(crate) fn flow(mac: EthernetAddress) -> frames::Flow {
    frames::Flow {
        from_mac: frames::GATEWAY_MAC,
        to_mac: mac,
        from: HOST,
        to: GUEST,
    }
}

/// The UDP replies among the frames the fake chip sent.
pub(crate) fn udp_replies(sent: &[(u16, Vec<u8>)]) -> Vec<(SocketAddrV4, SocketAddrV4, Vec<u8>)> {
    sent.iter()
        .filter_map(|(_, frame)| frames::udp_payload(frame))
        .collect()
}

/// Boots the rig, lets the gateway ARP for the firmware, sends `requests`, and returns
/// the frames the firmware sent.
fn serve(requests: &[&[u8]]) -> Vec<(u16, Vec<u8>)> {
    let nic = nic();
    let mac = nic.mac();
    let mut storage = Storage::new();
    let mut rig = Rig::new(nic, mac, &mut storage);
    let chip = rig.device.registers();
    chip.push_frame(&frames::arp_request(frames::GATEWAY_MAC, HOST, GUEST));
    for request in requests {
        chip.push_frame(&frames::udp(flow(mac), request));
    }
    rig.run(Instant::ZERO);
    core::mem::take(&mut rig.device.registers().sent)
}

#[test]
fn answers_arp_and_a_udp_request_through_smoltcp_and_the_core_server() {
    let sent = serve(&[b"hello"]);
    assert!(frames::is_arp_reply_to(&sent[0].1, frames::GATEWAY_MAC));
    assert_eq!(
        udp_replies(&sent),
        [(GUEST, HOST, b"Your data was 5 bytes".to_vec())]
    );
}

#[test]
fn empty_and_full_size_datagrams_get_their_true_count() {
    let sent = serve(&[&[], &pattern(1472)]);
    let replies: Vec<Vec<u8>> = udp_replies(&sent).into_iter().map(|r| r.2).collect();
    assert_eq!(
        replies,
        [&b"Your data was 0 bytes"[..], b"Your data was 1472 bytes"]
    );
}
