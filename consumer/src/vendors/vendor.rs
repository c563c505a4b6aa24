//! One vendor, ready to be asked: what the vendors file says of it, parsed and checked
//! ([`crate::vendors::file`]).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use crate::vendors::auth::AuthSettings;
use crate::vendors::breaker::BreakerSettings;
use crate::vendors::budget::BudgetSettings;
use crate::vendors::offers::OfferReader;
use crate::vendors::quota::QuotaSettings;
use crate::vendors::request::{Identifiers, RequestTemplate};

/// What the catalog's product ids are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductIds {
    /// Ids of the operator's own: no GTIN forms.
    #[default]
    Internal,
    /// GTINs (UPC-A, EAN-13, GTIN-14 without leading zeros): `{gtin14}`, `{gtin13}` and `{upc}` work.
    Gtin,
}

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
        let ids = Identifiers::new(product, self.product_ids == ProductIds::Gtin, &none);
        self.request.fill(&ids).ok().map(|request| request.url)
    }
}
