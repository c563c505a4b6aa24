//! The wall clock, in the shared core's milliseconds: the one clock of the native crates (the harness
//! re-exports it; the shared core never reads a clock, and the edge reads the Workers runtime's).

use std::time::{SystemTime, UNIX_EPOCH};

use pricefront_core::UnixMillis;

/// The wall-clock time in milliseconds since the Unix epoch (the unit of `computedAtMs` and the
/// request's `requestedAtMs`).
pub fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}
