//! How long a comparison is fresh and how long it may still be served stale, and the
//! fresh / stale / missing decision at a given time.

use serde::{Deserialize, Serialize};

use crate::UnixMillis;

/// The windows that turn the vendors' price guarantees into a result's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FreshnessPolicy {
    /// The longest a partial result (some vendors failed) stays fresh, whatever the guarantees say.
    pub partial_fresh_ms: u64,
    /// How long a result where every vendor failed stays fresh (negative caching).
    pub negative_fresh_ms: u64,
    /// How long past fresh-until a result may still be served, marked stale, while it is refreshed.
    pub stale_grace_ms: u64,
}

impl Default for FreshnessPolicy {
    fn default() -> Self {
        Self {
            partial_fresh_ms: 60_000,
            negative_fresh_ms: 10_000,
            stale_grace_ms: 300_000,
        }
    }
}

/// The lifetime of one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Until when the result is fresh.
    pub fresh_until_ms: UnixMillis,
    /// Until when the result may be served stale; the cache entry expires then.
    pub stale_until_ms: UnixMillis,
}

impl FreshnessPolicy {
    /// The lifetime of a result computed at `computed_at_ms`.
    ///
    /// `guarantees_ms` are the price-guarantee windows of the vendors that answered; `complete` says whether
    /// every configured vendor answered. Fresh-until is computed-at plus the shortest guarantee, capped for
    /// partial results, and the brief negative window when nobody answered.
    pub fn lifetime(
        &self,
        computed_at_ms: UnixMillis,
        guarantees_ms: impl IntoIterator<Item = u64>,
        complete: bool,
    ) -> Lifetime {
        let window = match guarantees_ms.into_iter().min() {
            None => self.negative_fresh_ms,
            Some(shortest) if complete => shortest,
            Some(shortest) => shortest.min(self.partial_fresh_ms),
        };
        let fresh_until_ms = computed_at_ms.saturating_add(window);
        Lifetime {
            fresh_until_ms,
            stale_until_ms: fresh_until_ms.saturating_add(self.stale_grace_ms),
        }
    }
}

/// How long, in milliseconds, a cache entry of a result servable until `stale_until_ms` is kept from
/// `now_ms` (the entry expires at stale-until: Redis `PX`, for the consumer and the edge alike); `None`
/// when it is already past stale-until and there is nothing to store.
pub fn cache_ttl_ms(stale_until_ms: UnixMillis, now_ms: UnixMillis) -> Option<u64> {
    match stale_until_ms.saturating_sub(now_ms) {
        0 => None,
        ttl_ms => Some(ttl_ms),
    }
}

/// What a cached result is worth at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Freshness {
    /// Before fresh-until: serve it as is.
    Fresh,
    /// Past fresh-until, before stale-until: serve it marked stale, and refresh it.
    Stale,
    /// No result, or past stale-until: ask for one.
    Missing,
}

impl Freshness {
    /// The freshness at `now_ms` of a result with the given lifetime, or of no result.
    pub fn at(lifetime: Option<Lifetime>, now_ms: UnixMillis) -> Self {
        match lifetime {
            Some(l) if now_ms < l.fresh_until_ms => Freshness::Fresh,
            Some(l) if now_ms < l.stale_until_ms => Freshness::Stale,
            _ => Freshness::Missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const POLICY: FreshnessPolicy = FreshnessPolicy {
        partial_fresh_ms: 60_000,
        negative_fresh_ms: 5_000,
        stale_grace_ms: 30_000,
    };

    #[test]
    fn complete_results_live_for_the_shortest_guarantee() {
        let life = POLICY.lifetime(1_000, [600_000, 300_000, 900_000], true);
        assert_eq!(life.fresh_until_ms, 301_000);
        assert_eq!(life.stale_until_ms, 331_000);
    }

    #[test]
    fn partial_results_are_capped() {
        assert_eq!(POLICY.lifetime(0, [600_000], false).fresh_until_ms, 60_000);
        assert_eq!(POLICY.lifetime(0, [20_000], false).fresh_until_ms, 20_000);
    }

    #[test]
    fn all_failed_results_are_cached_briefly() {
        assert_eq!(POLICY.lifetime(0, [], false).fresh_until_ms, 5_000);
    }

    #[test]
    fn freshness_boundaries() {
        let life = Lifetime {
            fresh_until_ms: 10,
            stale_until_ms: 20,
        };
        assert_eq!(Freshness::at(Some(life), 9), Freshness::Fresh);
        assert_eq!(Freshness::at(Some(life), 10), Freshness::Stale);
        assert_eq!(Freshness::at(Some(life), 19), Freshness::Stale);
        assert_eq!(Freshness::at(Some(life), 20), Freshness::Missing);
        assert_eq!(Freshness::at(None, 0), Freshness::Missing);
    }

    #[test]
    fn cache_entries_live_until_stale_until() {
        assert_eq!(cache_ttl_ms(10_000, 4_000), Some(6_000));
        assert_eq!(cache_ttl_ms(10_000, 9_999), Some(1));
        assert_eq!(cache_ttl_ms(10_000, 10_000), None);
        assert_eq!(cache_ttl_ms(10_000, 20_000), None);
    }

    proptest! {
        #[test]
        fn lifetimes_are_ordered_and_never_overflow(
            at in any::<u64>(),
            guarantees in proptest::collection::vec(any::<u64>(), 0..5),
            complete in any::<bool>(),
        ) {
            let life = POLICY.lifetime(at, guarantees.clone(), complete);
            prop_assert!(at <= life.fresh_until_ms);
            prop_assert!(life.fresh_until_ms <= life.stale_until_ms);
            if let Some(shortest) = guarantees.iter().min() {
                prop_assert!(life.fresh_until_ms <= at.saturating_add(*shortest));
            }
        }

        #[test]
        fn freshness_moves_only_forward(fresh in 0u64..1000, grace in 0u64..1000, t1 in 0u64..3000, dt in 0u64..3000) {
            let life = Lifetime { fresh_until_ms: fresh, stale_until_ms: fresh + grace };
            let rank = |f: Freshness| match f { Freshness::Fresh => 0, Freshness::Stale => 1, Freshness::Missing => 2 };
            prop_assert!(rank(Freshness::at(Some(life), t1)) <= rank(Freshness::at(Some(life), t1 + dt)));
        }
    }
}
