#!/usr/bin/env bash
# The reliability drills (`make drills`): installs what is missing, starts the local stack (unless it
# already runs), builds the consumer and the Worker, runs every drill (each injects one fault under a
# bounded load on 127.0.0.1) and rewrites RELIABILITY.md; stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/toolchain.sh
# shellcheck source=scripts/stack-session.sh
source scripts/stack-session.sh
stack_up_for_this_run
# The cluster drills run on three Kafka nodes beside the stack.
trap 'cluster_down; stop_stack_if_started' EXIT
cluster_up_for_this_run
scripts/build-edge.sh
# The drills run the release consumer, the binary a user deploys: a debug build at window 256 is
# CPU-bound on 2 cores, and its own slowness then looks like vendor timeouts.
cargo build --release -p pricefront-consumer
cargo build -p pricefront-drills
PRICEFRONT_CONSUMER_BIN="$PWD/target/release/pricefront-consumer" target/debug/pricefront-drills --write "$@"
