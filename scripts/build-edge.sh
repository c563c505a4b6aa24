#!/usr/bin/env bash
# Builds the edge Worker into edge/build/ with worker-build, installing what is missing first:
# the wasm32 target, worker-build, wasm-bindgen-cli at exactly the version Cargo.lock pins (worker-build
# would download it from GitHub, which is out of reach), and the npm packages (wrangler, binaryen's
# wasm-opt). Installs once; later runs only rebuild what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/toolchain.sh

want_bindgen=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [[ $(wasm-bindgen --version 2>/dev/null) != "wasm-bindgen $want_bindgen" ]]; then
  echo "[edge] installing wasm-bindgen-cli $want_bindgen (a few minutes, once)"
  cargo install -q wasm-bindgen-cli --version "$want_bindgen" --force
fi
if ! command -v worker-build >/dev/null || [[ $(worker-build --version 2>/dev/null) != *0.8.7* ]]; then
  echo "[edge] installing worker-build 0.8.7 (several minutes, once)"
  cargo install -q worker-build --version 0.8.7 --locked --force
fi
if [[ ! -x node_modules/.bin/wrangler || ! -x node_modules/.bin/wasm-opt ]]; then
  echo "[edge] installing the npm packages (wrangler, binaryen)"
  npm ci --no-audit --no-fund --loglevel=error
fi

cd edge
WASM_BINDGEN_BIN="$(command -v wasm-bindgen)" WASM_OPT_BIN="$PWD/../node_modules/.bin/wasm-opt" \
  worker-build --release
