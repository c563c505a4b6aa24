//! The comparison result: every vendor's offer, the best offer, the vendors that failed and why, and the
//! result's lifetime. This is the value cached under [`crate::cache_key()`] and served by the edge.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::freshness::{Freshness, FreshnessPolicy, Lifetime};
use crate::{Money, ProductId, UnixMillis};

/// The result format version this release writes and reads.
pub const RESULT_VERSION: u32 = 1;

/// One vendor's offer for a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    /// The vendor's configured name.
    pub vendor: String,
    /// The offered price.
    pub price: Money,
    /// Where to buy, when the vendor says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Why a vendor gave no offer. In JSON (and as a metric label) its snake_case name
/// ([`FailureKind::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No answer within the vendor's timeout.
    Timeout,
    /// The vendor could not be reached.
    Connect,
    /// The vendor answered with an error status.
    HttpStatus,
    /// The vendor's answer was larger than the configured cap.
    TooLarge,
    /// The vendor's answer was not the JSON we were told to expect.
    MalformedBody,
    /// The overall deadline ran out before the vendor's retries succeeded.
    Deadline,
    /// This process's quota for the vendor (requests a second or at a time) had no room before the
    /// deadline, so the vendor was not asked.
    Quota,
    /// The vendor's circuit breaker is open (it failed too often of late), so the vendor was not asked.
    CircuitOpen,
    /// The vendor does not list the product: it answered with no offer (an empty list, or a status its
    /// profile names as "not found"), or the product has no identifier the vendor asks by (no UPC-A,
    /// no ASIN in the identifier map). An answer, not a fault: it does not make a result partial.
    NotListed,
    /// No access token could be had from the vendor's OAuth 2.0 token endpoint (it refused, failed,
    /// or this process reached its limit of token requests), so the vendor was not asked.
    TokenMint,
    /// The product's identifiers could not be read from the identifier map (Redis did not answer), so
    /// the vendor was not asked.
    IdentifierLookup,
}

impl FailureKind {
    /// Every kind with its name, in declaration order.
    pub const ALL: [(FailureKind, &'static str); 11] = [
        (FailureKind::Timeout, "timeout"),
        (FailureKind::Connect, "connect"),
        (FailureKind::HttpStatus, "http_status"),
        (FailureKind::TooLarge, "too_large"),
        (FailureKind::MalformedBody, "malformed_body"),
        (FailureKind::Deadline, "deadline"),
        (FailureKind::Quota, "quota"),
        (FailureKind::CircuitOpen, "circuit_open"),
        (FailureKind::NotListed, "not_listed"),
        (FailureKind::TokenMint, "token_mint"),
        (FailureKind::IdentifierLookup, "identifier_lookup"),
    ];

    /// The kind's name: `http_status`, `not_listed`, …
    pub fn name(self) -> &'static str {
        Self::ALL[self as usize].1
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(kind, _)| *kind)
    }

    /// Whether the vendor gave a definite answer, only without an offer: such a vendor does not make
    /// a comparison incomplete.
    pub fn is_answer(self) -> bool {
        self == FailureKind::NotListed
    }
}

// Written by hand rather than derived: the derived code (a visitor for strings, bytes and indexes) cost
// the edge's wasm, which reads comparisons at its fill endpoint, a few hundred bytes more.
impl Serialize for FailureKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for FailureKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format_args!("unknown failure kind {name:?}")))
    }
}

/// A vendor that gave no offer, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VendorFailure {
    /// The vendor's configured name.
    pub vendor: String,
    /// The kind of failure, for metrics and clients.
    pub kind: FailureKind,
    /// A human-readable detail.
    pub detail: String,
    /// How many attempts were made.
    pub attempts: u32,
}

/// What asking one vendor came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorOutcome {
    /// The vendor answered with an offer that it guarantees for `guarantee_ms`.
    Answered {
        /// The offer.
        offer: Offer,
        /// The vendor's price-guarantee window.
        guarantee_ms: u64,
    },
    /// The vendor gave no offer.
    Failed(VendorFailure),
}

/// Why a stored or received comparison is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComparisonError {
    /// Not JSON of the comparison's shape.
    #[error("not a comparison: {0}")]
    Malformed(String),
    /// A version this release does not read.
    #[error("unsupported comparison version {0}")]
    UnsupportedVersion(u32),
    /// The times are not ordered computed-at ≤ fresh-until ≤ stale-until.
    #[error("the times must satisfy computedAtMs <= freshUntilMs <= staleUntilMs")]
    TimesOutOfOrder,
    /// The best offer is not the one the offers give.
    #[error("bestOffer is not the best of the offers")]
    WrongBestOffer,
    /// `complete` disagrees with the failures listed.
    #[error("complete must be true exactly when there are offers and every vendor without one does not list the product")]
    WrongCompleteness,
}

/// The comparison of one product's prices across vendors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The format version, [`RESULT_VERSION`].
    pub v: u32,
    /// The product compared.
    pub product_id: ProductId,
    /// Every offer, cheapest first within each currency.
    pub offers: Vec<Offer>,
    /// The cheapest offer in the currency most vendors quote in ([`best_offer`]).
    pub best_offer: Option<Offer>,
    /// The vendors that gave no offer, and why.
    pub failures: Vec<VendorFailure>,
    /// When the result was computed.
    pub computed_at_ms: UnixMillis,
    /// Until when the result is fresh.
    pub fresh_until_ms: UnixMillis,
    /// Until when the result may be served stale; the cache entry expires then.
    pub stale_until_ms: UnixMillis,
    /// Whether every configured vendor answered: with an offer, or saying it does not list the product
    /// (and at least one offered).
    pub complete: bool,
    /// How long the fan-out that produced it took, when the consumer measured it: the cost of
    /// recomputing it, which [`crate::early_refresh`] weighs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan_out_ms: Option<u64>,
    /// How long the request took from its publish at the edge (`requestedAtMs`) to the result, when the
    /// consumer measured it: the refresh's cost as a reader of the cache sees it (the queue, the consumer
    /// and the fan-out), which [`crate::early_refresh`] weighs before [`Comparison::fan_out_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recompute_ms: Option<u64>,
}

/// The best offer: the cheapest in the currency that most offers are quoted in (ties go to the
/// alphabetically first currency, then the alphabetically first vendor). Prices in different currencies
/// are never compared with each other.
pub fn best_offer(offers: &[Offer]) -> Option<&Offer> {
    let mut per_currency: BTreeMap<_, usize> = BTreeMap::new();
    for offer in offers {
        *per_currency.entry(offer.price.currency).or_default() += 1;
    }
    let (currency, _) = per_currency
        .into_iter()
        .rev()
        .max_by_key(|(_, count)| *count)?;
    offers
        .iter()
        .filter(|o| o.price.currency == currency)
        .min_by(|a, b| (a.price.minor_units, &a.vendor).cmp(&(b.price.minor_units, &b.vendor)))
}

/// Whether a comparison of `offers` and `failures` is complete: some offer, and every vendor without
/// one answered that it does not list the product.
fn is_complete(offers: &[Offer], failures: &[VendorFailure]) -> bool {
    !offers.is_empty() && failures.iter().all(|failure| failure.kind.is_answer())
}

impl Comparison {
    /// Aggregates the vendors' outcomes into a comparison computed at `computed_at_ms`.
    pub fn aggregate(
        product_id: ProductId,
        outcomes: impl IntoIterator<Item = VendorOutcome>,
        computed_at_ms: UnixMillis,
        policy: &FreshnessPolicy,
    ) -> Self {
        let mut offers = Vec::new();
        let mut failures = Vec::new();
        let mut guarantees = Vec::new();
        for outcome in outcomes {
            match outcome {
                VendorOutcome::Answered {
                    offer,
                    guarantee_ms,
                } => {
                    offers.push(offer);
                    guarantees.push(guarantee_ms);
                }
                VendorOutcome::Failed(failure) => failures.push(failure),
            }
        }
        offers.sort_by(|a, b| {
            (a.price.currency, a.price.minor_units, &a.vendor).cmp(&(
                b.price.currency,
                b.price.minor_units,
                &b.vendor,
            ))
        });
        failures.sort_by(|a, b| a.vendor.cmp(&b.vendor));
        let complete = is_complete(&offers, &failures);
        let Lifetime {
            fresh_until_ms,
            stale_until_ms,
        } = policy.lifetime(computed_at_ms, guarantees, complete);
        Self {
            v: RESULT_VERSION,
            product_id,
            best_offer: best_offer(&offers).cloned(),
            offers,
            failures,
            computed_at_ms,
            fresh_until_ms,
            stale_until_ms,
            complete,
            fan_out_ms: None,
            recompute_ms: None,
        }
    }

    /// The result's lifetime.
    pub fn lifetime(&self) -> Lifetime {
        Lifetime {
            fresh_until_ms: self.fresh_until_ms,
            stale_until_ms: self.stale_until_ms,
        }
    }

    /// The result's freshness at `now_ms`.
    pub fn freshness(&self, now_ms: UnixMillis) -> Freshness {
        Freshness::at(Some(self.lifetime()), now_ms)
    }

    /// Whether no vendor was asked at all: no offer, and every vendor refused before any request (its
    /// circuit open, no room in its quota, no access token, the identifier map unread). Such a comparison says nothing about the product and is
    /// not a result: the consumer stores nothing for it.
    pub fn asked_no_vendor(&self) -> bool {
        self.offers.is_empty()
            && !self.failures.is_empty()
            && self.failures.iter().all(|failure| {
                failure.attempts == 0
                    && matches!(
                        failure.kind,
                        FailureKind::CircuitOpen
                            | FailureKind::Quota
                            | FailureKind::TokenMint
                            | FailureKind::IdentifierLookup
                    )
            })
    }

    /// The result as JSON, the form stored in the caches.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a comparison always serializes")
    }

    /// Reads and validates a comparison (from a cache or from the fill endpoint).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ComparisonError> {
        let comparison: Self =
            serde_json::from_slice(bytes).map_err(|e| ComparisonError::Malformed(e.to_string()))?;
        comparison.validate()?;
        Ok(comparison)
    }

    /// Checks the invariants that [`Comparison::aggregate`] guarantees.
    pub fn validate(&self) -> Result<(), ComparisonError> {
        if self.v != RESULT_VERSION {
            return Err(ComparisonError::UnsupportedVersion(self.v));
        }
        if !(self.computed_at_ms <= self.fresh_until_ms
            && self.fresh_until_ms <= self.stale_until_ms)
        {
            return Err(ComparisonError::TimesOutOfOrder);
        }
        if best_offer(&self.offers) != self.best_offer.as_ref() {
            return Err(ComparisonError::WrongBestOffer);
        }
        if self.complete != is_complete(&self.offers, &self.failures) {
            return Err(ComparisonError::WrongCompleteness);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn offer(vendor: &str, minor: u64, currency: &str) -> Offer {
        Offer {
            vendor: vendor.into(),
            price: Money {
                minor_units: minor,
                currency: currency.parse().unwrap(),
            },
            url: None,
        }
    }

    fn answered(vendor: &str, minor: u64, guarantee_ms: u64) -> VendorOutcome {
        VendorOutcome::Answered {
            offer: offer(vendor, minor, "EUR"),
            guarantee_ms,
        }
    }

    fn failed(vendor: &str) -> VendorOutcome {
        VendorOutcome::Failed(VendorFailure {
            vendor: vendor.into(),
            kind: FailureKind::Timeout,
            detail: "no answer within 2s".into(),
            attempts: 1,
        })
    }

    fn refused(vendor: &str, kind: FailureKind, attempts: u32) -> VendorOutcome {
        VendorOutcome::Failed(VendorFailure {
            vendor: vendor.into(),
            kind,
            detail: "refused".into(),
            attempts,
        })
    }

    #[test]
    fn failure_kinds_read_and_write_their_names() {
        for (i, (kind, name)) in FailureKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{name} is at its own index");
            assert_eq!(kind.name(), *name);
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<FailureKind>(&json).unwrap(), *kind);
        }
        assert!(serde_json::from_str::<FailureKind>("\"nope\"").is_err());
        assert!(serde_json::from_str::<FailureKind>("3").is_err());
    }

    #[test]
    fn a_vendor_that_does_not_list_the_product_leaves_the_comparison_complete() {
        let policy = FreshnessPolicy {
            partial_fresh_ms: 60_000,
            negative_fresh_ms: 10_000,
            stale_grace_ms: 0,
        };
        let not_listed = VendorOutcome::Failed(VendorFailure {
            vendor: "b".into(),
            kind: FailureKind::NotListed,
            detail: "no offers".into(),
            attempts: 1,
        });
        let product = ProductId::new(1).unwrap();
        let answered = VendorOutcome::Answered {
            offer: offer("a", 100, "EUR"),
            guarantee_ms: 600_000,
        };
        let with = Comparison::aggregate(product, [answered, not_listed.clone()], 0, &policy);
        assert!(with.complete);
        assert_eq!(
            with.fresh_until_ms, 600_000,
            "the guarantee, not the partial window"
        );
        with.validate().unwrap();
        let alone = Comparison::aggregate(product, [not_listed], 0, &policy);
        assert!(!alone.complete, "no offer at all");
        assert!(!alone.asked_no_vendor(), "an answer was had");
        alone.validate().unwrap();
    }

    #[test]
    fn a_comparison_that_asked_no_vendor_is_told_apart() {
        let policy = FreshnessPolicy::default();
        let of =
            |outcomes: Vec<VendorOutcome>| Comparison::aggregate(id(), outcomes, 1_000, &policy);
        let open = |v| refused(v, FailureKind::CircuitOpen, 0);
        let quota = |v| refused(v, FailureKind::Quota, 0);
        assert!(of(vec![open("a"), quota("b")]).asked_no_vendor());
        assert!(
            !of(vec![open("a"), failed("b")]).asked_no_vendor(),
            "b was asked"
        );
        assert!(
            !of(vec![open("a"), refused("b", FailureKind::Quota, 1)]).asked_no_vendor(),
            "b was asked before its quota ran out"
        );
        assert!(!of(vec![open("a"), answered("b", 1, 60_000)]).asked_no_vendor());
        assert!(
            !of(vec![]).asked_no_vendor(),
            "no vendor configured is no refusal"
        );
    }

    fn id() -> ProductId {
        ProductId::new(42).unwrap()
    }

    #[test]
    fn complete_comparison_picks_the_cheapest() {
        let policy = FreshnessPolicy::default();
        let c = Comparison::aggregate(
            id(),
            [
                answered("b", 1500, 600_000),
                answered("a", 999, 300_000),
                answered("c", 999, 900_000),
            ],
            1_000,
            &policy,
        );
        assert!(c.complete);
        assert_eq!(c.best_offer.as_ref().unwrap().vendor, "a");
        assert_eq!(
            c.offers
                .iter()
                .map(|o| o.vendor.as_str())
                .collect::<Vec<_>>(),
            ["a", "c", "b"]
        );
        assert_eq!(c.fresh_until_ms, 301_000);
        assert_eq!(c.stale_until_ms, 301_000 + policy.stale_grace_ms);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn partial_comparison_lists_failures() {
        let policy = FreshnessPolicy::default();
        let c = Comparison::aggregate(id(), [answered("a", 10, 600_000), failed("z")], 0, &policy);
        assert!(!c.complete);
        assert_eq!(c.failures.len(), 1);
        assert_eq!(c.fresh_until_ms, policy.partial_fresh_ms);
    }

    #[test]
    fn all_failed_comparison_has_no_best_offer() {
        let policy = FreshnessPolicy::default();
        let c = Comparison::aggregate(id(), [failed("a"), failed("b")], 0, &policy);
        assert_eq!(c.best_offer, None);
        assert!(!c.complete);
        assert_eq!(c.fresh_until_ms, policy.negative_fresh_ms);
    }

    #[test]
    fn best_offer_never_compares_currencies() {
        let offers = [
            offer("a", 100, "JPY"),
            offer("b", 900, "EUR"),
            offer("c", 800, "EUR"),
        ];
        assert_eq!(best_offer(&offers).unwrap().vendor, "c");
        let tie = [offer("a", 100, "USD"), offer("b", 900, "EUR")];
        assert_eq!(best_offer(&tie).unwrap().vendor, "b");
    }

    #[test]
    fn validation_rejects_inconsistent_results() {
        let policy = FreshnessPolicy::default();
        let good = Comparison::aggregate(
            id(),
            [answered("a", 10, 60_000), answered("b", 5, 60_000)],
            0,
            &policy,
        );
        let mut times = good.clone();
        times.stale_until_ms = 0;
        assert_eq!(times.validate(), Err(ComparisonError::TimesOutOfOrder));
        let mut best = good.clone();
        best.best_offer = Some(best.offers[1].clone());
        assert_eq!(best.validate(), Err(ComparisonError::WrongBestOffer));
        let mut complete = good.clone();
        complete.complete = false;
        assert_eq!(complete.validate(), Err(ComparisonError::WrongCompleteness));
        assert!(matches!(
            Comparison::from_json(b"{}"),
            Err(ComparisonError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn aggregate_is_valid_and_round_trips(
            prices in proptest::collection::vec((0u64..1_000_000, 1u64..10_000_000, any::<bool>()), 0..6),
            at in 0u64..u64::MAX / 2,
        ) {
            let outcomes = prices.iter().enumerate().map(|(i, (minor, guarantee, ok))| {
                if *ok { answered(&format!("v{i}"), *minor, *guarantee) } else { failed(&format!("v{i}")) }
            });
            let c = Comparison::aggregate(id(), outcomes, at, &FreshnessPolicy::default());
            prop_assert_eq!(c.validate(), Ok(()));
            let cheapest = prices.iter().filter(|p| p.2).map(|p| p.0).min();
            prop_assert_eq!(c.best_offer.as_ref().map(|o| o.price.minor_units), cheapest);
            prop_assert_eq!(Comparison::from_json(c.to_json().as_bytes()), Ok(c));
        }
    }
}
