//! The fill benchmark's peer: the Confluent Parallel Consumer doing the same fan-out
//! (`bench/peers/parallel-consumer/`), run on the same inputs as ours, and the process figures (CPU, peak
//! memory) read the same way for both.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use pricefront_core::{cache_key, Comparison, ProductId};
use pricefront_harness::{redis_url, repo_path, TestEnv};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::args::Args;
use crate::usage::{Proc, UsageProbe};

/// How the peer does its per-record work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerMode {
    /// The library's Vert.x module (`vertxFuture`), vendors called with its Vert.x WebClient: non-blocking.
    Vertx,
    /// The core module (`poll`), one worker thread per concurrent record, vendors called with java.net.http's
    /// async client.
    Core,
}

impl PeerMode {
    /// The peer's `--mode` value.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerMode::Vertx => "vertx",
            PeerMode::Core => "core",
        }
    }
}

/// What one run of the peer measured.
#[derive(Debug, Clone)]
pub struct PeerRun {
    /// Requests published, and results stored.
    pub products: u64,
    /// How many stored results are complete (every vendor answered).
    pub complete: u64,
    /// Results stored per second, from the first stored result to the last.
    pub rate: f64,
    /// CPU seconds (user + sys) of the peer process per 1,000 comparisons, over its whole life (JVM start,
    /// group join and JIT warm-up included).
    pub cpu_s_per_1000: f64,
    /// CPU seconds (user + sys) of the peer process per 1,000 comparisons, from the first stored result to
    /// the last (the steady fill only).
    pub cpu_s_per_1000_fill: f64,
    /// The process's peak resident memory (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Its resident memory mapped from files at the end (the JVM's libraries, the class data), MiB.
    pub files_rss_mib: f64,
    /// Vendor calls the simulator served, per product.
    pub vendor_calls_per_product: f64,
}

/// Runs the peer in `mode` on a fresh topic of `count` requests, `max_in_flight` at once (the peer's
/// maxConcurrency, its own `--window` flag).
pub async fn run_peer_mode(
    args: &Args,
    label: &str,
    count: u64,
    max_in_flight: u32,
    mode: PeerMode,
) -> anyhow::Result<PeerRun> {
    let jar = peer_jar()?;
    let env = TestEnv::new(&format!("bench-{label}"), args.vendor_profiles(), 2_000).await?;
    let products: Vec<_> = (0..count).map(|n| env.product(n)).collect();
    env.publish(products.iter().copied()).await?;
    let mut redis = Resp::connect(&redis_url()).await?;

    let log = env.dir.join(format!("peer-{label}.log"));
    let file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new(java())
        .arg("-jar")
        .arg(&jar)
        .args(["--bootstrap-servers", &pricefront_harness::brokers()])
        .args(["--topic", &env.topic, "--group-id", &env.group])
        .args(["--redis-url", &redis_url()])
        .arg("--vendors")
        .arg(&env.vendors_file)
        .args([
            "--window",
            &max_in_flight.to_string(),
            "--mode",
            mode.as_str(),
        ])
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .spawn()
        .with_context(|| format!("starting {}", jar.display()))?;
    let mut peer = Peer { child, log };
    let probe = UsageProbe::new(&Proc, label, peer.child.id());

    let keys: Vec<String> = products.iter().map(|p| cache_key(*p)).collect();
    let limit = Instant::now() + Duration::from_secs(args.fill_limit_secs);
    let mut first = None;
    let finished_at = loop {
        if let Some(status) = peer.child.try_wait()? {
            bail!(
                "{label}: the peer exited ({status}); log:\n{}",
                peer.log_tail()
            );
        }
        let stored = redis.count_existing(&keys).await?;
        if stored >= 1 && first.is_none() {
            first = Some((Instant::now(), stored, probe.at_first_result()?));
        }
        if stored >= count {
            break Instant::now();
        }
        if Instant::now() > limit {
            bail!(
                "{label}: only {stored} of {count} results stored within {} s; log:\n{}",
                args.fill_limit_secs,
                peer.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (started_at, stored_at_start, cpu_at_start) = first.context("nothing stored")?;
    let usage = probe.at_end(cpu_at_start)?;
    peer.kill();

    let seconds = (finished_at - started_at).as_secs_f64().max(0.001);
    let filled = (count - stored_at_start).max(1);
    let complete = check_stored(&mut redis, &products).await?;
    let rate = filled as f64 / seconds;
    let vendor_calls: u64 = env.simulator.request_counts().values().sum();
    Ok(PeerRun {
        products: count,
        complete,
        rate,
        cpu_s_per_1000: usage.cpu_s_per_1000(count),
        cpu_s_per_1000_fill: usage.cpu_s_per_1000_fill(filled),
        peak_rss_mib: usage.peak_rss_mib,
        files_rss_mib: usage.files_rss_mib,
        vendor_calls_per_product: vendor_calls as f64 / count as f64,
    })
}

/// Reads every product's stored value and checks that it is a comparison our edge can serve
/// ([`Comparison::from_json`]) of that product; how many are complete.
async fn check_stored(redis: &mut Resp, products: &[ProductId]) -> anyhow::Result<u64> {
    let mut complete = 0;
    for chunk in products.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|p| cache_key(*p)).collect();
        let mut command = vec!["MGET".to_owned()];
        command.extend(keys.iter().cloned());
        let values = match redis.call(&command).await? {
            Reply::Array(values) => values,
            other => bail!("MGET answered {other:?}"),
        };
        for ((product, key), value) in chunk.iter().zip(&keys).zip(values) {
            let Reply::Bulk(Some(bytes)) = value else {
                bail!("{key}: nothing stored");
            };
            let comparison = Comparison::from_json(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{key}: the peer stored a value the edge cannot serve ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })?;
            if comparison.product_id != *product {
                bail!("{key} holds the comparison of {}", comparison.product_id);
            }
            complete += u64::from(comparison.complete);
        }
    }
    Ok(complete)
}

/// The peer's jar, built with Maven when missing.
fn peer_jar() -> anyhow::Result<PathBuf> {
    let project = repo_path("bench/peers/parallel-consumer");
    let jar = project.join("target/parallel-consumer-peer.jar");
    if !jar.exists() {
        let status = Command::new("mvn")
            .args(["-q", "-B", "-f"])
            .arg(project.join("pom.xml"))
            .arg("package")
            .status()
            .context("running mvn (Java 17 and Maven are needed for the peer)")?;
        if !status.success() || !jar.exists() {
            bail!(
                "building the peer failed: mvn -q -f bench/peers/parallel-consumer/pom.xml package"
            );
        }
    }
    Ok(jar)
}

/// The `java` to run the peer with: `$JAVA_HOME/bin/java`, else Debian's Java 17, else `java` on the path.
fn java() -> PathBuf {
    let debian = PathBuf::from("/usr/lib/jvm/java-17-openjdk-amd64/bin/java");
    std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin/java"))
        .filter(|java| java.exists())
        .or_else(|| debian.exists().then_some(debian))
        .unwrap_or_else(|| PathBuf::from("java"))
}

/// The peer process, killed when dropped.
struct Peer {
    child: Child,
    log: PathBuf,
}

impl Peer {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of the peer's log, for errors.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A reply of Redis (RESP2).
#[derive(Debug)]
enum Reply {
    Simple,
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

/// A bare Redis connection for the benchmark's own probes: `EXISTS` over many keys in one command counts
/// stored results far more cheaply than reading them while the consumer under test runs.
struct Resp {
    reader: BufReader<TcpStream>,
}

impl Resp {
    /// Connects to `redis://host:port[/db]`.
    async fn connect(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("redis://")
            .with_context(|| format!("{url} is not a redis:// URL"))?;
        let (address, db) = rest.split_once('/').unwrap_or((rest, "0"));
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to Redis at {address}"))?;
        let mut resp = Self {
            reader: BufReader::new(stream),
        };
        if !db.is_empty() && db != "0" {
            resp.call(&["SELECT".to_owned(), db.to_owned()]).await?;
        }
        Ok(resp)
    }

    /// How many of `keys` exist.
    async fn count_existing(&mut self, keys: &[String]) -> anyhow::Result<u64> {
        let mut total = 0;
        for chunk in keys.chunks(1_000) {
            let mut command = vec!["EXISTS".to_owned()];
            command.extend(chunk.iter().cloned());
            match self.call(&command).await? {
                Reply::Integer(n) => total += u64::try_from(n).unwrap_or(0),
                other => bail!("EXISTS answered {other:?}"),
            }
        }
        Ok(total)
    }

    async fn call(&mut self, command: &[String]) -> anyhow::Result<Reply> {
        let mut bytes = format!("*{}\r\n", command.len()).into_bytes();
        for part in command {
            bytes.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
            bytes.extend_from_slice(part.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&bytes).await?;
        self.read_reply().await
    }

    /// Reads one reply: a scalar, or an array of scalars (all that `EXISTS`, `MGET` and `SELECT` answer).
    async fn read_reply(&mut self) -> anyhow::Result<Reply> {
        match self.read_header().await? {
            Header::Scalar(reply) => Ok(reply),
            Header::Array(len) => {
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    match self.read_header().await? {
                        Header::Scalar(reply) => items.push(reply),
                        Header::Array(_) => bail!("Redis answered a nested array"),
                    }
                }
                Ok(Reply::Array(items))
            }
        }
    }

    async fn read_header(&mut self) -> anyhow::Result<Header> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            bail!("Redis closed the connection");
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1.min(line.len()));
        let scalar = |reply| Ok(Header::Scalar(reply));
        match kind {
            "+" => scalar(Reply::Simple),
            "-" => bail!("Redis: {rest}"),
            ":" => scalar(Reply::Integer(rest.parse()?)),
            "$" => {
                let Ok(len) = usize::try_from(rest.parse::<i64>()?) else {
                    return scalar(Reply::Bulk(None));
                };
                let mut bytes = vec![0; len + 2];
                self.reader.read_exact(&mut bytes).await?;
                bytes.truncate(len);
                scalar(Reply::Bulk(Some(bytes)))
            }
            "*" => Ok(Header::Array(
                usize::try_from(rest.parse::<i64>()?).unwrap_or(0),
            )),
            _ => bail!("Redis answered {line:?}"),
        }
    }
}

/// The start of a reply: a whole scalar, or the length of an array whose elements follow.
enum Header {
    Scalar(Reply),
    Array(usize),
}
