//! The cache key scheme, shared by the consumer (Redis) and the edge (Workers KV or Redis).
//!
//! Keys carry a version so that a change of the stored format can roll out beside the old one.

use crate::ProductId;

/// The version segment of every key this release writes.
pub const KEY_VERSION: &str = "v1";

/// The key under which the comparison of `product` is cached: `price:v1:{id}`.
pub fn cache_key(product: ProductId) -> String {
    format!("price:{KEY_VERSION}:{product}")
}

/// The product whose comparison is cached under `key`, if `key` is one of this version's keys.
pub fn product_of_key(key: &str) -> Option<ProductId> {
    key.strip_prefix("price:")?
        .strip_prefix(KEY_VERSION)?
        .strip_prefix(':')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn key_is_versioned() {
        assert_eq!(cache_key(ProductId::new(42).unwrap()), "price:v1:42");
        assert_eq!(product_of_key("price:v0:42"), None);
        assert_eq!(product_of_key("price:v1:042"), None);
    }

    proptest! {
        #[test]
        fn key_round_trips(value in 1u64..) {
            let id = ProductId::new(value).unwrap();
            prop_assert_eq!(product_of_key(&cache_key(id)), Some(id));
        }
    }
}
