//! The product id: a positive 64-bit integer written in plain decimal.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a text is not a product id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductIdError {
    /// The text is empty.
    #[error("the product id is empty")]
    Empty,
    /// The text holds something other than the digits 0-9 (a sign, a space, a letter, a dot).
    #[error("the product id must be written with the digits 0-9 only")]
    NotDecimal,
    /// The text starts with a zero (ids are written in one canonical way).
    #[error("the product id must not start with a zero")]
    LeadingZero,
    /// The number is zero.
    #[error("the product id must be positive")]
    Zero,
    /// The number does not fit in 64 bits.
    #[error("the product id must be at most 18446744073709551615")]
    TooLarge,
}

/// A product id: a positive 64-bit integer.
///
/// Its text form is plain decimal without sign, spaces or leading zeros, so that each product has exactly
/// one text form, one cache key and one Kafka key. In JSON it is a string, so that clients whose numbers
/// are doubles (JavaScript) never round it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProductId(NonZeroU64);

impl ProductId {
    /// The id as an integer.
    pub fn get(self) -> u64 {
        self.0.get()
    }

    /// The id of a non-zero integer, or `None` for zero.
    pub fn new(value: u64) -> Option<Self> {
        NonZeroU64::new(value).map(Self)
    }
}

impl FromStr for ProductId {
    type Err = ProductIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(ProductIdError::Empty);
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProductIdError::NotDecimal);
        }
        if text == "0" {
            return Err(ProductIdError::Zero);
        }
        if text.starts_with('0') {
            return Err(ProductIdError::LeadingZero);
        }
        let value: u64 = text.parse().map_err(|_| ProductIdError::TooLarge)?;
        ProductId::new(value).ok_or(ProductIdError::Zero)
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for ProductId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProductId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_plain_decimal() {
        assert_eq!("42".parse::<ProductId>().unwrap().get(), 42);
        assert_eq!(
            "18446744073709551615".parse::<ProductId>().unwrap().get(),
            u64::MAX
        );
    }

    #[test]
    fn rejects_everything_else_with_a_typed_error() {
        let cases = [
            ("", ProductIdError::Empty),
            ("0", ProductIdError::Zero),
            ("007", ProductIdError::LeadingZero),
            ("-1", ProductIdError::NotDecimal),
            ("+1", ProductIdError::NotDecimal),
            (" 1", ProductIdError::NotDecimal),
            ("1.0", ProductIdError::NotDecimal),
            ("1e3", ProductIdError::NotDecimal),
            ("abc", ProductIdError::NotDecimal),
            ("１２", ProductIdError::NotDecimal),
            ("18446744073709551616", ProductIdError::TooLarge),
            ("99999999999999999999999", ProductIdError::TooLarge),
        ];
        for (text, error) in cases {
            assert_eq!(text.parse::<ProductId>(), Err(error), "{text:?}");
        }
    }

    #[test]
    fn is_a_string_in_json() {
        let id: ProductId = "9007199254740993".parse().unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"9007199254740993\"");
        assert_eq!(
            serde_json::from_str::<ProductId>("\"9007199254740993\"").unwrap(),
            id
        );
        assert!(serde_json::from_str::<ProductId>("\"0\"").is_err());
        assert!(serde_json::from_str::<ProductId>("42").is_err());
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(value in 1u64..) {
            let id = ProductId::new(value).unwrap();
            prop_assert_eq!(id.to_string().parse::<ProductId>(), Ok(id));
        }

        #[test]
        fn parse_never_panics_and_accepts_only_canonical_text(text in "\\PC{0,24}") {
            if let Ok(id) = text.parse::<ProductId>() {
                prop_assert_eq!(id.to_string(), text);
            }
        }
    }
}
