//! Logs and traces: the `tracing` subscriber, and OpenTelemetry spans that continue the edge's trace.
//!
//! Every request gets a span that joins the trace its `traceparent` names (from the Kafka record's
//! header, else from the message); the comparison and each vendor call are spans under it, and each
//! vendor call carries its own span on as `traceparent`. Spans always get ids, so vendors see the trace
//! even when nothing is exported; they are exported over OTLP/HTTP only when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, with
//! `OTEL_EXPORTER_OTLP_PROTOCOL` `http/protobuf` (the default) or `http/json`, and the batch settings
//! `OTEL_BSP_*`.

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

use crate::config::LogFormat;

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

/// Installs the global `tracing` subscriber: logs in `format`, filtered by `RUST_LOG` (default
/// `info,rdkafka=warn`), and this crate's spans as OpenTelemetry spans whatever `RUST_LOG` says.
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
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("pricefront-consumer"))
        .with_filter(Targets::new().with_target("pricefront_consumer", tracing::Level::INFO));
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn"));
    let registry = tracing_subscriber::registry().with(spans);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stdout().is_terminal())
                    .with_filter(filter),
            )
            .init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().with_filter(filter))
            .init(),
    }
    Ok(Telemetry {
        provider,
        exporting,
    })
}

/// Makes `span` a child of the span `traceparent` names, when it is a valid `traceparent`; otherwise
/// `span` starts a trace of its own.
pub fn join_trace(span: &Span, traceparent: Option<&str>) {
    let Some(parent) = traceparent.and_then(TraceContext::parse) else {
        return;
    };
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

/// The `traceparent` that names `span` to the next hop, when it has a trace (spans are disabled in
/// processes that did not call [`init`], tests for instance).
pub fn traceparent_of(span: &Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        TraceContext {
            trace_id: span_context.trace_id().to_bytes(),
            span_id: span_context.span_id().to_bytes(),
            flags: span_context.trace_flags().to_u8(),
        }
        .to_string()
    })
}
