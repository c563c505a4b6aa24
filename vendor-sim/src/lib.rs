//! A simulator of external price APIs that behave like slow, flaky vendors.
//!
//! One HTTP server plays several vendors at once. Each vendor has a [`VendorProfile`]: a latency range,
//! rates of errors, hangs, malformed and oversized bodies, a currency and a body shape. Prices are
//! deterministic ([`expected_price`]), so tests can predict the best offer.
//!
//! It also speaks five real price APIs ([`apis`]), each under a prefix so that a real client works with
//! only its base URL pointed at the simulator, with their credentials, token lifetimes, quotas and
//! error answers, and deterministic offers ([`expected_best`]).
//!
//! Routes:
//! - `GET /vendors/{vendor}/prices/{productId}`: the vendor's price API.
//! - `GET /_sim/profiles`, `PUT /_sim/profiles/{vendor}`: read or change the profiles while running.
//! - `GET /_sim/stats`: requests seen per vendor (and per real API, under its name).
//! - `GET /_sim/traceparents/{product}`: the `traceparent` headers a product's (or identifier's)
//!   requests carried.
//! - `GET /healthz`.
//! - eBay Buy Browse ([`apis::ebay`]): `POST /ebay/identity/v1/oauth2/token` (form, Basic auth),
//!   `GET /ebay/buy/browse/v1/item_summary/search?gtin=…` (Bearer token).
//! - Best Buy Products ([`apis::bestbuy`]): `GET /bestbuy/v1/products(upc=…)?apiKey=…&format=json&show=…`.
//! - Walmart affiliate ([`apis::walmart`]): `GET /walmart/api-proxy/service/affil/product/v2/items?upc=…`
//!   (`WM_CONSUMER.ID`, `WM_CONSUMER.INTIMESTAMP`, `WM_SEC.KEY_VERSION`, `WM_SEC.AUTH_SIGNATURE`).
//! - Amazon Creators ([`apis::amazon`]): `POST /amazon/auth/o2/token` (JSON, Login with Amazon),
//!   `POST /amazon/oauth2/token` (form, Cognito), `POST /amazon/catalog/v1/getItems` (Bearer token,
//!   `x-marketplace`).
//! - Rainforest ([`apis::rainforest`]): `GET /rainforest/request?api_key=…&type=product&amazon_domain=amazon.com&gtin=…`.
//! - `GET /_sim/apis`, `GET`/`PUT /_sim/apis/{name}`: the real APIs' settings ([`ApiSettings`]; a PUT
//!   is a JSON [`ApiSettingsPatch`]); `GET /_sim/apis/{name}/stats` ([`ApiStats`]);
//!   `POST /_sim/apis/{name}/reset`.
//!
//! Layout: [`profile`] (what a vendor does), [`price`] (the deterministic prices and body shapes),
//! [`simulator`] (the shared state: profiles, counts, the real APIs' state), [`server`] (the axum
//! routes), [`listen`] (its socket, with a listen queue for a consumer's burst of
//! connections), [`apis`] (the real APIs).

pub mod apis;
pub mod listen;
pub mod price;
pub mod profile;
pub mod server;
pub mod simulator;

pub use apis::{expected_best, Api, ApiSettings, ApiSettingsPatch, ApiStats, ExpectedOffer};
pub use listen::bind;
pub use price::{expected_price, BodyShape};
pub use profile::{ApiProfiles, Profiles, ProfilesFile, VendorProfile};
pub use server::{router, serve};
pub use simulator::Simulator;
