//! Every producer of the service keeps a replicated topic's promise, against a real three-node cluster
//! (`scripts/test.sh` starts it beside the stack: `KAFKA_NODES=3 dev/stack.sh`, with a bridge of its
//! own): a record acknowledged while one replica is down is still read back after the partition's
//! leader is killed. The producers: the bridge's (what the edge publishes through), the consumer's
//! dead-letter producer and the harness's.

use std::time::Duration;

use clap::Parser as _;
use pricefront_consumer::clients::dead_letter_producer_config;
use pricefront_consumer::config::Settings;
use pricefront_harness::stack_script;
use pricefront_harness::topic::read_to_end;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

const LIMIT: Duration = Duration::from_secs(120);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test.sh"))
}

/// The settings that reach the cluster's `dev/stack.sh` (`NAME=value` pairs).
fn stack_env() -> Vec<(String, String)> {
    env("CLUSTER_STACK_ENV")
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn stack(args: &[&str]) {
    let pairs = stack_env();
    let env: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    stack_script(args, &env, LIMIT).await.unwrap();
}

/// Partition 0's leader, replicas and in-sync replicas (node ids; the leader -1 while there is none).
fn partition(brokers: &str, topic: &str) -> (i32, Vec<i32>, Vec<i32>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partition = &metadata.topics()[0].partitions()[0];
    (
        partition.leader(),
        partition.replicas().to_vec(),
        partition.isr().to_vec(),
    )
}

/// Waits (bounded) until partition 0 satisfies `done`.
async fn wait_for(brokers: &str, topic: &str, what: &str, done: impl Fn(i32, &[i32]) -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let (leader, _, isr) = partition(brokers, topic);
        if done(leader, &isr) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: never (leader {leader}, isr {isr:?})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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
    let brokers = env("CLUSTER_KAFKA_BROKERS");
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
    wait_for(&brokers, &topic, "all three in sync", |l, isr| {
        l > 0 && isr.len() == 3
    })
    .await;
    let (leader, replicas, _) = partition(&brokers, &topic);
    let follower = *replicas.iter().find(|&&r| r != leader).unwrap();

    // A follower down: the records are acknowledged by the two others.
    stack(&["stop", &format!("kafka-{follower}")]).await;
    wait_for(&brokers, &topic, "the ISR shrinks", |_, isr| isr.len() == 2).await;
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
        .post(format!("{}/topics/{topic}", env("CLUSTER_BRIDGE_URL")))
        .header("Content-Type", "application/vnd.kafka.json.v2+json")
        .body(r#"{"records":[{"key":"bridge","value":{},"partition":0}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bridge.status(), 200, "{}", bridge.text().await.unwrap());

    // The follower back in sync, then the leader killed: a new leader from the others has every record.
    stack(&["start", &format!("kafka-{follower}")]).await;
    wait_for(&brokers, &topic, "the follower back in sync", |_, isr| {
        isr.len() == 3
    })
    .await;
    stack(&["kill", &format!("kafka-{leader}")]).await;
    wait_for(&brokers, &topic, "a new leader", |l, _| {
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
    stack(&["start", &format!("kafka-{leader}")]).await;
    assert_eq!(keys, ["bridge", "dead-letter", "harness"]);
}
