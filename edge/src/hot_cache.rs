//! This isolate's memory of recent KV reads, so that a product read many times a second is answered
//! without a KV round trip each time. An entry lives at most `HOT_CACHE_MS` (1 s by default) and never
//! past its fresh-until ([`pricefront_core::edge_rules::hot_cache_until`]); a fill through this isolate
//! replaces it at once. A result filled through another isolate shows here within that time: next to
//! KV's own propagation (up to a minute between locations), it changes nothing a client could see.

use std::cell::RefCell;
use std::collections::HashMap;

use pricefront_core::edge_rules::hot_cache_until;
use pricefront_core::stored::Stored;
use pricefront_core::{ProductId, UnixMillis};

/// Above this many entries, the expired ones go, and if that is not enough, all of them.
const MAX_ENTRIES: usize = 4_096;

thread_local! {
    static ENTRIES: RefCell<HashMap<ProductId, (Stored, UnixMillis)>> = RefCell::new(HashMap::new());
}

/// The remembered entry of `product`, if it is still within its time.
pub fn get(product: ProductId, now_ms: UnixMillis) -> Option<Stored> {
    ENTRIES.with_borrow(|entries| {
        entries
            .get(&product)
            .filter(|(_, until)| *until > now_ms)
            .map(|(stored, _)| stored.clone())
    })
}

/// Remembers `stored` (just read from KV, or just filled) for as long as it may be, if at all;
/// forgets the product otherwise.
pub fn put(stored: &Stored, now_ms: UnixMillis, max_ms: u64) {
    let product = stored.header.product_id;
    ENTRIES.with_borrow_mut(
        |entries| match hot_cache_until(&stored.header, now_ms, max_ms) {
            Some(until) => {
                if entries.len() >= MAX_ENTRIES {
                    entries.retain(|_, (_, until)| *until > now_ms);
                    if entries.len() >= MAX_ENTRIES {
                        entries.clear();
                    }
                }
                entries.insert(product, (stored.clone(), until));
            }
            None => {
                entries.remove(&product);
            }
        },
    );
}
