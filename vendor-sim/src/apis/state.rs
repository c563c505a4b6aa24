//! The simulated APIs' run-time state: settings, issued tokens, request windows and counts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};
use rsa::RsaPublicKey;
use serde::{Deserialize, Serialize};

use super::api::Api;
use super::settings::{configured_public_key, ApiSettings, ApiSettingsError, ApiSettingsPatch};

/// What one API has seen since start (or since `POST /_sim/apis/{name}/reset`), as
/// `GET /_sim/apis/{name}/stats` returns it. Every field is a count of requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiStats {
    /// `requests`: requests to the API's data route (search, products, items, getItems, request),
    /// whatever their answer; token requests are not counted here.
    pub requests: u64,
    /// `token_requests`: requests to the API's token endpoint(s).
    pub token_requests: u64,
    /// `tokens_minted`: tokens issued.
    pub tokens_minted: u64,
    /// `mint_refusals`: token requests refused (wrong client id or secret, grant or scope).
    pub mint_refusals: u64,
    /// `expired_token_refusals`: data requests refused for a token that had expired.
    pub expired_token_refusals: u64,
    /// `unknown_token_refusals`: data requests refused for a token the API never issued.
    pub unknown_token_refusals: u64,
    /// `missing_credential_refusals`: data requests without any token, key or signature headers.
    pub missing_credential_refusals: u64,
    /// `bad_key_refusals`: data requests refused for a wrong API key or Walmart consumer id.
    pub bad_key_refusals: u64,
    /// `bad_signature_refusals`: Walmart requests whose signature did not verify (a changed timestamp,
    /// consumer id or key version, another key, bad base64) or whose key version is not the set one.
    pub bad_signature_refusals: u64,
    /// `stale_timestamp_refusals`: Walmart requests with a valid signature over a timestamp further
    /// than `signature_max_age_secs` from now.
    pub stale_timestamp_refusals: u64,
    /// `over_limit_refusals`: requests refused over `max_requests_per_second` or `request_limit`.
    pub over_limit_refusals: u64,
    /// `bad_request_refusals`: requests refused as malformed (missing or invalid identifier or
    /// parameters).
    pub bad_request_refusals: u64,
    /// `answers_with_offers`: data requests answered with at least one offer.
    pub answers_with_offers: u64,
    /// `answers_without_offers`: data requests answered with the API's empty or not-found form.
    pub answers_without_offers: u64,
}

/// Whether a presented token is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenCheck {
    Valid,
    Expired,
    Unknown,
}

/// Whether a request is within the API's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Admitted,
    /// Over `max_requests_per_second`.
    OverRate,
    /// Over `request_limit`.
    OverLimit,
}

/// The most tokens kept per API before expired ones are forgotten.
const MAX_TOKENS: usize = 50_000;

#[derive(Debug)]
struct One {
    settings: ApiSettings,
    key: Option<RsaPublicKey>,
    tokens: HashMap<String, Instant>,
    window: VecDeque<Instant>,
    admitted: u64,
    stats: ApiStats,
}

impl One {
    fn new(api: Api) -> Self {
        let settings = ApiSettings::defaults(api);
        let key = configured_public_key(&settings.public_key_pem)
            .ok()
            .flatten();
        Self {
            settings,
            key,
            tokens: HashMap::new(),
            window: VecDeque::new(),
            admitted: 0,
            stats: ApiStats::default(),
        }
    }
}

/// The state of all five simulated APIs.
#[derive(Debug)]
pub struct ApiState {
    apis: Mutex<BTreeMap<Api, One>>,
}

impl Default for ApiState {
    fn default() -> Self {
        Self {
            apis: Mutex::new(
                Api::ALL
                    .into_iter()
                    .map(|api| (api, One::new(api)))
                    .collect(),
            ),
        }
    }
}

impl ApiState {
    fn with<T>(&self, api: Api, f: impl FnOnce(&mut One) -> T) -> T {
        let mut apis: MutexGuard<'_, BTreeMap<Api, One>> = self
            .apis
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let one = apis.entry(api).or_insert_with(|| One::new(api));
        f(one)
    }

    /// `api`'s current settings.
    pub fn settings(&self, api: Api) -> ApiSettings {
        self.with(api, |one| one.settings.clone())
    }

    /// Applies `patch` over `api`'s current settings (nothing changes if it is refused).
    pub fn configure(&self, api: Api, patch: &ApiSettingsPatch) -> Result<(), ApiSettingsError> {
        let current = self.settings(api);
        let settings = current.patched(patch);
        if settings.latency_min_ms > settings.latency_max_ms || settings.latency_max_ms > 3_600_000
        {
            return Err(ApiSettingsError::BadLatency { api });
        }
        let key = match configured_public_key(&settings.public_key_pem) {
            Ok(key) => key,
            Err(reason) if api == Api::Walmart => {
                return Err(ApiSettingsError::BadPublicKey { api, reason })
            }
            Err(_) => None,
        };
        self.with(api, |one| {
            one.settings = settings;
            one.key = key;
        });
        Ok(())
    }

    /// `api`'s counts.
    pub fn stats(&self, api: Api) -> ApiStats {
        self.with(api, |one| one.stats)
    }

    /// Zeroes `api`'s counts and the requests counted against its limits (issued tokens stay valid).
    pub fn reset(&self, api: Api) {
        self.with(api, |one| {
            one.stats = ApiStats::default();
            one.window.clear();
            one.admitted = 0;
        });
    }

    /// Changes `api`'s counts.
    pub(crate) fn record(&self, api: Api, f: impl FnOnce(&mut ApiStats)) {
        self.with(api, |one| f(&mut one.stats));
    }

    /// The RSA key `api` checks signatures with: none while its `public_key_pem` is empty.
    pub(crate) fn public_key(&self, api: Api) -> Option<RsaPublicKey> {
        self.with(api, |one| one.key.clone())
    }

    /// Issues a token for `api`: `prefix` and 64 random alphanumerics, valid for the API's
    /// `token_ttl_secs`, which is returned with it.
    pub(crate) fn mint(&self, api: Api, prefix: &str) -> (String, u64) {
        let token = format!(
            "{prefix}{}",
            Alphanumeric.sample_string(&mut rand::rng(), 64)
        );
        self.with(api, |one| {
            let now = Instant::now();
            if one.tokens.len() >= MAX_TOKENS {
                let grace = Duration::from_secs(3600);
                one.tokens.retain(|_, expires| *expires + grace > now);
                if one.tokens.len() >= MAX_TOKENS {
                    one.tokens.retain(|_, expires| *expires > now);
                }
            }
            let ttl = one.settings.token_ttl_secs;
            let expires = now
                .checked_add(Duration::from_secs(ttl))
                .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
                .unwrap_or(now);
            one.tokens.insert(token.clone(), expires);
            one.stats.tokens_minted += 1;
            (token, ttl)
        })
    }

    /// Whether `token` is one `api` issued and has not expired.
    pub(crate) fn check_token(&self, api: Api, token: &str) -> TokenCheck {
        self.with(api, |one| match one.tokens.get(token) {
            None => TokenCheck::Unknown,
            Some(expires) if Instant::now() >= *expires => TokenCheck::Expired,
            Some(_) => TokenCheck::Valid,
        })
    }

    /// Every token `api` issued that it still remembers (tests search what a client wrote for them).
    pub fn issued_tokens(&self, api: Api) -> Vec<String> {
        self.with(api, |one| one.tokens.keys().cloned().collect())
    }

    /// Expires every token `api` issued, now, as a vendor that revokes tokens before their
    /// `expires_in`: requests that carry one are answered as the API answers an expired token.
    pub fn expire_tokens(&self, api: Api) {
        self.with(api, |one| {
            let now = Instant::now();
            one.tokens.values_mut().for_each(|expires| *expires = now);
        });
    }

    /// Counts a request against `api`'s limits, if it is within them; counts a refusal otherwise.
    pub(crate) fn admit(&self, api: Api) -> Admission {
        self.with(api, |one| {
            let now = Instant::now();
            let second = Duration::from_secs(1);
            while one
                .window
                .front()
                .is_some_and(|at| now.duration_since(*at) >= second)
            {
                one.window.pop_front();
            }
            let admission =
                if one.settings.request_limit > 0 && one.admitted >= one.settings.request_limit {
                    Admission::OverLimit
                } else if one.settings.max_requests_per_second > 0
                    && one.window.len() >= one.settings.max_requests_per_second as usize
                {
                    Admission::OverRate
                } else {
                    Admission::Admitted
                };
            if admission == Admission::Admitted {
                one.admitted += 1;
                if one.settings.max_requests_per_second > 0 {
                    one.window.push_back(now);
                }
            } else {
                one.stats.over_limit_refusals += 1;
            }
            admission
        })
    }

    /// Requests admitted so far against `request_limit` (Rainforest's credits used).
    pub(crate) fn admitted(&self, api: Api) -> u64 {
        self.with(api, |one| one.admitted)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_keys::OpensslKeys;
    use super::*;

    #[test]
    fn tokens_expire_and_unknown_ones_are_told_apart() {
        let state = ApiState::default();
        state
            .configure(
                Api::Ebay,
                &ApiSettingsPatch {
                    token_ttl_secs: Some(0),
                    ..ApiSettingsPatch::default()
                },
            )
            .unwrap();
        let (token, ttl) = state.mint(Api::Ebay, "v^1.1#");
        assert_eq!(ttl, 0);
        assert_eq!(state.check_token(Api::Ebay, &token), TokenCheck::Expired);
        assert_eq!(state.check_token(Api::Ebay, "nope"), TokenCheck::Unknown);
        assert_eq!(state.check_token(Api::Amazon, &token), TokenCheck::Unknown);
        assert_eq!(state.stats(Api::Ebay).tokens_minted, 1);
    }

    #[test]
    fn limits_admit_then_refuse() {
        let state = ApiState::default();
        state
            .configure(
                Api::BestBuy,
                &ApiSettingsPatch {
                    request_limit: Some(2),
                    ..ApiSettingsPatch::default()
                },
            )
            .unwrap();
        assert_eq!(state.admit(Api::BestBuy), Admission::Admitted);
        assert_eq!(state.admit(Api::BestBuy), Admission::Admitted);
        assert_eq!(state.admit(Api::BestBuy), Admission::OverLimit);
        assert_eq!(state.stats(Api::BestBuy).over_limit_refusals, 1);
        state.reset(Api::BestBuy);
        assert_eq!(state.admit(Api::BestBuy), Admission::Admitted);
    }

    #[test]
    fn bad_keys_and_latencies_are_refused() {
        let state = ApiState::default();
        assert!(state.public_key(Api::Walmart).is_none());
        let keys = OpensslKeys::generate("state");
        let key = |pem: &str| ApiSettingsPatch {
            public_key_pem: Some(pem.into()),
            ..ApiSettingsPatch::default()
        };
        state
            .configure(Api::Walmart, &key(&keys.public_pem()))
            .unwrap();
        assert!(state.public_key(Api::Walmart).is_some());
        assert!(state.configure(Api::Walmart, &key("not a key")).is_err());
        assert!(state.public_key(Api::Walmart).is_some());
        assert_eq!(
            state.settings(Api::Walmart).public_key_pem,
            keys.public_pem()
        );
        state.configure(Api::Walmart, &key("")).unwrap();
        assert!(state.public_key(Api::Walmart).is_none());
        // Settings without a key are accepted while none is set.
        state
            .configure(
                Api::Walmart,
                &ApiSettingsPatch {
                    consumer_id: Some("consumer-1".into()),
                    ..ApiSettingsPatch::default()
                },
            )
            .unwrap();
        assert!(state.public_key(Api::Walmart).is_none());
        let bad_latency = ApiSettingsPatch {
            latency_min_ms: Some(10),
            latency_max_ms: Some(5),
            ..ApiSettingsPatch::default()
        };
        assert!(state.configure(Api::Ebay, &bad_latency).is_err());
    }
}
