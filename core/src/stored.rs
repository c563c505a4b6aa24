//! A stored comparison as the edge serves it: only its identity and times are read (the offers are
//! served as stored, never parsed and serialized again), and the body is the stored JSON object with the
//! served freshness spliced in front of its members.
//!
//! Both caches hold what [`Comparison::to_json`] wrote (the consumer writes Redis; the edge's fill
//! endpoint writes KV after validating the whole comparison), so a hit needs no more than this.

use serde::{Deserialize, Serialize};

use crate::comparison::{Comparison, ComparisonError, RESULT_VERSION};
use crate::freshness::{Freshness, Lifetime};
use crate::{ProductId, UnixMillis};

/// The identity and times of a stored comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredHeader {
    /// The format version, [`RESULT_VERSION`].
    pub v: u32,
    /// The product compared.
    pub product_id: ProductId,
    /// When the result was computed.
    pub computed_at_ms: UnixMillis,
    /// Until when the result is fresh.
    pub fresh_until_ms: UnixMillis,
    /// Until when the result may be served stale.
    pub stale_until_ms: UnixMillis,
    /// How long its fan-out took, when known.
    #[serde(default)]
    pub fan_out_ms: Option<u64>,
    /// How long it took from the request's publish to the result, when known.
    #[serde(default)]
    pub recompute_ms: Option<u64>,
    /// How many offers it has (counted, not parsed): whether it is worth keeping
    /// ([`crate::newest_wins`]).
    #[serde(default, deserialize_with = "count_elements")]
    pub offers: usize,
}

/// Counts the elements of a JSON array without parsing them.
fn count_elements<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    Vec::<serde::de::IgnoredAny>::deserialize(deserializer).map(|elements| elements.len())
}

impl StoredHeader {
    /// Reads the header of a stored comparison, skipping the rest; checks its version and the order of
    /// its times.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ComparisonError> {
        let header: Self =
            serde_json::from_slice(bytes).map_err(|e| ComparisonError::Malformed(e.to_string()))?;
        if header.v != RESULT_VERSION {
            return Err(ComparisonError::UnsupportedVersion(header.v));
        }
        if !(header.computed_at_ms <= header.fresh_until_ms
            && header.fresh_until_ms <= header.stale_until_ms)
        {
            return Err(ComparisonError::TimesOutOfOrder);
        }
        Ok(header)
    }

    /// The header of `comparison`.
    pub fn of(comparison: &Comparison) -> Self {
        Self {
            v: comparison.v,
            product_id: comparison.product_id,
            computed_at_ms: comparison.computed_at_ms,
            fresh_until_ms: comparison.fresh_until_ms,
            stale_until_ms: comparison.stale_until_ms,
            fan_out_ms: comparison.fan_out_ms,
            recompute_ms: comparison.recompute_ms,
            offers: comparison.offers.len(),
        }
    }

    /// What recomputing it costs a reader, for early refreshes: the request's time from its publish to
    /// the result where the consumer measured it, else the fan-out's; 0 when neither is known.
    pub fn recompute_cost_ms(&self) -> u64 {
        self.recompute_ms.or(self.fan_out_ms).unwrap_or(0)
    }

    /// The result's lifetime.
    pub fn lifetime(&self) -> Lifetime {
        Lifetime {
            fresh_until_ms: self.fresh_until_ms,
            stale_until_ms: self.stale_until_ms,
        }
    }
}

/// A stored comparison: its bytes, and the header read from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The header.
    pub header: StoredHeader,
    /// The stored JSON object.
    pub json: Vec<u8>,
}

impl Stored {
    /// Reads a stored comparison; `None` when it is not one (a cache entry that does not parse counts
    /// as none).
    pub fn from_bytes(json: Vec<u8>) -> Option<Self> {
        let header = StoredHeader::from_json(&json).ok()?;
        json.trim_ascii_start()
            .starts_with(b"{")
            .then_some(Self { header, json })
    }

    /// The body served for it: `{"freshness":"fresh",` followed by the stored object's members, the
    /// same JSON as serializing [`Served`].
    pub fn served_body(&self, freshness: Freshness) -> Vec<u8> {
        let members = self.json.trim_ascii();
        let members = &members[1..]; // after the opening brace, which `from_bytes` checked
        let label = freshness_label(freshness);
        let mut body = Vec::with_capacity(members.len() + 32);
        body.extend_from_slice(b"{\"freshness\":\"");
        body.extend_from_slice(label.as_bytes());
        body.push(b'"');
        if members.trim_ascii_start() != b"}" {
            body.push(b',');
        }
        body.extend_from_slice(members);
        body
    }
}

/// A served result: the comparison, and whether it is stale. The edge never builds it (it serves
/// [`Stored::served_body`]); it is the shape that body has.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Served<'a> {
    /// `"fresh"` or `"stale"`.
    pub freshness: Freshness,
    /// The comparison.
    #[serde(flatten)]
    pub comparison: &'a Comparison,
}

/// `fresh`, `stale` or `missing`: the freshness as the JSON and the entity tags spell it.
pub fn freshness_label(freshness: Freshness) -> &'static str {
    match freshness {
        Freshness::Fresh => "fresh",
        Freshness::Stale => "stale",
        Freshness::Missing => "missing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FreshnessPolicy, Money, VendorOutcome};

    fn sample() -> Comparison {
        let product = ProductId::new(42).unwrap();
        let outcomes = vec![VendorOutcome::Answered {
            offer: crate::Offer {
                vendor: "acme".into(),
                price: Money {
                    minor_units: 1234,
                    currency: "EUR".parse().unwrap(),
                },
                url: Some("https://acme.example/42".into()),
            },
            guarantee_ms: 60_000,
        }];
        Comparison::aggregate(product, outcomes, 1_000, &FreshnessPolicy::default())
    }

    #[test]
    fn the_spliced_body_is_the_served_json() {
        let comparison = sample();
        let stored = Stored::from_bytes(comparison.to_json().into_bytes()).unwrap();
        assert_eq!(stored.header, StoredHeader::of(&comparison));
        for freshness in [Freshness::Fresh, Freshness::Stale] {
            let expected = serde_json::to_vec(&Served {
                freshness,
                comparison: &comparison,
            })
            .unwrap();
            assert_eq!(stored.served_body(freshness), expected);
        }
    }

    #[test]
    fn early_refreshes_weigh_the_whole_recompute_before_the_fan_out() {
        let mut comparison = sample();
        assert_eq!(StoredHeader::of(&comparison).recompute_cost_ms(), 0);
        comparison.fan_out_ms = Some(120);
        assert_eq!(StoredHeader::of(&comparison).recompute_cost_ms(), 120);
        comparison.recompute_ms = Some(900);
        let stored = Stored::from_bytes(comparison.to_json().into_bytes()).unwrap();
        assert_eq!(stored.header.recompute_cost_ms(), 900);
        assert!(comparison.to_json().contains(r#""recomputeMs":900"#));
    }

    #[test]
    fn served_results_say_whether_they_are_stale() {
        let comparison = sample();
        let json = serde_json::to_value(Served {
            freshness: Freshness::Stale,
            comparison: &comparison,
        })
        .unwrap();
        assert_eq!(json["freshness"], "stale");
        assert_eq!(json["productId"], "42");
    }

    #[test]
    fn an_entry_that_is_not_a_comparison_counts_as_none() {
        assert_eq!(Stored::from_bytes(b"not json".to_vec()), None);
        assert_eq!(Stored::from_bytes(b"[1,2]".to_vec()), None);
        let mut old = serde_json::to_value(sample()).unwrap();
        old["v"] = 0.into();
        assert_eq!(Stored::from_bytes(old.to_string().into_bytes()), None);
        let mut reversed = serde_json::to_value(sample()).unwrap();
        reversed["freshUntilMs"] = 0.into();
        assert_eq!(Stored::from_bytes(reversed.to_string().into_bytes()), None);
    }

    #[test]
    fn whitespace_around_the_stored_object_is_kept_valid() {
        let stored =
            Stored::from_bytes(format!("  {}\n", sample().to_json()).into_bytes()).unwrap();
        let body = stored.served_body(Freshness::Stale);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["freshness"], "stale");
        assert_eq!(value["productId"], "42");
    }
}
