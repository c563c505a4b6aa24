//! The comparison cache the Worker reads and fills: Workers KV, or Redis where configured. Keys and
//! values come from the core crate, so the consumer and the edge agree by construction.

use pricefront_core::edge_rules::kv_ttl_secs;
use pricefront_core::{cache_key, Comparison, ProductId, UnixMillis};
use worker::{Env, Result};

use crate::config::{CacheBackend, Config};
use crate::redis::{command, Reply};

/// The KV binding's name.
const KV_BINDING: &str = "PRICES";

/// The cached comparison of `product`; an entry that does not parse counts as none.
pub async fn get(config: &Config, env: &Env, product: ProductId) -> Result<Option<Comparison>> {
    let key = cache_key(product);
    let bytes = match &config.cache {
        CacheBackend::Kv => env.kv(KV_BINDING)?.get(&key).bytes().await?,
        CacheBackend::Redis { host, port } => {
            match command(host, *port, &[b"GET", key.as_bytes()]).await? {
                Reply::Bulk(bytes) => bytes,
                Reply::Simple => None,
            }
        }
    };
    Ok(bytes.and_then(|b| Comparison::from_json(&b).ok()))
}

/// Stores `comparison` until its stale-until (KV: rounded up to KV's one-minute minimum).
pub async fn put(
    config: &Config,
    env: &Env,
    comparison: &Comparison,
    now_ms: UnixMillis,
) -> Result<()> {
    let key = cache_key(comparison.product_id);
    let value = comparison.to_json();
    match &config.cache {
        CacheBackend::Kv => {
            let ttl = kv_ttl_secs(comparison.stale_until_ms, now_ms);
            env.kv(KV_BINDING)?
                .put(&key, value)?
                .expiration_ttl(ttl)
                .execute()
                .await?;
        }
        CacheBackend::Redis { host, port } => {
            let ttl_ms = comparison.stale_until_ms.saturating_sub(now_ms);
            if ttl_ms > 0 {
                let ttl = ttl_ms.to_string();
                command(
                    host,
                    *port,
                    &[
                        b"SET",
                        key.as_bytes(),
                        value.as_bytes(),
                        b"PX",
                        ttl.as_bytes(),
                    ],
                )
                .await?;
            }
        }
    }
    Ok(())
}
