//! Logs and traces: the `tracing` subscriber, and OpenTelemetry spans that continue the edge's trace.
//!
//! Every request joins the trace its `traceparent` names (from the Kafka record's header, else from the
//! message), or starts one; each vendor call is a hop of that trace and carries its own span id on as
//! `traceparent`, so vendors always see the trace.
//!
//! Spans are recorded only when they are exported: over OTLP/HTTP when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, with
//! `OTEL_EXPORTER_OTLP_PROTOCOL` `http/protobuf` (the default) or `http/json`, and the batch settings
//! `OTEL_BSP_*`. Then the `request` → `compare` → `vendor` spans (debug level, so that the log does not
//! format their fields) give the ids. Otherwise the ids are drawn directly ([`TraceContext::child`]):
//! recording spans nobody reads cost about a quarter of the consumer's CPU per comparison.

use std::io::IsTerminal;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use pricefront_core::TraceContext;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::process::redact::RedactedStdout;

/// The OpenTelemetry settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` names a protocol this build does not export with.
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL is {0:?}; this build exports \"http/protobuf\" or \"http/json\"")]
    Protocol(String),
    /// The exporter could not be built.
    #[error("the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The installed telemetry; [`Telemetry::shutdown`] exports the spans still buffered.
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl Telemetry {
    /// Whether spans are exported (an OTLP endpoint is configured).
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Exports what is buffered and stops the exporter (at the end of a graceful stop).
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "the trace exporter did not shut down cleanly");
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global `tracing` subscriber: logs in `format` with every secret redacted
/// ([`crate::process::redact`]), filtered by `RUST_LOG` (default `info,rdkafka=warn`), and this crate's
/// spans as OpenTelemetry spans whatever `RUST_LOG` says.
pub fn init(format: LogFormat) -> Result<Telemetry, TelemetryError> {
    let exporting = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()));
    let mut provider = SdkTracerProvider::builder().with_resource(
        Resource::builder()
            .with_service_name("pricefront-consumer")
            .build(),
    );
    if exporting {
        let protocol = match std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
            Err(_) | Ok("") | Ok("http/protobuf") => Protocol::HttpBinary,
            Ok("http/json") => Protocol::HttpJson,
            Ok(other) => return Err(TelemetryError::Protocol(other.to_owned())),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .build()?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    // Only when exporting: a layer that records spans nobody reads is the costliest part of a comparison.
    let spans = exporting.then(|| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("pricefront-consumer"))
            .with_filter(Targets::new().with_target("pricefront_consumer", tracing::Level::DEBUG))
    });
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn"));
    let registry = tracing_subscriber::registry().with(spans);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stdout().is_terminal())
                    .with_writer(RedactedStdout)
                    .with_filter(filter),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(RedactedStdout)
                    .with_filter(filter),
            )
            .init(),
    }
    Ok(Telemetry {
        provider,
        exporting,
    })
}

/// Joins `span` to the trace `traceparent` names (when it is a valid `traceparent`; otherwise `span`
/// starts a trace of its own) and returns this hop's context: the span's when spans are recorded, else a
/// child of `traceparent` (or a new trace) with ids drawn here.
pub fn join_trace(span: &Span, traceparent: Option<&str>) -> TraceContext {
    let parent = traceparent.and_then(TraceContext::parse);
    if let Some(parent) = parent {
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id),
            SpanId::from_bytes(parent.span_id),
            TraceFlags::new(parent.flags),
            true,
            TraceState::default(),
        );
        // Fails only when the span is disabled: then it has no trace to join.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    recorded_context(span)
        .unwrap_or_else(|| TraceContext::continue_or_start(traceparent, rand::random()))
}

/// The context a call made under `parent` names itself by to the next hop: the current span's when
/// spans are recorded (the vendor call's), else a child of `parent` with a span id drawn here.
pub fn call_context(parent: &TraceContext) -> TraceContext {
    recorded_context(&Span::current()).unwrap_or_else(|| parent.child(rand::random()))
}

/// `span`'s context when an OpenTelemetry layer records it (only while exporting).
fn recorded_context(span: &Span) -> Option<TraceContext> {
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| TraceContext {
        trace_id: span_context.trace_id().to_bytes(),
        span_id: span_context.span_id().to_bytes(),
        flags: span_context.trace_flags().to_u8(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    // No subscriber is installed in unit tests: spans are not recorded, as when nothing is exported.

    #[test]
    fn an_unrecorded_hop_continues_its_parents_trace_with_a_span_of_its_own() {
        let parent = TraceContext::parse(PARENT).unwrap();
        let hop = join_trace(&tracing::debug_span!("request"), Some(PARENT));
        assert_eq!(hop.trace_id, parent.trace_id);
        assert_eq!(hop.flags, parent.flags);
        assert_ne!(hop.span_id, parent.span_id);
    }

    #[test]
    fn an_unreadable_parent_starts_a_trace() {
        let parent = TraceContext::parse(PARENT).unwrap();
        let hop = join_trace(&tracing::debug_span!("request"), Some("not-a-traceparent"));
        assert_ne!(hop.trace_id, parent.trace_id);
        assert_eq!(TraceContext::parse(&hop.to_string()), Some(hop));
    }

    #[test]
    fn each_call_is_a_new_span_of_the_same_trace() {
        let parent = TraceContext::parse(PARENT).unwrap();
        let (first, second) = (call_context(&parent), call_context(&parent));
        assert_eq!(first.trace_id, parent.trace_id);
        assert_eq!(second.trace_id, parent.trace_id);
        assert_ne!(first.span_id, second.span_id);
        assert_ne!(first.span_id, parent.span_id);
    }
}
