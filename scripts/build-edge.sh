#!/usr/bin/env bash
# Builds the edge Worker into edge/build/ with worker-build, installing what is missing first:
# the wasm32 target, worker-build, wasm-bindgen-cli at exactly the version Cargo.lock pins (worker-build
# would download it from GitHub, which is out of reach), and the npm packages (wrangler, binaryen's
# wasm-opt). Installs once; later runs only rebuild what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Several Workers starting at once (or wrangler dev's file watcher) may run this concurrently: one at a time.
mkdir -p .run
exec 9>.run/build-edge.lock
flock 9

# wrangler dev runs this as its build command each time a Worker starts: when nothing the wasm is built
# from changed since the last build, there is nothing to do (worker-build would run wasm-bindgen and
# wasm-opt again, about 20 s, for the same bytes).
built=edge/build/index_bg.wasm
if [[ -f $built && -f edge/build/index.js ]] \
  && [[ -z $(find edge/src edge/Cargo.toml core/src core/Cargo.toml Cargo.toml Cargo.lock scripts/build-edge.sh \
              -newer "$built" -print -quit) ]]; then
  echo "[edge] edge/build is up to date"
  exit 0
fi

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

# Panic locations name their source files: without the registry's and the workspace's own prefixes the
# paths (about 80 of them, each over 50 bytes longer) shrink, and nothing else changes.
remap="--remap-path-prefix=$PWD/="
for source in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/; do
  remap+=" --remap-path-prefix=$source="
done
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$remap"
cd edge
WASM_BINDGEN_BIN="$(command -v wasm-bindgen)" WASM_OPT_BIN="$PWD/../node_modules/.bin/wasm-opt" \
  worker-build --profile edge

# worker-build keeps the wasm's names section (about 90 KB, a third of the module) for readable stack
# traces; a Worker's size is its cold start, so it goes, with the producers section. One more -Oz round,
# with GUFA (whole-module flow analysis) and until nothing shrinks, takes about 1 KB more off. The features
# are worker-build's own list, so that wasm-opt writes nothing workerd cannot read.
../node_modules/.bin/wasm-opt build/index_bg.wasm -o build/index_bg.wasm -Oz --gufa -Oz --converge --strip-debug --strip-producers \
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int --enable-bulk-memory \
  --enable-multivalue --enable-reference-types --enable-exception-handling
