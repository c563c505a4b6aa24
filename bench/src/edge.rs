//! Benchmark 2: the edge's hit path under wrk, ours (Rust/wasm) beside the JavaScript peer a team would
//! write instead (`bench/peers/js-worker/`), each beside its own `/healthz`, in alternating rounds on the
//! same machine, with the same product filled into each Worker's local KV. Also the Worker's size and the
//! time from starting `wrangler dev` to the first answer, for both.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use pricefront_core::ProductId;
use pricefront_harness::worker::LocalWorker;
use pricefront_harness::{repo_path, sample_comparison};

use crate::paced::{self, PacedRun};
use crate::plot::{lines_svg, Series};
use crate::report::Section;
use crate::Args;

const PORT: u16 = 8789;
const PEER_PORT: u16 = 8791;
const NO_MEMO_PORT: u16 = 8793;
const PEER_CONFIG: &str = "bench/peers/js-worker/wrangler.toml";

/// What wrk measured for one route in one round.
struct Load {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// wrk's "Non-2xx or 3xx responses" count.
    non_2xx: u64,
    /// wrk's socket errors (connect, read, write, timeout), as it prints them; "0" when none.
    socket_errors: String,
    /// The latency distribution: (percentile, ms), from `bench/wrk-percentiles.lua`.
    percentiles: Vec<(f64, f64)>,
}

/// One route's rounds.
struct Route {
    label: &'static str,
    url: String,
    rounds: Vec<Load>,
}

impl Route {
    /// The median of `figure` over the rounds: a round disturbed by something else on the machine (a
    /// pause of the JVMs beside it, say) moves a mean's p99 by tens of milliseconds, not a median's.
    fn median(&self, figure: impl Fn(&Load) -> f64) -> f64 {
        let mut figures: Vec<f64> = self.rounds.iter().map(figure).collect();
        figures.sort_by(f64::total_cmp);
        match figures.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => figures[n / 2],
            n => (figures[n / 2 - 1] + figures[n / 2]) / 2.0,
        }
    }

    /// Each round's `figure`, in the order run, for the notes.
    fn each_round(&self, figure: impl Fn(&Load) -> f64) -> String {
        let figures: Vec<String> = self
            .rounds
            .iter()
            .map(|l| format!("{:.0}", figure(l)))
            .collect();
        figures.join(", ")
    }

    /// The latency distribution, each percentile's median latency over the rounds: (ms, percentile).
    fn distribution(&self) -> Vec<(f64, f64)> {
        let Some(first) = self.rounds.first() else {
            return Vec::new();
        };
        first
            .percentiles
            .iter()
            .enumerate()
            .map(|(i, &(percentile, _))| {
                let ms = self.median(|l| l.percentiles.get(i).map_or(f64::NAN, |p| p.1));
                (ms, percentile)
            })
            .collect()
    }
}

/// The edge chart, beside BENCHMARKS.md (drawn with `--write` or `--plot`).
pub const EDGE_CHART: &str = "bench-edge.svg";

/// Starts the Workers (ours, the peer, ours without the hot cache), fills one product into each, and
/// loads the five routes in alternating rounds.
pub async fn run(args: &Args) -> anyhow::Result<Section> {
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is missing: apt-get install -y wrk (make bench does)");
    }
    let started = Instant::now();
    let ours = LocalWorker::start("bench", PORT, &[]).await?;
    let ours_start = started.elapsed();
    let started = Instant::now();
    let peer = LocalWorker::start_from("bench-js", PEER_PORT, &[], Some(PEER_CONFIG)).await?;
    let peer_start = started.elapsed();
    // Ours again, reading KV on every hit as the peer does: what the isolate's hot cache is worth.
    let no_memo =
        LocalWorker::start("bench-no-hot-cache", NO_MEMO_PORT, &[("HOT_CACHE_MS", "0")]).await?;
    let product = ProductId::new(4_242_424_242).context("a product id")?;
    let sample = sample_comparison(product);
    for worker in [&ours, &peer, &no_memo] {
        let filled = worker.edge().fill(&sample, &worker.token).await?;
        if filled != 204 {
            bail!("filling {} answered {filled}", worker.base);
        }
        let served = worker.edge().get_prices(product, None).await?;
        if served.status() != 200 {
            bail!(
                "{} does not serve the filled product: {}",
                worker.base,
                served.status()
            );
        }
    }
    let mut routes = vec![
        Route {
            label: "ours: GET /v1/prices/{id}, cached",
            url: format!("{}/v1/prices/{product}", ours.base),
            rounds: Vec::new(),
        },
        Route {
            label: "JavaScript peer: GET /v1/prices/{id}, cached",
            url: format!("{}/v1/prices/{product}", peer.base),
            rounds: Vec::new(),
        },
        Route {
            label: "ours with `HOT_CACHE_MS=0` (KV read on every hit): GET /v1/prices/{id}, cached",
            url: format!("{}/v1/prices/{product}", no_memo.base),
            rounds: Vec::new(),
        },
        Route {
            label: "ours: GET /healthz",
            url: format!("{}/healthz", ours.base),
            rounds: Vec::new(),
        },
        Route {
            label: "JavaScript peer: GET /healthz",
            url: format!("{}/healthz", peer.base),
            rounds: Vec::new(),
        },
    ];
    for _ in 0..args.edge_rounds {
        for route in &mut routes {
            let load = wrk(args, &route.url)?;
            route.rounds.push(load);
        }
    }
    let (ours_hit, peer_hit, no_memo_hit, ours_health) =
        (&routes[0], &routes[1], &routes[2], &routes[3]);
    let rps = |r: &Route| r.median(|l| l.requests_per_sec);
    let p99 = |r: &Route| r.median(|l| l.p99_ms);
    let same_load = same_load(args, rps(peer_hit), product, [&ours, &peer]).await?;
    let mut table = vec![
        "| route | requests/s | p50 ms | p99 ms | non-2xx | socket errors |".into(),
        "| --- | ---: | ---: | ---: | ---: | --- |".into(),
    ];
    for route in &routes {
        table.push(format!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            route.label,
            rps(route),
            route.median(|l| l.p50_ms),
            p99(route),
            route.rounds.iter().map(|l| l.non_2xx).sum::<u64>(),
            route
                .rounds
                .iter()
                .map(|l| l.socket_errors.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let chart = if args.write || args.plot {
        let series = [
            Series::new("ours (Rust/wasm): hit", ours_hit.distribution()),
            Series::new("JavaScript peer: hit", peer_hit.distribution()),
            Series::new("ours, HOT_CACHE_MS=0: hit", no_memo_hit.distribution()),
            Series::dashed("ours: /healthz", ours_health.distribution()),
        ];
        lines_svg(
            &repo_path(EDGE_CHART),
            &format!(
                "Edge hit path under wrk -c{} (wrangler dev); {}",
                args.edge_connections,
                crate::report::machine()
            ),
            "latency, ms",
            "percentile of requests answered within",
            &series,
        )?;
        format!(
            "\n![The hit path's latency distribution: ours, the JavaScript peer and our /healthz]({EDGE_CHART})"
        )
    } else {
        String::new()
    };
    let (wasm_raw, wasm_gzip) = wasm_size()?;
    Ok(Section {
        title: "2. Edge hit path: ours (Rust/wasm) against a plain JavaScript Worker (wrangler dev, Workers KV)".into(),
        table,
        notes: vec![
            format!(
                "Ours ÷ JavaScript peer on the hit path: **{:.2}×** requests/s, p99 {:.2} ms against {:.2} ms. Ours ÷ our \
                 own `/healthz`: **{:.2}×**. Without the isolate's hot cache (`HOT_CACHE_MS=0`, a KV read per hit like \
                 the peer): {:.2}× the peer. The peer reads KV on every hit, as Cloudflare's KV documentation shows; \
                 ours answers a product it read less than a second ago (and still fresh) from the isolate's memory. \
                 The p99 of each round, in ms: ours {}; the peer {}.",
                rps(ours_hit) / rps(peer_hit),
                p99(ours_hit),
                p99(peer_hit),
                rps(ours_hit) / rps(ours_health),
                rps(no_memo_hit) / rps(peer_hit),
                ours_hit.each_round(|l| l.p99_ms),
                peer_hit.each_round(|l| l.p99_ms)
            ),
            format!(
                "Each figure is the median of {} rounds of `wrk -t2 -c{} -d{}s --latency`, the five routes alternating in \
                 each round, on the same 2 cores as both Workers: local `wrangler dev` (workerd), not Cloudflare's \
                 network. The peer (`bench/peers/js-worker/`) reads the same key with `env.PRICES.get(key, \"json\")` \
                 and answers the same headers and body; each Worker is filled with the same comparison through its \
                 own fill route.{chart}",
                args.edge_rounds, args.edge_connections, args.edge_seconds
            ),
            same_load,
            format!(
                "Our Worker's wasm: {wasm_raw} bytes ({:.0} KB), {wasm_gzip} bytes gzipped ({:.0} KB); the peer is \
                 a {}-byte script. From starting `wrangler dev` to the first answer: ours {:.1} s, the peer {:.1} s.",
                wasm_raw as f64 / 1000.0,
                wasm_gzip as f64 / 1000.0,
                std::fs::metadata(repo_path("bench/peers/js-worker/src/index.js"))
                    .map_or(0, |m| m.len()),
                ours_start.as_secs_f64(),
                peer_start.as_secs_f64()
            ),
        ],
    })
}

/// The hit path of ours and of the peer at the same offered load, half of what the peer served under
/// wrk: both well below saturation, so the tail is each Worker's and not the queue's. Paced rounds of
/// `args.edge_seconds` each, the two alternating and taking turns to go first. A note with its table.
async fn same_load(
    args: &Args,
    peer_rps: f64,
    product: ProductId,
    workers: [&LocalWorker; 2],
) -> anyhow::Result<String> {
    let rate = ((peer_rps / 2.0 / 10.0).floor() as u32 * 10).max(10);
    let mut runs: [Vec<PacedRun>; 2] = Default::default();
    for round in 0..args.edge_rounds as usize {
        for turn in 0..2 {
            let which = (round + turn) % 2;
            let edge = workers[which].edge();
            runs[which].push(paced::get_prices_at(&edge, product, rate, args.edge_seconds).await);
        }
    }
    let [ours, peer] = runs.map(|r| (PacedRun::spread(&r), PacedRun::failures(&r)));
    let ours = (
        ours.0.context("ours at the same load: nothing answered")?,
        ours.1,
    );
    let peer = (
        peer.0
            .context("the peer at the same load: nothing answered")?,
        peer.1,
    );
    let row = |label: &str, (spread, failed): &(crate::miss::Spread, u64)| {
        format!(
            "| {label} | {rate} | {} | {:.2} | {:.2} | {:.2} | {failed} |",
            spread.count, spread.p50, spread.p99, spread.max
        )
    };
    Ok(format!(
        "\n**At the same offered load.** wrk's closed loop sends as fast as each Worker answers, so the faster one \
         is measured under more load. Here both get the same {rate} requests/s (half of the peer's median under \
         wrk) from an open loop: each request is due on a fixed schedule and timed from when it was due (so a stall \
         is charged for the requests queued behind it), {} rounds of {} s per Worker, the two alternating.\n\n\
         | Worker | requests/s offered | answered | p50 ms | p99 ms | max ms | failed |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n{}\n{}\n\n\
         Ours ÷ JavaScript peer at the same load: p99 **{:.2} ms against {:.2} ms**, p50 {:.2} ms against {:.2} ms.\n",
        args.edge_rounds,
        args.edge_seconds,
        row("ours: GET /v1/prices/{id}, cached", &ours),
        row("JavaScript peer: GET /v1/prices/{id}, cached", &peer),
        ours.0.p99,
        peer.0.p99,
        ours.0.p50,
        peer.0.p50,
    ))
}

/// The built Worker's wasm, raw and gzipped (`gzip -9`), in bytes.
fn wasm_size() -> anyhow::Result<(u64, u64)> {
    let path = repo_path("edge/build/index_bg.wasm");
    let raw = std::fs::metadata(&path)
        .with_context(|| format!("{} (build the edge first)", path.display()))?
        .len();
    let gzip = Command::new("gzip").arg("-9c").arg(&path).output()?;
    Ok((raw, gzip.stdout.len() as u64))
}

fn wrk(args: &Args, url: &str) -> anyhow::Result<Load> {
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{}", args.edge_connections),
            &format!("-d{}s", args.edge_seconds),
            "--latency",
            "-s",
            &repo_path("bench/wrk-percentiles.lua").to_string_lossy(),
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
    let percentiles = text
        .lines()
        .filter_map(|l| {
            let mut fields = l.strip_prefix("PERCENTILE ")?.split_whitespace();
            let percentile: f64 = fields.next()?.parse().ok()?;
            let micros: f64 = fields.next()?.parse().ok()?;
            Some((percentile, micros / 1000.0))
        })
        .collect();
    Ok(Load {
        percentiles,
        requests_per_sec,
        p50_ms: field("50%").map_or(0.0, |v| millis(&v)),
        p99_ms: field("99%").map_or(0.0, |v| millis(&v)),
        non_2xx,
        socket_errors,
    })
}

/// A wrk duration (`812.00us`, `1.23ms`, `2.01s`) in milliseconds.
fn millis(text: &str) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().unwrap_or(0.0);
    value
        * match unit {
            "us" => 0.001,
            "s" => 1000.0,
            "m" => 60_000.0,
            _ => 1.0,
        }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_wrk_durations() {
        assert_eq!(super::millis("812.00us"), 0.812);
        assert_eq!(super::millis("1.50ms"), 1.5);
        assert_eq!(super::millis("2.00s"), 2000.0);
    }
}
