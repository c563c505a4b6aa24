//! `pricefront-bench`: the benchmarks of issue 5, against the real local stack (`dev/stack.sh up`), each
//! beside its baseline in the same run. Prints a table; `--write` also rewrites BENCHMARKS.md.
//!
//! 1. Fill throughput: comparisons per second of the consumer (release build) with its in-flight window,
//!    against the same consumer one message at a time per partition (`--mode sequential`), and against
//!    the latency-bound ideal (window / vendor latency). Peak memory of the consumer.
//! 2. Edge hit path: wrk against the Worker under `wrangler dev`, a cached product against `/healthz`.
//! 3. Miss to filled and 4. publish path: they need the Kafka REST proxy, which cannot be had here.

mod edge;
mod fill;
mod report;

use clap::Parser;

/// Benchmarks of pricefront on the local stack.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// Distinct products for the concurrent consumer.
    #[arg(long, default_value_t = 20_000)]
    products: u64,
    /// Distinct products for the sequential baseline (one at a time per partition is slow: bounded).
    #[arg(long, default_value_t = 600)]
    sequential_products: u64,
    /// Simulated vendors.
    #[arg(long, default_value_t = 5)]
    vendors: usize,
    /// Simulated vendor latency in ms (uniform within ±10%).
    #[arg(long, default_value_t = 100)]
    vendor_latency_ms: u64,
    /// The consumer's in-flight window.
    #[arg(long, default_value_t = 256)]
    window: u32,
    /// The longest one fill run may take, in seconds.
    #[arg(long, default_value_t = 300)]
    fill_limit_secs: u64,
    /// Seconds of wrk load per edge route.
    #[arg(long, default_value_t = 10)]
    edge_seconds: u64,
    /// wrk connections.
    #[arg(long, default_value_t = 16)]
    edge_connections: u32,
    /// Rewrite BENCHMARKS.md with the results.
    #[arg(long)]
    write: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut sections = Vec::new();
    sections.push(fill::run(&args).await?);
    sections.push(edge::run(&args).await?);
    sections.push(report::not_measured());
    let text = report::render(&args, &sections);
    println!("{text}");
    if args.write {
        std::fs::write(pricefront_harness::repo_path("BENCHMARKS.md"), text)?;
        println!("(written to BENCHMARKS.md)");
    }
    Ok(())
}
