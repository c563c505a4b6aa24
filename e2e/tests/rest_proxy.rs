//! The REST proxy publisher against the real Strimzi Kafka Bridge, byte for byte: the record the edge's
//! produce call writes is the one the consumers expect, in the partition a Java client would choose.
//! And a publish the bridge answers after the edge's `PUBLISH_TIMEOUT_MS` is finished, not dropped.

use std::time::Duration;

use pricefront_core::PriceRequest;
use pricefront_harness::edge::unused_product;
use pricefront_harness::topic::{published_for, read_to_end};
use pricefront_harness::worker::LocalWorker;
use pricefront_harness::{brokers, now_ms, profiles, vendor, TestEnv};
use vendor_sim::BodyShape;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_answered_after_its_timeout_lands_once_and_the_clients_retries_publish_nothing() {
    // A Worker that waits 1 ms for the bridge: nearly every publish outlives its client's wait. Its
    // topic is its own, and nobody consumes it.
    let env = TestEnv::new("late-publish", profiles([]), 2_000)
        .await
        .unwrap();
    let worker = LocalWorker::start(
        "late-publish",
        8812,
        &[
            ("REQUEST_TOPIC", env.topic.as_str()),
            ("PUBLISH_TIMEOUT_MS", "1"),
        ],
    )
    .await
    .unwrap();
    let edge = worker.edge();
    let product = unused_product();
    let first = edge.get_prices(product, None).await.unwrap();
    assert!(
        [202, 503].contains(&first.status().as_u16()),
        "{}",
        first.status()
    );
    // Retries within the coalescing window (5 s): the first request is still on its way, or in Kafka.
    // Dropping it at the timeout gave its claim back, so each retry published again (and got 503).
    for retry in 1..=5 {
        let response = edge.get_prices(product, None).await.unwrap();
        assert_eq!(response.status(), 202, "retry {retry}");
    }
    // The record may land after the client's 503: wait for it, then a little longer for any other.
    for _ in 0..100 {
        if published_for(&env.topic, product).await.unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        published_for(&env.topic, product).await.unwrap(),
        1,
        "records of the product in the topic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_published_through_the_bridge_is_the_exact_message_keyed_and_partitioned_like_kafkas_default(
) {
    let env = TestEnv::new(
        "bridge-bytes",
        profiles([("alpha", vendor((5, 10), BodyShape::Nested))]),
        1_000,
    )
    .await
    .unwrap();
    let requests: Vec<_> = (0..24)
        .map(|n| PriceRequest::new(env.product(n * 7919), format!("req-{n}"), now_ms()))
        .collect();
    let mut via_bridge = Vec::new();
    for request in &requests {
        via_bridge.push(env.publish_request_via_rest_proxy(request).await.unwrap());
    }
    // The same keys produced straight to Kafka by the harness (librdkafka with murmur2, as Java does).
    let mut direct = Vec::new();
    for request in &requests {
        direct.push(
            env.publish_raw(request.kafka_key().as_bytes(), b"direct")
                .await
                .unwrap(),
        );
    }

    let topic = env.topic.clone();
    let records = tokio::task::spawn_blocking(move || {
        read_to_end(&brokers(), &topic, std::time::Duration::from_secs(60))
    })
    .await
    .unwrap()
    .unwrap();
    let partitions_used: std::collections::BTreeSet<_> =
        via_bridge.iter().map(|p| p.partition).collect();
    assert!(partitions_used.len() > 1, "24 keys spread over partitions");
    for ((request, bridge), direct) in requests.iter().zip(&via_bridge).zip(&direct) {
        let record = records
            .iter()
            .find(|r| r.partition == bridge.partition && r.offset == bridge.offset)
            .expect("the record the bridge reported is in the topic");
        assert_eq!(
            record.key.as_deref(),
            Some(request.product_id.to_string().as_bytes()),
            "the key is the bare decimal id"
        );
        assert_eq!(
            record.value.as_deref(),
            Some(request.to_json().as_bytes()),
            "the value is the exact message"
        );
        assert_eq!(
            bridge.partition, direct.partition,
            "key {}: the bridge and a murmur2 producer agree on the partition",
            request.product_id
        );
    }
}
