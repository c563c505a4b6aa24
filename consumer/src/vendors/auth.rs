//! How a request proves who sends it, beyond a key in a header or the query (which the profile's
//! `headers` and `query` carry): an OAuth 2.0 access token from the client-credentials grant, or
//! per-request RSA-SHA256 signed headers in Walmart's form.
//!
//! **OAuth 2.0 client credentials** (RFC 6749 §4.4): one token per vendor per process, reused until
//! shortly before it expires; minted by one call at a time however many wait for it (single-flight);
//! dropped and minted again once when the vendor answers 401 to it; and mints limited to
//! `max_mints_per_hour`, so that a misconfiguration cannot spend a day's allowance of tokens (eBay
//! allows 1,000 a day). A mint that fails is its own kind of failure, `token_mint`.
//!
//! **RSA-signed headers** (Walmart's affiliate APIs): `WM_CONSUMER.ID`, `WM_CONSUMER.INTIMESTAMP` (Unix
//! ms), `WM_SEC.KEY_VERSION`, and `WM_SEC.AUTH_SIGNATURE`, the base64 RSASSA-PKCS1-v1_5 SHA-256
//! signature of `"{consumer id}\n{timestamp}\n{key version}\n"`. A signature costs about a millisecond
//! of CPU; as only the timestamp changes, one may be reused for `signature_reuse_ms` where the vendor
//! accepts a timestamp that old.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::{Client, StatusCode, Url};
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer as _};
use serde::Deserialize;
use sha2::Sha256;
use tokio::time::Instant;

use crate::process::clock::now_ms;
use crate::process::redact;

/// How the token endpoint wants the client to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1, what eBay wants).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Body,
}

/// An OAuth 2.0 client-credentials grant, as configured.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// The token endpoint.
    pub token_url: Url,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// The scope asked for, if any.
    pub scope: Option<String>,
    /// How the client authenticates.
    pub client_auth: ClientAuth,
    /// The most tokens minted in any hour by this process.
    pub max_mints_per_hour: u32,
    /// The `Authorization` value, `{token}` standing for the token (`Bearer {token}`; Amazon's
    /// Creators API wants `Bearer {token}, Version 2.1`).
    pub token_header: String,
}

/// Walmart-style signed headers, as configured.
#[derive(Clone)]
pub struct SignatureSettings {
    /// `WM_CONSUMER.ID`.
    pub consumer_id: String,
    /// `WM_SEC.KEY_VERSION`.
    pub key_version: String,
    /// The private key.
    pub key: SigningKey<Sha256>,
    /// How long one signature (and its timestamp) is reused.
    pub reuse: Duration,
}

impl std::fmt::Debug for SignatureSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureSettings")
            .field("consumer_id", &self.consumer_id)
            .field("key_version", &self.key_version)
            .field("key", &"[redacted]")
            .field("reuse", &self.reuse)
            .finish()
    }
}

/// A vendor's authentication beyond static headers and query parameters.
#[derive(Debug, Clone)]
pub enum AuthSettings {
    /// None: keys, if any, are in the headers or the query.
    None,
    /// OAuth 2.0 client credentials.
    OAuth(Box<OAuthSettings>),
    /// RSA-signed headers.
    Signed(Box<SignatureSettings>),
}

/// Why no access token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    /// This process minted `max_mints_per_hour` tokens in the last hour.
    #[error("token: {0} tokens minted in the last hour (max_mints_per_hour), none more until one is an hour old")]
    Limited(u32),
    /// The token endpoint answered with an error.
    #[error("token: the token endpoint answered {status}{detail}")]
    Refused {
        /// Its status.
        status: StatusCode,
        /// RFC 6749 §5.2's `error` (and description), when given.
        detail: String,
    },
    /// The token endpoint could not be reached, or its answer not read.
    #[error("token: {0}")]
    Failed(String),
}

/// The counts of mints, by outcome, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MintOutcome {
    /// A token was minted.
    Minted,
    /// The endpoint refused or failed, or the limit was reached.
    Failed,
}

#[derive(Debug, Clone)]
struct Token {
    /// `Bearer …`, sensitive.
    header: HeaderValue,
    /// Which mint this is, so that a 401 drops only the token it was answered to.
    generation: u64,
    /// When to mint the next one.
    renew_at: Instant,
}

/// One vendor's access token, shared by the process's calls.
#[derive(Debug)]
pub struct TokenSource {
    settings: OAuthSettings,
    current: RwLock<Option<Token>>,
    /// Held while minting: one mint at a time, the others wait for its token.
    minting: tokio::sync::Mutex<u64>,
    /// When the mints of the last hour were made.
    recent_mints: Mutex<VecDeque<Instant>>,
}

/// The token a request carries: its header and which mint it came from.
#[derive(Debug, Clone)]
pub struct BearerToken {
    /// The `Authorization` value.
    pub header: HeaderValue,
    generation: u64,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct TokenErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl TokenSource {
    /// A source of tokens from `settings`, with none yet.
    pub fn new(settings: OAuthSettings) -> Self {
        Self {
            settings,
            current: RwLock::new(None),
            minting: tokio::sync::Mutex::new(0),
            recent_mints: Mutex::new(VecDeque::new()),
        }
    }

    /// The current token, minted first when there is none or it is due for renewal; `counted` hears
    /// of each mint's outcome. `timeout` bounds the mint's HTTP exchange.
    pub async fn token(
        &self,
        client: &Client,
        timeout: Duration,
        counted: impl Fn(MintOutcome),
    ) -> Result<BearerToken, MintError> {
        if let Some(token) = self.valid() {
            return Ok(token);
        }
        let mut generation = self.minting.lock().await;
        // Another call may have minted while this one waited.
        if let Some(token) = self.valid() {
            return Ok(token);
        }
        if !self.may_mint() {
            counted(MintOutcome::Failed);
            return Err(MintError::Limited(self.settings.max_mints_per_hour));
        }
        let minted = self.mint(client, timeout).await;
        counted(match minted {
            Ok(_) => MintOutcome::Minted,
            Err(_) => MintOutcome::Failed,
        });
        let (value, lifetime) = minted?;
        *generation += 1;
        let mut header = HeaderValue::from_str(
            &self.settings.token_header.replace("{token}", &value),
        )
        .map_err(|_| MintError::Failed("the access token is not a valid header value".into()))?;
        header.set_sensitive(true);
        // Renewed a minute early (a tenth of the lifetime for short ones), so that no request carries a
        // token that expires on the way.
        let margin = Duration::from_secs(60).min(lifetime / 10);
        let token = Token {
            header,
            generation: *generation,
            renew_at: Instant::now() + lifetime.saturating_sub(margin),
        };
        let bearer = BearerToken {
            header: token.header.clone(),
            generation: token.generation,
        };
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(token);
        Ok(bearer)
    }

    /// Drops `token` after the vendor answered 401 to it (unless a newer one replaced it already).
    pub fn rejected(&self, token: &BearerToken) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current
            .as_ref()
            .is_some_and(|t| t.generation == token.generation)
        {
            *current = None;
        }
    }

    fn valid(&self) -> Option<BearerToken> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current
            .as_ref()
            .filter(|t| Instant::now() < t.renew_at)
            .map(|t| BearerToken {
                header: t.header.clone(),
                generation: t.generation,
            })
    }

    /// Whether a mint fits the hourly limit now; if so, it is counted.
    fn may_mint(&self) -> bool {
        let mut recent = self
            .recent_mints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        while recent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(3600))
        {
            recent.pop_front();
        }
        if recent.len() >= self.settings.max_mints_per_hour as usize {
            return false;
        }
        recent.push_back(now);
        true
    }

    async fn mint(
        &self,
        client: &Client,
        timeout: Duration,
    ) -> Result<(String, Duration), MintError> {
        let settings = &self.settings;
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &settings.scope {
            form.push(("scope", scope));
        }
        let mut request = client
            .post(settings.token_url.clone())
            .timeout(timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        match settings.client_auth {
            ClientAuth::Basic => {
                request = request.basic_auth(&settings.client_id, Some(&settings.client_secret));
            }
            ClientAuth::Body => {
                form.push(("client_id", &settings.client_id));
                form.push(("client_secret", &settings.client_secret));
            }
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| MintError::Failed(redact::error_text(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| MintError::Failed(redact::error_text(&e)))?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<TokenErrorAnswer>(&body)
                .map(|e| match e.error_description {
                    Some(description) => format!(": {} ({description})", e.error),
                    None => format!(": {}", e.error),
                })
                .unwrap_or_default();
            return Err(MintError::Refused {
                status,
                detail: redact::redact(&detail).into_owned(),
            });
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            MintError::Failed(format!("the token endpoint's answer is not a token: {e}"))
        })?;
        if answer.access_token.is_empty() {
            return Err(MintError::Failed(
                "the token endpoint gave an empty token".into(),
            ));
        }
        redact::register(&answer.access_token);
        // RFC 6749 §5.1: expires_in is RECOMMENDED; without it, an hour, renewed on a 401 anyway.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600).max(1));
        Ok((answer.access_token, lifetime))
    }
}

/// The four headers of a signed request.
pub type SignedHeaders = [(HeaderName, HeaderValue); 4];

/// Signs requests in Walmart's form, reusing a signature for its settings' `reuse`.
#[derive(Debug)]
pub struct Signer {
    settings: SignatureSettings,
    /// The last signature: when made, and its headers.
    last: Mutex<Option<(Instant, SignedHeaders)>>,
}

/// The header names of Walmart's signed requests.
pub const SIGNED_HEADER_NAMES: [&str; 4] = [
    "WM_CONSUMER.ID",
    "WM_CONSUMER.INTIMESTAMP",
    "WM_SEC.KEY_VERSION",
    "WM_SEC.AUTH_SIGNATURE",
];

impl Signer {
    /// A signer with `settings`.
    pub fn new(settings: SignatureSettings) -> Self {
        Self {
            settings,
            last: Mutex::new(None),
        }
    }

    /// The signed headers for a request sent now.
    pub fn headers(&self) -> SignedHeaders {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((made, headers)) = last.as_ref() {
            if now.duration_since(*made) < self.settings.reuse {
                return headers.clone();
            }
        }
        let timestamp = now_ms();
        let headers = self.sign(&timestamp.to_string());
        *last = Some((now, headers.clone()));
        headers
    }

    /// The headers for a request stamped `timestamp` (Unix ms, as text).
    pub fn sign(&self, timestamp: &str) -> SignedHeaders {
        let settings = &self.settings;
        let message = canonical_message(&settings.consumer_id, timestamp, &settings.key_version);
        let signature = settings.key.sign(message.as_bytes()).to_bytes();
        let encoded = base64::engine::general_purpose::STANDARD.encode(signature);
        let value = |text: &str| {
            HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
        };
        let mut signature = value(&encoded);
        signature.set_sensitive(true);
        let [id, stamp, version, auth] = SIGNED_HEADER_NAMES.map(HeaderName::from_static_lower);
        [
            (id, value(&settings.consumer_id)),
            (stamp, value(timestamp)),
            (version, value(&settings.key_version)),
            (auth, signature),
        ]
    }
}

/// The text Walmart's signature covers.
pub fn canonical_message(consumer_id: &str, timestamp: &str, key_version: &str) -> String {
    format!("{consumer_id}\n{timestamp}\n{key_version}\n")
}

/// Header names made from the constants above, lower-cased as HTTP/1 sends them anyway.
trait FromStaticLower {
    fn from_static_lower(name: &'static str) -> HeaderName;
}

impl FromStaticLower for HeaderName {
    fn from_static_lower(name: &'static str) -> HeaderName {
        HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .expect("a valid constant header name")
    }
}

/// What a vendor's calls share for authentication, per process.
#[derive(Debug)]
pub enum AuthState {
    /// Nothing beyond static headers.
    None,
    /// An OAuth token source.
    OAuth(Arc<TokenSource>),
    /// A signer.
    Signed(Box<Signer>),
}

impl AuthState {
    /// The state for `settings`.
    pub fn new(settings: &AuthSettings) -> Self {
        match settings {
            AuthSettings::None => AuthState::None,
            AuthSettings::OAuth(oauth) => {
                AuthState::OAuth(Arc::new(TokenSource::new((**oauth).clone())))
            }
            AuthSettings::Signed(signed) => {
                AuthState::Signed(Box::new(Signer::new((**signed).clone())))
            }
        }
    }
}

/// Adds `token` to a request's headers.
pub fn bearer(request: reqwest::RequestBuilder, token: &BearerToken) -> reqwest::RequestBuilder {
    request.header(AUTHORIZATION, token.header.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::DecodePrivateKey;

    #[test]
    fn the_canonical_message_is_walmarts() {
        assert_eq!(
            canonical_message("id", "1700000000000", "1"),
            "id\n1700000000000\n1\n"
        );
    }

    /// A 2048-bit key made by the `openssl` command line, in a folder of its own.
    fn openssl_key(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("pricefront-auth-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key.pem");
        let made = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&key)
            .output()
            .expect("running openssl");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        key
    }

    fn signer(key: &std::path::Path, reuse: Duration) -> Signer {
        let pem = std::fs::read_to_string(key).unwrap();
        Signer::new(SignatureSettings {
            consumer_id: "c0ffee".into(),
            key_version: "1".into(),
            key: SigningKey::<Sha256>::from_pkcs8_pem(&pem).unwrap(),
            reuse,
        })
    }

    #[test]
    fn signatures_are_the_ones_openssl_makes() {
        let key = openssl_key("openssl");
        let message = key.with_file_name("message");
        std::fs::write(&message, canonical_message("c0ffee", "1700000000000", "1")).unwrap();
        let signed = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&key)
            .arg(&message)
            .output()
            .expect("running openssl");
        assert!(
            signed.status.success(),
            "{}",
            String::from_utf8_lossy(&signed.stderr)
        );
        let expected = base64::engine::general_purpose::STANDARD.encode(&signed.stdout);
        let headers = signer(&key, Duration::ZERO).sign("1700000000000");
        assert_eq!(headers[3].1.to_str().unwrap(), expected);
        assert_eq!(headers[0].1, "c0ffee");
        assert_eq!(headers[1].1, "1700000000000");
        assert_eq!(headers[2].1, "1");
        let _ = std::fs::remove_dir_all(key.parent().unwrap());
    }

    #[test]
    fn a_signature_is_reused_within_its_window_only() {
        let key = openssl_key("reuse");
        let reusing = signer(&key, Duration::from_secs(60));
        let first = reusing.headers();
        assert_eq!(reusing.headers(), first);
        assert_eq!(first[0].0.as_str(), "wm_consumer.id");
        let fresh = signer(&key, Duration::ZERO);
        let a = fresh.headers();
        std::thread::sleep(Duration::from_millis(2));
        assert_ne!(fresh.headers()[1], a[1], "a new timestamp each time");
        let _ = std::fs::remove_dir_all(key.parent().unwrap());
    }
}
