//! A receiver of OTLP/HTTP trace exports, so that tests can see the spans a consumer process exports
//! (the JSON encoding is read; a protobuf export is accepted and counted, as benchmarks send it).

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

/// One exported span, as the receiver got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// The span's name.
    pub name: String,
    /// The trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// The span id, 16 lowercase hex digits.
    pub span_id: String,
    /// The parent's span id, empty for a root span.
    pub parent_span_id: String,
}

/// An OTLP/HTTP receiver on a loopback port, keeping every span it receives.
pub struct OtlpReceiver {
    /// The base URL to give as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    exports: Arc<std::sync::atomic::AtomicU64>,
    /// Every export's body as received, up to [`MAX_KEPT_EXPORT_BYTES`] in all.
    raw: Arc<Mutex<Vec<u8>>>,
}

/// The most bytes of exports kept as received (a benchmark must not grow the receiver without bound).
pub const MAX_KEPT_EXPORT_BYTES: usize = 64 << 20;

impl OtlpReceiver {
    /// Starts a receiver on a free loopback port, serving `POST /v1/traces` until the process ends.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let spans = Arc::new(Mutex::new(Vec::new()));
        let exports = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new()
            .route("/v1/traces", post(receive))
            .with_state((spans.clone(), exports.clone(), raw.clone()));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(Self {
            endpoint,
            spans,
            exports,
            raw,
        })
    }

    /// Every export received so far, as received (JSON or protobuf bytes, one after the other), for a
    /// search of everything the consumer exported.
    pub fn raw_exports(&self) -> Vec<u8> {
        self.raw
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many export requests arrived, whatever their encoding.
    pub fn exports(&self) -> u64 {
        self.exports.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The environment that makes a consumer export its spans here, in JSON, within a fraction of a
    /// second of ending them.
    pub fn exporter_env(&self) -> [(&'static str, String); 3] {
        [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint.clone()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ]
    }

    /// The spans received so far of the trace `trace_id` (32 hex digits).
    pub fn spans_of_trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

/// The receiver's state: the spans read, and the export requests counted.
type Received = (
    Arc<Mutex<Vec<ReceivedSpan>>>,
    Arc<std::sync::atomic::AtomicU64>,
    Arc<Mutex<Vec<u8>>>,
);

/// `POST /v1/traces`: an `ExportTraceServiceRequest`; the spans of a JSON one are kept.
async fn receive(
    State((spans, exports, raw)): State<Received>,
    body: axum::body::Bytes,
) -> Json<Value> {
    exports.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    {
        let mut raw = raw.lock().unwrap_or_else(PoisonError::into_inner);
        if raw.len() + body.len() <= MAX_KEPT_EXPORT_BYTES {
            raw.extend_from_slice(&body);
        }
    }
    // A protobuf export is not read (benchmarks only count them).
    let Ok(export) = serde_json::from_slice::<Value>(&body) else {
        return Json(serde_json::json!({}));
    };
    let text = |span: &Value, field: &str| span[field].as_str().unwrap_or_default().to_owned();
    let received = export["resourceSpans"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|resource| resource["scopeSpans"].as_array().into_iter().flatten())
        .flat_map(|scope| scope["spans"].as_array().into_iter().flatten())
        .map(|span| ReceivedSpan {
            name: text(span, "name"),
            trace_id: text(span, "traceId").to_ascii_lowercase(),
            span_id: text(span, "spanId").to_ascii_lowercase(),
            parent_span_id: text(span, "parentSpanId").to_ascii_lowercase(),
        });
    spans
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(received);
    Json(serde_json::json!({}))
}
