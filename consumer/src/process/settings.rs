//! The consumer's settings: every one a flag with an environment-variable twin (`--help` lists them).

use std::path::PathBuf;

use clap::Parser;
use pricefront_core::FreshnessPolicy;

use crate::process::telemetry::LogFormat;

/// Consumes price-compare requests from Kafka, asks every configured vendor concurrently, and stores
/// the aggregated comparison in Redis. Offsets are committed only once results are stored.
#[derive(Debug, Clone, Parser)]
#[command(name = "pricefront-consumer", version, about, long_about = None, args_override_self = true)]
pub struct Settings {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,

    /// The topic of comparison requests.
    #[arg(long, env = "REQUEST_TOPIC", default_value = pricefront_core::REQUEST_TOPIC)]
    pub topic: String,

    /// The dead-letter topic for messages that cannot be parsed.
    #[arg(long, env = "DEAD_LETTER_TOPIC", default_value = pricefront_core::DEAD_LETTER_TOPIC)]
    pub dead_letter_topic: String,

    /// The consumer group; processes of one group split the partitions between them.
    #[arg(
        long,
        env = "CONSUMER_GROUP",
        default_value = "price-compare-consumer-group"
    )]
    pub group_id: String,

    /// Extra librdkafka settings for both Kafka clients (the consumer and the dead-letter producer), as
    /// KEY=VALUE, repeatable (e.g. security.protocol=SASL_SSL). A known consumer-only key (e.g.
    /// max.poll.interval.ms) reaches only the consumer, a known producer-only one (e.g. linger.ms) only
    /// the producer.
    #[arg(long = "kafka-option", env = "KAFKA_OPTIONS", value_delimiter = ',', value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,

    /// Extra librdkafka settings for the consumer only, as KEY=VALUE, repeatable.
    #[arg(long = "consumer-option", env = "KAFKA_CONSUMER_OPTIONS", value_delimiter = ',', value_parser = parse_key_value)]
    pub consumer_options: Vec<(String, String)>,

    /// Extra librdkafka settings for the dead-letter producer only, as KEY=VALUE, repeatable.
    #[arg(long = "producer-option", env = "KAFKA_PRODUCER_OPTIONS", value_delimiter = ',', value_parser = parse_key_value)]
    pub producer_options: Vec<(String, String)>,

    /// The Redis cache (`redis://host:port/db`).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6390/0")]
    pub redis_url: String,

    /// Timeout of one Redis command, in ms.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 2_000)]
    pub redis_timeout_ms: u64,

    /// The vendors file (TOML), or a folder of them: whom to ask and how (docs/vendors.md; ready
    /// profiles of real price APIs in config/vendors/).
    #[arg(long, env = "VENDORS_FILE", default_value = "config/vendors.toml")]
    pub vendors: PathBuf,

    /// The most messages worked on at once by this process.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_in_flight: u32,

    /// Threads of the async runtime. 1 (the default) runs the pipeline on one thread, which measured
    /// cheapest per comparison (no wake-ups across threads); librdkafka runs its own threads besides.
    #[arg(long, env = "RUNTIME_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub runtime_threads: u16,

    /// The overall deadline for one vendor, retries included, in ms.
    #[arg(long, env = "VENDOR_DEADLINE_MS", default_value_t = 5_000)]
    pub vendor_deadline_ms: u64,

    /// The first retry delay for a vendor, in ms (exponential, jittered).
    #[arg(long, env = "VENDOR_BACKOFF_MS", default_value_t = 100)]
    pub vendor_backoff_ms: u64,

    /// The largest vendor body read, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// The longest a partial result stays fresh, in ms.
    #[arg(long, env = "PARTIAL_FRESH_MS", default_value_t = 60_000)]
    pub partial_fresh_ms: u64,

    /// How long a result where every vendor failed stays fresh, in ms (negative caching).
    #[arg(long, env = "NEGATIVE_FRESH_MS", default_value_t = 10_000)]
    pub negative_fresh_ms: u64,

    /// How long past fresh-until a result may be served stale, in ms.
    #[arg(long, env = "STALE_GRACE_MS", default_value_t = 300_000)]
    pub stale_grace_ms: u64,

    /// How often stored offsets are committed, in ms.
    #[arg(long, env = "COMMIT_INTERVAL_MS", default_value_t = 1_000)]
    pub commit_interval_ms: u64,

    /// On SIGTERM/SIGINT, how long in-flight work may take to finish, in ms.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,

    /// Where to serve /metrics, /healthz and /readyz (port 0: any free port).
    #[arg(long, env = "METRICS_LISTEN", default_value = "127.0.0.1:9464")]
    pub metrics_listen: std::net::SocketAddr,

    /// The edge's base URL: when set, every result is also PUT to its fill endpoint, and offsets are
    /// committed only once both Redis and the edge have it.
    #[arg(long, env = "FILL_URL")]
    pub fill_url: Option<String>,

    /// The bearer token of the edge's fill endpoint (the Worker's FILL_TOKEN secret).
    #[arg(
        long,
        env = "FILL_TOKEN",
        hide_env_values = true,
        requires = "fill_url"
    )]
    pub fill_token: Option<String>,

    /// How messages of one partition are worked on: `concurrent` (many at once, the default) or
    /// `sequential` (one at a time per partition, the classic way; for comparison in benchmarks).
    #[arg(long, env = "PROCESSING_MODE", value_enum, default_value_t = ProcessingMode::Concurrent)]
    pub mode: ProcessingMode,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How messages of one partition are worked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProcessingMode {
    /// Up to the in-flight window at once, whatever their partition.
    Concurrent,
    /// One message at a time per partition.
    Sequential,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or("expected KEY=VALUE")?;
    Ok((key.trim().to_owned(), value.trim().to_owned()))
}

impl Settings {
    /// Settings from command-line flags (the first item is the program name), as `--help` lists them;
    /// for running the pipeline in-process.
    pub fn from_flags<I, T>(flags: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::try_parse_from(flags)
    }

    /// The freshness windows of results.
    pub fn freshness_policy(&self) -> FreshnessPolicy {
        FreshnessPolicy {
            partial_fresh_ms: self.partial_fresh_ms,
            negative_fresh_ms: self.negative_fresh_ms,
            stale_grace_ms: self.stale_grace_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn settings_are_consistent_and_defaulted() {
        Settings::command().debug_assert();
        let settings =
            Settings::try_parse_from(["c", "--kafka-option", "a=1", "--kafka-option", "b = 2"])
                .unwrap();
        assert_eq!(
            settings.kafka_options,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(settings.max_in_flight, 256);
        assert!(Settings::try_parse_from(["c", "--max-in-flight", "0"]).is_err());
        assert!(
            Settings::try_parse_from(["c", "--fill-token", "t"]).is_err(),
            "a token needs a URL"
        );
    }
}
