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
