//! The consumer against the real broker, the real Kafka REST proxy and the real Redis, with simulated
//! vendors.
//! Start the stack first: `dev/stack.sh up` (`make test` does). The consumer binary is the debug build
//! (`cargo test` builds it) unless PRICEFRONT_CONSUMER_BIN names another.

use std::collections::BTreeMap;
use std::time::Duration;

use pricefront_consumer::intake::dead_letter::ERROR_HEADER;
use pricefront_core::FailureKind;
use pricefront_harness::metrics;
use pricefront_harness::topic::read_to_end;
use pricefront_harness::{profiles, vendor, TestEnv};
use vendor_sim::{BodyShape, VendorProfile};

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_ends_as_a_stored_result_with_the_best_offer() {
    let vendors = profiles([
        ("alpha", vendor((10, 40), BodyShape::Nested)),
        ("bravo", vendor((10, 40), BodyShape::Flat)),
        ("charlie", vendor((10, 40), BodyShape::Nested)),
    ]);
    let env = TestEnv::new("best-offer", vendors, 2_000).await.unwrap();
    let _consumer = env.start_consumer("a", &[]).unwrap();
    let products: Vec<_> = (0..10).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await.unwrap();

    for result in env.wait_for_results(&products, WAIT).await.unwrap() {
        assert!(result.complete, "{result:?}");
        assert!(result.failures.is_empty());
        assert_eq!(result.offers.len(), 3);
        let best = result.best_offer.as_ref().unwrap();
        assert_eq!(
            best.price,
            env.expected_best(result.product_id, &["alpha", "bravo", "charlie"])
        );
        assert!(result.fresh_until_ms <= result.computed_at_ms + 600_000);
        assert!(best
            .url
            .as_deref()
            .unwrap()
            .ends_with(&result.product_id.to_string()));
    }
}

/// `recomputeMs` is the request's time from its publish to the result, the queue included (what an
/// early refresh must run ahead of), never less than the fan-out: requests that waited in Kafka for a
/// consumer carry at least that wait, where the fan-out alone is the vendors' tens of milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_says_how_long_its_request_took_from_publish_to_result_queue_included() {
    const QUEUED: Duration = Duration::from_millis(1_500);
    let vendors = profiles([("alpha", vendor((10, 40), BodyShape::Nested))]);
    let env = TestEnv::new("recompute", vendors, 2_000).await.unwrap();
    let products: Vec<_> = (0..5).map(|n| env.product(n)).collect();
    let before_publish = pricefront_harness::now_ms();
    env.publish(products.iter().copied()).await.unwrap();
    tokio::time::sleep(QUEUED).await;
    let _consumer = env.start_consumer("a", &[]).unwrap();

    for result in env.wait_for_results(&products, WAIT).await.unwrap() {
        let fan_out = result.fan_out_ms.expect("the fan-out's time");
        let recompute = result
            .recompute_ms
            .expect("the request's time to its result");
        assert!(recompute >= fan_out, "{result:?}");
        assert!(recompute >= QUEUED.as_millis() as u64, "{result:?}");
        assert!(
            recompute <= pricefront_harness::now_ms() - before_publish,
            "{result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_published_through_the_rest_proxy_ends_as_a_stored_result() {
    let env = TestEnv::new(
        "rest-proxy",
        profiles([("alpha", vendor((5, 20), BodyShape::Nested))]),
        2_000,
    )
    .await
    .unwrap();
    let _consumer = env.start_consumer("a", &[]).unwrap();
    let products: Vec<_> = (0..5).map(|n| env.product(n)).collect();
    let positions = env
        .publish_via_rest_proxy(products.iter().copied())
        .await
        .unwrap();
    assert_eq!(positions.len(), 5);
    for result in env.wait_for_results(&products, WAIT).await.unwrap() {
        assert_eq!(
            result.best_offer.unwrap().price,
            env.expected_best(result.product_id, &["alpha"])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_vendor_erroring_and_one_hanging_still_give_a_partial_result() {
    let vendors = profiles([
        ("good", vendor((10, 30), BodyShape::Flat)),
        (
            "erroring",
            VendorProfile {
                error_rate: 1.0,
                ..vendor((5, 10), BodyShape::Nested)
            },
        ),
        (
            "hanging",
            VendorProfile {
                hang_rate: 1.0,
                ..vendor((5, 10), BodyShape::Nested)
            },
        ),
    ]);
    let env = TestEnv::new("partial", vendors, 500).await.unwrap();
    let _consumer = env
        .start_consumer(
            "a",
            &["--vendor-deadline-ms", "4000", "--vendor-backoff-ms", "50"],
        )
        .unwrap();
    let products: Vec<_> = (0..5).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await.unwrap();

    for result in env.wait_for_results(&products, WAIT).await.unwrap() {
        assert!(!result.complete);
        assert_eq!(result.offers.len(), 1);
        assert_eq!(result.best_offer.as_ref().unwrap().vendor, "good");
        let failures: BTreeMap<_, _> = result
            .failures
            .iter()
            .map(|f| (f.vendor.as_str(), f))
            .collect();
        assert_eq!(failures["erroring"].kind, FailureKind::HttpStatus);
        assert_eq!(
            failures["erroring"].attempts, 3,
            "503 is retried up to max_attempts"
        );
        assert_eq!(failures["hanging"].kind, FailureKind::Timeout);
        assert_eq!(failures["hanging"].attempts, 1, "a timeout is not retried");
        // Partial results are fresh for the partial window only (60 s by default), not the guarantee.
        assert_eq!(result.fresh_until_ms - result.computed_at_ms, 60_000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_lands_in_the_dead_letter_topic_and_the_partition_goes_on() {
    let env = TestEnv::new(
        "poison",
        profiles([("alpha", vendor((5, 20), BodyShape::Nested))]),
        2_000,
    )
    .await
    .unwrap();
    let mut consumer = env.start_consumer("a", &[]).unwrap();
    let product = env.product(1);
    let key = product.to_string();
    // The poison shares the product's key, so it sits in the same partition, before the good request.
    let poison = env
        .publish_raw(key.as_bytes(), b"{\"v\":1,\"productId\":\"-3\"")
        .await
        .unwrap();
    let good = env.publish([product]).await.unwrap()[0];
    assert_eq!(poison.partition, good.partition);
    env.wait_for_results(&[product], WAIT).await.unwrap();

    // SIGTERM: a graceful stop that exits 0 and commits past the poison and the good request.
    assert_eq!(consumer.terminate().unwrap(), 0, "{}", consumer.log_text());
    assert!(consumer.log_text().contains("stopped"));
    let committed = committed_offsets(&env.group, &env.topic);
    assert_eq!(committed[&good.partition], good.offset + 1);

    // Everything the consumer wrote to the dead-letter topic, to its end: the poison, once, and nothing else.
    let topic = env.dead_letter_topic.clone();
    let letters = tokio::task::spawn_blocking(move || {
        read_to_end(&pricefront_harness::brokers(), &topic, WAIT)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.key.as_deref(), Some(key.as_bytes()));
    assert_eq!(
        letter.value.as_deref(),
        Some(&b"{\"v\":1,\"productId\":\"-3\""[..])
    );
    let error = letter.header(ERROR_HEADER).unwrap_or_default();
    assert!(error.contains("not a versioned JSON message"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_with_sigkill_mid_run_resumes_and_every_product_gets_a_result() {
    // The vendors' latency bounds the pace, not the machine's speed: a window of 64 with
    // calls of at least 200 ms stores at most 320 results a second, so at least 2.5 s pass
    // between the 200th result, when the kill comes, and the 1,000th. (With calls of 20-60 ms
    // and the consumer started before the publishing, it once stored all 1,000 first.)
    let vendors = profiles([
        ("alpha", vendor((200, 400), BodyShape::Nested)),
        ("bravo", vendor((200, 400), BodyShape::Flat)),
    ]);
    let env = TestEnv::new("kill9", vendors, 2_000).await.unwrap();
    let products: Vec<_> = (0..1_000).map(|n| env.product(n)).collect();
    // All of it is in the topic before the consumer starts, so that the count below starts
    // with the work and not after the publishing.
    env.publish(products.iter().copied()).await.unwrap();
    let mut first = env
        .start_consumer("first", &["--max-in-flight", "64"])
        .unwrap();

    // Kill it once part of the work is stored, with more still in flight.
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.stored(&products).await.unwrap().len() < 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress: {}",
            first.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill_9().unwrap();
    let stored_at_kill = env.stored(&products).await.unwrap().len();
    assert!(
        stored_at_kill < products.len(),
        "the kill came too late to test anything"
    );

    let _second = env
        .start_consumer("second", &["--max-in-flight", "64"])
        .unwrap();
    let results = env.wait_for_results(&products, WAIT).await.unwrap();
    assert_eq!(results.len(), 1_000);
    let asked: u64 = env.simulator.request_counts().values().sum();
    println!(
        "kill -9 after {stored_at_kill} of 1000 stored: lost 0, vendor calls {asked} for {} needed",
        2 * products.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_in_one_group_share_the_partitions_and_finish_everything() {
    let env = TestEnv::new(
        "group",
        profiles([("alpha", vendor((10, 30), BodyShape::Nested))]),
        2_000,
    )
    .await
    .unwrap();
    let one = env.start_consumer("one", &[]).unwrap();
    let two = env.start_consumer("two", &[]).unwrap();
    // Both must hold partitions before the work arrives, or the first would take it all.
    let deadline = tokio::time::Instant::now() + WAIT;
    let assigned = "pricefront_assigned_partitions";
    loop {
        let by_one = one.metric(assigned).await.unwrap_or(0.0);
        let by_two = two.metric(assigned).await.unwrap_or(0.0);
        if by_one > 0.0 && by_two > 0.0 && by_one + by_two == 3.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no assignment:\n{}\n{}",
            one.log_text(),
            two.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let products: Vec<_> = (0..300).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await.unwrap();
    env.wait_for_results(&products, WAIT).await.unwrap();
    let compared = "pricefront_comparison_duration_seconds_count";
    let by_one = one.metric(compared).await.unwrap_or(0.0) as usize;
    let by_two = two.metric(compared).await.unwrap_or(0.0) as usize;
    assert!(
        by_one > 0 && by_two > 0,
        "one compared {by_one}, two compared {by_two}"
    );
    assert!(by_one + by_two >= products.len());
}

/// The group's committed offset per partition of `topic`.
fn committed_offsets(group: &str, topic: &str) -> BTreeMap<i32, i64> {
    pricefront_harness::topic::committed_offsets(&pricefront_harness::brokers(), group, topic)
        .expect("reading the committed offsets")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_reports_metrics_and_readiness() {
    let env = TestEnv::new(
        "metrics",
        profiles([("alpha", vendor((5, 20), BodyShape::Nested))]),
        2_000,
    )
    .await
    .unwrap();
    let consumer = env.start_consumer("a", &[]).unwrap();
    let products: Vec<_> = (0..20).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await.unwrap();
    env.wait_for_results(&products, WAIT).await.unwrap();

    let base = format!("http://127.0.0.1:{}", consumer.metrics_port);
    let get = |path: &'static str| {
        let url = format!("{base}{path}");
        async move { reqwest::get(url).await.unwrap() }
    };
    assert_eq!(get("/healthz").await.status(), 200);
    assert_eq!(
        get("/readyz").await.status(),
        200,
        "holds partitions and reaches Redis"
    );
    let text = get("/metrics").await.text().await.unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    assert_eq!(value("pricefront_messages_consumed_total"), 20.0);
    assert_eq!(value("pricefront_messages_finished_total"), 20.0);
    assert_eq!(value("pricefront_messages_in_flight"), 0.0);
    assert_eq!(
        value("pricefront_cache_writes_total{sink=\"redis\",outcome=\"ok\"}"),
        20.0
    );
    assert_eq!(
        value("pricefront_vendor_request_duration_seconds_count{vendor=\"alpha\"}"),
        20.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_mode_still_finishes_everything() {
    let env = TestEnv::new(
        "sequential",
        profiles([("alpha", vendor((5, 10), BodyShape::Flat))]),
        2_000,
    )
    .await
    .unwrap();
    let _consumer = env.start_consumer("a", &["--mode", "sequential"]).unwrap();
    let products: Vec<_> = (0..30).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await.unwrap();
    assert_eq!(
        env.wait_for_results(&products, WAIT).await.unwrap().len(),
        30
    );
}

/// A member whose window is full holds what it still receives. A rebalance that gives it a partition
/// back must not start those held messages as the first of the new assignment: their finish would let
/// the committed offset pass messages still in flight from before (a crash then loses them). Checked
/// all along, through two rebalances (another member joins, then leaves; with the default
/// `cooperative-sticky`, the partitions taken from `member` come back to it): whatever offset the group
/// has committed, every request below it has its result stored; and in the end every request has one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_giving_a_full_window_its_partitions_back_never_commits_past_unstored_work() {
    let env = TestEnv::new(
        "rebalance-full",
        profiles([("alpha", vendor((50, 1_500), BodyShape::Nested))]),
        2_000,
    )
    .await
    .unwrap();
    let member = env
        .start_consumer(
            "member",
            &["--max-in-flight", "8", "--commit-interval-ms", "100"],
        )
        .unwrap();
    member
        .wait_for_metric("pricefront_assigned_partitions", |v| v == 3.0, WAIT)
        .await
        .expect("the member is assigned every partition");
    let products: Vec<_> = (0..150).map(|n| env.product(n)).collect();
    let placed = env.publish_placed(products.iter().copied()).await.unwrap();
    member
        .wait_for_metric("pricefront_messages_in_flight", |v| v >= 8.0, WAIT)
        .await
        .expect("the window fills");

    // Another member of the group joins and leaves, twice over: each time, the partitions it takes are
    // revoked from `member` and given back when it leaves.
    let (group, topic) = (env.group.clone(), env.topic.clone());
    let visits = tokio::task::spawn_blocking(move || visit_group_twice(&group, &topic));

    let started = tokio::time::Instant::now();
    let mut checks = 0;
    loop {
        let (group, topic) = (env.group.clone(), env.topic.clone());
        let committed = tokio::task::spawn_blocking(move || committed_offsets(&group, &topic))
            .await
            .unwrap();
        // Read after the committed offsets: a result stored by then was stored before they were read.
        let stored: std::collections::HashSet<_> = env
            .stored(&products)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.product_id)
            .collect();
        for (product, position) in &placed {
            let below_committed = committed
                .get(&position.partition)
                .is_some_and(|&c| position.offset < c);
            assert!(
                !below_committed || stored.contains(product),
                "offset {} of partition {} is committed ({committed:?}) but {product} has no result:\n{}",
                position.offset,
                position.partition,
                member.log_text()
            );
        }
        checks += 1;
        if stored.len() == products.len() && visits.is_finished() {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "{} of {} stored",
            stored.len(),
            products.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    visits.await.unwrap();
    let page = pricefront_harness::metrics::page(member.metrics_port)
        .await
        .unwrap();
    let revocations = page
        .lines()
        .find(|l| l.starts_with("pricefront_rebalances_total{event=\"revoke\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    println!("{checks} checks of the committed offsets; {revocations} revocations");
    assert!(
        revocations >= 2.0,
        "the visits revoked the member's partitions {revocations} times"
    );
}

/// Joins `group` on `topic` as a plain client, waits until it is assigned partitions (or 30 s), leaves,
/// and does that twice.
fn visit_group_twice(group: &str, topic: &str) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    for _ in 0..2 {
        let visitor: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", pricefront_harness::brokers())
            .set("group.id", group)
            // The member's assignor: a group cannot mix eager and cooperative assignors.
            .set(
                "partition.assignment.strategy",
                pricefront_consumer::intake::clients::DEFAULT_ASSIGNMENT_STRATEGY,
            )
            .set("enable.auto.commit", "false")
            .create()
            .expect("a visiting consumer");
        visitor.subscribe(&[topic]).expect("subscribing");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline
            && visitor.assignment().map_or(0, |a| a.count()) == 0
        {
            // Nothing it receives is processed or committed: the member consumes it again.
            let _ = visitor.poll(Duration::from_millis(100));
        }
        visitor.unsubscribe();
        drop(visitor);
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The consumer keeps only a few windows of requests prefetched (so that a takeover is quick), and
/// librdkafka waits `fetch.queue.backoff.ms` (1 s by default) before fetching again once that much is
/// queued. With quick vendors the window drains the prefetch well within that second, so unless the
/// consumer shortens the wait, the window runs dry between fetches although the backlog is far larger.
/// Here it must stay at least half full in nearly every sample until the backlog is down to a window.
/// Fetches of 16 KiB (about 80 requests) a partition make the gap plain: the window drains one fetch
/// of each partition in a few tens of milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_window_stays_fed_while_the_backlog_lasts() {
    const WINDOW: usize = 64;
    let env = TestEnv::new(
        "window-fed",
        profiles([("alpha", vendor((50, 50), BodyShape::Flat))]),
        2_000,
    )
    .await
    .unwrap();
    let products: Vec<_> = (0..2_000).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await.unwrap();
    let window = WINDOW.to_string();
    let flags = [
        "--max-in-flight",
        &window,
        "--consumer-option",
        "max.partition.fetch.bytes=16384",
    ];
    let consumer = env.start_consumer("fed", &flags).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut in_flight = Vec::new();
    loop {
        let page = metrics::page(consumer.metrics_port).await.ok();
        let read = |name| page.as_deref().and_then(|p| metrics::sample(p, name));
        let finished = read("pricefront_messages_finished_total").unwrap_or(0.0) as usize;
        if finished + WINDOW >= products.len() {
            break;
        }
        if finished > 0 {
            in_flight.push(read("pricefront_messages_in_flight").unwrap_or(0.0) as usize);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {finished} finished:\n{}",
            consumer.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fed = in_flight.iter().filter(|&&n| n >= WINDOW / 2).count();
    assert!(
        fed * 10 >= in_flight.len() * 9,
        "the window was at least half full in {fed} of {} samples: {in_flight:?}",
        in_flight.len()
    );
}
