//! Drill 6: stop and restart the Kafka REST proxy (the Strimzi Kafka Bridge) under a steady stream of
//! misses at the edge. While it is away the edge must answer 503 with `Retry-After` (never a 5xx of its
//! own, never a hang); once it is back, misses flow again without restarting the Worker; and every miss
//! answered 202 must be in Kafka ("lost" = a 202 without a record of its key in the edge's topic).

use std::time::Duration;

use pricefront_core::ProductId;
use pricefront_harness::edge::{unused_product, Edge};
use pricefront_harness::topic::read_to_end;
use tokio::time::Instant;

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
        }
    }
}

/// One miss and what the edge answered.
struct Answer {
    product: ProductId,
    status: Option<u16>,
    retry_after: bool,
    sent: Instant,
    took: Duration,
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
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let accepted_so_far = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let load = {
        let edge = edge.clone();
        let accepted_so_far = accepted_so_far.clone();
        let every = Duration::from_secs(1) / plan.misses_per_second;
        async move {
            let mut tick = tokio::time::interval(every);
            // Bounded: at most 10 minutes of misses, whatever happens to the stack.
            let bound = Instant::now() + Duration::from_secs(600);
            let mut stop = std::pin::pin!(receiver.recv());
            let mut answers = Vec::new();
            let mut pending = tokio::task::JoinSet::new();
            while Instant::now() < bound {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tick.tick() => {}
                }
                let edge = edge.clone();
                let accepted_so_far = accepted_so_far.clone();
                pending.spawn(async move {
                    let product = unused_product();
                    let sent = Instant::now();
                    let response = edge.get_prices(product, None).await.ok();
                    if response.as_ref().is_some_and(|r| r.status() == 202) {
                        accepted_so_far.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Answer {
                        product,
                        status: response.as_ref().map(|r| r.status().as_u16()),
                        retry_after: response
                            .as_ref()
                            .is_some_and(|r| r.headers().contains_key("retry-after")),
                        sent,
                        took: sent.elapsed(),
                    }
                });
            }
            while let Some(answer) = pending.join_next().await {
                if let Ok(answer) = answer {
                    answers.push(answer);
                }
            }
            answers
        }
    };
    let load = tokio::spawn(load);

    tokio::time::sleep(plan.before).await;
    let stop_took = support::stack(&["stop", "bridge"], &[], Duration::from_secs(60)).await?;
    let stopped_at = Instant::now();
    tokio::time::sleep(plan.down).await;
    let start_issued = Instant::now();
    let start_took = support::stack(&["start", "bridge"], &[], Duration::from_secs(180)).await?;
    let ready_at = Instant::now();
    // Misses keep coming until one is accepted again (bounded), then `after` more.
    let accepted_at_start = accepted_so_far.load(std::sync::atomic::Ordering::Relaxed);
    while accepted_so_far.load(std::sync::atomic::Ordering::Relaxed) == accepted_at_start
        && ready_at.elapsed() < plan.recovery_limit
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(plan.after).await;
    let _ = sender.send(());
    let answers = load
        .await
        .map_err(|e| DrillError::Precondition(format!("the load task failed: {e}")))?;

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
        "{} misses: {} accepted (202), {last_202_before} of them before the stop; {} answered 503 with Retry-After, the slowest in {}",
        answers.len(),
        accepted.len(),
        unavailable.len(),
        secs(slowest_503)
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
    let keys: std::collections::HashSet<Vec<u8>> =
        records.into_iter().filter_map(|r| r.key).collect();
    let lost = accepted
        .iter()
        .filter(|a| !keys.contains(a.product.to_string().as_bytes()))
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
        .filter(|a| keys.contains(a.product.to_string().as_bytes()))
        .count();
    report.note(format!(
        "{published_503} of the 503 misses were in Kafka after all (a publish that timed out at the edge but landed)"
    ));
    report.duplicated = Some(0);
    report.elapsed = started.elapsed();
    Ok(report)
}
