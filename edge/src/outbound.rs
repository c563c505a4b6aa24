//! Requests the Worker sends (to the REST proxy, to a product's gate) and their answers, on `web_sys`
//! directly: `worker`'s `RequestInit` also carries Cloudflare's `cf` properties, whose conversion alone
//! is 7 KB of the wasm, and its `Response::bytes` reads a body as a Rust stream of chunks, several KB
//! more; these requests set no `cf` property, and their answers are small and read whole.

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{Promise, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys;
use worker::{Error, Headers, Result};

#[wasm_bindgen]
extern "C" {
    /// The runtime's base64 encoder (of a Latin-1 string; anything else throws).
    #[wasm_bindgen(catch)]
    fn btoa(data: &str) -> std::result::Result<String, JsValue>;

    /// The runtime's `fetch`.
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(request: &web_sys::Request) -> Promise;
}

/// An answer, read whole.
pub struct Answer {
    /// Its status code.
    pub status: u16,
    /// Its headers.
    pub headers: Headers,
    /// Its body.
    pub body: Vec<u8>,
}

/// A request of `method` to `url`, with `headers` and `body` when given.
pub fn request(
    method: &str,
    url: &str,
    headers: Option<&Headers>,
    body: Option<&JsValue>,
) -> Result<web_sys::Request> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    if let Some(headers) = headers {
        init.set_headers(headers.as_ref());
    }
    if let Some(body) = body {
        init.set_body(body);
    }
    web_sys::Request::new_with_str_and_init(url, &init)
        .map_err(|_| Error::JsError(format!("invalid request to {url}")))
}

/// Sends `request` to the network.
pub async fn send(request: &web_sys::Request) -> Result<Answer> {
    answer(global_fetch(request)).await
}

/// Sends `request` to a Durable Object through its stub.
pub async fn send_to(stub: worker::Stub, request: &web_sys::Request) -> Result<Answer> {
    let stub: worker::worker_sys::DurableObject = stub.into_rpc();
    answer(stub.fetch_with_request(request)?).await
}

/// The answer a fetch's promise resolves to, its body read whole.
async fn answer(promise: Promise) -> Result<Answer> {
    let response: web_sys::Response = JsFuture::from(promise).await?.unchecked_into();
    let body = JsFuture::from(response.array_buffer()?).await?;
    Ok(Answer {
        status: response.status(),
        headers: Headers(response.headers()),
        body: Uint8Array::new(&body).to_vec(),
    })
}

/// The `Authorization` value of HTTP Basic credentials (RFC 7617); `None` when they are not Latin-1,
/// which Basic cannot carry.
pub fn basic_authorization(user: &str, password: &str) -> Option<String> {
    btoa(&format!("{user}:{password}"))
        .ok()
        .map(|encoded| format!("Basic {encoded}"))
}
