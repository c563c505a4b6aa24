//! The simulator speaking five real price APIs, each under a path prefix, so that a real client works
//! with only its base URL pointed at the simulator (`https://api.ebay.com` → `http://sim/ebay`, …).
//!
//! Layout, one file per API plus what they share:
//!
//! - [`ebay`]: eBay Buy Browse `item_summary/search` by GTIN, with OAuth2 client credentials.
//! - [`bestbuy`]: Best Buy Products API `products(upc=…)`, with an `apiKey` and a quota (403).
//! - [`walmart`]: Walmart affiliate Product Lookup by UPC, with RSA-SHA256 signed headers.
//! - [`amazon`]: Amazon Creators API `getItems` by ASIN, with OAuth2 client credentials.
//! - [`rainforest`]: Rainforest API (Traject Data) `type=product` / `type=offers` by GTIN or ASIN.
//! - [`offers`]: the deterministic offers of every (API, identifier), and [`expected_best`].
//! - [`settings`]: credentials and limits per API ([`ApiSettings`]), from the profiles file's
//!   `[apis.<name>]` tables ([`ApiProfiles`]) or `PUT /_sim/apis/{name}` ([`ApiSettingsPatch`]).
//! - [`state`]: issued tokens, request windows and counts ([`ApiStats`]).
//! - [`control`]: the `/_sim/apis` routes.
//! - [`api`]: which API ([`Api`]).
//! - `common`: what the API modules share (counting a request, the latency, JSON answers, the clock).
//!
//! The request and answer shapes follow the vendors' documentation; each file names the pages it
//! follows and marks what could not be found documented ("not documented", "guessed").
//!
//! Every data request counts in [`crate::Simulator::request_counts`] under the API's name (`ebay`,
//! `bestbuy`, `walmart`, `amazon`, `rainforest`; token requests do not) and records its `traceparent`
//! under each identifier it asks for ([`crate::Simulator::traceparents_of`]). Client input never
//! panics the simulator: bad input gets the API's own error answer.

pub mod amazon;
pub mod api;
pub mod bestbuy;
pub(crate) mod common;
pub mod control;
pub mod ebay;
pub mod offers;
pub mod rainforest;
pub mod settings;
pub mod state;
#[cfg(test)]
pub(crate) mod test_keys;
#[cfg(test)]
pub(crate) mod test_support;
pub mod walmart;

use std::sync::Arc;

use axum::Router;

pub use api::{Api, UnknownApi};
pub use offers::{
    expected_best, lookup, offers_of, Condition, ExpectedOffer, Lookup, SimOffer,
    DEFAULT_PARTNER_TAG,
};
pub use settings::{ApiSettings, ApiSettingsError, ApiSettingsPatch};
pub use state::{ApiState, ApiStats};

pub use crate::profile::ApiProfiles;
use crate::simulator::Simulator;

/// The simulated APIs' routes (merged into [`crate::router`]): each API's and the `/_sim/apis` routes.
pub(crate) fn routes() -> Router<Arc<Simulator>> {
    Router::new()
        .merge(ebay::routes())
        .merge(bestbuy::routes())
        .merge(walmart::routes())
        .merge(amazon::routes())
        .merge(rainforest::routes())
        .merge(control::routes())
}
