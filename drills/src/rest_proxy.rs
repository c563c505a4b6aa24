//! Drill 6: stop and restart the Kafka REST proxy (the Strimzi Kafka Bridge) under a steady stream of
//! misses at the edge. While it is away the edge must answer 503 with `Retry-After` (never a 5xx of its
//! own, never a hang: no 503 slower than the Worker's `PUBLISH_TIMEOUT_MS` and [`SLOW_503_MARGIN`]);
//! once it is back, misses flow again without restarting the Worker; and every miss answered 202 must
//! be in Kafka ("lost" = a 202 without a record of its key in the edge's topic). "Duplicated" = a miss
//! answered 202 whose key has more than one record in the topic (each miss asks for a product of its
//! own, once: a second record is a second publish of the same request).

use std::collections::HashMap;
use std::time::Duration;

use pricefront_core::ProductId;
use pricefront_harness::edge::Edge;
use pricefront_harness::topic::read_to_end;
use tokio::time::Instant;

use crate::misses::{Answer, MissStream};
use crate::support::{self, secs};
use crate::{DrillError, DrillReport};

/// The load and the phases of the drill.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Distinct misses per second, spread evenly.
    pub misses_per_second: u32,
    /// How long the misses run before the bridge is stopped.
    pub before: Duration,
    /// How long the bridge stays stopped.
    pub down: Duration,
    /// How long misses keep flowing after the first one accepted once the bridge is back.
    pub after: Duration,
    /// The longest wait, once the bridge is ready again, for a miss to be accepted.
    pub recovery_limit: Duration,
    /// The edge's topic, where accepted misses must be.
    pub topic: String,
    /// The Worker's `PUBLISH_TIMEOUT_MS`: how long a miss waits for the REST proxy before its 503.
    pub publish_timeout: Duration,
}

/// How much slower than `PUBLISH_TIMEOUT_MS` a 503 may come: the Worker's own work and wrangler's local
/// proxy in front of it, on a machine of 2 cores shared with the stack. A hang (a miss waiting on a
/// proxy that never answers) is far past it, and past the client's 30 s it is no answer at all.
pub const SLOW_503_MARGIN: Duration = Duration::from_secs(3);

/// The Worker's `PUBLISH_TIMEOUT_MS` as `wrangler.toml` sets it under `[vars]` (what `scripts/test.sh`
/// and `make drills` start their Workers with: neither overrides it), else the Worker's own default of
/// 2,000 ms (`edge/src/config.rs`).
pub fn publish_timeout_of_wrangler_toml() -> Duration {
    let text =
        std::fs::read_to_string(pricefront_harness::repo_path("wrangler.toml")).unwrap_or_default();
    Duration::from_millis(publish_timeout_ms(&text).unwrap_or(2_000))
}

/// `PUBLISH_TIMEOUT_MS = "N"` in a `wrangler.toml`'s text (its top-level `[vars]`).
fn publish_timeout_ms(wrangler_toml: &str) -> Option<u64> {
    let mut in_vars = false;
    for line in wrangler_toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_vars = line == "[vars]";
        } else if in_vars {
            if let Some(value) = line
                .strip_prefix("PUBLISH_TIMEOUT_MS")
                .and_then(|rest| rest.trim_start().strip_prefix('='))
            {
                return value.trim().trim_matches('"').parse().ok();
            }
        }
    }
    None
}

/// The accepted products whose key has more than one record: `records` counts the records of each
/// key in the topic.
fn duplicated(accepted: &[ProductId], records: &HashMap<Vec<u8>, u64>) -> Vec<ProductId> {
    accepted
        .iter()
        .filter(|p| {
            records
                .get(p.to_string().as_bytes())
                .is_some_and(|&n| n > 1)
        })
        .copied()
        .collect()
}

/// Fails `report` when the slowest 503 came later than `publish_timeout` and [`SLOW_503_MARGIN`]:
/// the edge made a client wait on a proxy that was away.
fn check_slowest_503(report: &mut DrillReport, slowest: Duration, publish_timeout: Duration) {
    let bound = publish_timeout + SLOW_503_MARGIN;
    report.check(
        slowest <= bound,
        format!(
            "the slowest 503 took {}, more than PUBLISH_TIMEOUT_MS ({}) and a margin of {}: a miss hung on the \
             absent proxy",
            secs(slowest),
            secs(publish_timeout),
            secs(SLOW_503_MARGIN)
        ),
    );
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            misses_per_second: 10,
            before: Duration::from_secs(3),
            down: Duration::from_secs(5),
            after: Duration::from_secs(5),
            recovery_limit: Duration::from_secs(120),
            topic: std::env::var("EDGE_TOPIC")
                .unwrap_or_else(|_| pricefront_core::REQUEST_TOPIC.into()),
            publish_timeout: publish_timeout_of_wrangler_toml(),
        }
    }
}

/// Runs the drill against the Worker at `edge` (its REST proxy must be the stack's bridge).
pub async fn run(edge: &Edge, plan: &Plan) -> Result<DrillReport, DrillError> {
    support::check_stack().await?;
    let started = Instant::now();
    let mut report = DrillReport {
        name: "REST proxy stop/restart".into(),
        fault: format!(
            "`dev/stack.sh stop bridge` for {}, then `start bridge`, under {} distinct misses/s at the edge",
            secs(plan.down),
            plan.misses_per_second
        ),
        ..DrillReport::default()
    };
    let load = MissStream::start(edge, plan.misses_per_second);

    tokio::time::sleep(plan.before).await;
    let stop_took =
        pricefront_harness::stack_script(&["stop", "bridge"], &[], Duration::from_secs(60)).await?;
    let stopped_at = Instant::now();
    tokio::time::sleep(plan.down).await;
    let start_issued = Instant::now();
    let start_took =
        pricefront_harness::stack_script(&["start", "bridge"], &[], Duration::from_secs(180))
            .await?;
    let ready_at = Instant::now();
    // Misses keep coming until one is accepted again (bounded), then `after` more.
    load.next_accepted(plan.recovery_limit).await;
    tokio::time::sleep(plan.after).await;
    let answers = load.finish().await?;

    report.requests = answers.len() as u64;
    let accepted: Vec<&Answer> = answers.iter().filter(|a| a.status == Some(202)).collect();
    let unavailable: Vec<&Answer> = answers.iter().filter(|a| a.status == Some(503)).collect();
    let other: Vec<String> = answers
        .iter()
        .filter(|a| !matches!(a.status, Some(202 | 503)))
        .map(|a| format!("{}: {:?}", a.product, a.status))
        .collect();
    report.check(
        other.is_empty(),
        format!(
            "{} misses answered neither 202 nor 503: {:?}",
            other.len(),
            &other[..other.len().min(5)]
        ),
    );
    report.check(
        !unavailable.is_empty(),
        "no miss got a 503 while the bridge was stopped: the drill tested nothing",
    );
    report.check(
        unavailable.iter().all(|a| a.retry_after),
        "a 503 came without Retry-After",
    );
    let slowest_503 = unavailable.iter().map(|a| a.took).max().unwrap_or_default();
    check_slowest_503(&mut report, slowest_503, plan.publish_timeout);
    let first_202_after = accepted
        .iter()
        .filter(|a| a.sent >= start_issued)
        .map(|a| a.sent + a.took)
        .min();
    match first_202_after {
        Some(at) => report.note(format!(
            "bridge stopped in {}, started again in {} (ready at its management port); the first 202 after `start` came {} after it was ready",
            secs(stop_took),
            secs(start_took),
            secs(at.saturating_duration_since(ready_at)),
        )),
        None => report.fail(format!(
            "no miss was accepted within {} of the bridge being ready again",
            secs(plan.recovery_limit)
        )),
    }
    let refused_after_ready = unavailable.iter().filter(|a| a.sent >= ready_at).count();
    report.note(format!(
        "{refused_after_ready} misses were still answered 503 after the bridge was ready (it builds a Kafka producer per connection, and a cold one is slow)"
    ));
    let last_202_before = accepted.iter().filter(|a| a.sent < stopped_at).count();
    report.note(format!(
        "{} misses: {} accepted (202), {last_202_before} of them before the stop; {} answered 503 with Retry-After, the slowest in {} (bound: PUBLISH_TIMEOUT_MS {} from wrangler.toml's [vars], plus {})",
        answers.len(),
        accepted.len(),
        unavailable.len(),
        secs(slowest_503),
        secs(plan.publish_timeout),
        secs(SLOW_503_MARGIN)
    ));

    // Lost: a 202 whose record is not in the edge's topic.
    let topic = plan.topic.clone();
    let records = tokio::task::spawn_blocking(move || {
        read_to_end(
            &pricefront_harness::brokers(),
            &topic,
            Duration::from_secs(120),
        )
    })
    .await
    .map_err(|e| DrillError::Precondition(format!("reading the topic: {e}")))?
    .map_err(|e| DrillError::Precondition(e.to_string()))?;
    let mut keys: HashMap<Vec<u8>, u64> = HashMap::new();
    for key in records.into_iter().filter_map(|r| r.key) {
        *keys.entry(key).or_default() += 1;
    }
    let lost = accepted
        .iter()
        .filter(|a| !keys.contains_key(a.product.to_string().as_bytes()))
        .count() as u64;
    report.lost = Some(lost);
    report.check(
        lost == 0,
        format!(
            "{lost} misses answered 202 have no record in {}",
            plan.topic
        ),
    );
    let published_503 = unavailable
        .iter()
        .filter(|a| keys.contains_key(a.product.to_string().as_bytes()))
        .count();
    report.note(format!(
        "{published_503} of the 503 misses were in Kafka after all (a publish that timed out at the edge but landed)"
    ));
    let accepted_products: Vec<ProductId> = accepted.iter().map(|a| a.product).collect();
    let twice = duplicated(&accepted_products, &keys);
    report.duplicated = Some(twice.len() as u64);
    report.note(format!(
        "duplicates: {} of the {} accepted misses have more than one record in {} (counted from the records read \
         for the losses){}",
        twice.len(),
        accepted_products.len(),
        plan.topic,
        if twice.is_empty() {
            String::new()
        } else {
            format!(": {:?}", &twice[..twice.len().min(5)])
        }
    ));
    report.elapsed = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accepted_miss_published_twice_is_a_duplicate() {
        let (a, b, c) = (
            ProductId::new(1).unwrap(),
            ProductId::new(2).unwrap(),
            ProductId::new(3).unwrap(),
        );
        // An edge that published b twice (a publish retried after the proxy had taken it), and c, a
        // 503, once.
        let records: HashMap<Vec<u8>, u64> = [(a, 1), (b, 2), (c, 1)]
            .into_iter()
            .map(|(p, n)| (p.to_string().into_bytes(), n))
            .collect();
        assert_eq!(duplicated(&[a, b], &records), vec![b]);
        assert_eq!(duplicated(&[a], &records), Vec::<ProductId>::new());
    }

    #[test]
    fn a_503_past_the_publish_timeout_and_its_margin_fails_the_drill() {
        let timeout = Duration::from_millis(2_000);
        let mut report = DrillReport::default();
        check_slowest_503(&mut report, Duration::from_millis(2_100), timeout);
        assert!(report.failures.is_empty(), "{}", report.details());
        // An edge whose publish waits for the proxy's own connect timeout, not PUBLISH_TIMEOUT_MS.
        let mut report = DrillReport::default();
        check_slowest_503(&mut report, Duration::from_secs(21), timeout);
        assert_eq!(report.failures.len(), 1, "{}", report.details());
        println!("{}", report.details());
    }

    #[test]
    fn the_publish_timeout_is_read_from_wrangler_toml() {
        let toml = "[[ratelimits]]\nname = \"X\"\n\n[vars]\nA = \"1\"\nPUBLISH_TIMEOUT_MS = \"2500\"\n[env.x.vars]\nPUBLISH_TIMEOUT_MS = \"9\"\n";
        assert_eq!(publish_timeout_ms(toml), Some(2_500));
        assert_eq!(publish_timeout_ms("[vars]\n"), None);
        // The repository's own, which the drill's Workers run with, sets it.
        assert!(publish_timeout_ms(include_str!("../../wrangler.toml")).is_some());
    }
}
