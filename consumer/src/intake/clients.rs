//! The Kafka clients' settings: each client gets only its own.
//!
//! The consumer and the dead-letter producer share the connection settings (`--kafka-option`: security,
//! timeouts of the connection, ...). A setting that only one kind of client reads goes only to that
//! client: given with `--consumer-option` / `--producer-option`, or with `--kafka-option` when its key is
//! a known consumer-only or producer-only librdkafka property (e.g. `max.poll.interval.ms`). Otherwise
//! librdkafka warns about each (`CONFWARN ... consumer property ... ignored by this producer`).

use rdkafka::config::ClientConfig;

use crate::process::settings::Settings;

/// librdkafka properties only a consumer reads (its `CONFIGURATION.md`, marked `C`).
pub const CONSUMER_ONLY: &[&str] = &[
    "group.id",
    "group.instance.id",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "group.protocol.type",
    "group.protocol",
    "group.remote.assignor",
    "coordinator.query.interval.ms",
    "max.poll.interval.ms",
    "enable.auto.commit",
    "auto.commit.enable",
    "auto.commit.interval.ms",
    "enable.auto.offset.store",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "fetch.wait.max.ms",
    "fetch.queue.backoff.ms",
    "fetch.message.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.max.bytes",
    "fetch.min.bytes",
    "fetch.error.backoff.ms",
    "offset.store.method",
    "offset.store.path",
    "offset.store.sync.interval.ms",
    "isolation.level",
    "enable.partition.eof",
    "check.crcs",
    "auto.offset.reset",
    "consume.callback.max.messages",
];

/// librdkafka properties only a producer reads (its `CONFIGURATION.md`, marked `P`).
pub const PRODUCER_ONLY: &[&str] = &[
    "transactional.id",
    "transaction.timeout.ms",
    "enable.idempotence",
    "enable.gapless.guarantee",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.ms",
    "linger.ms",
    "message.send.max.retries",
    "retries",
    "retry.backoff.ms",
    "queue.buffering.backpressure.threshold",
    "compression.codec",
    "compression.type",
    "compression.level",
    "batch.num.messages",
    "batch.size",
    "delivery.report.only.error",
    "sticky.partitioning.linger.ms",
    "request.required.acks",
    "acks",
    "request.timeout.ms",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "queuing.strategy",
    "produce.offset.report",
    "partitioner",
];

/// Which clients a `--kafka-option` key goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Both the consumer and the producer.
    Both,
    /// Only the consumer.
    Consumer,
    /// Only the producer.
    Producer,
}

/// Which clients read the librdkafka property `key`.
pub fn audience(key: &str) -> Audience {
    if CONSUMER_ONLY.contains(&key) {
        Audience::Consumer
    } else if PRODUCER_ONLY.contains(&key) {
        Audience::Producer
    } else {
        Audience::Both
    }
}

/// How long the group waits for a silent member before giving its partitions to the others, unless
/// the options say otherwise: 6 s, the broker's smallest by default (`group.min.session.timeout.ms`;
/// librdkafka's default is 45 s), so that a survivor takes a crashed member's partitions over in under
/// 15 s (the kill -9 drill measures it).
pub const DEFAULT_SESSION_TIMEOUT_MS: &str = "6000";

/// The partition assignment strategy of the classic protocol, unless the options say otherwise.
pub const DEFAULT_ASSIGNMENT_STRATEGY: &str = "cooperative-sticky";

/// The heartbeat that goes with [`DEFAULT_SESSION_TIMEOUT_MS`]: a third of it, so that two heartbeats
/// can be lost before a live member is taken for dead.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: &str = "2000";

/// The most prefetched message data librdkafka keeps, unless the options say otherwise, is sized to the
/// window (four windows of requests) within these bounds, in KiB, instead of its 64 MiB: the lower one
/// leaves room for a fetch of the largest message (`message.max.bytes`, 1 MB by default).
pub const QUEUED_MAX_KBYTES: (u64, u64) = (2048, 16384);

/// How long librdkafka waits before fetching a partition again once its prefetch is full, unless the
/// options say otherwise (`fetch.queue.backoff.ms`, 1 s by default): a prefetch sized to a few windows
/// drains well within a second, and the window then ran dry until the next fetch (the fill benchmark
/// at window 256: 51% of the ideal, 72% with this). Checking the queue every 10 ms cost no measurable
/// CPU there.
pub const DEFAULT_FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// The fewest prefetched messages per partition librdkafka aims at, however small the window.
const MIN_QUEUED_MESSAGES: u64 = 32;

/// About how many bytes one request takes in a fetch (the message, its key and the record overhead).
const APPROX_REQUEST_BYTES: u64 = 256;

/// The consumer's client settings: the shared ones, the consumer's own, and how it commits.
pub fn consumer_config(settings: &Settings) -> ClientConfig {
    let mut config = shared_config(settings, Audience::Consumer);
    let shared = config.clone();
    // What the options set `key` to: a `--consumer-option` over a `--kafka-option`, the last one given.
    let chosen = |key: &str| {
        settings
            .consumer_options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .or_else(|| shared.get(key))
    };
    let given = |key: &str| chosen(key).is_some();
    // A short prefetch: by default librdkafka queues up to 100,000 messages per partition and fetches
    // up to 1 MiB per partition at once, so after a takeover the new partition's messages waited behind
    // thousands of the others (the kill -9 drill: 29 s from the kill to the first result of the dead
    // member's partitions). About two windows per partition keeps the window fed, fetched again as
    // soon as it runs low ([`DEFAULT_FETCH_QUEUE_BACKOFF_MS`]). Small windows get small fetches too: the
    // partitions a member already held are fetched again on a takeover as fast as the new ones, so a
    // new partition's first request waits behind one fetch of each of them.
    let window = u64::from(settings.max_in_flight);
    if !given("queued.min.messages") {
        config.set(
            "queued.min.messages",
            (2 * window).max(MIN_QUEUED_MESSAGES).to_string(),
        );
    }
    if !given("max.partition.fetch.bytes") {
        // A larger record still comes whole: the broker returns at least one record per fetch.
        let bytes = (2 * window * APPROX_REQUEST_BYTES).clamp(4 << 10, 1 << 20);
        config.set("max.partition.fetch.bytes", bytes.to_string());
    }
    if !given("queued.max.messages.kbytes") {
        let (low, high) = QUEUED_MAX_KBYTES;
        let kbytes = (4 * window * APPROX_REQUEST_BYTES / 1024).clamp(low, high);
        config.set("queued.max.messages.kbytes", kbytes.to_string());
    }
    if !given("fetch.queue.backoff.ms") {
        config.set("fetch.queue.backoff.ms", DEFAULT_FETCH_QUEUE_BACKOFF_MS);
    }
    // Either both defaults or neither: a heartbeat must stay well under the session it keeps alive.
    // Neither under the consumer protocol of KIP-848, where the broker sets both and librdkafka refuses
    // a client that does.
    if !is_consumer_protocol(chosen("group.protocol"))
        && !given("session.timeout.ms")
        && !given("heartbeat.interval.ms")
    {
        config
            .set("session.timeout.ms", DEFAULT_SESSION_TIMEOUT_MS)
            .set("heartbeat.interval.ms", DEFAULT_HEARTBEAT_INTERVAL_MS);
    }
    // Incremental rebalances unless said otherwise: a member that joins or leaves moves only the
    // partitions that change hands, and the others keep working (BENCHMARKS.md, benchmark 7, measures it
    // against KIP-848). Not under KIP-848, whose assignor is the broker's (`group.remote.assignor`).
    if !is_consumer_protocol(chosen("group.protocol")) && !given("partition.assignment.strategy") {
        config.set("partition.assignment.strategy", DEFAULT_ASSIGNMENT_STRATEGY);
    }
    config
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            settings.commit_interval_ms.to_string(),
        )
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000");
    for (key, value) in &settings.consumer_options {
        config.set(key, value);
    }
    config
}

/// Whether `group.protocol` (its value, if set) chooses the consumer group protocol of KIP-848
/// (`consumer`). Under it the group's session and heartbeat are the broker's
/// (`group.consumer.session.timeout.ms`, `group.consumer.heartbeat.interval.ms`), the assignor too
/// (`group.remote.assignor` instead of `partition.assignment.strategy`), and librdkafka (2.12) refuses
/// to create a consumer that sets `session.timeout.ms` or `heartbeat.interval.ms`: "not supported for
/// `group.protocol=consumer`. It is defined broker side". librdkafka reads the value regardless of case.
pub fn is_consumer_protocol(group_protocol: Option<&str>) -> bool {
    group_protocol.is_some_and(|value| value.eq_ignore_ascii_case("consumer"))
}

/// The dead-letter producer's client settings: the shared ones and the producer's own.
pub fn dead_letter_producer_config(settings: &Settings) -> ClientConfig {
    let mut config = shared_config(settings, Audience::Producer);
    // A dead letter is acknowledged once every in-sync replica has it (min.insync.replicas at least)
    // and never written twice by a retry; idempotence requires acks=all, said here all the same.
    config.set("acks", "all");
    config.set("enable.idempotence", "true");
    for (key, value) in &settings.producer_options {
        config.set(key, value);
    }
    config
}

/// The bootstrap servers and the `--kafka-option`s that `client` reads.
fn shared_config(settings: &Settings, client: Audience) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    for (key, value) in &settings.kafka_options {
        let audience = audience(key);
        if audience == Audience::Both || audience == client {
            config.set(key, value);
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dead_letter_producer_gets_no_consumer_only_options() {
        let settings = Settings::from_flags([
            "c",
            "--kafka-option",
            "max.poll.interval.ms=7000",
            "--kafka-option",
            "session.timeout.ms=6000",
            "--kafka-option",
            "security.protocol=plaintext",
        ])
        .unwrap();
        let producer = dead_letter_producer_config(&settings);
        assert_eq!(producer.get("max.poll.interval.ms"), None);
        assert_eq!(producer.get("session.timeout.ms"), None);
        assert_eq!(producer.get("security.protocol"), Some("plaintext"));
        let consumer = consumer_config(&settings);
        assert_eq!(consumer.get("max.poll.interval.ms"), Some("7000"));
        assert_eq!(consumer.get("session.timeout.ms"), Some("6000"));
        assert_eq!(consumer.get("security.protocol"), Some("plaintext"));
    }

    #[test]
    fn the_group_session_defaults_to_6_s_unless_an_option_says_otherwise() {
        let defaults = consumer_config(&Settings::from_flags(["c"]).unwrap());
        assert_eq!(defaults.get("session.timeout.ms"), Some("6000"));
        assert_eq!(defaults.get("heartbeat.interval.ms"), Some("2000"));
        let given = consumer_config(
            &Settings::from_flags(["c", "--kafka-option", "session.timeout.ms=30000"]).unwrap(),
        );
        assert_eq!(given.get("session.timeout.ms"), Some("30000"));
        assert_eq!(given.get("heartbeat.interval.ms"), None);
    }

    #[test]
    fn the_consumer_protocol_of_kip_848_gets_no_session_or_heartbeat_default() {
        for flags in [
            ["c", "--consumer-option", "group.protocol=consumer"],
            ["c", "--kafka-option", "group.protocol=consumer"],
            ["c", "--consumer-option", "group.protocol=CONSUMER"],
        ] {
            let config = consumer_config(&Settings::from_flags(flags).unwrap());
            assert!(
                is_consumer_protocol(config.get("group.protocol")),
                "{flags:?}"
            );
            assert_eq!(config.get("session.timeout.ms"), None, "{flags:?}");
            assert_eq!(config.get("heartbeat.interval.ms"), None, "{flags:?}");
            assert_eq!(config.get("partition.assignment.strategy"), None);
        }
        // The classic protocol, said or not, keeps the 6 s session; a later option wins over an earlier.
        for flags in [
            vec!["c", "--consumer-option", "group.protocol=classic"],
            vec![
                "c",
                "--kafka-option",
                "group.protocol=consumer",
                "--consumer-option",
                "group.protocol=classic",
            ],
        ] {
            let config = consumer_config(&Settings::from_flags(flags.clone()).unwrap());
            assert_eq!(config.get("session.timeout.ms"), Some("6000"), "{flags:?}");
            assert_eq!(
                config.get("partition.assignment.strategy"),
                Some("cooperative-sticky"),
                "{flags:?}"
            );
            assert_eq!(
                config.get("heartbeat.interval.ms"),
                Some("2000"),
                "{flags:?}"
            );
        }
        assert!(!is_consumer_protocol(None));
        assert!(!is_consumer_protocol(Some("classic")));
    }

    #[test]
    fn the_prefetch_is_sized_to_the_window_unless_an_option_says_otherwise() {
        let defaults =
            consumer_config(&Settings::from_flags(["c", "--max-in-flight", "1024"]).unwrap());
        assert_eq!(defaults.get("queued.min.messages"), Some("2048"));
        assert_eq!(defaults.get("max.partition.fetch.bytes"), Some("524288"));
        assert_eq!(defaults.get("queued.max.messages.kbytes"), Some("2048"));
        let huge =
            consumer_config(&Settings::from_flags(["c", "--max-in-flight", "65536"]).unwrap());
        assert_eq!(huge.get("queued.max.messages.kbytes"), Some("16384"));
        let small = consumer_config(&Settings::from_flags(["c", "--max-in-flight", "16"]).unwrap());
        assert_eq!(small.get("queued.min.messages"), Some("32"));
        assert_eq!(small.get("max.partition.fetch.bytes"), Some("8192"));
        let tiny = consumer_config(&Settings::from_flags(["c", "--max-in-flight", "1"]).unwrap());
        assert_eq!(tiny.get("max.partition.fetch.bytes"), Some("4096"));
        let given = consumer_config(
            &Settings::from_flags(["c", "--kafka-option", "queued.min.messages=5"]).unwrap(),
        );
        assert_eq!(given.get("queued.min.messages"), Some("5"));
    }

    #[test]
    fn a_full_prefetch_is_fetched_again_within_10_ms_unless_an_option_says_otherwise() {
        let defaults = consumer_config(&Settings::from_flags(["c"]).unwrap());
        assert_eq!(defaults.get("fetch.queue.backoff.ms"), Some("10"));
        let given = consumer_config(
            &Settings::from_flags(["c", "--consumer-option", "fetch.queue.backoff.ms=500"])
                .unwrap(),
        );
        assert_eq!(given.get("fetch.queue.backoff.ms"), Some("500"));
    }

    #[test]
    fn client_specific_options_reach_only_their_client() {
        let settings = Settings::from_flags([
            "c",
            "--kafka-option",
            "linger.ms=5",
            "--consumer-option",
            "fetch.min.bytes=10",
            "--producer-option",
            "compression.type=lz4",
        ])
        .unwrap();
        let (consumer, producer) = (
            consumer_config(&settings),
            dead_letter_producer_config(&settings),
        );
        assert_eq!(consumer.get("linger.ms"), None, "producer-only");
        assert_eq!(producer.get("linger.ms"), Some("5"));
        assert_eq!(consumer.get("fetch.min.bytes"), Some("10"));
        assert_eq!(producer.get("fetch.min.bytes"), None);
        assert_eq!(producer.get("compression.type"), Some("lz4"));
        assert_eq!(consumer.get("compression.type"), None);
    }
}
