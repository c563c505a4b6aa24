//! The fan-out: asking every configured vendor at once and aggregating their answers.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use pricefront_core::{Comparison, FreshnessPolicy, ProductId, UnixMillis, VendorOutcome};
use reqwest::Client;
use tokio::time::Instant;

use crate::fetch::{ask_vendor, FetchLimits};
use crate::metrics::{Metrics, VendorLabel};
use crate::vendors::Vendor;

/// Compares one product's prices across every configured vendor.
#[derive(Debug, Clone)]
pub struct Comparer {
    client: Client,
    vendors: Arc<[Vendor]>,
    limits: FetchLimits,
    policy: FreshnessPolicy,
    metrics: Arc<Metrics>,
}

impl Comparer {
    /// A comparer asking `vendors` through `client`.
    pub fn new(
        client: Client,
        vendors: Vec<Vendor>,
        limits: FetchLimits,
        policy: FreshnessPolicy,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            vendors: vendors.into(),
            limits,
            policy,
            metrics,
        }
    }

    /// Asks every vendor concurrently and aggregates their answers; a failing vendor only adds a failure.
    pub async fn compare(&self, product: ProductId) -> Comparison {
        let asks = self.vendors.iter().map(|vendor| async move {
            let started = Instant::now();
            let outcome = ask_vendor(&self.client, vendor, product, self.limits).await;
            let label = VendorLabel {
                vendor: vendor.name.clone(),
            };
            self.metrics
                .vendor_latency
                .get_or_create(&label)
                .observe(started.elapsed().as_secs_f64());
            if let VendorOutcome::Failed(failure) = &outcome {
                self.metrics.vendor_failed(&vendor.name, failure.kind);
            }
            outcome
        });
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
