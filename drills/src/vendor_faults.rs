//! Drill 4: every vendor turns faulty under load (errors, hangs, malformed and oversized bodies), while
//! each still answers most requests. Every request must still end as a stored result, partial where a
//! vendor failed; at most [`Plan::max_without_offer`] of the results may lack every offer (with
//! independent faults fewer than 1 in 1,000 should); no circuit may open for a vendor that answered at
//! least half of its requests; the consumer must stay up, and its memory must stay bounded (its peak
//! RSS is reported).

use std::collections::BTreeMap;
use std::time::Duration;

use pricefront_core::{Comparison, FailureKind};
use pricefront_harness::results;
use pricefront_harness::{vendor, TestEnv};
use tokio::time::Instant;
use vendor_sim::{expected_price, VendorProfile};

use crate::support::{self, secs, shape_of, FIVE_VENDORS};
use crate::{DrillError, DrillReport};

/// The load, the faults and the bounds of the drill.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Products published at once.
    pub products: u64,
    /// The share of results stored (with healthy vendors) when the faults start.
    pub faults_at: f64,
    /// Share of vendor requests answered with a 503.
    pub error_rate: f64,
    /// Share of vendor requests never answered.
    pub hang_rate: f64,
    /// Share of vendor requests answered with a body that is not JSON.
    pub malformed_rate: f64,
    /// Share of vendor requests answered with an oversized body.
    pub oversized_rate: f64,
    /// The size of an oversized body.
    pub oversized_bytes: usize,
    /// The timeout of one vendor attempt (the vendors file's `timeout_ms`).
    pub vendor_timeout_ms: u64,
    /// The consumer's deadline per vendor, retries included.
    pub vendor_deadline_ms: u64,
    /// The consumer's in-flight window.
    pub max_in_flight: u32,
    /// The largest vendor body the consumer reads.
    pub max_body_bytes: usize,
    /// The peak RSS of the consumer above which memory counts as unbounded, in MiB.
    pub memory_bound_mib: u64,
    /// The longest wait for every result.
    pub limit: Duration,
    /// The largest share of results without any offer that passes.
    pub max_without_offer: f64,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            products: 2_000,
            faults_at: 0.05,
            error_rate: 0.30,
            hang_rate: 0.10,
            malformed_rate: 0.05,
            oversized_rate: 0.02,
            oversized_bytes: 8 << 20,
            vendor_timeout_ms: 1_000,
            vendor_deadline_ms: 3_000,
            max_in_flight: 256,
            max_body_bytes: 1 << 20,
            memory_bound_mib: 512,
            limit: Duration::from_secs(300),
            max_without_offer: 0.01,
        }
    }
}

/// Runs the drill.
pub async fn run(plan: &Plan) -> Result<DrillReport, DrillError> {
    support::check_stack().await?;
    let started = Instant::now();
    let mut report = DrillReport {
        name: "vendor faults".into(),
        fault: format!(
            "5 vendors turn to {:.0}% hangs, {:.0}% 503s, {:.0}% malformed, {:.0}% {} MiB bodies at {:.0}% of {} requests",
            plan.hang_rate * 100.0,
            plan.error_rate * 100.0,
            plan.malformed_rate * 100.0,
            plan.oversized_rate * 100.0,
            plan.oversized_bytes >> 20,
            plan.faults_at * 100.0,
            plan.products
        ),
        requests: plan.products,
        ..DrillReport::default()
    };
    let env = TestEnv::new(
        "drill-vendors",
        support::five_healthy_vendors(),
        plan.vendor_timeout_ms,
    )
    .await?;
    let (deadline, window, cap) = (
        plan.vendor_deadline_ms.to_string(),
        plan.max_in_flight.to_string(),
        plan.max_body_bytes.to_string(),
    );
    let mut consumer = env.start_consumer(
        "a",
        &[
            "--vendor-deadline-ms",
            deadline.as_str(),
            "--vendor-backoff-ms",
            "50",
            "--max-in-flight",
            window.as_str(),
            "--max-body-bytes",
            cap.as_str(),
        ],
    )?;
    let pid = consumer.child.id();
    let products = env.products(plan.products);
    env.publish(products.iter().copied()).await?;
    let target = (plan.products as f64 * plan.faults_at) as usize;
    results::wait_progress(&products, target, Duration::from_secs(120)).await?;
    for (i, name) in FIVE_VENDORS.iter().enumerate() {
        env.simulator.set_profile(
            name,
            VendorProfile {
                error_rate: plan.error_rate,
                hang_rate: plan.hang_rate,
                malformed_rate: plan.malformed_rate,
                oversized_rate: plan.oversized_rate,
                oversized_bytes: plan.oversized_bytes,
                ..vendor((50, 150), shape_of(i))
            },
        );
    }
    let faults_from = Instant::now();
    let stored_at_faults = results::stored(&products).await?.len();

    // Sample the consumer's health while it works through the faults.
    let mut health_failures = 0;
    let mut samples = 0;
    let health = format!("http://127.0.0.1:{}/healthz", consumer.metrics_port);
    let wait_deadline = Instant::now() + plan.limit;
    let mut results = Vec::new();
    while Instant::now() < wait_deadline {
        samples += 1;
        if !matches!(support::status_of(&health).await, Ok(200)) {
            health_failures += 1;
        }
        results = results::stored(&products).await?;
        if results.len() == products.len() || consumer.exit_status().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let lost = (products.len() - results.len()) as u64;
    report.lost = Some(lost);
    report.check(
        lost == 0,
        format!(
            "{lost} requests without a stored result after {:?}",
            plan.limit
        ),
    );
    report.note(format!(
        "faults began with {stored_at_faults} results stored; the rest took {}",
        secs(faults_from.elapsed())
    ));

    match consumer.exit_status() {
        Some(status) => report.fail(format!("the consumer crashed: {status}")),
        None => {
            let status = support::status_of(&health).await.ok();
            report.check(
                status == Some(200),
                format!("/healthz answered {status:?} at the end"),
            );
            report.note(format!(
                "the consumer stayed up: /healthz 200 at the end, {} of {samples} samples failed during the drill",
                health_failures
            ));
        }
    }
    report.check(
        health_failures == 0,
        format!("/healthz failed {health_failures} of {samples} times during the drill"),
    );
    match pricefront_harness::process::memory(pid) {
        Ok(pricefront_harness::process::Memory {
            peak_kib: peak,
            current_kib: now,
            ..
        }) => {
            report.note(format!(
                "consumer memory: peak RSS (VmHWM) {:.1} MiB, RSS at the end {:.1} MiB (--max-in-flight {}, --max-body-bytes {}, vendor timeout {} ms, deadline {} ms)",
                peak as f64 / 1024.0,
                now as f64 / 1024.0,
                plan.max_in_flight,
                plan.max_body_bytes,
                plan.vendor_timeout_ms,
                plan.vendor_deadline_ms
            ));
            report.check(
                peak / 1024 <= plan.memory_bound_mib,
                format!(
                    "peak RSS {} MiB above the bound of {} MiB",
                    peak / 1024,
                    plan.memory_bound_mib
                ),
            );
        }
        Err(_) => report.note("the consumer's memory could not be read"),
    }

    check_results(&results, &env, plan, &mut report);
    match pricefront_harness::metrics::page(consumer.metrics_port).await {
        Ok(page) => support::check_circuits(&page, &mut report, None),
        Err(error) => report.fail(format!(
            "the consumer's /metrics could not be read: {error}"
        )),
    }
    let twice = support::compared_twice(&support::compared_counts(&env));
    report.duplicated = Some(twice);
    let calls: u64 = env.simulator.request_counts().values().sum();
    report.note(format!(
        "duplicates: {twice} products compared twice; {calls} vendor calls for {} products ({:.2} per product and vendor, retries of 503s included)",
        products.len(),
        calls as f64 / (products.len() * FIVE_VENDORS.len()) as f64
    ));
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Checks every stored result: one outcome per vendor, partial exactly when a vendor failed, and every
/// offer at the price the simulator gives in the vendor's configured currency; few results without any
/// offer. Checks that the faults happened: partial results exist, and every injected kind is among the
/// failures.
fn check_results(results: &[Comparison], env: &TestEnv, plan: &Plan, report: &mut DrillReport) {
    let (mut complete, mut partial, mut empty, mut wrong) = (0, 0, 0, 0);
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for result in results {
        for failure in &result.failures {
            let kind = serde_json::to_value(failure.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *kinds.entry(kind).or_default() += 1;
        }
        let prices_right = result.offers.iter().all(|offer| {
            let currency = env
                .profiles
                .vendors
                .get(&offer.vendor)
                .and_then(|profile| profile.currency.parse().ok());
            currency.is_some_and(|currency| {
                offer.price == expected_price(&offer.vendor, result.product_id, currency)
            })
        });
        if result.offers.len() + result.failures.len() != FIVE_VENDORS.len()
            || result.complete != result.failures.is_empty()
            || !prices_right
        {
            wrong += 1;
        } else if result.complete {
            complete += 1;
        } else if result.offers.is_empty() {
            empty += 1;
        } else {
            partial += 1;
        }
    }
    report.note(format!(
        "results: {complete} complete, {partial} partial, {empty} with every vendor failed; vendor failures by kind: {kinds:?}"
    ));
    report.check(
        wrong == 0,
        format!(
            "{wrong} stored results inconsistent (outcomes per vendor, completeness or prices)"
        ),
    );
    report.check(
        partial > 0,
        "no partial result: the faults did not reach the consumer",
    );
    report.check(
        empty as f64 <= plan.max_without_offer * results.len() as f64,
        format!(
            "{empty} of {} results ({:.1}%) without any offer, more than {:.1}%, while every vendor answered most requests",
            results.len(),
            empty as f64 * 100.0 / results.len().max(1) as f64,
            plan.max_without_offer * 100.0
        ),
    );
    for injected in [
        FailureKind::Timeout,
        FailureKind::HttpStatus,
        FailureKind::MalformedBody,
        FailureKind::TooLarge,
    ] {
        let seen = results
            .iter()
            .flat_map(|r| &r.failures)
            .any(|f| f.kind == injected);
        report.check(
            seen,
            format!("no {injected:?} failure among the results: that fault was never injected"),
        );
    }
}
