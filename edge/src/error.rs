//! The edge's one error path: every way a request can fail, each turned into its problem document
//! (RFC 9457) with the headers that go with it (`Retry-After`, `WWW-Authenticate`, `Allow`), in
//! [`EdgeError::into_response`]. Handlers return `Result<Response, EdgeError>` and use `?`; a
//! `worker::Error` from any I/O becomes [`EdgeError::Internal`], answered 503 `/problems/unavailable`.
//! The problems themselves (types, titles, details) are built in [`pricefront_core::problem`].

use pricefront_core::edge_rules::{
    failed_write_answer, FillBodyError, BEARER_CHALLENGE, RETRY_AFTER_SECS,
};
use pricefront_core::problem::Problem;
use pricefront_core::route::RouteError;
use pricefront_core::ProductId;
use worker::Response;

use crate::publish::PublishError;
use crate::reply;

/// Why the edge did not answer a request as asked.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The request matches no route: 404, 405 (with `Allow`) or 400.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A miss's request could not be published: 503 `/problems/queue-unavailable`, `Retry-After`.
    #[error("request for {product} not published: {source}")]
    QueueUnavailable {
        /// The product of the miss.
        product: ProductId,
        /// What went wrong with the REST proxy.
        source: PublishError,
    },
    /// The product is not in the catalog: 404 `/problems/unknown-product`; nothing was published.
    #[error("product {0} is not in the catalog")]
    UnknownProduct(ProductId),
    /// The consumers are far behind: 503 `/problems/backlogged`, `Retry-After`; nothing was published.
    #[error("the comparison pipeline is backlogged")]
    Backlogged,
    /// The client is over its miss limit: 429 `/problems/rate-limited`, `Retry-After` of the limit's
    /// period; nothing was published.
    #[error("the client is over its miss limit")]
    RateLimited {
        /// The limit's period, in seconds.
        period_secs: u64,
    },
    /// A fill's body is not a comparison of its product: 400 `/problems/invalid-comparison`.
    #[error("invalid comparison: {0}")]
    InvalidComparison(String),
    /// A fill's or a backlog report's body could not be read (the connection failed mid-body): 503
    /// `/problems/unavailable` with `Retry-After`, retried by the consumer (a 400 it would take for
    /// its own misconfiguration).
    #[error("the request body could not be read")]
    BodyUnreadable,
    /// A backlog report's body does not parse: 400 `/problems/invalid-backlog`.
    #[error("invalid backlog report")]
    InvalidBacklog,
    /// No valid bearer token: 401 `/problems/unauthorized` with `WWW-Authenticate: Bearer`.
    #[error("no valid bearer token")]
    Unauthorized,
    /// The Worker's settings cannot work: 500 `/problems/misconfigured` naming what to set (logged as
    /// an error: the operator must act).
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    /// A fill's or a backlog report's cache write failed (KV's write limit, Redis away): 503
    /// `/problems/unavailable` with `Retry-After` ([`failed_write_answer`]), which the consumer retries.
    #[error("cache write failed: {0}")]
    WriteFailed(worker::Error),
    /// Anything else that failed inside (a cache, the runtime): 503 `/problems/unavailable`,
    /// `Retry-After`; the cause is logged, never sent.
    #[error(transparent)]
    Internal(#[from] worker::Error),
}

impl From<FillBodyError> for EdgeError {
    fn from(error: FillBodyError) -> Self {
        match error {
            FillBodyError::Unreadable => EdgeError::BodyUnreadable,
            FillBodyError::NotAComparison(detail) => EdgeError::InvalidComparison(detail),
        }
    }
}

impl EdgeError {
    /// The problem document of this error.
    pub fn problem(&self) -> Problem {
        match self {
            EdgeError::Route(error) => Problem::from(error),
            EdgeError::QueueUnavailable { .. } => Problem::queue_unavailable(),
            EdgeError::UnknownProduct(product) => Problem::unknown_product(*product),
            EdgeError::Backlogged => Problem::backlogged(),
            EdgeError::RateLimited { period_secs } => Problem::rate_limited(*period_secs),
            EdgeError::InvalidComparison(detail) => Problem::invalid_comparison(detail.as_str()),
            EdgeError::InvalidBacklog => Problem::invalid_backlog(),
            EdgeError::Unauthorized => Problem::unauthorized(),
            EdgeError::Misconfigured(detail) => Problem::misconfigured(detail.as_str()),
            EdgeError::WriteFailed(error) => failed_write_answer(&error.to_string()).0,
            EdgeError::BodyUnreadable | EdgeError::Internal(_) => Problem::unavailable(),
        }
    }

    /// The seconds of the answer's `Retry-After`, when it has one.
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            EdgeError::QueueUnavailable { .. }
            | EdgeError::Backlogged
            | EdgeError::BodyUnreadable
            | EdgeError::Internal(_) => Some(RETRY_AFTER_SECS),
            EdgeError::RateLimited { period_secs } => Some(*period_secs),
            EdgeError::WriteFailed(error) => Some(failed_write_answer(&error.to_string()).1),
            _ => None,
        }
    }

    /// Logs what an operator should see of this error, for the request `method` `path`: internal
    /// failures and misconfigurations as errors, failed publishes as warnings; client mistakes and
    /// refusals are not logged.
    pub fn log(&self, method: &str, path: &str) {
        match self {
            EdgeError::Internal(error) => worker::console_error!("{method} {path}: {error}"),
            EdgeError::WriteFailed(error) => worker::console_warn!("{method} {path}: {error}"),
            EdgeError::Misconfigured(_) => worker::console_error!("{self}"),
            EdgeError::QueueUnavailable { .. } => worker::console_warn!("{self}"),
            _ => {}
        }
    }

    /// The answer: the problem document with its headers.
    pub fn into_response(self) -> worker::Result<Response> {
        let mut response = reply::problem(&self.problem())?;
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs() {
            headers.set("Retry-After", &secs.to_string())?;
        }
        match &self {
            // RFC 9110 §15.5.2: a 401 always carries a challenge.
            EdgeError::Unauthorized => headers.set("WWW-Authenticate", BEARER_CHALLENGE)?,
            // RFC 9110 §15.5.6: a 405 always says what is allowed.
            EdgeError::Route(RouteError::MethodNotAllowed { allow, .. }) => {
                headers.set("Allow", allow)?
            }
            _ => {}
        }
        Ok(response)
    }
}
