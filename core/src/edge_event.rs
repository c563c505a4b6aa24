//! (edge) The edge's own numbers: one data point per request it answers, written to Workers Analytics
//! Engine, so that an operator can read hits by freshness, misses published, refusals by reason and
//! publish failures with SQL (docs/deploy.md has the queries).
//!
//! The columns keep one meaning each, whatever the route, so that a query never has to know which
//! route wrote a row:
//!
//! | column | what |
//! | --- | --- |
//! | `index1` | the product id, or `""` when the request named none (the sampling key) |
//! | `blob1` | the route: `prices`, `fill`, `backlog` or `other` (no route matched) |
//! | `blob2` | the event: `hit`, `miss`, `refused`, `publish_failed`, `filled`, `backlog_reported`, `client_error` or `failed` |
//! | `blob3` | the detail: a hit's freshness (`fresh`, `stale`); a miss `published` or `pending` (a poll, or a request already under way); a refusal's reason (`unknown_product`, `backlogged`, `rate_limited`); a fill's outcome; an error's problem type |
//! | `double1` | the HTTP status answered |
//! | `double2` | the request's duration in milliseconds, by the runtime's clock (which advances at I/O) |

use crate::miss_guard::Refusal;
use crate::route::{Route, RouteError};
use crate::stored::freshness_label;
use crate::{Freshness, ProductId};

/// What happened to one request at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeEvent {
    /// A comparison served from the cache (200, or 304 to a conditional request), possibly after a
    /// `Prefer: wait` for a miss.
    Hit(Freshness),
    /// A miss answered 202: `published` when this request published it, not when it polled one under
    /// way (claimed by this isolate or by the product's gate).
    Miss {
        /// Whether this request published the comparison's request to Kafka.
        published: bool,
    },
    /// A miss turned away before publishing.
    Refused(Refusal),
    /// A miss whose request the REST proxy did not take: 503.
    PublishFailed,
    /// A consumer's fill, with the outcome the edge answered (`stored`, `kept`, ...).
    Filled(String),
    /// A consumer's backlog report, merged.
    BacklogReported,
    /// The client's mistake (a 4xx other than a refusal), with the problem type's slug.
    ClientError(String),
    /// The edge's own failure or misconfiguration (a 5xx other than a failed publish), with the
    /// problem type's slug.
    Failed(String),
    /// The health check: not counted ([`EdgeEvent::counted`]).
    Health,
}

impl EdgeEvent {
    /// The event of an answered problem document, by its status and type (`/problems/{slug}`).
    pub fn of_problem(status: u16, problem_type: &str) -> Self {
        let slug = problem_type
            .strip_prefix("/problems/")
            .unwrap_or(problem_type);
        match slug {
            "unknown-product" => EdgeEvent::Refused(Refusal::UnknownProduct),
            "backlogged" => EdgeEvent::Refused(Refusal::Backlogged),
            "rate-limited" => EdgeEvent::Refused(Refusal::RateLimited),
            "queue-unavailable" => EdgeEvent::PublishFailed,
            _ if status < 500 => EdgeEvent::ClientError(slug.to_owned()),
            _ => EdgeEvent::Failed(slug.to_owned()),
        }
    }

    /// Whether the event is worth a data point: all but the health check, which load balancers call
    /// often and which says nothing about the service.
    pub fn counted(&self) -> bool {
        !matches!(self, EdgeEvent::Health)
    }

    /// `blob2`: the event's name.
    pub fn name(&self) -> &'static str {
        match self {
            EdgeEvent::Hit(_) => "hit",
            EdgeEvent::Miss { .. } => "miss",
            EdgeEvent::Refused(_) => "refused",
            EdgeEvent::PublishFailed => "publish_failed",
            EdgeEvent::Filled(_) => "filled",
            EdgeEvent::BacklogReported => "backlog_reported",
            EdgeEvent::ClientError(_) => "client_error",
            EdgeEvent::Failed(_) => "failed",
            EdgeEvent::Health => "health",
        }
    }

    /// `blob3`: the event's detail.
    pub fn detail(&self) -> &str {
        match self {
            EdgeEvent::Hit(freshness) => freshness_label(*freshness),
            EdgeEvent::Miss { published: true } => "published",
            EdgeEvent::Miss { published: false } => "pending",
            EdgeEvent::Refused(Refusal::UnknownProduct) => "unknown_product",
            EdgeEvent::Refused(Refusal::Backlogged) => "backlogged",
            EdgeEvent::Refused(Refusal::RateLimited) => "rate_limited",
            EdgeEvent::PublishFailed | EdgeEvent::BacklogReported | EdgeEvent::Health => "",
            EdgeEvent::Filled(detail)
            | EdgeEvent::ClientError(detail)
            | EdgeEvent::Failed(detail) => detail,
        }
    }
}

/// One Analytics Engine data point, in the column layout of this module.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    /// `index1`.
    pub index: String,
    /// `blob1` to `blob3`.
    pub blobs: [String; 3],
    /// `double1` and `double2`.
    pub doubles: [f64; 2],
}

/// `blob1`: the route a request took, by name.
pub fn route_name(route: &Result<Route, RouteError>) -> &'static str {
    match route {
        Ok(Route::GetPrices(_)) => "prices",
        Ok(Route::FillPrices(_)) => "fill",
        Ok(Route::FillBacklog) => "backlog",
        Ok(Route::Health) => "health",
        Err(_) => "other",
    }
}

/// The data point of a request on `route` that ended in `event`, answered with `status` after
/// `elapsed_ms`.
pub fn data_point(
    route: &Result<Route, RouteError>,
    event: &EdgeEvent,
    status: u16,
    elapsed_ms: u64,
) -> DataPoint {
    let product: Option<ProductId> = match route {
        Ok(Route::GetPrices(product) | Route::FillPrices(product)) => Some(*product),
        _ => None,
    };
    DataPoint {
        index: product.map(|p| p.to_string()).unwrap_or_default(),
        blobs: [
            route_name(route).to_owned(),
            event.name().to_owned(),
            event.detail().to_owned(),
        ],
        doubles: [f64::from(status), elapsed_ms as f64],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::route;

    fn point(method: &str, path: &str, event: EdgeEvent, status: u16) -> DataPoint {
        data_point(&route(method, path), &event, status, 12)
    }

    #[test]
    fn a_hit_names_its_product_route_and_freshness() {
        let hit = point(
            "GET",
            "/v1/prices/42",
            EdgeEvent::Hit(Freshness::Stale),
            200,
        );
        assert_eq!(hit.index, "42");
        assert_eq!(hit.blobs, ["prices", "hit", "stale"].map(String::from));
        assert_eq!(hit.doubles, [200.0, 12.0]);
    }

    #[test]
    fn a_miss_says_whether_it_published() {
        let published = point(
            "GET",
            "/v1/prices/7",
            EdgeEvent::Miss { published: true },
            202,
        );
        let poll = point(
            "GET",
            "/v1/prices/7",
            EdgeEvent::Miss { published: false },
            202,
        );
        assert_eq!(
            published.blobs[1..],
            ["miss", "published"].map(String::from)
        );
        assert_eq!(poll.blobs[2], "pending");
    }

    #[test]
    fn problems_become_refusals_publish_failures_client_errors_or_failures() {
        let cases = [
            (
                404,
                "/problems/unknown-product",
                "refused",
                "unknown_product",
            ),
            (503, "/problems/backlogged", "refused", "backlogged"),
            (429, "/problems/rate-limited", "refused", "rate_limited"),
            (503, "/problems/queue-unavailable", "publish_failed", ""),
            (
                400,
                "/problems/invalid-product-id",
                "client_error",
                "invalid-product-id",
            ),
            (
                401,
                "/problems/unauthorized",
                "client_error",
                "unauthorized",
            ),
            (500, "/problems/misconfigured", "failed", "misconfigured"),
        ];
        for (status, kind, name, detail) in cases {
            let event = EdgeEvent::of_problem(status, kind);
            assert_eq!((event.name(), event.detail()), (name, detail), "{kind}");
        }
    }

    #[test]
    fn a_request_matching_no_route_has_no_product_and_the_health_check_is_not_counted() {
        let lost = point(
            "GET",
            "/nowhere",
            EdgeEvent::ClientError("not-found".into()),
            404,
        );
        assert_eq!(lost.index, "");
        assert_eq!(lost.blobs[0], "other");
        assert!(!EdgeEvent::Health.counted());
        assert!(EdgeEvent::BacklogReported.counted());
        let fill = point(
            "PUT",
            "/internal/v1/prices/9",
            EdgeEvent::Filled("stored".into()),
            200,
        );
        assert_eq!((fill.index.as_str(), fill.blobs[0].as_str()), ("9", "fill"));
    }
}
