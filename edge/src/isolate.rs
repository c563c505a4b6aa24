//! This isolate's memory: everything the Worker keeps from one request to the next, in one place. An
//! isolate runs one version of the Worker, one request at a time, and may be dropped at any moment, so
//! each of these is a shortcut, never the truth. Every value expires by one rule, an absolute time
//! before which it is live ([`pricefront_core::isolate_cache`]), and the maps are bounded as their
//! [`pricefront_core::isolate_cache::Eviction`] says; the known-products filter alone is kept past its
//! time, until it is read again. What each holds, and why:
//!
//! - the settings ([`config`]): read from `env` once, held for the isolate's life;
//! - the claims ([`claims`]): the products this isolate published a request for in the last few
//!   seconds, and why ([`crate::publish`] claims, reads and releases them);
//! - the known-products filter ([`catalog`]), read by one request at a time and kept through a failed
//!   read ([`crate::miss_guard`]);
//! - the last reading of the backlog ([`backlog`], [`set_backlog`]), so that it is read at most every
//!   `BACKLOG_CHECK_MS`;
//! - the hot cache ([`hot_get`], [`hot_put`]): recent KV reads, so that a product read many times a
//!   second is answered without a KV round trip each time. An entry lives at most `HOT_CACHE_MS` (1 s
//!   by default) and never past its fresh-until ([`hot_cache_until`]); a fill through this isolate
//!   replaces it at once. A result filled through another isolate shows here within that time: next to
//!   KV's own propagation (up to a minute between locations), it changes nothing a client could see.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;

use pricefront_core::catalog::KnownProducts;
use pricefront_core::edge_rules::{claims_map, hot_cache_map, hot_cache_until, PublishedFor};
use pricefront_core::isolate_cache::{Expiring, IsolateCache};
use pricefront_core::miss_guard::CatalogCache;
use pricefront_core::stored::Stored;
use pricefront_core::{ProductId, UnixMillis};
use worker::Env;

use crate::config::Config;

/// What this isolate last read of the pipeline's backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BacklogReading {
    /// No report could be read (none stored, unreadable, or the store away): misses are admitted.
    Unknown,
    /// The total lag of the partitions whose reports still count.
    Total(u64),
}

impl BacklogReading {
    /// The reading of a total (`None`: unknown).
    pub fn of(total: Option<u64>) -> Self {
        total.map_or(Self::Unknown, Self::Total)
    }

    /// The total lag, if known.
    pub fn total(self) -> Option<u64> {
        match self {
            Self::Unknown => None,
            Self::Total(total) => Some(total),
        }
    }
}

thread_local! {
    /// The settings, read once: an isolate runs one version of the Worker, whose vars and secrets do
    /// not change under it.
    static CONFIG: OnceCell<Result<Rc<Config>, String>> = const { OnceCell::new() };
    /// The claims: product → why it was published, until the claim ends.
    static CLAIMS: RefCell<IsolateCache<ProductId, PublishedFor>> =
        RefCell::new(claims_map());
    /// The known-products filter.
    static CATALOG: RefCell<CatalogCache<Rc<KnownProducts>>> =
        const { RefCell::new(CatalogCache::new()) };
    /// The last reading of the backlog, until the next is due.
    static BACKLOG: Cell<Option<Expiring<BacklogReading>>> = const { Cell::new(None) };
    /// The hot cache: product → its KV entry, until [`hot_cache_until`].
    static HOT: RefCell<IsolateCache<ProductId, Stored>> =
        RefCell::new(hot_cache_map());
}

/// This isolate's settings, read from `env` on the first request; the error says what to set.
pub fn config(env: &Env) -> Result<Rc<Config>, String> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| {
            Config::from_env(env)
                .map(Rc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
    })
}

/// Runs `with` on this isolate's claims (synchronous: nothing else of the isolate runs meanwhile).
pub fn claims<T>(with: impl FnOnce(&mut IsolateCache<ProductId, PublishedFor>) -> T) -> T {
    CLAIMS.with_borrow_mut(with)
}

/// Runs `with` on this isolate's known-products filter.
pub fn catalog<T>(with: impl FnOnce(&mut CatalogCache<Rc<KnownProducts>>) -> T) -> T {
    CATALOG.with_borrow_mut(with)
}

/// The last reading of the backlog, if it is still live at `now_ms`.
pub fn backlog(now_ms: UnixMillis) -> Option<BacklogReading> {
    BACKLOG
        .get()
        .and_then(|reading| reading.live(now_ms).copied())
}

/// Holds `reading` until `expires_at_ms`, replacing the last one.
pub fn set_backlog(reading: BacklogReading, expires_at_ms: UnixMillis) {
    BACKLOG.set(Some(Expiring::new(reading, expires_at_ms)));
}

/// The hot cache's entry of `product`, if it is still live at `now_ms`.
pub fn hot_get(product: ProductId, now_ms: UnixMillis) -> Option<Stored> {
    HOT.with_borrow(|hot| hot.get(&product, now_ms).cloned())
}

/// Remembers `stored` (just read from KV, or just filled) for as long as it may be, at most `max_ms`
/// ([`hot_cache_until`]), if at all; forgets the product otherwise.
pub fn hot_put(stored: &Stored, now_ms: UnixMillis, max_ms: u64) {
    let product = stored.header.product_id;
    HOT.with_borrow_mut(
        |hot| match hot_cache_until(&stored.header, now_ms, max_ms) {
            Some(until) => hot.insert(product, stored.clone(), until, now_ms),
            None => {
                hot.remove(&product);
            }
        },
    );
}
