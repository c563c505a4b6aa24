//! The Redis cache the consumer fills (and checks, so as not to fan out for a product that is fresh).

use std::time::Duration;

use pricefront_core::{cache_key, Comparison, ProductId, UnixMillis};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A Redis failure.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct CacheError(#[from] redis::RedisError);

/// The comparison cache in Redis, one key per product ([`cache_key`]), expiring at stale-until.
#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
}

impl RedisCache {
    /// Connects to `url` (`redis://host:port/db`). The connection reconnects by itself after failures;
    /// each command gives up after `timeout`.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, CacheError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { connection })
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

    /// Stores `comparison` until its stale-until (`SET key value PX ms`). A comparison already past
    /// stale-until at `now_ms` is not stored.
    pub async fn put(&self, comparison: &Comparison, now_ms: UnixMillis) -> Result<(), CacheError> {
        let ttl_ms = comparison.stale_until_ms.saturating_sub(now_ms);
        if ttl_ms == 0 {
            return Ok(());
        }
        let mut connection = self.connection.clone();
        redis::cmd("SET")
            .arg(cache_key(comparison.product_id))
            .arg(comparison.to_json())
            .arg("PX")
            .arg(ttl_ms)
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
