//! Amazon Creators API (the successor of PA-API 5): `getItems` by ASIN, with OAuth2 client credentials.
//!
//! The Creators API's own pages (affiliate-program.amazon.com/creatorsapi/docs) could not be read: the
//! shapes here follow Amazon's official Node SDK for it (`creatorsapi-nodejs-sdk`: endpoints, headers,
//! camelCase models, error models), which is plausible but not checked against the live service. HTTP
//! statuses of the error models and the not-found codes are not in the SDK: 401 / 400 / 429 and
//! PA-API 5's `InvalidParameterValue` / `ItemNotAccessible` are assumed.
//!
//! Tokens (both issue tokens valid for getItems, for `token_ttl_secs`):
//! - `POST /amazon/auth/o2/token` (Login with Amazon, credential versions 3.x; real
//!   `https://api.amazon.com/auth/o2/token`): JSON body `{"grant_type":"client_credentials",
//!   "client_id","client_secret","scope":"creatorsapi::default"}` → 200 `{"access_token":"Atc|…",
//!   "token_type":"bearer","expires_in":3600}`; 401 `{"error":"invalid_client","error_description":
//!   "Client authentication failed"}`; 400 `invalid_request`, `unsupported_grant_type`, `invalid_scope`.
//! - `POST /amazon/oauth2/token` (Cognito, versions 2.x; real
//!   `https://creatorsapi.auth.<region>.amazoncognito.com/oauth2/token`): form body with the same fields
//!   (or `Authorization: Basic`) and `scope=creatorsapi/default` → 200 `{"access_token","expires_in",
//!   "token_type":"Bearer"}`; 400 `{"error":"invalid_client"}` (Cognito's form).
//!
//! `POST /amazon/catalog/v1/getItems` (real `https://creatorsapi.amazon/catalog/v1/getItems`),
//! `Authorization: Bearer <token>` (optionally `, Version 2.1`), `x-marketplace: www.amazon.com` (the only
//! marketplace simulated), body `{"partnerTag","itemIds":[ASIN, …≤10],"resources":[…]}`:
//! - 200 `{"itemsResult":{"items":[{"asin","detailPageURL","itemInfo":{"title":{"displayValue"}},
//!   "offersV2":{"listings":[{"price":{"money":{"amount":12.34,"currency":"USD","displayAmount":"$12.34"}},
//!   "condition":{"value":"New","subCondition":"New"},"merchantInfo":{"name","id"},"availability":{…},
//!   "isBuyBoxWinner":true}]}}]},"errors":[{"code","message"}]}`. `money.amount` is a JSON number; no
//!   shipping cost exists in OffersV2. Only the requested resources are returned (`itemInfo.title`,
//!   `offersV2.listings.price`, `.condition`, `.merchantInfo`, `.availability`, `.isBuyBoxWinner`); the
//!   buy box winner is the cheapest new listing. Conditions: `"New"`, `"Used"`, `"Refurbished"`.
//! - Per ASIN, inside the 200: an invalid ASIN gives the error `InvalidParameterValue`, one without
//!   offers `ItemNotAccessible` (and no item); `itemsResult` is absent when no item is left.
//! - 401 `{"type":"UnauthorizedException","message","reason"}` with reason `MissingCredential`,
//!   `InvalidToken` (unknown) or `TokenExpired`; 400 `{"type":"ValidationException","message","reason",
//!   "fieldList"}` with reason `CannotParse`, `InvalidPartnerTag` or `FieldValidationFailed` (no or
//!   another marketplace, no or too many itemIds); 429 `{"type":"ThrottleException","message",
//!   "serviceCode","quotaCode"}` over the limits.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Json;
use axum::Router;
use serde_json::{json, Map, Value};

use super::api::Api;
use super::common::{basic_credentials, delay, json, note_request};
use super::offers::{best_new, decimal, lookup, number, title_of, Condition, Lookup};
use super::state::{Admission, TokenCheck};
use crate::simulator::Simulator;

const API: Api = Api::Amazon;
const MARKETPLACE: &str = "www.amazon.com";

/// Which token endpoint a request came to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    /// Login with Amazon (v3.x credentials).
    Lwa,
    /// Cognito (v2.x credentials).
    Cognito,
}

fn oauth_error(flavour: Flavour, status: StatusCode, error: &str, description: &str) -> Response {
    match flavour {
        Flavour::Lwa => json(
            status,
            json!({"error": error, "error_description": description}),
        ),
        Flavour::Cognito => json(StatusCode::BAD_REQUEST, json!({"error": error})),
    }
}

fn mint(
    simulator: &Simulator,
    flavour: Flavour,
    fields: Option<HashMap<String, String>>,
    basic: Option<(String, String)>,
) -> Response {
    let apis = simulator.apis();
    let settings = apis.settings(API);
    let refuse = |status, error, description| {
        apis.record(API, |s| s.mint_refusals += 1);
        oauth_error(flavour, status, error, description)
    };
    let Some(fields) = fields else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request is missing a required parameter or is otherwise malformed.",
        );
    };
    let (id, secret) = match (fields.get("client_id"), fields.get("client_secret"), basic) {
        (Some(id), Some(secret), _) => (id.clone(), secret.clone()),
        (_, _, Some(pair)) => pair,
        _ => (String::new(), String::new()),
    };
    if id != settings.client_id || secret != settings.client_secret {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    match fields.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.",
            )
        }
        None => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request is missing a required parameter: grant_type.",
            )
        }
    }
    let scope = match flavour {
        Flavour::Lwa => "creatorsapi::default",
        Flavour::Cognito => "creatorsapi/default",
    };
    if fields.get("scope").is_some_and(|given| given != scope) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The requested scope is invalid, unknown, or malformed.",
        );
    }
    let (prefix, token_type) = match flavour {
        Flavour::Lwa => ("Atc|", "bearer"),
        Flavour::Cognito => ("eyJraWQiOiJzaW0ifQ.", "Bearer"),
    };
    let (token, ttl) = apis.mint(API, prefix);
    json(
        StatusCode::OK,
        json!({"access_token": token, "token_type": token_type, "expires_in": ttl}),
    )
}

/// Strings of a JSON object's string members.
fn string_fields(value: &Value) -> Option<HashMap<String, String>> {
    Some(
        value
            .as_object()?
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect(),
    )
}

/// Amazon's routes: both token endpoints and getItems. Merged into [`super::routes`].
pub(crate) fn routes() -> Router<Arc<Simulator>> {
    Router::new()
        .route("/amazon/auth/o2/token", post(lwa_token))
        .route("/amazon/oauth2/token", post(cognito_token))
        .route("/amazon/catalog/v1/getItems", post(get_items))
}

/// `POST /amazon/auth/o2/token`: Login with Amazon, JSON body.
pub(crate) async fn lwa_token(
    State(simulator): State<Arc<Simulator>>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    simulator.apis().record(API, |s| s.token_requests += 1);
    delay(&simulator, API).await;
    let fields = body.ok().and_then(|Json(value)| string_fields(&value));
    mint(
        &simulator,
        Flavour::Lwa,
        fields,
        basic_credentials(&headers),
    )
}

/// `POST /amazon/oauth2/token`: Cognito, form body.
pub(crate) async fn cognito_token(
    State(simulator): State<Arc<Simulator>>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    simulator.apis().record(API, |s| s.token_requests += 1);
    delay(&simulator, API).await;
    let fields = form.ok().map(|Form(map)| map);
    mint(
        &simulator,
        Flavour::Cognito,
        fields,
        basic_credentials(&headers),
    )
}

fn unauthorized(message: &str, reason: &str) -> Response {
    json(
        StatusCode::UNAUTHORIZED,
        json!({"type": "UnauthorizedException", "message": message, "reason": reason}),
    )
}

fn validation(message: &str, reason: &str, field: Option<&str>) -> Response {
    let mut body = json!({"type": "ValidationException", "message": message, "reason": reason});
    if let Some(field) = field {
        body["fieldList"] = json!([{"name": field, "message": message}]);
    }
    json(StatusCode::BAD_REQUEST, body)
}

/// `POST /amazon/catalog/v1/getItems`.
pub(crate) async fn get_items(
    State(simulator): State<Arc<Simulator>>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let body = body.ok().map(|Json(value)| value);
    let item_ids: Option<Vec<String>> = body
        .as_ref()
        .and_then(|b| b.get("itemIds"))
        .and_then(Value::as_array)
        .and_then(|ids| {
            ids.iter()
                .map(|id| id.as_str().map(str::to_owned))
                .collect()
        });
    let identifiers: Vec<&str> = item_ids.iter().flatten().map(String::as_str).collect();
    note_request(&simulator, API, &identifiers, &headers);
    delay(&simulator, API).await;
    let apis = simulator.apis();
    let settings = apis.settings(API);

    let Some(authorization) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    else {
        apis.record(API, |s| s.missing_credential_refusals += 1);
        return unauthorized("Missing Authorization header.", "MissingCredential");
    };
    // "Bearer <token>" or "Bearer <token>, Version 2.1".
    let credential = authorization.split(',').next().unwrap_or("").trim();
    let token = match credential.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            apis.record(API, |s| s.missing_credential_refusals += 1);
            return unauthorized("Missing bearer token.", "MissingCredential");
        }
    };
    match apis.check_token(API, token) {
        TokenCheck::Valid => {}
        TokenCheck::Expired => {
            apis.record(API, |s| s.expired_token_refusals += 1);
            return unauthorized("The access token has expired.", "TokenExpired");
        }
        TokenCheck::Unknown => {
            apis.record(API, |s| s.unknown_token_refusals += 1);
            return unauthorized("The access token is invalid.", "InvalidToken");
        }
    }
    match apis.admit(API) {
        Admission::Admitted => {}
        over => {
            let quota = if over == Admission::OverRate {
                "TPS"
            } else {
                "TPD"
            };
            return json(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"type": "ThrottleException", "message": "Rate exceeded", "serviceCode": "creatorsapi", "quotaCode": quota}),
            );
        }
    }
    let bad_request = |response: Response| {
        apis.record(API, |s| s.bad_request_refusals += 1);
        response
    };
    match headers.get("x-marketplace").and_then(|v| v.to_str().ok()) {
        Some(MARKETPLACE) => {}
        Some(other) => {
            return bad_request(validation(
                &format!("The marketplace {other} is not supported."),
                "FieldValidationFailed",
                Some("x-marketplace"),
            ))
        }
        None => {
            return bad_request(validation(
                "The x-marketplace header is required.",
                "FieldValidationFailed",
                Some("x-marketplace"),
            ))
        }
    }
    let Some(body) = body.filter(Value::is_object) else {
        return bad_request(validation(
            "The request body could not be parsed.",
            "CannotParse",
            None,
        ));
    };
    let partner_tag = body.get("partnerTag").and_then(Value::as_str);
    if partner_tag != Some(settings.partner_tag.as_str()) {
        return bad_request(validation(
            "The partner tag is invalid or not mapped to this credential.",
            "InvalidPartnerTag",
            Some("partnerTag"),
        ));
    }
    let Some(item_ids) = item_ids.filter(|ids| (1..=10).contains(&ids.len())) else {
        return bad_request(validation(
            "itemIds must hold 1 to 10 item ids.",
            "FieldValidationFailed",
            Some("itemIds"),
        ));
    };
    let resources: Vec<&str> = body
        .get("resources")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let wants = |resource: &str| resources.contains(&resource);

    let mut items = Vec::new();
    let mut errors = Vec::new();
    for id in &item_ids {
        match lookup(API, id) {
            Lookup::Invalid => errors.push(json!({
                "code": "InvalidParameterValue",
                "message": format!("The ItemId {id} provided in the request is invalid."),
            })),
            Lookup::NotFound => errors.push(json!({
                "code": "ItemNotAccessible",
                "message": format!("The ItemId {id} is not accessible through the Creators API."),
            })),
            Lookup::Offers(offers) => {
                let winner = best_new(&offers).map(|offer| offer.id);
                let mut item = json!({
                    "asin": id,
                    "detailPageURL": format!(
                        "https://www.amazon.com/dp/{id}?tag={}&linkCode=ogi&th=1&psc=1",
                        settings.partner_tag
                    ),
                });
                if wants("itemInfo.title") {
                    item["itemInfo"] = json!({"title": {
                        "displayValue": title_of(id), "label": "Title", "locale": "en_US",
                    }});
                }
                if resources.iter().any(|r| r.starts_with("offersV2.")) {
                    let listings: Vec<Value> = offers
                        .iter()
                        .map(|offer| {
                            let mut listing = Map::new();
                            if wants("offersV2.listings.price") {
                                listing.insert(
                                    "price".into(),
                                    json!({"money": {
                                        "amount": number(offer.price_minor),
                                        "currency": API.currency(),
                                        "displayAmount": format!("${}", decimal(offer.price_minor)),
                                    }}),
                                );
                            }
                            if wants("offersV2.listings.condition") {
                                let (value, sub) = match offer.condition {
                                    Condition::New => ("New", "New"),
                                    Condition::Used => ("Used", "Good"),
                                    Condition::Refurbished => ("Refurbished", "Refurbished"),
                                };
                                listing.insert(
                                    "condition".into(),
                                    json!({"value": value, "subCondition": sub}),
                                );
                            }
                            if wants("offersV2.listings.merchantInfo") {
                                listing.insert(
                                    "merchantInfo".into(),
                                    json!({"name": offer.seller, "id": format!("A{:013}", offer.id)}),
                                );
                            }
                            if wants("offersV2.listings.availability") {
                                listing.insert(
                                    "availability".into(),
                                    json!({"type": "IN_STOCK", "message": "In Stock", "minOrderQuantity": 1, "maxOrderQuantity": 10}),
                                );
                            }
                            if wants("offersV2.listings.isBuyBoxWinner") {
                                listing.insert(
                                    "isBuyBoxWinner".into(),
                                    json!(Some(offer.id) == winner),
                                );
                            }
                            Value::Object(listing)
                        })
                        .collect();
                    item["offersV2"] = json!({"listings": listings});
                }
                items.push(item);
            }
        }
    }
    apis.record(API, |s| {
        if items.is_empty() {
            s.answers_without_offers += 1;
        } else {
            s.answers_with_offers += 1;
        }
    });
    let mut answer = json!({});
    if !items.is_empty() {
        answer["itemsResult"] = json!({"items": items});
    }
    if !errors.is_empty() {
        answer["errors"] = Value::Array(errors);
    }
    json(StatusCode::OK, answer)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{json, Value};

    use super::super::api::Api;
    use super::super::control;
    use super::super::offers::{expected_best, lookup, Lookup};
    use super::super::test_support::serve;

    const RESOURCES: [&str; 3] = [
        "itemInfo.title",
        "offersV2.listings.price",
        "offersV2.listings.condition",
    ];

    async fn lwa(base: &str, secret: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{base}/amazon/auth/o2/token"))
            .json(&json!({
                "grant_type": "client_credentials",
                "client_id": "sim-amazon-credential-id",
                "client_secret": secret,
                "scope": "creatorsapi::default",
            }))
            .send()
            .await
            .unwrap()
    }

    async fn get_items(base: &str, token: &str, ids: &[&str]) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{base}/amazon/catalog/v1/getItems"))
            .header("Authorization", format!("Bearer {token}, Version 3.1"))
            .header("x-marketplace", "www.amazon.com")
            .json(&json!({"partnerTag": "pricefront-20", "itemIds": ids, "resources": RESOURCES}))
            .send()
            .await
            .unwrap()
    }

    fn asin(n: u64) -> String {
        format!("B0{n:08}")
    }

    #[tokio::test]
    async fn items_offers_and_not_found() {
        let (_simulator, base) = serve(control::beside(super::routes())).await;
        assert_eq!(lwa(&base, "wrong").await.status(), 401);
        let minted: Value = lwa(&base, "sim-amazon-credential-secret")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(minted["expires_in"], 3600);
        let token = minted["access_token"].as_str().unwrap();

        let found = (0..)
            .map(asin)
            .find(|a| expected_best(Api::Amazon, a).is_some())
            .unwrap();
        let missing = (0..)
            .map(asin)
            .find(|a| lookup(Api::Amazon, a) == Lookup::NotFound)
            .unwrap();
        let answer = get_items(&base, token, &[&found, &missing, "bad"]).await;
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.unwrap();
        let items = body["itemsResult"]["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        let best = expected_best(Api::Amazon, &found).unwrap();
        assert_eq!(items[0]["detailPageURL"], best.url);
        let cheapest = items[0]["offersV2"]["listings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["condition"]["value"] == "New")
            .map(|l| (l["price"]["money"]["amount"].as_f64().unwrap() * 100.0).round() as u64)
            .min()
            .unwrap();
        assert_eq!(cheapest, best.total_minor);
        let codes: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["ItemNotAccessible", "InvalidParameterValue"]);

        let only_missing: Value = get_items(&base, token, &[&missing])
            .await
            .json()
            .await
            .unwrap();
        assert!(only_missing.get("itemsResult").is_none());
    }

    #[tokio::test]
    async fn cognito_tokens_expire() {
        let (_simulator, base) = serve(control::beside(super::routes())).await;
        let client = reqwest::Client::new();
        client
            .put(format!("{base}/_sim/apis/amazon"))
            .json(&json!({"token_ttl_secs": 1}))
            .send()
            .await
            .unwrap();
        let minted: Value = client
            .post(format!("{base}/amazon/oauth2/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "sim-amazon-credential-id"),
                ("client_secret", "sim-amazon-credential-secret"),
                ("scope", "creatorsapi/default"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = minted["access_token"].as_str().unwrap();
        assert_eq!(get_items(&base, token, &[&asin(1)]).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let expired = get_items(&base, token, &[&asin(1)]).await;
        assert_eq!(expired.status(), 401);
        let body: Value = expired.json().await.unwrap();
        assert_eq!(body["reason"], "TokenExpired");
        let unknown: Value = get_items(&base, "nope", &[&asin(1)])
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(unknown["reason"], "InvalidToken");
    }
}
