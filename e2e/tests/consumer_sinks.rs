//! The consumer's sinks against the real stack: the rule that an offset is committed only once every
//! configured sink (Redis and the edge's fill endpoint) holds a result as new as the request, a stuck
//! sink that must not cost the consumer its group membership, a fill endpoint refusing as misconfigured,
//! and a panicking comparison that must not pin its partition.
//!
//! Needs the stack (`dev/stack.sh up`), `redis-server` on the PATH (for a private Redis to take down),
//! and for the edge tests a KV-backed Worker: its URL in `EDGE_KV_URL`, its fill token in
//! `EDGE_FILL_TOKEN`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pricefront_consumer::intake::dead_letter::ERROR_HEADER;
use pricefront_consumer::intake::pipeline::{self, Compare, Outputs};
use pricefront_consumer::process::lateness::RuntimeLag;
use pricefront_consumer::process::metrics::Metrics;
use pricefront_consumer::sinks::cache::RedisCache;
use pricefront_consumer::vendors::fanout::Comparer;
use pricefront_consumer::{vendors, Settings};
use pricefront_core::{Comparison, ProductId, TraceContext, REQUEST_TOPIC};
use pricefront_harness::edge::Edge;
use pricefront_harness::private_redis::PrivateRedis;
use pricefront_harness::topic::{published_for, read_to_end};
use pricefront_harness::{brokers, profiles, redis_url, vendor, ConsumerProcess, TestEnv};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use vendor_sim::BodyShape;

const WAIT: Duration = Duration::from_secs(120);

/// Group timeouts short enough that a killed consumer's partitions move on within seconds.
const SHORT_SESSION: [&str; 4] = [
    "--kafka-option",
    "session.timeout.ms=6000",
    "--kafka-option",
    "heartbeat.interval.ms=1000",
];

fn kv_edge() -> (Edge, String) {
    let edge = Edge::from_env("EDGE_KV_URL")
        .expect("EDGE_KV_URL is not set: run the suite with scripts/test.sh");
    let token = std::env::var("EDGE_FILL_TOKEN")
        .expect("EDGE_FILL_TOKEN is not set: run the suite with scripts/test.sh");
    (edge, token)
}

/// Waits until `name` on the consumer's `/metrics` satisfies `check`, at most `WAIT`.
async fn wait_for_metric(consumer: &ConsumerProcess, name: &str, check: impl Fn(f64) -> bool) {
    if let Err(value) = consumer.wait_for_metric(name, check, WAIT).await {
        panic!(
            "{name} is {value:?} after {WAIT:?}; log:\n{}",
            consumer.log_text()
        );
    }
}

/// Reads `product` from the edge once: it must be served (200) now.
async fn served_now(edge: &Edge, product: ProductId) -> serde_json::Value {
    let response = edge.get_prices(product, None).await.unwrap();
    assert_eq!(response.status(), 200, "the edge does not hold {product}");
    response.json().await.unwrap()
}

/// Nothing was published to the stack's request topic for `product`: the edge was only ever read as a
/// hit, so no other consumer can have filled it.
async fn assert_nothing_published(product: ProductId) {
    assert_eq!(
        published_for(REQUEST_TOPIC, product).await.unwrap(),
        0,
        "a miss at the edge published {product}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_redis_holds_but_the_edge_refused_reaches_the_kv_edge_after_a_takeover() {
    let (edge, token) = kv_edge();
    let vendors = profiles([("alpha", vendor((5, 20), BodyShape::Nested))]);
    let env = TestEnv::new("fill-takeover", vendors, 2_000).await.unwrap();
    let refused: Vec<&str> = SHORT_SESSION
        .iter()
        .copied()
        .chain([
            "--fill-url",
            &edge.base,
            "--fill-token",
            "not-the-fill-token",
        ])
        .collect();
    let mut first = env.start_consumer("refused", &refused).unwrap();
    let product = env.product(1);
    env.publish([product]).await.unwrap();

    // Redis got the result; the edge refused it.
    let stored = env
        .wait_for_results(&[product], WAIT)
        .await
        .unwrap()
        .remove(0);
    wait_for_metric(
        &first,
        "pricefront_cache_writes_total{sink=\"edge\",outcome=\"error\"}",
        |n| n >= 1.0,
    )
    .await;
    first.kill_9().unwrap();
    let asked_before_takeover: u64 = env.simulator.request_counts().values().sum();

    let working: Vec<&str> = SHORT_SESSION
        .iter()
        .copied()
        .chain(["--fill-url", &edge.base, "--fill-token", &token])
        .collect();
    let second = env.start_consumer("takeover", &working).unwrap();
    // Wait on the takeover's own fill, never on the edge: a read before the edge holds the product
    // is a miss, which publishes to the stack's topic, whose consumer (scripts/test.sh) would fill the
    // edge itself and pass this test for a takeover that never fills.
    wait_for_metric(
        &second,
        "pricefront_cache_writes_total{sink=\"edge\",outcome=\"ok\"}",
        |n| n >= 1.0,
    )
    .await;
    let body = served_now(&edge, product).await;
    assert_eq!(
        body["computedAtMs"].as_u64(),
        Some(stored.computed_at_ms),
        "the edge got exactly the result Redis holds: {body}"
    );
    assert_nothing_published(product).await;
    let asked: u64 = env.simulator.request_counts().values().sum();
    assert_eq!(
        asked, asked_before_takeover,
        "the fresh Redis result was filled without a new fan-out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_endpoint_refusing_the_token_is_reported_as_misconfigured_and_not_ready() {
    let (edge, _) = kv_edge();
    refused_fills_are_reported_as_misconfigured(&edge.base, "fill-refused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_without_a_fill_token_is_reported_as_misconfigured_and_not_ready() {
    // It answers every fill 500 `/problems/misconfigured`: not an outage that passes by itself.
    let edge = Edge::from_env("EDGE_NO_FILL_TOKEN_URL").unwrap();
    refused_fills_are_reported_as_misconfigured(&edge.base, "fill-no-token").await;
}

/// A consumer filling the edge at `base` with a token it refuses: the result still reaches Redis, the
/// edge sink is reported misconfigured, `/readyz` says not ready, and the refusals are retried slowly.
async fn refused_fills_are_reported_as_misconfigured(base: &str, name: &str) {
    let vendors = profiles([("alpha", vendor((5, 20), BodyShape::Nested))]);
    let env = TestEnv::new(name, vendors, 2_000).await.unwrap();
    let consumer = env
        .start_consumer(
            "refused",
            &["--fill-url", base, "--fill-token", "not-the-fill-token"],
        )
        .unwrap();
    let product = env.product(1);
    env.publish([product]).await.unwrap();
    env.wait_for_results(&[product], WAIT).await.unwrap();
    wait_for_metric(
        &consumer,
        "pricefront_sink_misconfigured{sink=\"edge\"}",
        |v| v == 1.0,
    )
    .await;
    let ready = reqwest::get(format!("http://127.0.0.1:{}/readyz", consumer.metrics_port))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "not ready while the edge refuses");
    assert!(
        consumer.log_text().contains("ERROR"),
        "said loudly: {}",
        consumer.log_text()
    );
    // It does not spin on a refusal that retrying cannot fix.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let refusals = consumer
        .metric("pricefront_cache_writes_total{sink=\"edge\",outcome=\"error\"}")
        .await
        .expect("the refused fills are counted");
    assert!(
        (1.0..=2.0).contains(&refusals),
        "{refusals} refused fills: a configuration error is retried slowly (and at least once)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_longer_than_the_max_poll_interval_costs_no_rebalance_and_loses_nothing() {
    let mut redis = PrivateRedis::start().await.unwrap();
    let vendors = profiles([("alpha", vendor((5, 20), BodyShape::Nested))]);
    let env = TestEnv::new("redis-outage", vendors, 2_000).await.unwrap();
    let max_poll_ms: u64 = 6_000;
    let max_poll = format!("max.poll.interval.ms={max_poll_ms}");
    let redis_flag = redis.url();
    let consumer = env
        .start_consumer(
            "a",
            &[
                "--redis-url",
                &redis_flag,
                "--redis-timeout-ms",
                "300",
                "--max-in-flight",
                "8",
                "--kafka-option",
                &max_poll,
                "--kafka-option",
                "session.timeout.ms=6000",
                "--kafka-option",
                "heartbeat.interval.ms=1000",
            ],
        )
        .unwrap();
    wait_for_metric(&consumer, "pricefront_assigned_partitions", |n| n == 3.0).await;

    redis.stop();
    let products: Vec<_> = (0..200).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await.unwrap();
    // The window fills up with messages whose results cannot be stored...
    wait_for_metric(&consumer, "pricefront_messages_in_flight", |n| n >= 8.0).await;
    // ...and stays full for longer than the max poll interval.
    tokio::time::sleep(Duration::from_millis(2 * max_poll_ms + 2_000)).await;
    redis.restart().await.unwrap();

    let cache = RedisCache::connect(&redis.url(), Duration::from_secs(5))
        .await
        .expect("the private Redis answers");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut stored = 0;
        for &product in &products {
            if cache.get(product).await.ok().flatten().is_some() {
                stored += 1;
            }
        }
        if stored == products.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lost {} of {} after Redis returned; log:\n{}",
            products.len() - stored,
            products.len(),
            consumer.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let revoked = consumer
        .metric("pricefront_rebalances_total{event=\"revoke\"}")
        .await;
    let assigned = consumer
        .metric("pricefront_rebalances_total{event=\"assign\"}")
        .await;
    assert_eq!(
        (revoked.unwrap_or(0.0), assigned),
        (0.0, Some(1.0)),
        "the consumer left its group (revoked, assigned); log:\n{}",
        consumer.log_text()
    );
    assert_eq!(
        consumer.metric("pricefront_assigned_partitions").await,
        Some(3.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_does_not_hold_back_the_edge_fill() {
    let (edge, token) = kv_edge();
    let mut redis = PrivateRedis::start().await.unwrap();
    let vendors = profiles([("alpha", vendor((5, 20), BodyShape::Nested))]);
    let env = TestEnv::new("fill-redis-down", vendors, 2_000)
        .await
        .unwrap();
    let redis_flag = redis.url();
    let consumer = env
        .start_consumer(
            "a",
            &[
                "--redis-url",
                &redis_flag,
                "--redis-timeout-ms",
                "300",
                "--fill-url",
                &edge.base,
                "--fill-token",
                &token,
            ],
        )
        .unwrap();
    wait_for_metric(&consumer, "pricefront_assigned_partitions", |n| n == 3.0).await;
    redis.stop();
    let product = env.product(1);
    env.publish([product]).await.unwrap();
    // The tested consumer's own fill, not a read of the edge (see the takeover test).
    wait_for_metric(
        &consumer,
        "pricefront_cache_writes_total{sink=\"edge\",outcome=\"ok\"}",
        |n| n >= 1.0,
    )
    .await;
    assert!(
        !redis.answers(),
        "Redis stayed down while the edge was filled"
    );
    let body = served_now(&edge, product).await;
    let offers = body["offers"].as_array().cloned().unwrap_or_default();
    assert_eq!(offers.len(), 1, "its one vendor's offer: {body}");
    assert_eq!(offers[0]["vendor"], "alpha", "{body}");
    assert_eq!(
        offers[0]["price"]["minorUnits"],
        env.expected_best(product, &["alpha"]).minor_units,
        "{body}"
    );
    assert_nothing_published(product).await;
    redis.restart().await.unwrap();
}

/// A comparer that panics for one product while `panicking` is set.
struct PanicsFor {
    inner: Comparer,
    product: ProductId,
    panicking: Arc<AtomicBool>,
}

impl Compare for PanicsFor {
    fn compare(
        &self,
        product: ProductId,
        trace: TraceContext,
    ) -> Pin<Box<dyn Future<Output = Comparison> + Send + '_>> {
        if product == self.product && self.panicking.load(Ordering::SeqCst) {
            return Box::pin(async move { panic!("injected: comparing {product} panics") });
        }
        Compare::compare(&self.inner, product, trace)
    }
}

/// The group's committed offset per partition of `topic`.
fn committed_offsets(group: &str, topic: &str) -> BTreeMap<i32, i64> {
    pricefront_harness::topic::committed_offsets(&pricefront_harness::brokers(), group, topic)
        .expect("reading the committed offsets")
}

/// Every partition's end offset of `topic`.
fn end_offsets(topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    (0..3)
        .filter_map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            (high > 0).then_some((p, high))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_comparison_is_dead_lettered_and_frees_its_product_and_partition() {
    let vendors = profiles([("alpha", vendor((5, 20), BodyShape::Nested))]);
    let env = TestEnv::new("panic", vendors, 2_000).await.unwrap();
    let settings = settings_for(&env);
    let metrics = Metrics::new();
    let client = reqwest::Client::new();
    let vendors = vendors::load(&env.vendors_file).unwrap();
    let lag = RuntimeLag::new(
        metrics.runtime_lag.clone(),
        vendors::shortest_timeout(&vendors),
    );
    lag.start();
    let comparer = Comparer::new(
        client,
        vendors,
        vendors::fetch::FetchLimits::of(&settings),
        settings.freshness_policy(),
        metrics.clone(),
        lag.clone(),
        Some(env.cache.connection()),
    );
    let panicking = Arc::new(AtomicBool::new(true));
    let doomed = env.product(0);
    let comparer = PanicsFor {
        inner: comparer,
        product: doomed,
        panicking: panicking.clone(),
    };
    let outputs = Outputs {
        cache: env.cache.clone(),
        fill: None,
        metrics,
        lag,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consuming = pipeline::run(&settings, comparer, outputs, async {
        let _ = stopped.await;
    });
    let checks = async {
        let others: Vec<_> = (1..20).map(|n| env.product(n)).collect();
        env.publish([doomed]).await.unwrap();
        env.publish([doomed]).await.unwrap();
        env.publish(others.iter().copied()).await.unwrap();
        env.wait_for_results(&others, WAIT).await.unwrap();

        // Both messages of the panicking product end as dead letters with the reason.
        let deadline = tokio::time::Instant::now() + WAIT;
        let key = doomed.to_string();
        loop {
            let letters: Vec<_> = read_to_end(&brokers(), &env.dead_letter_topic, WAIT)
                .unwrap()
                .into_iter()
                .filter(|r| r.key.as_deref() == Some(key.as_bytes()))
                .collect();
            if letters.len() == 2 {
                for letter in &letters {
                    let reason = letter.header(ERROR_HEADER).unwrap_or_default();
                    assert!(reason.contains("panicked"), "{reason}");
                }
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of 2 messages of the panicking product dead-lettered",
                letters.len()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        // The product is free again: once it stops panicking it gets a result.
        panicking.store(false, Ordering::SeqCst);
        env.publish([doomed]).await.unwrap();
        env.wait_for_results(&[doomed], WAIT).await.unwrap();

        // And every partition's offset is committed to its end.
        let ends = end_offsets(&env.topic);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let committed = committed_offsets(&env.group, &env.topic);
            if committed == ends {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "committed {committed:?}, ends {ends:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let _ = stop.send(());
    };
    let (stopped_cleanly, ()) = tokio::join!(consuming, checks);
    stopped_cleanly.unwrap();
}

/// The in-process consumer's settings for a test's topics.
fn settings_for(env: &TestEnv) -> Settings {
    let vendors_file = env.vendors_file.to_str().unwrap().to_owned();
    Settings::from_flags([
        "pricefront-consumer",
        "--brokers",
        &brokers(),
        "--topic",
        &env.topic,
        "--dead-letter-topic",
        &env.dead_letter_topic,
        "--group-id",
        &env.group,
        "--redis-url",
        &redis_url(),
        "--vendors",
        &vendors_file,
        "--commit-interval-ms",
        "200",
        "--metrics-listen",
        "127.0.0.1:0",
    ])
    .unwrap()
}
