//! The checks a read passes before it publishes: the known-products filter (404; read by one request
//! of an isolate at a time, its last good copy kept through a failed read), checked before the
//! cache is even read (an id outside the catalog was never computed, and a flood of unknown ids then
//! costs no cache reads), then, on a miss that would publish, the pipeline's backlog (503) and the
//! client's rate limit (429); a poll of a request published here in the last few seconds publishes
//! nothing and is not counted. Each is off unless configured, and a check that cannot be made (KV or
//! Redis away, no binding) lets the miss through: these guard the vendors against floods, they must
//! not take the service down themselves. The rules are in [`pricefront_core::miss_guard`],
//! [`pricefront_core::catalog`] and [`pricefront_core::backlog`].

use std::rc::Rc;

use pricefront_core::backlog::{
    admits_misses, backlog_key, max_age_ms, merged_report, BacklogReport, REPORT_TTL_SECS,
};
use pricefront_core::catalog::KnownProducts;
use pricefront_core::miss_guard::{CatalogRead, CatalogStep, Limiter, Refusal};
use pricefront_core::{ProductId, UnixMillis};
use worker::{Delay, Env, Result};

use crate::bindings;
use crate::clock;
use crate::config::{CacheBackend, Config};
use crate::incoming::Incoming;
use crate::isolate::{self, BacklogReading};
use crate::redis;

/// The rate limiting binding (`[[ratelimits]]` in `wrangler.toml`) of the client's limit.
const LIMITER_BINDING: &str = "MISS_LIMITER";

/// The binding of the address's limit behind API keys (`header:` mode).
const ADDRESS_LIMITER_BINDING: &str = "MISS_ADDRESS_LIMITER";

/// How long a request waits, at most, for another request's first read of the filter.
const CATALOG_WAIT_MS: u64 = 2_000;

/// Between two looks at another request's first read of the filter.
const CATALOG_WAIT_STEP_MS: u64 = 20;

/// Why `request`'s miss may not publish, if it may not (the catalog was checked before the read).
pub async fn refusal(
    request: &Incoming,
    env: &Env,
    config: &Config,
    now_ms: UnixMillis,
) -> Option<Refusal> {
    if !admits_misses(backlog(env, config, now_ms).await, config.backlog_max) {
        return Some(Refusal::Backlogged);
    }
    if !within_rate_limit(request, env, config).await {
        return Some(Refusal::RateLimited);
    }
    None
}

/// Whether new misses may publish at all now (the backlog alone): a stale hit's refresh asks this.
pub async fn pipeline_has_room(env: &Env, config: &Config, now_ms: UnixMillis) -> bool {
    admits_misses(backlog(env, config, now_ms).await, config.backlog_max)
}

/// Whether `product` may be in the catalog: `true` without a filter, or when none could be read yet.
pub async fn known(env: &Env, config: &Config, product: ProductId, now_ms: UnixMillis) -> bool {
    let Some(key) = &config.known_products_key else {
        return true;
    };
    let mut now = now_ms;
    let give_up_at = now_ms + CATALOG_WAIT_MS;
    let filter = loop {
        match isolate::catalog(|catalog| catalog.step(now)) {
            CatalogStep::Use(filter) => break filter,
            CatalogStep::Read => {
                let read = read_catalog(env, key).await;
                let now = clock::now_ms();
                isolate::catalog(|catalog| catalog.finish(read, now));
            }
            // Another request is reading the first filter: its answer, unless it is very slow.
            CatalogStep::Wait if now < give_up_at => {
                Delay::from(std::time::Duration::from_millis(CATALOG_WAIT_STEP_MS)).await;
            }
            CatalogStep::Wait => break None,
        }
        now = clock::now_ms();
    };
    filter.is_none_or(|filter| filter.may_contain(product))
}

async fn read_catalog(env: &Env, key: &str) -> CatalogRead<Rc<KnownProducts>> {
    let bytes = bindings::kv_get(env, key)
        .await
        .map_err(|error| error.to_string());
    match bytes {
        Ok(Some(bytes)) => match KnownProducts::from_bytes(&bytes) {
            Ok(filter) => CatalogRead::Loaded(Rc::new(filter)),
            Err(error) => {
                worker::console_error!(
                    "KNOWN_PRODUCTS_KEY {key}: {error}; keeping the last filter"
                );
                CatalogRead::Unreadable
            }
        },
        Ok(None) => {
            worker::console_error!("KNOWN_PRODUCTS_KEY {key} holds nothing in KV; not filtering");
            CatalogRead::Absent
        }
        Err(error) => {
            worker::console_warn!(
                "the known-products filter could not be read: {error}; keeping the last one"
            );
            CatalogRead::Failed
        }
    }
}

/// The pipeline's total lag, read at most every `BACKLOG_CHECK_MS` per isolate
/// ([`isolate::backlog`]); `None` when off or unknown.
async fn backlog(env: &Env, config: &Config, now_ms: UnixMillis) -> Option<u64> {
    if config.backlog_max == 0 {
        return None;
    }
    if let Some(reading) = isolate::backlog(now_ms) {
        return reading.total();
    }
    let from_kv = matches!(config.cache, CacheBackend::Kv);
    let total = read_backlog(env, config)
        .await
        .map(|report| report.total_within(now_ms, max_age_ms(from_kv)));
    let next_read_ms = now_ms.saturating_add(config.backlog_check_ms);
    isolate::set_backlog(BacklogReading::of(total), next_read_ms);
    total
}

/// The stored backlog report: in Redis where the Worker reads Redis (the consumers write it there),
/// else in KV (the consumers report it through `PUT /internal/v1/backlog`).
async fn read_backlog(env: &Env, config: &Config) -> Option<BacklogReport> {
    let key = backlog_key(&config.topic);
    let bytes = match &config.cache {
        CacheBackend::Redis(address) | CacheBackend::KvThenRedis(address) => {
            match redis::command(address, config.redis_timeout, &[b"GET", key.as_bytes()]).await {
                Ok(pricefront_core::redis_protocol::Reply::Bulk(bytes)) => bytes,
                _ => None,
            }
        }
        CacheBackend::Kv => bindings::kv_get(env, &key).await.ok()?,
    };
    BacklogReport::from_json(&bytes?)
}

/// Merges a consumer's report into the one in KV (`PUT /internal/v1/backlog`).
pub async fn store_backlog_report(
    env: &Env,
    config: &Config,
    report: &BacklogReport,
    now_ms: UnixMillis,
) -> Result<()> {
    let key = backlog_key(&config.topic);
    let stored = bindings::kv_get(env, &key).await?;
    let merged = merged_report(stored.as_deref(), report, now_ms);
    // As bytes, as every KV write of the Worker (see `cache::put`).
    bindings::kv_put(env, &key, merged.as_bytes(), REPORT_TTL_SECS).await?;
    Ok(())
}

/// Whether the client may make one more miss: within every limit it counts against (its API key's
/// and its address's in `header:` mode); `true` when nothing is limited or a binding is missing.
async fn within_rate_limit(request: &Incoming, env: &Env, config: &Config) -> bool {
    let header = match &config.miss_limit_key {
        pricefront_core::miss_guard::MissLimitKey::Header(name) => request.header(name),
        _ => None,
    };
    let ip = request.header("CF-Connecting-IP");
    for (limiter, key) in config
        .miss_limit_key
        .limits_of(header.as_deref(), ip.as_deref())
    {
        let binding = match limiter {
            Limiter::Client => LIMITER_BINDING,
            Limiter::Address => ADDRESS_LIMITER_BINDING,
        };
        match bindings::within_limit(env, binding, &key).await {
            Ok(false) => return false,
            Ok(true) => {}
            Err(error) => worker::console_warn!("the miss rate limiter {binding} failed: {error}"),
        }
    }
    true
}
