//! Which simulated API: [`Api`], its name, and [`UnknownApi`] for a name that is none of them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the simulated price APIs. Its name (`ebay`, `bestbuy`, `walmart`, `amazon`, `rainforest`) is
/// its path prefix, its `[apis.<name>]` table, its `/_sim/apis/{name}` and its request-count key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// eBay Buy Browse API.
    Ebay,
    /// Best Buy Products API.
    BestBuy,
    /// Walmart affiliate Product Lookup API.
    Walmart,
    /// Amazon Creators API.
    Amazon,
    /// Rainforest API (Traject Data), Amazon data by GTIN or ASIN.
    Rainforest,
}

impl Api {
    /// All five, in a fixed order.
    pub const ALL: [Api; 5] = [
        Api::Ebay,
        Api::BestBuy,
        Api::Walmart,
        Api::Amazon,
        Api::Rainforest,
    ];

    /// The API's name: its path prefix and key.
    pub fn name(self) -> &'static str {
        match self {
            Api::Ebay => "ebay",
            Api::BestBuy => "bestbuy",
            Api::Walmart => "walmart",
            Api::Amazon => "amazon",
            Api::Rainforest => "rainforest",
        }
    }

    /// The currency its prices are in: all five are simulated for their US marketplace.
    pub fn currency(self) -> &'static str {
        "USD"
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the simulated APIs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no simulated API is called {0:?}")]
pub struct UnknownApi(pub String);

impl FromStr for Api {
    type Err = UnknownApi;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Api::ALL
            .into_iter()
            .find(|api| api.name() == name)
            .ok_or_else(|| UnknownApi(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for api in Api::ALL {
            assert_eq!(api.name().parse::<Api>().unwrap(), api);
            assert_eq!(
                serde_json::to_value(api).unwrap(),
                serde_json::json!(api.name())
            );
        }
        assert!("nosuch".parse::<Api>().is_err());
    }
}
