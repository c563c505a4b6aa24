//! Benchmarks 3 and 4, through the Kafka REST proxy: miss to filled (from the edge's 202 to its first
//! 200 for the same product, the whole path edge → bridge → Kafka → consumer → vendors → sinks → edge),
//! and the publish path (distinct misses per second through the edge and the bridge) beside the hit path
//! of the same Worker, with the same load loop, in the same run.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use pricefront_core::ProductId;
use pricefront_harness::edge::Edge;
use pricefront_harness::metrics::Histogram;
use pricefront_harness::worker::LocalWorker;
use pricefront_harness::{profiles_of, vendor, TestEnv};
use tokio::time::Instant;
use vendor_sim::BodyShape;

use crate::report::Section;
use crate::Args;

const PORT: u16 = 8790;

/// Misses before the measured ones, so that the figures show the warm path (the cold start is measured
/// by the REST proxy drill).
const WARM_UP_PRODUCTS: u64 = 100;

/// Latency figures of one series, in milliseconds.
struct Spread {
    count: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Spread {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let at = |q: f64| {
            samples
                .get(((samples.len() as f64 * q).ceil() as usize).saturating_sub(1))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        Self {
            count: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Runs both benchmarks on a topic of their own, with a Worker and a consumer (release build) of their own.
pub async fn run(args: &Args) -> anyhow::Result<Vec<Section>> {
    let latency = args.vendor_latency_ms;
    let vendors = profiles_of((0..args.vendors).map(|i| {
        let shape = if i % 2 == 0 {
            BodyShape::Nested
        } else {
            BodyShape::Flat
        };
        (format!("vendor{i}"), vendor((latency, latency), shape))
    }));
    let env = TestEnv::new("bench-miss", vendors, 2_000).await;
    let topic = env.topic.clone();
    let worker = tokio::task::spawn_blocking(move || {
        LocalWorker::start("bench-miss", PORT, &[("REQUEST_TOPIC", topic.as_str())])
    })
    .await??;
    let edge = worker.edge();
    let window = args.windows.first().copied().unwrap_or(256).to_string();
    let consumer = env.start_consumer(
        "miss",
        &[
            "--fill-url",
            &worker.base,
            "--fill-token",
            &worker.token,
            "--max-in-flight",
            &window,
        ],
    );
    wait_ready(consumer.metrics_port).await?;

    // Warm-up, not measured: the bridge's and the Worker's first requests pay for JIT and connections.
    let warm = warm_up(args, &edge).await?;
    let before = pricefront_harness::metrics::page(consumer.metrics_port).await?;
    let filled = miss_to_filled(args, &edge).await?;
    let after = pricefront_harness::metrics::page(consumer.metrics_port).await?;
    let stages = Stages::between(&before, &after);
    drop(consumer); // the publish path alone: nothing consumes while it is loaded
    let hit_product = ProductId::new(env.first_product + 7).context("a product id")?;
    let sample = pricefront_harness::sample_comparison(hit_product);
    if edge.fill(&sample, &worker.token).await? != 204 {
        bail!("filling the bench Worker failed");
    }
    let first_fresh = env.first_product + 1_000_000;
    let publish = closed_loop(args, &edge, move |n| {
        ProductId::new(first_fresh + n).expect("a positive id")
    })
    .await;
    let hits = closed_loop(args, &edge, move |_| hit_product).await;
    let in_topic =
        pricefront_harness::topic::count_records(&pricefront_harness::brokers(), &env.topic)?;
    let counts = TopicCounts {
        in_topic,
        accepted: warm.accepted + filled.accepted + publish.accepted,
        refused: [&warm.others, &filled.others, &publish.statuses]
            .iter()
            .map(|statuses| statuses.get(&503).copied().unwrap_or(0))
            .sum(),
    };
    Ok(vec![
        miss_section(args, &filled, &stages),
        publish_section(args, &publish, &hits, &counts),
    ])
}

/// Where the consumer says the time of a miss went, from its stage histograms over the run (p50, p99 in
/// ms; `None` when nothing was observed).
struct Stages {
    rows: Vec<(&'static str, Option<(f64, f64)>)>,
}

impl Stages {
    fn between(before: &str, after: &str) -> Self {
        let stage = |name: &str, labels: &str| {
            let now = Histogram::parse(after, name, labels)?;
            let run = match Histogram::parse(before, name, labels) {
                Some(earlier) => now.since(&earlier),
                None => now,
            };
            Some((run.quantile(0.5)? * 1000.0, run.quantile(0.99)? * 1000.0))
        };
        Self {
            rows: vec![
                (
                    "edge took the request → consumer starts on it (publish, bridge, Kafka, fetch)",
                    stage("pricefront_request_age_on_start_seconds", ""),
                ),
                (
                    "the fan-out to the vendors",
                    stage("pricefront_comparison_duration_seconds", ""),
                ),
                (
                    "result → Redis holds it",
                    stage("pricefront_store_duration_seconds", "sink=\"redis\""),
                ),
                (
                    "result → the edge (KV) holds it",
                    stage("pricefront_store_duration_seconds", "sink=\"edge\""),
                ),
            ],
        }
    }
}

/// What the miss-to-filled run measured.
struct MissRun {
    /// From each 202 to the first 200.
    filled: Spread,
    /// The statuses that were neither (0: no answer, or no 200 within 30 s).
    others: BTreeMap<u16, u64>,
    /// How long the edge took to answer each 202 (its publish through the bridge).
    publish: Spread,
    /// How many misses were answered 202.
    accepted: u64,
}

/// Misses of distinct products at a bounded rate; for each, the time from its 202 to its first 200.
async fn miss_to_filled(args: &Args, edge: &Edge) -> anyhow::Result<MissRun> {
    let every = Duration::from_secs(1) / args.miss_rate;
    let poll = Duration::from_millis(args.miss_poll_ms);
    let mut tick = tokio::time::interval(every);
    let mut tasks = tokio::task::JoinSet::new();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let first = ProductId::new(9_000_000_000 + rand_offset()).context("a product id")?;
    for n in 0..args.miss_products {
        tick.tick().await;
        let (edge, accepted) = (edge.clone(), accepted.clone());
        let product = ProductId::new(first.get() + n).context("a product id")?;
        tasks.spawn(async move {
            let asked = Instant::now();
            let response = edge.get_prices(product, None).await.ok()?;
            if response.status() != 202 {
                return Some(Err(response.status().as_u16()));
            }
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let queued = Instant::now();
            let answered = queued - asked;
            let limit = queued + Duration::from_secs(30);
            while Instant::now() < limit {
                tokio::time::sleep(poll).await;
                match edge.get_prices(product, None).await.ok()?.status().as_u16() {
                    200 => return Some(Ok((queued.elapsed(), answered))),
                    202 => {}
                    other => return Some(Err(other)),
                }
            }
            Some(Err(0))
        });
    }
    let mut samples = Vec::new();
    let mut publishes = Vec::new();
    let mut others: BTreeMap<u16, u64> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        match done? {
            Some(Ok((latency, publish))) => {
                samples.push(latency);
                publishes.push(publish);
            }
            Some(Err(status)) => *others.entry(status).or_default() += 1,
            None => *others.entry(0).or_default() += 1,
        }
    }
    Ok(MissRun {
        filled: Spread::of(samples),
        others,
        publish: Spread::of(publishes),
        accepted: accepted.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// Misses of [`WARM_UP_PRODUCTS`] distinct products at the benchmark's rate, each polled until served.
async fn warm_up(args: &Args, edge: &Edge) -> anyhow::Result<MissRun> {
    let warm = Args {
        miss_products: WARM_UP_PRODUCTS,
        ..args.clone()
    };
    miss_to_filled(&warm, edge).await
}

/// What a closed loop of `args.edge_connections` clients measured.
struct LoopResult {
    requests: u64,
    accepted: u64,
    statuses: BTreeMap<u16, u64>,
    seconds: f64,
    spread: Spread,
}

/// `args.edge_connections` clients, each sending its next GET as soon as the last is answered, for
/// `args.edge_seconds` (and at most 200,000 requests); `product(n)` names the n-th request's product.
async fn closed_loop(
    args: &Args,
    edge: &Edge,
    product: impl Fn(u64) -> ProductId + Send + Sync + Clone + 'static,
) -> LoopResult {
    let started = Instant::now();
    let until = started + Duration::from_secs(args.edge_seconds);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..args.edge_connections {
        let (edge, next, product) = (edge.clone(), next.clone(), product.clone());
        clients.spawn(async move {
            let mut seen = Vec::new();
            while Instant::now() < until {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= 200_000 {
                    break;
                }
                let sent = Instant::now();
                let status = match edge.get_prices(product(n), None).await {
                    Ok(response) => response.status().as_u16(),
                    Err(_) => 0,
                };
                seen.push((status, sent.elapsed()));
            }
            seen
        });
    }
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut samples = Vec::new();
    while let Some(Ok(seen)) = clients.join_next().await {
        for (status, latency) in seen {
            *statuses.entry(status).or_default() += 1;
            samples.push(latency);
        }
    }
    LoopResult {
        requests: samples.len() as u64,
        accepted: statuses.get(&202).copied().unwrap_or(0),
        statuses,
        seconds: started.elapsed().as_secs_f64(),
        spread: Spread::of(samples),
    }
}

fn miss_section(args: &Args, run: &MissRun, stages: &Stages) -> Section {
    let (filled, others, publish) = (&run.filled, &run.others, &run.publish);
    let vendor = args.vendor_latency_ms as f64;
    let mut breakdown = vec![
        String::new(),
        "Where the time goes (the client's clock for the 202; the consumer's stage histograms, 25% buckets, for \
         the rest):"
            .into(),
        String::new(),
        "| stage | p50 ms | p99 ms |".into(),
        "| --- | ---: | ---: |".into(),
        format!(
            "| the edge answers the miss (claim, publish through the bridge, 202) | {:.1} | {:.1} |",
            publish.p50, publish.p99
        ),
    ];
    for (name, figures) in &stages.rows {
        breakdown.push(match figures {
            Some((p50, p99)) => format!("| {name} | {p50:.1} | {p99:.1} |"),
            None => format!("| {name} | – | – |"),
        });
    }
    Section {
        title: "3. Miss to filled (edge → bridge → Kafka → consumer → vendors → Redis and KV → edge)".into(),
        table: vec![
            "| series | products | p50 ms | p99 ms | max ms |".into(),
            "| --- | ---: | ---: | ---: | ---: |".into(),
            format!(
                "| from the 202 to the first 200 | {} | {:.1} | {:.1} | {:.1} |",
                filled.count, filled.p50, filled.p99, filled.max
            ),
            format!("| the vendors' own latency (fixed) | | {vendor:.0} | {vendor:.0} | {vendor:.0} |"),
            format!(
                "| **our path's overhead** (the difference) | | **{:.1}** | **{:.1}** | {:.1} |",
                filled.p50 - vendor,
                filled.p99 - vendor,
                filled.max - vendor
            ),
        ],
        notes: vec![format!(
            "{} distinct products missed at {}/s (after {WARM_UP_PRODUCTS} not measured) through a KV-backed Worker under `wrangler dev` and the Strimzi \
             Kafka Bridge; each client polls every {} ms after its 202 (so up to {} ms of the figure is the poll \
             interval). {} vendors at a fixed {} ms. Answers other than 202 then 200: {:?} (0 = no answer or over \
             30 s).",
            args.miss_products,
            args.miss_rate,
            args.miss_poll_ms,
            args.miss_poll_ms,
            args.vendors,
            args.vendor_latency_ms,
            others
        )]
        .into_iter()
        .chain(breakdown)
        .collect(),
    }
}

/// The records in the topic against what the edge answered.
struct TopicCounts {
    in_topic: u64,
    /// Misses answered 202.
    accepted: u64,
    /// Misses answered 503 (the bridge gave no answer in time; the record may still have landed).
    refused: u64,
}

impl TopicCounts {
    /// What the counts say: every 202 in Kafka, and any extra record one of the 503s.
    fn verdict(&self) -> String {
        let TopicCounts {
            in_topic,
            accepted,
            refused,
        } = *self;
        if in_topic == accepted {
            format!("the topic holds {in_topic} records for {accepted} accepted misses")
        } else if in_topic > accepted && in_topic - accepted <= refused {
            format!(
                "the topic holds {in_topic} records for {accepted} accepted misses: the {} extra are of the {refused} \
                 misses answered 503 whose record landed after the edge stopped waiting",
                in_topic - accepted
            )
        } else {
            format!(
                "the topic holds {in_topic} records for {accepted} accepted and {refused} refused misses — **they differ**"
            )
        }
    }
}

fn publish_section(
    args: &Args,
    publish: &LoopResult,
    hits: &LoopResult,
    counts: &TopicCounts,
) -> Section {
    let row = |name: &str, run: &LoopResult| {
        format!(
            "| {name} | {} | {:.0} | {:.1} | {:.1} | {:?} |",
            run.requests,
            run.requests as f64 / run.seconds,
            run.spread.p50,
            run.spread.p99,
            run.statuses
        )
    };
    Section {
        title: "4. Publish path (distinct misses through the edge and the bridge) beside the hit path".into(),
        table: vec![
            "| route | requests | requests/s | p50 ms | p99 ms | statuses |".into(),
            "| --- | ---: | ---: | ---: | ---: | --- |".into(),
            row("GET /v1/prices/{id}, a new id each time (publish, 202)", publish),
            row("GET /v1/prices/{id}, cached (hit, 200)", hits),
        ],
        notes: vec![format!(
            "The same Rust load loop for both, {} clients for {} s each, on the same 2 cores as the Worker, the \
             bridge and Kafka. Counted over benchmark 3 (with its warm-up) and this one: {}.",
            args.edge_connections,
            args.edge_seconds,
            counts.verdict()
        )],
    }
}

async fn wait_ready(port: u16) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{port}/readyz");
    for _ in 0..240 {
        if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("the bench consumer was not ready within 60 s")
}

fn rand_offset() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64 % 1_000_000_000)
        * 1_000
}
