//! The Workers KV namespace and the rate limiters, called directly: `worker`'s wrappers pass every
//! option and outcome through `serde_wasm_bindgen`, several KB of the wasm and a conversion on every
//! KV read of a hit, for a key, a number of seconds and one boolean.

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{Object, Promise, Reflect, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Env, Error, Result};

/// The binding of the KV namespace (`[[kv_namespaces]]` in `wrangler.toml`) that [`kv_get`] and
/// [`kv_put`] read and write.
const KV_BINDING: &str = "PRICES";

#[wasm_bindgen]
extern "C" {
    /// A KV namespace binding.
    type KvNamespace;
    #[wasm_bindgen(method, catch)]
    fn get(this: &KvNamespace, key: &str, kind: &str) -> std::result::Result<Promise, JsValue>;
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

/// The binding `name` of `env`; an error naming it when there is none.
fn binding<T: JsCast>(env: &Env, name: &str) -> Result<T> {
    let value = Reflect::get(env.as_ref(), &JsValue::from_str(name))?;
    if value.is_undefined() {
        return Err(Error::RustError(format!("no binding {name}")));
    }
    Ok(value.unchecked_into())
}

/// An object with one property.
fn options(name: &str, value: &JsValue) -> Result<Object> {
    let object = Object::new();
    Reflect::set(&object, &JsValue::from_str(name), value)?;
    Ok(object)
}

/// The value of `key` in the `PRICES` namespace, if it has one.
pub async fn kv_get(env: &Env, key: &str) -> Result<Option<Vec<u8>>> {
    let namespace: KvNamespace = binding(env, KV_BINDING)?;
    let value = JsFuture::from(namespace.get(key, "arrayBuffer")?).await?;
    Ok((!value.is_null() && !value.is_undefined()).then(|| Uint8Array::new(&value).to_vec()))
}

/// Writes `value` to `key` in the `PRICES` namespace, expiring after `ttl_secs` (KV's minimum is 60).
pub async fn kv_put(env: &Env, key: &str, value: &[u8], ttl_secs: u64) -> Result<()> {
    let namespace: KvNamespace = binding(env, KV_BINDING)?;
    let options = options("expirationTtl", &JsValue::from_f64(ttl_secs as f64))?;
    JsFuture::from(namespace.put(key, &Uint8Array::from(value), &options)?).await?;
    Ok(())
}

/// Whether the rate limiter bound as `name` lets one more request of `key` through.
pub async fn within_limit(env: &Env, name: &str, key: &str) -> Result<bool> {
    let limiter: RateLimit = binding(env, name)?;
    let options = options("key", &JsValue::from_str(key))?;
    let outcome = JsFuture::from(limiter.limit(&options)?).await?;
    Ok(Reflect::get(&outcome, &JsValue::from_str("success"))?.is_truthy())
}
