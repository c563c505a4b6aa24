//! Benchmark 2: the edge's hit path under wrk, beside the trivial `/healthz` route in the same run.

use std::process::Command;

use anyhow::{bail, Context};
use pricefront_core::{Comparison, FreshnessPolicy, Money, Offer, ProductId, VendorOutcome};
use pricefront_harness::{now_ms, repo_path};

use crate::report::Section;
use crate::Args;

const PORT: u16 = 8789;

/// What wrk measured for one route.
struct Load {
    requests_per_sec: f64,
    p50: String,
    p99: String,
}

/// Starts a KV-backed Worker, fills one product, and loads both routes.
pub async fn run(args: &Args) -> anyhow::Result<Section> {
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is missing: apt-get install -y wrk (make bench does)");
    }
    let token = format!("bench-{}", now_ms());
    let edge = repo_path("scripts/edge-dev.sh");
    let started = Command::new(&edge)
        .args([
            "start",
            "bench",
            &PORT.to_string(),
            "--var",
            &format!("FILL_TOKEN:{token}"),
        ])
        .status()?;
    if !started.success() {
        bail!("the Worker did not start (scripts/edge-dev.sh start bench)");
    }
    let result = measure(args, &token).await;
    let _ = Command::new(&edge).args(["stop", "bench"]).status();
    result
}

async fn measure(args: &Args, token: &str) -> anyhow::Result<Section> {
    let base = format!("http://127.0.0.1:{PORT}");
    let product = ProductId::new(4_242_424_242).context("a product id")?;
    let offer = Offer {
        vendor: "alpha".into(),
        price: Money {
            minor_units: 1999,
            currency: "EUR".parse()?,
        },
        url: None,
    };
    let comparison = Comparison::aggregate(
        product,
        [VendorOutcome::Answered {
            offer,
            guarantee_ms: 3_600_000,
        }],
        now_ms(),
        &FreshnessPolicy::default(),
    );
    let filled = reqwest::Client::new()
        .put(format!("{base}/internal/v1/prices/{product}"))
        .bearer_auth(token)
        .body(comparison.to_json())
        .send()
        .await?;
    if filled.status() != 204 {
        bail!("filling the Worker answered {}", filled.status());
    }
    let health = wrk(args, &format!("{base}/healthz"))?;
    let hit = wrk(args, &format!("{base}/v1/prices/{product}"))?;
    let row = |route: &str, load: &Load| {
        format!(
            "| {route} | {:.0} | {} | {} | {:.2} |",
            load.requests_per_sec,
            load.p50,
            load.p99,
            load.requests_per_sec / health.requests_per_sec
        )
    };
    Ok(Section {
        title: "2. Edge hit path (wrangler dev, Workers KV)".into(),
        table: vec![
            "| route | requests/s | p50 | p99 | ratio to /healthz |".into(),
            "| --- | ---: | ---: | ---: | ---: |".into(),
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
    if text.contains("Non-2xx") {
        bail!("wrk saw errors on {url}:\n{text}");
    }
    Ok(Load {
        requests_per_sec,
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
    })
}
