//! The pricefront consumer: the slow half of the service.
//!
//! It consumes `price-compare-requests`, asks every configured vendor concurrently, aggregates their
//! offers with the shared core's rules, and stores the comparison in every sink until its stale-until.
//! Offsets are committed only once the result is stored, so a crash resumes where it stopped.
//!
//! # Layout
//!
//! The crate is laid out by stage, in the order a request goes through it, one concept per file.
//! Dependencies run one way: [`intake`] uses [`vendors`] and [`sinks`], all three use [`process`], and
//! nothing uses what is above it.
//!
//! - [`intake`]: where a message enters. The consume loop and its graceful stop
//!   ([`intake::pipeline`]), the consumer's view of its partitions through rebalances
//!   ([`intake::context`]), one message ([`intake::handler`]), committable offsets
//!   ([`intake::offsets`]), the in-flight window and its size ([`intake::window`],
//!   [`intake::window_size`]), dead letters ([`intake::dead_letter`]), backlog reports for the edge's
//!   backpressure ([`intake::backlog`]) and the Kafka clients' settings ([`intake::clients`]).
//! - [`vendors`]: where vendors are called. Every vendor at once, aggregated ([`vendors::fanout`]),
//!   one vendor ([`vendors::fetch`]), and the vendors file, requests, identifiers, authentication,
//!   offers, quotas, daily budgets and the circuit breaker.
//! - [`sinks`]: where results are stored, each sink written until it holds them: Redis
//!   ([`sinks::cache`]) and the edge's fill endpoint ([`sinks::fill`]).
//! - [`process`]: the process's own plumbing. Settings, metrics and the health checks, logs and
//!   traces, redaction, the runtime's own lateness, the clock, and retrying until stopped.

pub mod intake;
pub mod process;
pub mod sinks;
pub mod vendors;

pub use process::settings::Settings;
