//! The small HTTP server of the process's own state: `GET /metrics` (the Prometheus page), `GET
//! /healthz` (the process runs) and `GET /readyz` (it holds partitions, reaches Redis, and no sink
//! refuses its writes as misconfigured).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;

use crate::process::metrics::Metrics;

/// What `/readyz` checks beyond the process itself: that the store it writes results to answers.
pub trait Reachable: Send + Sync + 'static {
    /// Whether it answers now.
    fn reachable(&self) -> impl Future<Output = bool> + Send;
}

struct ServerState<S> {
    registry: Registry,
    metrics: Arc<Metrics>,
    store: S,
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listen` until the process ends; `/readyz` also asks
/// whether `store` answers.
pub async fn serve<S: Reachable>(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    store: S,
) -> std::io::Result<()> {
    let state = Arc::new(ServerState {
        registry: metrics.registry(),
        metrics,
        store,
    });
    let app = Router::new()
        .route("/metrics", get(render::<S>))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready::<S>))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, app).await
}

/// Sets `pricefront_ready` by the rule `/readyz` answers with, then renders the page: an alert on
/// readiness reads the same verdict as the orchestrator's probe.
async fn render<S: Reachable>(State(state): State<Arc<ServerState<S>>>) -> impl IntoResponse {
    let ready = readiness(&state).await.is_ok();
    state.metrics.ready.set(i64::from(ready));
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            String::new(),
        ),
    }
}

async fn ready<S: Reachable>(
    State(state): State<Arc<ServerState<S>>>,
) -> (StatusCode, &'static str) {
    match readiness(&state).await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

/// Whether this process is ready: it holds partitions, no sink refuses its writes as misconfigured,
/// and the store (Redis) answers within 2 s; else why not.
async fn readiness<S: Reachable>(state: &ServerState<S>) -> Result<(), &'static str> {
    if state.metrics.assigned_partitions.get() == 0 {
        return Err("no partitions assigned");
    }
    if !state.metrics.misconfigured_sinks().is_empty() {
        return Err(
            "a sink refuses writes as misconfigured: check the fill URL, FILL_TOKEN and versions",
        );
    }
    match tokio::time::timeout(Duration::from_secs(2), state.store.reachable()).await {
        Ok(true) => Ok(()),
        _ => Err("redis unreachable"),
    }
}
