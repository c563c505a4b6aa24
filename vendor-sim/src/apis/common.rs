//! What the API modules share: counting a request, the API's latency, reading query parameters,
//! JSON answers, Basic credentials and the clock.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use rand::Rng;

use super::api::Api;
use crate::simulator::Simulator;

/// Counts a data request of `api` (in the simulator's request counts and the API's stats) and records
/// its `traceparent` under each identifier it asks for.
pub(crate) fn note_request(
    simulator: &Simulator,
    api: Api,
    identifiers: &[&str],
    headers: &HeaderMap,
) {
    simulator.count(api.name());
    simulator.apis().record(api, |stats| stats.requests += 1);
    if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        for identifier in identifiers {
            simulator.record_traceparent(identifier, traceparent);
        }
    }
}

/// Waits the API's latency: uniform between its `latency_min_ms` and `latency_max_ms`.
pub(crate) async fn delay(simulator: &Simulator, api: Api) {
    let settings = simulator.apis().settings(api);
    let high = settings.latency_max_ms.max(settings.latency_min_ms);
    let ms = if high == 0 {
        0
    } else {
        rand::rng().random_range(settings.latency_min_ms..=high)
    };
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// The query parameters, or none when the query cannot be read (each API then answers its own "missing
/// parameter" error).
pub(crate) fn params(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> HashMap<String, String> {
    query.map(|Query(map)| map).unwrap_or_default()
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i128)
        .unwrap_or(0)
}

/// Now as RFC 3339 UTC with milliseconds (`2024-05-01T12:00:00.000Z`).
pub(crate) fn iso_now() -> String {
    let ms = now_ms().max(0);
    let secs = (ms / 1000) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        ms % 1000
    )
}

/// The id and secret of an `Authorization: Basic` header.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// A non-negative integer query parameter, or `default` when absent or unreadable.
pub(crate) fn number_param(params: &HashMap<String, String>, name: &str, default: usize) -> usize {
    params
        .get(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_are_well_formed() {
        let now = iso_now();
        assert_eq!(now.len(), 24);
        assert!(now.starts_with("20") && now.ends_with('Z'));
    }
}
