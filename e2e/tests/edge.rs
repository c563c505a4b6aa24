//! The edge Worker under `wrangler dev`, against the real Redis, Kafka and consumer.
//! `scripts/test.sh` starts two Workers: one reading Workers KV (EDGE_KV_URL), one reading Redis
//! (EDGE_REDIS_URL), both with the fill token in EDGE_FILL_TOKEN, and both pointed at the REST proxy's address.

use std::time::Duration;

use pricefront_core::newest_wins::FILL_OUTCOME_HEADER;
use pricefront_core::route::{fill_path, FILL_PREFIX};
use pricefront_core::{Comparison, FailureKind, FreshnessPolicy, ProductId, VendorFailure};
use pricefront_harness::{aged_comparison as comparison, now_ms};
use reqwest::{Client, StatusCode};
use serde_json::Value;

fn edge(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with scripts/test.sh (make test)")
    })
}

fn token() -> String {
    std::env::var("EDGE_FILL_TOKEN")
        .expect("EDGE_FILL_TOKEN is not set: run the suite with scripts/test.sh")
}

fn product() -> ProductId {
    ProductId::new(10_000_000 + rand_u64() % 1_000_000_000).unwrap()
}

fn rand_u64() -> u64 {
    u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap())
}

async fn fill(
    client: &Client,
    base: &str,
    product: ProductId,
    body: String,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = client
        .put(format!("{base}{}", fill_path(product)))
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// Fills `comparison` through the fill endpoint with the right token, expecting 204.
async fn fill_ok(client: &Client, base: &str, comparison: &Comparison) {
    let response = fill(
        client,
        base,
        comparison.product_id,
        comparison.to_json(),
        Some(&token()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "{base}");
}

/// `GET /v1/prices/{product}`, with an optional `If-None-Match`.
async fn get_prices(
    client: &Client,
    base: &str,
    product: ProductId,
    if_none_match: Option<&str>,
) -> reqwest::Response {
    let mut request = client.get(format!("{base}/v1/prices/{product}"));
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    request.send().await.unwrap()
}

async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().unwrap().starts_with("/problems/"));
    body
}

#[tokio::test]
async fn health_answers() {
    let response = Client::new()
        .get(format!("{}/healthz", edge("EDGE_KV_URL")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_ids_paths_and_methods_get_the_right_problem() {
    let client = Client::new();
    let base = edge("EDGE_KV_URL");
    for id in [
        "abc",
        "0",
        "-1",
        "007",
        "1.5",
        "18446744073709551616",
        "%20",
    ] {
        let response = client
            .get(format!("{base}/v1/prices/{id}"))
            .send()
            .await
            .unwrap();
        assert_problem(response, 400).await;
    }
    for path in [
        "/",
        "/v1/prices",
        "/v1/prices/1/x",
        "/v2/prices/1",
        "/internal",
    ] {
        assert_problem(
            client.get(format!("{base}{path}")).send().await.unwrap(),
            404,
        )
        .await;
    }
    let response = client
        .post(format!("{base}/v1/prices/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET, HEAD");
    assert_problem(response, 405).await;
    let response = client
        .get(format!("{base}{FILL_PREFIX}1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "PUT");
    assert_problem(response, 405).await;
    // A method the runtime does not know is still a wrong method, not a GET.
    let query = reqwest::Method::from_bytes(b"QUERY").unwrap();
    for path in ["/healthz", "/v1/prices/1"] {
        let response = client
            .request(query.clone(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_problem(response, 405).await;
    }
}

#[tokio::test]
async fn the_fill_endpoint_refuses_missing_or_wrong_tokens_and_bad_bodies() {
    let client = Client::new();
    let base = edge("EDGE_KV_URL");
    let p = product();
    let body = comparison(p, 0).to_json();
    assert_problem(fill(&client, &base, p, body.clone(), None).await, 401).await;
    assert_problem(
        fill(&client, &base, p, body.clone(), Some("wrong")).await,
        401,
    )
    .await;
    assert_problem(
        fill(&client, &base, p, "{".into(), Some(&token())).await,
        400,
    )
    .await;
    let other = comparison(product(), 0).to_json();
    assert_problem(fill(&client, &base, p, other, Some(&token())).await, 400).await;
    // Nothing was stored by the refused calls: the product is a miss, queued.
    let response = get_prices(&client, &base, p, None).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_filled_result_is_served_fresh_with_cache_headers_and_conditional_requests() {
    for base in [edge("EDGE_KV_URL"), edge("EDGE_REDIS_URL")] {
        let client = Client::new();
        let p = product();
        fill_ok(&client, &base, &comparison(p, 0)).await;

        let response = get_prices(&client, &base, p, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{base}");
        let cache_control = response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .to_owned();
        let max_age: u64 = cache_control
            .strip_prefix("public, max-age=")
            .unwrap()
            .parse()
            .unwrap();
        // Fresh for 60 s from a result computed just now: the edge gives what is left of the 60 s.
        assert!((45..=60).contains(&max_age), "max-age={max_age}");
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["freshness"], "fresh");
        assert_eq!(body["bestOffer"]["vendor"], "bravo");
        assert_eq!(body["bestOffer"]["price"]["minorUnits"], 1499);

        let response = get_prices(&client, &base, p, Some(&etag)).await;
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    }
}

#[tokio::test]
async fn a_stale_result_is_still_served_marked_stale() {
    for base in [edge("EDGE_KV_URL"), edge("EDGE_REDIS_URL")] {
        let client = Client::new();
        let p = product();
        fill_ok(&client, &base, &comparison(p, 120_000)).await;
        let response = get_prices(&client, &base, p, None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["freshness"], "stale");
    }
}

#[tokio::test]
async fn a_result_written_by_the_consumers_redis_cache_is_served_by_the_redis_backed_edge() {
    // The consumer's cache code and the edge agree on keys and format: what one writes, the other serves.
    // (The consumer process itself filling Redis for the edge: e2e/tests/miss_path.rs.)
    let cache = pricefront_consumer::sinks::cache::RedisCache::connect(
        &std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6390/0".into()),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let p = product();
    let stored = comparison(p, 0);
    cache.put(&stored, now_ms()).await.unwrap();
    let response = Client::new()
        .get(format!("{}/v1/prices/{p}", edge("EDGE_REDIS_URL")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["computedAtMs"], stored.computed_at_ms);
}

/// A comparison of `product` computed now in which every vendor failed.
fn without_offers(product: ProductId) -> Comparison {
    Comparison::aggregate(
        product,
        [pricefront_core::VendorOutcome::Failed(VendorFailure {
            vendor: "alpha".into(),
            kind: FailureKind::Timeout,
            detail: "no answer within 1000 ms".into(),
            attempts: 1,
        })],
        now_ms(),
        &FreshnessPolicy::default(),
    )
}

#[tokio::test]
async fn a_fill_without_offers_never_replaces_a_servable_result_with_offers() {
    let client = Client::new();
    for var in ["EDGE_KV_URL", "EDGE_REDIS_URL"] {
        let base = edge(var);
        let p = product();
        // Stale (fresh for a minute, two minutes ago) but still servable.
        let useful = comparison(p, 120_000);
        fill_ok(&client, &base, &useful).await;
        let empty = without_offers(p);
        assert!(empty.computed_at_ms > useful.computed_at_ms);
        let response = fill(&client, &base, p, empty.to_json(), Some(&token())).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{var}");
        assert_eq!(
            response
                .headers()
                .get(FILL_OUTCOME_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("kept-useful"),
            "{var}"
        );
        let served = get_prices(&client, &base, p, None).await;
        assert_eq!(served.status(), StatusCode::OK, "{var}");
        let body: Value = served.json().await.unwrap();
        assert_eq!(body["freshness"], "stale", "{var}");
        assert_eq!(
            body["computedAtMs"], useful.computed_at_ms,
            "{var}: the empty result replaced the one with offers"
        );
        assert_eq!(body["offers"].as_array().map(Vec::len), Some(2), "{var}");
    }
}
