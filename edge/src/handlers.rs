//! One function per route. Each answers `Ok` with its response, or `Err` with an [`EdgeError`], which
//! `lib.rs` turns into the problem document.

use pricefront_core::backlog::BacklogReport;
use pricefront_core::edge_rules::{
    authorize_fill, decide_read_of, etag_of, fill_comparison, if_none_match, location,
    rebase_to_clock, FillAuthorization, Pending, PublishedFor, ReadDecision, RETRY_AFTER_SECS,
};
use pricefront_core::miss_guard::Refusal;
use pricefront_core::newest_wins::FILL_OUTCOME_HEADER;
use pricefront_core::stored::Stored;
use pricefront_core::{Freshness, ProductId, TraceContext, UnixMillis};
use std::rc::Rc;
use std::time::Duration;

use pricefront_core::early_refresh::refresh_early;
use pricefront_core::prefer_wait::{pauses, preference_applied};
use worker::{Context, Date, Delay, Env, Request, Response};

use crate::cache::{self, Lookup};
use crate::config::Config;
use crate::error::EdgeError;
use crate::miss_guard;
use crate::publish::{
    already_published, publish_coalesced, publish_unless_claimed, remember_published, Published,
};
use crate::reply;

/// What a handler answers.
type Result<T, E = EdgeError> = std::result::Result<T, E>;

fn now_ms() -> UnixMillis {
    Date::now().as_millis()
}

/// This isolate's settings; a setting that cannot work is a `/problems/misconfigured`.
fn config(env: &Env) -> Result<Rc<Config>> {
    Config::of_isolate(env).map_err(EdgeError::Misconfigured)
}

/// `GET /v1/prices/{productId}`: the cached comparison, or a queued request.
pub async fn get_prices(
    request: &Request,
    env: &Env,
    ctx: Context,
    product: ProductId,
    trace: &TraceContext,
) -> Result<Response> {
    let config = config(env)?;
    let now = now_ms();
    if !miss_guard::known(env, &config, product, now).await {
        return Err(refused(Refusal::UnknownProduct, product, &config));
    }
    let Lookup { stored, write_back } = cache::get(&config, env, product, now).await?;
    if let (Some(kv_had), Some(stored)) = (write_back, &stored) {
        let (config, env, stored) = (config.clone(), env.clone(), stored.clone());
        ctx.wait_until(async move { cache::write_back(&config, &env, &stored, kv_had, now).await });
    }
    match (
        decide_read_of(stored.as_ref().map(|c| c.header.lifetime()), now),
        stored,
    ) {
        (ReadDecision::Fresh { max_age_secs }, Some(stored)) => {
            let header = &stored.header;
            // The draw only when there is a cost to weigh (a JS call saved on every other hit).
            let recompute_ms = header.fan_out_ms.unwrap_or(0);
            if recompute_ms > 0
                && refresh_early(
                    now,
                    header.fresh_until_ms,
                    recompute_ms,
                    config.early_refresh_beta,
                    worker::js_sys::Math::random(),
                )
            {
                ctx.wait_until(refresh_in_background(
                    config.clone(),
                    product,
                    now,
                    *trace,
                    env.clone(),
                ));
            }
            served(
                request,
                &stored,
                Freshness::Fresh,
                &format!("public, max-age={max_age_secs}"),
            )
        }
        (ReadDecision::Stale, Some(stored)) => {
            ctx.wait_until(refresh_in_background(
                config.clone(),
                product,
                now,
                *trace,
                env.clone(),
            ));
            served(request, &stored, Freshness::Stale, "no-cache")
        }
        _ => queued(request, env, &ctx, &config, product, now, trace).await,
    }
}

/// Publishes a refresh of `product` (coalesced), after the answer: a stale hit, or an early refresh.
async fn refresh_in_background(
    config: Rc<Config>,
    product: ProductId,
    now: UnixMillis,
    trace: TraceContext,
    env: Env,
) {
    // A pipeline far behind takes no refreshes either: the stale result is served meanwhile.
    if !miss_guard::pipeline_has_room(&env, &config, now).await {
        return;
    }
    match publish_coalesced(&config, product, now, &trace).await {
        Ok(Published::Now) => remember_published(product).await,
        Ok(Published::Already) => {}
        Err(error) => worker::console_warn!("refresh of {product} not published: {error}"),
    }
}

/// A miss: publish a request (unless one went out here in the last few seconds: then this is a poll of
/// it, which the miss guards do not count), then either wait for its result (`Prefer: wait` granted
/// `wait` seconds) or answer 202 at once; 503 when the REST proxy cannot take it.
async fn queued(
    request: &Request,
    env: &Env,
    ctx: &Context,
    config: &Config,
    product: ProductId,
    now: UnixMillis,
    trace: &TraceContext,
) -> Result<Response> {
    let published = if already_published(product, now, PublishedFor::Miss).await {
        // A poll of a pending request: nothing new is published, so no guard applies.
        Published::Already
    } else {
        if let Some(refusal) = miss_guard::refusal(request, env, config, now).await {
            return Err(refused(refusal, product, config));
        }
        publish_unless_claimed(config, ctx, product, now, trace)
            .await
            .map_err(|source| EdgeError::QueueUnavailable { product, source })?
    };
    let wait = config.granted_wait(request.headers().get("Prefer")?.as_deref());
    if published == Published::Now {
        ctx.wait_until(remember_published(product));
    }
    if let Some(secs) = wait {
        if let Some(mut response) = wait_for_result(request, env, config, product, secs).await? {
            response
                .headers_mut()
                .set("Preference-Applied", &preference_applied(secs))?;
            return Ok(response);
        }
    }
    let mut response = reply::json(202, &Pending::of(product))?;
    let headers = response.headers_mut();
    headers.set("Location", &location(product))?;
    headers.set("Retry-After", &RETRY_AFTER_SECS.to_string())?;
    headers.set("Cache-Control", "no-store")?;
    if let Some(secs) = wait {
        headers.set("Preference-Applied", &preference_applied(secs))?;
    }
    Ok(response)
}

/// Watches the consistent tier (Redis where there is one, else KV) for `product`'s result for up to
/// `secs` seconds, backing off between reads ([`pauses`]); the answer once it is there, `None` when
/// time ran out (a read that fails counts as nothing there yet). Ends early when the client has gone
/// (the runtime cancels the request too).
async fn wait_for_result(
    request: &Request,
    env: &Env,
    config: &Config,
    product: ProductId,
    secs: u64,
) -> Result<Option<Response>> {
    let signal = request.inner().signal();
    for pause in pauses(Duration::from_secs(secs)) {
        Delay::from(pause).await;
        if signal.aborted() {
            return Ok(None);
        }
        // The request is published: a read that fails is skipped, not the client's 202.
        let stored = match cache::get_consistent(config, env, product).await {
            Ok(Some(stored)) => stored,
            Ok(None) => continue,
            Err(error) => {
                worker::console_warn!(
                    "waiting for {product}: the cache could not be read: {error}"
                );
                continue;
            }
        };
        let now = now_ms();
        match decide_read_of(Some(stored.header.lifetime()), now) {
            ReadDecision::Fresh { max_age_secs } => {
                let cache_control = format!("public, max-age={max_age_secs}");
                return served(request, &stored, Freshness::Fresh, &cache_control).map(Some);
            }
            ReadDecision::Stale => {
                return served(request, &stored, Freshness::Stale, "no-cache").map(Some)
            }
            ReadDecision::Miss => {}
        }
    }
    Ok(None)
}

/// A 200 with the stored comparison served as `freshness` (its bytes as stored, with the freshness
/// spliced in), or a 304 when `If-None-Match` matches its entity tag; both with the tag and
/// `cache_control` (RFC 9110 §13.1.2, §15.4.5).
fn served(
    request: &Request,
    stored: &Stored,
    freshness: Freshness,
    cache_control: &str,
) -> Result<Response> {
    let tag = etag_of(
        stored.header.product_id,
        stored.header.computed_at_ms,
        freshness,
    );
    let not_modified = request
        .headers()
        .get("If-None-Match")?
        .is_some_and(|value| if_none_match(&value, &tag));
    let mut response = if not_modified {
        Response::empty()?.with_status(304)
    } else {
        reply::json_bytes(200, stored.served_body(freshness))?
    };
    response.headers_mut().set("Cache-Control", cache_control)?;
    response.headers_mut().set("ETag", &tag)?;
    Ok(response)
}

/// The error of a miss that may not publish: nothing was published.
fn refused(refusal: Refusal, product: ProductId, config: &Config) -> EdgeError {
    match refusal {
        Refusal::UnknownProduct => EdgeError::UnknownProduct(product),
        Refusal::Backlogged => EdgeError::Backlogged,
        Refusal::RateLimited => EdgeError::RateLimited {
            period_secs: config.miss_limit_period_secs,
        },
    }
}

/// `PUT /internal/v1/backlog`: a consumer reports the lag of its partitions; merged into the report in
/// KV (the Worker's backpressure reads it). Same bearer token as the fill endpoint.
pub async fn fill_backlog(mut request: Request, env: &Env) -> Result<Response> {
    let config = config(env)?;
    authorize(&request, &config)?;
    // A body that could not be read is the connection's failure, not the consumer's: 503, retried.
    let body = request
        .bytes()
        .await
        .map_err(|_| EdgeError::BodyUnreadable)?;
    let report = BacklogReport::from_json(&body).ok_or(EdgeError::InvalidBacklog)?;
    miss_guard::store_backlog_report(env, &config, &report, now_ms())
        .await
        .map_err(EdgeError::WriteFailed)?;
    Ok(Response::empty()?.with_status(204))
}

/// Lets a fill request with the right token go on; the error of one without.
fn authorize(request: &Request, config: &Config) -> Result<()> {
    let authorization = request.headers().get("Authorization")?;
    match authorize_fill(config.fill_token.as_deref(), authorization.as_deref()) {
        FillAuthorization::Allowed => Ok(()),
        FillAuthorization::Unauthorized => Err(EdgeError::Unauthorized),
        FillAuthorization::NotConfigured => Err(EdgeError::Misconfigured(
            "the fill endpoint has no token: set the FILL_TOKEN secret \
             (wrangler secret put FILL_TOKEN) to the consumers' FILL_TOKEN"
                .into(),
        )),
    }
}

/// `PUT /internal/v1/prices/{productId}`: the consumer stores a finished comparison. The newer
/// `computedAtMs` wins, and a comparison without offers never replaces a servable one with offers: such
/// a comparison is accepted (204) but not stored, and the 204 says why in [`FILL_OUTCOME_HEADER`]. One
/// computed after this edge's now (the consumer's clock runs ahead) is moved to now
/// ([`rebase_to_clock`]). A write the cache refused (KV's one write a second per key) is a 503 with
/// `Retry-After`, which the consumer retries.
pub async fn fill_prices(mut request: Request, env: &Env, product: ProductId) -> Result<Response> {
    let config = config(env)?;
    authorize(&request, &config)?;
    let body = request.bytes().await.ok();
    let mut comparison = fill_comparison(body.as_deref(), product)?;
    let now = now_ms();
    rebase_to_clock(&mut comparison, now);
    let decision = cache::put(&config, env, &comparison, now)
        .await
        .map_err(EdgeError::WriteFailed)?;
    let response = Response::empty()?.with_status(204);
    if let Some(outcome) = decision.fill_outcome() {
        response.headers().set(FILL_OUTCOME_HEADER, outcome)?;
    }
    Ok(response)
}
