#!/usr/bin/env bash
# A local Prometheus (Debian's `prometheus` package; scripts/toolchain.sh installs it) scraping the given
# consumers' /metrics with a rules file loaded: what `make dev` runs, and what the alert test
# (e2e/tests/alerts.rs, through the harness) starts. It writes its configuration to DIR, keeps its data
# in DIR/data, and execs prometheus: stopping this process stops Prometheus.
#
# Usage: ops/prometheus/local.sh DIR LISTEN INTERVAL RULES TARGET...
#   DIR       where its configuration and data go (created)
#   LISTEN    host:port of its web UI and HTTP API (make dev: 127.0.0.1:9090)
#   INTERVAL  the scrape and rule evaluation interval (make dev: 5s; the alert test: 1s)
#   RULES     the rules file to load (ops/prometheus/rules.yml)
#   TARGET    host:port of a consumer's /metrics, one or more
set -euo pipefail

if (($# < 5)); then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
dir=$1 listen=$2 interval=$3 rules=$4
shift 4
command -v prometheus >/dev/null || {
  echo "prometheus is not installed: scripts/toolchain.sh installs it" >&2
  exit 1
}
mkdir -p "$dir/data"
rules=$(realpath "$rules")
targets=$(printf '"%s", ' "$@")
cat > "$dir/prometheus.yml" <<YAML
# Written by ops/prometheus/local.sh: a local Prometheus for the consumers of this machine.
global:
  scrape_interval: $interval
  evaluation_interval: $interval
rule_files:
  - "$rules"
scrape_configs:
  - job_name: pricefront-consumer
    static_configs:
      - targets: [${targets%, }]
YAML
promtool check config "$dir/prometheus.yml" >/dev/null
exec prometheus \
  --config.file="$dir/prometheus.yml" \
  --storage.tsdb.path="$dir/data" \
  --storage.tsdb.retention.time=1d \
  --web.listen-address="$listen"
