//! What the drills share beyond the harness: the stack script, a report's losses and recovery, the
//! consumer's health, and the simulator's counts.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use pricefront_core::{Comparison, ProductId};
use pricefront_harness::metrics;
use pricefront_harness::results::{redis_connection, wait_stored, POLL};
use pricefront_harness::{profiles, vendor, ConsumerProcess, TestEnv};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use tokio::time::Instant;
use vendor_sim::{BodyShape, Profiles};

use crate::DrillError;

/// Why a request to the edge failed, with its causes (anyhow's alternate form): reset, refused or
/// timed out, where the client's own message says only that sending failed.
pub(crate) fn with_causes(error: impl std::error::Error + Send + Sync + 'static) -> String {
    format!("{:#}", anyhow::Error::new(error))
}

/// Three well-behaved vendors, 50 to 150 ms each.
pub(crate) fn three_healthy_vendors() -> Profiles {
    profiles([
        ("alpha", vendor((50, 150), BodyShape::Nested)),
        ("bravo", vendor((50, 150), BodyShape::Flat)),
        ("charlie", vendor((50, 150), BodyShape::Nested)),
    ])
}

/// The five vendors of the drills that use five.
pub(crate) const FIVE_VENDORS: [&str; 5] = ["alpha", "bravo", "charlie", "delta", "echo"];

/// The body shape of the `i`th of [`FIVE_VENDORS`]: nested and flat in turn.
pub(crate) fn shape_of(i: usize) -> BodyShape {
    if i % 2 == 0 {
        BodyShape::Nested
    } else {
        BodyShape::Flat
    }
}

/// [`FIVE_VENDORS`], well-behaved, 50 to 150 ms each.
pub(crate) fn five_healthy_vendors() -> Profiles {
    profiles(
        FIVE_VENDORS
            .iter()
            .enumerate()
            .map(|(i, name)| (*name, vendor((50, 150), shape_of(i)))),
    )
}

/// Vendor calls beyond one round per product, and the extra rounds they make (rounded up).
pub(crate) fn extra_rounds(env: &TestEnv, products: usize) -> (u64, u64) {
    let vendors = env.profiles.vendors.len() as u64;
    let calls: u64 = env.simulator.request_counts().values().sum();
    let extra = calls.saturating_sub(vendors * products as u64);
    (extra, extra.div_ceil(vendors.max(1)))
}

/// How many comparison rounds the vendors saw for each product of `env` (the simulator's count, see
/// [`vendor_sim::Simulator::rounds_by_product`]; no log line is read).
pub(crate) fn compared_counts(env: &TestEnv) -> HashMap<String, u32> {
    env.simulator
        .rounds_by_product()
        .into_iter()
        .map(|(product, rounds)| (product, u32::try_from(rounds).unwrap_or(u32::MAX)))
        .collect()
}

/// The products compared more than once.
pub(crate) fn compared_twice(counts: &HashMap<String, u32>) -> u64 {
    counts.values().filter(|&&n| n > 1).count() as u64
}

/// Waits until `consumers` all hold partitions, `total` between them.
pub(crate) async fn wait_assigned(
    consumers: &[&ConsumerProcess],
    total: usize,
    limit: Duration,
) -> Result<(), DrillError> {
    let deadline = Instant::now() + limit;
    loop {
        let mut counts = Vec::with_capacity(consumers.len());
        for consumer in consumers {
            counts.push(consumer.assigned_partitions().await);
        }
        if counts.iter().all(|&n| n > 0) && counts.iter().sum::<usize>() == total {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(DrillError::Timeout {
                what: format!("an assignment of {total} partitions to every consumer ({counts:?})"),
                limit,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits (within `limit`) for every product's result, records how many are lost in `report`, and notes
/// how long after `fault` (which ended at `since`) the last one was stored.
pub(crate) async fn record_lost(
    report: &mut crate::DrillReport,
    products: &[ProductId],
    limit: Duration,
    fault: &str,
    since: Instant,
) -> Result<Vec<Comparison>, DrillError> {
    let results = wait_stored(products, limit).await?;
    let lost = (products.len() - results.len()) as u64;
    report.lost = Some(lost);
    report.check(
        lost == 0,
        format!("{lost} requests without a stored result {limit:?} after {fault}"),
    );
    if lost == 0 {
        report.note(format!(
            "every result was stored {} after {fault}",
            secs(since.elapsed())
        ));
    }
    Ok(results)
}

/// Checks that `consumer` outlived the fault and is ready again, by itself, within a minute.
pub(crate) async fn check_recovered(
    report: &mut crate::DrillReport,
    consumer: &mut ConsumerProcess,
) {
    match consumer.exit_status() {
        Some(status) => report.fail(format!("the consumer exited: {status}")),
        None => match consumer.wait_ready(Duration::from_secs(60)).await {
            Ok(_) => {
                report.note("the same consumer process recovered by itself: /readyz 200 at the end")
            }
            Err(error) => report.fail(format!("the consumer did not become ready again: {error}")),
        },
    }
}

/// The status of `GET url`, within 5 s.
pub(crate) async fn status_of(url: &str) -> Result<u16, DrillError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    Ok(client.get(url).send().await?.status().as_u16())
}

/// How many records `topic` (3 partitions) holds, from its watermarks.
pub(crate) async fn records_in(topic: &str) -> Result<i64, DrillError> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", pricefront_harness::brokers())
            .create()?;
        let mut total = 0;
        for partition in 0..3 {
            let (low, high) =
                consumer.fetch_watermarks(&topic, partition, Duration::from_secs(10))?;
            total += high - low;
        }
        Ok(total)
    })
    .await
    .map_err(|error| DrillError::Precondition(format!("watermark task: {error}")))?
}

/// Checks that Kafka and Redis answer before a drill starts, with the drill's hint.
pub(crate) async fn check_stack() -> Result<(), DrillError> {
    redis_connection().await.map_err(|error| {
        DrillError::Precondition(format!(
            "Redis at {} does not answer ({error}); start the stack with `dev/stack.sh up`",
            pricefront_harness::redis_url()
        ))
    })?;
    let brokers = pricefront_harness::brokers();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()?;
        consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|_| ())
            .map_err(|error| {
                DrillError::Precondition(format!(
                    "Kafka at {brokers} does not answer ({error}); start the stack with `dev/stack.sh up`"
                ))
            })
    })
    .await
    .map_err(|error| DrillError::Precondition(format!("metadata task: {error}")))?
}

/// Seconds with one decimal, for notes.
pub(crate) fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// One vendor's calls as the consumer counted them (`pricefront_vendor_attempts_total`,
/// `pricefront_vendor_circuit_opened_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct VendorCalls {
    /// Requests sent.
    pub attempts: f64,
    /// Requests the vendor answered: an offer, a 4xx other than 429, or a body we could not use.
    pub answered: f64,
    /// Times its circuit opened.
    pub opened: f64,
}

impl VendorCalls {
    /// The share of its requests the vendor answered (1 when it was sent none).
    pub fn answered_share(&self) -> f64 {
        if self.attempts == 0.0 {
            1.0
        } else {
            self.answered / self.attempts
        }
    }
}

/// Each vendor's calls, from a consumer's metrics page.
pub(crate) fn vendor_calls(page: &str) -> BTreeMap<String, VendorCalls> {
    const ATTEMPTS: &str = "pricefront_vendor_attempts_total";
    let mut calls: BTreeMap<String, VendorCalls> = BTreeMap::new();
    for line in page.lines().filter(|l| metrics::is_series_of(l, ATTEMPTS)) {
        let (Some(vendor), Some(outcome), Some(n)) = (
            metrics::label_value(line, "vendor"),
            metrics::label_value(line, "outcome"),
            line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let entry = calls.entry(vendor.to_owned()).or_default();
        entry.attempts += n;
        if ["ok", "http_4xx", "malformed_body", "too_large"].contains(&outcome) {
            entry.answered += n;
        }
    }
    for (vendor, opened) in
        metrics::by_label(page, "pricefront_vendor_circuit_opened_total", "vendor")
    {
        calls.entry(vendor).or_default().opened = opened;
    }
    calls
}

/// Notes each vendor's answered share and circuit openings, and fails the drill when a circuit opened
/// for a vendor that answered at least half of its requests, `exempt` aside (a vendor the drill takes
/// down for a while, whose share over the whole drill says nothing of its window).
pub(crate) fn check_circuits(page: &str, report: &mut crate::DrillReport, exempt: Option<&str>) {
    let calls = vendor_calls(page);
    let summary: Vec<String> = calls
        .iter()
        .map(|(vendor, c)| {
            format!(
                "{vendor} {:.0}% of {:.0} answered, opened {:.0}",
                c.answered_share() * 100.0,
                c.attempts,
                c.opened
            )
        })
        .collect();
    report.note(format!(
        "vendor requests answered and circuit openings: {}",
        summary.join("; ")
    ));
    report.check(
        !calls.is_empty(),
        "no vendor attempts in the consumer's metrics",
    );
    for (vendor, c) in calls.iter().filter(|(v, _)| Some(v.as_str()) != exempt) {
        report.check(
            !(c.opened > 0.0 && c.answered_share() >= 0.5),
            format!(
                "{vendor}'s circuit opened {:.0} times although it answered {:.0}% of its requests",
                c.opened,
                c.answered_share() * 100.0
            ),
        );
    }
}

/// The bounds of the bucket that holds the largest observation of the histogram `name` (without
/// `_bucket`) in the metrics `page`, among the samples whose labels contain `labels` (or all, when
/// empty): the largest observation is above the lower bound and at most the upper one (infinite for
/// the `+Inf` bucket; 0 is the lower bound of the first bucket). `None` when the histogram is absent or
/// empty. A histogram's highest quantile is only the upper bound, which the largest observation may
/// lie far below (a bucket of `1.25^n` ms spans a fifth of its bound): a check that the largest was
/// at least some value must test the lower bound.
pub(crate) fn bounds_of_max(page: &str, name: &str, labels: &str) -> Option<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut buckets: Vec<(f64, f64)> = page
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(labels))
        .filter_map(|l| {
            let le = metrics::label_value(l, "le")?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, l.rsplit(' ').next()?.parse::<f64>().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut bounds = None;
    let mut below = (0.0, 0.0);
    for (bound, count) in buckets {
        if count > below.1 {
            bounds = Some((below.0, bound));
        }
        below = (bound, count);
    }
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_circuit_opened_on_a_vendor_answering_most_requests_fails_the_drill() {
        let page = "\
pricefront_vendor_attempts_total{vendor=\"a\",outcome=\"ok\"} 6
pricefront_vendor_attempts_total{vendor=\"a\",outcome=\"malformed_body\"} 1
pricefront_vendor_attempts_total{vendor=\"a\",outcome=\"timeout\"} 3
pricefront_vendor_circuit_opened_total{vendor=\"a\"} 0
pricefront_vendor_attempts_total{vendor=\"b\",outcome=\"timeout\"} 9
pricefront_vendor_attempts_total{vendor=\"b\",outcome=\"ok\"} 1
pricefront_vendor_circuit_opened_total{vendor=\"b\"} 2
";
        let calls = vendor_calls(page);
        assert_eq!(calls["a"].answered_share(), 0.7);
        assert_eq!(calls["b"].opened, 2.0);
        let mut report = crate::DrillReport::default();
        check_circuits(page, &mut report, None);
        assert_eq!(
            report.verdict(),
            crate::Verdict::Passed,
            "{}",
            report.details()
        );
        let opened_a = page.replace(
            "pricefront_vendor_circuit_opened_total{vendor=\"a\"} 0",
            "pricefront_vendor_circuit_opened_total{vendor=\"a\"} 1",
        );
        let mut report = crate::DrillReport::default();
        check_circuits(&opened_a, &mut report, None);
        assert_eq!(
            report.verdict(),
            crate::Verdict::Failed,
            "{}",
            report.details()
        );
    }

    #[test]
    fn the_largest_observation_lies_in_the_bucket_above_the_last_one_it_filled() {
        // Buckets 1 ms * 1.25^n: 0.08674 (n = 20) and 0.1084 (n = 21); one observation of 87 ms.
        let page = "\
x_bucket{le=\"0.06938893903907228\"} 5
x_bucket{le=\"0.08673617379884035\"} 9
x_bucket{le=\"0.10842021724855044\"} 10
x_bucket{le=\"0.13552527156068805\"} 10
x_bucket{le=\"+Inf\"} 10
y_bucket{le=\"0.5\"} 0
y_bucket{le=\"+Inf\"} 2
";
        let (lower, upper) = bounds_of_max(page, "x", "").unwrap();
        assert!((lower - 0.0867).abs() < 1e-4 && (upper - 0.1084).abs() < 1e-4);
        assert_eq!(bounds_of_max(page, "y", ""), Some((0.5, f64::INFINITY)));
        assert_eq!(bounds_of_max(page, "z", ""), None);
        assert_eq!(bounds_of_max("x_bucket{le=\"+Inf\"} 0", "x", ""), None);
    }
}
