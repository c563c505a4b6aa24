//! `pricefront-consumer`: runs the pipeline until SIGTERM or SIGINT, then stops gracefully and exits 0.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pricefront_consumer::cache::RedisCache;
use pricefront_consumer::config::{LogFormat, Settings};
use pricefront_consumer::fanout::Comparer;
use pricefront_consumer::{pipeline, vendors};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn"));
    match settings.log_format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stdout().is_terminal())
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }

    let vendors = vendors::load(&settings.vendors)?;
    tracing::info!(vendors = ?vendors.iter().map(|v| &v.name).collect::<Vec<_>>(), "vendors loaded");
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(settings.max_in_flight as usize)
        .user_agent(concat!("pricefront-consumer/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    let comparer = Comparer::new(
        client,
        vendors,
        settings.fetch_limits(),
        settings.freshness_policy(),
    );
    let redis_timeout = Duration::from_millis(settings.redis_timeout_ms);
    let cache = RedisCache::connect(&settings.redis_url, redis_timeout)
        .await
        .with_context(|| format!("connecting to Redis at {}", settings.redis_url))?;
    pipeline::run(&settings, comparer, cache, shutdown_signal()).await?;
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
