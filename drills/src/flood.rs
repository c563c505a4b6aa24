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
//!
//! The guards must have worked, not merely not published what they refused: at least
//! [`MIN_UNKNOWN_404`] of the flood's ids outside the catalog answered 404, 429s among the answers and no
//! identity answered 202 more often in one window of `MISS_LIMITER` than its limit (read from
//! `wrangler.toml`, which the drill's Worker runs with), and every flood request answered.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use pricefront_core::ProductId;
use pricefront_harness::edge::Edge;
use pricefront_harness::metrics::{page, sum_of};
use pricefront_harness::topic::records_per_product;
use pricefront_harness::worker::{Inspector, LocalWorker};
use pricefront_harness::{now_ms, sample_comparison, ConsumerProcess, TestEnv};
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

/// The least share of the flood's ids outside the catalog that must be answered 404: the filter is a
/// Bloom filter, whose false positives (about 1% as `pricefront-catalog` builds it) pass as known ids.
pub const MIN_UNKNOWN_404: f64 = 0.95;

/// A rate limiting binding's `simple = { limit, period }` in `wrangler.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per period and key.
    pub limit: u64,
    /// The period, seconds (10 or 60). Under `wrangler dev` the periods are fixed windows of Unix time.
    pub period_secs: u64,
}

impl RateLimit {
    /// The binding `name`'s limit in the text of a `wrangler.toml`, if it has one.
    pub fn of_binding(wrangler_toml: &str, name: &str) -> Option<Self> {
        let mut in_binding = false;
        for line in wrangler_toml.lines().map(str::trim) {
            if line.starts_with('[') {
                in_binding = false;
            } else if let Some(("name", value)) = line.split_once('=').map(|(k, v)| (k.trim(), v)) {
                in_binding = value.trim().trim_matches('"') == name;
            } else if in_binding && line.starts_with("simple") {
                let number = |key: &str| -> Option<u64> {
                    let rest = line.split(key).nth(1)?.trim_start().strip_prefix('=')?;
                    rest.trim_start()
                        .split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse()
                        .ok()
                };
                return Some(Self {
                    limit: number("limit")?,
                    period_secs: number("period")?,
                });
            }
        }
        None
    }

    /// The binding `name`'s limit in the repository's `wrangler.toml`.
    pub fn of_wrangler_toml(name: &str) -> Result<Self, DrillError> {
        let path = pricefront_harness::repo_path("wrangler.toml");
        let text = std::fs::read_to_string(&path)?;
        Self::of_binding(&text, name).ok_or_else(|| {
            DrillError::Precondition(format!(
                "{} sets no simple limit for {name}",
                path.display()
            ))
        })
    }

    /// The window holding the Unix time `ms`.
    fn window_of(&self, ms: u64) -> u64 {
        ms / (self.period_secs.max(1) * 1000)
    }
}

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
    /// `make drills`: 20 s of 80 flood requests a second from 2 identities: 20 known ids a second
    /// each, so that each passes `MISS_LIMITER`'s 120 a minute within the flood even when it spans two
    /// of the limiter's windows, and backpressure turns some away.
    fn default() -> Self {
        Self {
            flood_per_second: 80,
            flood_clients: 2,
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
    /// The short version of `make test`: 10 s from one identity (40 known ids a second: past
    /// `MISS_LIMITER`'s 120 a minute in 3 s, before backpressure can turn it away).
    pub fn short() -> Self {
        Self {
            duration: Duration::from_secs(10),
            flood_clients: 1,
            ..Self::default()
        }
    }

    /// The legitimate client's misses during the quiet run and the flood together, at most.
    fn legit_misses(&self) -> u64 {
        let per_run = self.duration.as_millis() / self.new_product_every.as_millis().max(1) + 1;
        2 * per_run as u64
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

/// One flood request's answer: its product, status (0: no answer), problem type (empty when none) and
/// latency in ms, the identity that sent it, whether its id was in the catalog, and when (Unix ms) it
/// was sent and answered.
#[derive(Debug, Clone)]
struct FloodAnswer {
    product: ProductId,
    status: u16,
    problem: String,
    ms: f64,
    client: usize,
    in_catalog: bool,
    sent_ms: u64,
    answered_ms: u64,
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
            "{} requests/s of distinct random ids from {} {} for {} (half outside the catalog), beside a \
             client reading {} cached products at {}/s and asking for a new one every {}",
            plan.flood_per_second,
            plan.flood_clients,
            if plan.flood_clients == 1 { "identity" } else { "identities" },
            secs(plan.duration),
            plan.cached_products,
            plan.hits_per_second,
            secs(plan.new_product_every),
        ),
        ..DrillReport::default()
    };
    let client_limit = RateLimit::of_wrangler_toml("MISS_LIMITER")?;
    let address_limit = RateLimit::of_wrangler_toml("MISS_ADDRESS_LIMITER")?;
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
    consumer.wait_ready(Duration::from_secs(60)).await?;
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
    let (flood_tally, flood_products, flood_sent) = flood;

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
    check_guards(
        &mut report,
        plan,
        (client_limit, address_limit),
        &flood_products,
        flood_sent,
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

/// Fails `report` unless the miss guards worked on the flood (`answers` of `sent` requests): every
/// request answered; at least [`MIN_UNKNOWN_404`] of the ids outside the catalog answered 404; some
/// answered 429; no identity answered 202 more often in one window of `MISS_LIMITER` than `limits.0`
/// allows (a 202 counts in a window when it was sent and answered within it: the Worker's clock read
/// lies between); and the plan within `MISS_ADDRESS_LIMITER` (`limits.1`), every identity sharing
/// 127.0.0.1, so that the 429s are the identities' own.
fn check_guards(
    report: &mut DrillReport,
    plan: &Plan,
    (client, address): (RateLimit, RateLimit),
    answers: &[FloodAnswer],
    sent: u64,
) {
    let unanswered = sent.saturating_sub(answers.len() as u64)
        + answers.iter().filter(|a| a.status == 0).count() as u64;
    report.check(
        unanswered == 0,
        format!("{unanswered} of {sent} flood requests got no answer"),
    );
    let unknown: Vec<&FloodAnswer> = answers.iter().filter(|a| !a.in_catalog).collect();
    let refused_unknown = unknown
        .iter()
        .filter(|a| a.status == 404 && a.problem == "/problems/unknown-product")
        .count();
    let share = refused_unknown as f64 / unknown.len().max(1) as f64;
    report.check(
        !unknown.is_empty() && share >= MIN_UNKNOWN_404,
        format!(
            "{refused_unknown} of the {} flood ids outside the catalog were answered 404 ({:.1}%, at least {:.0}% \
             expected): the known-products filter did not turn them away",
            unknown.len(),
            100.0 * share,
            100.0 * MIN_UNKNOWN_404
        ),
    );
    let limited = answers
        .iter()
        .filter(|a| a.status == 429 && a.problem == "/problems/rate-limited")
        .count();
    report.check(
        limited > 0,
        format!(
            "no flood request was answered 429: MISS_LIMITER ({} a key per {} s) never refused an identity",
            client.limit, client.period_secs
        ),
    );
    let mut per_identity = Vec::new();
    for identity in 0..plan.flood_clients as usize {
        let mine = || answers.iter().filter(move |a| a.client == identity);
        let mut by_window: HashMap<u64, u64> = HashMap::new();
        for answer in mine().filter(|a| a.status == 202) {
            let window = client.window_of(answer.sent_ms);
            if window == client.window_of(answer.answered_ms) {
                *by_window.entry(window).or_default() += 1;
            }
        }
        let most = by_window.values().copied().max().unwrap_or(0);
        let accepted = mine().filter(|a| a.status == 202).count();
        let refused = mine().filter(|a| a.status == 429).count();
        report.check(
            most <= client.limit,
            format!(
                "identity flood-{identity} was answered 202 {most} times in one {} s window of MISS_LIMITER, above its \
                 limit of {}",
                client.period_secs, client.limit
            ),
        );
        per_identity.push(format!(
            "flood-{identity} {accepted} 202 (at most {most} in one window) and {refused} 429"
        ));
    }
    // Each identity passes MISS_LIMITER at most `limit` times a window; the legitimate client's new
    // products pass too; all of them count against 127.0.0.1 in MISS_ADDRESS_LIMITER.
    let address_worst = u64::from(plan.flood_clients) * client.limit + plan.legit_misses();
    report.check(
        address_worst <= address.limit,
        format!(
            "the plan lets up to {address_worst} misses a window from 127.0.0.1 through MISS_LIMITER, above \
             MISS_ADDRESS_LIMITER's {}: a 429 could be the address's, and say nothing of the identities' limit",
            address.limit
        ),
    );
    report.note(format!(
        "rate limits (wrangler.toml): MISS_LIMITER {} a key per {} s, MISS_ADDRESS_LIMITER {} an address per {} s (the \
         plan passes at most {address_worst} a window from 127.0.0.1); per identity: {}; ids outside the catalog \
         answered 404: {refused_unknown} of {}",
        client.limit,
        client.period_secs,
        address.limit,
        address.period_secs,
        per_identity.join(", "),
        unknown.len()
    ));
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
    // Without wrangler's inspector, as deployed (`cluster::Rig::start` says what it costs under load).
    LocalWorker::start_with("drill-flood", PORT, &vars, Inspector::Off)
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
async fn flood_load(
    plan: &Plan,
    edge: &Edge,
    env: &TestEnv,
) -> (FloodTally, Vec<FloodAnswer>, u64) {
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
        // Each identity in turn sends a known id and an unknown one (before, with `i % clients`, the even
        // identities sent every known id and the odd ones none).
        let client_index = ((i / 2) % u64::from(plan.flood_clients)) as usize;
        let client = clients[client_index].clone();
        let in_catalog = n < CATALOG;
        requests.spawn(async move {
            let sent = Instant::now();
            let sent_ms = now_ms();
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
                client: client_index,
                in_catalog,
                sent_ms,
                answered_ms: now_ms(),
            }
        });
    }
    let mut tally = FloodTally::new();
    let mut answered = Vec::new();
    // A task that failed took its answer with it: counted as no answer.
    while let Some(joined) = requests.join_next().await {
        let label = match joined {
            Ok(answer) => {
                let label = answer.label();
                answered.push(answer);
                label
            }
            Err(_) => "no answer".into(),
        };
        *tally.entry(label).or_default() += 1;
    }
    (tally, answered, total)
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
    Ok(records_per_product(&env.brokers, &env.topic)
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        limit: 120,
        period_secs: 60,
    };
    const ADDRESS: RateLimit = RateLimit {
        limit: 1200,
        period_secs: 60,
    };

    /// A flood of `plan` answered by `answer(i, in_catalog)` (status, problem), one request every
    /// 12.5 ms from the start of a window, odd requests outside the catalog, identities in turn as
    /// `flood_load` assigns them.
    fn flood(plan: &Plan, answer: impl Fn(u64, bool) -> (u16, &'static str)) -> Vec<FloodAnswer> {
        let total = u64::from(plan.flood_per_second) * plan.duration.as_secs();
        (0..total)
            .map(|i| {
                let in_catalog = i % 2 == 0;
                let (status, problem) = answer(i, in_catalog);
                let sent_ms = 1_800_000_000_000 + i * 1000 / u64::from(plan.flood_per_second);
                FloodAnswer {
                    product: ProductId::new(1 + i).unwrap(),
                    status,
                    problem: problem.into(),
                    ms: 5.0,
                    client: ((i / 2) % u64::from(plan.flood_clients)) as usize,
                    in_catalog,
                    sent_ms,
                    answered_ms: sent_ms + 5,
                }
            })
            .collect()
    }

    fn checked(plan: &Plan, answers: &[FloodAnswer], sent: u64) -> DrillReport {
        let mut report = DrillReport::default();
        check_guards(&mut report, plan, (LIMIT, ADDRESS), answers, sent);
        report
    }

    /// A Worker with its guards on: unknown ids 404, each identity's first 120 known ids 202, the
    /// rest 429.
    fn guarded(plan: &Plan) -> Vec<FloodAnswer> {
        let clients = u64::from(plan.flood_clients);
        flood(plan, |i, in_catalog| {
            if !in_catalog {
                (404, "/problems/unknown-product")
            } else if i / 2 / clients < LIMIT.limit {
                (202, "")
            } else {
                (429, "/problems/rate-limited")
            }
        })
    }

    #[test]
    fn a_flood_turned_away_by_every_guard_passes() {
        for plan in [Plan::default(), Plan::short()] {
            let answers = guarded(&plan);
            let report = checked(&plan, &answers, answers.len() as u64);
            assert!(report.failures.is_empty(), "{}", report.details());
        }
    }

    #[test]
    fn a_worker_with_every_guard_off_fails() {
        let plan = Plan::default();
        let answers = flood(&plan, |_, _| (202, ""));
        let report = checked(&plan, &answers, answers.len() as u64);
        let text = report.details();
        println!("{text}");
        assert!(
            text.contains("0 of the 800 flood ids outside the catalog were answered 404"),
            "{text}"
        );
        assert!(text.contains("no flood request was answered 429"), "{text}");
        assert!(
            text.contains("identity flood-0 was answered 202 800 times in one 60 s window"),
            "{text}"
        );
        // The check of before: nothing refused, so nothing refused was published.
        assert!(answers.iter().all(|a| !a.refused()));
    }

    #[test]
    fn a_limit_counted_per_window_and_every_answer_are_required() {
        let plan = Plan::default();
        // A limiter that lets each identity 200 through: within its 800 known ids, but over 120.
        let clients = u64::from(plan.flood_clients);
        let answers = flood(&plan, |i, in_catalog| {
            match (in_catalog, i / 2 / clients < 200) {
                (false, _) => (404, "/problems/unknown-product"),
                (true, true) => (202, ""),
                (true, false) => (429, "/problems/rate-limited"),
            }
        });
        let report = checked(&plan, &answers, answers.len() as u64);
        println!("{}", report.details());
        assert_eq!(report.failures.len(), 2, "{}", report.details());
        assert!(
            report.failures.iter().all(|f| f.contains("202 200 times")),
            "{}",
            report.details()
        );
        // The same flood with a window starting 5 s in passes: 100 202s a window.
        let split: Vec<FloodAnswer> = answers
            .iter()
            .cloned()
            .map(|mut a| {
                if a.sent_ms >= 1_800_000_005_000 {
                    a.sent_ms += 60_000;
                    a.answered_ms += 60_000;
                }
                a
            })
            .collect();
        let report = checked(&plan, &split, split.len() as u64);
        assert!(report.failures.is_empty(), "{}", report.details());
        // Requests without an answer, or lost with their task.
        let mut gaps = guarded(&plan);
        gaps[3].status = 0;
        let report = checked(&plan, &gaps[1..], gaps.len() as u64);
        assert_eq!(report.failures.len(), 1, "{}", report.details());
        assert!(report.failures[0].starts_with("2 of 1600 flood requests got no answer"));
    }

    #[test]
    fn a_plan_that_could_meet_the_address_limit_fails() {
        let plan = Plan::default();
        let answers = guarded(&plan);
        let mut report = DrillReport::default();
        let address = RateLimit {
            limit: 250,
            period_secs: 60,
        };
        check_guards(
            &mut report,
            &plan,
            (LIMIT, address),
            &answers,
            answers.len() as u64,
        );
        assert_eq!(report.failures.len(), 1, "{}", report.details());
        assert!(report.failures[0].contains("up to 262 misses a window"));
    }

    #[test]
    fn rate_limits_are_read_from_wrangler_toml() {
        let toml = "[[ratelimits]]\nname = \"A\"\nnamespace_id = \"1\"\nsimple = { limit = 7, period = 10 }\n\n\
                    [[ratelimits]]\nname = \"B\"\nsimple = { limit = 1200, period = 60 }\n[vars]\nname = \"A\"\n";
        assert_eq!(
            RateLimit::of_binding(toml, "A"),
            Some(RateLimit {
                limit: 7,
                period_secs: 10
            })
        );
        assert_eq!(
            RateLimit::of_binding(toml, "B").map(|r| r.limit),
            Some(1200)
        );
        assert_eq!(RateLimit::of_binding(toml, "C"), None);
        let ours = include_str!("../../wrangler.toml");
        assert!(RateLimit::of_binding(ours, "MISS_LIMITER").is_some());
        assert!(RateLimit::of_binding(ours, "MISS_ADDRESS_LIMITER").is_some());
    }
}
