//! A real Prometheus scraping consumer processes with the service's rules loaded, started by
//! `ops/prometheus/local.sh` (the one that `make dev` runs), and its alerts read from its own HTTP API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::stack::repo_path;
use crate::{free_port, HarnessError};

/// The rules file the service ships.
pub fn rules_file() -> PathBuf {
    repo_path("ops/prometheus/rules.yml")
}

/// An alert as Prometheus reports it (`GET /api/v1/alerts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// `alertname` and the alert's other labels.
    pub labels: BTreeMap<String, String>,
    /// `pending` or `firing`.
    pub state: String,
}

impl Alert {
    /// The alert's name.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

/// A Prometheus process on a free loopback port; stopped when dropped.
pub struct Prometheus {
    child: Child,
    /// Its HTTP API's base URL.
    pub url: String,
    /// Its log (stdout and stderr).
    pub log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus in `dir`, scraping the `/metrics` of each port in `targets` and evaluating
    /// `rules` every `interval_secs`, and waits until it is ready.
    pub async fn start(
        dir: &Path,
        rules: &Path,
        interval_secs: u32,
        targets: &[u16],
    ) -> Result<Self, HarnessError> {
        let port = free_port()?;
        let log = dir.join("prometheus.log");
        let file = std::fs::File::create(&log)
            .map_err(HarnessError::io(format!("creating {}", log.display())))?;
        let copy = file
            .try_clone()
            .map_err(HarnessError::io(format!("opening {}", log.display())))?;
        let child = Command::new("bash")
            .arg(repo_path("ops/prometheus/local.sh"))
            .arg(dir.join("prometheus"))
            .arg(format!("127.0.0.1:{port}"))
            .arg(format!("{interval_secs}s"))
            .arg(rules)
            .args(targets.iter().map(|port| format!("127.0.0.1:{port}")))
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(copy))
            .spawn()
            .map_err(HarnessError::io("starting ops/prometheus/local.sh"))?;
        let mut prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        prometheus.wait_ready(Duration::from_secs(30)).await?;
        Ok(prometheus)
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), HarnessError> {
        let deadline = tokio::time::Instant::now() + limit;
        let ready = format!("{}/-/ready", self.url);
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(HarnessError::Process(format!(
                    "prometheus exited ({status}) before it was ready: {}",
                    self.log_text()
                )));
            }
            if let Ok(response) = reqwest::get(&ready).await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(HarnessError::Timeout {
            what: format!("prometheus ready at {ready}"),
            limit,
        })
    }

    /// Every alert pending or firing now.
    pub async fn alerts(&self) -> Result<Vec<Alert>, HarnessError> {
        let url = format!("{}/api/v1/alerts", self.url);
        let failed = |detail: String| HarnessError::Process(format!("GET {url}: {detail}"));
        let body: Value = reqwest::get(&url)
            .await
            .map_err(|e| failed(e.to_string()))?
            .json()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let alerts = body["data"]["alerts"]
            .as_array()
            .ok_or_else(|| failed(format!("no data.alerts in {body}")))?;
        Ok(alerts
            .iter()
            .map(|alert| Alert {
                labels: alert["labels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect(),
                state: alert["state"].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// Waits up to `limit` for an alert named `name`, firing, whose labels include `labels`.
    pub async fn wait_for_firing(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        limit: Duration,
    ) -> Result<Alert, HarnessError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let found = self.alerts().await?.into_iter().find(|alert| {
                alert.name() == name
                    && alert.state == "firing"
                    && labels
                        .iter()
                        .all(|(k, v)| alert.labels.get(*k).map(String::as_str) == Some(*v))
            });
            if let Some(alert) = found {
                return Ok(alert);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!("alert {name} {labels:?} firing"),
                    limit,
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A copy of `rules` in `dir` with every alert's `for:` set to 0s, so that a test sees in seconds what
/// the alert's expression says of a real fault (the `for:` durations are tested with promtool, against
/// series given in `ops/prometheus/rules.test.yml`).
pub fn rules_without_hold(rules: &Path, dir: &Path) -> Result<PathBuf, HarnessError> {
    let text = std::fs::read_to_string(rules)
        .map_err(HarnessError::io(format!("reading {}", rules.display())))?;
    let held: String = text
        .lines()
        .map(|line| match line.trim_start().strip_prefix("for:") {
            Some(_) => format!("{}for: 0s\n", &line[..line.len() - line.trim_start().len()]),
            None => format!("{line}\n"),
        })
        .collect();
    let copy = dir.join("rules-without-hold.yml");
    std::fs::write(&copy, held).map_err(HarnessError::io(format!("writing {}", copy.display())))?;
    Ok(copy)
}
