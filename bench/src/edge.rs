//! Benchmark 2: the edge's hit path under wrk, ours (Rust/wasm) beside the JavaScript peer a team would
//! write instead (`bench/peers/js-worker/`), each beside its own `/healthz`, in alternating rounds on the
//! same machine, with the same product filled into each Worker's local KV. The headline is ours like for
//! like (`HOT_CACHE_MS=0`: a KV read on every hit, as the peer) beside ours with the isolate's hot cache,
//! each under wrk and at the same offered load ([`paced`]). Also the Worker's size and the time from
//! starting `wrangler dev` to the first answer, for both.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use pricefront_core::ProductId;
use pricefront_harness::worker::LocalWorker;
use pricefront_harness::{repo_path, sample_comparison};

use crate::args::Args;
use crate::isolate_profile;
use crate::paced::{self, PacedRun};
use crate::plot::{lines_svg, Series};
use crate::report::Section;
use crate::spread::Spread;

const PORT: u16 = 8789;
const PEER_PORT: u16 = 8791;
const NO_MEMO_PORT: u16 = 8793;
/// The JavaScript peer's settings (also started by the publish benchmark, publishing its misses).
pub(crate) const PEER_CONFIG: &str = "bench/peers/js-worker/wrangler.toml";

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
    let peer = LocalWorker::start_from("bench-js", PEER_PORT, &[], Some(PEER_CONFIG), &[]).await?;
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
        // wrk counts a 202 as an answer: each hit route must still be a hit (200) after its load.
        for worker in [&ours, &peer, &no_memo] {
            let status = worker.edge().get_prices(product, None).await?.status();
            if !paced::is_hit(status) {
                bail!(
                    "{} answered {status} after a round of wrk: no longer a hit",
                    worker.base
                );
            }
        }
    }
    let (ours_hit, peer_hit, no_memo_hit, ours_health) =
        (&routes[0], &routes[1], &routes[2], &routes[3]);
    let rps = |r: &Route| r.median(|l| l.requests_per_sec);
    let p99 = |r: &Route| r.median(|l| l.p99_ms);
    let same = same_load(args, rps(peer_hit), product, [&ours, &no_memo, &peer]).await?;
    let versus = |route: &Route, at_same_load: &Spread| Versus {
        rps_ratio: rps(route) / rps(peer_hit),
        p99_ms: (p99(route), p99(peer_hit)),
        same_load_p99_ms: (at_same_load.p99, same.peer.p99),
    };
    let where_time_goes = where_a_hits_time_goes(args, &no_memo, &peer, product)?;
    let like_for_like = versus(no_memo_hit, &same.no_hot_cache);
    let hot_cache = versus(ours_hit, &same.ours);
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
                "{} Ours ÷ our own `/healthz`: {:.2}×. The p99 of each round, in ms: ours {}; ours with \
                 `HOT_CACHE_MS=0` {}; the peer {}.",
                headline(&like_for_like, &hot_cache),
                rps(ours_hit) / rps(ours_health),
                ours_hit.each_round(|l| l.p99_ms),
                no_memo_hit.each_round(|l| l.p99_ms),
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
            same.note,
            where_time_goes,
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

/// Where a hit's time goes, ours like for like (`no_memo`: a KV read on every hit) beside the peer: each
/// Worker's `wrangler dev` CPU per hit, and its isolate's busy time per hit by part under the profiler.
fn where_a_hits_time_goes(
    args: &Args,
    no_memo: &LocalWorker,
    peer: &LocalWorker,
    product: ProductId,
) -> anyhow::Result<String> {
    let cost = |worker: &LocalWorker| {
        let url = format!("{}/v1/prices/{product}", worker.base);
        isolate_profile::hit_cost(worker, args.edge_seconds, || {
            Ok(wrk(args, &url)?.requests_per_sec)
        })
    };
    let (ours, theirs) = (cost(no_memo)?, cost(peer)?);
    let table = isolate_profile::table(&[
        ("ours, `HOT_CACHE_MS=0`", &ours),
        ("JavaScript peer", &theirs),
    ]);
    let glue_and_wasm = |c: &isolate_profile::HitCost| {
        [isolate_profile::Part::OurWasm, isolate_profile::Part::Glue]
            .iter()
            .filter_map(|part| c.isolate.ms.get(part))
            .sum::<f64>()
    };
    Ok(format!(
        "**Where a hit's time goes, like for like.** Each Worker once more under wrk (`-c{}`, {} s), first \
         alone, reading the CPU time of its whole `wrangler dev` (node, wrangler's proxy and the Worker's \
         runtime) from `/proc` before and after, then with V8's sampling profiler attached to the Worker's \
         isolate through the inspector (`bench/cdp-profile.mjs`, a sample every 100 µs, over the middle of \
         the run), each sample put in one part by the module its code was bundled from. The profiler slows \
         the isolate, both Workers alike: read the parts against each other, not against the last row. Our \
         Rust and its glue take {:.3} ms of a hit against the peer's own JavaScript {:.3} ms; the rest of \
         each hit is the runtime's (the KV read, `Response`, workerd itself) and wrangler dev's. The glue is \
         mostly the calls into the runtime (the KV read's, with its key decoded from wasm memory) and \
         wasm-bindgen's futures, a microtask for each promise awaited.\n\n{}\n",
        args.edge_connections,
        args.edge_seconds,
        glue_and_wasm(&ours),
        theirs
            .isolate
            .ms
            .get(&isolate_profile::Part::WorkerJs)
            .copied()
            .unwrap_or(0.0),
        table.join("\n")
    ))
}

/// Ours against the JavaScript peer on the hit path, for one configuration of ours: (ours, the peer)
/// in each pair.
struct Versus {
    /// Ours ÷ the peer, requests/s under wrk (medians of the rounds).
    rps_ratio: f64,
    /// p99 under wrk, ms.
    p99_ms: (f64, f64),
    /// p99 at the same offered load (the open loop), ms.
    same_load_p99_ms: (f64, f64),
}

/// The headline of the edge benchmark: the like-for-like comparison (ours reading KV on every hit, as
/// the peer does) first and in bold, beside the one with the isolate's hot cache, which serves the one
/// product asked for from memory; each under wrk and at the same offered load.
fn headline(like_for_like: &Versus, hot_cache: &Versus) -> String {
    let figures = |v: &Versus| {
        format!(
            "**{:.2}×** requests/s, p99 {:.2} ms against {:.2} ms; at the same offered load, p99 **{:.2} ms against \
             {:.2} ms**",
            v.rps_ratio, v.p99_ms.0, v.p99_ms.1, v.same_load_p99_ms.0, v.same_load_p99_ms.1
        )
    };
    format!(
        "Ours ÷ JavaScript peer on the hit path, **like for like** (ours with `HOT_CACHE_MS=0`: a KV read on every \
         hit, as the peer does, as Cloudflare's KV documentation shows): {}. **With the isolate's hot cache** (ours \
         answers a product it read less than a second ago, and still fresh, from the isolate's memory; this \
         benchmark asks for one product, so nearly every hit is served so): {}.",
        figures(like_for_like),
        figures(hot_cache)
    )
}

/// The same-load comparison: each Worker's figures and the note with its table.
struct SameLoad {
    /// Ours, with the isolate's hot cache.
    ours: Spread,
    /// Ours with `HOT_CACHE_MS=0`.
    no_hot_cache: Spread,
    /// The JavaScript peer.
    peer: Spread,
    /// The note: how it was run, and the table.
    note: String,
}

/// The hit path of ours (with and without the isolate's hot cache) and of the peer at the same offered
/// load, half of what the peer served under wrk: all well below saturation, so the tail is each Worker's
/// and not the queue's. Paced rounds of `args.edge_seconds` each, the three alternating and taking turns
/// to go first. Only 200s count as hits; a Worker with none fails the benchmark.
async fn same_load(
    args: &Args,
    peer_rps: f64,
    product: ProductId,
    workers: [&LocalWorker; 3],
) -> anyhow::Result<SameLoad> {
    let rate = ((peer_rps / 2.0 / 10.0).floor() as u32 * 10).max(10);
    let labels = [
        "ours: GET /v1/prices/{id}, cached",
        "ours with `HOT_CACHE_MS=0`: GET /v1/prices/{id}, cached",
        "JavaScript peer: GET /v1/prices/{id}, cached",
    ];
    let mut runs: [Vec<PacedRun>; 3] = Default::default();
    for round in 0..args.edge_rounds as usize {
        for turn in 0..3 {
            let which = (round + turn) % 3;
            let edge = workers[which].edge();
            runs[which].push(paced::get_prices_at(&edge, product, rate, args.edge_seconds).await);
        }
    }
    let mut rows = Vec::new();
    let mut spreads = Vec::new();
    for (label, runs) in labels.iter().zip(&runs) {
        let others = PacedRun::others(runs);
        let spread = PacedRun::spread(runs)
            .with_context(|| format!("{label} at the same load: no 200 ({others:?})"))?;
        let not_200: u64 = others.values().sum();
        let statuses = if others.is_empty() {
            String::new()
        } else {
            format!(" {others:?}")
        };
        rows.push(format!(
            "| {label} | {rate} | {} | {:.2} | {:.2} | {:.2} | {not_200}{statuses} |",
            spread.count, spread.p50, spread.p99, spread.max
        ));
        spreads.push(spread);
    }
    let [ours, no_hot_cache, peer]: [Spread; 3] = spreads
        .try_into()
        .map_err(|_| anyhow::anyhow!("three Workers, three spreads"))?;
    let note = format!(
        "\n**At the same offered load.** wrk's closed loop sends as fast as each Worker answers, so the faster one \
         is measured under more load. Here each gets the same {rate} requests/s (half of the peer's median under \
         wrk) from an open loop: each request is due on a fixed schedule and timed from when it was due (so a stall \
         is charged for the requests queued behind it), {} rounds of {} s per Worker, the three alternating. Only a \
         200 counts as a hit; any other answer (a 202 would be a miss published) is in the last column.\n\n\
         | Worker | requests/s offered | hits (200) | p50 ms | p99 ms | max ms | not 200 |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n{}\n\n\
         At the same load, p99 against the JavaScript peer's {:.2} ms: ours like for like (`HOT_CACHE_MS=0`) **{:.2} \
         ms**, ours with the hot cache **{:.2} ms**; p50 {:.2} ms and {:.2} ms against {:.2} ms.\n",
        args.edge_rounds,
        args.edge_seconds,
        rows.join("\n"),
        peer.p99,
        no_hot_cache.p99,
        ours.p99,
        no_hot_cache.p50,
        ours.p50,
        peer.p50,
    );
    Ok(SameLoad {
        ours,
        no_hot_cache,
        peer,
        note,
    })
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
    if !output.status.success() {
        bail!(
            "wrk {url} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(parse_wrk(&String::from_utf8_lossy(&output.stdout))?)
}

/// Why wrk's output gave no figure: the benchmark fails rather than print a zero for it.
#[derive(Debug, thiserror::Error)]
pub enum WrkError {
    /// A figure wrk prints is not in its output (or is not a number).
    #[error("no {what} in wrk's output:\n{output}")]
    Missing {
        /// The figure: `Requests/sec:`, `50%`, `99%`, the `PERCENTILE` lines of `bench/wrk-percentiles.lua`.
        what: &'static str,
        /// wrk's whole output.
        output: String,
    },
    /// A duration wrk printed is not one (`812.00us`, `1.23ms`, `2.01s`, `1.05m`).
    #[error("{0:?} is not a wrk duration")]
    Duration(String),
}

/// The figures of one wrk run (with `--latency` and `bench/wrk-percentiles.lua`) from its output.
fn parse_wrk(text: &str) -> Result<Load, WrkError> {
    let missing = |what| WrkError::Missing {
        what,
        output: text.to_owned(),
    };
    let field = |prefix: &'static str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .ok_or_else(|| missing(prefix))
    };
    let requests_per_sec = field("Requests/sec:")?
        .parse()
        .map_err(|_| missing("Requests/sec:"))?;
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .map_or(Ok(0), |n| n.trim().parse())
        .map_err(|_| missing("Non-2xx or 3xx responses:"))?;
    let socket_errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or_else(|| "0".to_owned(), |e| e.trim().to_owned());
    let percentiles: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let mut fields = l.strip_prefix("PERCENTILE ")?.split_whitespace();
            let percentile: f64 = fields.next()?.parse().ok()?;
            let micros: f64 = fields.next()?.parse().ok()?;
            Some((percentile, micros / 1000.0))
        })
        .collect();
    if percentiles.is_empty() {
        return Err(missing("PERCENTILE"));
    }
    Ok(Load {
        percentiles,
        requests_per_sec,
        p50_ms: millis(field("50%")?)?,
        p99_ms: millis(field("99%")?)?,
        non_2xx,
        socket_errors,
    })
}

/// A wrk duration (`812.00us`, `1.23ms`, `2.01s`, `1.05m`) in milliseconds.
fn millis(text: &str) -> Result<f64, WrkError> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| WrkError::Duration(text.to_owned()))?;
    let unit_ms = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return Err(WrkError::Duration(text.to_owned())),
    };
    Ok(value * unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_durations() {
        assert_eq!(millis("812.00us").ok(), Some(0.812));
        assert_eq!(millis("1.50ms").ok(), Some(1.5));
        assert_eq!(millis("2.00s").ok(), Some(2000.0));
        assert!(millis("").is_err());
        assert!(millis("1.5parsecs").is_err());
    }

    const WRK: &str = "Running 10s test @ http://127.0.0.1:8789/v1/prices/4242424242
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    25.10ms   20.11ms 200.00ms   80.00%
    Req/Sec   390.00     50.00   450.00     70.00%
  Latency Distribution
     50%   18.13ms
     75%   30.00ms
     90%   50.00ms
     99%  132.27ms
  7740 requests in 10.00s, 10.00MB read
Requests/sec:    774.00
Transfer/sec:      1.00MB
PERCENTILE 50 18130
PERCENTILE 99 132270
";

    #[test]
    fn reads_wrks_figures_and_fails_on_a_missing_percentile() {
        let load = parse_wrk(WRK).expect("figures");
        assert_eq!(
            (load.requests_per_sec, load.p50_ms, load.p99_ms),
            (774.0, 18.13, 132.27)
        );
        assert_eq!(load.percentiles, vec![(50.0, 18.13), (99.0, 132.27)]);
        let without_p99: String = WRK
            .lines()
            .filter(|l| !l.contains("99%"))
            .map(|l| format!("{l}\n"))
            .collect();
        let missing = parse_wrk(&without_p99).map(|l| l.p99_ms);
        assert!(
            matches!(missing, Err(WrkError::Missing { what: "99%", .. })),
            "{missing:?}"
        );
        let garbled = WRK.replace("132.27ms", "-");
        assert!(matches!(parse_wrk(&garbled), Err(WrkError::Duration(_))));
        let no_lua: String = WRK
            .lines()
            .filter(|l| !l.starts_with("PERCENTILE"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(matches!(
            parse_wrk(&no_lua),
            Err(WrkError::Missing {
                what: "PERCENTILE",
                ..
            })
        ));
    }

    #[test]
    fn the_headline_is_the_like_for_like_figure_beside_the_hot_cache_one() {
        let like_for_like = Versus {
            rps_ratio: 0.89,
            p99_ms: (72.81, 101.9),
            same_load_p99_ms: (150.0, 262.59),
        };
        let hot_cache = Versus {
            rps_ratio: 1.25,
            p99_ms: (132.27, 101.9),
            same_load_p99_ms: (135.28, 262.59),
        };
        let text = headline(&like_for_like, &hot_cache);
        let like = text.find("**like for like**").expect(&text);
        let hot = text.find("**With the isolate's hot cache**").expect(&text);
        let (like_ratio, hot_ratio) = (
            text.find("**0.89×**").expect(&text),
            text.find("**1.25×**").expect(&text),
        );
        assert!(
            like < like_ratio && like_ratio < hot && hot < hot_ratio,
            "{text}"
        );
        assert!(
            text.contains("p99 **150.00 ms against 262.59 ms**"),
            "{text}"
        );
        assert!(
            text.contains("p99 **135.28 ms against 262.59 ms**"),
            "{text}"
        );
    }
}
