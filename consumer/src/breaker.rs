//! A circuit breaker per vendor: stop asking a vendor that is overloaded or down, and probe it again
//! after a cool-down.
//!
//! [`CircuitBreaker`] is the pure state machine (time is passed in):
//!
//! - **Closed**: calls go through. A 429 opens it at once; so do `failure_threshold` failed requests in
//!   a row (connect errors, timeouts, 5xx). An answer, even an unreadable one (a malformed or too large
//!   body is the vendor's bug, not overload), resets the count.
//! - **Open**: calls are rejected without a request until the cool-down ends. A 429's `Retry-After`, when
//!   longer than the cool-down, sets it.
//! - **Half-open**: after the cool-down, exactly one call goes through as a probe (one request, no
//!   retries); the others are rejected. The probe's answer closes the circuit and resets the cool-down;
//!   its failure opens it again with the cool-down doubled, up to [`MAX_COOLDOWN`] (or the configured
//!   cool-down, if longer). A probe that never reaches the vendor (its quota ran out, its deadline cut it)
//!   lets the next call probe instead.
//!
//! Calls are admitted, not requests: a call admitted while the circuit was closed keeps its retries
//! (connect errors and 5xx) even if the circuit opens meanwhile, and each of its requests' outcomes feeds
//! the breaker. [`VendorBreaker`] shares one breaker among a process's comparisons and mirrors its
//! state into the `pricefront_vendor_circuit_state` gauge.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

/// The longest cool-down that doubling (or a vendor's `Retry-After`) reaches, unless the configured
/// cool-down is longer.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(60);

/// A vendor's breaker settings, from the vendors file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failed requests in a row (connect errors, timeouts, 5xx) that open the circuit; at least 1.
    pub failure_threshold: u32,
    /// How long the circuit stays open before a probe, until a probe fails.
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    /// 20 failures in a row: many calls run at once, so a vendor failing 40% of them (which still
    /// answers most) would see 5 in a row every few seconds and be cut off (the vendor-faults drill did
    /// with 5); a vendor that is down still opens its circuit within its first 20 calls.
    fn default() -> Self {
        Self {
            failure_threshold: 20,
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
    /// One probe call goes through; the others are rejected.
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
    /// The one probe of a half-open circuit: one request, whose outcome decides.
    Probe,
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
    /// The circuit is half-open and another call is its probe.
    #[error("circuit half-open: another call is probing the vendor")]
    ProbeInFlight,
}

/// What one request to the vendor came to, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The vendor answered (an offer, a 4xx other than 429, or a body we could not use).
    Answered,
    /// A connect error, a timeout or a 5xx.
    Failed,
    /// A 429, with its `Retry-After` if it gave one.
    Overloaded {
        /// How long the vendor asked us to wait.
        retry_after: Option<Duration>,
    },
    /// Nothing learnt about the vendor: a timeout while this process was itself late
    /// ([`crate::lag`]). The failures in a row stay as they were; a probe's turn passes to the next call.
    Inconclusive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { consecutive_failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_in_flight: bool },
}

/// One vendor's circuit breaker, a pure state machine: every method takes the current time.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    state: State,
    /// The cool-down of the current (or last) opening; doubled by a failed probe, reset on close.
    cooldown: Duration,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: State::Closed {
                consecutive_failures: 0,
            },
            cooldown: settings.cooldown,
        }
    }

    /// The state, as of the last call to [`admit`](Self::admit) or [`record`](Self::record): an open
    /// circuit whose cool-down has ended shows as open until a call probes it.
    pub fn state(&self) -> CircuitState {
        match self.state {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Lets a call through at `now`, or says why not.
    pub fn admit(&mut self, now: Instant) -> Result<Admission, CircuitRejection> {
        match self.state {
            State::Closed { .. } => Ok(Admission::Call),
            State::Open { until } if now < until => Err(CircuitRejection::Open {
                remaining: until - now,
            }),
            State::Open { .. }
            | State::HalfOpen {
                probe_in_flight: false,
            } => {
                self.state = State::HalfOpen {
                    probe_in_flight: true,
                };
                Ok(Admission::Probe)
            }
            State::HalfOpen {
                probe_in_flight: true,
            } => Err(CircuitRejection::ProbeInFlight),
        }
    }

    /// Records the outcome of one request of a call let through as `admission`. Outcomes of calls let
    /// through before the circuit last opened are ignored.
    pub fn record(&mut self, admission: Admission, outcome: RequestOutcome, now: Instant) {
        match (self.state, admission) {
            (
                State::Closed {
                    consecutive_failures,
                },
                Admission::Call,
            ) => match outcome {
                RequestOutcome::Answered => {
                    self.state = State::Closed {
                        consecutive_failures: 0,
                    }
                }
                RequestOutcome::Failed => {
                    let failures = consecutive_failures.saturating_add(1);
                    if failures >= self.settings.failure_threshold {
                        self.open(self.settings.cooldown, now);
                    } else {
                        self.state = State::Closed {
                            consecutive_failures: failures,
                        };
                    }
                }
                RequestOutcome::Overloaded { retry_after } => {
                    let cooldown = self.settings.cooldown.max(retry_after.unwrap_or_default());
                    self.open(cooldown, now);
                }
                RequestOutcome::Inconclusive => {}
            },
            (State::HalfOpen { .. }, Admission::Probe) => match outcome {
                RequestOutcome::Answered => {
                    self.state = State::Closed {
                        consecutive_failures: 0,
                    };
                    self.cooldown = self.settings.cooldown;
                }
                RequestOutcome::Failed => self.open(self.cooldown.saturating_mul(2), now),
                RequestOutcome::Overloaded { retry_after } => {
                    let doubled = self.cooldown.saturating_mul(2);
                    self.open(doubled.max(retry_after.unwrap_or_default()), now);
                }
                RequestOutcome::Inconclusive => self.abandon(admission),
            },
            // A late outcome of a call from before the circuit opened: it says nothing new.
            _ => {}
        }
    }

    /// A call let through as `admission` ends without reaching the vendor: a probe's turn passes to the
    /// next call.
    pub fn abandon(&mut self, admission: Admission) {
        if admission == Admission::Probe
            && self.state
                == (State::HalfOpen {
                    probe_in_flight: true,
                })
        {
            self.state = State::HalfOpen {
                probe_in_flight: false,
            };
        }
    }

    fn open(&mut self, cooldown: Duration, now: Instant) {
        let cap = MAX_COOLDOWN.max(self.settings.cooldown);
        self.cooldown = cooldown.min(cap);
        self.state = State::Open {
            until: now + self.cooldown,
        };
    }
}

/// One vendor's breaker, shared by every comparison of the process, its state mirrored into a gauge.
#[derive(Debug)]
pub struct VendorBreaker {
    breaker: Mutex<CircuitBreaker>,
    state_gauge: Gauge,
}

impl VendorBreaker {
    /// A closed breaker with `settings`, showing its state in `state_gauge`.
    pub fn new(settings: BreakerSettings, state_gauge: Gauge) -> Self {
        let breaker = CircuitBreaker::new(settings);
        state_gauge.set(breaker.state().gauge_value());
        Self {
            breaker: Mutex::new(breaker),
            state_gauge,
        }
    }

    /// Lets a call through now, or says why not. The pass reports the call's requests' outcomes, and
    /// gives a probe's turn away if dropped before reporting any.
    pub fn admit(&self) -> Result<BreakerPass<'_>, CircuitRejection> {
        let admission = self.update(|breaker| breaker.admit(Instant::now()))?;
        Ok(BreakerPass {
            breaker: self,
            admission,
            reported: AtomicBool::new(false),
        })
    }

    /// The state now.
    pub fn state(&self) -> CircuitState {
        self.lock().state()
    }

    fn update<T>(&self, change: impl FnOnce(&mut CircuitBreaker) -> T) -> T {
        let mut breaker = self.lock();
        let result = change(&mut breaker);
        self.state_gauge.set(breaker.state().gauge_value());
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        // The breaker's state is valid after every method, so a panic elsewhere cannot leave it torn.
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A call let through a [`VendorBreaker`].
#[derive(Debug)]
pub struct BreakerPass<'a> {
    breaker: &'a VendorBreaker,
    admission: Admission,
    reported: AtomicBool,
}

impl BreakerPass<'_> {
    /// Whether this call is the half-open circuit's probe (which makes one request, without retries).
    pub fn is_probe(&self) -> bool {
        self.admission == Admission::Probe
    }

    /// Reports the outcome of one of the call's requests.
    pub fn report(&self, outcome: RequestOutcome) {
        self.reported.store(true, Ordering::Relaxed);
        self.breaker
            .update(|breaker| breaker.record(self.admission, outcome, Instant::now()));
    }
}

impl Drop for BreakerPass<'_> {
    fn drop(&mut self) {
        if !self.reported.load(Ordering::Relaxed) {
            self.breaker
                .update(|breaker| breaker.abandon(self.admission));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(5);

    fn breaker(failure_threshold: u32) -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings {
            failure_threshold,
            cooldown: COOLDOWN,
        })
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn consecutive_failures_open_it_and_an_answer_resets_the_count() {
        let t0 = Instant::now();
        let mut b = breaker(3);
        for _ in 0..2 {
            assert_eq!(b.admit(t0), Ok(Admission::Call));
            b.record(Admission::Call, RequestOutcome::Failed, t0);
        }
        b.record(Admission::Call, RequestOutcome::Answered, t0);
        b.record(Admission::Call, RequestOutcome::Failed, t0);
        b.record(Admission::Call, RequestOutcome::Failed, t0);
        assert_eq!(
            b.state(),
            CircuitState::Closed,
            "the answer reset the count"
        );
        b.record(Admission::Call, RequestOutcome::Failed, t0);
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(
            b.admit(t0 + secs(1)),
            Err(CircuitRejection::Open { remaining: secs(4) })
        );
    }

    #[test]
    fn a_429_opens_it_at_once_for_its_retry_after_when_longer() {
        let t0 = Instant::now();
        let mut b = breaker(5);
        b.record(
            Admission::Call,
            RequestOutcome::Overloaded { retry_after: None },
            t0,
        );
        assert_eq!(b.state(), CircuitState::Open);
        assert!(b.admit(t0 + secs(4)).is_err());
        assert_eq!(b.admit(t0 + secs(5)), Ok(Admission::Probe));

        let mut b = breaker(5);
        let overloaded = RequestOutcome::Overloaded {
            retry_after: Some(secs(20)),
        };
        b.record(Admission::Call, overloaded, t0);
        assert!(b.admit(t0 + secs(19)).is_err());
        assert_eq!(b.admit(t0 + secs(20)), Ok(Admission::Probe));

        let mut b = breaker(5);
        let shorter = RequestOutcome::Overloaded {
            retry_after: Some(secs(1)),
        };
        b.record(Admission::Call, shorter, t0);
        assert!(b.admit(t0 + secs(2)).is_err(), "the cool-down is longer");
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_answer_closes_it() {
        let t0 = Instant::now();
        let mut b = breaker(1);
        b.record(Admission::Call, RequestOutcome::Failed, t0);
        let after = t0 + COOLDOWN;
        assert_eq!(b.admit(after), Ok(Admission::Probe));
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert_eq!(b.admit(after), Err(CircuitRejection::ProbeInFlight));
        // A late failure of an older call changes nothing.
        b.record(Admission::Call, RequestOutcome::Failed, after);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        b.record(Admission::Probe, RequestOutcome::Answered, after);
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.admit(after), Ok(Admission::Call));
    }

    #[test]
    fn a_failed_probe_doubles_the_cooldown_up_to_the_cap_and_a_close_resets_it() {
        let t0 = Instant::now();
        let mut b = breaker(1);
        b.record(Admission::Call, RequestOutcome::Failed, t0);
        let mut now = t0 + COOLDOWN;
        let mut expected = COOLDOWN;
        for _ in 0..6 {
            assert_eq!(b.admit(now), Ok(Admission::Probe));
            b.record(Admission::Probe, RequestOutcome::Failed, now);
            expected = (expected * 2).min(MAX_COOLDOWN);
            assert_eq!(b.state(), CircuitState::Open);
            assert_eq!(
                b.admit(now),
                Err(CircuitRejection::Open {
                    remaining: expected
                })
            );
            now += expected;
        }
        assert_eq!(expected, MAX_COOLDOWN, "5, 10, 20, 40, then 60 s");
        assert_eq!(b.admit(now), Ok(Admission::Probe));
        b.record(Admission::Probe, RequestOutcome::Answered, now);
        b.record(Admission::Call, RequestOutcome::Failed, now);
        assert_eq!(
            b.admit(now),
            Err(CircuitRejection::Open {
                remaining: COOLDOWN
            }),
            "closing reset the cool-down"
        );
    }

    #[test]
    fn a_probe_answered_429_reopens_for_the_longer_of_double_and_retry_after() {
        let t0 = Instant::now();
        let mut b = breaker(1);
        b.record(Admission::Call, RequestOutcome::Failed, t0);
        let now = t0 + COOLDOWN;
        assert_eq!(b.admit(now), Ok(Admission::Probe));
        let overloaded = RequestOutcome::Overloaded {
            retry_after: Some(secs(30)),
        };
        b.record(Admission::Probe, overloaded, now);
        assert_eq!(
            b.admit(now),
            Err(CircuitRejection::Open {
                remaining: secs(30)
            })
        );
        let later = now + secs(30);
        assert_eq!(b.admit(later), Ok(Admission::Probe));
        let huge = RequestOutcome::Overloaded {
            retry_after: Some(secs(3_600)),
        };
        b.record(Admission::Probe, huge, later);
        assert_eq!(
            b.admit(later),
            Err(CircuitRejection::Open {
                remaining: MAX_COOLDOWN
            }),
            "capped"
        );
    }

    #[test]
    fn an_inconclusive_outcome_neither_counts_nor_resets_and_passes_a_probe_on() {
        let t0 = Instant::now();
        let mut b = breaker(2);
        b.record(Admission::Call, RequestOutcome::Failed, t0);
        for _ in 0..10 {
            b.record(Admission::Call, RequestOutcome::Inconclusive, t0);
        }
        assert_eq!(b.state(), CircuitState::Closed, "not counted as failures");
        b.record(Admission::Call, RequestOutcome::Failed, t0);
        assert_eq!(b.state(), CircuitState::Open, "nor did it reset the count");
        let now = t0 + COOLDOWN;
        assert_eq!(b.admit(now), Ok(Admission::Probe));
        b.record(Admission::Probe, RequestOutcome::Inconclusive, now);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert_eq!(b.admit(now), Ok(Admission::Probe), "the next call probes");
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let t0 = Instant::now();
        let mut b = breaker(1);
        b.record(Admission::Call, RequestOutcome::Failed, t0);
        let now = t0 + COOLDOWN;
        assert_eq!(b.admit(now), Ok(Admission::Probe));
        b.abandon(Admission::Call);
        assert_eq!(b.admit(now), Err(CircuitRejection::ProbeInFlight));
        b.abandon(Admission::Probe);
        assert_eq!(b.admit(now), Ok(Admission::Probe));
    }

    #[test]
    fn the_shared_breaker_mirrors_its_state_and_gives_up_a_dropped_probe() {
        let gauge = Gauge::default();
        let shared = VendorBreaker::new(
            BreakerSettings {
                failure_threshold: 1,
                cooldown: Duration::ZERO,
            },
            gauge.clone(),
        );
        assert_eq!(gauge.get(), 0);
        shared
            .admit()
            .unwrap()
            .report(RequestOutcome::Overloaded { retry_after: None });
        assert_eq!(gauge.get(), 1);
        let probe = shared.admit().unwrap();
        assert!(probe.is_probe());
        assert_eq!(gauge.get(), 2);
        assert!(matches!(
            shared.admit(),
            Err(CircuitRejection::ProbeInFlight)
        ));
        drop(probe);
        let probe = shared.admit().unwrap();
        assert!(probe.is_probe(), "the dropped probe gave its turn away");
        probe.report(RequestOutcome::Answered);
        assert_eq!(shared.state(), CircuitState::Closed);
        assert_eq!(gauge.get(), 0);
    }
}
