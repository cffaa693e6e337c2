//! `udp-echo bench` against small faulty servers written here: std `UdpSocket` threads on
//! 127.0.0.1 that drop, duplicate, garble or delay replies on purpose and count what they
//! did. Bench's figures must equal the server's own counts, and no RTT may be invented.
//! Every server thread is bounded in time and datagrams; every bench run is killed after
//! [`PATIENCE`].

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

// The tests against `udp-echo serve` (at the end) use the shared helpers: Unix only.
#[cfg(unix)]
mod common;
#[cfg(unix)]
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_udp-echo");
/// The longest a bench run may take here before it is killed.
const PATIENCE: Duration = Duration::from_secs(30);
/// The longest a server thread runs, whatever happens.
const SERVER_LIFE: Duration = Duration::from_secs(60);
/// The most datagrams a server thread takes.
const SERVER_DATAGRAMS: u64 = 1_000_000;

/// What a server does to each request.
#[derive(Clone, Copy)]
enum Faults {
    /// Answers every request once.
    None,
    /// Drops every `n`th request.
    DropEvery(u64),
    /// Sends every `n`th reply twice.
    DuplicateEvery(u64),
    /// Answers every `n`th request late, after the given time (the rest at once).
    SlowEvery(u64, Duration),
    /// Seeded: drops `drop`% of the requests; of the rest, garbles `garble`% of the
    /// replies (alternately unparseable and naming a count no request has) and sends
    /// `dup`% of the good ones twice.
    Random {
        seed: u64,
        drop: u64,
        dup: u64,
        garble: u64,
    },
}

/// What a server did, by its own count.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    /// Requests received.
    seen: u64,
    /// Requests answered with a good reply (duplicates not counted).
    answered: u64,
    /// Requests not answered at all.
    dropped: u64,
    /// Good replies sent a second time.
    duplicated: u64,
    /// Replies replaced by bytes that are no byte-count reply.
    garbled: u64,
    /// Replies replaced by a byte-count reply naming a size no request had.
    wrong_count: u64,
}

struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Counts>>,
}

impl Server {
    /// Stops the thread once its queue is empty and returns its counts.
    fn counts(mut self) -> Counts {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().expect("server thread")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// xorshift64*: deterministic, seeded.
struct Rng(u64);
impl Rng {
    fn percent(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % 100
    }
}

/// A server on 127.0.0.1 that applies `faults` and sends each reply `delay` after its
/// request came (from a queue, so requests are not served one delay after another).
/// Stops when told to and nothing is left to send, after [`SERVER_LIFE`], or after
/// [`SERVER_DATAGRAMS`].
fn server(faults: Faults, delay: Duration) -> Server {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let thread = thread::spawn(move || {
        let mut c = Counts::default();
        let mut rng = match faults {
            Faults::Random { seed, .. } => Rng(seed | 1),
            _ => Rng(1),
        };
        // Replies waiting for their time, in the order they were queued.
        let mut queue: Vec<(Instant, SocketAddr, Vec<u8>)> = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut good_replies = 0u64;
        let mut garbles = 0u64;
        let born = Instant::now();
        while born.elapsed() < SERVER_LIFE && c.seen < SERVER_DATAGRAMS {
            let now = Instant::now();
            queue.retain(|(due, to, bytes)| {
                let keep = *due > now;
                if !keep {
                    let _ = socket.send_to(bytes, to);
                }
                keep
            });
            let wait = queue
                .iter()
                .map(|(due, _, _)| due.saturating_duration_since(now))
                .min()
                .unwrap_or(Duration::from_millis(20));
            // A socket timeout is rounded to the kernel's tick: replies waiting for their
            // time are sent from a non-blocking loop with short sleeps instead.
            socket.set_nonblocking(!queue.is_empty()).unwrap();
            if queue.is_empty() {
                socket.set_read_timeout(Some(wait)).unwrap();
            }
            let (n, from) = match socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if stopping.load(Ordering::SeqCst) && queue.is_empty() {
                        break;
                    }
                    if !queue.is_empty() {
                        thread::sleep(wait.min(Duration::from_micros(100)));
                    }
                    continue;
                }
                Err(_) => continue, // an ICMP report for an earlier reply
            };
            c.seen += 1;
            let reply = format!("Your data was {n} bytes").into_bytes();
            let mut due = Instant::now() + delay;
            let (drop, garble, dup) = match faults {
                Faults::None => (false, false, false),
                Faults::SlowEvery(k, late) => {
                    if c.seen.is_multiple_of(k) {
                        due += late;
                    }
                    (false, false, false)
                }
                Faults::DropEvery(k) => (c.seen.is_multiple_of(k), false, false),
                Faults::DuplicateEvery(k) => (false, false, (good_replies + 1).is_multiple_of(k)),
                Faults::Random {
                    drop, dup, garble, ..
                } => {
                    let d = rng.percent() < drop;
                    let g = !d && rng.percent() < garble;
                    let u = !d && !g && rng.percent() < dup;
                    (d, g, u)
                }
            };
            if drop {
                c.dropped += 1;
            } else if garble {
                garbles += 1;
                let bad = if garbles.is_multiple_of(2) {
                    c.garbled += 1;
                    format!("Your data was {n}  bytes").into_bytes()
                } else {
                    // Smaller than any request bench sends with -s 12.
                    c.wrong_count += 1;
                    b"Your data was 3 bytes".to_vec()
                };
                queue.push((due, from, bad));
            } else {
                c.answered += 1;
                good_replies += 1;
                queue.push((due, from, reply.clone()));
                if dup {
                    c.duplicated += 1;
                    queue.push((due, from, reply));
                }
            }
        }
        c
    });
    Server {
        addr,
        stop,
        thread: Some(thread),
    }
}

/// Runs `udp-echo bench ADDR ARGS --json -q -t 30` (--requests ends it), killed after [`PATIENCE`]; its summary.
fn bench(addr: SocketAddr, args: &[&str]) -> Value {
    let mut child = Command::new(BIN)
        .arg("bench")
        .arg(addr.to_string())
        .args(args)
        .args(["--json", "-q", "-t", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let status = status.unwrap_or_else(|| panic!("bench ran over {PATIENCE:?}: {err}"));
    assert!(status.success(), "bench {status}: {err}");
    let last = out
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no output: {err}"));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{last:?}: {e}"))
}

fn count(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no count {key:?} in {report}"))
}

fn rtt(report: &Value, p: &str) -> f64 {
    report["rtt_ms"][p]
        .as_f64()
        .unwrap_or_else(|| panic!("no rtt {p} in {report}"))
}

/// Bench's counts are the server's: every request it sent was seen, every good reply
/// counted once, every request without one lost, every other datagram counted by kind.
fn assert_agree(report: &Value, c: &Counts) {
    let what = format!("bench {report}\nserver {c:?}");
    assert_eq!(count(report, "sent"), c.seen, "sent: {what}");
    assert_eq!(count(report, "replies"), c.answered, "replies: {what}");
    assert_eq!(
        count(report, "lost"),
        c.dropped + c.garbled + c.wrong_count,
        "lost: {what}"
    );
    assert_eq!(
        count(report, "ignored"),
        c.duplicated + c.wrong_count + c.garbled,
        "ignored: {what}"
    );
    assert_eq!(count(report, "duplicates"), c.duplicated, "dups: {what}");
    assert_eq!(count(report, "wrong_count"), c.wrong_count, "wrong: {what}");
    assert_eq!(count(report, "garbled"), c.garbled, "garbled: {what}");
}

/// A server that answers within microseconds: no percentile near a loss timeout.
fn assert_rtts_real(report: &Value) {
    assert!(rtt(report, "p50") < 20.0, "{report}");
    assert!(rtt(report, "p99") < 100.0, "{report}");
}

#[test]
fn a_correct_server_is_answered_exactly() {
    let s = server(Faults::None, Duration::ZERO);
    let addr = s.addr;
    let r = bench(addr, &["--requests", "4000", "--window", "32"]);
    let c = s.counts();
    assert_eq!(c.seen, 4000);
    assert_agree(&r, &c);
    assert_eq!(count(&r, "lost"), 0, "{r}");
    assert_rtts_real(&r);
}

#[test]
fn a_server_that_drops_every_10th_request_shows_as_that_loss_and_no_stall() {
    let s = server(Faults::DropEvery(10), Duration::ZERO);
    let addr = s.addr;
    let r = bench(addr, &["--requests", "4000", "--window", "32"]);
    let c = s.counts();
    assert_eq!(c.dropped, 400, "{c:?}");
    // A lost request is replaced after a timeout adapted to the measured RTT, not a
    // second: no percentile is a loss timeout.
    assert_rtts_real(&r);
    assert!(rtt(&r, "max") < 500.0, "{r}");
    assert_agree(&r, &c);

    // Trains of 8 (GSO where the kernel has it): the same counts.
    let s = server(Faults::DropEvery(10), Duration::ZERO);
    let addr = s.addr;
    let r = bench(
        addr,
        &["--requests", "4000", "--window", "64", "--gso", "8"],
    );
    let c = s.counts();
    assert_eq!(c.dropped, 400, "{c:?}");
    assert_agree(&r, &c);
    assert_rtts_real(&r);
}

#[test]
fn a_server_that_duplicates_every_5th_reply_shows_the_duplicates_and_real_rtts() {
    // Each reply goes out 2 ms after its request: every true RTT is at least that, and a
    // duplicate taken for the reply to a later request would show a shorter one.
    let delay = Duration::from_millis(2);
    let s = server(Faults::DuplicateEvery(5), delay);
    let addr = s.addr;
    let r = bench(addr, &["--requests", "4000", "--window", "32"]);
    let c = s.counts();
    assert_eq!(c.duplicated, 800, "{c:?}");
    assert!(
        rtt(&r, "p50") >= 2.0,
        "an RTT below the server's delay: {r}"
    );
    assert_agree(&r, &c);
    assert_eq!(count(&r, "lost"), 0, "{r}");
}

#[test]
fn a_server_that_drops_duplicates_and_garbles_is_counted_kind_by_kind() {
    let s = server(
        Faults::Random {
            seed: 0x5eed_1234,
            drop: 10,
            dup: 20,
            garble: 14,
        },
        Duration::ZERO,
    );
    let addr = s.addr;
    let r = bench(addr, &["--requests", "6000", "--window", "32"]);
    let c = s.counts();
    assert!(
        c.dropped > 300 && c.duplicated > 600 && c.garbled > 100,
        "{c:?}"
    );
    assert!(c.wrong_count > 100, "{c:?}");
    assert_agree(&r, &c);
    assert_rtts_real(&r);
}

#[test]
fn a_slow_reply_is_late_not_lost_and_its_rtt_is_real() {
    // A correct server that answers every 100th request 50 ms late, the rest at once:
    // bench gives those requests up after its adaptive timeout and sends others in their
    // place, yet counts each reply when it comes (as late, not lost), with its real RTT.
    let slow = Duration::from_millis(50);
    let s = server(Faults::SlowEvery(100, slow), Duration::ZERO);
    let addr = s.addr;
    let started = Instant::now();
    let r = bench(addr, &["--requests", "2000", "--window", "16"]);
    let took = started.elapsed();
    let c = s.counts();
    assert_agree(&r, &c);
    assert_eq!(count(&r, "lost"), 0, "{r}");
    // Each late reply is a request that was given up and replaced. How many depends on
    // the timeout the RTTs gave (a loaded machine's can pass 50 ms): at least one.
    assert!(count(&r, "late") >= 1, "{r}");
    assert!(rtt(&r, "max") >= 50.0, "{r}");
    assert_rtts_real(&r);
    // Without replacing them, 20 slow requests on 4 sockets of 4 would hold the window.
    assert!(took < Duration::from_secs(5), "{took:?}");
}

// ---------------------------------------------------------------------------------------
// Against `udp-echo serve` (Unix)
// ---------------------------------------------------------------------------------------

#[test]
#[cfg(unix)]
fn bench_reports_replies_and_percentiles() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let to = server.addr.to_string();
    let ran = run(
        &[
            "bench",
            "--server",
            &to,
            "--duration",
            "300ms",
            "--window",
            "8",
            "--json",
        ],
        b"",
        common::PATIENCE,
    );
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    let report = ran.json_lines().pop().unwrap();
    let replies = report["replies"].as_u64().unwrap();
    assert!(replies > 0, "{report}");
    assert!(report["sent"].as_u64().unwrap() >= replies);
    assert!(report["rtt_ms"]["p50"].as_f64().unwrap() <= report["rtt_ms"]["max"].as_f64().unwrap());
}

#[test]
#[cfg(unix)]
fn bench_requests_sends_exactly_that_many() {
    let mut server = serve("127.0.0.1:0", &["--quiet"]);
    let to = server.addr.to_string();
    // A duration far beyond common::PATIENCE: the run must end because of --requests.
    let ran = run(
        &[
            "bench",
            "--server",
            &to,
            "--requests",
            "100",
            "--duration",
            "60s",
            "--window",
            "8",
            "--json",
        ],
        b"",
        common::PATIENCE,
    );
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    let report = ran.json_lines().pop().unwrap();
    assert_eq!(report["sent"].as_u64(), Some(100), "{report}");
    let replies = report["replies"].as_u64().unwrap();
    assert!(replies > 0, "{report}");
    assert_eq!(replies + report["lost"].as_u64().unwrap(), 100, "{report}");

    // The server saw exactly 100 datagrams, not a window's worth more.
    signal(server.proc.pid(), rustix::process::Signal::TERM);
    server
        .proc
        .wait_for(common::PATIENCE)
        .expect("serve ignored SIGTERM");
    let stderr = server.proc.rest_of_stderr();
    assert!(stderr.contains("received 100,"), "{stderr}");

    for bad in ["0", "20000001", "many"] {
        let ran = run(
            &["bench", "--server", &to, "--requests", bad],
            b"",
            common::PATIENCE,
        );
        assert_eq!(ran.code(), 2, "--requests {bad}: {}", ran.stderr);
    }
}

#[test]
#[cfg(unix)]
fn bench_and_discover_end_with_141_when_their_reader_goes_away() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let addr = server.addr.to_string();
    // bench prints its summary only at the end: the pipe closes before, and the run
    // stops at once instead of loading the server for 60 s.
    let mut cmd = Command::new(BIN);
    cmd.args(["bench", &addr, "-t", "60", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut guard = Reaped::start(cmd, "udp-echo");
    thread::sleep(Duration::from_millis(200));
    drop(guard.child.stdout.take());
    let closed = Instant::now();
    let status = loop {
        if let Some(s) = guard.try_wait().unwrap() {
            break s;
        }
        assert!(closed.elapsed() < common::PATIENCE, "bench kept running");
        thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.code(), Some(141));
    let (code, _) = first_line_then_close(&["discover", "--to", &addr, "--wait", "30"]);
    assert_eq!(code, Some(141));
}

#[test]
#[cfg(unix)]
fn bench_reports_the_time_it_took_and_rates_over_it() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let to = server.addr.to_string();
    let ran = run(
        &[
            "bench",
            &to,
            "--requests",
            "2000",
            "-t",
            "60",
            "--window",
            "4",
            "--json",
        ],
        b"",
        common::PATIENCE,
    );
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    let r = ran.json_lines().pop().unwrap();
    let took = r["duration_ms"].as_f64().unwrap();
    assert!(
        took > 0.0 && took < ran.elapsed.as_secs_f64() * 1000.0,
        "{r}"
    );
    let replies = r["replies"].as_f64().unwrap();
    let rate = r["replies_per_s"].as_f64().unwrap();
    assert!((rate - replies / (took / 1000.0)).abs() <= 1.0, "{r}");
    assert_eq!(r["percentile_method"], "nearest-rank");
    // Timestamps taken before the send: no round trip is measured as zero.
    assert!(r["rtt_ms"]["p50"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["request_bits_per_s"].as_f64().unwrap() > 0.0, "{r}");

    // Against a server limited to 100 replies/s, the rate is over the run, not over
    // the burst of the first replies.
    let limited = serve("127.0.0.1:0", &["--quiet", "--total-limit", "100/s"]);
    let to = limited.addr.to_string();
    let ran = run(
        &["bench", &to, "-t", "1", "--window", "4", "--json"],
        b"",
        common::PATIENCE,
    );
    let r = ran.json_lines().pop().unwrap();
    let rate = r["replies_per_s"].as_f64().unwrap();
    assert!(rate > 0.0 && rate < 500.0, "{r}");
    let took = r["duration_ms"].as_f64().unwrap();
    assert!(took >= 900.0, "{r}");

    // The text summary states the time it took and the method.
    let ran = run(
        &["bench", &to, "--requests", "50", "-q"],
        b"",
        common::PATIENCE,
    );
    let out = ran.stdout();
    assert!(!out.contains("in 2.00s"), "{out}");
    assert!(out.contains("nearest-rank"), "{out}");
    assert!(out.contains("bit/s"), "{out}");
}

#[test]
#[cfg(unix)]
fn sigint_during_bench_prints_the_summary_of_what_ran() {
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let to = server.addr.to_string();
    let mut cmd = Command::new(BIN);
    cmd.args(["bench", &to, "-t", "30", "--window", "4"]);
    let mut bench = Proc::spawn(cmd);
    bench.stderr_line("replies/s"); // the first progress line, after a second
    signal(bench.pid(), rustix::process::Signal::INT);
    let status = bench
        .wait_for(common::PATIENCE)
        .expect("bench ignored SIGINT");
    assert_eq!(status.code(), Some(0));
    let out = bench.rest_of_stdout().join("\n");
    assert!(out.contains("(interrupted)"), "{out}");
    assert!(out.contains("replies/s"), "{out}");
    assert!(out.contains("rtt p50"), "{out}");
}

#[test]
#[cfg(unix)]
fn bench_caps_its_duration_with_an_error_and_shows_progress_on_stderr() {
    let ran = run(&["bench", "-t", "61"], b"", common::PATIENCE);
    assert_eq!(ran.code(), 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("60s"), "{}", ran.stderr);
    let server = serve("127.0.0.1:0", &["--quiet"]);
    let to = server.addr.to_string();
    let ran = run(
        &["bench", &to, "-t", "1.5", "--window", "4"],
        b"",
        common::PATIENCE,
    );
    assert_eq!(ran.code(), 0, "{}", ran.stderr);
    let progress: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with('[') && l.contains("replies/s"))
        .collect();
    assert!(!progress.is_empty(), "{}", ran.stderr);
    assert!(
        progress[0].contains("loss") && progress[0].contains("p99"),
        "{progress:?}"
    );
    assert!(ran.stdout().contains("bit/s"), "{}", ran.stdout());
    for quiet in [&["-q"][..], &["--json"][..]] {
        let mut args = vec!["bench", to.as_str(), "-t", "1.2", "--window", "4"];
        args.extend_from_slice(quiet);
        let ran = run(&args, b"", common::PATIENCE);
        assert!(
            !ran.stderr.contains("replies/s"),
            "{quiet:?}: {}",
            ran.stderr
        );
    }
}
