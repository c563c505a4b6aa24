//! Publishing a request through the Kafka REST proxy, with a bounded wait, and at most once per product
//! per few seconds: within an isolate, a map claimed before the first await makes a burst of concurrent
//! reads publish once; across the isolates of a location, the Cache API remembers recent publishes.
//!
//! A publish whose answer is late is not abandoned: the request is out and the proxy may yet take it.
//! Its exchange is finished after the client's answer (`ctx.wait_until`), its claim kept meanwhile, so
//! that the connection is read to the end and kept for the next publish. Dropped mid-answer, every late
//! publish cost a new connection, and the Strimzi bridge starts a Kafka producer for each: under a
//! burst of refreshes the bridge slowed, more publishes were late, and it spiralled (the early-refresh
//! drill: 1,034 late publishes, 1,260 new connections in a minute, half the hottest reads stale).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use futures::future::{select, Either};
use pricefront_core::edge_rules::PublishedFor;
use pricefront_core::rest_proxy::{produce_url, ProduceError};
use pricefront_core::{PriceRequest, ProductId, TraceContext, UnixMillis};
use worker::{Cache, Context, Delay, Fetch, Headers, Method, Request, RequestInit, Response};

use crate::config::Config;

/// How long a publish of one product suppresses the next at this location.
const COALESCE_SECS: u32 = 5;

/// Above this many claims, expired ones are dropped (the map stays small under a flood of ids).
const MAX_CLAIMS: usize = 10_000;

thread_local! {
    /// This isolate's recent publishes: product → until when (ms) it suppresses another, and why it
    /// was published (which tier its next reads ask first: [`published_for`]).
    static CLAIMS: RefCell<HashMap<ProductId, (UnixMillis, PublishedFor)>> =
        RefCell::new(HashMap::new());
}

/// Claims the publish of `product` in this isolate for `reason`, unless a claim is still running: the
/// claim's end (ms), which names it for [`release`]. Synchronous, so that of a burst of concurrent
/// reads exactly one wins (an isolate runs one thing at a time).
fn claim(product: ProductId, now_ms: UnixMillis, reason: PublishedFor) -> Option<UnixMillis> {
    CLAIMS.with_borrow_mut(|claims| {
        if claims
            .get(&product)
            .is_some_and(|&(until, _)| until > now_ms)
        {
            return None;
        }
        if claims.len() >= MAX_CLAIMS {
            claims.retain(|_, (until, _)| *until > now_ms);
        }
        let until = now_ms + u64::from(COALESCE_SECS) * 1000;
        claims.insert(product, (until, reason));
        Some(until)
    })
}

/// Why this isolate published `product` in the last few seconds, if it did (its claim still runs).
/// Only deduplication asks whether; the tier a read asks first depends on why
/// ([`pricefront_core::edge_rules::first_tier`]).
pub fn published_for(product: ProductId, now_ms: UnixMillis) -> Option<PublishedFor> {
    CLAIMS.with_borrow(|claims| {
        claims
            .get(&product)
            .filter(|(until, _)| *until > now_ms)
            .map(|&(_, reason)| reason)
    })
}

/// Gives the claim ending at `until` back after a failed publish, so that the next read tries again (a
/// newer claim of the product, made after this one ran out, stays).
fn release(product: ProductId, until: UnixMillis) {
    CLAIMS.with_borrow_mut(|claims| {
        if claims.get(&product).is_some_and(|&(at, _)| at == until) {
            claims.remove(&product);
        }
    });
}

/// Why a request was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The request to the REST proxy could not be made, or its answer not read.
    #[error("{0}")]
    Request(#[from] worker::Error),
    /// The REST proxy could not be reached.
    #[error("REST proxy unreachable: {0}")]
    Unreachable(worker::Error),
    /// The REST proxy gave no answer within `PUBLISH_TIMEOUT_MS`.
    #[error("REST proxy gave no answer within {timeout_ms} ms")]
    TimedOut {
        /// The timeout, in milliseconds.
        timeout_ms: u128,
    },
    /// The REST proxy answered, but did not take the record.
    #[error(transparent)]
    Produce(#[from] ProduceError),
}

/// Whether [`publish_coalesced`] published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// It published now: remember it at this location ([`remember_published`]) once the answer is out.
    Now,
    /// One was published here in the last few seconds: nothing was sent.
    Already,
}

/// The Cache API key that remembers a recent publish of `product` at this location.
fn marker(product: ProductId) -> String {
    format!("https://pricefront.internal/published/{product}")
}

/// Whether a request for `product` went out from this location in the last few seconds: this
/// isolate's claim, or another isolate's marker in the Cache API (then claimed here too, so that the
/// next read of this isolate asks nothing), for `reason` (a miss's claim stays one). A read that finds one publishes nothing, so the guards of a
/// new miss (backlog, rate limit) do not apply to it: a client polling its pending request is not
/// making new misses.
pub async fn already_published(
    product: ProductId,
    now_ms: UnixMillis,
    reason: PublishedFor,
) -> bool {
    if published_for(product, now_ms).is_some() {
        if reason == PublishedFor::Miss {
            // A refresh's claim, and now the product is missing: its reads are polls from here on.
            CLAIMS.with_borrow_mut(|claims| {
                if let Some(claim) = claims.get_mut(&product) {
                    claim.1 = PublishedFor::Miss;
                }
            });
        }
        return true;
    }
    let marked = matches!(
        Cache::default().get(marker(product).as_str(), false).await,
        Ok(Some(_))
    );
    if marked {
        claim(product, now_ms, reason);
    }
    marked
}

/// Publishes a request for `product` unless one was published here in the last few seconds, joined
/// to `trace` (the edge's span of the read that asked), in the background (after the answer: a refresh),
/// so waiting for the proxy's answer as long as the runtime lets it. The error says why, for the logs.
pub async fn publish_coalesced(
    config: &Config,
    product: ProductId,
    now_ms: UnixMillis,
    trace: &TraceContext,
) -> Result<Published, PublishError> {
    if already_published(product, now_ms, PublishedFor::Refresh).await {
        return Ok(Published::Already);
    }
    let Some(until) = claim(product, now_ms, PublishedFor::Refresh) else {
        return Ok(Published::Already);
    };
    let published = async { exchange(config, product, now_ms, trace)?.await }.await;
    if let Err(error) = published {
        release(product, until);
        return Err(error);
    }
    Ok(Published::Now)
}

/// Publishes a request for `product` for a client waiting on it, after [`already_published`] said none
/// went out, unless a concurrent read of this isolate claimed it meanwhile (then `Already`). The client
/// waits at most `PUBLISH_TIMEOUT_MS`: a later answer is awaited after the client's (`ctx`), the claim
/// kept until it comes, and remembered or given back as it says.
pub async fn publish_unless_claimed(
    config: &Config,
    ctx: &Context,
    product: ProductId,
    now_ms: UnixMillis,
    trace: &TraceContext,
) -> Result<Published, PublishError> {
    let Some(until) = claim(product, now_ms, PublishedFor::Miss) else {
        return Ok(Published::Already);
    };
    let exchange =
        exchange(config, product, now_ms, trace).inspect_err(|_| release(product, until))?;
    let timeout = Delay::from(config.publish_timeout);
    match select(exchange, timeout).await {
        Either::Left((Ok(()), _)) => Ok(Published::Now),
        Either::Left((Err(error), _)) => {
            release(product, until);
            Err(error)
        }
        Either::Right((_, exchange)) => {
            ctx.wait_until(finish_late(exchange, product, until));
            Err(PublishError::TimedOut {
                timeout_ms: config.publish_timeout.as_millis(),
            })
        }
    }
}

/// Finishes a publish whose answer came after its client's: remembered at this location when the proxy
/// took it, its claim given back when not.
async fn finish_late(exchange: Exchange, product: ProductId, until: UnixMillis) {
    match exchange.await {
        Ok(()) => remember_published(product).await,
        Err(error) => {
            release(product, until);
            worker::console_warn!("late publish of {product} failed: {error}");
        }
    }
}

/// Remembers at this location, for a few seconds, that `product` was just published, so that other
/// isolates here do not publish it again. Run after the answer (`ctx.wait_until`): it delays nobody.
pub async fn remember_published(product: ProductId) {
    if let Ok(mut response) = Response::ok("published") {
        let _ = response
            .headers_mut()
            .set("Cache-Control", &format!("max-age={COALESCE_SECS}"));
        let _ = Cache::default()
            .put(marker(product).as_str(), response)
            .await;
    }
}

/// One produce request and its answer, read to the end (so that its connection can serve the next).
type Exchange = Pin<Box<dyn Future<Output = Result<(), PublishError>>>>;

/// The produce request of `product`'s message, ready to be sent: awaiting it sends it and reads the
/// proxy's answer.
fn exchange(
    config: &Config,
    product: ProductId,
    now_ms: UnixMillis,
    trace: &TraceContext,
) -> Result<Exchange, PublishError> {
    let request_id = format!(
        "edge-{now_ms}-{:08x}",
        (worker::js_sys::Math::random() * f64::from(u32::MAX)) as u32
    );
    let message =
        PriceRequest::new(product, request_id, now_ms).with_traceparent(trace.to_string());
    let call = config.proxy_api.produce_call(&config.topic, &message);
    let headers = Headers::new();
    headers.set("Content-Type", call.content_type)?;
    headers.set("Accept", call.accept)?;
    if let Some((user, password)) = &config.proxy_basic_auth {
        headers.set(
            "Authorization",
            &format!("Basic {}", BASE64.encode(format!("{user}:{password}"))),
        )?;
    }
    let url = produce_url(&config.proxy_url, &call);
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(call.body.into()));
    let request = Request::new_with_init(&url, &init)?;
    let api = config.proxy_api.clone();
    Ok(Box::pin(async move {
        let mut response = Fetch::Request(request)
            .send()
            .await
            .map_err(PublishError::Unreachable)?;
        let status = response.status_code();
        let body = response.bytes().await?;
        api.parse_reply(status, &body)?;
        Ok(())
    }))
}
