//! What the drills share: the stack script, reading results from Redis, consumer logs, health and
//! memory, and the simulator's counts.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use pricefront_core::{cache_key, Comparison, ProductId};
use pricefront_harness::{profiles, vendor, ConsumerProcess, TestEnv};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use tokio::time::Instant;
use vendor_sim::{BodyShape, Profiles};

use crate::DrillError;

/// How often the drills poll.
pub(crate) const POLL: Duration = Duration::from_millis(200);

/// Runs `dev/stack.sh args` with `env` added, within `limit`; returns how long it took.
pub(crate) async fn stack(
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> Result<Duration, DrillError> {
    let started = Instant::now();
    let mut command = tokio::process::Command::new(pricefront_harness::repo_path("dev/stack.sh"));
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(limit, command.output())
        .await
        .map_err(|_| DrillError::Timeout {
            what: format!("`dev/stack.sh {}`", args.join(" ")),
            limit,
        })??;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<_> = text.lines().collect();
        return Err(DrillError::Stack {
            args: args.join(" "),
            status: output.status.to_string(),
            output: lines[lines.len().saturating_sub(15)..].join("\n"),
        });
    }
    Ok(started.elapsed())
}

/// A new connection to the Redis of the stack, bounded in time.
pub(crate) async fn redis_connection() -> Result<redis::aio::MultiplexedConnection, DrillError> {
    let client = redis::Client::open(pricefront_harness::redis_url())?;
    let connect = client.get_multiplexed_async_connection();
    tokio::time::timeout(Duration::from_secs(3), connect)
        .await
        .map_err(|_| DrillError::Timeout {
            what: "a connection to Redis".into(),
            limit: Duration::from_secs(3),
        })?
        .map_err(DrillError::from)
}

/// The results stored in Redis for `products` (entries that parse as comparisons).
pub(crate) async fn stored(products: &[ProductId]) -> Result<Vec<Comparison>, DrillError> {
    let mut connection = redis_connection().await?;
    let mut found = Vec::with_capacity(products.len());
    for chunk in products.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|p| cache_key(*p)).collect();
        let mut mget = redis::cmd("MGET");
        mget.arg(&keys);
        let read = mget.query_async(&mut connection);
        let values: Vec<Option<Vec<u8>>> = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .map_err(|_| DrillError::Timeout {
                what: "an MGET from Redis".into(),
                limit: Duration::from_secs(5),
            })??;
        found.extend(
            values
                .into_iter()
                .flatten()
                .filter_map(|bytes| Comparison::from_json(&bytes).ok()),
        );
    }
    Ok(found)
}

/// Waits until every product has a stored result or `limit` passes, tolerating Redis being away
/// meanwhile; returns what one final read finds (so a count is never from before a loss).
pub(crate) async fn wait_stored(
    products: &[ProductId],
    limit: Duration,
) -> Result<Vec<Comparison>, DrillError> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(found) = stored(products).await {
            if found.len() == products.len() {
                return Ok(found);
            }
        }
        tokio::time::sleep(POLL).await;
    }
    stored(products).await
}

/// Waits until at least `at_least` of `products` have stored results; fails after `limit`.
pub(crate) async fn wait_progress(
    products: &[ProductId],
    at_least: usize,
    limit: Duration,
) -> Result<usize, DrillError> {
    let deadline = Instant::now() + limit;
    loop {
        let count = stored(products).await?.len();
        if count >= at_least {
            return Ok(count);
        }
        if Instant::now() >= deadline {
            return Err(DrillError::Timeout {
                what: format!("{at_least} stored results (only {count})"),
                limit,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Three well-behaved vendors, 50 to 150 ms each.
pub(crate) fn three_healthy_vendors() -> Profiles {
    profiles([
        ("alpha", vendor((50, 150), BodyShape::Nested)),
        ("bravo", vendor((50, 150), BodyShape::Flat)),
        ("charlie", vendor((50, 150), BodyShape::Nested)),
    ])
}

/// The first `count` products of `env`.
pub(crate) fn products(env: &TestEnv, count: u64) -> Vec<ProductId> {
    (0..count).map(|n| env.product(n)).collect()
}

/// Vendor calls beyond one round per product, and the extra rounds they make (rounded up).
pub(crate) fn extra_rounds(env: &TestEnv, products: usize) -> (u64, u64) {
    let vendors = env.profiles.vendors.len() as u64;
    let calls: u64 = env.simulator.request_counts().values().sum();
    let extra = calls.saturating_sub(vendors * products as u64);
    (extra, extra.div_ceil(vendors.max(1)))
}

/// How many comparison rounds the vendors saw for each product of `env` (the simulator's count, see
/// [`vendor_sim::Simulator::rounds_by_product`]; no log line is read).
pub(crate) fn compared_counts(env: &TestEnv) -> HashMap<String, u32> {
    env.simulator
        .rounds_by_product()
        .into_iter()
        .map(|(product, rounds)| (product, u32::try_from(rounds).unwrap_or(u32::MAX)))
        .collect()
}

/// The products compared more than once.
pub(crate) fn compared_twice(counts: &HashMap<String, u32>) -> u64 {
    counts.values().filter(|&&n| n > 1).count() as u64
}

/// Waits until `consumers` all hold partitions, `total` between them.
pub(crate) async fn wait_assigned(
    consumers: &[&ConsumerProcess],
    total: usize,
    limit: Duration,
) -> Result<(), DrillError> {
    let deadline = Instant::now() + limit;
    loop {
        let counts: Vec<usize> = consumers.iter().map(|c| c.assigned_partitions()).collect();
        if counts.iter().all(|&n| n > 0) && counts.iter().sum::<usize>() == total {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(DrillError::Timeout {
                what: format!("an assignment of {total} partitions to every consumer ({counts:?})"),
                limit,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits (within `limit`, polling every 100 ms) until any of the first 500 of `products` has a stored
/// result; false when none had one in time or `products` is empty.
pub(crate) async fn wait_any_stored(
    products: &[ProductId],
    limit: Duration,
) -> Result<bool, DrillError> {
    let deadline = Instant::now() + limit;
    let sample = &products[..products.len().min(500)];
    while !sample.is_empty() && Instant::now() < deadline {
        if !stored(sample).await?.is_empty() {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(false)
}

/// Waits (within `limit`) for every product's result, records how many are lost in `report`, and notes
/// how long after `fault` (which ended at `since`) the last one was stored.
pub(crate) async fn record_lost(
    report: &mut crate::DrillReport,
    products: &[ProductId],
    limit: Duration,
    fault: &str,
    since: Instant,
) -> Result<Vec<Comparison>, DrillError> {
    let results = wait_stored(products, limit).await?;
    let lost = (products.len() - results.len()) as u64;
    report.lost = Some(lost);
    report.check(
        lost == 0,
        format!("{lost} requests without a stored result {limit:?} after {fault}"),
    );
    if lost == 0 {
        report.note(format!(
            "every result was stored {} after {fault}",
            secs(since.elapsed())
        ));
    }
    Ok(results)
}

/// Checks that `consumer` outlived the fault and is ready again, by itself, within a minute.
pub(crate) async fn check_recovered(
    report: &mut crate::DrillReport,
    consumer: &mut ConsumerProcess,
) {
    match exit_status(consumer) {
        Some(status) => report.fail(format!("the consumer exited: {status}")),
        None => match wait_ready(consumer, Duration::from_secs(60)).await {
            Ok(_) => {
                report.note("the same consumer process recovered by itself: /readyz 200 at the end")
            }
            Err(error) => report.fail(format!("the consumer did not become ready again: {error}")),
        },
    }
}

/// Whether the consumer process still runs (`None`); its exit status otherwise.
pub(crate) fn exit_status(consumer: &mut ConsumerProcess) -> Option<String> {
    match consumer.child.try_wait() {
        Ok(None) => None,
        Ok(Some(status)) => Some(status.to_string()),
        Err(error) => Some(format!("unknown ({error})")),
    }
}

/// The status of `GET url`, within 5 s.
pub(crate) async fn status_of(url: &str) -> Result<u16, DrillError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    Ok(client.get(url).send().await?.status().as_u16())
}

/// Waits until the consumer's `/readyz` answers 200; returns how long that took.
pub(crate) async fn wait_ready(
    consumer: &ConsumerProcess,
    limit: Duration,
) -> Result<Duration, DrillError> {
    let started = Instant::now();
    let url = format!("http://127.0.0.1:{}/readyz", consumer.metrics_port);
    while started.elapsed() < limit {
        if matches!(status_of(&url).await, Ok(200)) {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
    Err(DrillError::Timeout {
        what: "the consumer's /readyz answering 200".into(),
        limit,
    })
}

/// Peak and current resident memory of a process, in KiB (`VmHWM`, `VmRSS` of /proc/PID/status).
pub(crate) fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// How many records `topic` (3 partitions) holds, from its watermarks.
pub(crate) async fn records_in(topic: &str) -> Result<i64, DrillError> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", pricefront_harness::brokers())
            .create()?;
        let mut total = 0;
        for partition in 0..3 {
            let (low, high) =
                consumer.fetch_watermarks(&topic, partition, Duration::from_secs(10))?;
            total += high - low;
        }
        Ok(total)
    })
    .await
    .map_err(|error| DrillError::Precondition(format!("watermark task: {error}")))?
}

/// Checks that Kafka and Redis answer before a drill starts (the harness panics when they do not).
pub(crate) async fn check_stack() -> Result<(), DrillError> {
    redis_connection().await.map_err(|error| {
        DrillError::Precondition(format!(
            "Redis at {} does not answer ({error}); start the stack with `dev/stack.sh up`",
            pricefront_harness::redis_url()
        ))
    })?;
    let brokers = pricefront_harness::brokers();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()?;
        consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|_| ())
            .map_err(|error| {
                DrillError::Precondition(format!(
                    "Kafka at {brokers} does not answer ({error}); start the stack with `dev/stack.sh up`"
                ))
            })
    })
    .await
    .map_err(|error| DrillError::Precondition(format!("metadata task: {error}")))?
}

/// Seconds with one decimal, for notes.
pub(crate) fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}
