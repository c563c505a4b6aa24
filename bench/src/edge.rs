//! Benchmark 2: the edge's hit path under wrk, beside the trivial `/healthz` route in the same run.

use std::process::Command;

use anyhow::{bail, Context};
use pricefront_core::ProductId;
use pricefront_harness::sample_comparison;
use pricefront_harness::worker::LocalWorker;

use crate::report::Section;
use crate::Args;

const PORT: u16 = 8789;

/// What wrk measured for one route.
struct Load {
    requests_per_sec: f64,
    p50: String,
    p99: String,
    /// wrk's "Non-2xx or 3xx responses" count.
    non_2xx: u64,
    /// wrk's socket errors (connect, read, write, timeout), as it prints them; "0" when none.
    socket_errors: String,
}

/// Starts a KV-backed Worker, fills one product, and loads both routes.
pub async fn run(args: &Args) -> anyhow::Result<Section> {
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is missing: apt-get install -y wrk (make bench does)");
    }
    let worker = tokio::task::spawn_blocking(|| LocalWorker::start("bench", PORT, &[])).await??;
    let product = ProductId::new(4_242_424_242).context("a product id")?;
    let filled = worker
        .edge()
        .fill(&sample_comparison(product), &worker.token)
        .await?;
    if filled != 204 {
        bail!("filling the Worker answered {filled}");
    }
    let base = worker.base.clone();
    let health = wrk(args, &format!("{base}/healthz"))?;
    let hit = wrk(args, &format!("{base}/v1/prices/{product}"))?;
    let row = |route: &str, load: &Load| {
        format!(
            "| {route} | {:.0} | {} | {} | {:.2} | {} | {} |",
            load.requests_per_sec,
            load.p50,
            load.p99,
            load.requests_per_sec / health.requests_per_sec,
            load.non_2xx,
            load.socket_errors
        )
    };
    Ok(Section {
        title: "2. Edge hit path (wrangler dev, Workers KV)".into(),
        table: vec![
            "| route | requests/s | p50 | p99 | ratio to /healthz | non-2xx | socket errors |".into(),
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |".into(),
            row("GET /healthz (baseline)", &health),
            row("GET /v1/prices/{id}, cached", &hit),
        ],
        notes: vec![format!(
            "wrk -t2 -c{} -d{}s --latency, on the same 2 cores as the Worker: local `wrangler dev` (workerd), not \
             Cloudflare's network.",
            args.edge_connections, args.edge_seconds
        )],
    })
}

fn wrk(args: &Args, url: &str) -> anyhow::Result<Load> {
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{}", args.edge_connections),
            &format!("-d{}s", args.edge_seconds),
            "--latency",
            url,
        ])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    let requests_per_sec = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .context(format!("no Requests/sec in:\n{text}"))?;
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let socket_errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or_else(|| "0".to_owned(), |e| e.trim().to_owned());
    Ok(Load {
        requests_per_sec,
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
        non_2xx,
        socket_errors,
    })
}
