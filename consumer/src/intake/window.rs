//! The in-flight window and what happens when it is full: the consumer keeps polling Kafka (or
//! `max.poll.interval.ms` passes and the group expels it), with the assigned partitions paused so that
//! nothing new arrives, and holds the messages it still receives, in arrival order, until permits free.
//!
//! Pausing makes librdkafka drop what it prefetched and fetch again, on resume, from just after the last
//! message it handed out; every message handed out is either started or held here, so none is skipped.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::TopicPartitionList;

use pricefront_core::trace_context::TRACEPARENT;
use rdkafka::message::Headers as _;

use crate::process::metrics::Metrics;

/// How long a full window waits for a permit before the partitions are paused (so that a window that is
/// full only for moments costs no refetching).
pub const PAUSE_WHEN_FULL_FOR: Duration = Duration::from_millis(500);

/// A message received from Kafka, not yet started.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its payload.
    pub payload: Option<Vec<u8>>,
    /// Its `traceparent` header, if it has a readable one (the edge's span that published it).
    pub traceparent: Option<String>,
}

impl Received {
    /// A copy of `message`.
    pub fn of(message: &impl rdkafka::Message) -> Self {
        Self {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            traceparent: message.headers().and_then(|headers| {
                headers
                    .iter()
                    .find(|header| header.key == TRACEPARENT)
                    .and_then(|header| std::str::from_utf8(header.value?).ok())
                    .map(str::to_owned)
            }),
        }
    }
}

/// The partitions revoked since the consume loop last looked: the rebalance callback records them
/// (it runs within the loop's poll), and the loop takes them right after each poll, before it holds or
/// starts anything more ([`Backlog::forget_revoked`]).
#[derive(Debug, Default)]
pub struct Revoked(Mutex<Vec<i32>>);

impl Revoked {
    /// Records that `partitions` were revoked.
    pub fn record(&self, partitions: impl IntoIterator<Item = i32>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(partitions);
    }

    /// The partitions revoked since the last call.
    fn take(&self) -> Vec<i32> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Messages waiting for a permit, and the partitions paused meanwhile.
pub struct Backlog {
    topic: String,
    held: VecDeque<Received>,
    paused: bool,
    paused_partitions: BTreeSet<i32>,
    metrics: Arc<Metrics>,
}

impl Backlog {
    /// An empty backlog for `topic`.
    pub fn new(topic: String, metrics: Arc<Metrics>) -> Self {
        Self {
            topic,
            held: VecDeque::new(),
            paused: false,
            paused_partitions: BTreeSet::new(),
            metrics,
        }
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Whether the partitions are paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Holds `message` until a permit frees. While paused, its partition is paused (again: it may have
    /// been assigned since) so that nothing more of it arrives.
    pub fn hold<C: ConsumerContext>(&mut self, consumer: &impl Consumer<C>, message: Received) {
        if self.is_paused() {
            self.pause(consumer, &[message.partition]);
        }
        self.held.push_back(message);
    }

    /// The message waiting longest; resumes the partitions when it was the last.
    pub fn next<C: ConsumerContext>(&mut self, consumer: &impl Consumer<C>) -> Option<Received> {
        let message = self.held.pop_front();
        if self.held.is_empty() && self.is_paused() {
            let mut partitions = TopicPartitionList::new();
            for &partition in &self.paused_partitions {
                partitions.add_partition(&self.topic, partition);
            }
            if let Err(error) = consumer.resume(&partitions) {
                tracing::warn!(%error, "resuming the partitions failed");
            }
            tracing::info!(partitions = ?self.paused_partitions, "the window has room again: partitions resumed");
            self.paused = false;
            self.paused_partitions.clear();
            self.metrics.paused_partitions.set(0);
        }
        message
    }

    /// Drops the held messages of the `revoked` partitions: they were received before the revocation,
    /// and whoever is assigned the partition next consumes them again from its committed offset, this
    /// member included. (Kept and started after the partition came back, one would open the new
    /// assignment above messages still unfinished, and the committed offset could pass those.)
    /// Takes what `revoked` recorded since the last call, so that each revocation is applied once, to
    /// what was held before it (called right after every poll, held messages or not).
    pub fn forget_revoked(&mut self, revoked: &Revoked) {
        let revoked = revoked.take();
        if !revoked.is_empty() {
            self.held.retain(|m| !revoked.contains(&m.partition));
        }
    }

    /// Pauses every assigned partition: the window has been full for [`PAUSE_WHEN_FULL_FOR`].
    pub fn pause_assigned<C: ConsumerContext>(&mut self, consumer: &impl Consumer<C>) {
        let assigned: Vec<i32> = match consumer.assignment() {
            Ok(list) => list.elements().iter().map(|e| e.partition()).collect(),
            Err(error) => {
                tracing::warn!(%error, "reading the assignment failed");
                Vec::new()
            }
        };
        self.pause(consumer, &assigned);
        tracing::info!(partitions = ?self.paused_partitions, "the in-flight window is full: partitions paused, polling goes on");
    }

    fn pause<C: ConsumerContext>(&mut self, consumer: &impl Consumer<C>, partitions: &[i32]) {
        let mut list = TopicPartitionList::new();
        for &partition in partitions {
            list.add_partition(&self.topic, partition);
        }
        if let Err(error) = consumer.pause(&list) {
            tracing::warn!(%error, "pausing partitions failed");
        }
        // Paused even when nothing is assigned, so that a partition assigned meanwhile is paused too.
        self.paused = true;
        self.paused_partitions.extend(partitions);
        self.metrics
            .paused_partitions
            .set(self.paused_partitions.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::ClientConfig;

    use super::*;

    fn message(partition: i32, offset: i64) -> Received {
        Received {
            partition,
            offset,
            key: None,
            payload: None,
            traceparent: None,
        }
    }

    /// A real client that is never polled: holding and dropping messages asks nothing of Kafka.
    fn consumer() -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("group.id", "window-tests")
            .create()
            .expect("a consumer is created without connecting")
    }

    fn drain(backlog: &mut Backlog, consumer: &BaseConsumer) -> Vec<(i32, i64)> {
        std::iter::from_fn(|| backlog.next(consumer))
            .map(|m| (m.partition, m.offset))
            .collect()
    }

    #[test]
    fn messages_held_before_their_partition_was_revoked_go_even_when_it_comes_back() {
        let consumer = consumer();
        let mut backlog = Backlog::new("t".into(), Metrics::new());
        backlog.hold(&consumer, message(0, 4));
        backlog.hold(&consumer, message(0, 5));
        backlog.hold(&consumer, message(1, 7));
        // An eager rebalance revokes both partitions and gives partition 0 back. Started now, offset 4
        // would be the new assignment's first message, and its finish would let the committed offset pass
        // 0 to 3, still in flight from before or not consumed again yet.
        let revoked = Revoked::default();
        revoked.record([0, 1]);
        backlog.forget_revoked(&revoked);
        // The new assignment consumes partition 0 again from its committed offset.
        backlog.hold(&consumer, message(0, 2));
        backlog.forget_revoked(&revoked);
        assert_eq!(drain(&mut backlog, &consumer), vec![(0, 2)]);
    }

    #[test]
    fn a_revocation_of_other_partitions_keeps_the_held_messages_in_order() {
        let consumer = consumer();
        let mut backlog = Backlog::new("t".into(), Metrics::new());
        for (partition, offset) in [(0, 4), (1, 7), (0, 5), (2, 3)] {
            backlog.hold(&consumer, message(partition, offset));
        }
        // An incremental rebalance takes partition 1 only: the others' messages were handed out once
        // and are not consumed again, so dropping them would lose them.
        let revoked = Revoked::default();
        revoked.record([1]);
        backlog.forget_revoked(&revoked);
        assert_eq!(drain(&mut backlog, &consumer), vec![(0, 4), (0, 5), (2, 3)]);
    }
}
