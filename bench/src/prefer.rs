//! Benchmark 5: miss to 200 for a client that sends `Prefer: wait=10` (one round trip) against a client
//! that polls the way a 202 tells it to (`Retry-After`), on the same Workers, in the same run, the
//! products alternating between the two at the same rate.

use std::time::Duration;

use anyhow::Context;
use pricefront_core::ProductId;
use pricefront_harness::edge::Edge;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::Args;
use crate::ids::rand_offset;
use crate::report::Section;
use crate::spread::{NoSamples, Spread};

/// Products per client kind and Worker.
const PRODUCTS: u64 = 100;

/// The longest either client keeps trying for one product.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

/// How one client kind did on one Worker: time to the 200, and how many requests it took.
struct ClientRun {
    to_200: Spread,
    /// From the result's `computedAtMs` (the consumer's clock, this machine's) to the 200 received.
    after_result: Spread,
    requests: Spread,
    failed: u64,
    /// Misses published: every product whose first request was answered 202, or 200 after its wait.
    published: u64,
}

/// Runs both client kinds on each of `edges` (label, Worker), `PRODUCTS` products each at the busiest
/// miss rate; the section, and how many misses were published (answered 202, or 200 after the wait).
pub async fn run(args: &Args, edges: &[(&str, &Edge)]) -> anyhow::Result<(Section, u64)> {
    let mut published = 0;
    let mut table = vec![
        "| Worker | client | products | p50 ms | p99 ms | max ms | result computed → 200: p50 / p99 ms | requests per product (p50 / max) | failed |".into(),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |".into(),
    ];
    for (label, edge) in edges {
        let (waiting, polling) = both(args, edge).await?;
        published += waiting.published + polling.published;
        for (client, run) in [
            ("`Prefer: wait=10`", &waiting),
            ("polls after `Retry-After`", &polling),
        ] {
            table.push(format!(
                "| {label} | {client} | {} | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} | {:.0} / {:.0} | {} |",
                run.to_200.count,
                run.to_200.p50,
                run.to_200.p99,
                run.to_200.max,
                run.after_result.p50,
                run.after_result.p99,
                run.requests.p50,
                run.requests.max,
                run.failed
            ));
        }
    }
    let section = Section {
        title: "5. One round trip with `Prefer: wait` against polling with `Retry-After`".into(),
        table,
        notes: vec![format!(
            "From sending the first request for a new product to receiving its 200. {PRODUCTS} products per client \
             and Worker, the two clients alternating at {}/s in total, while the consumer of benchmark 3 runs; a \
             polling client waits the `Retry-After` of each 202 (2 s) before asking again, as a well-behaved \
             client does. The waiting client's requests count 1 each: with the gate, the edge waits on the \
             product's gate, which answers the moment the fill reaches it (with `kv+redis` it also watches \
             Redis, which the consumer writes first, and the first to have the result answers); with the gate \
             off, the edge reads the cache for it (25 ms doubling to 400 ms). \"Result computed → 200\" runs from \
             the result's `computedAtMs` to the client's 200 (one clock: everything runs on this machine): for \
             a waiting client it is the fill's way to the edge (benchmark 3's last stage) plus the wait's own \
             delay.",
            args.busiest_miss_rate()
        )],
    };
    Ok((section, published))
}

/// The waiting client and the polling client, alternating products on `edge`.
async fn both(args: &Args, edge: &Edge) -> anyhow::Result<(ClientRun, ClientRun)> {
    let every = Duration::from_secs(1) / args.busiest_miss_rate();
    let mut tick = tokio::time::interval(every);
    let first = 9_500_000_000 + (rand_offset() % 1_000_000_000);
    let mut tasks = JoinSet::new();
    for n in 0..PRODUCTS * 2 {
        tick.tick().await;
        let edge = edge.clone();
        let product = ProductId::new(first + n).context("a product id")?;
        let waiting = n % 2 == 0;
        tasks.spawn(async move {
            let outcome = if waiting {
                wait_once(&edge, product).await
            } else {
                poll(&edge, product).await
            };
            (waiting, outcome)
        });
    }
    let (mut waited, mut polled) = (Outcomes::default(), Outcomes::default());
    while let Some(done) = tasks.join_next().await {
        let (waiting, (published, outcome)) = done?;
        let into = if waiting { &mut waited } else { &mut polled };
        into.published += u64::from(published);
        match outcome {
            Some((elapsed, requests, after_result)) => {
                into.times.push(elapsed);
                into.after_result.push(after_result);
                into.requests.push(Duration::from_millis(requests));
            }
            None => into.failed += 1,
        }
    }
    let run = |outcomes: Outcomes, client: &str| {
        let failed = outcomes.failed;
        outcomes
            .run()
            .with_context(|| format!("{client}: no product answered 200 ({failed} failed)"))
    };
    Ok((run(waited, "Prefer: wait")?, run(polled, "polling")?))
}

#[derive(Default)]
struct Outcomes {
    times: Vec<Duration>,
    after_result: Vec<Duration>,
    /// Request counts, carried as milliseconds so that [`Spread`] can rank them.
    requests: Vec<Duration>,
    failed: u64,
    published: u64,
}

impl Outcomes {
    fn run(self) -> Result<ClientRun, NoSamples> {
        Ok(ClientRun {
            published: self.published,
            to_200: Spread::of(self.times)?,
            after_result: Spread::of(self.after_result)?,
            requests: Spread::of(self.requests)?,
            failed: self.failed,
        })
    }
}

/// Whether the first request published, and (when a 200 came) the time to it, the requests sent and
/// the time from the result's computation to the 200.
type Outcome = (bool, Option<(Duration, u64, Duration)>);

/// The time from the served result's `computedAtMs` to now (zero when the body does not say).
async fn since_computed(response: reqwest::Response) -> Duration {
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let computed = body["computedAtMs"].as_u64().unwrap_or(u64::MAX);
    Duration::from_millis(pricefront_harness::clock::now_ms().saturating_sub(computed))
}

/// One request with `Prefer: wait=10`, then (if that ran out) polls.
async fn wait_once(edge: &Edge, product: ProductId) -> Outcome {
    let started = Instant::now();
    match edge.get_prices_preferring(product, "wait=10").await {
        Ok(response) => follow(edge, product, started, response).await,
        Err(_) => (false, None),
    }
}

/// Asks, and after each 202 waits its `Retry-After` before asking again.
async fn poll(edge: &Edge, product: ProductId) -> Outcome {
    let started = Instant::now();
    match edge.get_prices(product, None).await {
        Ok(response) => follow(edge, product, started, response).await,
        Err(_) => (false, None),
    }
}

/// What follows the first answer to a miss: done on a 200, polling on a 202.
async fn follow(
    edge: &Edge,
    product: ProductId,
    started: Instant,
    first: reqwest::Response,
) -> Outcome {
    match first.status().as_u16() {
        200 => {
            let elapsed = started.elapsed();
            (true, Some((elapsed, 1, since_computed(first).await)))
        }
        202 => (true, poll_from(edge, product, started, 1, &first).await),
        _ => (false, None),
    }
}

async fn poll_from(
    edge: &Edge,
    product: ProductId,
    started: Instant,
    mut requests: u64,
    first: &reqwest::Response,
) -> Option<(Duration, u64, Duration)> {
    let mut pause = retry_after(first);
    while started.elapsed() < GIVE_UP_AFTER {
        tokio::time::sleep(pause).await;
        let response = edge.get_prices(product, None).await.ok()?;
        requests += 1;
        match response.status().as_u16() {
            200 => {
                let elapsed = started.elapsed();
                return Some((elapsed, requests, since_computed(response).await));
            }
            202 => pause = retry_after(&response),
            _ => return None,
        }
    }
    None
}

fn retry_after(response: &reqwest::Response) -> Duration {
    let secs = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    Duration::from_secs(secs)
}
