#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts the local stack (unless it already runs: Kafka,
# the Strimzi Kafka Bridge, Redis; a part that cannot start fails the run), the service's back end (the
# vendor simulator and a consumer on the edge's topic, filling the KV-backed Worker) and the edge Worker
# under wrangler dev six times (KV-backed, Redis-backed, KV with Redis behind it, one whose REST proxy is a
# closed port, and two misconfigured ones),
# checks that the shared core builds for wasm32, runs every test, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/toolchain.sh

# The code's shape first: a formatting slip or a lint fails the run before the stack starts. Every crate,
# the non-default members (bench, drills) included; the edge for its own target.
echo "[test] cargo fmt --check and clippy -D warnings (every crate; the edge for wasm32)"
cargo fmt --all -- --check
cargo clippy --quiet --workspace --exclude pricefront-edge --all-targets -- -D warnings
cargo clippy --quiet -p pricefront-edge --target wasm32-unknown-unknown -- -D warnings

# shellcheck source=scripts/stack-session.sh
source scripts/stack-session.sh
service_pids=()
stop_all() {
  for pid in "${service_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${service_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/edge-dev.sh stop kv || true
  scripts/edge-dev.sh stop redis || true
  scripts/edge-dev.sh stop kvredis || true
  scripts/edge-dev.sh stop noproxy || true
  scripts/edge-dev.sh stop notoken || true
  scripts/edge-dev.sh stop v3nocluster || true
  cluster_down
  stop_stack_if_started
}
stack_up_for_this_run
trap stop_all EXIT

# A three-node cluster beside the stack (its bridge sharing one producer among its connections), for the
# test that every producer keeps acks=all (e2e/tests/cluster_acks.rs), the one that its bridge's producer
# is shared (e2e/tests/cluster_bridge.rs) and the cluster's drills.
cluster_up_for_this_run

echo "[test] building the edge Worker"
scripts/build-edge.sh
# The Worker's size budget (a Worker's size is its cold start and its upload limit): it once grew past it
# unnoticed, from 285 to 319 KB, while features were added.
wasm_budget=300000
wasm_bytes=$(stat -c %s edge/build/index_bg.wasm)
if (( wasm_bytes > wasm_budget )); then
  echo "[test] FAIL: edge/build/index_bg.wasm is $wasm_bytes bytes, over its budget of $wasm_budget" >&2
  exit 1
fi
echo "[test] the edge's wasm is $wasm_bytes bytes (budget $wasm_budget)"
# A fresh token for the fill endpoint, passed as a local secret (never written to the repo). The tests
# get it as EDGE_FILL_TOKEN (FILL_TOKEN is the consumer's own setting: the tests never set it).
EDGE_FILL_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export EDGE_FILL_TOKEN
scripts/edge-dev.sh start kv 8787 --var "FILL_TOKEN:$EDGE_FILL_TOKEN" --var MISS_RATE_LIMIT_KEY:off
scripts/edge-dev.sh start redis 8788 --var "FILL_TOKEN:$EDGE_FILL_TOKEN" --var CACHE_BACKEND:redis --var MISS_RATE_LIMIT_KEY:off
# KV first, Redis behind it; the consumer never fills its KV, so what it serves of a new product came via Redis.
scripts/edge-dev.sh start kvredis 8801 --var "FILL_TOKEN:$EDGE_FILL_TOKEN" --var CACHE_BACKEND:kv+redis --var MISS_RATE_LIMIT_KEY:off
# Port 9 (discard) has no listener here: every publish of this Worker fails to connect.
scripts/edge-dev.sh start noproxy 8786 --var "FILL_TOKEN:$EDGE_FILL_TOKEN" --var REST_PROXY_URL:http://127.0.0.1:9 --var MISS_RATE_LIMIT_KEY:off
# Two misconfigured Workers: no fill token, and the v3 API without a cluster id (both a 500 of their own).
scripts/edge-dev.sh start notoken 8799 --var MISS_RATE_LIMIT_KEY:off
scripts/edge-dev.sh start v3nocluster 8800 --var REST_PROXY_API:v3 --var MISS_RATE_LIMIT_KEY:off
export EDGE_KV_URL=http://127.0.0.1:8787 EDGE_REDIS_URL=http://127.0.0.1:8788 EDGE_NO_PROXY_URL=http://127.0.0.1:8786
export EDGE_KV_REDIS_URL=http://127.0.0.1:8801
export EDGE_NO_FILL_TOKEN_URL=http://127.0.0.1:8799 EDGE_V3_NO_CLUSTER_URL=http://127.0.0.1:8800

echo "[test] the shared core builds for wasm32-unknown-unknown"
cargo build --quiet -p pricefront-core --target wasm32-unknown-unknown

echo "[test] the service's back end: the vendor simulator and a consumer on the edge's topic"
cargo build --quiet -p pricefront-consumer -p vendor-sim -p pricefront-catalog  # also the binaries the end-to-end tests start
mkdir -p .run/logs
target/debug/vendor-sim --listen 127.0.0.1:9400 > .run/logs/test-vendor-sim.log 2>&1 &
service_pids+=($!)
target/debug/pricefront-consumer --vendors config/vendors.toml --metrics-listen 127.0.0.1:9465 \
  --fill-url "$EDGE_KV_URL" --fill-token "$EDGE_FILL_TOKEN" > .run/logs/test-consumer.log 2>&1 &
service_pids+=($!)
for _ in $(seq 1 120); do
  curl -sf -o /dev/null -m 2 http://127.0.0.1:9465/readyz && break
  kill -0 "${service_pids[1]}" 2>/dev/null || { tail -30 .run/logs/test-consumer.log; echo "[test] the consumer exited" >&2; exit 1; }
  sleep 0.5
done
curl -sf -o /dev/null -m 2 http://127.0.0.1:9465/readyz || { tail -30 .run/logs/test-consumer.log; echo "[test] the consumer is not ready after 60 s" >&2; exit 1; }

echo "[test] cargo test (core, simulator, consumer, catalog, harness, end to end)"
cargo test -- --test-threads 3
# Not default members: the benchmarks' unit tests (the ceiling arithmetic behind "What this machine
# allows", the charts) and the drills' own (their checks); the drills themselves run below.
echo "[test] the unit tests of the benchmarks and the drills"
cargo test -p pricefront-bench
cargo test -p pricefront-drills --lib --bins

echo "[test] the reliability drills that fit in a few minutes (they restart Kafka, Redis and the bridge: alone, one at a time)"
# With the release consumer, as `make drills`: a debug build at window 256 is CPU-bound on 2 cores, and
# its own slowness then looks like vendor timeouts (the vendor-faults drill saw its circuits open before
# any fault was injected).
cargo build --quiet --release -p pricefront-consumer
PRICEFRONT_CONSUMER_BIN="$PWD/target/release/pricefront-consumer" cargo test -p pricefront-drills -- --test-threads 1

echo "[test] the Worker's real responses against openapi/edge.yaml (schemathesis)"
scripts/openapi-check.sh
