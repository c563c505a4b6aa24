//! The harness cleans up after each run: a dropped `TestEnv` leaves neither its topics nor its consumer
//! group on the broker (thousands of partitions left by repeated runs slowed the broker's controller).
//! Start the stack first: `dev/stack.sh up` (`make test` does).

use std::time::Duration;

use pricefront_harness::{profiles, vendor, TestEnv};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use vendor_sim::BodyShape;

const WAIT: Duration = Duration::from_secs(120);

/// The topics of the broker, and whether `group` is among its consumer groups (any state but `Dead`).
fn topics_and_group(group: &str) -> (Vec<String>, bool) {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", pricefront_harness::brokers())
        .create()
        .expect("a metadata client");
    let topics = reader
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("the broker's metadata")
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .collect();
    let groups = reader
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .expect("the broker's groups");
    let present = groups
        .groups()
        .iter()
        .any(|g| g.name() == group && g.state() != "Dead");
    (topics, present)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_test_env_leaves_no_topic_or_group_behind() {
    let new_env = |name: &'static str| {
        TestEnv::new(
            name,
            profiles([("alpha", vendor((5, 20), BodyShape::Nested))]),
            2_000,
        )
    };
    let env = new_env("clean-up").await.unwrap();
    // Another run on the same broker, still going: its topics are not the dropped one's to delete.
    let other = new_env("clean-up-other").await.unwrap();
    let (topic, dead_letters, group) = (
        env.topic.clone(),
        env.dead_letter_topic.clone(),
        env.group.clone(),
    );
    {
        // A consumer that joins the group and commits an offset, then leaves.
        let mut consumer = env.start_consumer("a", &[]).unwrap();
        let product = env.product(0);
        env.publish([product]).await.unwrap();
        env.wait_for_results(&[product], WAIT).await.unwrap();
        consumer.terminate().unwrap();
    }
    let (topics, group_present) = tokio::task::spawn_blocking({
        let group = group.clone();
        move || topics_and_group(&group)
    })
    .await
    .unwrap();
    assert!(topics.contains(&topic) && topics.contains(&dead_letters));
    assert!(group_present, "{group} formed");

    drop(env);
    let (topics, group_present) = tokio::task::spawn_blocking(move || topics_and_group(&group))
        .await
        .unwrap();
    assert!(!topics.contains(&topic), "{topic} deleted");
    assert!(!topics.contains(&dead_letters), "{dead_letters} deleted");
    assert!(!group_present, "the group deleted");
    assert!(
        topics.contains(&other.topic) && topics.contains(&other.dead_letter_topic),
        "the other run's topics are still there"
    );
}
