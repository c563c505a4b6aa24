//! The harness that the consumer's integration tests, the end-to-end tests, the benchmarks and the
//! drills share: the one toolbox for driving the real local stack (Kafka, Redis and the Strimzi Kafka
//! Bridge, started by `dev/stack.sh up`), a simulator of vendors in the test process, consumer
//! processes and edge Workers.
//!
//! Each test gets its own topic, dead-letter topic, consumer group and range of product ids
//! ([`TestEnv`]), so the tests can share one broker and one Redis. Helpers return a [`HarnessError`]
//! where the caller can act on a failure; tests `unwrap` at their call sites.
//!
//! | module | what |
//! | --- | --- |
//! | [`stack`] | where the stack listens (`KAFKA_BROKERS`, `KAFKA_BRIDGE_URL`, `REDIS_URL`; the benchmarks' shared-producer bridge, `SHARED_BRIDGE_URL`), topics, the producer |
//! | [`cluster`] | the three-node Kafka cluster beside the stack: its nodes stopped, killed, started; partition leaders |
//! | [`test_env`] | [`TestEnv`]: one run's topics, group, products, simulated vendors and vendors file |
//! | [`vendors`] | simulated vendor profiles |
//! | [`consumer`] | starting and stopping consumer processes, their state from `/metrics` |
//! | [`publish`] | publishing requests, straight to Kafka or through the REST proxy |
//! | [`results`] | reading and waiting for stored results in Redis |
//! | [`comparisons`] | sample comparisons to fill an edge or a cache with |
//! | [`worker`] | starting and stopping an edge Worker under `wrangler dev` |
//! | [`edge`] | talking to a running Worker as a client does |
//! | [`metrics`] | reading a Prometheus `/metrics` page |
//! | [`prometheus`] | a real Prometheus scraping consumers with the service's rules, and its alerts |
//! | [`topic`] | reading back what a topic holds |
//! | [`process`] | a process's (or a process group's) peak memory and CPU time |
//! | [`clock`] | now in milliseconds, today's date |
//! | [`machine`] | describing the machine a report ran on, and how busy its CPUs were |
//! | [`private_redis`], [`otlp`] | a Redis of one test's own, an OTLP collector |

pub mod clock;
pub mod cluster;
pub mod comparisons;
pub mod consumer;
pub mod edge;
mod error;
pub mod machine;
pub mod metrics;
pub mod otlp;
pub mod private_redis;
pub mod process;
pub mod prometheus;
pub mod publish;
pub mod results;
pub mod stack;
pub mod test_env;
pub mod topic;
pub mod vendors;
pub mod worker;

pub use clock::{now_ms, utc_date};
pub use cluster::{Cluster, PartitionState};
pub use comparisons::{aged_comparison, comparison_at, sample_comparison};
pub use consumer::{consumer_binary, ConsumerProcess};
pub use error::HarnessError;
pub use machine::Machine;
pub use stack::{
    bridge_url, brokers, create_topics_on, direct_producer, direct_producer_to, redis_url,
    repo_path, shared_bridge, stack_script, SharedBridge,
};
pub use test_env::TestEnv;
pub use vendors::{failing_vendor, profiles, profiles_of, vendor, QUICK_BREAKER};

/// A port free on 127.0.0.1 right now: nothing listens on it (a closed port, for a part that must be
/// unreachable), and a server may bind it.
pub fn free_port() -> Result<u16, HarnessError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(HarnessError::io("finding a free port"))
}
