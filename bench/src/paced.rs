//! An open load loop: requests sent on a fixed schedule whether or not the last ones were answered,
//! the way independent users arrive. Beside wrk's closed loop (each connection waits for its answer
//! before sending again), it compares two servers at the **same** offered load: a closed loop at full
//! speed loads the faster server harder, so its tail is measured under more load than the slower one's.

use std::time::Duration;

use pricefront_core::ProductId;
use pricefront_harness::edge::Edge;
use tokio::time::Instant;

use crate::miss::{NoSamples, Spread};

/// The most requests one paced run sends, whatever its rate and length.
const MAX_REQUESTS: u64 = 100_000;

/// What one paced run measured.
pub struct PacedRun {
    /// Latencies of the requests answered 2xx or 304, each from the moment the schedule meant it to
    /// be sent (so a stalled client or server is charged for the requests queued behind the stall).
    pub latencies: Vec<Duration>,
    /// Requests not answered 2xx or 304 (errors and other statuses).
    pub failed: u64,
}

impl PacedRun {
    /// The latency figures of these runs together.
    pub fn spread(runs: &[PacedRun]) -> Result<Spread, NoSamples> {
        Spread::of(
            runs.iter()
                .flat_map(|r| r.latencies.iter().copied())
                .collect(),
        )
    }

    /// The failures of these runs together.
    pub fn failures(runs: &[PacedRun]) -> u64 {
        runs.iter().map(|r| r.failed).sum()
    }
}

/// `GET /v1/prices/{product}` at `rate` a second for `seconds` (at most [`MAX_REQUESTS`]), each body
/// read to its end.
pub async fn get_prices_at(edge: &Edge, product: ProductId, rate: u32, seconds: u64) -> PacedRun {
    let every = Duration::from_secs(1) / rate.max(1);
    let count = (u64::from(rate) * seconds).min(MAX_REQUESTS);
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..count {
        let due = started + every * u32::try_from(n).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due).await;
        let edge = edge.clone();
        requests.spawn(async move {
            let response = edge.get_prices(product, None).await.ok()?;
            let answered = response.status().is_success() || response.status() == 304;
            response.bytes().await.ok()?;
            answered.then(|| due.elapsed())
        });
    }
    let mut run = PacedRun {
        latencies: Vec::with_capacity(count as usize),
        failed: 0,
    };
    while let Some(done) = requests.join_next().await {
        match done.ok().flatten() {
            Some(latency) => run.latencies.push(latency),
            None => run.failed += 1,
        }
    }
    run
}
