//! The dead-letter topic: where messages that cannot be parsed go, with the reason in a header, so that
//! they never stop their partition and are never lost.
//!
//! A write is retried while the failure may pass (the broker away, a leader moving, a full queue). One
//! that can never succeed is not: retried forever, it would hold its message's offset, and so its
//! partition, for good. A letter too large for the dead-letter topic (its `max.message.bytes`, or the
//! producer's `message.max.bytes`) is sent summarised instead: the original's key, origin and error, and
//! the payload's first [`SUMMARY_PAYLOAD_BYTES`] bytes, with the original size and why in headers
//! (`pricefront_dead_letters_summarised_total`). A letter the topic refuses for good even so (or for
//! another permanent reason: authorization, an invalid topic or record, a policy) is logged as an error
//! with its origin and counted (`pricefront_dead_letters_dropped_total`), and its partition goes on.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::process::metrics::Metrics;
use crate::process::retry::{retry_until_done, Next, WRITE_BACKOFF};

/// Header carrying why the message was dead-lettered.
pub const ERROR_HEADER: &str = "pricefront-error";
/// Headers carrying where the message came from.
pub const ORIGIN_HEADERS: [&str; 3] = [
    "pricefront-original-topic",
    "pricefront-original-partition",
    "pricefront-original-offset",
];
/// Header of a summarised letter: the original payload's size in bytes.
pub const ORIGINAL_PAYLOAD_BYTES_HEADER: &str = "pricefront-original-payload-bytes";
/// Header of a summarised letter: why the whole letter could not be written.
pub const DEAD_LETTER_ERROR_HEADER: &str = "pricefront-dead-letter-error";
/// How much of the payload a summarised letter carries.
pub const SUMMARY_PAYLOAD_BYTES: usize = 1024;
/// How much of the key, and of the error, a summarised letter carries.
pub const SUMMARY_FIELD_BYTES: usize = 1024;

/// What a failed dead-letter write calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It may pass: retry.
    Transient,
    /// The letter is too large for the topic or the producer: a smaller one may be written.
    TooLarge,
    /// The topic refuses it for good, whatever its size.
    Permanent,
}

impl Failure {
    /// What `error`, from a write to the dead-letter topic, calls for.
    pub fn of(error: &KafkaError) -> Self {
        let KafkaError::MessageProduction(code) = error else {
            return Self::Transient;
        };
        match code {
            // librdkafka's own check against message.max.bytes and the broker's against
            // max.message.bytes both report MessageSizeTooLarge.
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge => Self::TooLarge,
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidRequiredAcks
            | RDKafkaErrorCode::UnsupportedForMessageFormat
            | RDKafkaErrorCode::PolicyViolation
            | RDKafkaErrorCode::InvalidArgument
            | RDKafkaErrorCode::Fatal => Self::Permanent,
            _ => Self::Transient,
        }
    }
}

/// How a dead letter ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Written whole.
    Whole,
    /// Too large for the topic: written summarised.
    Summarised,
    /// Refused for good, even summarised: logged as an error and counted, not written.
    Dropped,
}

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
    metrics: Arc<Metrics>,
}

impl DeadLetterQueue {
    /// A queue writing to `topic` through `producer`, counting summarised and dropped letters in
    /// `metrics`.
    pub fn new(producer: FutureProducer, topic: String, metrics: Arc<Metrics>) -> Self {
        Self {
            producer,
            topic,
            metrics,
        }
    }

    /// Writes `letter`, retrying with capped, jittered exponential backoff while the failure may pass,
    /// until the broker has it: its offset is committed only after. A letter too large for the topic is
    /// written summarised; one refused for good is logged as an error and counted (see the module).
    pub async fn send_until_delivered(&self, letter: &DeadLetter<'_>) -> Delivery {
        let error = match self.send_retrying(letter, &[]).await {
            Ok(()) => return Delivery::Whole,
            Err(error) => error,
        };
        let payload_bytes = letter.payload.map_or(0, <[u8]>::len);
        let mut last = error.to_string();
        if Failure::of(&error) == Failure::TooLarge {
            let original = payload_bytes.to_string();
            let why = format!("the whole letter was too large for the dead-letter topic: {error}");
            let headers = [
                (ORIGINAL_PAYLOAD_BYTES_HEADER, original.as_str()),
                (DEAD_LETTER_ERROR_HEADER, why.as_str()),
            ];
            // The payload's first bytes; then, should even that be too large, none.
            for payload_prefix in [SUMMARY_PAYLOAD_BYTES, 0] {
                let summary = summary(letter, payload_prefix);
                match self.send_retrying(&summary, &headers).await {
                    Ok(()) => {
                        tracing::warn!(
                            partition = letter.partition,
                            offset = letter.offset,
                            payload_bytes,
                            %error,
                            "dead letter too large for its topic: sent summarised"
                        );
                        self.metrics.dead_letters_summarised.inc();
                        return Delivery::Summarised;
                    }
                    Err(again) if Failure::of(&again) == Failure::TooLarge => {
                        last = again.to_string();
                    }
                    Err(again) => {
                        last = again.to_string();
                        break;
                    }
                }
            }
        }
        let key = letter
            .key
            .map(|k| String::from_utf8_lossy(prefix(k, SUMMARY_FIELD_BYTES)).into_owned());
        tracing::error!(
            topic = letter.topic,
            partition = letter.partition,
            offset = letter.offset,
            key,
            payload_bytes,
            reason = %letter.error,
            error = %last,
            dead_letter_topic = %self.topic,
            "the dead-letter topic refuses this letter for good: not written, its offset committed"
        );
        self.metrics.dead_letters_dropped.inc();
        Delivery::Dropped
    }

    /// Writes `letter` with `extra` headers, retrying while the failure is [`Failure::Transient`].
    async fn send_retrying(
        &self,
        letter: &DeadLetter<'_>,
        extra: &[(&str, &str)],
    ) -> Result<(), KafkaError> {
        retry_until_done(
            WRITE_BACKOFF,
            || self.send_with(letter, extra),
            |error, wait| {
                if Failure::of(error) != Failure::Transient {
                    return Next::Stop;
                }
                tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "dead-letter write failed");
                Next::Backoff
            },
        )
        .await
    }

    async fn send_with(
        &self,
        letter: &DeadLetter<'_>,
        extra: &[(&str, &str)],
    ) -> Result<(), KafkaError> {
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
        let headers = extra.iter().fold(headers, |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(*value),
            })
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

/// `letter` summarised: its key and error cut to [`SUMMARY_FIELD_BYTES`], its payload to its first
/// `payload_bytes` bytes (none when zero).
fn summary<'a>(letter: &DeadLetter<'a>, payload_bytes: usize) -> DeadLetter<'a> {
    let error = prefix(letter.error.as_bytes(), SUMMARY_FIELD_BYTES);
    DeadLetter {
        key: letter.key.map(|k| prefix(k, SUMMARY_FIELD_BYTES)),
        payload: letter
            .payload
            .map(|p| prefix(p, payload_bytes))
            .filter(|p| !p.is_empty()),
        error: String::from_utf8_lossy(error).into_owned(),
        ..letter.clone()
    }
}

fn prefix(bytes: &[u8], most: usize) -> &[u8] {
    &bytes[..bytes.len().min(most)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production(code: RDKafkaErrorCode) -> Failure {
        Failure::of(&KafkaError::MessageProduction(code))
    }

    #[test]
    fn a_letter_too_large_is_summarised_a_refusal_for_good_is_not_retried_the_rest_is() {
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidMessageSize,
            RDKafkaErrorCode::MessageBatchTooLarge,
        ] {
            assert_eq!(production(code), Failure::TooLarge, "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::ClusterAuthorizationFailed,
            RDKafkaErrorCode::InvalidTopic,
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::PolicyViolation,
        ] {
            assert_eq!(production(code), Failure::Permanent, "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
        ] {
            assert_eq!(production(code), Failure::Transient, "{code:?}");
        }
        assert_eq!(Failure::of(&KafkaError::Canceled), Failure::Transient);
    }

    #[test]
    fn a_summary_keeps_the_origin_and_the_first_bytes() {
        let payload = vec![7u8; 10_000];
        let key = vec![b'k'; 5_000];
        let letter = DeadLetter {
            topic: "t",
            partition: 1,
            offset: 9,
            key: Some(&key),
            payload: Some(&payload),
            error: "e".repeat(5_000),
        };
        let short = summary(&letter, SUMMARY_PAYLOAD_BYTES);
        assert_eq!((short.topic, short.partition, short.offset), ("t", 1, 9));
        assert_eq!(short.key.map(<[u8]>::len), Some(SUMMARY_FIELD_BYTES));
        assert_eq!(short.payload, Some(&payload[..SUMMARY_PAYLOAD_BYTES]));
        assert_eq!(short.error.len(), SUMMARY_FIELD_BYTES);
        assert_eq!(summary(&letter, 0).payload, None);
    }
}
