//! Product ids for the benchmarks' runs.

/// A time-derived offset for product ids, so that runs do not meet each other's cache entries.
pub(crate) fn rand_offset() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64 % 1_000_000_000)
        * 1_000
}
