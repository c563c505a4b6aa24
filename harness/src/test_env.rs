//! [`TestEnv`]: one test's (benchmark's, drill's) private slice of the stack: its own topic, dead-letter
//! topic, consumer group and range of product ids, and its own simulated vendors, so that runs can share
//! one broker and one Redis.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pricefront_consumer::sinks::cache::RedisCache;
use pricefront_core::{Money, ProductId};
use rdkafka::producer::FutureProducer;
use vendor_sim::{expected_price, Profiles, Simulator};

use crate::cluster::Cluster;
use crate::stack::{
    brokers, create_topics_on, delete_run_leftovers, direct_producer_to, redis_url,
};
use crate::vendors::vendors_toml;
use crate::HarnessError;

/// One test's private slice of the stack.
pub struct TestEnv {
    pub name: String,
    /// The Kafka its topics live on: the stack's, or the cluster's ([`TestEnv::on_cluster`]).
    pub brokers: String,
    pub topic: String,
    pub dead_letter_topic: String,
    pub group: String,
    pub dir: PathBuf,
    pub first_product: u64,
    pub simulator: Arc<Simulator>,
    pub profiles: Profiles,
    pub vendors_file: PathBuf,
    pub cache: RedisCache,
    pub(crate) http: reqwest::Client,
    pub(crate) producer: FutureProducer,
}

/// How long dropping a [`TestEnv`] may wait for Kafka to delete its topics and group.
const CLEAN_UP_LIMIT: Duration = Duration::from_secs(10);

impl Drop for TestEnv {
    /// Deletes the run's topics and consumer group, so that repeated runs leave nothing on the broker (a
    /// failure is reported, not raised: the run's own result stands).
    fn drop(&mut self) {
        let topics = [self.topic.clone(), self.dead_letter_topic.clone()];
        let groups = [self.group.clone()];
        if let Err(error) = delete_run_leftovers(&self.brokers, &topics, &groups, CLEAN_UP_LIMIT) {
            eprintln!("{}: left on Kafka: {error}", self.name);
        }
    }
}

impl TestEnv {
    /// Creates the test's topics (3 partitions each), starts the simulator with `profiles` and writes
    /// a vendors file for it.
    pub async fn new(
        name: &str,
        profiles: Profiles,
        vendor_timeout_ms: u64,
    ) -> Result<Self, HarnessError> {
        Self::with_vendor_settings(name, profiles, vendor_timeout_ms, &[]).await
    }

    /// Like [`TestEnv::new`], with extra lines of TOML in some vendors' entries of the vendors file:
    /// `(vendor, "max_requests_per_second = 2\nbreaker_minimum_calls = 3")`.
    pub async fn with_vendor_settings(
        name: &str,
        profiles: Profiles,
        vendor_timeout_ms: u64,
        settings: &[(&str, &str)],
    ) -> Result<Self, HarnessError> {
        Self::build(name, profiles, vendor_timeout_ms, settings, &brokers(), 3).await
    }

    /// Like [`TestEnv::new`], on the three-node `cluster` (topics replicated three times, two in sync to
    /// acknowledge), its request topic of `partitions` partitions.
    pub async fn on_cluster(
        cluster: &Cluster,
        name: &str,
        profiles: Profiles,
        vendor_timeout_ms: u64,
        partitions: i32,
    ) -> Result<Self, HarnessError> {
        Self::build(
            name,
            profiles,
            vendor_timeout_ms,
            &[],
            &cluster.brokers,
            partitions,
        )
        .await
    }

    async fn build(
        name: &str,
        profiles: Profiles,
        vendor_timeout_ms: u64,
        settings: &[(&str, &str)],
        brokers: &str,
        partitions: i32,
    ) -> Result<Self, HarnessError> {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let topic = format!("it-{name}-{}", &unique[..8]);
        let dead_letter_topic = format!("{topic}.dlq");
        create_topics_on(brokers, &[&topic], partitions).await?;
        create_topics_on(brokers, &[&dead_letter_topic], 3).await?;
        let dir = std::env::temp_dir().join(format!("pricefront-it-{topic}"));
        std::fs::create_dir_all(&dir)
            .map_err(HarnessError::io(format!("creating {}", dir.display())))?;

        let simulator = Simulator::new(profiles.clone());
        let listener = vendor_sim::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .map_err(HarnessError::io("binding the vendor simulator"))?;
        let address = listener
            .local_addr()
            .map_err(HarnessError::io("the vendor simulator's address"))?;
        tokio::spawn(vendor_sim::serve(
            listener,
            simulator.clone(),
            std::future::pending(),
        ));

        let vendors_file = dir.join("vendors.toml");
        std::fs::write(
            &vendors_file,
            vendors_toml(
                &profiles,
                &format!("http://{address}"),
                vendor_timeout_ms,
                settings,
            ),
        )
        .map_err(HarnessError::io(format!(
            "writing {}",
            vendors_file.display()
        )))?;
        let cache = RedisCache::connect(&redis_url(), Duration::from_secs(5))
            .await
            .map_err(|error| HarnessError::StackDown {
                part: "Redis",
                detail: error.to_string(),
            })?;
        Ok(Self {
            name: name.into(),
            brokers: brokers.to_owned(),
            group: format!("{topic}-group"),
            topic,
            dead_letter_topic,
            dir,
            // A random range of ids, so that tests never see each other's cache entries.
            first_product: 1_000_000 + (rand::random::<u64>() % 1_000_000_000) * 10_000,
            simulator,
            profiles,
            vendors_file,
            cache,
            http: reqwest::Client::new(),
            producer: direct_producer_to(brokers)?,
        })
    }

    /// The `n`th product id of this test.
    pub fn product(&self, n: u64) -> ProductId {
        ProductId::new(self.first_product + n).expect("first_product is above zero")
    }

    /// The first `count` products of this test.
    pub fn products(&self, count: u64) -> Vec<ProductId> {
        (0..count).map(|n| self.product(n)).collect()
    }

    /// The best price the simulated vendors that always answer will give for `product`.
    pub fn expected_best(&self, product: ProductId, answering: &[&str]) -> Money {
        answering
            .iter()
            .map(|vendor| {
                let currency = self.profiles.vendors[*vendor].currency.parse().unwrap();
                expected_price(vendor, product, currency)
            })
            .min_by_key(|m| m.minor_units)
            .unwrap()
    }
}
