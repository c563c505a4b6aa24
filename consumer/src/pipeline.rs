//! The consume loop: many messages in flight at once, results stored before offsets are committed,
//! unparseable messages dead-lettered, and a graceful stop.
//!
//! Shaped after rdkafka's `at_least_once.rs` and `asynchronous_processing.rs` examples: offsets are stored
//! explicitly (`enable.auto.offset.store=false`) and committed by librdkafka in the background, but only
//! up to the [`OffsetTracker`]'s committable point, so work never finishes "out of order" on the broker.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use pricefront_core::{Freshness, PriceRequest, ProductId};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cache::RedisCache;
use crate::config::{ProcessingMode, Settings};
use crate::dead_letter::{DeadLetter, DeadLetterQueue};
use crate::fanout::{now_ms, Comparer};
use crate::fill::FillSink;
use crate::metrics::{Metrics, PartitionLabel, Sink};
use crate::offsets::{OffsetTracker, Ticket};

/// Why the pipeline could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Kafka refused the configuration or the subscription.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Redis could not be reached at start.
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
}

/// Keeps the offset tracker in step with partition assignments.
struct PipelineContext {
    tracker: Arc<Mutex<OffsetTracker>>,
    metrics: Arc<Metrics>,
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
                }
            }
        }
    }
}

impl ConsumerContext for PipelineContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let mut tracker = self.tracker.lock().expect("tracker lock");
            for element in partitions.elements() {
                tracker.revoke(element.partition());
            }
            self.metrics.assigned_partitions.store(0, Ordering::Relaxed);
            self.metrics.lag.clear();
            tracker_log("revoked", partitions);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            self.metrics
                .assigned_partitions
                .store(partitions.count(), Ordering::Relaxed);
            tracker_log("assigned", partitions);
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

fn tracker_log(what: &str, partitions: &TopicPartitionList) {
    let list: Vec<i32> = partitions
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect();
    tracing::info!(count = list.len(), partitions = ?list, "partitions {what}");
}

type LoggingConsumer = StreamConsumer<PipelineContext>;

/// What every in-flight message needs.
struct Worker {
    topic: String,
    consumer: Arc<LoggingConsumer>,
    tracker: Arc<Mutex<OffsetTracker>>,
    comparer: Comparer,
    cache: RedisCache,
    fill: Option<FillSink>,
    dead_letters: DeadLetterQueue,
    metrics: Arc<Metrics>,
    /// Comparisons under way, so that a product already in flight is not fanned out again.
    comparing: Mutex<HashMap<ProductId, Shared<BoxFuture<'static, ()>>>>,
    /// In sequential mode, one lock per partition, taken in arrival order (tokio's mutex is fair).
    partition_locks: Option<Mutex<HashMap<i32, Arc<tokio::sync::Mutex<()>>>>>,
}

/// What the pipeline writes to and reports with.
pub struct Outputs {
    /// The Redis cache.
    pub cache: RedisCache,
    /// The edge's fill endpoint, when configured.
    pub fill: Option<FillSink>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

/// Runs the consumer until `shutdown` completes, then lets in-flight work finish within the grace period
/// and commits what is done.
pub async fn run(
    settings: &Settings,
    comparer: Comparer,
    outputs: Outputs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PipelineError> {
    let Outputs {
        cache,
        fill,
        metrics,
    } = outputs;
    let tracker = Arc::new(Mutex::new(OffsetTracker::default()));
    let consumer: LoggingConsumer = kafka_config(settings)
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            settings.commit_interval_ms.to_string(),
        )
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000")
        .create_with_context(PipelineContext {
            tracker: tracker.clone(),
            metrics: metrics.clone(),
        })?;
    consumer.subscribe(&[&settings.topic])?;
    let producer: FutureProducer = kafka_config(settings)
        .set("enable.idempotence", "true")
        .create()?;
    let worker = Arc::new(Worker {
        topic: settings.topic.clone(),
        consumer: Arc::new(consumer),
        tracker,
        comparer,
        cache,
        fill,
        dead_letters: DeadLetterQueue::new(producer, settings.dead_letter_topic.clone()),
        metrics,
        comparing: Mutex::default(),
        partition_locks: (settings.mode == ProcessingMode::Sequential).then(Mutex::default),
    });
    tracing::info!(topic = %settings.topic, group = %settings.group_id, max_in_flight = settings.max_in_flight, "consuming");

    let window = Arc::new(Semaphore::new(settings.max_in_flight as usize));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = window.clone().acquire_owned() => permit.expect("the window is never closed"),
        };
        let message = tokio::select! {
            biased;
            () = &mut shutdown => break,
            message = worker.consumer.recv() => message,
        };
        while let Some(result) = tasks.try_join_next() {
            report_task_end(result);
        }
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "kafka error while consuming");
                continue;
            }
        };
        worker.metrics.consumed.inc();
        worker.metrics.in_flight.inc();
        let ticket = worker
            .tracker
            .lock()
            .expect("tracker lock")
            .begin(message.partition(), message.offset());
        let key = message.key().map(<[u8]>::to_vec);
        let payload = message.payload().map(<[u8]>::to_vec);
        let worker = worker.clone();
        tasks.spawn(async move {
            worker.handle(ticket, key, payload).await;
            drop(permit);
        });
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
    worker.commit_finished()?;
    tracing::info!("stopped");
    Ok(())
}

fn report_task_end(result: Result<(), tokio::task::JoinError>) {
    if let Err(error) = result {
        if error.is_panic() {
            tracing::error!(%error, "a message task panicked; its offset stays uncommitted");
        }
    }
}

/// The client settings shared by the consumer and the dead-letter producer.
fn kafka_config(settings: &Settings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    for (key, value) in &settings.kafka_options {
        config.set(key, value);
    }
    config
}

impl Worker {
    async fn handle(
        self: Arc<Self>,
        ticket: Ticket,
        key: Option<Vec<u8>>,
        payload: Option<Vec<u8>>,
    ) {
        let partition_lock = self.partition_locks.as_ref().map(|locks| {
            let mut locks = locks.lock().expect("partition locks");
            locks.entry(ticket.partition).or_default().clone()
        });
        let _turn = match &partition_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        match PriceRequest::from_json(payload.as_deref().unwrap_or_default()) {
            Ok(request) => {
                tracing::debug!(product = %request.product_id, request = %request.request_id, "request");
                self.clone().compare_once(request.product_id).await;
            }
            Err(error) => {
                let letter = DeadLetter {
                    topic: &self.topic,
                    partition: ticket.partition,
                    offset: ticket.offset,
                    key: key.as_deref(),
                    payload: payload.as_deref(),
                    error: error.to_string(),
                };
                tracing::warn!(partition = ticket.partition, offset = ticket.offset, %error, "dead-lettering a message");
                retry_forever("dead-letter write", || self.dead_letters.send(&letter)).await;
                self.metrics.dead_lettered.inc();
            }
        }
        self.finish(ticket);
    }

    /// Waits for a comparison of `product` already under way, or makes one.
    async fn compare_once(self: Arc<Self>, product: ProductId) {
        let comparison = {
            let mut comparing = self.comparing.lock().expect("comparing lock");
            comparing
                .entry(product)
                .or_insert_with(|| self.clone().refresh(product).boxed().shared())
                .clone()
        };
        comparison.await;
    }

    /// Compares `product` unless Redis already holds a fresh result, and stores the result.
    async fn refresh(self: Arc<Self>, product: ProductId) {
        let fresh = matches!(self.cache.get(product).await, Ok(Some(c)) if c.freshness(now_ms()) == Freshness::Fresh);
        if !fresh {
            let comparison = self.comparer.compare(product).await;
            tracing::info!(%product, offers = comparison.offers.len(), failures = comparison.failures.len(), "compared");
            retry_forever("redis write", || async {
                let result = self.cache.put(&comparison, now_ms()).await;
                self.metrics.cache_write(Sink::Redis, result.is_ok());
                result
            })
            .await;
            if let Some(fill) = &self.fill {
                retry_forever("edge fill", || async {
                    let result = fill.put(&comparison).await;
                    self.metrics.cache_write(Sink::Edge, result.is_ok());
                    result
                })
                .await;
            }
        }
        self.comparing
            .lock()
            .expect("comparing lock")
            .remove(&product);
    }

    fn finish(&self, ticket: Ticket) {
        self.metrics.finished.inc();
        self.metrics.in_flight.dec();
        let committable = self.tracker.lock().expect("tracker lock").finish(ticket);
        if let Some(offset) = committable {
            let mut offsets = TopicPartitionList::new();
            if let Err(error) = offsets
                .add_partition_offset(&self.topic, ticket.partition, Offset::Offset(offset))
                .and_then(|()| self.consumer.store_offsets(&offsets))
            {
                // The partition was revoked meanwhile: its new owner consumes the message again.
                tracing::debug!(%error, partition = ticket.partition, "offset not stored");
            }
        }
    }

    fn commit_finished(&self) -> Result<(), rdkafka::error::KafkaError> {
        let committable = self.tracker.lock().expect("tracker lock").committable();
        if committable.is_empty() {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in committable {
            offsets.add_partition_offset(&self.topic, partition, Offset::Offset(offset))?;
        }
        self.consumer.commit(&offsets, CommitMode::Sync)
    }
}

/// Retries `operation` with capped, jittered exponential backoff until it succeeds: used for writes whose
/// loss is not an option (the offset is only committed after them).
async fn retry_forever<T, E, F, Fut>(what: &str, operation: F) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    use backon::{ExponentialBuilder, Retryable};
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times();
    operation
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .notify(|error, delay| tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "{what} failed"))
        .await
        .unwrap_or_else(|_| unreachable!("retries never run out"))
}
