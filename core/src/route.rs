//! The edge's routes: which request is which, decided from the method and the path alone.

use crate::{ProductId, ProductIdError};

/// The path prefix of the public comparisons: `/v1/prices/{productId}`.
pub const PRICES_PREFIX: &str = "/v1/prices/";

/// The path prefix of the fill endpoint: `/internal/v1/prices/{productId}`.
pub const FILL_PREFIX: &str = "/internal/v1/prices/";

/// The path of the backlog reports: `PUT /internal/v1/backlog`.
pub const BACKLOG_PATH: &str = "/internal/v1/backlog";

/// The path of the health check.
pub const HEALTH_PATH: &str = "/healthz";

/// The fill endpoint's path for `product`: `/internal/v1/prices/{productId}` (the consumer PUTs its
/// results there).
pub fn fill_path(product: ProductId) -> String {
    format!("{FILL_PREFIX}{product}")
}

/// A request the edge serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/prices/{productId}`: the comparison of one product.
    GetPrices(ProductId),
    /// `PUT /internal/v1/prices/{productId}`: the consumer fills the cache.
    FillPrices(ProductId),
    /// `PUT /internal/v1/backlog`: a consumer reports the lag of its partitions.
    FillBacklog,
    /// `GET /healthz`.
    Health,
}

/// Why a request matches no route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No such path.
    #[error("no resource at {0}")]
    NotFound(String),
    /// The path exists, but not for this method.
    #[error("method {method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed {
        /// The method asked for.
        method: String,
        /// The value of the `Allow` header.
        allow: &'static str,
    },
    /// The path names a product, but not with a valid id.
    #[error("invalid product id {text:?}: {reason}")]
    BadProductId {
        /// The id as written.
        text: String,
        /// Why it is not an id.
        reason: ProductIdError,
    },
}

/// The path of a request's serialized URL (`https://host/v1/prices/1?x` → `/v1/prices/1`), without its
/// query or fragment: a serialized URL of an `http(s)` request always has a path (`/` at least) after its
/// host, and any `?` or `#` within that path is percent-encoded.
pub fn path_of_url(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let Some(start) = url[after_scheme..].find('/').map(|i| after_scheme + i) else {
        return "/";
    };
    let path = &url[start..];
    path.find(['?', '#']).map_or(path, |end| &path[..end])
}

/// The route of `method` on `path` (without query string).
pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    if let Some(id) = path.strip_prefix(PRICES_PREFIX) {
        with_id(id, method, "GET, HEAD", Route::GetPrices, &["GET", "HEAD"])
    } else if let Some(id) = path.strip_prefix(FILL_PREFIX) {
        with_id(id, method, "PUT", Route::FillPrices, &["PUT"])
    } else if path == HEALTH_PATH {
        match method {
            "GET" | "HEAD" => Ok(Route::Health),
            _ => Err(RouteError::MethodNotAllowed {
                method: method.to_owned(),
                allow: "GET, HEAD",
            }),
        }
    } else if path == BACKLOG_PATH {
        match method {
            "PUT" => Ok(Route::FillBacklog),
            _ => Err(RouteError::MethodNotAllowed {
                method: method.to_owned(),
                allow: "PUT",
            }),
        }
    } else {
        Err(RouteError::NotFound(path.to_owned()))
    }
}

fn with_id(
    id: &str,
    method: &str,
    allow: &'static str,
    make: fn(ProductId) -> Route,
    methods: &[&str],
) -> Result<Route, RouteError> {
    if id.contains('/') {
        return Err(RouteError::NotFound(id.to_owned()));
    }
    if !methods.contains(&method) {
        return Err(RouteError::MethodNotAllowed {
            method: method.to_owned(),
            allow,
        });
    }
    id.parse()
        .map(make)
        .map_err(|reason| RouteError::BadProductId {
            text: id.to_owned(),
            reason,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urls_path_is_what_follows_its_host_up_to_the_query() {
        assert_eq!(
            path_of_url("http://127.0.0.1:8787/v1/prices/42"),
            "/v1/prices/42"
        );
        assert_eq!(path_of_url("https://h/v1/prices/42?x=1#y"), "/v1/prices/42");
        assert_eq!(path_of_url("https://h/healthz#top"), "/healthz");
        assert_eq!(path_of_url("https://h/a%3Fb"), "/a%3Fb");
        assert_eq!(path_of_url("https://h"), "/");
    }

    fn id(n: u64) -> ProductId {
        ProductId::new(n).unwrap()
    }

    #[test]
    fn routes_requests() {
        assert_eq!(route("GET", "/v1/prices/42"), Ok(Route::GetPrices(id(42))));
        assert_eq!(route("HEAD", "/v1/prices/42"), Ok(Route::GetPrices(id(42))));
        assert_eq!(
            route("PUT", "/internal/v1/prices/7"),
            Ok(Route::FillPrices(id(7)))
        );
        assert_eq!(route("GET", "/healthz"), Ok(Route::Health));
        assert_eq!(route("PUT", "/internal/v1/backlog"), Ok(Route::FillBacklog));
    }

    #[test]
    fn the_paths_the_consumer_writes_to_are_routed() {
        assert_eq!(fill_path(id(7)), "/internal/v1/prices/7");
        assert_eq!(
            route("PUT", &fill_path(id(7))),
            Ok(Route::FillPrices(id(7)))
        );
        assert_eq!(route("PUT", BACKLOG_PATH), Ok(Route::FillBacklog));
    }

    #[test]
    fn refuses_with_the_right_error() {
        assert!(matches!(
            route("GET", "/v1/prices/abc"),
            Err(RouteError::BadProductId { .. })
        ));
        assert!(matches!(
            route("GET", "/v1/prices/"),
            Err(RouteError::BadProductId { .. })
        ));
        assert!(matches!(
            route("GET", "/v1/prices/1/x"),
            Err(RouteError::NotFound(_))
        ));
        assert!(matches!(route("GET", "/"), Err(RouteError::NotFound(_))));
        assert_eq!(
            route("POST", "/v1/prices/1"),
            Err(RouteError::MethodNotAllowed {
                method: "POST".into(),
                allow: "GET, HEAD"
            })
        );
        assert!(matches!(
            route("GET", "/internal/v1/prices/1"),
            Err(RouteError::MethodNotAllowed { allow: "PUT", .. })
        ));
        assert!(matches!(
            route("DELETE", "/healthz"),
            Err(RouteError::MethodNotAllowed { .. })
        ));
    }
}
