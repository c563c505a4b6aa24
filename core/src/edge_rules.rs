//! The edge's decisions on a read: what to answer for a cached result (or none) at a given time, and
//! the header values that go with it.

use serde::Serialize;

use crate::freshness::Lifetime;
use crate::isolate_cache::{is_live, Eviction, IsolateCache};
use crate::problem::Problem;
use crate::stored::{freshness_label, Stored, StoredHeader};
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
    decide_read_of(cached.map(Comparison::lifetime), now_ms)
}

/// Decides the answer for a cached result of `lifetime` (`None`: nothing cached) at `now_ms`.
pub fn decide_read_of(lifetime: Option<Lifetime>, now_ms: UnixMillis) -> ReadDecision {
    match lifetime.map(|l| (l, Freshness::at(Some(l), now_ms))) {
        Some((l, Freshness::Fresh)) => ReadDecision::Fresh {
            max_age_secs: (l.fresh_until_ms - now_ms) / 1000,
        },
        Some((_, Freshness::Stale)) => ReadDecision::Stale,
        _ => ReadDecision::Miss,
    }
}

/// The longest an isolate keeps a KV read in memory unless configured (`HOT_CACHE_MS`).
pub const DEFAULT_HOT_CACHE_MS: u64 = 1_000;

/// Until when an isolate may answer from memory a KV entry read at `now_ms`: for at most `max_ms`, and
/// never past its fresh-until (a stale entry is read again, so that its refresh is decided on what KV
/// holds). `None`: not kept (stale, or `max_ms` is 0).
pub fn hot_cache_until(
    entry: &StoredHeader,
    now_ms: UnixMillis,
    max_ms: u64,
) -> Option<UnixMillis> {
    let until = entry.fresh_until_ms.min(now_ms.saturating_add(max_ms));
    is_live(until, now_ms).then_some(until)
}

/// Where a read over two tiers (Workers KV first, then Redis) takes its answer from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierPick {
    /// KV's entry (fresh, or stale and Redis has nothing newer).
    Kv,
    /// Redis's entry, newer than KV's or the only usable one: served, and written back to KV.
    Redis,
    /// Neither tier has a usable result: publish a request.
    Neither,
}

/// Whether a read that found `kv` in KV must ask Redis too: KV has nothing fresh (a miss, an expired
/// entry, or a stale one that Redis may already hold newer).
pub fn needs_second_tier(kv: Option<&StoredHeader>, now_ms: UnixMillis) -> bool {
    !matches!(
        decide_read_of(kv.map(StoredHeader::lifetime), now_ms),
        ReadDecision::Fresh { .. }
    )
}

/// The better of the two tiers' entries at `now_ms`: the newer of the usable ones (fresh or stale),
/// KV's on a tie (it needs no write-back).
pub fn pick_tier(
    kv: Option<&StoredHeader>,
    redis: Option<&StoredHeader>,
    now_ms: UnixMillis,
) -> TierPick {
    let usable =
        |entry: &&StoredHeader| Freshness::at(Some(entry.lifetime()), now_ms) != Freshness::Missing;
    match (kv.filter(usable), redis.filter(usable)) {
        (Some(kv), Some(redis)) if redis.computed_at_ms > kv.computed_at_ms => TierPick::Redis,
        (Some(_), _) => TierPick::Kv,
        (None, Some(_)) => TierPick::Redis,
        (None, None) => TierPick::Neither,
    }
}

/// The strong entity tag of a served result. The body says `"freshness":"fresh"` or `"stale"`, so the
/// tag names the freshness too: one tag per product, computation time and freshness, hence one tag per
/// body (RFC 9110 §8.8.3: a strong tag changes whenever the representation's bytes do).
pub fn etag(comparison: &Comparison, freshness: Freshness) -> String {
    etag_of(comparison.product_id, comparison.computed_at_ms, freshness)
}

/// [`etag`] from a result's product and computation time.
pub fn etag_of(product: ProductId, computed_at_ms: UnixMillis, freshness: Freshness) -> String {
    format!(
        "\"{product}-{computed_at_ms}-{}\"",
        freshness_label(freshness)
    )
}

/// One entity tag of a conditional header (RFC 9110 §8.8.3): `W/` when weak, and the opaque tag
/// between its double quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTag<'a> {
    /// Whether the tag is weak (`W/"..."`).
    pub weak: bool,
    /// The characters between the double quotes.
    pub opaque: &'a str,
}

/// An `If-None-Match` field value (RFC 9110 §13.1.2): `*` alone, or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfNoneMatch<'a> {
    /// `*`: any current representation.
    Any,
    /// The listed entity tags (possibly none: an empty list).
    Tags(Vec<EntityTag<'a>>),
}

/// Why a field value is not an `If-None-Match` per its grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an If-None-Match value (`*`, or a comma-separated list of entity tags): {0}")]
pub struct InvalidIfNoneMatch(&'static str);

/// Optional whitespace (RFC 9110 §5.6.3).
const OWS: [char; 2] = [' ', '\t'];

/// Parses an `If-None-Match` value: `"*" / #entity-tag`. A comma inside an opaque tag belongs to the
/// tag (`"a,b"` is one tag), `*` is only valid alone, `W/` is case-sensitive, and empty list elements
/// are skipped (RFC 9110 §5.6.1).
pub fn parse_if_none_match(value: &str) -> Result<IfNoneMatch<'_>, InvalidIfNoneMatch> {
    if value.trim_matches(OWS) == "*" {
        return Ok(IfNoneMatch::Any);
    }
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c| OWS.contains(&c) || c == ',');
        if rest.is_empty() {
            return Ok(IfNoneMatch::Tags(tags));
        }
        let (weak, quoted) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let inside = quoted.strip_prefix('"').ok_or(InvalidIfNoneMatch(
            "an entity tag starts with a double quote",
        ))?;
        let end = inside
            .find('"')
            .ok_or(InvalidIfNoneMatch("an entity tag ends with a double quote"))?;
        let opaque = &inside[..end];
        // etagc = %x21 / %x23-7E / obs-text: visible characters but the double quote, no whitespace.
        if opaque
            .chars()
            .any(|c| c.is_ascii() && !c.is_ascii_graphic())
        {
            return Err(InvalidIfNoneMatch(
                "an entity tag holds whitespace or a control character",
            ));
        }
        tags.push(EntityTag { weak, opaque });
        rest = inside[end + 1..].trim_start_matches(OWS);
        if !rest.is_empty() && !rest.starts_with(',') {
            return Err(InvalidIfNoneMatch("entity tags are separated by commas"));
        }
    }
}

/// Whether an `If-None-Match` value matches `etag` (ours, strong and quoted) for a current
/// representation: `*`, or a listed tag equal to it under the weak comparison (RFC 9110 §8.8.3.2: the
/// opaque tags are equal, weak or not). A value that does not parse never matches: the request is then
/// answered as if unconditional.
pub fn if_none_match(header: &str, etag: &str) -> bool {
    let ours = etag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(etag);
    match parse_if_none_match(header) {
        Ok(IfNoneMatch::Any) => true,
        Ok(IfNoneMatch::Tags(tags)) => tags.iter().any(|tag| tag.opaque == ours),
        Err(_) => false,
    }
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
    format!("{}{product}", crate::route::PRICES_PREFIX)
}

/// Compares two secrets in time that depends on their lengths only, not on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an `Authorization` header carries `Bearer {token}`. The scheme is case-insensitive (RFC 9110
/// §11.1: `bearer`, `BEARER` are the same scheme); the token is compared exactly, in constant time.
pub fn bearer_matches(authorization: Option<&str>, token: &str) -> bool {
    let Some((scheme, credentials)) =
        authorization.and_then(|h| h.trim_matches(OWS).split_once(' '))
    else {
        return false;
    };
    scheme.eq_ignore_ascii_case("Bearer")
        && !token.is_empty()
        && constant_time_eq(
            credentials.trim_start_matches(' ').as_bytes(),
            token.as_bytes(),
        )
}

/// The challenge every 401 of the edge carries in `WWW-Authenticate` (RFC 9110 §11.6.1).
pub const BEARER_CHALLENGE: &str = "Bearer";

/// What the fill endpoint does with a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillAuthorization {
    /// The bearer token is the configured one: go on.
    Allowed,
    /// No valid bearer token: 401 with [`BEARER_CHALLENGE`].
    Unauthorized,
    /// The Worker has no `FILL_TOKEN`: a server misconfiguration (500), which no client can fix.
    NotConfigured,
}

/// Decides a fill request from the configured token (`None` or empty: not configured) and the
/// request's `Authorization` header.
pub fn authorize_fill(
    configured_token: Option<&str>,
    authorization: Option<&str>,
) -> FillAuthorization {
    match configured_token.filter(|t| !t.is_empty()) {
        None => FillAuthorization::NotConfigured,
        Some(token) if bearer_matches(authorization, token) => FillAuthorization::Allowed,
        Some(_) => FillAuthorization::Unauthorized,
    }
}

/// The claims an isolate holds before the expired ones are dropped. A flood of distinct ids can hold
/// more live claims (each lives [`crate::gate::COALESCE_MS`]): they are kept, since a product whose
/// claim were forgotten would be published again from that isolate.
pub const MAX_CLAIMS: usize = 10_000;

/// The most entries of an isolate's hot cache.
pub const MAX_HOT_ENTRIES: usize = 4_096;

/// An isolate's claims, empty: product → why it was published, until the claim ends; live claims are
/// never dropped ([`Eviction::ExpiredOnly`]).
pub fn claims_map() -> IsolateCache<ProductId, PublishedFor> {
    IsolateCache::new(MAX_CLAIMS, Eviction::ExpiredOnly)
}

/// An isolate's hot cache, empty: product → its KV entry, until [`hot_cache_until`]; a copy of what KV
/// holds, so a map full of live entries is cleared ([`Eviction::ExpiredThenAll`]).
pub fn hot_cache_map() -> IsolateCache<ProductId, Stored> {
    IsolateCache::new(MAX_HOT_ENTRIES, Eviction::ExpiredThenAll)
}

/// Why this isolate published a request for a product in the last few seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishedFor {
    /// A miss: no tier had a usable result, and its client polls for the first one.
    Miss,
    /// A refresh of a result a tier holds (stale, or fresh and refreshed early).
    Refresh,
}

/// The tier a `kv+redis` read asks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstTier {
    /// KV, then Redis only if KV has nothing fresh ([`needs_second_tier`]).
    Kv,
    /// Redis, then KV only if Redis has nothing usable: the polls of a miss this isolate published,
    /// whose result the consumer stores in Redis first (one read per poll, not two).
    Redis,
}

/// Which tier a `kv+redis` read of a product asks first, given why this isolate last published it
/// (`None`: not lately). A refresh is no reason: KV holds the product, and its fresh entry answers
/// without Redis (Redis on every read of a hot product for the seconds after each early refresh was
/// a connection per read).
pub fn first_tier(published: Option<PublishedFor>) -> FirstTier {
    match published {
        Some(PublishedFor::Miss) => FirstTier::Redis,
        _ => FirstTier::Kv,
    }
}

/// Moves `comparison`'s times back to `now_ms` when its writer's clock stamped it later (a result is
/// never computed after it arrives): computed-at, fresh-until and stale-until by the same amount, so
/// that it stays fresh for its own window, not for the window plus the clocks' skew. The fill endpoint
/// applies it on arrival, when the edge's clock is the one to read the result by; whether it moved
/// the times. A writer's clock behind the edge's cannot be told from a result's age (NTP keeps both
/// within far less than any window).
pub fn rebase_to_clock(comparison: &mut Comparison, now_ms: UnixMillis) -> bool {
    let ahead = comparison.computed_at_ms.saturating_sub(now_ms);
    comparison.computed_at_ms -= ahead;
    comparison.fresh_until_ms = comparison.fresh_until_ms.saturating_sub(ahead);
    comparison.stale_until_ms = comparison.stale_until_ms.saturating_sub(ahead);
    ahead > 0
}

/// KV's limit on writes to one key: one a second.
pub const KV_WRITE_RETRY_SECS: u64 = 1;

/// The answer to a fill (or backlog report) whose cache write failed with `error` (the runtime's
/// message), with its `Retry-After` in seconds: always a 503 `/problems/unavailable`, which the
/// consumer retries; never a 500 or a 400, which it takes for a misconfiguration. KV's per-key write
/// limit (production answers `429 Too Many Requests`; `wrangler dev` does not enforce it) is retried
/// after its one second.
pub fn failed_write_answer(error: &str) -> (Problem, u64) {
    let lower = error.to_ascii_lowercase();
    let rate_limited = lower.contains("429") || lower.contains("too many requests");
    let retry_after = if rate_limited {
        KV_WRITE_RETRY_SECS
    } else {
        RETRY_AFTER_SECS
    };
    (Problem::unavailable(), retry_after)
}

/// Why a fill's body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillBodyError {
    /// The body could not be read (the connection failed mid-body): a 503 with `Retry-After`, never
    /// the 400 of a body that is not a comparison, which the consumer takes for its own
    /// misconfiguration.
    #[error("the body could not be read")]
    Unreadable,
    /// The body is not a comparison of the product in the path: 400 `/problems/invalid-comparison`.
    #[error("{0}")]
    NotAComparison(String),
}

/// Reads a fill's `body` (`None`: it could not be read) as the comparison of `product`.
pub fn fill_comparison(
    body: Option<&[u8]>,
    product: ProductId,
) -> Result<Comparison, FillBodyError> {
    let body = body.ok_or(FillBodyError::Unreadable)?;
    match Comparison::from_json(body) {
        Ok(c) if c.product_id == product => Ok(c),
        Ok(c) => Err(FillBodyError::NotAComparison(format!(
            "the body is the comparison of {}, not of {product}",
            c.product_id
        ))),
        Err(error) => Err(FillBodyError::NotAComparison(error.to_string())),
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

    fn header(computed_at: u64) -> StoredHeader {
        StoredHeader::of(&comparison(computed_at))
    }

    #[test]
    fn a_hot_cache_entry_lives_at_most_max_ms_and_never_past_fresh_until() {
        let entry = header(1_000); // fresh until 31 s
        assert_eq!(hot_cache_until(&entry, 2_000, 1_000), Some(3_000));
        assert_eq!(hot_cache_until(&entry, 30_500, 1_000), Some(31_000));
        assert_eq!(hot_cache_until(&entry, 31_000, 1_000), None);
        assert_eq!(hot_cache_until(&entry, 2_000, 0), None);
    }

    #[test]
    fn the_second_tier_is_asked_unless_kv_is_fresh() {
        let entry = header(1_000); // fresh until 31 s, stale until 91 s
        assert!(!needs_second_tier(Some(&entry), 2_000));
        assert!(needs_second_tier(Some(&entry), 40_000));
        assert!(needs_second_tier(Some(&entry), 100_000));
        assert!(needs_second_tier(None, 2_000));
    }

    #[test]
    fn the_newer_usable_tier_wins_and_kv_wins_ties() {
        let (old, new) = (header(1_000), header(20_000));
        assert_eq!(pick_tier(Some(&old), Some(&new), 40_000), TierPick::Redis);
        assert_eq!(pick_tier(Some(&new), Some(&old), 40_000), TierPick::Kv);
        assert_eq!(pick_tier(Some(&new), Some(&new), 40_000), TierPick::Kv);
        assert_eq!(pick_tier(None, Some(&old), 40_000), TierPick::Redis);
        assert_eq!(pick_tier(Some(&old), None, 40_000), TierPick::Kv);
        assert_eq!(pick_tier(None, None, 40_000), TierPick::Neither);
        // Past stale-until, an entry is no answer, however new.
        assert_eq!(pick_tier(Some(&old), None, 100_000), TierPick::Neither);
        assert_eq!(pick_tier(Some(&old), Some(&new), 100_000), TierPick::Redis);
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
        let tag = etag(&comparison(7), Freshness::Fresh);
        assert_eq!(tag, "\"5-7-fresh\"");
        assert!(if_none_match("\"5-7-fresh\"", &tag));
        assert!(if_none_match("\"x\", W/\"5-7-fresh\"", &tag));
        assert!(if_none_match("*", &tag));
        assert!(!if_none_match("\"5-8-fresh\"", &tag));
    }

    #[test]
    fn the_etag_changes_with_the_served_freshness() {
        let c = comparison(7);
        let fresh = etag(&c, Freshness::Fresh);
        let stale = etag(&c, Freshness::Stale);
        assert_ne!(fresh, stale);
        assert_eq!(stale, "\"5-7-stale\"");
        assert!(!if_none_match(&fresh, &stale));
        assert!(!if_none_match(&stale, &fresh));
        // And with the computation, as before.
        assert_ne!(fresh, etag(&comparison(8), Freshness::Fresh));
    }

    #[test]
    fn if_none_match_values_parse_into_tags() {
        assert_eq!(parse_if_none_match(" * "), Ok(IfNoneMatch::Any));
        assert_eq!(
            parse_if_none_match("W/\"a,b\" , \"c\""),
            Ok(IfNoneMatch::Tags(vec![
                EntityTag {
                    weak: true,
                    opaque: "a,b"
                },
                EntityTag {
                    weak: false,
                    opaque: "c"
                },
            ]))
        );
        assert_eq!(parse_if_none_match(""), Ok(IfNoneMatch::Tags(vec![])));
        assert_eq!(
            parse_if_none_match("\"\""),
            Ok(IfNoneMatch::Tags(vec![EntityTag {
                weak: false,
                opaque: ""
            }]))
        );
        assert!(parse_if_none_match("*, \"a\"").is_err());
        assert!(parse_if_none_match("\"a b\"").is_err());
    }

    #[test]
    fn a_fill_without_a_configured_token_is_a_misconfiguration() {
        assert_eq!(
            authorize_fill(None, Some("Bearer x")),
            FillAuthorization::NotConfigured
        );
        assert_eq!(
            authorize_fill(Some(""), None),
            FillAuthorization::NotConfigured
        );
        assert_eq!(
            authorize_fill(Some("s3cret"), Some("bearer s3cret")),
            FillAuthorization::Allowed
        );
        assert_eq!(
            authorize_fill(Some("s3cret"), Some("Bearer nope")),
            FillAuthorization::Unauthorized
        );
        assert_eq!(
            authorize_fill(Some("s3cret"), None),
            FillAuthorization::Unauthorized
        );
    }

    #[test]
    fn if_none_match_follows_the_grammar() {
        let tag = "\"5-7\"";
        // A list, with optional whitespace and empty elements.
        assert!(if_none_match(" \"a\" ,, \"5-7\" ", tag));
        // Weak tags match under the weak comparison that If-None-Match uses.
        assert!(if_none_match("W/\"5-7\"", tag));
        assert!(if_none_match("W/\"x\", W/\"5-7\"", tag));
        // Commas inside an opaque tag do not split it: one tag `"x,*,y"` is not `*`.
        assert!(!if_none_match("\"x,*,y\"", tag));
        assert!(!if_none_match("\"x, *\"", tag));
        assert!(if_none_match("\"a,b\", \"5-7\"", tag));
        // `"a, "` then junk: not a list that holds our tag.
        assert!(!if_none_match("\"a, \"5-7\"", tag));
        // `*` only alone; in a list it makes the field invalid, and an invalid field never matches.
        assert!(if_none_match("*", tag));
        assert!(if_none_match(" * ", tag));
        assert!(!if_none_match("*, \"x\"", tag));
        assert!(!if_none_match("\"x\", *", tag));
        // Not entity tags: unquoted, lower-case `w/`, unterminated, junk after a tag.
        assert!(!if_none_match("5-7", tag));
        assert!(!if_none_match("w/\"5-7\"", tag));
        assert!(!if_none_match("\"5-7", tag));
        assert!(!if_none_match("\"5-7\"x", tag));
        assert!(!if_none_match("", tag));
        assert!(!if_none_match("\"5-\"", tag));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert!(bearer_matches(Some("bearer s3cret"), "s3cret"));
        assert!(bearer_matches(Some("BEARER s3cret"), "s3cret"));
        assert!(bearer_matches(Some("Bearer   s3cret"), "s3cret"));
        assert!(!bearer_matches(Some("Bearers3cret"), "s3cret"));
        assert!(!bearer_matches(Some("bearer"), "s3cret"));
        assert!(!bearer_matches(Some("Bearer s3cret x"), "s3cret"));
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

    proptest! {
        #[test]
        fn kv_ttl_never_expires_before_stale_until(stale in any::<u32>(), now in any::<u32>()) {
            let ttl = kv_ttl_secs(u64::from(stale), u64::from(now));
            prop_assert!(u64::from(now) + ttl * 1000 >= u64::from(stale));
            prop_assert!(ttl >= KV_MIN_TTL_SECS);
        }
    }

    #[test]
    fn a_kv_read_after_a_refresh_asks_kv_first_and_the_polls_of_a_miss_redis() {
        assert_eq!(first_tier(Some(PublishedFor::Refresh)), FirstTier::Kv);
        assert_eq!(first_tier(None), FirstTier::Kv);
        assert_eq!(first_tier(Some(PublishedFor::Miss)), FirstTier::Redis);
    }

    #[test]
    fn a_result_stamped_by_a_clock_ahead_is_fresh_for_its_own_window_only() {
        // Computed by a consumer whose clock runs 10 minutes ahead, fresh for 30 s, filled at the
        // edge's 1 000 000.
        let mut result = comparison(1_000_000 + 600_000);
        assert!(rebase_to_clock(&mut result, 1_000_000));
        assert_eq!(
            decide_read(Some(&result), 1_000_000),
            ReadDecision::Fresh { max_age_secs: 30 }
        );
        assert_eq!(decide_read(Some(&result), 1_031_000), ReadDecision::Stale);
        assert_eq!(decide_read(Some(&result), 1_091_000), ReadDecision::Miss);
        // A clock that is not ahead changes nothing.
        let mut on_time = comparison(1_000_000);
        let before = on_time.clone();
        assert!(!rebase_to_clock(&mut on_time, 1_005_000));
        assert_eq!(on_time, before);
    }

    #[test]
    fn a_failed_cache_write_is_a_503_to_retry_and_kvs_write_limit_a_second_later() {
        let (problem, retry) = failed_write_answer("Error: KV PUT failed: 429 Too Many Requests");
        assert_eq!((problem.status, retry), (503, KV_WRITE_RETRY_SECS));
        assert_eq!(problem.kind, "/problems/unavailable");
        let (problem, retry) = failed_write_answer("KV PUT failed: 500 Internal Server Error");
        assert_eq!((problem.status, retry), (503, RETRY_AFTER_SECS));
    }

    #[test]
    fn a_fill_body_that_could_not_be_read_is_not_an_invalid_comparison() {
        let product = ProductId::new(5).unwrap();
        assert_eq!(
            fill_comparison(None, product),
            Err(FillBodyError::Unreadable)
        );
        let json = comparison(1_000).to_json();
        assert_eq!(
            fill_comparison(Some(json.as_bytes()), product),
            Ok(comparison(1_000))
        );
        assert!(matches!(
            fill_comparison(Some(json.as_bytes()), ProductId::new(6).unwrap()),
            Err(FillBodyError::NotAComparison(_))
        ));
        assert!(matches!(
            fill_comparison(Some(b"{"), product),
            Err(FillBodyError::NotAComparison(_))
        ));
    }

    #[test]
    fn live_claims_are_kept_past_the_bound_and_a_full_hot_cache_is_cleared() {
        let id = |n: usize| ProductId::new(n as u64 + 1).unwrap();
        let mut claims = claims_map();
        for n in 0..=MAX_CLAIMS {
            claims.insert(id(n), PublishedFor::Miss, 5_000, 0);
        }
        assert_eq!(claims.len(), MAX_CLAIMS + 1);
        assert_eq!(claims.get(&id(0), 1), Some(&PublishedFor::Miss));

        let stored = Stored::from_bytes(
            crate::fixtures::comparison(0, 1, 60_000)
                .to_json()
                .into_bytes(),
        )
        .unwrap();
        let mut hot = hot_cache_map();
        for n in 0..=MAX_HOT_ENTRIES {
            hot.insert(id(n), stored.clone(), 1_000, 0);
        }
        assert_eq!(hot.len(), 1);
    }
}
