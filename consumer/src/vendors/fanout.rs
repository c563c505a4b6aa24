//! The fan-out: asking every configured vendor at once and aggregating their answers. Each vendor's
//! quota and circuit breaker ([`VendorGuards`]) are shared by every comparison of the process.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::future::join_all;
use pricefront_core::{
    Comparison, FailureKind, FreshnessPolicy, ProductId, TraceContext, VendorFailure, VendorOutcome,
};
use prometheus_client::metrics::histogram::Histogram;
use redis::aio::ConnectionManager;
use reqwest::Client;
use tokio::time::Instant;
use tracing::Instrument;

use crate::process::clock::now_ms;
use crate::process::lateness::RuntimeLag;
use crate::process::metrics::{Metrics, VendorLabel};
use crate::vendors::fetch::{ask_vendor, FetchLimits, VendorGuards};
use crate::vendors::identifiers::IdentifierMap;
use crate::vendors::request::Identifiers;
use crate::vendors::vendor::{ProductIds, Vendor};

/// Compares one product's prices across every configured vendor.
#[derive(Debug, Clone)]
pub struct Comparer {
    client: Client,
    vendors: Arc<[Vendor]>,
    /// Each vendor's latency histogram, looked up once (not by its label at every call).
    latencies: Arc<[Histogram]>,
    /// Each vendor's quota, circuit breaker and request counter, shared by every comparison.
    guards: Arc<[VendorGuards]>,
    /// How late this process's runtime has been: a timeout while it was late is not the vendor's.
    lag: Arc<RuntimeLag>,
    limits: FetchLimits,
    policy: FreshnessPolicy,
    metrics: Arc<Metrics>,
    /// The identifier map, when some vendor asks by a mapped identifier (`{id:asin}`).
    identifier_map: Option<IdentifierMap>,
    /// Every scheme the vendors ask by, read from the map once per comparison.
    mapped_schemes: Arc<[String]>,
}

impl Comparer {
    /// A comparer asking `vendors` through `client`; a timeout while `lag` shows this process late is
    /// not held against the vendor. `redis` holds the identifier map and counts daily budgets (without
    /// it, mapped identifiers are never found and budgets are not enforced).
    pub fn new(
        client: Client,
        vendors: Vec<Vendor>,
        limits: FetchLimits,
        policy: FreshnessPolicy,
        metrics: Arc<Metrics>,
        lag: Arc<RuntimeLag>,
        redis: Option<ConnectionManager>,
    ) -> Self {
        let latencies = vendors
            .iter()
            .map(|vendor| {
                let label = VendorLabel {
                    vendor: vendor.name.clone(),
                };
                metrics.vendor_latency.get_or_create(&label).clone()
            })
            .collect();
        let guards = vendors
            .iter()
            .map(|vendor| VendorGuards::new(vendor, &metrics, redis.as_ref()))
            .collect();
        let mapped_schemes: BTreeSet<String> = vendors
            .iter()
            .flat_map(|v| v.mapped_schemes.iter().cloned())
            .collect();
        Self {
            client,
            vendors: vendors.into(),
            latencies,
            guards,
            lag,
            limits,
            policy,
            metrics,
            identifier_map: redis
                .filter(|_| !mapped_schemes.is_empty())
                .map(IdentifierMap::new),
            mapped_schemes: mapped_schemes.into_iter().collect(),
        }
    }

    /// The product's mapped identifiers, or why they could not be read.
    async fn mapped_identifiers(
        &self,
        product: ProductId,
    ) -> Result<HashMap<String, String>, String> {
        match &self.identifier_map {
            Some(map) => map
                .lookup(product, &self.mapped_schemes)
                .await
                .map_err(|e| format!("the identifier map could not be read: {e}")),
            None => Ok(HashMap::new()),
        }
    }

    /// Asks every vendor concurrently and aggregates their answers; a failing vendor only adds a failure.
    /// `trace` is the comparison's place in the request's trace: each vendor call is a hop under it.
    pub async fn compare(&self, product: ProductId, trace: TraceContext) -> Comparison {
        let mapped = &self.mapped_identifiers(product).await;
        let empty = &HashMap::new();
        let asks = self
            .vendors
            .iter()
            .zip(self.latencies.iter())
            .zip(self.guards.iter())
            .map(|((vendor, latency), guards)| async move {
                let started = Instant::now();
                let ids_are_gtins = vendor.product_ids == ProductIds::Gtin;
                let outcome = match (mapped, vendor.mapped_schemes.is_empty()) {
                    (Err(error), false) => VendorOutcome::Failed(VendorFailure {
                        vendor: vendor.name.clone(),
                        kind: FailureKind::IdentifierLookup,
                        detail: error.clone(),
                        attempts: 0,
                    }),
                    (mapped, _) => {
                        let ids = Identifiers::new(
                            product,
                            ids_are_gtins,
                            mapped.as_ref().unwrap_or(empty),
                        );
                        ask_vendor(
                            &self.client,
                            vendor,
                            guards,
                            &self.lag,
                            &ids,
                            &trace,
                            self.limits,
                        )
                        .instrument(tracing::debug_span!("vendor", vendor = %vendor.name))
                        .await
                    }
                };
                // A call rejected before any request (quota, open circuit) is not a vendor's latency.
                let asked = match &outcome {
                    VendorOutcome::Answered { .. } => true,
                    VendorOutcome::Failed(failure) => {
                        self.metrics
                            .vendor_failed(&vendor.name, failure.kind, failure.attempts);
                        failure.attempts > 0
                    }
                };
                if asked {
                    latency.observe(started.elapsed().as_secs_f64());
                }
                outcome
            });
        let outcomes = join_all(asks).await;
        Comparison::aggregate(product, outcomes, now_ms(), &self.policy)
    }
}
