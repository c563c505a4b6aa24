//! The edge Worker: parse, decide, do I/O. Every decision (routes, fresh / stale / miss, keys, TTLs,
//! message shapes, errors) is a pure function of `pricefront-core`; this crate only wires them to the
//! Workers runtime.
//!
//! Layout: [`config`] (vars and secrets), [`clock`] (the Workers clock),
//! [`isolate`] (everything an isolate keeps between requests: its settings, claims, known-products
//! filter, last backlog reading and hot cache of recent KV reads, under one expiry rule),
//! [`cache`] (Workers KV or Redis), [`bindings`] (the KV namespace and the rate limiters, called
//! directly), [`redis`] (the Redis protocol over the sockets API), [`publish`] (the Kafka REST proxy),
//! [`outbound`] (the requests it sends),
//! [`miss_guard`] (the known-products filter, backpressure and the rate limit a miss passes first),
//! [`gate`] (the `ProductGate` Durable Object, one per product) and [`gate_client`] (the Worker's calls
//! to it),
//! [`incoming`] (the request, read only where a route asks), [`handlers`] (one function per route),
//! [`error`] (every failure and its problem document), [`reply`] (successful responses and the
//! problem body), [`analytics`] (a data point per request to Workers Analytics Engine).

mod analytics;
mod bindings;
mod cache;
mod clock;
mod config;
mod error;
mod gate;
mod gate_client;
mod handlers;
mod incoming;
mod isolate;
mod miss_guard;
mod outbound;
mod publish;
mod redis;
mod reply;

use pricefront_core::edge_event::{data_point, EdgeEvent};
use pricefront_core::newest_wins::FILL_OUTCOME_HEADER;
use pricefront_core::route::{route, Route};
use pricefront_core::trace_context::{TraceContext, TRACEPARENT, TRACERESPONSE};
use worker::{event, web_sys, Context, Env, Response, Result};

use crate::clock::now_ms;
use crate::error::EdgeError;
use crate::incoming::Incoming;

/// Talc instead of Rust's default wasm allocator (dlmalloc): smaller in the module and faster.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

#[event(fetch)]
async fn fetch(request: web_sys::Request, env: Env, ctx: Context) -> Result<Response> {
    let request = Incoming::new(request);
    let path = request.path();
    let method = request.method();
    let started = now_ms();
    let mut trace = None;
    let matched = route(&method, &path);
    let answer = match &matched {
        Ok(Route::Health) => reply::json_bytes(200, br#"{"status":"ok"}"#.to_vec())
            .map(|response| (response, EdgeEvent::Health))
            .map_err(EdgeError::from),
        Ok(Route::GetPrices(product)) => {
            let header = request.header(TRACEPARENT);
            let context = TraceContext::continue_or_start(header.as_deref(), random_bytes());
            trace = Some(context);
            handlers::get_prices(&request, &env, &ctx, *product, &context).await
        }
        Ok(Route::FillPrices(product)) => handlers::fill_prices(request, &env, &ctx, *product)
            .await
            .map(|response| {
                let outcome = response.headers().get(FILL_OUTCOME_HEADER).ok().flatten();
                let event = EdgeEvent::Filled(outcome.unwrap_or_else(|| "stored".to_owned()));
                (response, event)
            }),
        Ok(Route::FillBacklog) => handlers::fill_backlog(request, &env)
            .await
            .map(|response| (response, EdgeEvent::BacklogReported)),
        Err(error) => Err(EdgeError::Route(error.clone())),
    };
    // Never a bare 500: whatever failed is a problem document (`EdgeError::into_response`).
    let (mut response, event) = match answer {
        Ok(answered) => answered,
        Err(error) => {
            error.log(&method, &path);
            let problem = error.problem();
            let event = EdgeEvent::of_problem(problem.status, &problem.kind);
            let response = error.into_response().or_else(|error| {
                let error = EdgeError::Internal(error);
                error.log(&method, &path);
                error.into_response()
            })?;
            (response, event)
        }
    };
    if event.counted() {
        let elapsed_ms = now_ms().saturating_sub(started);
        let point = data_point(&matched, &event, response.status_code(), elapsed_ms);
        analytics::record(&env, point);
    }
    if let Some(trace) = trace {
        // The trace the request joined, and this edge's span in it: what a support person looks up.
        response
            .headers_mut()
            .set(TRACERESPONSE, &trace.to_string())?;
    }
    Ok(response)
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
