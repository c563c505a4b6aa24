//! OAuth 2.0 client credentials as a vendor call uses them, against a token endpoint and a price API on
//! 127.0.0.1: one mint however many calls wait (single-flight), a 401 answered by one re-mint, mint
//! failures as `token_mint` with no request to the price API, and the hourly mint limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use pricefront_consumer::process::lateness::RuntimeLag;
use pricefront_consumer::process::metrics::Metrics;
use pricefront_consumer::vendors::fetch::{ask_vendor, http_client, FetchLimits, VendorGuards};
use pricefront_consumer::vendors::request::Identifiers;
use pricefront_consumer::vendors::{parse, Vendor};
use pricefront_core::{FailureKind, ProductId, TraceContext, VendorOutcome};

/// A token endpoint and a price API sharing their tokens.
#[derive(Default)]
struct Server {
    /// Tokens minted so far; the valid token is `tok-{mints}`.
    mints: AtomicU64,
    /// Requests to the price API.
    prices: AtomicU64,
    /// When set, the token endpoint refuses the client.
    refuse: std::sync::atomic::AtomicBool,
    /// Tokens up to this mint are revoked (answered 401).
    revoked_up_to: AtomicU64,
}

async fn token(State(server): State<Arc<Server>>, headers: HeaderMap) -> axum::response::Response {
    // Slow enough that concurrent calls all wait for the same mint.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if server.refuse.load(Ordering::SeqCst) || !basic.starts_with("Basic ") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "invalid_client", "error_description": "client authentication failed"})),
        )
            .into_response();
    }
    let n = server.mints.fetch_add(1, Ordering::SeqCst) + 1;
    axum::Json(serde_json::json!({"access_token": format!("tok-{n}"), "expires_in": 7200, "token_type": "Application Access Token"}))
        .into_response()
}

async fn price(State(server): State<Arc<Server>>, headers: HeaderMap) -> axum::response::Response {
    server.prices.fetch_add(1, Ordering::SeqCst);
    let current = format!("Bearer tok-{}", server.mints.load(Ordering::SeqCst));
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let revoked = given
        .strip_prefix("Bearer tok-")
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n <= server.revoked_up_to.load(Ordering::SeqCst));
    if given != current || revoked {
        return (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"errors": [{"errorId": 1001, "message": "Invalid access token"}]}))).into_response();
    }
    axum::Json(serde_json::json!({"p": "9.99"})).into_response()
}

async fn serve() -> (String, Arc<Server>) {
    let server = Arc::new(Server::default());
    let app = axum::Router::new()
        .route("/token", post(token))
        .route("/price/{product}", get(price))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, server)
}

struct Caller {
    vendor: Vendor,
    guards: VendorGuards,
    lag: Arc<RuntimeLag>,
    client: reqwest::Client,
}

impl Caller {
    fn new(base: &str, max_mints_per_hour: u32) -> Self {
        let text = format!(
            "[[vendor]]\nname = \"oauth\"\nbase_url = \"{base}\"\nurl = \"/price/{{productId}}\"\ntimeout_ms = 1000\nguarantee_window_secs = 60\nprice_pointer = \"/p\"\ncurrency = \"USD\"\n[vendor.auth]\nkind = \"oauth2_client_credentials\"\ntoken_url = \"/token\"\nclient_id = \"${{TEST_CLIENT_ID}}\"\nclient_secret = \"${{TEST_CLIENT_SECRET}}\"\nscope = \"https://api.example/scope\"\nmax_mints_per_hour = {max_mints_per_hour}\n"
        );
        let env = |name: &str| match name {
            "TEST_CLIENT_ID" => Some("test-client-id".to_owned()),
            "TEST_CLIENT_SECRET" => Some("test-client-secret".to_owned()),
            _ => None,
        };
        let vendor = parse(&text, env).unwrap().remove(0);
        let metrics = Metrics::new();
        let guards = VendorGuards::new(&vendor, &metrics, None);
        Self {
            lag: RuntimeLag::new(metrics.runtime_lag.clone(), vendor.timeout),
            vendor,
            guards,
            client: http_client(64, 1).unwrap(),
        }
    }

    async fn ask(&self, product: u64) -> VendorOutcome {
        let none = HashMap::new();
        let ids = Identifiers::new(ProductId::new(product).unwrap(), false, &none);
        let limits = FetchLimits {
            deadline: Duration::from_secs(3),
            max_body_bytes: 1 << 16,
            first_backoff: Duration::from_millis(5),
        };
        ask_vendor(
            &self.client,
            &self.vendor,
            &self.guards,
            &self.lag,
            &ids,
            &TraceContext::start([1; 24]),
            limits,
        )
        .await
    }
}

fn failure(outcome: &VendorOutcome) -> Option<(FailureKind, String)> {
    match outcome {
        VendorOutcome::Failed(f) => Some((f.kind, f.detail.clone())),
        VendorOutcome::Answered { .. } => None,
    }
}

#[tokio::test]
async fn one_mint_serves_every_call_however_many_wait() {
    let (base, server) = serve().await;
    let caller = Caller::new(&base, 5);
    let calls = (1..=50).map(|product| caller.ask(product));
    let outcomes = futures::future::join_all(calls).await;
    let failed: Vec<_> = outcomes.iter().filter_map(failure).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(server.mints.load(Ordering::SeqCst), 1, "single-flight");
    assert_eq!(server.prices.load(Ordering::SeqCst), 50);
}

#[tokio::test]
async fn a_401_is_answered_by_one_new_token() {
    let (base, server) = serve().await;
    let caller = Caller::new(&base, 5);
    assert!(failure(&caller.ask(1).await).is_none());
    // The vendor revokes the token before it expires.
    server.revoked_up_to.store(1, Ordering::SeqCst);
    assert!(
        failure(&caller.ask(2).await).is_none(),
        "re-minted and asked again"
    );
    assert_eq!(server.mints.load(Ordering::SeqCst), 2);
    assert_eq!(
        server.prices.load(Ordering::SeqCst),
        3,
        "the 401, then the answer"
    );
    // A second 401 in one call is not answered by a third mint: the call fails.
    server.revoked_up_to.store(u64::MAX, Ordering::SeqCst);
    let (kind, detail) = failure(&caller.ask(3).await).expect("a failure");
    assert_eq!(kind, FailureKind::HttpStatus, "{detail}");
    assert_eq!(server.mints.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_refused_mint_is_token_mint_and_mints_stop_at_the_hourly_limit() {
    let (base, server) = serve().await;
    server.refuse.store(true, Ordering::SeqCst);
    let caller = Caller::new(&base, 2);
    for _ in 0..2 {
        let (kind, detail) = failure(&caller.ask(1).await).expect("a failure");
        assert_eq!(kind, FailureKind::TokenMint);
        assert!(
            detail.contains("401") && detail.contains("invalid_client"),
            "{detail}"
        );
        assert!(!detail.contains("test-client-secret"), "{detail}");
    }
    server.refuse.store(false, Ordering::SeqCst);
    let (kind, detail) = failure(&caller.ask(1).await).expect("the limit");
    assert_eq!(kind, FailureKind::TokenMint);
    assert!(detail.contains("max_mints_per_hour"), "{detail}");
    assert_eq!(
        server.prices.load(Ordering::SeqCst),
        0,
        "the price API was never asked"
    );
    assert_eq!(server.mints.load(Ordering::SeqCst), 0);
}
