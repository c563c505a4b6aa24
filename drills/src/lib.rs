//! Reliability drills: each one runs the real local stack (Kafka, Redis, consumer processes, simulated
//! vendors, the edge Worker under `wrangler dev`), injects one fault under a bounded load, and reports
//! what was lost and what was duplicated in a [`DrillReport`].
//!
//! | module | fault |
//! | --- | --- |
//! | [`kill_consumer`] | `kill -9` of one consumer of two |
//! | [`kafka_restart`] | `dev/stack.sh restart kafka` |
//! | [`redis_restart`] | `dev/stack.sh restart redis`, with Redis persistence on for the drill |
//! | [`vendor_faults`] | every vendor turns to errors, hangs, malformed and oversized bodies |
//! | [`edge_input`] | a battery of client mistakes against the edge Worker |
//! | [`rest_proxy`] | stop and restart of the Kafka REST proxy (the Strimzi Kafka Bridge) under misses |
//! | [`early_refresh`] | results that expire every few seconds under a Zipf read load, early refreshes off and on |
//! | [`flood`] | distinct random ids from a few identities, well above the limits, beside a legitimate client |
//! | [`starved_consumer`] | the consumer kept to one CPU that a busy loop shares, with healthy vendors |
//! | [`leader_kill`] | on the three-node cluster: kill -9 of the leader of the request topic's busiest partition |
//! | [`rolling_restart`] | on the cluster: each node restarted in turn, waiting for the replicas to catch up |
//! | [`below_isr`] | on the cluster: two of three nodes stopped (below `min.insync.replicas`), then one back |
//!
//! "Lost" is always a published request without a stored result at the end of the drill (Redis read
//! directly). "Duplicated" is work done more than once, as each drill defines it in its notes.
//!
//! The drills restart shared services: run them alone (`cargo test -p pricefront-drills -- --test-threads
//! 1`, or `pricefront-drills`), never beside other tests of the same stack.

#![warn(missing_docs)]

pub mod below_isr;
mod cluster;
pub mod early_refresh;
mod edge_cases;
pub mod edge_input;
pub mod flood;
pub mod kafka_restart;
pub mod kill_consumer;
pub mod leader_kill;
mod misses;
pub mod redis_restart;
pub mod report;
pub mod rest_proxy;
pub mod rolling_restart;
pub mod starved_consumer;
mod support;
pub mod vendor_down;
pub mod vendor_faults;
mod wire;

use std::time::Duration;

pub use pricefront_harness::Machine;
pub use report::{DrillReport, Verdict};

/// Why a drill could not be run to its end (as opposed to a drill that ran and found a fault, which is a
/// [`DrillReport`] with failures).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// A setting the drill needs is missing from the environment.
    #[error("{var} is not set: {hint}")]
    MissingEnv {
        /// The variable.
        var: &'static str,
        /// How to provide it.
        hint: &'static str,
    },
    /// Something the drill waits for did not happen within its bound.
    #[error("{what} did not happen within {limit:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The bound.
        limit: Duration,
    },
    /// The stack is not in the state the drill needs.
    #[error("the stack is not ready for the drill: {0}")]
    Precondition(String),
    /// The harness could not drive the stack (Kafka, Redis or a consumer process failed, or something it
    /// waited for did not happen in time).
    #[error("{0}")]
    Harness(#[from] pricefront_harness::HarnessError),
    /// A Redis command failed where the drill cannot go on without it.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A Kafka call failed where the drill cannot go on without it.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// An HTTP call failed where the drill cannot go on without it.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// A local file or process failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
