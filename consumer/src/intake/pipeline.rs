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

use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureProducer;
use tokio::task::JoinSet;

use crate::intake::backlog::{report_periodically, PartitionLags};
use crate::intake::clients::{consumer_config, dead_letter_producer_config};
use crate::intake::context::{PipelineConsumer, PipelineContext};
use crate::intake::dead_letter::DeadLetterQueue;
pub use crate::intake::handler::Compare;
use crate::intake::handler::MessageHandler;
use crate::intake::offsets::OffsetTracker;
use crate::intake::window::{Backlog, Received, Revoked, PAUSE_WHEN_FULL_FOR};
use crate::intake::window_size::{WindowPermit, WindowSize};
use crate::process::lateness::RuntimeLag;
use crate::process::metrics::Metrics;
use crate::process::settings::{ProcessingMode, Settings};
use crate::sinks::cache::RedisCache;
use crate::sinks::fill::FillSink;
use crate::sinks::Sinks;

/// Why the pipeline could not start or stop cleanly. Redis is not among the reasons: it may be away at
/// start (the cache connects lazily) and writes wait for it.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Kafka refused the configuration or the subscription, or the final commit failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

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
        consumer_config(settings).create_with_context(PipelineContext::new(
            tracker.clone(),
            metrics.clone(),
            lags.clone(),
            revoked.clone(),
        ))?;
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
        dead_letters: DeadLetterQueue::new(
            producer,
            settings.dead_letter_topic.clone(),
            metrics.clone(),
        ),
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
