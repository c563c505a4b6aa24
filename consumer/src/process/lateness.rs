//! How late this process's own runtime is: a probe task asks to wake every [`PROBE_INTERVAL`] and
//! records how much later it actually ran.
//!
//! A consumer short of CPU (a throttled container, a debug build at a large window) reads its vendors'
//! answers late: a call the vendor answered in time can still time out here. Such a timeout says
//! nothing about the vendor, so [`fetch`](crate::vendors::fetch) does not hold it against the vendor's circuit
//! breaker when the runtime was late by a tenth of the call's timeout or more while the call was out.
//! Otherwise a starved consumer opens every vendor's circuit itself and stores its whole backlog as
//! results without offers. The same lateness shrinks the in-flight window ([`crate::intake::window_size`]), so
//! that a consumer short of CPU starts only the comparisons it can keep up with.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use tokio::time::Instant;

/// How often the probe asks to wake.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// Lateness below this is the timer's own granularity, not kept.
const NOTABLE: Duration = Duration::from_millis(5);

/// How long a lateness is kept: longer than any vendor call's timeout.
const KEPT_FOR: Duration = Duration::from_secs(120);

/// The runtime's recent lateness, as the probe measured it.
#[derive(Debug)]
pub struct RuntimeLag {
    probes: Mutex<Probes>,
    /// The lateness this process tolerates: a tenth of its shortest vendor timeout.
    tolerance: Duration,
    /// Every probe's lateness, in seconds (`pricefront_runtime_lag_seconds`).
    histogram: Histogram,
}

#[derive(Debug, Default)]
struct Probes {
    /// When the probe ran, and how late, for each notable lateness within [`KEPT_FOR`].
    late: VecDeque<(Instant, Duration)>,
    /// When the probe is due next, once it runs.
    next_due: Option<Instant>,
}

impl RuntimeLag {
    /// A lag record that nothing has probed yet: it reports no lateness until [`start`](Self::start)
    /// (or a test's [`record`](Self::record)) gives it some. `shortest_timeout` is the shortest vendor
    /// timeout: a tenth of it is the lateness tolerated ([`tolerance`](Self::tolerance)).
    pub fn new(histogram: Histogram, shortest_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            probes: Mutex::new(Probes::default()),
            tolerance: shortest_timeout / 10,
            histogram,
        })
    }

    /// The lateness this process tolerates: a tenth of its shortest vendor timeout, the lateness that
    /// excuses a timeout of that vendor.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Starts the probe on the current runtime; it stops once the last `Arc` of this record is gone.
    pub fn start(self: &Arc<Self>) {
        let lag = Arc::downgrade(self);
        tokio::spawn(probe(lag));
    }

    /// The most the runtime was late after `since`, up to now, a probe overdue now included (a starved
    /// runtime runs its probe late too).
    pub fn worst_since(&self, since: Instant) -> Duration {
        let now = Instant::now();
        let probes = self.lock();
        let recorded = probes
            .late
            .iter()
            .rev()
            .take_while(|(at, _)| *at >= since)
            .map(|(_, late)| *late)
            .max()
            .unwrap_or_default();
        let overdue = probes
            .next_due
            .map_or(Duration::ZERO, |due| now.saturating_duration_since(due));
        recorded.max(overdue)
    }

    /// Whether a call of `timeout` that started at `started` may have timed out because this process
    /// was late rather than the vendor: the runtime was late by a tenth of the timeout or more.
    pub fn excuses_timeout(&self, started: Instant, timeout: Duration) -> Option<Duration> {
        let late = self.worst_since(started);
        (late >= timeout / 10 && !late.is_zero()).then_some(late)
    }

    /// Records that the probe ran at `at`, `late` after it was due, and is due again at `next_due`.
    pub fn record(&self, at: Instant, late: Duration, next_due: Instant) {
        self.histogram.observe(late.as_secs_f64());
        let mut probes = self.lock();
        if late >= NOTABLE {
            probes.late.push_back((at, late));
        }
        while probes
            .late
            .front()
            .is_some_and(|(then, _)| at.saturating_duration_since(*then) > KEPT_FOR)
        {
            probes.late.pop_front();
        }
        probes.next_due = Some(next_due);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Probes> {
        // Every update leaves the record valid, so a panic elsewhere cannot leave it torn.
        self.probes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wakes every [`PROBE_INTERVAL`] and records how late it woke, while `lag` is alive.
async fn probe(lag: Weak<RuntimeLag>) {
    let mut due = Instant::now() + PROBE_INTERVAL;
    if let Some(lag) = lag.upgrade() {
        lag.lock().next_due = Some(due);
    }
    loop {
        tokio::time::sleep_until(due).await;
        let now = Instant::now();
        let Some(lag) = lag.upgrade() else { return };
        let next = now + PROBE_INTERVAL;
        lag.record(now, now.saturating_duration_since(due), next);
        due = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag() -> Arc<RuntimeLag> {
        RuntimeLag::new(Histogram::new([0.01]), Duration::from_secs(1))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_timeout_is_excused_only_by_lateness_during_the_call_of_a_tenth_of_its_timeout() {
        let lag = lag();
        let now = Instant::now();
        let not_due_yet = now + ms(10);
        lag.record(now - ms(2_000), ms(300), not_due_yet);
        lag.record(now - ms(10), ms(2), not_due_yet);
        // Late by 300 ms before the call started: no excuse for it.
        assert_eq!(lag.excuses_timeout(now - ms(5), ms(1_000)), None);
        // A call of 1 s that was out then: 300 ms is over a tenth of it.
        assert_eq!(
            lag.excuses_timeout(now - ms(3_000), ms(1_000)),
            Some(ms(300))
        );
        // A call of 5 s: 300 ms is not.
        assert_eq!(lag.excuses_timeout(now - ms(3_000), ms(5_000)), None);
    }

    #[test]
    fn a_probe_that_is_overdue_now_counts_as_lateness() {
        let lag = lag();
        let now = Instant::now();
        lag.record(now - ms(600), Duration::ZERO, now - ms(500));
        let worst = lag.worst_since(now - ms(700));
        assert!(worst >= ms(500) && worst < ms(60_000), "{worst:?}");
        assert!(lag.excuses_timeout(now - ms(700), ms(1_000)).is_some());
    }

    #[tokio::test]
    async fn nothing_probed_excuses_nothing() {
        let lag = lag();
        assert_eq!(lag.excuses_timeout(Instant::now(), ms(1)), None);
    }

    // One thread (tokio::test's default), so that blocking it blocks the probe too.
    #[tokio::test]
    async fn the_probe_sees_a_runtime_that_was_blocked() {
        let lag = lag();
        lag.start();
        let start = Instant::now();
        tokio::time::sleep(ms(30)).await;
        // The runtime's only thread busy for 200 ms: the probe runs that much late.
        std::thread::sleep(ms(200));
        tokio::time::sleep(ms(30)).await;
        let worst = lag.worst_since(start);
        assert!(worst >= ms(150), "worst lateness seen: {worst:?}");
    }
}
