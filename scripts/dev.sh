#!/usr/bin/env bash
# Runs the whole service locally in the foreground: Kafka, the REST proxy (where it can be had), Redis,
# the vendor simulator, the consumer, the edge Worker under wrangler dev on 127.0.0.1:8787, and a
# Prometheus on 127.0.0.1:9090 scraping the consumer with the rules of ops/prometheus/ loaded.
# Ctrl-C (or SIGTERM) stops everything it started, and only that: a stack that was already running
# (Kafka, the REST proxy, Redis) is left running (scripts/stack-session.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/toolchain.sh
# shellcheck source=scripts/stack-session.sh
source scripts/stack-session.sh
stack_up_for_this_run
scripts/build-edge.sh
cargo build --release -p vendor-sim -p pricefront-consumer

pids=()
stop_all() {
  trap - INT TERM EXIT
  echo; echo "[dev] stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/edge-dev.sh stop dev || true
  stop_stack_if_started
}
trap stop_all INT TERM EXIT

mkdir -p .run/logs
target/release/vendor-sim --listen 127.0.0.1:9400 > .run/logs/vendor-sim.log 2>&1 &
pids+=($!)
FILL_TOKEN=${FILL_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
export FILL_TOKEN
scripts/edge-dev.sh start dev 8787 --var "FILL_TOKEN:$FILL_TOKEN" --var "CACHE_BACKEND:${CACHE_BACKEND:-kv}"
# The consumer fills Redis and, through its fill endpoint, the Worker's KV.
target/release/pricefront-consumer --vendors config/vendors.toml --fill-url http://127.0.0.1:8787 \
  > .run/logs/consumer.log 2>&1 &
pids+=($!)
# Prometheus: the consumer's /metrics (its default --metrics-listen) and the service's rules and alerts.
PROMETHEUS_LISTEN=${PROMETHEUS_LISTEN:-127.0.0.1:9090}
ops/prometheus/local.sh .run/prometheus "$PROMETHEUS_LISTEN" 5s ops/prometheus/rules.yml 127.0.0.1:9464 \
  > .run/logs/prometheus.log 2>&1 &
pids+=($!)

cat <<TXT

[dev] pricefront runs on http://127.0.0.1:8787 (logs in .run/logs/). Try:
    curl -i http://127.0.0.1:8787/v1/prices/42
[dev] Prometheus on http://$PROMETHEUS_LISTEN (alerts: http://$PROMETHEUS_LISTEN/alerts; the consumer's
      metrics on http://127.0.0.1:9464/metrics). What each alert means: docs/deploy.md, "Operating it".
[dev] Ctrl-C stops everything.
TXT
wait "${pids[@]}"
