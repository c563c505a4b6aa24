//! The request as the runtime hands it over, read only where a route asks. The worker crate's
//! `Request` reads `request.cf` when it is made, an object the runtime builds for the asking (about 4%
//! of a hit's time in the isolate's profile, BENCHMARKS.md section 2), which no route here needs.

use pricefront_core::route::path_of_url;
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys;
use worker::Result;

/// A request to the Worker.
pub struct Incoming {
    request: web_sys::Request,
    /// Its headers, taken from the runtime once.
    headers: web_sys::Headers,
}

impl Incoming {
    /// The request the runtime handed to `fetch`.
    pub fn new(request: web_sys::Request) -> Self {
        let headers = request.headers();
        Self { request, headers }
    }

    /// Its path, without the query.
    pub fn path(&self) -> String {
        path_of_url(&self.request.url()).to_owned()
    }

    /// Its method as sent (the worker crate's `Method` maps methods it does not know to GET).
    pub fn method(&self) -> String {
        self.request.method()
    }

    /// The value of its header `name`, if it has one.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).ok().flatten()
    }

    /// What tells that the client has gone.
    pub fn signal(&self) -> web_sys::AbortSignal {
        self.request.signal()
    }

    /// Its whole body.
    pub async fn bytes(&self) -> Result<Vec<u8>> {
        let buffer = JsFuture::from(self.request.array_buffer()?).await?;
        Ok(Uint8Array::new(&buffer).to_vec())
    }
}
