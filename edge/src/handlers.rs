//! One function per route.

use pricefront_core::edge_rules::{
    bearer_matches, decide_read, etag, if_none_match, location, Pending, ReadDecision, Served,
    RETRY_AFTER_SECS,
};
use pricefront_core::problem::Problem;
use pricefront_core::{Comparison, Freshness, ProductId, UnixMillis};
use worker::{Context, Date, Env, Request, Response, Result};

use crate::config::Config;
use crate::publish::publish_coalesced;
use crate::{cache, reply};

fn now_ms() -> UnixMillis {
    Date::now().as_millis()
}

/// `GET /v1/prices/{productId}`: the cached comparison, or a queued request.
pub async fn get_prices(
    request: &Request,
    env: &Env,
    ctx: Context,
    product: ProductId,
) -> Result<Response> {
    let config = Config::from_env(env);
    let cached = cache::get(&config, env, product).await?;
    let now = now_ms();
    match (decide_read(cached.as_ref(), now), cached) {
        (ReadDecision::Fresh { max_age_secs }, Some(comparison)) => {
            let tag = etag(&comparison);
            let matches = request
                .headers()
                .get("If-None-Match")?
                .is_some_and(|h| if_none_match(&h, &tag));
            let mut response = if matches {
                Response::empty()?.with_status(304)
            } else {
                reply::json(
                    200,
                    &Served {
                        freshness: Freshness::Fresh,
                        comparison: &comparison,
                    },
                )?
            };
            response
                .headers_mut()
                .set("Cache-Control", &format!("public, max-age={max_age_secs}"))?;
            response.headers_mut().set("ETag", &tag)?;
            Ok(response)
        }
        (ReadDecision::Stale, Some(comparison)) => {
            ctx.wait_until(async move {
                if let Err(error) = publish_coalesced(&config, product, now).await {
                    worker::console_warn!("refresh of {product} not published: {error}");
                }
            });
            let mut response = reply::json(
                200,
                &Served {
                    freshness: Freshness::Stale,
                    comparison: &comparison,
                },
            )?;
            response.headers_mut().set("Cache-Control", "no-cache")?;
            response.headers_mut().set("ETag", &etag(&comparison))?;
            Ok(response)
        }
        _ => match publish_coalesced(&config, product, now).await {
            Ok(()) => {
                let mut response = reply::json(202, &Pending::of(product))?;
                response.headers_mut().set("Location", &location(product))?;
                response
                    .headers_mut()
                    .set("Retry-After", &RETRY_AFTER_SECS.to_string())?;
                response.headers_mut().set("Cache-Control", "no-store")?;
                Ok(response)
            }
            Err(error) => {
                worker::console_warn!("request for {product} not published: {error}");
                let problem = Problem::new(
                    503,
                    "queue-unavailable",
                    "Service Unavailable",
                    "the comparison could not be queued; retry shortly",
                );
                let mut response = reply::problem(&problem)?;
                response
                    .headers_mut()
                    .set("Retry-After", &RETRY_AFTER_SECS.to_string())?;
                Ok(response)
            }
        },
    }
}

/// `PUT /internal/v1/prices/{productId}`: the consumer stores a finished comparison.
pub async fn fill_prices(mut request: Request, env: &Env, product: ProductId) -> Result<Response> {
    let config = Config::from_env(env);
    let authorization = request.headers().get("Authorization")?;
    let Some(token) = config.fill_token.as_deref() else {
        return reply::problem(&Problem::new(
            401,
            "unauthorized",
            "Unauthorized",
            "the fill endpoint has no token configured",
        ));
    };
    if !bearer_matches(authorization.as_deref(), token) {
        let mut response = reply::problem(&Problem::new(
            401,
            "unauthorized",
            "Unauthorized",
            "a valid bearer token is required",
        ))?;
        response.headers_mut().set("WWW-Authenticate", "Bearer")?;
        return Ok(response);
    }
    let body = request.bytes().await.unwrap_or_default();
    let comparison = match Comparison::from_json(&body) {
        Ok(c) if c.product_id == product => c,
        Ok(c) => {
            let detail = format!(
                "the body is the comparison of {}, not of {product}",
                c.product_id
            );
            return reply::problem(&Problem::new(
                400,
                "invalid-comparison",
                "Invalid comparison",
                detail,
            ));
        }
        Err(error) => {
            return reply::problem(&Problem::new(
                400,
                "invalid-comparison",
                "Invalid comparison",
                error.to_string(),
            ))
        }
    };
    cache::put(&config, env, &comparison, now_ms()).await?;
    Response::empty().map(|r| r.with_status(204))
}
