//! `CACHE_BACKEND=kv+redis`: Workers KV first, Redis behind it (the consumers' own copy, consistent
//! where KV is not). Against the Worker that `scripts/test.sh` starts as `EDGE_KV_REDIS_URL`, whose KV
//! the service's consumer never fills: whatever it serves of a new product came through Redis.
//!
//! Records are counted in the edge's topic by key: each test uses product ids no other test uses.

use std::io::{Read, Write};
use std::time::Duration;

use pricefront_consumer::sinks::cache::RedisCache;
use pricefront_core::redis_protocol::{encode_command, RedisAddress};
use pricefront_core::{cache_key, Comparison, ProductId};
use pricefront_harness::edge::{unused_product, Edge};
use pricefront_harness::topic::published_for;
use pricefront_harness::{aged_comparison, now_ms, redis_url, sample_comparison};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn edge() -> Edge {
    Edge::from_env("EDGE_KV_REDIS_URL").expect("EDGE_KV_REDIS_URL is not set: run scripts/test.sh")
}

fn fill_token() -> String {
    std::env::var("EDGE_FILL_TOKEN").expect("EDGE_FILL_TOKEN is not set: run scripts/test.sh")
}

async fn redis() -> RedisCache {
    RedisCache::connect(&redis_url(), Duration::from_secs(5))
        .await
        .expect("Redis is not reachable: start the stack with `dev/stack.sh up`")
}

/// Deletes `product`'s entry from the stack's Redis (the consumer's cache has no delete).
fn redis_delete(product: ProductId) {
    let address = RedisAddress::parse(&redis_url()).unwrap();
    let mut stream = std::net::TcpStream::connect((address.host.as_str(), address.port)).unwrap();
    let mut frame = Vec::new();
    encode_command(&mut frame, &[b"DEL", cache_key(product).as_bytes()]);
    stream.write_all(&frame).unwrap();
    let mut reply = [0u8; 16];
    let read = stream.read(&mut reply).unwrap();
    assert!(
        reply[..read].starts_with(b":"),
        "DEL answered {:?}",
        &reply[..read]
    );
}

/// The records the edge published for `product`, after giving a publish time to land.
async fn published_after_a_while(product: ProductId) -> usize {
    tokio::time::sleep(Duration::from_secs(2)).await;
    published_for(pricefront_core::REQUEST_TOPIC, product)
        .await
        .unwrap()
}

async fn served(edge: &Edge, product: ProductId) -> (u16, Value) {
    let response = edge.get_prices(product, None).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn is(body: &Value, comparison: &Comparison, freshness: &str) -> bool {
    body["computedAtMs"] == comparison.computed_at_ms && body["freshness"] == freshness
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_miss_that_redis_answers_is_served_without_a_publish_and_written_back_to_kv() {
    let edge = edge();
    let product = unused_product();
    let comparison = sample_comparison(product);
    redis().await.put(&comparison, now_ms()).await.unwrap();

    let (status, body) = served(&edge, product).await;
    assert_eq!(status, 200, "{body}");
    assert!(is(&body, &comparison, "fresh"), "{body}");
    assert_eq!(published_after_a_while(product).await, 0);

    // Written back to KV: with Redis's copy gone, KV still answers.
    redis_delete(product);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = served(&edge, product).await;
        if status == 200 {
            assert!(is(&body, &comparison, "fresh"), "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not written back to KV: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_kv_entry_gives_way_to_the_newer_result_redis_holds() {
    let edge = edge();
    let product = unused_product();
    let stale = aged_comparison(product, 120_000);
    assert_eq!(edge.fill(&stale, &fill_token()).await.unwrap(), 204);
    let (_, body) = served(&edge, product).await;
    assert!(is(&body, &stale, "stale"), "{body}");

    // Redis gets a newer result (ours, or the consumer's refresh if that came first: newest wins).
    let fresh = sample_comparison(product);
    redis().await.put(&fresh, now_ms()).await.unwrap();
    let (status, body) = served(&edge, product).await;
    assert_eq!(status, 200);
    assert_eq!(body["freshness"], "fresh", "{body}");
    assert!(body["computedAtMs"].as_u64().unwrap() > stale.computed_at_ms);
    // Only the first read, which found KV's stale entry and nothing newer in Redis, published.
    assert_eq!(published_after_a_while(product).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_in_both_tiers_is_published_once_and_served_from_redis_though_kv_is_never_filled() {
    let edge = edge();
    let product = unused_product();
    let (status, body) = served(&edge, product).await;
    assert_eq!(status, 202, "{body}");
    let served = edge
        .poll_until_served(product, Duration::from_millis(50), WAIT)
        .await
        .unwrap();
    assert_eq!(served["freshness"], "fresh");
    assert_eq!(served["productId"], product.to_string());
    assert_eq!(published_after_a_while(product).await, 1);
}
