//! Backpressure between the consumers and the edge: how far behind the pipeline is.
//!
//! Each consumer reports the lag of the partitions it holds (from librdkafka's statistics) every few
//! seconds into one small value per topic, [`backlog_key`], in Redis and, through the edge's
//! `PUT /internal/v1/backlog`, in Workers KV. Reports of several consumers are merged partition by
//! partition, the newer report winning ([`BacklogReport::merge`]); a partition not reported for
//! [`REPORT_MAX_AGE_MS`] no longer counts (its consumer died or gave it up). The edge reads the value at
//! most every few seconds and, when the total lag is above its `BACKLOG_MAX`, answers new misses 503
//! instead of growing the backlog without bound ([`admits_misses`]); hits are unaffected.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::UnixMillis;

/// The edge's default `BACKLOG_MAX`: with 3 partitions, a few minutes of work at the comparison rates
/// BENCHMARKS.md measures for one consumer.
pub const DEFAULT_BACKLOG_MAX: u64 = 10_000;

/// A partition's report counts for this long after it was made.
pub const REPORT_MAX_AGE_MS: u64 = 30_000;

/// How old a Workers KV read may be: KV serves a location its cached copy of a key for up to 60 s
/// after a write elsewhere (its minimum `cacheTtl`), so a report read from KV may be that much older
/// than the newest one written.
pub const KV_STALENESS_MS: u64 = 60_000;

/// How old a partition's report may be and still count for a reader of the stored value: the reports'
/// own age, plus KV's staleness when read from KV (`from_kv`). A copy KV kept for its minute still
/// counts there, rather than reading as "no backlog".
pub fn max_age_ms(from_kv: bool) -> u64 {
    if from_kv {
        REPORT_MAX_AGE_MS + KV_STALENESS_MS
    } else {
        REPORT_MAX_AGE_MS
    }
}

/// How long the stored value lives without a new report (Redis `PX`, KV expiration).
pub const REPORT_TTL_SECS: u64 = 60;

/// The key of `topic`'s backlog, in Redis and in Workers KV.
pub fn backlog_key(topic: &str) -> String {
    format!("pricefront:v1:backlog:{topic}")
}

/// The value to write under [`backlog_key`] (expiring after [`REPORT_TTL_SECS`]) when `report` arrives
/// at `now_ms` and the store holds `stored`: the two merged ([`BacklogReport::merge`]). Bytes that are
/// not a report count as none. The one read-merge-write of every store that keeps the backlog (the
/// consumers' Redis, the edge's KV).
pub fn merged_report(stored: Option<&[u8]>, report: &BacklogReport, now_ms: UnixMillis) -> String {
    let mut merged = stored
        .and_then(BacklogReport::from_json)
        .unwrap_or_default();
    merged.merge(report, now_ms);
    merged.to_json()
}

/// One partition's lag when it was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionLag {
    /// Requests in the partition not yet finished (librdkafka's `consumer_lag`).
    pub lag: u64,
    /// When it was reported.
    pub at_ms: UnixMillis,
}

/// The lag of a topic's partitions, as reported: `{"partitions":{"0":{"lag":12,"atMs":...}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacklogReport {
    /// Lag by partition, in partition order, each partition once. A sorted list, not a `BTreeMap`: a
    /// topic has a few partitions, and the map's code was about 6 KB of the edge's wasm.
    #[serde(with = "partition_map")]
    pub partitions: Vec<(i32, PartitionLag)>,
}

impl BacklogReport {
    /// A report of `lags` (partition, lag) made at `now_ms`.
    pub fn of(lags: impl IntoIterator<Item = (i32, u64)>, now_ms: UnixMillis) -> Self {
        let mut report = Self::default();
        for (partition, lag) in lags {
            report.put(partition, PartitionLag { lag, at_ms: now_ms });
        }
        report
    }

    /// `partition`'s lag, if reported.
    pub fn lag_of(&self, partition: i32) -> Option<&PartitionLag> {
        self.position(partition).ok().map(|i| &self.partitions[i].1)
    }

    /// Takes `other`'s partitions where they are newer, and drops the partitions too old to count
    /// at `now_ms`. A report stamped after `now_ms` (its reporter's clock runs ahead) is taken as made
    /// at `now_ms`: the merger's clock decides, so that it cannot pin its partition's lag.
    pub fn merge(&mut self, other: &BacklogReport, now_ms: UnixMillis) {
        for &(partition, lag) in &other.partitions {
            let lag = PartitionLag {
                at_ms: lag.at_ms.min(now_ms),
                ..lag
            };
            if self
                .lag_of(partition)
                .is_none_or(|held| lag.at_ms >= held.at_ms)
            {
                self.put(partition, lag);
            }
        }
        self.partitions
            .retain(|(_, lag)| now_ms.saturating_sub(lag.at_ms) <= REPORT_MAX_AGE_MS);
    }

    /// The total lag at `now_ms`, of the partitions whose reports still count (read from a current
    /// store: Redis).
    pub fn total(&self, now_ms: UnixMillis) -> u64 {
        self.total_within(now_ms, REPORT_MAX_AGE_MS)
    }

    /// The total lag at `now_ms` of the partitions reported in the last `max_age_ms` ([`max_age_ms`]),
    /// saturating rather than wrapping. A report from more than `max_age_ms` ahead of `now_ms` does not
    /// count (its reporter's clock is off, so its age is unknown); one less far ahead counts as made now.
    pub fn total_within(&self, now_ms: UnixMillis, max_age_ms: u64) -> u64 {
        self.partitions
            .iter()
            .filter(|(_, lag)| now_ms.abs_diff(lag.at_ms) <= max_age_ms)
            .fold(0u64, |sum, (_, lag)| sum.saturating_add(lag.lag))
    }

    /// Sets `partition`'s lag, keeping the list in partition order.
    fn put(&mut self, partition: i32, lag: PartitionLag) {
        match self.position(partition) {
            Ok(i) => self.partitions[i].1 = lag,
            Err(i) => self.partitions.insert(i, (partition, lag)),
        }
    }

    fn position(&self, partition: i32) -> Result<usize, usize> {
        self.partitions
            .binary_search_by_key(&partition, |(p, _)| *p)
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a backlog report always serializes")
    }

    /// Reads a report; `None` for bytes that are not one (an unreadable report never blocks misses).
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The partitions as a JSON object keyed by partition, read into the sorted list (a partition named
/// twice keeps its last value, as a map would).
mod partition_map {
    use super::*;

    pub fn serialize<S: Serializer>(
        partitions: &[(i32, PartitionLag)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_map(partitions.iter().map(|(partition, lag)| (partition, lag)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(i32, PartitionLag)>, D::Error> {
        struct Partitions;
        impl<'de> Visitor<'de> for Partitions {
            type Value = BacklogReport;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an object of partitions' lags")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BacklogReport, A::Error> {
                let mut report = BacklogReport::default();
                while let Some((partition, lag)) = map.next_entry()? {
                    report.put(partition, lag);
                }
                Ok(report)
            }
        }
        Ok(deserializer.deserialize_map(Partitions)?.partitions)
    }
}

/// Whether new misses may publish, with the total lag `backlog` (`None`: unknown) and the edge's
/// `BACKLOG_MAX` (`0`: no limit). An unknown backlog admits: backpressure must never stop the service
/// because a report is missing.
pub fn admits_misses(backlog: Option<u64>, backlog_max: u64) -> bool {
    backlog_max == 0 || backlog.is_none_or(|lag| lag <= backlog_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_reports_of_several_consumers_the_newer_winning_and_forgets_old_ones() {
        let mut stored = BacklogReport::of([(0, 10), (1, 20)], 1_000);
        stored.merge(&BacklogReport::of([(1, 5), (2, 7)], 2_000), 2_000);
        assert_eq!(stored.total(2_000), 10 + 5 + 7);
        // An older report of partition 1 (a member that lost it) does not win.
        stored.merge(&BacklogReport::of([(1, 99)], 1_500), 2_000);
        assert_eq!(stored.lag_of(1).unwrap().lag, 5);
        // Partition 0 was last reported at 1 000: past the max age it no longer counts, and a merge
        // drops it.
        let later = 1_000 + REPORT_MAX_AGE_MS + 1;
        assert_eq!(stored.total(later), 5 + 7);
        stored.merge(&BacklogReport::default(), later);
        assert!(stored.lag_of(0).is_none());
    }

    /// What [`merged_report`] wrote, read back.
    fn merged(stored: Option<&[u8]>, report: &BacklogReport, now_ms: UnixMillis) -> BacklogReport {
        BacklogReport::from_json(merged_report(stored, report, now_ms).as_bytes())
            .expect("merged_report writes a report")
    }

    #[test]
    fn with_nothing_stored_the_report_is_written_as_it_came() {
        let report = BacklogReport::of([(0, 4), (1, 6)], 1_000);
        assert_eq!(merged(None, &report, 1_000), report);
    }

    #[test]
    fn what_is_not_a_report_in_the_store_counts_as_none() {
        let report = BacklogReport::of([(0, 4)], 1_000);
        for garbage in [&b"nope"[..], b"", b"{\"partitions\":3}", b"\xff\xfe"] {
            assert_eq!(merged(Some(garbage), &report, 1_000), report);
        }
    }

    #[test]
    fn a_stored_partition_is_replaced_by_a_newer_report_and_the_others_kept() {
        let stored = BacklogReport::of([(0, 10), (1, 20)], 1_000).to_json();
        let report = BacklogReport::of([(1, 5)], 2_000);
        let written = merged(Some(stored.as_bytes()), &report, 2_000);
        assert_eq!(
            written.lag_of(1),
            Some(&PartitionLag {
                lag: 5,
                at_ms: 2_000
            })
        );
        assert_eq!(
            written.lag_of(0),
            Some(&PartitionLag {
                lag: 10,
                at_ms: 1_000
            })
        );
        // An older report of a stored partition (a member that lost it) does not replace it.
        let older = BacklogReport::of([(1, 99)], 500);
        let written = merged(Some(stored.as_bytes()), &older, 2_000);
        assert_eq!(written.lag_of(1).unwrap().lag, 20);
    }

    #[test]
    fn stored_partitions_too_old_to_count_are_dropped() {
        let stored = BacklogReport::of([(0, 10)], 1_000).to_json();
        let later = 1_000 + REPORT_MAX_AGE_MS + 1;
        let report = BacklogReport::of([(1, 5)], later);
        let written = merged(Some(stored.as_bytes()), &report, later);
        assert_eq!(written, BacklogReport::of([(1, 5)], later));
        // Still within the age, it stays.
        let within = 1_000 + REPORT_MAX_AGE_MS;
        let written = merged(Some(stored.as_bytes()), &report, within);
        assert!(written.lag_of(0).is_some());
    }

    #[test]
    fn reads_back_its_json_and_ignores_what_is_not_a_report() {
        let report = BacklogReport::of([(0, 3)], 7);
        assert_eq!(
            report.to_json(),
            r#"{"partitions":{"0":{"lag":3,"atMs":7}}}"#
        );
        assert_eq!(
            BacklogReport::from_json(report.to_json().as_bytes()),
            Some(report)
        );
        assert_eq!(BacklogReport::from_json(b"nope"), None);
        // Partitions in any order, one named twice: read in order, the last value kept.
        let read = BacklogReport::from_json(
            br#"{"partitions":{"2":{"lag":1,"atMs":7},"0":{"lag":2,"atMs":7},"2":{"lag":3,"atMs":8}}}"#,
        )
        .unwrap();
        assert_eq!(
            read.to_json(),
            r#"{"partitions":{"0":{"lag":2,"atMs":7},"2":{"lag":3,"atMs":8}}}"#
        );
    }

    #[test]
    fn a_report_stamped_in_the_future_neither_pins_its_partition_nor_outlives_its_age() {
        // A consumer whose clock runs an hour ahead reports partition 0 at the edge's 1 000.
        let hour = 3_600_000;
        let mut stored = BacklogReport::default();
        stored.merge(&BacklogReport::of([(0, 50_000)], 1_000 + hour), 1_000);
        // Merged at the edge's clock: a correct report a second later wins.
        stored.merge(&BacklogReport::of([(0, 3)], 2_000), 2_000);
        assert_eq!(stored.lag_of(0).unwrap().lag, 3);
        // Read straight from a store the consumers write (Redis): a report from far ahead of the
        // reader's clock does not count, and one within the age counts as made now.
        let ahead = BacklogReport::of([(0, 50_000)], 1_000 + hour);
        assert_eq!(ahead.total(1_000), 0);
        let slightly = BacklogReport::of([(0, 7)], 1_000 + REPORT_MAX_AGE_MS);
        assert_eq!(slightly.total(1_000), 7);
    }

    #[test]
    fn the_total_saturates_instead_of_wrapping() {
        let report = BacklogReport::of([(0, u64::MAX), (1, 2)], 1_000);
        assert_eq!(report.total(1_000), u64::MAX);
        assert!(!admits_misses(Some(report.total(1_000)), 10));
    }

    #[test]
    fn a_kv_copy_as_old_as_kv_may_serve_still_counts() {
        // KV may answer with a copy up to KV_STALENESS_MS old: its reports still count when read
        // from KV, not when read from Redis (which is current).
        let report = BacklogReport::of([(0, 20_000)], 1_000);
        let later = 1_000 + REPORT_MAX_AGE_MS + KV_STALENESS_MS / 2;
        assert_eq!(report.total(later), 0);
        assert_eq!(report.total_within(later, max_age_ms(true)), 20_000);
        assert!(!admits_misses(
            Some(report.total_within(later, max_age_ms(true))),
            10_000
        ));
        let too_late = 1_000 + REPORT_MAX_AGE_MS + KV_STALENESS_MS + 1;
        assert_eq!(report.total_within(too_late, max_age_ms(true)), 0);
    }

    #[test]
    fn misses_are_refused_only_above_a_configured_maximum_of_a_known_backlog() {
        assert!(admits_misses(Some(1_000_000), 0));
        assert!(admits_misses(None, 10));
        assert!(admits_misses(Some(10), 10));
        assert!(!admits_misses(Some(11), 10));
    }
}
