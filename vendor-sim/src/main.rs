//! `vendor-sim`: serves the simulated vendors until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use vendor_sim::{serve, Api, ApiProfiles, Profiles, Simulator};

/// A simulator of slow, flaky external price APIs.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SIM_LISTEN", default_value = "127.0.0.1:9400")]
    listen: SocketAddr,
    /// A TOML file of vendor profiles (`[vendors.NAME]` tables) and real API settings (`[apis.NAME]`
    /// tables); five healthy vendors and default API settings when absent.
    #[arg(long, env = "SIM_PROFILES")]
    profiles: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let (profiles, apis) = match &args.profiles {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            (
                Profiles::from_toml(&text)
                    .with_context(|| format!("parsing {}", path.display()))?,
                ApiProfiles::from_toml(&text)
                    .with_context(|| format!("parsing {}", path.display()))?,
            )
        }
        None => (Profiles::five_healthy(), ApiProfiles::default()),
    };
    let listener =
        vendor_sim::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %args.listen, vendors = ?profiles.vendors.keys().collect::<Vec<_>>(), "vendor simulator ready");
    let simulator = Simulator::with_apis(profiles, &apis)
        .with_context(|| "applying the [apis] settings".to_owned())?;
    if simulator
        .api_settings(Api::Walmart)
        .public_key_pem
        .trim()
        .is_empty()
    {
        tracing::info!("walmart: no public_key_pem set ([apis.walmart] or PUT /_sim/apis/walmart): every signed request is refused");
    }
    serve(listener, simulator, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
