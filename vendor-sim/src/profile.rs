//! What each simulated vendor does: latency, faults, currency and body shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::apis::api::Api;
use crate::apis::settings::ApiSettingsPatch;
use crate::price::BodyShape;

/// The behaviour of one simulated vendor. Rates are probabilities between 0 and 1, drawn per request in
/// the order hang, error, malformed, oversized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VendorProfile {
    /// Shortest latency before answering, in ms.
    pub latency_min_ms: u64,
    /// Longest latency before answering, in ms (uniform between min and max).
    pub latency_max_ms: u64,
    /// Share of requests answered with `error_status`.
    pub error_rate: f64,
    /// The error status: 500, 503, or 429 (sent with `Retry-After: 1`).
    pub error_status: u16,
    /// Share of requests that never get an answer (the connection is held open for an hour).
    pub hang_rate: f64,
    /// Share of requests answered 200 with a body that is not JSON.
    pub malformed_rate: f64,
    /// Share of requests answered 200 with a body of `oversized_bytes`.
    pub oversized_rate: f64,
    /// Size of an oversized body.
    pub oversized_bytes: usize,
    /// The currency the vendor quotes in.
    pub currency: String,
    /// The layout of the vendor's JSON body.
    pub shape: BodyShape,
}

impl Default for VendorProfile {
    fn default() -> Self {
        Self {
            latency_min_ms: 50,
            latency_max_ms: 150,
            error_rate: 0.0,
            error_status: 503,
            hang_rate: 0.0,
            malformed_rate: 0.0,
            oversized_rate: 0.0,
            oversized_bytes: 8 << 20,
            currency: "EUR".into(),
            shape: BodyShape::Nested,
        }
    }
}

/// The simulated vendors by name. Read from a profiles file ([`ProfilesFile`]), whose `[apis.<name>]`
/// tables it checks but leaves to [`ApiProfiles`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "ProfilesFile")]
pub struct Profiles {
    /// Each vendor's profile.
    pub vendors: BTreeMap<String, VendorProfile>,
}

/// A profiles file: `[vendors.<name>]` tables ([`VendorProfile`]) and `[apis.<name>]` tables
/// ([`ApiSettingsPatch`], for `ebay`, `bestbuy`, `walmart`, `amazon`, `rainforest`), both optional;
/// unknown keys are refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilesFile {
    /// Each vendor's profile.
    #[serde(default)]
    pub vendors: BTreeMap<String, VendorProfile>,
    /// Each real API's settings, over its defaults.
    #[serde(default)]
    pub apis: BTreeMap<Api, ApiSettingsPatch>,
}

impl From<ProfilesFile> for Profiles {
    fn from(file: ProfilesFile) -> Self {
        Self {
            vendors: file.vendors,
        }
    }
}

/// The `[apis.<name>]` tables of a profiles file (`ebay`, `bestbuy`, `walmart`, `amazon`,
/// `rainforest`), each over that API's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiProfiles {
    /// The settings given per API.
    pub apis: BTreeMap<Api, ApiSettingsPatch>,
}

impl ApiProfiles {
    /// Reads the `[apis.<name>]` tables of a profiles file (its `[vendors.<name>]` tables are read by
    /// [`Profiles::from_toml`]; both refuse unknown keys).
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        let file: ProfilesFile = toml::from_str(text)?;
        Ok(Self { apis: file.apis })
    }
}

impl Profiles {
    /// Reads profiles from TOML (`[vendors.alpha]` tables; `[apis.<name>]` tables are checked and read
    /// by [`ApiProfiles::from_toml`]).
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Five well-behaved vendors, `alpha` to `echo`, alternating body shapes.
    pub fn five_healthy() -> Self {
        let vendors = ["alpha", "bravo", "charlie", "delta", "echo"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let shape = if i % 2 == 0 {
                    BodyShape::Nested
                } else {
                    BodyShape::Flat
                };
                (
                    name.to_string(),
                    VendorProfile {
                        shape,
                        ..VendorProfile::default()
                    },
                )
            })
            .collect();
        Self { vendors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_partial_profiles_from_toml() {
        let profiles = Profiles::from_toml(
            "[vendors.slow]\nlatency_min_ms = 900\nlatency_max_ms = 1100\nhang_rate = 0.1\n[vendors.flat]\nshape = \"flat\"\n",
        )
        .unwrap();
        assert_eq!(profiles.vendors["slow"].latency_min_ms, 900);
        assert_eq!(profiles.vendors["slow"].error_rate, 0.0);
        assert_eq!(profiles.vendors["flat"].shape, BodyShape::Flat);
        assert!(Profiles::from_toml("[vendors.x]\nlatency = 1\n").is_err());
    }

    #[test]
    fn profiles_files_carry_api_tables() {
        let text = "[vendors.alpha]\nlatency_min_ms = 5\n[apis.ebay]\ntoken_ttl_secs = 3\n[apis.bestbuy]\nmax_requests_per_second = 2\n";
        let apis = ApiProfiles::from_toml(text).unwrap();
        assert_eq!(apis.apis[&Api::Ebay].token_ttl_secs, Some(3));
        assert_eq!(apis.apis[&Api::BestBuy].max_requests_per_second, Some(2));
        let profiles = Profiles::from_toml(text).unwrap();
        assert_eq!(profiles.vendors["alpha"].latency_min_ms, 5);
        assert!(ApiProfiles::from_toml("[apis.ebay]\nttl = 3\n").is_err());
        assert!(ApiProfiles::from_toml("[apis.nosuch]\ntoken_ttl_secs = 3\n").is_err());
        assert!(Profiles::from_toml("[apis.ebay]\nttl = 3\n").is_err());
    }
}
