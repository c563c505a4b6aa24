//! The whole back half into the edge: a request on Kafka is compared by a real consumer, which stores
//! the result in Redis and PUTs it to the KV-backed Worker's fill endpoint; the Worker then serves it.
//! (The front half, the edge publishing through the REST proxy: e2e/tests/miss_path.rs.)
//!
//! The edge is read only once the consumer's `/metrics` shows the fill done: a read before it would be a
//! miss, which publishes to the edge's own topic, where the service's consumer (scripts/test.sh) would
//! compare the product with its own vendors and fill a newer result.

use std::time::Duration;

use pricefront_harness::{profiles, vendor, TestEnv};
use serde_json::Value;
use vendor_sim::BodyShape;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_the_consumer_fills_is_served_by_the_kv_backed_edge() {
    let edge = std::env::var("EDGE_KV_URL")
        .expect("EDGE_KV_URL is not set: run the suite with scripts/test.sh");
    let token = std::env::var("EDGE_FILL_TOKEN")
        .expect("EDGE_FILL_TOKEN is not set: run the suite with scripts/test.sh");
    let vendors = profiles([
        ("alpha", vendor((5, 20), BodyShape::Nested)),
        ("bravo", vendor((5, 20), BodyShape::Flat)),
    ]);
    let env = TestEnv::new("fill", vendors, 2_000).await.unwrap();
    let consumer = env
        .start_consumer("a", &["--fill-url", &edge, "--fill-token", &token])
        .unwrap();
    let product = env.product(1);
    env.publish([product]).await.unwrap();

    let filled = consumer
        .wait_for_metric(
            "pricefront_cache_writes_total{sink=\"edge\",outcome=\"ok\"}",
            |n| n >= 1.0,
            Duration::from_secs(120),
        )
        .await;
    assert!(
        filled.is_ok(),
        "the consumer never filled the edge ({filled:?}); log:\n{}",
        consumer.log_text()
    );
    let response = reqwest::get(format!("{edge}/v1/prices/{product}"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let expected = env.expected_best(product, &["alpha", "bravo"]);
    assert_eq!(
        body["bestOffer"]["price"]["minorUnits"],
        expected.minor_units
    );
    assert_eq!(body["freshness"], "fresh");
    assert!(
        env.cache.get(product).await.unwrap().is_some(),
        "Redis has it too"
    );
}
