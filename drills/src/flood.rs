//! Drill 8: a flood of distinct ids. A few client identities walk random product ids well above the
//! limits, while a legitimate client keeps reading cached products and asks for a few new ones. The
//! Worker runs with every miss guard on (the per-client rate limit keyed by an API key header, the
//! known-products filter, backpressure) and the consumer with per-vendor quotas.
//!
//! Reported: the share of flood requests answered 404, 429 or 503 (and that none of those was
//! published), vendor requests per second against their quota, the consumer's lag during and after,
//! and the legitimate client's hit latency during a quiet run and during the flood, side by side.
//! "Lost" = a legitimate read of a cached product not answered 200, or a legitimate new product with no
//! result served by the end of the recovery.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use pricefront_core::ProductId;
use pricefront_harness::edge::Edge;
use pricefront_harness::metrics::{page, sum_of};
use pricefront_harness::topic::records_per_product;
use pricefront_harness::worker::LocalWorker;
use pricefront_harness::{sample_comparison, ConsumerProcess, TestEnv};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::support::{self, secs};
use crate::{DrillError, DrillReport};

/// The Worker's port.
const PORT: u16 = 8811;

/// The header the Worker keys its miss limit by.
const CLIENT_HEADER: &str = "x-client-key";

/// Products of the catalog: ids `0..CATALOG` of the drill's range. The legitimate client's cached
/// products come first, then its new ones (from 1,000 in the quiet run, 5,000 in the flood); the flood
/// asks for known ids from [`FLOOD_KNOWN_FROM`] on.
const CATALOG: u64 = 100_000;

/// The first known id the flood asks for.
const FLOOD_KNOWN_FROM: u64 = 10_000;

/// The load and the limits of the drill.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Flood requests a second, all identities together.
    pub flood_per_second: u32,
    /// Flood identities (API keys).
    pub flood_clients: u32,
    /// How long the quiet run and the flood each last.
    pub duration: Duration,
    /// The legitimate client's reads of cached products a second.
    pub hits_per_second: u32,
    /// How often the legitimate client asks for a product not yet cached.
    pub new_product_every: Duration,
    /// Cached products the legitimate client reads.
    pub cached_products: u64,
    /// Each vendor's quota, requests a second (per process; one consumer here).
    pub vendor_quota: f64,
    /// The Worker's `BACKLOG_MAX`.
    pub backlog_max: u64,
    /// How long the consumer may take to catch up after the flood.
    pub recovery_limit: Duration,
}

impl Default for Plan {
    /// `make drills`: 20 s of 80 flood requests a second from 4 identities.
    fn default() -> Self {
        Self {
            flood_per_second: 80,
            flood_clients: 4,
            duration: Duration::from_secs(20),
            hits_per_second: 20,
            new_product_every: Duration::from_secs(2),
            cached_products: 200,
            vendor_quota: 10.0,
            backlog_max: 100,
            recovery_limit: Duration::from_secs(120),
        }
    }
}

impl Plan {
    /// The short version of `make test`: 10 s.
    pub fn short() -> Self {
        Self {
            duration: Duration::from_secs(10),
            ..Self::default()
        }
    }
}

/// What the legitimate client saw.
#[derive(Debug, Default)]
struct Legit {
    /// Latencies of reads of cached products answered 200, in ms.
    hit_ms: Vec<f64>,
    /// Reads of cached products answered anything but 200.
    hits_failed: u64,
    /// New products asked for, not yet served.
    pending: Vec<ProductId>,
    /// New products asked for.
    asked: u64,
}

/// What the flood got back, by answer: the status and, for a problem, its type (`"503
/// /problems/backlogged"`); `"no answer"` for a connection error.
type FloodTally = HashMap<String, u64>;

/// One flood request's answer: its product, status, problem type (empty when none) and latency in ms.
struct FloodAnswer {
    product: ProductId,
    status: u16,
    problem: String,
    ms: f64,
}

impl FloodAnswer {
    /// Refused by a miss guard, so never published.
    fn refused(&self) -> bool {
        matches!(
            self.problem.as_str(),
            "/problems/unknown-product" | "/problems/rate-limited" | "/problems/backlogged"
        )
    }

    fn label(&self) -> String {
        match self.status {
            0 => "no answer".into(),
            status if self.problem.is_empty() => status.to_string(),
            status => format!("{status} {}", self.problem),
        }
    }
}

/// Runs the drill.
pub async fn run(plan: &Plan) -> Result<DrillReport, DrillError> {
    support::check_stack().await?;
    let started = Instant::now();
    let mut report = DrillReport {
        name: "flood of distinct ids".into(),
        fault: format!(
            "{} requests/s of distinct random ids from {} identities for {} (half outside the catalog), beside a \
             client reading {} cached products at {}/s and asking for a new one every {}",
            plan.flood_per_second,
            plan.flood_clients,
            secs(plan.duration),
            plan.cached_products,
            plan.hits_per_second,
            secs(plan.new_product_every),
        ),
        ..DrillReport::default()
    };
    let quota = format!(
        "max_requests_per_second = {}\nmax_concurrency = 8",
        plan.vendor_quota
    );
    let vendors = ["alpha", "bravo", "charlie"];
    let settings: Vec<(&str, &str)> = vendors.iter().map(|v| (*v, quota.as_str())).collect();
    let env =
        TestEnv::with_vendor_settings("flood", support::three_healthy_vendors(), 2_000, &settings)
            .await?;
    let worker = start_worker(&env, plan).await?;
    load_catalog(&env)?;
    let consumer = env.start_consumer(
        "flood",
        &["--fill-url", &worker.base, "--fill-token", &worker.token],
    )?;
    support::wait_ready(&consumer, Duration::from_secs(60)).await?;
    let edge = worker.edge();
    for n in 0..plan.cached_products {
        let status = edge
            .fill(&sample_comparison(env.product(n)), &worker.token)
            .await
            .map_err(|e| DrillError::Precondition(e.to_string()))?;
        if status != 204 {
            return Err(DrillError::Precondition(format!(
                "filling the edge answered {status}"
            )));
        }
    }

    // Quiet: the legitimate client alone.
    let quiet = legit_load(plan, &edge, &env, 1_000).await;
    // The flood, beside the same legitimate load.
    let vendor_requests_before = env.simulator.request_counts();
    let flood_started = Instant::now();
    let sampling = tokio::spawn(sample_lag(consumer.metrics_port, plan.duration));
    let (flood, loud) = tokio::join!(
        flood_load(plan, &edge, &env),
        legit_load(plan, &edge, &env, 5_000)
    );
    let flood_elapsed = flood_started.elapsed();
    let vendor_requests_after = env.simulator.request_counts();
    let lag_during = sampling.await.unwrap_or_default();
    let (flood_tally, flood_products) = flood;

    // Recovery: the backlog drains and every new product of the legitimate client is served.
    let recovery = recover(plan, &edge, &consumer, &quiet, &loud).await;

    // Nothing refused was published.
    let published = published_products(&env).await?;
    let refused_but_published = flood_products
        .iter()
        .filter(|answer| answer.refused() && published.contains(&answer.product.get()))
        .count();

    let flood_total: u64 = flood_tally.values().sum();
    let refused = flood_products.iter().filter(|a| a.refused()).count() as u64;
    report.requests = flood_total
        + (quiet.hit_ms.len() as u64 + quiet.hits_failed + quiet.asked)
        + (loud.hit_ms.len() as u64 + loud.hits_failed + loud.asked);
    let lost = quiet.hits_failed + loud.hits_failed + recovery.unserved;
    report.lost = Some(lost);
    report.check(
        lost == 0,
        format!(
            "{lost} legitimate requests lost ({} hits not answered 200, {} new products never served)",
            quiet.hits_failed + loud.hits_failed,
            recovery.unserved
        ),
    );
    report.check(
        refused_but_published == 0,
        format!("{refused_but_published} refused flood requests were published all the same"),
    );
    let mut answers: Vec<_> = flood_tally.iter().collect();
    answers.sort();
    report.note(format!(
        "flood: {flood_total} requests, {:.1}% refused by a miss guard without a publish; answers: {}",
        100.0 * refused as f64 / flood_total.max(1) as f64,
        answers
            .iter()
            .map(|(label, count)| {
                let ms: Vec<f64> = flood_products
                    .iter()
                    .filter(|a| &a.label() == *label)
                    .map(|a| a.ms)
                    .collect();
                format!(
                    "{label} {count} (p50 {} / p99 {} ms)",
                    quantile(&ms, 0.5),
                    quantile(&ms, 0.99)
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    ));
    for vendor in vendors {
        let sent = vendor_requests_after.get(vendor).copied().unwrap_or(0)
            - vendor_requests_before.get(vendor).copied().unwrap_or(0);
        let rate = sent as f64 / flood_elapsed.as_secs_f64();
        // The bucket holds ceil(quota) tokens at the start, then refills at the quota.
        let allowance = plan.vendor_quota.ceil() + plan.vendor_quota * flood_elapsed.as_secs_f64();
        report.note(format!(
            "vendor {vendor}: {sent} requests during the flood, {rate:.1}/s against a quota of {}/s (allowance {allowance:.0})",
            plan.vendor_quota
        ));
        report.check(
            sent as f64 <= allowance,
            format!("vendor {vendor} got {sent} requests, above its allowance of {allowance:.0}"),
        );
    }
    let peak_lag = lag_during.iter().copied().fold(0.0, f64::max);
    report.note(format!(
        "consumer lag: at most {peak_lag:.0} during the flood (BACKLOG_MAX {}), back to 0 {} after it",
        plan.backlog_max,
        recovery
            .drained_after
            .map_or_else(|| "not".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
    ));
    report.note(format!(
        "legitimate hits: quiet p50 {} / p99 {} ms ({} reads); during the flood p50 {} / p99 {} ms ({} reads); new \
         products asked {} + {}, served by the end {}",
        quantile(&quiet.hit_ms, 0.5),
        quantile(&quiet.hit_ms, 0.99),
        quiet.hit_ms.len(),
        quantile(&loud.hit_ms, 0.5),
        quantile(&loud.hit_ms, 0.99),
        loud.hit_ms.len(),
        quiet.asked,
        loud.asked,
        quiet.asked + loud.asked - recovery.unserved,
    ));
    drop(consumer);
    tokio::task::spawn_blocking(move || worker.stop())
        .await
        .map_err(|e| DrillError::Precondition(e.to_string()))?
        .map_err(|e| DrillError::Precondition(e.to_string()))?;
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn start_worker(env: &TestEnv, plan: &Plan) -> Result<LocalWorker, DrillError> {
    let vars: Vec<(&'static str, String)> = vec![
        ("REQUEST_TOPIC", env.topic.clone()),
        ("MISS_RATE_LIMIT_KEY", format!("header:{CLIENT_HEADER}")),
        ("KNOWN_PRODUCTS_KEY", catalog_key(env)),
        ("BACKLOG_MAX", plan.backlog_max.to_string()),
        ("BACKLOG_CHECK_MS", "1000".into()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    LocalWorker::start("drill-flood", PORT, &vars)
        .await
        .map_err(|e| DrillError::Precondition(e.to_string()))
}

fn catalog_key(env: &TestEnv) -> String {
    format!("catalog:{}", env.topic)
}

/// Loads ids `0..CATALOG` of the drill as the catalog, the way an operator does.
fn load_catalog(env: &TestEnv) -> Result<(), DrillError> {
    let ids = env.dir.join("catalog.txt");
    std::fs::write(
        &ids,
        format!("{}-{}\n", env.product(0), env.product(CATALOG - 1)),
    )?;
    let output = Command::new(pricefront_harness::repo_path("scripts/load-catalog.sh"))
        .arg(&ids)
        .arg(catalog_key(env))
        .args(["--local", "drill-flood"])
        .output()?;
    if !output.status.success() {
        return Err(DrillError::Precondition(format!(
            "scripts/load-catalog.sh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}

/// The legitimate client for `plan.duration`: reads of cached products, and a new product (numbered
/// from `first_new`) every `plan.new_product_every`.
async fn legit_load(plan: &Plan, edge: &Edge, env: &TestEnv, first_new: u64) -> Legit {
    let every = Duration::from_secs(1) / plan.hits_per_second.max(1);
    let until = Instant::now() + plan.duration;
    let mut tick = tokio::time::interval(every);
    let mut next_new = Instant::now();
    let mut reads = JoinSet::new();
    let mut legit = Legit::default();
    let mut n = 0;
    while Instant::now() < until {
        tick.tick().await;
        if Instant::now() >= next_new {
            next_new += plan.new_product_every;
            let product = env.product(first_new + legit.asked);
            legit.asked += 1;
            legit.pending.push(product);
            let edge = edge.clone();
            reads.spawn(async move {
                let _ = edge
                    .get_prices_with_header(product, CLIENT_HEADER, "legit")
                    .await;
                None
            });
        }
        let product = env.product(n % plan.cached_products);
        n += 1;
        let edge = edge.clone();
        reads.spawn(async move {
            let sent = Instant::now();
            let status = edge
                .get_prices_with_header(product, CLIENT_HEADER, "legit")
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            Some((status, sent.elapsed().as_secs_f64() * 1000.0))
        });
    }
    while let Some(joined) = reads.join_next().await {
        match joined {
            Ok(Some((200, ms))) => legit.hit_ms.push(ms),
            Ok(Some(_)) | Err(_) => legit.hits_failed += 1,
            Ok(None) => {}
        }
    }
    legit
}

/// The flood: distinct random ids, half outside the catalog, from `plan.flood_clients` identities, at
/// `plan.flood_per_second` for `plan.duration`. Each request's product and status.
async fn flood_load(plan: &Plan, edge: &Edge, env: &TestEnv) -> (FloodTally, Vec<FloodAnswer>) {
    let every = Duration::from_secs(1) / plan.flood_per_second.max(1);
    let total = u64::from(plan.flood_per_second) * plan.duration.as_secs();
    let mut tick = tokio::time::interval(every);
    let mut seen = HashSet::new();
    let mut requests = JoinSet::new();
    let clients: Arc<[String]> = (0..plan.flood_clients)
        .map(|i| format!("flood-{i}"))
        .collect();
    for i in 0..total {
        tick.tick().await;
        let n = loop {
            // Known ids are drawn from the part of the catalog the legitimate client never asks for.
            let n = if i % 2 == 0 {
                FLOOD_KNOWN_FROM + rand::random::<u64>() % (CATALOG - FLOOD_KNOWN_FROM)
            } else {
                CATALOG + 1_000_000 + rand::random::<u64>() % 1_000_000_000
            };
            if seen.insert(n) {
                break n;
            }
        };
        let (edge, product) = (edge.clone(), env.product(n));
        let client = clients[(i % u64::from(plan.flood_clients)) as usize].clone();
        requests.spawn(async move {
            let sent = Instant::now();
            let (status, problem) = match edge
                .get_prices_with_header(product, CLIENT_HEADER, &client)
                .await
            {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    let problem = body["type"].as_str().unwrap_or_default().to_owned();
                    (status, problem)
                }
                Err(_) => (0, String::new()),
            };
            FloodAnswer {
                product,
                status,
                problem,
                ms: sent.elapsed().as_secs_f64() * 1000.0,
            }
        });
    }
    let mut tally = FloodTally::new();
    let mut answered = Vec::new();
    while let Some(Ok(answer)) = requests.join_next().await {
        *tally.entry(answer.label()).or_default() += 1;
        answered.push(answer);
    }
    (tally, answered)
}

/// The consumer's total lag once a second for `duration`.
async fn sample_lag(metrics_port: u16, duration: Duration) -> Vec<f64> {
    let until = Instant::now() + duration;
    let mut lags = Vec::new();
    while Instant::now() < until {
        if let Ok(text) = page(metrics_port).await {
            lags.push(sum_of(&text, "pricefront_consumer_lag"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    lags
}

/// How the pipeline recovered after the flood.
struct Recovery {
    /// When the consumer's lag was back to 0, after the flood.
    drained_after: Option<Duration>,
    /// Legitimate new products with no result served by the end.
    unserved: u64,
}

/// Waits for the lag to drain, then asks again (as a client told `Retry-After` would) for every new
/// product of the legitimate client until it is served, within `plan.recovery_limit`.
async fn recover(
    plan: &Plan,
    edge: &Edge,
    consumer: &ConsumerProcess,
    quiet: &Legit,
    loud: &Legit,
) -> Recovery {
    let started = Instant::now();
    let deadline = started + plan.recovery_limit;
    let mut drained_after = None;
    while Instant::now() < deadline {
        if let Ok(text) = page(consumer.metrics_port).await {
            // The lag is reported every 5 s: wait for a report after the flood.
            if started.elapsed() > Duration::from_secs(6)
                && sum_of(&text, "pricefront_consumer_lag") == 0.0
            {
                drained_after = Some(started.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut pending: Vec<ProductId> = quiet.pending.iter().chain(&loud.pending).copied().collect();
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for product in pending {
            let status = edge
                .get_prices_with_header(product, CLIENT_HEADER, "legit")
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if status != 200 {
                still.push(product);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    Recovery {
        drained_after,
        unserved: pending.len() as u64,
    }
}

/// The ids with at least one record in the drill's topic.
async fn published_products(env: &TestEnv) -> Result<HashSet<u64>, DrillError> {
    Ok(records_per_product(&env.topic)
        .await
        .map_err(|e| DrillError::Precondition(e.to_string()))?
        .into_keys()
        .collect())
}

/// The `q` quantile of `values` in ms, as text ("-" when empty).
fn quantile(values: &[f64], q: f64) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    format!("{:.1}", sorted[index])
}
