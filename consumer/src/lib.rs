//! The pricefront consumer: the slow half of the service.
//!
//! It consumes `price-compare-requests`, asks every configured vendor concurrently, aggregates their
//! offers with the shared core's rules, and stores the comparison in Redis until its stale-until.
//! Offsets are committed only once the result is stored, so a crash resumes where it stopped.
//!
//! Layout, one concept per file:
//!
//! - [`config`]: the settings (flags with environment twins).
//! - [`vendors`] (a folder): the vendor side: the vendors file, requests and their identifiers,
//!   authentication (keys, OAuth 2.0, signed headers), reading offers, quotas, daily budgets, the
//!   circuit breaker, and asking one vendor ([`vendors::fetch`]).
//! - [`redact`]: secrets kept out of logs, error texts and stored failure details.
//! - [`fanout`]: asking every vendor at once and aggregating.
//! - [`lag`]: how late this process's own runtime is, so that its own lateness is not blamed on a vendor.
//! - [`cache`]: the Redis cache.
//! - [`fill`]: the second sink, the edge's fill endpoint.
//! - [`sinks`]: storing a result in every configured sink, independently, with classified retries.
//! - [`metrics`]: Prometheus metrics, `/healthz` and `/readyz`.
//! - [`telemetry`]: logs, and OpenTelemetry spans that continue the edge's trace to the vendors.
//! - [`backlog`]: reporting the lag of this process's partitions, for the edge's backpressure.
//! - [`offsets`]: which offsets may be committed while many messages are in flight.
//! - [`dead_letter`]: where unparseable messages (and messages whose work panicked) go.
//! - [`clients`]: the Kafka clients' settings, each client only its own.
//! - [`handler`]: what happens to one message: a result in every sink, once per product at a time.
//! - [`window`]: the in-flight window; paused partitions and held messages while it is full.
//! - [`window_size`]: the window's size, smaller while this process runs late.
//! - [`pipeline`]: the consume loop and its graceful stop.

pub mod backlog;
pub mod cache;
pub mod clients;
pub mod config;
pub mod dead_letter;
pub mod fanout;
pub mod fill;
pub mod handler;
pub mod lag;
pub mod metrics;
pub mod offsets;
pub mod pipeline;
pub mod redact;
pub mod sinks;
pub mod telemetry;
pub mod vendors;
pub mod window;
pub mod window_size;

pub use config::Settings;
