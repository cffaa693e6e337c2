//! Durations as numbers: milliseconds for JSON, readable text for people.

use std::time::Duration;

/// Milliseconds with microsecond precision, for JSON.
pub fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

/// A duration for people: `0.123 ms`, `12.3 ms`, `3.10s`.
pub fn human(d: Duration) -> String {
    let ms = ms(d);
    if d < Duration::from_micros(1) {
        format!("{} ns", d.as_nanos())
    } else if ms < 1.0 {
        format!("{ms:.3} ms")
    } else if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}
