#!/usr/bin/env bash
# The benchmarks (`make bench`): installs what is missing, starts the local stack (unless it already
# runs), builds the release consumer and the Worker, runs pricefront-bench (which prints its table and
# rewrites BENCHMARKS.md), and stops what it started. Loads are bounded and on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/toolchain.sh
if ! command -v wrk >/dev/null; then
  echo "[bench] installing wrk"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
# perf profiles the fill benchmark's consumer and floors (where the CPU goes); without it (or where the
# kernel forbids it) that table is left out.
if ! command -v perf >/dev/null; then
  echo "[bench] installing perf (linux-perf)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }; then
    echo "[bench] perf could not be installed: the fill benchmark runs without its profile"
  fi
fi
# shellcheck source=scripts/stack-session.sh
source scripts/stack-session.sh
stack_up_for_this_run
# The scale-out benchmark runs on three Kafka nodes beside the stack; the publish benchmark measures a
# second bridge, our shared-producer build, beside the stack's upstream one.
trap 'shared_bridge_down; cluster_down; stop_stack_if_started' EXIT
cluster_up_for_this_run
shared_bridge_up_for_this_run
scripts/build-edge.sh
cargo build --release -p pricefront-consumer -p pricefront-bench
PRICEFRONT_CONSUMER_BIN="$PWD/target/release/pricefront-consumer" target/release/pricefront-bench --write "$@"
