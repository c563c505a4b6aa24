//! The core of pricefront: every rule of the service written once, without any I/O, so that this crate
//! builds for `wasm32-unknown-unknown` as well as natively and every rule has native tests. It holds two
//! kinds of things:
//!
//! - what the edge Worker and the native consumers must agree on: product ids, money, the request
//!   message, the comparison and its aggregation, freshness and the cache entries' lifetime, cache
//!   keys, the newest-wins rule, the fill and backlog paths the consumer writes to, backlog reports,
//!   trace context;
//! - rules only the edge uses, kept here so that the Worker stays thin and they are tested natively:
//!   its routes, its problems, its read decisions and tiers, `Prefer: wait`, early refreshes, the
//!   stored entry as served, the REST proxy bodies it publishes with, the miss guards and Redis
//!   framing.
//!
//! Layout, one concept per file ("(edge)": only the edge uses it):
//!
//! - [`product_id`]: the product id, a positive 64-bit integer in plain decimal.
//! - [`money`]: ISO 4217 currencies and integer amounts in minor units (never floats).
//! - [`request`]: the versioned `price-compare-requests` Kafka message.
//! - [`comparison`]: the comparison result (offers, best offer, failures) and how it is aggregated.
//! - [`freshness`]: the windows a result is fresh and stale for, the fresh / stale / missing decision,
//!   and how long a cache entry lives ([`freshness::cache_ttl_ms`]).
//! - [`mod@cache_key`]: the versioned cache key scheme shared by Redis and Workers KV.
//! - [`newest_wins`]: a cache keeps the newer of two results of one product (and the Redis script that
//!   applies that rule atomically).
//! - [`rest_proxy`] (edge): the bodies of the Kafka REST proxy produce APIs (v2 and v3).
//! - [`route`]: the edge's routes, and the paths the consumer writes to ([`route::fill_path`],
//!   [`route::BACKLOG_PATH`]).
//! - [`problem`], [`edge_rules`] (edge): the edge's RFC 9457 errors, and its decisions on a read
//!   (fresh / stale / miss, cache headers, ETags, KV TTLs, the fill endpoint's token check).
//! - [`stored`] (edge): a cached comparison as the edge serves it, read without parsing its offers, and
//!   the shape of the body served ([`stored::Served`]).
//! - [`edge_event`] (edge): the edge's own numbers, one Workers Analytics Engine data point per request
//!   (hits by freshness, misses published, refusals by reason, publish failures).
//! - [`early_refresh`] (edge): XFetch, the chance that a fresh hit refreshes its product before it
//!   expires.
//! - [`prefer_wait`] (edge): `Prefer: wait=N` (RFC 7240): how long a miss may wait for its result, and
//!   when the edge reads the cache meanwhile.
//! - [`trace_context`]: W3C Trace Context (`traceparent`), one trace from the edge to the vendors.
//! - [`gtin`]: GTIN forms of a product id (GTIN-14, GTIN-13, UPC-A) for vendors asked by barcode.
//! - [`identifier_map`]: where a product's other identifiers (an ASIN, a retailer's SKU) are kept in
//!   Redis, for vendors that know products by those.
//! - [`catalog`]: the known-products filter (a Bloom filter of the catalog's ids), built by
//!   `pricefront-catalog`, that the edge may check before publishing a miss.
//! - [`backlog`]: how far behind the consumers are, as they report it, as every store merges it
//!   ([`backlog::merged_report`]) and as the edge reads it to turn misses away (backpressure).
//! - [`miss_guard`] (edge): what a miss must pass before it publishes: the catalog, backpressure, and
//!   the per-client rate limit's key.
//! - [`isolate_cache`] (edge): what an isolate remembers between requests, and the one rule of when it
//!   forgets (a value is live before its expiry; a bounded map drops the expired, then everything).
//! - [`gate`] (edge): the product gate, one coordinator per product (a Durable Object) that misses ask
//!   before they publish and fills reach: its claims, what it holds, and the calls to it.
//! - [`redis_protocol`] (edge): where the edge's Redis is (`redis://`, `rediss://`) and RESP2 framing.
//!
//! Time is always passed in as milliseconds since the Unix epoch ([`UnixMillis`]): the core never reads a
//! clock, so every rule is a pure function that tests can drive.

pub mod backlog;
pub mod cache_key;
pub mod catalog;
pub mod comparison;
pub mod early_refresh;
pub mod edge_event;
pub mod edge_rules;
pub mod freshness;
pub mod gate;
pub mod gtin;
pub mod identifier_map;
pub mod isolate_cache;
pub mod miss_guard;
pub mod money;
pub mod newest_wins;
pub mod prefer_wait;
pub mod problem;
pub mod product_id;
pub mod redis_protocol;
pub mod request;
pub mod rest_proxy;
pub mod route;
pub mod stored;
pub mod trace_context;

pub use cache_key::cache_key;
pub use comparison::{Comparison, FailureKind, Offer, VendorFailure, VendorOutcome};
pub use freshness::{Freshness, FreshnessPolicy};
pub use money::{Currency, Money, MoneyError};
pub use product_id::{ProductId, ProductIdError};
pub use request::{MessageError, PriceRequest};
pub use trace_context::TraceContext;

/// Milliseconds since the Unix epoch, UTC.
pub type UnixMillis = u64;

/// The Kafka topic that carries comparison requests.
pub const REQUEST_TOPIC: &str = "price-compare-requests";

/// The dead-letter topic for requests that cannot be parsed.
pub const DEAD_LETTER_TOPIC: &str = "price-compare-requests.dlq";

/// Fixtures the core's own tests share.
#[cfg(test)]
pub(crate) mod fixtures;
