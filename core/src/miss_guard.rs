//! What stands between a miss and a publish (the edge's defence against a flood of distinct ids): the
//! known-products filter ([`crate::catalog`]), backpressure ([`crate::backlog`]) and a per-client rate
//! limit on misses. Hits never pass through here: they are cheap. The isolate's copy of the filter
//! ([`CatalogCache`]) is read by one request at a time and kept through a failed read.

use crate::isolate_cache::is_live;
use crate::UnixMillis;

/// Whom the per-client limit on misses counts (`MISS_RATE_LIMIT_KEY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissLimitKey {
    /// `off`: no limit.
    Off,
    /// `ip` (the default): the client's address, `CF-Connecting-IP`.
    Ip,
    /// `header:<name>`: the value of that request header (an API key), else the address.
    Header(String),
}

/// Why a `MISS_RATE_LIMIT_KEY` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MISS_RATE_LIMIT_KEY must be off, ip or header:<name>, not {0:?}")]
pub struct MissLimitKeyError(pub String);

impl MissLimitKey {
    /// Reads the setting (`None`: unset, the default `ip`).
    pub fn parse(setting: Option<&str>) -> Result<Self, MissLimitKeyError> {
        match setting.map(str::trim) {
            None | Some("") | Some("ip") => Ok(Self::Ip),
            Some("off") => Ok(Self::Off),
            Some(other) => match other.strip_prefix("header:").map(str::trim) {
                Some(name) if !name.is_empty() && name.bytes().all(is_token_byte) => {
                    Ok(Self::Header(name.to_owned()))
                }
                _ => Err(MissLimitKeyError(other.to_owned())),
            },
        }
    }

    /// The limiter key of one request, from its header's value (with [`MissLimitKey::Header`]) and
    /// its `CF-Connecting-IP`; `None` when nothing is limited.
    pub fn key_of(&self, header_value: Option<&str>, client_ip: Option<&str>) -> Option<String> {
        let by_ip = || Some(format!("ip:{}", client_ip.unwrap_or("unknown")));
        match self {
            Self::Off => None,
            Self::Ip => by_ip(),
            Self::Header(_) => match header_value.map(str::trim).filter(|v| !v.is_empty()) {
                Some(value) => Some(format!("key:{value}")),
                None => by_ip(),
            },
        }
    }

    /// Every limit one request's miss counts against, each a limiter and its key; the miss is refused
    /// when any is exceeded. With an API key (`header:` mode), the key's own limit and its address's:
    /// a header's value alone is the client's word, and a flood of random values from one address
    /// would each get a fresh limit. (Not one key of address and header together: that too is a fresh
    /// limit per random value.)
    pub fn limits_of(
        &self,
        header_value: Option<&str>,
        client_ip: Option<&str>,
    ) -> Vec<(Limiter, String)> {
        let mut limits: Vec<_> = self
            .key_of(header_value, client_ip)
            .map(|key| (Limiter::Client, key))
            .into_iter()
            .collect();
        if limits
            .first()
            .is_some_and(|(_, key)| key.starts_with("key:"))
        {
            let address = format!("ip:{}", client_ip.unwrap_or("unknown"));
            limits.push((Limiter::Address, address));
        }
        limits
    }
}

/// Which limiter binding counts a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limiter {
    /// `MISS_LIMITER`: the client (its API key, or its address).
    Client,
    /// `MISS_ADDRESS_LIMITER`: the address behind API keys (`header:` mode), with a higher limit, so
    /// that many keys sent from one address share it.
    Address,
}

/// An HTTP header name's byte (RFC 9110 `tchar`).
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Why a miss was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The id is not in the catalog: 404.
    UnknownProduct,
    /// The pipeline is far behind: 503 with `Retry-After`.
    Backlogged,
    /// This client made too many misses: 429 with `Retry-After`.
    RateLimited,
}

/// How long an isolate keeps the known-products filter before reading it again.
pub const CATALOG_REFRESH_MS: u64 = 300_000;

/// How soon an isolate reads the filter again after a read failed (KV away), keeping what it had.
pub const CATALOG_RETRY_MS: u64 = 5_000;

/// How long one request's read of the filter may take before another request reads it instead (the
/// first may have been cancelled mid-read, its client gone).
pub const CATALOG_READ_STALL_MS: u64 = 30_000;

/// What a read of the known-products filter from KV gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogRead<F> {
    /// The filter.
    Loaded(F),
    /// KV holds nothing under the key: no filter (the operator's choice).
    Absent,
    /// KV holds something that is not a filter: an upload gone wrong.
    Unreadable,
    /// KV could not be read.
    Failed,
}

/// What a request does about the filter ([`CatalogCache::step`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogStep<F> {
    /// Check against this filter (`None`: no filter, let every id through).
    Use(Option<F>),
    /// Read the filter from KV, then report it with [`CatalogCache::finish`]; other requests meanwhile
    /// use what is held.
    Read,
    /// Another request of this isolate is reading the first filter: wait a moment, then step again.
    Wait,
}

/// An isolate's known-products filter: what it holds, when it reads it again, and whether a read is
/// under way. One request at a time reads (a filter can be megabytes to fetch and parse); a failed
/// read keeps the last good filter and is tried again soon. What a read decided is not forgotten when
/// its next read is due: it is served (stale) while one request reads it again.
#[derive(Debug, Clone)]
pub struct CatalogCache<F> {
    /// What the reads decided so far.
    decided: Decided<F>,
    /// Until when the read under way keeps the others from reading (its start plus
    /// [`CATALOG_READ_STALL_MS`]); `None` when none is.
    reading_until: Option<UnixMillis>,
}

/// What an isolate's reads of the known-products filter decided so far.
#[derive(Debug, Clone)]
enum Decided<F> {
    /// No read has finished yet: requests wait for the first.
    Nothing,
    /// The last read's outcome, served until the next read is due and after it, until that read ends.
    Filter {
        /// The filter (`None`: the operator set none, every id is let through).
        filter: Option<F>,
        /// When the next read is due.
        next_read_ms: UnixMillis,
    },
}

impl<F: Clone> Default for CatalogCache<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Clone> CatalogCache<F> {
    /// Nothing read yet: the first request reads.
    pub const fn new() -> Self {
        Self {
            decided: Decided::Nothing,
            reading_until: None,
        }
    }

    /// What a request at `now_ms` does: read (it is due and nobody is reading), wait (the first read
    /// is under way) or use what is held.
    pub fn step(&mut self, now_ms: UnixMillis) -> CatalogStep<F> {
        let reading = self
            .reading_until
            .is_some_and(|until| is_live(until, now_ms));
        let due = match &self.decided {
            Decided::Nothing => true,
            Decided::Filter { next_read_ms, .. } => now_ms >= *next_read_ms,
        };
        if due && !reading {
            self.reading_until = Some(now_ms.saturating_add(CATALOG_READ_STALL_MS));
            return CatalogStep::Read;
        }
        match &self.decided {
            Decided::Filter { filter, .. } => CatalogStep::Use(filter.clone()),
            Decided::Nothing => CatalogStep::Wait,
        }
    }

    /// Takes what a read gave at `now_ms`: a new filter or none replaces what was held until the next
    /// refresh; an unreadable value keeps the last good filter until then; a failed read keeps it and
    /// is tried again after [`CATALOG_RETRY_MS`].
    pub fn finish(&mut self, read: CatalogRead<F>, now_ms: UnixMillis) {
        self.reading_until = None;
        let last_good = match std::mem::replace(&mut self.decided, Decided::Nothing) {
            Decided::Filter { filter, .. } => filter,
            Decided::Nothing => None,
        };
        let (filter, wait_ms) = match read {
            CatalogRead::Loaded(filter) => (Some(filter), CATALOG_REFRESH_MS),
            CatalogRead::Absent => (None, CATALOG_REFRESH_MS),
            CatalogRead::Unreadable => (last_good, CATALOG_REFRESH_MS),
            CatalogRead::Failed => (last_good, CATALOG_RETRY_MS),
        };
        self.decided = Decided::Filter {
            filter,
            next_read_ms: now_ms.saturating_add(wait_ms),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_setting() {
        assert_eq!(MissLimitKey::parse(None), Ok(MissLimitKey::Ip));
        assert_eq!(MissLimitKey::parse(Some("off")), Ok(MissLimitKey::Off));
        assert_eq!(
            MissLimitKey::parse(Some("header:X-Api-Key")),
            Ok(MissLimitKey::Header("X-Api-Key".into()))
        );
        assert!(MissLimitKey::parse(Some("header:")).is_err());
        assert!(MissLimitKey::parse(Some("header:a b")).is_err());
        assert!(MissLimitKey::parse(Some("cookie")).is_err());
    }

    #[test]
    fn keys_a_request_by_its_api_key_else_its_address() {
        let header = MissLimitKey::Header("X-Api-Key".into());
        assert_eq!(
            header.key_of(Some("k1"), Some("1.2.3.4")).as_deref(),
            Some("key:k1")
        );
        assert_eq!(
            header.key_of(None, Some("1.2.3.4")).as_deref(),
            Some("ip:1.2.3.4")
        );
        assert_eq!(
            MissLimitKey::Ip
                .key_of(Some("k1"), Some("1.2.3.4"))
                .as_deref(),
            Some("ip:1.2.3.4")
        );
        assert_eq!(MissLimitKey::Off.key_of(Some("k1"), Some("1.2.3.4")), None);
    }

    #[test]
    fn random_api_keys_from_one_address_share_the_address_limit() {
        let header = MissLimitKey::Header("X-Api-Key".into());
        let first = header.limits_of(Some("random-1"), Some("1.2.3.4"));
        let second = header.limits_of(Some("random-2"), Some("1.2.3.4"));
        let shared: Vec<_> = first.iter().filter(|l| second.contains(l)).collect();
        assert_eq!(
            shared,
            vec![&(Limiter::Address, "ip:1.2.3.4".to_owned())],
            "{first:?} and {second:?}"
        );
        // Each key still has its own limit.
        assert!(first.contains(&(Limiter::Client, "key:random-1".to_owned())));
        // Without the header, or by address, one limit: the client's address.
        assert_eq!(
            header.limits_of(None, Some("1.2.3.4")),
            vec![(Limiter::Client, "ip:1.2.3.4".to_owned())]
        );
        assert_eq!(
            MissLimitKey::Ip.limits_of(Some("k"), Some("1.2.3.4")),
            vec![(Limiter::Client, "ip:1.2.3.4".to_owned())]
        );
        assert!(MissLimitKey::Off.limits_of(Some("k"), None).is_empty());
    }

    #[test]
    fn a_failed_read_of_the_catalog_keeps_the_last_good_filter_and_is_retried_soon() {
        let mut cache = CatalogCache::new();
        assert_eq!(cache.step(0), CatalogStep::Read);
        cache.finish(CatalogRead::Loaded("v1"), 0);
        assert_eq!(cache.step(1_000), CatalogStep::Use(Some("v1")));
        // Due again; KV fails: the filter stays on, and the next request after the retry time reads.
        assert_eq!(cache.step(CATALOG_REFRESH_MS), CatalogStep::Read);
        cache.finish(CatalogRead::Failed, CATALOG_REFRESH_MS);
        assert_eq!(
            cache.step(CATALOG_REFRESH_MS + 1),
            CatalogStep::Use(Some("v1"))
        );
        let retry = CATALOG_REFRESH_MS + CATALOG_RETRY_MS;
        assert_eq!(cache.step(retry - 1), CatalogStep::Use(Some("v1")));
        assert_eq!(cache.step(retry), CatalogStep::Read);
        // A value that is not a filter keeps the last good one too; an absent one turns it off.
        cache.finish(CatalogRead::Unreadable, retry);
        assert_eq!(cache.step(retry + 1), CatalogStep::Use(Some("v1")));
        let later = retry + CATALOG_REFRESH_MS;
        assert_eq!(cache.step(later), CatalogStep::Read);
        cache.finish(CatalogRead::Absent, later);
        assert_eq!(cache.step(later + 1), CatalogStep::Use(None));
    }

    #[test]
    fn one_request_at_a_time_reads_the_catalog() {
        let mut cache = CatalogCache::new();
        assert_eq!(cache.step(0), CatalogStep::Read);
        // The first read is under way: the others wait for it rather than read too.
        assert_eq!(cache.step(10), CatalogStep::Wait);
        cache.finish(CatalogRead::Loaded(1), 20);
        // Due again: one reads, the others use the filter held meanwhile.
        let due = 20 + CATALOG_REFRESH_MS;
        assert_eq!(cache.step(due), CatalogStep::Read);
        assert_eq!(cache.step(due + 1), CatalogStep::Use(Some(1)));
        assert_eq!(cache.step(due + 2), CatalogStep::Use(Some(1)));
        // A reader that never reports back (its request cancelled) is replaced after the stall time.
        assert_eq!(cache.step(due + CATALOG_READ_STALL_MS), CatalogStep::Read);
        // A first read that failed lets ids through until the retry.
        let mut cold = CatalogCache::<u8>::new();
        assert_eq!(cold.step(0), CatalogStep::Read);
        cold.finish(CatalogRead::Failed, 0);
        assert_eq!(cold.step(1), CatalogStep::Use(None));
        assert_eq!(cold.step(CATALOG_RETRY_MS), CatalogStep::Read);
    }
}
