//! The edge's own numbers: one Workers Analytics Engine data point per answered request, built by
//! `pricefront_core::edge_event` and written after the response, never failing it.

use pricefront_core::edge_event::DataPoint;
use worker::{AnalyticsEngineDataPointBuilder, Context, Env};

/// The binding of the dataset (`[[analytics_engine_datasets]]` in wrangler.toml).
const BINDING: &str = "EDGE_EVENTS";

/// Writes `point` once the response is on its way; without the binding, or when the runtime refuses
/// the point, nothing is written and the request is unaffected.
pub fn record(env: &Env, ctx: &Context, point: DataPoint) {
    let Ok(dataset) = env.analytics_engine(BINDING) else {
        return;
    };
    ctx.wait_until(async move {
        let [route, event, detail] = point.blobs;
        let built = AnalyticsEngineDataPointBuilder::new()
            .indexes([point.index.as_str()])
            .blobs([route, event, detail])
            .doubles(point.doubles)
            .build();
        if let Err(error) = dataset.write_data_point(&built) {
            worker::console_warn!("analytics data point not written: {error}");
        }
    });
}
