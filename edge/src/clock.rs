//! The Workers clock, the only one the edge reads.

use pricefront_core::UnixMillis;

/// Now, in milliseconds since the Unix epoch (the runtime's clock, which advances at I/O).
pub fn now_ms() -> UnixMillis {
    worker::Date::now().as_millis()
}
