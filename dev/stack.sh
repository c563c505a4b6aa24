#!/usr/bin/env bash
# Local dev stack: Kafka 4.1 (one KRaft node, or a cluster of three with KAFKA_NODES=3), the Strimzi Kafka
# Bridge 1.1.0 (REST proxy), Redis.
#
# The bridge is the release tarball in ../shared/vendor/strimzi-kafka-bridge/ (checked against its
# SHA256SUMS and unpacked into the state folder), or an unpacked release in STRIMZI_BRIDGE_HOME. It
# needs Java 21+ (BRIDGE_JAVA_HOME, or the first JDK 21+ found); Kafka runs on the default Java.
# When the bridge cannot be had or started, `up` fails and says why: nothing stands in for it.
#
#   dev/stack.sh install                 install what is missing (redis, JDK/Maven, jars)
#   dev/stack.sh up                      install, then start everything and wait until ready
#   dev/stack.sh down                    stop what we started (TERM, then KILL after a bound)
#   dev/stack.sh reset                   down, then wipe data/config/logs (jars are kept)
#   dev/stack.sh start|stop  <kafka|kafka-N|bridge|redis>
#   dev/stack.sh kill        <kafka|kafka-N|bridge|redis>   SIGKILL (crash drill)
#   dev/stack.sh restart     <kafka|kafka-N|bridge|redis>
#   dev/stack.sh status                  one line per component
#   dev/stack.sh topics                  describe the project topics
#   dev/stack.sh leaders [TOPIC]         which node leads each partition, and its in-sync replicas
#
# KAFKA_NODES=3 (given to `up`; later commands read it from the state folder) runs a cluster of three
# KRaft nodes, each controller and broker (kafka-1, kafka-2, kafka-3: node N listens on KAFKA_PORT+2(N-1)
# and its controller on KAFKA_CONTROLLER_PORT+2(N-1), data in kafka-cluster/node-N), with topics of
# replication factor 3 and min.insync.replicas=2, and offsets kept with replication factor 3. `kafka`
# then names the whole cluster, `kafka-N` one node. Switching between one node and three: `down` first.
#   dev/stack.sh logs <component> [N]    last N log lines
#   dev/stack.sh env                     print export lines for clients
#
# Environment (defaults): PF_STATE_DIR (<repo>/.run), PF_JARS_DIR (<state>/jars: a second stack may
# share the first one's), KAFKA_NODES (1), KAFKA_PORT (9092),
# KAFKA_CONTROLLER_PORT (9093), BRIDGE_PORT (8080), BRIDGE_MANAGEMENT_PORT (8081), REDIS_PORT (6390),
# PF_SHARED_DIR (<repo>/../shared, or ../shared beside the local checkout this one was cloned from), STRIMZI_BRIDGE_HOME (unset), BRIDGE_JAVA_HOME (a JDK 21+),
# KAFKA_HEAP_OPTS (-Xms256m -Xmx512m), BRIDGE_HEAP_OPTS (-Xms64m -Xmx512m),
# KAFKA_START_TIMEOUT (120), BRIDGE_START_TIMEOUT (120), REDIS_START_TIMEOUT (20) seconds,
# BRIDGE_MAX_BLOCK_MS (10000), BRIDGE_DELIVERY_TIMEOUT_MS (30000): producer settings of the bridge.
# BRIDGE_LINGER_MS (0): the bridge producer's linger.ms (worth it only with a shared producer).
# BRIDGE_METRICS (unset): jmxPrometheusExporter serves the bridge's Kafka client metrics on
# http://HOST:BRIDGE_MANAGEMENT_PORT/metrics (one kafka_producer series per live producer, by clientId).
# BRIDGE_PRODUCER_SHARED (false): true runs the bridge built with dev/bridge-shared-producer.patch (one
# producer for every connection; dev/build-bridge-shared.sh builds it once, from the vendored source) and
# writes http.producer.shared=true, which only that build reads. The three-node cluster of the tests runs it.
# BRIDGE_LOG_CONFIG (<repo>/config/bridge/log4j2.properties, as docker-compose.yml mounts it: every `send`
# logged only when it fails; the bridge's own config/log4j2.properties logs each at INFO).
# REDIS_APPENDONLY (0): 1 starts Redis with --appendonly yes --appendfsync always (a restart keeps
# its data; the Redis drill uses it).
set -euo pipefail

DEV_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd -- "$DEV_DIR/.." && pwd -P)"
# shellcheck source=dev/processes.sh
source "$DEV_DIR/processes.sh"

HOST=127.0.0.1
STATE_DIR="$(realpath -m -- "${PF_STATE_DIR:-$REPO_ROOT/.run}")"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
BRIDGE_PORT="${BRIDGE_PORT:-8080}"
BRIDGE_MANAGEMENT_PORT="${BRIDGE_MANAGEMENT_PORT:-8081}"
BRIDGE_VERSION=1.1.0
# ../shared beside the repository; for a clone of a local checkout made elsewhere (git clone . /tmp/x),
# ../shared beside the checkout it was cloned from.
default_shared_dir() {
  local origin
  if [[ -d $REPO_ROOT/../shared ]]; then echo "$REPO_ROOT/../shared"; return; fi
  origin=$(git -C "$REPO_ROOT" config --get remote.origin.url 2>/dev/null || true)
  if [[ $origin == /* && -d $origin/../shared ]]; then echo "$origin/../shared"; return; fi
  echo "$REPO_ROOT/../shared"
}
SHARED_DIR="$(realpath -m -- "${PF_SHARED_DIR:-$(default_shared_dir)}")"
BRIDGE_VENDOR_DIR="$SHARED_DIR/vendor/strimzi-kafka-bridge"
REDIS_PORT="${REDIS_PORT:-6390}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
BRIDGE_HEAP_OPTS="${BRIDGE_HEAP_OPTS:--Xms64m -Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
BRIDGE_START_TIMEOUT="${BRIDGE_START_TIMEOUT:-120}"
REDIS_START_TIMEOUT="${REDIS_START_TIMEOUT:-20}"
BRIDGE_MAX_BLOCK_MS="${BRIDGE_MAX_BLOCK_MS:-10000}"
BRIDGE_DELIVERY_TIMEOUT_MS="${BRIDGE_DELIVERY_TIMEOUT_MS:-30000}"
BRIDGE_PRODUCER_SHARED="${BRIDGE_PRODUCER_SHARED:-false}"
BRIDGE_LINGER_MS="${BRIDGE_LINGER_MS:-0}"
BRIDGE_METRICS="${BRIDGE_METRICS:-}"
BRIDGE_LOG_CONFIG="$(realpath -m -- "${BRIDGE_LOG_CONFIG:-$DEV_DIR/../config/bridge/log4j2.properties}")"

TOPICS=(price-compare-requests price-compare-requests.dlq)
TOPIC_PARTITIONS=3

PIDS_DIR="$STATE_DIR/pids"
LOGS_DIR="$STATE_DIR/logs"
CONF_DIR="$STATE_DIR/conf"
JARS_DIR="$(realpath -m -- "${PF_JARS_DIR:-$STATE_DIR/jars}")"
KAFKA_DATA="$STATE_DIR/kafka-data"
REDIS_DIR="$STATE_DIR/redis"
KAFKA_JARS="$JARS_DIR/kafka"
# The number of Kafka nodes: KAFKA_NODES, else what the last `up` recorded, else 1.
NODES_FILE="$STATE_DIR/kafka-nodes"
if [[ -n ${KAFKA_NODES:-} ]]; then
  [[ $KAFKA_NODES == 1 || $KAFKA_NODES == 3 ]] || { echo "KAFKA_NODES must be 1 or 3, not $KAFKA_NODES" >&2; exit 2; }
elif [[ -f $NODES_FILE ]]; then
  KAFKA_NODES=$(cat "$NODES_FILE")
else
  KAFKA_NODES=1
fi
CLUSTER_DIR="$STATE_DIR/kafka-cluster"
BRIDGE_DIST="$STATE_DIR/kafka-bridge-$BRIDGE_VERSION"
# Kafka's components: `kafka` alone, or one per node of the cluster.
kafka_components() {
  local n
  if ((KAFKA_NODES == 1)); then echo kafka; return; fi
  for ((n = 1; n <= KAFKA_NODES; n++)); do echo "kafka-$n"; done
}
mapfile -t KAFKA_COMPONENTS < <(kafka_components)
COMPONENTS=("${KAFKA_COMPONENTS[@]}" bridge redis)

JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
JAVAC="${JAVA_HOME:+$JAVA_HOME/bin/}javac"
# Short-lived JVMs (Kafka CLI tools): favour startup time over peak speed.
TOOL_JVM_OPTS=(-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto)

mkdirs() { mkdir -p -- "$PIDS_DIR" "$LOGS_DIR" "$CONF_DIR" "$JARS_DIR" "$KAFKA_DATA" "$REDIS_DIR"; }

# Serialise state-changing commands (two `up`s at once must not start two brokers).
take_lock() {
  mkdir -p -- "$STATE_DIR"
  exec 9> "$STATE_DIR/.lock"
  flock -w 600 9 || die "another dev/stack.sh holds $STATE_DIR/.lock"
}

check_component() {
  case "${1:-}" in
    kafka|bridge|redis) ;;
    kafka-[1-9]) ((KAFKA_NODES > 1 && ${1#kafka-} <= KAFKA_NODES)) \
      || die "no node ${1#kafka-}: the stack runs $KAFKA_NODES Kafka node(s) (KAFKA_NODES=3 dev/stack.sh up for a cluster)" ;;
    *) die "unknown component '${1:-}' (expected kafka, kafka-N, bridge or redis)" ;;
  esac
}

# Node N's ports, component name, data folder, configuration file and log.
node_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
node_controller_port() { echo $((KAFKA_CONTROLLER_PORT + 2 * ($1 - 1))); }
node_component() { if ((KAFKA_NODES == 1)); then echo kafka; else echo "kafka-$1"; fi; }
node_data() { if ((KAFKA_NODES == 1)); then echo "$KAFKA_DATA"; else echo "$CLUSTER_DIR/node-$1"; fi; }
node_config() { if ((KAFKA_NODES == 1)); then echo "$CONF_DIR/kafka.properties"; else echo "$CONF_DIR/kafka-$1.properties"; fi; }
node_log() { echo "$LOGS_DIR/$(node_component "$1").log"; }

# Every node's broker address, comma-separated: what clients bootstrap from.
bootstrap_servers() {
  local n list=()
  for ((n = 1; n <= KAFKA_NODES; n++)); do list+=("$HOST:$(node_port "$n")"); done
  (IFS=,; echo "${list[*]}")
}

# The replication of every topic, internal ones included: 3 with min.insync.replicas 2 on the cluster.
replication_factor() { if ((KAFKA_NODES >= 3)); then echo 3; else echo 1; fi; }
min_insync() { if ((KAFKA_NODES >= 3)); then echo 2; else echo 1; fi; }

# ------------------------------------------------------------------------------ install

apt_install() {
  log "installing with apt: $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "$@" >/dev/null
}

install_packages() {
  local pkgs=()
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || pkgs+=(redis-server)
  command -v "$JAVA" >/dev/null && command -v "$JAVAC" >/dev/null || pkgs+=(openjdk-17-jdk-headless)
  command -v mvn >/dev/null || pkgs+=(maven)
  command -v flock >/dev/null && command -v setsid >/dev/null || pkgs+=(util-linux)
  command -v curl >/dev/null || pkgs+=(curl)
  if ((${#pkgs[@]})); then apt_install "${pkgs[@]}"; fi
}

# install_jars NAME POM DEST: copy POM's runtime dependencies to DEST unless the stamp says
# the same POM was already resolved there.
install_jars() {
  local name=$1 pom=$2 dest=$3 stamp want t0 mvnlog
  stamp="$dest.stamp"
  want=$(sha_of "$pom")
  if [[ -d $dest && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    return 0
  fi
  t0=$(now_ms)
  mvnlog="$LOGS_DIR/mvn-$name.log"
  log "$name: resolving jars from Maven Central (dev/${pom#"$DEV_DIR/"}) ..."
  rm -rf -- "$dest" "$stamp"
  # shellcheck disable=SC2086  # MVN_EXTRA is a list of flags
  if ! mvn -B -q ${MVN_EXTRA:-} -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$dest" > "$mvnlog" 2>&1; then
    tail -n 40 -- "$mvnlog" >&2
    die "$name: Maven could not resolve $pom (full output: $mvnlog)"
  fi
  printf '%s\n' "$want" > "$stamp"
  log "$name: $(find "$dest" -name '*.jar' | wc -l) jars in $(elapsed_s "$t0")s"
}

# bridge_home: where the bridge's release layout (bin/, config/, libs/) is: STRIMZI_BRIDGE_HOME, else the
# vendored release, or with BRIDGE_PRODUCER_SHARED=true its build with dev/bridge-shared-producer.patch.
bridge_home() {
  if [[ -n ${STRIMZI_BRIDGE_HOME:-} ]]; then printf '%s\n' "$STRIMZI_BRIDGE_HOME"
  elif [[ $BRIDGE_PRODUCER_SHARED == true ]]; then printf '%s\n' "$BRIDGE_DIST-shared"
  else printf '%s\n' "$BRIDGE_DIST"; fi
}

# install_shared_bridge: with BRIDGE_PRODUCER_SHARED=true (and no STRIMZI_BRIDGE_HOME), builds the
# vendored release with dev/bridge-shared-producer.patch (dev/build-bridge-shared.sh: javac on three
# classes, seconds), again only when the patch changed.
install_shared_bridge() {
  [[ $BRIDGE_PRODUCER_SHARED == true && -z ${STRIMZI_BRIDGE_HOME:-} ]] || return 0
  local want java
  want=$(sha256sum -- "$DEV_DIR/bridge-shared-producer.patch" | cut -d' ' -f1)
  [[ $(cat "$BRIDGE_DIST-shared/.patch" 2>/dev/null) == "$want" ]] && return 0
  java=$(bridge_java)
  PF_SHARED_DIR="$SHARED_DIR" "$DEV_DIR/build-bridge-shared.sh" "$BRIDGE_DIST" "$BRIDGE_DIST-shared" \
    "$(dirname "$(dirname "$java")")" || die "bridge: cannot build the shared-producer bridge"
  log "bridge: built the shared-producer bridge into $BRIDGE_DIST-shared"
}

# install_bridge: unpack the vendored release (checked against SHA256SUMS) unless STRIMZI_BRIDGE_HOME
# names one, or it is unpacked already. Fails with the reason when it cannot be had.
install_bridge() {
  local tarball="$BRIDGE_VENDOR_DIR/kafka-bridge-$BRIDGE_VERSION.tar.gz" want got
  if [[ -n ${STRIMZI_BRIDGE_HOME:-} ]]; then
    [[ -d $STRIMZI_BRIDGE_HOME/libs ]] || die "bridge: STRIMZI_BRIDGE_HOME=$STRIMZI_BRIDGE_HOME has no libs/ folder"
    return 0
  fi
  [[ -f $BRIDGE_DIST/.unpacked ]] && return 0
  [[ -f $tarball ]] || die "bridge: $tarball is missing: the Strimzi Kafka Bridge $BRIDGE_VERSION release is expected in $BRIDGE_VENDOR_DIR (PF_SHARED_DIR), or an unpacked release in STRIMZI_BRIDGE_HOME"
  want=$(awk -v f="kafka-bridge-$BRIDGE_VERSION.tar.gz" '$2 == f { print $1 }' "$BRIDGE_VENDOR_DIR/SHA256SUMS" 2>/dev/null)
  [[ -n $want ]] || die "bridge: no checksum for kafka-bridge-$BRIDGE_VERSION.tar.gz in $BRIDGE_VENDOR_DIR/SHA256SUMS"
  got=$(sha256sum -- "$tarball" | cut -d' ' -f1)
  [[ $got == "$want" ]] || die "bridge: $tarball has sha256 $got, SHA256SUMS says $want"
  rm -rf -- "$BRIDGE_DIST"
  tar -xzf "$tarball" -C "$STATE_DIR" || die "bridge: cannot unpack $tarball"
  [[ -d $BRIDGE_DIST/libs ]] || die "bridge: $tarball has no kafka-bridge-$BRIDGE_VERSION/libs/"
  touch "$BRIDGE_DIST/.unpacked"
  log "bridge: unpacked Strimzi Kafka Bridge $BRIDGE_VERSION into $BRIDGE_DIST (sha256 checked)"
}

# java_major JAVA: the feature version of that java (17, 21, 25, ...), or nothing.
java_major() {
  "$1" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ { print $2; exit }'
}

# bridge_java: a java of version 21 or newer, for the bridge alone: BRIDGE_JAVA_HOME, else JAVA_HOME,
# the java on PATH, then the JDKs under /usr/lib/jvm, first that is new enough.
bridge_java() {
  local candidate major
  if [[ -n ${BRIDGE_JAVA_HOME:-} ]]; then
    major=$(java_major "$BRIDGE_JAVA_HOME/bin/java")
    (( ${major:-0} >= 21 )) || die "bridge: BRIDGE_JAVA_HOME=$BRIDGE_JAVA_HOME is Java ${major:-?}; the bridge needs 21 or newer"
    printf '%s\n' "$BRIDGE_JAVA_HOME/bin/java"; return 0
  fi
  for candidate in "$JAVA" /usr/lib/jvm/*/bin/java; do
    [[ -x $candidate ]] || command -v "$candidate" >/dev/null || continue
    major=$(java_major "$candidate")
    if (( ${major:-0} >= 21 )); then printf '%s\n' "$candidate"; return 0; fi
  done
  die "bridge: the Strimzi Kafka Bridge $BRIDGE_VERSION needs Java 21 or newer, and none was found (tried $JAVA and /usr/lib/jvm/*): install a JDK 21+ and set BRIDGE_JAVA_HOME"
}

cmd_install() {
  mkdirs
  install_packages
  install_jars kafka "$DEV_DIR/kafka/pom.xml" "$KAFKA_JARS"
  install_bridge
  install_shared_bridge
}

# ------------------------------------------------------------------------------ kafka

write_kafka_config() {
  local node=${1:-1} n voters=() rf isr
  for ((n = 1; n <= KAFKA_NODES; n++)); do voters+=("$n@$HOST:$(node_controller_port "$n")"); done
  rf=$(replication_factor); isr=$(min_insync)
  cat > "$(node_config "$node")" <<EOF
# generated by dev/stack.sh (overwritten on each start)
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$(IFS=,; echo "${voters[*]}")
listeners=PLAINTEXT://$HOST:$(node_port "$node"),CONTROLLER://$HOST:$(node_controller_port "$node")
advertised.listeners=PLAINTEXT://$HOST:$(node_port "$node")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$(node_data "$node")
num.partitions=3
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
# after a kill -9 the restarted broker can only register once the old session expired
# (DUPLICATE_BROKER_REGISTRATION until then): 6s instead of the default 9s
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
EOF
  # broker log4j2: everything to stdout, which launch() appends to logs/kafka.log
  cat > "$CONF_DIR/kafka-log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.controller.name = kafka.controller
logger.controller.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
  # CLI tools: warnings only, on stderr
  cat > "$CONF_DIR/tools-log4j2.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
  cat > "$CONF_DIR/kafka-tools.properties" <<'EOF'
default.api.timeout.ms=15000
request.timeout.ms=10000
EOF
}

kafka_tool() {
  "$JAVA" "${TOOL_JVM_OPTS[@]}" -Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.properties" \
    -cp "$KAFKA_JARS/*" "$@"
}

topic_cmd() {
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(bootstrap_servers)" \
    --command-config "$CONF_DIR/kafka-tools.properties" "$@"
}

# The cluster's id: one per state folder (every node of a cluster is formatted with it).
cluster_id() {
  local file="$STATE_DIR/kafka-cluster-id" cid
  if [[ ! -f $file ]]; then
    # a Kafka cluster id is 16 random bytes in URL-safe base64 without padding (22 chars)
    cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    while [[ $cid == -* ]]; do cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='); done
    printf '%s\n' "$cid" > "$file"
  fi
  cat "$file"
}

format_kafka_storage() {
  local node=${1:-1} data cid
  data=$(node_data "$node")
  [[ -f $data/meta.properties ]] && return 0
  mkdir -p -- "$data"
  cid=$(cluster_id)
  log "$(node_component "$node"): formatting $data (cluster id $cid)"
  kafka_tool kafka.tools.StorageTool format --cluster-id "$cid" \
    --config "$(node_config "$node")" --ignore-formatted >> "$(node_log "$node")" 2>&1 \
    || { tail -n 20 "$(node_log "$node")" >&2; die "$(node_component "$node"): storage format failed"; }
}

node_port_probe() { port_open "$(node_port "$1")" && port_open "$(node_controller_port "$1")"; }
kafka_port_probe() { node_port_probe 1; }

# Ready = every running node's listeners accept connections and a metadata request (topic list)
# succeeds.
kafka_ready_probe() {
  local n
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    component_pid "$(node_component "$n")" >/dev/null || continue
    node_port_probe "$n" || return 1
  done
  topic_cmd --list > "$STATE_DIR/.topics.tmp" 2>> "$LOGS_DIR/kafka-tools.log"
}

ensure_topics() {
  local t created=0
  # reuse the list just fetched by kafka_ready_probe, if any (saves a JVM start)
  if [[ ! -f $STATE_DIR/.topics.tmp ]]; then
    topic_cmd --list > "$STATE_DIR/.topics.tmp" 2>> "$LOGS_DIR/kafka-tools.log" \
      || die "kafka: cannot list topics (see $LOGS_DIR/kafka-tools.log)"
  fi
  for t in "${TOPICS[@]}"; do
    if ! grep -qxF -- "$t" "$STATE_DIR/.topics.tmp"; then
      topic_cmd --create --if-not-exists --topic "$t" --partitions "$TOPIC_PARTITIONS" \
        --replication-factor "$(replication_factor)" --config "min.insync.replicas=$(min_insync)" \
        >/dev/null 2>> "$LOGS_DIR/kafka-tools.log" \
        || die "kafka: creating topic $t failed (see $LOGS_DIR/kafka-tools.log)"
      created=$((created + 1))
      log "kafka: created topic $t ($TOPIC_PARTITIONS partitions, RF $(replication_factor), min.insync.replicas $(min_insync))"
    fi
  done
  ((created)) || log "kafka: topics present: ${TOPICS[*]}"
  rm -f -- "$STATE_DIR/.topics.tmp"
}

# launch_node N: starts node N unless it runs (its ports free), without waiting.
launch_node() {
  local node=$1 name pid p
  name=$(node_component "$node")
  if component_pid "$name" >/dev/null; then return 0; fi
  clear_stale_pidfile "$name"
  for p in "$(node_port "$node")" "$(node_controller_port "$node")"; do
    ! port_open "$p" || die "$name: port $p is already in use by another process"
  done
  write_kafka_config "$node"
  format_kafka_storage "$node"
  # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is a list of JVM flags
  pid=$(launch "$name" "$(node_log "$node")" "$JAVA" $KAFKA_HEAP_OPTS -server -XX:+UseG1GC \
    -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true -Dpf.stack.component="$name" \
    -Dlog4j2.configurationFile="$CONF_DIR/kafka-log4j2.properties" -Dkafka.logs.dir="$LOGS_DIR" \
    -cp "$KAFKA_JARS/*" kafka.Kafka "$(node_config "$node")")
  log "$name: started pid $pid, waiting for $HOST:$(node_port "$node") ..."
}

# start_kafka [N]: starts every node (or node N) and waits until Kafka answers. The nodes of a cluster
# start together: a KRaft quorum needs a majority of its controllers before any broker is ready.
start_kafka() {
  local t0 n nodes=()
  rm -f -- "$STATE_DIR/.topics.tmp"
  t0=$(now_ms)
  printf '%s\n' "$KAFKA_NODES" > "$NODES_FILE"
  if [[ -n ${1:-} ]]; then nodes=("$1"); else mapfile -t nodes < <(seq 1 "$KAFKA_NODES"); fi
  for n in "${nodes[@]}"; do launch_node "$n"; done
  for n in "${nodes[@]}"; do
    wait_ready "$(node_component "$n")" "$KAFKA_START_TIMEOUT" "$(node_log "$n")" node_port_probe "$n" \
      || die "$(node_component "$n"): did not open its ports"
  done
  wait_ready "$(node_component "${nodes[0]}")" "$KAFKA_START_TIMEOUT" "$(node_log "${nodes[0]}")" kafka_ready_probe \
    || die "kafka: did not become ready"
  log "kafka: ready in $(elapsed_s "$t0")s ($KAFKA_NODES node(s), bootstrap $(bootstrap_servers))"
}

# stop_kafka [SIGNAL] [N]: stops every node (or node N). The nodes of a cluster are signalled together:
# one by one, the last would lose its quorum and hang in its controlled shutdown.
stop_kafka() {
  local n pids=()
  if [[ -n ${2:-} ]]; then stop_component "kafka-$2" 60 "$1"; return; fi
  for ((n = KAFKA_NODES; n >= 1; n--)); do
    stop_component "$(node_component "$n")" 60 "$1" & pids+=($!)
  done
  wait "${pids[@]}"
}

# leaders [TOPIC]: one line per partition of TOPIC (the request topic): its leader, replicas and ISR.
cmd_leaders() {
  local topic=${1:-${TOPICS[0]}}
  topic_cmd --describe --topic "$topic" | awk '/Partition:/ {
    for (i = 1; i <= NF; i++) { if ($i == "Partition:") p = $(i+1); if ($i == "Leader:") l = $(i+1);
      if ($i == "Replicas:") r = $(i+1); if ($i == "Isr:") s = $(i+1) }
    printf "partition %s leader %s replicas %s isr %s\n", p, l, r, s }'
}

# ------------------------------------------------------------------------------ bridge

write_bridge_config() {
  local req=10000
  (( BRIDGE_DELIVERY_TIMEOUT_MS - 100 < req )) && req=$(( BRIDGE_DELIVERY_TIMEOUT_MS - 100 ))
  cat > "$CONF_DIR/bridge.properties" <<EOF
# generated by dev/stack.sh (overwritten on each start)
bridge.id=pf-local-bridge
http.enabled=true
kafka.bootstrap.servers=$(bootstrap_servers)
# The promise of a replicated topic: a record is acknowledged once every in-sync replica has it
# (min.insync.replicas of them at least), and a retried send is never written twice.
kafka.producer.acks=all
kafka.producer.enable.idempotence=true
# Upstream builds a producer per connection, each sending one record per request: nothing to batch,
# so no linger. A shared producer (below) batches the records of concurrent requests on its own.
kafka.producer.linger.ms=$BRIDGE_LINGER_MS
kafka.producer.max.block.ms=$BRIDGE_MAX_BLOCK_MS
kafka.producer.request.timeout.ms=$req
kafka.producer.delivery.timeout.ms=$BRIDGE_DELIVERY_TIMEOUT_MS
http.host=$HOST
http.port=$BRIDGE_PORT
http.management.port=$BRIDGE_MANAGEMENT_PORT
http.consumer.enabled=false
http.producer.enabled=true
# One producer for every connection (dev/bridge-shared-producer.patch; upstream ignores it).
http.producer.shared=$BRIDGE_PRODUCER_SHARED
EOF
  if [[ -n $BRIDGE_METRICS ]]; then echo "bridge.metrics=$BRIDGE_METRICS" >> "$CONF_DIR/bridge.properties"; fi
}

bridge_ready_probe() {
  local code
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$HOST:$BRIDGE_MANAGEMENT_PORT/ready") || return 1
  [[ $code == 2?? ]]
}

start_bridge() {
  local pid t0
  if pid=$(component_pid bridge); then
    wait_ready bridge "$BRIDGE_START_TIMEOUT" "$LOGS_DIR/bridge.log" bridge_ready_probe \
      || die "bridge: running (pid $pid) but not ready"
    log "bridge: already running (pid $pid)"
    return 0
  fi
  clear_stale_pidfile bridge
  local p java
  for p in "$BRIDGE_PORT" "$BRIDGE_MANAGEMENT_PORT"; do
    ! port_open "$p" || die "bridge: port $p is already in use by another process"
  done
  java=$(bridge_java)
  t0=$(now_ms)
  write_bridge_config
  # shellcheck disable=SC2086  # BRIDGE_HEAP_OPTS is a list of JVM flags
  pid=$(launch bridge "$LOGS_DIR/bridge.log" "$java" $BRIDGE_HEAP_OPTS -XX:+UseSerialGC \
    -Djava.awt.headless=true -Dpf.stack.component=bridge \
    -Dlog4j2.configurationFile="file:$BRIDGE_LOG_CONFIG" \
    -Dvertx.cacheDirBase="$STATE_DIR/vertx-cache" \
    -cp "$(bridge_home)/libs/*" io.strimzi.kafka.bridge.Application \
    --config-file="$CONF_DIR/bridge.properties")
  log "bridge: started pid $pid on Java $(java_major "$java"), waiting for http://$HOST:$BRIDGE_MANAGEMENT_PORT/ready ..."
  wait_ready bridge "$BRIDGE_START_TIMEOUT" "$LOGS_DIR/bridge.log" bridge_ready_probe \
    || die "bridge: did not become ready"
  log "bridge: ready in $(elapsed_s "$t0")s"
}

# ------------------------------------------------------------------------------ redis

redis_ready_probe() {
  [[ $(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

start_redis() {
  local pid t0
  if pid=$(component_pid redis); then
    wait_ready redis "$REDIS_START_TIMEOUT" "$LOGS_DIR/redis.log" redis_ready_probe \
      || die "redis: running (pid $pid) but not ready"
    log "redis: already running (pid $pid)"
    return 0
  fi
  clear_stale_pidfile redis
  ! port_open "$REDIS_PORT" || die "redis: port $REDIS_PORT is already in use by another process"
  t0=$(now_ms)
  # foreground (not daemonized) so that the pid we record is redis itself; logs to stdout
  # REDIS_APPENDONLY=1: persist every write (AOF, fsync always) so a restart keeps the data (drills)
  local persistence=(--appendonly no)
  [[ ${REDIS_APPENDONLY:-0} == 1 ]] && persistence=(--appendonly yes --appendfsync always)
  pid=$(launch redis "$LOGS_DIR/redis.log" redis-server --bind "$HOST" --port "$REDIS_PORT" \
    --save '' "${persistence[@]}" --dir "$REDIS_DIR" --daemonize no --protected-mode yes \
    --logfile '')
  wait_ready redis "$REDIS_START_TIMEOUT" "$LOGS_DIR/redis.log" redis_ready_probe \
    || die "redis: did not become ready"
  log "redis: ready on $HOST:$REDIS_PORT (pid $pid) in $(elapsed_s "$t0")s"
}

# ------------------------------------------------------------------------------ commands

start_one() {
  case "$1" in
    kafka) start_kafka; ensure_topics ;;
    kafka-*) start_kafka "${1#kafka-}" ;;
    bridge) start_bridge ;;
    redis) start_redis ;;
  esac
}

stop_one() {
  case "$1" in
    kafka) stop_kafka "${2:-TERM}" ;;
    kafka-*) stop_kafka "${2:-TERM}" "${1#kafka-}" ;;
    bridge) stop_component bridge 20 "${2:-TERM}" ;;
    redis) stop_component redis 15 "${2:-TERM}" ;;
  esac
}

status_line() {
  local name=$1 pid state detail
  if pid=$(component_pid "$name"); then
    case "$name" in
      kafka) kafka_port_probe && state=ready || state=starting; detail="$HOST:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT)" ;;
      kafka-*) node_port_probe "${name#kafka-}" && state=ready || state=starting
               detail="$HOST:$(node_port "${name#kafka-}") (controller :$(node_controller_port "${name#kafka-}"))" ;;
      bridge) bridge_ready_probe && state=ready || state=not-ready; detail="http://$HOST:$BRIDGE_PORT (management :$BRIDGE_MANAGEMENT_PORT)" ;;
      redis) redis_ready_probe && state=ready || state=not-ready; detail="$HOST:$REDIS_PORT" ;;
    esac
    printf '%-7s running  pid=%-8s %-9s %s\n' "$name" "$pid" "$state" "$detail"
  elif [[ -e $(pidfile_of "$name") ]]; then
    printf '%-7s stopped  (stale pid file)\n' "$name"
  else
    printf '%-7s stopped\n' "$name"
  fi
}

cmd_status() { local c; for c in "${COMPONENTS[@]}"; do status_line "$c"; done; }

cmd_up() {
  local t0
  t0=$(now_ms)
  cmd_install
  start_kafka
  ensure_topics
  start_bridge
  start_redis
  log "up: done in $(elapsed_s "$t0")s (state: $STATE_DIR)"
  cmd_status
}

cmd_down() {
  stop_one bridge
  stop_one kafka
  stop_one redis
  rm -f -- "$NODES_FILE"
}

cmd_reset() {
  cmd_down
  log "reset: wiping $KAFKA_DATA $CLUSTER_DIR $REDIS_DIR $CONF_DIR $LOGS_DIR (jars kept)"
  rm -rf -- "$KAFKA_DATA" "$CLUSTER_DIR" "$STATE_DIR/kafka-cluster-id" "$REDIS_DIR" "$CONF_DIR" "$LOGS_DIR"
}

cmd_env() {
  cat <<EOF
export PF_STATE_DIR='$STATE_DIR'
export KAFKA_BROKERS='$(bootstrap_servers)'
export KAFKA_BRIDGE_URL='http://$HOST:$BRIDGE_PORT'
export KAFKA_BRIDGE_MANAGEMENT_URL='http://$HOST:$BRIDGE_MANAGEMENT_PORT'
export REDIS_URL='redis://$HOST:$REDIS_PORT'
EOF
}

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2; }

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    install) take_lock; cmd_install ;;
    up) take_lock; cmd_up ;;
    down) take_lock; mkdirs; cmd_down ;;
    reset) take_lock; mkdirs; cmd_reset ;;
    start) check_component "${1:-}"; take_lock; cmd_install; start_one "$1" ;;
    stop) check_component "${1:-}"; take_lock; mkdirs; stop_one "$1" ;;
    kill) check_component "${1:-}"; take_lock; mkdirs; stop_one "$1" KILL ;;
    restart) check_component "${1:-}"; take_lock; cmd_install; stop_one "$1"; start_one "$1" ;;
    status) cmd_status ;;
    leaders) cmd_leaders "$@" ;;
    topics) component_pid "${KAFKA_COMPONENTS[0]}" >/dev/null || die "kafka is not running"
            local re
            re=$(IFS='|'; echo "${TOPICS[*]}")
            topic_cmd --describe --topic "${re//./\\.}" ;;
    logs) check_component "${1:-}"; tail -n "${2:-50}" -- "$LOGS_DIR/$1.log" ;;
    env) cmd_env ;;
    -h|--help|help|'') usage; [[ -n $cmd ]] ;;
    *) usage; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
