//! Publishing a request through the Kafka REST proxy, with a bounded wait, and at most once per product
//! per few seconds from this location (the Cache API remembers recent publishes).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use futures::future::{select, Either};
use pricefront_core::{PriceRequest, ProductId, UnixMillis};
use worker::{Cache, Delay, Fetch, Headers, Method, Request, RequestInit, Response};

use crate::config::Config;

/// How long a publish of one product suppresses the next at this location.
const COALESCE_SECS: u32 = 5;

/// Publishes a request for `product` unless one was published here in the last few seconds.
/// The error is a human-readable reason, for logs and the 503's detail.
pub async fn publish_coalesced(
    config: &Config,
    product: ProductId,
    now_ms: UnixMillis,
) -> Result<(), String> {
    let cache = Cache::default();
    let marker = format!("https://pricefront.internal/published/{product}");
    if let Ok(Some(_)) = cache.get(marker.as_str(), false).await {
        return Ok(());
    }
    publish(config, product, now_ms).await?;
    if let Ok(mut response) = Response::ok("published") {
        let _ = response
            .headers_mut()
            .set("Cache-Control", &format!("max-age={COALESCE_SECS}"));
        let _ = cache.put(marker.as_str(), response).await;
    }
    Ok(())
}

async fn publish(config: &Config, product: ProductId, now_ms: UnixMillis) -> Result<(), String> {
    let request_id = format!(
        "edge-{now_ms}-{:08x}",
        (worker::js_sys::Math::random() * f64::from(u32::MAX)) as u32
    );
    let message = PriceRequest::new(product, request_id, now_ms);
    let call = config.proxy_api.produce_call(&config.topic, &message);
    let headers = Headers::new();
    let set = |name: &str, value: &str| headers.set(name, value).map_err(|e| e.to_string());
    set("Content-Type", call.content_type)?;
    set("Accept", call.accept)?;
    if let Some((user, password)) = &config.proxy_basic_auth {
        set(
            "Authorization",
            &format!("Basic {}", BASE64.encode(format!("{user}:{password}"))),
        )?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(call.body.into()));
    let url = format!("{}{}", config.proxy_url.trim_end_matches('/'), call.path);
    let request = Request::new_with_init(&url, &init).map_err(|e| e.to_string())?;
    let sending = Box::pin(async move {
        let mut response = Fetch::Request(request)
            .send()
            .await
            .map_err(|e| format!("REST proxy unreachable: {e}"))?;
        let status = response.status_code();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, body))
    });
    let timeout = Delay::from(config.publish_timeout);
    let (status, body) = match select(sending, timeout).await {
        Either::Left((result, _)) => result?,
        Either::Right(_) => {
            return Err(format!(
                "REST proxy gave no answer within {:?}",
                config.publish_timeout
            ))
        }
    };
    config
        .proxy_api
        .parse_reply(status, &body)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
