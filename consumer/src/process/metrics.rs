//! The consumer's Prometheus metrics: every family, its labels and its registry
//! ([`crate::process::health`] serves them).

use std::sync::Arc;

use pricefront_core::newest_wins::Replacement;
use pricefront_core::FailureKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A label naming a vendor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VendorLabel {
    /// The vendor's configured name.
    pub vendor: String,
}

/// Labels of a vendor error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VendorErrorLabels {
    /// The vendor's configured name.
    pub vendor: String,
    /// The kind of failure.
    pub kind: String,
}

/// Labels of a vendor call rejected before any request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VendorRejectionLabels {
    /// The vendor's configured name.
    pub vendor: String,
    /// `quota` or `circuit_open`.
    pub reason: &'static str,
}

/// Labels of one attempt (one HTTP request) to a vendor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VendorAttemptLabels {
    /// The vendor's configured name.
    pub vendor: String,
    /// `ok`, `timeout`, `connect`, `http_5xx`, `http_429`, `http_4xx`, `malformed_body` or `too_large`.
    pub outcome: &'static str,
}

/// Labels of a result a sink did not store over the one it holds.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeptLabels {
    /// The sink: `redis` or `edge`.
    pub sink: &'static str,
    /// `newer` (the held result was computed later) or `useful` (stale-if-error: the held result has
    /// offers and may still be served, the new one has none).
    pub reason: &'static str,
}

/// Where a result was written.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Sink {
    /// The Redis cache.
    Redis,
    /// The edge's fill endpoint.
    Edge,
}

impl Sink {
    /// The sink's label value: `redis` or `edge`.
    pub fn label(self) -> &'static str {
        match self {
            Sink::Redis => "redis",
            Sink::Edge => "edge",
        }
    }
}

/// Labels of a cache write.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// The sink: `redis` or `edge`.
    pub sink: &'static str,
    /// `ok` or `error` (an error is retried).
    pub outcome: &'static str,
}

/// Labels of a partition's lag.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    /// The partition.
    pub partition: i64,
}

/// Labels of a rebalance event.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RebalanceLabel {
    /// `assign` or `revoke` (a revoke includes partitions lost after leaving the group).
    pub event: &'static str,
}

/// Labels naming a sink.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    /// The sink: `redis` or `edge`.
    pub sink: &'static str,
}

/// The latency histogram of one vendor.
type LatencyFamily = Family<VendorLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 5 ms to about 40 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// A histogram fine enough to show where a few milliseconds go: 1 ms to about 80 s, 25% apart.
fn stage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 1.25, 51))
}

/// The stage histogram of each sink.
type StageFamily = Family<SinkLabel, Histogram, fn() -> Histogram>;

/// Labels of an aggregated result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `some` (at least one offer) or `none` (every vendor failed or had no offer).
    pub offers: &'static str,
}

/// A vendor and an outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VendorOutcomeLabels {
    /// The vendor's configured name.
    pub vendor: String,
    /// What happened.
    pub outcome: &'static str,
}

/// Every metric of the consumer.
#[derive(Debug)]
pub struct Metrics {
    /// Messages received from Kafka.
    pub consumed: Counter,
    /// Messages finished (result stored or dead-lettered) whose offsets may be committed.
    pub finished: Counter,
    /// Offset commits the broker acknowledged.
    pub commits: Counter,
    /// Messages being worked on.
    pub in_flight: Gauge,
    /// Messages sent to the dead-letter topic.
    pub dead_lettered: Counter,
    /// Vendor call latency, retries included (a call rejected before any request is not observed).
    pub vendor_latency: LatencyFamily,
    /// Vendor failures by kind.
    pub vendor_errors: Family<VendorErrorLabels, Counter>,
    /// Each vendor's circuit: 0 closed, 1 open, 2 half-open.
    pub vendor_circuit_state: Family<VendorLabel, Gauge>,
    /// Vendor calls rejected without a request: by the quota or by an open circuit.
    pub vendor_rejected: Family<VendorRejectionLabels, Counter>,
    /// HTTP requests actually sent to each vendor, every attempt counted.
    pub vendor_requests: Family<VendorLabel, Counter>,
    /// Attempts (HTTP requests) to each vendor by outcome, retried ones included.
    pub vendor_attempts: Family<VendorAttemptLabels, Counter>,
    /// Times each vendor's circuit opened.
    pub vendor_circuit_opened: Family<VendorLabel, Counter>,
    /// Results a sink did not store because it holds a newer or a more useful one.
    pub results_kept: Family<KeptLabels, Counter>,
    /// Results aggregated and handed to the sinks, by whether they hold offers.
    pub results: Family<ResultLabel, Counter>,
    /// 1 while this process is ready as `/readyz` says, 0 otherwise; set at each scrape.
    pub ready: Gauge,
    /// Comparisons that asked no vendor at all (every circuit open or quota refused): not results,
    /// so nothing was stored for them.
    pub comparisons_without_request: Counter,
    /// Cache writes per sink and outcome.
    pub cache_writes: Family<WriteLabels, Counter>,
    /// Consumer lag per partition, from librdkafka's statistics.
    pub lag: Family<PartitionLabel, Gauge>,
    /// Partitions currently assigned to this process.
    pub assigned_partitions: Gauge,
    /// 1 for each partition this process holds (which ones, beside their count).
    pub partition_assigned: Family<PartitionLabel, Gauge>,
    /// Errors librdkafka reported while consuming (a broker away, say); it retries them itself.
    pub kafka_errors: Counter,
    /// Rebalance events (assignments and revocations) this process went through.
    pub rebalances: Family<RebalanceLabel, Counter>,
    /// Partitions paused because the in-flight window is full (the consumer keeps polling).
    pub paused_partitions: Gauge,
    /// 1 while a sink refuses writes as a configuration or version error (e.g. the edge answers 401).
    pub sink_misconfigured: Family<SinkLabel, Gauge>,
    /// From the edge taking a request (its `requestedAtMs`) to this process starting on it: the edge's
    /// publish, the REST proxy, Kafka and the fetch.
    pub request_age_on_start: Histogram,
    /// One comparison's fan-out to the vendors, from its first call to its aggregated result.
    pub comparison_duration: Histogram,
    /// From a result's aggregation to a sink holding it, retries included.
    pub store_duration: StageFamily,
    /// How late the runtime's lag probe woke each time ([`crate::process::lateness`]).
    pub runtime_lag: Histogram,
    /// The in-flight window's size now, at most `--max-in-flight` ([`crate::intake::window_size`]).
    pub window_size: Gauge,
    /// The in-flight window's permits in use now: at most its size, once the permits owed are retired.
    pub window_in_use: Gauge,
    /// Dead letters too large for the dead-letter topic, sent summarised ([`crate::intake::dead_letter`]).
    pub dead_letters_summarised: Counter,
    /// Dead letters the dead-letter topic refused for good, even summarised: logged, not retried.
    pub dead_letters_dropped: Counter,
    /// Vendor timeouts not held against the vendor's circuit: this process was itself late by a tenth
    /// of the timeout or more while the call was out.
    pub vendor_timeouts_while_late: Family<VendorLabel, Counter>,
    /// OAuth access tokens asked of each vendor's token endpoint, by outcome (`minted`, `failed`).
    pub vendor_token_mints: Family<VendorOutcomeLabels, Counter>,
    /// Requests sent without their daily budget checked, Redis not answering ([`crate::vendors::budget`]).
    pub vendor_budget_unchecked: Family<VendorLabel, Counter>,
}

impl Metrics {
    /// Every metric at zero.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            consumed: Counter::default(),
            finished: Counter::default(),
            commits: Counter::default(),
            in_flight: Gauge::default(),
            dead_lettered: Counter::default(),
            vendor_latency: Family::new_with_constructor(latency_histogram),
            vendor_errors: Family::default(),
            vendor_circuit_state: Family::default(),
            vendor_rejected: Family::default(),
            vendor_requests: Family::default(),
            vendor_attempts: Family::default(),
            vendor_circuit_opened: Family::default(),
            results_kept: Family::default(),
            results: Family::default(),
            ready: Gauge::default(),
            comparisons_without_request: Counter::default(),
            cache_writes: Family::default(),
            lag: Family::default(),
            assigned_partitions: Gauge::default(),
            partition_assigned: Family::default(),
            kafka_errors: Counter::default(),
            rebalances: Family::default(),
            paused_partitions: Gauge::default(),
            sink_misconfigured: Family::default(),
            request_age_on_start: stage_histogram(),
            comparison_duration: stage_histogram(),
            store_duration: Family::new_with_constructor(stage_histogram),
            runtime_lag: stage_histogram(),
            window_size: Gauge::default(),
            window_in_use: Gauge::default(),
            dead_letters_summarised: Counter::default(),
            dead_letters_dropped: Counter::default(),
            vendor_timeouts_while_late: Family::default(),
            vendor_token_mints: Family::default(),
            vendor_budget_unchecked: Family::default(),
        })
    }

    /// Records a vendor failure after `attempts` requests, and for a call rejected without any request
    /// (its quota had no room, its circuit is open) the rejection.
    pub fn vendor_failed(&self, vendor: &str, kind: FailureKind, attempts: u32) {
        let reason = match kind {
            FailureKind::Quota if attempts == 0 => Some("quota"),
            FailureKind::CircuitOpen => Some("circuit_open"),
            _ => None,
        };
        if let Some(reason) = reason {
            self.vendor_rejected
                .get_or_create(&VendorRejectionLabels {
                    vendor: vendor.to_owned(),
                    reason,
                })
                .inc();
        }
        let kind = kind.name().to_owned();
        self.vendor_errors
            .get_or_create(&VendorErrorLabels {
                vendor: vendor.to_owned(),
                kind,
            })
            .inc();
    }

    /// Records a result aggregated for the sinks, with offers or without.
    pub fn result_aggregated(&self, with_offers: bool) {
        let offers = if with_offers { "some" } else { "none" };
        self.results.get_or_create(&ResultLabel { offers }).inc();
    }

    /// Records a cache write.
    pub fn cache_write(&self, sink: Sink, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.cache_writes
            .get_or_create(&WriteLabels {
                sink: sink.label(),
                outcome,
            })
            .inc();
    }

    /// Records what `sink` did with a result, when it kept the one it holds instead.
    pub fn result_kept(&self, sink: Sink, decision: Replacement) {
        let reason = match decision {
            Replacement::Store => return,
            Replacement::KeepNewer => "newer",
            Replacement::KeepUseful => "useful",
        };
        self.results_kept
            .get_or_create(&KeptLabels {
                sink: sink.label(),
                reason,
            })
            .inc();
    }

    /// Records a rebalance event: `assign` or `revoke`.
    pub fn rebalanced(&self, event: &'static str) {
        self.rebalances
            .get_or_create(&RebalanceLabel { event })
            .inc();
    }

    /// Records whether `sink` refuses writes as misconfigured.
    pub fn set_misconfigured(&self, sink: Sink, misconfigured: bool) {
        self.sink_misconfigured
            .get_or_create(&SinkLabel { sink: sink.label() })
            .set(i64::from(misconfigured));
    }

    /// The sinks refusing writes as misconfigured right now.
    pub fn misconfigured_sinks(&self) -> Vec<&'static str> {
        [Sink::Redis, Sink::Edge]
            .into_iter()
            .map(Sink::label)
            .filter(|&sink| {
                self.sink_misconfigured
                    .get(&SinkLabel { sink })
                    .is_some_and(|gauge| gauge.get() > 0)
            })
            .collect()
    }

    /// The metrics page's text, as `/metrics` serves it.
    pub fn render_text(self: &Arc<Self>) -> String {
        let mut text = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry());
        text
    }

    /// A registry of every family, named `pricefront_*`.
    pub fn registry(self: &Arc<Self>) -> Registry {
        let mut registry = Registry::with_prefix("pricefront");
        registry.register(
            "messages_consumed",
            "Messages received from Kafka",
            self.consumed.clone(),
        );
        registry.register(
            "messages_finished",
            "Messages finished, their offsets committable",
            self.finished.clone(),
        );
        registry.register(
            "offset_commits",
            "Offset commits acknowledged by the broker",
            self.commits.clone(),
        );
        registry.register(
            "messages_in_flight",
            "Messages being worked on",
            self.in_flight.clone(),
        );
        registry.register(
            "messages_dead_lettered",
            "Messages sent to the dead-letter topic",
            self.dead_lettered.clone(),
        );
        registry.register(
            "vendor_request_duration_seconds",
            "Vendor call latency, retries included",
            self.vendor_latency.clone(),
        );
        registry.register(
            "vendor_errors",
            "Vendor failures by kind",
            self.vendor_errors.clone(),
        );
        registry.register(
            "vendor_circuit_state",
            "Each vendor's circuit breaker: 0 closed, 1 open, 2 half-open",
            self.vendor_circuit_state.clone(),
        );
        registry.register(
            "vendor_rejected",
            "Vendor calls rejected without a request, by reason: quota or circuit_open",
            self.vendor_rejected.clone(),
        );
        registry.register(
            "vendor_requests",
            "HTTP requests sent to each vendor, every attempt counted",
            self.vendor_requests.clone(),
        );
        registry.register(
            "vendor_attempts",
            "HTTP requests to each vendor by outcome (ok, timeout, connect, http_5xx, http_429, http_4xx, malformed_body, too_large), retried ones included",
            self.vendor_attempts.clone(),
        );
        registry.register(
            "vendor_circuit_opened",
            "Times each vendor's circuit breaker opened",
            self.vendor_circuit_opened.clone(),
        );
        registry.register(
            "results_kept",
            "Results a sink did not store over the one it holds, by reason: newer (computed later) or useful (it has offers and may still be served, the new one has none: stale-if-error)",
            self.results_kept.clone(),
        );
        registry.register(
            "results",
            "Results aggregated and handed to the sinks, by offers: some (at least one) or none",
            self.results.clone(),
        );
        registry.register(
            "ready",
            "1 while this process is ready as /readyz says (partitions held, Redis reachable, no sink misconfigured), else 0",
            self.ready.clone(),
        );
        registry.register(
            "comparisons_without_request",
            "Comparisons in which every vendor was refused before any request (circuit open or quota): nothing stored",
            self.comparisons_without_request.clone(),
        );
        registry.register(
            "cache_writes",
            "Cache writes per sink and outcome",
            self.cache_writes.clone(),
        );
        registry.register(
            "consumer_lag",
            "Messages behind the end of each partition",
            self.lag.clone(),
        );
        registry.register(
            "assigned_partitions",
            "Partitions currently assigned to this process",
            self.assigned_partitions.clone(),
        );
        registry.register(
            "partition_assigned",
            "1 for each partition this process holds",
            self.partition_assigned.clone(),
        );
        registry.register(
            "kafka_errors",
            "Errors librdkafka reported while consuming (it retries them)",
            self.kafka_errors.clone(),
        );
        registry.register(
            "rebalances",
            "Rebalance events: partitions assigned or revoked",
            self.rebalances.clone(),
        );
        registry.register(
            "paused_partitions",
            "Partitions paused while the in-flight window is full",
            self.paused_partitions.clone(),
        );
        registry.register(
            "sink_misconfigured",
            "1 while a sink refuses writes as a configuration or version error",
            self.sink_misconfigured.clone(),
        );
        registry.register(
            "request_age_on_start_seconds",
            "From the edge taking a request to this process starting on it",
            self.request_age_on_start.clone(),
        );
        registry.register(
            "comparison_duration_seconds",
            "One comparison's fan-out to the vendors",
            self.comparison_duration.clone(),
        );
        registry.register(
            "store_duration_seconds",
            "From a result's aggregation to a sink holding it, retries included",
            self.store_duration.clone(),
        );
        registry.register(
            "runtime_lag_seconds",
            "How late this process's runtime ran a task due now (a probe every 10 ms)",
            self.runtime_lag.clone(),
        );
        registry.register(
            "window_size",
            "The in-flight window's size now, at most --max-in-flight: it shrinks while this process runs late",
            self.window_size.clone(),
        );
        registry.register(
            "window_in_use",
            "The in-flight window's permits in use now: messages in flight, at most the window's size once the permits owed are retired",
            self.window_in_use.clone(),
        );
        registry.register(
            "dead_letters_summarised",
            "Dead letters too large for the dead-letter topic, sent summarised: key, origin, error and the payload's first bytes",
            self.dead_letters_summarised.clone(),
        );
        registry.register(
            "dead_letters_dropped",
            "Dead letters the dead-letter topic refused for good, even summarised: logged as errors, not retried",
            self.dead_letters_dropped.clone(),
        );
        registry.register(
            "vendor_timeouts_while_late",
            "Vendor timeouts not held against the vendor's circuit: this process was itself late by a tenth of the timeout or more",
            self.vendor_timeouts_while_late.clone(),
        );
        registry.register(
            "vendor_token_mints",
            "OAuth access tokens asked of each vendor's token endpoint, by outcome (minted, failed: refused, unreachable or over max_mints_per_hour)",
            self.vendor_token_mints.clone(),
        );
        registry.register(
            "vendor_budget_unchecked",
            "Requests sent without their daily budget checked, Redis not answering",
            self.vendor_budget_unchecked.clone(),
        );
        registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_and_circuit_states_are_exposed_per_vendor() {
        let metrics = Metrics::new();
        let label = VendorLabel {
            vendor: "alpha".into(),
        };
        metrics.vendor_circuit_state.get_or_create(&label).set(1);
        metrics.vendor_requests.get_or_create(&label).inc();
        metrics.vendor_failed("alpha", FailureKind::Quota, 0);
        metrics.vendor_failed("alpha", FailureKind::Quota, 2);
        metrics.vendor_failed("alpha", FailureKind::CircuitOpen, 0);
        metrics.vendor_failed("alpha", FailureKind::Timeout, 1);
        metrics.result_aggregated(true);
        metrics.result_aggregated(true);
        metrics.result_aggregated(false);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry()).unwrap();
        for line in [
            "pricefront_vendor_circuit_state{vendor=\"alpha\"} 1",
            "pricefront_vendor_requests_total{vendor=\"alpha\"} 1",
            "pricefront_vendor_rejected_total{vendor=\"alpha\",reason=\"quota\"} 1",
            "pricefront_vendor_rejected_total{vendor=\"alpha\",reason=\"circuit_open\"} 1",
            "pricefront_vendor_errors_total{vendor=\"alpha\",kind=\"quota\"} 2",
            "pricefront_vendor_errors_total{vendor=\"alpha\",kind=\"circuit_open\"} 1",
            "pricefront_vendor_errors_total{vendor=\"alpha\",kind=\"timeout\"} 1",
            "pricefront_results_total{offers=\"some\"} 2",
            "pricefront_results_total{offers=\"none\"} 1",
            "pricefront_ready 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(!text.contains("reason=\"timeout\""));
        // A quota failure after a request sent (its retry found no room) was no rejection: `rejected`
        // means no request sent.
    }
}
