//! Benchmark 1: fill throughput of the consumer, concurrent against sequential, against the ideal.

use std::time::Duration;

use anyhow::{bail, Context};
use pricefront_harness::{ConsumerProcess, TestEnv};
use tokio::time::Instant;

use pricefront_harness::otlp::OtlpReceiver;
use pricefront_harness::process::{cpu_split, CpuSplit};
use pricefront_harness::results::RedisTraffic;

use crate::args::Args;
use crate::cpu_profile::{self, Profile, Purpose, Recording};
use crate::peer_consumer::{run_peer_mode, PeerMode, PeerRun};
use crate::plot::{lines_svg, Series};
use crate::report::Section;
use crate::usage::{Proc, UsageProbe};

/// What one consumer run measured (ours, the classic way, or the peer).
struct Run {
    products: u64,
    /// How many of the stored results are complete (every vendor answered).
    complete: u64,
    /// Results stored per second, from the first stored result to the last (partial ones included).
    rate: f64,
    /// CPU seconds (user + sys) of the process per 1,000 comparisons, over its whole life.
    cpu_s_per_1000: f64,
    /// The same from the first stored result to the last (the steady fill only).
    cpu_s_per_1000_fill: f64,
    peak_rss_mib: f64,
    /// Resident memory mapped from files at the end of the run (the program's code, its libraries').
    files_rss_mib: f64,
    vendor_calls_per_product: f64,
    /// Where its CPU went, when it was profiled.
    profile: Option<Profile>,
    /// What it gave Redis to do (ours only: the floors and the peer's runs are not counted).
    redis: Option<RedisTraffic>,
}

impl Run {
    /// The median of `runs`, each figure apart (none when there are no runs); no profile.
    fn median(runs: &[Run]) -> Option<Run> {
        let first = runs.first()?;
        let of = |figure: fn(&Run) -> f64| median(runs.iter().map(figure));
        Some(Run {
            products: first.products,
            complete: of(|r| r.complete as f64).round() as u64,
            rate: of(|r| r.rate),
            cpu_s_per_1000: of(|r| r.cpu_s_per_1000),
            cpu_s_per_1000_fill: of(|r| r.cpu_s_per_1000_fill),
            peak_rss_mib: of(|r| r.peak_rss_mib),
            files_rss_mib: of(|r| r.files_rss_mib),
            vendor_calls_per_product: of(|r| r.vendor_calls_per_product),
            profile: None,
            redis: {
                let mut traffic: Vec<RedisTraffic> = runs.iter().filter_map(|r| r.redis).collect();
                traffic.sort_by_key(|t| t.reads);
                traffic.get(traffic.len() / 2).copied()
            },
        })
    }
}

/// The median of `values` (the mean of the middle two for an even count; 0 for none).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl From<PeerRun> for Run {
    fn from(peer: PeerRun) -> Self {
        Self {
            products: peer.products,
            complete: peer.complete,
            rate: peer.rate,
            cpu_s_per_1000: peer.cpu_s_per_1000,
            cpu_s_per_1000_fill: peer.cpu_s_per_1000_fill,
            peak_rss_mib: peer.peak_rss_mib,
            files_rss_mib: peer.files_rss_mib,
            vendor_calls_per_product: peer.vendor_calls_per_product,
            profile: None,
            redis: None,
        }
    }
}

/// The fill chart, beside BENCHMARKS.md (drawn with `--write` or `--plot`).
pub const FILL_CHART: &str = "bench-fill.svg";

/// Runs ours and the Confluent Parallel Consumer at each in-flight window (`--max-in-flight`), on fresh
/// topics with the same requests and vendors, then the one-at-a-time baseline.
pub async fn run(args: &Args) -> anyhow::Result<Section> {
    let latency_s = args.vendor_latency_ms as f64 / 1000.0;
    let mut rows = Vec::new();
    let mut ours_at_first = None;
    let mut ours_points = Vec::new();
    let mut peer_points = Vec::new();
    let mut ceiling = None;
    let mut against_floor = Vec::new();
    for &max_in_flight in &args.max_in_flight {
        let flag = max_in_flight.to_string();
        let ideal = f64::from(max_in_flight) / latency_s;
        // Ours and its two floors take turns, `--floor-rounds` times: the machine's drift from run to
        // run falls on each of them alike, and each row is the median of its runs.
        let mut ours_rounds = Vec::new();
        let mut fanout_rounds = Vec::new();
        let mut bare_rounds = Vec::new();
        for round in 1..=args.floor_rounds {
            ours_rounds.push(
                one_run(
                    args,
                    &format!("ours-{max_in_flight}-{round}"),
                    args.products,
                    &["--max-in-flight", &flag],
                    &[],
                    None,
                )
                .await?,
            );
            // The floor under ours: the same vendor calls without Kafka or Redis (our fan-out alone),
            // and bare reqwest GETs (the HTTP client alone).
            let fanout = floor_run(args, max_in_flight, Floor::Fanout, args.products, None).await?;
            fanout_rounds.push(Run::from(fanout));
            let bare = floor_run(args, max_in_flight, Floor::Bare, args.products, None).await?;
            if ceiling.is_none() {
                // The same again on a fifth of the products: the difference is the CPU of the
                // comparisons alone, without the start and the connections.
                let small =
                    floor_run(args, max_in_flight, Floor::Bare, args.products / 5, None).await?;
                ceiling = Ceiling::between(max_in_flight, &small, &bare);
            }
            bare_rounds.push(Run::from(bare));
        }
        let ours = Run::median(&ours_rounds).context("no run of ours")?;
        let fanout = Run::median(&fanout_rounds).context("no run of the fan-out floor")?;
        let bare = Run::median(&bare_rounds).context("no run of the bare floor")?;
        ours_at_first.get_or_insert(ours.rate);
        ours_points.push((f64::from(max_in_flight), ours.rate));
        let mut window = AgainstFloor::new(max_in_flight, &ours);
        window.fanout(&fanout);
        window.floor(&bare);
        window.rounds(&ours_rounds, &bare_rounds);
        rows.push(row(
            &format!("ours: --max-in-flight {max_in_flight}"),
            &ours,
            ideal,
        ));
        if max_in_flight == args.trace_export_at {
            // The price of exporting every span (request, compare, one per vendor call) over OTLP,
            // protobuf, to a receiver in this process.
            let receiver = OtlpReceiver::start().await?;
            let exporting = [
                ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
            ];
            let traced = one_run(
                args,
                &format!("ours-otlp-{max_in_flight}"),
                args.products,
                &["--max-in-flight", &flag],
                &exporting,
                None,
            )
            .await?;
            rows.push(row(
                &format!(
                    "ours: --max-in-flight {max_in_flight}, spans exported over OTLP ({} exports)",
                    receiver.exports()
                ),
                &traced,
                ideal,
            ));
        }
        rows.push(row(
            &format!("floor: our fan-out alone, no Kafka or Redis: {max_in_flight} at a time"),
            &fanout,
            ideal,
        ));
        rows.push(row(
            &format!(
                "floor: bare reqwest GETs, {} a product: {max_in_flight} at a time",
                args.vendors
            ),
            &bare,
            ideal,
        ));
        against_floor.push(window);
        if args.no_peer {
            continue;
        }
        let mode = if args.peer_core {
            PeerMode::Core
        } else {
            PeerMode::Vertx
        };
        let peer: Run = run_peer_mode(
            args,
            &format!("peer-{max_in_flight}"),
            args.products,
            max_in_flight,
            mode,
        )
        .await?
        .into();
        peer_points.push((f64::from(max_in_flight), peer.rate));
        rows.push(row(
            &format!("Parallel Consumer 0.5.3.3 (Vert.x): maxConcurrency {max_in_flight}"),
            &peer,
            ideal,
        ));
    }
    let sequential = if args.no_sequential {
        None
    } else {
        let run = one_run(
            args,
            "sequential",
            args.sequential_products,
            &["--mode", "sequential"],
            &[],
            None,
        )
        .await?;
        rows.push(row(
            "classic: one at a time per partition",
            &run,
            3.0 / latency_s,
        ));
        Some(run)
    };
    let profiles = match args.max_in_flight.first() {
        Some(&window) if cpu_profile::available() => {
            let medians = against_floor
                .iter()
                .find(|w| w.window == window)
                .and_then(AgainstFloor::cpu_medians)
                .context("no medians at the profiled window")?;
            Some(profile_runs(args, window, medians).await?)
        }
        _ => None,
    };
    let mut chart = None;
    if !args.no_peer {
        let ideal: Vec<(f64, f64)> = args
            .max_in_flight
            .iter()
            .map(|&w| (f64::from(w), f64::from(w) / latency_s))
            .collect();
        let series = [
            Series::new("ours", ours_points.clone()),
            Series::new("Parallel Consumer 0.5.3.3 (Vert.x)", peer_points),
            Series::dashed(
                "latency-bound ideal (max_in_flight / vendor latency)",
                ideal,
            ),
        ];
        if args.write || args.plot {
            lines_svg(
                &pricefront_harness::repo_path(FILL_CHART),
                &format!(
                    "Fill: {} products, {} vendors at {} ms; {}",
                    args.products,
                    args.vendors,
                    args.vendor_latency_ms,
                    crate::report::machine()
                ),
                "in-flight window: --max-in-flight (maxConcurrency for the peer)",
                "results stored per second",
                &series,
            )?;
        }
        chart = Some(format!(
            "\n![Results stored per second against the in-flight window (`--max-in-flight`): ours, the Parallel Consumer and the \
             ideal]({FILL_CHART})"
        ));
    }
    let mut table = vec![
        "| consumer | products | complete | results stored/s (from the first) | latency-bound ideal/s | % of ideal | CPU s per 1,000 (whole life / fill) | peak RSS MiB | vendor calls per product |".into(),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |".into(),
    ];
    table.extend(rows);
    Ok(Section {
        title: "1. Fill throughput: ours against the Confluent Parallel Consumer and the classic way".into(),
        table,
        notes: [
            format!(
                "{} Ideal: max_in_flight / vendor latency ({} vendors at {} ms \
                 ±10%); partitions (3) / vendor latency for the classic way. The rate counts every stored result, \
                 partial ones included (the complete ones are in their own column), from the first stored result \
                 to the last, so the group join is not counted. CPU is user + sys of the consumer process over its \
                 whole life (the JVM's start and warm-up included for the peer), per 1,000 results.",
                against_the_classic_way(
                    args.max_in_flight.first().copied().unwrap_or_default(),
                    ours_at_first,
                    sequential.as_ref().map(|s| s.rate)
                ),
                args.vendors,
                args.vendor_latency_ms
            ),
            "The peer (`bench/peers/parallel-consumer/`, see its README) is configured as its documentation \
             recommends: `ProcessingOrder.KEY`, `maxConcurrency` = our `--max-in-flight`, periodic asynchronous commits, \
             its Vert.x module for the HTTP fan-out (its best mode here; the core module with a thread per \
             record did about 4× worse), and it writes the same key and JSON to Redis, which the edge serves."
                .into(),
            "The floor rows run the same vendor calls in a process of their own (`pricefront-fanout-floor`, \
             one thread like the consumer, the consumer's HTTP client and limits) with no Kafka and no Redis: \
             our whole fan-out (quotas, breakers, retries, timeouts, trace context, aggregation, the JSON \
             stored), then bare `reqwest` GETs. Their CPU and memory are the part of ours that the HTTP client \
             and the vendor calls cost; the rest is Kafka, Redis and the offsets. Their rate counts from the \
             start (no group join), so \"complete\" is every comparison."
                .into(),
            format!(
                "Ours and the two floors ran {} times each at every window, taking turns (ours, our fan-out \
                 alone, bare GETs, and again), so that the machine's drift from run to run falls on each alike: \
                 each of their rows is the median of its runs, figure by figure, and the goals below compare \
                 those medians, with the range of each round's own ratio beside them.",
                args.floor_rounds
            ),
            "Ours always carries the trace on (each vendor call sends a `traceparent` of its own) but records \
             spans only when it exports them: the row with spans exported over OTLP is the price of recording \
             them (a request, a comparison and one per vendor call) and sending them all (protobuf, batched) \
             to a collector, here a receiver in the bench's process."
                .into(),
        ]
        .into_iter()
        .chain(ceiling.map(|c| c.describe(args, &ours_points)))
        .chain(Some(goals_against_floor(&against_floor)))
        .chain(profiles)
        .chain(chart)
        .collect(),
    })
}

/// The sentence comparing ours at its first `window` (`ours`, results/s) with the classic way's rate, or
/// saying which of them did not run (`--no-sequential`, no window): never a ratio of nothing.
fn against_the_classic_way(window: u32, ours: Option<f64>, classic: Option<f64>) -> String {
    match (ours, classic) {
        (Some(ours), Some(classic)) if classic > 0.0 => format!(
            "Ours at `--max-in-flight {window}` is **{:.1}×** the classic way.",
            ours / classic
        ),
        (_, None) => "The classic way did not run in this run (`--no-sequential`).".to_owned(),
        _ => "Ours and the classic way cannot be compared in this run: one of them stored nothing."
            .to_owned(),
    }
}

/// One side's figures at a window, as the goals compare them (the medians of its rounds).
#[derive(Debug, Clone, Copy)]
struct Figures {
    /// Results stored per second.
    rate: f64,
    /// CPU seconds per 1,000 comparisons over the fill.
    cpu: f64,
    /// Peak resident memory, MiB.
    peak_rss: f64,
    /// Resident memory mapped from files at the end (code), MiB.
    files_rss: f64,
}

impl From<&Run> for Figures {
    fn from(run: &Run) -> Self {
        Self {
            rate: run.rate,
            cpu: run.cpu_s_per_1000_fill,
            peak_rss: run.peak_rss_mib,
            files_rss: run.files_rss_mib,
        }
    }
}

/// Ours beside the bare-reqwest floor at one window: what the consumer adds to its HTTP client.
struct AgainstFloor {
    window: u32,
    ours: Figures,
    /// The bare floor, when it ran.
    floor: Option<Figures>,
    /// Our fan-out alone, when it ran.
    fanout: Option<Figures>,
    /// Redis's socket reads per comparison during ours's run.
    redis_reads: Option<f64>,
    /// Each round's ratios of ours to the bare floor of the same round: results/s, CPU per comparison.
    round_ratios: Vec<(f64, f64)>,
}

impl AgainstFloor {
    /// Ours at `window`: its rate, CPU per 1,000 (fill) and peak RSS.
    fn new(window: u32, ours: &Run) -> Self {
        Self {
            window,
            ours: ours.into(),
            floor: None,
            fanout: None,
            round_ratios: Vec::new(),
            redis_reads: ours
                .redis
                .map(|traffic| traffic.reads as f64 / ours.products.max(1) as f64),
        }
    }

    /// The rounds of ours and of the bare floor, paired in the order they ran.
    fn rounds(&mut self, ours: &[Run], bare: &[Run]) {
        self.round_ratios = ours
            .iter()
            .zip(bare)
            .map(|(ours, bare)| {
                (
                    ours.rate / bare.rate.max(f64::MIN_POSITIVE),
                    ours.cpu_s_per_1000_fill / bare.cpu_s_per_1000_fill.max(f64::MIN_POSITIVE),
                )
            })
            .collect();
    }

    /// The lowest and highest of the rounds' ratios `pick` takes, when there were two rounds or more.
    fn round_range(&self, pick: fn(&(f64, f64)) -> f64) -> Option<(f64, f64)> {
        if self.round_ratios.len() < 2 {
            return None;
        }
        let values = self.round_ratios.iter().map(pick);
        let low = values.clone().fold(f64::INFINITY, f64::min);
        let high = values.fold(f64::NEG_INFINITY, f64::max);
        Some((low, high))
    }

    /// The median CPU seconds per 1,000 comparisons of ours, our fan-out alone and the bare floor,
    /// when both floors ran.
    fn cpu_medians(&self) -> Option<[f64; 3]> {
        Some([self.ours.cpu, self.fanout?.cpu, self.floor?.cpu])
    }

    /// Our fan-out alone at the same window.
    fn fanout(&mut self, fanout: &Run) {
        self.fanout = Some(fanout.into());
    }

    /// The bare floor at the same window.
    fn floor(&mut self, floor: &Run) {
        self.floor = Some(floor.into());
    }
}

/// The peak RSS ours may add to the floor at a window, when the goal names one (MiB).
fn rss_allowance(window: u32) -> Option<f64> {
    match window {
        512 => Some(16.0),
        1024 => Some(24.0),
        _ => None,
    }
}

/// The note with the consumer's goals against the bare floor of the same run (issue 30): results/s at
/// least 95% of the floor's, CPU per comparison at most 1.20× its, peak RSS at most +16 MiB at 512 and
/// +24 MiB at 1,024.
fn goals_against_floor(windows: &[AgainstFloor]) -> String {
    let verdict = |met: bool| if met { "met" } else { "**not met**" };
    // Blank lines around: the notes are joined line by line, and a table needs its own block.
    let mut lines = vec![
        String::new(),
        "**Ours against the bare-reqwest floor of the same run** (what the consumer adds to its HTTP \
         client: Kafka, Redis, the offsets, our fan-out), with the goals:"
            .to_owned(),
        String::new(),
        "| window | results/s: ours ÷ floor (goal ≥ 95%) | CPU per comparison: ours ÷ floor (goal ≤ 1.20×) | peak RSS: ours − floor |".into(),
        "| ---: | ---: | ---: | ---: |".into(),
    ];
    for window in windows {
        let Some(floor) = window.floor else { continue };
        let ours = window.ours;
        let rate_ratio = ours.rate / floor.rate.max(f64::MIN_POSITIVE);
        let cpu_ratio = ours.cpu / floor.cpu.max(f64::MIN_POSITIVE);
        let extra = ours.peak_rss - floor.peak_rss;
        let rss_cell = match rss_allowance(window.window) {
            Some(allowed) => format!(
                "{extra:+.1} MiB (goal ≤ +{allowed:.0}): {}",
                verdict(extra <= allowed)
            ),
            None => format!("{extra:+.1} MiB"),
        };
        let rate_rounds = window
            .round_range(|r| r.0)
            .map_or_else(String::new, |(low, high)| {
                format!(" (rounds {:.0}–{:.0}%)", 100.0 * low, 100.0 * high)
            });
        let cpu_rounds = window
            .round_range(|r| r.1)
            .map_or_else(String::new, |(low, high)| {
                format!(" (rounds {low:.2}–{high:.2}×)")
            });
        lines.push(format!(
            "| {} | {:.1}%: {}{rate_rounds} | {:.2}×: {}{cpu_rounds} | {rss_cell} |",
            window.window,
            100.0 * rate_ratio,
            verdict(rate_ratio >= 0.95),
            cpu_ratio,
            verdict(cpu_ratio <= 1.20),
        ));
    }
    lines.push(String::new());
    lines.extend(split_of_the_extra(windows));
    lines.extend(memory_split(windows));
    lines.join("\n")
}

/// What ours adds to the floor's CPU, split by the floor rows of the same run: Kafka, Redis and the
/// offsets (ours less our fan-out alone), and our fan-out's own work (our fan-out alone less bare GETs);
/// and how many times Redis read its socket per comparison during ours's run.
fn split_of_the_extra(windows: &[AgainstFloor]) -> Vec<String> {
    let mut lines = vec![
        "Where that extra CPU goes, by the floor rows of the same run (ms a comparison): what only ours \
         does (read Kafka, ask Redis before fanning out, store the result, track and commit offsets), and \
         what our fan-out does around each call that bare GETs do not (quotas, breakers, retries, timeouts, \
         trace context, reading the offers, the result's JSON). Each comparison sends Redis two commands, \
         the check before fanning out and the store script; the last column is how many times Redis read \
         a client socket for them (`INFO stats`, `total_reads_processed`), under two when the client's \
         multiplexed connection sent commands together. Each split is a difference of medians of runs whose \
         own ratios spread as the range above shows: a negative figure is a difference within that noise. \
         The last column is how much of a core each process kept busy over its fill (results/s × CPU per \
         comparison): both run their work on one thread, so near 1 a process's rate is what its CPU per \
         comparison allows, and ours loses rate to the floor in the measure that it spends more CPU; below \
         it, ours waits on the vendors like the floor and keeps its rate whatever its CPU:"
            .to_owned(),
        String::new(),
        "| window | ours − floor | Kafka, Redis, offsets (ours − fan-out alone) | our fan-out's own work (fan-out alone − floor) | Redis reads a comparison | cores busy: ours / floor |".into(),
        "| ---: | ---: | ---: | ---: | ---: | ---: |".into(),
    ];
    for window in windows {
        let (Some(floor), Some(fanout)) = (window.floor, window.fanout) else {
            continue;
        };
        let (ours, fanout) = (window.ours.cpu, fanout.cpu);
        let reads = window
            .redis_reads
            .map_or_else(String::new, |reads| format!("{reads:.2}"));
        lines.push(format!(
            "| {} | {:+.3} | {:+.3} | {:+.3} | {reads} | {:.2} / {:.2} |",
            window.window,
            ours - floor.cpu,
            ours - fanout,
            fanout - floor.cpu,
            cores_busy(window.ours.rate, ours),
            cores_busy(floor.rate, floor.cpu),
        ));
    }
    lines.push(String::new());
    lines
}

/// Where ours' extra peak memory is, by the floor rows of the same run: the code mapped from files
/// (the Kafka and Redis clients' code, which the floors do not link), and the rest (the heap, the
/// stacks) split as the CPU is: Kafka, Redis and the offsets, and our fan-out's own state.
fn memory_split(windows: &[AgainstFloor]) -> Vec<String> {
    let mut lines = vec![
        "Where ours' extra memory is, by the same rows (MiB): each process's peak RSS less what of it is \
         mapped from files (`RssFile`, read at the end of the run: the program's code and its libraries', \
         paged in as they run, which the floors have less of since they link no Kafka or Redis client), \
         and the rest (the heap, the threads' stacks) split as the CPU is above:"
            .to_owned(),
        String::new(),
        "| window | ours − floor, peak | code mapped from files: ours − floor | the rest: Kafka, Redis, offsets (ours − fan-out alone) | the rest: our fan-out's state (fan-out alone − floor) |".into(),
        "| ---: | ---: | ---: | ---: | ---: |".into(),
    ];
    let rest = |side: Figures| side.peak_rss - side.files_rss;
    let mut against_goals = Vec::new();
    for window in windows {
        let (Some(floor), Some(fanout)) = (window.floor, window.fanout) else {
            continue;
        };
        let ours = window.ours;
        let (extra, code) = (
            ours.peak_rss - floor.peak_rss,
            ours.files_rss - floor.files_rss,
        );
        lines.push(format!(
            "| {} | {extra:+.1} | {code:+.1} | {:+.1} | {:+.1} |",
            window.window,
            rest(ours) - rest(fanout),
            rest(fanout) - rest(floor),
        ));
        if let Some(allowed) = rss_allowance(window.window) {
            against_goals.push(format!(
                "at {}, {:+.1} MiB ({} the goal's +{allowed:.0})",
                window.window,
                extra - code,
                if extra - code <= allowed {
                    "within"
                } else {
                    "over"
                }
            ));
        }
    }
    lines.push(String::new());
    if !against_goals.is_empty() {
        lines.push(format!(
            "Less the code ours runs and the floor does not (librdkafka, the Redis client, the intake), \
             which is paged in from the program and stays resident, ours adds to the floor {}.",
            against_goals.join("; ")
        ));
        lines.push(String::new());
    }
    lines
}

/// How much of a core a process kept busy over a fill of `rate` results/s at `cpu_s_per_1000` CPU
/// seconds per 1,000 results.
fn cores_busy(rate: f64, cpu_s_per_1000: f64) -> f64 {
    rate * cpu_s_per_1000 / 1000.0
}

/// Ours, our fan-out alone and bare `reqwest` GETs at `window` once more each, under `perf record`,
/// and the note with what each one's CPU per comparison is spent on. `medians` are the same three's
/// CPU seconds per 1,000 comparisons in the unprofiled rounds: the samples' shares apply to them, since
/// unwinding each sample's stack costs the profiled run CPU of its own.
async fn profile_runs(args: &Args, window: u32, medians: [f64; 3]) -> anyhow::Result<String> {
    let dir = args.keep_profiles.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("pricefront-bench-perf-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir)?;
    let flag = window.to_string();
    let ours = one_run(
        args,
        &format!("ours-profiled-{window}"),
        args.products,
        &["--max-in-flight", &flag],
        &[],
        Some(&dir.join("ours.data")),
    )
    .await?;
    let mut runs = vec![("ours".to_owned(), ours.profile)];
    for (floor, name, file) in [
        (Floor::Fanout, "our fan-out alone", "fanout.data"),
        (Floor::Bare, "bare reqwest GETs", "bare.data"),
    ] {
        let report = floor_run(args, window, floor, args.products, Some(&dir.join(file))).await?;
        runs.push((name.to_owned(), report.profile));
    }
    if args.keep_profiles.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let runs: Vec<ProfiledRun> = runs
        .into_iter()
        .zip(medians)
        .map(|((name, profile), cpu_s_per_1000)| ProfiledRun {
            name,
            profile: profile.unwrap_or_default(),
            cpu_s_per_1000,
        })
        .collect();
    Ok(profile_table(window, &runs))
}

/// One profiled run: whose, its samples' shares, and the CPU per 1,000 comparisons they apply to.
struct ProfiledRun {
    name: String,
    profile: Profile,
    cpu_s_per_1000: f64,
}

impl ProfiledRun {
    /// `purpose`'s CPU per comparison, in ms.
    fn ms(&self, purpose: Purpose) -> f64 {
        self.profile.share(purpose) * self.cpu_s_per_1000
    }
}

/// The profile note: each purpose's CPU per comparison for each run, and what ours adds to the bare
/// floor (the first run less the last).
fn profile_table(window: u32, runs: &[ProfiledRun]) -> String {
    let names: Vec<&str> = runs.iter().map(|run| run.name.as_str()).collect();
    let mut lines = vec![
        String::new(),
        format!(
            "**What the CPU is spent on** at window {window}: each of these ran once more under `perf record` \
             (999 samples a second of every thread, with its call stack; {} samples). Each sample goes to \
             the purpose of the innermost frame in its stack that names one, so the kernel's work and the \
             allocator's count for whatever called them (a write to Redis, a vendor call); each purpose's \
             share of the samples times the median CPU per comparison of the unprofiled rounds above, in \
             ms. The last column is what ours adds to the bare floor.",
            runs.iter()
                .map(|run| format!("{} {}", run.name, run.profile.samples))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        String::new(),
        format!("| spent on | {} | ours − bare |", names.join(" | ")),
        format!("| --- |{} ---: |", " ---: |".repeat(names.len())),
    ];
    let ours_less_bare = |purpose: Purpose| match (runs.first(), runs.last()) {
        (Some(ours), Some(bare)) => ours.ms(purpose) - bare.ms(purpose),
        _ => 0.0,
    };
    for purpose in Purpose::ALL {
        let cells: Vec<String> = runs
            .iter()
            .map(|run| format!("{:.3}", run.ms(purpose)))
            .collect();
        lines.push(format!(
            "| {} | {} | {:+.3} |",
            purpose.name(),
            cells.join(" | "),
            ours_less_bare(purpose)
        ));
    }
    let totals: Vec<f64> = runs
        .iter()
        .map(|run| Purpose::ALL.iter().map(|&p| run.ms(p)).sum())
        .collect();
    let difference = totals.first().copied().unwrap_or(0.0) - totals.last().copied().unwrap_or(0.0);
    lines.push(format!(
        "| **total** | {} | **{difference:+.3}** |",
        totals
            .iter()
            .map(|ms| format!("**{ms:.3}**"))
            .collect::<Vec<_>>()
            .join(" | ")
    ));
    lines.push(String::new());
    if let (Some(ours), Some(bare)) = (runs.first(), runs.last()) {
        lines.push(against_the_allowance(ours, bare));
        lines.push(String::new());
    }
    lines.join("\n")
}

/// What ours adds to the bare floor, by purpose, against the CPU goal's allowance (1.20× the floor):
/// the work the design asks of a consumer besides the vendor calls (Redis, Kafka, the offsets), and our
/// fan-out's own work around the calls.
fn against_the_allowance(ours: &ProfiledRun, bare: &ProfiledRun) -> String {
    let allowance = 0.2 * bare.cpu_s_per_1000;
    let (redis, kafka, intake) = (
        ours.ms(Purpose::Redis),
        ours.ms(Purpose::Kafka),
        ours.ms(Purpose::Intake),
    );
    let consumer_work = redis + kafka + intake;
    let fanout_parts = [
        (Purpose::Fanout, ours.ms(Purpose::Fanout)),
        (
            Purpose::RequestsAndOffers,
            ours.ms(Purpose::RequestsAndOffers) - bare.ms(Purpose::RequestsAndOffers),
        ),
        (Purpose::ResultJson, ours.ms(Purpose::ResultJson)),
        (
            Purpose::TracingAndMetrics,
            ours.ms(Purpose::TracingAndMetrics),
        ),
    ];
    let fanout: f64 = fanout_parts.iter().map(|(_, ms)| ms).sum();
    format!(
        "Against the goal: 1.20× the bare floor allows ours **{allowance:.3} ms** a comparison beyond the \
         vendor calls. What the design asks of a consumer besides them takes **{consumer_work:.3} ms** \
         ({:.0}% of that allowance): Redis {redis:.3} (two commands a comparison: the check that keeps a \
         redelivered or repeated request from calling the vendors again, and the store, which is the \
         result; on loopback most of it is the kernel's work delivering each write and waking Redis), \
         Kafka {kafka:.3}, and our intake {intake:.3} (the window, the offsets committed only after the \
         store). Our fan-out's own work around the calls takes **{fanout:.3} ms** more ({:.0}% of it), \
         spread over what the vendor-resilience issues ask of each call: {}.",
        100.0 * consumer_work / allowance.max(f64::MIN_POSITIVE),
        100.0 * fanout / allowance.max(f64::MIN_POSITIVE),
        fanout_parts
            .iter()
            .map(|(purpose, ms)| format!("{} {ms:.3}", purpose.name()))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

/// What this machine allows the fill whoever does it: the CPU one comparison's vendor calls cost, the
/// HTTP client's (bare `reqwest` GETs) and the simulated vendors' (they run in this process), each
/// as the difference between two runs at one window, so that the start and the connections opened
/// are not counted; and the comparisons a second that the machine's cores could give them at most.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ceiling {
    /// The window both runs had.
    window: u32,
    /// The client's CPU seconds per comparison.
    client: CpuSplit,
    /// The simulated vendors' CPU seconds per comparison (all its vendor calls).
    simulator: CpuSplit,
    /// The machine's cores.
    cores: f64,
}

impl Ceiling {
    /// The ceiling from a `small` and a `full` run at `window`; none when the full run did no more.
    fn between(window: u32, small: &FloorReport, full: &FloorReport) -> Option<Self> {
        Self::from_differences(
            window,
            full.comparisons - small.comparisons,
            [
                (full.client, small.client),
                (full.simulator, small.simulator),
            ],
            pricefront_harness::Machine::current().cpus as f64,
        )
    }

    fn from_differences(
        window: u32,
        comparisons: f64,
        [client, simulator]: [(CpuSplit, CpuSplit); 2],
        cores: f64,
    ) -> Option<Self> {
        if comparisons < 1.0 {
            return None;
        }
        let per_comparison = |(full, small): (CpuSplit, CpuSplit)| CpuSplit {
            user: (full.user - small.user) / comparisons,
            system: (full.system - small.system) / comparisons,
        };
        Some(Self {
            window,
            client: per_comparison(client),
            simulator: per_comparison(simulator),
            cores,
        })
    }

    /// Comparisons a second at most: every core busy with nothing but the vendor calls.
    fn rate(&self) -> f64 {
        self.cores / (self.client.total() + self.simulator.total())
    }

    /// The note under the fill table: the CPU per comparison, the ceiling, and ours against it.
    fn describe(&self, args: &Args, ours: &[(f64, f64)]) -> String {
        let ms = |seconds: f64| format!("{:.3}", seconds * 1000.0);
        let line = |name: &str, cpu: CpuSplit| {
            format!(
                "| {name} | {} | {} | {} |",
                ms(cpu.user),
                ms(cpu.system),
                ms(cpu.total())
            )
        };
        let both = CpuSplit {
            user: self.client.user + self.simulator.user,
            system: self.client.system + self.simulator.system,
        };
        let latency_s = args.vendor_latency_ms as f64 / 1000.0;
        let slowest_ms = slowest_of(
            args.vendors,
            args.vendor_latency_ms as f64 * 0.9,
            args.vendor_latency_ms as f64 * 1.1,
        );
        let against: Vec<String> = ours
            .iter()
            .map(|&(window, rate)| {
                format!(
                    "at window {window:.0} that ceiling is {:.0}% of the ideal, and ours reached {:.0}% of it",
                    100.0 * self.rate() * latency_s / window,
                    100.0 * rate / self.rate()
                )
            })
            .collect();
        [
            String::new(),
            format!(
                "**What this machine allows.** The CPU of one comparison's {} vendor calls, whoever makes \
                 them: bare `reqwest` GETs at window {}, a run of {} comparisons less a run of {} (so that the \
                 start and the connections opened are not counted), the client's process and the simulated \
                 vendors' (this benchmark's process) apart. System time is the kernel's work for the process: \
                 its syscalls and, on loopback, the TCP delivery of what it sends.",
                args.vendors,
                self.window,
                args.products,
                args.products / 5
            ),
            String::new(),
            "| CPU per comparison | user ms | system ms | total ms |".into(),
            "| --- | ---: | ---: | ---: |".into(),
            line("the HTTP client: reqwest, hyper, tokio", self.client),
            line("the simulated vendors: axum, hyper, tokio", self.simulator),
            line("both", both),
            String::new(),
            format!(
                "With {:.0} cores doing nothing else, that is at most **{:.0} comparisons/s** ({}); Kafka, \
                 Redis, the consumer's own work and the benchmark's scrapes come on top, and larger windows \
                 cost more per call (more connections, more cache misses). With CPU to spare, a comparison \
                 still waits for the slowest of its {} vendors: {:.1} ms on average at {} ms ±10%, so no \
                 consumer gets above {:.0}% of the latency-bound ideal.",
                self.cores,
                self.rate(),
                against.join("; "),
                args.vendors,
                slowest_ms,
                args.vendor_latency_ms,
                100.0 * args.vendor_latency_ms as f64 / slowest_ms
            ),
        ]
        .join("\n")
    }
}

fn row(name: &str, run: &Run, ideal: f64) -> String {
    format!(
        "| {name} | {} | {} | {:.0} | {:.0} | {:.0}% | {:.2} / {:.2} | {:.1} | {:.2} |",
        run.products,
        run.complete,
        run.rate,
        ideal,
        100.0 * run.rate / ideal,
        run.cpu_s_per_1000,
        run.cpu_s_per_1000_fill,
        run.peak_rss_mib,
        run.vendor_calls_per_product
    )
}

async fn one_run(
    args: &Args,
    label: &str,
    count: u64,
    flags: &[&str],
    env_vars: &[(&str, String)],
    profile_to: Option<&std::path::Path>,
) -> anyhow::Result<Run> {
    let env = TestEnv::new(&format!("bench-{label}"), args.vendor_profiles(), 2_000).await?;
    let products: Vec<_> = (0..count).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await?;
    let redis_before = RedisTraffic::now().await?;
    let consumer = env.start_consumer_with_env(label, flags, env_vars)?;
    let probe = UsageProbe::new(&Proc, label, consumer.child.id());
    let recording = match profile_to {
        Some(file) => Some(Recording::attach(consumer.child.id(), file)?),
        None => None,
    };
    let fill = watch_fill(
        label,
        &[&consumer],
        std::slice::from_ref(&probe),
        0,
        count,
        Duration::from_secs(args.fill_limit_secs),
    )
    .await?;
    let cpu_at_start = fill
        .cpu_at_start
        .first()
        .copied()
        .context("no CPU reading")?;
    let usage = probe.at_end(cpu_at_start)?;
    let profile = match recording {
        Some(recording) => Some(recording.finish().await?),
        None => None,
    };
    // Before the results are read back: only what the consumer sent.
    let redis = RedisTraffic::now().await?.since(&redis_before);
    let results = env.stored(&products).await?;
    let stored = results.len() as u64;
    if stored != count {
        bail!("{label}: {stored} of {count} results in Redis");
    }
    let calls: u64 = env.simulator.request_counts().values().sum();
    Ok(Run {
        products: count,
        complete: results.iter().filter(|r| r.complete).count() as u64,
        rate: fill.rate(count),
        cpu_s_per_1000: usage.cpu_s_per_1000(count),
        cpu_s_per_1000_fill: usage.cpu_s_per_1000_fill(count.saturating_sub(fill.done_at_start)),
        peak_rss_mib: usage.peak_rss_mib,
        files_rss_mib: usage.files_rss_mib,
        vendor_calls_per_product: calls as f64 / count as f64,
        profile,
        redis: Some(redis),
    })
}

/// A fill by one or more consumer processes, as their `/metrics` told it: from the first message
/// finished to the last.
pub(crate) struct FillWatch {
    /// When the first message was seen finished.
    pub(crate) started_at: Instant,
    /// When `count` messages were.
    pub(crate) finished_at: Instant,
    /// Messages finished by then (summed over the processes).
    pub(crate) done_at_start: u64,
    /// Each process's CPU seconds then, in the order of the probes.
    pub(crate) cpu_at_start: Vec<f64>,
}

impl FillWatch {
    /// Seconds from the first finished message to the last (at least a millisecond).
    pub(crate) fn seconds(&self) -> f64 {
        (self.finished_at - self.started_at)
            .as_secs_f64()
            .max(0.001)
    }

    /// Messages finished per second after the first, of `count` in all.
    pub(crate) fn rate(&self, count: u64) -> f64 {
        count.saturating_sub(self.done_at_start) as f64 / self.seconds()
    }
}

/// Polls `consumers`' `/metrics` every 100 ms until they have finished `count` messages between them
/// (`pricefront_messages_finished_total`, summed, less the `already` finished before the fill), reading
/// each one's CPU with its probe (in the same order) at the first; an error after `limit`.
pub(crate) async fn watch_fill(
    label: &str,
    consumers: &[&ConsumerProcess],
    probes: &[UsageProbe<'_, Proc>],
    already: u64,
    count: u64,
    limit: Duration,
) -> anyhow::Result<FillWatch> {
    let deadline = Instant::now() + limit;
    let mut first = None;
    let finished_at = loop {
        let readings = futures::future::join_all(
            consumers
                .iter()
                .map(|c| c.metric("pricefront_messages_finished_total")),
        )
        .await;
        let finished = readings
            .iter()
            .map(|v| v.unwrap_or(0.0) as u64)
            .sum::<u64>()
            .saturating_sub(already);
        if finished >= 1 && first.is_none() {
            let cpu: Result<Vec<f64>, _> = probes.iter().map(|p| p.at_first_result()).collect();
            first = Some((Instant::now(), finished, cpu?));
        }
        if finished >= count {
            break Instant::now();
        }
        if Instant::now() > deadline {
            bail!(
                "{label}: only {finished} of {count} finished within {} s",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (started_at, done_at_start, cpu_at_start) = first.context("nothing finished")?;
    Ok(FillWatch {
        started_at,
        finished_at,
        done_at_start,
        cpu_at_start,
    })
}

/// Which floor run: the consumer's fan-out alone, or bare GETs.
#[derive(Clone, Copy)]
enum Floor {
    Fanout,
    Bare,
}

/// What one run of `pricefront-fanout-floor` measured.
pub(crate) struct FloorReport {
    /// Comparisons the floor process made.
    pub(crate) comparisons: f64,
    /// How long it took to make them, in seconds.
    pub(crate) seconds: f64,
    /// The floor process's CPU.
    pub(crate) client: CpuSplit,
    /// This process's CPU over the run: the simulated vendors, which run here.
    pub(crate) simulator: CpuSplit,
    /// The floor process's peak resident memory, in KiB.
    pub(crate) peak_rss_kib: f64,
    /// The floor process's resident memory mapped from files at its end, in KiB.
    pub(crate) files_rss_kib: f64,
    /// Calls the simulated vendors answered (0 until the caller counts them).
    pub(crate) vendor_calls: u64,
    /// Where the floor process's CPU went, when it was profiled.
    pub(crate) profile: Option<Profile>,
}

impl From<FloorReport> for Run {
    fn from(floor: FloorReport) -> Self {
        let cpu_per_1000 = floor.client.total() * 1000.0 / floor.comparisons.max(1.0);
        Self {
            products: floor.comparisons as u64,
            complete: floor.comparisons as u64,
            rate: floor.comparisons / floor.seconds.max(0.001),
            cpu_s_per_1000: cpu_per_1000,
            cpu_s_per_1000_fill: cpu_per_1000,
            peak_rss_mib: floor.peak_rss_kib / 1024.0,
            files_rss_mib: floor.files_rss_kib / 1024.0,
            vendor_calls_per_product: floor.vendor_calls as f64 / floor.comparisons.max(1.0),
            profile: floor.profile,
            redis: None,
        }
    }
}

/// Runs `pricefront-fanout-floor` (built beside this binary) against the same simulated vendors: the
/// vendor calls without Kafka or Redis, in a process of their own so that its CPU and memory are its own.
async fn floor_run(
    args: &Args,
    max_in_flight: u32,
    floor: Floor,
    products: u64,
    profile_to: Option<&std::path::Path>,
) -> anyhow::Result<FloorReport> {
    let mode = match floor {
        Floor::Fanout => "fanout",
        Floor::Bare => "bare",
    };
    let env = TestEnv::new(
        &format!("bench-floor-{mode}-{max_in_flight}-{products}"),
        args.vendor_profiles(),
        2_000,
    )
    .await?;
    let report = run_floor_binary(
        &env.vendors_file,
        max_in_flight,
        products,
        mode,
        &[],
        Duration::from_secs(args.fill_limit_secs),
        profile_to,
    )
    .await?;
    Ok(FloorReport {
        vendor_calls: env.simulator.request_counts().values().sum(),
        ..report
    })
}

/// Runs `pricefront-fanout-floor` (built beside this binary) on `vendors_file` in `mode` (`fanout` or
/// `bare`), with `env` added to its environment, for at most `limit`, under `perf record` into
/// `profile_to` when given; what it measured (without the vendor calls, which the caller counts).
pub(crate) async fn run_floor_binary(
    vendors_file: &std::path::Path,
    max_in_flight: u32,
    products: u64,
    mode: &str,
    env: &[(&str, String)],
    limit: Duration,
    profile_to: Option<&std::path::Path>,
) -> anyhow::Result<FloorReport> {
    let binary = std::env::current_exe()?.with_file_name("pricefront-fanout-floor");
    let simulator_before = cpu_split(std::process::id())?;
    // Profiled: perf runs the floor (it reports its own CPU, not perf's).
    let mut command = match profile_to {
        Some(file) => {
            let mut perf = tokio::process::Command::new("perf");
            perf.args(cpu_profile::record_command(file)).arg(&binary);
            perf
        }
        None => tokio::process::Command::new(&binary),
    };
    let output = command
        .arg("--vendors")
        .arg(vendors_file)
        .args(["--max-in-flight", &max_in_flight.to_string()])
        .args(["--products", &products.to_string(), "--mode", mode])
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(limit, output)
        .await
        .with_context(|| format!("{} took over {} s", binary.display(), limit.as_secs()))?
        .with_context(|| format!("running {}", binary.display()))?;
    let simulator_after = cpu_split(std::process::id())?;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("{}'s report", binary.display()))?;
    let number = |name: &str| {
        report[name]
            .as_f64()
            .with_context(|| format!("{name} in {report}"))
    };
    Ok(FloorReport {
        comparisons: number("comparisons")?,
        seconds: number("seconds")?,
        client: CpuSplit {
            user: number("user_seconds")?,
            system: number("system_seconds")?,
        },
        simulator: CpuSplit {
            user: simulator_after.user - simulator_before.user,
            system: simulator_after.system - simulator_before.system,
        },
        peak_rss_kib: number("peak_rss_kib")?,
        files_rss_kib: number("files_rss_kib")?,
        vendor_calls: 0,
        profile: match profile_to {
            Some(file) => Some(cpu_profile::read(file).await?),
            None => None,
        },
    })
}

/// The expected longest of `n` latencies drawn uniformly between `low` and `high`: what a comparison
/// waits for with its `n` vendors asked at once.
fn slowest_of(n: usize, low: f64, high: f64) -> f64 {
    low + (high - low) * n as f64 / (n as f64 + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comparison_waits_for_the_slowest_of_its_vendors() {
        assert!((slowest_of(5, 90.0, 110.0) - (90.0 + 20.0 * 5.0 / 6.0)).abs() < 1e-9);
        assert_eq!(slowest_of(1, 90.0, 110.0), 100.0);
    }

    #[test]
    fn the_allowance_note_weighs_what_ours_adds_by_purpose() {
        let run = |name: &str, shares: &[(Purpose, f64)], cpu_s_per_1000: f64| ProfiledRun {
            name: name.to_owned(),
            profile: Profile {
                shares: shares.iter().copied().collect(),
                samples: 1_000,
            },
            cpu_s_per_1000,
        };
        // The bare floor at 0.2 ms a comparison allows 0.04 ms more; ours at 0.3 ms spends 0.03 on
        // Redis, 0.009 on Kafka, 0.009 on the intake and 0.028 on its fan-out's own work.
        let bare = run(
            "bare",
            &[
                (Purpose::VendorHttp, 0.9),
                (Purpose::RequestsAndOffers, 0.1),
            ],
            0.2,
        );
        let ours = run(
            "ours",
            &[
                (Purpose::VendorHttp, 0.58),
                (Purpose::Redis, 0.1),
                (Purpose::Kafka, 0.03),
                (Purpose::Intake, 0.03),
                (Purpose::RequestsAndOffers, 0.1),
                (Purpose::Fanout, 0.06),
                (Purpose::Runtime, 0.1),
            ],
            0.3,
        );
        let note = against_the_allowance(&ours, &bare);
        assert!(note.contains("**0.040 ms**"), "{note}");
        assert!(
            note.contains("**0.048 ms** (120% of that allowance)"),
            "{note}"
        );
        assert!(note.contains("Redis 0.030"), "{note}");
        // Reading offers counts only beyond the floor's own request building (0.03 - 0.02).
        assert!(note.contains("**0.028 ms** more (70% of it)"), "{note}");
        let table = profile_table(256, &[ours, bare]);
        assert!(
            table.contains(
                "| Redis: client, socket, the kernel waking Redis | 0.030 | 0.000 | +0.030 |"
            ),
            "{table}"
        );
        assert!(table.contains("**+0.100**"), "{table}");
    }

    fn cpu(user: f64, system: f64) -> CpuSplit {
        CpuSplit { user, system }
    }

    #[test]
    fn the_ceiling_counts_only_what_the_extra_comparisons_cost() {
        // 8,000 more comparisons took 2.4 s more of the client's CPU and 1.6 s more of the simulator's:
        // 0.5 ms a comparison, so 2 cores give 4,000 a second at most.
        let ceiling = Ceiling::from_differences(
            256,
            8_000.0,
            [
                (cpu(2.0, 1.0), cpu(0.4, 0.2)),
                (cpu(1.5, 0.5), cpu(0.3, 0.1)),
            ],
            2.0,
        )
        .expect("a ceiling");
        assert!((ceiling.client.user - 0.0002).abs() < 1e-12);
        assert!((ceiling.simulator.system - 0.00005).abs() < 1e-12);
        assert!((ceiling.rate() - 4_000.0).abs() < 1e-6);
    }

    fn run(rate: f64, cpu: f64, rss: f64) -> Run {
        Run {
            products: 1,
            complete: 1,
            rate,
            cpu_s_per_1000: cpu,
            cpu_s_per_1000_fill: cpu,
            peak_rss_mib: rss,
            files_rss_mib: rss / 10.0,
            vendor_calls_per_product: 5.0,
            profile: None,
            redis: None,
        }
    }

    #[test]
    fn the_goals_against_the_floor_are_judged_at_their_bounds() {
        // At 512: 95% of the floor's rate, 1.20× its CPU and +16 MiB are each just met.
        let mut ours_512 = run(950.0, 0.24, 116.0);
        ours_512.redis = Some(RedisTraffic {
            commands: 4,
            reads: 3,
        });
        let mut at_512 = AgainstFloor::new(512, &ours_512);
        at_512.floor(&run(1000.0, 0.2, 100.0));
        at_512.fanout(&run(990.0, 0.23, 105.0));
        // At 1,024: under 95%, over 1.20× and over +24 MiB are each not met.
        let mut at_1024 = AgainstFloor::new(1024, &run(940.0, 0.25, 125.0));
        at_1024.floor(&run(1000.0, 0.2, 100.0));
        // Three rounds at 1,024: the range of their own ratios beside the medians'.
        at_1024.rounds(
            &[
                run(900.0, 0.22, 0.0),
                run(950.0, 0.26, 0.0),
                run(980.0, 0.3, 0.0),
            ],
            &[
                run(1000.0, 0.2, 0.0),
                run(1000.0, 0.2, 0.0),
                run(1000.0, 0.2, 0.0),
            ],
        );
        let note = goals_against_floor(&[at_512, at_1024]);
        assert!(
            note.contains("| 512 | 95.0%: met | 1.20×: met | +16.0 MiB (goal ≤ +16): met |"),
            "{note}"
        );
        assert!(
            note.contains("| 1024 | 94.0%: **not met** (rounds 90–98%) | 1.25×: **not met** (rounds 1.10–1.50×) | +25.0 MiB (goal ≤ +24): **not met** |"),
            "{note}"
        );
        // The extra CPU split by the fan-out floor, with Redis's reads per comparison (3 for 1).
        assert!(
            note.contains("| 512 | +0.040 | +0.010 | +0.030 | 3.00 | 0.23 / 0.20 |"),
            "{note}"
        );
        // The extra memory: ours 116 (11.6 of it code), the fan-out alone 105 (10.5), the floor 100 (10).
        assert!(
            note.contains("| 512 | +16.0 | +1.6 | +9.9 | +4.5 |"),
            "{note}"
        );
        assert!(
            note.contains("ours adds to the floor at 512, +14.4 MiB (within the goal's +16)."),
            "{note}"
        );
        // No fan-out floor at 1,024: no split rows.
        assert!(!note.contains("| 1024 | +0.050"), "{note}");
        assert!(!note.contains("| 1024 | +25.0 |"), "{note}");
    }

    #[test]
    fn the_median_run_takes_each_figure_apart() {
        let mut runs = vec![
            run(900.0, 0.30, 120.0),
            run(1000.0, 0.20, 100.0),
            run(950.0, 0.25, 130.0),
        ];
        for (run, reads) in runs.iter_mut().zip([5, 1, 3]) {
            run.redis = Some(RedisTraffic {
                commands: 10,
                reads,
            });
        }
        let median = Run::median(&runs).expect("three runs");
        assert_eq!(median.rate, 950.0);
        assert_eq!(median.cpu_s_per_1000_fill, 0.25);
        assert_eq!(median.peak_rss_mib, 120.0);
        assert_eq!(median.redis.map(|t| t.reads), Some(3));
        assert_eq!(
            Run::median(&runs[..2]).map(|r| r.rate),
            Some(950.0),
            "the mean of the middle two"
        );
        assert!(Run::median(&[]).is_none());
    }

    #[test]
    fn the_classic_way_is_compared_only_when_it_ran() {
        assert_eq!(
            against_the_classic_way(256, Some(2300.0), Some(20.0)),
            "Ours at `--max-in-flight 256` is **115.0×** the classic way."
        );
        // A run with --no-sequential once printed "NaN× the classic way".
        for sentence in [
            against_the_classic_way(256, Some(2300.0), None),
            against_the_classic_way(256, None, Some(20.0)),
            against_the_classic_way(256, Some(2300.0), Some(0.0)),
        ] {
            assert!(
                !sentence.contains("NaN") && !sentence.contains("inf"),
                "{sentence}"
            );
        }
    }

    #[test]
    fn no_ceiling_when_the_full_run_did_no_more_comparisons() {
        let same = (cpu(1.0, 1.0), cpu(1.0, 1.0));
        assert_eq!(Ceiling::from_differences(256, 0.0, [same, same], 2.0), None);
    }
}
