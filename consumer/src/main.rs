//! `pricefront-consumer`: runs the pipeline until SIGTERM or SIGINT, then stops gracefully and exits 0.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pricefront_consumer::intake::pipeline::{self, Outputs};
use pricefront_consumer::process::health::serve;
use pricefront_consumer::process::lateness::RuntimeLag;
use pricefront_consumer::process::metrics::Metrics;
use pricefront_consumer::process::settings::Settings;
use pricefront_consumer::process::telemetry;
use pricefront_consumer::sinks::cache::RedisCache;
use pricefront_consumer::sinks::fill::FillSink;
use pricefront_consumer::vendors::fanout::Comparer;
use pricefront_consumer::vendors::{self, fetch};

// The allocator: with glibc's, malloc and free took about a fifth of the consumer's CPU (many small,
// short-lived allocations per vendor call); mimalloc about an eighth. Built without transparent huge
// pages (`no_thp`), which otherwise added a quarter to the peak RSS.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    cap_c_heap_arenas();
    let settings = Settings::parse();
    // Outside the runtime: the OTLP exporter's blocking HTTP client must not be made or dropped in it.
    let telemetry = telemetry::init(settings.log_format).context("setting up telemetry")?;
    let runtime = match settings.runtime_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        threads => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.into())
            .enable_all()
            .build(),
    }
    .context("starting the async runtime")?;
    if telemetry.exporting() {
        tracing::info!("exporting spans over OTLP");
    }
    let outcome = runtime.block_on(run(settings));
    drop(runtime);
    telemetry.shutdown();
    outcome
}

/// Caps glibc's malloc at two arenas, before any thread starts. Our Rust code allocates with mimalloc,
/// but librdkafka (C) allocates with glibc's malloc from threads of its own (its main thread and one per
/// broker, for the consumer and the dead-letter producer), and glibc gives each thread that contends an
/// arena of its own, kept resident: 7 arenas in an idle consumer without the cap, 2 with it. The fill
/// benchmark at window 512 peaked at 104.6 MiB on average with it, 107.4 without (three runs each, same
/// CPU per comparison). `MALLOC_ARENA_MAX` in the environment still overrides it.
fn cap_c_heap_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of glibc's allocator; it is called before any thread
        // exists, and an unknown value is refused with 0, which leaves glibc's default.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let vendors = vendors::load(&settings.vendors)?;
    tracing::info!(vendors = ?vendors.iter().map(|v| &v.name).collect::<Vec<_>>(), "vendors loaded");
    let limits = fetch::FetchLimits::of(&settings);
    let cut = vendors::timeouts_not_within(&vendors, limits.deadline);
    if !cut.is_empty() {
        tracing::warn!(
            vendors = ?cut,
            deadline_ms = limits.deadline.as_millis() as u64,
            "these vendors' timeout_ms is not shorter than --vendor-deadline-ms: the deadline cuts each attempt \
             before its timeout, so a timed-out attempt is never retried; set timeout_ms below the deadline"
        );
    }
    let client = fetch::http_client(settings.max_in_flight, vendors.len())
        .context("building the HTTP client")?;
    let metrics = Metrics::new();
    // How late this process runs: vendor timeouts while it is late are not the vendors', and the
    // in-flight window shrinks meanwhile.
    let lag = RuntimeLag::new(
        metrics.runtime_lag.clone(),
        vendors::shortest_timeout(&vendors),
    );
    lag.start();
    let fill = settings.fill_url.as_deref().map(|url| {
        FillSink::new(
            client.clone(),
            url,
            settings.fill_token.clone().unwrap_or_default(),
        )
    });
    let redis_timeout = Duration::from_millis(settings.redis_timeout_ms);
    // Redis may be away for a while at start: the process runs, not ready, and connects when it can;
    // writes wait for it as they do in an outage later on.
    let cache = RedisCache::connect_lazily(&settings.redis_url, redis_timeout)
        .with_context(|| format!("the Redis URL {}", settings.redis_url))?;
    let comparer = Comparer::new(
        client,
        vendors,
        limits,
        settings.freshness_policy(),
        metrics.clone(),
        lag.clone(),
        Some(cache.connection()),
    );
    tokio::spawn({
        let cache = cache.clone();
        async move { cache.wait_until_reachable().await }
    });

    let listen = settings.metrics_listen;
    let server = tokio::spawn(serve(listen, metrics.clone(), cache.clone()));
    let outputs = Outputs {
        cache,
        fill,
        metrics,
        lag,
    };
    tokio::select! {
        result = pipeline::run(&settings, comparer, outputs, shutdown_signal()) => result?,
        served = server => {
            let reason = match served {
                Ok(Err(error)) => error.to_string(),
                Ok(Ok(())) => "it ended".to_owned(),
                Err(error) => error.to_string(),
            };
            anyhow::bail!("the metrics server on {listen} stopped: {reason}");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}
