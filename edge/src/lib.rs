//! The edge Worker: parse, decide, do I/O. Every decision (routes, fresh / stale / miss, keys, TTLs,
//! message shapes, errors) is a pure function of `pricefront-core`; this crate only wires them to the
//! Workers runtime.
//!
//! Layout: [`config`] (vars and secrets, read once per isolate), [`cache`] (Workers KV or Redis),
//! [`hot_cache`] (this isolate's memory of recent KV reads),
//! [`redis`] (the Redis protocol over the sockets API), [`publish`] (the Kafka REST proxy),
//! [`handlers`] (one function per route), [`reply`] (responses).

mod cache;
mod config;
mod handlers;
mod hot_cache;
mod publish;
mod redis;
mod reply;

use pricefront_core::problem::Problem;
use pricefront_core::route::{route, Route, RouteError};
use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(request: Request, env: Env, ctx: Context) -> Result<Response> {
    let path = request.path();
    // The raw method: the worker crate maps methods it does not know to GET.
    let method = request.inner().method();
    let answer = match route(&method, &path) {
        Ok(Route::Health) => reply::json_bytes(200, br#"{"status":"ok"}"#.to_vec()),
        Ok(Route::GetPrices(product)) => handlers::get_prices(&request, &env, ctx, product).await,
        Ok(Route::FillPrices(product)) => handlers::fill_prices(request, &env, product).await,
        Err(error) => {
            let mut response = reply::problem(&Problem::from(&error))?;
            if let RouteError::MethodNotAllowed { allow, .. } = error {
                response.headers_mut().set("Allow", allow)?;
            }
            Ok(response)
        }
    };
    // Never a bare 500: whatever failed inside is a problem document too.
    answer.or_else(|error| {
        worker::console_error!("{method} {path}: {error}");
        reply::problem(&Problem::new(
            503,
            "unavailable",
            "Service Unavailable",
            "the edge could not reach its cache; retry shortly",
        ))
        .and_then(|mut r| r.headers_mut().set("Retry-After", "2").map(|()| r))
    })
}
