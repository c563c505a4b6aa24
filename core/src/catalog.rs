//! The known-products filter: a Bloom filter of the catalog's product ids, so that the edge can turn
//! away ids that no vendor sells (404, nothing published) without holding the catalog itself.
//!
//! Compact: at a 1% false-positive rate it takes about 1.2 MB per million ids (9.6 bits an id), so a
//! catalog of millions fits one Workers KV value (25 MiB at most). A false positive lets an unknown id
//! through to the vendors, as without the filter; a known id is never turned away.
//!
//! The serialized form is `PFBF1` (5 bytes), the number of hash functions (1 byte), the number of
//! bits (8 bytes, little-endian), then the bits (little-endian 64-bit words).

use crate::ProductId;

/// The magic that starts a serialized filter, with its format version.
const MAGIC: &[u8; 5] = b"PFBF1";

/// The header's length: magic, hash count, bit count.
const HEADER_LEN: usize = 5 + 1 + 8;

/// Why bytes are not a known-products filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The bytes do not start with `PFBF1`.
    #[error("not a known-products filter (it must start with PFBF1)")]
    NotAFilter,
    /// The header and the length disagree, or the parameters are out of range.
    #[error("a damaged known-products filter: {0}")]
    Damaged(&'static str),
}

/// A Bloom filter of product ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownProducts {
    hashes: u8,
    bits: u64,
    words: Vec<u64>,
}

impl KnownProducts {
    /// An empty filter sized for `capacity` ids at a false-positive rate of `false_positive_rate`
    /// (clamped to 0.0001..0.5).
    pub fn with_capacity(capacity: u64, false_positive_rate: f64) -> Self {
        let rate = false_positive_rate.clamp(0.0001, 0.5);
        let ln2 = std::f64::consts::LN_2;
        let bits = ((capacity.max(1) as f64) * -rate.ln() / (ln2 * ln2)).ceil() as u64;
        let bits = bits.max(64).div_ceil(64) * 64;
        let hashes = ((bits as f64 / capacity.max(1) as f64) * ln2)
            .round()
            .clamp(1.0, 30.0) as u8;
        Self {
            hashes,
            bits,
            words: vec![0; (bits / 64) as usize],
        }
    }

    /// Adds `product`.
    pub fn insert(&mut self, product: ProductId) {
        let bits: Vec<u64> = self.positions(product).collect();
        for bit in bits {
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    /// Whether `product` may be in the catalog: `false` means it certainly is not.
    pub fn may_contain(&self, product: ProductId) -> bool {
        self.positions(product)
            .all(|bit| self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    /// The filter's size in bytes, serialized.
    pub fn byte_len(&self) -> usize {
        HEADER_LEN + self.words.len() * 8
    }

    /// The serialized filter.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.byte_len());
        bytes.extend_from_slice(MAGIC);
        bytes.push(self.hashes);
        bytes.extend_from_slice(&self.bits.to_le_bytes());
        for word in &self.words {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    /// Reads a serialized filter.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CatalogError> {
        if bytes.len() < HEADER_LEN || &bytes[..5] != MAGIC {
            return Err(CatalogError::NotAFilter);
        }
        let hashes = bytes[5];
        let bits = u64::from_le_bytes(bytes[6..14].try_into().expect("8 bytes"));
        if hashes == 0 || hashes > 30 {
            return Err(CatalogError::Damaged("the hash count is not 1 to 30"));
        }
        if bits == 0 || bits % 64 != 0 {
            return Err(CatalogError::Damaged(
                "the bit count is not a positive multiple of 64",
            ));
        }
        let body = &bytes[HEADER_LEN..];
        if body.len() as u64 != bits / 8 {
            return Err(CatalogError::Damaged(
                "the length does not match the bit count",
            ));
        }
        let words = body
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
            .collect();
        Ok(Self {
            hashes,
            bits,
            words,
        })
    }

    /// The bits of `product`: double hashing of two independent 64-bit mixes of the id.
    fn positions(&self, product: ProductId) -> impl Iterator<Item = u64> + '_ {
        let id = product.get();
        let first = mix(id ^ 0x9e37_79b9_7f4a_7c15);
        let second = mix(id ^ 0xc2b2_ae3d_27d4_eb4f) | 1;
        (0..u64::from(self.hashes))
            .map(move |i| first.wrapping_add(i.wrapping_mul(second)) % self.bits)
    }
}

/// SplitMix64's finalizer: a fast, well-spread 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ProductId {
        ProductId::new(n).unwrap()
    }

    #[test]
    fn never_turns_away_a_known_id_and_rarely_lets_an_unknown_one_through() {
        let mut filter = KnownProducts::with_capacity(100_000, 0.01);
        for n in 1..=100_000 {
            filter.insert(id(n * 7));
        }
        assert!((1..=100_000).all(|n| filter.may_contain(id(n * 7))));
        let unknown = (1..=100_000u64)
            .filter(|n| filter.may_contain(id(n * 7 + 1)))
            .count();
        assert!(
            unknown < 2_000,
            "{unknown} of 100000 unknown ids got through"
        );
        // About 1.2 MB per million ids at 1%.
        assert!(filter.byte_len() < 130_000, "{}", filter.byte_len());
    }

    #[test]
    fn reads_back_what_it_writes_and_refuses_damaged_bytes() {
        let mut filter = KnownProducts::with_capacity(1_000, 0.01);
        filter.insert(id(42));
        let bytes = filter.to_bytes();
        let read = KnownProducts::from_bytes(&bytes).unwrap();
        assert_eq!(read, filter);
        assert!(read.may_contain(id(42)));
        assert_eq!(
            KnownProducts::from_bytes(b"hello"),
            Err(CatalogError::NotAFilter)
        );
        assert!(matches!(
            KnownProducts::from_bytes(&bytes[..bytes.len() - 1]),
            Err(CatalogError::Damaged(_))
        ));
    }
}
