//! The edge Worker's HTTP semantics under `wrangler dev`: the fill endpoint keeps
//! the newer result, entity tags follow the served bytes and `If-None-Match` is honoured on every 200
//! path, bearer authentication answers as RFC 9110 / RFC 6750 say, and a misconfigured Worker says so.
//!
//! The Workers come from the environment (`scripts/test.sh` starts them):
//! - `EDGE_KV_URL`, `EDGE_REDIS_URL`: Workers reading Workers KV and Redis, both with the fill token in
//!   `EDGE_FILL_TOKEN`;
//! - `EDGE_NO_FILL_TOKEN_URL`: a Worker started without `FILL_TOKEN`;
//! - `EDGE_V3_NO_CLUSTER_URL`: a Worker started with `REST_PROXY_API=v3` and no `KAFKA_CLUSTER_ID`.

use std::time::Duration;

use pricefront_core::route::fill_path;
use pricefront_core::{Comparison, ProductId};
use pricefront_harness::{aged_comparison as comparison, comparison_at, now_ms};
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
    let random = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap());
    ProductId::new(10_000_000 + random % 1_000_000_000).unwrap()
}

/// `PUT /internal/v1/prices/{product}` with `authorization` as the header, if any.
async fn fill(
    client: &Client,
    base: &str,
    comparison: &Comparison,
    authorization: Option<&str>,
) -> reqwest::Response {
    let mut request = client
        .put(format!("{base}{}", fill_path(comparison.product_id)))
        .body(comparison.to_json());
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

async fn fill_ok(client: &Client, base: &str, comparison: &Comparison) {
    let response = fill(
        client,
        base,
        comparison,
        Some(&format!("Bearer {}", token())),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "{base}");
}

async fn get_prices(
    client: &Client,
    base: &str,
    product: ProductId,
    if_none_match: Option<&str>,
) -> reqwest::Response {
    let mut request = client.get(format!("{base}/v1/prices/{product}"));
    if let Some(value) = if_none_match {
        request = request.header("if-none-match", value);
    }
    request.send().await.unwrap()
}

/// The same `Cache-Control` as the 200's: the same directives, and a `max-age` that may have counted down
/// by one second between the two requests (it is the time left until fresh-until, in whole seconds).
fn assert_same_cache_control(got: &str, first: &str) {
    let max_age = |value: &str| {
        value
            .strip_prefix("public, max-age=")
            .and_then(|n| n.parse::<u64>().ok())
    };
    match (max_age(got), max_age(first)) {
        (Some(got_age), Some(first_age)) => assert!(
            got_age == first_age || got_age + 1 == first_age,
            "Cache-Control {got:?} after {first:?}"
        ),
        _ => assert_eq!(got, first),
    }
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header ({})", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    body
}

#[tokio::test]
async fn an_older_result_never_replaces_a_newer_one_at_the_fill_endpoint() {
    for base in [edge("EDGE_KV_URL"), edge("EDGE_REDIS_URL")] {
        let client = Client::new();
        let p = product();
        let newer = comparison(p, 1_000);
        let older = comparison_at(p, newer.computed_at_ms - 20_000, 60_000);
        fill_ok(&client, &base, &newer).await;
        // The older one arrives late (a rebalance): accepted (the sink holds a newer result), not stored.
        fill_ok(&client, &base, &older).await;
        let body: Value = get_prices(&client, &base, p, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["computedAtMs"], newer.computed_at_ms, "{base}");
        // A later one still replaces it, and the same one again is accepted.
        let latest = comparison_at(p, newer.computed_at_ms + 500, 60_000);
        fill_ok(&client, &base, &latest).await;
        fill_ok(&client, &base, &latest).await;
        let body: Value = get_prices(&client, &base, p, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["computedAtMs"], latest.computed_at_ms, "{base}");
    }
}

#[tokio::test]
async fn the_entity_tag_changes_when_the_served_bytes_change_from_fresh_to_stale() {
    for base in [edge("EDGE_KV_URL"), edge("EDGE_REDIS_URL")] {
        let client = Client::new();
        let p = product();
        // Fresh for about two more seconds, then stale.
        let stored = comparison_at(p, now_ms() - 58_000, 60_000);
        fill_ok(&client, &base, &stored).await;
        let response = get_prices(&client, &base, p, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{base}");
        let fresh_tag = header(&response, "etag");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["freshness"], "fresh");

        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let (stale_tag, stale_body) = loop {
            let response = get_prices(&client, &base, p, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{base}");
            let tag = header(&response, "etag");
            let body: Value = response.json().await.unwrap();
            if body["freshness"] == "stale" {
                break (tag, body);
            }
            assert!(tokio::time::Instant::now() < deadline, "never served stale");
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(stale_body["computedAtMs"], stored.computed_at_ms);
        assert_ne!(
            fresh_tag, stale_tag,
            "{base}: one strong tag for two different bodies"
        );
        // The fresh body's tag no longer matches what is served.
        let response = get_prices(&client, &base, p, Some(&fresh_tag)).await;
        assert_eq!(response.status(), StatusCode::OK, "{base}");
    }
}

#[tokio::test]
async fn if_none_match_is_honoured_on_a_stale_result() {
    for base in [edge("EDGE_KV_URL"), edge("EDGE_REDIS_URL")] {
        let client = Client::new();
        let p = product();
        fill_ok(&client, &base, &comparison(p, 120_000)).await;
        let response = get_prices(&client, &base, p, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{base}");
        let tag = header(&response, "etag");
        assert_eq!(header(&response, "cache-control"), "no-cache");

        let response = get_prices(&client, &base, p, Some(&tag)).await;
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{base}");
        assert_eq!(header(&response, "etag"), tag);
        assert_eq!(header(&response, "cache-control"), "no-cache");
        assert!(response.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn if_none_match_is_parsed_as_a_list_of_entity_tags() {
    let client = Client::new();
    let base = edge("EDGE_KV_URL");
    let p = product();
    fill_ok(&client, &base, &comparison(p, 0)).await;
    let response = get_prices(&client, &base, p, None).await;
    let tag = header(&response, "etag");
    let cache_control = header(&response, "cache-control");

    for matching in [
        tag.clone(),
        format!("W/{tag}"),
        format!("\"other\", W/{tag}"),
        format!("\"a,b\",{tag}"),
        "*".to_owned(),
    ] {
        let response = get_prices(&client, &base, p, Some(&matching)).await;
        assert_eq!(
            response.status(),
            StatusCode::NOT_MODIFIED,
            "If-None-Match: {matching}"
        );
        assert_eq!(header(&response, "etag"), tag);
        assert_same_cache_control(&header(&response, "cache-control"), &cache_control);
    }
    // One entity tag whose opaque part holds commas and a star is not `*`; a tag is not a prefix.
    for other in [
        "\"x,*,y\"".to_owned(),
        "\"x, *\"".to_owned(),
        format!("{}\"", &tag[..tag.len() - 2]),
        tag.trim_matches('"').to_owned(),
        format!("w/{tag}"),
    ] {
        let response = get_prices(&client, &base, p, Some(&other)).await;
        assert_eq!(response.status(), StatusCode::OK, "If-None-Match: {other}");
    }
}

#[tokio::test]
async fn a_401_always_asks_for_a_bearer_token_and_the_scheme_is_case_insensitive() {
    for base in [edge("EDGE_KV_URL"), edge("EDGE_REDIS_URL")] {
        let client = Client::new();
        let p = product();
        let stored = comparison(p, 0);
        for authorization in [
            None,
            Some("Bearer wrong".to_owned()),
            Some(format!("Basic {}", token())),
        ] {
            let response = fill(&client, &base, &stored, authorization.as_deref()).await;
            assert_eq!(header(&response, "www-authenticate"), "Bearer");
            assert_problem(response, 401).await;
        }
        for scheme in ["bearer", "BEARER", "beaRer"] {
            let response = fill(
                &client,
                &base,
                &stored,
                Some(&format!("{scheme} {}", token())),
            )
            .await;
            assert_eq!(
                response.status(),
                StatusCode::NO_CONTENT,
                "{base}: scheme {scheme}"
            );
        }
    }
}

#[tokio::test]
async fn a_fill_endpoint_without_a_configured_token_is_a_server_misconfiguration() {
    let client = Client::new();
    let base = edge("EDGE_NO_FILL_TOKEN_URL");
    let stored = comparison(product(), 0);
    for authorization in [None, Some("Bearer anything")] {
        let response = fill(&client, &base, &stored, authorization).await;
        let status = response.status().as_u16();
        assert!(
            (500..600).contains(&status),
            "a client cannot fix a missing FILL_TOKEN: {status}"
        );
        let body = assert_problem(response, status).await;
        assert_eq!(body["type"], "/problems/misconfigured");
        assert!(body["detail"].as_str().unwrap().contains("FILL_TOKEN"));
    }
}

#[tokio::test]
async fn rest_proxy_v3_without_a_cluster_id_is_a_configuration_error() {
    let client = Client::new();
    let base = edge("EDGE_V3_NO_CLUSTER_URL");
    for _ in 0..2 {
        let response = get_prices(&client, &base, product(), None).await;
        let status = response.status().as_u16();
        assert!(
            (500..600).contains(&status),
            "a misconfiguration is the server's: {status}"
        );
        let body = assert_problem(response, status).await;
        assert_eq!(body["type"], "/problems/misconfigured");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("KAFKA_CLUSTER_ID"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn every_answer_of_the_prices_route_names_its_trace_in_traceresponse() {
    const CLIENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for base in [edge("EDGE_KV_URL"), edge("EDGE_REDIS_URL")] {
        let client = Client::new();
        let p = product();
        fill_ok(&client, &base, &comparison(p, 1_000)).await;
        // A hit continues the client's trace with a span of its own.
        let response = client
            .get(format!("{base}/v1/prices/{p}"))
            .header("traceparent", CLIENT)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{base}");
        let answered =
            pricefront_core::TraceContext::parse(&header(&response, "traceresponse")).unwrap();
        assert_eq!(answered.trace_id_hex(), "0af7651916cd43dd8448eb211c80319c");
        assert_ne!(answered.span_id_hex(), "b7ad6b7169203331");
        // Without one (or with one it cannot read), a new trace; a 304 names it too.
        let etag = header(&response, "etag");
        for traceparent in [None, Some("00-garbage")] {
            let mut request = client
                .get(format!("{base}/v1/prices/{p}"))
                .header("if-none-match", &etag);
            if let Some(value) = traceparent {
                request = request.header("traceparent", value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{base}");
            let started =
                pricefront_core::TraceContext::parse(&header(&response, "traceresponse")).unwrap();
            assert_ne!(started.trace_id_hex(), answered.trace_id_hex());
        }
    }
}
