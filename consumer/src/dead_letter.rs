//! The dead-letter topic: where messages that cannot be parsed go, with the reason in a header, so that
//! they never stop their partition and are never lost.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Header carrying why the message was dead-lettered.
pub const ERROR_HEADER: &str = "pricefront-error";
/// Headers carrying where the message came from.
pub const ORIGIN_HEADERS: [&str; 3] = [
    "pricefront-original-topic",
    "pricefront-original-partition",
    "pricefront-original-offset",
];

/// A message that could not be processed, and where it came from.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    /// The original topic.
    pub topic: &'a str,
    /// The original partition.
    pub partition: i32,
    /// The original offset.
    pub offset: i64,
    /// The original key.
    pub key: Option<&'a [u8]>,
    /// The original payload, unchanged.
    pub payload: Option<&'a [u8]>,
    /// Why it could not be processed.
    pub error: String,
}

/// Sends dead letters to one topic.
#[derive(Clone)]
pub struct DeadLetterQueue {
    producer: FutureProducer,
    topic: String,
}

impl DeadLetterQueue {
    /// A queue writing to `topic` through `producer`.
    pub fn new(producer: FutureProducer, topic: String) -> Self {
        Self { producer, topic }
    }

    /// Writes `letter`, retrying with capped, jittered exponential backoff until the broker has it: its
    /// offset is committed only after.
    pub async fn send_until_delivered(&self, letter: &DeadLetter<'_>) {
        use backon::{ExponentialBuilder, Retryable};
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .without_max_times();
        let delivered = (|| self.send(letter))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .notify(|error, delay| {
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "dead-letter write failed")
            })
            .await;
        debug_assert!(delivered.is_ok(), "retries never run out");
    }

    /// Writes `letter` and waits until the broker has it.
    pub async fn send(&self, letter: &DeadLetter<'_>) -> Result<(), rdkafka::error::KafkaError> {
        let partition = letter.partition.to_string();
        let offset = letter.offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: ERROR_HEADER,
                value: Some(letter.error.as_str()),
            })
            .insert(Header {
                key: ORIGIN_HEADERS[0],
                value: Some(letter.topic),
            })
            .insert(Header {
                key: ORIGIN_HEADERS[1],
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: ORIGIN_HEADERS[2],
                value: Some(offset.as_str()),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = letter.key {
            record = record.key(key);
        }
        if let Some(payload) = letter.payload {
            record = record.payload(payload);
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(error, _)| error)
    }
}
