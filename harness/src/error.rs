//! The harness's one error type: what went wrong driving the stack, for the caller to act on (a test
//! `unwrap`s it at its call site, a benchmark or a drill reports it).

use std::time::Duration;

/// Why the harness could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A part of the local stack does not answer.
    #[error("{part} is not reachable ({detail}): start the stack with `dev/stack.sh up` (make test does)")]
    StackDown {
        /// Kafka, Redis, the Kafka REST proxy.
        part: &'static str,
        /// What failed.
        detail: String,
    },
    /// Kafka refused or failed a call.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Redis refused or failed a command.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The consumer's cache client failed.
    #[error("{0}")]
    Cache(#[from] pricefront_consumer::sinks::cache::CacheError),
    /// The Kafka REST proxy refused a record or could not be reached.
    #[error("the Kafka REST proxy (KAFKA_BRIDGE_URL): {0}")]
    RestProxy(String),
    /// A local file or process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A process did not behave as expected (did not stop, is missing, ...).
    #[error("{0}")]
    Process(String),
    /// Something awaited did not happen within its bound.
    #[error("{what} did not happen within {limit:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The bound.
        limit: Duration,
    },
}

impl HarnessError {
    /// An [`HarnessError::Io`] error while doing `what`.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
