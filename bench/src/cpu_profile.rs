//! Where a process's CPU goes: `perf record` samples of it, grouped by component (the kernel's
//! loopback TCP, the allocator, the HTTP client, the runtime, librdkafka, the Redis client, JSON, our
//! own code...). The fill benchmark prints ours beside its floors with this, so that a CPU figure over
//! its goal comes with where the time goes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};

/// Samples a second: often enough for a few thousand samples in a run of seconds, rarely enough to
/// cost the process little.
const FREQUENCY: &str = "999";

/// What a sample's code belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    /// The kernel: syscalls, and on loopback the TCP delivery of what the process sends.
    Kernel,
    /// malloc, free and memory copies (mimalloc, libc).
    Memory,
    /// reqwest, hyper, http, url, bytes.
    HttpClient,
    /// tokio, mio, futures.
    Runtime,
    /// librdkafka and the rdkafka crate.
    Kafka,
    /// The Redis client.
    Redis,
    /// serde and serde_json.
    Json,
    /// tracing, prometheus-client, backon, OpenTelemetry.
    Instrumentation,
    /// Our own crates (pricefront_*).
    Ours,
    /// The clock (the vDSO's clock_gettime).
    Clock,
    /// Anything else (the standard library's own work, unresolved symbols).
    Other,
}

impl Component {
    /// Every component, in the order the table lists them.
    pub const ALL: [Component; 11] = [
        Component::Kernel,
        Component::Memory,
        Component::HttpClient,
        Component::Runtime,
        Component::Kafka,
        Component::Redis,
        Component::Json,
        Component::Instrumentation,
        Component::Ours,
        Component::Clock,
        Component::Other,
    ];

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Component::Kernel => "kernel: syscalls, loopback TCP",
            Component::Memory => "allocator and memory copies",
            Component::HttpClient => "HTTP client: reqwest, hyper, http, url",
            Component::Runtime => "async runtime: tokio, mio, futures",
            Component::Kafka => "Kafka client: librdkafka, rdkafka",
            Component::Redis => "Redis client",
            Component::Json => "JSON: serde_json",
            Component::Instrumentation => "tracing, metrics, retries",
            Component::Ours => "our code (pricefront_*)",
            Component::Clock => "clock reads (vDSO)",
            Component::Other => "other (std, unresolved)",
        }
    }
}

/// The share of a process's samples in each component (0..1, summing to 1 when there were samples).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// Each component's share.
    pub shares: BTreeMap<Component, f64>,
    /// The samples read.
    pub samples: u64,
}

impl Profile {
    /// `component`'s share (0 when it had no sample).
    pub fn share(&self, component: Component) -> f64 {
        self.shares.get(&component).copied().unwrap_or(0.0)
    }
}

/// Whether `perf` is installed and may record here.
pub fn available() -> bool {
    std::process::Command::new("perf")
        .args([
            "record",
            "-q",
            "-F",
            FREQUENCY,
            "-o",
            "/dev/null",
            "--",
            "true",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `perf record`'s arguments before what it records, for a command or for a process alike: with
/// call graphs when `PRICEFRONT_PERF_CALL_GRAPH` names a mode of `--call-graph` (`dwarf,16384`, for a
/// profile kept with `--keep-profiles` and read with `perf report -g`).
fn record_args() -> Vec<String> {
    let mut args: Vec<String> = ["record", "-q", "-F", FREQUENCY]
        .map(str::to_owned)
        .to_vec();
    if let Ok(mode) = std::env::var("PRICEFRONT_PERF_CALL_GRAPH") {
        args.extend(["--call-graph".to_owned(), mode]);
    }
    args
}

/// The arguments that make `perf` run a command and record it into `file`: `perf <these> program args`.
pub fn record_command(file: &Path) -> Vec<String> {
    let mut args = record_args();
    args.extend(["-o".to_owned(), file.display().to_string(), "--".into()]);
    args
}

/// `perf record` attached to a running process (every thread of it) until [`Recording::finish`].
pub struct Recording {
    child: tokio::process::Child,
    file: PathBuf,
}

impl Recording {
    /// Starts recording process `pid` into `file`.
    pub fn attach(pid: u32, file: &Path) -> anyhow::Result<Self> {
        let child = tokio::process::Command::new("perf")
            .args(record_args())
            .args(["-p", &pid.to_string(), "-o"])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting perf record")?;
        Ok(Self {
            child,
            file: file.to_owned(),
        })
    }

    /// Stops recording (perf writes its file on SIGINT) and reads the profile.
    pub async fn finish(mut self) -> anyhow::Result<Profile> {
        let pid = self.child.id().context("perf record already ended")?;
        let status = tokio::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await?;
        if !status.success() {
            bail!("could not stop perf record ({status})");
        }
        self.child.wait().await?;
        read(&self.file).await
    }
}

/// Reads a `perf record` file into a profile.
pub async fn read(file: &Path) -> anyhow::Result<Profile> {
    let output = tokio::process::Command::new("perf")
        .args(["report", "-i"])
        .arg(file)
        .args([
            "--no-children",
            "-g",
            "none",
            "--sort",
            "dso,sym",
            "--stdio",
        ])
        .args(["-t", "|", "--percent-limit", "0", "-F", "sample,dso,sym"])
        .output()
        .await
        .context("running perf report")?;
    if !output.status.success() {
        bail!(
            "perf report failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(parse_report(&String::from_utf8_lossy(&output.stdout)))
}

/// A `perf report -t '|' -F sample,dso,sym` listing as a profile.
fn parse_report(report: &str) -> Profile {
    let mut counts: BTreeMap<Component, u64> = BTreeMap::new();
    let mut samples = 0;
    for line in report.lines().filter(|l| !l.starts_with('#')) {
        let mut fields = line.split('|').map(str::trim);
        let (Some(count), Some(dso), Some(symbol)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Ok(count) = count.parse::<u64>() else {
            continue;
        };
        // "[.] name" for user space, "[k] name" for the kernel.
        let symbol = symbol.get(4..).unwrap_or(symbol);
        *counts.entry(component(dso, symbol)).or_default() += count;
        samples += count;
    }
    let shares = counts
        .into_iter()
        .map(|(component, count)| (component, count as f64 / samples.max(1) as f64))
        .collect();
    Profile { shares, samples }
}

/// The component of a sample in `symbol` of `dso`.
fn component(dso: &str, symbol: &str) -> Component {
    if dso.starts_with("[kernel") {
        return Component::Kernel;
    }
    if dso == "[vdso]" {
        return Component::Clock;
    }
    if symbol.starts_with("mi_")
        || symbol.starts_with("_mi_")
        || ["malloc", "free", "realloc", "calloc", "cfree"].contains(&symbol)
        || symbol.starts_with("__mem")
        || symbol.starts_with("mem")
        || symbol.starts_with("_int_")
    {
        return Component::Memory;
    }
    if symbol.starts_with("rd_") || symbol.starts_with("rdk") || dso.contains("rdkafka") {
        return Component::Kafka;
    }
    match first_crate(symbol) {
        Some(
            "reqwest" | "hyper" | "hyper_util" | "http" | "http_body" | "http_body_util"
            | "httparse" | "url" | "idna" | "bytes" | "want" | "tower" | "tower_service" | "h2",
        ) => Component::HttpClient,
        Some("tokio" | "mio" | "futures_util" | "futures_core" | "futures_channel" | "futures") => {
            Component::Runtime
        }
        Some("rdkafka" | "rdkafka_sys") => Component::Kafka,
        Some("redis" | "combine") => Component::Redis,
        Some("serde_json" | "serde" | "ryu" | "itoa") => Component::Json,
        Some(
            "tracing"
            | "tracing_core"
            | "tracing_subscriber"
            | "prometheus_client"
            | "backon"
            | "opentelemetry"
            | "opentelemetry_sdk"
            | "tracing_opentelemetry",
        ) => Component::Instrumentation,
        Some(name) if name.starts_with("pricefront") || name == "vendor_sim" => Component::Ours,
        _ => Component::Other,
    }
}

/// The first crate a Rust symbol names other than the standard library's (`core`, `alloc`, `std`):
/// `<tracing::Instrumented<T> as Future>::poll` is tracing's, `core::ptr::drop_in_place<hyper::X>`
/// hyper's.
fn first_crate(symbol: &str) -> Option<&str> {
    let mut searched = 0;
    while let Some(found) = symbol[searched..].find("::") {
        let at = searched + found;
        let head = &symbol[..at];
        let start = head
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        // A path's first segment: not one after another `::` (`core::ptr::…` names `core`, not `ptr`).
        let starts_a_path = !head[..start].ends_with(':');
        let name = &head[start..];
        if starts_a_path && !name.is_empty() && !["core", "alloc", "std"].contains(&name) {
            return Some(name);
        }
        searched = at + 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symbol_belongs_to_the_first_crate_it_names_beyond_the_standard_library() {
        assert_eq!(
            first_crate(
                "<tracing::instrument::Instrumented<T> as core::future::future::Future>::poll"
            ),
            Some("tracing")
        );
        assert_eq!(
            first_crate(
                "core::ptr::drop_in_place<hyper_util::client::legacy::client::Client<C,B>>"
            ),
            Some("hyper_util")
        );
        assert_eq!(first_crate("_mi_page_malloc_zero"), None);
    }

    #[test]
    fn samples_are_grouped_by_component() {
        let report = "# comment\n\
            40|[kernel.kallsyms]|[k] tcp_sendmsg\n\
            20|pricefront-consumer|[.] _mi_page_malloc_zero\n\
            10|libc.so.6|[.] __memmove_avx512_unaligned_erms\n\
            10|pricefront-consumer|[.] pricefront_consumer::vendors::fanout::Comparer::compare::{{closure}}\n\
            10|pricefront-consumer|[.] rd_kafka_queue_poll\n\
            5|pricefront-consumer|[.] <redis::aio::connection_manager::ConnectionManager as redis::aio::ConnectionLike>::req\n\
            5|[vdso]|[.] __vdso_clock_gettime\n";
        let profile = parse_report(report);
        assert_eq!(profile.samples, 100);
        assert_eq!(profile.share(Component::Kernel), 0.4);
        assert_eq!(profile.share(Component::Memory), 0.3);
        assert_eq!(profile.share(Component::Ours), 0.1);
        assert_eq!(profile.share(Component::Kafka), 0.1);
        assert_eq!(profile.share(Component::Redis), 0.05);
        assert_eq!(profile.share(Component::Clock), 0.05);
        assert_eq!(profile.share(Component::Json), 0.0);
    }
}
