#!/usr/bin/env bash
# Builds the Strimzi Kafka Bridge 1.1.0 with dev/bridge-shared-producer.patch: one Kafka producer shared by
# every HTTP connection (`http.producer.shared=true`) instead of one built per connection (upstream's
# HttpBridge.processProducer). From the vendored source (../shared/vendor/strimzi-kafka-bridge/) and its
# own patch; needs Maven and a JDK 21+ (BRIDGE_JAVA_HOME, or the one dev/stack.sh finds). Unpacks the result
# into OUT_DIR (default .run/kafka-bridge-shared), for `STRIMZI_BRIDGE_HOME=OUT_DIR/kafka-bridge-1.1.0`.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$PWD/.run/kafka-bridge-shared}"
vendor="${PF_SHARED_DIR:-$PWD/../shared}/vendor/strimzi-kafka-bridge"
[[ -f $vendor/strimzi-kafka-bridge-1.1.0-src.tar.gz ]] || { echo "no bridge source in $vendor" >&2; exit 1; }
java_home="${BRIDGE_JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}"
if [[ -z ${BRIDGE_JAVA_HOME:-} ]]; then
  for candidate in /usr/lib/jvm/temurin-2[1-9]* /usr/lib/jvm/java-2[1-9]* /opt/java/openjdk*; do
    [[ -x $candidate/bin/javac ]] && { java_home=$candidate; break; }
  done
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -xzf "$vendor/strimzi-kafka-bridge-1.1.0-src.tar.gz" -C "$work"
cd "$work/strimzi-kafka-bridge-1.1.0"
patch -p1 < "$vendor/pom-without-unserved-deps.patch"
patch -p1 < "$OLDPWD/dev/bridge-shared-producer.patch"
JAVA_HOME="$java_home" mvn -B -q -Dmaven.test.skip=true -Dspotbugs.skip -Dcheckstyle.skip \
  -Dmaven.javadoc.skip -Dmdep.analyze.skip=true package
mkdir -p "$out"
tar -xzf target/kafka-bridge-1.1.0.tar.gz -C "$out"
echo "built $out/kafka-bridge-1.1.0 (STRIMZI_BRIDGE_HOME=$out/kafka-bridge-1.1.0)"
