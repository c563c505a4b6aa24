#!/usr/bin/env bash
# The reliability drills (`make drills`): installs what is missing, starts the local stack (unless it
# already runs), builds the consumer and the Worker, runs every drill (each injects one fault under a
# bounded load on 127.0.0.1) and rewrites RELIABILITY.md; stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/toolchain.sh
started_stack=false
# (status read whole first: with pipefail, grep -q closing the pipe early would read as "not running")
stack_status=$(dev/stack.sh status)
[[ $stack_status == "kafka   running"* ]] || started_stack=true
stop_stack() { if $started_stack; then dev/stack.sh down || true; fi; }
trap stop_stack EXIT
dev/stack.sh up
scripts/build-edge.sh
cargo build -p pricefront-consumer -p pricefront-drills
target/debug/pricefront-drills --write "$@"
