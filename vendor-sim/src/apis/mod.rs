//! The simulator speaking five real price APIs, each under a path prefix, so that a real client works
//! with only its base URL pointed at the simulator (`https://api.ebay.com` → `http://sim/ebay`, …).
//!
//! Layout, one file per API plus what they share:
//!
//! - [`ebay`]: eBay Buy Browse `item_summary/search` by GTIN, with OAuth2 client credentials.
//! - [`bestbuy`]: Best Buy Products API `products(upc=…)`, with an `apiKey` and a quota (403).
//! - [`walmart`]: Walmart affiliate Product Lookup by UPC, with RSA-SHA256 signed headers.
//! - [`amazon`]: Amazon Creators API `getItems` by ASIN, with OAuth2 client credentials.
//! - [`rainforest`]: Rainforest API (Traject Data) `type=product` / `type=offers` by GTIN or ASIN.
//! - [`offers`]: the deterministic offers of every (API, identifier), and [`expected_best`].
//! - [`settings`]: credentials and limits per API ([`ApiSettings`]), from the profiles file's
//!   `[apis.<name>]` tables ([`ApiProfiles`]) or `PUT /_sim/apis/{name}` ([`ApiSettingsPatch`]).
//! - [`state`]: issued tokens, request windows and counts ([`ApiStats`]).
//! - [`control`]: the `/_sim/apis` routes.
//!
//! The request and answer shapes follow the vendors' documentation; each file names the pages it
//! follows and marks what could not be found documented ("not documented", "guessed").
//!
//! Every data request counts in [`crate::Simulator::request_counts`] under the API's name (`ebay`,
//! `bestbuy`, `walmart`, `amazon`, `rainforest`; token requests do not) and records its `traceparent`
//! under each identifier it asks for ([`crate::Simulator::traceparents_of`]). Client input never
//! panics the simulator: bad input gets the API's own error answer.

pub mod amazon;
pub mod bestbuy;
pub mod control;
pub mod ebay;
pub mod offers;
pub mod rainforest;
pub mod settings;
pub mod state;
pub mod walmart;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde::{Deserialize, Serialize};

pub use offers::{
    expected_best, lookup, offers_of, Condition, ExpectedOffer, Lookup, SimOffer,
    DEFAULT_PARTNER_TAG,
};
pub use settings::{ApiProfiles, ApiSettings, ApiSettingsError, ApiSettingsPatch};
pub use state::{ApiState, ApiStats};

use crate::Simulator;

/// One of the simulated price APIs. Its name (`ebay`, `bestbuy`, `walmart`, `amazon`, `rainforest`) is
/// its path prefix, its `[apis.<name>]` table, its `/_sim/apis/{name}` and its request-count key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// eBay Buy Browse API.
    Ebay,
    /// Best Buy Products API.
    BestBuy,
    /// Walmart affiliate Product Lookup API.
    Walmart,
    /// Amazon Creators API.
    Amazon,
    /// Rainforest API (Traject Data), Amazon data by GTIN or ASIN.
    Rainforest,
}

impl Api {
    /// All five, in a fixed order.
    pub const ALL: [Api; 5] = [
        Api::Ebay,
        Api::BestBuy,
        Api::Walmart,
        Api::Amazon,
        Api::Rainforest,
    ];

    /// The API's name: its path prefix and key.
    pub fn name(self) -> &'static str {
        match self {
            Api::Ebay => "ebay",
            Api::BestBuy => "bestbuy",
            Api::Walmart => "walmart",
            Api::Amazon => "amazon",
            Api::Rainforest => "rainforest",
        }
    }

    /// The currency its prices are in: all five are simulated for their US marketplace.
    pub fn currency(self) -> &'static str {
        "USD"
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the simulated APIs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no simulated API is called {0:?}")]
pub struct UnknownApi(pub String);

impl FromStr for Api {
    type Err = UnknownApi;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Api::ALL
            .into_iter()
            .find(|api| api.name() == name)
            .ok_or_else(|| UnknownApi(name.to_owned()))
    }
}

/// The simulated APIs' routes (merged into [`crate::router`]).
pub(crate) fn routes() -> Router<Arc<Simulator>> {
    Router::new()
        .route("/ebay/identity/v1/oauth2/token", post(ebay::token))
        .route("/ebay/buy/browse/v1/item_summary/search", get(ebay::search))
        .route("/bestbuy/v1/{selector}", get(bestbuy::products))
        .route(
            "/walmart/api-proxy/service/affil/product/v2/items",
            get(walmart::items),
        )
        .route("/amazon/auth/o2/token", post(amazon::lwa_token))
        .route("/amazon/oauth2/token", post(amazon::cognito_token))
        .route("/amazon/catalog/v1/getItems", post(amazon::get_items))
        .route("/rainforest/request", get(rainforest::request))
        .route("/_sim/apis", get(control::all_settings))
        .route(
            "/_sim/apis/{name}",
            get(control::settings).put(control::put_settings),
        )
        .route("/_sim/apis/{name}/stats", get(control::stats))
        .route("/_sim/apis/{name}/reset", post(control::reset))
}

/// Counts a data request of `api` (in the simulator's request counts and the API's stats) and records
/// its `traceparent` under each identifier it asks for.
pub(crate) fn note_request(
    simulator: &Simulator,
    api: Api,
    identifiers: &[&str],
    headers: &HeaderMap,
) {
    simulator.count(api.name());
    simulator.apis().record(api, |stats| stats.requests += 1);
    if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        for identifier in identifiers {
            simulator.record_traceparent(identifier, traceparent);
        }
    }
}

/// Waits the API's latency: uniform between its `latency_min_ms` and `latency_max_ms`.
pub(crate) async fn delay(simulator: &Simulator, api: Api) {
    let settings = simulator.apis().settings(api);
    let high = settings.latency_max_ms.max(settings.latency_min_ms);
    let ms = if high == 0 {
        0
    } else {
        rand::rng().random_range(settings.latency_min_ms..=high)
    };
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// The query parameters, or none when the query cannot be read (each API then answers its own "missing
/// parameter" error).
pub(crate) fn params(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> HashMap<String, String> {
    query.map(|Query(map)| map).unwrap_or_default()
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i128)
        .unwrap_or(0)
}

/// Now as RFC 3339 UTC with milliseconds (`2024-05-01T12:00:00.000Z`).
pub(crate) fn iso_now() -> String {
    let ms = now_ms().max(0);
    let secs = (ms / 1000) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        ms % 1000
    )
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers for the API tests: a simulator on a loopback port, and RSA key pairs and signatures made
    //! by the `openssl` command line (another implementation than the simulator's, and no key is kept
    //! in the repository).

    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::Arc;

    use crate::{Profiles, Simulator};

    /// A simulator with no vendors, served on a loopback port until the test ends.
    pub(crate) async fn serve() -> (Arc<Simulator>, String) {
        serve_simulator(Simulator::new(Profiles::default())).await
    }

    /// `simulator`, served on a loopback port until the test ends.
    pub(crate) async fn serve_simulator(simulator: Arc<Simulator>) -> (Arc<Simulator>, String) {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = crate::router(simulator.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (simulator, format!("http://{addr}"))
    }

    /// The `n`th valid UPC-A of the test range.
    pub(crate) fn upc(n: u64) -> String {
        crate::apis::offers::tests::gtin12(n)
    }

    /// A 2048-bit RSA key pair made by `openssl` in a fresh temp directory (removed on drop):
    /// `key.pem` (PKCS#8) and `pub.pem` (SPKI).
    pub(crate) struct OpensslKeys {
        dir: PathBuf,
    }

    impl OpensslKeys {
        /// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem`, then
        /// `openssl pkey -in key.pem -pubout -out pub.pem`.
        pub(crate) fn generate(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "vendor-sim-{tag}-{}-{}",
                std::process::id(),
                rand::random::<u64>()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let keys = Self { dir };
            keys.openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "key.pem",
            ]);
            keys.openssl(&["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"]);
            keys
        }

        /// The directory holding `key.pem` and `pub.pem`.
        pub(crate) fn dir(&self) -> &Path {
            &self.dir
        }

        /// `pub.pem`: the public key, SPKI PEM.
        pub(crate) fn public_pem(&self) -> String {
            std::fs::read_to_string(self.dir.join("pub.pem")).unwrap()
        }

        /// Runs `openssl args…` in the directory and returns its standard output; panics if it fails.
        pub(crate) fn openssl(&self, args: &[&str]) -> Vec<u8> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&self.dir)
                .output()
                .unwrap_or_else(|e| {
                    panic!("running openssl {args:?} (is openssl installed?): {e}")
                });
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }

        /// The standard base64 of `openssl dgst -sha256 -sign key.pem` over `message`
        /// (RSASSA-PKCS1-v1_5 SHA-256), base64 by `openssl base64 -A`.
        pub(crate) fn sign(&self, message: &str) -> String {
            std::fs::write(self.dir.join("message"), message).unwrap();
            self.openssl(&[
                "dgst",
                "-sha256",
                "-sign",
                "key.pem",
                "-out",
                "signature.bin",
                "message",
            ]);
            let base64 = self.openssl(&["base64", "-A", "-in", "signature.bin"]);
            String::from_utf8(base64).unwrap().trim().to_owned()
        }
    }

    impl Drop for OpensslKeys {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for api in Api::ALL {
            assert_eq!(api.name().parse::<Api>().unwrap(), api);
            assert_eq!(
                serde_json::to_value(api).unwrap(),
                serde_json::json!(api.name())
            );
        }
        assert!("nosuch".parse::<Api>().is_err());
    }

    #[test]
    fn iso_dates_are_well_formed() {
        let now = iso_now();
        assert_eq!(now.len(), 24);
        assert!(now.starts_with("20") && now.ends_with('Z'));
    }
}
