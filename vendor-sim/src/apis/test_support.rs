//! Helpers for the API tests: a simulator serving some routes on a loopback port, and test UPCs. Each
//! test passes the routes it needs (its API's, with the `/_sim/apis` routes: `control::beside`), so
//! that these helpers use none of the API modules.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

use crate::profile::Profiles;
use crate::simulator::Simulator;

/// A simulator with no vendors serving `routes`, on a loopback port until the test ends.
pub(crate) async fn serve(routes: Router<Arc<Simulator>>) -> (Arc<Simulator>, String) {
    serve_simulator(Simulator::new(Profiles::default()), routes).await
}

/// `simulator` serving `routes`, on a loopback port until the test ends.
pub(crate) async fn serve_simulator(
    simulator: Arc<Simulator>,
    routes: Router<Arc<Simulator>>,
) -> (Arc<Simulator>, String) {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = routes.with_state(simulator.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (simulator, format!("http://{addr}"))
}

/// The `n`th valid UPC-A of the test range.
pub(crate) fn upc(n: u64) -> String {
    super::offers::tests::gtin12(n)
}
