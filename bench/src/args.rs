//! The command line of `pricefront-bench`: what to run and with which settings, shared by every
//! benchmark.

use clap::Parser;
use pricefront_harness::{profiles_of, vendor};
use vendor_sim::{BodyShape, Profiles};

/// Benchmarks of pricefront on the local stack.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Args {
    /// Distinct products for each run of ours and the peer.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) products: u64,
    /// Run the peer with its core module (a thread per record) instead of its Vert.x module.
    #[arg(long)]
    pub(crate) peer_core: bool,
    /// Distinct products for the sequential baseline (one at a time per partition is slow: bounded).
    #[arg(long, default_value_t = 600)]
    pub(crate) sequential_products: u64,
    /// Simulated vendors.
    #[arg(long, default_value_t = 5)]
    pub(crate) vendors: usize,
    /// Simulated vendor latency in ms (uniform within ±10%).
    #[arg(long, default_value_t = 100)]
    pub(crate) vendor_latency_ms: u64,
    /// The consumer's `--max-in-flight` values (the peer's maxConcurrency) to compare ours and the peer
    /// at (repeatable).
    #[arg(long = "max-in-flight", default_values_t = [256, 512, 1024])]
    pub(crate) max_in_flight: Vec<u32>,
    /// Runs of ours and of each floor at every window, taking turns; each row is the median of its
    /// runs, and the goals give the range of the rounds' own ratios beside the medians'.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub(crate) floor_rounds: u32,
    /// The `--max-in-flight` at which ours runs once more with its spans exported over OTLP (0: never).
    #[arg(long, default_value_t = 512)]
    pub(crate) trace_export_at: u32,
    /// Skip the Parallel Consumer peer in the fill benchmark (for quick runs of ours; not with `--write`).
    #[arg(long, conflicts_with = "write")]
    pub(crate) no_peer: bool,
    /// Skip the one-at-a-time baseline in the fill benchmark (for quick runs; not with `--write`).
    #[arg(long, conflicts_with = "write")]
    pub(crate) no_sequential: bool,
    /// The longest one fill run may take, in seconds.
    #[arg(long, default_value_t = 300)]
    pub(crate) fill_limit_secs: u64,
    /// Seconds of wrk load per edge route.
    #[arg(long, default_value_t = 10)]
    pub(crate) edge_seconds: u64,
    /// Rounds of the edge benchmark (each loads the five routes once, alternating); the figures are
    /// their medians.
    #[arg(long, default_value_t = 5)]
    pub(crate) edge_rounds: u32,
    /// wrk connections.
    #[arg(long, default_value_t = 16)]
    pub(crate) edge_connections: u32,
    /// Distinct products missed in the miss-to-filled benchmark.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) miss_products: u64,
    /// Misses per second in the miss-to-filled benchmark (repeatable): each rate is a run of its own
    /// for each Worker, so the figures show the path at light load beside the same path on busy CPUs.
    #[arg(long = "miss-rate", default_values_t = [5, 20], value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) miss_rates: Vec<u32>,
    /// How often a client polls after its 202, in ms.
    #[arg(long, default_value_t = 10)]
    pub(crate) miss_poll_ms: u64,
    /// Distinct products for each fill of the scale-out benchmark (one per count of processes and
    /// protocol).
    #[arg(long, default_value_t = 6_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) scale_out_products: u64,
    /// New requests per second while the scale-out benchmark times a process joining and leaving.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) scale_out_load: u32,
    /// Run only these benchmarks (repeatable); all of them when absent. With `--write`, only their
    /// sections of BENCHMARKS.md are replaced.
    #[arg(long, value_enum)]
    pub(crate) only: Vec<Bench>,
    /// Keep the fill benchmark's `perf record` files in this folder (`ours.data`, `fanout.data`,
    /// `bare.data`), to read with `perf report`, instead of removing them once counted.
    #[arg(long)]
    pub(crate) keep_profiles: Option<std::path::PathBuf>,
    /// Rewrite BENCHMARKS.md with the results (and the charts beside it).
    #[arg(long)]
    pub(crate) write: bool,
    /// Draw the charts beside BENCHMARKS.md (`bench-fill.svg`) without rewriting it (`--write` draws
    /// them too). The fill chart is drawn only when the peer ran.
    #[arg(long)]
    pub(crate) plot: bool,
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
    pub(crate) fn busiest_miss_rate(&self) -> u32 {
        self.miss_rates.iter().copied().max().unwrap_or(20)
    }

    /// Whether `bench` is to run: it is one of `--only`, or `--only` is absent.
    pub(crate) fn runs(&self, bench: Bench) -> bool {
        self.only.is_empty() || self.only.contains(&bench)
    }

    /// The simulated vendors of the fill benchmarks: `--vendors` of them, each at `--vendor-latency-ms`
    /// within ±10%, nested and flat bodies in turn.
    pub(crate) fn vendor_profiles(&self) -> Profiles {
        let low = self.vendor_latency_ms * 9 / 10;
        let high = self.vendor_latency_ms * 11 / 10;
        profiles_of((0..self.vendors).map(|i| {
            let shape = if i % 2 == 0 {
                BodyShape::Nested
            } else {
                BodyShape::Flat
            };
            (format!("vendor{i}"), vendor((low, high), shape))
        }))
    }
}
