//! Money: an ISO 4217 currency and an integer amount in that currency's minor units. Never a float.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a text is not a currency or an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The currency code is not three upper-case ASCII letters.
    #[error("the currency must be an ISO 4217 code of three upper-case letters, got {0:?}")]
    BadCurrency(String),
    /// The amount is not a plain non-negative decimal such as `12.34`.
    #[error("the amount must be a plain non-negative decimal such as 12.34, got {0:?}")]
    BadAmount(String),
    /// The amount has more fractional digits than the currency's minor unit allows.
    #[error("the amount {amount:?} has more than {digits} fractional digits, the minor unit of {currency}")]
    TooPrecise {
        /// The amount as written.
        amount: String,
        /// The currency.
        currency: Currency,
        /// The currency's number of minor-unit digits.
        digits: u32,
    },
    /// The amount is too large to count in minor units.
    #[error("the amount {0:?} is too large")]
    TooLarge(String),
}

/// An ISO 4217 currency code, such as `EUR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// How many decimal digits the currency's minor unit has (2 for EUR, 0 for JPY, 3 for KWD).
    pub fn minor_unit_digits(&self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            "CLF" | "UYW" => 4,
            _ => 2,
        }
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Self([*a, *b, *c])),
            _ => Err(MoneyError::BadCurrency(text.to_owned())),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An amount of money: an integer count of the currency's minor units (cents for EUR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    /// The amount in minor units: 1234 is 12.34 EUR, 1234 JPY is 1234 yen.
    pub minor_units: u64,
    /// The currency.
    pub currency: Currency,
}

impl Money {
    /// Reads a decimal amount as a vendor writes it (`"12.34"`, `"12"`, `"12.300"`) into minor units,
    /// exactly, without going through a float.
    pub fn from_decimal(amount: &str, currency: Currency) -> Result<Self, MoneyError> {
        let bad = || MoneyError::BadAmount(amount.to_owned());
        let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(bad());
        }
        if amount.ends_with('.') {
            return Err(bad());
        }
        let digits = currency.minor_unit_digits();
        let significant = fraction.trim_end_matches('0');
        if significant.len() > digits as usize {
            return Err(MoneyError::TooPrecise {
                amount: amount.to_owned(),
                currency,
                digits,
            });
        }
        let too_large = || MoneyError::TooLarge(amount.to_owned());
        let whole: u64 = whole.parse().map_err(|_| too_large())?;
        let mut fraction_units: u64 = 0;
        for position in 0..digits as usize {
            let digit = significant.as_bytes().get(position).map_or(0, |b| b - b'0');
            fraction_units = fraction_units * 10 + u64::from(digit);
        }
        let minor_units = whole
            .checked_mul(10u64.pow(digits))
            .and_then(|w| w.checked_add(fraction_units))
            .ok_or_else(too_large)?;
        Ok(Self {
            minor_units,
            currency,
        })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_unit_digits();
        let scale = 10u64.pow(digits);
        if digits == 0 {
            write!(f, "{} {}", self.minor_units, self.currency)
        } else {
            let (whole, fraction) = (self.minor_units / scale, self.minor_units % scale);
            write!(
                f,
                "{whole}.{fraction:0width$} {}",
                self.currency,
                width = digits as usize
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur() -> Currency {
        "EUR".parse().unwrap()
    }

    #[test]
    fn currencies_are_three_upper_case_letters() {
        assert!("EUR".parse::<Currency>().is_ok());
        for bad in ["eur", "EU", "EURO", "E1R", "", "ÉUR"] {
            assert!(bad.parse::<Currency>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decimals_become_minor_units_exactly() {
        let jpy: Currency = "JPY".parse().unwrap();
        let kwd: Currency = "KWD".parse().unwrap();
        let cases = [
            ("12.34", eur(), 1234),
            ("12", eur(), 1200),
            ("12.3", eur(), 1230),
            ("12.300", eur(), 1230),
            ("0.01", eur(), 1),
            ("0.1", eur(), 10),
            ("1234", jpy, 1234),
            ("1234.0", jpy, 1234),
            ("1.234", kwd, 1234),
        ];
        for (text, currency, minor) in cases {
            assert_eq!(
                Money::from_decimal(text, currency).unwrap().minor_units,
                minor,
                "{text}"
            );
        }
    }

    #[test]
    fn bad_amounts_are_typed_errors() {
        for bad in ["", "-1", "1e3", "1,00", ".5", "5.", "1.2.3", " 1", "NaN"] {
            assert!(
                matches!(
                    Money::from_decimal(bad, eur()),
                    Err(MoneyError::BadAmount(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Money::from_decimal("12.345", eur()),
            Err(MoneyError::TooPrecise { digits: 2, .. })
        ));
        assert!(matches!(
            Money::from_decimal("99999999999999999999", eur()),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn serializes_as_integer_and_code() {
        let money = Money::from_decimal("12.34", eur()).unwrap();
        assert_eq!(
            serde_json::to_string(&money).unwrap(),
            r#"{"minorUnits":1234,"currency":"EUR"}"#
        );
        assert_eq!(money.to_string(), "12.34 EUR");
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(minor in 0u64..=u64::MAX / 1000) {
            let money = Money { minor_units: minor, currency: eur() };
            let text = money.to_string();
            let amount = text.strip_suffix(" EUR").unwrap();
            prop_assert_eq!(Money::from_decimal(amount, eur()), Ok(money));
        }

        #[test]
        fn parse_never_panics(text in "[0-9.e+-]{0,30}") {
            let _ = Money::from_decimal(&text, eur());
        }
    }
}
