//! A read of prices from Workers KV answered without a Rust future: the hit path of the `kv` cache.
//!
//! The isolate's profile of a hit (BENCHMARKS.md section 2) put a large share of its time in the
//! machinery that runs a Rust `async fn` as a JavaScript promise: the promise `fetch` returns and its
//! executor, the task queue's microtasks (one to start the task, one more each time a promise it
//! awaits settles), and two closures made, registered for finalization and dropped for every promise
//! awaited. A hit needs none of it: one KV read, then an answer computed at once. So `fetch` asks KV
//! itself and hands the read's promise two callbacks, made once per isolate and bound to the number of
//! the request they answer; the answer is the callback's return value. A product in the isolate's
//! hot cache is answered before anything is read.
//!
//! Everything else takes the usual way ([`Exchange::answer`], an `async fn`): other routes and cache
//! backends, an unknown product or a known-products filter still to be read, and, after the read, a
//! miss (published and answered by [`crate::handlers::PricesRead::queue`]) or a read that failed (tried
//! again the usual way, which answers its error). The decisions are the same functions both ways
//! ([`crate::handlers::PricesRead::serve`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pricefront_core::stored::Stored;
use pricefront_core::{cache_key, ProductId, UnixMillis};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::Promise;
use worker::wasm_bindgen_futures::future_to_promise;

use crate::bindings;
use crate::clock::now_ms;
use crate::config::{CacheBackend, Config};
use crate::exchange::Exchange;
use crate::handlers::PricesRead;
use crate::isolate;
use crate::miss_guard;

#[wasm_bindgen]
extern "C" {
    /// A JavaScript function of ours: one of [`Callbacks`], or one bound to a request's number.
    type Callback;
    #[wasm_bindgen(method, js_name = bind)]
    fn bind(this: &Callback, this_arg: &JsValue, number: u32) -> Callback;

    /// A promise, as [`then_either`] calls it.
    type Thenable;
    #[wasm_bindgen(method, js_name = then)]
    fn then_either(this: &Thenable, on_value: &Callback, on_error: &Callback) -> Promise;
}

/// A request waiting for its KV read.
struct Waiting {
    exchange: Exchange,
    config: Rc<Config>,
    product: ProductId,
    /// When KV was asked.
    now: UnixMillis,
}

/// The requests of this isolate waiting for their KV reads, by number.
#[derive(Default)]
struct Reads {
    next: u32,
    waiting: HashMap<u32, Waiting>,
}

/// The callbacks a read's promise settles into: `(number, value)`, answering the response (or a
/// promise of it).
struct Callbacks {
    on_value: Closure<dyn FnMut(u32, JsValue) -> JsValue>,
    on_error: Closure<dyn FnMut(u32, JsValue) -> JsValue>,
}

thread_local! {
    static READS: RefCell<Reads> = RefCell::default();
    static CALLBACKS: Callbacks = Callbacks {
        on_value: Closure::new(|number, value: JsValue| {
            let bytes = bindings::bytes_of(&value);
            read_settled(number, Ok(bytes))
        }),
        on_error: Closure::new(|number, error: JsValue| read_settled(number, Err(error))),
    };
}

/// The promise of the answer to `GET /v1/prices/{product}` when it can be had without a Rust future;
/// the exchange back when it takes the usual way.
pub(crate) fn answer(exchange: Exchange, product: ProductId) -> Result<Promise, Exchange> {
    let Ok(config) = isolate::config(&exchange.env) else {
        return Err(exchange);
    };
    if !matches!(config.cache, CacheBackend::Kv) {
        return Err(exchange);
    }
    let now = now_ms();
    // An unknown product (404) or a filter to read first: the usual way says so or reads it.
    if miss_guard::known_at_once(&config, product, now) != Some(true) {
        return Err(exchange);
    }
    let waiting = Waiting {
        exchange,
        config,
        product,
        now,
    };
    if let Some(stored) = isolate::hot_get(product, now) {
        return Ok(Promise::resolve(&respond(waiting, Some(stored))));
    }
    let read = match bindings::kv_read(&waiting.exchange.env, &cache_key(product)) {
        Ok(read) => read,
        Err(_) => return Err(waiting.exchange),
    };
    let number = READS.with_borrow_mut(|reads| {
        let number = reads.next;
        reads.next = reads.next.wrapping_add(1);
        reads.waiting.insert(number, waiting);
        number
    });
    Ok(CALLBACKS.with(|callbacks| {
        let on_value = callbacks.on_value.as_ref().unchecked_ref::<Callback>();
        let on_error = callbacks.on_error.as_ref().unchecked_ref::<Callback>();
        read.unchecked_ref::<Thenable>().then_either(
            &on_value.bind(&JsValue::NULL, number),
            &on_error.bind(&JsValue::NULL, number),
        )
    }))
}

/// The answer once request `number`'s read settled with `read` (the value's bytes, if KV held the
/// key, or the read's error).
fn read_settled(number: u32, read: Result<Option<Vec<u8>>, JsValue>) -> JsValue {
    let Some(waiting) = READS.with_borrow_mut(|reads| reads.waiting.remove(&number)) else {
        worker::console_error!("a KV read settled for request {number}, which nothing waits for");
        return JsValue::UNDEFINED;
    };
    match read {
        Ok(bytes) => {
            let stored = bytes.and_then(Stored::from_bytes);
            if let Some(stored) = &stored {
                isolate::hot_put(stored, waiting.now, waiting.config.hot_cache_ms);
            }
            respond(waiting, stored)
        }
        // Tried again the usual way, which reads KV again and answers its error if it fails again.
        Err(_) => {
            let exchange = waiting.exchange;
            future_to_promise(async move {
                let answered = exchange.answer().await;
                Ok(exchange.respond(answered))
            })
            .into()
        }
    }
}

/// The response to a read that found `stored`: at once for a hit, a promise of it for a miss.
fn respond(waiting: Waiting, stored: Option<Stored>) -> JsValue {
    let Waiting {
        exchange,
        config,
        product,
        now,
    } = waiting;
    let Some(trace) = exchange.trace else {
        return exchange.respond(Err(crate::error::EdgeError::Internal(
            worker::Error::RustError("a read of prices without its trace".into()),
        )));
    };
    let read = PricesRead {
        request: &exchange.request,
        env: &exchange.env,
        ctx: &exchange.ctx,
        config: &config,
        product,
        now,
        trace: &trace,
    };
    if let Some(answered) = read.serve(stored) {
        return exchange.respond(answered);
    }
    future_to_promise(async move {
        let read = PricesRead {
            request: &exchange.request,
            env: &exchange.env,
            ctx: &exchange.ctx,
            config: &config,
            product,
            now,
            trace: &trace,
        };
        let answered = read.queue().await;
        Ok(exchange.respond(answered))
    })
    .into()
}
