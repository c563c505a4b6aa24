//! The dead-letter queue against the real broker: a letter its topic can never take (larger than the
//! topic's `max.message.bytes`, or than the producer's `message.max.bytes`) is not retried forever,
//! which would hold its message's offset, and so its partition, for good.
//! Start the stack first: `dev/stack.sh up` (`make test` does).

use std::time::Duration;

use pricefront_consumer::intake::dead_letter::{
    DeadLetter, DeadLetterQueue, Delivery, DEAD_LETTER_ERROR_HEADER, ERROR_HEADER,
    ORIGINAL_PAYLOAD_BYTES_HEADER, ORIGIN_HEADERS,
};
use pricefront_consumer::process::metrics::Metrics;
use pricefront_harness::stack::{brokers, delete_run_leftovers};
use pricefront_harness::topic::read_to_end;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

/// The dead-letter topic's `max.message.bytes`.
const TOPIC_MAX_BYTES: usize = 4_096;
/// Longer than any retry of a write the broker refuses for a while, far shorter than forever.
const SEND_LIMIT: Duration = Duration::from_secs(60);

async fn small_topic() -> String {
    let topic = format!("dlq-small-{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let max = TOPIC_MAX_BYTES.to_string();
    let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set("max.message.bytes", &max);
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics([&new], &options).await.unwrap() {
        result.unwrap();
    }
    topic
}

fn producer() -> FutureProducer {
    // As the consumer's (clients::dead_letter_producer_config).
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("enable.idempotence", "true")
        .create()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_too_large_for_its_topic_is_sent_summarised_and_the_partition_goes_on() {
    let topic = small_topic().await;
    let metrics = Metrics::new();
    let queue = DeadLetterQueue::new(producer(), topic.clone(), metrics.clone());
    // Refused by the broker (over the topic's limit), then by librdkafka itself (over the producer's
    // message.max.bytes, 1,000,000).
    let payloads = [vec![b'x'; 64 * 1024], vec![b'y'; 2 * 1024 * 1024]];
    for (n, payload) in payloads.iter().enumerate() {
        let key = format!("key-{n}");
        let letter = DeadLetter {
            topic: "price-compare-requests",
            partition: 2,
            offset: 40 + n as i64,
            key: Some(key.as_bytes()),
            payload: Some(payload),
            error: "not a price request: expected value at line 1 column 1".into(),
        };
        let sent = tokio::time::timeout(SEND_LIMIT, queue.send_until_delivered(&letter)).await;
        assert!(
            sent.is_ok(),
            "a dead letter of {} bytes was still being retried after {SEND_LIMIT:?}: its partition stalls",
            payload.len()
        );
        assert_eq!(sent.unwrap(), Delivery::Summarised);
    }
    assert_eq!(metrics.dead_letters_summarised.get(), 2);
    assert_eq!(metrics.dead_letters_dropped.get(), 0);
    let records = read_to_end(&brokers(), &topic, Duration::from_secs(60)).unwrap();
    assert_eq!(records.len(), 2, "one summarised letter per message");
    for (n, (record, payload)) in records.iter().zip(&payloads).enumerate() {
        assert_eq!(record.key.as_deref(), Some(format!("key-{n}").as_bytes()));
        assert_eq!(
            record.header(ERROR_HEADER).as_deref(),
            Some("not a price request: expected value at line 1 column 1")
        );
        assert_eq!(
            record.header(ORIGIN_HEADERS[0]).as_deref(),
            Some("price-compare-requests")
        );
        assert_eq!(record.header(ORIGIN_HEADERS[1]).as_deref(), Some("2"));
        assert_eq!(record.header(ORIGIN_HEADERS[2]), Some((40 + n).to_string()));
        let size = payload.len().to_string();
        assert_eq!(record.header(ORIGINAL_PAYLOAD_BYTES_HEADER), Some(size));
        assert!(
            record
                .header(DEAD_LETTER_ERROR_HEADER)
                .is_some_and(|e| e.to_lowercase().contains("too large")),
            "{:?}",
            record.headers
        );
        let value = record.value.as_deref().unwrap_or_default();
        assert!(
            !value.is_empty() && value.len() < TOPIC_MAX_BYTES && payload.starts_with(value),
            "the summary carries the payload's first bytes: {} bytes",
            value.len()
        );
    }
    delete_run_leftovers(&brokers(), &[topic], &[], Duration::from_secs(10)).unwrap();
}
