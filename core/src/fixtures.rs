//! Fixtures the core's own tests share.

use crate::{Comparison, FreshnessPolicy, Money, Offer, ProductId, UnixMillis, VendorOutcome};

/// Product 7's comparison computed at `computed_at_ms`, with `offers` offers of 1.00 EUR (vendors
/// `v0`, `v1`, …) guaranteed for `guarantee_ms`.
pub fn comparison(computed_at_ms: UnixMillis, offers: usize, guarantee_ms: u64) -> Comparison {
    let outcomes = (0..offers).map(|i| VendorOutcome::Answered {
        offer: Offer {
            vendor: format!("v{i}"),
            price: Money {
                minor_units: 100,
                currency: "EUR".parse().unwrap(),
            },
            url: None,
        },
        guarantee_ms,
    });
    let product = ProductId::new(7).unwrap();
    Comparison::aggregate(
        product,
        outcomes,
        computed_at_ms,
        &FreshnessPolicy::default(),
    )
}
