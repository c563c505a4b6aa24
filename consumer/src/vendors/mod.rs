//! The vendor side: whom to ask, how to ask them, and how to read and judge their answers.
//!
//! Vendors are configuration, not code: a TOML file lists them (docs/vendors.md describes every key,
//! `config/vendors/` has ready profiles for real price APIs). A vendor's profile says:
//!
//! - the request ([`request`]): method, URL, query, JSON body, headers, each naming the product by
//!   its id, a GTIN form of it or an identifier from the identifier map ([`identifiers`]);
//! - how the request is authenticated ([`auth`]): a key in a header or the query, an OAuth 2.0
//!   client-credentials token, or RSA-signed headers;
//! - how to read the answer ([`offers`]): one offer, or the cheapest of an array that passes filters,
//!   shipping included;
//! - what its error statuses mean ([`StatusKind`]), and its limits: quotas per process ([`quota`]), a
//!   daily budget for the whole group ([`budget`]), and a circuit breaker ([`breaker`]).
//!
//! [`file`] reads and checks the file; [`fetch`] asks one vendor for one product with all of the above.

pub mod auth;
pub mod breaker;
pub mod budget;
pub mod fetch;
pub mod file;
pub mod identifiers;
pub mod offers;
pub mod quota;
pub mod request;

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

pub use file::{load, parse, shortest_timeout, timeouts_not_within, ProductIds, VendorsError};
pub use offers::{CurrencySource, JsonPointer};

use auth::AuthSettings;
use breaker::BreakerSettings;
use budget::BudgetSettings;
use offers::OfferReader;
use quota::QuotaSettings;
use request::RequestTemplate;

/// What an error status means, where a vendor says more than HTTP does (`[vendor.statuses]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusKind {
    /// The vendor's quota is spent (Best Buy answers 403): handled as a 429 is.
    Quota,
    /// The vendor does not list the product (a 404 for an unknown id).
    NotListed,
}

/// One vendor, ready to be asked.
#[derive(Debug, Clone)]
pub struct Vendor {
    /// The vendor's name, as it appears in offers, failures and metrics.
    pub name: String,
    /// What the catalog's product ids are (GTINs or not), from the top of the file.
    pub product_ids: ProductIds,
    /// The request, parsed once.
    pub request: RequestTemplate,
    /// The identifier-map schemes the request names (`{id:asin}` → `asin`).
    pub mapped_schemes: Vec<String>,
    /// How requests are authenticated beyond static headers and query parameters.
    pub auth: AuthSettings,
    /// The timeout of one attempt, including reading the body.
    pub timeout: Duration,
    /// The most attempts made for one product (retryable failures only).
    pub max_attempts: u32,
    /// How long the vendor guarantees its prices.
    pub guarantee: Duration,
    /// How to read offers out of an answer.
    pub offers: OfferReader,
    /// What the vendor's error statuses mean, beyond HTTP's.
    pub statuses: BTreeMap<StatusCode, StatusKind>,
    /// This process's quota for the vendor.
    pub quota: QuotaSettings,
    /// The whole group's daily budget of requests, if any.
    pub budget: Option<BudgetSettings>,
    /// When the vendor's circuit opens, and for how long.
    pub breaker: BreakerSettings,
}

impl Vendor {
    /// The URL asked for `product` by its id or GTIN forms (no identifier map); `None` when the
    /// product has no identifier the vendor asks by.
    pub fn url_for(&self, product: pricefront_core::ProductId) -> Option<reqwest::Url> {
        let none = std::collections::HashMap::new();
        let ids = request::Identifiers::new(product, self.product_ids == ProductIds::Gtin, &none);
        match self.request.fill(&ids) {
            Ok(Ok(request)) => Some(request.url),
            _ => None,
        }
    }
}
