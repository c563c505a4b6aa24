//! A simulator of external price APIs that behave like slow, flaky vendors.
//!
//! One HTTP server plays several vendors at once. Each vendor has a [`VendorProfile`]: a latency range,
//! rates of errors, hangs, malformed and oversized bodies, a currency and a body shape. Prices are
//! deterministic ([`expected_price`]), so tests can predict the best offer.
//!
//! Routes:
//! - `GET /vendors/{vendor}/prices/{productId}`: the vendor's price API.
//! - `GET /_sim/profiles`, `PUT /_sim/profiles/{vendor}`: read or change the profiles while running.
//! - `GET /_sim/stats`: requests seen per vendor.
//! - `GET /healthz`.
//!
//! Layout: [`profile`] (what a vendor does), [`price`] (the deterministic prices and body shapes),
//! [`server`] (the axum routes), [`listen`] (its socket, with a listen queue for a consumer's burst of
//! connections).

pub mod listen;
pub mod price;
pub mod profile;
pub mod server;

pub use listen::bind;
pub use price::{expected_price, BodyShape};
pub use profile::{Profiles, VendorProfile};
pub use server::{router, serve, Simulator};
