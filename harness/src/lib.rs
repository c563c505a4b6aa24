//! The harness that the consumer's integration tests, the end-to-end tests, the benchmarks and the
//! drills share: the real local stack (Kafka, Redis and, where it can be
//! had, the Strimzi Kafka Bridge, started by `dev/stack.sh up`), a simulator of vendors in the test process, and consumer processes.
//!
//! Each test gets its own topic, dead-letter topic, consumer group and range of product ids, so the tests
//! can share one broker and one Redis.

pub mod edge;
pub mod metrics;
pub mod otlp;
pub mod private_redis;
pub mod topic;
pub mod worker;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pricefront_consumer::cache::RedisCache;
use pricefront_core::rest_proxy::{ProxyApi, RecordPosition};
use pricefront_core::{Comparison, Money, PriceRequest, ProductId};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use vendor_sim::{expected_price, BodyShape, Profiles, Simulator, VendorProfile};

/// Where the local stack listens (the defaults of `dev/stack.sh`).
pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// The Kafka REST proxy (Strimzi Kafka Bridge).
pub fn bridge_url() -> String {
    std::env::var("BRIDGE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into())
}

/// The Redis the consumers fill.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6390/0".into())
}

/// One test's private slice of the stack.
pub struct TestEnv {
    pub name: String,
    pub topic: String,
    pub dead_letter_topic: String,
    pub group: String,
    pub dir: PathBuf,
    pub first_product: u64,
    pub simulator: Arc<Simulator>,
    pub profiles: Profiles,
    pub vendors_file: PathBuf,
    pub cache: RedisCache,
    http: reqwest::Client,
    producer: FutureProducer,
}

impl TestEnv {
    /// Creates the test's topics (3 partitions each), starts the simulator with `profiles` and writes
    /// a vendors file for it.
    pub async fn new(name: &str, profiles: Profiles, vendor_timeout_ms: u64) -> Self {
        Self::with_vendor_settings(name, profiles, vendor_timeout_ms, &[]).await
    }

    /// Like [`TestEnv::new`], with extra lines of TOML in some vendors' entries of the vendors file:
    /// `(vendor, "max_requests_per_second = 2\nbreaker_failures = 3")`.
    pub async fn with_vendor_settings(
        name: &str,
        profiles: Profiles,
        vendor_timeout_ms: u64,
        settings: &[(&str, &str)],
    ) -> Self {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let topic = format!("it-{name}-{}", &unique[..8]);
        let dead_letter_topic = format!("{topic}.dlq");
        create_topics(&[&topic, &dead_letter_topic]).await;
        let dir = std::env::temp_dir().join(format!("pricefront-it-{topic}"));
        std::fs::create_dir_all(&dir).unwrap();

        let simulator = Simulator::new(profiles.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
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
        .unwrap();
        let cache = RedisCache::connect(&redis_url(), Duration::from_secs(5))
            .await
            .expect(
                "Redis is not reachable: start the stack with `dev/stack.sh up` (make test does)",
            );
        Self {
            name: name.into(),
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
            producer: direct_producer().unwrap(),
        }
    }

    /// The `n`th product id of this test.
    pub fn product(&self, n: u64) -> ProductId {
        ProductId::new(self.first_product + n).unwrap()
    }

    /// Starts a consumer process with this test's topics and group, plus `extra` flags.
    pub fn start_consumer(&self, label: &str, extra: &[&str]) -> ConsumerProcess {
        self.start_consumer_with_env(label, extra, &[])
    }

    /// Like [`TestEnv::start_consumer`], with extra environment variables.
    pub fn start_consumer_with_env(
        &self,
        label: &str,
        extra: &[&str],
        env: &[(&str, String)],
    ) -> ConsumerProcess {
        let log = self.dir.join(format!("consumer-{label}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let metrics_port = free_port();
        let child = Command::new(consumer_binary())
            .args([
                "--brokers",
                &brokers(),
                "--topic",
                &self.topic,
                "--dead-letter-topic",
                &self.dead_letter_topic,
            ])
            .args(["--group-id", &self.group, "--redis-url", &redis_url()])
            .arg("--vendors")
            .arg(&self.vendors_file)
            .args(["--commit-interval-ms", "200"])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(extra)
            // The edge's settings in this environment (scripts/test.sh exports FILL_TOKEN for the Worker)
            // are not this consumer's: it fills the edge only when a test says so in `extra`.
            .env_remove("FILL_TOKEN")
            .env_remove("FILL_URL")
            .env("RUST_LOG", "info,rdkafka=warn")
            .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("starting the consumer");
        ConsumerProcess {
            child,
            log,
            metrics_port,
        }
    }

    /// Publishes a request for each product straight to Kafka, keyed by the bare product id (the record
    /// the REST proxy writes for the edge).
    pub async fn publish(
        &self,
        products: impl IntoIterator<Item = ProductId>,
    ) -> Vec<RecordPosition> {
        self.publish_placed(products)
            .await
            .into_iter()
            .map(|(_, position)| position)
            .collect()
    }

    /// Like [`TestEnv::publish`], with the product each record is for (to know its partition).
    pub async fn publish_placed(
        &self,
        products: impl IntoIterator<Item = ProductId>,
    ) -> Vec<(ProductId, RecordPosition)> {
        publish_each(products, 64, |request| async move {
            let position = self
                .publish_raw(request.kafka_key().as_bytes(), request.to_json().as_bytes())
                .await;
            (request.product_id, position)
        })
        .await
    }

    /// Publishes a record with raw `key` and `value` bytes straight to Kafka.
    pub async fn publish_raw(&self, key: &[u8], value: &[u8]) -> RecordPosition {
        let record = FutureRecord::to(&self.topic).key(key).payload(value);
        let delivery = self
            .producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(error, _)| error)
            .expect("Kafka refused the record: is the stack up (`dev/stack.sh up`)?");
        RecordPosition {
            partition: delivery.partition,
            offset: delivery.offset,
        }
    }

    /// Publishes a request for each product through the Kafka REST proxy (v2), as the edge does.
    pub async fn publish_via_rest_proxy(
        &self,
        products: impl IntoIterator<Item = ProductId>,
    ) -> Vec<RecordPosition> {
        publish_each(products, 16, |request| async move {
            self.publish_request_via_rest_proxy(&request)
                .await
                .expect("the REST proxy refused the record")
        })
        .await
    }

    /// Publishes `request` through the Kafka REST proxy (the Strimzi Kafka Bridge's v2, record headers
    /// on) with the body the edge sends; where the proxy says it landed.
    pub async fn publish_request_via_rest_proxy(
        &self,
        request: &PriceRequest,
    ) -> Result<RecordPosition, String> {
        let api = ProxyApi::V2 {
            record_headers: true,
        };
        let call = api.produce_call(&self.topic, request);
        let response = self
            .http
            .post(format!("{}{}", bridge_url(), call.path))
            .header("content-type", call.content_type)
            .header("accept", call.accept)
            .body(call.body)
            .send()
            .await
            .map_err(|e| format!("the Kafka REST proxy is not reachable at BRIDGE_URL: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        api.parse_reply(status, &bytes).map_err(|e| e.to_string())
    }

    /// Waits until every product has a stored result, polling Redis; panics after `limit`.
    pub async fn wait_for_results(
        &self,
        products: &[ProductId],
        limit: Duration,
    ) -> Vec<Comparison> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let found = self.stored(products).await;
            if found.len() == products.len() {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: only {} of {} results stored after {limit:?}",
                self.name,
                found.len(),
                products.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The results stored for `products`, in any order.
    pub async fn stored(&self, products: &[ProductId]) -> Vec<Comparison> {
        futures::stream::iter(products.iter().copied())
            .map(|p| async move { self.cache.get(p).await.expect("reading Redis") })
            .buffer_unordered(64)
            .filter_map(|c| async { c })
            .collect()
            .await
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

/// A consumer process started by a test, killed when dropped.
pub struct ConsumerProcess {
    pub child: Child,
    pub log: PathBuf,
    /// Where it serves /metrics, /healthz and /readyz.
    pub metrics_port: u16,
}

impl ConsumerProcess {
    /// Kills the process at once (SIGKILL): no grace, no commit.
    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Asks the process to stop (SIGTERM) and waits for its exit code.
    pub fn terminate(&mut self) -> i32 {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the consumer did not stop within 60 s of SIGTERM; log: {}",
            self.log_text()
        );
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many partitions the process holds, from its last "partitions assigned" or "revoked" log line.
    pub fn assigned_partitions(&self) -> usize {
        let log = self.log_text();
        let last = log
            .lines()
            .rfind(|l| l.contains("partitions assigned") || l.contains("partitions revoked"));
        last.filter(|l| l.contains("assigned"))
            .and_then(|l| l.split("count=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// The partitions the process holds, from its last "partitions assigned" or "revoked" log line.
    pub fn assigned_partition_list(&self) -> Vec<i32> {
        let log = self.log_text();
        let last = log
            .lines()
            .rfind(|l| l.contains("partitions assigned") || l.contains("partitions revoked"));
        last.filter(|l| l.contains("assigned"))
            .and_then(|l| l.split("partitions=[").nth(1))
            .and_then(|rest| rest.split(']').next())
            .map(|list| {
                list.split(',')
                    .filter_map(|p| p.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The value of the sample `name` (with its labels, as the exposition writes them, e.g.
    /// `pricefront_cache_writes_total{sink="edge",outcome="ok"}`) on the process's `/metrics`, if present.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let page = metrics::page(self.metrics_port).await.ok()?;
        metrics::sample(&page, name)
    }

    /// Waits until the sample `name` satisfies `check`, at most `limit`; its value, or what it was when
    /// the time ran out.
    pub async fn wait_for_metric(
        &self,
        name: &str,
        check: impl Fn(f64) -> bool,
        limit: Duration,
    ) -> Result<f64, Option<f64>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let value = self.metric(name).await;
            if let Some(value) = value.filter(|v| check(*v)) {
                return Ok(value);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(value);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for ConsumerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The consumer binary: `PRICEFRONT_CONSUMER_BIN`, or the debug build in the workspace's target folder
/// (which `cargo test` builds).
pub fn consumer_binary() -> PathBuf {
    if let Ok(path) = std::env::var("PRICEFRONT_CONSUMER_BIN") {
        return PathBuf::from(path);
    }
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| repo_path("target"), PathBuf::from);
    let binary = target.join("debug/pricefront-consumer");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p pricefront-consumer`",
        binary.display()
    );
    binary
}

/// A port free on 127.0.0.1 right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A simulated vendor with the given latency range.
pub fn vendor(latency_ms: (u64, u64), shape: BodyShape) -> VendorProfile {
    VendorProfile {
        latency_min_ms: latency_ms.0,
        latency_max_ms: latency_ms.1,
        shape,
        ..VendorProfile::default()
    }
}

/// Profiles from `(name, profile)` pairs.
pub fn profiles(vendors: impl IntoIterator<Item = (&'static str, VendorProfile)>) -> Profiles {
    profiles_of(vendors.into_iter().map(|(n, p)| (n.to_owned(), p)))
}

/// Profiles from `(name, profile)` pairs with owned names.
pub fn profiles_of(vendors: impl IntoIterator<Item = (String, VendorProfile)>) -> Profiles {
    Profiles {
        vendors: vendors.into_iter().collect(),
    }
}

/// The vendors file that points the consumer at the simulated vendors, with each vendor's extra
/// `settings` lines.
fn vendors_toml(
    profiles: &Profiles,
    base: &str,
    timeout_ms: u64,
    settings: &[(&str, &str)],
) -> String {
    let mut text = String::new();
    for (name, profile) in &profiles.vendors {
        let [price, currency, url] = profile.shape.pointers();
        text.push_str(&format!(
            "[[vendor]]\nname = \"{name}\"\nurl = \"{base}/vendors/{name}/prices/{{productId}}\"\ntimeout_ms = {timeout_ms}\nguarantee_window_secs = 600\nprice_pointer = \"{price}\"\ncurrency_pointer = \"{currency}\"\noffer_url_pointer = \"{url}\"\n"
        ));
        for (_, extra) in settings.iter().filter(|(vendor, _)| vendor == name) {
            text.push_str(extra);
            text.push('\n');
        }
        text.push('\n');
    }
    text
}

async fn create_topics(names: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let topics: Vec<_> = names
        .iter()
        .map(|n| NewTopic::new(n, 3, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .expect("Kafka is not reachable: start the stack with `dev/stack.sh up` (make test does)");
    for result in results {
        result.expect("creating a test topic");
    }
}

/// A producer that writes straight to Kafka and partitions keys as the Java clients (and so the REST
/// proxy) do: murmur2, so that a record of one product lands in the same partition either way.
pub fn direct_producer() -> rdkafka::error::KafkaResult<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("partitioner", "murmur2_random")
        .create()
}

/// Sends a new request for each product with `send`, `concurrency` at a time.
async fn publish_each<F, Fut, T>(
    products: impl IntoIterator<Item = ProductId>,
    concurrency: usize,
    send: F,
) -> Vec<T>
where
    F: Fn(PriceRequest) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let requests: Vec<_> = products
        .into_iter()
        .map(|p| PriceRequest::new(p, uuid::Uuid::new_v4().to_string(), now_ms()))
        .collect();
    futures::stream::iter(requests)
        .map(send)
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// A complete comparison of `product` computed at `computed_at_ms`: two EUR offers (alpha 19.99, bravo
/// 14.99, the best), fresh for `fresh_ms` and servable stale for 10 minutes more. What tests,
/// benchmarks and drills fill an edge with.
pub fn comparison_at(product: ProductId, computed_at_ms: u64, fresh_ms: u64) -> Comparison {
    let answered = |vendor: &str, minor_units| pricefront_core::VendorOutcome::Answered {
        offer: pricefront_core::Offer {
            vendor: vendor.into(),
            price: Money {
                minor_units,
                currency: "EUR".parse().expect("EUR is a currency"),
            },
            url: None,
        },
        guarantee_ms: fresh_ms,
    };
    let policy = pricefront_core::FreshnessPolicy {
        stale_grace_ms: 600_000,
        ..pricefront_core::FreshnessPolicy::default()
    };
    Comparison::aggregate(
        product,
        [answered("alpha", 1999), answered("bravo", 1499)],
        computed_at_ms,
        &policy,
    )
}

/// [`comparison_at`] computed `age_ms` ago, fresh for a minute from then.
pub fn aged_comparison(product: ProductId, age_ms: u64) -> Comparison {
    comparison_at(product, now_ms() - age_ms, 60_000)
}

/// [`comparison_at`] computed now, fresh for an hour: a hit for as long as a benchmark runs.
pub fn sample_comparison(product: ProductId) -> Comparison {
    comparison_at(product, now_ms(), 3_600_000)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    pricefront_consumer::fanout::now_ms()
}

/// The path of a file in the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}
