//! The edge Worker: parse, decide, do I/O. Every decision (routes, fresh / stale / miss, keys, TTLs,
//! message shapes, errors) is a pure function of `pricefront-core`; this crate only wires them to the
//! Workers runtime.
//!
//! Layout: [`config`] (vars and secrets, read once per isolate), [`cache`] (Workers KV or Redis),
//! [`hot_cache`] (this isolate's memory of recent KV reads),
//! [`redis`] (the Redis protocol over the sockets API), [`publish`] (the Kafka REST proxy),
//! [`miss_guard`] (the known-products filter, backpressure and the rate limit a miss passes first),
//! [`handlers`] (one function per route), [`reply`] (responses).

mod cache;
mod config;
mod handlers;
mod hot_cache;
mod miss_guard;
mod publish;
mod redis;
mod reply;

use pricefront_core::problem::Problem;
use pricefront_core::route::{route, Route, RouteError};
use pricefront_core::trace_context::{TraceContext, TRACEPARENT, TRACERESPONSE};
use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(request: Request, env: Env, ctx: Context) -> Result<Response> {
    let path = request.path();
    // The raw method: the worker crate maps methods it does not know to GET.
    let method = request.inner().method();
    let mut trace = None;
    let answer = match route(&method, &path) {
        Ok(Route::Health) => reply::json_bytes(200, br#"{"status":"ok"}"#.to_vec()),
        Ok(Route::GetPrices(product)) => {
            let header = request.headers().get(TRACEPARENT).ok().flatten();
            let context = TraceContext::continue_or_start(header.as_deref(), random_bytes());
            trace = Some(context);
            handlers::get_prices(&request, &env, ctx, product, &context).await
        }
        Ok(Route::FillPrices(product)) => handlers::fill_prices(request, &env, product).await,
        Ok(Route::FillBacklog) => handlers::fill_backlog(request, &env).await,
        Err(error) => {
            let mut response = reply::problem(&Problem::from(&error))?;
            if let RouteError::MethodNotAllowed { allow, .. } = error {
                response.headers_mut().set("Allow", allow)?;
            }
            Ok(response)
        }
    };
    // Never a bare 500: whatever failed inside is a problem document too.
    let mut response = answer.or_else(|error| {
        worker::console_error!("{method} {path}: {error}");
        reply::problem(&Problem::new(
            503,
            "unavailable",
            "Service Unavailable",
            "the edge could not reach its cache; retry shortly",
        ))
        .and_then(|mut r| r.headers_mut().set("Retry-After", "2").map(|()| r))
    })?;
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
