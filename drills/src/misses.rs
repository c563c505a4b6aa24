//! A steady stream of distinct misses at the edge (each for a product of its own, asked once), for the
//! drills that break the publish path under load: every answer kept, with when it was sent and how
//! long it took.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pricefront_core::ProductId;
use pricefront_harness::edge::{unused_product, Edge};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::DrillError;

/// The longest a stream runs, whatever happens to the stack.
const BOUND: Duration = Duration::from_secs(600);

/// One miss and what the edge answered.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// The product asked for.
    pub product: ProductId,
    /// The status; `None` when the request failed.
    pub status: Option<u16>,
    /// Why the request failed, when it did (the HTTP client's error, with its causes).
    pub error: Option<String>,
    /// Whether the answer had `Retry-After`.
    pub retry_after: bool,
    /// When it was sent.
    pub sent: Instant,
    /// How long the answer took.
    pub took: Duration,
}

impl Answer {
    /// Answered 202: the edge says its record is in Kafka.
    pub fn accepted(&self) -> bool {
        self.status == Some(202)
    }
}

/// A stream of misses running in the background until [`MissStream::finish`].
pub(crate) struct MissStream {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Vec<Answer>>,
    accepted: Arc<AtomicU64>,
}

impl MissStream {
    /// Starts `per_second` distinct misses a second at `edge`, spread evenly, each on a new connection
    /// (distinct clients; see [`Edge::at_with_fresh_connections`]).
    pub fn start(edge: &Edge, per_second: u32) -> Self {
        let (stop, stopped) = oneshot::channel();
        let accepted = Arc::new(AtomicU64::new(0));
        let edge = Edge::at_with_fresh_connections(edge.base.clone());
        let task = tokio::spawn(run(edge, per_second, stopped, accepted.clone()));
        Self {
            stop,
            task,
            accepted,
        }
    }

    /// How many misses were answered 202 so far.
    pub fn accepted_so_far(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Waits (within `limit`) until a miss is answered 202 after now; how long that took, `None` if none
    /// was.
    pub async fn next_accepted(&self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        let before = self.accepted_so_far();
        while started.elapsed() < limit {
            if self.accepted_so_far() > before {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Stops sending and waits for every answer still outstanding.
    pub async fn finish(self) -> Result<Vec<Answer>, DrillError> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| DrillError::Precondition(format!("the load task failed: {e}")))
    }
}

async fn run(
    edge: Edge,
    per_second: u32,
    mut stopped: oneshot::Receiver<()>,
    accepted: Arc<AtomicU64>,
) -> Vec<Answer> {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second.max(1));
    let bound = Instant::now() + BOUND;
    let mut pending = tokio::task::JoinSet::new();
    while Instant::now() < bound {
        tokio::select! {
            _ = &mut stopped => break,
            _ = tick.tick() => {}
        }
        let edge = edge.clone();
        let accepted = accepted.clone();
        pending.spawn(async move {
            let product = unused_product();
            let sent = Instant::now();
            let (response, error) = match edge.get_prices(product, None).await {
                Ok(response) => (Some(response), None),
                Err(error) => (None, Some(crate::support::with_causes(error))),
            };
            if response.as_ref().is_some_and(|r| r.status() == 202) {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
            Answer {
                product,
                status: response.as_ref().map(|r| r.status().as_u16()),
                error,
                retry_after: response
                    .as_ref()
                    .is_some_and(|r| r.headers().contains_key("retry-after")),
                sent,
                took: sent.elapsed(),
            }
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = pending.join_next().await {
        if let Ok(answer) = answer {
            answers.push(answer);
        }
    }
    answers
}
