//! Drill 8: the consumer short of CPU. It runs kept to one CPU that a busy loop shares, at a lower
//! priority (`nice`), so that it gets about a tenth of that CPU: a container with a small CPU quota on
//! a busy host. Its vendors are healthy and its backlog would fill its window many times over.
//!
//! Before the consumer watched its own lateness, it started its whole window, read the vendors'
//! answers too late, took its own timeouts for the vendors' failures, opened every circuit, and stored
//! all 2,000 results without a single offer. Now its window starts small and follows its lateness
//! ([`pricefront_consumer::intake::window_size`]), and a timeout while it is late is not held against the
//! vendor ([`pricefront_consumer::process::lateness`]).
//!
//! Every request must end as a stored result; results without any offer stay rare; no circuit opens;
//! and the consumer must in fact have been late (its `pricefront_runtime_lag_seconds`), or the drill
//! tested nothing. The report shows the window's size (`pricefront_window_size`) and the permits in
//! use (`pricefront_window_in_use`, sampled every [`SAMPLE_EVERY`]): the size alone is only the target.

use std::time::Duration;

use pricefront_harness::metrics::{self, Histogram};
use pricefront_harness::process::CpuHog;
use pricefront_harness::{results, TestEnv};
use tokio::time::Instant;

use crate::support::{self, secs};
use crate::{DrillError, DrillReport};

/// How often the consumer's window is sampled while the drill waits (each scrape costs the starved
/// consumer a little CPU).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// What the samples of the window showed.
#[derive(Debug, Default, Clone, Copy)]
struct WindowSamples {
    samples: u32,
    smallest_size: Option<f64>,
    most_in_use: f64,
    most_above_size: f64,
}

impl WindowSamples {
    fn record(&mut self, page: &str) {
        let (Some(size), Some(in_use)) = (
            metrics::sample(page, "pricefront_window_size"),
            metrics::sample(page, "pricefront_window_in_use"),
        ) else {
            return;
        };
        self.samples += 1;
        self.smallest_size = Some(self.smallest_size.map_or(size, |s: f64| s.min(size)));
        self.most_in_use = self.most_in_use.max(in_use);
        self.most_above_size = self.most_above_size.max(in_use - size);
    }
}

/// The load and the bounds of the drill.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Products published at once, one request each.
    pub products: u64,
    /// The consumer's in-flight window.
    pub max_in_flight: u32,
    /// The timeout of one vendor call.
    pub vendor_timeout_ms: u64,
    /// The CPU the consumer and the busy loop share.
    pub cpu: usize,
    /// The consumer's `nice` beside the busy loop (10: about a tenth of the CPU).
    pub niceness: u8,
    /// The most results without any offer that may be stored, as a share of the products.
    pub max_without_offer: f64,
    /// The longest wait for every result.
    pub limit: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            products: 2_000,
            max_in_flight: 256,
            vendor_timeout_ms: 1_000,
            cpu: 0,
            niceness: 10,
            max_without_offer: 0.10,
            limit: Duration::from_secs(300),
        }
    }
}

/// The largest lateness as the histogram bounds it: "between X and Y ms" (its bucket's edges).
fn worst_label(bounds: Option<(f64, f64)>) -> String {
    match bounds {
        None => "unknown (no lag probe observed)".into(),
        Some((lower, upper)) if upper.is_infinite() => {
            format!("above {:.0} ms", lower * 1000.0)
        }
        Some((lower, upper)) => {
            format!("between {:.0} and {:.0} ms", lower * 1000.0, upper * 1000.0)
        }
    }
}

/// Fails `report` unless the consumer was late by a tenth of the vendor timeout at least once (the
/// lateness that excuses a timeout): short of that the busy loop did not starve it and nothing was
/// tested. `worst` bounds the largest lateness, in seconds ([`support::bounds_of_max`]); its lower
/// bound is what is tested, since the largest may lie anywhere in its bucket.
fn check_was_late(report: &mut DrillReport, plan: &Plan, worst: Option<(f64, f64)>) {
    let tenth = plan.vendor_timeout_ms as f64 / 10_000.0;
    let lower = worst.map_or(0.0, |(lower, _)| lower);
    report.check(
        lower >= tenth,
        format!(
            "the consumer was not surely late by {:.0} ms (worst {}): the busy loop did not starve it, nothing was tested",
            tenth * 1000.0,
            worst_label(worst)
        ),
    );
}

/// Runs the drill.
pub async fn run(plan: &Plan) -> Result<DrillReport, DrillError> {
    support::check_stack().await?;
    let started = Instant::now();
    let mut report = DrillReport {
        name: "consumer short of CPU".into(),
        fault: format!(
            "the consumer kept to 1 CPU that a busy loop shares, at nice {}, window {}, 5 healthy vendors (50-150 ms, timeout {} ms)",
            plan.niceness, plan.max_in_flight, plan.vendor_timeout_ms
        ),
        requests: plan.products,
        ..DrillReport::default()
    };
    let env = TestEnv::new(
        "drill-starved",
        support::five_healthy_vendors(),
        plan.vendor_timeout_ms,
    )
    .await?;
    let hog = CpuHog::start(plan.cpu)?;
    let window = plan.max_in_flight.to_string();
    let mut consumer = env.start_consumer_on_cpu(
        "starved",
        &["--max-in-flight", window.as_str()],
        plan.cpu,
        plan.niceness,
    )?;
    let products = env.products(plan.products);
    env.publish(products.iter().copied()).await?;
    let waiting = results::wait_stored(&products, plan.limit);
    tokio::pin!(waiting);
    let mut window = WindowSamples::default();
    let stored = loop {
        tokio::select! {
            stored = &mut waiting => break stored?,
            () = tokio::time::sleep(SAMPLE_EVERY) => {
                if let Ok(page) = metrics::page(consumer.metrics_port).await {
                    window.record(&page);
                }
            }
        }
    };
    let page = metrics::page(consumer.metrics_port).await.ok();
    drop(hog);

    let lost = (products.len() - stored.len()) as u64;
    report.lost = Some(lost);
    report.check(
        lost == 0,
        format!(
            "{lost} requests without a stored result after {:?}",
            plan.limit
        ),
    );
    if let Some(status) = consumer.exit_status() {
        report.fail(format!("the consumer crashed: {status}"));
    }
    let (complete, without_offer) = (
        stored.iter().filter(|r| r.complete).count(),
        stored.iter().filter(|r| r.offers.is_empty()).count(),
    );
    report.note(format!(
        "results: {complete} complete, {} partial, {without_offer} without any offer; all in {}",
        stored.len() - complete - without_offer,
        secs(started.elapsed())
    ));
    report.check(
        without_offer as f64 <= plan.max_without_offer * plan.products as f64,
        format!(
            "{without_offer} of {} results without any offer from 5 healthy vendors",
            plan.products
        ),
    );
    let Some(page) = page else {
        report.fail("the consumer's /metrics could not be read");
        report.elapsed = started.elapsed();
        return Ok(report);
    };
    let circuit_open = metrics::sum_of(&page, "pricefront_vendor_rejected_total");
    let timeouts_while_late = metrics::sum_of(&page, "pricefront_vendor_timeouts_while_late_total");
    let timeouts = page
        .lines()
        .filter(|l| {
            l.starts_with("pricefront_vendor_errors_total{") && l.contains("kind=\"timeout\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |total, value| total + value);
    report.note(format!(
        "vendor timeouts: {timeouts:.0}, {timeouts_while_late:.0} of them while the consumer was itself late (not held against the vendor); calls refused by an open circuit or a quota: {circuit_open:.0}"
    ));
    if let Some(size) = metrics::sample(&page, "pricefront_window_size") {
        let in_use = metrics::sample(&page, "pricefront_window_in_use").unwrap_or(0.0);
        report.note(format!(
            "the in-flight window at the end: {size:.0} of --max-in-flight {}, {in_use:.0} permits in use",
            plan.max_in_flight
        ));
    }
    if let Some(smallest) = window.smallest_size {
        report.note(format!(
            "the in-flight window while it worked ({} samples, one a second): smallest {smallest:.0}; permits in use at most {:.0}, above the size by at most {:.0} (messages started before a shrink, finishing)",
            window.samples, window.most_in_use, window.most_above_size
        ));
    }
    report.check(
        circuit_open == 0.0,
        format!(
            "{circuit_open:.0} vendor calls refused by an open circuit, with every vendor healthy"
        ),
    );
    let lag = Histogram::parse(&page, "pricefront_runtime_lag_seconds", "");
    let p99 = lag.as_ref().and_then(|h| h.quantile(0.99)).unwrap_or(0.0);
    let worst = support::bounds_of_max(&page, "pricefront_runtime_lag_seconds", "");
    report.note(format!(
        "the consumer's lateness (lag probe every 10 ms): p99 {:.0} ms, worst {}",
        p99 * 1000.0,
        worst_label(worst)
    ));
    check_was_late(&mut report, plan, worst);
    report.elapsed = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lag buckets of the consumer: 1 ms * 1.25^n.
    fn bucket(n: i32) -> f64 {
        0.001 * 1.25f64.powi(n)
    }

    #[test]
    fn the_worst_lateness_is_tested_by_its_buckets_lower_edge() {
        let plan = Plan::default();
        // A worst of 87 ms lies in (1.25^20, 1.25^21] ms = (86.7, 108.4]: its upper bound passed the
        // check of 100 ms before, the lower one fails it.
        let mut report = DrillReport::default();
        check_was_late(&mut report, &plan, Some((bucket(20), bucket(21))));
        assert_eq!(report.failures.len(), 1, "{}", report.details());
        assert!(
            report.failures[0].contains("between 87 and 108 ms"),
            "{}",
            report.details()
        );
        println!("{}", report.details());
        // The last run of `make drills`: "worst 646 ms" was the bucket (517, 646].
        let mut report = DrillReport::default();
        check_was_late(&mut report, &plan, Some((bucket(28), bucket(29))));
        assert!(report.failures.is_empty(), "{}", report.details());
        assert_eq!(
            worst_label(Some((bucket(28), bucket(29)))),
            "between 517 and 646 ms"
        );
        let mut report = DrillReport::default();
        check_was_late(&mut report, &plan, None);
        assert_eq!(report.failures.len(), 1, "{}", report.details());
    }
}
