//! The simulator's HTTP server: the simulated vendors' routes, `/_sim` control routes and the real APIs'
//! routes ([`crate::apis`]), over the shared [`Simulator`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use pricefront_core::{Currency, ProductId};
use rand::Rng;
use tokio::net::TcpListener;

use crate::price::expected_price;
use crate::profile::{Profiles, VendorProfile};
use crate::simulator::Simulator;

/// The simulator's routes: the simulated vendors, the simulated real APIs ([`crate::apis`]) and the
/// `/_sim` control routes.
pub fn router(simulator: Arc<Simulator>) -> Router {
    Router::new()
        .route("/vendors/{vendor}/prices/{product}", get(price))
        .route("/_sim/profiles", get(profiles))
        .route("/_sim/profiles/{vendor}", axum::routing::put(put_profile))
        .route("/_sim/stats", get(stats))
        .route("/_sim/traceparents/{product}", get(traceparents))
        .route("/healthz", get(|| async { "ok" }))
        .merge(crate::apis::routes())
        .with_state(simulator)
}

/// Serves `simulator` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    simulator: Arc<Simulator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(simulator))
        .with_graceful_shutdown(shutdown)
        .await
}

/// What a request to a vendor is answered with, drawn from its profile.
enum Behaviour {
    Hang,
    Error,
    Malformed,
    Oversized,
    Offer,
}

fn draw(profile: &VendorProfile, rng: &mut impl Rng) -> Behaviour {
    let roll =
        |rng: &mut dyn rand::RngCore, rate: f64| rate > 0.0 && rng.random_bool(rate.min(1.0));
    if roll(rng, profile.hang_rate) {
        Behaviour::Hang
    } else if roll(rng, profile.error_rate) {
        Behaviour::Error
    } else if roll(rng, profile.malformed_rate) {
        Behaviour::Malformed
    } else if roll(rng, profile.oversized_rate) {
        Behaviour::Oversized
    } else {
        Behaviour::Offer
    }
}

/// `GET /_sim/traceparents/{product}`: the `traceparent` headers its requests carried.
async fn traceparents(
    State(simulator): State<Arc<Simulator>>,
    Path(product): Path<String>,
) -> Json<Vec<String>> {
    Json(simulator.traceparents_of(&product))
}

async fn price(
    State(simulator): State<Arc<Simulator>>,
    Path((vendor, product)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(profile) = simulator.profile(&vendor) else {
        return (StatusCode::NOT_FOUND, "no such vendor").into_response();
    };
    simulator.count(&vendor);
    if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        simulator.record_traceparent(&product, traceparent);
    }
    let Ok(product_id) = product.parse::<ProductId>() else {
        return (StatusCode::NOT_FOUND, "no such product").into_response();
    };
    let (behaviour, latency) = {
        let mut rng = rand::rng();
        let (low, high) = (
            profile.latency_min_ms,
            profile.latency_max_ms.max(profile.latency_min_ms),
        );
        (draw(&profile, &mut rng), rng.random_range(low..=high))
    };
    if !matches!(behaviour, Behaviour::Error) {
        simulator.end_round(&vendor, &product);
    }
    let product = product_id;
    tokio::time::sleep(Duration::from_millis(latency)).await;
    match behaviour {
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Behaviour::Error => {
            let status = StatusCode::from_u16(profile.error_status)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            ([(header::RETRY_AFTER, "1")], (status, "simulated failure")).into_response()
        }
        Behaviour::Malformed => (
            [(header::CONTENT_TYPE, "application/json")],
            "{\"offer\": {\"price\": <html>oops",
        )
            .into_response(),
        Behaviour::Oversized => oversized(profile.oversized_bytes),
        Behaviour::Offer => {
            let Ok(currency) = profile.currency.parse::<Currency>() else {
                return (StatusCode::INTERNAL_SERVER_ERROR, "bad simulator currency")
                    .into_response();
            };
            let price = expected_price(&vendor, product, currency);
            Json(profile.shape.body(product, price)).into_response()
        }
    }
}

/// A 200 whose JSON body is `size` bytes long, streamed so that the simulator itself stays small.
fn oversized(size: usize) -> Response {
    const CHUNK: usize = 64 * 1024;
    let chunk = Bytes::from(vec![b' '; CHUNK]);
    let mut left = size.saturating_sub(2);
    let mut parts = vec![Bytes::from_static(b"[")];
    while left > 0 {
        let take = left.min(CHUNK);
        parts.push(chunk.slice(..take));
        left -= take;
    }
    parts.push(Bytes::from_static(b"]"));
    let stream = futures::stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>));
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn profiles(State(simulator): State<Arc<Simulator>>) -> Json<Profiles> {
    Json(simulator.profiles())
}

async fn put_profile(
    State(simulator): State<Arc<Simulator>>,
    Path(vendor): Path<String>,
    Json(profile): Json<VendorProfile>,
) -> StatusCode {
    simulator.set_profile(&vendor, profile);
    StatusCode::NO_CONTENT
}

async fn stats(State(simulator): State<Arc<Simulator>>) -> Json<BTreeMap<String, u64>> {
    Json(simulator.request_counts())
}
