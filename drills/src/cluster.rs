//! What the three cluster drills share: the rig (a test's topics on the three-node cluster, two
//! consumers on them, and an edge Worker publishing its misses through the cluster's bridge), and the
//! accounting at the end: every miss answered 202 or 503 with `Retry-After`, every 202 with its record
//! in the topic, every record with its result in Redis, and the records written twice.

use std::collections::HashMap;
use std::time::Duration;

use pricefront_core::{Comparison, ProductId};
use pricefront_harness::edge::Edge;
use pricefront_harness::results::wait_stored;
use pricefront_harness::topic::read_to_end;
use pricefront_harness::worker::{Inspector, LocalWorker};
use pricefront_harness::{Cluster, ConsumerProcess, TestEnv};
use tokio::time::Instant;

use crate::misses::Answer;
use crate::support::{self, secs};
use crate::{DrillError, DrillReport};

/// The longest wait for every result once the fault is over.
const RESULTS_LIMIT: Duration = Duration::from_secs(180);

/// A test's slice of the cluster under load: its topics (three partitions, three replicas, two in sync
/// to acknowledge), two consumers, and a Worker whose REST proxy is the cluster's bridge.
pub(crate) struct Rig {
    /// The cluster.
    pub cluster: Cluster,
    /// The topics, the vendors and the products.
    pub env: TestEnv,
    /// The two consumers, checked at the end: they outlived the fault by themselves (killed when dropped).
    consumers: Vec<ConsumerProcess>,
    /// The edge, as a client sees it.
    pub edge: Edge,
    worker: LocalWorker,
}

impl Rig {
    /// Creates the topics on the cluster (which fails unless all three nodes are up), starts two
    /// consumers and the Worker named `name` on `port`, and waits until all of them are ready.
    pub async fn start(name: &str, port: u16) -> Result<Self, DrillError> {
        support::check_stack().await?;
        let cluster = Cluster::from_env()?;
        let env =
            TestEnv::on_cluster(&cluster, name, support::three_healthy_vendors(), 2_000, 3).await?;
        cluster
            .wait_in_sync(&env.topic, Duration::from_secs(60))
            .await?;
        let consumers = vec![env.start_consumer("a", &[])?, env.start_consumer("b", &[])?];
        let vars = [
            ("REST_PROXY_URL", cluster.bridge_url.as_str()),
            ("REQUEST_TOPIC", env.topic.as_str()),
        ];
        // Without wrangler's inspector, as deployed: relaying its events for every publish doubled
        // wrangler's CPU in the rolling restart (node 22.0 s and workerd 34.9 s for 2,253 misses, against
        // 4.2 s and 24.3 s for 2,058), taken from the 2 cores Kafka restarts on; in a CI run on a slow
        // day 72 of 2,570 misses then got no answer within 30 s, though the Worker had logged its 503.
        let worker = LocalWorker::start_with(&format!("drill-{name}"), port, &vars, Inspector::Off)
            .await
            .map_err(|e| DrillError::Precondition(e.to_string()))?;
        let both: Vec<&ConsumerProcess> = consumers.iter().collect();
        support::wait_assigned(&both, 3, Duration::from_secs(90)).await?;
        Ok(Self {
            edge: Edge::at(worker.base.clone()),
            cluster,
            env,
            consumers,
            worker,
        })
    }

    /// The partition holding the most records of the request topic now, and its leader.
    pub async fn busiest_partition(&self) -> Result<(i32, i32), DrillError> {
        let records = self.records().await?;
        let mut counts: HashMap<i32, u64> = HashMap::new();
        for record in records.values() {
            *counts.entry(record.partition).or_default() += record.copies;
        }
        let busiest = counts
            .into_iter()
            .max_by_key(|&(partition, count)| (count, -partition))
            .map(|(partition, _)| partition)
            .unwrap_or(0);
        let partitions = self.cluster.partitions(&self.env.topic).await?;
        let leader = partitions
            .iter()
            .find(|p| p.partition == busiest)
            .map(|p| p.leader)
            .ok_or_else(|| DrillError::Precondition(format!("no partition {busiest}")))?;
        Ok((busiest, leader))
    }

    /// The records of the request topic by product: their partition and how many were written.
    pub async fn records(&self) -> Result<HashMap<ProductId, Published>, DrillError> {
        let (brokers, topic) = (self.env.brokers.clone(), self.env.topic.clone());
        let records = tokio::task::spawn_blocking(move || {
            read_to_end(&brokers, &topic, Duration::from_secs(120))
        })
        .await
        .map_err(|e| DrillError::Precondition(format!("reading the topic: {e}")))?
        .map_err(|e| DrillError::Precondition(e.to_string()))?;
        let mut published: HashMap<ProductId, Published> = HashMap::new();
        for record in records {
            let product = record
                .key
                .as_deref()
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(|k| k.parse::<u64>().ok())
                .and_then(ProductId::new);
            if let Some(product) = product {
                published
                    .entry(product)
                    .or_insert(Published {
                        partition: record.partition,
                        copies: 0,
                    })
                    .copies += 1;
            }
        }
        Ok(published)
    }

    /// Checks the answers and counts what was lost and written twice into `report` (the fault began at
    /// `fault_at` and ended at `since`); the stored results and the records, for the drill's own figures.
    pub async fn account(
        &mut self,
        report: &mut DrillReport,
        answers: &[Answer],
        fault_at: Instant,
        since: Instant,
    ) -> Result<Accounts, DrillError> {
        report.requests = answers.len() as u64;
        check_answers(report, answers);
        let records = self.records().await?;
        let accepted: Vec<&Answer> = answers.iter().filter(|a| a.accepted()).collect();
        let unkept = accepted
            .iter()
            .filter(|a| !records.contains_key(&a.product))
            .count() as u64;
        report.check(
            unkept == 0,
            format!(
                "{unkept} misses answered 202 have no record in the topic: Kafka did not keep them"
            ),
        );
        let in_topic: Vec<ProductId> = records.keys().copied().collect();
        let results = wait_stored(&in_topic, RESULTS_LIMIT).await?;
        let unanswered = (in_topic.len() - results.len()) as u64;
        report.check(
            unanswered == 0,
            format!(
                "{unanswered} records of the topic have no stored result {} after the fault",
                secs(RESULTS_LIMIT)
            ),
        );
        report.lost = Some(unkept + unanswered);
        for consumer in &mut self.consumers {
            support::check_recovered(report, consumer).await;
        }
        let refused = answers.iter().filter(|a| a.status == Some(503)).count();
        let refused_kept = answers
            .iter()
            .filter(|a| a.status == Some(503) && records.contains_key(&a.product))
            .count();
        report.note(format!(
            "{} misses: {} answered 202, every one in the topic: {}; {refused} answered 503 with Retry-After \
             ({refused_kept} of them in the topic after all: a publish that outlived the edge's timeout); \
             {} records, every one with its result {} after the fault ended",
            answers.len(),
            accepted.len(),
            if unkept == 0 { "yes" } else { "no" },
            records.len(),
            secs(since.elapsed())
        ));
        let before: Vec<&Answer> = answers.iter().filter(|a| a.sent < fault_at).collect();
        let refused_before = before.iter().filter(|a| a.status == Some(503)).count();
        report.note(format!(
            "before the fault, with every node up: {refused_before} of {} misses answered 503 (a publish that \
             outlasted PUBLISH_TIMEOUT_MS on 2 busy cores)",
            before.len()
        ));
        report.note(wrangler_cpu(&self.worker));
        let written_twice = records.values().filter(|r| r.copies > 1).count() as u64;
        let compared_twice = support::compared_twice(&support::compared_counts(&self.env));
        report.duplicated = Some(written_twice);
        report.note(format!(
            "duplicates: {written_twice} records written twice (the bridge's producer is idempotent), \
             {compared_twice} products compared twice (a consumer's uncommitted work redone after a rebalance)"
        ));
        Ok(Accounts { records, results })
    }

    /// Stops the Worker (the consumers are killed when the rig is dropped).
    pub async fn stop(self) -> Result<(), DrillError> {
        let worker = self.worker;
        tokio::task::spawn_blocking(move || worker.stop())
            .await
            .map_err(|e| DrillError::Precondition(format!("stopping the Worker: {e}")))?
            .map_err(|e| DrillError::Precondition(e.to_string()))?;
        Ok(())
    }
}

/// What the Worker's `wrangler dev` spent on the drill, by command, from its process group's CPU
/// counters: its runtime and wrangler's proxy (`workerd`), and wrangler itself (`node`).
fn wrangler_cpu(worker: &LocalWorker) -> String {
    match worker.cpu_by_command() {
        Ok(by_command) => {
            let spent: Vec<String> = by_command
                .iter()
                .map(|(command, seconds)| format!("{command} {seconds:.1} s"))
                .collect();
            format!("the Worker's wrangler dev used {} of CPU", spent.join(", "))
        }
        Err(error) => format!("the Worker's CPU could not be read: {error}"),
    }
}

/// A product's records in the request topic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Published {
    /// The partition they are in.
    pub partition: i32,
    /// How many were written.
    pub copies: u64,
}

/// What the accounting read: the topic's records and the stored results.
pub(crate) struct Accounts {
    /// The records by product.
    pub records: HashMap<ProductId, Published>,
    /// The results of the records' products.
    pub results: Vec<Comparison>,
}

/// Fails `report` for any answer other than 202, or 503 with `Retry-After`: the edge never answers a
/// 5xx of its own, nor a 503 a client cannot back off from, when Kafka loses nodes.
pub(crate) fn check_answers(report: &mut DrillReport, answers: &[Answer]) {
    let wrong: Vec<String> = answers
        .iter()
        .filter(|a| !(a.accepted() || (a.status == Some(503) && a.retry_after)))
        .map(|a| match a.status {
            Some(503) => format!("{}: 503 without Retry-After", a.product),
            Some(status) => format!("{}: {status}", a.product),
            None => format!(
                "{}: no answer after {} ({})",
                a.product,
                secs(a.took),
                a.error.as_deref().unwrap_or("no error")
            ),
        })
        .collect();
    report.check(
        wrong.is_empty(),
        format!(
            "{} misses answered neither 202 nor 503 with Retry-After: {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: Option<u16>, retry_after: bool) -> Answer {
        Answer {
            product: ProductId::new(7).unwrap(),
            status,
            error: status.is_none().then(|| "connection reset".to_owned()),
            retry_after,
            sent: Instant::now(),
            took: Duration::from_millis(5),
        }
    }

    #[test]
    fn only_202_and_503_with_retry_after_pass() {
        let mut report = DrillReport::default();
        check_answers(
            &mut report,
            &[answer(Some(202), false), answer(Some(503), true)],
        );
        assert!(report.failures.is_empty(), "{}", report.details());
        for wrong in [
            answer(Some(503), false),
            answer(Some(500), false),
            answer(Some(502), true),
            answer(None, false),
        ] {
            let mut report = DrillReport::default();
            check_answers(&mut report, &[answer(Some(202), false), wrong]);
            assert_eq!(report.failures.len(), 1, "{}", report.details());
        }
    }
}
