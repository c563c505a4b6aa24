//! Walmart affiliate Product Lookup API, by UPC, with RSA-signed headers.
//!
//! Documented at walmart.io (affiliate quick start and key tutorial; the item fields at
//! developer.walmartlabs.com `Item_Response_Groups_V2`; the signature errors at
//! developer.walmartdataventures.com `reference/error-codes`, same scheme).
//!
//! `GET /walmart/api-proxy/service/affil/product/v2/items?upc=012345678905` (real:
//! `https://developer.api.walmart.com/api-proxy/service/affil/product/v2/items`) with the headers
//! `WM_CONSUMER.ID`, `WM_CONSUMER.INTIMESTAMP` (Unix epoch milliseconds), `WM_SEC.KEY_VERSION` and
//! `WM_SEC.AUTH_SIGNATURE`: the standard base64 of an RSASSA-PKCS1-v1_5 SHA-256 signature over exactly
//! `"{consumerId}\n{timestamp}\n{keyVersion}\n"` ([`canonical_string`]), checked with the API's
//! `public_key_pem`. There is none by default: until one is set (`PUT /_sim/apis/walmart` with
//! `{"public_key_pem": "-----BEGIN PUBLIC KEY-----…"}`, or the profiles file's `[apis.walmart]`), every
//! signed request is refused as a signature that does not verify (the 401 below).
//! - 200 `{"items":[{"itemId":12345678,"parentItemId","name","msrp","salePrice":19.97,"upc",
//!   "standardShipRate":0.0,"productTrackingUrl":"https://goto.walmart.com/c/|PUBID|/…","productUrl",
//!   "sellerInfo","marketplace","stock":"Available","availableOnline":true}]}`: prices are JSON numbers
//!   (USD). Walmart's item has no condition field: every simulated Walmart offer is new.
//! - Not found: 200 `{"items":[]}` (Walmart's not-found answer for a UPC is not documented: guessed).
//! - 400 `{"errors":[{"code":4000,"message":…}]}` without `upc`, 4003 for a UPC that is no valid GTIN
//!   (codes guessed after the legacy Open API's `{"errors":[{"code","message"}]}`).
//! - 403 `{"details":{"Description":"Request is missing required security headers, …"}}` when a header
//!   is missing; 403 "The consumer id … is not subscribed to the service affil-product" for another
//!   consumer id.
//! - 401 `{"details":{"Description":"Could not authenticate in-request, auth signature : Signature
//!   verification failed: affil-product, version: 2.0.0, env: prod","wm_svc.version":"2.0.0",
//!   "wm_svc.name":"affil-product","wm_svc.env":"prod"}}` for a signature that does not verify (or
//!   another key version, or no key set); 401 "… The Timestamp `<ts>` passed for the signature has expired …" for a valid
//!   signature over a timestamp further than `signature_max_age_secs` (default 180: Walmart's
//!   "signatures expire every 3 minutes") from now, either way.
//! - 429 `{"errors":[{"code":429,"message":"Too Many Requests"}]}` over the limits (not documented:
//!   guessed).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use base64::Engine;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use serde_json::{json, Value};
use sha2::Sha256;

use super::api::Api;
use super::common::{delay, json, note_request, now_ms, params};
use super::offers::{lookup, number, title_of, Lookup};
use super::state::Admission;
use crate::simulator::Simulator;

const API: Api = Api::Walmart;

/// The string Walmart's `WM_SEC.AUTH_SIGNATURE` signs: `"{consumer_id}\n{timestamp}\n{key_version}\n"`.
pub fn canonical_string(consumer_id: &str, timestamp: &str, key_version: &str) -> String {
    format!("{consumer_id}\n{timestamp}\n{key_version}\n")
}

fn details(status: StatusCode, description: &str) -> Response {
    json(
        status,
        json!({"details": {
            "Description": description,
            "wm_svc.version": "2.0.0",
            "wm_svc.name": "affil-product",
            "wm_svc.env": "prod",
        }}),
    )
}

fn errors(status: StatusCode, code: u32, message: &str) -> Response {
    json(
        status,
        json!({"errors": [{"code": code, "message": message}]}),
    )
}

/// Walmart's route: the items lookup. Merged into [`super::routes`].
pub(crate) fn routes() -> Router<Arc<Simulator>> {
    Router::new().route(
        "/walmart/api-proxy/service/affil/product/v2/items",
        get(items),
    )
}

/// `GET /walmart/api-proxy/service/affil/product/v2/items`.
pub(crate) async fn items(
    State(simulator): State<Arc<Simulator>>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let params = params(query);
    let upc = params.get("upc").cloned();
    let identifiers: Vec<&str> = upc.iter().map(String::as_str).collect();
    note_request(&simulator, API, &identifiers, &headers);
    delay(&simulator, API).await;
    let apis = simulator.apis();
    let settings = apis.settings(API);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let (Some(consumer_id), Some(timestamp), Some(key_version), Some(signature)) = (
        header("wm_consumer.id"),
        header("wm_consumer.intimestamp"),
        header("wm_sec.key_version"),
        header("wm_sec.auth_signature"),
    ) else {
        apis.record(API, |s| s.missing_credential_refusals += 1);
        return details(
            StatusCode::FORBIDDEN,
            "Request is missing required security headers, please read documentation for security headers.",
        );
    };
    if consumer_id != settings.consumer_id {
        apis.record(API, |s| s.bad_key_refusals += 1);
        return details(
            StatusCode::FORBIDDEN,
            &format!(
                "The consumer id {consumer_id} is not subscribed to the service affil-product"
            ),
        );
    }
    // No key set: nothing verifies.
    let verified = key_version == settings.key_version
        && apis.public_key(API).is_some_and(|key| {
            verify(
                &key,
                &canonical_string(consumer_id, timestamp, key_version),
                signature,
            )
        });
    if !verified {
        apis.record(API, |s| s.bad_signature_refusals += 1);
        return details(
            StatusCode::UNAUTHORIZED,
            "Could not authenticate in-request, auth signature : Signature verification failed: affil-product, version: 2.0.0, env: prod",
        );
    }
    let max_age_ms = i128::from(settings.signature_max_age_secs) * 1000;
    let fresh = timestamp
        .parse::<i128>()
        .ok()
        .and_then(|at| now_ms().checked_sub(at))
        .and_then(i128::checked_abs)
        .is_some_and(|age| age <= max_age_ms);
    if !fresh {
        apis.record(API, |s| s.stale_timestamp_refusals += 1);
        return details(
            StatusCode::UNAUTHORIZED,
            &format!("Could not authenticate in-request, auth signature : The Timestamp {timestamp} passed for the signature has expired: affil-product, version: 2.0.0, env: prod"),
        );
    }
    if apis.admit(API) != Admission::Admitted {
        return errors(StatusCode::TOO_MANY_REQUESTS, 429, "Too Many Requests");
    }
    let Some(upc) = upc else {
        apis.record(API, |s| s.bad_request_refusals += 1);
        return errors(
            StatusCode::BAD_REQUEST,
            4000,
            "Missing required parameter: ids or upc",
        );
    };
    let offers = match lookup(API, &upc) {
        Lookup::Invalid => {
            apis.record(API, |s| s.bad_request_refusals += 1);
            return errors(
                StatusCode::BAD_REQUEST,
                4003,
                &format!("Invalid UPC: {upc}"),
            );
        }
        Lookup::NotFound => Vec::new(),
        Lookup::Offers(offers) => offers,
    };
    apis.record(API, |s| {
        if offers.is_empty() {
            s.answers_without_offers += 1;
        } else {
            s.answers_with_offers += 1;
        }
    });
    let parent = offers.first().map(|offer| offer.id).unwrap_or(0);
    let items: Vec<Value> = offers
        .iter()
        .map(|offer| {
            let marketplace = offer.seller != "megamart-direct";
            json!({
                "itemId": offer.id,
                "parentItemId": parent,
                "name": title_of(&upc),
                "msrp": number(offer.price_minor + offer.price_minor / 5),
                "salePrice": number(offer.price_minor),
                "upc": upc,
                "standardShipRate": number(offer.shipping_minor.unwrap_or(0)),
                "productTrackingUrl": offer.url,
                "productUrl": format!("https://www.walmart.com/ip/{}", offer.id),
                "marketplace": marketplace,
                "sellerInfo": if marketplace { offer.seller.as_str() } else { "Walmart.com" },
                "stock": "Available",
                "availableOnline": true,
                "offerType": "ONLINE_ONLY",
            })
        })
        .collect();
    json(StatusCode::OK, json!({"items": items}))
}

/// Whether `signature` (standard base64) is `key`'s RSASSA-PKCS1-v1_5 SHA-256 signature of `message`.
fn verify(key: &rsa::RsaPublicKey, message: &str, signature: &str) -> bool {
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(signature) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(bytes.as_slice()) else {
        return false;
    };
    VerifyingKey::<Sha256>::new(key.clone())
        .verify(message.as_bytes(), &signature)
        .is_ok()
}

#[cfg(test)]
mod tests {

    use serde_json::{json, Value};

    use super::super::api::Api;
    use super::super::control;
    use super::super::offers::{expected_best, lookup, Lookup};
    use super::super::test_keys::OpensslKeys;
    use super::super::test_support::{serve, serve_simulator, upc};
    use super::canonical_string;
    use crate::profile::{ApiProfiles, Profiles};
    use crate::simulator::Simulator;

    const URL: &str = "/walmart/api-proxy/service/affil/product/v2/items";
    const VERIFICATION_FAILED: &str = "Signature verification failed";

    fn now_ms() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    }

    async fn get(
        base: &str,
        upc: &str,
        consumer: &str,
        timestamp: &str,
        version: &str,
        signature: &str,
    ) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{base}{URL}"))
            .query(&[("upc", upc)])
            .header("WM_CONSUMER.ID", consumer)
            .header("WM_CONSUMER.INTIMESTAMP", timestamp)
            .header("WM_SEC.KEY_VERSION", version)
            .header("WM_SEC.AUTH_SIGNATURE", signature)
            .send()
            .await
            .unwrap()
    }

    /// A request signed now with `keys` for the default consumer id and key version.
    async fn get_signed_default(base: &str, keys: &OpensslKeys) -> reqwest::Response {
        let timestamp = now_ms().to_string();
        let signature = keys.sign(&canonical_string(
            "sim-walmart-consumer-id",
            &timestamp,
            "1",
        ));
        get(
            base,
            &upc(3),
            "sim-walmart-consumer-id",
            &timestamp,
            "1",
            &signature,
        )
        .await
    }

    async fn put_settings(base: &str, body: Value) -> reqwest::StatusCode {
        reqwest::Client::new()
            .put(format!("{base}/_sim/apis/walmart"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn stats(base: &str) -> Value {
        reqwest::get(format!("{base}/_sim/apis/walmart/stats"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn assert_verification_failed(response: reqwest::Response) {
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert!(
            body["details"]["Description"]
                .as_str()
                .unwrap()
                .contains(VERIFICATION_FAILED),
            "{body}"
        );
    }

    #[tokio::test]
    async fn openssl_signatures_are_checked() {
        let keys = OpensslKeys::generate("walmart");
        let (_simulator, base) = serve(control::beside(super::routes())).await;
        let put = put_settings(
            &base,
            json!({"consumer_id": "consumer-1", "key_version": "2", "public_key_pem": keys.public_pem(), "signature_max_age_secs": 60}),
        )
        .await;
        assert_eq!(put, 204);

        let found = (0..)
            .map(upc)
            .find(|u| expected_best(Api::Walmart, u).is_some())
            .unwrap();
        let timestamp = now_ms().to_string();
        let signature = keys.sign(&canonical_string("consumer-1", &timestamp, "2"));
        let ok = get(&base, &found, "consumer-1", &timestamp, "2", &signature).await;
        assert_eq!(ok.status(), 200);
        let body: Value = ok.json().await.unwrap();
        let items = body["items"].as_array().unwrap();
        let best = expected_best(Api::Walmart, &found).unwrap();
        let cheapest = items
            .iter()
            .map(|item| {
                let cents = |v: &Value| (v.as_f64().unwrap() * 100.0).round() as u64;
                (
                    cents(&item["salePrice"]) + cents(&item["standardShipRate"]),
                    item["productTrackingUrl"].as_str().unwrap().to_owned(),
                )
            })
            .min()
            .unwrap();
        assert_eq!(cheapest, (best.total_minor, best.url));

        // The same signature with another timestamp.
        let changed = (now_ms() + 1).to_string();
        let refused = get(&base, &found, "consumer-1", &changed, "2", &signature).await;
        assert_verification_failed(refused).await;

        // A valid signature over an old timestamp.
        let old = (now_ms() - 61_000).to_string();
        let old_signature = keys.sign(&canonical_string("consumer-1", &old, "2"));
        let stale = get(&base, &found, "consumer-1", &old, "2", &old_signature).await;
        assert_eq!(stale.status(), 401);
        let body: Value = stale.json().await.unwrap();
        assert!(body["details"]["Description"]
            .as_str()
            .unwrap()
            .contains("has expired"));

        // Not found, invalid, wrong consumer, missing headers.
        let missing = (0..)
            .map(upc)
            .find(|u| lookup(Api::Walmart, u) == Lookup::NotFound)
            .unwrap();
        let timestamp = now_ms().to_string();
        let signature = keys.sign(&canonical_string("consumer-1", &timestamp, "2"));
        let empty = get(&base, &missing, "consumer-1", &timestamp, "2", &signature).await;
        assert_eq!(empty.status(), 200);
        assert_eq!(empty.json::<Value>().await.unwrap(), json!({"items": []}));
        let invalid = get(&base, "123", "consumer-1", &timestamp, "2", &signature).await;
        assert_eq!(invalid.status(), 400);
        let stranger = get(&base, &found, "consumer-2", &timestamp, "2", &signature).await;
        assert_eq!(stranger.status(), 403);
        let bare = reqwest::get(format!("{base}{URL}?upc={found}"))
            .await
            .unwrap();
        assert_eq!(bare.status(), 403);

        let stats = stats(&base).await;
        assert_eq!(stats["bad_signature_refusals"], 1);
        assert_eq!(stats["stale_timestamp_refusals"], 1);
        assert_eq!(stats["bad_key_refusals"], 1);
        assert_eq!(stats["missing_credential_refusals"], 1);
        assert_eq!(stats["answers_with_offers"], 1);
        assert_eq!(stats["answers_without_offers"], 1);
    }

    #[tokio::test]
    async fn without_a_key_every_signed_request_is_refused() {
        let keys = OpensslKeys::generate("walmart-nokey");
        let (simulator, base) = serve(control::beside(super::routes())).await;
        assert_eq!(simulator.api_settings(Api::Walmart).public_key_pem, "");
        assert_verification_failed(get_signed_default(&base, &keys).await).await;
        let stats = stats(&base).await;
        assert_eq!(stats["bad_signature_refusals"], 1);
        assert_eq!(stats["answers_with_offers"], 0);
    }

    #[tokio::test]
    async fn a_key_set_at_run_time_is_trusted_until_removed() {
        let keys = OpensslKeys::generate("walmart-runtime");
        let (_simulator, base) = serve(control::beside(super::routes())).await;
        assert_verification_failed(get_signed_default(&base, &keys).await).await;

        let put = put_settings(&base, json!({"public_key_pem": keys.public_pem()})).await;
        assert_eq!(put, 204);
        assert_eq!(get_signed_default(&base, &keys).await.status(), 200);
        // Another key version than the set one.
        let timestamp = now_ms().to_string();
        let signature = keys.sign(&canonical_string(
            "sim-walmart-consumer-id",
            &timestamp,
            "7",
        ));
        let wrong_version = get(
            &base,
            &upc(3),
            "sim-walmart-consumer-id",
            &timestamp,
            "7",
            &signature,
        )
        .await;
        assert_verification_failed(wrong_version).await;
        // Another key pair's signature.
        let other = OpensslKeys::generate("walmart-other");
        assert_verification_failed(get_signed_default(&base, &other).await).await;

        let removed = put_settings(&base, json!({"public_key_pem": ""})).await;
        assert_eq!(removed, 204);
        assert_verification_failed(get_signed_default(&base, &keys).await).await;
    }

    #[tokio::test]
    async fn a_key_set_in_the_profiles_file_is_trusted() {
        let keys = OpensslKeys::generate("walmart-profiles");
        let text = format!(
            "[apis.walmart]\nconsumer_id = \"sim-walmart-consumer-id\"\npublic_key_pem = '''\n{}'''\n",
            keys.public_pem()
        );
        let apis = ApiProfiles::from_toml(&text).unwrap();
        let simulator = Simulator::with_apis(Profiles::default(), &apis).unwrap();
        let (_simulator, base) = serve_simulator(simulator, control::beside(super::routes())).await;
        assert_eq!(get_signed_default(&base, &keys).await.status(), 200);

        // A table without a key is accepted, and then nothing verifies.
        let apis = ApiProfiles::from_toml("[apis.walmart]\nkey_version = \"1\"\n").unwrap();
        let simulator = Simulator::with_apis(Profiles::default(), &apis).unwrap();
        let (_simulator, base) = serve_simulator(simulator, control::beside(super::routes())).await;
        assert_verification_failed(get_signed_default(&base, &keys).await).await;

        let bad = ApiProfiles::from_toml("[apis.walmart]\npublic_key_pem = \"nope\"\n").unwrap();
        assert!(Simulator::with_apis(Profiles::default(), &bad).is_err());
    }
}
