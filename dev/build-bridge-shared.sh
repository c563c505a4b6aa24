#!/usr/bin/env bash
# Builds the Strimzi Kafka Bridge 1.1.0 with dev/bridge-shared-producer.patch: one Kafka producer shared by
# every HTTP connection (`http.producer.shared=true`) instead of one built per connection (upstream's
# HttpBridge.processProducer).
#
#   dev/build-bridge-shared.sh RELEASE_DIR OUT_DIR JDK_HOME
#
# RELEASE_DIR is the unpacked upstream release (bin/, config/, libs/); OUT_DIR becomes a copy of it whose
# io.strimzi.kafka-bridge jar carries the three patched classes. Only those three source files are
# compiled, by the JDK's javac (21+) against the release's own jars: no Maven, no network, a few seconds.
# The source is the vendored upstream tarball (../shared/vendor/strimzi-kafka-bridge/, PF_SHARED_DIR).
# dev/stack.sh runs this when BRIDGE_PRODUCER_SHARED=true (the three-node cluster's bridge, in
# scripts/stack-session.sh), once per patch: OUT_DIR/.patch holds the patch's checksum.
set -euo pipefail
cd "$(dirname "$0")/.."
release="${1:?RELEASE_DIR}" out="${2:?OUT_DIR}" jdk="${3:?JDK_HOME}"
patch_file="$PWD/dev/bridge-shared-producer.patch"
vendor="${PF_SHARED_DIR:-$PWD/../shared}/vendor/strimzi-kafka-bridge"
source_tarball="$vendor/strimzi-kafka-bridge-1.1.0-src.tar.gz"
[[ -f $source_tarball ]] || { echo "build-bridge-shared: no bridge source at $source_tarball" >&2; exit 1; }
[[ -x $jdk/bin/javac && -x $jdk/bin/jar ]] || { echo "build-bridge-shared: $jdk has no javac and jar (a JDK 21+ is needed)" >&2; exit 1; }
bridge_jar="libs/io.strimzi.kafka-bridge-1.1.0.jar"
[[ -f $release/$bridge_jar ]] || { echo "build-bridge-shared: $release has no $bridge_jar" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
package=src/main/java/io/strimzi/kafka/bridge/http
tar -xzf "$source_tarball" -C "$work" "strimzi-kafka-bridge-1.1.0/$package"
(cd "$work/strimzi-kafka-bridge-1.1.0" && patch -s -p1 < "$patch_file")
# SpotBugs' annotations are compile-time only and not among the release's jars: dropped (no effect on the
# classes' behaviour).
sed -i -e '/^import edu.umd.cs.findbugs.annotations/d' -e 's/@SuppressFBWarnings([^)]*)//' \
  "$work/strimzi-kafka-bridge-1.1.0/$package"/*.java
mkdir -p "$work/classes"
"$jdk/bin/javac" -nowarn --release 21 -proc:none -cp "$release/libs/*" -d "$work/classes" \
  "$work/strimzi-kafka-bridge-1.1.0/$package"/{HttpBridge,HttpConfig,HttpSourceBridgeEndpoint}.java

rm -rf -- "$out"
cp -r -- "$release" "$out"
"$jdk/bin/jar" uf "$out/$bridge_jar" -C "$work/classes" .
sha256sum -- "$patch_file" | cut -d' ' -f1 > "$out/.patch"
echo "build-bridge-shared: built $out (the upstream release with dev/bridge-shared-producer.patch)"
