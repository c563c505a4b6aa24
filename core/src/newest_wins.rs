//! Which of two results of one product a cache keeps: the newer one. After a rebalance an older
//! comparison can reach a sink after a newer one; it must never replace it.
//!
//! The rule is written once here ([`supersedes`]) and, for Redis, once as a Lua script
//! ([`REDIS_SET_IF_NEWER`]) that applies it atomically on the server: the consumer and the edge's Redis
//! backend both run that script instead of a plain `SET`.

use crate::{Comparison, UnixMillis};

/// Whether `incoming` may replace what is stored: it may, unless the stored result was computed later.
/// An equal `computedAtMs` replaces (a retried write of the same result is idempotent), and so does
/// anything over an entry that does not parse (`stored_computed_at_ms` is `None`).
pub fn supersedes(incoming: &Comparison, stored_computed_at_ms: Option<UnixMillis>) -> bool {
    stored_computed_at_ms.is_none_or(|stored| incoming.computed_at_ms >= stored)
}

/// `EVAL` script: `KEYS[1]` the cache key, `ARGV[1]` the comparison's JSON, `ARGV[2]` its
/// `computedAtMs`, `ARGV[3]` the TTL in milliseconds. Stores the value (`SET … PX`) unless the stored
/// entry's `computedAtMs` is greater, the same rule as [`supersedes`]; returns 1 when it stored, 0 when
/// the stored entry was newer.
pub const REDIS_SET_IF_NEWER: &str = r#"
local current = redis.call('GET', KEYS[1])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and type(stored) == 'table' then
    local stored_at = tonumber(stored['computedAtMs'])
    if stored_at and stored_at > tonumber(ARGV[2]) then
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FreshnessPolicy, ProductId};

    fn computed_at(ms: UnixMillis) -> Comparison {
        Comparison::aggregate(
            ProductId::new(7).unwrap(),
            [],
            ms,
            &FreshnessPolicy::default(),
        )
    }

    #[test]
    fn an_older_result_never_replaces_a_newer_one() {
        assert!(!supersedes(&computed_at(1_000), Some(2_000)));
        assert!(supersedes(&computed_at(2_000), Some(1_000)));
        assert!(supersedes(&computed_at(2_000), Some(2_000)));
        assert!(supersedes(&computed_at(1), None));
    }
}
