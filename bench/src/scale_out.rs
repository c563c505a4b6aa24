//! Benchmark 7, scale-out of the consumers: a request topic of 12 partitions on the three-node cluster
//! (`Cluster::from_env`), one, two and three consumer processes on it (the fill rate and the CPU per
//! comparison for each count), and the rebalance when a third process joins two under a steady load
//! and when one of the three leaves (SIGTERM), with each group protocol: the classic one with the
//! incremental `cooperative-sticky` assignor, and KIP-848's (`group.protocol=consumer`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use futures::stream::{FuturesUnordered, StreamExt};
use pricefront_core::{Comparison, ProductId};
use pricefront_harness::machine::CpuTimes;
use pricefront_harness::{now_ms, Cluster, ConsumerProcess, Machine, TestEnv};
use tokio::time::{Instant, MissedTickBehavior};

use crate::args::Args;
use crate::fill::watch_fill;
use crate::report::Section;
use crate::usage::{FillUsage, Proc, UsageProbe};

/// The request topic's partitions: four for each of three processes.
const PARTITIONS: usize = 12;

/// The most consumer processes run at once.
const MOST_CONSUMERS: usize = 3;

/// The vendors' timeout in the vendors file, as in the fill benchmark.
const VENDOR_TIMEOUT_MS: u64 = 2_000;

/// How long a group may take to settle: to form, or to rebalance after a join or a leave.
const SETTLE_LIMIT: Duration = Duration::from_secs(90);

/// How often the members' assignments are read while a group settles.
const ASSIGNMENT_POLL: Duration = Duration::from_millis(50);

/// The steady load before the join, between the join and the leave, and after the leave.
const STEADY: Duration = Duration::from_secs(5);

/// How often the steady load publishes what is due.
const LOAD_TICK: Duration = Duration::from_millis(20);

/// How long the results of the steady load may take to be stored once it stops.
const RESULTS_LIMIT: Duration = Duration::from_secs(60);

/// Requests sent this long before an event and after its group settled count as sent around it.
const AROUND_MS: u64 = 1_000;

/// Publishing a fill's products runs this many batches at once (each `TestEnv::publish`, 64 in flight):
/// 1,024 sends in flight published 6,000 requests on the cluster at about 20,000 a second (4 batches:
/// 6,000 a second), well ahead of the fill.
const PUBLISH_BATCHES: usize = 16;

/// The group protocols compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// The classic protocol with the incremental `cooperative-sticky` assignor: the client's session
    /// (6 s) and heartbeat (2 s), the consumer's defaults.
    CooperativeSticky,
    /// KIP-848's consumer protocol: the broker assigns (its `uniform` assignor) and sets the session and
    /// the heartbeat (`group.consumer.*`, the broker's defaults here).
    Kip848,
}

impl Protocol {
    /// Both, in the order they run.
    const ALL: [Protocol; 2] = [Protocol::CooperativeSticky, Protocol::Kip848];

    /// Its name in the tables.
    fn name(self) -> &'static str {
        match self {
            Protocol::CooperativeSticky => "classic, `cooperative-sticky`",
            Protocol::Kip848 => "KIP-848, `group.protocol=consumer`",
        }
    }

    /// Its part of run labels.
    fn label(self) -> &'static str {
        match self {
            Protocol::CooperativeSticky => "coop",
            Protocol::Kip848 => "kip848",
        }
    }

    /// The consumer's flags that choose it.
    fn flags(self) -> &'static [&'static str] {
        match self {
            Protocol::CooperativeSticky => &[
                "--consumer-option",
                "group.protocol=classic",
                "--consumer-option",
                "partition.assignment.strategy=cooperative-sticky",
            ],
            Protocol::Kip848 => &["--consumer-option", "group.protocol=consumer"],
        }
    }
}

/// The in-flight window of each process: the first of `--max-in-flight`.
fn window(args: &Args) -> u32 {
    args.max_in_flight.first().copied().unwrap_or(256)
}

/// The consumer's flags for `protocol` at `window`.
fn consumer_flags(protocol: Protocol, window: &str) -> Vec<&str> {
    let mut flags = protocol.flags().to_vec();
    flags.extend(["--max-in-flight", window]);
    flags
}

/// Runs the fills and the rebalances with each protocol; the section.
pub async fn run(args: &Args) -> anyhow::Result<Section> {
    let cluster = Cluster::from_env()?;
    let mut fills = Vec::new();
    let mut rebalances = Vec::new();
    for protocol in Protocol::ALL {
        for consumers in 1..=MOST_CONSUMERS {
            let fill = fill_run(args, &cluster, protocol, consumers).await?;
            println!("{}", fill_row(&fill, &fills));
            fills.push(fill);
        }
        let rebalance = rebalance_run(args, &cluster, protocol).await?;
        for row in rebalance_rows(&rebalance) {
            println!("{row}");
        }
        rebalances.push(rebalance);
    }
    Ok(section(args, &fills, &rebalances))
}

/// What one fill by a group of `consumers` processes measured.
#[derive(Debug, Clone)]
struct FillRun {
    protocol: Protocol,
    consumers: usize,
    products: u64,
    /// How many stored results are complete (every vendor answered).
    complete: u64,
    /// From the first process's spawn until the group held every partition, balanced.
    formed: Duration,
    /// How long publishing the products took, the processes stopped.
    published: Duration,
    /// Whether the group rebalanced during the fill (it is then not a fill by a group of that size).
    rebalanced: bool,
    /// Results stored per second, from the first to the last.
    rate: f64,
    /// The processes' windows over the vendors' latency: what they could do with CPU to spare.
    ideal: f64,
    /// CPU seconds (user + sys) of all the consumer processes together per 1,000 results, over the fill.
    cpu_s_per_1000: f64,
    /// The consumer processes' CPU over the fill as a share of all the cores.
    consumers_share: f64,
    /// How busy all the cores were over the fill, whoever used them.
    busy_share: f64,
    /// The largest peak RSS of the processes, MiB.
    peak_rss_mib: f64,
}

/// A fresh test slice of the cluster named after `label`: a 12-partition request topic and the run's
/// simulated vendors.
async fn fresh_env(args: &Args, cluster: &Cluster, label: &str) -> anyhow::Result<TestEnv> {
    Ok(TestEnv::on_cluster(
        cluster,
        &format!("bench-{label}"),
        args.vendor_profiles(),
        VENDOR_TIMEOUT_MS,
        PARTITIONS as i32,
    )
    .await?)
}

/// Starts `consumers` processes with `protocol` on a fresh 12-partition topic of the cluster, waits
/// until the group holds every partition, then publishes the products and times their fill.
async fn fill_run(
    args: &Args,
    cluster: &Cluster,
    protocol: Protocol,
    consumers: usize,
) -> anyhow::Result<FillRun> {
    let label = format!("scale-{}-{consumers}", protocol.label());
    let env = fresh_env(args, cluster, &label).await?;
    let count = args.scale_out_products;
    // One request beyond the products, before the group forms: the publisher's first send connects,
    // reads the metadata and gets its producer id (about a second), which the fill is not to wait for.
    env.publish([env.product(count)]).await?;
    let window_flag = window(args).to_string();
    let flags = consumer_flags(protocol, &window_flag);
    let spawned = Instant::now();
    let processes = (0..consumers)
        .map(|i| env.start_consumer(&format!("{label}-{i}"), &flags))
        .collect::<Result<Vec<_>, _>>()?;
    let members: Vec<&ConsumerProcess> = processes.iter().collect();
    let formed = wait_settled(&label, &members, spawned, |_| true).await?;
    let warm_up = watch_fill(&label, &members, &[], 0, 1, SETTLE_LIMIT).await?;
    let already = warm_up.done_at_start;

    let products = env.products(count);
    let probes: Vec<_> = processes
        .iter()
        .enumerate()
        .map(|(i, p)| UsageProbe::new(&Proc, &format!("{label}-{i}"), p.child.id()))
        .collect();
    let assigned_before = rebalances(&members).await;
    let published = publish_held(&env, &processes, &products).await?;
    let machine_before = CpuTimes::now()?;
    let fill = watch_fill(
        &label,
        &members,
        &probes,
        already,
        count,
        Duration::from_secs(args.fill_limit_secs),
    )
    .await?;
    let busy_share = CpuTimes::now()?.busy_share_since(&machine_before);
    let usages = probes
        .iter()
        .zip(&fill.cpu_at_start)
        .map(|(probe, &at_first)| probe.at_end(at_first))
        .collect::<Result<Vec<_>, _>>()?;
    let results = env.stored(&products).await?;
    if results.len() as u64 != count {
        bail!("{label}: {} of {count} results in Redis", results.len());
    }
    let rebalanced = rebalances(&members).await > assigned_before;
    let filled = count.saturating_sub(fill.done_at_start);
    let cores = Machine::current().cpus as f64;
    Ok(FillRun {
        protocol,
        consumers,
        products: count,
        complete: results.iter().filter(|r| r.complete).count() as u64,
        formed: formed.settled,
        published,
        rebalanced,
        rate: fill.rate(count),
        ideal: latency_bound(consumers, window(args), args.vendor_latency_ms),
        cpu_s_per_1000: cpu_s_per_1000(&usages, filled),
        consumers_share: cpu_seconds_over(&usages) / (fill.seconds() * cores),
        busy_share,
        peak_rss_mib: usages.iter().map(|u| u.peak_rss_mib).fold(0.0, f64::max),
    })
}

/// What `processes` windows of `window` comparisons can do a second against vendors of `latency_ms`.
fn latency_bound(processes: usize, window: u32, latency_ms: u64) -> f64 {
    processes as f64 * f64::from(window) * 1000.0 / latency_ms.max(1) as f64
}

/// Publishes a request for each of `products` with `processes` stopped (SIGSTOP), then continues them
/// (SIGCONT); how long publishing took. The whole backlog comes first, with the group held still, so
/// that every member starts on it at once: published while they ran, the requests came in slower than
/// one process took them (the cluster's acknowledgements wait for the CPU the processes use).
async fn publish_held(
    env: &TestEnv,
    processes: &[ConsumerProcess],
    products: &[ProductId],
) -> anyhow::Result<Duration> {
    signal_all(processes, "STOP").await?;
    let published = publish_all(env, products).await;
    signal_all(processes, "CONT").await?;
    published
}

/// Publishes a request for each of `products`, [`PUBLISH_BATCHES`] batches at once; how long it took.
async fn publish_all(env: &TestEnv, products: &[ProductId]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let size = products.len().div_ceil(PUBLISH_BATCHES).max(1);
    futures::future::try_join_all(
        products
            .chunks(size)
            .map(|batch| env.publish(batch.iter().copied())),
    )
    .await?;
    Ok(started.elapsed())
}

/// Sends `signal` (`STOP`, `CONT`) to each of `processes`.
async fn signal_all(processes: &[ConsumerProcess], signal: &str) -> anyhow::Result<()> {
    for process in processes {
        let pid = process.child.id().to_string();
        let status = tokio::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(&pid)
            .status()
            .await
            .with_context(|| format!("kill -{signal} {pid}"))?;
        if !status.success() {
            bail!("kill -{signal} {pid} failed: {status}");
        }
    }
    Ok(())
}

/// The assignments the `members` have had so far, all together (`pricefront_rebalances_total`, assign).
async fn rebalances(members: &[&ConsumerProcess]) -> u64 {
    let readings = futures::future::join_all(
        members
            .iter()
            .map(|m| m.metric("pricefront_rebalances_total{event=\"assign\"}")),
    )
    .await;
    readings.iter().map(|v| v.unwrap_or(0.0) as u64).sum()
}

/// CPU seconds the processes used over the fill, all together.
fn cpu_seconds_over(usages: &[FillUsage]) -> f64 {
    usages.iter().map(|u| u.cpu_at_end - u.cpu_at_first).sum()
}

/// CPU seconds of all the processes together per 1,000 of the `filled` results.
fn cpu_s_per_1000(usages: &[FillUsage], filled: u64) -> f64 {
    usages.iter().map(|u| u.cpu_s_per_1000_fill(filled)).sum()
}

/// How a group's assignment went after an event: a spawn or a SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Settling {
    /// Until the first partition moved (the newcomer held one, or the survivors more than before).
    first_moved: Duration,
    /// Until every partition was held, balanced ([`settled`]).
    settled: Duration,
}

/// Whether `assigned` (the partitions each member holds) is a group settled on `partitions`: every
/// partition held, by members that each hold some, within one of each other, as both assignors
/// (`cooperative-sticky`, and the broker's `uniform`) leave one topic's partitions. (A KIP-848 newcomer
/// gets its partitions one member's revocation at a time: all held and every member with some is not
/// the end of it yet.)
fn settled(assigned: &[usize], partitions: usize) -> bool {
    let (Some(fewest), Some(most)) = (assigned.iter().min(), assigned.iter().max()) else {
        return false;
    };
    *fewest > 0 && most - fewest <= 1 && assigned.iter().sum::<usize>() == partitions
}

/// The partitions each of `members` holds now (0 for one whose `/metrics` does not answer).
async fn assignments(members: &[&ConsumerProcess]) -> Vec<usize> {
    futures::future::join_all(members.iter().map(|m| m.assigned_partitions())).await
}

/// Polls `members`' assignments from `since` until the group is [`settled`], noting when `moved` first
/// held; an error after [`SETTLE_LIMIT`].
async fn wait_settled(
    label: &str,
    members: &[&ConsumerProcess],
    since: Instant,
    moved: impl Fn(&[usize]) -> bool,
) -> anyhow::Result<Settling> {
    let mut first_moved = None;
    loop {
        let assigned = assignments(members).await;
        let at = since.elapsed();
        if first_moved.is_none() && moved(&assigned) {
            first_moved = Some(at);
        }
        if settled(&assigned, PARTITIONS) {
            return Ok(Settling {
                first_moved: first_moved.unwrap_or(at),
                settled: at,
            });
        }
        if at > SETTLE_LIMIT {
            let logs: Vec<String> = members
                .iter()
                .map(|m| m.log.display().to_string())
                .collect();
            bail!(
                "{label}: the group did not settle within {} s: partitions held {assigned:?}; logs: {}",
                SETTLE_LIMIT.as_secs(),
                logs.join(", ")
            );
        }
        tokio::time::sleep(ASSIGNMENT_POLL).await;
    }
}

/// What the join and the leave measured under a steady load.
#[derive(Debug, Clone)]
struct RebalanceRun {
    protocol: Protocol,
    /// Requests a second of the steady load.
    load: u32,
    /// A third process spawned beside two.
    join: Settling,
    /// One of the three sent SIGTERM.
    leave: Settling,
    /// From the SIGTERM until the leaving process exited.
    leaver_exited: Duration,
    /// Send-to-result latencies of the requests sent while two processes ran steadily.
    steady: Option<Latencies>,
    /// How long Kafka took to acknowledge those requests (`acks=all` on the three nodes).
    steady_acks: Option<Latencies>,
    /// The same for the requests sent around the join.
    around_join: Option<Latencies>,
    /// The same for the requests sent around the leave.
    around_leave: Option<Latencies>,
}

/// When the events of a rebalance run happened, in Unix milliseconds, and how they went.
struct Events {
    join_at_ms: u64,
    join: Settling,
    leave_at_ms: u64,
    leave: Settling,
    leaver_exited: Duration,
    /// The processes still running.
    members: Vec<ConsumerProcess>,
}

/// Two processes with `protocol` under a steady load on a fresh 12-partition topic; a third joins,
/// then one of the three leaves; the times of both rebalances and the latency of the requests around
/// them.
async fn rebalance_run(
    args: &Args,
    cluster: &Cluster,
    protocol: Protocol,
) -> anyhow::Result<RebalanceRun> {
    let label = format!("scale-{}-rebalance", protocol.label());
    let env = fresh_env(args, cluster, &label).await?;
    let window_flag = window(args).to_string();
    let flags = consumer_flags(protocol, &window_flag);
    let spawned = Instant::now();
    let pair = (0..2)
        .map(|i| env.start_consumer(&format!("{label}-{i}"), &flags))
        .collect::<Result<Vec<_>, _>>()?;
    wait_settled(&label, &pair.iter().collect::<Vec<_>>(), spawned, |_| true).await?;

    let stop = AtomicBool::new(false);
    let load_limit = SETTLE_LIMIT * 2 + STEADY * 4;
    let load_started_ms = now_ms();
    let (sent, events) = tokio::join!(
        paced_load(&env, args.scale_out_load, &stop, load_limit),
        async {
            let events = join_then_leave(&env, &label, &flags, pair).await;
            stop.store(true, Ordering::Relaxed);
            events
        }
    );
    let (sent, events) = (sent?, events?);
    let products: Vec<ProductId> = sent.iter().map(|s| s.product).collect();
    let results = env.wait_for_results(&products, RESULTS_LIMIT).await?;
    drop(events.members);
    let latencies = request_latencies(&sent, &results);
    let acks: Vec<(u64, u64)> = sent
        .iter()
        .map(|s| (s.sent_ms, s.acked_ms.saturating_sub(s.sent_ms)))
        .collect();
    let around = |at_ms: u64, settling: Settling| {
        let end = at_ms + settling.settled.as_millis() as u64 + AROUND_MS;
        Latencies::of_sent_between(&latencies, at_ms.saturating_sub(AROUND_MS), end)
    };
    Ok(RebalanceRun {
        protocol,
        load: args.scale_out_load,
        join: events.join,
        leave: events.leave,
        leaver_exited: events.leaver_exited,
        steady: Latencies::of_sent_between(
            &latencies,
            load_started_ms + AROUND_MS,
            events.join_at_ms,
        ),
        steady_acks: Latencies::of_sent_between(
            &acks,
            load_started_ms + AROUND_MS,
            events.join_at_ms,
        ),
        around_join: around(events.join_at_ms, events.join),
        around_leave: around(events.leave_at_ms, events.leave),
    })
}

/// Each of the `sent` requests that has a result among `results`: when it was sent, and how long after
/// that its result was computed (ms).
fn request_latencies(sent: &[Sent], results: &[Comparison]) -> Vec<(u64, u64)> {
    let computed: HashMap<ProductId, u64> = results
        .iter()
        .map(|r| (r.product_id, r.computed_at_ms))
        .collect();
    sent.iter()
        .filter_map(|s| {
            let computed_at = computed.get(&s.product)?;
            Some((s.sent_ms, computed_at.saturating_sub(s.sent_ms)))
        })
        .collect()
}

/// With `pair` working steadily: waits [`STEADY`], spawns a third process and waits until the group
/// settles, waits [`STEADY`], sends SIGTERM to the first of the three and waits until the other two
/// hold every partition, then waits [`STEADY`] again.
async fn join_then_leave(
    env: &TestEnv,
    label: &str,
    flags: &[&str],
    mut members: Vec<ConsumerProcess>,
) -> anyhow::Result<Events> {
    tokio::time::sleep(STEADY).await;
    let join_at_ms = now_ms();
    let spawned = Instant::now();
    members.push(env.start_consumer(&format!("{label}-joiner"), flags)?);
    let join = wait_settled(
        &format!("{label}: the join"),
        &members.iter().collect::<Vec<_>>(),
        spawned,
        |assigned| assigned.last().is_some_and(|&n| n > 0),
    )
    .await?;
    tokio::time::sleep(STEADY).await;

    let mut leaver = members.remove(0);
    let survivors: Vec<&ConsumerProcess> = members.iter().collect();
    let held_before: usize = assignments(&survivors).await.iter().sum();
    let leave_at_ms = now_ms();
    let signalled = Instant::now();
    // `terminate` waits for the exit with a blocking sleep: off the runtime, which serves the vendors.
    let exiting = tokio::task::spawn_blocking(move || {
        let code = leaver.terminate();
        (code, signalled.elapsed(), leaver)
    });
    let leave = wait_settled(
        &format!("{label}: the leave"),
        &survivors,
        signalled,
        |assigned| assigned.iter().sum::<usize>() > held_before,
    )
    .await?;
    let (code, leaver_exited, leaver) = exiting.await.context("waiting for the leaver")?;
    let code = code?;
    if code != 0 {
        bail!(
            "{label}: the leaving process exited with {code}; log: {}",
            leaver.log.display()
        );
    }
    tokio::time::sleep(STEADY).await;
    Ok(Events {
        join_at_ms,
        join,
        leave_at_ms,
        leave,
        leaver_exited,
        members,
    })
}

/// One request of the steady load: when it was sent and when Kafka acknowledged it (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    product: ProductId,
    sent_ms: u64,
    acked_ms: u64,
}

/// Publishes `rate` requests a second for new products of `env` until `stop` is set or `limit` has
/// passed; each request with when it was sent and acknowledged.
async fn paced_load(
    env: &TestEnv,
    rate: u32,
    stop: &AtomicBool,
    limit: Duration,
) -> anyhow::Result<Vec<Sent>> {
    let started = Instant::now();
    let mut ticker = tokio::time::interval(LOAD_TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sent: Vec<Sent> = Vec::new();
    let mut publishing = FuturesUnordered::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if stop.load(Ordering::Relaxed) || started.elapsed() > limit {
                    break;
                }
                let first = sent.len();
                let batch: Vec<ProductId> =
                    (first as u64..due_by(rate, started.elapsed())).map(|n| env.product(n)).collect();
                if !batch.is_empty() {
                    let sent_ms = now_ms();
                    sent.extend(batch.iter().map(|&product| Sent { product, sent_ms, acked_ms: sent_ms }));
                    let range = first..sent.len();
                    publishing.push(async move { env.publish(batch).await.map(|_| (range, now_ms())) });
                }
            }
            Some(published) = publishing.next(), if !publishing.is_empty() => {
                acknowledged(&mut sent, published?);
            }
        }
    }
    while let Some(published) = publishing.next().await {
        acknowledged(&mut sent, published?);
    }
    Ok(sent)
}

/// Marks the requests at `range` of `sent` acknowledged at `acked_ms`.
fn acknowledged(sent: &mut [Sent], (range, acked_ms): (std::ops::Range<usize>, u64)) {
    for request in sent.get_mut(range).unwrap_or_default() {
        request.acked_ms = acked_ms;
    }
}

/// How many requests are due `elapsed` into a load of `rate` a second.
fn due_by(rate: u32, elapsed: Duration) -> u64 {
    (f64::from(rate) * elapsed.as_secs_f64()) as u64
}

/// Send-to-result latencies of some requests (or send-to-acknowledgement), in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Latencies {
    count: usize,
    p50: u64,
    p99: u64,
    max: u64,
}

impl Latencies {
    /// The latencies of the requests sent in `[from_ms, to_ms)`, of `(sent at, latency)` pairs; none
    /// when none was sent then.
    fn of_sent_between(latencies: &[(u64, u64)], from_ms: u64, to_ms: u64) -> Option<Self> {
        let mut window: Vec<u64> = latencies
            .iter()
            .filter(|(at, _)| (from_ms..to_ms).contains(at))
            .map(|(_, latency)| *latency)
            .collect();
        window.sort_unstable();
        Some(Self {
            count: window.len(),
            p50: nearest_rank(&window, 0.50)?,
            p99: nearest_rank(&window, 0.99)?,
            max: *window.last()?,
        })
    }
}

/// The `q` quantile (0..=1) of `sorted` by the nearest-rank method; none when it is empty.
fn nearest_rank(sorted: &[u64], q: f64) -> Option<u64> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// The rate of the run of one process with `protocol` among `runs`.
fn one_process_rate(runs: &[FillRun], protocol: Protocol) -> Option<f64> {
    runs.iter()
        .find(|r| r.protocol == protocol && r.consumers == 1)
        .map(|r| r.rate)
}

/// A fill's row; × one process against the run of one process of the same protocol among `earlier`
/// (or this one).
fn fill_row(run: &FillRun, earlier: &[FillRun]) -> String {
    let one = one_process_rate(earlier, run.protocol)
        .or((run.consumers == 1).then_some(run.rate))
        .unwrap_or(f64::NAN);
    format!(
        "| {} | {} | {} | {} | {:.1} | {:.0} | {:.2}× | {:.0} | {:.2} | {:.0}% | {:.0}% | {:.1} | {:.1} |",
        run.protocol.name(),
        if run.rebalanced {
            format!("{} (rebalanced during the fill)", run.consumers)
        } else {
            run.consumers.to_string()
        },
        run.products,
        run.complete,
        run.formed.as_secs_f64(),
        run.rate,
        run.rate / one,
        run.ideal,
        run.cpu_s_per_1000,
        100.0 * run.consumers_share,
        100.0 * run.busy_share,
        run.peak_rss_mib,
        run.published.as_secs_f64(),
    )
}

/// A fill at this share of its latency-bound ideal or more is bounded by its windows (a comparison
/// waits for the slowest of its vendors: with five at 100 ms ±10%, no fill gets above 94%).
const WINDOW_BOUND_SHARE: f64 = 0.75;

/// Below [`WINDOW_BOUND_SHARE`], cores busy at least this share of the time bound a fill.
const CPU_BOUND_SHARE: f64 = 0.70;

/// What bounded a fill at `share_of_ideal` of its ideal with the cores `busy_share` busy.
fn bound(share_of_ideal: f64, busy_share: f64) -> &'static str {
    if share_of_ideal >= WINDOW_BOUND_SHARE {
        "the windows bound it"
    } else if busy_share >= CPU_BOUND_SHARE {
        "the cores bound it"
    } else {
        "neither the windows nor the cores"
    }
}

/// What the fills of `protocol` tell: each count against the latency-bound ideal, and what bounded it.
fn scaling_sentence(fills: &[FillRun], protocol: Protocol) -> String {
    let runs: Vec<String> = fills
        .iter()
        .filter(|r| r.protocol == protocol)
        .map(|r| {
            format!(
                "{} {:.0}/s, {:.0}% of the ideal, the cores {:.0}% busy: {}",
                match r.consumers {
                    1 => "one process".to_owned(),
                    n => format!("{n} processes"),
                },
                r.rate,
                100.0 * r.rate / r.ideal,
                100.0 * r.busy_share,
                bound(r.rate / r.ideal, r.busy_share)
            )
        })
        .collect();
    format!("{}: {}", protocol.name(), runs.join("; "))
}

/// Three processes' CPU per comparison against one's, beyond which a process more is taken to cost
/// CPU of its own.
const CPU_GROWTH_NOTED: f64 = 1.2;

/// What the CPU per comparison of three processes is against one's, for each protocol.
fn cpu_sentence(fills: &[FillRun]) -> String {
    let ratios: Vec<(Protocol, f64)> = Protocol::ALL
        .iter()
        .filter_map(|&p| {
            let of = |n| {
                fills
                    .iter()
                    .find(|r| r.protocol == p && r.consumers == n)
                    .map(|r| r.cpu_s_per_1000)
            };
            Some((p, of(MOST_CONSUMERS)? / of(1)?))
        })
        .collect();
    if ratios.is_empty() {
        return String::new();
    }
    let listed: Vec<String> = ratios
        .iter()
        .map(|(p, ratio)| format!("{ratio:.2}× ({})", p.label()))
        .collect();
    let verdict = if ratios.iter().all(|(_, ratio)| *ratio <= CPU_GROWTH_NOTED) {
        "a process more costs little CPU of its own"
    } else {
        "a process more costs CPU of its own: its Kafka client, its connections, more switching between processes"
    };
    format!(
        "The CPU per comparison of {MOST_CONSUMERS} processes, all together, is {} that of one: {verdict}.",
        listed.join(" and ")
    )
}

/// A rebalance run's rows: the steady load, the join and the leave.
fn rebalance_rows(run: &RebalanceRun) -> [String; 3] {
    let latencies = |l: Option<Latencies>| {
        l.map_or("| 0 | – | – | – |".to_owned(), |l| {
            format!("| {} | {} | {} | {} |", l.count, l.p50, l.p99, l.max)
        })
    };
    let name = run.protocol.name();
    [
        format!(
            "| {name} | steady: two processes, {} requests/s | – | – | – {}",
            run.load,
            latencies(run.steady)
        ),
        format!(
            "| {name} | join: a third process spawned | {:.1} | {:.1} | – {}",
            run.join.first_moved.as_secs_f64(),
            run.join.settled.as_secs_f64(),
            latencies(run.around_join)
        ),
        format!(
            "| {name} | leave: one of three sent SIGTERM | {:.1} | {:.1} | {:.1} {}",
            run.leave.first_moved.as_secs_f64(),
            run.leave.settled.as_secs_f64(),
            run.leaver_exited.as_secs_f64(),
            latencies(run.around_leave)
        ),
    ]
}

/// The section: the fills' table, then the rebalances' table and what they tell.
fn section(args: &Args, fills: &[FillRun], rebalances: &[RebalanceRun]) -> Section {
    let mut table = vec![
        "| protocol | processes | products | complete | group formed s | results stored/s | × one process | latency-bound ideal/s | CPU s per 1,000 (all processes, fill) | processes' share of the cores | all cores busy | peak RSS MiB (largest) | publishing took s (processes stopped) |".to_owned(),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |".to_owned(),
    ];
    for (i, run) in fills.iter().enumerate() {
        table.push(fill_row(run, &fills[..i]));
    }
    let scaling: Vec<String> = Protocol::ALL
        .iter()
        .map(|&p| scaling_sentence(fills, p))
        .collect();
    let mut notes = vec![
        format!(
            "Each row is a fresh topic of {PARTITIONS} partitions on the three-node cluster (replicated three times, two \
             in sync to acknowledge; the three nodes on this machine), a fresh group and {} fresh products; each process \
             runs at `--max-in-flight {}` against {} simulated vendors at {} ms ±10% (in the bench's process). The \
             processes join the empty topic first (\"group formed\": from the first spawn until the group holds every \
             partition, each member within one of the others); then they are stopped (SIGSTOP), the products are \
             published ({} batches of 64 sends in flight) and the processes continued (SIGCONT), so that every member \
             starts on the whole backlog at once and each row measures a group of that size only. (Published while the \
             group ran, the requests came in slower than one process took them: the cluster's acknowledgements wait for \
             the CPU the processes use. The stop is shorter than the 6 s session; continued, a process finds its \
             runtime late once, which takes a quarter off its window until it grows back, an eighth every 100 ms: a few \
             tenths of a second.) The rate counts from the first stored result to the \
             last; the ideal is the processes' windows over the vendors' latency; CPU is user + sys of the consumer \
             processes over the same span, summed, per 1,000 results; \"all cores busy\" is the whole machine over the \
             fill (Kafka's three nodes, Redis, the simulated vendors and the processes).",
            args.scale_out_products,
            window(args),
            args.vendors,
            args.vendor_latency_ms,
            PUBLISH_BATCHES,
        ),
        format!(
            "On {} cores: {}. A process more adds a window (as a larger `--max-in-flight` does, section 1) until \
             the cores run out; with cores to spare each would add up to its window's worth (the ideal). {}",
            Machine::current().cpus,
            scaling.join(". "),
            cpu_sentence(fills)
        ),
        String::new(),
        format!(
            "**Rebalances.** Two processes work steadily on a fresh topic under an open-loop load of {} new requests a \
             second; a third is spawned, and {} s after the group has settled the first of the three is sent SIGTERM \
             (it stops fetching, finishes its in-flight work, commits and leaves the group). \"First partition \
             moved\" is from the spawn until the newcomer holds a partition, or from the SIGTERM until the survivors \
             hold more than before; \"settled\" is until every partition is held, each member within one of the \
             others (4, 4, 4 after the join, 6, 6 after the leave), read from their `pricefront_assigned_partitions` \
             every {} ms. The latencies are from sending a request to its result being computed: of the requests \
             sent in steady state, and of those sent from {} s before each event until {} s after its group \
             settled, whose worst is the stall of the partitions that moved. {}",
            args.scale_out_load,
            STEADY.as_secs(),
            ASSIGNMENT_POLL.as_millis(),
            AROUND_MS / 1000,
            AROUND_MS / 1000,
            acks_sentence(rebalances),
        ),
        String::new(),
        "| protocol | event | first partition moved s | settled s | leaver exited s | requests sent | p50 ms | p99 ms | max ms |".to_owned(),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |".to_owned(),
    ];
    for run in rebalances {
        notes.extend(rebalance_rows(run));
    }
    notes.push(String::new());
    notes.push(protocol_note(fills, rebalances));
    Section {
        title: format!(
            "7. Scale-out: one, two and three consumer processes on {PARTITIONS} partitions; rebalances with \
             `cooperative-sticky` and KIP-848"
        ),
        table,
        notes,
    }
}

/// How long Kafka took to acknowledge the steady load's sends, part of every latency measured.
fn acks_sentence(rebalances: &[RebalanceRun]) -> String {
    let acks: Vec<String> = rebalances
        .iter()
        .filter_map(|r| {
            r.steady_acks.map(|a| {
                format!(
                    "p50 {} ms, p99 {} ms ({})",
                    a.p50,
                    a.p99,
                    r.protocol.label()
                )
            })
        })
        .collect();
    if acks.is_empty() {
        return String::new();
    }
    format!(
        "Kafka's acknowledgement of a send alone (`acks=all`, three nodes sharing the cores) took {} in \
         steady state: part of every latency here.",
        acks.join(" and ")
    )
}

/// The protocol that settled the join and the leave sooner, all told, and the other.
fn faster(rebalances: &[RebalanceRun]) -> Option<(&RebalanceRun, &RebalanceRun)> {
    let total = |r: &RebalanceRun| (r.join.settled + r.leave.settled).as_secs_f64();
    let [a, b] = rebalances else {
        return None;
    };
    Some(if total(a) <= total(b) { (a, b) } else { (b, a) })
}

/// What the documentation says of the two protocols, what was measured, and which to use.
fn protocol_note(fills: &[FillRun], rebalances: &[RebalanceRun]) -> String {
    let formed: Vec<String> = fills
        .iter()
        .filter(|r| r.consumers == MOST_CONSUMERS)
        .map(|r| format!("{:.1} s with {}", r.formed.as_secs_f64(), r.protocol.name()))
        .collect();
    let formed = if formed.is_empty() {
        String::new()
    } else {
        format!(
            "A group of {MOST_CONSUMERS} formed from cold in {} (\"group formed\" above).",
            formed.join(" and ")
        )
    };
    let (measured, speed) = match faster(rebalances) {
        Some((fast, slow)) => (
            format!(
                "Measured here, {} settled a join in {:.1} s and a leave in {:.1} s, against {:.1} s and {:.1} s \
                 for {}.",
                fast.protocol.name(),
                fast.join.settled.as_secs_f64(),
                fast.leave.settled.as_secs_f64(),
                slow.join.settled.as_secs_f64(),
                slow.leave.settled.as_secs_f64(),
                slow.protocol.name()
            ),
            if fast.protocol == Protocol::CooperativeSticky {
                "it rebalanced sooner here"
            } else {
                "though KIP-848 rebalanced sooner here"
            },
        ),
        None => (String::new(), "whatever its rebalances cost"),
    };
    format!(
        "**Which protocol.** Kafka's documentation (4.1, operations, \"Consumer Rebalance Protocol\") calls KIP-848's \
         protocol generally available since Kafka 4.0 and enabled on the broker by default, and says it decreases \
         rebalance times with a fully incremental design that no longer relies on a global synchronization barrier; \
         librdkafka made it production-ready in 2.12.0 (INTRODUCTION.md, \"Next Generation Consumer Group Protocol \
         (KIP-848)\") but keeps `classic` the default because of its contract changes: the session, the heartbeat \
         and the assignor move to the broker (`group.consumer.session.timeout.ms`, \
         `group.consumer.heartbeat.interval.ms`, `group.remote.assignor`), and librdkafka refuses to create a \
         consumer that sets `session.timeout.ms`, `heartbeat.interval.ms` or `partition.assignment.strategy` with \
         `group.protocol=consumer` (so the consumer sets its 6 s session and 2 s heartbeat only under the classic \
         protocol). The brokers here keep their defaults: a 5 s heartbeat for KIP-848 groups, which paces how soon \
         a member learns of a new assignment, and a 45 s session (45 s is also the least a group may ask for, \
         `group.consumer.min.session.timeout.ms`) against our 6 s under the classic protocol. {measured} {formed} The consumer's default is the \
         classic protocol with `cooperative-sticky`: {speed}, it is incremental too (only the partitions that move \
         stop), and its 6 s session lets a survivor take a crashed member's partitions over in under 15 s, where a \
         KIP-848 group waits out the broker's 45 s unless its brokers' `group.consumer.min.session.timeout.ms` and \
         the group's `consumer.session.timeout.ms` are lowered. KIP-848 is one option away \
         (`--consumer-option group.protocol=consumer`) once the brokers are ours to tune."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_settled_when_every_partition_is_held_evenly_by_every_member() {
        assert!(settled(&[12], 12));
        assert!(settled(&[6, 6], 12));
        assert!(settled(&[4, 4, 4], 12));
        assert!(settled(&[5, 4], 9));
        // The newcomer holds nothing yet.
        assert!(!settled(&[6, 6, 0], 12));
        // Revoked from the others, not assigned yet.
        assert!(!settled(&[4, 4, 0], 12));
        // A KIP-848 newcomer with one member's partitions only: all held, but not settled.
        assert!(!settled(&[4, 6, 2], 12));
        // A member's metrics not read (0), or a partition held twice during a handover.
        assert!(!settled(&[4, 4, 5], 12));
        assert!(!settled(&[], 12));
    }

    fn usage(cpu_at_first: f64, cpu_at_end: f64, peak_rss_mib: f64) -> FillUsage {
        FillUsage {
            cpu_at_first,
            cpu_at_end,
            peak_rss_mib,
            files_rss_mib: 0.0,
        }
    }

    #[test]
    fn the_cpu_per_comparison_is_every_process_s_cpu_over_the_fill() {
        // 1.5 s and 0.5 s over the fill (their start not counted) for 4,000 results: 0.5 s per 1,000.
        let usages = [usage(1.0, 2.5, 70.0), usage(2.0, 2.5, 80.0)];
        assert!((cpu_s_per_1000(&usages, 4_000) - 0.5).abs() < 1e-12);
        assert!((cpu_seconds_over(&usages) - 2.0).abs() < 1e-12);
        assert_eq!(cpu_s_per_1000(&[], 4_000), 0.0);
    }

    #[test]
    fn the_ideal_is_every_window_over_the_latency() {
        assert_eq!(latency_bound(1, 256, 100), 2_560.0);
        assert_eq!(latency_bound(3, 256, 100), 7_680.0);
        assert_eq!(latency_bound(1, 10, 0), 10_000.0);
    }

    #[test]
    fn a_fill_near_its_ideal_is_bounded_by_the_windows_one_far_below_by_busy_cores() {
        assert_eq!(bound(0.82, 0.45), "the windows bound it");
        assert_eq!(bound(0.57, 0.85), "the cores bound it");
        assert_eq!(bound(0.50, 0.40), "neither the windows nor the cores");
    }

    #[test]
    fn the_load_is_due_at_its_rate() {
        assert_eq!(due_by(500, Duration::from_millis(0)), 0);
        assert_eq!(due_by(500, Duration::from_millis(19)), 9);
        assert_eq!(due_by(500, Duration::from_secs(3)), 1_500);
    }

    #[test]
    fn latencies_are_of_the_requests_sent_in_the_window() {
        // Sent at 1,000 + i ms with a latency of 100 + i ms, i = 0..100.
        let sent: Vec<(u64, u64)> = (0..100).map(|i| (1_000 + i, 100 + i)).collect();
        let all = Latencies::of_sent_between(&sent, 0, 5_000).expect("some");
        assert_eq!(all.count, 100);
        assert_eq!((all.p50, all.p99, all.max), (149, 198, 199));
        let late = Latencies::of_sent_between(&sent, 1_090, 1_100).expect("some");
        assert_eq!((late.count, late.p50, late.max), (10, 194, 199));
        assert_eq!(Latencies::of_sent_between(&sent, 0, 1_000), None);
    }

    fn rebalance(protocol: Protocol, join_s: u64, leave_s: u64) -> RebalanceRun {
        let settling = |s| Settling {
            first_moved: Duration::from_secs(s),
            settled: Duration::from_secs(s),
        };
        RebalanceRun {
            protocol,
            load: 500,
            join: settling(join_s),
            leave: settling(leave_s),
            leaver_exited: Duration::ZERO,
            steady: None,
            steady_acks: None,
            around_join: None,
            around_leave: None,
        }
    }

    #[test]
    fn the_faster_protocol_settled_the_join_and_the_leave_sooner_all_told() {
        let classic = rebalance(Protocol::CooperativeSticky, 4, 1);
        let kip848 = rebalance(Protocol::Kip848, 3, 5);
        let runs = [classic, kip848];
        let (fast, slow) = faster(&runs).expect("two runs");
        assert_eq!(
            (fast.protocol, slow.protocol),
            (Protocol::CooperativeSticky, Protocol::Kip848)
        );
        let runs = [
            rebalance(Protocol::CooperativeSticky, 4, 4),
            rebalance(Protocol::Kip848, 3, 3),
        ];
        assert_eq!(
            faster(&runs).map(|(f, _)| f.protocol),
            Some(Protocol::Kip848)
        );
        assert!(faster(&runs[..1]).is_none());
    }

    #[test]
    fn nearest_rank_quantiles() {
        assert_eq!(nearest_rank(&[], 0.5), None);
        assert_eq!(nearest_rank(&[7], 0.0), Some(7));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 0.5), Some(2));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 1.0), Some(4));
    }

    #[test]
    fn each_protocol_has_its_flags_and_the_window() {
        let classic = consumer_flags(Protocol::CooperativeSticky, "256");
        assert!(classic.contains(&"partition.assignment.strategy=cooperative-sticky"));
        assert!(!classic.contains(&"group.protocol=consumer"));
        let kip848 = consumer_flags(Protocol::Kip848, "256");
        assert_eq!(
            kip848,
            [
                "--consumer-option",
                "group.protocol=consumer",
                "--max-in-flight",
                "256"
            ]
        );
    }
}
