//! Drill 3: `dev/stack.sh restart redis` while a consumer works through a backlog.
//!
//! The stack's Redis is a cache without persistence by default; a restart of it empties it by design, and
//! a result lost that way is refilled by the next miss, not by the pipeline. For the drill, Redis keeps its
//! data: persistence (AOF, `fsync` on every write) is switched on in the running server first, and the
//! restart starts the new server with `REDIS_APPENDONLY=1` so it loads that file. "Lost" is then exactly
//! what the pipeline dropped: a published request without a stored result at the end. The server's
//! persistence settings are put back as they were at the end (without another restart).

use std::time::Duration;

use pricefront_harness::results;
use pricefront_harness::TestEnv;
use tokio::time::Instant;

use crate::support::{self, secs};
use crate::{DrillError, DrillReport};

/// The load and the bounds of the drill.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Products published at once.
    pub products: u64,
    /// The consumer's in-flight window (small, so that the backlog outlasts the restart).
    pub max_in_flight: u32,
    /// Results stored before the restart.
    pub restart_after: usize,
    /// The longest the restart may take.
    pub restart_limit: Duration,
    /// The longest wait for every result once Redis is back.
    pub limit: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            products: 2_000,
            max_in_flight: 16,
            restart_after: 300,
            restart_limit: Duration::from_secs(120),
            limit: Duration::from_secs(180),
        }
    }
}

/// The persistence settings of the running Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Persistence {
    appendonly: String,
    appendfsync: String,
}

async fn config_get(name: &str) -> Result<String, DrillError> {
    let mut connection = results::redis_connection().await?;
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(&mut connection)
        .await?;
    pair.get(1)
        .cloned()
        .ok_or_else(|| DrillError::Precondition(format!("Redis has no setting {name}")))
}

async fn config_set(name: &str, value: &str) -> Result<(), DrillError> {
    let mut connection = results::redis_connection().await?;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query_async::<()>(&mut connection)
        .await?;
    Ok(())
}

async fn persistence() -> Result<Persistence, DrillError> {
    Ok(Persistence {
        appendonly: config_get("appendonly").await?,
        appendfsync: config_get("appendfsync").await?,
    })
}

/// Switches AOF persistence on in the running server and waits until its first rewrite is on disk.
async fn persist_every_write() -> Result<(), DrillError> {
    config_set("appendfsync", "always").await?;
    config_set("appendonly", "yes").await?;
    let limit = Duration::from_secs(60);
    let deadline = Instant::now() + limit;
    loop {
        let info = results::redis_info("persistence").await?;
        let field = |name: &str| {
            results::info_field(&info, name)
                .unwrap_or_default()
                .to_owned()
        };
        if field("aof_enabled") == "1"
            && field("aof_rewrite_in_progress") == "0"
            && field("aof_rewrite_scheduled") == "0"
        {
            return match field("aof_last_bgrewrite_status").as_str() {
                "ok" => Ok(()),
                other => Err(DrillError::Precondition(format!(
                    "Redis could not write its append-only file (status {other})"
                ))),
            };
        }
        if Instant::now() >= deadline {
            return Err(DrillError::Timeout {
                what: "Redis's first append-only file".into(),
                limit,
            });
        }
        tokio::time::sleep(results::POLL).await;
    }
}

/// Runs the drill.
pub async fn run(plan: &Plan) -> Result<DrillReport, DrillError> {
    support::check_stack().await?;
    let started = Instant::now();
    let mut report = DrillReport {
        name: "Redis restart".into(),
        fault: format!(
            "`dev/stack.sh restart redis` (persistence on) at {} of {} requests stored",
            plan.restart_after, plan.products
        ),
        requests: plan.products,
        ..DrillReport::default()
    };
    let original = persistence().await?;
    persist_every_write().await?;
    report.note(format!(
        "Redis persistence for the drill: appendonly yes, appendfsync always (was: appendonly {}, appendfsync {}); restarted with REDIS_APPENDONLY=1",
        original.appendonly, original.appendfsync
    ));
    let outcome = drill(plan, &mut report).await;
    // Put the running server's persistence back as it was, whatever the drill's outcome.
    let restored = async {
        config_set("appendonly", &original.appendonly).await?;
        config_set("appendfsync", &original.appendfsync).await
    }
    .await;
    outcome?;
    match restored {
        Ok(()) => report.note(format!(
            "persistence set back to appendonly {}, appendfsync {} in the running server",
            original.appendonly, original.appendfsync
        )),
        Err(error) => report.note(format!("persistence could not be set back: {error}")),
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn drill(plan: &Plan, report: &mut DrillReport) -> Result<(), DrillError> {
    let env = TestEnv::new("drill-redis", support::three_healthy_vendors(), 2_000).await?;
    let window = plan.max_in_flight.to_string();
    let mut consumer = env.start_consumer("a", &["--max-in-flight", window.as_str()])?;
    let products = env.products(plan.products);
    env.publish(products.iter().copied()).await?;
    results::wait_progress(&products, plan.restart_after, Duration::from_secs(120)).await?;

    let stored_before = results::stored(&products).await?.len();
    let took = pricefront_harness::stack_script(
        &["restart", "redis"],
        &[("REDIS_APPENDONLY", "1")],
        plan.restart_limit,
    )
    .await?;
    let back_at = Instant::now();
    let stored_after = results::stored(&products).await?.len();
    report.note(format!(
        "{stored_before} results stored before the restart, {stored_after} right after it (the restart took {})",
        secs(took)
    ));
    report.check(
        stored_after >= stored_before,
        format!("the restart lost stored results: {stored_before} before, {stored_after} after"),
    );

    support::record_lost(report, &products, plan.limit, "Redis was back", back_at).await?;
    support::check_recovered(report, &mut consumer).await;
    let failed_writes = consumer
        .metric("pricefront_cache_writes_total{sink=\"redis\",outcome=\"error\"}")
        .await
        .unwrap_or(0.0);
    report.note(format!(
        "consumer metrics: failed Redis writes retried: {failed_writes}"
    ));
    let (extra_calls, extra_rounds) = support::extra_rounds(&env, products.len());
    let twice = support::compared_twice(&support::compared_counts(&env));
    report.duplicated = Some(extra_rounds);
    report.note(format!(
        "duplicates: {extra_calls} vendor calls beyond one round per product ({extra_rounds} rounds), {twice} products compared twice"
    ));
    Ok(())
}
