//! The Worker's settings: public vars from `wrangler.toml`, secrets from `wrangler secret put`. An
//! isolate reads them once ([`crate::isolate::config`]).

use std::time::Duration;

use pricefront_core::backlog::DEFAULT_BACKLOG_MAX;
use pricefront_core::early_refresh::{parse_beta, DEFAULT_BETA};
use pricefront_core::edge_rules::DEFAULT_HOT_CACHE_MS;
use pricefront_core::miss_guard::{MissLimitKey, MissLimitKeyError};
use pricefront_core::prefer_wait::{granted_wait_secs, requested_wait_secs, DEFAULT_MAX_WAIT_SECS};
use pricefront_core::redis_protocol::{RedisAddress, RedisProtocolError};
use pricefront_core::rest_proxy::{ProxyApi, ProxyConfigError};
use worker::Env;

use crate::outbound::basic_authorization;

/// The Durable Object binding of the product gates.
pub const GATE_BINDING: &str = "GATES";

/// Where the Worker reads and writes comparisons.
pub enum CacheBackend {
    /// `kv`: the Workers KV namespace bound as `PRICES`.
    Kv,
    /// `redis`: Redis, over the sockets API.
    Redis(RedisAddress),
    /// `kv+redis`: KV first; on a KV miss or stale entry, Redis (the consumers' own copy, consistent
    /// where KV is not), whose newer result is served and written back to KV. Fills write KV.
    KvThenRedis(RedisAddress),
}

/// Settings that cannot work; the handlers answer them as a `/problems/misconfigured` 500.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The REST proxy settings.
    #[error(transparent)]
    Proxy(#[from] ProxyConfigError),
    /// `REDIS_URL`.
    #[error("REDIS_URL: {0}")]
    RedisUrl(#[from] RedisProtocolError),
    /// `CACHE_BACKEND`.
    #[error("CACHE_BACKEND must be kv, redis or kv+redis, not {0:?}")]
    CacheBackend(String),
    /// `MISS_RATE_LIMIT_KEY`.
    #[error(transparent)]
    MissLimitKey(#[from] MissLimitKeyError),
    /// `REST_PROXY_USERNAME` or `REST_PROXY_PASSWORD` outside Latin-1.
    #[error("REST_PROXY_USERNAME and REST_PROXY_PASSWORD must be Latin-1 (HTTP Basic)")]
    Credentials,
    /// `PRODUCT_GATE`, or the binding it needs.
    #[error("{0}")]
    Gate(&'static str),
}

/// How the Worker reaches the product gates (`PRODUCT_GATE = "on"`).
#[derive(Clone)]
pub struct GateSettings {
    /// Where new gates are placed (`GATE_LOCATION_HINT`: near the REST proxy and the consumers).
    pub location_hint: Option<String>,
    /// The longest one call to a gate may take beyond the wait it asks for (`GATE_TIMEOUT_MS`).
    pub timeout: Duration,
}

/// Everything the handlers need to know.
pub struct Config {
    pub cache: CacheBackend,
    /// The REST proxy's base URL, where its API paths start (Confluent Cloud: ending in `/kafka`).
    pub proxy_url: String,
    pub proxy_api: ProxyApi,
    /// The `Authorization` header for the REST proxy (Basic, from `REST_PROXY_USERNAME` and
    /// `REST_PROXY_PASSWORD`), encoded once.
    pub proxy_authorization: Option<String>,
    pub topic: String,
    pub publish_timeout: Duration,
    pub fill_token: Option<String>,
    /// The longest `Prefer: wait` granted, in seconds (`PREFER_WAIT_MAX_SECS`; 0 turns it off).
    pub prefer_wait_max_secs: u64,
    /// XFetch's β for early refreshes of fresh hits (`EARLY_REFRESH_BETA`; 0 turns them off).
    pub early_refresh_beta: f64,
    /// How long an isolate answers a fresh KV entry from memory (`HOT_CACHE_MS`; 0 turns it off).
    pub hot_cache_ms: u64,
    /// Whom the `MISS_LIMITER` binding counts (`MISS_RATE_LIMIT_KEY`).
    pub miss_limit_key: MissLimitKey,
    /// The limiter's period in seconds, as configured in `wrangler.toml`: the 429's `Retry-After`.
    pub miss_limit_period_secs: u64,
    /// The KV key of the known-products filter (`KNOWN_PRODUCTS_KEY`; unset: no filter).
    pub known_products_key: Option<String>,
    /// Above this total lag, misses are answered 503 (`BACKLOG_MAX`; 0 turns backpressure off).
    pub backlog_max: u64,
    /// How often an isolate reads the backlog at most, in ms (`BACKLOG_CHECK_MS`).
    pub backlog_check_ms: u64,
    /// The longest one Redis command may take, connection included (`REDIS_TIMEOUT_MS`).
    pub redis_timeout: Duration,
    /// The product gates, unless `PRODUCT_GATE = "off"` (then misses coalesce per isolate only).
    pub gate: Option<GateSettings>,
    /// Whether a refresh claimed in this isolate keeps its other stale reads from asking the gate
    /// again for a few seconds (`ISOLATE_CLAIM`; off, every one asks). Misses always ask the gate;
    /// without a gate the isolate's claim is the only coalescing, whatever this says.
    pub isolate_claim: bool,
}

#[inline(never)]
fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

/// A number setting; `default` when unset or not a number. Not inlined: a copy per setting would cost
/// the wasm several KB.
#[inline(never)]
fn number(env: &Env, name: &str, default: u64) -> u64 {
    var(env, name)
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

impl Config {
    /// The seconds of waiting granted to a request with this `Prefer` header, if any.
    pub fn granted_wait(&self, prefer: Option<&str>) -> Option<u64> {
        let requested = requested_wait_secs(prefer?)?;
        granted_wait_secs(requested, self.prefer_wait_max_secs)
    }

    /// Reads the settings, with the defaults of the local stack. REST proxy settings that cannot work
    /// (v3 without `KAFKA_CLUSTER_ID`, an unknown `REST_PROXY_API`, a bare Confluent Cloud URL) are an
    /// error, which the handlers answer as a `/problems/misconfigured` 500.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let redis = || -> Result<RedisAddress, ConfigError> {
            // A managed Redis's URL holds its password: a secret (`wrangler secret put REDIS_URL`).
            match secret(env, "REDIS_URL").or_else(|| var(env, "REDIS_URL")) {
                Some(url) => Ok(RedisAddress::parse(&url)?),
                None => Ok(RedisAddress::plain(
                    var(env, "REDIS_HOST").unwrap_or_else(|| "127.0.0.1".into()),
                    u16::try_from(number(env, "REDIS_PORT", 6390)).unwrap_or(6390),
                )),
            }
        };
        let cache = match var(env, "CACHE_BACKEND").as_deref() {
            None | Some("kv") => CacheBackend::Kv,
            Some("redis") => CacheBackend::Redis(redis()?),
            Some("kv+redis") => CacheBackend::KvThenRedis(redis()?),
            Some(other) => return Err(ConfigError::CacheBackend(other.to_owned())),
        };
        let proxy_api = ProxyApi::from_settings(
            var(env, "REST_PROXY_API").as_deref(),
            var(env, "KAFKA_CLUSTER_ID").as_deref(),
            var(env, "REST_PROXY_RECORD_HEADERS").as_deref(),
        )?;
        let proxy_url =
            var(env, "REST_PROXY_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into());
        proxy_api.check_base_url(&proxy_url)?;
        // Unset: on where the binding is (wrangler.toml has it), off where an older configuration has
        // none; set to on without it, the operator asked for what cannot work.
        let bound = env.durable_object(GATE_BINDING).is_ok();
        let gate =
            match var(env, "PRODUCT_GATE").as_deref() {
                Some("off") => None,
                None if !bound => None,
                Some("on") if !bound => return Err(ConfigError::Gate(
                    "PRODUCT_GATE is on but there is no GATES Durable Object binding: add it to \
                     wrangler.toml (class ProductGate) or set PRODUCT_GATE to off",
                )),
                None | Some("on") => Some(GateSettings {
                    location_hint: var(env, "GATE_LOCATION_HINT").filter(|hint| !hint.is_empty()),
                    timeout: Duration::from_millis(number(env, "GATE_TIMEOUT_MS", 1_000)),
                }),
                Some(_) => return Err(ConfigError::Gate("PRODUCT_GATE must be on or off")),
            };
        let proxy_authorization = match (
            secret(env, "REST_PROXY_USERNAME"),
            secret(env, "REST_PROXY_PASSWORD"),
        ) {
            (Some(user), Some(password)) => {
                Some(basic_authorization(&user, &password).ok_or(ConfigError::Credentials)?)
            }
            _ => None,
        };
        Ok(Self {
            cache,
            proxy_url,
            proxy_api,
            proxy_authorization,
            topic: var(env, "REQUEST_TOPIC")
                .unwrap_or_else(|| pricefront_core::REQUEST_TOPIC.into()),
            publish_timeout: Duration::from_millis(number(env, "PUBLISH_TIMEOUT_MS", 2_000)),
            fill_token: secret(env, "FILL_TOKEN"),
            prefer_wait_max_secs: number(env, "PREFER_WAIT_MAX_SECS", DEFAULT_MAX_WAIT_SECS),
            early_refresh_beta: var(env, "EARLY_REFRESH_BETA")
                .and_then(|b| parse_beta(&b))
                .unwrap_or(DEFAULT_BETA),
            hot_cache_ms: number(env, "HOT_CACHE_MS", DEFAULT_HOT_CACHE_MS),
            miss_limit_key: MissLimitKey::parse(var(env, "MISS_RATE_LIMIT_KEY").as_deref())?,
            miss_limit_period_secs: number(env, "MISS_RATE_LIMIT_PERIOD_SECS", 60),
            known_products_key: var(env, "KNOWN_PRODUCTS_KEY"),
            backlog_max: number(env, "BACKLOG_MAX", DEFAULT_BACKLOG_MAX),
            backlog_check_ms: number(env, "BACKLOG_CHECK_MS", 5_000),
            redis_timeout: Duration::from_millis(number(env, "REDIS_TIMEOUT_MS", 1_000)),
            gate,
            isolate_claim: var(env, "ISOLATE_CLAIM").as_deref() != Some("off"),
        })
    }
}
