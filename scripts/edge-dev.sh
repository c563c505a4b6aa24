#!/usr/bin/env bash
# Runs the edge Worker under `wrangler dev` on 127.0.0.1 in the background and waits until it answers.
#   scripts/edge-dev.sh start NAME PORT [--var KEY:VALUE ...]   (log: .run/logs/edge-NAME.log)
#   scripts/edge-dev.sh stop NAME
# The Worker must already be built (scripts/build-edge.sh); wrangler's own build step then finds
# nothing to redo.
set -euo pipefail
cd "$(dirname "$0")/.."
state=.run
mkdir -p "$state/logs" "$state/pids"

cmd=${1:?start or stop}; name=${2:?name}
pidfile="$state/pids/edge-$name.pid"
case "$cmd" in
  start)
    port=${3:?port}; shift 3
    if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "[edge] $name already running"; exit 0
    fi
    # The inspector port must differ between instances; keep it near the HTTP port.
    WRANGLER_SEND_METRICS=false CI=true setsid node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$port" \
      --inspector-port $((port + 1000)) --persist-to "$state/wrangler-$name" "$@" \
      > "$state/logs/edge-$name.log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    for _ in $(seq 1 180); do
      if curl -s -o /dev/null -m 2 "http://127.0.0.1:$port/healthz"; then
        echo "[edge] $name ready on http://127.0.0.1:$port"; exit 0
      fi
      kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -30 "$state/logs/edge-$name.log"; echo "[edge] $name exited" >&2; exit 1; }
      sleep 1
    done
    tail -30 "$state/logs/edge-$name.log"; echo "[edge] $name did not answer within 180 s" >&2; exit 1 ;;
  stop)
    [[ -f $pidfile ]] || exit 0
    pid=$(cat "$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$pidfile"; echo "[edge] $name stopped" ;;
  *) echo "usage: $0 start|stop NAME [PORT] [--var KEY:VALUE ...]" >&2; exit 2 ;;
esac
