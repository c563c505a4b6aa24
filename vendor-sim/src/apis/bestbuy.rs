//! Best Buy Products API, searched by UPC, with an API key and a quota.
//!
//! Documented at bestbuyapis.github.io/api-documentation and developer.bestbuy.com/documentation.
//!
//! `GET /bestbuy/v1/products(upc=012345678905)?apiKey=…&format=json&show=sku,name,salePrice,url,condition`
//! (real: `https://api.bestbuy.com/v1/products(upc=…)`). The selector is parsed as Best Buy writes it:
//! terms joined by `&` or `|`, values optionally in double quotes; the `upc=` term is the identifier
//! (other terms are ignored). `format` other than `json` gets XML (`<products …><product>…`), as
//! Best Buy's default. `show` picks attributes (`all` or absent: every simulated one), `pageSize`
//! (default 10, at most 100) and `page` page the products.
//! - 200 `{"from","to","currentPage","total","totalPages","queryTime","totalTime","partial",
//!   "canonicalUrl","products":[{"sku":1234567,"name","upc","salePrice":199.99,"regularPrice",
//!   "url":"https://api.bestbuy.com/click/-/<sku>/pdp","condition":"New","shippingCost":0,
//!   "freeShipping":true,"onlineAvailability":true}]}`: `sku`, `salePrice`, `regularPrice` and
//!   `shippingCost` are JSON numbers (USD); `condition` is `"New"`, `"Refurbished"` or `"Pre-Owned"`.
//! - Not found, or a UPC that is no valid GTIN: 200 with `"total":0` and `"products":[]` (a search that
//!   finds nothing).
//! - 403 in Best Buy's (Mashery) gateway form, `Content-Type: text/xml`: `<h1>Developer Inactive</h1>`
//!   for a missing or wrong `apiKey` (`X-Mashery-Error-Code: ERR_403_DEVELOPER_INACTIVE`),
//!   `<h1>Developer Over Qps</h1>` over `max_requests_per_second` (`ERR_403_DEVELOPER_OVER_QPS`),
//!   `<h1>Developer Over Rate</h1>` over `request_limit` (`ERR_403_DEVELOPER_OVER_RATE`). Whether
//!   today's gateway still answers exactly so is not documented.
//! - 400 `{"error":{"code":400,"status":"400 Bad Request","message":"Couldn't understand …"}}` for a
//!   selector that is not `products(…upc=…)` (the body form is not documented: guessed).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use super::api::Api;
use super::common::{delay, json, note_request, number_param, params};
use super::offers::{lookup, number, title_of, Condition, Lookup};
use super::state::Admission;
use crate::simulator::Simulator;

const API: Api = Api::BestBuy;

/// Every attribute a simulated product has, in Best Buy's names and in order.
const ATTRIBUTES: [&str; 10] = [
    "sku",
    "name",
    "upc",
    "salePrice",
    "regularPrice",
    "url",
    "condition",
    "shippingCost",
    "freeShipping",
    "onlineAvailability",
];

/// The UPC of a `products(…)` selector, or `None` when it is not one.
pub(crate) fn upc_of(selector: &str) -> Option<String> {
    let inner = selector.strip_prefix("products(")?.strip_suffix(')')?;
    inner
        .split(['&', '|'])
        .filter_map(|term| term.split_once('='))
        .find(|(name, _)| name.trim() == "upc")
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
}

fn mashery(code: &str, detail: &str, text: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [
            (header::CONTENT_TYPE, "text/xml"),
            (
                header::HeaderName::from_static("x-mashery-error-code"),
                code,
            ),
            (
                header::HeaderName::from_static("x-error-detail-header"),
                detail,
            ),
        ],
        format!("<h1>{text}</h1>"),
    )
        .into_response()
}

/// Best Buy's route: the products query. Merged into [`super::routes`].
pub(crate) fn routes() -> Router<Arc<Simulator>> {
    Router::new().route("/bestbuy/v1/{selector}", get(products))
}

/// `GET /bestbuy/v1/{selector}`.
pub(crate) async fn products(
    State(simulator): State<Arc<Simulator>>,
    selector: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let params = params(query);
    let selector = selector.map(|Path(s)| s).unwrap_or_default();
    let upc = upc_of(&selector);
    let identifiers: Vec<&str> = upc.iter().map(String::as_str).collect();
    note_request(&simulator, API, &identifiers, &headers);
    delay(&simulator, API).await;
    let apis = simulator.apis();
    let settings = apis.settings(API);
    match params.get("apiKey") {
        Some(key) if *key == settings.api_key => {}
        given => {
            apis.record(API, |s| {
                if given.is_none() {
                    s.missing_credential_refusals += 1;
                } else {
                    s.bad_key_refusals += 1;
                }
            });
            return mashery(
                "ERR_403_DEVELOPER_INACTIVE",
                "Account Inactive",
                "Developer Inactive",
            );
        }
    }
    match apis.admit(API) {
        Admission::Admitted => {}
        Admission::OverRate => {
            return mashery(
                "ERR_403_DEVELOPER_OVER_QPS",
                "Account Over Queries Per Second Limit",
                "Developer Over Qps",
            )
        }
        Admission::OverLimit => {
            return mashery(
                "ERR_403_DEVELOPER_OVER_RATE",
                "Account Over Rate Limit",
                "Developer Over Rate",
            )
        }
    }
    let Some(upc) = upc else {
        apis.record(API, |s| s.bad_request_refusals += 1);
        return json(
            StatusCode::BAD_REQUEST,
            json!({"error": {
                "code": 400,
                "status": "400 Bad Request",
                "message": format!("Couldn't understand '/v1/{selector}'"),
            }}),
        );
    };
    let offers = match lookup(API, &upc) {
        Lookup::Offers(offers) => offers,
        Lookup::Invalid | Lookup::NotFound => Vec::new(),
    };
    apis.record(API, |s| {
        if offers.is_empty() {
            s.answers_without_offers += 1;
        } else {
            s.answers_with_offers += 1;
        }
    });

    let shown: Vec<&str> = match params.get("show").map(String::as_str) {
        None | Some("all") => ATTRIBUTES.to_vec(),
        Some(list) => ATTRIBUTES
            .iter()
            .copied()
            .filter(|attribute| list.split(',').any(|s| s.trim() == *attribute))
            .collect(),
    };
    let page_size = number_param(&params, "pageSize", 10).clamp(1, 100);
    let page = number_param(&params, "page", 1).max(1);
    let total = offers.len();
    let total_pages = total.div_ceil(page_size);
    let start = (page - 1).saturating_mul(page_size).min(total);
    let end = (start + page_size).min(total);
    let products: Vec<Map<String, Value>> = offers[start..end]
        .iter()
        .map(|offer| {
            let shipping = offer.shipping_minor.unwrap_or(0);
            let regular = offer.price_minor + offer.price_minor / 10;
            let all = [
                ("sku", json!(offer.id)),
                ("name", json!(title_of(&upc))),
                ("upc", json!(upc)),
                ("salePrice", number(offer.price_minor)),
                ("regularPrice", number(regular)),
                ("url", json!(offer.url)),
                (
                    "condition",
                    json!(match offer.condition {
                        Condition::New => "New",
                        Condition::Refurbished => "Refurbished",
                        Condition::Used => "Pre-Owned",
                    }),
                ),
                ("shippingCost", number(shipping)),
                ("freeShipping", json!(shipping == 0)),
                ("onlineAvailability", json!(true)),
            ];
            all.into_iter()
                .filter(|(name, _)| shown.contains(name))
                .map(|(name, value)| (name.to_owned(), value))
                .collect()
        })
        .collect();

    let format = params.get("format").map(String::as_str).unwrap_or("xml");
    let mut canonical = format!("/v1/products(upc=\"{upc}\")?format={format}");
    if let Some(show) = params.get("show") {
        canonical.push_str(&format!("&show={show}"));
    }
    canonical.push_str(&format!("&apiKey={}", settings.api_key));
    let (from, to) = if start < end {
        (start + 1, end)
    } else {
        (0, 0)
    };
    if format != "json" {
        return xml(&products, [from, to, page, total, total_pages]);
    }
    json(
        StatusCode::OK,
        json!({
            "from": from,
            "to": to,
            "currentPage": page,
            "total": total,
            "totalPages": total_pages,
            "queryTime": "0.004",
            "totalTime": "0.011",
            "partial": false,
            "canonicalUrl": canonical,
            "products": products,
        }),
    )
}

/// The XML form of a products answer.
fn xml(products: &[Map<String, Value>], [from, to, page, total, pages]: [usize; 5]) -> Response {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<products currentPage=\"{page}\" totalPages=\"{pages}\" from=\"{from}\" to=\"{to}\" total=\"{total}\" queryTime=\"0.004\" totalTime=\"0.011\" partial=\"false\">"
    );
    for product in products {
        body.push_str("<product>");
        for (name, value) in product {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            body.push_str(&format!("<{name}>{}</{name}>", escape(&text)));
        }
        body.push_str("</product>");
    }
    body.push_str("</products>");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml;charset=UTF-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {

    use serde_json::{json, Value};

    use super::super::api::Api;
    use super::super::control;
    use super::super::offers::{expected_best, lookup, Lookup};
    use super::super::test_support::{serve, upc};
    use super::upc_of;

    const KEY: &str = "sim-bestbuy-api-key";

    async fn products(base: &str, upc: &str, key: &str) -> reqwest::Response {
        reqwest::get(format!(
            "{base}/bestbuy/v1/products(upc={upc})?apiKey={key}&format=json&show=sku,name,salePrice,url,condition,shippingCost"
        ))
        .await
        .unwrap()
    }

    #[test]
    fn selectors_are_parsed() {
        assert_eq!(
            upc_of("products(upc=012345678905)").as_deref(),
            Some("012345678905")
        );
        assert_eq!(
            upc_of("products(active=true&upc=\"012345678905\")").as_deref(),
            Some("012345678905")
        );
        assert_eq!(upc_of("products(sku=123)"), None);
        assert_eq!(upc_of("stores(upc=1)"), None);
    }

    #[tokio::test]
    async fn products_and_empty_results() {
        let (_simulator, base) = serve(control::beside(super::routes())).await;
        let found = (0..)
            .map(upc)
            .find(|u| expected_best(Api::BestBuy, u).is_some())
            .unwrap();
        let answer = products(&base, &found, KEY).await;
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.unwrap();
        let items = body["products"].as_array().unwrap();
        assert!(!items.is_empty());
        assert!(items[0]["salePrice"].is_f64() || items[0]["salePrice"].is_u64());
        let best = expected_best(Api::BestBuy, &found).unwrap();
        let cheapest = items
            .iter()
            .filter(|p| p["condition"] == "New")
            .map(|p| {
                let cents = |v: &Value| (v.as_f64().unwrap() * 100.0).round() as u64;
                (
                    cents(&p["salePrice"]) + cents(&p["shippingCost"]),
                    p["url"].as_str().unwrap().to_owned(),
                )
            })
            .min()
            .unwrap();
        assert_eq!(cheapest, (best.total_minor, best.url));
        assert!(items[0].get("freeShipping").is_none());

        let missing = (0..)
            .map(upc)
            .find(|u| lookup(Api::BestBuy, u) == Lookup::NotFound)
            .unwrap();
        let body: Value = products(&base, &missing, KEY).await.json().await.unwrap();
        assert_eq!(body["total"], 0);
        assert_eq!(body["products"], json!([]));

        let wrong = products(&base, &found, "nope").await;
        assert_eq!(wrong.status(), 403);
        assert_eq!(wrong.text().await.unwrap(), "<h1>Developer Inactive</h1>");
        let bad = reqwest::get(format!(
            "{base}/bestbuy/v1/products(sku=1)?apiKey={KEY}&format=json"
        ))
        .await
        .unwrap();
        assert_eq!(bad.status(), 400);
    }

    #[tokio::test]
    async fn over_the_quota_is_403() {
        let (_simulator, base) = serve(control::beside(super::routes())).await;
        let client = reqwest::Client::new();
        client
            .put(format!("{base}/_sim/apis/bestbuy"))
            .json(&json!({"max_requests_per_second": 2}))
            .send()
            .await
            .unwrap();
        let u = upc(1);
        assert_eq!(products(&base, &u, KEY).await.status(), 200);
        assert_eq!(products(&base, &u, KEY).await.status(), 200);
        let over = products(&base, &u, KEY).await;
        assert_eq!(over.status(), 403);
        assert_eq!(
            over.headers()["x-mashery-error-code"],
            "ERR_403_DEVELOPER_OVER_QPS"
        );
        assert_eq!(over.text().await.unwrap(), "<h1>Developer Over Qps</h1>");

        client
            .put(format!("{base}/_sim/apis/bestbuy"))
            .json(&json!({"max_requests_per_second": 0, "request_limit": 3}))
            .send()
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
        assert_eq!(products(&base, &u, KEY).await.status(), 200);
        let over = products(&base, &u, KEY).await;
        assert_eq!(over.status(), 403);
        assert_eq!(over.text().await.unwrap(), "<h1>Developer Over Rate</h1>");
        let stats: Value = client
            .get(format!("{base}/_sim/apis/bestbuy/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats["over_limit_refusals"], 2);
        assert_eq!(stats["requests"], 5);
    }
}
