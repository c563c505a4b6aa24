//! The product gate (one Durable Object per product) under `wrangler dev`, with the real bridge, Kafka and
//! a consumer: a waiting miss is answered from the gate with the fill's bytes (`kv`, and `kv+redis`
//! with its Redis away, so that nothing else can answer); a front whose KV never saw
//! the fill (another location's, in production) is answered from the gate, and publishes nothing again;
//! a burst of misses, or of stale hits, publishes one record with the per-isolate claim off; a gate that
//! restarts mid-wait costs its waiters a 202, never a 5xx; the gate off, the per-isolate path still works.
//!
//! The gates live in a Worker of their own (harness/workers/gate-host.toml) so that they can be restarted
//! while the fronts (gate-front.toml, each on its own local KV) keep running; in production the gate
//! class is in the edge's own Worker (wrangler.toml).
//!
//! Records are counted in each test's own topic by key.

use std::time::Duration;

use futures::future::join_all;
use pricefront_core::ProductId;
use pricefront_harness::edge::Edge;
use pricefront_harness::topic::published_for;
use pricefront_harness::worker::{Inspector, LocalWorker};
use pricefront_harness::{aged_comparison, profiles, vendor, TestEnv};
use reqwest::StatusCode;
use serde_json::Value;
use vendor_sim::BodyShape;

/// Two simulated vendors that answer within 20 ms.
async fn test_env(name: &str) -> TestEnv {
    let vendors = profiles([
        ("alpha", vendor((5, 20), BodyShape::Nested)),
        ("bravo", vendor((5, 20), BodyShape::Flat)),
    ]);
    TestEnv::new(name, vendors, 2_000).await.unwrap()
}

/// A front bound to the gate host's gates, publishing to `topic`, with `vars`.
async fn front(name: &str, port: u16, topic: &str, vars: &[(&str, &str)]) -> LocalWorker {
    front_with(name, port, topic, vars, Inspector::On).await
}

/// Like [`front`], with or without the runtime's inspector.
async fn front_with(
    name: &str,
    port: u16,
    topic: &str,
    vars: &[(&str, &str)],
    inspector: Inspector,
) -> LocalWorker {
    let mut all = vec![("REQUEST_TOPIC", topic)];
    all.extend_from_slice(vars);
    LocalWorker::start_gate_front_with(name, port, &all, inspector)
        .await
        .unwrap()
}

async fn gate_host(port: u16) -> LocalWorker {
    LocalWorker::start_gate_host(port).await.unwrap()
}

async fn published(topic: &str, product: ProductId) -> usize {
    published_for(topic, product).await.unwrap()
}

/// Reads `product` with `Prefer: wait=N`: status, `ETag`, body.
async fn wait_for(edge: &Edge, product: ProductId, secs: u64) -> (StatusCode, String, Value) {
    let response = edge
        .get_prices_preferring(product, &format!("wait={secs}"))
        .await
        .unwrap();
    assert_eq!(
        response.headers()["preference-applied"],
        format!("wait={secs}").as_str()
    );
    answer(response).await
}

/// Reads `product` once: status, `ETag`, body.
async fn read(edge: &Edge, product: ProductId) -> (StatusCode, String, Value) {
    answer(edge.get_prices(product, None).await.unwrap()).await
}

/// An answer's status, `ETag` (empty without one) and body (null when it is not JSON).
async fn answer(response: reqwest::Response) -> (StatusCode, String, Value) {
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .map(|tag| tag.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, etag, response.json().await.unwrap_or_default())
}

/// `reads` concurrent reads of `product` on `edges` in turn; their statuses.
async fn burst(edges: &[Edge], product: ProductId, reads: usize) -> Vec<StatusCode> {
    let reads = (0..reads).map(|i| {
        let edge = edges[i % edges.len()].clone();
        async move { edge.get_prices(product, None).await.unwrap().status() }
    });
    join_all(reads).await
}

/// Waits (bounded) until the records of `product` in `topic` stop changing for a second; how many.
async fn settled_count(topic: &str, product: ProductId) -> usize {
    let mut last = usize::MAX;
    for _ in 0..30 {
        let count = published(topic, product).await;
        if count == last && count > 0 {
            return count;
        }
        last = count;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fronts_on_their_own_kv_share_one_gate_which_publishes_once_and_may_restart() {
    let env = test_env("gate-shared").await;
    let host = gate_host(8840).await;
    // A is filled by the consumer; B's KV never sees a fill (another location's KV, not caught up).
    let off = [("ISOLATE_CLAIM", "off")];
    let a = front("front-a", 8841, &env.topic, &off).await;
    // B runs without the inspector (wrangler's API, as the benchmarks run theirs): its gates are still
    // the gate host's, found through the same dev registry as the CLI's Workers.
    let b = front_with("front-b", 8842, &env.topic, &off, Inspector::Off).await;
    let (edge_a, edge_b) = (a.edge(), b.edge());
    let fill_a = [
        "--fill-url",
        a.base.as_str(),
        "--fill-token",
        a.token.as_str(),
    ];
    let consumer = env.start_consumer("a", &fill_a).unwrap();

    // A waiting miss on B: B publishes, the consumer fills A, A hands the fill to the gate, which
    // answers B's waiter with its bytes.
    let product = env.product(1);
    let (status, etag, waited) = wait_for(&edge_b, product, 10).await;
    assert_eq!(status, 200, "{waited}");
    assert_eq!(waited["freshness"], "fresh");
    assert_eq!(waited["productId"], product.to_string());
    // The same entity a hit on A serves: same tag, same body.
    let (status, hit_etag, hit) = read(&edge_a, product).await;
    assert_eq!(status, 200);
    assert_eq!(hit_etag, etag);
    assert_eq!(hit, waited);

    // The same with `kv+redis` whose Redis is away: the gate is the only place the result can come from.
    let redis_port = pricefront_harness::free_port().unwrap().to_string();
    let c = front(
        "front-c",
        8843,
        &env.topic,
        &[
            ("ISOLATE_CLAIM", "off"),
            ("CACHE_BACKEND", "kv+redis"),
            ("REDIS_PORT", &redis_port),
        ],
    )
    .await;
    let tiered_product = env.product(4);
    let (status, tiered_etag, tiered) = wait_for(&c.edge(), tiered_product, 10).await;
    assert_eq!(status, 200, "{tiered}");
    let (_, hit_etag, hit) = read(&edge_a, tiered_product).await;
    assert_eq!((hit_etag, hit), (tiered_etag, tiered));
    drop(c);

    // B's KV still misses; a client polling B is answered from the gate, and nothing is published again.
    for _ in 0..5 {
        let (status, polled_etag, _) = read(&edge_b, product).await;
        assert_eq!(status, 200);
        assert_eq!(polled_etag, etag);
    }
    assert_eq!(settled_count(&env.topic, product).await, 1);

    // 50 concurrent misses of one product across both fronts, the per-isolate claim off: one record.
    let product = env.product(2);
    let statuses = burst(&[edge_a.clone(), edge_b.clone()], product, 50).await;
    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 200),
        "{statuses:?}"
    );
    assert_eq!(settled_count(&env.topic, product).await, 1);

    // 50 concurrent stale hits (due a refresh) on A: one record.
    let product = env.product(3);
    let stale = aged_comparison(product, 120_000);
    assert_eq!(edge_a.fill(&stale, &a.token).await.unwrap(), 204);
    let statuses = burst(std::slice::from_ref(&edge_a), product, 50).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(settled_count(&env.topic, product).await, 1);

    // The gate restarted while 10 clients wait on it: every one gets a 202 with Retry-After, none a 5xx
    // nor a hang. The consumer is stopped first, so that no fill ends the waits before.
    drop(consumer);
    let products: Vec<ProductId> = (10..20).map(|n| env.product(n)).collect();
    let waits = products.iter().map(|&product| {
        let edge = edge_b.clone();
        async move {
            let response = edge
                .get_prices_preferring(product, "wait=10")
                .await
                .unwrap();
            (
                response.status(),
                response.headers().get("retry-after").cloned(),
            )
        }
    });
    let restart = async {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        host.stop().unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        gate_host(8840).await
    };
    let (answers, _host) = tokio::join!(join_all(waits), restart);
    // Nothing could fill these products (the consumer is stopped): every wait ends as the usual 202.
    for (status, retry_after) in &answers {
        assert_eq!(*status, 202, "{answers:?}");
        assert!(retry_after.is_some(), "{answers:?}");
    }
    // The gate is back: a waiting miss on B is answered from it again.
    let _consumer = env.start_consumer("b", &fill_a).unwrap();
    let product = env.product(30);
    let (status, _, body) = wait_for(&edge_b, product, 10).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_gate_off_misses_coalesce_in_the_isolate_and_a_waiting_miss_watches_the_cache() {
    let env = test_env("gate-off").await;
    let worker = LocalWorker::start(
        "gate-off",
        8845,
        &[
            ("REQUEST_TOPIC", env.topic.as_str()),
            ("PRODUCT_GATE", "off"),
        ],
    )
    .await
    .unwrap();
    let edge = worker.edge();
    let _consumer = env
        .start_consumer(
            "a",
            &["--fill-url", &worker.base, "--fill-token", &worker.token],
        )
        .unwrap();

    let product = env.product(1);
    let (status, etag, waited) = wait_for(&edge, product, 10).await;
    assert_eq!(status, 200, "{waited}");
    let (_, hit_etag, hit) = read(&edge, product).await;
    assert_eq!((hit_etag, hit), (etag, waited));

    let product = env.product(2);
    let statuses = burst(std::slice::from_ref(&edge), product, 20).await;
    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 200),
        "{statuses:?}"
    );
    assert_eq!(settled_count(&env.topic, product).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gates_calls_are_not_routes_of_the_worker() {
    let edge = std::env::var("EDGE_KV_URL").expect("EDGE_KV_URL is not set: run scripts/test.sh");
    let client = reqwest::Client::new();
    for (method, path) in [
        ("POST", "/ask?reason=miss&wait=1000"),
        ("POST", "/wait?wait=1000"),
        ("POST", "/release?claim=1"),
        ("PUT", "/fill"),
    ] {
        let response = client
            .request(method.parse().unwrap(), format!("{edge}{path}"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
}
