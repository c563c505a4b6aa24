//! `pricefront-bench`: the benchmarks, against the real local stack (`dev/stack.sh up`), each
//! beside its baseline in the same run. Prints a table; `--write` also rewrites BENCHMARKS.md.
//!
//! 1. Fill throughput: comparisons per second of the consumer (release build) at each in-flight window
//!    (`--max-in-flight`), against the same consumer one message at a time per partition
//!    (`--mode sequential`), and against the latency-bound ideal (max_in_flight / vendor latency). Peak memory of the consumer.
//! 2. Edge hit path: wrk against the Worker under `wrangler dev` and against a plain JavaScript Worker
//!    doing the same (`bench/peers/js-worker/`), each beside its `/healthz`, in alternating rounds; ours
//!    like for like (`HOT_CACHE_MS=0`, a KV read per hit as the peer) headlined beside ours with the
//!    isolate's hot cache, both also at the peer's offered load (an open loop, [`paced`], 200s only
//!    counted as hits); the wasm's size and each Worker's start time.
//! 3. Miss to filled: from sending the first GET (answered 202 once the edge has published) to receiving
//!    the first 200, through the Strimzi Kafka Bridge, Kafka, the consumer, vendors at a fixed latency
//!    and both sinks, beside that vendor latency.
//! 4. Publish path: distinct misses per second through the edge and the bridge, beside the hit path of the
//!    same Worker under the same load loop; every accepted publish counted in the topic.
//! 6. Authentication: the consumer's CPU per comparison with each kind a vendor profile can use (none, a
//!    key in the query, OAuth 2.0, RSA-signed headers per request and reused), in the same run.
//! 7. Scale-out: one, two and three consumer processes on a 12-partition topic of the three-node cluster
//!    (fill rate, CPU per comparison), and the rebalance when a process joins or leaves under load, with
//!    the classic protocol's `cooperative-sticky` and with KIP-848's `group.protocol=consumer`.

mod args;
mod auth_cost;
mod cpu_profile;
mod edge;
mod fill;
mod ids;
mod isolate_profile;
mod miss;
mod paced;
mod path_cpu;
mod peer_consumer;
mod plot;
mod prefer;
mod publish;
mod report;
mod scale_out;
mod spread;
mod usage;

use clap::Parser;

use args::{Args, Bench};

// The simulated vendors run in this process, on the same 2 cores as the consumers they serve: with
// glibc's allocator, malloc and free took a sixth of its CPU. (The vendors of production run elsewhere.)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut sections = Vec::new();
    if args.runs(Bench::Fill) {
        sections.push(fill::run(&args).await?);
    }
    if args.runs(Bench::Edge) {
        sections.push(edge::run(&args).await?);
    }
    if args.runs(Bench::Miss) {
        sections.extend(miss::run(&args).await?);
    }
    if args.runs(Bench::Auth) {
        sections.push(auth_cost::run(&args).await?);
    }
    if args.runs(Bench::ScaleOut) {
        sections.push(scale_out::run(&args).await?);
    }
    let text = report::render(&args, &sections);
    println!("{text}");
    if args.write {
        let path = pricefront_harness::repo_path("BENCHMARKS.md");
        let text = if args.only.is_empty() {
            text
        } else {
            report::merge(
                &std::fs::read_to_string(&path)?,
                &sections,
                &report::machine(),
            )
        };
        std::fs::write(path, text)?;
        println!("(written to BENCHMARKS.md)");
    }
    Ok(())
}
