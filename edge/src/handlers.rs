//! One function per route. Each answers `Ok` with its response, or `Err` with an [`EdgeError`], which
//! `lib.rs` turns into the problem document.

use pricefront_core::backlog::BacklogReport;
use pricefront_core::edge_event::EdgeEvent;
use pricefront_core::edge_rules::{
    authorize_fill, decide_read_of, etag_of, fill_comparison, if_none_match, location,
    rebase_to_clock, FillAuthorization, Pending, ReadDecision, RETRY_AFTER_SECS,
};
use pricefront_core::gate::{AskReason, Verdict};
use pricefront_core::miss_guard::Refusal;
use pricefront_core::newest_wins::FILL_OUTCOME_HEADER;
use pricefront_core::stored::Stored;
use pricefront_core::{Freshness, ProductId, TraceContext, UnixMillis};
use std::cell::Cell;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use futures::future::{select, Either};
use pricefront_core::early_refresh::refresh_early;
use pricefront_core::prefer_wait::{pauses, preference_applied};
use worker::{Context, Delay, Env, Response};

use crate::cache::{self, Lookup};
use crate::clock::now_ms;
use crate::config::{CacheBackend, Config, GateSettings};
use crate::error::EdgeError;
use crate::gate_client;
use crate::incoming::Incoming;
use crate::isolate;
use crate::miss_guard;
use crate::publish::{claimed_here, note_pending_miss, publish_miss, publish_refresh};
use crate::reply;

/// What a handler answers.
type Result<T, E = EdgeError> = std::result::Result<T, E>;

/// This isolate's settings; a setting that cannot work is a `/problems/misconfigured`.
fn config(env: &Env) -> Result<Rc<Config>> {
    isolate::config(env).map_err(EdgeError::Misconfigured)
}

/// `GET /v1/prices/{productId}`: the cached comparison, or a queued request; with the event it was
/// (a hit and its freshness, a miss and whether it published).
pub async fn get_prices(
    request: &Incoming,
    env: &Env,
    ctx: &Context,
    product: ProductId,
    trace: &TraceContext,
) -> Result<(Response, EdgeEvent)> {
    let config = config(env)?;
    let now = now_ms();
    if !miss_guard::known(env, &config, product, now).await {
        return Err(refused(Refusal::UnknownProduct, product, &config));
    }
    let stored = match cache::get(&config, env, product, now).await? {
        Lookup::Miss => None,
        Lookup::Found(stored) => Some(stored),
        Lookup::FromRedis { stored, kv_had } => {
            let (config, env, written) = (config.clone(), env.clone(), stored.clone());
            ctx.wait_until(
                async move { cache::write_back(&config, &env, &written, kv_had, now).await },
            );
            Some(stored)
        }
    };
    match (
        decide_read_of(stored.as_ref().map(|c| c.header.lifetime()), now),
        stored,
    ) {
        (ReadDecision::Fresh { max_age_secs }, Some(stored)) => {
            let header = &stored.header;
            // The draw only when there is a cost to weigh (a JS call saved on every other hit).
            let recompute_ms = header.recompute_cost_ms();
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
                    env.clone(),
                    product,
                    header.computed_at_ms,
                    now,
                    *trace,
                ));
            }
            let cache_control = format!("public, max-age={max_age_secs}");
            let response = served(request, &stored, Freshness::Fresh, &cache_control)?;
            Ok((response, EdgeEvent::Hit(Freshness::Fresh)))
        }
        (ReadDecision::Stale, Some(stored)) => {
            ctx.wait_until(refresh_in_background(
                config.clone(),
                env.clone(),
                product,
                stored.header.computed_at_ms,
                now,
                *trace,
            ));
            let response = served(request, &stored, Freshness::Stale, "no-cache")?;
            Ok((response, EdgeEvent::Hit(Freshness::Stale)))
        }
        _ => queued(request, env, ctx, &config, product, now, trace).await,
    }
}

/// Publishes a refresh of `product`, whose cache holds a result computed at `have_computed_at_ms`,
/// after the answer: a stale hit, or an early refresh.
async fn refresh_in_background(
    config: Rc<Config>,
    env: Env,
    product: ProductId,
    have_computed_at_ms: UnixMillis,
    now: UnixMillis,
    trace: TraceContext,
) {
    // A pipeline far behind takes no refreshes either: the stale result is served meanwhile.
    if !miss_guard::pipeline_has_room(&env, &config, now).await {
        return;
    }
    if let Err(error) =
        publish_refresh(&config, &env, product, have_computed_at_ms, now, &trace).await
    {
        worker::console_warn!("refresh of {product} not published: {error}");
    }
}

/// A miss: publish a request unless one is under way (then this is a poll of it, which the miss
/// guards do not count), then either wait for its result (`Prefer: wait` granted `wait` seconds) or
/// answer 202 at once; 503 when the REST proxy cannot take it. With the product gate, the gate decides
/// whether to publish, answers with a fill it holds, and wakes the wait when the fill arrives; without
/// it (or when it cannot be reached), this isolate's claim decides and the wait watches the cache.
async fn queued(
    request: &Incoming,
    env: &Env,
    ctx: &Context,
    config: &Rc<Config>,
    product: ProductId,
    now: UnixMillis,
    trace: &TraceContext,
) -> Result<(Response, EdgeEvent)> {
    let wait = config.granted_wait(request.header("Prefer").as_deref());
    let wait_ms = wait.map_or(0, |secs| secs * 1000);
    let miss = Miss {
        request,
        env,
        ctx,
        config,
        product,
        now,
        trace,
        published: Cell::new(false),
    };
    let found = match &config.gate {
        Some(gate) => miss.at_gate(gate, wait_ms).await?,
        None => {
            miss.publish(None).await?;
            match wait {
                Some(secs) => wait_for_result(request, env, config, product, secs).await,
                None => None,
            }
        }
    };
    let (mut response, event) =
        match found.and_then(|stored| serve_found(request, &stored).transpose()) {
            Some(served) => {
                served.map(|(response, freshness)| (response, EdgeEvent::Hit(freshness)))?
            }
            None => {
                let mut response = reply::json(202, &Pending::of(product))?;
                let headers = response.headers_mut();
                headers.set("Location", &location(product))?;
                headers.set("Retry-After", &RETRY_AFTER_SECS.to_string())?;
                headers.set("Cache-Control", "no-store")?;
                let published = miss.published.get();
                (response, EdgeEvent::Miss { published })
            }
        };
    if let Some(secs) = wait {
        response
            .headers_mut()
            .set("Preference-Applied", &preference_applied(secs))?;
    }
    Ok((response, event))
}

/// One miss being answered.
struct Miss<'a> {
    request: &'a Incoming,
    env: &'a Env,
    ctx: &'a Context,
    config: &'a Rc<Config>,
    product: ProductId,
    now: UnixMillis,
    trace: &'a TraceContext,
    /// Set once this request has published the miss (not when it polled one under way).
    published: Cell<bool>,
}

impl Miss<'_> {
    /// Asks the product's gate, publishes when it says so, then waits up to `wait_ms` for the fill: what
    /// it holds, or `None` for a 202. A gate that cannot be asked leaves this isolate's claim deciding,
    /// and then the wait is one cache read.
    async fn at_gate(&self, gate: &GateSettings, wait_ms: u64) -> Result<Option<Stored>> {
        let (env, product) = (self.env, self.product);
        // With `kv` every fill passes through the edge, so the gate hears it: a pending miss waits in
        // the one call. With Redis behind, the cache is watched too ([`Miss::wait_for_fill`]).
        let in_the_ask = if matches!(self.config.cache, CacheBackend::Kv) {
            wait_ms
        } else {
            0
        };
        match gate_client::ask(env, gate, product, AskReason::Miss, in_the_ask).await {
            Ok(Verdict::Held(stored)) => Ok(Some(stored)),
            Ok(Verdict::Pending) => {
                // Its reads are polls of a pending miss from here on (Redis first, with kv+redis).
                note_pending_miss(product, self.now);
                if wait_ms == 0 || in_the_ask > 0 {
                    return Ok(None);
                }
                Ok(self.wait_for_fill(gate, wait_ms).await)
            }
            Ok(Verdict::Publish { claim }) => {
                self.publish(Some(claim)).await?;
                if wait_ms == 0 {
                    return Ok(None);
                }
                Ok(self.wait_for_fill(gate, wait_ms).await)
            }
            Err(error) => {
                worker::console_warn!("miss of {product} without its gate: {error}");
                self.publish(None).await?;
                if wait_ms == 0 {
                    return Ok(None);
                }
                Ok(consistent_read(self.config, env, product).await)
            }
        }
    }

    /// Waits up to `wait_ms` for the product's fill on its gate (a gate that fails ends as a cache
    /// read). With `redis` or `kv+redis` the consumers may store a result in Redis without filling the
    /// edge, so the cache is watched as well ([`wait_for_result`]), and the first to have it answers.
    async fn wait_for_fill(&self, gate: &GateSettings, wait_ms: u64) -> Option<Stored> {
        let (config, env, product) = (self.config, self.env, self.product);
        let on_gate = async move {
            match gate_client::wait(env, gate, product, wait_ms).await {
                Ok(Verdict::Held(stored)) => Some(stored),
                Ok(_) => None,
                Err(error) => {
                    worker::console_warn!("waiting for {product}: {error}");
                    consistent_read(config, env, product).await
                }
            }
        };
        if matches!(config.cache, CacheBackend::Kv) {
            return on_gate.await;
        }
        let in_cache = wait_for_result(self.request, env, config, product, wait_ms / 1000);
        match select(pin!(on_gate), pin!(in_cache)).await {
            Either::Left((Some(stored), _)) | Either::Right((Some(stored), _)) => Some(stored),
            Either::Left((None, other)) => other.await,
            Either::Right((None, other)) => other.await,
        }
    }

    /// Publishes the miss's request, claimed by the gate (`gate_claim`) or, without one, unless this
    /// isolate published it in the last few seconds (a poll: no guard applies). A new miss passes the
    /// guards first (backlog, rate limit); refused, it gives the gate's claim back.
    async fn publish(&self, gate_claim: Option<UnixMillis>) -> Result<()> {
        let (config, product, now) = (self.config, self.product, self.now);
        if gate_claim.is_none() && claimed_here(product, now) {
            return Ok(());
        }
        if let Some(refusal) = miss_guard::refusal(self.request, self.env, config, now).await {
            if let (Some(gate), Some(claim)) = (&config.gate, gate_claim) {
                let release = gate_client::release(self.env.clone(), gate.clone(), product, claim);
                self.ctx.wait_until(release);
            }
            return Err(refused(refusal, product, config));
        }
        publish_miss(
            config, self.env, self.ctx, product, now, self.trace, gate_claim,
        )
        .await
        .map_err(|source| EdgeError::QueueUnavailable { product, source })?;
        self.published.set(true);
        Ok(())
    }
}

/// Watches the consistent tier (Redis where there is one, else KV) for `product`'s result for up to
/// `secs` seconds, backing off between reads ([`pauses`]); the result once it is there, `None` when
/// time ran out. Ends early when the client has gone (the runtime cancels the request too).
async fn wait_for_result(
    request: &Incoming,
    env: &Env,
    config: &Config,
    product: ProductId,
    secs: u64,
) -> Option<Stored> {
    let signal = request.signal();
    for pause in pauses(Duration::from_secs(secs)) {
        Delay::from(pause).await;
        if signal.aborted() {
            return None;
        }
        if let Some(stored) = consistent_read(config, env, product).await {
            if decide_read_of(Some(stored.header.lifetime()), now_ms()) != ReadDecision::Miss {
                return Some(stored);
            }
        }
    }
    None
}

/// `product`'s result in the consistent tier, if there is one: the request is published, so a read
/// that fails counts as nothing there yet, not as the client's 503.
async fn consistent_read(config: &Config, env: &Env, product: ProductId) -> Option<Stored> {
    cache::get_consistent(config, env, product)
        .await
        .unwrap_or_else(|error| {
            worker::console_warn!("waiting for {product}: the cache could not be read: {error}");
            None
        })
}

/// A result found for a miss (from the gate or the cache) served as what it is now, fresh or stale,
/// with that freshness; `None` when it has expired meanwhile.
fn serve_found(request: &Incoming, stored: &Stored) -> Result<Option<(Response, Freshness)>> {
    let (freshness, cache_control) = match decide_read_of(Some(stored.header.lifetime()), now_ms())
    {
        ReadDecision::Fresh { max_age_secs } => {
            (Freshness::Fresh, format!("public, max-age={max_age_secs}"))
        }
        ReadDecision::Stale => (Freshness::Stale, "no-cache".to_owned()),
        ReadDecision::Miss => return Ok(None),
    };
    served(request, stored, freshness, &cache_control).map(|response| Some((response, freshness)))
}

/// A 200 with the stored comparison served as `freshness` (its bytes as stored, with the freshness
/// spliced in), or a 304 when `If-None-Match` matches its entity tag; both with the tag and
/// `cache_control` (RFC 9110 §13.1.2, §15.4.5).
fn served(
    request: &Incoming,
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
        .header("If-None-Match")
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
pub async fn fill_backlog(request: Incoming, env: &Env) -> Result<Response> {
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
fn authorize(request: &Incoming, config: &Config) -> Result<()> {
    let authorization = request.header("Authorization");
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
pub async fn fill_prices(
    request: Incoming,
    env: &Env,
    ctx: &Context,
    product: ProductId,
) -> Result<Response> {
    let config = config(env)?;
    authorize(&request, &config)?;
    let body = request.bytes().await.ok();
    let mut comparison = fill_comparison(body.as_deref(), product)?;
    let now = now_ms();
    rebase_to_clock(&mut comparison, now);
    let value = comparison.to_json();
    if let Some(gate) = &config.gate {
        // The waiters are woken while the cache is written: the gate holds what KV will hold.
        let stored = value.clone().into_bytes();
        ctx.wait_until(gate_client::fill(
            env.clone(),
            gate.clone(),
            product,
            stored,
        ));
    }
    let decision = cache::put(&config, env, &comparison, value, now)
        .await
        .map_err(EdgeError::WriteFailed)?;
    let response = Response::empty()?.with_status(204);
    if let Some(outcome) = decision.fill_outcome() {
        response.headers().set(FILL_OUTCOME_HEADER, outcome)?;
    }
    Ok(response)
}
