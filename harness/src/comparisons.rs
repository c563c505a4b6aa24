//! Sample comparisons: what tests, benchmarks and drills fill an edge or a cache with.

use pricefront_core::{Comparison, FreshnessPolicy, Money, Offer, ProductId, VendorOutcome};

use crate::now_ms;

/// A complete comparison of `product` computed at `computed_at_ms`: two EUR offers (alpha 19.99, bravo
/// 14.99, the best), fresh for `fresh_ms` and servable stale for 10 minutes more.
pub fn comparison_at(product: ProductId, computed_at_ms: u64, fresh_ms: u64) -> Comparison {
    let answered = |vendor: &str, minor_units| VendorOutcome::Answered {
        offer: Offer {
            vendor: vendor.into(),
            price: Money {
                minor_units,
                currency: "EUR".parse().expect("EUR is a currency"),
            },
            url: None,
        },
        guarantee_ms: fresh_ms,
    };
    let policy = FreshnessPolicy {
        stale_grace_ms: 600_000,
        ..FreshnessPolicy::default()
    };
    Comparison::aggregate(
        product,
        [answered("alpha", 1999), answered("bravo", 1499)],
        computed_at_ms,
        &policy,
    )
}

/// [`comparison_at`] computed `age_ms` ago, fresh for a minute from then.
pub fn aged_comparison(product: ProductId, age_ms: u64) -> Comparison {
    comparison_at(product, now_ms() - age_ms, 60_000)
}

/// [`comparison_at`] computed now, fresh for an hour: a hit for as long as a benchmark runs.
pub fn sample_comparison(product: ProductId) -> Comparison {
    comparison_at(product, now_ms(), 3_600_000)
}
