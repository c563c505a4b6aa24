//! The wall clock: the one clock of the native crates (the harness re-exports it). The shared core never
//! reads a clock, the edge reads the Workers runtime's, and the vendor simulator, which stands for the
//! world outside, keeps its own.

use std::time::{SystemTime, UNIX_EPOCH};

use pricefront_core::UnixMillis;

/// Now, as the standard library tells time (for what reads dates: an HTTP-date, a day in a time zone).
pub fn now() -> SystemTime {
    SystemTime::now()
}

/// Now in milliseconds since the Unix epoch (the unit of `computedAtMs` and the request's
/// `requestedAtMs`).
pub fn now_ms() -> UnixMillis {
    now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}
