//! The interrupt-driven front end on the fake chip: the interrupt pin, the acknowledgement,
//! the wakers, and frames through embassy-net-driver's tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Wake, Waker};
use std::vec::Vec;

use embassy_net_driver::{Driver, HardwareAddress, LinkState, RxToken as _, TxToken as _};

use super::fake::FakeChip;
use super::*;

/// A waker that counts its wakes.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A task: its waker, and how often it was woken.
struct Task(Arc<Counting>, Waker);

impl Task {
    fn new() -> Self {
        let count = Arc::new(Counting::default());
        let waker = Waker::from(count.clone());
        Task(count, waker)
    }

    fn woken(&self) -> usize {
        self.0.0.load(Ordering::SeqCst)
    }

    fn cx(&self) -> Context<'_> {
        Context::from_waker(&self.1)
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

/// The state with the driver's chip, on a healthy fake.
fn driver(state: &EmbassyState<FakeChip>) -> EmbassyDriver<'_, FakeChip> {
    EmbassyDriver::new(state, Chip::new(FakeChip::new()).expect("init"))
}

/// Runs `f` on the fake chip behind the driver.
fn fake<T>(state: &EmbassyState<FakeChip>, f: impl FnOnce(&mut FakeChip) -> T) -> T {
    state
        .with(|chip| f(chip.registers()))
        .expect("the driver holds the chip")
}

/// The next frame through the driver's receive token, copied out.
fn receive(driver: &mut EmbassyDriver<'_, FakeChip>, task: &Task) -> Option<Vec<u8>> {
    let (rx, _tx) = driver.receive(&mut task.cx())?;
    Some(rx.consume(|frame| frame.to_vec()))
}

#[test]
fn the_driver_routes_rsfl_to_an_active_high_pin_with_tdfa_off() {
    let state = EmbassyState::new();
    let _driver = driver(&state);
    fake(&state, |chip| {
        let pin = bits::IRQ_CFG_IRQ_EN | bits::IRQ_CFG_IRQ_POL | bits::IRQ_CFG_IRQ_TYPE;
        assert_eq!(chip.irq_cfg, pin);
        assert_eq!(chip.int_en, bits::INT_RSFL);
        // RX status level 0 (the first frame), TX room for a full frame (24 × 64 bytes).
        assert_eq!(chip.fifo_int, 24 << 24);
        assert_eq!(FIFO_INT_LEVELS >> 24, 24);
        assert!(24 * 64 >= tx_fifo_bytes(MAX_FRAME));
        assert!(!chip.irq_line(), "nothing pending: the line is low");
    });
}

#[test]
fn before_the_driver_the_line_is_held_high_as_qemu_does_after_reset() {
    // The polled driver's chip (interrupts never routed): don't unmask its IRQ.
    let mut chip = Chip::new(FakeChip::new()).expect("init");
    assert!(chip.registers().irq_line());
    chip.enable_interrupts();
    assert!(!chip.registers().irq_line());
}

#[test]
fn a_received_frame_raises_the_line_and_the_interrupt_wakes_the_receiver() {
    let state = EmbassyState::new();
    let mut driver = driver(&state);
    let task = Task::new();
    assert_eq!(
        receive(&mut driver, &task),
        None,
        "nothing yet; waker registered"
    );

    fake(&state, |chip| chip.push_frame(&pattern(60)));
    assert!(fake(&state, |chip| chip.irq_line()));
    let fired = state.on_interrupt();
    assert_eq!(
        fired,
        Interrupts {
            rx: true,
            tx_room: false
        }
    );
    assert_eq!(task.woken(), 1);
    fake(&state, |chip| {
        assert!(!chip.irq_line(), "acknowledged: the line drops");
        assert_eq!(chip.int_sts & bits::INT_RSFL, 0, "RSFL cleared (write 1)");
    });

    assert_eq!(receive(&mut driver, &task), Some(pattern(60)));
    assert_eq!(receive(&mut driver, &task), None);
    assert_eq!(state.counters().map(|c| c.rx_frames), Some(1));
}

#[test]
fn each_arrival_raises_rsfl_again_after_the_acknowledgement() {
    let state = EmbassyState::new();
    let mut driver = driver(&state);
    let task = Task::new();
    assert_eq!(receive(&mut driver, &task), None);
    for round in 1..=3 {
        fake(&state, |chip| chip.push_frame(&pattern(60 + round)));
        assert!(state.on_interrupt().rx, "round {round}");
        assert_eq!(task.woken(), round);
        assert_eq!(receive(&mut driver, &task), Some(pattern(60 + round)));
    }
}

#[test]
fn frames_waiting_before_the_waker_registers_are_received_at_once() {
    let state = EmbassyState::new();
    let mut driver = driver(&state);
    fake(&state, |chip| {
        chip.push_frame(&pattern(61));
        chip.push_frame(&pattern(62));
    });
    let task = Task::new();
    assert_eq!(receive(&mut driver, &task), Some(pattern(61)));
    assert_eq!(receive(&mut driver, &task), Some(pattern(62)));
    assert_eq!(receive(&mut driver, &task), None);
}

#[test]
fn an_interrupt_with_nothing_pending_wakes_nobody() {
    let state = EmbassyState::<FakeChip>::new();
    // Before the driver: no chip to ask.
    assert_eq!(state.on_interrupt(), Interrupts::default());
    let mut driver = driver(&state);
    let task = Task::new();
    assert_eq!(receive(&mut driver, &task), None);
    // A source that is pending but not enabled (TDFA, before any refusal) is not ours.
    fake(&state, |chip| chip.free_tx(4608));
    assert_eq!(state.on_interrupt(), Interrupts::default());
    assert_eq!(task.woken(), 0);
}

#[test]
fn no_room_arms_tdfa_and_room_returning_wakes_the_transmitter() {
    let state = EmbassyState::new();
    let mut driver = driver(&state);
    let task = Task::new();
    fake(&state, |chip| {
        chip.tx_free = tx_fifo_bytes(MAX_FRAME) as u32 - 4
    });
    assert!(driver.transmit(&mut task.cx()).is_none());
    assert_eq!(state.counters().map(|c| c.tx_busy), Some(1));
    fake(&state, |chip| {
        assert_eq!(chip.int_en, bits::INT_RSFL | bits::INT_TDFA, "TDFA armed");
        assert!(!chip.irq_line());
        // The chip sends what it held: the FIFO is empty again.
        chip.free_tx(4608);
        assert!(chip.irq_line());
    });

    let fired = state.on_interrupt();
    assert_eq!(
        fired,
        Interrupts {
            rx: false,
            tx_room: true
        }
    );
    assert_eq!(task.woken(), 1);
    fake(&state, |chip| {
        assert_eq!(chip.int_en, bits::INT_RSFL, "TDFA off again once it fired");
        assert!(!chip.irq_line());
    });
    assert!(driver.transmit(&mut task.cx()).is_some());
}

#[test]
fn room_that_returned_before_tdfa_was_armed_still_wakes() {
    let state = EmbassyState::new();
    let mut driver = driver(&state);
    let task = Task::new();
    fake(&state, |chip| {
        chip.tx_free = 64;
        // The chip found room (TDFA's status set) before the driver enabled it.
        chip.int_sts |= bits::INT_TDFA;
    });
    assert!(driver.transmit(&mut task.cx()).is_none());
    assert!(
        fake(&state, |chip| chip.irq_line()),
        "enabling it raises the line"
    );
    assert!(state.on_interrupt().tx_room);
    assert_eq!(task.woken(), 1);
}

#[test]
fn tokens_round_trip_frames_through_the_driver_api() {
    let state = EmbassyState::new();
    let mut driver = driver(&state);
    let task = Task::new();
    // Receive, and answer through the token that came with the frame.
    fake(&state, |chip| chip.push_frame(&pattern(100)));
    let (rx, tx) = driver.receive(&mut task.cx()).expect("a frame");
    let request = rx.consume(|frame| frame.to_vec());
    assert_eq!(request, pattern(100));
    let reply: Vec<u8> = request.iter().rev().copied().collect();
    let sent = tx.consume(reply.len(), |buf| {
        buf.copy_from_slice(&reply);
        buf.len()
    });
    assert_eq!(sent, 100);
    // And a frame of every length mod 4 on its own token.
    for len in [61, 62, 63, MAX_FRAME] {
        let tx = driver.transmit(&mut task.cx()).expect("room");
        tx.consume(len, |buf| buf.copy_from_slice(&pattern(len)));
    }
    let sent = fake(&state, |chip| core::mem::take(&mut chip.sent));
    let expected: Vec<(u16, Vec<u8>)> = [(0, reply)]
        .into_iter()
        .chain(
            [61, 62, 63, MAX_FRAME]
                .into_iter()
                .enumerate()
                .map(|(i, len)| (i as u16 + 1, pattern(len))),
        )
        .collect();
    assert_eq!(sent, expected, "tags count up; the fake checks padding");
    assert_eq!(state.counters().map(|c| c.tx_frames), Some(5));
}

#[test]
fn bad_frames_are_dropped_and_counted_as_by_the_polled_driver() {
    let state = EmbassyState::new();
    let mut driver = driver(&state);
    let task = Task::new();
    fake(&state, |chip| {
        chip.push_raw(64 << 16 | 1 << 15, &pattern(60));
        chip.push_raw(2000 << 16, &pattern(1996));
        chip.push_frame(&pattern(70));
    });
    assert_eq!(receive(&mut driver, &task), Some(pattern(70)));
    let counters = state.counters().unwrap();
    assert_eq!(
        (counters.rx_errors, counters.rx_oversize, counters.rx_frames),
        (1, 1, 1)
    );
}

#[test]
fn the_driver_reports_its_mac_a_link_that_is_up_and_the_ethernet_mtu() {
    let state = EmbassyState::new();
    let mut driver = driver(&state);
    let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    assert_eq!(driver.mac(), mac);
    assert_eq!(driver.hardware_address(), HardwareAddress::Ethernet(mac));
    assert_eq!(driver.capabilities().max_transmission_unit, MAX_FRAME);
    assert!(driver.link_state(&mut Task::new().cx()) == LinkState::Up);
}
