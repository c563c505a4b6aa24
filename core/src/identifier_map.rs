//! The identifier map: a product's identifiers that cannot be derived from its id (an Amazon ASIN, a
//! retailer's SKU), loaded by `pricefront-catalog` from the operator's CSV into Redis and read by the
//! consumer for vendors that ask by them (`{id:asin}` in a vendor's request).
//!
//! One Redis hash per product, [`identifier_map_key`], with one field per identifier scheme (the CSV's
//! column name, lower case), no expiry.

use crate::ProductId;

/// The Redis hash that holds `product`'s identifiers, one field per scheme.
pub fn identifier_map_key(product: ProductId) -> String {
    format!("pricefront:v1:ids:{product}")
}

/// Whether `scheme` may name an identifier: lower-case ASCII letters, digits and `_`, 1 to 32 long,
/// starting with a letter.
pub fn is_scheme_name(scheme: &str) -> bool {
    (1..=32).contains(&scheme.len())
        && scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_scheme_names() {
        assert_eq!(
            identifier_map_key(ProductId::new(42).unwrap()),
            "pricefront:v1:ids:42"
        );
        assert!(is_scheme_name("asin"));
        assert!(is_scheme_name("walmart_item_id"));
        for bad in ["", "ASIN", "1asin", "as-in", &"a".repeat(33)] {
            assert!(!is_scheme_name(bad), "{bad}");
        }
    }
}
