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
scripts/build-edge.sh
cargo build -p pricefront-consumer -p pricefront-drills
target/debug/pricefront-drills --write "$@"
