//! The second sink: the edge's fill endpoint (`PUT {base}/internal/v1/prices/{id}` with a bearer
//! token), so that the Worker's own cache (Workers KV) holds what Redis holds.

use std::time::Duration;

use pricefront_core::backlog::BacklogReport;
use pricefront_core::newest_wins::{Replacement, FILL_OUTCOME_HEADER};
use pricefront_core::problem::{problem_type_of, MISCONFIGURED_TYPE};
use pricefront_core::route::{fill_path, BACKLOG_PATH};
use pricefront_core::Comparison;
use reqwest::Client;

/// Why the edge did not take a result.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    /// The edge could not be reached or did not answer in time.
    #[error("the edge's fill endpoint is unreachable: {0}")]
    Unreachable(String),
    /// The edge answered with an error status.
    #[error("the edge's fill endpoint answered {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The type of the problem document the edge answered, if it did.
        problem_type: Option<String>,
        /// The start of the body (a problem document).
        body: String,
    },
}

impl FillError {
    /// Whether the edge refused as misconfigured, which retrying soon cannot fix: 400 (a body it cannot
    /// read, a version mismatch), 401/403 (a wrong token), or a `/problems/misconfigured` of its own (no
    /// fill token set); anything else is transient.
    pub fn is_misconfiguration(&self) -> bool {
        match self {
            FillError::Refused {
                status: 400 | 401 | 403,
                ..
            } => true,
            FillError::Refused { problem_type, .. } => {
                problem_type.as_deref() == Some(MISCONFIGURED_TYPE)
            }
            FillError::Unreachable(_) => false,
        }
    }
}

/// Sends finished comparisons to the edge.
#[derive(Debug, Clone)]
pub struct FillSink {
    client: Client,
    base_url: String,
    token: String,
}

impl FillSink {
    /// A sink for the edge at `base_url` (e.g. `https://prices.example.com`), authenticating with `token`.
    pub fn new(client: Client, base_url: &str, token: String) -> Self {
        Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// Stores `comparison` at the edge; says whether the edge stored it or kept what it holds
    /// ([`FILL_OUTCOME_HEADER`]; an edge that does not say stored it).
    pub async fn put(&self, comparison: &Comparison) -> Result<Replacement, FillError> {
        let response = self
            .put_json(&fill_path(comparison.product_id), comparison.to_json())
            .await?;
        let outcome = response
            .headers()
            .get(FILL_OUTCOME_HEADER)
            .and_then(|v| v.to_str().ok());
        Ok(Replacement::from_fill_outcome(outcome).unwrap_or(Replacement::Store))
    }

    /// Reports this process's backlog to the edge (`PUT /internal/v1/backlog`).
    pub async fn put_backlog(&self, report: &BacklogReport) -> Result<(), FillError> {
        self.put_json(BACKLOG_PATH, report.to_json())
            .await
            .map(drop)
    }

    async fn put_json(&self, path: &str, body: String) -> Result<reqwest::Response, FillError> {
        let response = self
            .client
            .put(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| FillError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        Err(FillError::Refused {
            status: status.as_u16(),
            problem_type: problem_type_of(text.as_bytes()),
            body: text.chars().take(300).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_or_body_is_a_misconfiguration_and_the_rest_is_transient() {
        let refused = |status, problem_type: Option<&str>| FillError::Refused {
            status,
            problem_type: problem_type.map(str::to_owned),
            body: String::new(),
        };
        for status in [400, 401, 403] {
            assert!(refused(status, None).is_misconfiguration(), "{status}");
        }
        for status in [404, 429, 500, 503] {
            assert!(!refused(status, None).is_misconfiguration(), "{status}");
        }
        // An edge without a fill token says so with a 500 of its own type; other 500s are transient.
        assert!(refused(500, Some(MISCONFIGURED_TYPE)).is_misconfiguration());
        assert!(!refused(500, Some("/problems/unavailable")).is_misconfiguration());
        assert!(!FillError::Unreachable("refused".into()).is_misconfiguration());
    }
}
