//! What happens to one message: parse it, make sure every sink holds a result of its product at least as
//! new as the request (fanning out to the vendors only when needed, once per product at a time), or
//! dead-letter it; then mark its offset finished.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::{BoxFuture, FutureExt, Shared};
use pricefront_core::{Comparison, Freshness, PriceRequest, ProductId, TraceContext, UnixMillis};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tracing::Instrument;

use crate::intake::context::PipelineConsumer;
use crate::intake::dead_letter::{DeadLetter, DeadLetterQueue, Delivery};
use crate::intake::offsets::{finish_and_store, OffsetTracker, Ticket};
use crate::intake::window::Received;
use crate::process::clock::now_ms;
use crate::process::metrics::Metrics;
use crate::process::telemetry::join_trace;
use crate::sinks::Sinks;
use crate::vendors::fanout::Comparer;

/// Compares one product: [`Comparer`] in production; tests may wrap it (e.g. to inject a panic).
pub trait Compare: Send + Sync + 'static {
    /// Asks the vendors about `product` and aggregates their answers; `trace` is the comparison's place
    /// in the request's trace.
    fn compare(&self, product: ProductId, trace: TraceContext) -> BoxFuture<'_, Comparison>;
}

impl Compare for Comparer {
    fn compare(&self, product: ProductId, trace: TraceContext) -> BoxFuture<'_, Comparison> {
        Comparer::compare(self, product, trace).boxed()
    }
}

/// One comparison of a product under way, shared by every message of it that arrives meanwhile: the
/// `computedAtMs` of the result every sink now holds, or why it failed (it panicked).
type Flight = Shared<BoxFuture<'static, Result<UnixMillis, String>>>;

/// Works on the messages: what every in-flight message needs, and what is done to each.
pub(crate) struct MessageHandler {
    pub(crate) topic: String,
    pub(crate) consumer: Arc<PipelineConsumer>,
    pub(crate) tracker: Arc<Mutex<OffsetTracker>>,
    pub(crate) comparer: Box<dyn Compare>,
    pub(crate) sinks: Sinks,
    pub(crate) dead_letters: DeadLetterQueue,
    pub(crate) metrics: Arc<Metrics>,
    /// Comparisons under way, so that a product already in flight is not fanned out again.
    pub(crate) comparing: Mutex<HashMap<ProductId, Flight>>,
    /// In sequential mode, one lock per partition, taken in arrival order (tokio's mutex is fair).
    pub(crate) partition_locks: Option<Mutex<HashMap<i32, Arc<tokio::sync::Mutex<()>>>>>,
}

impl MessageHandler {
    /// Works on one message until it is done (its result in every sink, or dead-lettered), then marks
    /// its offset finished. A panic while working on it dead-letters it with the reason.
    pub(crate) async fn handle(self: Arc<Self>, ticket: Ticket, message: Received) {
        let Received {
            key,
            payload,
            traceparent,
            ..
        } = message;
        let partition_lock = self.partition_locks.as_ref().map(|locks| {
            let mut locks = locks.lock().unwrap_or_else(PoisonError::into_inner);
            locks.entry(ticket.partition).or_default().clone()
        });
        let _turn = match &partition_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let failure = match PriceRequest::from_json(payload.as_deref().unwrap_or_default()) {
            Ok(request) => {
                // Debug level: the log does not format its fields for every message; the trace layer
                // (only while exporting) records it.
                let span = tracing::debug_span!(
                    "request",
                    product = %request.product_id,
                    request = %request.request_id,
                    partition = ticket.partition,
                    offset = ticket.offset,
                );
                // The record header where the REST proxy carries headers, else the message's field.
                let trace = join_trace(
                    &span,
                    traceparent.or(request.traceparent.clone()).as_deref(),
                );
                tracing::debug!(parent: &span, "request");
                let age_ms = now_ms().saturating_sub(request.requested_at_ms);
                self.metrics
                    .request_age_on_start
                    .observe(age_ms as f64 / 1000.0);
                AssertUnwindSafe(self.clone().fulfil(&request, trace))
                    .catch_unwind()
                    .instrument(span)
                    .await
                    .unwrap_or_else(|panic| Err(panicked(panic.as_ref())))
                    .err()
            }
            Err(error) => Some(error.to_string()),
        };
        if let Some(error) = failure {
            let letter = DeadLetter {
                topic: &self.topic,
                partition: ticket.partition,
                offset: ticket.offset,
                key: key.as_deref(),
                payload: payload.as_deref(),
                error,
            };
            tracing::warn!(partition = ticket.partition, offset = ticket.offset, error = %letter.error, "dead-lettering a message");
            // A dropped letter is counted apart (`pricefront_dead_letters_dropped_total`).
            // Boxed: the rare path's future is most of this one's size otherwise, held by every
            // message in flight.
            if Box::pin(self.dead_letters.send_until_delivered(&letter)).await != Delivery::Dropped
            {
                self.metrics.dead_lettered.inc();
            }
        }
        self.finish(ticket);
    }

    /// Makes sure every sink holds a result of the request's product at least as new as the request.
    async fn fulfil(
        self: Arc<Self>,
        request: &PriceRequest,
        trace: TraceContext,
    ) -> Result<(), String> {
        // A flight that started before this request may end with an older result than it: then one
        // more flight, which fans out unless a newer result arrived meanwhile.
        for attempt in 0..2 {
            let flight = self.flight(request.product_id, request.requested_at_ms, trace);
            let computed_at_ms = flight.await?;
            if computed_at_ms >= request.requested_at_ms || attempt == 1 {
                break;
            }
        }
        Ok(())
    }

    /// The flight of `product` under way, or a new one. A panic in the flight ends as an error for each
    /// of its messages and never poisons the product's entry: the entry goes when the flight ends.
    fn flight(
        self: &Arc<Self>,
        product: ProductId,
        requested_at_ms: UnixMillis,
        trace: TraceContext,
    ) -> Flight {
        let mut comparing = self
            .comparing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        comparing
            .entry(product)
            .or_insert_with(|| {
                // Run by the messages' own tasks (whichever polls it), not as a task of its own: one
                // spawn per message, not two.
                // A span of the message that starts it; the messages that join it meanwhile wait for it
                // in their own spans.
                let work = AssertUnwindSafe(
                    self.clone()
                        .refresh(product, requested_at_ms, trace)
                        .instrument(tracing::debug_span!("compare", %product)),
                );
                let handler = self.clone();
                caught_then(work, move || {
                    handler
                        .comparing
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&product);
                })
                .boxed()
                .shared()
            })
            .clone()
    }

    /// Makes every sink hold a result of `product` at least as new as `requested_at_ms`: the one Redis
    /// holds when it is fresh and that new (then only the edge is filled with it: a consumer that
    /// stored it in Redis may have died before the edge took it), else a new comparison. Returns the
    /// stored result's `computedAtMs`. A comparison that asked no vendor at all (every one refused
    /// before a request) is not stored: the request is done with, and nothing replaces what is held.
    async fn refresh(
        self: Arc<Self>,
        product: ProductId,
        requested_at_ms: UnixMillis,
        trace: TraceContext,
    ) -> UnixMillis {
        if let Ok(Some(cached)) = self.sinks.cache.get(product).await {
            if cached.freshness(now_ms()) == Freshness::Fresh
                && cached.computed_at_ms >= requested_at_ms
            {
                // Boxed, as the store below: a future is as large as its largest state, and this
                // one waits on the vendors for most of its life in a small one.
                Box::pin(self.sinks.fill_edge(&cached)).await;
                return cached.computed_at_ms;
            }
        }
        let started = std::time::Instant::now();
        let mut comparison = self.comparer.compare(product, trace).await;
        let took = started.elapsed();
        self.metrics.comparison_duration.observe(took.as_secs_f64());
        // Stored with the result: the edge weighs it to refresh hot products early.
        let fan_out_ms = took.as_millis().try_into().unwrap_or(u64::MAX).max(1);
        comparison.fan_out_ms = Some(fan_out_ms);
        // From the edge's publish (its clock; another host's in production, a few ms apart at most):
        // what a refresh costs the readers waiting on it, the queue included. Never below the fan-out.
        comparison.recompute_ms = Some(now_ms().saturating_sub(requested_at_ms).max(fan_out_ms));
        // Debug, not info: a line per comparison cost CPU at thousands a second; the metrics count them
        // (`pricefront_comparison_duration_seconds_count`).
        tracing::debug!(%product, offers = comparison.offers.len(), failures = comparison.failures.len(), "compared");
        if comparison.asked_no_vendor() {
            // Every vendor refused before a request (circuits open, quotas): not a result. What the
            // caches hold stays; the edge publishes the product again when a client still wants it.
            self.metrics.comparisons_without_request.inc();
        } else {
            self.metrics
                .result_aggregated(!comparison.offers.is_empty());
            // Boxed: the store's state (2,400 bytes) would otherwise be reserved in every comparison
            // under way while it waits on the vendors (471 bytes; 2,872 unboxed).
            Box::pin(self.sinks.store(&comparison)).await;
        }
        comparison.computed_at_ms
    }

    /// Marks the ticket's message finished, and stores the partition's committable offset when it moved.
    pub(crate) fn finish(&self, ticket: Ticket) {
        self.metrics.finished.inc();
        self.metrics.in_flight.dec();
        finish_and_store(&self.tracker, ticket, |partition, offset| {
            let mut offsets = TopicPartitionList::new();
            if let Err(error) = offsets
                .add_partition_offset(&self.topic, partition, Offset::Offset(offset))
                .and_then(|()| self.consumer.store_offsets(&offsets))
            {
                // The partition was revoked meanwhile: its new owner consumes the message again.
                tracing::debug!(%error, partition, "offset not stored");
            }
        });
    }

    /// Commits every partition's committable offset now (at the end of a graceful stop).
    pub(crate) fn commit_finished(&self) -> Result<(), rdkafka::error::KafkaError> {
        let committable = self
            .tracker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .committable();
        if committable.is_empty() {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in committable {
            offsets.add_partition_offset(&self.topic, partition, Offset::Offset(offset))?;
        }
        self.consumer
            .commit(&offsets, rdkafka::consumer::CommitMode::Sync)
    }
}

/// `work`, with a panic in it caught as an error, and then `on_end` run: one future that holds `work`
/// once. (An `async move` block awaiting `work` holds it twice, as what it captured and as what it
/// awaits: a flight's comparison is kilobytes, and one is held per product in flight.)
fn caught_then<F>(work: F, on_end: impl FnOnce()) -> impl Future<Output = Result<F::Output, String>>
where
    F: Future + std::panic::UnwindSafe,
{
    work.catch_unwind().map(move |outcome| {
        on_end();
        outcome.map_err(|panic| panicked(panic.as_ref()))
    })
}

/// The dead-letter reason of a panic, with its message.
fn panicked(panic: &(dyn std::any::Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    tracing::error!(%message, "working on a message panicked: it is dead-lettered");
    format!("the comparison panicked: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A future that holds 4 KiB across its await, as a comparison holds its vendors' state.
    async fn large_work() -> u8 {
        let state = [7u8; 4096];
        tokio::task::yield_now().await;
        state[4095]
    }

    #[test]
    fn a_flight_holds_its_work_once() {
        let work = AssertUnwindSafe(large_work());
        let work_size = std::mem::size_of_val(&work);
        let flight = caught_then(work, || {});
        // Twice the work's size when an async block captured it and then awaited it.
        assert!(
            std::mem::size_of_val(&flight) < work_size + 256,
            "a flight of {} bytes for work of {work_size}",
            std::mem::size_of_val(&flight)
        );
    }

    #[tokio::test]
    async fn a_flight_ends_its_entry_whether_its_work_answers_or_panics() {
        let ended = AtomicBool::new(false);
        let answered = caught_then(AssertUnwindSafe(large_work()), || {
            ended.store(true, Ordering::SeqCst)
        })
        .await;
        assert_eq!(answered, Ok(7));
        assert!(ended.swap(false, Ordering::SeqCst));

        // The entry goes only once the work is done, not when the flight starts.
        let worked = AtomicBool::new(false);
        let ended_after_work = AtomicBool::new(false);
        let work = AssertUnwindSafe(async {
            tokio::task::yield_now().await;
            worked.store(true, Ordering::SeqCst);
        });
        caught_then(work, || {
            ended_after_work.store(worked.load(Ordering::SeqCst), Ordering::SeqCst)
        })
        .await
        .expect("no panic");
        assert!(ended_after_work.load(Ordering::SeqCst));

        let panicking = AssertUnwindSafe(async { panic!("a vendor's body broke the parser") });
        let failed: Result<(), String> =
            caught_then(panicking, || ended.store(true, Ordering::SeqCst)).await;
        assert_eq!(
            failed,
            Err("the comparison panicked: a vendor's body broke the parser".to_owned())
        );
        assert!(ended.load(Ordering::SeqCst));
    }
}
