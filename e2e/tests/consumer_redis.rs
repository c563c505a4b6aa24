//! The consumer and its Redis: the newer of two results is the one kept, a result without offers never
//! replaces a servable one with offers (stale-if-error), and a consumer started while Redis is down
//! waits for it instead of exiting.
//! Start the stack first: `dev/stack.sh up` (`make test` does). The consumer binary is the debug build
//! (`cargo test` builds it) unless PRICEFRONT_CONSUMER_BIN names another.

use std::time::Duration;

use pricefront_consumer::sinks::cache::RedisCache;
use pricefront_core::newest_wins::Replacement;
use pricefront_core::{
    Comparison, FailureKind, FreshnessPolicy, Money, Offer, ProductId, UnixMillis, VendorFailure,
    VendorOutcome,
};
use pricefront_harness::edge::unused_product;
use pricefront_harness::private_redis::PrivateRedis;
use pricefront_harness::{now_ms, profiles, redis_url, vendor, ConsumerProcess, TestEnv};
use vendor_sim::BodyShape;

const WAIT: Duration = Duration::from_secs(120);

/// A comparison of `product` computed at `computed_at_ms`, told apart from others by `note`.
fn comparison(product: ProductId, computed_at_ms: UnixMillis, note: &str) -> Comparison {
    let mut comparison =
        Comparison::aggregate(product, [], computed_at_ms, &FreshnessPolicy::default());
    comparison.failures.push(VendorFailure {
        vendor: "alpha".into(),
        kind: FailureKind::Timeout,
        detail: note.into(),
        attempts: 1,
    });
    comparison
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_result_never_replaces_a_newer_one_in_redis() {
    let cache = RedisCache::connect(&redis_url(), Duration::from_secs(5))
        .await
        .expect("Redis is not reachable: start the stack with `dev/stack.sh up`");
    let product = unused_product();
    let now = now_ms();
    let newer = comparison(product, now, "newer");
    let older = comparison(product, now - 1_000, "older");

    assert_eq!(
        cache.put(&newer, now_ms()).await.unwrap(),
        Replacement::Store
    );
    assert_eq!(
        cache.put(&older, now_ms()).await.unwrap(),
        Replacement::KeepNewer
    );
    assert_eq!(
        cache.get(product).await.unwrap().as_ref(),
        Some(&newer),
        "the older result replaced the newer one"
    );

    let same_time = comparison(product, now, "same time, written later");
    assert_eq!(
        cache.put(&same_time, now_ms()).await.unwrap(),
        Replacement::Store
    );
    assert_eq!(
        cache.get(product).await.unwrap().as_ref(),
        Some(&same_time),
        "a result computed at the same time replaces (a retried write is idempotent)"
    );
}

/// A comparison of `product` computed at `computed_at_ms` with one offer.
fn with_offer(product: ProductId, computed_at_ms: UnixMillis) -> Comparison {
    let offer = Offer {
        vendor: "alpha".into(),
        price: Money {
            minor_units: 1_999,
            currency: "EUR".parse().unwrap(),
        },
        url: None,
    };
    Comparison::aggregate(
        product,
        [VendorOutcome::Answered {
            offer,
            guarantee_ms: 60_000,
        }],
        computed_at_ms,
        &FreshnessPolicy::default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_without_offers_never_replaces_a_servable_one_with_offers_in_redis() {
    let cache = RedisCache::connect(&redis_url(), Duration::from_secs(5))
        .await
        .expect("Redis is not reachable: start the stack with `dev/stack.sh up`");
    let product = unused_product();
    let now = now_ms();
    let useful = with_offer(product, now - 1_000);
    assert!(useful.stale_until_ms > now);
    assert_eq!(
        cache.put(&useful, now_ms()).await.unwrap(),
        Replacement::Store
    );
    let empty = comparison(product, now, "every vendor failed");
    assert_eq!(
        cache.put(&empty, now_ms()).await.unwrap(),
        Replacement::KeepUseful
    );
    assert_eq!(
        cache.get(product).await.unwrap().as_ref(),
        Some(&useful),
        "the empty result replaced the one with an offer"
    );
    let newer_offer = with_offer(product, now);
    assert_eq!(
        cache.put(&newer_offer, now_ms()).await.unwrap(),
        Replacement::Store,
        "a result with an offer replaces"
    );
    // Past the stored result's stale-until, the empty result is all there is: it is stored.
    let much_later = comparison(product, newer_offer.stale_until_ms, "later");
    assert_eq!(
        cache
            .put(&much_later, much_later.computed_at_ms)
            .await
            .unwrap(),
        Replacement::Store
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_started_while_redis_is_down_waits_for_it_then_stores_results() {
    let env = TestEnv::new(
        "redis-late",
        profiles([("alpha", vendor((5, 20), BodyShape::Nested))]),
        2_000,
    )
    .await
    .unwrap();
    // A Redis of this test's own, on a port of its own, down until the consumer runs.
    let mut redis = PrivateRedis::start().await.unwrap();
    redis.stop();
    let private_redis_url = redis.url();
    let consumer = env
        .start_consumer("a", &["--redis-url", &private_redis_url])
        .unwrap();
    let readyz = format!("http://127.0.0.1:{}/readyz", consumer.metrics_port);

    // Running, holding partitions, and not ready, because Redis is not there.
    let (status, body) = wait_for(&consumer, "it holds partitions", || async {
        if consumer.assigned_partitions().await == 0 {
            return None;
        }
        readiness(&readyz).await
    })
    .await;
    assert_eq!(status, 503, "not ready while Redis is down: {body}");
    assert!(body.contains("redis"), "{body}");

    // Requests that arrive while Redis is down wait for it.
    let products: Vec<_> = (0..3).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await.unwrap();
    let metrics = format!("http://127.0.0.1:{}/metrics", consumer.metrics_port);
    wait_for(&consumer, "it consumed the requests", || async {
        let text = reqwest::get(&metrics).await.ok()?.text().await.ok()?;
        let consumed = text
            .lines()
            .find_map(|l| l.strip_prefix("pricefront_messages_consumed_total "))?;
        (consumed.trim().parse::<f64>().ok()? >= products.len() as f64).then_some(())
    })
    .await;

    redis.restart().await.unwrap();
    wait_for(&consumer, "it is ready once Redis is up", || async {
        readiness(&readyz)
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await;
    let private_cache = RedisCache::connect(&private_redis_url, Duration::from_secs(5))
        .await
        .expect("the private Redis answers");
    let stored = wait_for(
        &consumer,
        "every request ends as a stored result",
        || async {
            let mut stored = Vec::new();
            for product in &products {
                stored.push(private_cache.get(*product).await.ok()??);
            }
            Some(stored)
        },
    )
    .await;
    for result in stored {
        assert!(result.complete, "{result:?}");
        assert_eq!(
            result.best_offer.unwrap().price,
            env.expected_best(result.product_id, &["alpha"])
        );
    }
}

/// `/readyz`'s status and body, or `None` while it does not answer.
async fn readiness(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

/// Polls `probe` until it gives a value, failing if the consumer exits or after [`WAIT`].
async fn wait_for<T, F, Fut>(consumer: &ConsumerProcess, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            !has_exited(consumer.child.id()),
            "the consumer exited before {what}; log:\n{}",
            consumer.log_text()
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {WAIT:?} for: {what}; log:\n{}",
            consumer.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether child process `pid` has exited (it is gone, or waits to be reaped).
fn has_exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}
