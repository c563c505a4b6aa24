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
//! [`exchange`] (one request from its arrival to its response: route, trace, answer, problem document,
//! data point), [`hit`] (a read of prices from KV answered without a Rust future, the hit path's fast
//! way),
//! [`error`] (every failure and its problem document), [`reply`] (successful responses and the
//! problem body), [`analytics`] (a data point per request to Workers Analytics Engine).

mod analytics;
mod bindings;
mod cache;
mod clock;
mod config;
mod error;
mod exchange;
mod gate;
mod gate_client;
mod handlers;
mod hit;
mod incoming;
mod isolate;
mod miss_guard;
mod outbound;
mod publish;
mod redis;
mod reply;

use pricefront_core::route::Route;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::js_sys::Promise;
use worker::wasm_bindgen_futures::future_to_promise;
use worker::{web_sys, Context, Env};

use crate::exchange::Exchange;
use crate::incoming::Incoming;

/// Talc instead of Rust's default wasm allocator (dlmalloc): smaller in the module and faster.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// The Worker's `fetch` handler, exported as the `#[event(fetch)]` macro of the `worker` crate exports
/// it (the runtime calls it with the request, the bindings and the context, and awaits the promise),
/// written out so that a hit read from KV ([`hit`]) can answer without a Rust future.
#[wasm_bindgen]
pub fn fetch(request: web_sys::Request, env: Env, ctx: worker::worker_sys::Context) -> Promise {
    let exchange = Exchange::new(Incoming::new(request), env, Context::new(ctx));
    let exchange = match exchange.route() {
        Ok(Route::GetPrices(product)) => match hit::answer(exchange, product) {
            Ok(promise) => return promise,
            Err(exchange) => exchange,
        },
        _ => exchange,
    };
    future_to_promise(async move {
        let answered = exchange.answer().await;
        Ok(exchange.respond(answered))
    })
}
