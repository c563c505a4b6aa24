//! Which of two results of one product a cache keeps.
//!
//! - **Newest wins.** After a rebalance an older comparison can reach a sink after a newer one; it must
//!   never replace it.
//! - **Stale-if-error** (RFC 5861's idea, applied when storing). A result in which no vendor gave an
//!   offer must not replace a stored result that has offers and may still be served (before its
//!   stale-until): the stored one keeps being served, stale once past its fresh-until, and the empty one
//!   is dropped. "Still servable" is judged at the incoming result's `computedAtMs`, so both times come
//!   from the consumers' clocks, never from a comparison of the edge's clock with theirs.
//!
//! The rule is written once here ([`replacement`]) and, for Redis, once as a Lua script
//! ([`REDIS_STORE_IF_REPLACES`]) that applies it atomically on the server: the consumer and the edge's
//! Redis backend both run that script instead of a plain `SET`; the edge's KV backend reads, decides with
//! [`replacement`], then writes.

use crate::stored::StoredHeader;
use crate::{Comparison, UnixMillis};

/// What a cache holds of a product, as far as replacing it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// When the held result was computed.
    pub computed_at_ms: UnixMillis,
    /// Until when it may be served.
    pub stale_until_ms: UnixMillis,
    /// How many offers it has.
    pub offers: usize,
}

impl From<&StoredHeader> for Held {
    fn from(header: &StoredHeader) -> Self {
        Self {
            computed_at_ms: header.computed_at_ms,
            stale_until_ms: header.stale_until_ms,
            offers: header.offers,
        }
    }
}

/// What to do with an incoming result, given what the cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement {
    /// Store it (nothing held, an older or equal result held, or nothing useful lost).
    Store,
    /// Keep the held result: it was computed later.
    KeepNewer,
    /// Keep the held result: it has offers and may still be served, while the incoming one has none.
    KeepUseful,
}

/// The rule: what to do with `incoming` over `held` (`None` when nothing is held, or what is held does
/// not parse). An equal `computedAtMs` replaces (a retried write of the same result is idempotent).
pub fn replacement(incoming: &Comparison, held: Option<Held>) -> Replacement {
    let incoming = Held {
        computed_at_ms: incoming.computed_at_ms,
        stale_until_ms: incoming.stale_until_ms,
        offers: incoming.offers.len(),
    };
    replacement_of(incoming, held)
}

/// [`replacement`] of an incoming result known by its header (the product gate holds no parsed
/// comparison).
pub fn replacement_of(incoming: Held, held: Option<Held>) -> Replacement {
    let Some(held) = held else {
        return Replacement::Store;
    };
    if held.computed_at_ms > incoming.computed_at_ms {
        Replacement::KeepNewer
    } else if incoming.offers == 0
        && held.offers > 0
        && held.stale_until_ms > incoming.computed_at_ms
    {
        Replacement::KeepUseful
    } else {
        Replacement::Store
    }
}

/// `EVAL` script: `KEYS[1]` the cache key, `ARGV[1]` the comparison's JSON, `ARGV[2]` its
/// `computedAtMs`, `ARGV[3]` the TTL in milliseconds, `ARGV[4]` its number of offers. Applies
/// [`replacement`] to the stored entry and stores the value (`SET … PX`) when it says so. Returns 1 when
/// it stored, 0 when the stored entry was newer ([`Replacement::KeepNewer`]), 2 when the stored entry was
/// kept as the useful one ([`Replacement::KeepUseful`]).
pub const REDIS_STORE_IF_REPLACES: &str = r#"
local current = redis.call('GET', KEYS[1])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and type(stored) == 'table' then
    local incoming_at = tonumber(ARGV[2])
    local stored_at = tonumber(stored['computedAtMs'])
    if stored_at and stored_at > incoming_at then
      return 0
    end
    local offers = stored['offers']
    local stale_until = tonumber(stored['staleUntilMs'])
    if tonumber(ARGV[4]) == 0 and type(offers) == 'table' and #offers > 0
      and stale_until and stale_until > incoming_at then
      return 2
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"#;

/// What [`REDIS_STORE_IF_REPLACES`] answered, read back; `None` for an answer it never gives.
pub fn replacement_from_script(reply: i64) -> Option<Replacement> {
    match reply {
        1 => Some(Replacement::Store),
        0 => Some(Replacement::KeepNewer),
        2 => Some(Replacement::KeepUseful),
        _ => None,
    }
}

/// The header of the edge's fill endpoint's 204 that says the comparison was accepted but not stored,
/// and why ([`Replacement::fill_outcome`]); absent when it was stored.
pub const FILL_OUTCOME_HEADER: &str = "Pricefront-Fill-Outcome";

impl Replacement {
    /// The value of [`FILL_OUTCOME_HEADER`] for this decision: `None` when the comparison was stored.
    pub fn fill_outcome(self) -> Option<&'static str> {
        match self {
            Replacement::Store => None,
            Replacement::KeepNewer => Some("kept-newer"),
            Replacement::KeepUseful => Some("kept-useful"),
        }
    }

    /// The decision a fill's [`FILL_OUTCOME_HEADER`] value names (absent: stored); `None` for a value
    /// this release does not know.
    pub fn from_fill_outcome(value: Option<&str>) -> Option<Self> {
        match value {
            None => Some(Replacement::Store),
            Some("kept-newer") => Some(Replacement::KeepNewer),
            Some("kept-useful") => Some(Replacement::KeepUseful),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn computed_at(ms: UnixMillis, offers: usize) -> Comparison {
        crate::fixtures::comparison(ms, offers, 60_000)
    }

    fn held(computed_at_ms: UnixMillis, stale_until_ms: UnixMillis, offers: usize) -> Held {
        Held {
            computed_at_ms,
            stale_until_ms,
            offers,
        }
    }

    #[test]
    fn an_older_result_never_replaces_a_newer_one() {
        let newer = held(2_000, 90_000, 1);
        assert_eq!(
            replacement(&computed_at(1_000, 1), Some(newer)),
            Replacement::KeepNewer
        );
        assert_eq!(
            replacement(&computed_at(2_000, 1), Some(held(1_000, 90_000, 1))),
            Replacement::Store
        );
        assert_eq!(
            replacement(&computed_at(2_000, 1), Some(held(2_000, 90_000, 1))),
            Replacement::Store
        );
        assert_eq!(replacement(&computed_at(1, 0), None), Replacement::Store);
    }

    #[test]
    fn an_empty_result_never_replaces_a_servable_one_with_offers() {
        let useful = held(1_000, 60_000, 2);
        assert_eq!(
            replacement(&computed_at(30_000, 0), Some(useful)),
            Replacement::KeepUseful,
            "stale but still servable: kept"
        );
        assert_eq!(
            replacement(&computed_at(60_000, 0), Some(useful)),
            Replacement::Store,
            "past its stale-until: the empty result is all there is"
        );
        assert_eq!(
            replacement(&computed_at(30_000, 0), Some(held(1_000, 60_000, 0))),
            Replacement::Store,
            "nothing useful held"
        );
        assert_eq!(
            replacement(&computed_at(30_000, 1), Some(useful)),
            Replacement::Store,
            "an offer replaces"
        );
    }

    #[test]
    fn the_scripts_replies_read_back() {
        assert_eq!(replacement_from_script(1), Some(Replacement::Store));
        assert_eq!(replacement_from_script(0), Some(Replacement::KeepNewer));
        assert_eq!(replacement_from_script(2), Some(Replacement::KeepUseful));
        assert_eq!(replacement_from_script(3), None);
    }

    #[test]
    fn the_fill_outcome_header_round_trips() {
        for decision in [
            Replacement::Store,
            Replacement::KeepNewer,
            Replacement::KeepUseful,
        ] {
            assert_eq!(
                Replacement::from_fill_outcome(decision.fill_outcome()),
                Some(decision)
            );
        }
        assert_eq!(Replacement::from_fill_outcome(Some("other")), None);
    }
}
