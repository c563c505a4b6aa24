//! Backpressure: this process reports the lag of the partitions it holds, so that the edge can turn new
//! misses away while the pipeline is far behind ([`pricefront_core::backlog`] has the rules).
//!
//! librdkafka's statistics (every `statistics.interval.ms`, 5 s) give each partition's lag; every
//! [`REPORT_EVERY`] the latest figures go to Redis (merged with the other members' into one value per
//! topic) and, when the edge is filled too, to its `PUT /internal/v1/backlog` (which merges them in KV).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pricefront_core::backlog::BacklogReport;

use crate::process::clock::now_ms;
use crate::sinks::cache::RedisCache;
use crate::sinks::fill::FillSink;

/// How often the lag is reported.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The latest lag of each partition this process holds.
#[derive(Debug, Default)]
pub struct PartitionLags {
    lags: Mutex<BTreeMap<i32, u64>>,
}

impl PartitionLags {
    /// Records `partition`'s lag, from librdkafka's statistics.
    pub fn record(&self, partition: i32, lag: u64) {
        self.lock().insert(partition, lag);
    }

    /// Forgets `partitions` (they were revoked): their new owner reports them. The others stay.
    pub fn forget(&self, partitions: &[i32]) {
        let mut lags = self.lock();
        for partition in partitions {
            lags.remove(partition);
        }
    }

    /// The report of what is recorded, made at `now_ms`; `None` when nothing is.
    pub fn report(&self, now_ms: u64) -> Option<BacklogReport> {
        let lags = self.lock();
        (!lags.is_empty()).then(|| BacklogReport::of(lags.iter().map(|(p, l)| (*p, *l)), now_ms))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, u64>> {
        self.lags.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reports `lags` of `topic` every [`REPORT_EVERY`] until dropped (spawn it; abort it at the end).
/// A failed report is logged at debug and tried again next time: backpressure is advisory.
pub async fn report_periodically(
    lags: Arc<PartitionLags>,
    topic: String,
    cache: RedisCache,
    fill: Option<FillSink>,
) {
    let mut every = tokio::time::interval(REPORT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = now_ms();
        let Some(report) = lags.report(now) else {
            continue;
        };
        if let Err(error) = cache.merge_backlog_report(&topic, &report, now).await {
            tracing::debug!(%error, "backlog not reported to Redis");
        }
        if let Some(fill) = &fill {
            if let Err(error) = fill.put_backlog(&report).await {
                tracing::debug!(%error, "backlog not reported to the edge");
            }
        }
    }
}
