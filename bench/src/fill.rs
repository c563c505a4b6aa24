//! Benchmark 1: fill throughput of the consumer, concurrent against sequential, against the ideal.

use std::time::Duration;

use anyhow::{bail, Context};
use pricefront_harness::{profiles_of, vendor, ConsumerProcess, TestEnv};
use tokio::time::Instant;
use vendor_sim::{BodyShape, Profiles};

use crate::report::Section;
use crate::Args;

/// What one consumer run measured.
struct Run {
    products: u64,
    /// Results stored per second, from the first stored result to the last (partial ones included).
    rate: f64,
    /// How many of the stored results are complete (every vendor answered).
    complete: u64,
    peak_rss_mib: f64,
    vendor_calls: u64,
}

/// Runs the concurrent consumer and its sequential baseline on fresh topics.
pub async fn run(args: &Args) -> anyhow::Result<Section> {
    let window = args.window.to_string();
    let concurrent = one_run(
        args,
        "concurrent",
        args.products,
        &["--max-in-flight", &window],
    )
    .await?;
    let sequential = one_run(
        args,
        "sequential",
        args.sequential_products,
        &["--mode", "sequential", "--max-in-flight", &window],
    )
    .await?;
    let latency_s = args.vendor_latency_ms as f64 / 1000.0;
    let ideal = f64::from(args.window) / latency_s;
    let sequential_ideal = 3.0 / latency_s;
    let row = |name: &str, run: &Run, ideal: f64| {
        format!(
            "| {name} | {} | {} | {:.0} | {:.0} | {:.0}% | {:.1} | {} |",
            run.products,
            run.complete,
            run.rate,
            ideal,
            100.0 * run.rate / ideal,
            run.peak_rss_mib,
            run.vendor_calls
        )
    };
    Ok(Section {
        title: "1. Fill throughput".into(),
        table: vec![
            "| consumer | products | complete results | results stored/s (from the first) | latency-bound ideal/s | efficiency | peak RSS MiB | vendor calls |".into(),
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |".into(),
            row(&format!("ours: window {}", args.window), &concurrent, ideal),
            row("classic: one at a time per partition", &sequential, sequential_ideal),
        ],
        notes: vec![format!(
            "Ours is **{:.1}×** the classic way. Ideal: window / vendor latency for ours, partitions (3) / vendor \
             latency for the classic way. The rate counts every stored result, partial ones included (the \
             complete ones are in their own column), from the first stored result to the last, so the group \
             join is not counted.",
            concurrent.rate / sequential.rate
        )],
    })
}

fn vendors(args: &Args) -> Profiles {
    let low = args.vendor_latency_ms * 9 / 10;
    let high = args.vendor_latency_ms * 11 / 10;
    profiles_of((0..args.vendors).map(|i| {
        let shape = if i % 2 == 0 {
            BodyShape::Nested
        } else {
            BodyShape::Flat
        };
        (format!("vendor{i}"), vendor((low, high), shape))
    }))
}

async fn one_run(args: &Args, label: &str, count: u64, flags: &[&str]) -> anyhow::Result<Run> {
    let env = TestEnv::new(&format!("bench-{label}"), vendors(args), 2_000).await;
    let products: Vec<_> = (0..count).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await;
    let consumer = env.start_consumer(label, flags);
    let limit = Instant::now() + Duration::from_secs(args.fill_limit_secs);
    let mut first = None;
    let finished_at = loop {
        let finished = consumer
            .metric("pricefront_messages_finished_total")
            .await
            .unwrap_or(0.0) as u64;
        if finished >= 1 && first.is_none() {
            first = Some((Instant::now(), finished));
        }
        if finished >= count {
            break Instant::now();
        }
        if Instant::now() > limit {
            bail!(
                "{label}: only {finished} of {count} finished within {} s",
                args.fill_limit_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (started_at, done_at_start) = first.context("nothing finished")?;
    let seconds = (finished_at - started_at).as_secs_f64().max(0.001);
    let peak_rss_mib = peak_rss_kib(&consumer) / 1024.0;
    let results = env.stored(&products).await;
    let stored = results.len() as u64;
    if stored != count {
        bail!("{label}: {stored} of {count} results in Redis");
    }
    Ok(Run {
        products: count,
        complete: results.iter().filter(|r| r.complete).count() as u64,
        rate: (count - done_at_start) as f64 / seconds,
        peak_rss_mib,
        vendor_calls: env.simulator.request_counts().values().sum(),
    })
}

/// The process's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib(consumer: &ConsumerProcess) -> f64 {
    std::fs::read_to_string(format!("/proc/{}/status", consumer.child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}
