//! The consumer's view of its partitions through rebalances: the offset tracker, the partition metrics
//! and the lag reports kept in step with what this member holds, and librdkafka's statistics read into
//! the lags.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};

use crate::intake::backlog::PartitionLags;
use crate::intake::offsets::OffsetTracker;
use crate::intake::window::Revoked;
use crate::process::metrics::{Metrics, PartitionLabel};

/// Keeps the offset tracker, the partition metrics and the lag reports in step with partition
/// assignments.
pub(crate) struct PipelineContext {
    tracker: Arc<Mutex<OffsetTracker>>,
    metrics: Arc<Metrics>,
    lags: Arc<PartitionLags>,
    revoked: Arc<Revoked>,
    held: Mutex<Assignment>,
}

/// The partitions this member holds, through eager and incremental rebalances.
///
/// An eager rebalance revokes every partition and assigns the whole new set; an incremental one
/// (`cooperative-sticky`, or the consumer protocol of KIP-848) revokes and assigns only the partitions
/// that move, and the others stay, with their state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Assignment(BTreeSet<i32>);

impl Assignment {
    /// Takes `partitions` away; returns those that were held.
    pub(crate) fn revoke(&mut self, partitions: &[i32]) -> Vec<i32> {
        partitions
            .iter()
            .copied()
            .filter(|p| self.0.remove(p))
            .collect()
    }

    /// Adds `partitions` (incremental) or makes them the whole assignment (eager); returns the partitions
    /// no longer held (an eager assignment not preceded by the revocation of everything).
    pub(crate) fn assign(&mut self, partitions: &[i32], incremental: bool) -> Vec<i32> {
        let gone = if incremental {
            Vec::new()
        } else {
            let gone = self.0.iter().copied().filter(|p| !partitions.contains(p));
            gone.collect()
        };
        for partition in &gone {
            self.0.remove(partition);
        }
        self.0.extend(partitions);
        gone
    }

    /// Whether `partition` is held.
    pub(crate) fn holds(&self, partition: i32) -> bool {
        self.0.contains(&partition)
    }

    /// How many partitions are held.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl ClientContext for PipelineContext {
    fn stats(&self, statistics: Statistics) {
        for topic in statistics.topics.values() {
            for (partition, stats) in &topic.partitions {
                // librdkafka reports -1 for partitions it does not consume, and an internal -1 partition.
                if *partition >= 0 && stats.consumer_lag >= 0 {
                    self.record_lag(*partition, stats.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for PipelineContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            self.revoke(&partition_numbers(partitions));
            log_partitions("revoked", partitions);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            let incremental = matches!(
                consumer.rebalance_protocol(),
                RebalanceProtocol::Cooperative
            );
            self.assign(&partition_numbers(partitions), incremental);
            log_partitions("assigned", partitions);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.metrics.commits.inc();
            }
            Err(error) => {
                tracing::warn!(%error, "offset commit failed; it is retried with the next one")
            }
        };
    }
}

impl PipelineContext {
    /// A context that keeps `tracker`, `metrics`' partition series, `lags` and `revoked` in step with
    /// what this member holds.
    pub(crate) fn new(
        tracker: Arc<Mutex<OffsetTracker>>,
        metrics: Arc<Metrics>,
        lags: Arc<PartitionLags>,
        revoked: Arc<Revoked>,
    ) -> Self {
        Self {
            tracker,
            metrics,
            lags,
            revoked,
            held: Mutex::default(),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Assignment> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `partitions` were revoked: their state goes, the other partitions' stays.
    fn revoke(&self, partitions: &[i32]) {
        let mut tracker = self.tracker.lock().unwrap_or_else(PoisonError::into_inner);
        for &partition in partitions {
            tracker.revoke(partition);
        }
        drop(tracker);
        self.revoked.record(partitions.iter().copied());
        let mut held = self.held();
        held.revoke(partitions);
        self.forget(partitions);
        self.metrics.assigned_partitions.set(held.len() as i64);
        self.metrics.rebalanced("revoke");
    }

    /// `partitions` were assigned: added to those held (`incremental`), or all of them (eager).
    fn assign(&self, partitions: &[i32], incremental: bool) {
        let mut held = self.held();
        let gone = held.assign(partitions, incremental);
        self.forget(&gone);
        self.metrics.assigned_partitions.set(held.len() as i64);
        for &partition in partitions {
            self.metrics
                .partition_assigned
                .get_or_create(&partition_label(partition))
                .set(1);
        }
        self.metrics.rebalanced("assign");
    }

    /// Forgets the metrics and lag reports of `partitions`: their new owner reports them.
    fn forget(&self, partitions: &[i32]) {
        for &partition in partitions {
            let label = partition_label(partition);
            self.metrics.partition_assigned.remove(&label);
            self.metrics.lag.remove(&label);
        }
        self.lags.forget(partitions);
    }

    /// Records `partition`'s lag from librdkafka's statistics, if this member holds it (statistics may
    /// still list a partition just revoked).
    fn record_lag(&self, partition: i32, lag: i64) {
        let held = self.held();
        if held.holds(partition) {
            self.metrics
                .lag
                .get_or_create(&partition_label(partition))
                .set(lag);
            self.lags.record(partition, lag.unsigned_abs());
        }
    }
}

fn partition_label(partition: i32) -> PartitionLabel {
    PartitionLabel {
        partition: i64::from(partition),
    }
}

fn partition_numbers(partitions: &TopicPartitionList) -> Vec<i32> {
    partitions
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

fn log_partitions(what: &str, partitions: &TopicPartitionList) {
    let list = partition_numbers(partitions);
    tracing::info!(count = list.len(), partitions = ?list, "partitions {what}");
}

/// The Kafka consumer of the pipeline.
pub(crate) type PipelineConsumer = StreamConsumer<PipelineContext>;

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> PipelineContext {
        PipelineContext::new(
            Arc::default(),
            Metrics::new(),
            Arc::default(),
            Arc::default(),
        )
    }

    /// What the context reports: the partitions held, and per partition 0 to 3 its assigned mark, its
    /// lag gauge and its lag in the backlog report.
    fn reported(context: &PipelineContext) -> (i64, Vec<String>) {
        let mut series = Vec::new();
        for partition in 0..4 {
            let label = PartitionLabel { partition };
            if let Some(assigned) = context.metrics.partition_assigned.get(&label) {
                series.push(format!("assigned {partition} {}", assigned.get()));
            }
            if let Some(lag) = context.metrics.lag.get(&label) {
                series.push(format!("lag {partition} {}", lag.get()));
            }
        }
        let report = context.lags.report(0).unwrap_or_default();
        series.extend(
            report
                .partitions
                .iter()
                .map(|(p, l)| format!("backlog {p} {}", l.lag)),
        );
        series.sort();
        (context.metrics.assigned_partitions.get(), series)
    }

    /// librdkafka's statistics.
    fn stats(context: &PipelineContext, lags: &[(i32, i64)]) {
        for &(partition, lag) in lags {
            context.record_lag(partition, lag);
        }
    }

    #[test]
    fn an_incremental_revoke_forgets_only_the_revoked_partitions() {
        let context = context();
        context.assign(&[0, 1, 2], true);
        stats(&context, &[(0, 10), (1, 20), (2, 30)]);
        // cooperative-sticky (or KIP-848) takes partition 1 only; 0 and 2 stay with this member.
        context.revoke(&[1]);
        let (held, series) = reported(&context);
        assert_eq!(held, 2, "partitions held after partition 1 was revoked");
        assert_eq!(
            series,
            [
                "assigned 0 1",
                "assigned 2 1",
                "backlog 0 10",
                "backlog 2 30",
                "lag 0 10",
                "lag 2 30",
            ]
        );
        // Statistics taken before the revocation do not bring partition 1 back.
        stats(&context, &[(1, 20)]);
        assert_eq!(reported(&context).1.len(), 6);
        // An incremental assignment adds to what is held.
        context.assign(&[1], true);
        assert_eq!(reported(&context).0, 3);
    }

    #[test]
    fn an_eager_rebalance_revokes_everything_then_assigns_the_new_set() {
        let context = context();
        context.assign(&[0, 1, 2], false);
        stats(&context, &[(0, 10), (1, 20), (2, 30)]);
        context.revoke(&[0, 1, 2]);
        assert_eq!(reported(&context), (0, Vec::new()));
        context.assign(&[2], false);
        assert_eq!(reported(&context), (1, vec!["assigned 2 1".to_owned()]));
    }

    #[test]
    fn an_eager_assignment_is_the_whole_set_an_incremental_one_adds() {
        let mut held = Assignment::default();
        assert_eq!(held.assign(&[0, 1], false), Vec::<i32>::new());
        assert_eq!(
            held.assign(&[1, 2], false),
            vec![0],
            "eager: 0 is no longer held"
        );
        assert_eq!(held.assign(&[0], true), Vec::<i32>::new());
        assert_eq!(held.len(), 3);
        assert_eq!(held.revoke(&[2, 5]), vec![2], "5 was not held");
        assert!(held.holds(0) && held.holds(1) && !held.holds(2));
    }
}
