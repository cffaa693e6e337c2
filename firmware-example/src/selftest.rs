//! The firmware self-test's expectations, as data and one pure check: which exchanges the
//! bare-metal firmware runs ([`CASES`]) and what each must show ([`check`] of a [`Trace`]
//! against its [`Case`]). The firmware runs them; the host tests the judging.
//!
//! ```
//! use core::time::Duration;
//! use udp_echo_core::{GaveUp, Outcome};
//! use udp_echo_firmware_example::selftest::{CASES, Mismatch, Trace, check};
//!
//! let silent = CASES.iter().find(|case| case.name == "silent").unwrap();
//! let gave_up = GaveUp { attempts: 5, unsent: 0, elapsed: Duration::from_millis(3100), refused: false };
//! let mut trace = Trace::new(Outcome::GaveUp(gave_up));
//! trace.sends = [0, 100, 300, 700, 1500].into_iter().collect();
//! trace.took = gave_up.elapsed;
//! assert_eq!(check(silent, &trace), Ok(()));
//!
//! trace.sends.pop(); // one send short
//! assert!(matches!(check(silent, &trace), Err(Mismatch::SendTimes { .. })));
//! ```

use core::time::Duration;

use heapless::Vec;
use udp_echo_core::Outcome;
use udp_echo_core::wire::DEFAULT_PORT;

/// The port the self-test's server answers on.
pub const ECHO_PORT: u16 = DEFAULT_PORT;
/// A port where nothing listens (and smoltcp's ICMP "port unreachable" never reaches a
/// UDP socket), so the client runs its whole schedule.
pub const SILENT_PORT: u16 = 7777;
/// The largest request of the self-test.
pub const MAX_REQUEST: usize = 1000;
/// The most sends a [`Trace`] records (the default schedule makes 5).
pub const MAX_SENDS: usize = 8;

/// One exchange to run and what it must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// For the log.
    pub name: &'static str,
    /// The server's port: [`ECHO_PORT`], or [`SILENT_PORT`] for no answer.
    pub port: u16,
    /// The request's length.
    pub len: usize,
    /// Requests the link loses before one gets through.
    pub lose: u8,
    /// Send times, in ms from the first send.
    pub sends: &'static [u32],
    /// `None`: a reply with the right count; `Some(ms)`: the client gives up this long
    /// after the first send.
    pub gives_up_at: Option<u32>,
}

/// The self-test: every path of the client on the default retry policy.
pub const CASES: [Case; 5] = [
    Case {
        name: "empty",
        port: ECHO_PORT,
        len: 0,
        lose: 0,
        sends: &[0],
        gives_up_at: None,
    },
    Case {
        name: "2 lost",
        port: ECHO_PORT,
        len: 5,
        lose: 2,
        sends: &[0, 100, 300],
        gives_up_at: None,
    },
    Case {
        name: "200 B",
        port: ECHO_PORT,
        len: 200,
        lose: 0,
        sends: &[0],
        gives_up_at: None,
    },
    Case {
        name: "1000 B",
        port: ECHO_PORT,
        len: MAX_REQUEST,
        lose: 0,
        sends: &[0],
        gives_up_at: None,
    },
    Case {
        name: "silent",
        port: SILENT_PORT,
        len: 12,
        lose: 0,
        sends: &[0, 100, 300, 700, 1500],
        gives_up_at: Some(3100),
    },
];

/// What one exchange did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// How it ended.
    pub outcome: Outcome,
    /// Send times, in ms from the first send, as the client made them.
    pub sends: Vec<u32, MAX_SENDS>,
    /// Main-loop rounds (wake-ups), the first included (for the log; not checked).
    pub rounds: u32,
    /// Time from the first send to the outcome.
    pub took: Duration,
    /// Requests the link lost on purpose.
    pub lost: u32,
}

impl Trace {
    /// A trace of `outcome` with nothing else recorded yet.
    pub fn new(outcome: Outcome) -> Self {
        Trace {
            outcome,
            sends: Vec::new(),
            rounds: 0,
            took: Duration::ZERO,
            lost: 0,
        }
    }
}

/// How a [`Trace`] differs from its [`Case`]: the first difference [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Mismatch {
    /// A reply carried another count than the request's length.
    WrongCount {
        /// The request's length.
        sent: usize,
        /// The reply's count.
        got: u16,
    },
    /// The client gave up where a reply was due.
    NoReply {
        /// Sends made.
        attempts: u32,
    },
    /// A reply came where nothing listens.
    UnexpectedReply {
        /// Its count.
        count: u16,
    },
    /// The client made another number of sends.
    Attempts {
        /// Sends the case expects.
        expected: usize,
        /// Sends made.
        got: u32,
    },
    /// The client sent at other times.
    SendTimes {
        /// In ms from the first send.
        expected: &'static [u32],
        /// In ms from the first send.
        got: Vec<u32, MAX_SENDS>,
    },
    /// The client gave up at another time.
    GaveUpAt {
        /// In ms from the first send.
        expected_ms: u32,
        /// In ms from the first send.
        got_ms: u32,
    },
    /// The link lost another number of requests.
    Lost {
        /// Losses the case orders.
        expected: u8,
        /// Losses seen.
        got: u32,
    },
}

/// Checks `trace` against `case`.
///
/// # Errors
///
/// The first [`Mismatch`]: outcome and count, then the number of sends, their times and
/// the losses.
pub fn check(case: &Case, trace: &Trace) -> Result<(), Mismatch> {
    let attempts = match (trace.outcome, case.gives_up_at) {
        (Outcome::Reply(r), None) if usize::from(r.count) != case.len => {
            return Err(Mismatch::WrongCount {
                sent: case.len,
                got: r.count,
            });
        }
        (Outcome::Reply(r), None) => r.attempts,
        (Outcome::GaveUp(g), Some(at)) if ms(g.elapsed) != at || ms(trace.took) != at => {
            return Err(Mismatch::GaveUpAt {
                expected_ms: at,
                got_ms: ms(trace.took),
            });
        }
        (Outcome::GaveUp(g), Some(_)) => g.attempts,
        (Outcome::Reply(r), Some(_)) => return Err(Mismatch::UnexpectedReply { count: r.count }),
        (Outcome::GaveUp(g), None) => {
            return Err(Mismatch::NoReply {
                attempts: g.attempts,
            });
        }
    };
    if attempts as usize != case.sends.len() {
        return Err(Mismatch::Attempts {
            expected: case.sends.len(),
            got: attempts,
        });
    }
    if trace.sends[..] != *case.sends {
        return Err(Mismatch::SendTimes {
            expected: case.sends,
            got: trace.sends.clone(),
        });
    }
    if trace.lost != u32::from(case.lose) {
        return Err(Mismatch::Lost {
            expected: case.lose,
            got: trace.lost,
        });
    }
    Ok(())
}

/// Whole milliseconds, saturating (a self-test never runs for 49 days).
pub fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use udp_echo_core::{GaveUp, Replied};

    fn case(name: &str) -> &'static Case {
        CASES.iter().find(|c| c.name == name).unwrap()
    }

    fn replied(count: u16, attempts: u32) -> Outcome {
        Outcome::Reply(Replied {
            count,
            attempts,
            rtt: Duration::ZERO,
            rtt_ambiguous: attempts > 1,
            elapsed: Duration::ZERO,
        })
    }

    fn gave_up(attempts: u32, at_ms: u64) -> Outcome {
        Outcome::GaveUp(GaveUp {
            attempts,
            unsent: 0,
            elapsed: Duration::from_millis(at_ms),
            refused: false,
        })
    }

    /// What `case` expects, as a trace that shows it.
    fn as_expected(case: &Case) -> Trace {
        let attempts = case.sends.len() as u32;
        let mut trace = Trace::new(match case.gives_up_at {
            None => replied(case.len as u16, attempts),
            Some(at) => gave_up(attempts, at.into()),
        });
        trace.sends = case.sends.iter().copied().collect();
        trace.took = Duration::from_millis(case.gives_up_at.unwrap_or(0).into());
        trace.lost = case.lose.into();
        trace
    }

    #[test]
    fn every_case_passes_with_the_trace_it_expects() {
        for case in &CASES {
            assert_eq!(check(case, &as_expected(case)), Ok(()), "{}", case.name);
        }
    }

    #[test]
    fn a_wrong_count_fails() {
        let mut trace = as_expected(case("200 B"));
        trace.outcome = replied(199, 1);
        assert_eq!(
            check(case("200 B"), &trace),
            Err(Mismatch::WrongCount {
                sent: 200,
                got: 199
            })
        );
    }

    #[test]
    fn giving_up_where_a_reply_is_due_fails_and_a_reply_from_nowhere_too() {
        let mut trace = as_expected(case("empty"));
        trace.outcome = gave_up(5, 3100);
        assert_eq!(
            check(case("empty"), &trace),
            Err(Mismatch::NoReply { attempts: 5 })
        );
        let mut trace = as_expected(case("silent"));
        trace.outcome = replied(12, 1);
        assert_eq!(
            check(case("silent"), &trace),
            Err(Mismatch::UnexpectedReply { count: 12 })
        );
    }

    #[test]
    fn giving_up_a_millisecond_late_fails() {
        let silent = case("silent");
        let mut trace = as_expected(silent);
        trace.took = Duration::from_millis(3101);
        assert_eq!(
            check(silent, &trace),
            Err(Mismatch::GaveUpAt {
                expected_ms: 3100,
                got_ms: 3101
            })
        );
    }

    #[test]
    fn another_number_of_sends_or_other_send_times_fail() {
        let lossy = case("2 lost");
        let mut trace = as_expected(lossy);
        trace.outcome = replied(5, 2);
        assert_eq!(
            check(lossy, &trace),
            Err(Mismatch::Attempts {
                expected: 3,
                got: 2
            })
        );
        let mut trace = as_expected(lossy);
        trace.sends[2] = 301;
        assert!(matches!(
            check(lossy, &trace),
            Err(Mismatch::SendTimes { expected: [0, 100, 300], got }) if got[..] == [0, 100, 301]
        ));
    }

    #[test]
    fn another_number_of_losses_fails() {
        let mut trace = as_expected(case("2 lost"));
        trace.lost = 1;
        assert_eq!(
            check(case("2 lost"), &trace),
            Err(Mismatch::Lost {
                expected: 2,
                got: 1
            })
        );
    }

    #[test]
    fn a_wrong_expectation_fails_against_a_true_trace() {
        // The trace the "2 lost" case really produces, against an expectation that is
        // wrong about the schedule: the check must not pass it.
        let trace = as_expected(case("2 lost"));
        let wrong = Case {
            sends: &[0, 100, 200],
            ..*case("2 lost")
        };
        assert!(matches!(
            check(&wrong, &trace),
            Err(Mismatch::SendTimes { .. })
        ));
    }
}
