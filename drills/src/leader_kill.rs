//! Cluster drill 1: `kill -9` of the node leading the request topic's busiest partition, on the
//! three-node cluster, while the edge takes distinct misses through the bridge and two consumers work.
//! Kafka's promise: an acknowledged record survives the loss of any one node. Lost = a 202 without its
//! record, or a record without its result; duplicated = a record written twice. Reported: how long
//! until the partition had a new leader, and until the first result of a miss published after the kill
//! to that partition.

use std::time::Duration;

use pricefront_harness::now_ms;
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
    /// Load before the kill.
    pub before: Duration,
    /// Load after the partition has a new leader.
    pub after: Duration,
    /// The longest wait for a new leader.
    pub election_limit: Duration,
    /// The Worker's port.
    pub port: u16,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            misses_per_second: 20,
            before: Duration::from_secs(5),
            after: Duration::from_secs(10),
            election_limit: Duration::from_secs(60),
            port: 8815,
        }
    }
}

/// Runs the drill.
pub async fn run(plan: &Plan) -> Result<DrillReport, DrillError> {
    let started = Instant::now();
    let mut report = DrillReport {
        name: "cluster: partition leader killed".into(),
        ..DrillReport::default()
    };
    let mut rig = Rig::start("leader-kill", plan.port).await?;
    let load = MissStream::start(&rig.edge, plan.misses_per_second);
    tokio::time::sleep(plan.before).await;

    let (partition, leader) = rig.busiest_partition().await?;
    report.fault = format!(
        "`dev/stack.sh kill kafka-N` (SIGKILL) of the leader of the request topic's busiest partition, under {} \
         distinct misses/s at the edge (through the bridge) and two consumers; 3 nodes, replication 3, \
         min.insync.replicas 2",
        plan.misses_per_second
    );
    let killed_ms = now_ms();
    let killed_at = Instant::now();
    rig.cluster.node("kill", leader).await?;
    let (_, election) = rig
        .cluster
        .wait_for(
            &rig.env.topic,
            "a new leader of the busiest partition",
            plan.election_limit,
            |parts| {
                parts
                    .iter()
                    .any(|p| p.partition == partition && p.has_leader() && p.leader != leader)
            },
        )
        .await?;
    let elected = rig.cluster.partitions(&rig.env.topic).await?;
    tokio::time::sleep(plan.after).await;
    let answers = load.finish().await?;
    let restarted = rig.cluster.node("start", leader).await?;
    let since = Instant::now();

    let accounts = rig.account(&mut report, &answers, killed_at, since).await?;
    let new_leader = elected
        .iter()
        .find(|p| p.partition == partition)
        .map_or(-1, |p| p.leader);
    report.note(format!(
        "partition {partition} (the busiest) lost its leader, node {leader}, to kill -9; node {new_leader} led it {} \
         later (the controller fences a silent node after broker.session.timeout.ms, 9 s by default); node {leader} \
         started again in {} once the load ended",
        secs(election),
        secs(restarted)
    ));
    // The first result of a miss sent after the kill whose record is in that partition.
    let after_kill: std::collections::HashSet<_> = answers
        .iter()
        .filter(|a| a.accepted() && a.sent >= killed_at)
        .map(|a| a.product)
        .filter(|p| {
            accounts
                .records
                .get(p)
                .is_some_and(|r| r.partition == partition)
        })
        .collect();
    let first_result = accounts
        .results
        .iter()
        .filter(|r| after_kill.contains(&r.product_id))
        .map(|r| r.computed_at_ms.saturating_sub(killed_ms))
        .min();
    match first_result {
        Some(ms) => report.note(format!(
            "the first result of a miss published to partition {partition} after the kill was computed {} after it",
            secs(Duration::from_millis(ms))
        )),
        None => report.fail(format!(
            "no miss published to partition {partition} after the kill has a result"
        )),
    }
    let refused_while_leaderless = answers
        .iter()
        .filter(|a| a.status == Some(503) && a.sent >= killed_at)
        .count();
    report.note(format!(
        "{refused_while_leaderless} misses answered 503 after the kill (their partition had no leader yet and \
         the edge's publish timed out)"
    ));
    rig.stop().await?;
    report.elapsed = started.elapsed();
    Ok(report)
}
