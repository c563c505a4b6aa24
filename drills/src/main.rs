//! `pricefront-drills [--write]`: runs every reliability drill against the running local stack, one after
//! the other, and prints a table; with `--write`, rewrites RELIABILITY.md with it.
//!
//! Needs the stack (`dev/stack.sh up`) and a consumer build: `PRICEFRONT_CONSUMER_BIN`, which
//! `make drills` and `make test` point at the release build, or else the debug build. The edge drill
//! uses the Worker at `EDGE_KV_URL` (token `EDGE_FILL_TOKEN`) when both are set, and otherwise starts
//! one under `wrangler dev` on `--edge-port` and stops it at the end. The cluster drills need the
//! three-node cluster that `make drills` starts beside the stack (`CLUSTER_*`, see `scripts/stack-session.sh`).

use std::future::Future;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use pricefront_drills::report::{reliability_document, table};
use pricefront_drills::{
    below_isr, early_refresh, edge_input, flood, kafka_restart, kill_consumer, leader_kill,
    redis_restart, rest_proxy, rolling_restart, starved_consumer, vendor_down, vendor_faults,
    DrillError, DrillReport, Machine, Verdict,
};
use pricefront_harness::edge::Edge;
use pricefront_harness::utc_date;
use pricefront_harness::worker::LocalWorker;

/// Runs the reliability drills against the running local stack and prints what was lost and duplicated.
#[derive(Debug, Parser)]
#[command(name = "pricefront-drills", version, about)]
struct Args {
    /// Rewrite RELIABILITY.md (at the repository's root) with the results.
    #[arg(long)]
    write: bool,
    /// Run only these drills (repeatable); not with --write.
    #[arg(long, value_enum, conflicts_with = "write")]
    only: Vec<Drill>,
    /// The port of the Worker started for the edge drill when EDGE_KV_URL is not set.
    #[arg(long, default_value_t = 8797)]
    edge_port: u16,
}

/// The drills, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Drill {
    Kill9,
    Kafka,
    Redis,
    Vendors,
    VendorDown,
    Edge,
    RestProxy,
    EarlyRefresh,
    Flood,
    Starved,
    LeaderKill,
    RollingRestart,
    BelowIsr,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let edge = edge_input::Target::from_env().ok();
    tokio::runtime::Runtime::new()
        .context("starting the runtime")?
        .block_on(run(args, edge))
}

async fn run(args: Args, edge: Option<edge_input::Target>) -> anyhow::Result<()> {
    let wanted = |drill: Drill| args.only.is_empty() || args.only.contains(&drill);
    let mut reports = Vec::new();

    if wanted(Drill::Kill9) {
        reports.push(
            attempt(
                "kill -9 consumer",
                kill_consumer::run(&kill_consumer::Plan::default()),
            )
            .await,
        );
    }
    if wanted(Drill::Kafka) {
        reports.push(
            attempt(
                "Kafka broker restart",
                kafka_restart::run(&kafka_restart::Plan::default()),
            )
            .await,
        );
    }
    if wanted(Drill::Redis) {
        reports.push(
            attempt(
                "Redis restart",
                redis_restart::run(&redis_restart::Plan::default()),
            )
            .await,
        );
    }
    if wanted(Drill::Vendors) {
        reports.push(
            attempt(
                "vendor faults",
                vendor_faults::run(&vendor_faults::Plan::default()),
            )
            .await,
        );
    }
    if wanted(Drill::VendorDown) {
        reports.push(
            attempt(
                "one vendor down",
                vendor_down::run(&vendor_down::Plan::default()),
            )
            .await,
        );
    }
    if wanted(Drill::EarlyRefresh) {
        reports.push(
            attempt(
                "early refresh (XFetch)",
                early_refresh::run(&early_refresh::Plan::default()),
            )
            .await,
        );
    }
    if wanted(Drill::Flood) {
        reports.push(attempt("flood of distinct ids", flood::run(&flood::Plan::default())).await);
    }
    if wanted(Drill::Starved) {
        reports.push(
            attempt(
                "consumer short of CPU",
                starved_consumer::run(&starved_consumer::Plan::default()),
            )
            .await,
        );
    }
    if wanted(Drill::LeaderKill) {
        let plan = leader_kill::Plan::default();
        reports.push(attempt("cluster: partition leader killed", leader_kill::run(&plan)).await);
    }
    if wanted(Drill::RollingRestart) {
        let plan = rolling_restart::Plan::default();
        reports.push(attempt("cluster: rolling restart", rolling_restart::run(&plan)).await);
    }
    if wanted(Drill::BelowIsr) {
        let plan = below_isr::Plan::default();
        reports.push(attempt("cluster: below min.insync.replicas", below_isr::run(&plan)).await);
    }
    if wanted(Drill::Edge) || wanted(Drill::RestProxy) {
        let (target, started) = match edge {
            Some(target) => (target, None),
            None => {
                eprintln!(
                    "[drills] EDGE_KV_URL/EDGE_FILL_TOKEN not set: starting a Worker on 127.0.0.1:{}",
                    args.edge_port
                );
                let port = args.edge_port;
                let worker = LocalWorker::start("drills", port, &[])
                    .await
                    .context("starting the Worker")?;
                let target = edge_input::Target {
                    base: worker.base.clone(),
                    token: worker.token.clone(),
                };
                (target, Some(worker))
            }
        };
        if wanted(Drill::Edge) {
            let plan = edge_input::Plan::default();
            reports.push(attempt("bad input at the edge", edge_input::run(&target, &plan)).await);
        }
        if wanted(Drill::RestProxy) {
            let edge = Edge::at(target.base.clone());
            let plan = rest_proxy::Plan::default();
            reports.push(attempt("REST proxy stop/restart", rest_proxy::run(&edge, &plan)).await);
        }
        if let Some(worker) = started {
            tokio::task::spawn_blocking(move || worker.stop())
                .await
                .context("stopping the Worker")??;
        }
    }

    println!("\n{}", table(&reports));
    if args.write {
        let root = pricefront_harness::repo_path(".");
        let root = root.canonicalize().unwrap_or(root);
        let path = root.join("RELIABILITY.md");
        let consumer = pricefront_harness::consumer_binary()?;
        let consumer = consumer.strip_prefix(&root).unwrap_or(&consumer);
        let document = reliability_document(
            &reports,
            "make drills",
            &consumer.display().to_string(),
            &utc_date(),
            &Machine::current(),
        );
        std::fs::write(&path, document).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    let failed = reports
        .iter()
        .filter(|r| r.verdict() == Verdict::Failed)
        .count();
    anyhow::ensure!(failed == 0, "{failed} drills failed");
    Ok(())
}

/// Runs one drill; a drill that could not run to its end is a failed report.
async fn attempt(
    name: &str,
    drill: impl Future<Output = Result<DrillReport, DrillError>>,
) -> DrillReport {
    eprintln!("[drills] {name} ...");
    let report = drill.await.unwrap_or_else(|error| {
        let mut report = DrillReport {
            name: name.into(),
            fault: "-".into(),
            ..DrillReport::default()
        };
        report.fail(format!("the drill could not run to its end: {error}"));
        report
    });
    eprintln!("[drills] {}", report.details());
    report
}
