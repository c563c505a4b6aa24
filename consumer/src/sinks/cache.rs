//! The Redis cache the consumer fills (and checks, so as not to fan out for a product that is fresh).
//!
//! A write never replaces a newer result of the same product, nor a servable one with offers by one
//! without (stale-if-error): it runs the shared core's [`REDIS_STORE_IF_REPLACES`] script, which applies
//! the rule of [`pricefront_core::newest_wins`] atomically on the server. The connection is made
//! lazily, so a consumer can start while Redis is away ([`RedisCache::connect_lazily`],
//! [`RedisCache::wait_until_reachable`]).

use std::sync::Arc;
use std::time::Duration;

use pricefront_core::backlog::{backlog_key, merged_report, BacklogReport, REPORT_TTL_SECS};
use pricefront_core::freshness::cache_ttl_ms;
use pricefront_core::newest_wins::{replacement_from_script, Replacement, REDIS_STORE_IF_REPLACES};
use pricefront_core::{cache_key, Comparison, ProductId, UnixMillis};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use crate::process::health::Reachable;
use crate::process::retry::{retry_until_done, Next, REACH_BACKOFF};

/// A Redis failure.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct CacheError(#[from] redis::RedisError);

/// The comparison cache in Redis, one key per product ([`cache_key()`]), expiring at stale-until.
#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
    store_if_replaces: Arc<Script>,
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
            store_if_replaces: Arc::new(Script::new(REDIS_STORE_IF_REPLACES)),
        })
    }

    /// The connection, for the other users of the same Redis (the identifier map, daily budgets).
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Pings Redis until it answers, with capped, jittered exponential backoff, logging each failure.
    /// Run it in the background after [`RedisCache::connect_lazily`] to connect as soon as Redis is up.
    pub async fn wait_until_reachable(&self) {
        let reached = retry_until_done(REACH_BACKOFF, || self.ping(), |error, wait| {
            tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "Redis is not reachable yet");
            Next::Backoff
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

    /// Stores `comparison` until its stale-until (`SET key value PX ms`, in [`REDIS_STORE_IF_REPLACES`]),
    /// unless the stored result has a greater `computedAtMs`, or has offers and may still be served while
    /// `comparison` has none ([`pricefront_core::newest_wins::replacement`]); says which. A comparison
    /// already past stale-until at `now_ms` is not stored (and there is nothing to keep: `Store`).
    pub async fn put(
        &self,
        comparison: &Comparison,
        now_ms: UnixMillis,
    ) -> Result<Replacement, CacheError> {
        let Some(ttl_ms) = cache_ttl_ms(comparison.stale_until_ms, now_ms) else {
            return Ok(Replacement::Store);
        };
        let mut connection = self.connection.clone();
        let reply: i64 = self
            .store_if_replaces
            .key(cache_key(comparison.product_id))
            .arg(comparison.to_json())
            .arg(comparison.computed_at_ms)
            .arg(ttl_ms)
            .arg(comparison.offers.len())
            .invoke_async(&mut connection)
            .await?;
        replacement_from_script(reply).ok_or_else(|| {
            CacheError(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "the store script answered",
                reply.to_string(),
            )))
        })
    }

    /// Merges this process's `report` into `topic`'s backlog report in Redis (read, [`merged_report`],
    /// write: a member's report lost to a concurrent write comes again in a few seconds).
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
        let merged = merged_report(stored.as_deref(), report, now_ms);
        redis::cmd("SET")
            .arg(&key)
            .arg(merged)
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

impl Reachable for RedisCache {
    async fn reachable(&self) -> bool {
        self.ping().await.is_ok()
    }
}
