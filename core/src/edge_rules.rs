//! The edge's decisions on a read: what to answer for a cached result (or none) at a given time, and
//! the header values that go with it.

use serde::Serialize;

use crate::{Comparison, Freshness, ProductId, UnixMillis};

/// Workers KV refuses expirations sooner than this many seconds ahead.
pub const KV_MIN_TTL_SECS: u64 = 60;

/// How long a client is told to wait before polling again after a 202.
pub const RETRY_AFTER_SECS: u64 = 2;

/// What to answer to `GET /v1/prices/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadDecision {
    /// A fresh result: 200, cacheable for `max_age_secs`.
    Fresh {
        /// Seconds until fresh-until, rounded down.
        max_age_secs: u64,
    },
    /// A stale result: 200 marked stale, and a refresh queued in the background.
    Stale,
    /// No usable result: queue a request and answer 202.
    Miss,
}

/// Decides the answer for `cached` at `now_ms`.
pub fn decide_read(cached: Option<&Comparison>, now_ms: UnixMillis) -> ReadDecision {
    match cached.map(|c| (c, c.freshness(now_ms))) {
        Some((c, Freshness::Fresh)) => ReadDecision::Fresh {
            max_age_secs: (c.fresh_until_ms - now_ms) / 1000,
        },
        Some((_, Freshness::Stale)) => ReadDecision::Stale,
        _ => ReadDecision::Miss,
    }
}

/// The strong entity tag of a stored result: one result per product and computation time.
pub fn etag(comparison: &Comparison) -> String {
    format!(
        "\"{}-{}\"",
        comparison.product_id, comparison.computed_at_ms
    )
}

/// Whether an `If-None-Match` header value matches `etag` (a list, weak tags or `*`).
pub fn if_none_match(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// The KV expiration TTL, in seconds, for a result that expires at `stale_until_ms`: rounded up, and
/// at least [`KV_MIN_TTL_SECS`].
pub fn kv_ttl_secs(stale_until_ms: UnixMillis, now_ms: UnixMillis) -> u64 {
    stale_until_ms
        .saturating_sub(now_ms)
        .div_ceil(1000)
        .max(KV_MIN_TTL_SECS)
}

/// The body of a 202: the request is queued; poll `location`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    /// Always `"pending"`.
    pub status: &'static str,
    /// The product.
    pub product_id: ProductId,
    /// Where to poll.
    pub location: String,
    /// Seconds to wait before polling.
    pub retry_after_secs: u64,
}

impl Pending {
    /// The pending status of `product`.
    pub fn of(product: ProductId) -> Self {
        Self {
            status: "pending",
            product_id: product,
            location: location(product),
            retry_after_secs: RETRY_AFTER_SECS,
        }
    }
}

/// The public URL path of a product's comparison.
pub fn location(product: ProductId) -> String {
    format!("/v1/prices/{product}")
}

/// A served result: the comparison, and whether it is stale.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Served<'a> {
    /// `"fresh"` or `"stale"`.
    pub freshness: Freshness,
    /// The comparison.
    #[serde(flatten)]
    pub comparison: &'a Comparison,
}

/// Compares two secrets in time that depends on their lengths only, not on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an `Authorization` header carries `Bearer {token}`.
pub fn bearer_matches(authorization: Option<&str>, token: &str) -> bool {
    match authorization.and_then(|h| h.strip_prefix("Bearer ")) {
        Some(given) => {
            !token.is_empty() && constant_time_eq(given.trim().as_bytes(), token.as_bytes())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FreshnessPolicy, Money, Offer, VendorOutcome};
    use proptest::prelude::*;

    fn comparison(computed_at: u64) -> Comparison {
        let offer = Offer {
            vendor: "a".into(),
            price: Money {
                minor_units: 100,
                currency: "EUR".parse().unwrap(),
            },
            url: None,
        };
        let policy = FreshnessPolicy {
            partial_fresh_ms: 0,
            negative_fresh_ms: 0,
            stale_grace_ms: 60_000,
        };
        Comparison::aggregate(
            ProductId::new(5).unwrap(),
            [VendorOutcome::Answered {
                offer,
                guarantee_ms: 30_000,
            }],
            computed_at,
            &policy,
        )
    }

    #[test]
    fn read_decisions_follow_freshness() {
        let c = comparison(1_000);
        assert_eq!(
            decide_read(Some(&c), 1_000),
            ReadDecision::Fresh { max_age_secs: 30 }
        );
        assert_eq!(
            decide_read(Some(&c), 30_999),
            ReadDecision::Fresh { max_age_secs: 0 }
        );
        assert_eq!(decide_read(Some(&c), 31_000), ReadDecision::Stale);
        assert_eq!(decide_read(Some(&c), 91_000), ReadDecision::Miss);
        assert_eq!(decide_read(None, 0), ReadDecision::Miss);
    }

    #[test]
    fn etags_and_conditional_requests() {
        let tag = etag(&comparison(7));
        assert_eq!(tag, "\"5-7\"");
        assert!(if_none_match("\"5-7\"", &tag));
        assert!(if_none_match("\"x\", W/\"5-7\"", &tag));
        assert!(if_none_match("*", &tag));
        assert!(!if_none_match("\"5-8\"", &tag));
    }

    #[test]
    fn kv_ttls_are_rounded_up_to_the_kv_minimum() {
        assert_eq!(kv_ttl_secs(1_000, 0), 60);
        assert_eq!(kv_ttl_secs(120_001, 0), 121);
        assert_eq!(kv_ttl_secs(0, 5_000), 60);
    }

    #[test]
    fn bearer_tokens_are_checked_exactly() {
        assert!(bearer_matches(Some("Bearer s3cret"), "s3cret"));
        assert!(!bearer_matches(Some("Bearer s3cre"), "s3cret"));
        assert!(!bearer_matches(Some("Basic s3cret"), "s3cret"));
        assert!(!bearer_matches(None, "s3cret"));
        assert!(!bearer_matches(Some("Bearer "), ""));
    }

    #[test]
    fn served_results_say_whether_they_are_stale() {
        let c = comparison(0);
        let json = serde_json::to_value(Served {
            freshness: Freshness::Stale,
            comparison: &c,
        })
        .unwrap();
        assert_eq!(json["freshness"], "stale");
        assert_eq!(json["productId"], "5");
    }

    proptest! {
        #[test]
        fn kv_ttl_never_expires_before_stale_until(stale in any::<u32>(), now in any::<u32>()) {
            let ttl = kv_ttl_secs(u64::from(stale), u64::from(now));
            prop_assert!(u64::from(now) + ttl * 1000 >= u64::from(stale));
            prop_assert!(ttl >= KV_MIN_TTL_SECS);
        }
    }
}
