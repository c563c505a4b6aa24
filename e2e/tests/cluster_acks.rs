//! Every producer of the service keeps a replicated topic's promise, against a real three-node cluster
//! (`scripts/test.sh` starts it beside the stack: `KAFKA_NODES=3 dev/stack.sh`, with a bridge of its
//! own): a record acknowledged while one replica is down is still read back after the partition's
//! leader is killed. The producers: the bridge's (what the edge publishes through), the consumer's
//! dead-letter producer and the harness's.

use std::time::Duration;

use clap::Parser as _;
use pricefront_consumer::intake::clients::dead_letter_producer_config;
use pricefront_consumer::process::settings::Settings;
use pricefront_harness::topic::read_to_end;
use pricefront_harness::Cluster;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

const LIMIT: Duration = Duration::from_secs(120);

/// Waits (bounded) until partition 0 of `topic` satisfies `done` (its leader, its in-sync replicas).
async fn wait_for(cluster: &Cluster, topic: &str, what: &str, done: impl Fn(i32, &[i32]) -> bool) {
    cluster
        .wait_for(topic, what, LIMIT, |parts| {
            parts.first().is_some_and(|p| done(p.leader, &p.isr))
        })
        .await
        .unwrap();
}

async fn send(producer: &FutureProducer, topic: &str, key: &str) {
    producer
        .send(
            FutureRecord::to(topic).key(key).payload("{}").partition(0),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(error, _)| error)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_acknowledged_with_a_replica_down_survives_its_leaders_death_whoever_produced_it()
{
    let cluster = Cluster::from_env().unwrap();
    let brokers = cluster.brokers.clone();
    let topic = format!("acks-{}", uuid::Uuid::new_v4());
    // One partition on all three nodes, two of which must have a record before it is acknowledged.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    for result in admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .unwrap()
    {
        result.unwrap();
    }
    wait_for(&cluster, &topic, "all three in sync", |l, isr| {
        l > 0 && isr.len() == 3
    })
    .await;
    let partition = cluster.partitions(&topic).await.unwrap().remove(0);
    let (leader, replicas) = (partition.leader, partition.replicas);
    let follower = *replicas.iter().find(|&&r| r != leader).unwrap();

    // A follower down: the records are acknowledged by the two others.
    cluster.node("stop", follower).await.unwrap();
    wait_for(&cluster, &topic, "the ISR shrinks", |_, isr| isr.len() == 2).await;
    let harness = pricefront_harness::direct_producer_to(&brokers).unwrap();
    send(&harness, &topic, "harness").await;
    let settings =
        Settings::try_parse_from(["pricefront-consumer", "--brokers", &brokers]).unwrap();
    let dead_letters: FutureProducer = dead_letter_producer_config(&settings).create().unwrap();
    assert_eq!(
        dead_letter_producer_config(&settings).get("acks"),
        Some("all")
    );
    send(&dead_letters, &topic, "dead-letter").await;
    let bridge = reqwest::Client::new()
        .post(format!("{}/topics/{topic}", cluster.bridge_url))
        .header("Content-Type", "application/vnd.kafka.json.v2+json")
        .body(r#"{"records":[{"key":"bridge","value":{},"partition":0}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bridge.status(), 200, "{}", bridge.text().await.unwrap());

    // The follower back in sync, then the leader killed: a new leader from the others has every record.
    cluster.node("start", follower).await.unwrap();
    wait_for(&cluster, &topic, "the follower back in sync", |_, isr| {
        isr.len() == 3
    })
    .await;
    cluster.node("kill", leader).await.unwrap();
    wait_for(&cluster, &topic, "a new leader", |l, _| {
        l > 0 && l != leader
    })
    .await;
    // Read back from the new leader (a read right after the election may meet stale metadata: again).
    let deadline = tokio::time::Instant::now() + LIMIT;
    let keys = loop {
        let (brokers, topic) = (brokers.clone(), topic.clone());
        let read = tokio::task::spawn_blocking(move || {
            read_to_end(&brokers, &topic, Duration::from_secs(20))
        })
        .await
        .unwrap();
        let keys: Vec<String> = read
            .iter()
            .flatten()
            .filter_map(|r| r.key.as_deref())
            // The bridge's JSON embedded format writes its key as JSON: "bridge", quoted.
            .map(|k| String::from_utf8_lossy(k).trim_matches('"').to_owned())
            .collect();
        if keys.len() >= 3 || tokio::time::Instant::now() > deadline {
            break keys;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let mut keys = keys;
    keys.sort();
    cluster.node("start", leader).await.unwrap();
    assert_eq!(keys, ["bridge", "dead-letter", "harness"]);
}
