//! Reading a product's mapped identifiers (an ASIN, a retailer's SKU) from the identifier map in Redis
//! ([`pricefront_core::identifier_map`]), once per comparison, for the vendors that ask by them.

use std::collections::HashMap;

use pricefront_core::identifier_map::identifier_map_key;
use pricefront_core::ProductId;
use redis::aio::ConnectionManager;

/// The identifier map, read through Redis.
#[derive(Clone)]
pub struct IdentifierMap {
    redis: ConnectionManager,
}

impl std::fmt::Debug for IdentifierMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentifierMap")
    }
}

impl IdentifierMap {
    /// The map in the Redis `redis` talks to.
    pub fn new(redis: ConnectionManager) -> Self {
        Self { redis }
    }

    /// `product`'s identifiers in `schemes` (absent ones left out).
    pub async fn lookup(
        &self,
        product: ProductId,
        schemes: &[String],
    ) -> Result<HashMap<String, String>, redis::RedisError> {
        let mut redis = self.redis.clone();
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(identifier_map_key(product))
            .arg(schemes)
            .query_async(&mut redis)
            .await?;
        Ok(schemes
            .iter()
            .cloned()
            .zip(values)
            .filter_map(|(scheme, value)| Some((scheme, value.filter(|v| !v.is_empty())?)))
            .collect())
    }
}
