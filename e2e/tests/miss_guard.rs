//! What stands between a miss and a publish, against the real Worker under `wrangler dev`, the REST
//! proxy and Kafka: the per-client rate limit on misses (Workers rate limiting binding), the
//! known-products filter (loaded into the Worker's KV by `scripts/load-catalog.sh`), and backpressure
//! from a real consumer's lag reports (through Redis, and through the edge's KV). A refused miss
//! publishes nothing (the records in the topic are counted) and hits are never refused.

use std::process::Command;
use std::time::Duration;

use futures::stream::{self, StreamExt};

use pricefront_core::ProductId;
use pricefront_harness::edge::Edge;
use pricefront_harness::topic::published_for;
use pricefront_harness::worker::LocalWorker;
use pricefront_harness::{profiles, sample_comparison, TestEnv};
use serde_json::Value;
use vendor_sim::{BodyShape, VendorProfile};

async fn start_worker(
    name: &'static str,
    port: u16,
    vars: Vec<(&'static str, String)>,
) -> LocalWorker {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    LocalWorker::start(name, port, &vars).await.unwrap()
}

/// The clock's minute: the rate limiter's window.
fn minute_now() -> u64 {
    pricefront_harness::clock::now_ms() / 60_000
}

/// Waits, when fewer than 40 s of the current minute are left, for the next minute to begin.
async fn wait_for_an_early_second_of_a_minute() {
    let into_minute_ms = pricefront_harness::clock::now_ms() % 60_000;
    if into_minute_ms > 20_000 {
        tokio::time::sleep(Duration::from_millis(60_000 - into_minute_ms + 200)).await;
    }
}

async fn problem_type(response: reqwest::Response) -> String {
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    body["type"].as_str().unwrap_or_default().to_owned()
}

async fn miss(edge: &Edge, product: ProductId, client: &str) -> reqwest::Response {
    edge.get_prices_with_header(product, "x-client-key", client)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_miss_limit_gets_429_and_publishes_nothing_while_others_and_hits_go_on() {
    let env = TestEnv::new("rate-limit", profiles([]), 2_000)
        .await
        .unwrap();
    let worker = start_worker(
        "rate-limit",
        8807,
        vec![
            ("REQUEST_TOPIC", env.topic.clone()),
            ("MISS_RATE_LIMIT_KEY", "header:X-Client-Key".into()),
            // This test is about the limit, and counts exactly the misses accepted and published. Under
            // the suite's load a publish on a new connection to the bridge (which starts a Kafka producer
            // for it) outlasted the 2 s of wrangler.toml once: a 503 the limit had counted, whose record
            // may land later. The publish timeout has tests of its own (miss_path.rs, rest_proxy.rs).
            ("PUBLISH_TIMEOUT_MS", "20000".into()),
        ],
    )
    .await;
    let edge = worker.edge();
    let flooder = format!("flooder-{}", env.first_product);
    // wrangler.toml: 120 misses a minute per client, counted (by wrangler dev as by Cloudflare) in
    // windows of the clock's minutes. A flood that straddles two windows may pass 240, so it starts
    // early in a window and is quick (8 at a time); should it straddle all the same (a slow machine),
    // it runs once more, as another client, on other ids.
    let mut flood = None;
    for attempt in 0..2u64 {
        wait_for_an_early_second_of_a_minute().await;
        let first = attempt * 200;
        let started = minute_now();
        let outcomes: Vec<(u16, Option<String>, String)> = stream::iter(first..first + 200)
            .map(|n| {
                let (edge, env, flooder) = (&edge, &env, format!("{flooder}-{attempt}"));
                async move {
                    let response = miss(edge, env.product(n), &flooder).await;
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_owned());
                    let kind = if status != 202 {
                        problem_type(response).await
                    } else {
                        String::new()
                    };
                    (status, retry_after, kind)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        if minute_now() == started {
            flood = Some((first, outcomes));
            break;
        }
    }
    let (first, outcomes) =
        flood.expect("two floods each straddled a minute: the machine is too slow");
    let (mut accepted, mut refused) = (0, 0);
    for (status, retry_after, kind) in outcomes {
        match status {
            202 => accepted += 1,
            429 => {
                assert_eq!(retry_after.as_deref(), Some("60"));
                assert_eq!(kind, "/problems/rate-limited");
                refused += 1;
            }
            other => panic!("a miss answered {other} {kind}"),
        }
    }
    assert_eq!(
        (accepted, refused),
        (120, 80),
        "{accepted} accepted, {refused} refused"
    );
    let mut published = 0;
    for n in first..first + 200 {
        published += published_for(&env.topic, env.product(n)).await.unwrap();
    }
    assert_eq!(
        published, accepted,
        "exactly the accepted misses were published"
    );

    // A poll of a pending request publishes nothing, so it is not a miss: a client polling its own
    // request far past its limit still gets 202s. (Counted as misses, 251 requests pass even two
    // windows' 240.) The claim lasts 5 s: a slower machine may publish once more per 5 s, no more.
    let poller = format!("poller-{}", env.first_product);
    let pending = env.product(1_500);
    let polling = std::time::Instant::now();
    assert_eq!(miss(&edge, pending, &poller).await.status(), 202);
    let polls: Vec<u16> = stream::iter(0..250)
        .map(|_| {
            let (edge, poller) = (&edge, &poller);
            async move { miss(edge, pending, poller).await.status().as_u16() }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let polled_secs = polling.elapsed().as_secs();
    let refused = polls.iter().filter(|status| **status != 202).count();
    assert_eq!(refused, 0, "{refused} of 250 polls were not 202: {polls:?}");
    let published = published_for(&env.topic, pending).await.unwrap();
    assert!(
        (1..=1 + polled_secs as usize / 5).contains(&published),
        "{published} requests published for one pending product polled for {polled_secs} s"
    );

    // Another client is not limited by the flooder; a hit is never limited.
    let other = miss(&edge, env.product(1_000), "someone-else").await;
    assert_eq!(other.status(), 202);
    let cached = sample_comparison(env.product(2_000));
    assert_eq!(edge.fill(&cached, &worker.token).await.unwrap(), 204);
    let hit = miss(&edge, cached.product_id, &flooder).await;
    assert_eq!(hit.status(), 200);
    worker.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_outside_the_catalog_is_a_404_that_publishes_nothing() {
    let env = TestEnv::new("catalog", profiles([]), 2_000).await.unwrap();
    let key = format!("catalog:{}", env.topic);
    let worker = start_worker(
        "catalog",
        8808,
        vec![
            ("REQUEST_TOPIC", env.topic.clone()),
            ("KNOWN_PRODUCTS_KEY", key.clone()),
        ],
    )
    .await;
    // The catalog: the first 1 000 ids of this test, loaded the way an operator loads it.
    let ids = env.dir.join("catalog.txt");
    std::fs::write(&ids, format!("{}-{}\n", env.product(0), env.product(999))).unwrap();
    let loaded = Command::new(pricefront_harness::repo_path("scripts/load-catalog.sh"))
        .arg(&ids)
        .arg(&key)
        .args(["--local", "catalog"])
        .output()
        .unwrap();
    assert!(
        loaded.status.success(),
        "{}{}",
        String::from_utf8_lossy(&loaded.stdout),
        String::from_utf8_lossy(&loaded.stderr)
    );
    let edge = worker.edge();
    let known = env.product(500);
    assert_eq!(edge.get_prices(known, None).await.unwrap().status(), 202);
    // Far outside the catalog: at 1% false positives, all but a few of 50 unknown ids are turned away.
    let mut not_found = 0;
    for n in 0..50 {
        let unknown = env.product(1_000_000 + n * 7_919);
        let response = edge.get_prices(unknown, None).await.unwrap();
        if response.status() == 404 {
            assert_eq!(problem_type(response).await, "/problems/unknown-product");
            assert_eq!(published_for(&env.topic, unknown).await.unwrap(), 0);
            not_found += 1;
        }
    }
    assert!(not_found >= 45, "{not_found} of 50 unknown ids turned away");
    assert_eq!(published_for(&env.topic, known).await.unwrap(), 1);
    worker.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_far_behind_turns_new_misses_away_with_503_and_hits_still_answer() {
    // A slow vendor and a window of one: the consumer falls behind a burst of 300 requests.
    let slow = VendorProfile {
        latency_min_ms: 200,
        latency_max_ms: 300,
        ..VendorProfile::default()
    };
    let env = TestEnv::new("backlog", profiles([("alpha", slow)]), 2_000)
        .await
        .unwrap();
    let backlog_vars = |backend: &str| {
        vec![
            ("REQUEST_TOPIC", env.topic.clone()),
            ("CACHE_BACKEND", backend.to_owned()),
            ("BACKLOG_MAX", "50".to_owned()),
            ("BACKLOG_CHECK_MS", "200".to_owned()),
        ]
    };
    let via_redis = start_worker("backlog-redis", 8809, backlog_vars("redis")).await;
    let via_kv = start_worker("backlog-kv", 8810, backlog_vars("kv")).await;
    let fill_url = via_kv.edge().base.clone();
    let _consumer = env
        .start_consumer(
            "slow",
            &[
                "--max-in-flight",
                "1",
                "--fill-url",
                &fill_url,
                "--fill-token",
                &via_kv.token,
            ],
        )
        .unwrap();
    // Before the burst, a miss is accepted: a Worker that refused every miss would pass the rest.
    for (n, worker) in [(9_000, &via_redis), (29_000, &via_kv)] {
        let response = worker
            .edge()
            .get_prices(env.product(n), None)
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            202,
            "{} before the burst",
            worker.edge().base
        );
    }
    let burst: Vec<_> = (0..300).map(|n| env.product(n)).collect();
    env.publish(burst.iter().copied()).await.unwrap();

    for (first, worker) in [(10_000, &via_redis), (30_000, &via_kv)] {
        let edge = worker.edge();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut n = first;
        let refused = loop {
            n += 1;
            let product = env.product(n);
            let response = edge.get_prices(product, None).await.unwrap();
            if response.status() == 503 {
                assert!(response.headers().contains_key("retry-after"));
                assert_eq!(problem_type(response).await, "/problems/backlogged");
                break product;
            }
            assert_eq!(response.status(), 202, "{}", edge.base);
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: no backpressure within 60 s",
                edge.base
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(published_for(&env.topic, refused).await.unwrap(), 0);
        // A hit is served all the same.
        let cached = sample_comparison(env.product(first + 5_000));
        env.cache
            .put(&cached, pricefront_harness::now_ms())
            .await
            .unwrap();
        assert_eq!(edge.fill(&cached, &worker.token).await.unwrap(), 204);
        assert_eq!(
            edge.get_prices(cached.product_id, None)
                .await
                .unwrap()
                .status(),
            200,
            "{}",
            edge.base
        );
    }

    // Once the backlog drains, misses are accepted again (the consumers' next reports say so).
    env.simulator.set_profile(
        "alpha",
        pricefront_harness::vendor((5, 20), BodyShape::Flat),
    );
    env.wait_for_results(&burst, Duration::from_secs(120))
        .await
        .unwrap();
    for (first, worker) in [(20_000, &via_redis), (40_000, &via_kv)] {
        let edge = worker.edge();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        let mut n = first;
        loop {
            n += 1;
            let status = edge
                .get_prices(env.product(n), None)
                .await
                .unwrap()
                .status();
            if status == 202 {
                break;
            }
            assert_eq!(status, 503, "{}", edge.base);
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: misses still refused 90 s after the backlog drained",
                edge.base
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    via_redis.stop().unwrap();
    via_kv.stop().unwrap();
}
