//! Each simulated API's credentials and limits: defaults usable by tests, `[apis.<name>]` tables of
//! the profiles file, and `PUT /_sim/apis/{name}` patches.

use base64::Engine;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::RsaPublicKey;
use serde::{Deserialize, Serialize};

use super::api::Api;

/// One API's settings. Each API reads only the keys that concern it:
///
/// | key | APIs | default |
/// | --- | --- | --- |
/// | `client_id`, `client_secret` | ebay, amazon | `sim-ebay-client-id` / `sim-ebay-client-secret`, `sim-amazon-credential-id` / `sim-amazon-credential-secret` |
/// | `api_key` | bestbuy, rainforest | `sim-bestbuy-api-key`, `sim-rainforest-api-key` |
/// | `consumer_id`, `key_version`, `public_key_pem` | walmart | `sim-walmart-consumer-id`, `"1"`, `""` (no key: every signed request is refused, 401 "Signature verification failed", until one is set) |
/// | `partner_tag` | amazon | `pricefront-20` |
/// | `token_ttl_secs` | ebay, amazon | 7200 (eBay's `expires_in`), 3600 |
/// | `signature_max_age_secs` | walmart | 180 (Walmart: "signatures expire every 3 minutes") |
/// | `max_requests_per_second` | all (0 = no limit) | 0 |
/// | `request_limit` | all: requests admitted in all (a daily quota, Rainforest's credits; 0 = no limit) | 0 |
/// | `latency_min_ms`, `latency_max_ms` | all: uniform delay before each answer | 0, 0 |
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiSettings {
    /// OAuth client id (eBay App ID, Amazon Credential ID).
    pub client_id: String,
    /// OAuth client secret (eBay Cert ID, Amazon Credential Secret).
    pub client_secret: String,
    /// The API key (Best Buy `apiKey`, Rainforest `api_key`).
    pub api_key: String,
    /// Walmart's `WM_CONSUMER.ID`.
    pub consumer_id: String,
    /// Walmart's `WM_SEC.KEY_VERSION`.
    pub key_version: String,
    /// Walmart: the PEM of the RSA public key signatures are checked with: SPKI (`BEGIN PUBLIC KEY`),
    /// PKCS#1 (`BEGIN RSA PUBLIC KEY`), or the bare base64 of either (as Walmart's portal takes it).
    /// Empty (the default): no key, and no signature verifies.
    pub public_key_pem: String,
    /// Amazon: the `partnerTag` getItems must carry.
    pub partner_tag: String,
    /// The `expires_in` the token endpoint issues, in seconds.
    pub token_ttl_secs: u64,
    /// Requests admitted in any one second (0 = no limit).
    pub max_requests_per_second: u32,
    /// Requests admitted in all until `POST /_sim/apis/{name}/reset` (0 = no limit).
    pub request_limit: u64,
    /// Walmart: how far `WM_CONSUMER.INTIMESTAMP` may be from now, in seconds.
    pub signature_max_age_secs: u64,
    /// Shortest delay before answering, in ms.
    pub latency_min_ms: u64,
    /// Longest delay before answering, in ms (uniform between min and max).
    pub latency_max_ms: u64,
}

impl ApiSettings {
    /// The settings `api` starts with.
    pub fn defaults(api: Api) -> Self {
        let blank = Self {
            client_id: String::new(),
            client_secret: String::new(),
            api_key: String::new(),
            consumer_id: String::new(),
            key_version: String::new(),
            public_key_pem: String::new(),
            partner_tag: String::new(),
            token_ttl_secs: 0,
            max_requests_per_second: 0,
            request_limit: 0,
            signature_max_age_secs: 0,
            latency_min_ms: 0,
            latency_max_ms: 0,
        };
        match api {
            Api::Ebay => Self {
                client_id: "sim-ebay-client-id".into(),
                client_secret: "sim-ebay-client-secret".into(),
                token_ttl_secs: 7200,
                ..blank
            },
            Api::BestBuy => Self {
                api_key: "sim-bestbuy-api-key".into(),
                ..blank
            },
            Api::Walmart => Self {
                consumer_id: "sim-walmart-consumer-id".into(),
                key_version: "1".into(),
                signature_max_age_secs: 180,
                ..blank
            },
            Api::Amazon => Self {
                client_id: "sim-amazon-credential-id".into(),
                client_secret: "sim-amazon-credential-secret".into(),
                partner_tag: super::offers::DEFAULT_PARTNER_TAG.into(),
                token_ttl_secs: 3600,
                ..blank
            },
            Api::Rainforest => Self {
                api_key: "sim-rainforest-api-key".into(),
                ..blank
            },
        }
    }

    /// These settings with the keys `patch` gives replaced.
    pub fn patched(&self, patch: &ApiSettingsPatch) -> Self {
        fn pick<T: Clone>(new: &Option<T>, old: &T) -> T {
            new.clone().unwrap_or_else(|| old.clone())
        }
        Self {
            client_id: pick(&patch.client_id, &self.client_id),
            client_secret: pick(&patch.client_secret, &self.client_secret),
            api_key: pick(&patch.api_key, &self.api_key),
            consumer_id: pick(&patch.consumer_id, &self.consumer_id),
            key_version: pick(&patch.key_version, &self.key_version),
            public_key_pem: pick(&patch.public_key_pem, &self.public_key_pem),
            partner_tag: pick(&patch.partner_tag, &self.partner_tag),
            token_ttl_secs: pick(&patch.token_ttl_secs, &self.token_ttl_secs),
            max_requests_per_second: pick(
                &patch.max_requests_per_second,
                &self.max_requests_per_second,
            ),
            request_limit: pick(&patch.request_limit, &self.request_limit),
            signature_max_age_secs: pick(
                &patch.signature_max_age_secs,
                &self.signature_max_age_secs,
            ),
            latency_min_ms: pick(&patch.latency_min_ms, &self.latency_min_ms),
            latency_max_ms: pick(&patch.latency_max_ms, &self.latency_max_ms),
        }
    }
}

/// Some of [`ApiSettings`]' keys: a `[apis.<name>]` table of the profiles file (over the API's
/// defaults) or the JSON body of `PUT /_sim/apis/{name}` (over the current settings). Unknown keys are
/// refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettingsPatch {
    /// Replaces [`ApiSettings::client_id`].
    pub client_id: Option<String>,
    /// Replaces [`ApiSettings::client_secret`].
    pub client_secret: Option<String>,
    /// Replaces [`ApiSettings::api_key`].
    pub api_key: Option<String>,
    /// Replaces [`ApiSettings::consumer_id`].
    pub consumer_id: Option<String>,
    /// Replaces [`ApiSettings::key_version`].
    pub key_version: Option<String>,
    /// Replaces [`ApiSettings::public_key_pem`] (`""` removes the key).
    pub public_key_pem: Option<String>,
    /// Replaces [`ApiSettings::partner_tag`].
    pub partner_tag: Option<String>,
    /// Replaces [`ApiSettings::token_ttl_secs`].
    pub token_ttl_secs: Option<u64>,
    /// Replaces [`ApiSettings::max_requests_per_second`].
    pub max_requests_per_second: Option<u32>,
    /// Replaces [`ApiSettings::request_limit`].
    pub request_limit: Option<u64>,
    /// Replaces [`ApiSettings::signature_max_age_secs`].
    pub signature_max_age_secs: Option<u64>,
    /// Replaces [`ApiSettings::latency_min_ms`].
    pub latency_min_ms: Option<u64>,
    /// Replaces [`ApiSettings::latency_max_ms`].
    pub latency_max_ms: Option<u64>,
}

/// Settings the simulator cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ApiSettingsError {
    /// `public_key_pem` is neither empty nor an RSA public key.
    #[error("{api}: public_key_pem is not an RSA public key (SPKI or PKCS#1 PEM): {reason}")]
    BadPublicKey {
        /// The API.
        api: Api,
        /// Why the key was refused.
        reason: String,
    },
    /// `latency_min_ms` is above `latency_max_ms`, or a latency is over an hour.
    #[error("{api}: latency_min_ms must be at most latency_max_ms, both at most 3600000")]
    BadLatency {
        /// The API.
        api: Api,
    },
}

/// The key of a `public_key_pem` setting: none when it is empty (or only whitespace), else
/// [`parse_public_key`]'s.
pub(crate) fn configured_public_key(text: &str) -> Result<Option<RsaPublicKey>, String> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        parse_public_key(text).map(Some)
    }
}

/// Parses an RSA public key: SPKI or PKCS#1 PEM, or the bare base64 of either's DER.
pub(crate) fn parse_public_key(text: &str) -> Result<RsaPublicKey, String> {
    let text = text.trim();
    if text.contains("BEGIN RSA PUBLIC KEY") {
        return RsaPublicKey::from_pkcs1_pem(text).map_err(|e| e.to_string());
    }
    if text.contains("BEGIN PUBLIC KEY") {
        return RsaPublicKey::from_public_key_pem(text).map_err(|e| e.to_string());
    }
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("neither PEM nor base64: {e}"))?;
    RsaPublicKey::from_public_key_der(&der)
        .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::test_keys::OpensslKeys;
    use super::*;

    #[test]
    fn patches_replace_only_what_they_give() {
        let defaults = ApiSettings::defaults(Api::Ebay);
        let patched = defaults.patched(&ApiSettingsPatch {
            token_ttl_secs: Some(2),
            ..ApiSettingsPatch::default()
        });
        assert_eq!(patched.token_ttl_secs, 2);
        assert_eq!(patched.client_secret, defaults.client_secret);
    }

    #[test]
    fn public_keys_are_read_in_every_form() {
        let keys = OpensslKeys::generate("settings");
        let pem = keys.public_pem();
        let spki = parse_public_key(&pem).unwrap();
        let bare: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        assert_eq!(parse_public_key(&bare).unwrap(), spki);
        keys.openssl(&[
            "pkey", "-pubin", "-in", "pub.pem", "-outform", "DER", "-out", "pub.der",
        ]);
        let der = std::fs::read(keys.dir().join("pub.der")).unwrap();
        let wrapped = base64::engine::general_purpose::STANDARD.encode(der);
        assert_eq!(parse_public_key(&wrapped).unwrap(), spki);
        keys.openssl(&[
            "rsa",
            "-pubin",
            "-in",
            "pub.pem",
            "-RSAPublicKey_out",
            "-out",
            "pub-pkcs1.pem",
        ]);
        let pkcs1 = std::fs::read_to_string(keys.dir().join("pub-pkcs1.pem")).unwrap();
        assert!(pkcs1.contains("BEGIN RSA PUBLIC KEY"));
        assert_eq!(parse_public_key(&pkcs1).unwrap(), spki);
        assert!(
            parse_public_key("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----").is_err()
        );
    }

    #[test]
    fn walmart_has_no_key_by_default() {
        let settings = ApiSettings::defaults(Api::Walmart);
        assert_eq!(settings.public_key_pem, "");
        assert!(configured_public_key(&settings.public_key_pem)
            .unwrap()
            .is_none());
        assert!(configured_public_key(" \n").unwrap().is_none());
        assert!(configured_public_key("nope").is_err());
    }
}
