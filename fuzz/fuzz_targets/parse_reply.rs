//! `wire::parse_reply` on any bytes: never panics, and whatever it accepts is exactly the
//! reply `Reply::new` formats for that count (so there is one spelling per count).

#![no_main]

use libfuzzer_sys::fuzz_target;
use udp_echo_core::wire::{MAX_REPLY_LEN, Reply, is_reply, parse_reply};

fuzz_target!(|data: &[u8]| {
    match parse_reply(data) {
        Ok(n) => {
            assert_eq!(
                Reply::new(n).as_bytes(),
                data,
                "accepted a second spelling of {n}"
            );
            assert!(data.len() <= MAX_REPLY_LEN && MAX_REPLY_LEN == 25);
            assert!(is_reply(data));
        }
        Err(_) => assert!(!is_reply(data)),
    }
    // The other direction, for a count taken from the input: format, then parse back.
    if let [a, b, ..] = *data {
        let n = u16::from_le_bytes([a, b]);
        let reply = Reply::new(n);
        assert!(reply.as_bytes().len() <= MAX_REPLY_LEN);
        assert_eq!(parse_reply(reply.as_bytes()), Ok(n));
    }
});
