//! The consume loop: many messages in flight at once, results stored before offsets are committed,
//! polling that never stops while the window is full, and a graceful stop.
//!
//! Shaped after rdkafka's `at_least_once.rs` and `asynchronous_processing.rs` examples: offsets are stored
//! explicitly (`enable.auto.offset.store=false`) and committed by librdkafka in the background, but only
//! up to the [`OffsetTracker`]'s committable point, so work never finishes "out of order" on the broker.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::task::JoinSet;

use crate::backlog::{report_periodically, PartitionLags};
use crate::cache::RedisCache;
use crate::clients::{consumer_config, dead_letter_producer_config};
use crate::config::{ProcessingMode, Settings};
use crate::dead_letter::DeadLetterQueue;
use crate::fill::FillSink;
pub use crate::handler::Compare;
use crate::handler::MessageHandler;
use crate::lag::RuntimeLag;
use crate::metrics::{Metrics, PartitionLabel};
use crate::offsets::OffsetTracker;
use crate::sinks::Sinks;
use crate::window::{Backlog, Received, Revoked, PAUSE_WHEN_FULL_FOR};
use crate::window_size::{WindowPermit, WindowSize};

/// Why the pipeline could not start or stop cleanly. Redis is not among the reasons: it may be away at
/// start (the cache connects lazily) and writes wait for it.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Kafka refused the configuration or the subscription, or the final commit failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Keeps the offset tracker in step with partition assignments.
pub(crate) struct PipelineContext {
    tracker: Arc<Mutex<OffsetTracker>>,
    metrics: Arc<Metrics>,
    lags: Arc<PartitionLags>,
    revoked: Arc<Revoked>,
}

impl ClientContext for PipelineContext {
    fn stats(&self, statistics: Statistics) {
        for topic in statistics.topics.values() {
            for (partition, stats) in &topic.partitions {
                // librdkafka reports -1 for partitions it does not consume, and an internal -1 partition.
                if *partition >= 0 && stats.consumer_lag >= 0 {
                    let label = PartitionLabel {
                        partition: i64::from(*partition),
                    };
                    self.metrics
                        .lag
                        .get_or_create(&label)
                        .set(stats.consumer_lag);
                    self.lags
                        .record(*partition, stats.consumer_lag.unsigned_abs());
                }
            }
        }
    }
}

impl ConsumerContext for PipelineContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let mut tracker = self.tracker.lock().unwrap_or_else(PoisonError::into_inner);
            for element in partitions.elements() {
                tracker.revoke(element.partition());
            }
            self.revoked
                .record(partitions.elements().iter().map(|e| e.partition()));
            self.metrics.assigned_partitions.set(0);
            self.metrics.partition_assigned.clear();
            self.metrics.rebalanced("revoke");
            self.metrics.lag.clear();
            self.lags.forget_all();
            log_partitions("revoked", partitions);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            self.metrics
                .assigned_partitions
                .set(partitions.count() as i64);
            for element in partitions.elements() {
                let label = PartitionLabel {
                    partition: i64::from(element.partition()),
                };
                self.metrics.partition_assigned.get_or_create(&label).set(1);
            }
            self.metrics.rebalanced("assign");
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

fn log_partitions(what: &str, partitions: &TopicPartitionList) {
    let list: Vec<i32> = partitions
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect();
    tracing::info!(count = list.len(), partitions = ?list, "partitions {what}");
}

/// The Kafka consumer of the pipeline.
pub(crate) type PipelineConsumer = StreamConsumer<PipelineContext>;

/// What the pipeline writes to and reports with.
pub struct Outputs {
    /// The Redis cache.
    pub cache: RedisCache,
    /// The edge's fill endpoint, when configured.
    pub fill: Option<FillSink>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// How late this process runs: the in-flight window follows it ([`WindowSize`]).
    pub lag: Arc<RuntimeLag>,
}

/// Runs the consumer until `shutdown` completes, then lets in-flight work finish within the grace period
/// and commits what is done.
pub async fn run(
    settings: &Settings,
    comparer: impl Compare,
    outputs: Outputs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PipelineError> {
    let Outputs {
        cache,
        fill,
        metrics,
        lag,
    } = outputs;
    let tracker = Arc::new(Mutex::new(OffsetTracker::default()));
    let lags = Arc::new(PartitionLags::default());
    let revoked = Arc::new(Revoked::default());
    let consumer: PipelineConsumer =
        consumer_config(settings).create_with_context(PipelineContext {
            tracker: tracker.clone(),
            metrics: metrics.clone(),
            lags: lags.clone(),
            revoked: revoked.clone(),
        })?;
    // Aborted when this function returns, however it does.
    let _reporting = AbortOnDrop(tokio::spawn(report_periodically(
        lags,
        settings.topic.clone(),
        cache.clone(),
        fill.clone(),
    )));
    consumer.subscribe(&[&settings.topic])?;
    let producer: FutureProducer = dead_letter_producer_config(settings).create()?;
    let handler = Arc::new(MessageHandler {
        topic: settings.topic.clone(),
        consumer: Arc::new(consumer),
        tracker,
        comparer: Box::new(comparer),
        sinks: Sinks::new(cache, fill, metrics.clone()),
        dead_letters: DeadLetterQueue::new(producer, settings.dead_letter_topic.clone()),
        metrics,
        comparing: Mutex::default(),
        partition_locks: (settings.mode == ProcessingMode::Sequential)
            .then(|| Mutex::new(HashMap::new())),
    });
    tracing::info!(topic = %settings.topic, group = %settings.group_id, max_in_flight = settings.max_in_flight, "consuming");

    let window = WindowSize::new(
        settings.max_in_flight as usize,
        handler.metrics.window_size.clone(),
        handler.metrics.window_in_use.clone(),
    );
    window.follow(lag);
    let mut backlog = Backlog::new(settings.topic.clone(), handler.metrics.clone());
    let mut tasks = JoinSet::new();
    let consumer = handler.consumer.clone();
    tokio::pin!(shutdown);
    loop {
        while let Some(result) = tasks.try_join_next() {
            report_task_end(result);
        }
        if backlog.is_empty() {
            let message = tokio::select! {
                biased;
                () = &mut shutdown => break,
                message = consumer.recv() => message,
            };
            backlog.forget_revoked(&revoked);
            match message {
                Ok(message) => {
                    let message = Received::of(&message);
                    match window.try_acquire() {
                        Some(permit) => start(&handler, &mut tasks, message, permit),
                        None => backlog.hold(consumer.as_ref(), message),
                    }
                }
                Err(error) => {
                    handler.metrics.kafka_errors.inc();
                    tracing::warn!(%error, "kafka error while consuming")
                }
            }
            continue;
        }
        // The window is full and messages wait: wait for a permit, pausing the partitions if that takes
        // a while, and keep polling meanwhile so that the group keeps this member.
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = window.acquire() => {
                backlog.forget_revoked(&revoked);
                if let Some(message) = backlog.next(consumer.as_ref()) {
                    start(&handler, &mut tasks, message, permit);
                }
            }
            () = tokio::time::sleep(PAUSE_WHEN_FULL_FOR), if !backlog.is_paused() => {
                backlog.pause_assigned(consumer.as_ref());
            }
            message = consumer.recv(), if backlog.is_paused() => match message {
                Ok(message) => {
                    backlog.forget_revoked(&revoked);
                    backlog.hold(consumer.as_ref(), Received::of(&message));
                }
                Err(error) => {
                    handler.metrics.kafka_errors.inc();
                    tracing::warn!(%error, "kafka error while consuming")
                }
            },
        }
    }

    let grace = Duration::from_millis(settings.shutdown_grace_ms);
    tracing::info!(
        in_flight = tasks.len(),
        grace_ms = settings.shutdown_grace_ms,
        "stopping: finishing in-flight work"
    );
    let drained = tokio::time::timeout(grace, async {
        while let Some(result) = tasks.join_next().await {
            report_task_end(result);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            abandoned = tasks.len(),
            "grace period over: unfinished messages will be consumed again"
        );
        tasks.abort_all();
    }
    handler.commit_finished()?;
    tracing::info!("stopped");
    Ok(())
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts working on `message`, holding `permit` until it is done.
fn start(
    handler: &Arc<MessageHandler>,
    tasks: &mut JoinSet<()>,
    message: Received,
    permit: WindowPermit,
) {
    handler.metrics.consumed.inc();
    handler.metrics.in_flight.inc();
    let ticket = handler
        .tracker
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .begin(message.partition, message.offset);
    let handler = handler.clone();
    tasks.spawn(async move {
        handler.handle(ticket, message).await;
        drop(permit);
    });
}

fn report_task_end(result: Result<(), tokio::task::JoinError>) {
    if let Err(error) = result {
        if error.is_panic() {
            tracing::error!(%error, "a message task panicked outside its guard");
        }
    }
}
