//! Where a Worker's hit spends its time: V8's sampling profile of the Worker's isolate under `wrangler
//! dev` (taken by `bench/cdp-profile.mjs` through the inspector), each sample put in one part (our wasm,
//! the JavaScript glue that wasm-bindgen and worker-build generate, the Worker's own JavaScript, wrangler
//! dev's middleware, the runtime's built-ins such as the KV read, the runtime outside JavaScript, the
//! garbage collector), beside what the whole `wrangler dev` costs a hit from `/proc`. The edge benchmark
//! prints ours like for like beside the JavaScript peer with this.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context};
use pricefront_harness::repo_path;
use pricefront_harness::worker::LocalWorker;
use serde::Deserialize;

/// Seconds of load before the profiler starts, and left after it stops: the profile sees only the
/// steady middle of the run.
const MARGIN_SECS: u64 = 1;

/// What one Worker's hit costs.
#[derive(Debug)]
pub struct HitCost {
    /// The CPU its whole `wrangler dev` used per hit (its node process, wrangler's proxy and the
    /// Worker's runtime, from `/proc`), over a run without the profiler, ms.
    pub wrangler_cpu_ms: f64,
    /// The isolate's busy time per hit by part, over a second run under the profiler, ms.
    pub isolate: IsolateProfile,
}

/// Measures `worker`'s hit at `url`: a run of `load` (which loads the URL for `seconds` and answers the
/// requests served per second) between two readings of its CPU time, then a second run of `load` with
/// the profiler attached for all but its first and last [`MARGIN_SECS`].
pub fn hit_cost(
    worker: &LocalWorker,
    seconds: u64,
    load: impl Fn() -> anyhow::Result<f64>,
) -> anyhow::Result<HitCost> {
    let before = worker.cpu_seconds()?;
    let rate = load()?;
    let cpu = worker.cpu_seconds()? - before;
    let wrangler_cpu_ms = cpu * 1000.0 / (rate * seconds as f64);

    let sampled_secs = seconds.saturating_sub(2 * MARGIN_SECS).max(1);
    let capture = std::env::temp_dir().join(format!(
        "pricefront-isolate-profile-{}.json",
        worker.inspector_port()
    ));
    let mut profiler = std::process::Command::new("node")
        .arg(repo_path("bench/cdp-profile.mjs"))
        .args([
            worker.inspector_port().to_string(),
            sampled_secs.to_string(),
            capture.display().to_string(),
            MARGIN_SECS.to_string(),
        ])
        .stdin(Stdio::null())
        .spawn()
        .context("starting node bench/cdp-profile.mjs")?;
    let profiled_rate = load();
    let status = profiler
        .wait()
        .context("waiting for bench/cdp-profile.mjs")?;
    let profiled_rate = profiled_rate?;
    if !status.success() {
        bail!("bench/cdp-profile.mjs on {} failed: {status}", worker.base);
    }
    let busy = read(&capture);
    let _ = std::fs::remove_file(&capture);
    let busy = busy?;
    let hits = profiled_rate * sampled_secs as f64;
    let isolate = IsolateProfile {
        ms: busy
            .ms
            .into_iter()
            .map(|(part, ms)| (part, ms / hits))
            .collect(),
    };
    Ok(HitCost {
        wrangler_cpu_ms,
        isolate,
    })
}

/// The table of where a hit's time goes, one column per Worker (`label`, its cost), one row per part.
pub fn table(workers: &[(&str, &HitCost)]) -> Vec<String> {
    let header: Vec<&str> = workers.iter().map(|(label, _)| *label).collect();
    let mut rows = vec![
        format!("| ms per hit | {} |", header.join(" | ")),
        format!("| --- |{}", " ---: |".repeat(workers.len())),
    ];
    let row = |name: &str, figure: &dyn Fn(&HitCost) -> f64| {
        let cells: Vec<String> = workers
            .iter()
            .map(|(_, cost)| format!("{:.3}", figure(cost)))
            .collect();
        format!("| {name} | {} |", cells.join(" | "))
    };
    for part in Part::ALL {
        rows.push(row(part.name(), &|cost| {
            cost.isolate.ms.get(&part).copied().unwrap_or(0.0)
        }));
    }
    rows.push(row("**the isolate, busy** (profiled run)", &|cost| {
        cost.isolate.busy_ms()
    }));
    rows.push(row(
        "**all of `wrangler dev`, CPU** (unprofiled run, `/proc`)",
        &|cost| cost.wrangler_cpu_ms,
    ));
    rows
}

/// What a sample's code belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// Our Rust compiled to wasm.
    OurWasm,
    /// The JavaScript that wasm-bindgen and worker-build generate around it (`edge/build/index.js`:
    /// the imports the wasm calls, the futures' microtask queue, worker-build's entry class and its
    /// panic-recovery proxy).
    Glue,
    /// The Worker's own JavaScript (the peer's `src/index.js`).
    WorkerJs,
    /// wrangler dev's middleware bundled around every Worker (its request-body drain, its JSON errors).
    Middleware,
    /// The runtime's built-in functions called from JavaScript: the KV read, `Response`, headers, text
    /// decoding, `queueMicrotask`, `waitUntil`, the calls between wasm and JavaScript.
    Builtins,
    /// The runtime's own work outside JavaScript (`(program)`: workerd and V8 themselves).
    Runtime,
    /// The garbage collector.
    Gc,
}

impl Part {
    /// Every part, in the order the table lists them.
    pub const ALL: [Part; 7] = [
        Part::OurWasm,
        Part::Glue,
        Part::WorkerJs,
        Part::Middleware,
        Part::Builtins,
        Part::Runtime,
        Part::Gc,
    ];

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Part::OurWasm => "our Rust (wasm)",
            Part::Glue => "wasm-bindgen's and worker-build's JavaScript glue",
            Part::WorkerJs => "the Worker's own JavaScript",
            Part::Middleware => "wrangler dev's middleware",
            Part::Builtins => {
                "the runtime's built-ins (KV read, Response, headers, wasm ↔ JS calls)"
            }
            Part::Runtime => "the runtime outside JavaScript (workerd, V8)",
            Part::Gc => "garbage collector",
        }
    }
}

/// A profile's busy time (every sample but the idle ones), by part, in ms.
#[derive(Debug, Default)]
pub struct IsolateProfile {
    /// The busy ms of each part.
    pub ms: BTreeMap<Part, f64>,
}

impl IsolateProfile {
    /// The busy ms of every part together.
    pub fn busy_ms(&self) -> f64 {
        self.ms.values().sum()
    }
}

/// What `bench/cdp-profile.mjs` writes.
#[derive(Deserialize)]
struct Capture {
    profile: Profile,
    /// Each sampled script's source, by script id.
    sources: HashMap<String, String>,
}

/// V8's `Profiler.Profile`, as much of it as is read here.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    nodes: Vec<Node>,
    samples: Vec<u64>,
    /// µs since the sample before, one per sample.
    time_deltas: Vec<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    id: u64,
    call_frame: CallFrame,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallFrame {
    function_name: String,
    script_id: String,
    url: String,
    /// 0-based; -1 for the runtime's own frames.
    line_number: i64,
}

/// Reads a capture of `bench/cdp-profile.mjs`.
pub fn read(file: &Path) -> anyhow::Result<IsolateProfile> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    parse(&text).with_context(|| {
        format!(
            "{} is not a capture of bench/cdp-profile.mjs",
            file.display()
        )
    })
}

/// A capture's busy time by part.
fn parse(text: &str) -> anyhow::Result<IsolateProfile> {
    let capture: Capture = serde_json::from_str(text)?;
    let modules: HashMap<&str, Vec<(i64, &str)>> = capture
        .sources
        .iter()
        .map(|(id, source)| (id.as_str(), bundled_modules(source)))
        .collect();
    let part_of_node: HashMap<u64, Option<Part>> = capture
        .profile
        .nodes
        .iter()
        .map(|node| {
            let frame = &node.call_frame;
            let module = modules
                .get(frame.script_id.as_str())
                .and_then(|starts| module_at(starts, frame.line_number));
            (node.id, part_of(frame, module))
        })
        .collect();
    let mut profile = IsolateProfile::default();
    for (sample, delta_us) in capture
        .profile
        .samples
        .iter()
        .zip(&capture.profile.time_deltas)
    {
        if let Some(Some(part)) = part_of_node.get(sample) {
            *profile.ms.entry(*part).or_default() += (*delta_us).max(0) as f64 / 1000.0;
        }
    }
    Ok(profile)
}

/// Where each module starts in a bundle esbuild wrote (wrangler's): `// path` comment lines, (0-based
/// line, path), in order.
fn bundled_modules(source: &str) -> Vec<(i64, &str)> {
    source
        .lines()
        .enumerate()
        .filter_map(|(line, text)| {
            let path = text.strip_prefix("// ")?;
            let looks_like_path = !path.contains(' ') && path.contains('/') && path.contains('.');
            looks_like_path.then_some((line as i64, path))
        })
        .collect()
}

/// The module that the 0-based `line` of a bundle belongs to.
fn module_at<'a>(starts: &[(i64, &'a str)], line: i64) -> Option<&'a str> {
    starts
        .iter()
        .take_while(|(start, _)| *start <= line)
        .last()
        .map(|(_, path)| *path)
}

/// The part a frame belongs to (`None` for idle), given the bundled module its line is in.
fn part_of(frame: &CallFrame, module: Option<&str>) -> Option<Part> {
    if frame.url.starts_with("wasm://") {
        return Some(Part::OurWasm);
    }
    if frame.url.is_empty() {
        return match frame.function_name.as_str() {
            "(idle)" => None,
            "(program)" | "(root)" => Some(Part::Runtime),
            "(garbage collector)" => Some(Part::Gc),
            _ => Some(Part::Builtins),
        };
    }
    Some(match module {
        Some(path) if path.starts_with("edge/build/") => Part::Glue,
        Some(path) if path.contains("wrangler/templates/") || path.starts_with(".wrangler/") => {
            Part::Middleware
        }
        Some(_) => Part::WorkerJs,
        // A script of the runtime's own (its local simulators): built-in as far as the Worker goes.
        None if !frame.url.ends_with(".js") => Part::Builtins,
        // wrangler's helpers ahead of the first module (`__name`, `__facade_*`).
        None => Part::Middleware,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUNDLE: &str = "var __name = (f) => f;\n\
        // edge/build/index.js\n\
        function glue() {}\n\
        // node_modules/wrangler/templates/middleware/common.ts\n\
        function drain() {}\n\
        // src/index.js\n\
        function getPrices() {}\n";

    fn frame(function_name: &str, url: &str, line_number: i64) -> CallFrame {
        CallFrame {
            function_name: function_name.into(),
            script_id: "5".into(),
            url: url.into(),
            line_number,
        }
    }

    #[test]
    fn a_line_belongs_to_the_module_whose_comment_precedes_it() {
        let starts = bundled_modules(BUNDLE);
        assert_eq!(
            starts,
            vec![
                (1, "edge/build/index.js"),
                (3, "node_modules/wrangler/templates/middleware/common.ts"),
                (5, "src/index.js")
            ]
        );
        assert_eq!(module_at(&starts, 0), None);
        assert_eq!(module_at(&starts, 2), Some("edge/build/index.js"));
        assert_eq!(module_at(&starts, 6), Some("src/index.js"));
    }

    #[test]
    fn each_frame_falls_in_one_part_and_idle_in_none() {
        let starts = bundled_modules(BUNDLE);
        let part = |f: CallFrame| part_of(&f, module_at(&starts, f.line_number));
        assert_eq!(part(frame("(idle)", "", -1)), None);
        assert_eq!(part(frame("(program)", "", -1)), Some(Part::Runtime));
        assert_eq!(part(frame("(garbage collector)", "", -1)), Some(Part::Gc));
        assert_eq!(part(frame("get", "", -1)), Some(Part::Builtins));
        assert_eq!(
            part(frame("kv_get", "wasm://wasm/pricefront_edge.wasm-1", 0)),
            Some(Part::OurWasm)
        );
        assert_eq!(part(frame("", "index.js", 2)), Some(Part::Glue));
        assert_eq!(part(frame("drain", "index.js", 4)), Some(Part::Middleware));
        assert_eq!(
            part(frame("getPrices", "index.js", 6)),
            Some(Part::WorkerJs)
        );
        assert_eq!(part(frame("__name", "index.js", 0)), Some(Part::Middleware));
        // A script of the runtime's own: no bundle, so no module.
        let simulator = frame("writeDataPoint", "analytics-engine:local-simulator", 3);
        assert_eq!(part_of(&simulator, None), Some(Part::Builtins));
    }

    #[test]
    fn the_busy_time_sums_each_samples_delta_under_its_part() {
        let capture = serde_json::json!({
            "profile": {
                "nodes": [
                    { "id": 1, "callFrame": { "functionName": "(idle)", "scriptId": "0", "url": "", "lineNumber": -1 } },
                    { "id": 2, "callFrame": { "functionName": "f", "scriptId": "9", "url": "wasm://wasm/x", "lineNumber": 0 } },
                    { "id": 3, "callFrame": { "functionName": "", "scriptId": "5", "url": "index.js", "lineNumber": 2 } }
                ],
                "samples": [1, 2, 3, 2],
                "timeDeltas": [500, 100, 300, 200]
            },
            "sources": { "5": BUNDLE }
        });
        let profile = parse(&capture.to_string()).expect("a capture");
        let ms = |part| profile.ms.get(&part).copied().unwrap_or(f64::NAN);
        assert!((ms(Part::OurWasm) - 0.3).abs() < 1e-9);
        assert!((ms(Part::Glue) - 0.3).abs() < 1e-9);
        assert!((profile.busy_ms() - 0.6).abs() < 1e-9);
    }
}
