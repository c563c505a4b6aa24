//! The Workers clock, the only one the edge reads.

use pricefront_core::UnixMillis;

/// Now, in milliseconds since the Unix epoch (the runtime's clock, which advances at I/O). `Date.now()`,
/// not `worker::Date::now()`, which builds a `Date` object to read it.
pub fn now_ms() -> UnixMillis {
    worker::js_sys::Date::now() as UnixMillis
}
