//! Loading the identifier map from a CSV into Redis (see the crate's documentation for the format).

use std::path::Path;

use anyhow::{bail, Context};
use pricefront_core::identifier_map::{identifier_map_key, is_scheme_name};
use pricefront_core::ProductId;

/// How many rows go to Redis in one pipeline.
const BATCH: usize = 1_000;

/// What a load did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Rows (products) read.
    pub products: u64,
    /// Identifiers set.
    pub set: u64,
    /// Identifiers removed (empty cells).
    pub removed: u64,
}

/// Reads `csv` and writes its identifiers to the Redis at `redis_url`.
pub fn load(csv: &Path, redis_url: &str) -> anyhow::Result<Loaded> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(csv)
        .with_context(|| format!("opening {}", csv.display()))?;
    let headers = reader
        .headers()
        .context("reading the CSV's header")?
        .clone();
    let schemes = schemes(&headers)?;
    let client = redis::Client::open(redis_url).context("the Redis URL")?;
    let mut redis = client
        .get_connection()
        .with_context(|| format!("connecting to Redis at {redis_url}"))?;
    let mut loaded = Loaded::default();
    let mut pipe = redis::pipe();
    let mut in_pipe = 0;
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.with_context(|| format!("line {line}"))?;
        let product: ProductId = record
            .get(0)
            .unwrap_or_default()
            .parse()
            .map_err(|e| anyhow::anyhow!("line {line}: product_id: {e}"))?;
        let key = identifier_map_key(product);
        for (scheme, value) in schemes.iter().zip(record.iter().skip(1)) {
            if value.is_empty() {
                pipe.hdel(&key, scheme).ignore();
                loaded.removed += 1;
            } else {
                pipe.hset(&key, scheme, value).ignore();
                loaded.set += 1;
            }
        }
        loaded.products += 1;
        in_pipe += 1;
        if in_pipe == BATCH {
            pipe.exec(&mut redis).context("writing to Redis")?;
            pipe = redis::pipe();
            in_pipe = 0;
        }
    }
    if in_pipe > 0 {
        pipe.exec(&mut redis).context("writing to Redis")?;
    }
    Ok(loaded)
}

/// The identifier schemes of a header `product_id,scheme,…`.
fn schemes(headers: &csv::StringRecord) -> anyhow::Result<Vec<String>> {
    if headers.get(0) != Some("product_id") {
        bail!("the CSV's first column must be product_id, then one column per identifier scheme");
    }
    let schemes: Vec<String> = headers.iter().skip(1).map(str::to_owned).collect();
    if schemes.is_empty() {
        bail!("the CSV names no identifier scheme after product_id");
    }
    if let Some(bad) = schemes.iter().find(|s| !is_scheme_name(s)) {
        bail!("{bad:?} is not an identifier scheme (lower-case letters, digits and _)");
    }
    Ok(schemes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_the_schemes() {
        let header = |fields: &[&str]| csv::StringRecord::from(fields.to_vec());
        assert_eq!(
            schemes(&header(&["product_id", "asin", "walmart_item_id"])).unwrap(),
            ["asin", "walmart_item_id"]
        );
        assert!(schemes(&header(&["id", "asin"])).is_err());
        assert!(schemes(&header(&["product_id"])).is_err());
        assert!(schemes(&header(&["product_id", "ASIN"])).is_err());
    }
}
