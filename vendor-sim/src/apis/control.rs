//! The simulator's own routes for the APIs:
//!
//! - `GET /_sim/apis`: every API's [`ApiSettings`], by name.
//! - `GET /_sim/apis/{name}`: one API's settings.
//! - `PUT /_sim/apis/{name}`: a JSON [`ApiSettingsPatch`] applied over the current settings (keys absent
//!   keep their value); 204, 404 for an unknown name, 400 for settings the simulator cannot use (an
//!   unreadable public key), 422 for unknown keys or wrong types. Walmart's key is set with
//!   `{"public_key_pem": "-----BEGIN PUBLIC KEY-----\n…"}` (none by default) and removed with `""`.
//! - `GET /_sim/apis/{name}/stats`: its [`ApiStats`](super::state::ApiStats) as JSON.
//! - `POST /_sim/apis/{name}/reset`: zeroes its stats and the requests counted against its limits; 204.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use axum::Router;

use super::api::Api;
use super::settings::{ApiSettings, ApiSettingsPatch};
use crate::simulator::Simulator;

/// The API called `name`, or the 404 answer.
fn api_named(name: &str) -> Result<Api, Box<Response>> {
    name.parse::<Api>()
        .map_err(|e| Box::new((StatusCode::NOT_FOUND, e.to_string()).into_response()))
}

/// The `/_sim/apis` routes. Merged into [`super::routes`].
pub(crate) fn routes() -> Router<Arc<Simulator>> {
    Router::new()
        .route("/_sim/apis", get(all_settings))
        .route("/_sim/apis/{name}", get(settings).put(put_settings))
        .route("/_sim/apis/{name}/stats", get(stats))
        .route("/_sim/apis/{name}/reset", post(reset))
}

/// `GET /_sim/apis`.
pub(crate) async fn all_settings(
    State(simulator): State<Arc<Simulator>>,
) -> Json<BTreeMap<Api, ApiSettings>> {
    Json(
        Api::ALL
            .into_iter()
            .map(|api| (api, simulator.apis().settings(api)))
            .collect(),
    )
}

/// `GET /_sim/apis/{name}`.
pub(crate) async fn settings(
    State(simulator): State<Arc<Simulator>>,
    Path(name): Path<String>,
) -> Response {
    match api_named(&name) {
        Ok(api) => Json(simulator.apis().settings(api)).into_response(),
        Err(response) => *response,
    }
}

/// `PUT /_sim/apis/{name}`.
pub(crate) async fn put_settings(
    State(simulator): State<Arc<Simulator>>,
    Path(name): Path<String>,
    Json(patch): Json<ApiSettingsPatch>,
) -> Response {
    let api = match api_named(&name) {
        Ok(api) => api,
        Err(response) => return *response,
    };
    match simulator.apis().configure(api, &patch) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// `GET /_sim/apis/{name}/stats`.
pub(crate) async fn stats(
    State(simulator): State<Arc<Simulator>>,
    Path(name): Path<String>,
) -> Response {
    match api_named(&name) {
        Ok(api) => Json(simulator.apis().stats(api)).into_response(),
        Err(response) => *response,
    }
}

/// `POST /_sim/apis/{name}/reset`.
pub(crate) async fn reset(
    State(simulator): State<Arc<Simulator>>,
    Path(name): Path<String>,
) -> Response {
    match api_named(&name) {
        Ok(api) => {
            simulator.apis().reset(api);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(response) => *response,
    }
}

/// `routes` with the `/_sim/apis` routes beside them: what an API's tests serve.
#[cfg(test)]
pub(crate) fn beside(routes: Router<Arc<Simulator>>) -> Router<Arc<Simulator>> {
    routes.merge(self::routes())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::test_support::serve;

    #[tokio::test]
    async fn settings_change_at_run_time() {
        let (_simulator, base) = serve(super::routes()).await;
        let client = reqwest::Client::new();
        let put = client
            .put(format!("{base}/_sim/apis/ebay"))
            .json(&json!({"token_ttl_secs": 5}))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 204);
        let settings: Value = client
            .get(format!("{base}/_sim/apis/ebay"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(settings["token_ttl_secs"], 5);
        assert_eq!(settings["client_id"], "sim-ebay-client-id");
        let unknown = client
            .put(format!("{base}/_sim/apis/nosuch"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404);
        let bad_key = client
            .put(format!("{base}/_sim/apis/ebay"))
            .json(&json!({"ttl": 5}))
            .send()
            .await
            .unwrap();
        assert!(bad_key.status().is_client_error());
        let bad_pem = client
            .put(format!("{base}/_sim/apis/walmart"))
            .json(&json!({"public_key_pem": "nope"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad_pem.status(), 400);
        let stats: Value = client
            .get(format!("{base}/_sim/apis/walmart/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats["requests"], 0);
        assert_eq!(stats["bad_signature_refusals"], 0);
        let all: Value = client
            .get(format!("{base}/_sim/apis"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(all["bestbuy"]["api_key"], "sim-bestbuy-api-key");
    }
}
