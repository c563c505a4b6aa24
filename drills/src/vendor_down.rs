//! Drill: one vendor of five really down under load (every request fails or hangs), then back. Its
//! circuit must open, the other four must keep answering, at least [`Plan::min_with_offer`] of the
//! results must carry an offer, the down vendor must be tried again and its circuit close once it is
//! back, and every request must end as a stored result.

use std::time::Duration;

use pricefront_core::ProductId;
use pricefront_harness::{results, vendor, ConsumerProcess, TestEnv};
use tokio::time::Instant;
use vendor_sim::VendorProfile;

use crate::support::{self, secs, shape_of, FIVE_VENDORS};
use crate::{DrillError, DrillReport};

/// The load, the outage and the bounds of the drill.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Products published a second, all through the drill.
    pub per_second: u64,
    /// Healthy load before the vendor goes down.
    pub warm_up: Duration,
    /// How long the vendor stays down.
    pub down_for: Duration,
    /// The longest wait, once the vendor is back, for its circuit to close.
    pub recovery_limit: Duration,
    /// The timeout of one vendor attempt (the vendors file's `timeout_ms`).
    pub vendor_timeout_ms: u64,
    /// The consumer's in-flight window.
    pub max_in_flight: u32,
    /// The smallest share of results with an offer that passes.
    pub min_with_offer: f64,
    /// The longest wait for every result at the end.
    pub limit: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            per_second: 50,
            warm_up: Duration::from_secs(2),
            down_for: Duration::from_secs(12),
            recovery_limit: Duration::from_secs(90),
            vendor_timeout_ms: 1_000,
            max_in_flight: 256,
            min_with_offer: 0.99,
            limit: Duration::from_secs(120),
        }
    }
}

impl Plan {
    /// The short version, for `make test`.
    pub fn short() -> Self {
        Self {
            per_second: 40,
            down_for: Duration::from_secs(8),
            ..Self::default()
        }
    }
}

/// The vendor taken down: the last of [`FIVE_VENDORS`].
const DOWN: &str = "echo";

/// Runs the drill.
pub async fn run(plan: &Plan) -> Result<DrillReport, DrillError> {
    support::check_stack().await?;
    let started = Instant::now();
    let mut report = DrillReport {
        name: "one vendor down".into(),
        fault: format!(
            "1 of 5 vendors ({DOWN}) down for {} (every request 503 or hung), then back, under {} requests/s",
            secs(plan.down_for),
            plan.per_second
        ),
        ..DrillReport::default()
    };
    let env = TestEnv::new(
        "drill-vendor-down",
        support::five_healthy_vendors(),
        plan.vendor_timeout_ms,
    )
    .await?;
    let window = plan.max_in_flight.to_string();
    let consumer = env.start_consumer(
        "a",
        &[
            "--vendor-deadline-ms",
            "3000",
            "--max-in-flight",
            window.as_str(),
        ],
    )?;
    let healthy = vendor((50, 150), shape_of(FIVE_VENDORS.len() - 1));
    let mut load = Load::new(&env, plan.per_second);

    load.run_for(plan.warm_up).await?;
    env.simulator.set_profile(
        DOWN,
        VendorProfile {
            hang_rate: 0.5,
            error_rate: 1.0,
            ..healthy.clone()
        },
    );
    let down_at = Instant::now();
    let opened_after = load
        .run_until_metric(&consumer, &opened_series(), |v| v >= 1.0, plan.down_for)
        .await?;
    load.run_for(plan.down_for.saturating_sub(down_at.elapsed()))
        .await?;
    env.simulator.set_profile(DOWN, healthy);
    let back_from = load.published.len();
    let closed_after = load
        .run_until_metric(
            &consumer,
            &format!("pricefront_vendor_circuit_state{{vendor=\"{DOWN}\"}}"),
            |v| v == 0.0,
            plan.recovery_limit,
        )
        .await?;
    // A little more load once closed: products the recovered vendor must answer again.
    let closed_from = load.published.len();
    load.run_for(Duration::from_secs(2)).await?;
    let products = load.published;
    report.requests = products.len() as u64;

    let stored = results::wait_stored(&products, plan.limit).await?;
    let lost = (products.len() - stored.len()) as u64;
    report.lost = Some(lost);
    report.check(
        lost == 0,
        format!("{lost} requests without a stored result"),
    );
    match opened_after {
        Some(after) => report.note(format!(
            "{DOWN}'s circuit opened {} after it went down",
            secs(after)
        )),
        None => report.fail(format!(
            "{DOWN}'s circuit never opened in {} down",
            secs(plan.down_for)
        )),
    }
    match closed_after {
        Some(after) => report.note(format!(
            "{DOWN} back: its circuit closed {} later ({} products published after it was back)",
            secs(after),
            products.len() - back_from
        )),
        None => report.fail(format!(
            "{DOWN}'s circuit did not close within {} of it being back",
            secs(plan.recovery_limit)
        )),
    }
    let with_offer = stored.iter().filter(|r| !r.offers.is_empty()).count();
    let four_healthy = stored
        .iter()
        .filter(|r| {
            FIVE_VENDORS
                .iter()
                .filter(|v| **v != DOWN)
                .all(|v| r.offers.iter().any(|o| o.vendor == *v))
        })
        .count();
    let share = |n: usize| n as f64 / stored.len().max(1) as f64;
    report.note(format!(
        "results: {with_offer} of {} with an offer, {four_healthy} with an offer from each of the 4 healthy vendors",
        stored.len()
    ));
    report.check(
        share(with_offer) >= plan.min_with_offer,
        format!(
            "only {:.1}% of results carry an offer (at least {:.0}% required)",
            share(with_offer) * 100.0,
            plan.min_with_offer * 100.0
        ),
    );
    report.check(
        share(four_healthy) >= plan.min_with_offer,
        format!(
            "only {:.1}% of results have every healthy vendor's offer: the down vendor held the others back",
            share(four_healthy) * 100.0
        ),
    );
    let recovered: Vec<ProductId> = products[closed_from..].to_vec();
    let answered_again = stored
        .iter()
        .filter(|r| recovered.contains(&r.product_id))
        .filter(|r| r.offers.iter().any(|o| o.vendor == DOWN))
        .count();
    report.note(format!(
        "{DOWN} answered {answered_again} of the {} products published after its circuit closed",
        recovered.len()
    ));
    report.check(
        answered_again * 2 >= recovered.len() && !recovered.is_empty(),
        format!(
            "{DOWN} answered only {answered_again} of {} products once back",
            recovered.len()
        ),
    );
    match pricefront_harness::metrics::page(consumer.metrics_port).await {
        Ok(page) => {
            support::check_circuits(&page, &mut report, Some(DOWN));
            let calls = support::vendor_calls(&page);
            for name in FIVE_VENDORS.iter().filter(|v| **v != DOWN) {
                let opened = calls.get(*name).map_or(0.0, |c| c.opened);
                report.check(
                    opened == 0.0,
                    format!("the healthy vendor {name}'s circuit opened {opened:.0} times"),
                );
            }
            let refused = pricefront_harness::metrics::sample(
                &page,
                &format!(
                    "pricefront_vendor_rejected_total{{vendor=\"{DOWN}\",reason=\"circuit_open\"}}"
                ),
            )
            .unwrap_or(0.0);
            report.note(format!(
                "calls to {DOWN} refused by its open circuit (no request sent): {refused:.0}"
            ));
        }
        Err(error) => report.fail(format!(
            "the consumer's /metrics could not be read: {error}"
        )),
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

fn opened_series() -> String {
    format!("pricefront_vendor_circuit_opened_total{{vendor=\"{DOWN}\"}}")
}

/// A steady load: a batch of new products every tenth of a second.
struct Load<'a> {
    env: &'a TestEnv,
    per_tick: u64,
    published: Vec<ProductId>,
}

impl<'a> Load<'a> {
    const TICK: Duration = Duration::from_millis(100);

    fn new(env: &'a TestEnv, per_second: u64) -> Self {
        Self {
            env,
            per_tick: (per_second / 10).max(1),
            published: Vec::new(),
        }
    }

    async fn tick(&mut self) -> Result<(), DrillError> {
        let next = self.published.len() as u64;
        let batch: Vec<_> = (next..next + self.per_tick)
            .map(|n| self.env.product(n))
            .collect();
        self.env.publish(batch.iter().copied()).await?;
        self.published.extend(batch);
        Ok(())
    }

    /// Publishes for `duration`.
    async fn run_for(&mut self, duration: Duration) -> Result<(), DrillError> {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            let next = Instant::now() + Self::TICK;
            self.tick().await?;
            tokio::time::sleep_until(next).await;
        }
        Ok(())
    }

    /// Publishes until the consumer's `series` satisfies `wanted` (the time it took) or `limit` passes
    /// (`None`).
    async fn run_until_metric(
        &mut self,
        consumer: &ConsumerProcess,
        series: &str,
        wanted: impl Fn(f64) -> bool,
        limit: Duration,
    ) -> Result<Option<Duration>, DrillError> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if consumer.metric(series).await.is_some_and(&wanted) {
                return Ok(Some(started.elapsed()));
            }
            let next = Instant::now() + Self::TICK;
            self.tick().await?;
            tokio::time::sleep_until(next).await;
        }
        Ok(None)
    }
}
