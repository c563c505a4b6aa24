//! The vendors file: reading it, checking every key, and resolving `${VAR}` from the environment.
//!
//! Every mistake refuses the start with one line naming the vendor and the key (docs/vendors.md lists
//! every key). `${VAR}` (or `${VAR:-default}`) may appear in any string value; the values substituted
//! in headers, query, body and `auth` are secrets ([`crate::process::redact`]).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use serde::Deserialize;
use sha2::Sha256;

use crate::process::redact;
use crate::vendors::auth::{AuthSettings, ClientAuth, OAuthSettings, SignatureSettings};
use crate::vendors::breaker::BreakerSettings;
use crate::vendors::budget::BudgetSettings;
use crate::vendors::offers::{CurrencySource, JsonPointer, OfferFilter, OfferReader};
use crate::vendors::quota::QuotaSettings;
use crate::vendors::request::{Placeholder, RequestTemplate};
use crate::vendors::vendor::{ProductIds, StatusKind, Vendor};

/// Why the vendors file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VendorsError {
    /// The file cannot be read.
    #[error("cannot read the vendors file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not TOML of the expected shape.
    #[error("the vendors file is not valid: {0}")]
    Parse(String),
    /// A vendor's settings are wrong.
    #[error("vendor {vendor:?}: {problem}")]
    Invalid {
        /// The vendor's name.
        vendor: String,
        /// What is wrong, naming the key.
        problem: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorsFile {
    #[serde(default)]
    product_ids: ProductIds,
    #[serde(default, rename = "vendor")]
    vendors: Vec<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorEntry {
    name: String,
    base_url: Option<String>,
    url: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    query: BTreeMap<String, String>,
    body: Option<String>,
    auth: Option<AuthEntry>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    guarantee_window_secs: u64,
    offers_pointer: Option<String>,
    #[serde(default)]
    missing_offers_mean_not_listed: bool,
    price_pointer: String,
    currency_pointer: Option<String>,
    currency: Option<String>,
    offer_url_pointer: Option<String>,
    product_url_pointer: Option<String>,
    shipping_pointer: Option<String>,
    #[serde(default, rename = "where")]
    filters: BTreeMap<String, WhereValue>,
    #[serde(default)]
    statuses: BTreeMap<String, StatusKind>,
    max_requests_per_second: Option<f64>,
    max_concurrency: Option<u32>,
    max_requests_per_day: Option<u64>,
    budget_time_zone: Option<String>,
    /// Replaced by the failure-rate settings: read only to say so.
    breaker_failures: Option<u32>,
    #[serde(default = "default_breaker_failure_rate_percent")]
    breaker_failure_rate_percent: f64,
    #[serde(default = "default_breaker_minimum_calls")]
    breaker_minimum_calls: u32,
    #[serde(default = "default_breaker_window_calls")]
    breaker_window_calls: u32,
    #[serde(default = "default_breaker_window_secs")]
    breaker_window_secs: u64,
    #[serde(default = "default_breaker_half_open_calls")]
    breaker_half_open_calls: u32,
    #[serde(default = "default_breaker_cooldown_ms")]
    breaker_cooldown_ms: u64,
}

/// A `where` condition: one value, or one of several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WhereValue {
    Any(Vec<toml::Value>),
    One(toml::Value),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum AuthEntry {
    None,
    Oauth2ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
        #[serde(default)]
        client_auth: ClientAuth,
        #[serde(default = "default_max_mints_per_hour")]
        max_mints_per_hour: u32,
        #[serde(default = "default_token_header")]
        token_header: String,
    },
    RsaSignedHeaders {
        consumer_id: String,
        key_version: String,
        private_key_pem: Option<String>,
        private_key_file: Option<String>,
        #[serde(default)]
        signature_reuse_ms: u64,
    },
}

fn default_method() -> String {
    "GET".into()
}

fn default_timeout_ms() -> u64 {
    2_000
}

fn default_max_attempts() -> u32 {
    3
}

fn default_token_header() -> String {
    "Bearer {token}".into()
}

fn default_max_mints_per_hour() -> u32 {
    12
}

fn default_breaker_failure_rate_percent() -> f64 {
    BreakerSettings::default().failure_rate * 100.0
}

fn default_breaker_minimum_calls() -> u32 {
    BreakerSettings::default().minimum_calls
}

fn default_breaker_window_calls() -> u32 {
    BreakerSettings::default().window_calls
}

fn default_breaker_window_secs() -> u64 {
    BreakerSettings::default().window.as_secs()
}

fn default_breaker_half_open_calls() -> u32 {
    BreakerSettings::default().half_open_calls
}

fn default_breaker_cooldown_ms() -> u64 {
    BreakerSettings::default()
        .cooldown
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}

/// Reads and checks the vendors file at `path`, substituting `${VAR}` from the environment. A folder
/// holds several files (its `*.toml`, in name order: a profile per file, as in `config/vendors/`), each
/// with its own `product_ids`; vendor names must be unique across them.
pub fn load(path: &Path) -> Result<Vec<Vendor>, VendorsError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| VendorsError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    if !path.is_dir() {
        return parse(&read(path)?, |name| std::env::var(name).ok());
    }
    let listing = std::fs::read_dir(path).map_err(|source| VendorsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut files: Vec<_> = listing
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut vendors: Vec<Vendor> = Vec::new();
    for file in files {
        for vendor in parse(&read(&file)?, |name| std::env::var(name).ok())? {
            if vendors.iter().any(|v| v.name == vendor.name) {
                return Err(VendorsError::Invalid {
                    vendor: vendor.name,
                    problem: format!("name: also in another file of {}", path.display()),
                });
            }
            vendors.push(vendor);
        }
    }
    Ok(vendors)
}

/// Reads and checks vendors from TOML text, looking variables up with `env`.
pub fn parse(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Vendor>, VendorsError> {
    let file: VendorsFile = toml::from_str(text).map_err(|e| VendorsError::Parse(one_line(&e)))?;
    let mut names = HashSet::new();
    file.vendors
        .into_iter()
        .enumerate()
        .map(|(i, table)| {
            let name = table
                .get("name")
                .and_then(toml::Value::as_str)
                .map_or_else(|| format!("#{}", i + 1), str::to_owned);
            let invalid = |problem: String| VendorsError::Invalid {
                vendor: name.clone(),
                problem,
            };
            let entry: VendorEntry = table.try_into().map_err(|e| invalid(one_line(&e)))?;
            if entry.name.trim().is_empty() || !names.insert(entry.name.clone()) {
                return Err(invalid("name: names must be non-empty and unique".into()));
            }
            resolve(entry, file.product_ids, &env).map_err(invalid)
        })
        .collect()
}

/// An error's text on one line.
fn one_line(error: &impl std::fmt::Display) -> String {
    error
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn resolve(
    entry: VendorEntry,
    product_ids: ProductIds,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vendor, String> {
    let plain = |key: &str, value: &str| {
        substitute_env(value, env).map_err(|problem| format!("{key}: {problem}"))
    };
    let secret = |key: &str, value: &str| {
        let (text, secrets) = substitute_env_with_secrets(value, env)
            .map_err(|problem| format!("{key}: {problem}"))?;
        secrets.iter().for_each(|s| redact::register(s));
        Ok::<_, String>(text)
    };
    let base = entry
        .base_url
        .as_deref()
        .map(|base| plain("base_url", base))
        .transpose()?;
    let url = plain("url", &entry.url)?;
    let url = absolute(base.as_deref(), &url).map_err(|e| format!("url: {e}"))?;
    let method = match entry.method.to_ascii_uppercase().as_str() {
        "GET" => Method::GET,
        "POST" => Method::POST,
        other => return Err(format!("method: {other:?} is not GET or POST")),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &entry.headers {
        let key = format!("headers.{name}");
        let value = secret(&key, value)?;
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("{key}: {e}"))?;
        let mut value = HeaderValue::from_str(&value).map_err(|e| format!("{key}: {e}"))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    headers
        .entry(header::ACCEPT)
        .or_insert(HeaderValue::from_static("application/json"));
    let mut query = BTreeMap::new();
    for (name, value) in &entry.query {
        query.insert(name.clone(), secret(&format!("query.{name}"), value)?);
    }
    let body = entry
        .body
        .as_deref()
        .map(|body| secret("body", body))
        .transpose()?;
    if body.is_some() {
        headers
            .entry(header::CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json"));
    }
    let request = RequestTemplate::new(method, &url, &query, body.as_deref(), headers)?;
    if product_ids != ProductIds::Gtin {
        if let Some(gtin) = request
            .placeholders()
            .into_iter()
            .find(|p| matches!(p, Placeholder::Gtin(_)))
        {
            return Err(format!(
                "url, query or body: {gtin} needs product ids that are GTINs; set product_ids = \"gtin\" at the top of the file, or map identifiers and use {{id:SCHEME}}"
            ));
        }
    }
    let auth = match entry.auth {
        None | Some(AuthEntry::None) => AuthSettings::None,
        Some(AuthEntry::Oauth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope,
            client_auth,
            max_mints_per_hour,
            token_header,
        }) => {
            if !token_header.contains("{token}") {
                return Err("auth.token_header: must contain {token}".into());
            }
            let token_url = plain("auth.token_url", &token_url)?;
            let token_url = absolute(base.as_deref(), &token_url)
                .and_then(|u| Url::parse(&u).map_err(|e| e.to_string()))
                .map_err(|e| format!("auth.token_url: {e}"))?;
            if max_mints_per_hour == 0 {
                return Err("auth.max_mints_per_hour: must be at least 1".into());
            }
            let client_id = secret("auth.client_id", &client_id)?;
            let client_secret = secret("auth.client_secret", &client_secret)?;
            if let ClientAuth::Basic = client_auth {
                use base64::Engine as _;
                redact::register(
                    &base64::engine::general_purpose::STANDARD
                        .encode(format!("{client_id}:{client_secret}")),
                );
            }
            AuthSettings::OAuth(Box::new(OAuthSettings {
                token_url,
                client_id,
                client_secret,
                scope: scope.map(|s| plain("auth.scope", &s)).transpose()?,
                client_auth,
                max_mints_per_hour,
                token_header,
            }))
        }
        Some(AuthEntry::RsaSignedHeaders {
            consumer_id,
            key_version,
            private_key_pem,
            private_key_file,
            signature_reuse_ms,
        }) => {
            let (key, pem) = match (private_key_pem, private_key_file) {
                (Some(pem), None) => (
                    "auth.private_key_pem",
                    secret("auth.private_key_pem", &pem)?,
                ),
                (None, Some(file)) => {
                    let path = plain("auth.private_key_file", &file)?;
                    let pem = std::fs::read_to_string(&path)
                        .map_err(|e| format!("auth.private_key_file: cannot read {path}: {e}"))?;
                    ("auth.private_key_file", pem)
                }
                _ => {
                    return Err(
                        "auth: give exactly one of private_key_pem and private_key_file".into(),
                    )
                }
            };
            // Environment variables often carry a PEM with its newlines written as \n.
            let pem = pem.replace("\\n", "\n");
            let signing_key = SigningKey::<Sha256>::from_pkcs8_pem(&pem)
                .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(&pem).map(SigningKey::new))
                .map_err(|_| {
                    format!("{key}: not an RSA private key in PEM (PKCS#8 \"BEGIN PRIVATE KEY\" or PKCS#1 \"BEGIN RSA PRIVATE KEY\")")
                })?;
            AuthSettings::Signed(Box::new(SignatureSettings {
                consumer_id: plain("auth.consumer_id", &consumer_id)?,
                key_version: plain("auth.key_version", &key_version)?,
                key: signing_key,
                reuse: Duration::from_millis(signature_reuse_ms),
            }))
        }
    };
    let pointer = |key: &str, text: &str| {
        JsonPointer::parse(text).map_err(|problem| format!("{key}: {problem}"))
    };
    let currency = match (&entry.currency_pointer, &entry.currency) {
        (Some(p), None) => CurrencySource::Pointer(pointer("currency_pointer", p)?),
        (None, Some(code)) => {
            CurrencySource::Fixed(code.parse().map_err(|e| format!("currency: {e}"))?)
        }
        _ => return Err("currency, currency_pointer: give exactly one of them".into()),
    };
    let filters = entry
        .filters
        .iter()
        .map(|(at, wanted)| {
            let values = match wanted {
                WhereValue::One(value) => vec![value],
                WhereValue::Any(values) => values.iter().collect(),
            };
            let one_of = values
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    toml::Value::Boolean(b) => Ok(b.to_string()),
                    other => Err(format!(
                        "where.{at:?}: {other} is not a string, integer or boolean"
                    )),
                })
                .collect::<Result<_, _>>()?;
            Ok(OfferFilter {
                at: pointer(&format!("where.{at:?}"), at)?,
                one_of,
            })
        })
        .collect::<Result<_, String>>()?;
    let offers_array = entry
        .offers_pointer
        .as_deref()
        .map(|p| pointer("offers_pointer", p))
        .transpose()?;
    if offers_array.is_none() && (!entry.filters.is_empty() || entry.missing_offers_mean_not_listed)
    {
        return Err(
            "where, missing_offers_mean_not_listed: need offers_pointer (an array of offers)"
                .into(),
        );
    }
    let offers = OfferReader {
        array: offers_array,
        missing_array_is_not_listed: entry.missing_offers_mean_not_listed,
        price: pointer("price_pointer", &entry.price_pointer)?,
        currency,
        url: entry
            .offer_url_pointer
            .as_deref()
            .map(|p| pointer("offer_url_pointer", p))
            .transpose()?,
        product_url: entry
            .product_url_pointer
            .as_deref()
            .map(|p| pointer("product_url_pointer", p))
            .transpose()?,
        shipping: entry
            .shipping_pointer
            .as_deref()
            .map(|p| pointer("shipping_pointer", p))
            .transpose()?,
        filters,
    };
    let statuses = entry
        .statuses
        .iter()
        .map(|(status, kind)| {
            let code = status
                .parse::<u16>()
                .ok()
                .and_then(|c| reqwest::StatusCode::from_u16(c).ok())
                .filter(|c| c.is_client_error() || c.is_server_error())
                .ok_or_else(|| format!("statuses.{status}: not an error status (400-599)"))?;
            Ok((code, *kind))
        })
        .collect::<Result<_, String>>()?;
    if entry.timeout_ms == 0 || entry.max_attempts == 0 {
        return Err("timeout_ms, max_attempts: must be positive".into());
    }
    if let Some(rate) = entry.max_requests_per_second {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!(
                "max_requests_per_second: must be a number > 0, not {rate}"
            ));
        }
    }
    if entry.max_concurrency == Some(0) {
        return Err("max_concurrency: must be at least 1".into());
    }
    let budget = match (entry.max_requests_per_day, entry.budget_time_zone) {
        (Some(0), _) => return Err("max_requests_per_day: must be at least 1".into()),
        (Some(max), zone) => {
            let name = zone.unwrap_or_else(|| "UTC".into());
            let time_zone = jiff::tz::TimeZone::get(&name)
                .map_err(|e| format!("budget_time_zone: {name:?} is not a time zone: {e}"))?;
            Some(BudgetSettings {
                max_requests_per_day: max,
                time_zone,
                time_zone_name: name,
            })
        }
        (None, Some(_)) => return Err("budget_time_zone: needs max_requests_per_day".into()),
        (None, None) => None,
    };
    if entry.breaker_failures.is_some() {
        return Err("breaker_failures (failures in a row) was replaced: the circuit now opens on a failure rate; \
             set breaker_failure_rate_percent and breaker_minimum_calls instead (docs/configuration.md)"
            .into());
    }
    let rate = entry.breaker_failure_rate_percent;
    if !(rate > 0.0 && rate <= 100.0) {
        return Err(format!(
            "breaker_failure_rate_percent must be in (0, 100], not {rate}"
        ));
    }
    if entry.breaker_window_calls == 0
        || entry.breaker_window_secs == 0
        || entry.breaker_half_open_calls == 0
        || entry.breaker_minimum_calls == 0
    {
        return Err("breaker_window_calls, breaker_window_secs, breaker_minimum_calls and breaker_half_open_calls must be at least 1".into());
    }
    if entry.breaker_minimum_calls > entry.breaker_window_calls {
        return Err(format!(
            "breaker_minimum_calls ({}) must not exceed breaker_window_calls ({}): the circuit could never open",
            entry.breaker_minimum_calls, entry.breaker_window_calls
        ));
    }
    let mapped_schemes = request
        .placeholders()
        .into_iter()
        .filter_map(|p| match p {
            Placeholder::Mapped(scheme) => Some(scheme),
            _ => None,
        })
        .collect();
    Ok(Vendor {
        name: entry.name,
        product_ids,
        request,
        mapped_schemes,
        auth,
        timeout: Duration::from_millis(entry.timeout_ms),
        max_attempts: entry.max_attempts,
        guarantee: Duration::from_secs(entry.guarantee_window_secs),
        offers,
        statuses,
        quota: QuotaSettings {
            max_requests_per_second: entry.max_requests_per_second,
            max_concurrency: entry.max_concurrency,
        },
        budget,
        breaker: BreakerSettings {
            window_calls: entry.breaker_window_calls,
            window: Duration::from_secs(entry.breaker_window_secs),
            minimum_calls: entry.breaker_minimum_calls,
            failure_rate: rate / 100.0,
            half_open_calls: entry.breaker_half_open_calls,
            cooldown: Duration::from_millis(entry.breaker_cooldown_ms),
        },
    })
}

/// `url` made absolute against `base` when it is a path (`/…`); as it is when absolute.
fn absolute(base: Option<&str>, url: &str) -> Result<String, String> {
    if url.contains("://") {
        return Ok(url.to_owned());
    }
    match base {
        Some(base) if url.starts_with('/') => Ok(format!("{}{url}", base.trim_end_matches('/'))),
        Some(_) => Err(format!("{url:?} must be absolute or start with /")),
        None => Err(format!(
            "{url:?} is not an absolute http(s) URL (or set base_url)"
        )),
    }
}

/// Replaces every `${VAR}` (or `${VAR:-default}`) in `value`; a missing variable without a default is
/// an error.
fn substitute_env(value: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    substitute_env_with_secrets(value, env).map(|(text, _)| text)
}

/// [`substitute_env`], also returning the values taken from the environment.
fn substitute_env_with_secrets(
    value: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), String> {
    let mut out = String::new();
    let mut taken = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "an unclosed ${ ".to_owned())?;
        let (name, default) = match after[..end].split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (&after[..end], None),
        };
        match (env(name).filter(|v| !v.is_empty()), default) {
            (Some(found), _) => {
                out.push_str(&found);
                taken.push(found);
            }
            (None, Some(default)) => out.push_str(default),
            (None, None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, taken))
}

/// The vendors whose `timeout_ms` is not shorter than the call's `deadline`: the deadline cuts each of
/// their attempts before its own timeout, so they are never retried after a timeout (the cut attempt
/// still counts as a timeout for the circuit).
pub fn timeouts_not_within(vendors: &[Vendor], deadline: Duration) -> Vec<&str> {
    vendors
        .iter()
        .filter(|vendor| vendor.timeout >= deadline)
        .map(|vendor| vendor.name.as_str())
        .collect()
}

/// The shortest timeout of `vendors` (zero when there are none): a tenth of it is the lateness the
/// consumer tolerates in itself ([`crate::process::lateness::RuntimeLag`]).
pub fn shortest_timeout(vendors: &[Vendor]) -> Duration {
    vendors.iter().map(|v| v.timeout).min().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::request::Identifiers;
    use crate::vendors::vendor::StatusKind;
    use pricefront_core::ProductId;
    use std::collections::HashMap;

    const GOOD: &str = r#"
[[vendor]]
name = "alpha"
url = "http://127.0.0.1:9400/vendors/alpha/prices/{productId}"
guarantee_window_secs = 600
price_pointer = "/offer/price/amount"
currency_pointer = "/offer/price/currency"
offer_url_pointer = "/offer/url"
[vendor.headers]
Authorization = "Bearer ${ALPHA_KEY}"

[[vendor]]
name = "bravo"
url = "https://bravo.example/p?id={productId}"
timeout_ms = 500
guarantee_window_secs = 60
price_pointer = "/price"
currency = "JPY"
"#;

    fn env(name: &str) -> Option<String> {
        match name {
            "ALPHA_KEY" => Some("s3cret-alpha".to_owned()),
            "SHOP_KEY" => Some("shop-key-123".to_owned()),
            "SHOP_BASE" => Some("http://127.0.0.1:1".to_owned()),
            "CLIENT_ID" => Some("client-id-1".to_owned()),
            "CLIENT_SECRET" => Some("client-secret-1".to_owned()),
            _ => None,
        }
    }

    fn url_of(vendor: &Vendor, product: u64) -> String {
        let none = HashMap::new();
        let ids = Identifiers::new(
            ProductId::new(product).unwrap(),
            vendor.product_ids == ProductIds::Gtin,
            &none,
        );
        vendor.request.fill(&ids).unwrap().url.to_string()
    }

    /// One vendor with the required keys and `extra` lines.
    fn with(extra: &str) -> Result<Vendor, VendorsError> {
        parse(
            &format!("[[vendor]]\nname = \"x\"\nurl = \"http://x/{{productId}}\"\nguarantee_window_secs = 1\nprice_pointer = \"/p\"\ncurrency = \"EUR\"\n{extra}\n"),
            env,
        )
        .map(|mut v| v.remove(0))
    }

    #[test]
    fn loads_vendors_with_defaults_and_secrets_from_the_environment() {
        let vendors = parse(GOOD, env).unwrap();
        assert_eq!(vendors.len(), 2);
        assert_eq!(
            vendors[0].request.headers["authorization"],
            "Bearer s3cret-alpha"
        );
        assert_eq!(vendors[0].timeout, Duration::from_millis(2_000));
        assert_eq!(
            vendors[1].offers.currency,
            CurrencySource::Fixed("JPY".parse().unwrap())
        );
        assert_eq!(url_of(&vendors[1], 42), "https://bravo.example/p?id=42");
        assert_eq!(vendors[1].request.headers["accept"], "application/json");
        assert_eq!(redact::redact("x s3cret-alpha"), "x [redacted]");
    }

    #[test]
    fn reads_the_request_shape_identifiers_offers_and_statuses() {
        let text = r#"
product_ids = "gtin"

[[vendor]]
name = "shop"
base_url = "${SHOP_BASE:-https://api.shop.example}"
url = "/v1/products(upc={upc})"
method = "POST"
body = '{"ids": ["{gtin13}", "{id:asin}"]}'
guarantee_window_secs = 60
offers_pointer = "/products"
missing_offers_mean_not_listed = true
price_pointer = "/salePrice"
currency = "USD"
shipping_pointer = "/shipping"
max_requests_per_day = 5000
budget_time_zone = "America/Los_Angeles"
[vendor.query]
apiKey = "${SHOP_KEY}"
format = "json"
[vendor.where]
"/condition" = ["New", "new"]
"/active" = true
[vendor.statuses]
403 = "quota"
404 = "not_listed"
"#;
        let vendor = parse(text, env).unwrap().remove(0);
        assert_eq!(vendor.request.method, Method::POST);
        assert_eq!(vendor.mapped_schemes, ["asin"]);
        let mapped = HashMap::from([("asin".to_owned(), "B00TEST".to_owned())]);
        let ids = Identifiers::new(ProductId::new(12_345_678_905).unwrap(), true, &mapped);
        let filled = vendor.request.fill(&ids).unwrap();
        assert_eq!(
            filled.url.as_str(),
            "http://127.0.0.1:1/v1/products(upc=012345678905)?apiKey=shop-key-123&format=json"
        );
        assert_eq!(
            String::from_utf8(filled.body.unwrap()).unwrap(),
            r#"{"ids":["0012345678905","B00TEST"]}"#
        );
        assert_eq!(vendor.request.headers["content-type"], "application/json");
        assert_eq!(vendor.offers.filters.len(), 2);
        assert!(vendor.offers.missing_array_is_not_listed);
        assert_eq!(
            vendor.statuses[&reqwest::StatusCode::FORBIDDEN],
            StatusKind::Quota
        );
        assert_eq!(
            vendor.statuses[&reqwest::StatusCode::NOT_FOUND],
            StatusKind::NotListed
        );
        let budget = vendor.budget.unwrap();
        assert_eq!(budget.max_requests_per_day, 5000);
        assert_eq!(budget.time_zone_name, "America/Los_Angeles");
        assert_eq!(redact::redact("k=shop-key-123"), "k=[redacted]");
        // The base URL's default applies when its variable is unset.
        let defaulted = parse(&text.replace("SHOP_BASE", "UNSET_BASE"), env).unwrap();
        let filled = defaulted[0].request.fill(&ids).unwrap();
        assert!(filled
            .url
            .as_str()
            .starts_with("https://api.shop.example/v1/"));
    }

    #[test]
    fn reads_oauth_settings_and_registers_the_secrets() {
        let vendor = with(
            "[vendor.auth]\nkind = \"oauth2_client_credentials\"\ntoken_url = \"https://auth.example/token\"\nclient_id = \"${CLIENT_ID}\"\nclient_secret = \"${CLIENT_SECRET}\"\nscope = \"a b\"\n",
        )
        .unwrap();
        let AuthSettings::OAuth(oauth) = &vendor.auth else {
            panic!("OAuth")
        };
        assert_eq!(oauth.token_url.as_str(), "https://auth.example/token");
        assert_eq!(oauth.client_auth, ClientAuth::Basic);
        assert_eq!(oauth.max_mints_per_hour, 12);
        assert_eq!(oauth.scope.as_deref(), Some("a b"));
        assert_eq!(redact::redact("client-secret-1"), "[redacted]");
        // The Basic credential travels base64-encoded.
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode("client-id-1:client-secret-1");
        assert_eq!(redact::redact(&basic), "[redacted]");
    }

    /// Every bad configuration the issue names refuses the start with one line naming the vendor and
    /// the key.
    #[test]
    fn bad_configuration_is_refused_with_the_vendor_and_the_key() {
        let pem_dir = std::env::temp_dir().join(format!("pricefront-pem-{}", std::process::id()));
        std::fs::create_dir_all(&pem_dir).unwrap();
        let not_a_key = pem_dir.join("not-a-key.pem");
        std::fs::write(
            &not_a_key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let signed = |key: &str| {
            format!("[vendor.auth]\nkind = \"rsa_signed_headers\"\nconsumer_id = \"c\"\nkey_version = \"1\"\n{key}\n")
        };
        let cases = [
            (
                "[vendor.query]\napi_key = \"${MISSING_KEY}\"".to_owned(),
                "query.api_key: environment variable MISSING_KEY is not set",
            ),
            (
                "[vendor.auth]\nkind = \"oauth2_client_credentials\"\ntoken_url = \"https://a/t\"\nclient_id = \"${CLIENT_ID}\"\nclient_secret = \"${NO_SECRET}\"".to_owned(),
                "auth.client_secret: environment variable NO_SECRET is not set",
            ),
            (
                signed(&format!("private_key_file = \"{}\"", pem_dir.join("absent.pem").display())),
                "auth.private_key_file: cannot read",
            ),
            (
                signed(&format!("private_key_file = \"{}\"", not_a_key.display())),
                "auth.private_key_file: not an RSA private key in PEM",
            ),
            (signed("private_key_pem = \"garbage\""), "auth.private_key_pem: not an RSA private key"),
            ("[vendor.auth]\nkind = \"magic\"".to_owned(), "unknown variant `magic`"),
            ("offers_pointer = \"products\"".to_owned(), "offers_pointer: \"products\" is not a JSON pointer"),
            ("shipping_pointer = \"ship\"".to_owned(), "shipping_pointer: \"ship\" is not a JSON pointer"),
            ("method = \"POST\"\nbody = \"{not json\"".to_owned(), "body: not JSON"),
            ("method = \"PUT\"".to_owned(), "method: \"PUT\" is not GET or POST"),
            ("[vendor.statuses]\n200 = \"quota\"".to_owned(), "statuses.200: not an error status"),
            ("[vendor.statuses]\n403 = \"teapot\"".to_owned(), "unknown variant `teapot`"),
            ("[vendor.where]\n\"/c\" = \"1\"".to_owned(), "need offers_pointer"),
            ("max_requests_per_day = 10\nbudget_time_zone = \"Mars/Olympus\"".to_owned(), "budget_time_zone: \"Mars/Olympus\" is not a time zone"),
            ("budget_time_zone = \"UTC\"".to_owned(), "budget_time_zone: needs max_requests_per_day"),
        ];
        for (extra, expected) in cases {
            let error = with(&extra).unwrap_err().to_string();
            assert!(
                error.starts_with("vendor \"x\": ") && error.contains(expected),
                "{extra}: {error}"
            );
            assert!(!error.contains('\n'), "one line: {error}");
        }
        let upc = parse(
            "[[vendor]]\nname = \"y\"\nurl = \"http://x/p/{upc}\"\nguarantee_window_secs = 1\nprice_pointer = \"/p\"\ncurrency = \"EUR\"\n",
            env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            upc.starts_with(
                "vendor \"y\": url, query or body: {upc} needs product ids that are GTINs"
            ),
            "{upc}"
        );
        let _ = std::fs::remove_dir_all(pem_dir);
    }

    #[test]
    fn names_the_vendors_whose_timeout_the_deadline_cuts() {
        let vendors = [
            with("timeout_ms = 1000").unwrap(),
            with("timeout_ms = 3000").unwrap(),
            with("timeout_ms = 5000").unwrap(),
        ];
        assert_eq!(
            timeouts_not_within(&vendors, Duration::from_millis(3_000)).len(),
            2
        );
    }

    #[test]
    fn reads_quotas_and_breaker_settings_with_their_defaults() {
        let vendors = parse(GOOD, env).unwrap();
        assert_eq!(vendors[0].quota, QuotaSettings::default());
        assert_eq!(vendors[0].breaker, BreakerSettings::default());
        assert_eq!(vendors[0].breaker.minimum_calls, 20);
        assert_eq!(vendors[0].breaker.failure_rate, 0.5);
        assert_eq!(vendors[0].breaker.cooldown, Duration::from_millis(5_000));
        let vendor = with("max_requests_per_second = 0.5\nmax_concurrency = 4\nbreaker_failure_rate_percent = 25\nbreaker_minimum_calls = 2\nbreaker_window_calls = 8\nbreaker_window_secs = 9\nbreaker_half_open_calls = 3\nbreaker_cooldown_ms = 750")
            .unwrap();
        assert_eq!(vendor.quota.max_requests_per_second, Some(0.5));
        assert_eq!(vendor.quota.max_concurrency, Some(4));
        assert_eq!(
            vendor.breaker,
            BreakerSettings {
                window_calls: 8,
                window: Duration::from_secs(9),
                minimum_calls: 2,
                failure_rate: 0.25,
                half_open_calls: 3,
                cooldown: Duration::from_millis(750),
            }
        );
        let whole = with("max_requests_per_second = 3").unwrap();
        assert_eq!(
            whole.quota.max_requests_per_second,
            Some(3.0),
            "an integer rate"
        );
        for (bad, expected) in [
            ("max_requests_per_second = 0", "> 0"),
            ("max_requests_per_second = -1.5", "> 0"),
            ("max_requests_per_second = nan", "> 0"),
            ("max_requests_per_second = inf", "> 0"),
            ("max_concurrency = 0", "at least 1"),
            ("breaker_failures = 3", "was replaced"),
            ("breaker_failure_rate_percent = 0", "in (0, 100]"),
            ("breaker_failure_rate_percent = 101", "in (0, 100]"),
            ("breaker_half_open_calls = 0", "at least 1"),
            ("breaker_minimum_calls = 1001", "must not exceed"),
        ] {
            let error = with(bad).unwrap_err().to_string();
            assert!(error.contains(expected), "{bad}: {error}");
        }
        assert!(with("max_concurrency = -1").is_err());
        assert!(with("max_concurrency = 1.5").is_err());
    }

    #[test]
    fn refuses_bad_vendors_with_the_reason() {
        let missing_env = parse(GOOD, |_| None).unwrap_err().to_string();
        assert!(
            missing_env.contains("ALPHA_KEY is not set"),
            "{missing_env}"
        );
        let vendor = |url: &str, pointer: &str, currency: &str| {
            format!("[[vendor]]\nname = \"x\"\nurl = \"{url}\"\nguarantee_window_secs = 1\nprice_pointer = \"{pointer}\"\n{currency}\n")
        };
        let cases = [
            (
                vendor("ftp://x/{productId}", "/p", "currency = \"EUR\""),
                "http(s)",
            ),
            (vendor("/relative", "/p", "currency = \"EUR\""), "base_url"),
            (
                vendor(
                    "http://x/{productId}",
                    "/p",
                    "currency = \"EUR\"\ncurrency_pointer = \"/c\"",
                ),
                "exactly one",
            ),
            (vendor("http://x/{productId}", "/p", ""), "exactly one"),
            (
                vendor("http://x/{productId}", "price", "currency = \"EUR\""),
                "JSON pointer",
            ),
            (
                vendor("http://x/{productId}", "/p", "currency = \"euro\""),
                "currency",
            ),
            (
                vendor("http://x/{id:ASIN}", "/p", "currency = \"EUR\""),
                "identifier scheme",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(&text, env).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
        assert!(parse("[[vendor]]\nname = \"x\"\nbogus = 1\n", env).is_err());
        assert!(parse("bogus = 1\n", env).is_err());
    }
}
