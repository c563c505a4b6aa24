//! Deterministic prices and the JSON body shapes the simulated vendors answer with.

use pricefront_core::{Currency, Money, ProductId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The layout of a vendor's JSON answer. Real vendors disagree, which is why the consumer reads them
/// through configured JSON pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyShape {
    /// `{"offer":{"price":{"amount":"12.34","currency":"EUR"},"url":"…"}}`: the amount as a decimal string.
    /// Pointers: `/offer/price/amount`, `/offer/price/currency`, `/offer/url`.
    Nested,
    /// `{"price":12.34,"ccy":"EUR","link":"…"}`: the amount as a JSON number.
    /// Pointers: `/price`, `/ccy`, `/link`.
    Flat,
}

impl BodyShape {
    /// The JSON pointers to the amount, the currency and the offer URL in this shape.
    pub fn pointers(self) -> [&'static str; 3] {
        match self {
            BodyShape::Nested => ["/offer/price/amount", "/offer/price/currency", "/offer/url"],
            BodyShape::Flat => ["/price", "/ccy", "/link"],
        }
    }

    /// The body of an offer of `price` for `product`.
    pub fn body(self, product: ProductId, price: Money) -> Value {
        let digits = price.currency.minor_unit_digits();
        let scale = 10u64.pow(digits);
        let whole = price.minor_units / scale;
        let fraction = price.minor_units % scale;
        let amount = if digits == 0 {
            whole.to_string()
        } else {
            format!("{whole}.{fraction:0width$}", width = digits as usize)
        };
        let url = format!("https://shop.example/p/{product}");
        match self {
            BodyShape::Nested => json!({
                "product": product,
                "offer": {"price": {"amount": amount, "currency": price.currency}, "url": url},
            }),
            BodyShape::Flat => {
                let number: f64 = amount.parse().expect("a decimal we just wrote");
                json!({"sku": product, "price": number, "ccy": price.currency, "link": url})
            }
        }
    }
}

/// The price `vendor` asks for `product`: a fixed function of both, between 5.00 and 999.99 in the
/// currency's minor units, so that tests can predict every offer and the best one.
pub fn expected_price(vendor: &str, product: ProductId, currency: Currency) -> Money {
    // FNV-1a over "vendor:product".
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in vendor
        .bytes()
        .chain(*b":")
        .chain(product.to_string().bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    Money {
        minor_units: 500 + hash % 99_500,
        currency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_deterministic_and_differ_by_vendor() {
        let id = ProductId::new(42).unwrap();
        let eur: Currency = "EUR".parse().unwrap();
        assert_eq!(
            expected_price("alpha", id, eur),
            expected_price("alpha", id, eur)
        );
        assert_ne!(
            expected_price("alpha", id, eur),
            expected_price("bravo", id, eur)
        );
    }

    #[test]
    fn bodies_carry_the_price_at_their_pointers() {
        let id = ProductId::new(7).unwrap();
        let price = Money {
            minor_units: 123_405,
            currency: "EUR".parse().unwrap(),
        };
        for shape in [BodyShape::Nested, BodyShape::Flat] {
            let body = shape.body(id, price);
            let [amount, currency, _] = shape.pointers();
            let amount = match &body.pointer(amount).unwrap() {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(Money::from_decimal(&amount, price.currency).unwrap(), price);
            assert_eq!(body.pointer(currency).unwrap(), "EUR");
        }
    }
}
