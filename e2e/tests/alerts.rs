//! The service's alerts (ops/prometheus/rules.yml) evaluated by a real Prometheus (Debian's package,
//! started by ops/prometheus/local.sh as `make dev` starts it) scraping a real consumer, against the
//! real broker and Redis: a vendor that fails every call opens its circuit, and the circuit alert fires
//! for it, read from Prometheus's own HTTP API, and not for the vendor that answers.
//! The rules are loaded with every `for:` at 0s, so that the test takes seconds: the expressions are
//! the shipped ones; the `for:` durations are tested by `promtool test rules` (ops/prometheus/rules.test.yml).
//! Start the stack first: `dev/stack.sh up` (`make test` does).

use std::time::Duration;

use pricefront_harness::prometheus::{rules_file, rules_without_hold, Prometheus};
use pricefront_harness::{failing_vendor, profiles, vendor, TestEnv, QUICK_BREAKER};
use vendor_sim::BodyShape;

const WAIT: Duration = Duration::from_secs(120);
const CIRCUIT_ALERT: &str = "PricefrontVendorCircuitOpen";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_failing_every_call_fires_its_circuit_alert_in_prometheus() {
    let vendors = profiles([
        ("steady", vendor((5, 20), BodyShape::Flat)),
        ("broken", failing_vendor(500)),
    ]);
    // One attempt per call and a decision after 4 calls: the circuit opens within the first products.
    let env = TestEnv::with_vendor_settings("alerts", vendors, 2_000, &[("broken", QUICK_BREAKER)])
        .await
        .unwrap();
    let consumer = env
        .start_consumer(
            "a",
            &["--max-in-flight", "4", "--vendor-deadline-ms", "3000"],
        )
        .unwrap();
    let rules = rules_without_hold(&rules_file(), &env.dir).unwrap();
    let prometheus = Prometheus::start(&env.dir, &rules, 1, &[consumer.metrics_port])
        .await
        .unwrap();

    let products: Vec<_> = (0..40).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await.unwrap();
    env.wait_for_results(&products, WAIT).await.unwrap();

    let fired = prometheus
        .wait_for_firing(
            CIRCUIT_ALERT,
            &[("vendor", "broken")],
            Duration::from_secs(60),
        )
        .await;
    assert!(
        fired.is_ok(),
        "{fired:?}\nalerts: {:?}\nprometheus: {}\nconsumer: {}",
        prometheus.alerts().await,
        prometheus.log_text(),
        consumer.log_text()
    );
    let alert = fired.unwrap();
    assert!(
        ["warning", "critical"].contains(&alert.labels["severity"].as_str()),
        "{alert:?}"
    );
    let alerts = prometheus.alerts().await.unwrap();
    assert!(
        !alerts.iter().any(|alert| alert.name() == CIRCUIT_ALERT
            && alert.labels.get("vendor").map(String::as_str) == Some("steady")),
        "the vendor that answers has no circuit alert: {alerts:?}"
    );
}
