//! GTIN forms of a product id, for vendors that look products up by barcode number.
//!
//! When the catalog's product ids are GTINs (GS1 Global Trade Item Numbers: UPC-A, EAN-13, GTIN-14,
//! written without their leading zeros, as a [`ProductId`] is), a vendor's request may name the product
//! as the GTIN-14, the GTIN-13 (EAN) or the 12-digit UPC-A, each zero-padded to its length. A form
//! exists only where the number fits it (a UPC-A needs the GTIN-14 to start with two zeros) and the check
//! digit is right; otherwise the product has no such identifier, and a vendor asked by it does not list
//! the product.

use std::fmt;

use crate::ProductId;

/// One of the GTIN forms a vendor may ask by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GtinForm {
    /// 14 digits (`{gtin14}`).
    Gtin14,
    /// 13 digits, the EAN (`{gtin13}`).
    Gtin13,
    /// 12 digits, the UPC-A (`{upc}`).
    Upc,
}

impl GtinForm {
    /// The form's number of digits.
    pub fn digits(self) -> usize {
        match self {
            GtinForm::Gtin14 => 14,
            GtinForm::Gtin13 => 13,
            GtinForm::Upc => 12,
        }
    }

    /// The placeholder that names the form in a vendor's request template, without its braces.
    pub fn placeholder(self) -> &'static str {
        match self {
            GtinForm::Gtin14 => "gtin14",
            GtinForm::Gtin13 => "gtin13",
            GtinForm::Upc => "upc",
        }
    }
}

/// A product id read as a GTIN: its 14-digit form, the others derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gtin([u8; 14]);

impl Gtin {
    /// The product id as a GTIN, when it has at most 14 digits and a right check digit.
    pub fn of(product: ProductId) -> Option<Self> {
        let value = product.get();
        if value >= 100_000_000_000_000 {
            return None;
        }
        let mut digits = [b'0'; 14];
        let mut rest = value;
        for slot in digits.iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let gtin = Self(digits);
        (check_digit(&digits[..13]) == digits[13] - b'0').then_some(gtin)
    }

    /// The GTIN in `form`, zero-padded; `None` when the number does not fit the form.
    pub fn form(&self, form: GtinForm) -> Option<&str> {
        let skip = 14 - form.digits();
        if self.0[..skip].iter().any(|&d| d != b'0') {
            return None;
        }
        std::str::from_utf8(&self.0[skip..]).ok()
    }
}

impl fmt::Display for Gtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.form(GtinForm::Gtin14).unwrap_or_default())
    }
}

/// The GS1 check digit of `body` (the digits before the check digit): weights 3 and 1 alternating
/// from the right.
pub fn check_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gtin(id: u64) -> Option<Gtin> {
        Gtin::of(ProductId::new(id).unwrap())
    }

    #[test]
    fn a_upc_a_has_every_form_zero_padded() {
        // UPC-A 012345678905 (the GS1 example), EAN 0012345678905.
        let g = gtin(12_345_678_905).unwrap();
        assert_eq!(g.form(GtinForm::Upc), Some("012345678905"));
        assert_eq!(g.form(GtinForm::Gtin13), Some("0012345678905"));
        assert_eq!(g.form(GtinForm::Gtin14), Some("00012345678905"));
        assert_eq!(g.to_string(), "00012345678905");
    }

    #[test]
    fn an_ean_has_no_upc_and_a_gtin14_only_itself() {
        // EAN-13 4006381333931 (a Stabilo pen's barcode).
        let ean = gtin(4_006_381_333_931).unwrap();
        assert_eq!(ean.form(GtinForm::Upc), None);
        assert_eq!(ean.form(GtinForm::Gtin13), Some("4006381333931"));
        let case = gtin(10_012_345_678_902).unwrap();
        assert_eq!(case.form(GtinForm::Gtin13), None);
        assert_eq!(case.form(GtinForm::Gtin14), Some("10012345678902"));
    }

    #[test]
    fn a_wrong_check_digit_or_too_many_digits_is_no_gtin() {
        assert_eq!(gtin(12_345_678_906), None);
        assert_eq!(gtin(100_012_345_678_905), None);
        assert_eq!(gtin(u64::MAX), None);
        // Small ids: 17 is "00000000000017": body ...1, check digit 7.
        assert!(gtin(17).is_some());
        assert_eq!(gtin(18), None);
    }

    #[test]
    fn the_check_digit_is_gs1s() {
        assert_eq!(check_digit(b"01234567890"), 5);
        assert_eq!(check_digit(b"400638133393"), 1);
        assert_eq!(check_digit(b"629104150021"), 3);
    }
}
