//! Reading and waiting for stored results: the comparisons Redis holds for a run's products.

use std::time::Duration;

use futures::StreamExt;
use pricefront_core::{cache_key, Comparison, ProductId};
use tokio::time::Instant;

use crate::stack::redis_url;
use crate::{HarnessError, TestEnv};

/// How often the waits below poll.
pub const POLL: Duration = Duration::from_millis(200);

impl TestEnv {
    /// Waits until every product has a stored result, polling Redis; an error after `limit`.
    pub async fn wait_for_results(
        &self,
        products: &[ProductId],
        limit: Duration,
    ) -> Result<Vec<Comparison>, HarnessError> {
        let deadline = Instant::now() + limit;
        loop {
            let found = self.stored(products).await?;
            if found.len() == products.len() {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!(
                        "{}: {} stored results (only {})",
                        self.name,
                        products.len(),
                        found.len()
                    ),
                    limit,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The results stored for `products`, in any order (read through the consumer's cache client).
    pub async fn stored(&self, products: &[ProductId]) -> Result<Vec<Comparison>, HarnessError> {
        let read: Vec<_> = futures::stream::iter(products.iter().copied())
            .map(|p| async move { self.cache.get(p).await })
            .buffer_unordered(64)
            .collect()
            .await;
        let mut found = Vec::with_capacity(read.len());
        for comparison in read {
            found.extend(comparison?);
        }
        Ok(found)
    }
}

/// A new connection to the Redis of the stack, bounded in time.
pub async fn redis_connection() -> Result<redis::aio::MultiplexedConnection, HarnessError> {
    let client = redis::Client::open(redis_url())?;
    let connect = client.get_multiplexed_async_connection();
    tokio::time::timeout(Duration::from_secs(3), connect)
        .await
        .map_err(|_| HarnessError::Timeout {
            what: "a connection to Redis".into(),
            limit: Duration::from_secs(3),
        })?
        .map_err(HarnessError::from)
}

/// The results stored in Redis for `products` (entries that parse as comparisons), read on a new
/// connection with MGET: what survives a restart of Redis or of every consumer.
pub async fn stored(products: &[ProductId]) -> Result<Vec<Comparison>, HarnessError> {
    let mut connection = redis_connection().await?;
    let mut found = Vec::with_capacity(products.len());
    for chunk in products.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|p| cache_key(*p)).collect();
        let mut mget = redis::cmd("MGET");
        mget.arg(&keys);
        let read = mget.query_async(&mut connection);
        let values: Vec<Option<Vec<u8>>> = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .map_err(|_| HarnessError::Timeout {
                what: "an MGET from Redis".into(),
                limit: Duration::from_secs(5),
            })??;
        found.extend(
            values
                .into_iter()
                .flatten()
                .filter_map(|bytes| Comparison::from_json(&bytes).ok()),
        );
    }
    Ok(found)
}

/// Waits until every product has a stored result or `limit` passes, tolerating Redis being away
/// meanwhile; returns what one final read finds (so a count is never from before a loss).
pub async fn wait_stored(
    products: &[ProductId],
    limit: Duration,
) -> Result<Vec<Comparison>, HarnessError> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(found) = stored(products).await {
            if found.len() == products.len() {
                return Ok(found);
            }
        }
        tokio::time::sleep(POLL).await;
    }
    stored(products).await
}

/// Waits until at least `at_least` of `products` have stored results; an error after `limit`.
pub async fn wait_progress(
    products: &[ProductId],
    at_least: usize,
    limit: Duration,
) -> Result<usize, HarnessError> {
    let deadline = Instant::now() + limit;
    loop {
        let count = stored(products).await?.len();
        if count >= at_least {
            return Ok(count);
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Timeout {
                what: format!("{at_least} stored results (only {count})"),
                limit,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits (within `limit`, polling every 100 ms) until any of the first 500 of `products` has a stored
/// result; false when none had one in time or `products` is empty.
pub async fn wait_any_stored(
    products: &[ProductId],
    limit: Duration,
) -> Result<bool, HarnessError> {
    let deadline = Instant::now() + limit;
    let sample = &products[..products.len().min(500)];
    while !sample.is_empty() && Instant::now() < deadline {
        if !stored(sample).await?.is_empty() {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(false)
}

/// The field `name` of an `INFO` reply (`name:value` lines), trimmed.
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The `INFO section` reply of the stack's Redis.
pub async fn redis_info(section: &str) -> Result<String, HarnessError> {
    let mut connection = redis_connection().await?;
    Ok(redis::cmd("INFO")
        .arg(section)
        .query_async(&mut connection)
        .await?)
}

/// Redis's own counts of the work its clients gave it (`INFO stats`): read before and after a run,
/// their difference is what the run cost Redis, whoever sent it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisTraffic {
    /// Commands run (`total_commands_processed`: those a script runs included).
    pub commands: u64,
    /// Reads from client sockets (`total_reads_processed`): commands sent together arrive in one.
    pub reads: u64,
}

impl RedisTraffic {
    /// The counts now.
    pub async fn now() -> Result<Self, HarnessError> {
        let info = redis_info("stats").await?;
        let count = |name: &str| {
            info_field(&info, name)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| HarnessError::Process(format!("INFO stats has no {name}")))
        };
        Ok(Self {
            commands: count("total_commands_processed")?,
            reads: count("total_reads_processed")?,
        })
    }

    /// What was counted between `earlier` and this reading.
    pub fn since(&self, earlier: &RedisTraffic) -> RedisTraffic {
        RedisTraffic {
            commands: self.commands.saturating_sub(earlier.commands),
            reads: self.reads.saturating_sub(earlier.reads),
        }
    }
}

#[cfg(test)]
mod info_tests {
    use super::*;

    #[test]
    fn an_info_field_is_found_by_its_whole_name() {
        let info = "# Stats\r\ntotal_reads_processed:12\r\ntotal_commands_processed:40\r\n";
        assert_eq!(info_field(info, "total_commands_processed"), Some("40"));
        assert_eq!(info_field(info, "total_reads_processed"), Some("12"));
        assert_eq!(info_field(info, "total_reads"), None);
        let traffic = RedisTraffic {
            commands: 40,
            reads: 12,
        };
        assert_eq!(
            traffic.since(&RedisTraffic {
                commands: 10,
                reads: 2
            }),
            RedisTraffic {
                commands: 30,
                reads: 10
            }
        );
    }
}
