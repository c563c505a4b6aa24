//! The comparison cache the Worker reads and fills: Workers KV, Redis, or KV with Redis behind it.
//! Keys and values come from the core crate, so the consumer and the edge agree by construction; so do
//! the rules that the newer result wins ([`pricefront_core::newest_wins`]) and which tier answers
//! ([`pricefront_core::edge_rules::pick_tier`]).

use pricefront_core::edge_rules::{
    first_tier, kv_ttl_secs, needs_second_tier, pick_tier, FirstTier, TierPick,
};
use pricefront_core::freshness::cache_ttl_ms;
use pricefront_core::newest_wins::{
    replacement, replacement_from_script, Held, Replacement, REDIS_STORE_IF_REPLACES,
};
use pricefront_core::redis_protocol::{RedisAddress, Reply};
use pricefront_core::stored::{Stored, StoredHeader};
use pricefront_core::{cache_key, Comparison, ProductId, UnixMillis};
use worker::{Env, Error, Result};

use crate::bindings;
use crate::config::{CacheBackend, Config};
use crate::isolate;
use crate::publish;
use crate::redis::command;

/// What a read found: the cached comparison, as stored (only its header is read), and whether KV
/// should hold it too.
pub enum Lookup {
    /// No tier holds an entry (or none that parses).
    Miss,
    /// The entry to serve; nothing to do after.
    Found(Stored),
    /// With `kv+redis`: Redis's entry, newer than KV's or the only usable one. Served, then written to
    /// KV after the answer ([`write_back`]) unless `kv_had` (KV's header, for the newest-wins check) is
    /// as new.
    FromRedis {
        /// Redis's entry.
        stored: Stored,
        /// What KV held (usable or not), if anything.
        kv_had: Option<StoredHeader>,
    },
}

impl Lookup {
    /// An entry found with nothing to write back, or a miss.
    fn of(stored: Option<Stored>) -> Self {
        stored.map_or(Self::Miss, Self::Found)
    }
}

/// The cached comparison of `product`; an entry that does not parse counts as none.
pub async fn get(
    config: &Config,
    env: &Env,
    product: ProductId,
    now_ms: UnixMillis,
) -> Result<Lookup> {
    let key = cache_key(product);
    match &config.cache {
        CacheBackend::Kv => Ok(Lookup::of(
            kv_read(config, env, product, &key, now_ms).await?,
        )),
        CacheBackend::Redis(address) => Ok(Lookup::of(redis_get(config, address, &key).await?)),
        CacheBackend::KvThenRedis(address)
            if first_tier(publish::published_for(product, now_ms)) == FirstTier::Redis =>
        {
            // This isolate just published the product's miss: the consumer stores the result in
            // Redis first and in KV after, so the polls read Redis first and KV only while Redis has
            // nothing usable (one read per poll, not two; the fill brings KV along). Not after a
            // refresh: KV holds the product then, and a fresh entry there needs no Redis.
            let redis = redis_get(config, address, &key)
                .await
                .unwrap_or_else(|error| {
                    worker::console_warn!("redis (second tier) unreachable: {error}");
                    None
                });
            if pick_tier(None, redis.as_ref().map(|s| &s.header), now_ms) == TierPick::Redis {
                return Ok(Lookup::of(redis));
            }
            Ok(Lookup::of(
                kv_read(config, env, product, &key, now_ms).await?,
            ))
        }
        CacheBackend::KvThenRedis(address) => {
            let kv = kv_read(config, env, product, &key, now_ms).await?;
            let kv_header = kv.as_ref().map(|s| s.header);
            if !needs_second_tier(kv_header.as_ref(), now_ms) {
                return Ok(Lookup::of(kv));
            }
            // Redis unreachable: KV's answer (or a miss) is still an answer.
            let redis = match redis_get(config, address, &key).await {
                Ok(redis) => redis,
                Err(error) => {
                    worker::console_warn!("redis (second tier) unreachable: {error}");
                    None
                }
            };
            let redis_header = redis.as_ref().map(|s| s.header);
            // `pick_tier` picks Redis only when Redis has a usable entry.
            Ok(
                match (
                    pick_tier(kv_header.as_ref(), redis_header.as_ref(), now_ms),
                    redis,
                ) {
                    (TierPick::Kv, _) => Lookup::of(kv),
                    (TierPick::Redis, Some(stored)) => Lookup::FromRedis {
                        stored,
                        kv_had: kv_header,
                    },
                    (TierPick::Redis, None) | (TierPick::Neither, _) => Lookup::Miss,
                },
            )
        }
    }
}

/// The cached comparison of `product` in the consistent tier: Redis for `redis` and `kv+redis`
/// (where the consumers store first), KV for `kv`.
pub async fn get_consistent(
    config: &Config,
    env: &Env,
    product: ProductId,
) -> Result<Option<Stored>> {
    let key = cache_key(product);
    match &config.cache {
        CacheBackend::Kv => kv_get(env, &key).await,
        CacheBackend::Redis(address) | CacheBackend::KvThenRedis(address) => {
            redis_get(config, address, &key).await
        }
    }
}

/// KV's entry of `product`: from this isolate's memory when it read it very recently, else from KV
/// (then remembered, when fresh, for up to `HOT_CACHE_MS`).
async fn kv_read(
    config: &Config,
    env: &Env,
    product: ProductId,
    key: &str,
    now_ms: UnixMillis,
) -> Result<Option<Stored>> {
    if let Some(stored) = isolate::hot_get(product, now_ms) {
        return Ok(Some(stored));
    }
    let stored = kv_get(env, key).await?;
    if let Some(stored) = &stored {
        isolate::hot_put(stored, now_ms, config.hot_cache_ms);
    }
    Ok(stored)
}

async fn kv_get(env: &Env, key: &str) -> Result<Option<Stored>> {
    let bytes = bindings::kv_get(env, key).await?;
    Ok(bytes.and_then(Stored::from_bytes))
}

async fn redis_get(config: &Config, address: &RedisAddress, key: &str) -> Result<Option<Stored>> {
    Ok(
        match command(address, config.redis_timeout, &[b"GET", key.as_bytes()]).await? {
            Reply::Bulk(bytes) => bytes.and_then(Stored::from_bytes),
            Reply::Simple(_) | Reply::Integer(_) => None,
        },
    )
}

/// Writes `stored` (Redis's answer to a `kv+redis` read) to KV, unless `kv_had` is as new.
pub async fn write_back(
    config: &Config,
    env: &Env,
    stored: &Stored,
    kv_had: Option<StoredHeader>,
    now_ms: UnixMillis,
) {
    let key = cache_key(stored.header.product_id);
    let newer = kv_had.is_none_or(|kv| stored.header.computed_at_ms > kv.computed_at_ms);
    if !newer {
        return;
    }
    let ttl = kv_ttl_secs(stored.header.stale_until_ms, now_ms);
    match bindings::kv_put(env, &key, &stored.json, ttl).await {
        Ok(()) => isolate::hot_put(stored, now_ms, config.hot_cache_ms),
        Err(error) => worker::console_warn!("writing {key} back to KV failed: {error}"),
    }
}

/// Stores `comparison` until its stale-until (KV: rounded up to KV's one-minute minimum), unless the
/// cache holds a newer one, or a servable one with offers while `comparison` has none
/// ([`replacement`]). KV (also with `kv+redis`: the consumers write Redis themselves): read, decide,
/// write (KV has no conditional write; two fills of one product racing within a read's time can still
/// both write). Redis: [`REDIS_STORE_IF_REPLACES`], atomic.
pub async fn put(
    config: &Config,
    env: &Env,
    comparison: &Comparison,
    value: String,
    now_ms: UnixMillis,
) -> Result<Replacement> {
    let key = cache_key(comparison.product_id);
    match &config.cache {
        CacheBackend::Kv | CacheBackend::KvThenRedis(_) => {
            let held = bindings::kv_get(env, &key)
                .await?
                .and_then(|b| StoredHeader::from_json(&b).ok())
                .map(|stored| Held::from(&stored));
            let decision = replacement(comparison, held);
            if decision != Replacement::Store {
                return Ok(decision);
            }
            let ttl = kv_ttl_secs(comparison.stale_until_ms, now_ms);
            // As bytes: `put` of a string goes through serde-wasm-bindgen (and with it a float
            // formatter and JSON.stringify), several KB of wasm for the same stored bytes.
            bindings::kv_put(env, &key, value.as_bytes(), ttl).await?;
            if let Some(stored) = Stored::from_bytes(value.into_bytes()) {
                isolate::hot_put(&stored, now_ms, config.hot_cache_ms);
            }
            Ok(Replacement::Store)
        }
        CacheBackend::Redis(address) => {
            let Some(ttl_ms) = cache_ttl_ms(comparison.stale_until_ms, now_ms) else {
                return Ok(Replacement::Store);
            };
            let ttl = ttl_ms.to_string();
            let computed_at = comparison.computed_at_ms.to_string();
            let offers = comparison.offers.len().to_string();
            let reply = command(
                address,
                config.redis_timeout,
                &[
                    b"EVAL",
                    REDIS_STORE_IF_REPLACES.as_bytes(),
                    b"1",
                    key.as_bytes(),
                    value.as_bytes(),
                    computed_at.as_bytes(),
                    ttl.as_bytes(),
                    offers.as_bytes(),
                ],
            )
            .await?;
            match reply {
                Reply::Integer(n) => replacement_from_script(n),
                _ => None,
            }
            .ok_or_else(|| Error::RustError("redis: unexpected reply to the store script".into()))
        }
    }
}
