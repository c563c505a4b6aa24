//! The comparison cache the Worker reads and fills: Workers KV, or Redis where configured. Keys and
//! values come from the core crate, so the consumer and the edge agree by construction; so does the
//! rule that the newer result wins ([`pricefront_core::newest_wins`]).

use pricefront_core::edge_rules::kv_ttl_secs;
use pricefront_core::newest_wins::{supersedes, REDIS_SET_IF_NEWER};
use pricefront_core::stored::{Stored, StoredHeader};
use pricefront_core::{cache_key, Comparison, ProductId, UnixMillis};
use worker::{Env, Error, Result};

use crate::config::{CacheBackend, Config};
use crate::redis::{command, Reply};

/// The KV binding's name.
const KV_BINDING: &str = "PRICES";

/// What a [`put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The comparison is stored (or was already past its stale-until: nothing to keep).
    Written,
    /// The cache holds a result computed later; it was kept.
    KeptNewer,
}

/// The cached comparison of `product`, as stored (only its header is read); an entry that does not
/// parse counts as none.
pub async fn get(config: &Config, env: &Env, product: ProductId) -> Result<Option<Stored>> {
    let key = cache_key(product);
    let bytes = match &config.cache {
        CacheBackend::Kv => env.kv(KV_BINDING)?.get(&key).bytes().await?,
        CacheBackend::Redis { host, port } => {
            match command(host, *port, &[b"GET", key.as_bytes()]).await? {
                Reply::Bulk(bytes) => bytes,
                Reply::Simple | Reply::Integer(_) => None,
            }
        }
    };
    Ok(bytes.and_then(Stored::from_bytes))
}

/// Stores `comparison` until its stale-until (KV: rounded up to KV's one-minute minimum), unless the
/// cache holds a newer one. KV: read, compare, write (KV has no conditional write; two fills of one
/// product racing within a read's time can still both write). Redis: [`REDIS_SET_IF_NEWER`], atomic.
pub async fn put(
    config: &Config,
    env: &Env,
    comparison: &Comparison,
    now_ms: UnixMillis,
) -> Result<PutOutcome> {
    let key = cache_key(comparison.product_id);
    let value = comparison.to_json();
    match &config.cache {
        CacheBackend::Kv => {
            let kv = env.kv(KV_BINDING)?;
            let stored_at = kv
                .get(&key)
                .bytes()
                .await?
                .and_then(|b| StoredHeader::from_json(&b).ok())
                .map(|stored| stored.computed_at_ms);
            if !supersedes(comparison, stored_at) {
                return Ok(PutOutcome::KeptNewer);
            }
            let ttl = kv_ttl_secs(comparison.stale_until_ms, now_ms);
            kv.put(&key, value)?.expiration_ttl(ttl).execute().await?;
            Ok(PutOutcome::Written)
        }
        CacheBackend::Redis { host, port } => {
            let ttl_ms = comparison.stale_until_ms.saturating_sub(now_ms);
            if ttl_ms == 0 {
                return Ok(PutOutcome::Written);
            }
            let ttl = ttl_ms.to_string();
            let computed_at = comparison.computed_at_ms.to_string();
            let reply = command(
                host,
                *port,
                &[
                    b"EVAL",
                    REDIS_SET_IF_NEWER.as_bytes(),
                    b"1",
                    key.as_bytes(),
                    value.as_bytes(),
                    computed_at.as_bytes(),
                    ttl.as_bytes(),
                ],
            )
            .await?;
            match reply {
                Reply::Integer(1) => Ok(PutOutcome::Written),
                Reply::Integer(0) => Ok(PutOutcome::KeptNewer),
                _ => Err(Error::RustError(
                    "redis: unexpected reply to the set-if-newer script".into(),
                )),
            }
        }
    }
}
