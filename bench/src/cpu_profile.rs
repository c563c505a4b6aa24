//! Where a process's CPU goes, by what the work is for: `perf record` samples of it with their call
//! stacks, each put in the purpose of the innermost frame that names one (a vendor call, Redis, Kafka,
//! the offsets, reading offers, timeouts and retries...), the kernel's work and the allocator's counted
//! with whatever called them. The fill benchmark prints ours beside its floors with this, so that a CPU
//! figure over its goal comes with what the time is spent on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};

/// Samples a second: often enough for a few thousand samples in a run of seconds, rarely enough to
/// cost the process little.
const FREQUENCY: &str = "999";

/// How `perf` unwinds each sample's stack: with the DWARF unwind tables (release builds keep no frame
/// pointers), 16 KiB of stack copied per sample, deep enough for the innermost frames that name a
/// purpose.
const CALL_GRAPH: &str = "dwarf,16384";

/// What a sample's work is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Purpose {
    /// The vendor calls themselves: reqwest, hyper, and the kernel's loopback TCP under them.
    VendorHttp,
    /// Redis: the client, and the kernel's work on its socket (on loopback, delivering each write to
    /// Redis and waking it).
    Redis,
    /// Kafka: rdkafka and librdkafka.
    Kafka,
    /// Our intake: the window, the offsets, the handler around each message, the lateness probe.
    Intake,
    /// Building each vendor's request and reading its offers out of the answer (its JSON parsed).
    RequestsAndOffers,
    /// The comparison's aggregation and the result's JSON.
    ResultJson,
    /// Spans, trace context and metrics.
    TracingAndMetrics,
    /// The rest of our fan-out around each call: its timeout and retries, quotas, breakers.
    Fanout,
    /// The async runtime alone: scheduling, parking in epoll, firing timers, waking tasks.
    Runtime,
    /// Nothing above in the stack (the process's start, unresolved frames).
    Other,
}

impl Purpose {
    /// Every purpose, in the order the table lists them.
    pub const ALL: [Purpose; 10] = [
        Purpose::VendorHttp,
        Purpose::Redis,
        Purpose::Kafka,
        Purpose::Intake,
        Purpose::RequestsAndOffers,
        Purpose::ResultJson,
        Purpose::TracingAndMetrics,
        Purpose::Fanout,
        Purpose::Runtime,
        Purpose::Other,
    ];

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::VendorHttp => "vendor calls: reqwest, hyper, the kernel under them",
            Purpose::Redis => "Redis: client, socket, the kernel waking Redis",
            Purpose::Kafka => "Kafka: rdkafka, librdkafka",
            Purpose::Intake => "our intake: window, offsets, handler",
            Purpose::RequestsAndOffers => "building requests, reading offers",
            Purpose::ResultJson => "the result: aggregation, JSON",
            Purpose::TracingAndMetrics => "spans, trace context, metrics",
            Purpose::Fanout => "our fan-out around each call: timeout, retries, quotas, breakers",
            Purpose::Runtime => "async runtime: scheduling, epoll, timers, wake-ups",
            Purpose::Other => "other (start, unresolved)",
        }
    }

    /// The purpose `frame` (a symbol, or a function inlined there with its type parameters) names, if
    /// it names one. Frames are checked from the innermost out. Wrappers (`tracing`'s `Instrumented`,
    /// tokio's `Timeout`, backon's `Retry`) and JSON parsing name none: their samples go to whoever
    /// made them (a vendor's offers read, a message parsed).
    fn of_frame(frame: &str) -> Option<Purpose> {
        const RULES: [(Purpose, &[&str]); 8] = [
            (Purpose::Redis, &["redis::", "sinks::cache"]),
            (Purpose::Kafka, &["rdkafka", "rd_kafka"]),
            (
                Purpose::VendorHttp,
                &[
                    "reqwest::",
                    "hyper::",
                    "hyper_util::",
                    "hyper_tls::",
                    "h2::",
                ],
            ),
            (
                Purpose::RequestsAndOffers,
                &[
                    "OfferReader",
                    "JsonPointer",
                    "RequestTemplate",
                    "Template::render",
                ],
            ),
            (
                Purpose::ResultJson,
                &["Comparison::aggregate", "serde_json::ser", "sinks::fill"],
            ),
            (
                Purpose::TracingAndMetrics,
                &[
                    "tracing::span",
                    "tracing_core::",
                    "tracing_subscriber::",
                    "opentelemetry",
                    "prometheus_client::",
                    "process::metrics",
                    "process::telemetry",
                    "TraceContext",
                ],
            ),
            (
                Purpose::Intake,
                &[
                    "pricefront_consumer::intake::",
                    "process::lateness",
                    "PriceRequest",
                ],
            ),
            (Purpose::Fanout, &["pricefront_consumer::vendors::"]),
        ];
        RULES
            .iter()
            .find(|(_, needles)| needles.iter().any(|needle| frame.contains(needle)))
            .map(|(purpose, _)| *purpose)
    }

    /// The purpose of a sample whose stack is `frames`, innermost first.
    fn of_stack<'a>(frames: impl IntoIterator<Item = &'a str> + Clone) -> Purpose {
        if let Some(purpose) = frames.clone().into_iter().find_map(Purpose::of_frame) {
            return purpose;
        }
        let runtime = ["tokio::", "mio::", "futures_util::"];
        if frames
            .into_iter()
            .any(|frame| runtime.iter().any(|crate_| frame.contains(crate_)))
        {
            Purpose::Runtime
        } else {
            Purpose::Other
        }
    }
}

/// The share of a process's samples for each purpose (0..1, summing to 1 when there were samples).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// Each purpose's share.
    pub shares: BTreeMap<Purpose, f64>,
    /// The samples read.
    pub samples: u64,
}

impl Profile {
    /// `purpose`'s share (0 when it had no sample).
    pub fn share(&self, purpose: Purpose) -> f64 {
        self.shares.get(&purpose).copied().unwrap_or(0.0)
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

/// `perf record`'s arguments before what it records, for a command or for a process alike: with call
/// stacks (a profile kept with `--keep-profiles` reads with `perf report -g`).
fn record_args() -> Vec<String> {
    ["record", "-q", "-F", FREQUENCY, "--call-graph", CALL_GRAPH]
        .map(str::to_owned)
        .to_vec()
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
        .args(["script", "-i"])
        .arg(file)
        .args(["-F", "ip,sym"])
        .output()
        .await
        .context("running perf script")?;
    if !output.status.success() {
        bail!(
            "perf script failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(parse_script(&String::from_utf8_lossy(&output.stdout)))
}

/// A `perf script -F ip,sym` listing (each sample's frames, innermost first, inlined functions as
/// frames of their own, one `address symbol` a line, samples apart by a blank line) as a profile.
fn parse_script(script: &str) -> Profile {
    let mut counts: BTreeMap<Purpose, u64> = BTreeMap::new();
    let mut samples = 0;
    for sample in script.split("\n\n") {
        let frames = sample
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| line.split_once(' ').map_or("", |(_, symbol)| symbol));
        if frames.clone().next().is_none() {
            continue;
        }
        *counts.entry(Purpose::of_stack(frames)).or_default() += 1;
        samples += 1;
    }
    let shares = counts
        .into_iter()
        .map(|(purpose, count)| (purpose, count as f64 / samples.max(1) as f64))
        .collect();
    Profile { shares, samples }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_for_the_purpose_of_its_innermost_frame_that_names_one() {
        let script = "\n\
            \tffffffff81 _raw_spin_unlock_irqrestore\n\
            \tffffffff82 tcp_sendmsg\n\
            \t4c6814 <tokio::net::tcp::stream::TcpStream as tokio::io::AsyncWrite>::poll_write_vectored\n\
            \t4c6815 <redis::aio::multiplexed_connection::PipelineSink<T> as Sink>::poll_flush\n\
            \t4c6816 tokio::runtime::task::harness::Harness<T,S>::poll\n\
            \n\
            \t4300bf _mi_malloc_generic\n\
            \t4519b8 pricefront_consumer::vendors::offers::OfferReader::read\n\
            \t46a177 <backon::retry::Retry<B,T> as core::future::future::Future>::poll\n\
            \t46a178 <hyper_util::client::legacy::client::Client<C,B>>::send_request\n\
            \n\
            \t46a179 <tokio::time::timeout::Timeout<T> as core::future::future::Future>::poll\n\
            \t46a17a pricefront_consumer::vendors::fetch::attempt_once::{{closure}}\n\
            \t46a17b pricefront_consumer::intake::handler::MessageHandler::refresh::{{closure}}\n\
            \n\
            \tffffffff83 do_epoll_wait\n\
            \t8d5752 tokio::runtime::scheduler::current_thread::Context::park\n\
            \n\
            \t4c6900 rd_kafka_q_pop\n\
            \n\
            \t4c7000 _mi_malloc_generic\n\
            \t4c7001 {async_fn#0}<pricefront_core::comparison::VendorOutcome, pricefront_consumer::vendors::fetch::ask_vendor::{closure#1}> (inlined)\n\
            \t4c7002 <serde_json::ser::Compound<W,F> as serde::ser::SerializeMap>::serialize_entry\n\
            \n\
            \t27249 __libc_start_call_main\n";
        let profile = parse_script(script);
        assert_eq!(profile.samples, 7);
        // The wrapped timer, and the inlined fan-out future under a JSON writer, count for the fan-out.
        let expected = [
            (Purpose::Redis, 1),
            (Purpose::RequestsAndOffers, 1),
            (Purpose::Fanout, 2),
            (Purpose::Runtime, 1),
            (Purpose::Kafka, 1),
            (Purpose::Other, 1),
            (Purpose::VendorHttp, 0),
        ];
        for (purpose, samples) in expected {
            assert!(
                (profile.share(purpose) - f64::from(samples) / 7.0).abs() < 1e-9,
                "{purpose:?}: {profile:?}"
            );
        }
        assert_eq!(profile.share(Purpose::ResultJson), 0.0);
    }
}
