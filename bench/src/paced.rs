//! An open load loop: requests sent on a fixed schedule whether or not the last ones were answered,
//! the way independent users arrive. Beside wrk's closed loop (each connection waits for its answer
//! before sending again), it compares two servers at the **same** offered load: a closed loop at full
//! speed loads the faster server harder, so its tail is measured under more load than the slower one's.

use std::collections::BTreeMap;
use std::time::Duration;

use pricefront_core::ProductId;
use pricefront_harness::edge::Edge;
use tokio::time::Instant;

use crate::spread::{NoSamples, Spread};

/// The most requests one paced run sends, whatever its rate and length.
const MAX_REQUESTS: u64 = 100_000;

/// The open loop of distinct misses that prices the gate: misses a second, seconds per round, rounds.
pub const PACED_MISSES: (u32, u64, u32) = (20, 10, 2);

/// What one paced run measured.
pub struct PacedRun {
    /// Latencies of the hits (requests answered 200, [`is_hit`]), each from the moment the schedule meant
    /// it to be sent (so a stalled client or server is charged for the requests queued behind the stall).
    pub latencies: Vec<Duration>,
    /// Requests that were not hits, by status (0: no answer, or its body could not be read): a 202 is a
    /// miss the Worker published, not a hit it served.
    pub others: BTreeMap<u16, u64>,
}

/// Whether an answer to `GET /v1/prices/{id}` of a cached product is a hit: a 200 only. A 202 (the
/// product was missed and published), a 304 (nothing was served) or any other status is not.
pub fn is_hit(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::OK
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

    /// The requests of these runs that were not hits, by status.
    pub fn others(runs: &[PacedRun]) -> BTreeMap<u16, u64> {
        let mut all = BTreeMap::new();
        for (&status, &n) in runs.iter().flat_map(|r| &r.others) {
            *all.entry(status).or_default() += n;
        }
        all
    }
}

/// `GET /v1/prices/{product}` at `rate` a second for `seconds` (at most [`MAX_REQUESTS`]), each body
/// read to its end.
pub async fn get_prices_at(edge: &Edge, product: ProductId, rate: u32, seconds: u64) -> PacedRun {
    paced(edge, move |_| product, rate, seconds, is_hit).await
}

/// Distinct misses at `rate` per second for `seconds`, the n-th of product `first + n`: the latencies
/// of those answered 202 (each published), the others by status.
pub async fn misses_at(edge: &Edge, first: u64, rate: u32, seconds: u64) -> PacedRun {
    let product = move |n| ProductId::new(first + n).expect("a positive id");
    paced(edge, product, rate, seconds, |status| {
        status == reqwest::StatusCode::ACCEPTED
    })
    .await
}

/// `GET /v1/prices/{product(n)}` at `rate` per second for `seconds`: the latencies of the answers
/// `measured` accepts, the others by status.
async fn paced(
    edge: &Edge,
    product: impl Fn(u64) -> ProductId,
    rate: u32,
    seconds: u64,
    measured: fn(reqwest::StatusCode) -> bool,
) -> PacedRun {
    let every = Duration::from_secs(1) / rate.max(1);
    let count = (u64::from(rate) * seconds).min(MAX_REQUESTS);
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..count {
        let due = started + every * u32::try_from(n).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due).await;
        let (edge, product) = (edge.clone(), product(n));
        requests.spawn(async move {
            let Ok(response) = edge.get_prices(product, None).await else {
                return Err(0);
            };
            let status = response.status();
            if response.bytes().await.is_err() {
                return Err(0);
            }
            if measured(status) {
                Ok(due.elapsed())
            } else {
                Err(status.as_u16())
            }
        });
    }
    let mut run = PacedRun {
        latencies: Vec::with_capacity(count as usize),
        others: BTreeMap::new(),
    };
    while let Some(done) = requests.join_next().await {
        match done.unwrap_or(Err(0)) {
            Ok(latency) => run.latencies.push(latency),
            Err(status) => *run.others.entry(status).or_default() += 1,
        }
    }
    run
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    #[test]
    fn only_a_200_is_a_hit() {
        assert!(is_hit(StatusCode::OK));
        for status in [
            StatusCode::ACCEPTED,
            StatusCode::NO_CONTENT,
            StatusCode::NOT_MODIFIED,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert!(!is_hit(status), "{status} counted as a hit");
        }
    }

    #[test]
    fn the_misses_of_runs_are_counted_by_status() {
        let run = |others: &[(u16, u64)]| PacedRun {
            latencies: vec![Duration::from_millis(3)],
            others: others.iter().copied().collect(),
        };
        let runs = [run(&[(202, 2)]), run(&[(202, 1), (0, 1)])];
        assert_eq!(PacedRun::others(&runs), BTreeMap::from([(0, 1), (202, 3)]));
    }
}
