#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts the local stack (unless it already runs) and
# the edge Worker under wrangler dev (KV-backed and Redis-backed), checks that the shared core builds
# for wasm32, runs every test, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/toolchain.sh

# shellcheck source=scripts/lib.sh
source scripts/lib.sh
stop_all() {
  scripts/edge-dev.sh stop kv || true
  scripts/edge-dev.sh stop redis || true
  stop_stack_if_started
}
stack_up_for_this_run
trap stop_all EXIT

echo "[test] building the edge Worker"
scripts/build-edge.sh
# A fresh token for the fill endpoint, passed as a local secret (never written to the repo). The tests
# get it as EDGE_FILL_TOKEN: FILL_TOKEN is also the consumer's own setting, and must not leak into it.
EDGE_FILL_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export EDGE_FILL_TOKEN
scripts/edge-dev.sh start kv 8787 --var "FILL_TOKEN:$EDGE_FILL_TOKEN"
scripts/edge-dev.sh start redis 8788 --var "FILL_TOKEN:$EDGE_FILL_TOKEN" --var CACHE_BACKEND:redis
export EDGE_KV_URL=http://127.0.0.1:8787 EDGE_REDIS_URL=http://127.0.0.1:8788

echo "[test] the shared core builds for wasm32-unknown-unknown"
cargo build --quiet -p pricefront-core --target wasm32-unknown-unknown

ignored=()
if [[ $(dev/stack.sh status) =~ (^|$'\n')bridge\ +running\ .*ready ]]; then
  ignored=(--include-ignored)
  export REST_PROXY_UP=1
else
  echo "[test] NOT RUN: the tests that publish through the Kafka REST proxy, because the proxy is not running:"
  dev/stack.sh status | grep "^bridge" | sed 's/^/[test]   /'
fi

echo "[test] cargo test (core, simulator, consumer, end to end)"
cargo build --quiet -p pricefront-consumer  # the binary the end-to-end tests start
cargo test -- --test-threads 3 "${ignored[@]}"

echo "[test] the reliability drills that fit in a few minutes (they restart Kafka and Redis: alone, one at a time)"
FILL_TOKEN=$EDGE_FILL_TOKEN cargo test -p pricefront-drills -- --test-threads 1

echo "[test] the Worker's real responses against openapi/edge.yaml (schemathesis)"
FILL_TOKEN=$EDGE_FILL_TOKEN scripts/openapi-check.sh
