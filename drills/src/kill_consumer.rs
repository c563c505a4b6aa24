//! Drill 1: `kill -9` of one consumer of two in one group, in the middle of a backlog. The survivor must
//! take the dead one's partitions over (once the group session times out: the consumer's default
//! `session.timeout.ms` is 6 s, see docs/configuration.md) and finish everything. The takeover time is
//! from the kill to the survivor's first stored result of a product on the dead member's partitions;
//! past [`TAKEOVER_LIMIT`] the drill fails.

use std::time::Duration;

use pricefront_harness::results;
use pricefront_harness::TestEnv;
use tokio::time::Instant;

use crate::support::{self, secs};
use crate::{DrillError, DrillReport};

/// The longest takeover that passes. README.md says a survivor "takes the partitions over, and stores
/// their first result, in under 15 s" (a 6 s session, then a rebalance and a first fan-out; `make
/// drills` measured 7.5 s). The bound is twice that claim, so that a busy shared machine does not fail
/// the drill, while a group session left at librdkafka's default of 45 s fails it.
pub const TAKEOVER_LIMIT: Duration = Duration::from_secs(30);

/// The load and the bounds of the drill.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Products published at once, one request each.
    pub products: u64,
    /// The in-flight window of each consumer (small, so the backlog lasts past the kill).
    pub max_in_flight: u32,
    /// The share of results stored when the kill comes.
    pub kill_at: f64,
    /// The longest wait for the survivor to store everything (it first waits out the group session).
    pub limit: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            products: 10_000,
            max_in_flight: 16,
            kill_at: 0.25,
            limit: Duration::from_secs(300),
        }
    }
}

/// Runs the drill.
pub async fn run(plan: &Plan) -> Result<DrillReport, DrillError> {
    support::check_stack().await?;
    let started = Instant::now();
    let mut report = DrillReport {
        name: "kill -9 consumer".into(),
        fault: format!(
            "SIGKILL of 1 of 2 consumers at {:.0}% of {} requests (3 vendors, 50-150 ms)",
            plan.kill_at * 100.0,
            plan.products
        ),
        requests: plan.products,
        ..DrillReport::default()
    };
    let env = TestEnv::new("drill-kill9", support::three_healthy_vendors(), 2_000).await?;
    let window = plan.max_in_flight.to_string();
    let flags = ["--max-in-flight", window.as_str()];
    let mut victim = env.start_consumer("victim", &flags)?;
    let mut survivor = env.start_consumer("survivor", &flags)?;
    // Both must hold partitions before the work arrives, or the first would take it all.
    support::wait_assigned(&[&victim, &survivor], 3, Duration::from_secs(120)).await?;
    let victim_partitions = victim.assigned_partition_list().await;

    let products = env.products(plan.products);
    let placed = env.publish_placed(products.iter().copied()).await?;
    let target = (plan.products as f64 * plan.kill_at) as usize;
    results::wait_progress(&products, target, Duration::from_secs(120)).await?;
    victim.kill_9()?;
    let killed_at = Instant::now();
    let stored_at_kill: std::collections::HashSet<_> = results::stored(&products)
        .await?
        .into_iter()
        .map(|c| c.product_id)
        .collect();
    report.note(format!(
        "killed the consumer holding partitions {victim_partitions:?} of 3 with {} of {} results stored",
        stored_at_kill.len(),
        plan.products
    ));
    // The dead member's unfinished work: the survivor's first result of it ends the takeover.
    let orphaned: Vec<_> = placed
        .iter()
        .filter(|(p, at)| victim_partitions.contains(&at.partition) && !stored_at_kill.contains(p))
        .map(|(p, _)| *p)
        .collect();
    report.check(
        !orphaned.is_empty(),
        "the kill came after the victim's partitions were done: it tested nothing",
    );
    // When the group gave the survivor the dead member's partitions, watched beside the results.
    let reassigned = async {
        while Instant::now() < killed_at + plan.limit {
            let held = survivor.assigned_partition_list().await;
            if victim_partitions.iter().all(|p| held.contains(p)) {
                return Some(killed_at.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    };
    let first_result = async {
        let stored = results::wait_any_stored(&orphaned, plan.limit).await?;
        Ok::<_, DrillError>(stored.then(|| killed_at.elapsed()))
    };
    let (reassigned, first_result) = tokio::join!(reassigned, first_result);
    let takeover = first_result?;
    if let Some(takeover) = takeover {
        let split = reassigned.map_or_else(String::new, |at| {
            format!(
                " ({} until the group gave them to the survivor, {} more until its first result of them)",
                secs(at),
                secs(takeover.saturating_sub(at))
            )
        });
        report.note(format!(
            "takeover: {} from the kill to the survivor's first stored result of the dead member's partitions{split}",
            secs(takeover)
        ));
    }
    check_takeover(&mut report, takeover);

    support::record_lost(&mut report, &products, plan.limit, "the kill", killed_at).await?;
    if let Some(status) = survivor.exit_status() {
        report.fail(format!("the surviving consumer exited: {status}"));
    }

    let (extra_calls, extra_rounds) = support::extra_rounds(&env, products.len());
    let twice = support::compared_twice(&support::compared_counts(&env));
    report.duplicated = Some(extra_rounds);
    report.note(format!(
        "duplicates: {extra_calls} vendor calls beyond one round per product ({extra_rounds} rounds); {twice} products asked of the vendors in more than one round (the simulator's count: a round the kill cut short included)"
    ));
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Fails `report` when the survivor never stored a result of the dead member's partitions, or took
/// longer than [`TAKEOVER_LIMIT`] to.
fn check_takeover(report: &mut DrillReport, takeover: Option<Duration>) {
    match takeover {
        None => report.fail("the survivor never took the dead member's partitions over"),
        Some(took) => report.check(
            took <= TAKEOVER_LIMIT,
            format!(
                "the takeover took {}, more than {} (README.md promises under 15 s)",
                secs(took),
                secs(TAKEOVER_LIMIT)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_takeover_past_the_limit_fails_the_drill() {
        let mut report = DrillReport::default();
        check_takeover(&mut report, Some(Duration::from_millis(7_500)));
        assert!(report.failures.is_empty(), "{}", report.details());
        // A survivor that waited for the session of librdkafka's default (45 s) instead of 6 s.
        let mut report = DrillReport::default();
        check_takeover(&mut report, Some(Duration::from_secs(47)));
        assert_eq!(report.failures.len(), 1, "{}", report.details());
        println!("{}", report.details());
        let mut report = DrillReport::default();
        check_takeover(&mut report, None);
        assert_eq!(report.failures.len(), 1, "{}", report.details());
    }
}
