//! Cluster drill 3: below the quorum of in-sync replicas. Two of the three nodes are stopped together
//! under distinct misses at the edge: no partition can have the two in-sync replicas that `acks=all`
//! with `min.insync.replicas=2` needs (nor can the controllers, two of three, elect anyone), so the
//! bridge cannot get a record acknowledged. The edge must answer 503 with `Retry-After`, never 202 for
//! a record Kafka did not keep; and once one node is back, misses must be accepted again without a
//! restart of the Worker, the bridge or the consumers.

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
    /// Load before the two nodes stop, and after the first 202 once one is back.
    pub settle: Duration,
    /// How long two nodes stay down.
    pub down: Duration,
    /// The longest wait, once a node is back, for a miss to be accepted.
    pub recovery_limit: Duration,
    /// The Worker's port.
    pub port: u16,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            misses_per_second: 10,
            settle: Duration::from_secs(5),
            down: Duration::from_secs(10),
            recovery_limit: Duration::from_secs(120),
            port: 8817,
        }
    }
}

/// Runs the drill.
pub async fn run(plan: &Plan) -> Result<DrillReport, DrillError> {
    let started = Instant::now();
    let mut report = DrillReport {
        name: "cluster: below min.insync.replicas".into(),
        ..DrillReport::default()
    };
    let mut rig = Rig::start("below-isr", plan.port).await?;
    // The node that stays is partition 0's leader: at least one partition keeps its leader, which then
    // cannot find the second in-sync replica that acks=all asks for.
    let partitions = rig.cluster.partitions(&rig.env.topic).await?;
    let stays = partitions.first().map_or(1, |p| p.leader);
    let stopped: Vec<i32> = (1..=3).filter(|&n| n != stays).collect();
    report.fault = format!(
        "`dev/stack.sh stop kafka-{}` and `kafka-{}` together for {} (node {stays} alone: fewer in-sync replicas \
         than min.insync.replicas 2), then one started again, under {} distinct misses/s at the edge",
        stopped[0],
        stopped[1],
        secs(plan.down),
        plan.misses_per_second
    );
    let load = MissStream::start(&rig.edge, plan.misses_per_second);
    tokio::time::sleep(plan.settle).await;

    let down_at = Instant::now();
    let (first, second) = tokio::join!(
        rig.cluster.node("stop", stopped[0]),
        rig.cluster.node("stop", stopped[1])
    );
    first?;
    second?;
    let accepted_before = load.accepted_so_far();
    tokio::time::sleep(plan.down).await;
    let accepted_while_down = load.accepted_so_far() - accepted_before;

    let back = rig.cluster.node("start", stopped[0]).await?;
    let back_at = Instant::now();
    let recovered = load.next_accepted(plan.recovery_limit).await;
    tokio::time::sleep(plan.settle).await;
    let answers = load.finish().await?;
    rig.cluster.node("start", stopped[1]).await?;
    rig.cluster
        .wait_in_sync(&rig.env.topic, Duration::from_secs(120))
        .await?;
    let since = Instant::now();
    rig.account(&mut report, &answers, down_at, since).await?;

    let refused_while_down = answers
        .iter()
        .filter(|a| a.status == Some(503) && a.sent >= down_at && a.sent < back_at)
        .count();
    let sent_while_down = answers
        .iter()
        .filter(|a| a.sent >= down_at && a.sent < back_at)
        .count();
    report.check(
        refused_while_down > 0,
        "no miss was answered 503 while two nodes were down: the drill tested nothing",
    );
    report.note(format!(
        "while two nodes were down (until the first was started again): {sent_while_down} misses sent, \
         {refused_while_down} answered 503 with Retry-After, {accepted_while_down} answered 202 before a node was \
         back, {} once one was (each checked against the topic)",
        sent_while_down - refused_while_down - accepted_while_down as usize
    ));
    match recovered {
        Some(took) => report.note(format!(
            "node {} started again in {}; the first 202 after it came {} later, by itself (no restart of the \
             Worker, the bridge or the consumers)",
            stopped[0],
            secs(back),
            secs(took)
        )),
        None => report.fail(format!(
            "no miss was accepted within {} of node {} being back",
            secs(plan.recovery_limit),
            stopped[0]
        )),
    }
    rig.stop().await?;
    report.elapsed = started.elapsed();
    Ok(report)
}
