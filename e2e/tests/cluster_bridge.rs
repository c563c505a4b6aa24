//! The three-node cluster's bridge (started by `scripts/test.sh` with `BRIDGE_PRODUCER_SHARED=true`, the
//! bridge built with `dev/bridge-shared-producer.patch`) publishes the records of every connection through
//! one Kafka producer. Upstream builds one per connection: against three nodes, with an idempotent producer
//! id to ask for each time, that cost the bridge half a core at the cluster drills' 20 misses/s and most of
//! their publishes outlived the edge's `PUBLISH_TIMEOUT_MS` before any fault. Read from the bridge's own
//! `/metrics` (one `strimzi_bridge_kafka_producer_count` series per live producer, by `clientId`).

use pricefront_harness::{metrics, Cluster};

/// Connections held open at once, each posting one record.
const CONNECTIONS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_bridge_publishes_every_connections_records_through_one_producer() {
    let cluster = Cluster::from_env().unwrap();
    // A client each, so a connection each, all kept open (idle in their pools) until the scrape below:
    // upstream closes a connection's producer only when the connection closes.
    let clients: Vec<reqwest::Client> = (0..CONNECTIONS).map(|_| reqwest::Client::new()).collect();
    for (n, client) in clients.iter().enumerate() {
        let response = client
            .post(format!(
                "{}/topics/price-compare-requests",
                cluster.bridge_url
            ))
            .header("content-type", "application/vnd.kafka.json.v2+json")
            .body(format!(
                r#"{{"records":[{{"key":"bridge-{n}","value":{{}}}}]}}"#
            ))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
        // Written: the bridge answers each record with its partition and offset, or with an error.
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        let offset = &answer["offsets"][0];
        assert!(
            offset["offset"].is_u64() && offset.get("error_code").is_none(),
            "{body}"
        );
    }
    let page = metrics::page(cluster.bridge_management_port().unwrap())
        .await
        .unwrap();
    let producers = metrics::by_label(&page, "strimzi_bridge_kafka_producer_count", "clientId");
    assert_eq!(
        producers.len(),
        1,
        "{CONNECTIONS} connections, each with a record published, should share one producer; the bridge's \
         live producers: {:?}",
        producers.keys().collect::<Vec<_>>()
    );
    drop(clients);
}
