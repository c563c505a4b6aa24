//! What stands between a miss and a publish (the edge's defence against a flood of distinct ids): the
//! known-products filter ([`crate::catalog`]), backpressure ([`crate::backlog`]) and a per-client rate
//! limit on misses. Hits never pass through here: they are cheap.

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
}
