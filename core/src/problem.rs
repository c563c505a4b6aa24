//! Problem details (RFC 9457): every error the edge answers, as `application/problem+json`.

use serde::Serialize;

use crate::route::RouteError;

/// The media type of problem details.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The type of [`Problem::misconfigured`]: the server's settings cannot work, and retrying soon will not
/// change that.
pub const MISCONFIGURED_TYPE: &str = "/problems/misconfigured";

/// The `type` of a problem details document, if `body` is one.
pub fn problem_type_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_slice::<Typed>(body).ok().map(|t| t.kind)
}

/// A problem details object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A URI reference naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}

impl Problem {
    /// A problem of type `/problems/{slug}`.
    pub fn new(status: u16, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{slug}"),
            title: title.to_owned(),
            status,
            detail: detail.into(),
        }
    }

    /// The fill endpoint's 401: no valid bearer token. Always sent with `WWW-Authenticate: Bearer`
    /// ([`crate::edge_rules::BEARER_CHALLENGE`]).
    pub fn unauthorized() -> Self {
        Problem::new(
            401,
            "unauthorized",
            "Unauthorized",
            "a valid bearer token is required",
        )
    }

    /// A 500 of type `/problems/misconfigured`: the Worker's settings cannot work, whatever the client
    /// does; `detail` names the setting and what to set.
    pub fn misconfigured(detail: impl Into<String>) -> Self {
        Problem::new(500, "misconfigured", "Server misconfigured", detail)
    }

    /// A 429 of type `/problems/rate-limited`: this client asked for too many uncached products;
    /// sent with `Retry-After`, and nothing was published.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Problem::new(
            429,
            "rate-limited",
            "Too Many Requests",
            format!(
                "this client asked for too many products that are not cached; cached ones are still \
                 served; retry uncached ones in {retry_after_secs} s"
            ),
        )
    }

    /// A 404 of type `/problems/unknown-product`: the id is not in the operator's catalog, so no
    /// vendor is asked.
    pub fn unknown_product(product: crate::ProductId) -> Self {
        Problem::new(
            404,
            "unknown-product",
            "Unknown product",
            format!("product {product} is not in the catalog"),
        )
    }

    /// A 503 of type `/problems/backlogged`: the comparison pipeline is far behind, so new misses are
    /// turned away until it catches up; sent with `Retry-After`. Cached products are still served.
    pub fn backlogged() -> Self {
        Problem::new(
            503,
            "backlogged",
            "Service Unavailable",
            "the comparison queue is far behind; cached products are still served, retry this one shortly",
        )
    }

    /// A 503 of type `/problems/queue-unavailable`: the miss's request could not be published (the
    /// REST proxy is unreachable, failing or slow); sent with `Retry-After`.
    pub fn queue_unavailable() -> Self {
        Problem::new(
            503,
            "queue-unavailable",
            "Service Unavailable",
            "the comparison could not be queued; retry shortly",
        )
    }

    /// A 503 of type `/problems/unavailable`: the edge failed inside (a cache or another dependency it
    /// needs is away); sent with `Retry-After`. The detail names nothing internal.
    pub fn unavailable() -> Self {
        Problem::new(
            503,
            "unavailable",
            "Service Unavailable",
            "the edge could not answer; retry shortly",
        )
    }

    /// A 400 of type `/problems/invalid-comparison`: a fill's body is not a comparison of the product
    /// in its path; `detail` says why.
    pub fn invalid_comparison(detail: impl Into<String>) -> Self {
        Problem::new(400, "invalid-comparison", "Invalid comparison", detail)
    }

    /// A 400 of type `/problems/invalid-backlog`: a backlog report's body does not parse.
    pub fn invalid_backlog() -> Self {
        Problem::new(
            400,
            "invalid-backlog",
            "Invalid backlog report",
            r#"the body must be {"partitions":{"<partition>":{"lag":<n>,"atMs":<ms>}}}"#,
        )
    }

    /// The body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a problem always serializes")
    }
}

impl From<&RouteError> for Problem {
    fn from(error: &RouteError) -> Self {
        match error {
            RouteError::NotFound(_) => {
                Problem::new(404, "not-found", "Not Found", error.to_string())
            }
            RouteError::MethodNotAllowed { .. } => Problem::new(
                405,
                "method-not-allowed",
                "Method Not Allowed",
                error.to_string(),
            ),
            RouteError::BadProductId { .. } => Problem::new(
                400,
                "invalid-product-id",
                "Invalid product id",
                error.to_string(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::route;

    #[test]
    fn misconfigurations_are_the_servers_problem() {
        let problem = Problem::misconfigured("FILL_TOKEN is not set");
        assert_eq!(problem.status, 500);
        let json: serde_json::Value = serde_json::from_str(&problem.to_json()).unwrap();
        assert_eq!(json["type"], "/problems/misconfigured");
        assert_eq!(
            problem_type_of(problem.to_json().as_bytes()).as_deref(),
            Some(MISCONFIGURED_TYPE)
        );
        assert_eq!(problem_type_of(b"<html>500</html>"), None);
        assert_eq!(json["detail"], "FILL_TOKEN is not set");
        assert_eq!(Problem::unauthorized().status, 401);
    }

    #[test]
    fn well_known_problems_keep_their_types_and_statuses() {
        for (problem, status, kind) in [
            (
                Problem::queue_unavailable(),
                503,
                "/problems/queue-unavailable",
            ),
            (Problem::unavailable(), 503, "/problems/unavailable"),
            (
                Problem::invalid_comparison("x"),
                400,
                "/problems/invalid-comparison",
            ),
            (Problem::invalid_backlog(), 400, "/problems/invalid-backlog"),
            (Problem::backlogged(), 503, "/problems/backlogged"),
            (Problem::rate_limited(60), 429, "/problems/rate-limited"),
        ] {
            assert_eq!((problem.status, problem.kind.as_str()), (status, kind));
        }
        assert_eq!(Problem::invalid_comparison("why").detail, "why");
    }

    #[test]
    fn route_errors_become_problems() {
        let problem = Problem::from(&route("GET", "/v1/prices/0").unwrap_err());
        assert_eq!(problem.status, 400);
        let json: serde_json::Value = serde_json::from_str(&problem.to_json()).unwrap();
        assert_eq!(json["type"], "/problems/invalid-product-id");
        assert!(json["detail"].as_str().unwrap().contains("positive"));
    }
}
