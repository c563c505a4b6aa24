//! Asking one vendor for one product's price: the vendor's circuit breaker first, then for each attempt
//! a place in the vendor's quota, a timeout, retries of connect errors, 5xx and 429 with jittered
//! exponential backoff (honouring `Retry-After`, in seconds or as an HTTP-date), an overall deadline,
//! and a cap on the body size.
//!
//! The breaker is told each call's final outcome once, when the call ends ([`CallOutcome`]), not each
//! attempt's. A 429 holds the vendor's quota until its `Retry-After` ([`crate::vendors::quota::SlowDown`]) and
//! counts as a failure only when the vendor answers 429 again to a request sent after that. An attempt
//! that the deadline cuts is a timeout like any other, never silently dropped.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use pricefront_core::{FailureKind, Offer, TraceContext, VendorFailure, VendorOutcome};
use prometheus_client::metrics::counter::Counter;
use redis::aio::ConnectionManager;
use reqwest::{header, Client, StatusCode};
use tokio::time::Instant;

use crate::process::clock;
use crate::process::lateness::RuntimeLag;
use crate::process::metrics::{Metrics, VendorAttemptLabels, VendorLabel, VendorOutcomeLabels};
use crate::process::redact;
use crate::process::settings::Settings;
use crate::process::telemetry::call_context;
use crate::vendors::auth::{bearer, AuthState, BearerToken, MintOutcome};
use crate::vendors::breaker::{Admission, CallOutcome, VendorBreaker};
use crate::vendors::budget::{DailyBudget, Taken};
use crate::vendors::offers::Reading;
use crate::vendors::quota::VendorQuota;
use crate::vendors::request::{FilledRequest, Identifiers, RequestError};
use crate::vendors::vendor::{StatusKind, Vendor};
use pricefront_core::trace_context::TRACEPARENT;

/// Limits that apply to every vendor call.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    /// The overall deadline for one vendor, retries included.
    pub deadline: Duration,
    /// The largest body read from a vendor.
    pub max_body_bytes: usize,
    /// The first retry delay; later ones grow exponentially, with jitter.
    pub first_backoff: Duration,
}

impl FetchLimits {
    /// The limits `settings` give every vendor call.
    pub fn of(settings: &Settings) -> Self {
        Self {
            deadline: Duration::from_millis(settings.vendor_deadline_ms),
            max_body_bytes: settings.max_body_bytes,
            first_backoff: Duration::from_millis(settings.vendor_backoff_ms),
        }
    }
}

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AttemptError {
    Connect(String),
    /// No answer within the vendor's timeout (or before the deadline cut the attempt);
    /// `own_lateness` when this process was itself late enough meanwhile that the vendor may have
    /// answered in time ([`RuntimeLag::excuses_timeout`]).
    Timeout {
        after: Duration,
        own_lateness: Option<Duration>,
    },
    /// An error status other than 429.
    Status(StatusCode),
    /// A 429: the vendor asks us to slow down; `keeps_refusing` when the request was sent after the
    /// hold an earlier 429 asked for had ended.
    TooManyRequests {
        retry_after: Option<Duration>,
        keeps_refusing: bool,
    },
    TooLarge(usize),
    Malformed(String),
    /// No room in the vendor's quota before the deadline, or its daily budget spent: no request was
    /// sent.
    Quota(String),
    /// The vendor answered that it has no offer for the product.
    NotListed(String),
    /// No access token could be had: no request was sent.
    TokenMint(String),
}

/// What one attempt came to, as `pricefront_vendor_attempts_total` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttemptOutcome {
    Ok,
    Timeout,
    Connect,
    Http5xx,
    Http429,
    Http4xx,
    Malformed,
    TooLarge,
    NotListed,
}

impl AttemptOutcome {
    /// Every outcome, in declaration order: `outcome as usize` is its index here.
    const ALL: [AttemptOutcome; 9] = [
        AttemptOutcome::Ok,
        AttemptOutcome::Timeout,
        AttemptOutcome::Connect,
        AttemptOutcome::Http5xx,
        AttemptOutcome::Http429,
        AttemptOutcome::Http4xx,
        AttemptOutcome::Malformed,
        AttemptOutcome::TooLarge,
        AttemptOutcome::NotListed,
    ];

    fn label(self) -> &'static str {
        match self {
            AttemptOutcome::Ok => "ok",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::Connect => "connect",
            AttemptOutcome::Http5xx => "http_5xx",
            AttemptOutcome::Http429 => "http_429",
            AttemptOutcome::Http4xx => "http_4xx",
            AttemptOutcome::Malformed => "malformed_body",
            AttemptOutcome::TooLarge => "too_large",
            AttemptOutcome::NotListed => "not_listed",
        }
    }
}

impl AttemptError {
    /// Connect errors, 5xx and 429 are retried (a 429 after its `Retry-After`); a timeout is not.
    fn is_retryable(&self) -> bool {
        match self {
            AttemptError::Connect(_) | AttemptError::TooManyRequests { .. } => true,
            AttemptError::Status(status) => status.is_server_error(),
            _ => false,
        }
    }

    /// What the attempt, were it the call's last, says about the vendor's health: a malformed or too
    /// large body (or a 4xx other than 429) is the vendor answering, with a bug, not the vendor
    /// overloaded or down.
    fn call_outcome(&self) -> CallOutcome {
        match self {
            AttemptError::Timeout {
                own_lateness: Some(_),
                ..
            } => CallOutcome::Inconclusive,
            AttemptError::Connect(_) | AttemptError::Timeout { .. } => CallOutcome::Failed,
            AttemptError::TooManyRequests { keeps_refusing, .. } => {
                if *keeps_refusing {
                    CallOutcome::Failed
                } else {
                    CallOutcome::Inconclusive
                }
            }
            AttemptError::Status(status) if status.is_server_error() => CallOutcome::Failed,
            AttemptError::Status(_)
            | AttemptError::TooLarge(_)
            | AttemptError::Malformed(_)
            | AttemptError::NotListed(_) => CallOutcome::Succeeded,
            AttemptError::Quota(_) | AttemptError::TokenMint(_) => CallOutcome::Inconclusive,
        }
    }

    /// The attempt's label; `None` for a quota refusal, which sent no request.
    fn outcome(&self) -> Option<AttemptOutcome> {
        Some(match self {
            AttemptError::Connect(_) => AttemptOutcome::Connect,
            AttemptError::Timeout { .. } => AttemptOutcome::Timeout,
            AttemptError::Status(status) if status.is_server_error() => AttemptOutcome::Http5xx,
            AttemptError::Status(_) => AttemptOutcome::Http4xx,
            AttemptError::TooManyRequests { .. } => AttemptOutcome::Http429,
            AttemptError::TooLarge(_) => AttemptOutcome::TooLarge,
            AttemptError::Malformed(_) => AttemptOutcome::Malformed,
            AttemptError::NotListed(_) => AttemptOutcome::NotListed,
            AttemptError::Quota(_) | AttemptError::TokenMint(_) => return None,
        })
    }

    fn kind(&self) -> FailureKind {
        match self {
            AttemptError::Connect(_) => FailureKind::Connect,
            AttemptError::Timeout { .. } => FailureKind::Timeout,
            AttemptError::Status(_) | AttemptError::TooManyRequests { .. } => {
                FailureKind::HttpStatus
            }
            AttemptError::TooLarge(_) => FailureKind::TooLarge,
            AttemptError::Malformed(_) => FailureKind::MalformedBody,
            AttemptError::Quota(_) => FailureKind::Quota,
            AttemptError::NotListed(_) => FailureKind::NotListed,
            AttemptError::TokenMint(_) => FailureKind::TokenMint,
        }
    }

    fn detail(&self) -> String {
        match self {
            AttemptError::Connect(e) => format!("could not connect: {e}"),
            AttemptError::Timeout {
                after,
                own_lateness: None,
            } => format!("no answer within {} ms", after.as_millis()),
            AttemptError::Timeout {
                after,
                own_lateness: Some(late),
            } => format!(
                "no answer within {} ms, while this consumer was itself up to {} ms late (not held against the vendor)",
                after.as_millis(),
                late.as_millis()
            ),
            AttemptError::Status(status) => format!("answered {status}"),
            AttemptError::TooManyRequests { retry_after, .. } => match retry_after {
                Some(after) => format!(
                    "answered 429 Too Many Requests, Retry-After {} ms",
                    after.as_millis()
                ),
                None => "answered 429 Too Many Requests".into(),
            },
            AttemptError::TooLarge(cap) => format!("body larger than {cap} bytes"),
            AttemptError::Malformed(e) => format!("unreadable body: {e}"),
            AttemptError::Quota(e) | AttemptError::TokenMint(e) => e.clone(),
            AttemptError::NotListed(why) => format!("does not list the product: {why}"),
        }
    }
}

/// The HTTP client of the vendor calls (and the edge's fill endpoint).
///
/// Every call of a window may be in flight at once, each on its own HTTP/1 connection, so the pool keeps
/// up to `window × vendors` idle connections per host (vendors often share one): with fewer, the
/// connections beyond it were closed after each call and opened again for the next (about one new TCP
/// connection every five calls at window 512, each a connect, an accept and two closes).
pub fn http_client(window: u32, vendors: usize) -> reqwest::Result<Client> {
    Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(window as usize * vendors.max(1) + 1)
        .tcp_nodelay(true)
        .user_agent(concat!("pricefront-consumer/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// What every call to one vendor shares across the process: its quota, daily budget, circuit breaker,
/// authentication state, and the counts of requests sent to it.
#[derive(Debug)]
pub struct VendorGuards {
    /// The vendor's quota (requests a second, requests at a time, and its requests to slow down).
    pub quota: VendorQuota,
    /// The group's daily budget of requests to the vendor, when it has one.
    pub budget: Option<DailyBudget>,
    /// The vendor's circuit breaker.
    pub breaker: VendorBreaker,
    /// The vendor's access token or signer.
    pub auth: AuthState,
    /// HTTP requests sent to the vendor, every attempt counted.
    pub requests: Counter,
    /// Attempts by outcome, in the order of [`AttemptOutcome::ALL`].
    attempts: Vec<Counter>,
    /// Timeouts not held against the vendor's circuit, this process being late itself.
    pub timeouts_while_late: Counter,
    /// Token mints: minted, failed.
    mints: [Counter; 2],
    /// Requests sent without the budget checked.
    budget_unchecked: Counter,
}

impl VendorGuards {
    /// `vendor`'s guards, showing their state in `metrics`; its daily budget, if it has one, is
    /// counted in `redis` (without Redis, it is not enforced).
    pub fn new(vendor: &Vendor, metrics: &Metrics, redis: Option<&ConnectionManager>) -> Self {
        let label = VendorLabel {
            vendor: vendor.name.clone(),
        };
        let circuit_state = metrics.vendor_circuit_state.get_or_create(&label).clone();
        let openings = metrics.vendor_circuit_opened.get_or_create(&label).clone();
        let attempts = AttemptOutcome::ALL
            .iter()
            .map(|outcome| {
                metrics
                    .vendor_attempts
                    .get_or_create(&VendorAttemptLabels {
                        vendor: vendor.name.clone(),
                        outcome: outcome.label(),
                    })
                    .clone()
            })
            .collect();
        let mints = ["minted", "failed"].map(|outcome| {
            metrics
                .vendor_token_mints
                .get_or_create(&VendorOutcomeLabels {
                    vendor: vendor.name.clone(),
                    outcome,
                })
                .clone()
        });
        Self {
            quota: VendorQuota::new(vendor.quota),
            budget: vendor
                .budget
                .clone()
                .zip(redis)
                .map(|(settings, redis)| DailyBudget::new(&vendor.name, settings, redis.clone())),
            breaker: VendorBreaker::new(vendor.breaker, circuit_state, openings),
            auth: AuthState::new(&vendor.auth),
            requests: metrics.vendor_requests.get_or_create(&label).clone(),
            attempts,
            timeouts_while_late: metrics
                .vendor_timeouts_while_late
                .get_or_create(&label)
                .clone(),
            mints,
            budget_unchecked: metrics
                .vendor_budget_unchecked
                .get_or_create(&label)
                .clone(),
        }
    }

    /// Counts an attempt that sent a request and came to `result`.
    fn count_attempt(&self, result: &Result<Offer, AttemptError>) {
        let outcome = match result {
            Ok(_) => Some(AttemptOutcome::Ok),
            Err(error) => error.outcome(),
        };
        if let Some(counter) = outcome.and_then(|o| self.attempts.get(o as usize)) {
            counter.inc();
        }
        if let Err(error) = result {
            if matches!(
                error,
                AttemptError::Timeout {
                    own_lateness: Some(_),
                    ..
                }
            ) {
                self.timeouts_while_late.inc();
            }
        }
    }

    /// Takes a request from the daily budget: `Err` when it is spent.
    async fn take_budget(&self) -> Result<(), AttemptError> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        match budget.take().await {
            Taken::Within => Ok(()),
            Taken::Spent { budget: max, day } => Err(AttemptError::Quota(format!(
                "quota: the daily budget of {max} requests is spent for {day} ({})",
                budget.time_zone_name()
            ))),
            Taken::Unchecked(error) => {
                self.budget_unchecked.inc();
                tracing::debug!(%error, "daily budget not checked: Redis did not answer");
                Ok(())
            }
        }
    }

    /// The access token for a request, minted when due: `Ok(None)` for a vendor without OAuth.
    async fn token(
        &self,
        client: &Client,
        timeout: Duration,
    ) -> Result<Option<BearerToken>, AttemptError> {
        let AuthState::OAuth(source) = &self.auth else {
            return Ok(None);
        };
        let count = |outcome| {
            let index = match outcome {
                MintOutcome::Minted => 0,
                MintOutcome::Failed => 1,
            };
            self.mints[index].inc();
        };
        source
            .token(client, timeout, count)
            .await
            .map(Some)
            .map_err(|e| AttemptError::TokenMint(e.to_string()))
    }
}

/// What a call has done so far, read when it ends (also when the deadline cuts it).
#[derive(Debug, Default)]
struct CallLog {
    /// Requests sent.
    attempts: u32,
    /// The last attempt's error, if it failed.
    last_error: Option<AttemptError>,
    /// When the request in flight was sent, while one is.
    in_flight_since: Option<Instant>,
    /// Whether the call waits for room in the vendor's quota.
    waiting_for_quota: bool,
}

/// Asks `vendor` for the price of the product `ids` name, within `limits` and `guards`. Never fails:
/// a vendor that gives no offer is a [`VendorOutcome::Failed`] with the reason; `attempts` counts the
/// requests sent. A product without the identifier the vendor asks by is `not_listed`, with no request.
/// A timeout while this process was itself late (`lag`) is not held against the vendor's circuit.
pub async fn ask_vendor(
    client: &Client,
    vendor: &Vendor,
    guards: &VendorGuards,
    lag: &RuntimeLag,
    ids: &Identifiers<'_>,
    trace: &TraceContext,
    limits: FetchLimits,
) -> VendorOutcome {
    let failure = |kind: FailureKind, detail: String, attempts: u32| {
        VendorOutcome::Failed(VendorFailure {
            vendor: vendor.name.clone(),
            kind,
            detail: redact::redact(&detail).into_owned(),
            attempts,
        })
    };
    let request = match vendor.request.fill(ids) {
        Ok(request) => request,
        Err(error @ RequestError::MissingIdentifier(_)) => {
            return failure(FailureKind::NotListed, error.to_string(), 0)
        }
        Err(error @ RequestError::Unbuildable(_)) => {
            return failure(FailureKind::Connect, error.to_string(), 0)
        }
    };
    let permit = match guards.breaker.admit() {
        Ok(permit) => permit,
        Err(rejection) => return failure(FailureKind::CircuitOpen, rejection.to_string(), 0),
    };
    // A half-open circuit's trial makes one request: its outcome decides, a retry would not.
    let max_attempts = match permit.admission() {
        Admission::Trial => 1,
        Admission::Call => vendor.max_attempts,
    };
    let call = VendorCall {
        client,
        vendor,
        guards,
        lag,
        request,
        trace,
        limits,
    };
    let (log, ended) = attempt_until_done(&call, max_attempts).await;
    let (outcome, call_outcome) = conclude(vendor, limits, log, ended, failure);
    permit.record(call_outcome);
    outcome
}

/// How a call's attempts ended.
enum Ended {
    /// The last attempt's answer: an offer, or why not.
    Answered(Result<Offer, AttemptError>),
    /// The deadline ran out while the call waited for room in the vendor's quota.
    WaitingForQuota,
    /// The deadline ran out otherwise: an attempt in flight, a wait between attempts, or before a
    /// request, a token being minted or the daily budget being checked.
    Deadline,
}

/// One call to a vendor: what its attempts share, passed down by one reference (each async layer holds
/// what it is given for as long as the vendor takes to answer: one reference, not seven fields).
struct VendorCall<'a> {
    client: &'a Client,
    vendor: &'a Vendor,
    guards: &'a VendorGuards,
    lag: &'a RuntimeLag,
    request: FilledRequest,
    trace: &'a TraceContext,
    limits: FetchLimits,
}

/// Makes up to `max_attempts` requests for the call's request, retrying retryable failures with
/// backoff, all within its `limits.deadline`; what the attempts were, and how they ended.
async fn attempt_until_done(call: &VendorCall<'_>, max_attempts: u32) -> (CallLog, Ended) {
    let VendorCall {
        client,
        vendor,
        guards,
        lag,
        trace,
        limits,
        ..
    } = call;
    let started = Instant::now();
    let deadline = started + limits.deadline;
    // This call's span, so that the vendor's own tracing joins the trace.
    let traceparent = header::HeaderValue::from_str(&call_context(trace).to_string()).ok();
    let log = Mutex::new(CallLog::default());
    let lock = || log.lock().unwrap_or_else(PoisonError::into_inner);
    let attempt = || async {
        lock().waiting_for_quota = true;
        let permit = guards.quota.acquire(deadline).await;
        lock().waiting_for_quota = false;
        // Held for the HTTP exchange, body included.
        let _permit = permit.map_err(|exhausted| AttemptError::Quota(exhausted.to_string()))?;
        guards.take_budget().await?;
        let mut token = guards.token(client, vendor.timeout).await?;
        let mut reminted = false;
        loop {
            let sent = Instant::now();
            {
                let mut log = lock();
                log.attempts += 1;
                log.in_flight_since = Some(sent);
            }
            guards.requests.inc();
            let result = attempt_once(call, token.as_ref(), traceparent.as_ref()).await;
            let result = match result {
                Err(AttemptError::TooManyRequests { retry_after, .. }) => {
                    Err(AttemptError::TooManyRequests {
                        retry_after,
                        keeps_refusing: guards.quota.slow_down(sent, retry_after),
                    })
                }
                other => {
                    guards.quota.answered();
                    other
                }
            };
            guards.count_attempt(&result);
            {
                let mut log = lock();
                log.in_flight_since = None;
                log.last_error = result.as_ref().err().cloned();
            }
            // A 401 to a token: it expired or was revoked early. Minted again once, and asked again.
            if let (Err(AttemptError::Status(StatusCode::UNAUTHORIZED)), Some(rejected), false) =
                (&result, &token, reminted)
            {
                if let AuthState::OAuth(source) = &guards.auth {
                    source.rejected(rejected);
                    reminted = true;
                    token = guards.token(client, vendor.timeout).await?;
                    continue;
                }
            }
            return result;
        }
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(limits.first_backoff)
        .with_max_delay(limits.deadline / 2)
        .with_max_times(max_attempts.saturating_sub(1) as usize)
        .with_jitter();
    let retrying = attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(AttemptError::is_retryable)
        .adjust(|error, delay| {
            let delay = match (error, delay) {
                (
                    AttemptError::TooManyRequests {
                        retry_after: Some(after),
                        ..
                    },
                    Some(_),
                ) => Some(*after),
                (_, delay) => delay,
            };
            // Give up at once rather than sleep past the deadline.
            delay.filter(|d| started.elapsed() + *d < limits.deadline)
        });
    let result = tokio::time::timeout(limits.deadline, retrying).await;
    let mut log = log.into_inner().unwrap_or_else(PoisonError::into_inner);
    let ended = match result {
        Ok(answer) => Ended::Answered(answer),
        Err(_) => {
            // The deadline cut an attempt in flight: it timed out, and the vendor hears of it.
            if let Some(sent) = log.in_flight_since.take() {
                let after = sent.elapsed();
                let cut = Err(AttemptError::Timeout {
                    after,
                    own_lateness: lag.excuses_timeout(sent, after),
                });
                guards.count_attempt(&cut);
                log.last_error = cut.err();
            }
            if log.waiting_for_quota {
                Ended::WaitingForQuota
            } else {
                Ended::Deadline
            }
        }
    };
    (log, ended)
}

/// The vendor's outcome of a call whose attempts were `log` and ended so, and what the call tells the
/// breaker: that of its last request, [`CallOutcome::Inconclusive`] when no request was sent.
fn conclude(
    vendor: &Vendor,
    limits: FetchLimits,
    log: CallLog,
    ended: Ended,
    failure: impl Fn(FailureKind, String, u32) -> VendorOutcome,
) -> (VendorOutcome, CallOutcome) {
    let last_attempt = || {
        log.last_error
            .as_ref()
            .map(|e| format!("; last attempt: {}", e.detail()))
            .unwrap_or_default()
    };
    let call_outcome = log
        .last_error
        .as_ref()
        .map_or(CallOutcome::Inconclusive, AttemptError::call_outcome);
    let outcome = match ended {
        Ended::Answered(Ok(offer)) => {
            let answered = VendorOutcome::Answered {
                offer,
                guarantee_ms: vendor.guarantee.as_millis().try_into().unwrap_or(u64::MAX),
            };
            return (answered, CallOutcome::Succeeded);
        }
        Ended::Answered(Err(error @ (AttemptError::Quota(_) | AttemptError::TokenMint(_)))) => {
            failure(
                error.kind(),
                format!("{}{}", error.detail(), last_attempt()),
                log.attempts,
            )
        }
        Ended::Answered(Err(error)) => failure(error.kind(), error.detail(), log.attempts),
        Ended::WaitingForQuota => failure(
            FailureKind::Quota,
            format!(
                "quota: no room for a request before the deadline of {} ms{}",
                limits.deadline.as_millis(),
                last_attempt()
            ),
            log.attempts,
        ),
        Ended::Deadline => failure(
            FailureKind::Deadline,
            format!(
                "deadline of {} ms ran out{}",
                limits.deadline.as_millis(),
                last_attempt()
            ),
            log.attempts,
        ),
    };
    (outcome, call_outcome)
}

/// Reads a `Retry-After` value: delay-seconds, or an HTTP-date (a date in the past is no delay).
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => httpdate::parse_http_date(value)
            .ok()
            .map(|at| at.duration_since(now).unwrap_or_default()),
    }
}

/// One HTTP exchange with the vendor, its answer read.
async fn attempt_once(
    call: &VendorCall<'_>,
    token: Option<&BearerToken>,
    traceparent: Option<&header::HeaderValue>,
) -> Result<Offer, AttemptError> {
    let VendorCall {
        client,
        vendor,
        guards,
        lag,
        request,
        limits,
        ..
    } = call;
    let exchange = async {
        let mut builder = client
            .request(request.method.clone(), request.url.clone())
            .headers(vendor.request.headers.clone());
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        if let Some(token) = token {
            builder = bearer(builder, token);
        }
        if let AuthState::Signed(signer) = &guards.auth {
            for (name, value) in signer.headers() {
                builder = builder.header(name, value);
            }
        }
        if let Some(traceparent) = traceparent {
            builder = builder.header(TRACEPARENT, traceparent);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| AttemptError::Connect(redact::error_text(&e)))?;
        let status = response.status();
        // The URL may carry a key in its query: redacted here, as the event also goes to the exported
        // spans (the log writer redacts whatever else reaches the log).
        tracing::debug!(
            vendor = %vendor.name,
            method = %request.method,
            url = %redact::redact(request.url.as_str()),
            status = status.as_u16(),
            "vendor answered"
        );
        let kind = vendor.statuses.get(&status).copied();
        if status == StatusCode::TOO_MANY_REQUESTS || kind == Some(StatusKind::Quota) {
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, clock::now()));
            return Err(AttemptError::TooManyRequests {
                retry_after,
                keeps_refusing: false,
            });
        }
        if kind == Some(StatusKind::NotListed) {
            return Err(AttemptError::NotListed(format!("answered {status}")));
        }
        if !status.is_success() {
            return Err(AttemptError::Status(status));
        }
        read_capped(response, limits.max_body_bytes).await
    };
    let sent = Instant::now();
    let body = tokio::time::timeout(vendor.timeout, exchange)
        .await
        .map_err(|_| AttemptError::Timeout {
            after: vendor.timeout,
            own_lateness: lag.excuses_timeout(sent, vendor.timeout),
        })??;
    match vendor.offers.read(&vendor.name, &body) {
        Ok(Reading::Offer(offer)) => Ok(offer),
        Ok(Reading::NotListed(why)) => Err(AttemptError::NotListed(why)),
        Err(error) => Err(AttemptError::Malformed(error)),
    }
}

/// Reads the body, refusing to hold more than `cap` bytes of it.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, AttemptError> {
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Err(AttemptError::TooLarge(cap));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        AttemptError::Malformed(format!("body cut short: {}", redact::error_text(&e)))
    })? {
        if body.len() + chunk.len() > cap {
            return Err(AttemptError::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::breaker::CircuitState;
    use crate::vendors::file::parse;
    use axum::extract::{Path, State};
    use axum::http::StatusCode as AxumStatus;
    use axum::response::IntoResponse;
    use std::collections::HashMap;
    use std::sync::Arc;

    /// A vendor on 127.0.0.1 answering by the first path segment: `ok`, `503`, `429` (with
    /// `Retry-After: 1`), `429once` (that, then an offer), `hang` (never) or `bad` (not JSON); the
    /// requests it got per segment.
    async fn vendor_server() -> (String, Arc<Mutex<HashMap<String, u32>>>) {
        async fn answer(
            State(counts): State<Arc<Mutex<HashMap<String, u32>>>>,
            Path((mode, _product)): Path<(String, String)>,
        ) -> axum::response::Response {
            *counts.lock().unwrap().entry(mode.clone()).or_default() += 1;
            match mode.as_str() {
                "ok" => r#"{"p":"1.50"}"#.into_response(),
                "503" => AxumStatus::SERVICE_UNAVAILABLE.into_response(),
                "429" => (AxumStatus::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response(),
                "429once" if counts.lock().unwrap()["429once"] == 1 => {
                    (AxumStatus::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response()
                }
                "429once" => r#"{"p":"1.50"}"#.into_response(),
                "hang" => std::future::pending().await,
                _ => "<html>".into_response(),
            }
        }
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let app = axum::Router::new()
            .route("/{mode}/{product}", axum::routing::get(answer))
            .with_state(counts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, counts)
    }

    struct Harness {
        client: Client,
        vendor: Vendor,
        guards: VendorGuards,
        metrics: Arc<Metrics>,
        /// Not started: no lateness unless a test starts its probe.
        lag: Arc<RuntimeLag>,
    }

    impl Harness {
        fn new(base: &str, mode: &str, extra: &str) -> Self {
            // A timeout of 1 s unless `extra` gives one.
            let timeout = if extra.contains("timeout_ms") {
                ""
            } else {
                "timeout_ms = 1000\n"
            };
            let text = format!(
                "[[vendor]]\nname = \"v\"\nurl = \"{base}/{mode}/{{productId}}\"\nguarantee_window_secs = 60\nprice_pointer = \"/p\"\ncurrency = \"EUR\"\n{timeout}{extra}\n"
            );
            let vendor = parse(&text, |_| None).unwrap().remove(0);
            let metrics = Metrics::new();
            let guards = VendorGuards::new(&vendor, &metrics, None);
            Self {
                client: http_client(4, 1).unwrap(),
                lag: RuntimeLag::new(metrics.runtime_lag.clone(), vendor.timeout),
                vendor,
                guards,
                metrics,
            }
        }

        async fn ask(&self, deadline_ms: u64) -> VendorOutcome {
            let limits = FetchLimits {
                deadline: Duration::from_millis(deadline_ms),
                max_body_bytes: 1 << 20,
                first_backoff: Duration::from_millis(5),
            };
            let product = pricefront_core::ProductId::new(7).unwrap();
            let mapped = std::collections::HashMap::new();
            let ids = Identifiers::new(product, false, &mapped);
            let trace = TraceContext::start([7; 24]);
            ask_vendor(
                &self.client,
                &self.vendor,
                &self.guards,
                &self.lag,
                &ids,
                &trace,
                limits,
            )
            .await
        }

        fn requests(&self) -> u64 {
            self.guards.requests.get()
        }

        /// The value of `pricefront_{series}` on the metrics page.
        fn metric_line(&self, series: &str) -> Option<f64> {
            let page = self.metrics.render_text();
            let prefix = format!("pricefront_{series} ");
            page.lines()
                .find_map(|line| line.strip_prefix(&prefix))
                .and_then(|value| value.trim().parse().ok())
        }
    }

    fn failure(outcome: VendorOutcome) -> VendorFailure {
        match outcome {
            VendorOutcome::Failed(failure) => failure,
            answered => panic!("expected a failure, got {answered:?}"),
        }
    }

    #[tokio::test]
    async fn a_timeout_while_this_process_was_late_is_not_held_against_the_vendors_circuit() {
        let (base, _) = vendor_server().await;
        // Lateness of 200 ms (a tenth of the timeout) or more excuses a timeout: a busy test machine
        // does not make that much by itself.
        let vendor = Harness::new(
            &base,
            "hang",
            "breaker_minimum_calls = 1\ntimeout_ms = 2000",
        );
        vendor.lag.start();
        // The runtime's only thread busy for 500 ms while the call is out: had the vendor answered,
        // this process would have read the answer up to 500 ms late.
        tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            std::thread::sleep(Duration::from_millis(500));
        });
        let late = failure(vendor.ask(5_000).await);
        assert_eq!(late.kind, FailureKind::Timeout);
        assert!(
            late.detail.contains("not held against the vendor"),
            "{}",
            late.detail
        );
        assert_eq!(vendor.guards.breaker.state(), CircuitState::Closed);
        assert_eq!(vendor.guards.timeouts_while_late.get(), 1);
        // The same timeout with this process on time is the vendor's: one opens the circuit.
        let on_time = failure(vendor.ask(5_000).await);
        assert_eq!(on_time.kind, FailureKind::Timeout);
        assert_eq!(on_time.detail, "no answer within 2000 ms");
        assert_eq!(vendor.guards.breaker.state(), CircuitState::Open);
        assert_eq!(vendor.guards.timeouts_while_late.get(), 1);
    }

    #[tokio::test]
    async fn a_429_holds_the_vendor_for_its_retry_after_and_only_a_429_past_it_counts_as_a_failure()
    {
        let (base, counts) = vendor_server().await;
        let vendor = Harness::new(&base, "429", "max_attempts = 1\nbreaker_minimum_calls = 1");
        let first = failure(vendor.ask(2_000).await);
        assert_eq!(first.kind, FailureKind::HttpStatus);
        assert_eq!(first.attempts, 1);
        assert!(
            first.detail.contains("Retry-After 1000 ms"),
            "{}",
            first.detail
        );
        assert_eq!(
            vendor.guards.breaker.state(),
            CircuitState::Closed,
            "a first 429 asks to slow down: no failure"
        );
        // Within the vendor's Retry-After, a call whose deadline ends first sends nothing.
        let held = failure(vendor.ask(300).await);
        assert_eq!(held.kind, FailureKind::Quota);
        assert_eq!(held.attempts, 0);
        assert!(held.detail.contains("429 Retry-After"), "{}", held.detail);
        // One whose deadline allows waits for the hold to end, then asks: a 429 again is a failure.
        let started = Instant::now();
        let again = failure(vendor.ask(3_000).await);
        assert!(started.elapsed() >= Duration::from_millis(600), "it waited");
        assert_eq!(again.kind, FailureKind::HttpStatus);
        assert_eq!(again.attempts, 1);
        assert_eq!(vendor.guards.breaker.state(), CircuitState::Open);
        assert_eq!(counts.lock().unwrap()["429"], 2);
        assert_eq!(vendor.requests(), 2);
        assert_eq!(
            vendor.metric_line("vendor_attempts_total{vendor=\"v\",outcome=\"http_429\"}"),
            Some(2.0)
        );
        assert_eq!(
            vendor.metric_line("vendor_circuit_opened_total{vendor=\"v\"}"),
            Some(1.0)
        );
    }

    #[tokio::test]
    async fn a_429_is_retried_after_its_retry_after() {
        let (base, counts) = vendor_server().await;
        let vendor = Harness::new(
            &base,
            "429once",
            "max_attempts = 2\nbreaker_minimum_calls = 1",
        );
        let started = Instant::now();
        assert!(matches!(
            vendor.ask(3_000).await,
            VendorOutcome::Answered { .. }
        ));
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "it waited for Retry-After: 1"
        );
        assert_eq!(counts.lock().unwrap()["429once"], 2);
        assert_eq!(vendor.guards.breaker.state(), CircuitState::Closed);
    }

    #[tokio::test]
    async fn a_failed_call_counts_once_however_many_attempts_and_a_failed_trial_is_not_retried() {
        let (base, counts) = vendor_server().await;
        let vendor = Harness::new(
            &base,
            "503",
            "max_attempts = 2\nbreaker_minimum_calls = 2\nbreaker_half_open_calls = 1\nbreaker_cooldown_ms = 50",
        );
        let first = failure(vendor.ask(2_000).await);
        assert_eq!(first.kind, FailureKind::HttpStatus);
        assert_eq!(first.attempts, 2, "a 503 keeps its retries");
        assert_eq!(
            vendor.guards.breaker.state(),
            CircuitState::Closed,
            "one call, however many attempts, is one outcome: below the minimum of 2"
        );
        assert_eq!(failure(vendor.ask(2_000).await).attempts, 2);
        assert_eq!(vendor.guards.breaker.state(), CircuitState::Open);
        assert_eq!(
            failure(vendor.ask(2_000).await).kind,
            FailureKind::CircuitOpen
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        let trial = failure(vendor.ask(2_000).await);
        assert_eq!(trial.kind, FailureKind::HttpStatus);
        assert_eq!(trial.attempts, 1, "the trial makes one request");
        assert_eq!(vendor.guards.breaker.state(), CircuitState::Open);
        assert_eq!(counts.lock().unwrap()["503"], 5);
        assert_eq!(vendor.requests(), 5);
        assert_eq!(
            vendor.metric_line("vendor_attempts_total{vendor=\"v\",outcome=\"http_5xx\"}"),
            Some(5.0)
        );
    }

    #[tokio::test]
    async fn a_hanging_vendor_opens_its_circuit_when_the_deadline_cuts_its_timeout() {
        let (base, _) = vendor_server().await;
        // The vendor's timeout is longer than the call's deadline: the deadline cuts every attempt.
        let vendor = Harness::new(
            &base,
            "hang",
            "timeout_ms = 5000\nbreaker_minimum_calls = 2",
        );
        for _ in 0..2 {
            let cut = failure(vendor.ask(200).await);
            assert_eq!(cut.kind, FailureKind::Deadline);
            assert!(
                cut.detail.contains("last attempt: no answer within"),
                "{}",
                cut.detail
            );
        }
        assert_eq!(vendor.guards.breaker.state(), CircuitState::Open);
        assert_eq!(
            vendor.metric_line("vendor_attempts_total{vendor=\"v\",outcome=\"timeout\"}"),
            Some(2.0)
        );
    }

    #[test]
    fn every_attempt_outcome_sits_at_its_own_index() {
        for (i, outcome) in AttemptOutcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, i, "{}", outcome.label());
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_as_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO),
            "a date past is no delay"
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }

    #[tokio::test]
    async fn malformed_bodies_do_not_open_the_circuit() {
        let (base, _) = vendor_server().await;
        let vendor = Harness::new(&base, "bad", "breaker_minimum_calls = 1");
        for _ in 0..3 {
            assert_eq!(
                failure(vendor.ask(2_000).await).kind,
                FailureKind::MalformedBody
            );
        }
        assert_eq!(vendor.guards.breaker.state(), CircuitState::Closed);
    }

    #[tokio::test]
    async fn no_quota_token_before_the_deadline_is_a_quota_failure_without_a_request() {
        let (base, counts) = vendor_server().await;
        let vendor = Harness::new(&base, "ok", "max_requests_per_second = 0.5");
        assert!(matches!(
            vendor.ask(300).await,
            VendorOutcome::Answered { .. }
        ));
        let started = Instant::now();
        let refused = failure(vendor.ask(300).await);
        assert_eq!(refused.kind, FailureKind::Quota);
        assert_eq!(refused.attempts, 0);
        assert!(
            refused.detail.contains("max_requests_per_second = 0.5"),
            "{}",
            refused.detail
        );
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "refused at once"
        );
        assert_eq!(counts.lock().unwrap()["ok"], 1);
        assert_eq!(vendor.requests(), 1);
    }

    #[tokio::test]
    async fn a_busy_concurrency_quota_until_the_deadline_is_a_quota_failure() {
        let (base, _) = vendor_server().await;
        let vendor = Harness::new(&base, "ok", "max_concurrency = 1");
        let held = vendor
            .guards
            .quota
            .acquire(Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        let refused = failure(vendor.ask(100).await);
        assert_eq!(refused.kind, FailureKind::Quota);
        assert_eq!(refused.attempts, 0);
        drop(held);
        assert!(matches!(
            vendor.ask(1_000).await,
            VendorOutcome::Answered { .. }
        ));
    }

    fn read_offer(vendor: &Vendor, body: &[u8]) -> Result<pricefront_core::Offer, String> {
        match vendor.offers.read(&vendor.name, body)? {
            Reading::Offer(offer) => Ok(offer),
            Reading::NotListed(why) => Err(why),
        }
    }

    fn vendor(extra: &str) -> Vendor {
        let text = format!(
            "[[vendor]]\nname = \"v\"\nurl = \"http://x/{{productId}}\"\nguarantee_window_secs = 60\n{extra}\n"
        );
        parse(&text, |_| None).unwrap().remove(0)
    }

    #[test]
    fn reads_offers_through_pointers() {
        let nested = vendor(
            "price_pointer = \"/o/p\"\ncurrency_pointer = \"/o/c\"\noffer_url_pointer = \"/o/u\"",
        );
        let offer = read_offer(
            &nested,
            br#"{"o":{"p":"12.34","c":"EUR","u":"https://s/1"}}"#,
        )
        .unwrap();
        assert_eq!(offer.price.minor_units, 1234);
        assert_eq!(offer.url.as_deref(), Some("https://s/1"));
        let flat = vendor("price_pointer = \"/p\"\ncurrency = \"JPY\"");
        assert_eq!(
            read_offer(&flat, br#"{"p":1234}"#)
                .unwrap()
                .price
                .minor_units,
            1234
        );
        let cents = vendor("price_pointer = \"/p\"\ncurrency = \"EUR\"");
        assert_eq!(
            read_offer(&cents, br#"{"p":19.99}"#)
                .unwrap()
                .price
                .minor_units,
            1999
        );
    }

    #[test]
    fn refuses_bodies_without_a_price() {
        let v = vendor("price_pointer = \"/p\"\ncurrency_pointer = \"/c\"");
        for body in [
            &b"<html>"[..],
            br#"{"c":"EUR"}"#,
            br#"{"p":true,"c":"EUR"}"#,
            br#"{"p":"-1","c":"EUR"}"#,
            br#"{"p":"1","c":"euro"}"#,
        ] {
            assert!(
                read_offer(&v, body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let status = |code: u16| AttemptError::Status(StatusCode::from_u16(code).unwrap());
        assert!(AttemptError::TooManyRequests {
            retry_after: None,
            keeps_refusing: false
        }
        .is_retryable());
        assert!(status(503).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(AttemptError::Connect("refused".into()).is_retryable());
        assert!(!AttemptError::Timeout {
            after: Duration::from_secs(1),
            own_lateness: None
        }
        .is_retryable());
        assert!(!AttemptError::Malformed("x".into()).is_retryable());
    }
}
