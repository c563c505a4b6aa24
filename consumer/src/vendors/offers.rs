//! Reading a vendor's answer: one offer at fixed JSON pointers, or an array of offers (eBay's
//! `itemSummaries`, Best Buy's `products`) of which the cheapest that passes the profile's filters wins,
//! its shipping cost added where the vendor gives one.

use pricefront_core::{Currency, Money, Offer};
use serde_json::Value;

/// A JSON pointer (RFC 6901) into a vendor's body, split into its unescaped tokens once, at load,
/// rather than at every answer (as `serde_json::Value::pointer` does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointer {
    text: String,
    tokens: Vec<String>,
}

impl JsonPointer {
    /// The pointer `text`: `""` (the whole value) or starting with `/`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.is_empty() && !text.starts_with('/') {
            return Err(format!(
                "{text:?} is not a JSON pointer (it must start with /)"
            ));
        }
        let tokens = text
            .split('/')
            .skip(1)
            .map(|token| token.replace("~1", "/").replace("~0", "~"))
            .collect();
        Ok(Self {
            text: text.to_owned(),
            tokens,
        })
    }

    /// The value it points at in `value`, as `serde_json::Value::pointer` finds it.
    pub fn find<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.tokens
            .iter()
            .try_fold(value, |target, token| match target {
                Value::Object(map) => map.get(token),
                Value::Array(list) => array_index(token).and_then(|i| list.get(i)),
                _ => None,
            })
    }
}

/// An array index token: digits without a leading zero (or "0").
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

impl std::fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where a vendor's answer says the currency is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurrencySource {
    /// At this JSON pointer (in the offer).
    Pointer(JsonPointer),
    /// Always this currency (Best Buy's prices are US dollars, unsaid).
    Fixed(Currency),
}

/// A condition an offer must meet: the value at `at` (a string, number or boolean, compared as
/// text) is one of `one_of`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferFilter {
    /// Where the value is, relative to the offer.
    pub at: JsonPointer,
    /// The values that pass.
    pub one_of: Vec<String>,
}

impl OfferFilter {
    fn passes(&self, offer: &Value) -> bool {
        match self.at.find(offer).and_then(scalar_text) {
            Some(text) => self.one_of.contains(&text),
            None => false,
        }
    }
}

/// A JSON string, number or boolean as text.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// How to read offers out of a vendor's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferReader {
    /// The array of offers (or one offer object, as Rainforest's `buybox_winner`); `None`: the body is
    /// one offer.
    pub array: Option<JsonPointer>,
    /// Whether an answer without the array (eBay leaves `itemSummaries` out when nothing matched)
    /// means the vendor does not list the product, rather than a malformed body.
    pub missing_array_is_not_listed: bool,
    /// The price (a decimal string or a JSON number), in the offer.
    pub price: JsonPointer,
    /// The currency.
    pub currency: CurrencySource,
    /// The offer's URL, if the vendor gives one.
    pub url: Option<JsonPointer>,
    /// The product's URL, from the body's root, for offers without a URL of their own (Amazon's
    /// `detailPageURL` sits beside the listings, not in them).
    pub product_url: Option<JsonPointer>,
    /// The shipping cost (same currency), added to the price when present.
    pub shipping: Option<JsonPointer>,
    /// Conditions every offer must meet (all of them).
    pub filters: Vec<OfferFilter>,
}

/// What a vendor's answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// Its best offer.
    Offer(Offer),
    /// It has no offer for the product (an empty array, or none that passes the filters).
    NotListed(String),
}

impl OfferReader {
    /// Reads `vendor`'s answer `body`; `Err` when it is not the JSON the profile describes.
    pub fn read(&self, vendor: &str, body: &[u8]) -> Result<Reading, String> {
        let json: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let product_url = || {
            self.product_url
                .as_ref()
                .and_then(|pointer| pointer.find(&json))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let with_product_url = |mut offer: Offer| {
            if offer.url.is_none() {
                offer.url = product_url();
            }
            offer
        };
        let Some(array) = &self.array else {
            return self
                .offer(vendor, &json)
                .map(|offer| Reading::Offer(with_product_url(offer)));
        };
        let one;
        let items = match array.find(&json) {
            Some(Value::Array(items)) => items,
            Some(object @ Value::Object(_)) => {
                one = [object.clone()];
                &one[..]
            }
            None if self.missing_array_is_not_listed && json.is_object() => {
                return Ok(Reading::NotListed(format!("no {array} in the answer")))
            }
            Some(other) if other.is_null() && self.missing_array_is_not_listed => {
                return Ok(Reading::NotListed(format!("{array} is null")))
            }
            Some(_) => return Err(format!("{array} is not an array or an object")),
            None => return Err(format!("nothing at {array}")),
        };
        if items.is_empty() {
            return Ok(Reading::NotListed("no offers".into()));
        }
        let passing: Vec<&Value> = items
            .iter()
            .filter(|item| self.filters.iter().all(|f| f.passes(item)))
            .collect();
        if passing.is_empty() {
            return Ok(Reading::NotListed(format!(
                "none of its {} offers passes the filters",
                items.len()
            )));
        }
        // Offers that cannot be read (an auction without a fixed price) are skipped; only when none can
        // is the answer malformed.
        let mut first_error = None;
        let mut best: Option<Offer> = None;
        for item in passing {
            match self.offer(vendor, item) {
                Ok(offer) => {
                    let cheaper = best.as_ref().is_none_or(|b| {
                        offer.price.currency == b.price.currency
                            && offer.price.minor_units < b.price.minor_units
                    });
                    if cheaper {
                        best = Some(offer);
                    }
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        best.map(|offer| Reading::Offer(with_product_url(offer)))
            .ok_or_else(|| {
                format!(
                    "no offer could be read: {}",
                    first_error.unwrap_or_default()
                )
            })
    }

    /// One offer out of `item`.
    fn offer(&self, vendor: &str, item: &Value) -> Result<Offer, String> {
        let at = |pointer: &JsonPointer| {
            pointer
                .find(item)
                .ok_or_else(|| format!("nothing at {pointer}"))
        };
        let currency: Currency = match &self.currency {
            CurrencySource::Fixed(currency) => *currency,
            CurrencySource::Pointer(pointer) => at(pointer)?
                .as_str()
                .ok_or_else(|| format!("{pointer} is not a string"))?
                .parse()
                .map_err(|e| format!("{e}"))?,
        };
        let mut price = amount(at(&self.price)?, currency, &self.price)?;
        if let Some(shipping) = &self.shipping {
            if let Some(cost) = shipping.find(item).filter(|v| !v.is_null()) {
                let cost = amount(cost, currency, shipping)?;
                price.minor_units = price
                    .minor_units
                    .checked_add(cost.minor_units)
                    .ok_or("price plus shipping overflows")?;
            }
        }
        let url = self
            .url
            .as_ref()
            .and_then(|pointer| pointer.find(item))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Offer {
            vendor: vendor.to_owned(),
            price,
            url,
        })
    }
}

/// A price out of a decimal string or a JSON number.
fn amount(value: &Value, currency: Currency, at: &JsonPointer) -> Result<Money, String> {
    match value {
        Value::String(text) => Money::from_decimal(text, currency),
        Value::Number(number) => Money::from_decimal(&number.to_string(), currency),
        other => return Err(format!("{at} is {other}, not a price")),
    }
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(text: &str) -> JsonPointer {
        JsonPointer::parse(text).unwrap()
    }

    fn ebay_like() -> OfferReader {
        OfferReader {
            array: Some(pointer("/itemSummaries")),
            missing_array_is_not_listed: true,
            price: pointer("/price/value"),
            currency: CurrencySource::Pointer(pointer("/price/currency")),
            url: Some(pointer("/itemWebUrl")),
            product_url: None,
            shipping: Some(pointer("/shippingOptions/0/shippingCost/value")),
            filters: vec![OfferFilter {
                at: pointer("/conditionId"),
                one_of: vec!["1000".into()],
            }],
        }
    }

    fn read(reader: &OfferReader, body: Value) -> Result<Reading, String> {
        reader.read("v", &serde_json::to_vec(&body).unwrap())
    }

    #[test]
    fn the_cheapest_passing_offer_with_shipping_wins() {
        let item = |price: &str, condition: &str, shipping: Option<&str>, url: &str| {
            let mut item = serde_json::json!({
                "price": {"value": price, "currency": "USD"},
                "conditionId": condition,
                "itemWebUrl": url,
            });
            if let Some(cost) = shipping {
                item["shippingOptions"] =
                    serde_json::json!([{"shippingCost": {"value": cost, "currency": "USD"}}]);
            }
            item
        };
        let body = serde_json::json!({"itemSummaries": [
            item("10.00", "3000", None, "used"),
            item("12.00", "1000", Some("5.00"), "dear-shipping"),
            item("15.50", "1000", Some("0.00"), "free-shipping"),
            item("16.00", "1000", None, "no-shipping-given"),
            {"conditionId": "1000", "currentBidPrice": {"value": "1.00"}},
        ]});
        let Reading::Offer(offer) = read(&ebay_like(), body).unwrap() else {
            panic!("an offer")
        };
        assert_eq!(offer.price.minor_units, 1550);
        assert_eq!(offer.url.as_deref(), Some("free-shipping"));
    }

    #[test]
    fn no_offers_is_not_listed_and_a_wrong_shape_is_malformed() {
        let reader = ebay_like();
        let not_listed = |body| matches!(read(&reader, body), Ok(Reading::NotListed(_)));
        assert!(not_listed(serde_json::json!({"itemSummaries": []})));
        assert!(not_listed(serde_json::json!({"total": 0})));
        assert!(not_listed(serde_json::json!({"itemSummaries": [
            {"price": {"value": "1.00", "currency": "USD"}, "conditionId": "3000"}
        ]})));
        assert!(read(&reader, serde_json::json!({"itemSummaries": 1})).is_err());
        assert!(read(&reader, serde_json::json!([1])).is_err());
        assert!(read(
            &reader,
            serde_json::json!({"itemSummaries": [{"conditionId": 1000}]})
        )
        .unwrap_err()
        .contains("no offer could be read"));
        let strict = OfferReader {
            missing_array_is_not_listed: false,
            ..ebay_like()
        };
        assert!(read(&strict, serde_json::json!({"total": 0})).is_err());
    }

    #[test]
    fn one_offer_object_and_the_products_url() {
        let reader = OfferReader {
            array: Some(pointer("/product/buybox_winner")),
            missing_array_is_not_listed: true,
            price: pointer("/price/value"),
            currency: CurrencySource::Pointer(pointer("/price/currency")),
            url: None,
            product_url: Some(pointer("/product/link")),
            shipping: None,
            filters: vec![OfferFilter {
                at: pointer("/condition/is_new"),
                one_of: vec!["true".into()],
            }],
        };
        let body = serde_json::json!({"product": {"link": "https://a/dp/B1", "buybox_winner": {
            "condition": {"is_new": true}, "price": {"value": 11.98, "currency": "USD"}}}});
        let Reading::Offer(offer) = read(&reader, body).unwrap() else {
            panic!("an offer")
        };
        assert_eq!(offer.price.minor_units, 1198);
        assert_eq!(offer.url.as_deref(), Some("https://a/dp/B1"));
        assert!(matches!(
            read(
                &reader,
                serde_json::json!({"request_info": {"success": true}})
            ),
            Ok(Reading::NotListed(_))
        ));
    }

    #[test]
    fn filters_compare_numbers_and_strings_as_text() {
        let filter = OfferFilter {
            at: pointer("/c"),
            one_of: vec!["1000".into(), "New".into()],
        };
        assert!(filter.passes(&serde_json::json!({"c": 1000})));
        assert!(filter.passes(&serde_json::json!({"c": "New"})));
        assert!(!filter.passes(&serde_json::json!({"c": "new"})));
        assert!(!filter.passes(&serde_json::json!({})));
    }

    #[test]
    fn pointers_find_what_serde_json_finds() {
        let body: Value = serde_json::json!({"a": {"b/c": [1, {"~d": "x"}]}, "": 2});
        for text in [
            "",
            "/a",
            "/a/b~1c",
            "/a/b~1c/0",
            "/a/b~1c/1/~0d",
            "/",
            "/a/b~1c/01",
            "/a/x",
            "/a/b~1c/9",
        ] {
            assert_eq!(pointer(text).find(&body), body.pointer(text), "{text}");
        }
        assert!(JsonPointer::parse("price").is_err());
    }
}
