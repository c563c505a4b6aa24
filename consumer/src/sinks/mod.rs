//! Storing a result in every configured sink: Redis, and the edge's fill endpoint when configured.
//!
//! The sinks are written independently, each until it holds the result: a Redis outage does not hold
//! back the edge (the production edge reads Workers KV, never Redis), and the caller commits the offset
//! only once both are done. Failures are classified: a transient one (unreachable, 5xx, Redis down) is
//! retried with capped, jittered exponential backoff; a refusal that retrying cannot fix (the edge
//! answering 400, 401 or 403: a wrong token or an incompatible version) is logged as an error, shown by
//! the `sink_misconfigured` metric and `/readyz`, and retried only every [`MISCONFIGURED_RETRY`].
//!
//! - [`cache`]: the Redis cache.
//! - [`fill`]: the edge's fill endpoint.

pub mod cache;
pub mod fill;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pricefront_core::newest_wins::Replacement;
use pricefront_core::Comparison;

use crate::process::clock::now_ms;
use crate::process::metrics::{Metrics, Sink, SinkLabel};
use crate::process::retry::{retry_until_done, Next, WRITE_BACKOFF};
use crate::sinks::cache::{CacheError, RedisCache};
use crate::sinks::fill::{FillError, FillSink};

/// How long to wait before trying again a sink that refused a write as misconfigured.
pub const MISCONFIGURED_RETRY: Duration = Duration::from_secs(30);

/// Whether a sink's failure is a configuration or version error, which retrying soon cannot fix.
pub trait SinkFailure: std::fmt::Display {
    /// True for a configuration or version error; false for a transient failure.
    fn is_misconfiguration(&self) -> bool;
}

impl SinkFailure for CacheError {
    fn is_misconfiguration(&self) -> bool {
        false
    }
}

impl SinkFailure for FillError {
    fn is_misconfiguration(&self) -> bool {
        FillError::is_misconfiguration(self)
    }
}

/// Every sink a result goes to.
#[derive(Clone)]
pub struct Sinks {
    /// The Redis cache (also read, to avoid fanning out for a product that is fresh).
    pub cache: RedisCache,
    fill: Option<FillSink>,
    metrics: Arc<Metrics>,
}

impl Sinks {
    /// The sinks: Redis, and the edge's fill endpoint when configured.
    pub fn new(cache: RedisCache, fill: Option<FillSink>, metrics: Arc<Metrics>) -> Self {
        Self {
            cache,
            fill,
            metrics,
        }
    }

    /// Stores `comparison` in every sink, each independently of the other; returns once all hold it.
    pub async fn store(&self, comparison: &Comparison) {
        let redis = self.write_until_stored(Sink::Redis, || self.cache.put(comparison, now_ms()));
        tokio::join!(redis, self.fill_edge(comparison));
    }

    /// Stores `comparison` at the edge, when a fill endpoint is configured (Redis already holds it).
    pub async fn fill_edge(&self, comparison: &Comparison) {
        if let Some(fill) = &self.fill {
            self.write_until_stored(Sink::Edge, || fill.put(comparison))
                .await;
        }
    }

    /// Runs `write` until it succeeds, waiting between attempts as its failure's class says; counts a
    /// result the sink did not store over the one it holds.
    async fn write_until_stored<E, F, Fut>(&self, sink: Sink, write: F)
    where
        E: SinkFailure,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Replacement, E>>,
    {
        let started = std::time::Instant::now();
        let stored = retry_until_done(WRITE_BACKOFF, write, |error: &E, wait| {
            self.metrics.cache_write(sink, false);
            if error.is_misconfiguration() {
                self.metrics.set_misconfigured(sink, true);
                tracing::error!(
                    %error,
                    sink = sink.label(),
                    retry_in_s = MISCONFIGURED_RETRY.as_secs(),
                    "the sink refuses results: a configuration or version error (check the fill URL and \
                     FILL_TOKEN); offsets are not committed until it takes them"
                );
                Next::After(MISCONFIGURED_RETRY)
            } else {
                tracing::warn!(%error, sink = sink.label(), retry_in_ms = wait.as_millis() as u64, "sink write failed");
                Next::Backoff
            }
        })
        .await;
        // Never a `Stop`: every failure is retried, so the write ends stored.
        if let Ok(decision) = stored {
            self.metrics.result_kept(sink, decision);
            self.metrics
                .store_duration
                .get_or_create(&SinkLabel { sink: sink.label() })
                .observe(started.elapsed().as_secs_f64());
            self.metrics.cache_write(sink, true);
            self.metrics.set_misconfigured(sink, false);
        }
    }
}
