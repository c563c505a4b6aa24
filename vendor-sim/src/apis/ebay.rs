//! eBay Buy Browse API, searched by GTIN, with an OAuth2 application token.
//!
//! Documented at developer.ebay.com (`api-docs/buy/browse/resources/item_summary/methods/search`,
//! `api-docs/static/oauth-client-credentials-grant.html`, `develop/api/sell/error_codes`).
//!
//! `POST /ebay/identity/v1/oauth2/token` (real: `https://api.ebay.com/identity/v1/oauth2/token`):
//! `Authorization: Basic base64(client_id:client_secret)`, form body
//! `grant_type=client_credentials&scope=https://api.ebay.com/oauth/api_scope` (scope optional here).
//! - 200 `{"access_token":"v^1.1#…","expires_in":<token_ttl_secs>,"token_type":"Application Access Token"}`
//! - 401 `{"error":"invalid_client","error_description":"client authentication failed"}` for a missing
//!   or wrong id or secret; 400 `invalid_request` (no form, no `grant_type`), `unsupported_grant_type`,
//!   `invalid_scope`.
//!
//! `GET /ebay/buy/browse/v1/item_summary/search?gtin=…[&limit=50&offset=0]` (real:
//! `https://api.ebay.com/buy/browse/v1/item_summary/search`), `Authorization: Bearer <token>`,
//! optional `X-EBAY-C-MARKETPLACE-ID` (any value accepted; prices are always USD):
//! - 200 `{"href","total","limit","offset","itemSummaries":[{"itemId","title","legacyItemId",
//!   "price":{"value":"12.34","currency":"USD"},"condition":"New","conditionId":"1000",
//!   "shippingOptions":[{"shippingCostType":"FIXED","shippingCost":{"value":"0.00","currency":"USD"}}],
//!   "buyingOptions":["FIXED_PRICE"],"itemHref","itemWebUrl","seller":{…},"itemLocation":{…}}]}`.
//!   `price.value` and `shippingCost.value` are decimal strings. Conditions: `"New"`/`"1000"`,
//!   `"Used"`/`"3000"`, `"Seller refurbished"`/`"2500"`. One shipping option per item.
//! - Not found: 200 with `"total":0` and no `itemSummaries` member.
//! - `{"errors":[{"errorId","domain","category","message","longMessage"}]}`: 401 errorId 1001 "Invalid
//!   access token" for an unknown **or expired** token (eBay does not tell them apart; the stats do);
//!   400 errorId 1002 "Missing access token", 1003 for another scheme than `Bearer`; 429 errorId 2001
//!   "Too many requests" over the limits; 400 errorId 12001 without `gtin` and 12006 for an invalid
//!   GTIN (these two Browse error ids are not documented: guessed).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::api::Api;
use super::common::{basic_credentials, delay, json, note_request, number_param, params};
use super::offers::{decimal, lookup, title_of, Condition, Lookup};
use super::state::{Admission, TokenCheck};
use crate::simulator::Simulator;

const API: Api = Api::Ebay;
const SCOPE: &str = "https://api.ebay.com/oauth/api_scope";

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json(
        status,
        json!({"error": error, "error_description": description}),
    )
}

/// eBay's routes: the token endpoint and item summary search. Merged into [`super::routes`].
pub(crate) fn routes() -> Router<Arc<Simulator>> {
    Router::new()
        .route("/ebay/identity/v1/oauth2/token", post(token))
        .route("/ebay/buy/browse/v1/item_summary/search", get(search))
}

/// `POST /ebay/identity/v1/oauth2/token`: the client credentials grant.
pub(crate) async fn token(
    State(simulator): State<Arc<Simulator>>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let apis = simulator.apis();
    apis.record(API, |s| s.token_requests += 1);
    delay(&simulator, API).await;
    let settings = apis.settings(API);
    let refuse = |status, error, description| {
        apis.record(API, |s| s.mint_refusals += 1);
        oauth_error(status, error, description)
    };
    match basic_credentials(&headers) {
        Some((id, secret)) if id == settings.client_id && secret == settings.client_secret => {}
        _ => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            )
        }
    }
    let Ok(Form(form)) = form else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "request is missing a required parameter or malformed.",
        );
    };
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant type in request is not supported by the authorization server",
            )
        }
        None => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "request is missing a required parameter or malformed.",
            )
        }
    }
    if let Some(scope) = form.get("scope") {
        let valid = scope
            .split_whitespace()
            .all(|s| s == SCOPE || s.starts_with(&format!("{SCOPE}/")));
        if !valid || scope.trim().is_empty() {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "The requested scope is invalid, unknown, malformed, or exceeds the scope granted to the client",
            );
        }
    }
    let (token, ttl) = apis.mint(API, "v^1.1#i^1#p^1#r^0#I^3#f^0#t^");
    json(
        StatusCode::OK,
        json!({"access_token": token, "expires_in": ttl, "token_type": "Application Access Token"}),
    )
}

fn error(status: StatusCode, id: u32, domain: &str, message: &str, long: &str) -> Response {
    json(
        status,
        json!({"errors": [{
            "errorId": id,
            "domain": domain,
            "category": "REQUEST",
            "message": message,
            "longMessage": long,
        }]}),
    )
}

fn invalid_token() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        1001,
        "OAuth",
        "Invalid access token",
        "Invalid access token. Check the value of the Authorization HTTP request header.",
    )
}

/// `GET /ebay/buy/browse/v1/item_summary/search`.
pub(crate) async fn search(
    State(simulator): State<Arc<Simulator>>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let params = params(query);
    let gtin = params.get("gtin").cloned();
    let identifiers: Vec<&str> = gtin.iter().map(String::as_str).collect();
    note_request(&simulator, API, &identifiers, &headers);
    delay(&simulator, API).await;
    let apis = simulator.apis();
    let Some(authorization) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    else {
        apis.record(API, |s| s.missing_credential_refusals += 1);
        return error(
            StatusCode::BAD_REQUEST,
            1002,
            "OAuth",
            "Missing access token",
            "Access token is missing in the Authorization HTTP request header.",
        );
    };
    let (scheme, token) = authorization.split_once(' ').unwrap_or((authorization, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        apis.record(API, |s| s.missing_credential_refusals += 1);
        let message = format!("Token type in the Authorization header is invalid:{scheme}");
        return error(StatusCode::BAD_REQUEST, 1003, "OAuth", &message, &message);
    }
    match apis.check_token(API, token.trim()) {
        TokenCheck::Valid => {}
        TokenCheck::Expired => {
            apis.record(API, |s| s.expired_token_refusals += 1);
            return invalid_token();
        }
        TokenCheck::Unknown => {
            apis.record(API, |s| s.unknown_token_refusals += 1);
            return invalid_token();
        }
    }
    if apis.admit(API) != Admission::Admitted {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            2001,
            "ACCESS",
            "Too many requests",
            "The request limit has been reached for the resource.",
        );
    }
    let Some(gtin) = gtin else {
        apis.record(API, |s| s.bad_request_refusals += 1);
        return error(
            StatusCode::BAD_REQUEST,
            12001,
            "API_BROWSE",
            "The call must have a valid 'q', 'category_ids', 'epid', 'gtin' or 'charity_ids' query parameter.",
            "The call must have a valid 'q', 'category_ids', 'epid', 'gtin' or 'charity_ids' query parameter.",
        );
    };
    let limit = number_param(&params, "limit", 50).clamp(1, 200);
    let offset = number_param(&params, "offset", 0).min(10_000);
    let offers = match lookup(API, &gtin) {
        Lookup::Invalid => {
            apis.record(API, |s| s.bad_request_refusals += 1);
            let message = format!("The 'gtin' value {gtin} is invalid.");
            return error(
                StatusCode::BAD_REQUEST,
                12006,
                "API_BROWSE",
                &message,
                &message,
            );
        }
        Lookup::NotFound => Vec::new(),
        Lookup::Offers(offers) => offers,
    };
    let href = |offset: usize| {
        format!("https://api.ebay.com/buy/browse/v1/item_summary/search?gtin={gtin}&limit={limit}&offset={offset}")
    };
    let mut body = json!({
        "href": href(offset),
        "total": offers.len(),
        "limit": limit,
        "offset": offset,
    });
    if offset + limit < offers.len() {
        body["next"] = json!(href(offset + limit));
    }
    let page: Vec<Value> = offers
        .iter()
        .skip(offset)
        .take(limit)
        .map(|offer| {
            let (condition, condition_id) = match offer.condition {
                Condition::New => ("New", "1000"),
                Condition::Used => ("Used", "3000"),
                Condition::Refurbished => ("Seller refurbished", "2500"),
            };
            let item_id = format!("v1|{}|0", offer.id);
            json!({
                "itemId": item_id,
                "title": title_of(&gtin),
                "legacyItemId": offer.id.to_string(),
                "price": {"value": decimal(offer.price_minor), "currency": API.currency()},
                "condition": condition,
                "conditionId": condition_id,
                "shippingOptions": [{
                    "shippingCostType": "FIXED",
                    "shippingCost": {
                        "value": decimal(offer.shipping_minor.unwrap_or(0)),
                        "currency": API.currency(),
                    },
                }],
                "buyingOptions": ["FIXED_PRICE"],
                "itemHref": format!("https://api.ebay.com/buy/browse/v1/item/v1%7C{}%7C0", offer.id),
                "itemWebUrl": offer.url,
                "seller": {
                    "username": offer.seller,
                    "feedbackPercentage": "99.2",
                    "feedbackScore": 100 + offer.id % 20_000,
                },
                "itemLocation": {"country": "US"},
            })
        })
        .collect();
    if !page.is_empty() {
        body["itemSummaries"] = Value::Array(page);
    }
    apis.record(API, |s| {
        if offers.is_empty() {
            s.answers_without_offers += 1;
        } else {
            s.answers_with_offers += 1;
        }
    });
    json(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{json, Value};

    use super::super::api::Api;
    use super::super::control;
    use super::super::offers::{expected_best, lookup, Lookup};
    use super::super::test_support::{serve, upc};

    const TOKEN_URL: &str = "/ebay/identity/v1/oauth2/token";
    const SEARCH_URL: &str = "/ebay/buy/browse/v1/item_summary/search";

    async fn mint(base: &str, id: &str, secret: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{base}{TOKEN_URL}"))
            .basic_auth(id, Some(secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "https://api.ebay.com/oauth/api_scope"),
            ])
            .send()
            .await
            .unwrap()
    }

    async fn search(base: &str, token: &str, gtin: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{base}{SEARCH_URL}"))
            .query(&[("gtin", gtin)])
            .bearer_auth(token)
            .header("X-EBAY-C-MARKETPLACE-ID", "EBAY_US")
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .send()
            .await
            .unwrap()
    }

    fn found_gtin() -> String {
        (0..)
            .map(upc)
            .find(|g| expected_best(Api::Ebay, g).is_some())
            .unwrap()
    }

    #[tokio::test]
    async fn tokens_are_minted_expire_and_are_reminted() {
        let (simulator, base) = serve(control::beside(super::routes())).await;
        let client = reqwest::Client::new();
        client
            .put(format!("{base}/_sim/apis/ebay"))
            .json(&json!({"token_ttl_secs": 1}))
            .send()
            .await
            .unwrap();
        let wrong = mint(&base, "sim-ebay-client-id", "wrong").await;
        assert_eq!(wrong.status(), 401);
        let body: Value = wrong.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");

        let minted: Value = mint(&base, "sim-ebay-client-id", "sim-ebay-client-secret")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(minted["expires_in"], 1);
        assert_eq!(minted["token_type"], "Application Access Token");
        let token = minted["access_token"].as_str().unwrap().to_owned();
        let gtin = found_gtin();
        assert_eq!(search(&base, &token, &gtin).await.status(), 200);

        tokio::time::sleep(Duration::from_millis(1100)).await;
        let expired = search(&base, &token, &gtin).await;
        assert_eq!(expired.status(), 401);
        let body: Value = expired.json().await.unwrap();
        assert_eq!(body["errors"][0]["errorId"], 1001);
        assert_eq!(search(&base, "made-up", &gtin).await.status(), 401);

        let again: Value = mint(&base, "sim-ebay-client-id", "sim-ebay-client-secret")
            .await
            .json()
            .await
            .unwrap();
        let token = again["access_token"].as_str().unwrap();
        assert_eq!(search(&base, token, &gtin).await.status(), 200);

        let stats: Value = client
            .get(format!("{base}/_sim/apis/ebay/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats["tokens_minted"], 2);
        assert_eq!(stats["mint_refusals"], 1);
        assert_eq!(stats["expired_token_refusals"], 1);
        assert_eq!(stats["unknown_token_refusals"], 1);
        assert_eq!(stats["requests"], 4);
        assert_eq!(simulator.request_counts()["ebay"], 4);
        assert_eq!(simulator.traceparents_of(&gtin).len(), 4);
    }

    #[tokio::test]
    async fn searches_answer_offers_and_empty_results() {
        let (_simulator, base) = serve(control::beside(super::routes())).await;
        let minted: Value = mint(&base, "sim-ebay-client-id", "sim-ebay-client-secret")
            .await
            .json()
            .await
            .unwrap();
        let token = minted["access_token"].as_str().unwrap();

        let gtin = found_gtin();
        let body: Value = search(&base, token, &gtin).await.json().await.unwrap();
        let items = body["itemSummaries"].as_array().unwrap();
        assert_eq!(body["total"], items.len());
        assert!(items[0]["price"]["value"].is_string());
        let best = expected_best(Api::Ebay, &gtin).unwrap();
        let cheapest_new = items
            .iter()
            .filter(|item| item["conditionId"] == "1000")
            .map(|item| {
                let cents = |v: &Value| {
                    (v.as_str().unwrap().parse::<f64>().unwrap() * 100.0).round() as u64
                };
                (
                    cents(&item["price"]["value"])
                        + cents(&item["shippingOptions"][0]["shippingCost"]["value"]),
                    item["itemWebUrl"].as_str().unwrap().to_owned(),
                )
            })
            .min()
            .unwrap();
        assert_eq!(cheapest_new, (best.total_minor, best.url));

        let missing = (0..)
            .map(upc)
            .find(|g| lookup(Api::Ebay, g) == Lookup::NotFound)
            .unwrap();
        let empty = search(&base, token, &missing).await;
        assert_eq!(empty.status(), 200);
        let body: Value = empty.json().await.unwrap();
        assert_eq!(body["total"], 0);
        assert!(body.get("itemSummaries").is_none());

        let invalid = search(&base, token, "12345").await;
        assert_eq!(invalid.status(), 400);
    }
}
