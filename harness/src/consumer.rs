//! Consumer processes: starting one on a [`TestEnv`]'s topics, stopping it (SIGKILL or SIGTERM), waiting
//! for its `/readyz`, and reading its state from its `/metrics`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::results::POLL;
use crate::stack::{redis_url, repo_path};
use crate::{free_port, metrics, HarnessError, TestEnv};

impl TestEnv {
    /// Starts a consumer process with this test's topics and group, plus `extra` flags.
    pub fn start_consumer(
        &self,
        label: &str,
        extra: &[&str],
    ) -> Result<ConsumerProcess, HarnessError> {
        self.start_consumer_with_env(label, extra, &[])
    }

    /// Like [`TestEnv::start_consumer`], with extra environment variables.
    pub fn start_consumer_with_env(
        &self,
        label: &str,
        extra: &[&str],
        env: &[(&str, String)],
    ) -> Result<ConsumerProcess, HarnessError> {
        self.spawn_consumer(label, extra, env, None)
    }

    /// Like [`TestEnv::start_consumer`], the process and all its threads kept to the CPU `cpu`
    /// (`taskset`) at the scheduling priority `niceness` (`nice -n`, 0 to 19: the higher, the smaller
    /// its share of the CPU beside a busy process), as a container with a small CPU quota would be.
    pub fn start_consumer_on_cpu(
        &self,
        label: &str,
        extra: &[&str],
        cpu: usize,
        niceness: u8,
    ) -> Result<ConsumerProcess, HarnessError> {
        self.spawn_consumer(label, extra, &[], Some((cpu, niceness)))
    }

    fn spawn_consumer(
        &self,
        label: &str,
        extra: &[&str],
        env: &[(&str, String)],
        cpu: Option<(usize, u8)>,
    ) -> Result<ConsumerProcess, HarnessError> {
        let log = self.dir.join(format!("consumer-{label}.log"));
        let file = std::fs::File::create(&log)
            .map_err(HarnessError::io(format!("creating {}", log.display())))?;
        let copy = file
            .try_clone()
            .map_err(HarnessError::io(format!("opening {}", log.display())))?;
        let metrics_port = free_port()?;
        // taskset and nice exec the consumer: the process started is the consumer itself.
        let mut command = match cpu {
            Some((cpu, niceness)) => {
                let mut taskset = Command::new("taskset");
                taskset
                    .args(["-c", &cpu.to_string()])
                    .args(["nice", "-n", &niceness.to_string()])
                    .arg(consumer_binary()?);
                taskset
            }
            None => Command::new(consumer_binary()?),
        };
        let child = command
            .args([
                "--brokers",
                &self.brokers,
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
            // The consumer's own fill settings, should the caller's environment have them (`make dev`
            // exports FILL_TOKEN for its consumer), are not this consumer's: it fills an edge only when
            // a test says so in `extra`. (The tests' token for the edge is EDGE_FILL_TOKEN.)
            .env_remove("FILL_TOKEN")
            .env_remove("FILL_URL")
            .env("RUST_LOG", "info,rdkafka=warn")
            .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
            .stdout(Stdio::from(copy))
            .stderr(Stdio::from(file))
            .spawn()
            .map_err(HarnessError::io("starting the consumer"))?;
        Ok(ConsumerProcess {
            child,
            log,
            metrics_port,
        })
    }
}

/// A consumer process started by a test, killed when dropped.
pub struct ConsumerProcess {
    /// The process.
    pub child: Child,
    /// The file its stdout and stderr go to.
    pub log: PathBuf,
    /// Where it serves /metrics, /healthz and /readyz.
    pub metrics_port: u16,
}

impl ConsumerProcess {
    /// Kills the process at once (SIGKILL): no grace, no commit.
    pub fn kill_9(&mut self) -> Result<(), HarnessError> {
        self.child
            .kill()
            .map_err(HarnessError::io("killing the consumer"))?;
        self.child
            .wait()
            .map_err(HarnessError::io("waiting for the killed consumer"))?;
        Ok(())
    }

    /// Asks the process to stop (SIGTERM) and waits, at most 60 s, for its exit code.
    pub fn terminate(&mut self) -> Result<i32, HarnessError> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(HarnessError::io("kill -TERM"))?;
        if !status.success() {
            return Err(HarnessError::Process(format!(
                "kill -TERM {} failed: {status}",
                self.child.id()
            )));
        }
        for _ in 0..600 {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(HarnessError::io("waiting for the consumer"))?
            {
                return Ok(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(HarnessError::Process(format!(
            "the consumer did not stop within 60 s of SIGTERM; log: {}",
            self.log_text()
        )))
    }

    /// Whether the process still runs (`None`); its exit status otherwise.
    pub fn exit_status(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(status.to_string()),
            Err(error) => Some(format!("unknown ({error})")),
        }
    }

    /// The process's log so far (for failure messages: read its state from [`ConsumerProcess::metric`]).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the process's `/readyz` answers 200 (each request given 5 s, one every [`POLL`]), at
    /// most `limit`; how long that took.
    pub async fn wait_ready(&self, limit: Duration) -> Result<Duration, HarnessError> {
        let started = tokio::time::Instant::now();
        let url = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|error| HarnessError::Process(format!("an HTTP client for {url}: {error}")))?;
        while started.elapsed() < limit {
            if client
                .get(&url)
                .send()
                .await
                .is_ok_and(|response| response.status() == 200)
            {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(POLL).await;
        }
        Err(HarnessError::Timeout {
            what: "the consumer's /readyz answering 200".into(),
            limit,
        })
    }

    /// How many partitions the process holds: `pricefront_assigned_partitions` on its `/metrics`, 0
    /// while it does not answer.
    pub async fn assigned_partitions(&self) -> usize {
        self.metric("pricefront_assigned_partitions")
            .await
            .map_or(0, |n| n as usize)
    }

    /// The partitions the process holds: the `pricefront_partition_assigned{partition="N"} 1` samples on
    /// its `/metrics` (empty while it does not answer).
    pub async fn assigned_partition_list(&self) -> Vec<i32> {
        let Ok(page) = metrics::page(self.metrics_port).await else {
            return Vec::new();
        };
        let mut partitions: Vec<i32> = page
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("pricefront_partition_assigned{partition=\"")?;
                let (partition, value) = rest.split_once("\"} ")?;
                (value.trim() == "1").then(|| partition.parse().ok())?
            })
            .collect();
        partitions.sort_unstable();
        partitions
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
}

impl Drop for ConsumerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The consumer binary: `PRICEFRONT_CONSUMER_BIN`, or the debug build in the workspace's target folder
/// (which `cargo test` builds).
pub fn consumer_binary() -> Result<PathBuf, HarnessError> {
    if let Ok(path) = std::env::var("PRICEFRONT_CONSUMER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| repo_path("target"), PathBuf::from);
    let binary = target.join("debug/pricefront-consumer");
    if binary.exists() {
        Ok(binary)
    } else {
        Err(HarnessError::Process(format!(
            "{} is missing: build it with `cargo build -p pricefront-consumer`",
            binary.display()
        )))
    }
}
