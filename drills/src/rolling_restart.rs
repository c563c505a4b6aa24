//! Cluster drill 2: a rolling restart of the three-node cluster, one node at a time (`dev/stack.sh
//! restart kafka-N`: SIGTERM, a controlled shutdown, then the node on its data again), each waiting
//! until every replica of the request topic is back in sync before the next, as an operator's rolling
//! upgrade does, under distinct misses at the edge and two consumers. Lost 0, and the edge never answers
//! a 5xx other than its 503 with `Retry-After`.

use std::time::Duration;

use tokio::time::Instant;

use crate::cluster::Rig;
use crate::misses::MissStream;
use crate::support::secs;
use crate::{DrillError, DrillReport};

/// The load and the phases of the drill.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Distinct misses per second at the edge.
    pub misses_per_second: u32,
    /// Load before the first restart, and after the last.
    pub settle: Duration,
    /// The longest a restarted node may take to have every replica back in sync.
    pub in_sync_limit: Duration,
    /// The Worker's port.
    pub port: u16,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            misses_per_second: 20,
            settle: Duration::from_secs(5),
            in_sync_limit: Duration::from_secs(120),
            port: 8816,
        }
    }
}

/// Runs the drill.
pub async fn run(plan: &Plan) -> Result<DrillReport, DrillError> {
    let started = Instant::now();
    let mut report = DrillReport {
        name: "cluster: rolling restart".into(),
        fault: format!(
            "`dev/stack.sh restart kafka-N` for N = 1, 2, 3, each once the request topic is in sync again, under \
             {} distinct misses/s at the edge and two consumers",
            plan.misses_per_second
        ),
        ..DrillReport::default()
    };
    let mut rig = Rig::start("rolling", plan.port).await?;
    let load = MissStream::start(&rig.edge, plan.misses_per_second);
    tokio::time::sleep(plan.settle).await;
    let fault_at = Instant::now();
    let mut steps = Vec::new();
    for node in 1..=3 {
        let restart = rig.cluster.node("restart", node).await?;
        let began = Instant::now();
        rig.cluster
            .wait_in_sync(&rig.env.topic, plan.in_sync_limit)
            .await?;
        steps.push(format!(
            "node {node}: restarted in {}, in sync {} later",
            secs(restart),
            secs(began.elapsed())
        ));
    }
    tokio::time::sleep(plan.settle).await;
    let answers = load.finish().await?;
    let since = Instant::now();
    rig.account(&mut report, &answers, fault_at, since).await?;
    report.note(steps.join("; "));
    rig.stop().await?;
    report.elapsed = started.elapsed();
    Ok(report)
}
