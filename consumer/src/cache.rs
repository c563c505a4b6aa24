//! The Redis cache the consumer fills (and checks, so as not to fan out for a product that is fresh).
//!
//! A write never replaces a newer result of the same product: it runs the shared core's
//! [`REDIS_SET_IF_NEWER`] script, which applies the rule of [`pricefront_core::newest_wins`] atomically
//! on the server. The connection is made lazily, so a consumer can start while Redis is away
//! ([`RedisCache::connect_lazily`], [`RedisCache::wait_until_reachable`]).

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use pricefront_core::backlog::{backlog_key, BacklogReport, REPORT_TTL_SECS};
use pricefront_core::freshness::cache_ttl_ms;
use pricefront_core::newest_wins::REDIS_SET_IF_NEWER;
use pricefront_core::{cache_key, Comparison, ProductId, UnixMillis};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

/// A Redis failure.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct CacheError(#[from] redis::RedisError);

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The comparison is now the stored one.
    Stored,
    /// Redis holds a result of the product computed later: that one was kept, this one dropped.
    KeptNewer,
    /// The comparison was already past its stale-until: there was nothing to store.
    Expired,
}

/// The comparison cache in Redis, one key per product ([`cache_key()`]), expiring at stale-until.
#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
    set_if_newer: Arc<Script>,
}

impl RedisCache {
    /// Connects to `url` (`redis://host:port/db`) and fails if Redis does not answer now. The connection
    /// reconnects by itself after failures; each command gives up after `timeout`.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, CacheError> {
        let cache = Self::connect_lazily(url, timeout)?;
        cache.ping().await?;
        Ok(cache)
    }

    /// Like [`RedisCache::connect`], but without waiting for Redis: only a malformed `url` fails. The
    /// first command connects; until Redis answers, every command fails (and tries again to connect).
    pub fn connect_lazily(url: &str, timeout: Duration) -> Result<Self, CacheError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            connection,
            set_if_newer: Arc::new(Script::new(REDIS_SET_IF_NEWER)),
        })
    }

    /// Pings Redis until it answers, with capped, jittered exponential backoff, logging each failure.
    /// Run it in the background after [`RedisCache::connect_lazily`] to connect as soon as Redis is up.
    pub async fn wait_until_reachable(&self) {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .without_max_times();
        let reached = (|| self.ping())
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .notify(|error, delay| {
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "Redis is not reachable yet");
            })
            .await;
        if reached.is_ok() {
            tracing::info!("Redis reachable");
        }
    }

    /// The cached comparison of `product`, if any. An entry that does not parse counts as none.
    pub async fn get(&self, product: ProductId) -> Result<Option<Comparison>, CacheError> {
        let mut connection = self.connection.clone();
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(cache_key(product))
            .query_async(&mut connection)
            .await?;
        Ok(value.and_then(|bytes| match Comparison::from_json(&bytes) {
            Ok(comparison) => Some(comparison),
            Err(error) => {
                tracing::warn!(%product, %error, "ignoring an unreadable cache entry");
                None
            }
        }))
    }

    /// Stores `comparison` until its stale-until, unless Redis holds a result of the product computed
    /// later ([`RedisCache::put_with_outcome`], without saying which happened).
    pub async fn put(&self, comparison: &Comparison, now_ms: UnixMillis) -> Result<(), CacheError> {
        self.put_with_outcome(comparison, now_ms).await.map(drop)
    }

    /// Stores `comparison` until its stale-until (`SET key value PX ms`, in [`REDIS_SET_IF_NEWER`]),
    /// unless the stored result has a greater `computedAtMs`; an equal one is replaced. A comparison
    /// already past stale-until at `now_ms` is not stored.
    pub async fn put_with_outcome(
        &self,
        comparison: &Comparison,
        now_ms: UnixMillis,
    ) -> Result<PutOutcome, CacheError> {
        let Some(ttl_ms) = cache_ttl_ms(comparison.stale_until_ms, now_ms) else {
            return Ok(PutOutcome::Expired);
        };
        let mut connection = self.connection.clone();
        let stored: i64 = self
            .set_if_newer
            .key(cache_key(comparison.product_id))
            .arg(comparison.to_json())
            .arg(comparison.computed_at_ms)
            .arg(ttl_ms)
            .invoke_async(&mut connection)
            .await?;
        if stored == 1 {
            Ok(PutOutcome::Stored)
        } else {
            tracing::info!(
                product = %comparison.product_id,
                computed_at_ms = comparison.computed_at_ms,
                "Redis holds a newer result of the product: kept it"
            );
            Ok(PutOutcome::KeptNewer)
        }
    }

    /// Merges this process's `report` into `topic`'s backlog report in Redis (read, merge, write: a
    /// member's report lost to a concurrent write comes again in a few seconds).
    pub async fn merge_backlog_report(
        &self,
        topic: &str,
        report: &BacklogReport,
        now_ms: UnixMillis,
    ) -> Result<(), CacheError> {
        let key = backlog_key(topic);
        let mut connection = self.connection.clone();
        let stored: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut connection)
            .await?;
        let mut merged = stored
            .and_then(|bytes| BacklogReport::from_json(&bytes))
            .unwrap_or_default();
        merged.merge(report, now_ms);
        redis::cmd("SET")
            .arg(&key)
            .arg(merged.to_json())
            .arg("EX")
            .arg(REPORT_TTL_SECS)
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }
}
