//! Talking to a running edge Worker (under `wrangler dev`) as a client does: reads, fills, and polling a
//! queued product until it is served.

use std::time::Duration;

use pricefront_core::route::fill_path;
use pricefront_core::{Comparison, ProductId};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

/// Why talking to the edge failed.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// A setting the tests need is missing from the environment.
    #[error(
        "{0} is not set: run the suite with scripts/test.sh (make test), which starts the Workers"
    )]
    NotConfigured(String),
    /// The HTTP exchange failed.
    #[error("edge request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The product was still not served when the bound ran out.
    #[error(
        "{product} was not served within {limit:?} ({polls} polls; last status {last_status})"
    )]
    NotServed {
        /// The product.
        product: ProductId,
        /// The bound.
        limit: Duration,
        /// How many reads were made.
        polls: u32,
        /// The status of the last read.
        last_status: u16,
    },
    /// An answer the edge must never give on this path.
    #[error("unexpected answer {status} for {product}: {body}")]
    Unexpected {
        /// The product.
        product: ProductId,
        /// The status.
        status: u16,
        /// The body.
        body: String,
    },
}

/// One running Worker.
#[derive(Clone)]
pub struct Edge {
    /// Its base URL, e.g. `http://127.0.0.1:8787`.
    pub base: String,
    client: Client,
}

impl Edge {
    /// The Worker whose base URL is in the environment variable `var` (e.g. `EDGE_KV_URL`).
    pub fn from_env(var: &str) -> Result<Self, EdgeError> {
        let base = std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| EdgeError::NotConfigured(var.into()))?;
        Ok(Self::at(base))
    }

    /// The Worker at `base`.
    pub fn at(base: impl Into<String>) -> Self {
        Self::with_client(base, Client::builder())
    }

    /// The Worker at `base`, reached as distinct clients reach it: a new connection for every request,
    /// none kept idle. For the drills' load streams: on a kept connection, a request sent just as
    /// `wrangler dev` closed it was reset or never answered (one miss of 2,435 reset, 27 of 2,130 without
    /// an answer after 30 s, in the cluster's rolling-restart drill), which read as the edge losing it.
    pub fn at_with_fresh_connections(base: impl Into<String>) -> Self {
        Self::with_client(base, Client::builder().pool_max_idle_per_host(0))
    }

    /// The Worker at `base`, reached by the client `builder` makes, with the tests' 30 s timeout.
    fn with_client(base: impl Into<String>, builder: reqwest::ClientBuilder) -> Self {
        Self {
            base: base.into(),
            client: builder
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a reqwest client with a timeout"),
        }
    }

    /// `GET /v1/prices/{product}`, with an optional `If-None-Match`.
    pub async fn get_prices(
        &self,
        product: ProductId,
        if_none_match: Option<&str>,
    ) -> Result<Response, EdgeError> {
        let mut request = self
            .client
            .get(format!("{}/v1/prices/{product}", self.base));
        if let Some(tag) = if_none_match {
            request = request.header("if-none-match", tag);
        }
        Ok(request.send().await?)
    }

    /// `GET /v1/prices/{product}` with `Prefer: {prefer}` (e.g. `wait=5`, RFC 7240).
    pub async fn get_prices_preferring(
        &self,
        product: ProductId,
        prefer: &str,
    ) -> Result<Response, EdgeError> {
        self.get_prices_with_header(product, "prefer", prefer).await
    }

    /// `GET /v1/prices/{product}` with one request header (`traceparent`, say).
    pub async fn get_prices_with_header(
        &self,
        product: ProductId,
        name: &str,
        value: &str,
    ) -> Result<Response, EdgeError> {
        Ok(self
            .client
            .get(format!("{}/v1/prices/{product}", self.base))
            .header(name, value)
            .send()
            .await?)
    }

    /// `PUT /internal/v1/prices/{id}` with `body`, and a bearer token when given.
    pub async fn fill_raw(
        &self,
        product: ProductId,
        body: String,
        token: Option<&str>,
    ) -> Result<Response, EdgeError> {
        let mut request = self
            .client
            .put(format!("{}{}", self.base, fill_path(product)))
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Ok(request.send().await?)
    }

    /// Fills `comparison` through the fill endpoint; its answer's status.
    pub async fn fill(
        &self,
        comparison: &Comparison,
        token: &str,
    ) -> Result<StatusCode, EdgeError> {
        let response = self
            .fill_raw(comparison.product_id, comparison.to_json(), Some(token))
            .await?;
        Ok(response.status())
    }

    /// Reads `product` every `every` until it is served (200), for at most `limit`; the served body.
    /// 202 (queued) is the only other answer accepted on the way.
    pub async fn poll_until_served(
        &self,
        product: ProductId,
        every: Duration,
        limit: Duration,
    ) -> Result<Value, EdgeError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut polls = 0;
        loop {
            polls += 1;
            let response = self.get_prices(product, None).await?;
            let status = response.status().as_u16();
            match status {
                200 => return Ok(response.json().await?),
                202 => {}
                _ => {
                    let body = response.text().await.unwrap_or_default();
                    return Err(EdgeError::Unexpected {
                        product,
                        status,
                        body,
                    });
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(EdgeError::NotServed {
                    product,
                    limit,
                    polls,
                    last_status: status,
                });
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// A product id no other test uses (random, above ten million).
pub fn unused_product() -> ProductId {
    ProductId::new(10_000_000 + rand::random::<u64>() % 1_000_000_000_000).expect("a positive id")
}
