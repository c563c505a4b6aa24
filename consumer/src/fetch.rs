//! Asking one vendor for one product's price: a timeout per attempt, retries of retryable failures with
//! jittered exponential backoff (honouring `Retry-After`), an overall deadline, and a cap on the body size.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use pricefront_core::{
    Currency, FailureKind, Money, Offer, ProductId, VendorFailure, VendorOutcome,
};
use reqwest::{header, Client, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use crate::telemetry::traceparent_of;
use crate::vendors::{CurrencySource, JsonPointer, Vendor};
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

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AttemptError {
    Connect(String),
    Timeout(Duration),
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    TooLarge(usize),
    Malformed(String),
}

impl AttemptError {
    fn is_retryable(&self) -> bool {
        match self {
            AttemptError::Connect(_) => true,
            AttemptError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }

    fn kind(&self) -> FailureKind {
        match self {
            AttemptError::Connect(_) => FailureKind::Connect,
            AttemptError::Timeout(_) => FailureKind::Timeout,
            AttemptError::Status { .. } => FailureKind::HttpStatus,
            AttemptError::TooLarge(_) => FailureKind::TooLarge,
            AttemptError::Malformed(_) => FailureKind::MalformedBody,
        }
    }

    fn detail(&self) -> String {
        match self {
            AttemptError::Connect(e) => format!("could not connect: {e}"),
            AttemptError::Timeout(t) => format!("no answer within {} ms", t.as_millis()),
            AttemptError::Status { status, .. } => format!("answered {status}"),
            AttemptError::TooLarge(cap) => format!("body larger than {cap} bytes"),
            AttemptError::Malformed(e) => format!("unreadable body: {e}"),
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

/// Asks `vendor` for the price of `product`, within `limits`. Never fails: a vendor that gives no offer
/// is a [`VendorOutcome::Failed`] with the reason.
pub async fn ask_vendor(
    client: &Client,
    vendor: &Vendor,
    product: ProductId,
    limits: FetchLimits,
) -> VendorOutcome {
    let started = Instant::now();
    let attempts = AtomicU32::new(0);
    let last_error = Mutex::new(None::<AttemptError>);
    let url = vendor.url_for(product);
    // This call's span, so that the vendor's own tracing joins the trace.
    let traceparent = traceparent_of(&tracing::Span::current())
        .and_then(|value| header::HeaderValue::from_str(&value).ok());
    let attempt = || async {
        attempts.fetch_add(1, Ordering::Relaxed);
        let result = attempt_once(
            client,
            vendor,
            url.clone(),
            limits.max_body_bytes,
            traceparent.as_ref(),
        )
        .await;
        if let Err(e) = &result {
            *last_error.lock().expect("last error lock") = Some(e.clone());
        }
        result
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(limits.first_backoff)
        .with_max_delay(limits.deadline / 2)
        .with_max_times(vendor.max_attempts.saturating_sub(1) as usize)
        .with_jitter();
    let retrying = attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(AttemptError::is_retryable)
        .adjust(|error, delay| {
            let delay = match (error, delay) {
                (
                    AttemptError::Status {
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
    let failure = |kind: FailureKind, detail: String| {
        VendorOutcome::Failed(VendorFailure {
            vendor: vendor.name.clone(),
            kind,
            detail,
            attempts: attempts.load(Ordering::Relaxed),
        })
    };
    match result {
        Ok(Ok(offer)) => VendorOutcome::Answered {
            offer,
            guarantee_ms: vendor.guarantee.as_millis().try_into().unwrap_or(u64::MAX),
        },
        Ok(Err(error)) => failure(error.kind(), error.detail()),
        Err(_) => {
            let last = last_error.lock().expect("last error lock").take();
            let detail = match last {
                Some(e) => format!(
                    "deadline of {} ms ran out; last attempt: {}",
                    limits.deadline.as_millis(),
                    e.detail()
                ),
                None => format!("deadline of {} ms ran out", limits.deadline.as_millis()),
            };
            failure(FailureKind::Deadline, detail)
        }
    }
}

async fn attempt_once(
    client: &Client,
    vendor: &Vendor,
    url: reqwest::Url,
    max_body: usize,
    traceparent: Option<&header::HeaderValue>,
) -> Result<Offer, AttemptError> {
    let exchange = async {
        let mut request = client.get(url).headers(vendor.headers.clone());
        if let Some(traceparent) = traceparent {
            request = request.header(TRACEPARENT, traceparent);
        }
        let response = request
            .send()
            .await
            .map_err(|e| AttemptError::Connect(without_url(e)))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(AttemptError::Status {
                status,
                retry_after,
            });
        }
        read_capped(response, max_body).await
    };
    let body = tokio::time::timeout(vendor.timeout, exchange)
        .await
        .map_err(|_| AttemptError::Timeout(vendor.timeout))??;
    read_offer(vendor, &body).map_err(AttemptError::Malformed)
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
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| AttemptError::Malformed(format!("body cut short: {}", without_url(e))))?
    {
        if body.len() + chunk.len() > cap {
            return Err(AttemptError::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads the offer out of a vendor's JSON body through the vendor's pointers.
fn read_offer(vendor: &Vendor, body: &[u8]) -> Result<Offer, String> {
    let json: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let at = |pointer: &JsonPointer| {
        pointer
            .find(&json)
            .ok_or_else(|| format!("nothing at {pointer}"))
    };
    let currency: Currency = match &vendor.currency {
        CurrencySource::Fixed(currency) => *currency,
        CurrencySource::Pointer(pointer) => at(pointer)?
            .as_str()
            .ok_or_else(|| format!("{pointer} is not a string"))?
            .parse()
            .map_err(|e| format!("{e}"))?,
    };
    let price = match at(&vendor.price_pointer)? {
        Value::String(text) => Money::from_decimal(text, currency),
        Value::Number(number) => Money::from_decimal(&number.to_string(), currency),
        other => return Err(format!("{} is {other}, not a price", vendor.price_pointer)),
    }
    .map_err(|e| e.to_string())?;
    let url = match &vendor.offer_url_pointer {
        Some(pointer) => pointer
            .find(&json)
            .and_then(Value::as_str)
            .map(str::to_owned),
        None => None,
    };
    Ok(Offer {
        vendor: vendor.name.clone(),
        price,
        url,
    })
}

/// The error's text without the URL, which may carry a vendor's credentials in its query.
fn without_url(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "body error"
    } else {
        "request failed"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&error);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::parse;

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
        let status = |code: u16| AttemptError::Status {
            status: StatusCode::from_u16(code).unwrap(),
            retry_after: None,
        };
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(AttemptError::Connect("refused".into()).is_retryable());
        assert!(!AttemptError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(!AttemptError::Malformed("x".into()).is_retryable());
    }
}
