# shellcheck shell=bash
# This run's session of the local stack, for the scripts that need it (dev.sh, test.sh, bench.sh,
# drills.sh). Sourced. The convention of every script: stop only what you started. A stack that was
# already running when the script began is left running; one the script started is stopped on exit.

# stack_up_for_this_run: starts the stack unless it already runs, and stops it on exit only if this
# run started it. Callers that need more on exit call stop_stack_if_started from their own trap.
stack_up_for_this_run() {
  started_stack=false
  # (status read whole first: with pipefail, grep -q closing the pipe early would read as "not running")
  local stack_status
  stack_status=$(dev/stack.sh status)
  [[ $stack_status == "kafka   running"* ]] || started_stack=true
  trap stop_stack_if_started EXIT
  dev/stack.sh up
}

stop_stack_if_started() {
  if ${started_stack:-false}; then dev/stack.sh down || true; fi
}

# The three-node Kafka cluster beside the stack (KAFKA_NODES=3 on ports of its own, its own state folder,
# the stack's jars) with a bridge of its own, for the cluster's test, drills and scale-out benchmark.
# Its bridge shares one producer among its connections (dev/bridge-shared-producer.patch): upstream's
# producer per connection, each bootstrapping against three nodes and initialising an idempotent producer
# id, cost the bridge half of a core at 20 misses/s, and most publishes outlived PUBLISH_TIMEOUT_MS on
# 2 cores (the cluster drills: 50 of the 100 misses before any fault answered 503, a rolling restart left
# 134 of 2,374 unanswered after 30 s). Its metrics page shows the live producers (e2e/tests/cluster_acks.rs).
cluster_env=(PF_STATE_DIR="$PWD/.run/cluster" PF_JARS_DIR="$PWD/.run/jars" KAFKA_NODES=3
  KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 BRIDGE_PORT=18080 BRIDGE_MANAGEMENT_PORT=18081
  BRIDGE_PRODUCER_SHARED=true BRIDGE_METRICS=jmxPrometheusExporter)

# cluster_up_for_this_run: starts the cluster and its bridge (a running one is reused) and exports what the
# harness reads (pricefront_harness::Cluster::from_env). The caller stops it with cluster_down.
cluster_up_for_this_run() {
  echo "[cluster] three Kafka nodes and a bridge (127.0.0.1:19092, :19094, :19096; http://127.0.0.1:18080)"
  env "${cluster_env[@]}" dev/stack.sh start kafka
  env "${cluster_env[@]}" dev/stack.sh start bridge
  export CLUSTER_STACK_ENV="${cluster_env[*]}"
  export CLUSTER_KAFKA_BROKERS=127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096
  export CLUSTER_BRIDGE_URL=http://127.0.0.1:18080
}

cluster_down() {
  env "${cluster_env[@]}" dev/stack.sh down || true
}

# A second bridge in front of the stack's own Kafka, built with dev/bridge-shared-producer.patch (one
# producer shared by every connection; upstream 1.1.0 builds one per HTTP connection), so that the
# publish benchmark measures the patch side by side with the stack's upstream bridge in one run. Its own
# state folder and ports; the stack's jars and Kafka.
shared_bridge_env=(PF_STATE_DIR="$PWD/.run/shared-bridge" PF_JARS_DIR="$PWD/.run/jars"
  BRIDGE_PORT=18180 BRIDGE_MANAGEMENT_PORT=18181 BRIDGE_PRODUCER_SHARED=true)

# shared_bridge_up_for_this_run: starts it (a running one is reused) and exports what the harness reads
# (pricefront_harness::shared_bridge). The caller stops it with shared_bridge_down.
shared_bridge_up_for_this_run() {
  echo "[shared bridge] a second bridge, one producer for every connection (http://127.0.0.1:18180)"
  env "${shared_bridge_env[@]}" dev/stack.sh start bridge
  export SHARED_BRIDGE_URL=http://127.0.0.1:18180
  export SHARED_BRIDGE_STATE_DIR="$PWD/.run/shared-bridge"
}

shared_bridge_down() {
  env "${shared_bridge_env[@]}" dev/stack.sh stop bridge || true
}
