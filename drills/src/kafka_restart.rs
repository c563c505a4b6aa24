//! Drill 2: `dev/stack.sh restart kafka` (SIGTERM, then a fresh broker on the same data) while a consumer
//! works through a backlog and more requests are being published. The consumer is never restarted: it must
//! reconnect, rejoin its group and finish by itself; the publisher's records wait in its queue meanwhile.

use std::time::Duration;

use pricefront_harness::results;
use pricefront_harness::TestEnv;
use tokio::time::Instant;

use crate::support::{self, secs};
use crate::{DrillError, DrillReport};

/// The load and the bounds of the drill.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Products published before the restart.
    pub before: u64,
    /// Products published while the broker restarts (they wait in the producer's queue).
    pub during: u64,
    /// The consumer's in-flight window (small, so that the backlog outlasts the restart's start).
    pub max_in_flight: u32,
    /// Results stored before the restart begins.
    pub restart_after: usize,
    /// The longest the restart may take.
    pub restart_limit: Duration,
    /// The longest wait for every result once the broker is back.
    pub limit: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            before: 2_000,
            during: 1_000,
            max_in_flight: 16,
            restart_after: 300,
            restart_limit: Duration::from_secs(240),
            limit: Duration::from_secs(240),
        }
    }
}

/// Runs the drill.
pub async fn run(plan: &Plan) -> Result<DrillReport, DrillError> {
    support::check_stack().await?;
    let started = Instant::now();
    let total = plan.before + plan.during;
    let mut report = DrillReport {
        name: "Kafka broker restart".into(),
        fault: format!(
            "`dev/stack.sh restart kafka` with {} requests queued and {} more published during it",
            plan.before, plan.during
        ),
        requests: total,
        ..DrillReport::default()
    };
    let env = TestEnv::new("drill-kafka", support::three_healthy_vendors(), 2_000).await?;
    let window = plan.max_in_flight.to_string();
    let mut consumer = env.start_consumer("a", &["--max-in-flight", window.as_str()])?;
    let products = env.products(total);
    let (first, second) = products.split_at(plan.before as usize);
    env.publish(first.iter().copied()).await?;
    results::wait_progress(first, plan.restart_after, Duration::from_secs(120)).await?;
    let stored_before = results::stored(&products).await?.len();

    // The restart blocks until the broker is ready again; the second batch is published meanwhile.
    let restart = pricefront_harness::stack_script(&["restart", "kafka"], &[], plan.restart_limit);
    let publish = async {
        // Publish once the broker is down, so the records wait in the producer's queue.
        let down = broker_down(plan.restart_limit).await;
        let began = Instant::now();
        let published = env.publish(second.iter().copied()).await;
        (down, began.elapsed(), published)
    };
    let (restarted, (down, publish_took, published)) = tokio::join!(restart, publish);
    let restart_took = restarted?;
    published?;
    let back_at = Instant::now();
    report.note(format!(
        "restart began with {stored_before} of {} results stored; `dev/stack.sh restart kafka` took {} (stop, then start until ready)",
        plan.before,
        secs(restart_took),
    ));
    if down {
        report.note(format!(
            "the second batch of {} requests was published while the broker was down; the producer's acknowledgements took {}",
            plan.during,
            secs(publish_took)
        ));
    } else {
        report.fail(
            "the broker was never seen down: the second batch was not published during the outage",
        );
    }

    support::record_lost(
        &mut report,
        &products,
        plan.limit,
        "the broker was back",
        back_at,
    )
    .await?;
    support::check_recovered(&mut report, &mut consumer).await;
    let assignments = consumer
        .metric("pricefront_rebalances_total{event=\"assign\"}")
        .await
        .unwrap_or(0.0);
    let kafka_errors = consumer
        .metric("pricefront_kafka_errors_total")
        .await
        .unwrap_or(0.0);
    report.note(format!(
        "consumer: {kafka_errors} Kafka errors while consuming (pricefront_kafka_errors_total); partition assignments \
         (pricefront_rebalances_total): {assignments} (1 = only the one at start, no rebalance)",
    ));

    let records = support::records_in(&env.topic).await?;
    let (extra_calls, extra_rounds) = support::extra_rounds(&env, products.len());
    let twice = support::compared_twice(&support::compared_counts(&env));
    report.duplicated = Some(extra_rounds);
    report.note(format!(
        "duplicates: {extra_calls} vendor calls beyond one round per product ({extra_rounds} rounds), {twice} products compared twice; the topic holds {records} records for {total} requests ({} written twice by producer retries)",
        records - total as i64
    ));
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Waits until the broker refuses connections (it is stopping); false if it never did within `limit`.
async fn broker_down(limit: Duration) -> bool {
    let brokers = pricefront_harness::brokers();
    let address = brokers.split(',').next().unwrap_or_default().to_owned();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let attempt = tokio::net::TcpStream::connect(address.as_str());
        if !matches!(
            tokio::time::timeout(Duration::from_millis(500), attempt).await,
            Ok(Ok(_))
        ) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
