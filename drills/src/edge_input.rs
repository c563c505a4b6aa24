//! Drill 5: a battery of client mistakes against the edge Worker under `wrangler dev` (malformed paths,
//! ids, methods, headers and bodies; the fill endpoint with missing or wrong tokens, bad JSON, the wrong
//! product and 8 MiB bodies), several rounds of it at once. Every answer must be a 4xx (never a 5xx) in
//! `application/problem+json` whose `status` is the HTTP status, and the one the route calls for.
//!
//! "Lost" is a result stored before the battery that is no longer served, unchanged, after it: none of
//! the mistakes may overwrite or remove it.
//!
//! A dozen requests that break HTTP itself (unknown method tokens, CONNECT, absolute-form targets, a
//! 200 KiB header, broken bodies) are also sent, once each. The runtime (`wrangler dev` / workerd) answers
//! them before any Worker code runs; their answers are reported apart, as the runtime's, and do not decide
//! the drill.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use pricefront_core::ProductId;
use tokio::time::Instant;

use crate::edge_cases::{self, Case};
use crate::wire::{exchange, Answer};
use crate::{DrillError, DrillReport};

/// The Worker to test.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its base URL (`http://127.0.0.1:8787`).
    pub base: String,
    /// Its fill token.
    pub token: String,
}

impl Target {
    /// The Worker named by `EDGE_KV_URL`, with the token in `EDGE_FILL_TOKEN` (as `scripts/test.sh` sets them).
    pub fn from_env() -> Result<Self, DrillError> {
        let var = |name: &'static str, hint: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or(DrillError::MissingEnv { var: name, hint })
        };
        Ok(Self {
            base: var(
                "EDGE_KV_URL",
                "the base URL of an edge Worker under wrangler dev (scripts/edge-dev.sh start NAME PORT --var FILL_TOKEN:...)",
            )?,
            token: var("EDGE_FILL_TOKEN", "the fill token the Worker was started with")?,
        })
    }

    /// `host:port` of the base URL (plain HTTP on loopback only).
    fn address(&self) -> Result<String, DrillError> {
        self.base
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/').to_owned())
            .filter(|a| !a.contains('/'))
            .ok_or_else(|| {
                DrillError::Precondition(format!(
                    "the edge URL {} is not http://host:port",
                    self.base
                ))
            })
    }
}

/// How much of the battery to send.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Times the whole battery is sent.
    pub rounds: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            rounds: 3,
            concurrency: 8,
        }
    }
}

/// Runs the drill against `target`.
pub async fn run(target: &Target, plan: &Plan) -> Result<DrillReport, DrillError> {
    let address = target.address()?;
    let started = Instant::now();
    let health = crate::support::status_of(&format!("{}/healthz", target.base)).await;
    if !matches!(health, Ok(200)) {
        return Err(DrillError::Precondition(format!(
            "the Worker at {} does not answer /healthz with 200 ({health:?})",
            target.base
        )));
    }
    let now = pricefront_harness::now_ms();
    let unique = 10_000_000 + now % 1_000_000_000;
    let product = ProductId::new(unique).expect("a positive id");
    let other = ProductId::new(unique + 1).expect("a positive id");
    let cases = edge_cases::worker_cases(product, other, &target.token, now);
    // What the battery must not lose: a good result of `product`, stored before it.
    let edge = pricefront_harness::edge::Edge::at(target.base.clone());
    let kept = pricefront_harness::comparison_at(product, now, 60_000);
    let filled = edge
        .fill(&kept, &target.token)
        .await
        .map_err(|e| DrillError::Precondition(e.to_string()))?;
    if filled != 204 {
        return Err(DrillError::Precondition(format!(
            "the Worker refused a good fill before the battery: {filled}"
        )));
    }
    let protocol = edge_cases::protocol_cases();
    let mut report = DrillReport {
        name: "bad input at the edge".into(),
        fault: format!(
            "{} client mistakes x {} rounds, {} at once, against the Worker (+ {} broken HTTP requests)",
            cases.len(),
            plan.rounds,
            plan.concurrency,
            protocol.len()
        ),
        ..DrillReport::default()
    };

    let all: Vec<&Case> = (0..plan.rounds).flat_map(|_| cases.iter()).collect();
    let answers: Vec<(&Case, Result<Answer, String>, Duration)> = futures::stream::iter(all)
        .map(|case| {
            let address = address.clone();
            async move {
                let sent = Instant::now();
                let answer = exchange(
                    &address,
                    &request_bytes(case, &address),
                    false,
                    case.method == "HEAD",
                )
                .await;
                (case, answer, sent.elapsed())
            }
        })
        .buffer_unordered(plan.concurrency.max(1))
        .collect()
        .await;
    report.requests = answers.len() as u64;
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut failures: BTreeMap<String, u32> = BTreeMap::new();
    let mut problems = 0;
    for (case, answer, _) in &answers {
        match answer {
            Ok(answer) => {
                *statuses.entry(answer.status).or_default() += 1;
                let found = judge(case, answer);
                if found.is_empty() {
                    problems += 1;
                }
                for failure in found {
                    *failures
                        .entry(format!("{}: {failure}", case.label))
                        .or_default() += 1;
                }
            }
            Err(error) => {
                *failures
                    .entry(format!("{}: no answer ({error})", case.label))
                    .or_default() += 1
            }
        }
    }
    let mut slowest: Vec<_> = answers
        .iter()
        .map(|(c, _, t)| (*t, c.label.as_str()))
        .collect();
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut seen = std::collections::BTreeSet::new();
    let slowest: Vec<String> = slowest
        .into_iter()
        .filter(|(_, label)| seen.insert(*label))
        .take(3)
        .map(|(t, label)| format!("{label} {:.2} s", t.as_secs_f64()))
        .collect();
    let server_errors: u64 = statuses.range(500..).map(|(_, n)| n).sum();
    report.check(
        server_errors == 0,
        format!("{server_errors} answers were 5xx"),
    );
    for (failure, times) in failures {
        report.fail(format!("{failure} ({times} of {} rounds)", plan.rounds));
    }
    report.note(format!(
        "{} requests to the Worker at {}: {problems} correct problem documents; statuses {statuses:?}; 5xx: {server_errors}; slowest answers: {}",
        answers.len(),
        target.base,
        slowest.join(", ")
    ));

    let mut runtime: Vec<String> = Vec::new();
    let mut runtime_5xx: Vec<&str> = Vec::new();
    for case in &protocol {
        let answer = exchange(&address, &case.bytes, case.half_close, false).await;
        report.requests += 1;
        let text = match &answer {
            Ok(a) => format!(
                "{} {}",
                a.status,
                a.header("content-type").unwrap_or("(no content type)")
            ),
            Err(error) => format!("no answer ({error})"),
        };
        if matches!(&answer, Ok(a) if a.status >= 500) {
            runtime_5xx.push(case.label);
        }
        runtime.push(format!("{} -> {text}", case.label));
    }
    report.note(format!(
        "{} requests that break HTTP itself, answered by wrangler dev / workerd before the Worker runs (not held to the Worker's rules): {}",
        protocol.len(),
        runtime.join("; ")
    ));
    if !runtime_5xx.is_empty() {
        report.note(format!(
            "of those, {} got a 5xx from the runtime (outside the Worker's code, which never saw them): {}",
            runtime_5xx.len(),
            runtime_5xx.join("; ")
        ));
    }
    let health = crate::support::status_of(&format!("{}/healthz", target.base)).await;
    report.check(
        matches!(health, Ok(200)),
        format!("the Worker's /healthz after the battery: {health:?}"),
    );
    let served = edge
        .get_prices(product, None)
        .await
        .map_err(|e| DrillError::Precondition(e.to_string()))?;
    let status = served.status().as_u16();
    let body: serde_json::Value = served.json().await.unwrap_or_default();
    let intact = status == 200 && body["computedAtMs"] == kept.computed_at_ms;
    report.lost = Some(u64::from(!intact));
    report.check(
        intact,
        format!("the result stored before the battery is gone or changed: {status} {body}"),
    );
    report.elapsed = started.elapsed();
    Ok(report)
}

/// What is wrong with `answer` to `case`; empty when it is right.
fn judge(case: &Case, answer: &Answer) -> Vec<String> {
    let mut wrong = Vec::new();
    let status = answer.status;
    if !case.expect.contains(&status) {
        wrong.push(format!("answered {status}, expected {:?}", case.expect));
    }
    if !(400..500).contains(&status) {
        // Not an error at all, or a server error: the rest does not apply.
        return wrong;
    }
    let content_type = answer.header("content-type").unwrap_or_default();
    if content_type != pricefront_core::problem::PROBLEM_CONTENT_TYPE {
        wrong.push(format!("{status} with content type {content_type:?}"));
    }
    if status == 405 && answer.header("allow").is_none() {
        wrong.push("405 without Allow".into());
    }
    if case.method != "HEAD" {
        match serde_json::from_slice::<serde_json::Value>(&answer.body) {
            Ok(body) => {
                if body["status"] != status {
                    wrong.push(format!("{status} with \"status\": {}", body["status"]));
                }
                if !body["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("/problems/"))
                {
                    wrong.push(format!("{status} with \"type\": {}", body["type"]));
                }
            }
            Err(error) => wrong.push(format!("{status} with a body that is not JSON ({error})")),
        }
    }
    wrong
}

/// The bytes of `case` as an HTTP/1.1 request to `address`.
fn request_bytes(case: &Case, address: &str) -> Vec<u8> {
    let mut bytes = format!(
        "{} {} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n",
        case.method, case.target
    )
    .into_bytes();
    for (name, value) in &case.headers {
        bytes.extend(name.as_bytes());
        bytes.extend(b": ");
        bytes.extend(value);
        bytes.extend(b"\r\n");
    }
    if let Some(body) = &case.body {
        bytes.extend(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        bytes.extend(body);
    } else {
        bytes.extend(b"\r\n");
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse;

    #[test]
    fn judges_problems() {
        let case = Case {
            label: "x".into(),
            method: "GET".into(),
            target: "/v1/prices/abc".into(),
            headers: Vec::new(),
            body: None,
            expect: &[400],
        };
        let good = parse(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\n\r\n{\"type\":\"/problems/x\",\"status\":400}").unwrap();
        assert!(judge(&case, &good).is_empty());
        let plain =
            parse(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\noops")
                .unwrap();
        assert_eq!(judge(&case, &plain).len(), 1);
        let mismatch = parse(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\n\r\n{\"type\":\"/problems/x\",\"status\":404}").unwrap();
        assert_eq!(judge(&case, &mismatch).len(), 1);
    }
}
