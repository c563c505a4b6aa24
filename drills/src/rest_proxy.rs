//! Drill 6: stop and restart the Kafka REST proxy under load (the edge should answer 503 fast while it is
//! away and 202 again once it is back).
//!
//! It is reported as not run where there is no REST proxy: the stack's Strimzi Kafka Bridge cannot be had
//! on every machine (see the README), and nothing stands in for it. The drill is never faked.

use crate::support;
use crate::{DrillError, DrillReport};

const NAME: &str = "REST proxy stop/restart";
const FAULT: &str = "`dev/stack.sh stop bridge`, then `start bridge`, under misses at the edge";

/// Runs the drill: reports it as not run, with the reason (no REST proxy here, or, where one runs, that
/// this drill has not been written yet, as it could not be tried on the machines it was written on).
pub async fn run() -> Result<DrillReport, DrillError> {
    let state = std::env::var("PF_STATE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| pricefront_harness::repo_path(".run"));
    let unavailable = std::fs::read_to_string(state.join("bridge.unavailable")).ok();
    let reachable = matches!(
        support::status_of(&format!("{}/ready", pricefront_harness::bridge_url())).await,
        Ok(200..=299)
    );
    let reason = match (reachable, unavailable) {
        (false, Some(why)) => format!(
            "no REST proxy: the Strimzi Kafka Bridge cannot be had on this machine ({}), and nothing stands in for it",
            why.trim().trim_end_matches("->").trim()
        ),
        (false, None) => format!(
            "no REST proxy: nothing answers at {}/ready (BRIDGE_URL)",
            pricefront_harness::bridge_url()
        ),
        (true, _) => "a REST proxy answers, but this drill is not written yet: it could not be tried where it was written (no REST proxy there)".into(),
    };
    Ok(DrillReport::not_run(NAME, FAULT, reason))
}
