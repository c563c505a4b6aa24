//! Per-vendor quotas and circuit breakers in a real consumer process, against the real broker and Redis,
//! with simulated vendors: a rate quota caps what a vendor is sent, and a vendor answering 429 is held
//! for its `Retry-After`, then, answering 429 again past it, left alone while its circuit is open.
//! Start the stack first: `dev/stack.sh up` (`make test` does). The consumer binary is the debug build
//! (`cargo test` builds it) unless PRICEFRONT_CONSUMER_BIN names another.

use std::time::Duration;

use pricefront_core::{Comparison, FailureKind, VendorFailure};
use pricefront_harness::{failing_vendor, profiles, vendor, TestEnv, QUICK_BREAKER};
use tokio::time::Instant;
use vendor_sim::BodyShape;

const WAIT: Duration = Duration::from_secs(120);

/// The failure of `vendor` in `result`, if it failed.
fn failure_of<'a>(result: &'a Comparison, vendor: &str) -> Option<&'a VendorFailure> {
    result.failures.iter().find(|f| f.vendor == vendor)
}

fn answered(result: &Comparison, vendor: &str) -> bool {
    result.offers.iter().any(|o| o.vendor == vendor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_quota_caps_the_requests_and_the_rest_fail_as_quota() {
    const RATE: f64 = 1.5;
    let vendors = profiles([
        ("steady", vendor((5, 20), BodyShape::Flat)),
        ("limited", vendor((5, 20), BodyShape::Nested)),
    ]);
    let env = TestEnv::with_vendor_settings(
        "quota",
        vendors,
        2_000,
        &[("limited", &format!("max_requests_per_second = {RATE}"))],
    )
    .await
    .unwrap();
    // Taken before the consumer starts, so before its token bucket is made: an upper bound of the
    // bucket's age.
    let started = Instant::now();
    let consumer = env
        .start_consumer("a", &["--vendor-deadline-ms", "1500"])
        .unwrap();
    let products: Vec<_> = (0..40).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await.unwrap();
    let results = env.wait_for_results(&products, WAIT).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();

    let sent = env.simulator.request_counts()["limited"];
    let burst = RATE.ceil().max(1.0);
    let allowance = burst + RATE * elapsed;
    assert!(
        sent as f64 <= allowance,
        "limited was sent {sent} requests in {elapsed:.2} s: more than the bucket's {allowance:.1}"
    );

    println!("limited: {sent} requests in {elapsed:.2} s, the bucket allowing {allowance:.1}");
    let (mut limited_answered, mut refused) = (0, 0);
    for result in &results {
        assert!(answered(result, "steady"), "{result:?}");
        if answered(result, "limited") {
            limited_answered += 1;
            continue;
        }
        assert!(!result.complete, "{result:?}");
        let failure = failure_of(result, "limited").expect("limited neither answered nor failed");
        // A token granted just before the deadline may leave its request cut by the deadline.
        match failure.kind {
            FailureKind::Quota => {
                refused += 1;
                assert_eq!(failure.attempts, 0, "no request without a token");
                assert!(
                    failure.detail.contains("max_requests_per_second"),
                    "{}",
                    failure.detail
                );
            }
            FailureKind::Deadline => {}
            other => panic!("limited failed with {other:?}: {failure:?}"),
        }
    }
    assert!(
        limited_answered >= 1,
        "the bucket's first tokens went unused"
    );
    assert!(
        refused >= products.len() / 2,
        "only {refused} of {} quota failures ({limited_answered} answered)",
        products.len()
    );
    assert_eq!(
        consumer
            .metric("pricefront_vendor_rejected_total{vendor=\"limited\",reason=\"quota\"}")
            .await,
        Some(refused as f64)
    );
    assert_eq!(
        consumer
            .metric("pricefront_vendor_requests_total{vendor=\"limited\"}")
            .await,
        Some(sent as f64)
    );
    assert_eq!(
        consumer
            .metric("pricefront_vendor_circuit_state{vendor=\"limited\"}")
            .await,
        Some(0.0),
        "quota refusals are not vendor failures"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_answering_429_is_held_for_its_retry_after_then_its_circuit_opens_on_the_rate() {
    let vendors = profiles([
        ("steady", vendor((5, 20), BodyShape::Flat)),
        ("throttling", failing_vendor(429)),
    ]);
    // The simulator's 429 says `Retry-After: 1`. One attempt per call, and a decision after 4 calls, so
    // that the test is short: the first 429s only hold the vendor for 1 s; the 429s to requests sent
    // after that are failures, and 4 of them open the circuit.
    let env =
        TestEnv::with_vendor_settings("circuit", vendors, 2_000, &[("throttling", QUICK_BREAKER)])
            .await
            .unwrap();
    // A small window, so that few calls are under way when the first 429 comes back.
    let consumer = env
        .start_consumer(
            "a",
            &["--max-in-flight", "4", "--vendor-deadline-ms", "3000"],
        )
        .unwrap();
    let products: Vec<_> = (0..200).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await.unwrap();
    let results = env.wait_for_results(&products, WAIT).await.unwrap();

    let sent = env.simulator.request_counts()["throttling"];
    println!(
        "throttling: {sent} requests for {} products",
        products.len()
    );
    assert!(
        sent * 10 <= products.len() as u64,
        "throttling was asked {sent} times for {} products",
        products.len()
    );
    let opened = consumer
        .wait_for_metric(
            "pricefront_vendor_circuit_opened_total{vendor=\"throttling\"}",
            |v| v >= 1.0,
            Duration::from_secs(10),
        )
        .await;
    assert!(opened.is_ok(), "{opened:?}\n{}", consumer.log_text());

    let (mut asked, mut rejected) = (0, 0);
    for result in &results {
        assert!(answered(result, "steady"), "{result:?}");
        let failure = failure_of(result, "throttling").expect("throttling always fails");
        match failure.kind {
            FailureKind::HttpStatus => {
                asked += 1;
                assert_eq!(failure.attempts, 1, "{failure:?}");
                assert!(
                    failure.detail.contains("Retry-After 1000 ms"),
                    "{failure:?}"
                );
            }
            FailureKind::CircuitOpen | FailureKind::Quota => {
                rejected += 1;
                assert_eq!(failure.attempts, 0, "{failure:?}");
            }
            other => panic!("throttling failed with {other:?}: {failure:?}"),
        }
    }
    assert_eq!(asked, sent as usize, "one request per call that asked");
    assert!(
        asked > 4,
        "the first 429s ({asked} calls asked) opened the circuit: they only ask to slow down"
    );
    assert_eq!(
        rejected,
        products.len() - asked,
        "every other call was refused"
    );
    let refused = |reason: &str| {
        let series = format!(
            "pricefront_vendor_rejected_total{{vendor=\"throttling\",reason=\"{reason}\"}}"
        );
        let consumer = &consumer;
        async move { consumer.metric(&series).await.unwrap_or(0.0) }
    };
    assert_eq!(
        refused("circuit_open").await + refused("quota").await,
        rejected as f64
    );
    assert_eq!(
        consumer
            .metric("pricefront_vendor_attempts_total{vendor=\"throttling\",outcome=\"http_429\"}")
            .await,
        Some(sent as f64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_budget_is_shared_by_the_group_through_redis() {
    const BUDGET: u64 = 12;
    // A name of this run's own: the budget's count in Redis is per vendor and day.
    let budgeted = format!("budgeted{}", rand::random::<u32>());
    let vendors = pricefront_harness::profiles_of([
        ("steady".to_owned(), vendor((5, 20), BodyShape::Flat)),
        (budgeted.clone(), vendor((5, 20), BodyShape::Nested)),
    ]);
    let settings =
        format!("max_requests_per_day = {BUDGET}\nbudget_time_zone = \"America/Los_Angeles\"");
    let env = TestEnv::with_vendor_settings(
        "budget",
        vendors,
        2_000,
        &[(budgeted.as_str(), settings.as_str())],
    )
    .await
    .unwrap();
    // Two processes of one group: each holds some partitions, both spend the one budget.
    let first = env.start_consumer("a", &[]).unwrap();
    let second = env.start_consumer("b", &[]).unwrap();
    for consumer in [&first, &second] {
        consumer
            .wait_for_metric("pricefront_assigned_partitions", |n| n >= 1.0, WAIT)
            .await
            .unwrap();
    }
    let products: Vec<_> = (0..60).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await.unwrap();
    let results = env.wait_for_results(&products, WAIT).await.unwrap();

    let sent = env
        .simulator
        .request_counts()
        .get(&budgeted)
        .copied()
        .unwrap_or(0);
    assert_eq!(
        sent, BUDGET,
        "the group sent {budgeted} {sent} requests on a budget of {BUDGET}"
    );
    let (mut answered_budgeted, mut spent) = (0, 0);
    for result in &results {
        assert!(answered(result, "steady"), "{result:?}");
        if answered(result, &budgeted) {
            answered_budgeted += 1;
        } else {
            let failure = failure_of(result, &budgeted).expect("a failure");
            assert_eq!(failure.kind, FailureKind::Quota, "{failure:?}");
            assert_eq!(
                failure.attempts, 0,
                "no request past the budget: {failure:?}"
            );
            assert!(failure.detail.contains("daily budget of 12"), "{failure:?}");
            spent += 1;
        }
    }
    assert_eq!(answered_budgeted, BUDGET);
    assert_eq!(spent, products.len() as u64 - BUDGET);
}
