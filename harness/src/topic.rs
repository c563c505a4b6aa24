//! Reading what a topic holds: the records of one key, counted by tests and drills to check what was
//! published (a miss publishes once, a 202 means the record is in Kafka).

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

/// One record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key bytes.
    pub key: Option<Vec<u8>>,
    /// Its value bytes.
    pub value: Option<Vec<u8>>,
    /// Its headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl TopicRecord {
    /// The value of its first header named `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Why a topic could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// Kafka refused or failed a call.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The blocking read could not be joined.
    #[error("reading the topic: {0}")]
    Blocking(String),
    /// The end of the topic was not reached in time.
    #[error(
        "reading {topic}: stopped at {read} records, the end was not reached within {limit:?}"
    )]
    Incomplete {
        /// The topic.
        topic: String,
        /// How many records were read.
        read: usize,
        /// The bound.
        limit: Duration,
    },
}

/// Every record of `topic` whose key equals `key`, from the start of each partition to its end as of
/// now (the high watermarks read first). Blocking: call it from `spawn_blocking` in async code that
/// must not stall.
pub fn records_with_key(
    brokers: &str,
    topic: &str,
    key: &[u8],
) -> Result<Vec<TopicRecord>, TopicError> {
    Ok(read_to_end(brokers, topic, Duration::from_secs(60))?
        .into_iter()
        .filter(|r| r.key.as_deref() == Some(key))
        .collect())
}

/// How many records of `topic` carry `product` as their key (the edge's key: the bare decimal id), read
/// on a blocking thread, for async tests.
pub async fn published_for(
    topic: &str,
    product: pricefront_core::ProductId,
) -> Result<usize, TopicError> {
    let topic = topic.to_owned();
    let key = product.to_string();
    tokio::task::spawn_blocking(move || {
        records_with_key(&crate::brokers(), &topic, key.as_bytes()).map(|records| records.len())
    })
    .await
    .expect("the topic reader does not panic")
}

/// Every record of `topic` from the start of each partition to its end as of now.
pub fn read_to_end(
    brokers: &str,
    topic: &str,
    limit: Duration,
) -> Result<Vec<TopicRecord>, TopicError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("harness-reader-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut assignment = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for &partition in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        if high > low {
            ends.insert(partition, high);
            assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return Ok(records);
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + limit;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(TopicError::Incomplete {
                topic: topic.into(),
                read: records.len(),
                limit,
            });
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        let partition = message.partition();
        if ends
            .get(&partition)
            .is_some_and(|&end| message.offset() < end)
        {
            records.push(TopicRecord {
                partition,
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                headers: message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
        if ends
            .get(&partition)
            .is_some_and(|&end| message.offset() + 1 >= end)
        {
            ends.remove(&partition);
        }
    }
    Ok(records)
}

/// How many records `topic` holds (the sum over its partitions of high minus low watermark).
pub fn count_records(brokers: &str, topic: &str) -> Result<u64, TopicError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut total = 0;
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) =
            consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10))?;
        total += (high - low).max(0) as u64;
    }
    Ok(total)
}

/// The offsets `group` has committed for each partition of `topic` (partitions without one are left out).
pub fn committed_offsets(
    brokers: &str,
    group: &str,
    topic: &str,
) -> Result<std::collections::BTreeMap<i32, i64>, TopicError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut partitions = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        partitions.add_partition(topic, partition.id());
    }
    let committed = consumer.committed_offsets(partitions, Duration::from_secs(10))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// How many records of `topic` (on the Kafka at `brokers`) each product id (the key, a bare decimal id)
/// has, read to the end on a blocking thread, for async callers; records whose key is not an id are
/// left out.
pub async fn records_per_product(
    brokers: &str,
    topic: &str,
) -> Result<std::collections::HashMap<u64, u64>, TopicError> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    let records =
        tokio::task::spawn_blocking(move || read_to_end(&brokers, &topic, Duration::from_secs(60)))
            .await
            .map_err(|e| TopicError::Blocking(e.to_string()))??;
    let mut counts = std::collections::HashMap::new();
    for record in records {
        let id = record
            .key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.parse::<u64>().ok());
        if let Some(id) = id {
            *counts.entry(id).or_default() += 1;
        }
    }
    Ok(counts)
}
