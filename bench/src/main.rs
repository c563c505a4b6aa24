//! `pricefront-bench`: the benchmarks, against the real local stack (`dev/stack.sh up`), each
//! beside its baseline in the same run. Prints a table; `--write` also rewrites BENCHMARKS.md.
//!
//! 1. Fill throughput: comparisons per second of the consumer (release build) at each in-flight window
//!    (`--max-in-flight`), against the same consumer one message at a time per partition
//!    (`--mode sequential`), and against the latency-bound ideal (max_in_flight / vendor latency). Peak memory of the consumer.
//! 2. Edge hit path: wrk against the Worker under `wrangler dev` and against a plain JavaScript Worker
//!    doing the same (`bench/peers/js-worker/`), each beside its `/healthz`, in alternating rounds; ours
//!    like for like (`HOT_CACHE_MS=0`, a KV read per hit as the peer) headlined beside ours with the
//!    isolate's hot cache, both also at the peer's offered load (an open loop, [`paced`], 200s only
//!    counted as hits); the wasm's size and each Worker's start time.
//! 3. Miss to filled: from sending the first GET (answered 202 once the edge has published) to receiving
//!    the first 200, through the Strimzi Kafka Bridge, Kafka, the consumer, vendors at a fixed latency
//!    and both sinks, beside that vendor latency.
//! 4. Publish path: distinct misses per second through the edge and the bridge, beside the hit path of the
//!    same Worker under the same load loop; every accepted publish counted in the topic.
//! 6. Authentication: the consumer's CPU per comparison with each kind a vendor profile can use (none, a
//!    key in the query, OAuth 2.0, RSA-signed headers per request and reused), in the same run.
//! 7. Scale-out: one, two and three consumer processes on a 12-partition topic of the three-node cluster
//!    (fill rate, CPU per comparison), and the rebalance when a process joins or leaves under load, with
//!    the classic protocol's `cooperative-sticky` and with KIP-848's `group.protocol=consumer`.

mod auth_cost;
mod cpu_profile;
mod edge;
mod fill;
mod isolate_profile;
mod miss;
mod paced;
mod peer_consumer;
mod plot;
mod prefer;
mod publish;
mod report;
mod scale_out;
mod usage;

use clap::Parser;

// The simulated vendors run in this process, on the same 2 cores as the consumers they serve: with
// glibc's allocator, malloc and free took a sixth of its CPU. (The vendors of production run elsewhere.)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmarks of pricefront on the local stack.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Args {
    /// Distinct products for each run of ours and the peer.
    #[arg(long, default_value_t = 10_000)]
    products: u64,
    /// Run the peer with its core module (a thread per record) instead of its Vert.x module.
    #[arg(long)]
    peer_core: bool,
    /// Distinct products for the sequential baseline (one at a time per partition is slow: bounded).
    #[arg(long, default_value_t = 600)]
    sequential_products: u64,
    /// Simulated vendors.
    #[arg(long, default_value_t = 5)]
    vendors: usize,
    /// Simulated vendor latency in ms (uniform within ±10%).
    #[arg(long, default_value_t = 100)]
    vendor_latency_ms: u64,
    /// The consumer's `--max-in-flight` values (the peer's maxConcurrency) to compare ours and the peer
    /// at (repeatable).
    #[arg(long = "max-in-flight", default_values_t = [256, 512, 1024])]
    max_in_flight: Vec<u32>,
    /// The `--max-in-flight` at which ours runs once more with its spans exported over OTLP (0: never).
    #[arg(long, default_value_t = 512)]
    trace_export_at: u32,
    /// Skip the Parallel Consumer peer in the fill benchmark (for quick runs of ours; not with `--write`).
    #[arg(long, conflicts_with = "write")]
    no_peer: bool,
    /// Skip the one-at-a-time baseline in the fill benchmark (for quick runs; not with `--write`).
    #[arg(long, conflicts_with = "write")]
    no_sequential: bool,
    /// The longest one fill run may take, in seconds.
    #[arg(long, default_value_t = 300)]
    fill_limit_secs: u64,
    /// Seconds of wrk load per edge route.
    #[arg(long, default_value_t = 10)]
    edge_seconds: u64,
    /// Rounds of the edge benchmark (each loads the five routes once, alternating); the figures are
    /// their medians.
    #[arg(long, default_value_t = 5)]
    edge_rounds: u32,
    /// wrk connections.
    #[arg(long, default_value_t = 16)]
    edge_connections: u32,
    /// Distinct products missed in the miss-to-filled benchmark.
    #[arg(long, default_value_t = 1_000)]
    miss_products: u64,
    /// Misses per second in the miss-to-filled benchmark (repeatable): each rate is a run of its own
    /// for each Worker, so the figures show the path at light load beside the same path on busy CPUs.
    #[arg(long = "miss-rate", default_values_t = [5, 20], value_parser = clap::value_parser!(u32).range(1..))]
    miss_rates: Vec<u32>,
    /// How often a client polls after its 202, in ms.
    #[arg(long, default_value_t = 10)]
    miss_poll_ms: u64,
    /// Distinct products for each fill of the scale-out benchmark (one per count of processes and
    /// protocol).
    #[arg(long, default_value_t = 6_000, value_parser = clap::value_parser!(u64).range(1..))]
    scale_out_products: u64,
    /// New requests per second while the scale-out benchmark times a process joining and leaving.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    scale_out_load: u32,
    /// Run only these benchmarks (repeatable); all of them when absent. With `--write`, only their
    /// sections of BENCHMARKS.md are replaced.
    #[arg(long, value_enum)]
    only: Vec<Bench>,
    /// Rewrite BENCHMARKS.md with the results (and the charts beside it).
    #[arg(long)]
    write: bool,
    /// Draw the charts beside BENCHMARKS.md (`bench-fill.svg`) without rewriting it (`--write` draws
    /// them too). The fill chart is drawn only when the peer ran.
    #[arg(long)]
    plot: bool,
}

/// The benchmarks `--only` can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bench {
    /// 1. Fill throughput, ours beside the Parallel Consumer.
    Fill,
    /// 2. The edge hit path, ours beside the JavaScript Worker.
    Edge,
    /// 3 and 4. Miss to filled, and the publish path.
    Miss,
    /// 6. What each authentication kind of a vendor costs the consumer.
    Auth,
    /// 7. One, two and three consumer processes on the cluster; rebalances on a join and a leave.
    ScaleOut,
}

impl Args {
    /// The highest of the miss-to-filled rates: the `Prefer: wait` benchmark runs at it.
    fn busiest_miss_rate(&self) -> u32 {
        self.miss_rates.iter().copied().max().unwrap_or(20)
    }

    fn runs(&self, bench: Bench) -> bool {
        self.only.is_empty() || self.only.contains(&bench)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut sections = Vec::new();
    if args.runs(Bench::Fill) {
        sections.push(fill::run(&args).await?);
    }
    if args.runs(Bench::Edge) {
        sections.push(edge::run(&args).await?);
    }
    if args.runs(Bench::Miss) {
        sections.extend(miss::run(&args).await?);
    }
    if args.runs(Bench::Auth) {
        sections.push(auth_cost::run(&args).await?);
    }
    if args.runs(Bench::ScaleOut) {
        sections.push(scale_out::run(&args).await?);
    }
    let text = report::render(&args, &sections);
    println!("{text}");
    if args.write {
        let path = pricefront_harness::repo_path("BENCHMARKS.md");
        let text = if args.only.is_empty() {
            text
        } else {
            report::merge(&std::fs::read_to_string(&path)?, &sections)
        };
        std::fs::write(path, text)?;
        println!("(written to BENCHMARKS.md)");
    }
    Ok(())
}
