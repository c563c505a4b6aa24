# shellcheck shell=bash
# Background processes by pid file, for dev/stack.sh and scripts/edge-dev.sh: logging, launch, bounded
# waits, stop. One pid-file convention: "pid starttime" (the start time from /proc/PID/stat), so that a
# reused pid is never taken for ours.
# Sourced, not executed. Expects PIDS_DIR to be set by the caller; LOG_TAG (default stack) prefixes messages.

log() { printf "[%s] %s\n" "${LOG_TAG:-stack}" "$*" >&2; }
die() { printf "[%s] ERROR: %s\n" "${LOG_TAG:-stack}" "$*" >&2; exit 1; }
warn() { printf "[%s] WARNING: %s\n" "${LOG_TAG:-stack}" "$*" >&2; }

# now_ms: milliseconds since the epoch (for deadlines and timings).
now_ms() { date +%s%3N; }

# elapsed_s START_MS: seconds since START_MS with one decimal.
elapsed_s() {
  local d=$(( $(now_ms) - $1 ))
  printf '%d.%d' $(( d / 1000 )) $(( (d % 1000) / 100 ))
}

# sha_of FILE...: one sha256 over the given files' contents.
sha_of() { cat -- "$@" | sha256sum | cut -d' ' -f1; }

# port_open PORT [HOST]: true if something accepts TCP connections there.
port_open() {
  local port=$1 host=${2:-127.0.0.1}
  # shellcheck disable=SC2016  # $0/$1 are expanded by the inner bash
  timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
}

# proc_starttime PID: start time (clock ticks since boot) from /proc/PID/stat, field 22.
# Used with the pid to recognise *our* process even if the pid number gets reused.
proc_starttime() {
  local stat rest
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  rest=${stat##*) }            # drop "pid (comm) " (comm may contain spaces)
  # shellcheck disable=SC2086
  set -- $rest                 # rest starts at field 3 (state); field 22 is $20 here
  printf '%s\n' "${20}"
}

pidfile_of() { printf '%s/%s.pid\n' "$PIDS_DIR" "$1"; }

# component_pid NAME: prints the pid and returns 0 if NAME's pid file names a live process
# that is the one we started (same start time). Returns 1 otherwise (no/stale pid file).
component_pid() {
  local f pid st cur
  f=$(pidfile_of "$1")
  [[ -s $f ]] || return 1
  read -r pid st < "$f" || true
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cur=$(proc_starttime "$pid") || return 1
  [[ -z ${st:-} || $st == "$cur" ]] || return 1
  # a zombie (exited, not yet reaped) counts as dead
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
  printf '%s\n' "$pid"
}

# clear_stale_pidfile NAME: remove NAME's pid file when it no longer names our live process.
clear_stale_pidfile() {
  local f
  f=$(pidfile_of "$1")
  if [[ -e $f ]] && ! component_pid "$1" >/dev/null; then
    log "$1: removing stale pid file"
    rm -f -- "$f"
  fi
}

# launch NAME LOGFILE CMD...: start CMD detached (own session, no stdin, stdout+stderr
# appended to LOGFILE, SIGHUP ignored) so it outlives this script, and record
# "pid starttime" in NAME's pid file. The pid is written by the process itself right
# before it execs CMD, so it is the pid of CMD whatever setsid does.
launch() {
  local name=$1 logfile=$2; shift 2
  local pf tmp pid st deadline
  pf=$(pidfile_of "$name")
  tmp="$pf.new"
  rm -f -- "$tmp"
  printf '\n===== %s: starting %s =====\n' "$(date -Is)" "$name" >> "$logfile"
  # fd 9 is the stack lock: close it so the daemon does not keep holding it.
  # shellcheck disable=SC2016
  setsid nohup bash -c 'echo "$$" > "$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"' "$tmp" "$@" \
    >> "$logfile" 2>&1 < /dev/null 9>&- &
  deadline=$(( $(now_ms) + 10000 ))
  until [[ -s $tmp ]]; do
    (( $(now_ms) < deadline )) || die "$name: process did not start (see $logfile)"
    sleep 0.05
  done
  read -r pid < "$tmp"
  rm -f -- "$tmp"
  if ! st=$(proc_starttime "$pid"); then
    log "$name: exited immediately; last lines of $logfile:"
    tail -n 20 -- "$logfile" >&2 || true
    die "$name: failed to start"
  fi
  printf '%s %s\n' "$pid" "$st" > "$pf"
  printf '%s\n' "$pid"
}

# wait_ready NAME TIMEOUT_S LOGFILE PROBE...: poll PROBE (a command) until it succeeds.
# Fails fast if NAME's process dies, and after TIMEOUT_S seconds.
wait_ready() {
  local name=$1 timeout_s=$2 logfile=$3; shift 3
  local deadline=$(( $(now_ms) + timeout_s * 1000 ))
  while :; do
    if ! component_pid "$name" >/dev/null; then
      log "$name: process exited during startup; last lines of $logfile:"
      tail -n 30 -- "$logfile" >&2 || true
      return 1
    fi
    if "$@"; then return 0; fi
    if (( $(now_ms) >= deadline )); then
      log "$name: not ready after ${timeout_s}s; last lines of $logfile:"
      tail -n 30 -- "$logfile" >&2 || true
      return 1
    fi
    sleep 0.25
  done
}

# wait_gone PID TIMEOUT_S: wait until PID has exited; false on timeout.
wait_gone() {
  local pid=$1 deadline=$(( $(now_ms) + $2 * 1000 ))
  while kill -0 "$pid" 2>/dev/null; do
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 0
    (( $(now_ms) < deadline )) || return 1
    sleep 0.1
  done
}

# stop_component NAME TIMEOUT_S [SIGNAL]: send SIGNAL (default TERM) to NAME's process, wait up
# to TIMEOUT_S for it to exit, then SIGKILL it; remove the pid file. No-op if not running.
stop_component() {
  local name=$1 timeout_s=$2 sig=${3:-TERM} pid t0
  if ! pid=$(component_pid "$name"); then
    clear_stale_pidfile "$name"
    log "$name: not running"
    return 0
  fi
  t0=$(now_ms)
  kill "-$sig" "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$timeout_s"; then
    log "$name: still running ${timeout_s}s after SIG$sig, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "$name: pid $pid survived SIGKILL"
  fi
  rm -f -- "$(pidfile_of "$name")"
  log "$name: stopped (pid $pid, SIG$sig, $(elapsed_s "$t0")s)"
}
