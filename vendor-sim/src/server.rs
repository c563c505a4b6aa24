//! The simulator's HTTP server.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, RwLock};
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

use crate::apis::{ApiProfiles, ApiSettings, ApiSettingsError, ApiState, ApiStats};
use crate::{expected_price, Api, Profiles, VendorProfile};

/// The simulator's shared state: the profiles, changeable at run time, and request counts.
#[derive(Debug, Default)]
pub struct Simulator {
    profiles: RwLock<Profiles>,
    requests: RwLock<BTreeMap<String, u64>>,
    /// Per product (as requested) and vendor: the requests answered with anything but a retryable
    /// error, which end that vendor's part of a comparison round.
    round_ends: RwLock<HashMap<String, HashMap<String, u64>>>,
    /// Per product (as requested): the `traceparent` headers of its requests, in arrival order, up to
    /// [`MAX_RECORDED_TRACEPARENTS`] in all (a long benchmark must not grow the simulator without bound).
    traceparents: RwLock<Traceparents>,
    /// The simulated real APIs' settings, tokens and counts ([`crate::apis`]).
    apis: ApiState,
}

/// The recorded `traceparent` headers, by product, and how many in all.
#[derive(Debug, Default)]
struct Traceparents {
    by_product: HashMap<String, Vec<String>>,
    count: usize,
}

/// The most `traceparent` headers the simulator keeps.
pub const MAX_RECORDED_TRACEPARENTS: usize = 100_000;

impl Simulator {
    /// A simulator playing `profiles`.
    pub fn new(profiles: Profiles) -> Arc<Self> {
        Arc::new(Self {
            profiles: RwLock::new(profiles),
            requests: RwLock::default(),
            round_ends: RwLock::default(),
            traceparents: RwLock::default(),
            apis: ApiState::default(),
        })
    }

    /// A simulator playing `profiles` and the real APIs with the settings of `apis` (each over that
    /// API's defaults, see [`ApiSettings`]).
    pub fn with_apis(
        profiles: Profiles,
        apis: &ApiProfiles,
    ) -> Result<Arc<Self>, ApiSettingsError> {
        let simulator = Self::new(profiles);
        for (api, patch) in &apis.apis {
            simulator.apis.configure(*api, patch)?;
        }
        Ok(simulator)
    }

    /// The simulated real APIs' state: settings, tokens, counts.
    pub fn apis(&self) -> &ApiState {
        &self.apis
    }

    /// `api`'s current settings (as `GET /_sim/apis/{name}` shows them).
    pub fn api_settings(&self, api: Api) -> ApiSettings {
        self.apis.settings(api)
    }

    /// `api`'s counts (as `GET /_sim/apis/{name}/stats` shows them).
    pub fn api_stats(&self, api: Api) -> ApiStats {
        self.apis.stats(api)
    }

    /// The `traceparent` headers that requests for `product` carried, in arrival order (requests
    /// without one are not listed).
    pub fn traceparents_of(&self, product: &str) -> Vec<String> {
        self.traceparents
            .read()
            .expect("traceparents lock")
            .by_product
            .get(product)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn record_traceparent(&self, product: &str, traceparent: &str) {
        let mut recorded = self.traceparents.write().expect("traceparents lock");
        if recorded.count < MAX_RECORDED_TRACEPARENTS {
            recorded.count += 1;
            recorded
                .by_product
                .entry(product.to_owned())
                .or_default()
                .push(traceparent.to_owned());
        }
    }

    /// Replaces (or adds) one vendor's profile.
    pub fn set_profile(&self, vendor: &str, profile: VendorProfile) {
        let mut profiles = self.profiles.write().expect("profiles lock");
        profiles.vendors.insert(vendor.to_owned(), profile);
    }

    /// Requests seen per vendor since start.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.requests.read().expect("requests lock").clone()
    }

    /// How many comparison rounds each product (as requested) was asked for: the most requests of it
    /// one vendor answered with anything but a retryable error (an offer, a hang, a malformed or an
    /// oversized body; a 503 is retried within the round). A round counts from its request, even if
    /// the consumer died before the answer. Exact unless, in some round, every vendor answered the
    /// product with retryable errors only (then a lower bound).
    pub fn rounds_by_product(&self) -> HashMap<String, u64> {
        self.round_ends
            .read()
            .expect("round ends lock")
            .iter()
            .map(|(product, vendors)| {
                (
                    product.clone(),
                    vendors.values().copied().max().unwrap_or(0),
                )
            })
            .collect()
    }

    fn end_round(&self, vendor: &str, product: &str) {
        let mut ends = self.round_ends.write().expect("round ends lock");
        *ends
            .entry(product.to_owned())
            .or_default()
            .entry(vendor.to_owned())
            .or_default() += 1;
    }

    fn profile(&self, vendor: &str) -> Option<VendorProfile> {
        let profiles = self.profiles.read().expect("profiles lock");
        profiles.vendors.get(vendor).cloned()
    }

    pub(crate) fn count(&self, vendor: &str) {
        let mut requests = self.requests.write().expect("requests lock");
        *requests.entry(vendor.to_owned()).or_default() += 1;
    }
}

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
    Json(simulator.profiles.read().expect("profiles lock").clone())
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
