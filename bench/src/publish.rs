//! Benchmark 4: the publish path (distinct misses per second through the edge and the bridge) beside
//! the hit path of the same Worker, under the same closed load loop; and what the second tier of
//! `kv+redis` costs: a KV miss that Redis answers, beside a KV hit of the same Worker.

use std::collections::BTreeMap;
use std::time::Duration;

use pricefront_core::ProductId;
use pricefront_harness::edge::Edge;
use pricefront_harness::worker::LocalWorker;
use pricefront_harness::Machine;
use tokio::time::Instant;

use crate::args::Args;
use crate::paced::{PacedRun, PACED_MISSES};
use crate::path_cpu::{CpuMeter, PathCpu, BRIDGE, KAFKA, PARTS, WORKERD};
use crate::report::Section;
use crate::spread::{NoSamples, Spread};

/// What a closed loop of `args.edge_connections` clients measured.
pub struct LoopResult {
    /// Requests sent.
    pub requests: u64,
    /// Requests answered 202 (each a published miss).
    pub accepted: u64,
    /// Requests by status (0: no answer).
    pub statuses: BTreeMap<u16, u64>,
    /// How long the loop ran, in seconds.
    pub seconds: f64,
    /// The latency figures of every request.
    pub spread: Spread,
    /// Where the machine's CPU went meanwhile, when the loop was metered ([`metered_loop`]).
    pub cpu: Option<PathCpu>,
}

impl LoopResult {
    /// Requests a second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds.max(0.001)
    }
}

/// [`closed_loop`] on `worker`, with the CPU of each part of the path read before and after it
/// (`gates`: the `wrangler dev` its product gates run in, when not its own).
pub async fn metered_loop(
    args: &Args,
    worker: &LocalWorker,
    gates: Option<&LocalWorker>,
    product: impl Fn(u64) -> ProductId + Send + Sync + Clone + 'static,
) -> anyhow::Result<LoopResult> {
    metered_loop_through(args, worker, gates, None, product).await
}

/// [`metered_loop`] for a Worker that publishes through the bridge of process `bridge` (the stack's
/// when `None`), whose CPU is read as the bridge's.
pub async fn metered_loop_through(
    args: &Args,
    worker: &LocalWorker,
    gates: Option<&LocalWorker>,
    bridge: Option<u32>,
    product: impl Fn(u64) -> ProductId + Send + Sync + Clone + 'static,
) -> anyhow::Result<LoopResult> {
    let meter = CpuMeter::start(worker, gates, bridge)?;
    let mut result = closed_loop(args, &worker.edge(), product).await?;
    result.cpu = Some(meter.finish()?);
    Ok(result)
}

/// `args.edge_connections` clients, each sending its next GET as soon as the last is answered, for
/// `args.edge_seconds` (and at most 200,000 requests); `product(n)` names the n-th request's product.
/// Fails when no request was sent (no latency to take a percentile of).
pub async fn closed_loop(
    args: &Args,
    edge: &Edge,
    product: impl Fn(u64) -> ProductId + Send + Sync + Clone + 'static,
) -> Result<LoopResult, NoSamples> {
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
    Ok(LoopResult {
        requests: samples.len() as u64,
        accepted: statuses.get(&202).copied().unwrap_or(0),
        statuses,
        seconds: started.elapsed().as_secs_f64(),
        spread: Spread::of(samples)?,
        cpu: None,
    })
}

/// The records in the topic against what the edge answered.
pub struct TopicCounts {
    /// Records in the topic.
    pub in_topic: u64,
    /// Misses answered 202.
    pub accepted: u64,
    /// Misses answered 503 (the bridge gave no answer in time; the record may still have landed).
    pub refused: u64,
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

/// The loops through the bridge that shares one producer: its warm-ups, then the one measured.
pub struct SharedBridgeRuns {
    /// Unmeasured loops first, so that its JVM is not measured cold.
    pub warm_ups: Vec<LoopResult>,
    /// The measured loop.
    pub run: LoopResult,
}

/// What the closed loops of benchmark 4 measured.
pub struct PublishRuns {
    /// A new id each time, on the `kv` Worker (its gates in the benchmarks' shared gate host): each a
    /// publish.
    pub publish: LoopResult,
    /// A new id each time, on the `kv+redis` Worker (the gate on).
    pub publish_tiered: LoopResult,
    /// A new id each time, on the `kv+redis` Worker with the gate off.
    pub publish_without_gate: LoopResult,
    /// A new id each time, on a `kv` Worker with the gate off: a miss as the JavaScript peer makes it.
    pub publish_kv_without_gate: LoopResult,
    /// The same under the wrangler CLI, its inspector on (every other loop runs without it).
    pub publish_kv_without_gate_cli: LoopResult,
    /// The same (`kv`, gate off) through a bridge that shares one producer among its connections
    /// (`dev/bridge-shared-producer.patch`), when one runs beside the stack's.
    pub publish_kv_shared_bridge: Option<SharedBridgeRuns>,
    /// A new id each time, on a `kv` Worker whose gates run in its own `wrangler dev`: ours as deployed.
    pub publish_kv_own_gate: LoopResult,
    /// A new id each time, on a `kv+redis` Worker whose gates run in its own `wrangler dev`.
    pub publish_own_gate: LoopResult,
    /// Distinct misses at the same offered load: the own-gate Worker, the gate-host one, the gate off.
    pub gate_price: Vec<Vec<PacedRun>>,
    /// One cached product, on the `kv` Worker.
    pub hits: LoopResult,
    /// A new id each time that only Redis holds, on the `kv+redis` Worker: KV miss, Redis hit.
    pub second_tier: LoopResult,
    /// One product KV holds, on the `kv+redis` Worker.
    pub tiered_hits: LoopResult,
    /// A new id each time on the JavaScript peer, publishing through the same REST proxy.
    pub peer_publish: LoopResult,
    /// One cached product on the JavaScript peer.
    pub peer_hits: LoopResult,
}

impl PublishRuns {
    /// Every closed loop that publishes (a new id each time, answered 202): what the topic's count of
    /// records must match, with the paced and measured runs.
    pub fn publish_loops(&self) -> Vec<&LoopResult> {
        [
            &self.publish,
            &self.publish_tiered,
            &self.publish_without_gate,
            &self.publish_kv_without_gate,
            &self.publish_kv_without_gate_cli,
            &self.publish_kv_own_gate,
            &self.publish_own_gate,
            &self.peer_publish,
        ]
        .into_iter()
        .chain(
            self.publish_kv_shared_bridge
                .iter()
                .flat_map(|shared| shared.warm_ups.iter().chain([&shared.run])),
        )
        .collect()
    }
}

/// Distinct misses a second over cached hits a second under the same load loop, ours as deployed (the
/// goal: at least 0.5×) beside the JavaScript peer publishing through the same bridge.
fn misses_per_hit(runs: &PublishRuns) -> String {
    let rate = LoopResult::rate;
    let ratio = |misses: &LoopResult, hits: &LoopResult| rate(misses) / rate(hits).max(0.001);
    let ours = ratio(&runs.publish_kv_own_gate, &runs.hits);
    format!(
        "Distinct misses a second over cached hits a second, the same loop: ours as deployed (`kv`, its gates \
         in its own `wrangler dev`) **{ours:.2}×** (goal ≥ 0.5×: {}), with the benchmarks' shared gate host \
         {:.2}×, with the gate off {:.2}× (each over the `kv` hits); the JavaScript peer {:.2}× ({:.0} misses/s \
         against {:.0} hits/s; it publishes with one `fetch` and no gate, limit or claim). **Like for like** \
         (`kv`, gate off: KV only and no gate, as the peer), ours publishes **{:.2}×** the peer's distinct \
         misses a second ({:.0} against {:.0}); `kv+redis` also reads Redis on a miss, over a connection of \
         its own (the Workers runtime keeps no socket between requests).",
        if ours >= 0.5 { "met" } else { "**not met**" },
        ratio(&runs.publish, &runs.hits),
        ratio(&runs.publish_kv_without_gate, &runs.hits),
        ratio(&runs.peer_publish, &runs.peer_hits),
        rate(&runs.peer_publish),
        rate(&runs.peer_hits),
        ratio(&runs.publish_kv_without_gate, &runs.peer_publish),
        rate(&runs.publish_kv_without_gate),
        rate(&runs.peer_publish),
    ) + &shared_bridge_note(runs)
}

/// What the bridge that shares one producer (our patch) changes for the same gate-off Worker, when it
/// ran: misses a second and the bridge's CPU per miss, against upstream's producer per connection.
fn shared_bridge_note(runs: &PublishRuns) -> String {
    let Some(SharedBridgeRuns {
        run: shared,
        warm_ups,
    }) = &runs.publish_kv_shared_bridge
    else {
        return String::new();
    };
    let upstream = &runs.publish_kv_without_gate;
    let bridge_ms = |run: &LoopResult| {
        run.cpu
            .map(|cpu| cpu.per_request_ms(run.requests)[BRIDGE])
            .unwrap_or(f64::NAN)
    };
    let gain = shared.rate() / upstream.rate().max(0.001);
    let reading = if gain >= 1.25 {
        "upstream's producer per connection bounds the rate through it"
    } else if gain >= 0.95 {
        "`wrangler dev` keeps its connections to the bridge, so upstream's producer per connection is built \
         rarely here, and the Worker's own CPU bounds the rate either way"
    } else {
        "on connections that `wrangler dev` keeps, one producer for all of them costs the bridge more CPU a \
         miss than upstream's producer per connection; the patch pays where connections are not kept (a new \
         one per request: `dev/README.md`) and on the three-node cluster, whose drills it keeps from answering \
         503"
    };
    format!(
        " **The bridge.** Through a second bridge in front of the same Kafka, built with \
         `dev/bridge-shared-producer.patch` (one producer shared by every connection, where upstream 1.1.0 \
         builds one per HTTP connection; `dev/README.md`), the same gate-off `kv` Worker (after {} unmeasured loops \
         of its own, so that its JVM is not measured cold; the stack's has carried benchmarks 3 and 5) published {:.0} \
         distinct misses a second against {:.0} through upstream's ({gain:.2}×; {:.2}× the hits), the bridge \
         spending {:.2} ms of CPU a miss against {:.2}: {reading}.",
        warm_ups.len(),
        shared.rate(),
        upstream.rate(),
        shared.rate() / runs.hits.rate().max(0.001),
        bridge_ms(shared),
        bridge_ms(upstream),
    )
}

/// Where the machine's CPU went in each metered loop, per request; and what that says of the goal: the
/// CPU misses at half the hits' rate would need, against the machine's, without what only `wrangler
/// dev` spends (its node process).
fn cpu_table(runs: &PublishRuns) -> String {
    let cores = Machine::current().cpus;
    let metered = [
        (
            "`kv`, its own gates (as deployed): a new id each time",
            &runs.publish_kv_own_gate,
        ),
        (
            "`kv`, the shared gate host: a new id each time",
            &runs.publish,
        ),
        (
            "`kv`, gate off: a new id each time",
            &runs.publish_kv_without_gate,
        ),
        (
            "`kv`, gate off, under the wrangler CLI (its inspector on): a new id each time",
            &runs.publish_kv_without_gate_cli,
        ),
        ("JavaScript peer: a new id each time", &runs.peer_publish),
        ("`kv`: one cached id (KV hit, 200)", &runs.hits),
        ("JavaScript peer: one cached id", &runs.peer_hits),
    ];
    let shared = runs.publish_kv_shared_bridge.as_ref().map(|shared| {
        (
            "`kv`, gate off, the bridge sharing one producer: a new id each time",
            &shared.run,
        )
    });
    let metered = metered
        .into_iter()
        .take(4)
        .chain(shared)
        .chain(metered.into_iter().skip(4));
    let mut lines = vec![
        format!(
            "Where the machine's CPU goes, per request, in ms (user + system time from /proc over each loop; a \
             Worker's workerd is its runtime and wrangler's proxy in front of it; \"the rest\" is the machine's \
             busy time that no part accounts for: the other Workers, idle, and the kernel's own threads; \
             {cores} cores):"
        ),
        String::new(),
        format!(
            "| loop | requests/s | {} | the rest | whole machine | machine busy |",
            PARTS.join(" | ")
        ),
        format!("| --- | ---: |{} ---: | ---: | ---: |", " ---: |".repeat(PARTS.len())),
    ];
    for (label, run) in metered {
        let Some(cpu) = run.cpu else { continue };
        let parts: Vec<String> = cpu
            .per_request_ms(run.requests)
            .iter()
            .map(|ms| format!("{ms:.2}"))
            .collect();
        lines.push(format!(
            "| {label} | {:.0} | {} | {:.2} | {:.2} | {:.0}% |",
            run.rate(),
            parts.join(" | "),
            cpu.rest_ms(run.requests),
            cpu.machine_ms(run.requests),
            100.0 * cpu.busy_share(cores)
        ));
    }
    lines.push(String::new());
    lines.push(publish_bound(runs, cores));
    lines.join("\n")
}

/// What bounds the publish rate, from the metered loops: what the CLI's inspector adds to a miss (the
/// one loop under the CLI against the same Worker without it), and the cores misses at half the hits'
/// rate would need, ours as deployed, gate off and the peer's.
fn publish_bound(runs: &PublishRuns, cores: usize) -> String {
    let costs = |run: &LoopResult| {
        run.cpu.map(|cpu| {
            (
                cpu.per_request_ms(run.requests),
                cpu.machine_ms(run.requests),
            )
        })
    };
    let (
        Some((_, deployed_ms)),
        Some((off, off_ms)),
        Some((cli, cli_ms)),
        Some((peer, peer_ms)),
        Some((_, hit_ms)),
    ) = (
        costs(&runs.publish_kv_own_gate),
        costs(&runs.publish_kv_without_gate),
        costs(&runs.publish_kv_without_gate_cli),
        costs(&runs.peer_publish),
        costs(&runs.hits),
    )
    else {
        return String::new();
    };
    let half = 0.5 * runs.hits.rate();
    let need = |ms: f64| half * ms / 1000.0;
    let verdict = if need(off_ms).min(need(peer_ms)) > cores as f64 {
        "more than this machine has, whoever writes the Worker"
    } else if need(deployed_ms) > cores as f64 {
        "within the machine like for like, beyond it as deployed"
    } else {
        "within the machine: its CPU does not bound it"
    };
    format!(
        "What bounds the publish rate. Every Worker here runs without the runtime's inspector, as a deployed \
         Worker does (wrangler's API, `scripts/wrangler-dev-api.mjs`): the wrangler CLI always starts it, and \
         enables its Network domain, so every `fetch` a Worker makes yields inspector events that workerd \
         serialises and wrangler's node process relays and appends to its debug log. The product gates (a \
         Durable Object for each distinct miss) keep their SQLite files in memory (`scripts/edge-dev.sh`): on \
         disk, wrangler dev created and synced one for each new product on the runtime's thread, which halved \
         the rate as deployed. Under the CLI, the same \
         gate-off miss took {cli_ms:.2} ms of the machine (workerd {:.2}, wrangler's node {:.2}) against \
         {off_ms:.2} ms without it (workerd {:.2}, node {:.2}), at {:.0} against {:.0} misses/s. As deployed, a \
         distinct miss takes {deployed_ms:.2} ms of the machine's CPU, {off_ms:.2} ms with the gate off and \
         {peer_ms:.2} ms with the peer (of which the bridge and Kafka {:.2} ms, its workerd {:.2}), against \
         {hit_ms:.2} ms for a cached hit. Misses at half the hits' rate ({half:.0} a second) would need {:.1} \
         cores as deployed, {:.1} with the gate off and {:.1} at the peer's cost, of the machine's {cores}: \
         {verdict}.",
        cli[WORKERD],
        cli[WORKERD + 1],
        off[WORKERD],
        off[WORKERD + 1],
        runs.publish_kv_without_gate_cli.rate(),
        runs.publish_kv_without_gate.rate(),
        peer[BRIDGE] + peer[KAFKA],
        peer[WORKERD],
        need(deployed_ms),
        need(off_ms),
        need(peer_ms),
    )
}

/// The gate's price at the same offered load: the 202's latency with the gate in the Worker's own
/// `wrangler dev`, in the shared gate host, and without it.
fn gate_price_table(runs: &[Vec<PacedRun>]) -> String {
    let labels = [
        "`kv+redis`, its own gates (as deployed)",
        "`kv+redis`, the shared gate host",
        "`kv+redis`, gate off",
    ];
    let spreads: Vec<Option<Spread>> = runs.iter().map(|r| PacedRun::spread(r).ok()).collect();
    let (rate, seconds, rounds) = PACED_MISSES;
    let mut lines = vec![
        format!(
            "The product gate's price on a miss at the same offered load ({rate} distinct misses a second, {rounds} \
             rounds of {seconds} s per Worker, taking turns; an open loop, each timed from when it was due):"
        ),
        String::new(),
        "| Worker | 202s | p50 ms | p99 ms | not 202 |".into(),
        "| --- | ---: | ---: | ---: | --- |".into(),
    ];
    for ((label, spread), run) in labels.iter().zip(&spreads).zip(runs) {
        let others = PacedRun::others(run);
        match spread {
            Some(s) => lines.push(format!(
                "| {label} | {} | {:.1} | {:.1} | {others:?} |",
                s.count, s.p50, s.p99
            )),
            None => lines.push(format!("| {label} | 0 | | | {others:?} |")),
        }
    }
    if let (Some(Some(own)), Some(Some(off))) = (spreads.first(), spreads.get(2)) {
        lines.push(String::new());
        lines.push(format!(
            "The gate's price, as deployed: **{:+.1} ms at p50**, {:+.1} ms at p99 over the gate off.",
            own.p50 - off.p50,
            own.p99 - off.p99
        ));
    }
    lines.join("\n")
}

/// Benchmark 4's section.
pub fn section(args: &Args, runs: &PublishRuns, counts: &TopicCounts) -> Section {
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
    let extra = |run: &LoopResult, base: &LoopResult| {
        format!(
            "{:+.1} ms at p50, {:+.1} ms at p99",
            run.spread.p50 - base.spread.p50,
            run.spread.p99 - base.spread.p99
        )
    };
    Section {
        title: "4. Publish path beside the hit path; the product gate's price; the second tier of `kv+redis`".into(),
        table: vec![
            "| Worker | route | requests | requests/s | p50 ms | p99 ms | statuses |".into(),
            "| --- | --- | ---: | ---: | ---: | ---: | --- |".into(),
            row("`kv` | a new id each time (publish, 202)", &runs.publish),
            row("`kv+redis` | a new id each time (publish, 202)", &runs.publish_tiered),
            row("`kv+redis`, its own gates | a new id each time (publish, 202)", &runs.publish_own_gate),
            row("`kv+redis`, gate off | a new id each time (publish, 202)", &runs.publish_without_gate),
            row("`kv`, gate off | a new id each time (publish, 202)", &runs.publish_kv_without_gate),
            row("`kv`, gate off, under the wrangler CLI (inspector on) | a new id each time (publish, 202)", &runs.publish_kv_without_gate_cli),
            row("`kv`, its own gates | a new id each time (publish, 202)", &runs.publish_kv_own_gate),
        ]
        .into_iter()
        .chain(runs.publish_kv_shared_bridge.as_ref().map(|shared| {
            row("`kv`, gate off, through the bridge sharing one producer (our patch) | a new id each time (publish, 202)", &shared.run)
        }))
        .chain([
            row("`kv` | one cached id (KV hit, 200)", &runs.hits),
            row("`kv+redis` | a new id each time that only Redis holds (KV miss, Redis hit, 200)", &runs.second_tier),
            row("`kv+redis` | one id KV holds (KV hit, 200)", &runs.tiered_hits),
            row("JavaScript peer | a new id each time (publish through the same bridge, 202)", &runs.peer_publish),
            row("JavaScript peer | one cached id (KV hit, 200)", &runs.peer_hits),
        ])
        .collect(),
        notes: vec![
            format!(
                "The same Rust load loop for each row, {} clients for {} s, on the same 2 cores as the Workers, \
                 the bridge, Kafka and Redis. Every Worker of benchmarks 3 to 5 runs without the runtime's \
                 inspector, as deployed, but the one row under the wrangler CLI. Counted over benchmarks 3 (with \
                 its warm-ups), 4 and 5: {}.",
                args.edge_connections,
                args.edge_seconds,
                counts.verdict()
            ),
            misses_per_hit(runs),
            cpu_table(runs),
            gate_price_table(&runs.gate_price),
            format!(
                "Under the closed loop (as fast as each Worker answers, so CPU-bound here) the gate costs {} with \
                 its gates in the Worker's own `wrangler dev`, as `wrangler.toml` deploys them, and {} with the \
                 benchmarks' shared gate host (a call from one `wrangler dev` to another goes through wrangler's \
                 dev registry: a local artefact, not a Cloudflare one), both against the gate off.",
                extra(&runs.publish_own_gate, &runs.publish_without_gate),
                extra(&runs.publish_tiered, &runs.publish_without_gate)
            ),
            format!(
                "The second tier's price on a KV miss: {} over a KV hit of the same Worker (one Redis GET over a \
                 new socket per read, and the write-back to KV after the answer).",
                extra(&runs.second_tier, &runs.tiered_hits)
            ),
        ],
    }
}
