//! A circuit breaker per vendor, judged on a failure rate: stop asking a vendor that fails most calls,
//! and try it again after a cool-down. The design follows resilience4j's `CircuitBreaker`, which most
//! operators know; docs/configuration.md says where ours differs.
//!
//! [`CircuitBreaker`] is the pure state machine (time is passed in). It is fed each *call's* final
//! outcome ([`CallOutcome`]), never each attempt: a 503 retried into an answer is one success.
//!
//! - **Closed**: calls go through. Their outcomes fill a sliding window of at most `window_calls`
//!   outcomes no older than `window`. Once the window holds `minimum_calls` outcomes, a failure rate of
//!   `failure_rate` or more opens the circuit. A call that said nothing about the vendor (a timeout while
//!   this process was itself late, a 429 the vendor had not yet been given time for) is not counted.
//! - **Open**: calls are rejected without a request until the cool-down ends.
//! - **Half-open**: after the cool-down, `half_open_calls` calls go through as trials (one request each,
//!   no retries); the others are rejected while they are out. When all have ended, their failure rate
//!   decides: below `failure_rate` closes the circuit (empty window, cool-down reset), otherwise it opens
//!   again with the cool-down doubled, up to [`MAX_COOLDOWN`] (or the configured cool-down, if longer). A
//!   trial that never reaches the vendor (its quota ran out, its deadline cut it before sending) gives its
//!   place to the next call.
//!
//! [`VendorBreaker`] shares one breaker among a process's comparisons, mirrors its state into the
//! `pricefront_vendor_circuit_state` gauge and counts its openings.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

/// The longest cool-down that doubling reaches, unless the configured cool-down is longer.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(60);

/// A vendor's breaker settings, from the vendors file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// The most call outcomes the sliding window holds (resilience4j's `slidingWindowSize`).
    pub window_calls: u32,
    /// The oldest outcome the window holds: older ones no longer count.
    pub window: Duration,
    /// No decision below this many outcomes in the window (`minimumNumberOfCalls`).
    pub minimum_calls: u32,
    /// The share of failed calls, in (0, 1], that opens the circuit (`failureRateThreshold`).
    pub failure_rate: f64,
    /// Trial calls let through by a half-open circuit (`permittedNumberOfCallsInHalfOpenState`).
    pub half_open_calls: u32,
    /// How long the circuit stays open before its trials, until trials fail.
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    /// A window of the last 1,000 calls within 10 s, no decision below 20, open at 50% failed, 5 trials,
    /// 5 s of cool-down: a vendor that answers most calls is never cut off, one that is down is cut off
    /// within about half the window.
    ///
    /// The window is long because outcomes come in bursts: a comparison ends only when all its vendors
    /// end, so the in-flight window fills with comparisons waiting on a hung call, and their timeouts
    /// all come back together, `timeout_ms` after they were sent. With the last 100 calls (resilience4j's
    /// default), a vendor hanging on 10% of its requests and answering 66% of them had its circuit opened
    /// by such a burst in the vendor-faults drill.
    fn default() -> Self {
        Self {
            window_calls: 1_000,
            window: Duration::from_secs(10),
            minimum_calls: 20,
            failure_rate: 0.5,
            half_open_calls: 5,
            cooldown: Duration::from_secs(5),
        }
    }
}

/// The circuit's state, as the gauge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls are rejected until the cool-down ends.
    Open,
    /// A few trial calls go through; the others are rejected.
    HalfOpen,
}

impl CircuitState {
    /// The gauge's value: 0 closed, 1 open, 2 half-open.
    pub fn gauge_value(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::Open => 1,
            CircuitState::HalfOpen => 2,
        }
    }
}

/// How a call was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// An ordinary call, while the circuit is closed.
    Call,
    /// One of a half-open circuit's trials: one request, whose outcome counts towards the decision.
    Trial,
}

/// Why a call was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CircuitRejection {
    /// The circuit is open.
    #[error("circuit open: the vendor is not asked for {} ms more", remaining.as_millis())]
    Open {
        /// Until the cool-down ends.
        remaining: Duration,
    },
    /// The circuit is half-open and all of its trials are out.
    #[error("circuit half-open: its trial calls are out")]
    TrialsOut,
}

/// What one call to the vendor, retries included, came to, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The vendor answered (an offer, a 4xx other than 429, or a body we could not use: the vendor's
    /// bug, not overload).
    Succeeded,
    /// The call's last attempt met a connect error, a timeout, a 5xx, or a 429 after the vendor's own
    /// `Retry-After` had been honoured.
    Failed,
    /// Nothing learnt about the vendor: no request reached it (a quota or budget said no first), a
    /// timeout while this process was itself late ([`crate::process::lateness`]), or a first 429 (a
    /// request to slow down, which the quota honours). Not counted; a trial's place passes to the next
    /// call.
    Inconclusive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen {
        /// Trials let through and not given back.
        admitted: u32,
        /// Trials ended, and how many of them failed.
        ended: u32,
        failed: u32,
    },
}

/// One vendor's circuit breaker, a pure state machine: every method takes the current time.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    state: State,
    /// The closed circuit's outcomes, oldest first: when each ended and whether it failed.
    window: VecDeque<(Instant, bool)>,
    /// How many outcomes of `window` are failures.
    failures_in_window: u32,
    /// The cool-down of the current (or last) opening; doubled by failed trials, reset on close.
    cooldown: Duration,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: State::Closed,
            window: VecDeque::with_capacity(settings.window_calls as usize),
            failures_in_window: 0,
            cooldown: settings.cooldown,
        }
    }

    /// The state, as of the last call to [`admit`](Self::admit) or [`record`](Self::record): an open
    /// circuit whose cool-down has ended shows as open until a call tries it.
    pub fn state(&self) -> CircuitState {
        match self.state {
            State::Closed => CircuitState::Closed,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// The failure rate of the closed circuit's window at `now`, and how many outcomes it holds.
    pub fn failure_rate(&mut self, now: Instant) -> (f64, u32) {
        self.forget_older_than(now);
        let calls = self.window.len() as u32;
        let rate = if calls == 0 {
            0.0
        } else {
            f64::from(self.failures_in_window) / f64::from(calls)
        };
        (rate, calls)
    }

    /// Lets a call through at `now`, or says why not.
    pub fn admit(&mut self, now: Instant) -> Result<Admission, CircuitRejection> {
        match self.state {
            State::Closed => Ok(Admission::Call),
            State::Open { until } if now < until => Err(CircuitRejection::Open {
                remaining: until - now,
            }),
            State::Open { .. } => {
                self.state = State::HalfOpen {
                    admitted: 1,
                    ended: 0,
                    failed: 0,
                };
                Ok(Admission::Trial)
            }
            State::HalfOpen {
                admitted,
                ended,
                failed,
            } if admitted < self.settings.half_open_calls => {
                self.state = State::HalfOpen {
                    admitted: admitted + 1,
                    ended,
                    failed,
                };
                Ok(Admission::Trial)
            }
            State::HalfOpen { .. } => Err(CircuitRejection::TrialsOut),
        }
    }

    /// Records the final outcome of a call let through as `admission`. Outcomes of calls let through
    /// before the circuit last changed state are ignored.
    pub fn record(&mut self, admission: Admission, outcome: CallOutcome, now: Instant) {
        match (self.state, admission, outcome) {
            (_, _, CallOutcome::Inconclusive) => self.abandon(admission),
            (State::Closed, Admission::Call, _) => {
                let failed = outcome == CallOutcome::Failed;
                self.push(now, failed);
                let (rate, calls) = self.failure_rate(now);
                if failed
                    && calls >= self.settings.minimum_calls
                    && rate >= self.settings.failure_rate
                {
                    self.open(self.settings.cooldown, now);
                }
            }
            (
                State::HalfOpen {
                    admitted,
                    ended,
                    failed,
                },
                Admission::Trial,
                _,
            ) => {
                let ended = ended + 1;
                let failed = failed + u32::from(outcome == CallOutcome::Failed);
                if ended < self.settings.half_open_calls {
                    self.state = State::HalfOpen {
                        admitted,
                        ended,
                        failed,
                    };
                } else if f64::from(failed) / f64::from(ended) >= self.settings.failure_rate {
                    self.open(self.cooldown.saturating_mul(2), now);
                } else {
                    self.state = State::Closed;
                    self.cooldown = self.settings.cooldown;
                }
            }
            // A late outcome of a call from before the circuit changed state: it says nothing new.
            _ => {}
        }
    }

    /// A call let through as `admission` ends without anything learnt (no request reached the vendor,
    /// or its outcome was inconclusive): a trial's place passes to the next call.
    pub fn abandon(&mut self, admission: Admission) {
        if let (
            Admission::Trial,
            State::HalfOpen {
                admitted,
                ended,
                failed,
            },
        ) = (admission, self.state)
        {
            self.state = State::HalfOpen {
                admitted: admitted.saturating_sub(1).max(ended),
                ended,
                failed,
            };
        }
    }

    fn push(&mut self, now: Instant, failed: bool) {
        if self.window.len() >= self.settings.window_calls as usize {
            self.pop_oldest();
        }
        self.window.push_back((now, failed));
        self.failures_in_window += u32::from(failed);
    }

    fn forget_older_than(&mut self, now: Instant) {
        while let Some(&(at, _)) = self.window.front() {
            if now.saturating_duration_since(at) <= self.settings.window {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((_, failed)) = self.window.pop_front() {
            self.failures_in_window -= u32::from(failed);
        }
    }

    fn open(&mut self, cooldown: Duration, now: Instant) {
        let cap = MAX_COOLDOWN.max(self.settings.cooldown);
        self.cooldown = cooldown.min(cap);
        self.state = State::Open {
            until: now + self.cooldown,
        };
        self.window.clear();
        self.failures_in_window = 0;
    }
}

/// One vendor's breaker, shared by every comparison of the process, its state mirrored into a gauge and
/// its openings counted.
#[derive(Debug)]
pub struct VendorBreaker {
    breaker: Mutex<CircuitBreaker>,
    state_gauge: Gauge,
    openings: Counter,
}

impl VendorBreaker {
    /// A closed breaker with `settings`, showing its state in `state_gauge` and counting each time it
    /// opens in `openings`.
    pub fn new(settings: BreakerSettings, state_gauge: Gauge, openings: Counter) -> Self {
        let breaker = CircuitBreaker::new(settings);
        state_gauge.set(breaker.state().gauge_value());
        Self {
            breaker: Mutex::new(breaker),
            state_gauge,
            openings,
        }
    }

    /// Lets a call through if the circuit does now, with a permit that says how
    /// ([`Admission::Trial`]: one request, no retries) and takes the call's [`CallOutcome`]; says why
    /// not when the circuit rejects it. A permit dropped before its outcome is recorded (its comparison
    /// cancelled) learnt nothing: it counts as [`CallOutcome::Inconclusive`].
    ///
    /// A permit rather than a method that runs the call: the call's future is then not wrapped in one
    /// more future that holds its arguments a second time for as long as the vendor takes to answer.
    pub fn admit(&self) -> Result<BreakerPermit<'_>, CircuitRejection> {
        let admission = self.update(|breaker| breaker.admit(Instant::now()))?;
        Ok(BreakerPermit {
            breaker: self,
            admission,
        })
    }

    /// The state now.
    pub fn state(&self) -> CircuitState {
        self.lock().state()
    }

    fn update<T>(&self, change: impl FnOnce(&mut CircuitBreaker) -> T) -> T {
        let mut breaker = self.lock();
        let before = breaker.state();
        let result = change(&mut breaker);
        let after = breaker.state();
        if after == CircuitState::Open && before != CircuitState::Open {
            self.openings.inc();
        }
        self.state_gauge.set(after.gauge_value());
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        // The breaker's state is valid after every method, so a panic elsewhere cannot leave it torn.
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A call let through a [`VendorBreaker`] whose outcome is not recorded yet: dropped so (the call
/// cancelled), it gives its place away as an inconclusive call does.
#[derive(Debug)]
pub struct BreakerPermit<'a> {
    breaker: &'a VendorBreaker,
    admission: Admission,
}

impl BreakerPermit<'_> {
    /// How the call was let through: a trial makes one request, no retries.
    pub fn admission(&self) -> Admission {
        self.admission
    }

    /// Records how the call ended.
    pub fn record(self, outcome: CallOutcome) {
        let (breaker, admission) = (self.breaker, self.admission);
        // Recorded: not given away as a cancelled call (it holds a reference and a `Copy` value only,
        // so nothing leaks).
        std::mem::forget(self);
        breaker.update(|breaker| breaker.record(admission, outcome, Instant::now()));
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        let admission = self.admission;
        self.breaker.update(|breaker| breaker.abandon(admission));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(5);

    fn settings(minimum_calls: u32, half_open_calls: u32) -> BreakerSettings {
        BreakerSettings {
            window_calls: 10,
            window: Duration::from_secs(30),
            minimum_calls,
            failure_rate: 0.5,
            half_open_calls,
            cooldown: COOLDOWN,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn record(b: &mut CircuitBreaker, outcomes: &str, now: Instant) {
        for c in outcomes.chars() {
            let outcome = match c {
                'f' => CallOutcome::Failed,
                's' => CallOutcome::Succeeded,
                _ => CallOutcome::Inconclusive,
            };
            b.record(Admission::Call, outcome, now);
        }
    }

    /// Opens `b` at `t0` with failures, then returns when its cool-down ends.
    fn opened(b: &mut CircuitBreaker, t0: Instant) -> Instant {
        record(b, "ffffffffff", t0);
        assert_eq!(b.state(), CircuitState::Open);
        t0 + COOLDOWN
    }

    #[test]
    fn failures_in_a_row_below_the_rate_do_not_open_it() {
        // The old breaker opened on 20 failures in a row: a burst of hung calls timing out together did
        // it to vendors that answered 60% of calls. Judged on the rate, 4 failures in a row among 10
        // calls are 40%.
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings(5, 3));
        record(&mut b, "ssssssffff", t0);
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.failure_rate(t0), (0.4, 10));
        record(&mut b, "f", t0);
        assert_eq!(b.state(), CircuitState::Open, "5 of the last 10 failed");
    }

    #[test]
    fn no_decision_below_the_minimum_number_of_calls() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings(5, 3));
        record(&mut b, "ffff", t0);
        assert_eq!(b.state(), CircuitState::Closed, "4 calls say nothing yet");
        record(&mut b, "f", t0);
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn inconclusive_outcomes_are_not_counted() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings(5, 3));
        record(&mut b, "ffffiiiiiiiiii", t0);
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.failure_rate(t0), (1.0, 4));
    }

    #[test]
    fn the_window_slides_by_count_and_by_age() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings(5, 3));
        record(&mut b, "ffff", t0);
        record(&mut b, "ssssssssss", t0);
        assert_eq!(b.failure_rate(t0), (0.0, 10), "the failures slid out");
        let later = t0 + secs(31);
        assert_eq!(b.failure_rate(later), (0.0, 0), "too old to count");
        record(&mut b, "ffff", later);
        assert_eq!(b.state(), CircuitState::Closed, "4 recent calls only");
        record(&mut b, "f", later);
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn an_open_circuit_rejects_until_the_cooldown_ends() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings(5, 3));
        let after = opened(&mut b, t0);
        assert_eq!(
            b.admit(t0 + secs(1)),
            Err(CircuitRejection::Open { remaining: secs(4) })
        );
        assert_eq!(b.admit(after), Ok(Admission::Trial));
        assert_eq!(b.state(), CircuitState::HalfOpen);
    }

    #[test]
    fn half_open_lets_its_trials_through_and_their_rate_closes_it() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings(5, 3));
        let after = opened(&mut b, t0);
        for _ in 0..3 {
            assert_eq!(b.admit(after), Ok(Admission::Trial));
        }
        assert_eq!(b.admit(after), Err(CircuitRejection::TrialsOut));
        // A late failure of an older call changes nothing.
        b.record(Admission::Call, CallOutcome::Failed, after);
        b.record(Admission::Trial, CallOutcome::Succeeded, after);
        b.record(Admission::Trial, CallOutcome::Failed, after);
        assert_eq!(b.state(), CircuitState::HalfOpen, "one trial still out");
        b.record(Admission::Trial, CallOutcome::Succeeded, after);
        assert_eq!(b.state(), CircuitState::Closed, "1 of 3 failed");
        assert_eq!(b.admit(after), Ok(Admission::Call));
        assert_eq!(
            b.failure_rate(after),
            (0.0, 0),
            "a closed circuit starts afresh"
        );
    }

    #[test]
    fn failed_trials_double_the_cooldown_up_to_the_cap_and_a_close_resets_it() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings(5, 2));
        let mut now = opened(&mut b, t0);
        let mut expected = COOLDOWN;
        for _ in 0..6 {
            assert_eq!(b.admit(now), Ok(Admission::Trial));
            assert_eq!(b.admit(now), Ok(Admission::Trial));
            b.record(Admission::Trial, CallOutcome::Succeeded, now);
            b.record(Admission::Trial, CallOutcome::Failed, now);
            expected = (expected * 2).min(MAX_COOLDOWN);
            assert_eq!(b.state(), CircuitState::Open, "1 of 2 is 50%");
            assert_eq!(
                b.admit(now),
                Err(CircuitRejection::Open {
                    remaining: expected
                })
            );
            now += expected;
        }
        assert_eq!(expected, MAX_COOLDOWN, "5, 10, 20, 40, then 60 s");
        assert_eq!(b.admit(now), Ok(Admission::Trial));
        assert_eq!(b.admit(now), Ok(Admission::Trial));
        b.record(Admission::Trial, CallOutcome::Succeeded, now);
        b.record(Admission::Trial, CallOutcome::Succeeded, now);
        assert_eq!(b.state(), CircuitState::Closed);
        record(&mut b, "fffff", now);
        assert_eq!(
            b.admit(now),
            Err(CircuitRejection::Open {
                remaining: COOLDOWN
            }),
            "closing reset the cool-down"
        );
    }

    #[test]
    fn an_abandoned_or_inconclusive_trial_gives_its_place_away() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(settings(5, 2));
        let after = opened(&mut b, t0);
        assert_eq!(b.admit(after), Ok(Admission::Trial));
        assert_eq!(b.admit(after), Ok(Admission::Trial));
        assert_eq!(b.admit(after), Err(CircuitRejection::TrialsOut));
        b.abandon(Admission::Call);
        assert_eq!(b.admit(after), Err(CircuitRejection::TrialsOut));
        b.abandon(Admission::Trial);
        assert_eq!(b.admit(after), Ok(Admission::Trial));
        b.record(Admission::Trial, CallOutcome::Inconclusive, after);
        assert_eq!(b.admit(after), Ok(Admission::Trial));
        b.record(Admission::Trial, CallOutcome::Succeeded, after);
        b.record(Admission::Trial, CallOutcome::Succeeded, after);
        assert_eq!(b.state(), CircuitState::Closed);
    }

    /// Runs one call through `shared` that comes to `outcome`; how it was let through, or why not.
    fn call(shared: &VendorBreaker, outcome: CallOutcome) -> Result<Admission, CircuitRejection> {
        let permit = shared.admit()?;
        let admission = permit.admission();
        permit.record(outcome);
        Ok(admission)
    }

    #[test]
    fn the_shared_breaker_mirrors_its_state_counts_openings_and_gives_up_a_cancelled_trial() {
        let gauge = Gauge::default();
        let openings = Counter::default();
        let shared = VendorBreaker::new(
            BreakerSettings {
                minimum_calls: 1,
                half_open_calls: 1,
                cooldown: Duration::ZERO,
                ..BreakerSettings::default()
            },
            gauge.clone(),
            openings.clone(),
        );
        assert_eq!(gauge.get(), 0);
        assert_eq!(call(&shared, CallOutcome::Failed), Ok(Admission::Call));
        assert_eq!(gauge.get(), 1);
        assert_eq!(openings.get(), 1);

        // A trial under way holds the only place; cancelled, it gives it away.
        let trial = shared.admit().expect("a trial");
        assert_eq!(trial.admission(), Admission::Trial);
        assert_eq!(gauge.get(), 2);
        assert_eq!(
            shared.admit().map(|permit| permit.admission()),
            Err(CircuitRejection::TrialsOut),
            "the trial under way holds the only place"
        );
        drop(trial);
        assert_eq!(
            call(&shared, CallOutcome::Inconclusive),
            Ok(Admission::Trial),
            "the cancelled trial gave its place away"
        );
        assert_eq!(call(&shared, CallOutcome::Succeeded), Ok(Admission::Trial));
        assert_eq!(shared.state(), CircuitState::Closed);
        assert_eq!(gauge.get(), 0);
        assert_eq!(openings.get(), 1);
    }
}
