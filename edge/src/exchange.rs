//! One request from its arrival to its response: its route and trace read once, the answer of its
//! route ([`crate::handlers`]), a failure turned into its problem document, the data point of what it
//! was, the trace's response header. [`crate::fetch`] answers it the usual way (an `async fn`), or
//! [`crate::hit`] without a Rust future.

use pricefront_core::edge_event::{data_point, EdgeEvent};
use pricefront_core::newest_wins::FILL_OUTCOME_HEADER;
use pricefront_core::route::{route, Route, RouteError};
use pricefront_core::trace_context::{TraceContext, TRACEPARENT, TRACERESPONSE};
use pricefront_core::UnixMillis;
use wasm_bindgen::JsValue;
use worker::{web_sys, Context, Env, Response, Result};

use crate::analytics;
use crate::clock::now_ms;
use crate::error::EdgeError;
use crate::handlers;
use crate::incoming::Incoming;
use crate::reply;

/// One request being answered: what the Worker read of it when it arrived.
pub struct Exchange {
    /// The request.
    pub request: Incoming,
    /// The Worker's bindings.
    pub env: Env,
    /// Where work after the answer is handed.
    pub ctx: Context,
    /// Its method as sent.
    method: String,
    /// Its path.
    path: String,
    /// Its route, or why it has none.
    matched: std::result::Result<Route, RouteError>,
    /// The trace it joined (a `GET /v1/prices/{productId}` only).
    pub trace: Option<TraceContext>,
    /// When it arrived.
    started: UnixMillis,
}

impl Exchange {
    /// Reads the route and, for a read of prices, the trace it joins.
    pub fn new(request: Incoming, env: Env, ctx: Context) -> Self {
        let path = request.path();
        let method = request.method();
        let started = now_ms();
        let matched = route(&method, &path);
        let trace = matches!(matched, Ok(Route::GetPrices(_))).then(|| {
            let header = request.header(TRACEPARENT);
            TraceContext::continue_or_start(header.as_deref(), random_bytes())
        });
        Self {
            request,
            env,
            ctx,
            method,
            path,
            matched,
            trace,
            started,
        }
    }

    /// Its route, or why it has none.
    pub fn route(&self) -> std::result::Result<Route, RouteError> {
        self.matched.clone()
    }

    /// The answer of its route, with the event it was.
    pub async fn answer(&self) -> std::result::Result<(Response, EdgeEvent), EdgeError> {
        let (request, env, ctx) = (&self.request, &self.env, &self.ctx);
        match &self.matched {
            Ok(Route::Health) => reply::json_bytes(200, br#"{"status":"ok"}"#.to_vec())
                .map(|response| (response, EdgeEvent::Health))
                .map_err(EdgeError::from),
            Ok(Route::GetPrices(product)) => {
                let trace = self
                    .trace
                    .unwrap_or_else(|| TraceContext::continue_or_start(None, random_bytes()));
                handlers::get_prices(request, env, ctx, *product, &trace).await
            }
            Ok(Route::FillPrices(product)) => handlers::fill_prices(request, env, ctx, *product)
                .await
                .map(|response| {
                    let outcome = response.headers().get(FILL_OUTCOME_HEADER).ok().flatten();
                    let event = EdgeEvent::Filled(outcome.unwrap_or_else(|| "stored".to_owned()));
                    (response, event)
                }),
            Ok(Route::FillBacklog) => handlers::fill_backlog(request, env)
                .await
                .map(|response| (response, EdgeEvent::BacklogReported)),
            Err(error) => Err(EdgeError::Route(error.clone())),
        }
    }

    /// The response to send for `answered`: a failure as its problem document (never a bare 500),
    /// the data point of the event recorded, the trace's header added.
    pub fn respond(
        &self,
        answered: std::result::Result<(Response, EdgeEvent), EdgeError>,
    ) -> JsValue {
        match self.finish(answered) {
            Ok(response) => web_sys::Response::from(response).into(),
            Err(error) => {
                // Only a header the runtime refused to set gets here.
                worker::console_error!("{} {}: {error}", self.method, self.path);
                Response::error("INTERNAL SERVER ERROR", 500)
                    .map(web_sys::Response::from)
                    .map_or(JsValue::UNDEFINED, JsValue::from)
            }
        }
    }

    /// [`Exchange::respond`] before the conversion: fails only when the runtime refuses a header.
    fn finish(
        &self,
        answered: std::result::Result<(Response, EdgeEvent), EdgeError>,
    ) -> Result<Response> {
        let (method, path) = (&self.method, &self.path);
        let (mut response, event) = match answered {
            Ok(answered) => answered,
            Err(error) => {
                error.log(method, path);
                let problem = error.problem();
                let event = EdgeEvent::of_problem(problem.status, &problem.kind);
                let response = error.into_response().or_else(|error| {
                    let error = EdgeError::Internal(error);
                    error.log(method, path);
                    error.into_response()
                })?;
                (response, event)
            }
        };
        if event.counted() {
            let elapsed_ms = now_ms().saturating_sub(self.started);
            let point = data_point(&self.matched, &event, response.status_code(), elapsed_ms);
            analytics::record(&self.env, point);
        }
        if let Some(trace) = self.trace {
            // The trace the request joined, and this edge's span in it: what a support person looks up.
            response
                .headers_mut()
                .set(TRACERESPONSE, &trace.to_string())?;
        }
        Ok(response)
    }
}

/// `N` random bytes from `Math.random` (48 bits a call): trace and span ids need to be unique, not
/// secret.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    for chunk in bytes.chunks_mut(6) {
        let draw = (worker::js_sys::Math::random() * (1u64 << 48) as f64) as u64;
        chunk.copy_from_slice(&draw.to_le_bytes()[..chunk.len()]);
    }
    bytes
}
