#!/usr/bin/env bash
# Builds the known-products filter from a list of ids and puts it in the Worker's KV namespace (PRICES)
# under KEY, which the Worker's KNOWN_PRODUCTS_KEY names.
#   scripts/load-catalog.sh IDS_FILE KEY --remote            (the deployed namespace)
#   scripts/load-catalog.sh IDS_FILE KEY --local NAME        (a Worker of scripts/edge-dev.sh start NAME)
# IDS_FILE: one product id per line, or first-last ranges. An isolate reads the filter again within
# 5 minutes of a change. CATALOG_PROFILE=release builds the tool optimized (for tens of millions of ids).
set -euo pipefail
cd "$(dirname "$0")/.."
ids=${1:?ids file}; key=${2:?KV key}; where=${3:?--remote or --local NAME}
out=$(mktemp); trap 'rm -f "$out"' EXIT
cargo run --quiet --profile "${CATALOG_PROFILE:-dev}" -p pricefront-catalog -- --ids "$ids" --out "$out"
case "$where" in
  --remote) target=(--remote) ;;
  --local) target=(--local --persist-to ".run/wrangler-${4:?Worker name}") ;;
  *) echo "usage: $0 IDS_FILE KEY --remote|--local NAME" >&2; exit 2 ;;
esac
WRANGLER_SEND_METRICS=false CI=true node_modules/.bin/wrangler kv key put --binding PRICES "$key" \
  --path "$out" "${target[@]}"
