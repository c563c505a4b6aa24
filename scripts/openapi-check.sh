#!/usr/bin/env bash
# Checks the real responses of a running edge Worker against openapi/edge.yaml with schemathesis:
# generated requests (valid and invalid) to every operation, and every answer's status code, content
# type, headers and body checked against the document. Exits non-zero when a response does not conform.
#
#   EDGE_KV_URL=http://127.0.0.1:8787 EDGE_FILL_TOKEN=abc scripts/openapi-check.sh [extra schemathesis args]
#
# EDGE_KV_URL   base URL of the running Worker (e.g. scripts/edge-dev.sh start kv 8787 --var FILL_TOKEN:abc)
# EDGE_FILL_TOKEN  the Worker's fill token, sent as a bearer token (the internal PUT route needs it)
# MAX_EXAMPLES  test cases per operation and phase (default 30)
# SEED          schemathesis' random seed (default: a fresh one; it is printed, to replay a failure)
#
# A run that fails only because wrangler dev's proxy lost the Worker mid-request (its own text/plain
# 503, "Your worker restarted mid-request") runs once more with the same seed; any other failure fails.
#
# Before the run it stores (through the fill endpoint) a fresh comparison for product 42 and a stale one
# for 44, the document's examples, so that the 200 and 304 answers are checked too, not only misses.
# Installs schemathesis (pinned) into .run/venv the first time. Without a REST proxy every miss is a 503
# problem: the document lists it, so it conforms; what must not happen is an answer the document does not
# describe. Hence the conformance checks, not `not_a_server_error`.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
venv=$PWD/.run/venv
base_url=${EDGE_KV_URL:?set EDGE_KV_URL to the running Worker, e.g. http://127.0.0.1:8787}
token=${EDGE_FILL_TOKEN:?set EDGE_FILL_TOKEN to the fill token the Worker was started with}

if [[ $("$venv/bin/schemathesis" --version 2>/dev/null) != *" $SCHEMATHESIS_VERSION" ]]; then
  echo "[openapi] installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

if ! curl -fsS -m 5 -o /dev/null "$base_url/healthz"; then
  echo "[openapi] no Worker answers at $base_url/healthz" >&2
  exit 1
fi

# fill ID FRESH_FROM_NOW_MS STALE_FROM_NOW_MS: PUT a valid comparison (two EUR offers, computed a minute
# ago) that is fresh until now + FRESH and may be served stale until now + STALE.
fill() {
  local id=$1 now computed body status
  now=$(date +%s%3N)
  computed=$((now - 60000))
  body=$(printf '{"v":1,"productId":"%s","offers":[{"vendor":"bravo","price":{"minorUnits":1199,"currency":"EUR"}},{"vendor":"alpha","price":{"minorUnits":1234,"currency":"EUR"}}],"bestOffer":{"vendor":"bravo","price":{"minorUnits":1199,"currency":"EUR"}},"failures":[],"computedAtMs":%d,"freshUntilMs":%d,"staleUntilMs":%d,"complete":true}' \
    "$id" "$computed" $((now + $2)) $((now + $3)))
  status=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' --data "$body" "$base_url/internal/v1/prices/$id")
  if [[ $status != 204 ]]; then
    echo "[openapi] storing a comparison for $id answered $status, not 204 (is EDGE_FILL_TOKEN the Worker's?)" >&2
    exit 1
  fi
}
fill 42 600000 1200000   # fresh for 10 minutes
fill 44 -30000 1200000   # stale since 30 s

checks=(
  status_code_conformance       # every status is one the document lists for the operation
  content_type_conformance      # and with a media type it lists
  response_headers_conformance  # required headers present and well-formed (ETag, Location, Retry-After...)
  response_schema_conformance   # bodies match the schemas (Comparison, Pending, Problem, Health)
  negative_data_rejection       # invalid ids and bodies are refused with a 4xx
  unsupported_method            # other methods get 405
  allow_header_conformance      # ... with an Allow header naming the documented methods
  ignored_auth                  # the fill route refuses requests without (or with a wrong) token
)
# One seed for both runs below, so that a second run asks the same questions.
seed=${SEED:-$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')}

echo "[openapi] checking $base_url against openapi/edge.yaml (seed $seed)"
spec=$PWD/openapi/edge.yaml
# From .run/, so that schemathesis keeps its failure cache (for `st replay`) in .run/.schemathesis.
cd .run
run_schemathesis() {
  "$venv/bin/schemathesis" run "$spec" \
    --url "$base_url" \
    --header "Authorization: Bearer $token" \
    --checks "$(IFS=,; echo "${checks[*]}")" \
    --phases examples,coverage,fuzzing \
    --max-examples "${MAX_EXAMPLES:-30}" \
    --request-timeout 10 \
    --workers 1 \
    --generation-database none \
    --no-color \
    --seed "$seed" \
    "$@"
}
output=$(mktemp)
trap 'rm -f "$output"' EXIT
if run_schemathesis "$@" | tee "$output"; [[ ${PIPESTATUS[0]} -eq 0 ]]; then
  exit 0
fi
# wrangler dev's own proxy sometimes loses its connection to the Worker under a fuzzed request and
# answers a text/plain 503 of its own ("Your worker restarted mid-request"), which no Worker on
# Cloudflare would send. Only then, once more with the same seed: a real nonconformance fails again.
if grep -q "Your worker restarted mid-request" "$output"; then
  echo "[openapi] wrangler dev's proxy lost the Worker mid-request: once more with seed $seed"
  run_schemathesis "$@"
  exit $?
fi
exit 1
