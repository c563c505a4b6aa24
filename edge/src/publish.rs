//! Publishing a request through the Kafka REST proxy, with a bounded wait, at most once per product per
//! few seconds: worldwide through the product's gate ([`crate::gate_client`]) where there is one, and
//! within an isolate through a map claimed before the first await, which makes a burst of concurrent
//! reads of one isolate ask (or publish) once.
//!
//! A publish whose answer is late is not abandoned: the request is out and the proxy may yet take it.
//! Its exchange is finished after the client's answer (`ctx.wait_until`), its claim kept meanwhile, so
//! that the connection is read to the end and kept for the next publish. Dropped mid-answer, every late
//! publish cost a new connection, and the Strimzi bridge starts a Kafka producer for each: under a
//! burst of refreshes the bridge slowed, more publishes were late, and it spiralled (the early-refresh
//! drill: 1,034 late publishes, 1,260 new connections in a minute, half the hottest reads stale).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use futures::future::{select, Either};
use pricefront_core::edge_rules::PublishedFor;
use pricefront_core::gate::{AskReason, Verdict, COALESCE_MS};
use pricefront_core::rest_proxy::{produce_url, ProduceError};
use pricefront_core::{PriceRequest, ProductId, TraceContext, UnixMillis};
use worker::{Context, Delay, Env, Headers};

use crate::config::Config;
use crate::gate_client;
use crate::isolate;
use crate::outbound;

/// Claims the publish of `product` in this isolate for `reason`, unless a claim is still running: the
/// claim's end (ms), which names it for [`release`]. Synchronous, so that of a burst of concurrent
/// reads exactly one wins (an isolate runs one thing at a time). The claims are
/// [`crate::isolate::claims`], bounded like every map of the isolate.
fn claim(product: ProductId, now_ms: UnixMillis, reason: PublishedFor) -> Option<UnixMillis> {
    isolate::claims(|claims| {
        if claims.get(&product, now_ms).is_some() {
            return None;
        }
        let until = now_ms + COALESCE_MS;
        claims.insert(product, reason, until, now_ms);
        Some(until)
    })
}

/// Why this isolate published `product` in the last few seconds, if it did (its claim still runs).
/// Only deduplication asks whether; the tier a read asks first depends on why
/// ([`pricefront_core::edge_rules::first_tier`]).
pub fn published_for(product: ProductId, now_ms: UnixMillis) -> Option<PublishedFor> {
    isolate::claims(|claims| claims.get(&product, now_ms).copied())
}

/// Whether this isolate published `product` in the last few seconds, for a miss: a refresh's claim
/// becomes a miss's (the product is missing now: its reads are polls, Redis first with kv+redis).
pub fn claimed_here(product: ProductId, now_ms: UnixMillis) -> bool {
    isolate::claims(|claims| match claims.get_mut(&product, now_ms) {
        Some(reason) => {
            *reason = PublishedFor::Miss;
            true
        }
        None => false,
    })
}

/// Records that a miss of `product` is pending elsewhere (the gate said a publish is under way): its
/// reads here are polls of it, which ask Redis first with kv+redis.
pub fn note_pending_miss(product: ProductId, now_ms: UnixMillis) {
    if !claimed_here(product, now_ms) {
        claim(product, now_ms, PublishedFor::Miss);
    }
}

/// Gives the claim ending at `until` back after a failed publish, so that the next read tries again (a
/// newer claim of the product, made after this one ran out, stays).
fn release(product: ProductId, until: UnixMillis) {
    isolate::claims(|claims| claims.remove_if_expires_at(&product, until));
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
        timeout_ms: u64,
    },
    /// The REST proxy answered, but did not take the record.
    #[error(transparent)]
    Produce(#[from] ProduceError),
}

/// Publishes a refresh of `product`, whose cache holds a result computed at `have_computed_at_ms`,
/// joined to `trace` (the edge's span of the read that asked), in the background (after the answer),
/// so waiting for the proxy's answer as long as the runtime lets it. Once per product: the isolate's
/// claim first (unless `ISOLATE_CLAIM` is off), then the gate's verdict, when there is a gate (one that
/// cannot be asked leaves the isolate's claim alone deciding); nothing is sent when one is under way.
/// The error says why, for the logs.
pub async fn publish_refresh(
    config: &Config,
    env: &Env,
    product: ProductId,
    have_computed_at_ms: UnixMillis,
    now_ms: UnixMillis,
    trace: &TraceContext,
) -> Result<(), PublishError> {
    // Without a gate the isolate's claim is the only coalescing there is, whatever ISOLATE_CLAIM says.
    let filter = config.isolate_claim || config.gate.is_none();
    if filter && published_for(product, now_ms).is_some() {
        return Ok(());
    }
    let until = claim(product, now_ms, PublishedFor::Refresh);
    let mut gate_claim = None;
    if let Some(gate) = &config.gate {
        let reason = AskReason::Refresh {
            have_computed_at_ms,
        };
        match gate_client::ask(env, gate, product, reason, 0).await {
            Ok(Verdict::Publish { claim }) => gate_claim = Some(claim),
            Ok(_) => return Ok(()),
            Err(error) => worker::console_warn!("refresh of {product} without its gate: {error}"),
        }
    }
    let published = async { exchange(config, product, now_ms, trace)?.await }.await;
    if let Err(error) = published {
        give_back(config, env, product, until, gate_claim).await;
        return Err(error);
    }
    Ok(())
}

/// Publishes a request for `product` for a client waiting on it, after the gate gave `gate_claim` (or,
/// without a gate, unless this isolate published it in the last few seconds: then nothing). The client
/// waits at most `PUBLISH_TIMEOUT_MS`: a later answer is awaited after the client's (`ctx`), the claims
/// kept until it comes and given back if it says the record was not taken.
pub async fn publish_miss(
    config: &Rc<Config>,
    env: &Env,
    ctx: &Context,
    product: ProductId,
    now_ms: UnixMillis,
    trace: &TraceContext,
    gate_claim: Option<UnixMillis>,
) -> Result<(), PublishError> {
    let until = match claim(product, now_ms, PublishedFor::Miss) {
        Some(until) => Some(until),
        // Without a gate the isolate's claim decides; with one, the gate's claim did.
        None if gate_claim.is_none() => return Ok(()),
        None => None,
    };
    let exchange = match exchange(config, product, now_ms, trace) {
        Ok(exchange) => exchange,
        Err(error) => {
            give_back(config, env, product, until, gate_claim).await;
            return Err(error);
        }
    };
    let timeout_ms = config.publish_timeout.as_millis() as u64;
    match select(exchange, Delay::from(config.publish_timeout)).await {
        Either::Left((Ok(()), _)) => Ok(()),
        Either::Left((Err(error), _)) => {
            give_back(config, env, product, until, gate_claim).await;
            Err(error)
        }
        Either::Right((_, exchange)) => {
            let (config, env) = (config.clone(), env.clone());
            ctx.wait_until(async move {
                if let Err(error) = exchange.await {
                    worker::console_warn!("late publish of {product} failed: {error}");
                    give_back(&config, &env, product, until, gate_claim).await;
                }
            });
            Err(PublishError::TimedOut { timeout_ms })
        }
    }
}

/// Gives back what a failed publish claimed: this isolate's claim ending at `until`, and the gate's.
async fn give_back(
    config: &Config,
    env: &Env,
    product: ProductId,
    until: Option<UnixMillis>,
    gate_claim: Option<UnixMillis>,
) {
    if let Some(until) = until {
        release(product, until);
    }
    if let (Some(gate), Some(claim)) = (&config.gate, gate_claim) {
        gate_client::release(env.clone(), gate.clone(), product, claim).await;
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
    if let Some(authorization) = &config.proxy_authorization {
        headers.set("Authorization", authorization)?;
    }
    let url = produce_url(&config.proxy_url, &call);
    let body = call.body.into();
    let request = outbound::request("POST", &url, Some(&headers), Some(&body))?;
    let api = config.proxy_api.clone();
    Ok(Box::pin(async move {
        let answer = outbound::send(&request)
            .await
            .map_err(PublishError::Unreachable)?;
        api.parse_reply(answer.status, &answer.body)?;
        Ok(())
    }))
}
