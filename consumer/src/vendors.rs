//! The vendors file: which external price APIs to ask, and how to read their answers.
//!
//! Vendors are configuration, not code. A TOML file lists them:
//!
//! ```toml
//! [[vendor]]
//! name = "alpha"
//! url = "https://api.alpha.example/prices/{productId}"
//! timeout_ms = 1500
//! max_attempts = 3
//! guarantee_window_secs = 600
//! price_pointer = "/offer/price/amount"
//! currency_pointer = "/offer/price/currency"   # or: currency = "EUR"
//! offer_url_pointer = "/offer/url"             # optional
//! max_requests_per_second = 0.5                # optional quota, per process (fractional allowed)
//! max_concurrency = 4                          # optional quota, per process
//! breaker_failure_rate_percent = 50           # failed calls in the window that open the circuit
//! breaker_minimum_calls = 20                   # no decision below this many calls in the window
//! breaker_window_calls = 1000                  # the window: the last N calls ...
//! breaker_window_secs = 10                     # ... no older than this
//! breaker_half_open_calls = 5                  # trial calls after the cool-down
//! breaker_cooldown_ms = 5000                   # how long an open circuit stays open at first
//! [vendor.headers]
//! Authorization = "Bearer ${ALPHA_API_KEY}"    # ${VAR} is read from the environment at start
//! ```
//!
//! The quotas ([`crate::quota`]) are enforced per process, over all of its comparisons in flight: a
//! group of N consumer processes may send up to N times the quota, so set each process's value to the
//! vendor's quota divided by the number of consumer processes. The circuit breaker
//! ([`crate::breaker`]) is per process too.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use pricefront_core::{Currency, ProductId};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use crate::breaker::BreakerSettings;
use crate::quota::QuotaSettings;

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
    Parse(#[from] toml::de::Error),
    /// A vendor's settings are wrong.
    #[error("vendor {vendor:?}: {problem}")]
    Invalid {
        /// The vendor's name.
        vendor: String,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorsFile {
    #[serde(default, rename = "vendor")]
    vendors: Vec<VendorEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorEntry {
    name: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    guarantee_window_secs: u64,
    price_pointer: String,
    currency_pointer: Option<String>,
    currency: Option<String>,
    offer_url_pointer: Option<String>,
    max_requests_per_second: Option<f64>,
    max_concurrency: Option<u32>,
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

fn default_timeout_ms() -> u64 {
    2_000
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

fn default_max_attempts() -> u32 {
    3
}

/// A JSON pointer (RFC 6901) into a vendor's body, split into its unescaped tokens once, at load,
/// rather than at every answer (as `serde_json::Value::pointer` does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointer {
    text: String,
    tokens: Vec<String>,
}

impl JsonPointer {
    /// The pointer `text` (`""` or starting with `/`).
    pub fn new(text: &str) -> Self {
        let tokens = text
            .split('/')
            .skip(1)
            .map(|token| token.replace("~1", "/").replace("~0", "~"))
            .collect();
        Self {
            text: text.to_owned(),
            tokens,
        }
    }

    /// The value it points at in `value`, as `serde_json::Value::pointer` finds it.
    pub fn find<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.tokens
            .iter()
            .try_fold(value, |target, token| match target {
                Value::Object(map) => map.get(token),
                Value::Array(list) => array_index(token).and_then(|i| list.get(i)),
                _ => None,
            })
    }
}

/// An array index token: digits without a leading zero (or "0").
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

impl std::fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where a vendor's answer says the currency is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurrencySource {
    /// At this JSON pointer in the body.
    Pointer(JsonPointer),
    /// Always this currency.
    Fixed(Currency),
}

/// One vendor, ready to be asked.
#[derive(Debug, Clone)]
pub struct Vendor {
    /// The vendor's name, as it appears in offers and failures.
    pub name: String,
    /// The URL template, parsed once as far as it can be.
    url: UrlTemplate,
    /// Headers sent with every request, environment variables already substituted (and
    /// `Accept: application/json` unless the file gives an `Accept`).
    pub headers: HeaderMap,
    /// The timeout of one attempt, including reading the body.
    pub timeout: Duration,
    /// The most attempts made for one product (retryable failures only).
    pub max_attempts: u32,
    /// How long the vendor guarantees its prices.
    pub guarantee: Duration,
    /// JSON pointer to the price (a decimal string or a JSON number).
    pub price_pointer: JsonPointer,
    /// Where the currency comes from.
    pub currency: CurrencySource,
    /// JSON pointer to the offer's URL, if the vendor gives one.
    pub offer_url_pointer: Option<JsonPointer>,
    /// This process's quota for the vendor.
    pub quota: QuotaSettings,
    /// When the vendor's circuit opens, and for how long.
    pub breaker: BreakerSettings,
}

impl Vendor {
    /// The URL to ask for `product`.
    pub fn url_for(&self, product: ProductId) -> Url {
        self.url.for_product(product)
    }
}

/// A vendor's URL template. When `{productId}` appears only after the authority (in the path, the query
/// or the fragment, as usual), the scheme and authority are parsed once and each product's URL parses
/// only the rest against them: parsing whole URLs (the host through IDNA) took about a twentieth of the
/// consumer's CPU.
#[derive(Debug, Clone)]
struct UrlTemplate {
    /// `scheme://authority` parsed, when `{productId}` comes after it.
    origin: Option<Url>,
    /// The rest of the template (all of it without an `origin`), split at each `{productId}`.
    parts: Vec<String>,
}

impl UrlTemplate {
    fn new(template: &str) -> Self {
        let authority_end = template.find("://").map(|scheme_end| {
            let after = scheme_end + 3;
            template[after..]
                .find(['/', '?', '#'])
                .map_or(template.len(), |i| after + i)
        });
        let first_product = template.find("{productId}").unwrap_or(template.len());
        let origin = authority_end
            .filter(|&end| end <= first_product && end < template.len())
            .and_then(|end| Some((end, Url::parse(&template[..end]).ok()?)));
        let (origin, rest) = match origin {
            Some((end, origin)) => (Some(origin), &template[end..]),
            None => (None, template),
        };
        Self {
            origin,
            parts: rest.split("{productId}").map(str::to_owned).collect(),
        }
    }

    fn for_product(&self, product: ProductId) -> Url {
        use std::fmt::Write;
        let mut text =
            String::with_capacity(self.parts.iter().map(String::len).sum::<usize>() + 20);
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                let _ = write!(text, "{product}");
            }
            text.push_str(part);
        }
        // Checked at load with a sample id, and a product id is digits only: the parse cannot fail.
        Url::options()
            .base_url(self.origin.as_ref())
            .parse(&text)
            .expect("a vendor URL checked at load")
    }
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
/// consumer tolerates in itself ([`crate::lag::RuntimeLag`]).
pub fn shortest_timeout(vendors: &[Vendor]) -> Duration {
    vendors.iter().map(|v| v.timeout).min().unwrap_or_default()
}

/// Reads and checks the vendors file at `path`, substituting `${VAR}` in header values from the
/// environment.
pub fn load(path: &Path) -> Result<Vec<Vendor>, VendorsError> {
    let text = std::fs::read_to_string(path).map_err(|source| VendorsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, |name| std::env::var(name).ok())
}

/// Reads and checks vendors from TOML text, looking variables up with `env`.
pub fn parse(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Vendor>, VendorsError> {
    let file: VendorsFile = toml::from_str(text)?;
    let mut names = HashSet::new();
    file.vendors
        .into_iter()
        .map(|entry| {
            let invalid = |problem: String| VendorsError::Invalid {
                vendor: entry.name.clone(),
                problem,
            };
            if entry.name.trim().is_empty() || !names.insert(entry.name.clone()) {
                return Err(invalid("names must be non-empty and unique".into()));
            }
            resolve(&entry, &env).map_err(invalid)
        })
        .collect()
}

fn resolve(entry: &VendorEntry, env: &impl Fn(&str) -> Option<String>) -> Result<Vendor, String> {
    if !entry.url.contains("{productId}") {
        return Err("url must contain {productId}".into());
    }
    let sample = entry.url.replace("{productId}", "1");
    match Url::parse(&sample) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {}
        _ => return Err(format!("url {:?} is not an http(s) URL", entry.url)),
    }
    let pointers = [
        Some(&entry.price_pointer),
        entry.currency_pointer.as_ref(),
        entry.offer_url_pointer.as_ref(),
    ];
    if let Some(bad) = pointers
        .into_iter()
        .flatten()
        .find(|p| !p.is_empty() && !p.starts_with('/'))
    {
        return Err(format!(
            "{bad:?} is not a JSON pointer (it must start with /)"
        ));
    }
    let currency = match (&entry.currency_pointer, &entry.currency) {
        (Some(pointer), None) => CurrencySource::Pointer(JsonPointer::new(pointer)),
        (None, Some(code)) => CurrencySource::Fixed(code.parse().map_err(|e| format!("{e}"))?),
        _ => return Err("give exactly one of currency_pointer and currency".into()),
    };
    if entry.timeout_ms == 0 || entry.max_attempts == 0 {
        return Err("timeout_ms and max_attempts must be positive".into());
    }
    if let Some(rate) = entry.max_requests_per_second {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!(
                "max_requests_per_second must be a number > 0, not {rate}"
            ));
        }
    }
    if entry.max_concurrency == Some(0) {
        return Err("max_concurrency must be at least 1".into());
    }
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
    let mut headers = HeaderMap::new();
    for (name, value) in &entry.headers {
        let value = substitute_env(value, env)?;
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name:?}: {e}"))?;
        let mut value = HeaderValue::from_str(&value).map_err(|e| format!("header {name}: {e}"))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    headers
        .entry(header::ACCEPT)
        .or_insert(HeaderValue::from_static("application/json"));
    Ok(Vendor {
        name: entry.name.clone(),
        url: UrlTemplate::new(&entry.url),
        headers,
        timeout: Duration::from_millis(entry.timeout_ms),
        max_attempts: entry.max_attempts,
        guarantee: Duration::from_secs(entry.guarantee_window_secs),
        price_pointer: JsonPointer::new(&entry.price_pointer),
        currency,
        offer_url_pointer: entry.offer_url_pointer.as_deref().map(JsonPointer::new),
        quota: QuotaSettings {
            max_requests_per_second: entry.max_requests_per_second,
            max_concurrency: entry.max_concurrency,
        },
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

/// Replaces every `${VAR}` in `value` with the variable's value; a missing variable is an error.
fn substitute_env(value: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {value:?}"))?;
        let name = &after[..end];
        out.push_str(&env(name).ok_or_else(|| format!("environment variable {name} is not set"))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        (name == "ALPHA_KEY").then(|| "s3cret".to_owned())
    }

    #[test]
    fn loads_vendors_with_defaults_and_secrets_from_the_environment() {
        let vendors = parse(GOOD, env).unwrap();
        assert_eq!(vendors.len(), 2);
        assert_eq!(vendors[0].headers["authorization"], "Bearer s3cret");
        assert_eq!(vendors[0].timeout, Duration::from_millis(2_000));
        assert_eq!(
            vendors[1].currency,
            CurrencySource::Fixed("JPY".parse().unwrap())
        );
        assert_eq!(
            vendors[1].url_for(ProductId::new(42).unwrap()).as_str(),
            "https://bravo.example/p?id=42"
        );
    }

    #[test]
    fn pointers_find_what_serde_json_finds() {
        let body: Value = serde_json::json!({"a": {"b/c": [1, {"~d": "x"}]}, "": 2});
        for text in [
            "",
            "/a",
            "/a/b~1c",
            "/a/b~1c/0",
            "/a/b~1c/1/~0d",
            "/",
            "/a/b~1c/01",
            "/a/x",
            "/a/b~1c/9",
        ] {
            assert_eq!(
                JsonPointer::new(text).find(&body),
                body.pointer(text),
                "{text}"
            );
        }
        let vendors = parse(GOOD, env).unwrap();
        assert_eq!(
            vendors[1].url_for(ProductId::new(7).unwrap()).as_str(),
            "https://bravo.example/p?id=7"
        );
        for template in [
            "http://127.0.0.1:9400/vendors/a/prices/{productId}",
            "https://user:pw@Shop.Example:8443/p/{productId}/x?id={productId}&k=a%20b#f",
            "http://x.example?id={productId}",
            "http://x.example#{productId}",
            "http://x{productId}.example/p",
            "HTTP://X.example/./a/../p/{productId}",
        ] {
            let product = ProductId::new(12345).unwrap();
            let expected = Url::parse(&template.replace("{productId}", "12345")).unwrap();
            assert_eq!(
                UrlTemplate::new(template).for_product(product),
                expected,
                "{template}"
            );
        }
        assert_eq!(vendors[1].headers["accept"], "application/json");
    }

    #[test]
    fn names_the_vendors_whose_timeout_the_deadline_cuts() {
        let with = |name: &str, timeout_ms: u64| {
            parse(
                &format!("[[vendor]]\nname = \"{name}\"\nurl = \"http://x/{{productId}}\"\nguarantee_window_secs = 1\nprice_pointer = \"/p\"\ncurrency = \"EUR\"\ntimeout_ms = {timeout_ms}\n"),
                env,
            )
            .unwrap()
            .remove(0)
        };
        let vendors = [
            with("short", 1_000),
            with("equal", 3_000),
            with("long", 5_000),
        ];
        assert_eq!(
            timeouts_not_within(&vendors, Duration::from_millis(3_000)),
            ["equal", "long"]
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
        let with = |extra: &str| {
            parse(
                &format!("[[vendor]]\nname = \"x\"\nurl = \"http://x/{{productId}}\"\nguarantee_window_secs = 1\nprice_pointer = \"/p\"\ncurrency = \"EUR\"\n{extra}\n"),
                env,
            )
        };
        let vendor = with("max_requests_per_second = 0.5\nmax_concurrency = 4\nbreaker_failure_rate_percent = 25\nbreaker_minimum_calls = 2\nbreaker_window_calls = 8\nbreaker_window_secs = 9\nbreaker_half_open_calls = 3\nbreaker_cooldown_ms = 750")
            .unwrap()
            .remove(0);
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
        assert_eq!(vendor.breaker.cooldown, Duration::from_millis(750));
        let whole = with("max_requests_per_second = 3").unwrap().remove(0);
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
                vendor("http://x/", "/p", "currency = \"EUR\""),
                "{productId}",
            ),
            (
                vendor("ftp://x/{productId}", "/p", "currency = \"EUR\""),
                "http(s)",
            ),
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
        ];
        for (text, expected) in cases {
            let error = parse(&text, env).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
        assert!(parse("[[vendor]]\nname = \"x\"\nbogus = 1\n", env).is_err());
    }
}
