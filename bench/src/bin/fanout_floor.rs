//! `pricefront-fanout-floor`: the vendor calls of the consumer without Kafka or Redis, so that the fill
//! benchmark shows what the consumer's CPU and memory per comparison cost at the floor.
//!
//! It asks the vendors of `--vendors` about `--products` products, `--max-in-flight` at a time, on one
//! thread as the consumer does, and prints one JSON line: the comparisons, the seconds they took, and
//! this process's CPU seconds (user + sys, and each apart) and peak RSS. Two modes:
//! - `fanout`: the consumer's own fan-out ([`Comparer`]: quotas, breakers, retries, timeouts, metrics,
//!   trace context, aggregation) and the JSON it stores;
//! - `bare`: plain `reqwest` GETs, one per vendor, concurrently, with the consumer's HTTP client and the
//!   body read: what the HTTP client alone costs.

use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use futures::future::join_all;
use futures::StreamExt;
use pricefront_consumer::process::lateness::RuntimeLag;
use pricefront_consumer::process::metrics::Metrics;
use pricefront_consumer::vendors::fanout::Comparer;
use pricefront_consumer::vendors::fetch::{http_client, FetchLimits};
use pricefront_consumer::{vendors, Settings};
use pricefront_core::{ProductId, TraceContext};
use pricefront_harness::process::{cpu_split, memory};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What each comparison does.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// The consumer's fan-out and the JSON it stores.
    Fanout,
    /// One plain GET per vendor, the body read.
    Bare,
}

/// The vendor calls of the consumer without Kafka or Redis.
#[derive(Debug, Parser)]
struct Args {
    /// The vendors file, as the consumer reads it.
    #[arg(long)]
    vendors: PathBuf,
    /// Comparisons at a time (the consumer's `--max-in-flight`).
    #[arg(long)]
    max_in_flight: u32,
    /// Comparisons in all (products 1..=N).
    #[arg(long)]
    products: u64,
    #[arg(long, value_enum)]
    mode: Mode,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let comparisons = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(&args))?;
    let seconds = started.elapsed().as_secs_f64();
    let pid = std::process::id();
    let cpu = cpu_split(pid)?;
    let memory = memory(pid)?;
    println!(
        r#"{{"comparisons":{comparisons},"seconds":{seconds:.3},"cpu_seconds":{:.3},"user_seconds":{:.3},"system_seconds":{:.3},"peak_rss_kib":{},"files_rss_kib":{}}}"#,
        cpu.total(),
        cpu.user,
        cpu.system,
        memory.peak_kib,
        memory.files_kib
    );
    Ok(())
}

async fn run(args: &Args) -> anyhow::Result<u64> {
    // The consumer's own defaults for every limit, parsed as the consumer parses them.
    let settings = Settings::try_parse_from([
        "pricefront-consumer".as_ref(),
        "--vendors".as_ref(),
        args.vendors.as_os_str(),
        "--max-in-flight".as_ref(),
        args.max_in_flight.to_string().as_ref(),
    ])?;
    let vendors = vendors::load(&settings.vendors)?;
    let client = http_client(settings.max_in_flight, vendors.len())?;
    let window = settings.max_in_flight as usize;
    match args.mode {
        Mode::Fanout => {
            let metrics = Metrics::new();
            let lag = RuntimeLag::new(
                metrics.runtime_lag.clone(),
                vendors::shortest_timeout(&vendors),
            );
            lag.start();
            let comparer = Comparer::new(
                client,
                vendors,
                FetchLimits::of(&settings),
                settings.freshness_policy(),
                metrics,
                lag,
                None,
            );
            window_of(args.products, window, |product| {
                let comparer = &comparer;
                async move {
                    let comparison = comparer
                        .compare(product, TraceContext::start(rand::random()))
                        .await;
                    serde_json::to_vec(&comparison)?;
                    Ok(())
                }
            })
            .await
        }
        Mode::Bare => {
            window_of(args.products, window, |product| {
                let (client, vendors) = (&client, &vendors);
                async move {
                    let calls = vendors.iter().map(|vendor| async move {
                        let Some(url) = vendor.url_for(product) else {
                            anyhow::bail!("vendor {}'s URL cannot be made", vendor.name);
                        };
                        client
                            .get(url)
                            .send()
                            .await?
                            .bytes()
                            .await
                            .map_err(anyhow::Error::from)
                    });
                    for body in join_all(calls).await {
                        body?;
                    }
                    Ok(())
                }
            })
            .await
        }
    }
}

/// Runs `compare` on products 1..=`products`, `window` at a time; the count done, or the first error.
async fn window_of<F, Fut>(products: u64, window: usize, compare: F) -> anyhow::Result<u64>
where
    F: Fn(ProductId) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut results = futures::stream::iter(1..=products)
        .map(|n| {
            let product = ProductId::new(n).context("a product id");
            let compared = product.map(&compare);
            async move { compared?.await }
        })
        .buffer_unordered(window);
    let mut done = 0;
    while let Some(result) = results.next().await {
        result?;
        done += 1;
    }
    Ok(done)
}
