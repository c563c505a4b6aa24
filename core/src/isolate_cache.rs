//! What an edge isolate remembers between its requests, and the one rule of when it forgets: every
//! value is held until an absolute time, and is live before it ([`is_live`]). One value held until a
//! time is an [`Expiring`]; many, keyed, an [`IsolateCache`], bounded as its [`Eviction`] says.
//!
//! An isolate runs one request at a time on one thread and may be dropped at any moment, so this memory
//! is a shortcut, never a source of truth: forgetting a value early costs a read, not a wrong answer.

use std::collections::HashMap;
use std::hash::Hash;

use crate::UnixMillis;

/// Whether a value held until `expires_at_ms` may still be used at `now_ms`: the one expiry rule of an
/// isolate's memory (live strictly before its expiry).
pub fn is_live(expires_at_ms: UnixMillis, now_ms: UnixMillis) -> bool {
    now_ms < expires_at_ms
}

/// A value held until a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiring<V> {
    /// The value.
    pub value: V,
    /// When it stops being live ([`is_live`]).
    pub expires_at_ms: UnixMillis,
}

impl<V> Expiring<V> {
    /// `value`, held until `expires_at_ms`.
    pub const fn new(value: V, expires_at_ms: UnixMillis) -> Self {
        Self {
            value,
            expires_at_ms,
        }
    }

    /// Whether it is still live at `now_ms`.
    pub fn is_live(&self, now_ms: UnixMillis) -> bool {
        is_live(self.expires_at_ms, now_ms)
    }

    /// The value, if it is still live at `now_ms`.
    pub fn live(&self, now_ms: UnixMillis) -> Option<&V> {
        self.is_live(now_ms).then_some(&self.value)
    }
}

/// What an insert into a full [`IsolateCache`] drops. Either way the expired entries go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Then, if it is still full, every entry: a flood of keys can neither grow the map without bound
    /// nor make each insert scan it. For what is only a shortcut (a copy of what KV holds).
    ExpiredThenAll,
    /// Only those: the map grows past its bound while all its entries are live. For what must not be
    /// forgotten while it is live (a claim: forgotten, its product would be published again), whose
    /// entries all expire soon.
    ExpiredOnly,
}

/// A bounded map whose entries expire: an insert into a full map (`max_entries` entries) drops as its
/// [`Eviction`] says.
#[derive(Debug, Clone)]
pub struct IsolateCache<K, V> {
    entries: HashMap<K, Expiring<V>>,
    max_entries: usize,
    eviction: Eviction,
}

impl<K: Eq + Hash, V> IsolateCache<K, V> {
    /// An empty map of `max_entries` entries at most, but as `eviction` allows (and always the last
    /// one inserted).
    pub fn new(max_entries: usize, eviction: Eviction) -> Self {
        Self {
            entries: HashMap::new(),
            max_entries,
            eviction,
        }
    }

    /// The value of `key`, if it is still live at `now_ms`.
    pub fn get(&self, key: &K, now_ms: UnixMillis) -> Option<&V> {
        self.entries.get(key)?.live(now_ms)
    }

    /// The value of `key` to change in place, if it is still live at `now_ms` (its expiry unchanged).
    pub fn get_mut(&mut self, key: &K, now_ms: UnixMillis) -> Option<&mut V> {
        self.entries
            .get_mut(key)
            .filter(|entry| entry.is_live(now_ms))
            .map(|entry| &mut entry.value)
    }

    /// Holds `value` under `key` until `expires_at_ms`, replacing what the key held; when the map is
    /// full, its expired entries at `now_ms` go first, and if that is not enough, what its
    /// [`Eviction`] says.
    pub fn insert(&mut self, key: K, value: V, expires_at_ms: UnixMillis, now_ms: UnixMillis) {
        if self.entries.len() >= self.max_entries {
            self.entries.retain(|_, entry| entry.is_live(now_ms));
            if self.entries.len() >= self.max_entries && self.eviction == Eviction::ExpiredThenAll {
                self.entries.clear();
            }
        }
        self.entries
            .insert(key, Expiring::new(value, expires_at_ms));
    }

    /// Forgets `key`; its value, live or not, if it had one.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|entry| entry.value)
    }

    /// Forgets `key` if what it holds expires at exactly `expires_at_ms` (the value that time names,
    /// not a later one put under the same key since).
    pub fn remove_if_expires_at(&mut self, key: &K, expires_at_ms: UnixMillis) {
        if self
            .entries
            .get(key)
            .is_some_and(|entry| entry.expires_at_ms == expires_at_ms)
        {
            self.entries.remove(key);
        }
    }

    /// How many entries it holds, expired ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no entry at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_live_strictly_before_its_expiry() {
        assert!(is_live(1_000, 999));
        assert!(!is_live(1_000, 1_000));
        assert!(!is_live(1_000, 1_001));
        assert!(!is_live(0, 0));
        assert!(is_live(UnixMillis::MAX, UnixMillis::MAX - 1));
        let held = Expiring::new("v", 1_000);
        assert_eq!(held.live(999), Some(&"v"));
        assert_eq!(held.live(1_000), None);
    }

    #[test]
    fn an_entry_is_read_and_changed_only_while_it_is_live() {
        let mut cache = IsolateCache::new(10, Eviction::ExpiredThenAll);
        cache.insert(1, "a", 1_000, 0);
        assert_eq!(cache.get(&1, 999), Some(&"a"));
        assert_eq!(cache.get(&1, 1_000), None);
        assert_eq!(cache.get(&2, 0), None);
        *cache.get_mut(&1, 500).unwrap() = "b";
        assert_eq!(cache.get(&1, 500), Some(&"b"));
        assert_eq!(cache.get_mut(&1, 1_000), None);
        // An expired entry is still held (until an insert into a full map, or a removal).
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.remove(&1), Some("b"));
        assert!(cache.is_empty());
    }

    #[test]
    fn a_full_map_drops_its_expired_entries_first() {
        let mut cache = IsolateCache::new(3, Eviction::ExpiredThenAll);
        cache.insert(1, (), 100, 0);
        cache.insert(2, (), 1_000, 0);
        cache.insert(3, (), 1_000, 0);
        // Full at 500: entry 1 has expired, and goes; the live ones stay.
        cache.insert(4, (), 1_000, 500);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&1, 0), None);
        for key in [2, 3, 4] {
            assert_eq!(cache.get(&key, 500), Some(&()), "{key}");
        }
    }

    #[test]
    fn a_map_full_of_live_entries_is_cleared() {
        let mut cache = IsolateCache::new(3, Eviction::ExpiredThenAll);
        for key in [1, 2, 3] {
            cache.insert(key, (), 1_000, 0);
        }
        cache.insert(4, (), 1_000, 500);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&4, 500), Some(&()));
        assert_eq!(cache.get(&1, 500), None);
        // Below the bound, nothing is evicted, whatever has expired.
        cache.insert(5, (), 600, 500);
        cache.insert(6, (), 1_000, 700);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn a_map_that_keeps_live_entries_grows_past_its_bound_instead() {
        let mut cache = IsolateCache::new(3, Eviction::ExpiredOnly);
        cache.insert(1, (), 100, 0);
        for key in [2, 3] {
            cache.insert(key, (), 1_000, 0);
        }
        // Full at 500: the expired entry goes, the live ones stay.
        cache.insert(4, (), 1_000, 500);
        assert_eq!(cache.len(), 3);
        // Full of live entries: all stay, and the map grows.
        cache.insert(5, (), 1_000, 500);
        assert_eq!(cache.len(), 4);
        for key in [2, 3, 4, 5] {
            assert_eq!(cache.get(&key, 500), Some(&()), "{key}");
        }
    }

    #[test]
    fn a_removal_by_expiry_leaves_a_newer_value_of_the_key() {
        let mut cache = IsolateCache::new(10, Eviction::ExpiredThenAll);
        cache.insert(1, "first", 1_000, 0);
        cache.insert(1, "second", 2_000, 1_500);
        cache.remove_if_expires_at(&1, 1_000);
        assert_eq!(cache.get(&1, 1_500), Some(&"second"));
        cache.remove_if_expires_at(&1, 2_000);
        assert_eq!(cache.get(&1, 1_500), None);
        assert!(cache.is_empty());
    }
}
