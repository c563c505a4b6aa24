#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts the local stack (unless it already runs),
# checks that the shared core builds for wasm32, runs every test, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/toolchain.sh

started_stack=false
if ! dev/stack.sh status | grep -q "^kafka .*running"; then
  started_stack=true
fi
stop_stack() { if $started_stack; then dev/stack.sh down || true; fi; }
trap stop_stack EXIT
dev/stack.sh up

echo "[test] the shared core builds for wasm32-unknown-unknown"
cargo build --quiet -p pricefront-core --target wasm32-unknown-unknown

ignored=()
if dev/stack.sh status | grep -q "^bridge .*running .*ready"; then
  ignored=(--include-ignored)
else
  echo "[test] NOT RUN: the tests that publish through the Kafka REST proxy, because the proxy is not running:"
  dev/stack.sh status | grep "^bridge" | sed 's/^/[test]   /'
fi

echo "[test] cargo test (core, simulator, consumer)"
cargo test -- --test-threads 3 "${ignored[@]}"
