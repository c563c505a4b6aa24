//! The Workers KV namespace and the rate limiters, called directly: `worker`'s wrappers pass every
//! option and outcome through `serde_wasm_bindgen`, several KB of the wasm and a conversion on every
//! KV read of a hit, for a key, a number of seconds and one boolean. The bindings a hit touches (KV,
//! the analytics dataset) are looked up once per isolate.

use std::cell::OnceCell;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{Object, Promise, Reflect, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{AnalyticsEngineDataset, Env, Error, Result};

/// The binding of the KV namespace (`[[kv_namespaces]]` in `wrangler.toml`) that [`kv_get`] and
/// [`kv_put`] read and write.
const KV_BINDING: &str = "PRICES";

/// The binding of the edge's analytics dataset (`[[analytics_engine_datasets]]` in wrangler.toml).
const ANALYTICS_BINDING: &str = "EDGE_EVENTS";

#[wasm_bindgen]
extern "C" {
    /// A KV namespace binding.
    type KvNamespace;
    #[wasm_bindgen(method, catch)]
    fn get(this: &KvNamespace, key: &str, kind: &JsValue) -> std::result::Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn put(
        this: &KvNamespace,
        key: &str,
        value: &Uint8Array,
        options: &Object,
    ) -> std::result::Result<Promise, JsValue>;

    /// A rate limiting binding.
    type RateLimit;
    #[wasm_bindgen(method, catch)]
    fn limit(this: &RateLimit, options: &Object) -> std::result::Result<Promise, JsValue>;
}

thread_local! {
    /// The bindings every hit touches and the type a KV read asks for, taken from `env` once per
    /// isolate: each property read of `env` is a call into the runtime, and each string passed to it
    /// is decoded from the wasm's memory. `env` and its bindings belong to the isolate, the same for
    /// every request it serves (Cloudflare also offers them as the module-level `env` of
    /// `cloudflare:workers`, usable outside any request).
    static HOT: OnceCell<HotBindings> = const { OnceCell::new() };
}

/// See [`HOT`].
struct HotBindings {
    /// The KV namespace ([`KV_BINDING`]), if bound.
    kv: Option<KvNamespace>,
    /// The analytics dataset ([`ANALYTICS_BINDING`]), if bound.
    analytics: Option<AnalyticsEngineDataset>,
    /// `"arrayBuffer"`, the type of value a KV read asks for.
    array_buffer: JsValue,
}

impl HotBindings {
    /// Reads them from `env`.
    fn of(env: &Env) -> Self {
        Self {
            kv: lookup(env, KV_BINDING),
            analytics: lookup(env, ANALYTICS_BINDING),
            array_buffer: JsValue::from_str("arrayBuffer"),
        }
    }
}

/// `f` of this isolate's [`HotBindings`], read from `env` the first time.
fn with_hot<R>(env: &Env, f: impl FnOnce(&HotBindings) -> R) -> R {
    HOT.with(|hot| f(hot.get_or_init(|| HotBindings::of(env))))
}

/// The binding `name` of `env`, if there is one.
fn lookup<T: JsCast>(env: &Env, name: &str) -> Option<T> {
    let value = Reflect::get(env.as_ref(), &JsValue::from_str(name)).ok()?;
    (!value.is_undefined()).then(|| value.unchecked_into())
}

/// The error that `env` has no binding `name`.
fn not_bound(name: &str) -> Error {
    Error::RustError(format!("no binding {name}"))
}

/// The binding `name` of `env`; an error naming it when there is none.
fn binding<T: JsCast>(env: &Env, name: &str) -> Result<T> {
    lookup(env, name).ok_or_else(|| not_bound(name))
}

/// The KV namespace, or the error that it is not bound.
fn kv(hot: &HotBindings) -> Result<&KvNamespace> {
    hot.kv.as_ref().ok_or_else(|| not_bound(KV_BINDING))
}

/// The analytics dataset, if bound (without it the Worker writes no data points).
pub fn analytics(env: &Env) -> Option<AnalyticsEngineDataset> {
    with_hot(env, |hot| hot.analytics.clone())
}

/// An object with one property.
fn options(name: &str, value: &JsValue) -> Result<Object> {
    let object = Object::new();
    Reflect::set(&object, &JsValue::from_str(name), value)?;
    Ok(object)
}

/// The value of `key` in the `PRICES` namespace, if it has one.
pub async fn kv_get(env: &Env, key: &str) -> Result<Option<Vec<u8>>> {
    let read = with_hot(env, |hot| {
        Ok::<_, Error>(kv(hot)?.get(key, &hot.array_buffer)?)
    })?;
    let value = JsFuture::from(read).await?;
    Ok((!value.is_null() && !value.is_undefined()).then(|| Uint8Array::new(&value).to_vec()))
}

/// Writes `value` to `key` in the `PRICES` namespace, expiring after `ttl_secs` (KV's minimum is 60).
pub async fn kv_put(env: &Env, key: &str, value: &[u8], ttl_secs: u64) -> Result<()> {
    let options = options("expirationTtl", &JsValue::from_f64(ttl_secs as f64))?;
    let write = with_hot(env, |hot| {
        Ok::<_, Error>(kv(hot)?.put(key, &Uint8Array::from(value), &options)?)
    })?;
    JsFuture::from(write).await?;
    Ok(())
}

/// Whether the rate limiter bound as `name` lets one more request of `key` through.
pub async fn within_limit(env: &Env, name: &str, key: &str) -> Result<bool> {
    let limiter: RateLimit = binding(env, name)?;
    let options = options("key", &JsValue::from_str(key))?;
    let outcome = JsFuture::from(limiter.limit(&options)?).await?;
    Ok(Reflect::get(&outcome, &JsValue::from_str("success"))?.is_truthy())
}
