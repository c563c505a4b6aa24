#!/usr/bin/env bash
# Runs the edge Worker under `wrangler dev` on 127.0.0.1 in the background and waits until it answers.
#   scripts/edge-dev.sh start NAME PORT [--no-inspector] [--var KEY:VALUE ...]   (log: .run/logs/edge-NAME.log)
#   scripts/edge-dev.sh stop NAME
# The Worker must already be built (scripts/build-edge.sh); wrangler's own build step then finds
# nothing to redo. Its pid file (.run/pids/edge-NAME.pid) is "pid starttime", as for the stack
# (dev/processes.sh); `stop` stops only the Worker that pid file names, with its process group.
set -euo pipefail
cd "$(dirname "$0")/.."
state=.run
PIDS_DIR=$state/pids
LOG_TAG=edge
mkdir -p "$state/logs" "$PIDS_DIR"
# shellcheck source=dev/processes.sh
source dev/processes.sh

cmd=${1:?start or stop}; name=${2:?name}

# Durable Objects. wrangler dev keeps each object in a SQLite database of its own (a file, its WAL and
# its shared memory under v3/do of the Worker's state), created and synced on the runtime's thread
# when the object first starts, and never removed: every distinct miss starts a product gate, so a new
# product cost a file and a sync (distinct misses through the kv Worker, wrk -t2 -c16 10 s, five rounds
# each, taking turns: 69-98 a second with those files on disk, workerd 5.8-11.4 ms of CPU a miss;
# 139-199 with them in memory, 5.2-6.1 ms), and one drill's Worker had 41,211 of them, 375 MB. The
# gates store nothing (edge/src/gate.rs), so their files live in memory (tmpfs), emptied at every start
# and removed at stop; where there is no /dev/shm they stay on disk.
durable_objects_memory_dir() {
  echo "/dev/shm/pricefront-$(pwd | cksum | cut -d' ' -f1)/wrangler-$name-do"
}
keep_durable_objects_in_memory() {
  local on_disk=$state/wrangler-$name/v3/do in_memory
  in_memory=$(durable_objects_memory_dir)
  [[ -d /dev/shm && -w /dev/shm ]] || return 0
  rm -rf -- "$on_disk" "$in_memory"
  mkdir -p -- "$in_memory" "$(dirname "$on_disk")"
  ln -s -- "$in_memory" "$on_disk"
}
component=edge-$name
logfile=$state/logs/edge-$name.log
case "$cmd" in
  start)
    port=${3:?port}; shift 3
    if component_pid "$component" >/dev/null; then
      echo "[edge] $name already running"; exit 0
    fi
    clear_stale_pidfile "$component"
    : > "$logfile"
    # wrangler appends a debug line for every inspector event (each fetch the Worker makes) to a log
    # file of its own, by default under ~/.config/.wrangler/logs: keep it with the other logs instead.
    debuglog=$state/logs/wrangler-debug-$name.log
    : > "$debuglog"
    # The inspector port must differ between instances; keep it near the HTTP port. `launch` starts it
    # in a session of its own (setsid), so its pid is also its process group.
    # --no-inspector (anywhere after PORT): the same Worker through wrangler's API with no inspector
    # (scripts/wrangler-dev-api.mjs says why), as deployed; the benchmarks of the publish path use it.
    dev=(node_modules/.bin/wrangler dev --inspector-port $((port + 1000)))
    rest=()
    for arg in "$@"; do
      if [[ $arg == --no-inspector ]]; then dev=(node scripts/wrangler-dev-api.mjs); else rest+=("$arg"); fi
    done
    set -- "${rest[@]}"
    keep_durable_objects_in_memory
    pid=$(launch "$component" "$logfile" env WRANGLER_SEND_METRICS=false CI=true WRANGLER_LOG_PATH="$debuglog" \
      "${dev[@]}" --ip 127.0.0.1 --port "$port" --persist-to "$state/wrangler-$name" "$@")
    for _ in $(seq 1 180); do
      if curl -s -o /dev/null -m 2 "http://127.0.0.1:$port/healthz"; then
        echo "[edge] $name ready on http://127.0.0.1:$port"; exit 0
      fi
      component_pid "$component" >/dev/null || { tail -30 "$logfile"; echo "[edge] $name exited" >&2; exit 1; }
      sleep 1
    done
    tail -30 "$logfile"; echo "[edge] $name (pid $pid) did not answer within 180 s" >&2; exit 1 ;;
  stop)
    if ! pid=$(component_pid "$component"); then
      clear_stale_pidfile "$component"; exit 0
    fi
    kill -TERM -- "-$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || true
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f -- "$(pidfile_of "$component")"
    rm -rf -- "$(durable_objects_memory_dir)"; echo "[edge] $name stopped" ;;
  *) echo "usage: $0 start|stop NAME [PORT] [--var KEY:VALUE ...]" >&2; exit 2 ;;
esac
