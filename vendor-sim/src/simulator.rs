//! The simulator's shared state ([`Simulator`]): the vendors' profiles, changeable at run time, request
//! counts, rounds, recorded `traceparent` headers and the simulated real APIs' state.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::apis::api::Api;
use crate::apis::settings::{ApiSettings, ApiSettingsError};
use crate::apis::state::{ApiState, ApiStats};
use crate::profile::{ApiProfiles, Profiles, VendorProfile};

/// The simulator's shared state: the profiles, changeable at run time, and request counts.
#[derive(Debug, Default)]
pub struct Simulator {
    profiles: RwLock<Profiles>,
    requests: RwLock<BTreeMap<String, u64>>,
    /// Per product (as requested) and vendor: the requests answered with anything but a retryable
    /// error, which end that vendor's part of a comparison round.
    round_ends: RwLock<HashMap<String, HashMap<String, u64>>>,
    /// Per product (as requested): the `traceparent` headers of its requests, in arrival order, up to
    /// [`MAX_RECORDED_TRACEPARENTS`] in all (a long benchmark must not grow the simulator without bound).
    traceparents: RwLock<Traceparents>,
    /// The simulated real APIs' settings, tokens and counts ([`crate::apis`]).
    apis: ApiState,
}

/// The recorded `traceparent` headers, by product, and how many in all.
#[derive(Debug, Default)]
struct Traceparents {
    by_product: HashMap<String, Vec<String>>,
    count: usize,
}

/// The most `traceparent` headers the simulator keeps.
pub const MAX_RECORDED_TRACEPARENTS: usize = 100_000;

impl Simulator {
    /// A simulator playing `profiles`.
    pub fn new(profiles: Profiles) -> Arc<Self> {
        Arc::new(Self {
            profiles: RwLock::new(profiles),
            requests: RwLock::default(),
            round_ends: RwLock::default(),
            traceparents: RwLock::default(),
            apis: ApiState::default(),
        })
    }

    /// A simulator playing `profiles` and the real APIs with the settings of `apis` (each over that
    /// API's defaults, see [`ApiSettings`]).
    pub fn with_apis(
        profiles: Profiles,
        apis: &ApiProfiles,
    ) -> Result<Arc<Self>, ApiSettingsError> {
        let simulator = Self::new(profiles);
        for (api, patch) in &apis.apis {
            simulator.apis.configure(*api, patch)?;
        }
        Ok(simulator)
    }

    /// The simulated real APIs' state: settings, tokens, counts.
    pub fn apis(&self) -> &ApiState {
        &self.apis
    }

    /// `api`'s current settings (as `GET /_sim/apis/{name}` shows them).
    pub fn api_settings(&self, api: Api) -> ApiSettings {
        self.apis.settings(api)
    }

    /// `api`'s counts (as `GET /_sim/apis/{name}/stats` shows them).
    pub fn api_stats(&self, api: Api) -> ApiStats {
        self.apis.stats(api)
    }

    /// The `traceparent` headers that requests for `product` carried, in arrival order (requests
    /// without one are not listed).
    pub fn traceparents_of(&self, product: &str) -> Vec<String> {
        self.traceparents
            .read()
            .expect("traceparents lock")
            .by_product
            .get(product)
            .cloned()
            .unwrap_or_default()
    }

    /// Records `traceparent` under `product`, unless [`MAX_RECORDED_TRACEPARENTS`] are kept already.
    pub(crate) fn record_traceparent(&self, product: &str, traceparent: &str) {
        let mut recorded = self.traceparents.write().expect("traceparents lock");
        if recorded.count < MAX_RECORDED_TRACEPARENTS {
            recorded.count += 1;
            recorded
                .by_product
                .entry(product.to_owned())
                .or_default()
                .push(traceparent.to_owned());
        }
    }

    /// Replaces (or adds) one vendor's profile.
    pub fn set_profile(&self, vendor: &str, profile: VendorProfile) {
        let mut profiles = self.profiles.write().expect("profiles lock");
        profiles.vendors.insert(vendor.to_owned(), profile);
    }

    /// Requests seen per vendor since start.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.requests.read().expect("requests lock").clone()
    }

    /// How many comparison rounds each product (as requested) was asked for: the most requests of it
    /// one vendor answered with anything but a retryable error (an offer, a hang, a malformed or an
    /// oversized body; a 503 is retried within the round). A round counts from its request, even if
    /// the consumer died before the answer. Exact unless, in some round, every vendor answered the
    /// product with retryable errors only (then a lower bound).
    pub fn rounds_by_product(&self) -> HashMap<String, u64> {
        self.round_ends
            .read()
            .expect("round ends lock")
            .iter()
            .map(|(product, vendors)| {
                (
                    product.clone(),
                    vendors.values().copied().max().unwrap_or(0),
                )
            })
            .collect()
    }

    /// Counts a request of `product` that `vendor` answered with anything but a retryable error.
    pub(crate) fn end_round(&self, vendor: &str, product: &str) {
        let mut ends = self.round_ends.write().expect("round ends lock");
        *ends
            .entry(product.to_owned())
            .or_default()
            .entry(vendor.to_owned())
            .or_default() += 1;
    }

    /// `vendor`'s current profile, if it is one of the simulated vendors.
    pub(crate) fn profile(&self, vendor: &str) -> Option<VendorProfile> {
        let profiles = self.profiles.read().expect("profiles lock");
        profiles.vendors.get(vendor).cloned()
    }

    /// The current profiles (as `GET /_sim/profiles` shows them).
    pub(crate) fn profiles(&self) -> Profiles {
        self.profiles.read().expect("profiles lock").clone()
    }

    /// Counts a request under `vendor` (a simulated vendor's or a real API's name).
    pub(crate) fn count(&self, vendor: &str) {
        let mut requests = self.requests.write().expect("requests lock");
        *requests.entry(vendor.to_owned()).or_default() += 1;
    }
}
