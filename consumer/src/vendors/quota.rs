//! Per-vendor quotas, per process: at most `max_requests_per_second` requests a second (a token bucket)
//! and at most `max_concurrency` requests at a time (a semaphore), shared by every comparison in flight.
//!
//! Every request to the vendor, retries included, takes a token and holds a concurrency slot for its
//! HTTP exchange. A call never waits past its deadline for either: when none can be had in time, it
//! fails at once (or when the deadline comes, for a slot) with [`QuotaExhausted`], and the comparison
//! goes on without that vendor.
//!
//! Quotas are per process: N consumer processes may send N times the quota together, so configure each
//! process with the vendor's quota divided by the number of processes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A vendor's quota settings, from the vendors file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QuotaSettings {
    /// Requests a second (may be fractional, > 0); no limit when absent.
    pub max_requests_per_second: Option<f64>,
    /// Requests at a time (≥ 1); no limit when absent.
    pub max_concurrency: Option<u32>,
}

/// A token bucket holding up to `max(1, ceil(rate))` tokens, refilled at `rate` tokens a second, that
/// hands out reservations: a token may be promised for a moment in the future, and the next caller
/// queues behind it. Kept as the theoretical arrival time of the next token (GCRA), in whole
/// nanoseconds, so it never hands out more than `burst + rate × elapsed` tokens. A pure state machine:
/// time is passed in.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// The time one token takes to come back, rounded up.
    interval: Duration,
    /// How far ahead of now the next token's time may be while tokens remain: `(burst − 1) × interval`.
    tolerance: Duration,
    burst: u32,
    /// When the bucket's next token would come if it were empty; `None` before the first reservation.
    next_token_at: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket refilled at `per_second` tokens a second (a positive, finite rate).
    pub fn new(per_second: f64) -> Self {
        // `as` saturates: a huge rate gets a 1 ns interval and a burst of u32::MAX.
        let interval_nanos = (1e9 / per_second).ceil().max(1.0) as u64;
        let interval = Duration::from_nanos(interval_nanos);
        let burst = (per_second.ceil() as u32).max(1);
        Self {
            interval,
            tolerance: interval.saturating_mul(burst - 1),
            burst,
            next_token_at: None,
        }
    }

    /// The most tokens the bucket holds.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Reserves a token for a request at `now` that must start by `deadline`: the moment the token may
    /// be used (`now` when the bucket has one), or `None`, reserving nothing, when that is after
    /// `deadline`.
    pub fn reserve(&mut self, now: Instant, deadline: Instant) -> Option<Instant> {
        let next = self.next_token_at.map_or(now, |at| at.max(now));
        let usable_at = match next.checked_sub(self.tolerance) {
            Some(earliest) if earliest > now => earliest,
            _ => now,
        };
        if usable_at > deadline {
            return None;
        }
        self.next_token_at = Some(next.checked_add(self.interval)?);
        Some(usable_at)
    }
}

/// Why a request could not be sent before its deadline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuotaExhausted {
    /// Every concurrency slot stayed taken until the deadline.
    #[error(
        "quota: {limit} requests already in flight until the deadline (max_concurrency = {limit})"
    )]
    Concurrency {
        /// The vendor's `max_concurrency`.
        limit: u32,
    },
    /// The token bucket had no token for the request before the deadline.
    #[error(
        "quota: no request allowed before the deadline (max_requests_per_second = {per_second})"
    )]
    Rate {
        /// The vendor's `max_requests_per_second`.
        per_second: f64,
    },
    /// The vendor asked us to slow down (a 429's `Retry-After`) until after the deadline.
    #[error("quota: the vendor asked for no request for {} ms more (429 Retry-After)", remaining.as_millis())]
    SlowDown {
        /// Until the vendor's `Retry-After` ends.
        remaining: Duration,
    },
}

/// A vendor's requests to slow down (429 with `Retry-After`), honoured by holding its quota until the
/// time it asked for. A pure state machine: time is passed in.
///
/// A 429 is a request to slow down, not a failure of the vendor. An episode of 429s starts with the
/// first one; a 429 to a request sent once the hold that first one asked for had ended means the vendor
/// keeps refusing although it was given the time it asked for: a failure, like any other. An answer
/// other than a 429, past the hold, ends the episode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlowDown {
    /// Until when no request is sent: the latest end any 429 of the episode asked for.
    held_until: Option<Instant>,
    /// The end of the episode's first hold: requests sent from then on were sent after waiting as asked.
    honoured_from: Option<Instant>,
}

impl SlowDown {
    /// How long a 429 without a (readable) `Retry-After` holds the vendor's quota.
    pub const DEFAULT_HOLD: Duration = Duration::from_secs(1);

    /// Records a 429, answered at `now` to a request sent at `sent_at`, asking for `retry_after` (or
    /// [`Self::DEFAULT_HOLD`]). Returns whether the vendor keeps refusing: the request was sent once the
    /// episode's first hold had ended.
    pub fn asked(&mut self, sent_at: Instant, now: Instant, retry_after: Option<Duration>) -> bool {
        let until = now + retry_after.unwrap_or(Self::DEFAULT_HOLD);
        let keeps_refusing = self.honoured_from.is_some_and(|from| sent_at >= from);
        self.honoured_from.get_or_insert(until);
        self.held_until = Some(self.held_until.map_or(until, |held| held.max(until)));
        keeps_refusing
    }

    /// Records an answer other than a 429 at `now`: once past the hold, the episode is over.
    pub fn answered(&mut self, now: Instant) {
        if self.held_until.is_some_and(|until| now >= until) {
            *self = Self::default();
        }
    }

    /// When a request may be sent, if the vendor asked to wait past `now`.
    pub fn held_until(&self, now: Instant) -> Option<Instant> {
        self.held_until.filter(|until| *until > now)
    }
}

/// Room for one request within the quota; the concurrency slot is held until this is dropped.
#[derive(Debug)]
pub struct QuotaPermit {
    _slot: Option<OwnedSemaphorePermit>,
}

/// One vendor's quota, shared by every comparison of the process.
#[derive(Debug)]
pub struct VendorQuota {
    settings: QuotaSettings,
    bucket: Option<Mutex<TokenBucket>>,
    slots: Option<Arc<Semaphore>>,
    slow_down: Mutex<SlowDown>,
}

impl VendorQuota {
    /// The quota `settings` describe (no limit for an absent setting).
    pub fn new(settings: QuotaSettings) -> Self {
        Self {
            settings,
            bucket: settings
                .max_requests_per_second
                .map(|rate| Mutex::new(TokenBucket::new(rate))),
            slots: settings.max_concurrency.map(|limit| {
                let permits = usize::try_from(limit).unwrap_or(usize::MAX);
                Arc::new(Semaphore::new(permits.min(Semaphore::MAX_PERMITS)))
            }),
            slow_down: Mutex::new(SlowDown::default()),
        }
    }

    /// Records a 429 to a request sent at `sent_at`: holds the quota for its `retry_after`; returns
    /// whether the vendor keeps refusing ([`SlowDown::asked`]).
    pub fn slow_down(&self, sent_at: Instant, retry_after: Option<Duration>) -> bool {
        self.lock_slow_down()
            .asked(sent_at, Instant::now(), retry_after)
    }

    /// Records an answer other than a 429.
    pub fn answered(&self) {
        self.lock_slow_down().answered(Instant::now());
    }

    fn lock_slow_down(&self) -> std::sync::MutexGuard<'_, SlowDown> {
        self.slow_down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the end of a vendor's request to slow down, a concurrency slot and then a token, but
    /// never past `deadline`: fails at once when the vendor asked for no request until after it.
    pub async fn acquire(&self, deadline: Instant) -> Result<QuotaPermit, QuotaExhausted> {
        // Again after each wait: 429s answered meanwhile may have moved the end of the hold.
        loop {
            let now = Instant::now();
            let held_until = self.lock_slow_down().held_until(now);
            let Some(until) = held_until else { break };
            if until > deadline {
                return Err(QuotaExhausted::SlowDown {
                    remaining: until - now,
                });
            }
            tokio::time::sleep_until(until).await;
        }
        let slot = match (&self.slots, self.settings.max_concurrency) {
            (Some(slots), Some(limit)) => {
                let exhausted = QuotaExhausted::Concurrency { limit };
                match tokio::time::timeout_at(deadline, slots.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => Some(permit),
                    // The semaphore is never closed; a closed one could not give a slot either.
                    Ok(Err(_)) | Err(_) => return Err(exhausted),
                }
            }
            _ => None,
        };
        if let (Some(bucket), Some(per_second)) =
            (&self.bucket, self.settings.max_requests_per_second)
        {
            let usable_at = bucket
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .reserve(Instant::now(), deadline)
                .ok_or(QuotaExhausted::Rate { per_second })?;
            tokio::time::sleep_until(usable_at).await;
        }
        Ok(QuotaPermit { _slot: slot })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_bucket_gives_its_burst_then_one_token_per_interval() {
        let t0 = Instant::now();
        let far = t0 + Duration::from_secs(3_600);
        let mut bucket = TokenBucket::new(2.0);
        assert_eq!(bucket.burst(), 2);
        let times: Vec<_> = (0..5)
            .map(|_| bucket.reserve(t0, far).unwrap() - t0)
            .collect();
        assert_eq!(times, [ms(0), ms(0), ms(500), ms(1_000), ms(1_500)]);
        // After a long idle spell, the bucket is full again, and no fuller.
        let later = t0 + Duration::from_secs(60);
        let times: Vec<_> = (0..3)
            .map(|_| bucket.reserve(later, far).unwrap() - later)
            .collect();
        assert_eq!(times, [ms(0), ms(0), ms(500)]);
    }

    #[test]
    fn a_fractional_rate_holds_one_token() {
        let t0 = Instant::now();
        let far = t0 + Duration::from_secs(3_600);
        let mut bucket = TokenBucket::new(0.5);
        assert_eq!(bucket.burst(), 1);
        assert_eq!(bucket.reserve(t0, far), Some(t0));
        assert_eq!(bucket.reserve(t0, far), Some(t0 + ms(2_000)));
    }

    #[test]
    fn no_token_before_the_deadline_reserves_nothing() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1.0);
        assert_eq!(bucket.reserve(t0, t0), Some(t0));
        assert_eq!(bucket.reserve(t0, t0 + ms(999)), None);
        assert_eq!(
            bucket.reserve(t0, t0 + ms(1_000)),
            Some(t0 + ms(1_000)),
            "the refused caller took nothing"
        );
    }

    #[test]
    fn the_bucket_never_gives_more_than_burst_plus_rate_times_elapsed() {
        let t0 = Instant::now();
        let far = t0 + Duration::from_secs(30 * 86_400);
        for rate in [0.3, 1.0, 2.5, 7.0, 100.0] {
            let mut bucket = TokenBucket::new(rate);
            let mut now = t0;
            for step in 0..2_000u64 {
                // Callers arrive in uneven clumps; each reservation is a request sent at its time.
                now += ms(step % 7);
                let usable_at = bucket.reserve(now, far).unwrap();
                let sent = step + 1;
                let elapsed = (usable_at - t0).as_secs_f64();
                let allowance = f64::from(bucket.burst()) + rate * elapsed;
                assert!(
                    sent as f64 <= allowance + 1e-9,
                    "rate {rate}: {sent} tokens by {elapsed} s"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_rate_quota_refuses_at_once_when_the_deadline_comes_first() {
        let quota = VendorQuota::new(QuotaSettings {
            max_requests_per_second: Some(0.5),
            max_concurrency: None,
        });
        let deadline = Instant::now() + ms(200);
        assert!(quota.acquire(deadline).await.is_ok());
        let started = Instant::now();
        assert_eq!(
            quota.acquire(deadline).await.unwrap_err(),
            QuotaExhausted::Rate { per_second: 0.5 }
        );
        assert!(
            started.elapsed() < ms(100),
            "refused without waiting for the deadline"
        );
    }

    #[tokio::test]
    async fn a_concurrency_quota_waits_for_a_slot_until_the_deadline() {
        let quota = VendorQuota::new(QuotaSettings {
            max_requests_per_second: None,
            max_concurrency: Some(1),
        });
        let deadline = Instant::now() + ms(100);
        let held = quota.acquire(deadline).await.unwrap();
        assert_eq!(
            quota.acquire(deadline).await.unwrap_err(),
            QuotaExhausted::Concurrency { limit: 1 }
        );
        drop(held);
        assert!(quota.acquire(Instant::now() + ms(100)).await.is_ok());
    }

    #[test]
    fn a_429_holds_the_quota_and_only_a_429_past_the_hold_counts_as_refusing() {
        let t0 = Instant::now();
        let mut slow = SlowDown::default();
        assert_eq!(slow.held_until(t0), None);
        assert!(
            !slow.asked(t0, t0, Some(ms(2_000))),
            "a first 429 asks to slow down"
        );
        assert_eq!(slow.held_until(t0), Some(t0 + ms(2_000)));
        assert!(
            !slow.asked(t0 + ms(10), t0 + ms(20), None),
            "a request sent during the hold is no refusal"
        );
        assert_eq!(
            slow.held_until(t0),
            Some(t0 + ms(2_000)),
            "the longer hold stays"
        );
        slow.answered(t0 + ms(100));
        assert_eq!(
            slow.held_until(t0 + ms(100)),
            Some(t0 + ms(2_000)),
            "an early answer does not end it"
        );
        assert!(
            slow.asked(t0 + ms(2_000), t0 + ms(2_010), Some(ms(500))),
            "sent after the hold ended: the vendor keeps refusing"
        );
        assert!(
            slow.asked(t0 + ms(2_001), t0 + ms(2_020), Some(ms(500))),
            "so does every request sent after the first hold, though a later 429 moved the hold on"
        );
        slow.answered(t0 + ms(3_000));
        assert_eq!(slow.held_until(t0 + ms(3_000)), None);
        assert!(
            !slow.asked(t0 + ms(4_000), t0 + ms(4_000), None),
            "a new episode"
        );
        assert_eq!(
            slow.held_until(t0 + ms(4_000)),
            Some(t0 + ms(5_000)),
            "1 s by default"
        );
    }

    #[tokio::test]
    async fn a_hold_past_the_deadline_refuses_at_once_and_one_within_it_waits() {
        let quota = VendorQuota::new(QuotaSettings::default());
        let t0 = Instant::now();
        quota.slow_down(t0, Some(ms(300)));
        let refused = quota.acquire(Instant::now() + ms(100)).await.unwrap_err();
        assert!(
            matches!(refused, QuotaExhausted::SlowDown { .. }),
            "{refused}"
        );
        quota.acquire(Instant::now() + ms(5_000)).await.unwrap();
        assert!(t0.elapsed() >= ms(300), "waited for the hold to end");
    }
}
