//! Where the local stack listens (the defaults of `dev/stack.sh`, overridden by the environment that
//! `dev/stack.sh env` prints), the repository's files, and the Kafka clients every run needs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::FutureProducer;

use crate::HarnessError;

/// The Kafka bootstrap servers: `KAFKA_BROKERS` (the consumer's own name for them), or the stack's.
pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// The Kafka REST proxy (Strimzi Kafka Bridge): `KAFKA_BRIDGE_URL`, or the stack's.
pub fn bridge_url() -> String {
    std::env::var("KAFKA_BRIDGE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into())
}

/// The Redis the consumers fill: `REDIS_URL`, or the stack's.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6390/0".into())
}

/// A second bridge in front of the stack's Kafka, built with `dev/bridge-shared-producer.patch` (one
/// producer for every connection), that `scripts/stack-session.sh` starts for the benchmarks beside the
/// stack's upstream one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBridge {
    /// Its REST API (`SHARED_BRIDGE_URL`).
    pub url: String,
    /// Its process id, from the pid file in its state folder (`SHARED_BRIDGE_STATE_DIR`).
    pub pid: u32,
}

/// The [`SharedBridge`], when `SHARED_BRIDGE_URL` and `SHARED_BRIDGE_STATE_DIR` name one; `None` when
/// they are unset, an error when its pid file cannot be read.
pub fn shared_bridge() -> Result<Option<SharedBridge>, HarnessError> {
    let (Ok(url), Some(state)) = (
        std::env::var("SHARED_BRIDGE_URL"),
        std::env::var_os("SHARED_BRIDGE_STATE_DIR"),
    ) else {
        return Ok(None);
    };
    let pid = pid_in_file(&PathBuf::from(state).join("pids").join("bridge.pid"))?;
    Ok(Some(SharedBridge { url, pid }))
}

/// Runs `dev/stack.sh args` with `env` added, within `limit`; how long it took. A failure carries the
/// last lines of the script's output.
pub async fn stack_script(
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> Result<Duration, HarnessError> {
    let started = std::time::Instant::now();
    let what = format!("`dev/stack.sh {}`", args.join(" "));
    let mut command = tokio::process::Command::new(repo_path("dev/stack.sh"));
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(limit, command.output())
        .await
        .map_err(|_| HarnessError::Timeout {
            what: what.clone(),
            limit,
        })?
        .map_err(HarnessError::io(what.clone()))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<_> = text.lines().collect();
        return Err(HarnessError::Process(format!(
            "{what} failed ({}); last output:\n{}",
            output.status,
            lines[lines.len().saturating_sub(15)..].join("\n")
        )));
    }
    Ok(started.elapsed())
}

/// The process id of one of the stack's components (`kafka`, `bridge`, `redis`, or `kafka-N` on the
/// cluster): the first field of `dev/stack.sh`'s pid file for it (`pid starttime`).
pub fn stack_pid(component: &str) -> Result<u32, HarnessError> {
    let state = std::env::var_os("PF_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path(".run"));
    pid_in_file(&state.join("pids").join(format!("{component}.pid")))
}

/// The pid a pid file names: its first field (`dev/processes.sh` writes `pid starttime`, for the stack
/// and for `scripts/edge-dev.sh`'s Workers alike).
pub(crate) fn pid_in_file(path: &Path) -> Result<u32, HarnessError> {
    let text = std::fs::read_to_string(path)
        .map_err(HarnessError::io(format!("reading {}", path.display())))?;
    text.split_whitespace()
        .next()
        .and_then(|pid| pid.parse().ok())
        .ok_or_else(|| HarnessError::Process(format!("{} names no process", path.display())))
}

/// The path of a file in the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// Creates `names` on the stack's Kafka, 3 partitions each ([`create_topics_on`]).
pub async fn create_topics(names: &[&str]) -> Result<(), HarnessError> {
    create_topics_on(&brokers(), names, 3).await
}

/// An admin client of the Kafka at `brokers`, for creating and deleting a run's topics and groups.
fn admin_client(brokers: &str) -> Result<AdminClient<DefaultClientContext>, HarnessError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?)
}

/// Creates `names` on the Kafka at `brokers`, `partitions` each, replicated as the cluster's default says
/// (1 on one node; 3 with `min.insync.replicas` 2 on `KAFKA_NODES=3`).
pub async fn create_topics_on(
    brokers: &str,
    names: &[&str],
    partitions: i32,
) -> Result<(), HarnessError> {
    let admin = admin_client(brokers)?;
    let topics: Vec<_> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(-1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .map_err(|error| HarnessError::StackDown {
            part: "Kafka",
            detail: error.to_string(),
        })?;
    for result in results {
        result.map_err(|(topic, code)| {
            HarnessError::Process(format!("creating the test topic {topic}: {code}"))
        })?;
    }
    Ok(())
}

/// Deletes what one run created on the Kafka at `brokers`: its `topics` and its consumer `groups`, so that
/// runs do not leave their partitions behind (thousands of them, after many runs, slow the broker's
/// controller and fill its heap). A group that never formed is not an error, nor one that still has a
/// member (a consumer killed, not stopped): the broker drops that member when its session times out and
/// the group's offsets after `offsets.retention.minutes`. Blocking, on a thread of its own (it is called
/// from `Drop`), bounded by `limit`.
pub fn delete_run_leftovers(
    brokers: &str,
    topics: &[String],
    groups: &[String],
    limit: Duration,
) -> Result<(), HarnessError> {
    let (brokers, topics, groups) = (brokers.to_owned(), topics.to_vec(), groups.to_vec());
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(futures::executor::block_on(delete_on(
            &brokers, &topics, &groups, limit,
        )));
    });
    outcome
        .recv_timeout(limit + Duration::from_secs(1))
        .map_err(|_| HarnessError::Timeout {
            what: "deleting a run's topics and groups".into(),
            limit,
        })?
}

async fn delete_on(
    brokers: &str,
    topics: &[String],
    groups: &[String],
    limit: Duration,
) -> Result<(), HarnessError> {
    let admin = admin_client(brokers)?;
    let options = AdminOptions::new()
        .operation_timeout(Some(limit))
        .request_timeout(Some(limit));
    let refused = |what: &str, (name, code): (String, RDKafkaErrorCode)| {
        HarnessError::Process(format!("deleting the {what} {name}: {code}"))
    };
    // librdkafka refuses an empty list as an invalid argument.
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    if !topics.is_empty() {
        for result in admin.delete_topics(&topics, &options).await? {
            result.map_err(|failed| refused("topic", failed))?;
        }
    }
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    if groups.is_empty() {
        return Ok(());
    }
    for result in admin.delete_groups(&groups, &options).await? {
        match result {
            Err((_, RDKafkaErrorCode::GroupIdNotFound | RDKafkaErrorCode::NonEmptyGroup))
            | Ok(_) => {}
            Err(failed) => return Err(refused("group", failed)),
        }
    }
    Ok(())
}

/// A producer that writes straight to Kafka and partitions keys as the Java clients (and so the REST
/// proxy) do: murmur2, so that a record of one product lands in the same partition either way.
pub fn direct_producer() -> rdkafka::error::KafkaResult<FutureProducer> {
    direct_producer_to(&brokers())
}

/// [`direct_producer`] to the Kafka at `brokers` (a cluster of a test of its own).
pub fn direct_producer_to(brokers: &str) -> rdkafka::error::KafkaResult<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        // Kafka's promise on a replicated topic: acknowledged once every in-sync replica has the record,
        // and a retried send never written twice.
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
}
