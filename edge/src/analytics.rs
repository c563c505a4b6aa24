//! The edge's own numbers: one Workers Analytics Engine data point per answered request, built by
//! `pricefront_core::edge_event`, never failing the request.

use pricefront_core::edge_event::DataPoint;
use worker::{AnalyticsEngineDataPointBuilder, Env};

use crate::bindings;

/// Writes `point`; without the binding, or when the runtime refuses the point, nothing is written and
/// the request is unaffected. Called in line, as Cloudflare's documentation shows: `writeDataPoint`
/// only queues the point (it returns nothing to await), so a `waitUntil` around it would cost a task,
/// a promise and the runtime's bookkeeping of it on every hit for nothing.
pub fn record(env: &Env, point: DataPoint) {
    let Some(dataset) = bindings::analytics(env) else {
        return;
    };
    let [route, event, detail] = point.blobs;
    let built = AnalyticsEngineDataPointBuilder::new()
        .indexes([point.index.as_str()])
        .blobs([route, event, detail])
        .doubles(point.doubles)
        .build();
    if let Err(error) = dataset.write_data_point(&built) {
        worker::console_warn!("analytics data point not written: {error}");
    }
}
