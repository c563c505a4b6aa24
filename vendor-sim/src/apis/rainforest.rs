//! Rainforest API (Traject Data): Amazon product data by GTIN or ASIN, with an API key and credits.
//!
//! Documented at docs.trajectdata.com/rainforestapi (`product-data-api/results/product`,
//! `results/offers`, `parameters/offers`, `response-codes`).
//!
//! `GET /rainforest/request?api_key=…&type=product&amazon_domain=amazon.com&gtin=012345678905` (real:
//! `https://api.rainforestapi.com/request`; `asin=` instead of `gtin=` also works, and `type=offers`
//! lists every offer):
//! - 200 `{"request_info":{"success":true,"credits_used","credits_used_this_request":1,
//!   "credits_remaining"},"request_metadata":{…},"request_parameters":{…},"product":{"title","asin",
//!   "link":"https://www.amazon.com/dp/<ASIN>","buybox_winner":{"offer_id","is_prime","condition":
//!   {"is_new":true},"price":{"symbol":"$","value":12.34,"currency":"USD","raw":"$12.34"},
//!   "shipping":{"raw":"FREE"},"availability":{…},"fulfillment":{…}}}}`: `price.value` is a JSON number.
//!   The buy box winner is the cheapest new offer; a product without new offers has no `buybox_winner`.
//!   `type=offers` adds `"offers":[{"offer_id","price":{…},"condition":{"is_new","title"},
//!   "delivery":{"fulfilled_by_amazon","comments"},"seller":{"name","id"},"buybox_winner"}]`
//!   (condition titles `"New"`, `"Used - Good"`, `"Renewed"`). Simulated shipping is always free.
//!   A GTIN's ASIN is [`super::offers::rainforest_asin`].
//! - Not found: 200 `{"request_info":{"success":false,"message":…}}` without `product` (Rainforest's
//!   not-found form is not documented: guessed).
//! - 401 `{"request_info":{"success":false,"message":…}}` for a missing or wrong `api_key`; 402 the same
//!   with `credits_remaining: 0` over `request_limit` (the credits); 429 over
//!   `max_requests_per_second`; 400 for a missing or unsupported `type`, an `amazon_domain` other than
//!   `amazon.com`, or a missing or invalid `gtin` / `asin` (the status codes are documented, the message
//!   texts are not).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::api::Api;
use super::common::{delay, iso_now, json, note_request, params};
use super::offers::{
    best_new, decimal, fnv1a, lookup, number, rainforest_asin, title_of, Condition, Lookup,
    SimOffer,
};
use super::state::Admission;
use crate::simulator::Simulator;

const API: Api = Api::Rainforest;

/// Credits an account without `request_limit` is said to have.
const NOMINAL_CREDITS: u64 = 100_000;

fn failure(status: StatusCode, message: &str) -> Response {
    json(
        status,
        json!({"request_info": {"success": false, "message": message}}),
    )
}

fn price(cents: u64) -> Value {
    json!({
        "symbol": "$",
        "value": number(cents),
        "currency": API.currency(),
        "raw": format!("${}", decimal(cents)),
    })
}

/// Rainforest's route: the request endpoint. Merged into [`super::routes`].
pub(crate) fn routes() -> Router<Arc<Simulator>> {
    Router::new().route("/rainforest/request", get(request))
}

/// `GET /rainforest/request`.
pub(crate) async fn request(
    State(simulator): State<Arc<Simulator>>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let params = params(query);
    let identifier = params.get("gtin").or_else(|| params.get("asin")).cloned();
    let identifiers: Vec<&str> = identifier.iter().map(String::as_str).collect();
    note_request(&simulator, API, &identifiers, &headers);
    delay(&simulator, API).await;
    let apis = simulator.apis();
    let settings = apis.settings(API);
    match params.get("api_key") {
        Some(key) if *key == settings.api_key => {}
        given => {
            apis.record(API, |s| {
                if given.is_none() {
                    s.missing_credential_refusals += 1;
                } else {
                    s.bad_key_refusals += 1;
                }
            });
            return failure(
                StatusCode::UNAUTHORIZED,
                "Invalid API key. Check the api_key parameter.",
            );
        }
    }
    match apis.admit(API) {
        Admission::Admitted => {}
        Admission::OverRate => {
            return failure(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests: your plan's rate limit was reached.",
            )
        }
        Admission::OverLimit => {
            return json(
                StatusCode::PAYMENT_REQUIRED,
                json!({"request_info": {
                    "success": false,
                    "message": "You have run out of credits. Enable overage or upgrade your plan.",
                    "credits_used": settings.request_limit,
                    "credits_remaining": 0,
                }}),
            )
        }
    }
    let bad_request = |message: &str| {
        apis.record(API, |s| s.bad_request_refusals += 1);
        failure(StatusCode::BAD_REQUEST, message)
    };
    let kind = match params.get("type").map(String::as_str) {
        Some(kind @ ("product" | "offers")) => kind.to_owned(),
        Some(other) => {
            return bad_request(&format!(
                "The type parameter '{other}' is not supported (this simulator serves 'product' and 'offers')."
            ))
        }
        None => return bad_request("The type parameter is required."),
    };
    let domain = params
        .get("amazon_domain")
        .map(String::as_str)
        .unwrap_or("");
    if domain != "amazon.com" {
        return bad_request(&format!(
            "The amazon_domain parameter '{domain}' is not supported."
        ));
    }
    let Some(identifier) = identifier else {
        return bad_request("One of the asin, gtin or url parameters is required.");
    };
    let offers = match lookup(API, &identifier) {
        Lookup::Invalid => {
            return bad_request(&format!(
                "The value '{identifier}' is not a valid GTIN or ASIN."
            ))
        }
        Lookup::NotFound => Vec::new(),
        Lookup::Offers(offers) => offers,
    };
    let used = apis.admitted(API);
    let limit = if settings.request_limit > 0 {
        settings.request_limit
    } else {
        NOMINAL_CREDITS
    };
    let asin = rainforest_asin(&identifier);
    let id_name = if params.contains_key("gtin") {
        "gtin"
    } else {
        "asin"
    };
    let mut answer = json!({
        "request_info": {
            "success": !offers.is_empty(),
            "credits_used": used,
            "credits_used_this_request": 1,
            "credits_remaining": limit.saturating_sub(used),
        },
        "request_metadata": {
            "id": format!("{:016x}", fnv1a(&format!("{identifier}:{used}"))),
            "created_at": iso_now(),
            "processed_at": iso_now(),
            "total_time_taken": 0.1,
            "amazon_url": format!("https://www.amazon.com/dp/{asin}"),
        },
        "request_parameters": {"type": kind, "amazon_domain": domain, id_name: identifier},
    });
    apis.record(API, |s| {
        if offers.is_empty() {
            s.answers_without_offers += 1;
        } else {
            s.answers_with_offers += 1;
        }
    });
    if offers.is_empty() {
        answer["request_info"]["message"] = json!(format!(
            "No Amazon product was found for {id_name} '{identifier}' on amazon.com."
        ));
        return json(StatusCode::OK, answer);
    }
    let winner = best_new(&offers);
    let mut product = json!({
        "title": title_of(&identifier),
        "asin": asin,
        "link": format!("https://www.amazon.com/dp/{asin}"),
    });
    if let Some(winner) = winner {
        product["buybox_winner"] = json!({
            "offer_id": offer_id(winner),
            "is_prime": true,
            "condition": {"is_new": true},
            "price": price(winner.price_minor),
            "shipping": {"raw": "FREE"},
            "availability": {"type": "in_stock", "raw": "In Stock."},
            "fulfillment": {"type": "3p", "is_sold_by_amazon": false, "third_party_seller": {"name": winner.seller}},
        });
    }
    answer["product"] = product;
    if kind == "offers" {
        let listed: Vec<Value> = offers
            .iter()
            .map(|offer| {
                json!({
                    "offer_id": offer_id(offer),
                    "price": price(offer.price_minor),
                    "condition": {
                        "is_new": offer.condition == Condition::New,
                        "title": match offer.condition {
                            Condition::New => "New",
                            Condition::Used => "Used - Good",
                            Condition::Refurbished => "Renewed",
                        },
                    },
                    "delivery": {"fulfilled_by_amazon": false, "comments": "FREE delivery"},
                    "seller": {"name": offer.seller, "id": format!("A{:013}", offer.id)},
                    "buybox_winner": winner.is_some_and(|w| w.id == offer.id),
                })
            })
            .collect();
        answer["offers"] = Value::Array(listed);
    }
    json(StatusCode::OK, answer)
}

fn offer_id(offer: &SimOffer) -> String {
    format!("{:016x}", fnv1a(&format!("offer:{}", offer.id)))
}

#[cfg(test)]
mod tests {

    use serde_json::{json, Value};

    use super::super::api::Api;
    use super::super::control;
    use super::super::offers::{expected_best, lookup, Lookup};
    use super::super::test_support::{serve, upc};

    async fn request(base: &str, key: &str, kind: &str, gtin: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{base}/rainforest/request"))
            .query(&[
                ("api_key", key),
                ("type", kind),
                ("amazon_domain", "amazon.com"),
                ("gtin", gtin),
            ])
            .send()
            .await
            .unwrap()
    }

    const KEY: &str = "sim-rainforest-api-key";

    #[tokio::test]
    async fn products_offers_and_not_found() {
        let (_simulator, base) = serve(control::beside(super::routes())).await;
        let found = (0..)
            .map(upc)
            .find(|u| expected_best(Api::Rainforest, u).is_some())
            .unwrap();
        let best = expected_best(Api::Rainforest, &found).unwrap();
        let body: Value = request(&base, KEY, "product", &found)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["request_info"]["success"], true);
        let winner = &body["product"]["buybox_winner"];
        assert_eq!(
            (winner["price"]["value"].as_f64().unwrap() * 100.0).round() as u64,
            best.total_minor
        );
        assert_eq!(winner["price"]["currency"], "USD");
        assert_eq!(body["product"]["link"], best.url);

        let offers: Value = request(&base, KEY, "offers", &found)
            .await
            .json()
            .await
            .unwrap();
        assert!(!offers["offers"].as_array().unwrap().is_empty());

        let missing = (0..)
            .map(upc)
            .find(|u| lookup(Api::Rainforest, u) == Lookup::NotFound)
            .unwrap();
        let none = request(&base, KEY, "product", &missing).await;
        assert_eq!(none.status(), 200);
        let body: Value = none.json().await.unwrap();
        assert_eq!(body["request_info"]["success"], false);
        assert!(body.get("product").is_none());

        assert_eq!(
            request(&base, "nope", "product", &found).await.status(),
            401
        );
        assert_eq!(request(&base, KEY, "product", "123").await.status(), 400);
        assert_eq!(request(&base, KEY, "search", &found).await.status(), 400);
    }

    #[tokio::test]
    async fn credits_run_out() {
        let (_simulator, base) = serve(control::beside(super::routes())).await;
        reqwest::Client::new()
            .put(format!("{base}/_sim/apis/rainforest"))
            .json(&json!({"request_limit": 1}))
            .send()
            .await
            .unwrap();
        let first: Value = request(&base, KEY, "product", &upc(2))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(first["request_info"]["credits_remaining"], 0);
        assert_eq!(request(&base, KEY, "product", &upc(2)).await.status(), 402);
    }
}
