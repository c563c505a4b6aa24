# shellcheck shell=bash
# Shared by the scripts that need the local stack (test.sh, bench.sh, drills.sh). Sourced.

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
