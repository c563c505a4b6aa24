//! The fan-out: asking every configured vendor at once and aggregating their answers.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use pricefront_core::{Comparison, FreshnessPolicy, ProductId, UnixMillis};
use reqwest::Client;

use crate::fetch::{ask_vendor, FetchLimits};
use crate::vendors::Vendor;

/// Compares one product's prices across every configured vendor.
#[derive(Debug, Clone)]
pub struct Comparer {
    client: Client,
    vendors: Arc<[Vendor]>,
    limits: FetchLimits,
    policy: FreshnessPolicy,
}

impl Comparer {
    /// A comparer asking `vendors` through `client`.
    pub fn new(
        client: Client,
        vendors: Vec<Vendor>,
        limits: FetchLimits,
        policy: FreshnessPolicy,
    ) -> Self {
        Self {
            client,
            vendors: vendors.into(),
            limits,
            policy,
        }
    }

    /// Asks every vendor concurrently and aggregates their answers; a failing vendor only adds a failure.
    pub async fn compare(&self, product: ProductId) -> Comparison {
        let asks = self
            .vendors
            .iter()
            .map(|vendor| ask_vendor(&self.client, vendor, product, self.limits));
        let outcomes = join_all(asks).await;
        Comparison::aggregate(product, outcomes, now_ms(), &self.policy)
    }
}

/// The wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}
