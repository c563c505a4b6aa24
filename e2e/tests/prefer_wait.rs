//! `Prefer: wait=N` (RFC 7240): one round trip instead of 202-then-poll. Against the running service
//! (`scripts/test.sh`: the KV-backed and the `kv+redis` Workers, whose misses the service's consumer
//! answers in about 150 ms), and a Worker of this test whose topic nobody consumes (its wait runs out).

use std::time::Duration;

use pricefront_core::ProductId;
use pricefront_harness::edge::{unused_product, Edge};
use pricefront_harness::topic::published_for;
use pricefront_harness::worker::LocalWorker;
use pricefront_harness::{profiles, TestEnv};
use serde_json::Value;

async fn published(topic: &str, product: ProductId) -> usize {
    published_for(topic, product).await.unwrap()
}

async fn get_waiting(edge: &Edge, product: ProductId, prefer: &str) -> reqwest::Response {
    edge.get_prices_preferring(product, prefer).await.unwrap()
}

async fn a_waiting_miss_is_answered_with_its_result(var: &str) {
    let edge = Edge::from_env(var).unwrap();
    let product = unused_product();
    let response = get_waiting(&edge, product, "wait=10").await;
    assert_eq!(response.status(), 200, "{}", edge.base);
    assert_eq!(response.headers()["preference-applied"], "wait=10");
    let etag = response.headers()["etag"].clone();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["freshness"], "fresh");
    assert_eq!(body["productId"], product.to_string());
    // The answer (from the product gate, which the fill reached) is the entity a later hit serves.
    let hit = edge.get_prices(product, None).await.unwrap();
    assert_eq!(hit.status(), 200);
    assert_eq!(hit.headers()["etag"], etag);
    assert_eq!(hit.json::<Value>().await.unwrap(), body);
    assert_eq!(published(pricefront_core::REQUEST_TOPIC, product).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_miss_is_answered_with_its_result_by_the_kv_backed_edge() {
    a_waiting_miss_is_answered_with_its_result("EDGE_KV_URL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_miss_is_answered_with_its_result_by_the_kv_redis_edge() {
    a_waiting_miss_is_answered_with_its_result("EDGE_KV_REDIS_URL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_longer_than_the_cap_is_capped_and_a_wait_that_runs_out_is_the_usual_202() {
    // A topic nobody consumes: the result never comes. And the Worker's Redis is away, so every read
    // of the wait fails: the request was published all the same, so the answer is still the 202.
    let env = TestEnv::new("prefer-wait", profiles([]), 2_000)
        .await
        .unwrap();
    let redis_port = pricefront_harness::free_port().unwrap().to_string();
    let worker = LocalWorker::start(
        "prefer-wait",
        8803,
        &[
            ("REQUEST_TOPIC", env.topic.as_str()),
            ("PREFER_WAIT_MAX_SECS", "1"),
            ("CACHE_BACKEND", "kv+redis"),
            ("REDIS_PORT", redis_port.as_str()),
        ],
    )
    .await
    .unwrap();
    let edge = worker.edge();
    let product = unused_product();
    // No consumer reads this topic: the miss waits out its capped second, then answers 202.
    let asked = std::time::Instant::now();
    let response = get_waiting(&edge, product, "respond-async, wait=30").await;
    let waited = asked.elapsed();
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["preference-applied"], "wait=1");
    // Not a speed figure: a wait that must last. An immediate 202 (no wait at all), or one that waited
    // far past the cap while saying `wait=1`, fails; the margins are generous for a busy machine.
    assert!(
        waited >= Duration::from_millis(900),
        "answered after {waited:?}: the capped wait of 1 s did not happen"
    );
    assert!(
        waited < Duration::from_secs(6),
        "answered after {waited:?}: far past the cap of 1 s"
    );
    assert_eq!(
        response.headers()["location"],
        format!("/v1/prices/{product}").as_str()
    );
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(published(&env.topic, product).await, 1);

    // Without the header nothing changes: a 202 at once, no Preference-Applied.
    let other = unused_product();
    let response = edge.get_prices(other, None).await.unwrap();
    assert_eq!(response.status(), 202);
    assert!(!response.headers().contains_key("preference-applied"));
}
