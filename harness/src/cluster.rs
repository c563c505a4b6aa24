//! The three-node Kafka cluster that `scripts/test.sh` and `make drills` start beside the stack
//! (`KAFKA_NODES=3 dev/stack.sh` on ports of its own, with a bridge of its own): where it listens, one
//! node stopped, killed or started, and which node leads each partition.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use tokio::time::Instant;

use crate::{stack_script, HarnessError};

/// The cluster's brokers, its bridge, and the settings that reach its `dev/stack.sh`.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Its bootstrap servers, every node.
    pub brokers: String,
    /// Its Kafka REST proxy (a bridge of its own).
    pub bridge_url: String,
    stack_env: Vec<(String, String)>,
}

/// One partition as the cluster's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// The partition.
    pub partition: i32,
    /// The node that leads it; -1 while none does.
    pub leader: i32,
    /// The nodes that hold a replica.
    pub replicas: Vec<i32>,
    /// The replicas in sync with the leader.
    pub isr: Vec<i32>,
}

impl PartitionState {
    /// Whether a node leads it.
    pub fn has_leader(&self) -> bool {
        self.leader > 0
    }
}

impl Cluster {
    /// The cluster `scripts/test.sh` or `scripts/drills.sh` started: `CLUSTER_KAFKA_BROKERS`,
    /// `CLUSTER_BRIDGE_URL` and `CLUSTER_STACK_ENV` (`NAME=value` pairs for its `dev/stack.sh`).
    pub fn from_env() -> Result<Self, HarnessError> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                HarnessError::Process(format!(
                    "{name} is not set: the cluster is started by scripts/test.sh and scripts/drills.sh \
                     (scripts/stack-session.sh, cluster_up_for_this_run)"
                ))
            })
        };
        let stack_env = var("CLUSTER_STACK_ENV")?
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(Self {
            brokers: var("CLUSTER_KAFKA_BROKERS")?,
            bridge_url: var("CLUSTER_BRIDGE_URL")?,
            stack_env,
        })
    }

    /// The bridge's management port (`BRIDGE_MANAGEMENT_PORT` of its `dev/stack.sh` settings): `/ready`,
    /// and `/metrics` where the cluster runs it with `BRIDGE_METRICS`.
    pub fn bridge_management_port(&self) -> Result<u16, HarnessError> {
        self.stack_env
            .iter()
            .find(|(name, _)| name == "BRIDGE_MANAGEMENT_PORT")
            .and_then(|(_, port)| port.parse().ok())
            .ok_or_else(|| {
                HarnessError::Process(
                    "CLUSTER_STACK_ENV names no BRIDGE_MANAGEMENT_PORT (scripts/stack-session.sh sets it)"
                        .into(),
                )
            })
    }

    /// Runs the cluster's `dev/stack.sh args` within `limit`; how long it took.
    pub async fn stack(&self, args: &[&str], limit: Duration) -> Result<Duration, HarnessError> {
        let env: Vec<(&str, &str)> = self
            .stack_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        stack_script(args, &env, limit).await
    }

    /// `dev/stack.sh ACTION kafka-NODE` (`stop`, `kill`, `start`), bounded by two minutes.
    pub async fn node(&self, action: &str, node: i32) -> Result<Duration, HarnessError> {
        self.stack(
            &[action, &format!("kafka-{node}")],
            Duration::from_secs(120),
        )
        .await
    }

    /// The partitions of `topic` as the cluster's metadata gives them now.
    pub async fn partitions(&self, topic: &str) -> Result<Vec<PartitionState>, HarnessError> {
        let (brokers, topic) = (self.brokers.clone(), topic.to_owned());
        tokio::task::spawn_blocking(move || partitions_of(&brokers, &topic))
            .await
            .map_err(|e| HarnessError::Process(format!("the metadata task failed: {e}")))?
    }

    /// Polls the metadata of `topic` until `done` holds (a metadata call that fails is polled again);
    /// the partitions then and how long it took.
    pub async fn wait_for(
        &self,
        topic: &str,
        what: &str,
        limit: Duration,
        done: impl Fn(&[PartitionState]) -> bool,
    ) -> Result<(Vec<PartitionState>, Duration), HarnessError> {
        let started = Instant::now();
        loop {
            if let Ok(partitions) = self.partitions(topic).await {
                if done(&partitions) {
                    return Ok((partitions, started.elapsed()));
                }
            }
            if started.elapsed() > limit {
                return Err(HarnessError::Timeout {
                    what: format!("{what} ({topic})"),
                    limit,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every partition of `topic` has a leader and all of its replicas in sync.
    pub async fn wait_in_sync(&self, topic: &str, limit: Duration) -> Result<(), HarnessError> {
        self.wait_for(topic, "every replica in sync", limit, |parts| {
            !parts.is_empty()
                && parts
                    .iter()
                    .all(|p| p.has_leader() && p.isr.len() == p.replicas.len())
        })
        .await
        .map(|_| ())
    }
}

/// The partitions of `topic`, from a fresh client's metadata (blocking).
fn partitions_of(brokers: &str, topic: &str) -> Result<Vec<PartitionState>, HarnessError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let mut partitions: Vec<PartitionState> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| PartitionState {
            partition: p.id(),
            leader: p.leader(),
            replicas: p.replicas().to_vec(),
            isr: p.isr().to_vec(),
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    Ok(partitions)
}
