//! The whole miss path against the running service: the edge Workers under `wrangler dev`, the Strimzi
//! Kafka Bridge, Kafka, and the service's consumer (started by `scripts/test.sh` on the edge's topic,
//! with the five simulated vendors of `vendor-sim` and a fill to the KV-backed Worker).
//!
//! Records are counted in the edge's topic by key: each test uses product ids no other test uses.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pricefront_core::{Money, ProductId};
use pricefront_harness::aged_comparison;
use pricefront_harness::edge::{unused_product, Edge};
use pricefront_harness::topic::published_for;
use pricefront_harness::worker::{Inspector, LocalWorker};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vendor_sim::{expected_price, Profiles};

/// How long a queued product may take to be served (vendors answer within 150 ms; the rest is margin).
const SERVED_WITHIN: Duration = Duration::from_secs(60);
const POLL_EVERY: Duration = Duration::from_millis(50);

fn edge_topic() -> String {
    std::env::var("EDGE_TOPIC").unwrap_or_else(|_| pricefront_core::REQUEST_TOPIC.into())
}

fn fill_token() -> String {
    std::env::var("EDGE_FILL_TOKEN").expect("EDGE_FILL_TOKEN is not set: run scripts/test.sh")
}

/// The records the edge published for `product`.
async fn published(product: ProductId) -> usize {
    published_for(&edge_topic(), product).await.unwrap()
}

/// Waits (bounded) until at least one record of `product` is in the topic; how many there are then.
async fn wait_published(product: ProductId) -> usize {
    for _ in 0..100 {
        let count = published(product).await;
        if count > 0 {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    0
}

/// The best price the service's five simulated vendors give for `product`.
fn expected_best(product: ProductId) -> Money {
    let profiles = Profiles::five_healthy();
    profiles
        .vendors
        .iter()
        .map(|(name, profile)| expected_price(name, product, profile.currency.parse().unwrap()))
        .min_by_key(|m| m.minor_units)
        .unwrap()
}

async fn a_miss_is_queued_then_served(edge: &Edge) {
    let product = unused_product();
    let response = edge.get_prices(product, None).await.unwrap();
    assert_eq!(response.status(), 202, "{}", edge.base);
    assert_eq!(
        response.headers()["location"],
        format!("/v1/prices/{product}").as_str()
    );
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);

    let served: Value = edge
        .poll_until_served(product, POLL_EVERY, SERVED_WITHIN)
        .await
        .unwrap();
    assert_eq!(served["freshness"], "fresh");
    assert_eq!(served["productId"], product.to_string());
    assert_eq!(served["complete"], true, "{served}");
    let best = expected_best(product);
    assert_eq!(served["bestOffer"]["price"]["minorUnits"], best.minor_units);
    assert_eq!(
        served["bestOffer"]["price"]["currency"],
        best.currency.to_string()
    );
    assert_eq!(served["offers"].as_array().unwrap().len(), 5);
    assert_eq!(published(product).await, 1, "one miss, one record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_is_queued_then_served_with_the_best_offer_by_the_kv_backed_edge() {
    a_miss_is_queued_then_served(&Edge::from_env("EDGE_KV_URL").unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_is_queued_then_served_with_the_best_offer_by_the_redis_backed_edge() {
    a_miss_is_queued_then_served(&Edge::from_env("EDGE_REDIS_URL").unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_hit_is_served_and_publishes_exactly_one_refresh() {
    let edge = Edge::from_env("EDGE_KV_URL").unwrap();
    let product = unused_product();
    let stale = aged_comparison(product, 120_000);
    assert_eq!(edge.fill(&stale, &fill_token()).await.unwrap(), 204);

    for _ in 0..6 {
        let response = edge.get_prices(product, None).await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        if body["freshness"] == "fresh" {
            break; // the refresh already landed
        }
        assert_eq!(body["computedAtMs"], stale.computed_at_ms);
    }
    assert_eq!(wait_published(product).await, 1);
    // The refresh lands: the consumer's newer result replaces the stale one.
    let deadline = tokio::time::Instant::now() + SERVED_WITHIN;
    loop {
        let body: Value = edge
            .get_prices(product, None)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["freshness"] == "fresh" {
            assert!(body["computedAtMs"].as_u64().unwrap() > stale.computed_at_ms);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refresh of {product} never landed"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
    assert_eq!(published(product).await, 1, "exactly one refresh published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_misses_of_one_product_publishes_once() {
    let edge = Edge::from_env("EDGE_KV_URL").unwrap();
    let product = unused_product();
    let reads = (0..20).map(|_| {
        let edge = edge.clone();
        async move { edge.get_prices(product, None).await.unwrap().status() }
    });
    for status in futures::future::join_all(reads).await {
        assert!(status == 202 || status == 200, "{status}");
    }
    assert_eq!(wait_published(product).await, 1);
    edge.poll_until_served(product, POLL_EVERY, SERVED_WITHIN)
        .await
        .unwrap();
    assert_eq!(published(product).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_with_the_rest_proxy_unreachable_is_a_503_with_retry_after() {
    // A Worker like the others but pointed at a closed port (scripts/test.sh starts it).
    let edge = Edge::from_env("EDGE_NO_PROXY_URL").unwrap();
    let product = unused_product();
    let response = edge.get_prices(product, None).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(response.headers()["retry-after"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 503);
    // (Nothing can reach Kafka through a closed port: the proxies that accept and then hang or fail
    // are the next test.)
}

/// A stand-in for a REST proxy that has gone wrong, on 127.0.0.1: it accepts connections and then
/// either never answers (`answer: None`) or answers every request with `answer`. Counts the requests
/// it got.
async fn broken_proxy(answer: Option<&'static str>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                // The request's head arrives in the first read on loopback.
                if socket.read(&mut buffer).await.unwrap_or(0) > 0 {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                match answer {
                    Some(status_line) => {
                        let response = format!(
                            "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                        );
                        let _ = socket.write_all(response.as_bytes()).await;
                    }
                    // Hold the connection open, unanswered, until the Worker gives up on it.
                    None => while socket.read(&mut buffer).await.unwrap_or(0) > 0 {},
                }
            });
        }
    });
    (base, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_proxy_that_hangs_or_fails_gets_a_503_after_at_most_the_publish_timeout() {
    // The README's promise: "503 ... with Retry-After, after at most PUBLISH_TIMEOUT_MS". A closed port
    // (the test above) is refused at once; a proxy that accepts and never answers is what needs the
    // timeout, and one that answers 500 must not pass for a publish.
    const TIMEOUT_MS: u64 = 1_000;
    let timeout = TIMEOUT_MS.to_string();
    for (name, port, answer) in [
        ("proxy-hangs", 8813, None),
        ("proxy-fails", 8814, Some("500 Internal Server Error")),
    ] {
        let (proxy, requests) = broken_proxy(answer).await;
        let worker = LocalWorker::start(
            name,
            port,
            &[
                ("REST_PROXY_URL", proxy.as_str()),
                ("PUBLISH_TIMEOUT_MS", timeout.as_str()),
                ("MISS_RATE_LIMIT_KEY", "off"),
            ],
        )
        .await
        .unwrap();
        let product = unused_product();
        let asked = std::time::Instant::now();
        let response = worker.edge().get_prices(product, None).await.unwrap();
        let waited = asked.elapsed();
        assert_eq!(response.status(), 503, "{name}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{name}"
        );
        assert!(response.headers().contains_key("retry-after"), "{name}");
        assert!(
            requests.load(Ordering::SeqCst) >= 1,
            "{name}: the Worker never asked the proxy"
        );
        // A wait that must end, bounded with a generous margin: not a speed figure.
        assert!(
            waited < Duration::from_millis(TIMEOUT_MS + 5_000),
            "{name}: answered after {waited:?}, PUBLISH_TIMEOUT_MS is {TIMEOUT_MS}"
        );
        if answer.is_none() {
            assert!(
                waited >= Duration::from_millis(TIMEOUT_MS * 9 / 10),
                "{name}: a 503 after {waited:?}, before the proxy could have timed out"
            );
        }
        worker.stop().unwrap();
    }
}

/// The benchmarks of the publish path run their Workers as deployed, without the runtime's inspector
/// (`scripts/wrangler-dev-api.mjs`, through wrangler's API): such a Worker answers a miss with its 202 and
/// publishes it through the real bridge, takes its `--var` settings (a `Prefer: wait` is capped at its
/// `PREFER_WAIT_MAX_SECS`), and nothing listens where the CLI would put its inspector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_the_inspector_publishes_its_misses() {
    let topic = edge_topic();
    let worker = LocalWorker::start_with(
        "no-inspector",
        8819,
        &[
            ("REQUEST_TOPIC", &topic),
            ("PRODUCT_GATE", "off"),
            ("PREFER_WAIT_MAX_SECS", "1"),
        ],
        Inspector::Off,
    )
    .await
    .unwrap();
    let inspector = tokio::net::TcpStream::connect(("127.0.0.1", worker.inspector_port())).await;
    assert!(
        inspector.is_err(),
        "an inspector listens on {}",
        worker.inspector_port()
    );
    let edge = worker.edge();
    let product = unused_product();
    let response = edge.get_prices(product, None).await.unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(wait_published(product).await, 1, "one miss, one record");
    // Nothing fills this Worker's KV: the wait runs out at its configured 1 s (the default is 10).
    let waited = edge
        .get_prices_preferring(unused_product(), "wait=5")
        .await
        .unwrap();
    assert_eq!(waited.headers()["preference-applied"], "wait=1");
    assert!(
        worker.cpu_by_command().unwrap().contains_key("workerd"),
        "its workerd runs in the process group the harness meters"
    );
}
