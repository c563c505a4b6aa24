//! Deterministic offers: what each simulated API knows of an identifier, and the offer a comparison
//! should show ([`expected_best`]).
//!
//! Everything here is a pure function of `(api, identifier)`, the identifier being the string exactly
//! as the API is asked (`"012345678905"` and `"0012345678905"` are different products to it):
//!
//! - **Invalid** ([`Lookup::Invalid`]): not an identifier the API takes. eBay, Best Buy and Walmart
//!   take GTINs: ASCII digits, 8, 12, 13 or 14 of them, with a valid GS1 check digit (UPC-A is the
//!   12-digit form, leading zeros kept). Amazon takes ASINs: 10 ASCII upper-case letters or digits.
//!   Rainforest takes either (`gtin=` or `asin=`).
//! - **Not found** ([`Lookup::NotFound`]): a valid identifier for which `fnv1a("{api}:{identifier}")`
//!   is divisible by 5 (about one in five, and independently per API). Each API answers it in its own
//!   way (an empty array, a per-item error, …).
//! - **Offers** ([`Lookup::Offers`]): otherwise, 1 to 6 offers (eBay 2–6, Best Buy 1–3, Walmart 1–4,
//!   Amazon and Rainforest 1–5) mixing conditions (Walmart's item has no condition field, so every
//!   Walmart offer is new) and, where the API has shipping, free and paid shipping. About one in ten
//!   found identifiers has no new offer at all (then [`expected_best`] is `None` although offers
//!   exist). No two offers of one identifier have the same price + shipping, so the best is unique.
//!
//! Prices are in US cents: all five APIs are simulated for their US marketplace (USD).

use serde::{Deserialize, Serialize};

use super::api::Api;

/// The Amazon partner tag of the simulator's default settings, which [`expected_best`] assumes in
/// Amazon's `detailPageURL`.
pub const DEFAULT_PARTNER_TAG: &str = "pricefront-20";

/// An offer's condition, which each API encodes in its own way (eBay `conditionId` "1000" / "3000" /
/// "2500", Best Buy `condition` "New" / "Pre-Owned" / "Refurbished", Amazon `condition.value`, Rainforest
/// `condition.is_new`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// Brand new.
    New,
    /// Used, pre-owned.
    Used,
    /// Refurbished (seller refurbished, renewed).
    Refurbished,
}

/// One simulated offer, before an API dresses it in its own JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimOffer {
    /// The API's id of the listing: eBay legacy item id, Best Buy SKU, Walmart item id, Amazon or
    /// Rainforest offer number.
    pub id: u64,
    /// The seller's name.
    pub seller: String,
    /// New, used or refurbished.
    pub condition: Condition,
    /// The item price in cents.
    pub price_minor: u64,
    /// The shipping cost in cents (0 = free), or `None` where the API gives no shipping cost (Amazon).
    pub shipping_minor: Option<u64>,
    /// The offer's URL as the API gives it.
    pub url: String,
}

impl SimOffer {
    /// Price plus shipping (shipping counted where the API gives it), in cents.
    pub fn total_minor(&self) -> u64 {
        self.price_minor + self.shipping_minor.unwrap_or(0)
    }
}

/// What an API knows of an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Not an identifier this API takes.
    Invalid,
    /// A valid identifier without any offer at this API.
    NotFound,
    /// The offers, in the order the API lists them (never empty).
    Offers(Vec<SimOffer>),
}

/// The offer a comparison should show for one API and identifier: its cheapest new offer by price +
/// shipping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedOffer {
    /// The item price in minor units (cents).
    pub price_minor: u64,
    /// The shipping cost in minor units (0 when free, or when the API gives none).
    pub shipping_minor: u64,
    /// `price_minor + shipping_minor`.
    pub total_minor: u64,
    /// The ISO 4217 currency code (always `"USD"`).
    pub currency: String,
    /// The offer's URL exactly as the API gives it (eBay `itemWebUrl`, Best Buy `url`, Walmart
    /// `productTrackingUrl`, Amazon `detailPageURL` with [`DEFAULT_PARTNER_TAG`], Rainforest
    /// `product.link`).
    pub url: String,
}

/// The offer a comparison should show for `identifier` (as the API is asked) at `api`: the cheapest
/// offer in new condition by price + shipping (shipping counted where the API gives it), or `None` when
/// the identifier is invalid, not found, or has no new offer. For Rainforest this is also the
/// `buybox_winner` of a `type=product` request.
pub fn expected_best(api: Api, identifier: &str) -> Option<ExpectedOffer> {
    let Lookup::Offers(offers) = lookup(api, identifier) else {
        return None;
    };
    best_new(&offers).map(|offer| ExpectedOffer {
        price_minor: offer.price_minor,
        shipping_minor: offer.shipping_minor.unwrap_or(0),
        total_minor: offer.total_minor(),
        currency: api.currency().to_owned(),
        url: offer.url.clone(),
    })
}

/// Every offer `api` has for `identifier`, or `None` when the identifier is invalid or not found.
pub fn offers_of(api: Api, identifier: &str) -> Option<Vec<SimOffer>> {
    match lookup(api, identifier) {
        Lookup::Offers(offers) => Some(offers),
        Lookup::Invalid | Lookup::NotFound => None,
    }
}

/// The cheapest new offer by total, then by price (totals are distinct by construction).
pub(crate) fn best_new(offers: &[SimOffer]) -> Option<&SimOffer> {
    offers
        .iter()
        .filter(|offer| offer.condition == Condition::New)
        .min_by_key(|offer| (offer.total_minor(), offer.price_minor))
}

/// What `api` knows of `identifier` (see the module documentation for the rules).
pub fn lookup(api: Api, identifier: &str) -> Lookup {
    let valid = match api {
        Api::Ebay | Api::BestBuy | Api::Walmart => is_gtin(identifier),
        Api::Amazon => is_asin(identifier),
        Api::Rainforest => is_gtin(identifier) || is_asin(identifier),
    };
    if !valid {
        return Lookup::Invalid;
    }
    let seed = fnv1a(&format!("{}:{identifier}", api.name()));
    if seed % 5 == 0 {
        return Lookup::NotFound;
    }
    Lookup::Offers(generate(api, identifier, seed))
}

/// Whether `s` is a GTIN-8, UPC-A (GTIN-12), GTIN-13 or GTIN-14 with a valid check digit.
pub fn is_gtin(s: &str) -> bool {
    let bytes = s.as_bytes();
    if !matches!(bytes.len(), 8 | 12 | 13 | 14) || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let (body, check) = bytes.split_at(bytes.len() - 1);
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, digit)| {
            let digit = u32::from(digit - b'0');
            if i % 2 == 0 {
                digit * 3
            } else {
                digit
            }
        })
        .sum();
    (10 - sum % 10) % 10 == u32::from(check[0] - b'0')
}

/// Whether `s` looks like an ASIN: 10 ASCII upper-case letters or digits.
pub fn is_asin(s: &str) -> bool {
    s.len() == 10
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The ASIN Rainforest maps an identifier to: the identifier itself when it is an ASIN, otherwise
/// `"B0"` and 8 characters derived from the GTIN.
pub fn rainforest_asin(identifier: &str) -> String {
    if is_asin(identifier) {
        return identifier.to_owned();
    }
    const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut hash = fnv1a(&format!("asin:{identifier}"));
    let mut asin = String::from("B0");
    for _ in 0..8 {
        asin.push(char::from(ALPHABET[(hash % 36) as usize]));
        hash /= 36;
    }
    asin
}

/// The title the APIs give a product.
pub(crate) fn title_of(identifier: &str) -> String {
    format!("Simulated product {identifier}")
}

/// FNV-1a, 64 bits.
pub(crate) fn fnv1a(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// SplitMix64: a tiny deterministic generator seeded from the identifier.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

const SELLERS: [&str; 8] = [
    "gadget-depot",
    "bargain_barn",
    "tech-outlet-us",
    "the_refurb_shop",
    "northside-electronics",
    "daily-deals-4u",
    "secondhand_sam",
    "megamart-direct",
];

fn generate(api: Api, identifier: &str, seed: u64) -> Vec<SimOffer> {
    let mut rng = SplitMix(seed);
    let (low, high) = match api {
        Api::Ebay => (2, 6),
        Api::BestBuy => (1, 3),
        Api::Walmart => (1, 4),
        Api::Amazon | Api::Rainforest => (1, 5),
    };
    let count = rng.range(low, high) as usize;
    let base = rng.range(1_000, 50_000);
    let no_new = api != Api::Walmart && (seed / 5) % 10 == 0;
    let mut offers: Vec<SimOffer> = Vec::with_capacity(count);
    for i in 0..count {
        let condition = if api == Api::Walmart {
            Condition::New
        } else if no_new {
            if i % 2 == 0 {
                Condition::Used
            } else {
                Condition::Refurbished
            }
        } else if i == 0 {
            Condition::New
        } else if api == Api::BestBuy {
            // Best Buy: one SKU per condition.
            [Condition::New, Condition::Refurbished, Condition::Used][i % 3]
        } else {
            match rng.next() % 4 {
                0 | 1 => Condition::New,
                2 => Condition::Used,
                _ => Condition::Refurbished,
            }
        };
        let percent = match condition {
            Condition::New => rng.range(88, 118),
            Condition::Refurbished => rng.range(70, 92),
            Condition::Used => rng.range(50, 80),
        };
        let price_minor = (base * percent / 100).max(100) + rng.next() % 100;
        let shipping_minor = match api {
            Api::Amazon => None,
            Api::Rainforest => Some(0),
            Api::Ebay | Api::BestBuy | Api::Walmart => {
                if rng.next() % 3 == 0 {
                    Some(0)
                } else {
                    Some(rng.range(299, 1_599))
                }
            }
        };
        let id = rng.next();
        let seller = SELLERS[(rng.next() % SELLERS.len() as u64) as usize].to_owned();
        let mut offer = SimOffer {
            id: 0,
            seller,
            condition,
            price_minor,
            shipping_minor,
            url: String::new(),
        };
        while offers
            .iter()
            .any(|other| other.total_minor() == offer.total_minor())
        {
            offer.price_minor += 1;
        }
        let (id, url) = identity(api, identifier, id);
        offer.id = id;
        offer.url = url;
        offers.push(offer);
    }
    // The API's own order, so that the first offer is not always the new one.
    let turn = (rng.next() % count as u64) as usize;
    offers.rotate_left(turn);
    offers
}

/// The listing id and URL of an offer at `api`.
fn identity(api: Api, identifier: &str, random: u64) -> (u64, String) {
    match api {
        Api::Ebay => {
            let id = 110_000_000_000 + random % 89_999_999_999;
            (id, format!("https://www.ebay.com/itm/{id}"))
        }
        Api::BestBuy => {
            let sku = 1_000_000 + random % 8_999_999;
            (sku, format!("https://api.bestbuy.com/click/-/{sku}/pdp"))
        }
        Api::Walmart => {
            let item = 10_000_000 + random % 989_999_999;
            (item, walmart_tracking_url(item))
        }
        Api::Amazon => (
            random % 1_000_000_000,
            format!(
                "https://www.amazon.com/dp/{identifier}?tag={DEFAULT_PARTNER_TAG}&linkCode=ogi&th=1&psc=1"
            ),
        ),
        Api::Rainforest => (
            random % 1_000_000_000,
            format!("https://www.amazon.com/dp/{}", rainforest_asin(identifier)),
        ),
    }
}

/// Walmart's affiliate link of an item (`|PUBID|` is left for the publisher to fill in, as Walmart
/// does when no `publisherId` is sent).
pub(crate) fn walmart_tracking_url(item: u64) -> String {
    format!(
        "https://goto.walmart.com/c/|PUBID|/568844/9383?veh=aff&sourceid=imp_000011112222333344&u=https%3A%2F%2Fwww.walmart.com%2Fip%2F{item}"
    )
}

/// Cents as a decimal string with two fraction digits (`1234` → `"12.34"`).
pub(crate) fn decimal(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Cents as a JSON number (`1234` → `12.34`).
pub(crate) fn number(cents: u64) -> serde_json::Value {
    serde_json::Number::from_f64(cents as f64 / 100.0)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn gtins_and_asins_are_checked() {
        assert!(is_gtin("012345678905"));
        assert!(is_gtin("0012345678905"));
        assert!(is_gtin("4006381333931"));
        assert!(!is_gtin("012345678906"));
        assert!(!is_gtin("01234567890"));
        assert!(!is_gtin("01234567890a"));
        assert!(is_asin("B0DLFMFBJW"));
        assert!(!is_asin("b0dlfmfbjw"));
        assert!(!is_asin("B0DLFMFBJ"));
    }

    #[test]
    fn lookups_are_deterministic_and_mixed() {
        let mut found = 0;
        let mut not_found = 0;
        let mut without_new = 0;
        for n in 0..200u64 {
            let gtin = gtin12(n);
            for api in Api::ALL {
                let id = if api == Api::Amazon {
                    format!("B0{:08}", n)
                } else {
                    gtin.clone()
                };
                assert_eq!(lookup(api, &id), lookup(api, &id));
                match lookup(api, &id) {
                    Lookup::Invalid => panic!("{api} {id} should be valid"),
                    Lookup::NotFound => not_found += 1,
                    Lookup::Offers(offers) => {
                        found += 1;
                        assert!(!offers.is_empty());
                        let mut totals: Vec<u64> = offers.iter().map(|o| o.total_minor()).collect();
                        totals.sort_unstable();
                        totals.dedup();
                        assert_eq!(totals.len(), offers.len());
                        if expected_best(api, &id).is_none() {
                            without_new += 1;
                        }
                    }
                }
            }
        }
        assert!(found > 600 && not_found > 100 && without_new > 10);
    }

    #[test]
    fn the_best_is_the_cheapest_new_offer_with_shipping() {
        let gtin = (0..)
            .map(gtin12)
            .find(|g| {
                offers_of(Api::Ebay, g).is_some_and(|offers| {
                    offers.iter().any(|o| o.condition != Condition::New)
                        && offers
                            .iter()
                            .filter(|o| o.condition == Condition::New)
                            .count()
                            > 1
                })
            })
            .unwrap();
        let offers = offers_of(Api::Ebay, &gtin).unwrap();
        let best = expected_best(Api::Ebay, &gtin).unwrap();
        for offer in offers.iter().filter(|o| o.condition == Condition::New) {
            assert!(offer.total_minor() >= best.total_minor);
        }
        assert_eq!(best.total_minor, best.price_minor + best.shipping_minor);
        assert_eq!(best.currency, "USD");
    }

    /// The `n`th UPC-A with a valid check digit.
    pub(crate) fn gtin12(n: u64) -> String {
        let body = format!("{:011}", 12_345_000_000 + n);
        (0..10)
            .map(|check| format!("{body}{check}"))
            .find(|candidate| is_gtin(candidate))
            .unwrap()
    }
}
