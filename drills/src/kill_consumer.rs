//! Drill 1: `kill -9` of one consumer of two in one group, in the middle of a backlog. The survivor must
//! take the dead one's partitions over (after the group session times out) and finish everything.

use std::time::Duration;

use pricefront_harness::TestEnv;
use tokio::time::Instant;

use crate::support;
use crate::{DrillError, DrillReport};

/// The load and the bounds of the drill.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Products published at once, one request each.
    pub products: u64,
    /// The in-flight window of each consumer (small, so the backlog lasts past the kill).
    pub max_in_flight: u32,
    /// The share of results stored when the kill comes.
    pub kill_at: f64,
    /// The longest wait for the survivor to store everything (it first waits out the group session:
    /// librdkafka's default `session.timeout.ms` is 45 s).
    pub limit: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            products: 2_000,
            max_in_flight: 16,
            kill_at: 0.25,
            limit: Duration::from_secs(240),
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
    let env = TestEnv::new("drill-kill9", support::three_healthy_vendors(), 2_000).await;
    let window = plan.max_in_flight.to_string();
    let flags = ["--max-in-flight", window.as_str()];
    let mut victim = env.start_consumer("victim", &flags);
    let mut survivor = env.start_consumer("survivor", &flags);
    // Both must hold partitions before the work arrives, or the first would take it all.
    support::wait_assigned(&[&victim, &survivor], 3, Duration::from_secs(120)).await?;
    let victim_partitions = victim.assigned_partitions();

    let products = support::products(&env, plan.products);
    env.publish(products.iter().copied()).await;
    let target = (plan.products as f64 * plan.kill_at) as usize;
    support::wait_progress(&products, target, Duration::from_secs(120)).await?;
    victim.kill_9();
    let killed_at = Instant::now();
    let stored_at_kill = support::stored(&products).await?.len();
    report.note(format!(
        "killed the consumer holding {victim_partitions} of 3 partitions with {stored_at_kill} of {} results stored",
        plan.products
    ));
    report.check(
        stored_at_kill < products.len(),
        "the kill came after every result was stored: it tested nothing",
    );

    support::record_lost(&mut report, &products, plan.limit, "the kill", killed_at).await?;
    if let Some(status) = support::exit_status(&mut survivor) {
        report.fail(format!("the surviving consumer exited: {status}"));
    }

    let (extra_calls, extra_rounds) = support::extra_rounds(&env, products.len());
    let twice = support::compared_twice(&support::compared_counts(&[&victim, &survivor]));
    report.duplicated = Some(extra_rounds);
    report.note(format!(
        "duplicates: {extra_calls} vendor calls beyond one round per product ({extra_rounds} rounds); {twice} products logged as compared twice (a round the kill cut short is in the vendor calls only)"
    ));
    report.elapsed = started.elapsed();
    Ok(report)
}
